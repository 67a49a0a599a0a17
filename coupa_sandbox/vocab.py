"""Plausible values for Coupa properties, chosen from the property's name and type.

Generation is schema-driven (hundreds of properties), so values come from name
heuristics rather than per-resource code: ``invoice-number`` looks like ``INV-1042``,
``status`` uses the resource's real status values, money is a decimal *string*.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from dataclasses import dataclass
from random import Random
from typing import Any

from .clock import Clock
from .schema import Node

FIRST_NAMES = (
    "Anna", "Ben", "Carla", "Deepak", "Elena", "Farid", "Grace", "Hiro", "Ines", "Jamal",
    "Keiko", "Luis", "Maya", "Noah", "Olga", "Priya", "Quinn", "Rosa", "Sven", "Tara",
    "Umar", "Vera", "Wei", "Ximena", "Yusuf", "Zoe",
)  # fmt: skip
LAST_NAMES = (
    "Manning", "Okafor", "Schmidt", "Tanaka", "Garcia", "Nguyen", "Kowalski", "Haddad",
    "Johnson", "Rossi", "Fischer", "Patel", "Larsen", "Moreau", "Silva", "Novak", "Kim",
    "O'Brien", "Dubois", "Andersson",
)  # fmt: skip
COMPANY_WORDS = (
    "Acme", "Globex", "Initech", "Umbrella", "Stark", "Wayne", "Cyberdyne", "Soylent",
    "Tyrell", "Hooli", "Vandelay", "Pied Piper", "Wonka", "Massive Dynamic", "Oceanic",
    "Aperture", "Gringotts", "Monarch", "Nakatomi", "Zorg",
)  # fmt: skip
COMPANY_SUFFIXES = (
    "Inc.", "LLC", "GmbH", "Ltd", "Corp.", "S.A.", "Supply Co.", "Industries", "& Sons",
)  # fmt: skip
DEPARTMENTS = (
    "Marketing", "Finance", "Engineering", "Operations", "Legal", "Sales", "IT",
    "Facilities", "HR", "Procurement",
)  # fmt: skip
CURRENCIES = ("USD", "EUR", "GBP", "CAD", "JPY", "AUD", "CHF", "INR", "MXN", "SEK")
COUNTRIES = (("US", "United States"), ("DE", "Germany"), ("GB", "United Kingdom"),
             ("CA", "Canada"), ("FR", "France"), ("JP", "Japan"), ("IN", "India"))  # fmt: skip
CITIES = (
    ("San Mateo", "CA", "94402"), ("Austin", "TX", "78701"), ("Chicago", "IL", "60601"),
    ("Seattle", "WA", "98101"), ("Boston", "MA", "02110"), ("Denver", "CO", "80202"),
)  # fmt: skip
STREETS = ("Main St", "Market St", "Elm Ave", "Harbor Blvd", "Oak Rd", "2nd Ave")
PRODUCTS = (
    "Laptop 14in", "Office chair", "Toner cartridge", "Consulting services", "Cloud hosting",
    "Safety gloves", "Standing desk", "Monitor 27in", "Printer paper A4", "Travel - airfare",
    "Software license", "Catering", "Courier service", "Server rack", "Conference booth",
)  # fmt: skip
SENTENCES = (
    "Quarterly replenishment for the San Mateo office.",
    "Approved per budget review.",
    "Rush order, please expedite.",
    "Net 30 terms agreed with supplier.",
    "Replaces PO cancelled last month.",
    "Includes freight and handling.",
    "See attached quote for details.",
    "Price per contract amendment 2.",
    "Partial shipment received; remainder backordered.",
    "Customer onsite workshop — travel & lodging.",
)  # fmt: skip
CUSTOM_FIELD_KEYS = (
    "cost-center", "project-code", "legal-entity", "region", "sap-document-id",
    "tax-jurisdiction", "approval-reference", "business-unit",
)  # fmt: skip

STATUSES: dict[str, tuple[str, ...]] = {
    "invoice": ("draft", "new", "pending_approval", "approved", "pending_receipt", "disputed",
                "voided", "on_hold"),
    "order": ("draft", "buyer_hold", "issued", "currency_hold", "cancelled", "closed",
              "supplier_window_hold", "expensed"),
    "requisition": ("draft", "pending_approval", "approved", "ordered", "partially_received",
                    "received", "cancelled", "pending_buyer_action"),
    "expense": ("draft", "pending_approval", "approved", "rejected", "accounted", "paid"),
    "approval": ("pending_approval", "approved", "rejected", "waiting", "skipped", "withdrawn"),
    "contract": ("draft", "published", "pending_approval", "expired", "completed", "withdrawn"),
    "supplier": ("active", "inactive", "draft"),
    "budget": ("active", "inactive", "pending"),
    "receipt": ("created", "received", "voided"),
    "payment": ("pending", "paid", "partially_paid", "failed"),
    "default": ("active", "inactive"),
}  # fmt: skip

MONEY_WORDS = ("amount", "total", "price", "cost", "balance", "budget", "spend", "value",
               "subtotal", "fee", "charge", "limit", "net", "gross", "tax", "discount")  # fmt: skip
RATE_WORDS = ("rate", "pct", "percent", "percentage")
TEXT_WORDS = ("description", "comment", "comments", "note", "notes", "justification",
              "reason", "memo", "message", "instructions", "terms", "remarks")  # fmt: skip


@dataclass
class ValueCtx:
    """What a value generator may depend on besides its random stream."""

    owner: str  # stream or association target generating the value
    index: int  # record index within the owner
    created: float
    updated: float
    anchor: float
    clock: Clock
    line_num: int = 1


ValueFn = Callable[[Random, ValueCtx], Any]


def stable_hash(*parts: object) -> int:
    """Process-independent hash (``hash()`` is salted per process)."""
    return zlib.crc32("\x1f".join(str(p) for p in parts).encode())


def words(name: str) -> list[str]:
    """Split a property or stream name into lowercase words."""
    return [w for w in name.replace("_", "-").lower().split("-") if w]


def title(name: str) -> str:
    """``purchase_orders`` -> ``Purchase Order`` for generated names."""
    parts = words(singular(name))
    return " ".join(p.capitalize() for p in parts) or "Record"


def singular(name: str) -> str:
    """Cheap English singular, enough for resource names."""
    if name.endswith("ies"):
        return name[:-3] + "y"
    if name.endswith(("sses", "xes", "ches", "shes")):
        return name[:-2]
    if name.endswith("s") and not name.endswith("ss"):
        return name[:-1]
    return name


def plural(name: str) -> str:
    """Cheap English plural, the inverse of :func:`singular` for resource names."""
    if name.endswith("s"):
        return name
    if name.endswith("y") and name[-2:-1] not in ("a", "e", "o", "u"):
        return name[:-1] + "ies"
    if name.endswith(("x", "ch", "sh")):
        return name + "es"
    return name + "s"


def prefix_for(owner: str) -> str:
    """Document-number prefix for a resource (``INV``, ``PO``, ``REQ`` …)."""
    low = owner.lower()
    if low.startswith(("po-", "po_")):
        return "PO"
    for key, prefix in (("invoice", "INV"), ("order", "PO"), ("requisition", "REQ"),
                        ("expense", "EXP"), ("contract", "CON"), ("supplier", "S"),
                        ("receipt", "RCV"), ("payment", "PAY"), ("budget", "BL"),
                        ("user", "E"), ("approval", "APR")):  # fmt: skip
        if key in low:
            return prefix
    letters = "".join(w[0] for w in words(owner)).upper()
    return letters or "N"


def status_family(owner: str) -> str:
    """Which status vocabulary applies to a resource."""
    low = owner.lower()
    for key in ("invoice", "requisition", "expense", "approval", "contract", "supplier",
                "budget", "receipt", "payment"):  # fmt: skip
        if key in low:
            return key
    if "order" in low:
        return "order"
    return "default"


def money(rng: Random, low: int = 5, high: int = 25000) -> str:
    """A decimal string: mostly 2 decimals, some 4, a few with more digits than a double."""
    roll = rng.random()
    fraction = rng.random()
    if roll < 0.03:
        return f"{rng.randint(10**15, 10**16 - 1)}.{int(roll * 333_333) % 10000:04d}"
    sign = "-" if roll > 0.985 else ""
    units = low + int(fraction * (high - low))
    cents = int(fraction * 1_000_000) % 10000
    if roll < 0.10:
        return f"{sign}{units}.{cents:04d}"
    return f"{sign}{units}.{cents % 100:02d}"


def person(rng: Random) -> tuple[str, str]:
    """A (first, last) name pair."""
    return rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)


def company(rng: Random) -> str:
    """A supplier-like company name."""
    return f"{rng.choice(COMPANY_WORDS)} {rng.choice(COMPANY_SUFFIXES)}"


def identity(target: str, k: int, seed: int) -> dict[str, Any]:
    """Natural keys of entity ``k`` of ``target``, shared by records and associations.

    The same function feeds the ``suppliers`` stream and every ``supplier`` association,
    so ``invoice.supplier.name`` matches the supplier record with that id.
    """
    rng = Random(f"{seed}:identity:{target}:{k}")
    low = target.lower()
    out: dict[str, Any] = {"active": rng.random() < 0.92}
    first, last = person(rng)
    login = f"{first[0]}{last}".lower().replace("'", "") + (str(k) if k >= 26 else "")
    out.update(
        firstname=first,
        lastname=last,
        fullname=f"{first} {last}",
        login=login,
        email=f"{login}@example.com",
        **{"employee-number": f"E{10000 + k}"},
    )
    family = status_family(target)
    out["status"] = (
        "active"
        if family in ("default", "supplier") and out["active"]
        else rng.choice(STATUSES[family])
    )
    if "user" in low or low in ("requested-by", "created-by", "updated-by"):
        out["name"] = out["fullname"]
        out["code"] = login
        out["number"] = out["employee-number"]
    elif "supplier" in low or "vendor" in low or "payee" in low:
        name = company(rng)
        out.update(name=name, number=f"S-{k + 1}", code=f"SUP{k + 1:04d}")
        out["display-name"] = name
        out["email"] = f"ar@{name.split()[0].lower()}.example.com"
    elif "currenc" in low:
        code = CURRENCIES[k % len(CURRENCIES)]
        out.update(name=code, code=code, number=str(k + 1))
    elif "account_type" in low or "account-type" in low or "chart" in low:
        out.update(name=f"{rng.choice(COMPANY_WORDS)} Corporate", code=f"COA-{k + 1}")
    elif "account" in low:
        dept = DEPARTMENTS[k % len(DEPARTMENTS)]
        gl = 6000 + 10 * (k % 40)
        out.update(name=f"{dept} - {gl}", code=f"10-{100 + k % 900}-{gl}", number=str(gl))
    elif "department" in low:
        out.update(name=DEPARTMENTS[k % len(DEPARTMENTS)], code=f"D{k + 1:03d}")
    elif "countr" in low:
        code, name = COUNTRIES[k % len(COUNTRIES)]
        out.update(name=name, code=code)
    elif "address" in low or "location" in low:
        city, _state, _zip = rng.choice(CITIES)
        out.update(name=f"{city} Office {k + 1}", code=f"LOC-{k + 1}")
    elif "commodit" in low or "item" in low or "product" in low:
        out.update(name=rng.choice(PRODUCTS), code=f"IT-{k + 1:05d}")
    elif "uom" in low or "unit" in low:
        out.update(name=("Each", "Hour", "Box", "Kilogram", "Day")[k % 5])
        out["code"] = ("EA", "HR", "BX", "KG", "DAY")[k % 5]
    elif "payment_term" in low or "payment-term" in low:
        days = (0, 15, 30, 45, 60, 90)[k % 6]
        out.update(name=f"Net {days}", code=f"NET{days}")
    else:
        out.update(name=f"{title(target)} {k + 1}", code=f"{prefix_for(target)}-{k + 1:03d}")
    out.setdefault("number", f"{prefix_for(target)}-{1000 + k}")
    out.setdefault("display-name", out["name"])
    return out


IDENTITY_PROPS = frozenset(
    {"name", "display-name", "number", "code", "login", "email", "firstname", "lastname",
     "fullname", "employee-number", "active", "status"}
)  # fmt: skip

KEY_PROPS = frozenset(
    {"id", "name", "number", "status", "total", "amount", "code", "description", "line-num",
     "email", "login", "firstname", "lastname", "quantity", "price", "exported", "active",
     "created-at", "updated-at"}
)  # fmt: skip


def density(owner: str, prop: str, depth: int) -> float:
    """Share of records that carry a value for ``prop`` (the rest are null)."""
    w = words(prop)
    if prop in KEY_PROPS or prop.endswith(("-number", "-total", "-amount", "-date")):
        return 1.0 if depth == 0 else 0.9
    if any(x in w for x in MONEY_WORDS):
        return 0.85 if depth == 0 else 0.5
    bucket = stable_hash(owner, prop) % 10
    if depth > 0:  # lines and allocations are sparser than their documents
        return 0.0 if bucket < 5 else (0.15 if bucket < 8 else 0.7)
    if bucket < 4:
        return 0.0
    if bucket < 6:
        return 0.2
    if bucket < 8:
        return 0.6
    return 0.9


def _number_fn(prop: str) -> ValueFn:
    w = words(prop)
    if any(x in w for x in ("quantity", "qty")):
        return lambda rng, ctx: f"{rng.randint(1, 40)}.{rng.choice(('0', '0', '5', '25'))}"
    if "exchange" in w:
        return lambda rng, ctx: f"{rng.uniform(0.5, 1.6):.6f}"
    if any(x in w for x in RATE_WORDS):
        return lambda rng, ctx: f"{rng.randint(0, 25)}.{rng.randint(0, 99):02d}"
    if any(x in w for x in ("days", "hours", "weight", "score")):
        return lambda rng, ctx: f"{rng.randint(0, 90)}.0"
    if any(x in w for x in MONEY_WORDS):
        return lambda rng, ctx: money(rng)
    return lambda rng, ctx: money(rng, 1, 900)


def _integer_fn(prop: str) -> ValueFn:
    w = words(prop)
    if prop == "line-num" or prop == "position" or prop == "line-number":
        return lambda rng, ctx: ctx.line_num
    if prop.endswith("-id"):
        return lambda rng, ctx: rng.randint(1, 9999)
    if "version" in w or "revision" in w:
        return lambda rng, ctx: rng.randint(1, 5)
    if "days" in w:
        return lambda rng, ctx: rng.choice((0, 15, 30, 45, 60))
    if "decimals" in w or "precision" in w:
        return lambda rng, ctx: 2
    return lambda rng, ctx: rng.randint(0, 100)


def _boolean_fn(prop: str) -> ValueFn:
    w = words(prop)
    if any(x in w for x in ("active", "enabled", "valid")):
        chance = 0.9
    elif "exported" in w:
        chance = 0.6
    elif "paid" in w:
        chance = 0.4
    else:
        chance = 0.25
    return lambda rng, ctx: rng.random() < chance


def _datetime_fn(prop: str, date_only: bool) -> ValueFn:
    w = words(prop)
    future = any(x in w for x in ("due", "need", "end", "expiration", "expires", "until"))
    early = any(x in w for x in ("start", "effective", "invoice", "document"))

    def between(rng: Random, ctx: ValueCtx) -> float:
        if future:
            return min(ctx.updated + int(1 + rng.random() * 90) * 86400, ctx.anchor + 200 * 86400)
        if early:
            return ctx.created - int(rng.random() * 6) * 86400
        return ctx.created + rng.random() * max(0.0, ctx.updated - ctx.created)

    if date_only:
        return lambda rng, ctx: ctx.clock.format_date(between(rng, ctx))
    if w and w[-1] in ("date", "day"):
        return lambda rng, ctx: ctx.clock.format_midnight(between(rng, ctx))
    return lambda rng, ctx: ctx.clock.format(between(rng, ctx))


def _string_fn(prop: str) -> ValueFn:
    w = words(prop)
    last = w[-1] if w else ""
    if prop == "status" or last == "status":
        return lambda rng, ctx: rng.choice(STATUSES[status_family(ctx.owner)])
    if last == "email":
        return lambda rng, ctx: "{}.{}@example.com".format(*person(rng)).lower().replace("'", "")
    if last == "login":
        return lambda rng, ctx: "{}{}".format(*person(rng)).lower().replace("'", "")
    if prop in ("firstname", "first-name", "name-given"):
        return lambda rng, ctx: person(rng)[0]
    if prop in ("lastname", "last-name", "name-family"):
        return lambda rng, ctx: person(rng)[1]
    if prop in ("fullname", "full-name", "contact-name", "attention"):
        return lambda rng, ctx: "{} {}".format(*person(rng))
    if last in ("number", "num") or prop.endswith("-ref") or "reference" in w:
        if len(w) > 1:
            own = prefix_for(prop)
            return lambda rng, ctx: f"{own}-{1000 + ctx.index}"
        return lambda rng, ctx: f"{prefix_for(ctx.owner)}-{1000 + ctx.index}"
    if prop in ("street1", "street", "address-line-1", "address1"):
        return lambda rng, ctx: f"{rng.randint(1, 9999)} {rng.choice(STREETS)}"
    if prop in ("street2", "address-line-2", "address2"):
        return lambda rng, ctx: f"Suite {rng.randint(100, 999)}"
    if last == "city":
        return lambda rng, ctx: rng.choice(CITIES)[0]
    if last in ("state", "province", "region"):
        return lambda rng, ctx: rng.choice(CITIES)[1]
    if prop in ("postal-code", "zip", "zip-code"):
        return lambda rng, ctx: rng.choice(CITIES)[2]
    if last == "country":
        return lambda rng, ctx: rng.choice(COUNTRIES)[1]
    if "phone" in w or "fax" in w or "mobile" in w:
        return lambda rng, ctx: f"+1 415-555-{rng.randint(0, 9999):04d}"
    if last in ("url", "website", "uri", "link"):
        return lambda rng, ctx: f"https://example.com/{ctx.owner}/{1000 + ctx.index}"
    if "currency" in w and last == "code":
        return lambda rng, ctx: rng.choice(CURRENCIES)
    if last == "code":
        return lambda rng, ctx: f"{prefix_for(prop)}{rng.randint(1, 99):02d}"
    if last in ("type", "kind", "category"):
        options = tuple(
            f"{''.join(x.capitalize() for x in words(singular(prop)))}{s}"
            for s in ("Standard", "Amount", "Quantity")
        )
        return lambda rng, ctx: rng.choice(options)
    if "tax" in w and last in ("id", "registration"):
        return lambda rng, ctx: f"{rng.randint(10, 99)}-{rng.randint(1000000, 9999999)}"
    if last in ("id", "uuid", "guid", "key", "token"):
        return lambda rng, ctx: f"{rng.getrandbits(64):016x}"
    if last in ("locale", "language"):
        return lambda rng, ctx: rng.choice(("en", "en", "de", "fr", "ja"))
    if last in ("source", "channel", "origin"):
        return lambda rng, ctx: rng.choice(("api", "ui", "cxml", "email"))
    if "segment" in w:
        return lambda rng, ctx: f"{rng.randint(100, 9999)}"
    if last == "name" or last == "title":
        return lambda rng, ctx: f"{title(ctx.owner)} {1000 + ctx.index}"
    if any(x in w for x in TEXT_WORDS):
        return lambda rng, ctx: rng.choice(SENTENCES)
    label = " ".join(x.capitalize() for x in w) or "Value"
    return lambda rng, ctx: f"{label} {rng.randint(1, 999)}"


def fit_decimal(value: str, size: tuple[int, int], rng: Random) -> str:
    """Make a decimal string fit DECIMAL(precision, scale), as the column would store it.

    Wide-scale columns (prices, rates at scale 20) sometimes use every digit, so exact
    loading is tested where a double would round.
    """
    precision, scale = size
    sign = "-" if value.startswith("-") else ""
    whole, _, frac = value.lstrip("-").partition(".")
    whole = whole[len(whole) - (precision - scale) :].lstrip("0") or "0"
    if scale >= 10 and rng.random() < 0.05:
        frac = (frac + "".join(rng.choice("0123456789") for _ in range(scale)))[:scale]
    frac = frac[:scale]
    return f"{sign}{whole}.{frac}" if frac else f"{sign}{whole}"


def scalar_fn(prop: str, node: Node) -> ValueFn:
    """Pick a value generator for a scalar property from its name and schema node."""
    kind, size = node.kind, node.size
    if kind == "number" and size:
        fn = _number_fn(prop)
        return lambda rng, ctx: fit_decimal(fn(rng, ctx), size, rng)
    if kind == "number":
        return _number_fn(prop)
    if kind == "integer":
        return _integer_fn(prop)
    if kind == "boolean":
        return _boolean_fn(prop)
    if kind == "datetime":
        return _datetime_fn(prop, date_only=False)
    if kind == "date":
        return _datetime_fn(prop, date_only=True)
    return _string_fn(prop)


def custom_field_keys(owner: str, seed: int) -> tuple[str, ...]:
    """Instance-specific custom-field keys for a resource (not in the schema)."""
    rng = Random(f"{seed}:custom-keys:{owner}")
    return tuple(sorted(rng.sample(CUSTOM_FIELD_KEYS, rng.randint(2, 4))))


def custom_field_value(key: str, rng: Random) -> Any:
    """A value for an instance-specific custom field; some are left empty."""
    if rng.random() < 0.15:
        return None
    if key == "cost-center":
        return f"CC-{rng.randint(100, 180)}"
    if key == "project-code":
        return f"P-{rng.randint(1, 30)}"
    if key == "legal-entity":
        return rng.choice(("US01", "DE02", "GB03"))
    if key == "region":
        return rng.choice(("AMER", "EMEA", "APAC"))
    if key == "sap-document-id":
        return str(rng.randint(4_500_000_000, 4_599_999_999))
    if key == "tax-jurisdiction":
        return rng.choice(("CA-SF", "TX-AUS", "NY-NYC", "DE-BY"))
    if key == "approval-reference":
        return f"APR-{rng.randint(1, 9999):04d}"
    return rng.choice(("Shared Services", "Retail", "R&D"))
