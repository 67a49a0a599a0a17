"""Build the sandbox's own resource model (``resources.json``) from Coupa's R39 definitions.

The sandbox is the tap's test bed, so it must not learn its resources from the tap:
this reads the R39 Swagger files directly and keeps only facts (paths, field names and
types, decimal sizes, associations, nested arrays), never description text. Which
collections are served, which nested arrays are full line records, and the OAuth
scope of each resource are the sandbox's own decisions, written down here.

The output is committed as package data, so the sandbox runs without the R39 files;
``--check`` lets the test suite catch drift between the two.

Usage::

    python -m coupa_sandbox.build_resources [--source ../shared/coupa-api-r39] [--check]
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from coupa_sandbox import documented

PACKAGE_DIR = Path(__file__).resolve().parent
DEFAULT_SOURCE = PACKAGE_DIR.parent.parent / "shared" / "coupa-api-r39"
OUTPUT = PACKAGE_DIR / "resources.json"

JsonDict = dict[str, Any]

# R39 collections (GET without path parameters, answering an array of one definition)
# the sandbox does not serve, with why: serving them would count the same rows twice.
NOT_SERVED: dict[str, str] = {
    "expense_lines/expense_artifacts": "the ExpenseArtifact rows of /expense_artifacts",
    "receivable_purchase_order_lines": "purchase order lines still open to receive",
}

# Nested arrays Coupa renders as full line records (with their own associations and
# allocations) rather than as shallow references: (owner collection, array field).
# An owner is a served resource or another line collection; a line collection is
# named after its owner's singular and the field (invoices + tax-lines -> invoice_tax_lines).
LINE_COLLECTIONS: tuple[tuple[str, str], ...] = (
    ("invoices", "invoice-lines"),
    ("invoices", "invoice-charges"),
    ("invoices", "tax-lines"),
    ("invoice_lines", "tax-lines"),
    ("invoice_lines", "account-allocations"),
    ("invoice_charges", "tax-lines"),
    ("invoice_charges", "account-allocations"),
    ("requisitions", "requisition-lines"),
    ("requisition_lines", "account-allocations"),
    ("purchase_order_lines", "account-allocations"),
    ("expense_lines", "account-allocations"),
    ("expense_lines", "expense-line-taxes"),
    ("suppliers", "remit-to-addresses"),
    ("suppliers", "supplier-addresses"),
    ("suppliers", "contacts"),
    ("suppliers", "diversities"),
    ("supplier_information", "supplier-information-addresses"),
    ("supplier_information", "supplier-information-contacts"),
    ("business_entities", "addresses"),
    ("asn_headers", "lines"),
    ("cycle_counts", "cycle-count-lines"),
    ("order_pads", "order-pad-lines"),
    ("quote_requests", "lines"),
    ("quote_responses", "lines"),
    ("receipt_requests", "lines"),
    ("return_requests", "lines"),
    ("warehouses", "warehouse-locations"),
)

# Read scopes that the naming rule in read_scope() cannot find, by path. Coupa groups
# set-up data under core.common.read and each business area under one scope.
ACCOUNTING = "core.accounting.read"
COMMON = "core.common.read"
INVENTORY = "core.inventory.common.read"
RECEIVING = "core.inventory.receiving.read"
SCOPE_TABLE: dict[str, str] = {
    **dict.fromkeys(("accounts", "account_groups", "account_types"), ACCOUNTING),
    "account_validation_rules": ACCOUNTING,
    **dict.fromkeys(("addresses", "announcements", "attachments", "business_groups"), COMMON),
    **dict.fromkeys(("commodities", "commodity_translations", "currencies"), COMMON),
    **dict.fromkeys(("data_file_sources", "departments", "exchange_rates"), COMMON),
    **dict.fromkeys(("lookups", "lookup_values", "payment_terms", "shipping_terms"), COMMON),
    **dict.fromkeys(("tax_registrations", "uoms"), COMMON),
    **dict.fromkeys(("asset_tags", "default_receiving_locations"), INVENTORY),
    **dict.fromkeys(("inspection_codes", "warehouses"), INVENTORY),
    **dict.fromkeys(("receipt_requests", "receiving_transactions"), RECEIVING),
    "asn/headers": "core.inventory.asn.read",
    "inventory": "core.inventory.balance.read",
    "return_requests": "core.inventory.return_to_supplier.read",
    "items": "core.catalog.read",
    "supplier_items": "core.catalog.read",
    "tasks": "core.project.read",
    "contracts/templates": "core.contracts_template.read",
    "quote_requests": "core.sourcing.read",
    "quote_responses": "core.sourcing.response.read",
    "coupa_pay/invoices": "core.pay.payments.read",  # R39's only Coupa Pay read scope
    "payables/external/payables": "core.payables.external.read",
    "payables/order/reconciliation_lines": "core.payables.order.read",
}

DECIMAL_SIZE = re.compile(r"decimal\((\d+),(\d+)\)")
SCALARS = frozenset({"integer", "boolean", "string", "number"})


class BuildError(Exception):
    """R39 and the sandbox's decisions above disagree; the message says what to fix."""


@dataclass
class ApiFile:
    """One R39 file: ``$ref`` names resolve within the file that uses them."""

    key: str  # short name that qualifies its definitions, e.g. "Invoicing"
    definitions: dict[str, JsonDict]
    read_scopes: set[str]
    collections: dict[str, str]  # path -> definition of the array it answers


def api_key(file: Path) -> str:
    """``0168-R39_Invoicing_API.json`` -> ``Invoicing``."""
    return re.sub(r"^\d+-R39_|_API$", "", file.stem)


def load(source: Path) -> list[ApiFile]:
    """Read every R39 file, keeping only collections, definitions and read scopes."""
    files = sorted(source.glob("*.json"))
    if not files:
        raise BuildError(f"no R39 *.json files in {source}")
    apis = []
    for file in files:
        doc = json.loads(file.read_text(encoding="utf-8"))
        scopes = {
            scope
            for security in doc.get("securityDefinitions", {}).values()
            for scope in security.get("scopes", {})
            if scope.endswith(".read")
        }
        collections = {}
        for path, ops in doc.get("paths", {}).items():
            schema = ops.get("get", {}).get("responses", {}).get("200", {}).get("schema", {})
            target = ref_name(schema.get("items", {}))
            if "{" not in path and schema.get("type") == "array" and target is not None:
                collections[path.strip("/")] = target
        apis.append(ApiFile(api_key(file), doc.get("definitions", {}), scopes, collections))
    return apis


def ref_name(spec: JsonDict) -> str | None:
    """Definition a ``$ref`` points at."""
    ref = spec.get("$ref")
    return ref.rsplit("/", 1)[-1] if isinstance(ref, str) else None


def singular(word: str) -> str:
    """English singular of a resource name's last word (entities -> entity)."""
    if word.endswith("ies"):
        return word[:-3] + "y"
    return word[:-1] if word.endswith("s") else word


def read_scope(path: str, api: ApiFile, known: set[str]) -> str:
    """The scope a resource needs: the table, else a naming rule over R39's scopes.

    Table entries must be read scopes of some R39 file (``known``).

    The rule: the file's only read scope; else ``core.<name>.read`` for the path or its
    singular (``/`` as ``.``, ``inventory_`` as ``inventory.``), or for the longest
    scope name that prefixes it (``budget_line_adjustments`` -> ``core.budget.read``).
    """
    if path in SCOPE_TABLE:
        if SCOPE_TABLE[path] not in known:
            raise BuildError(f"SCOPE_TABLE: {SCOPE_TABLE[path]} is not an R39 read scope")
        return SCOPE_TABLE[path]
    if len(api.read_scopes) == 1:
        return next(iter(api.read_scopes))
    name = path.replace("/", ".").replace("inventory_", "inventory.")
    forms = [name, singular(name), f"inventory.{name}", f"inventory.{singular(name)}"]
    middles = {scope[len("core.") : -len(".read")] for scope in api.read_scopes}
    for form in forms:
        if form in middles:
            return f"core.{form}.read"
    prefixes = [m for m in middles for form in forms[::2] if form.startswith((f"{m}_", f"{m}."))]
    if prefixes:
        return f"core.{max(prefixes, key=len)}.read"
    raise BuildError(f"no read scope for /{path} in {api.key}; add it to SCOPE_TABLE")


def type_spec(api: ApiFile, owner: str, name: str, prop: JsonDict) -> str:
    """A property's type in the model's notation (see ``coupa_sandbox.schema``).

    Coupa sends full datetimes for date columns too, except a ``*-day-month`` date,
    which is a day and a month. A ``$ref`` is qualified by its file (``@Invoicing/X``).
    """
    kind = prop.get("type")
    target = ref_name(prop)
    if target is not None:
        if target not in api.definitions:
            raise BuildError(f"{api.key}/{owner}.{name}: unknown $ref {target}")
        return f"@{api.key}/{target}"
    if kind == "array":
        return f"[{type_spec(api, owner, name, prop.get('items', {}))}]"
    if kind == "number":
        size = DECIMAL_SIZE.fullmatch(prop.get("format", ""))
        return f"number({size[1]},{size[2]})" if size else "number"
    if kind == "string" and prop.get("format") in ("datetime", "date"):
        return "string" if name.endswith("day-month") else "datetime"
    return str(kind) if kind in SCALARS else "object"


@dataclass(frozen=True)
class Resource:
    """A served collection."""

    name: str
    path: str
    api: ApiFile
    definition: str


def resources(apis: list[ApiFile]) -> list[Resource]:
    """Every R39 collection the sandbox serves, named after its path."""
    found: dict[str, Resource] = {}
    for api in apis:
        for path, definition in sorted(api.collections.items()):
            if path in NOT_SERVED:
                continue
            name = path.replace("/", "_")
            if name in found:
                raise BuildError(f"/{path} is defined in more than one R39 file")
            props = api.definitions[definition].get("properties", {})
            if props.get("id", {}).get("type") != "integer":
                raise BuildError(f"/{path}: {definition} has no integer id")
            found[name] = Resource(name, path, api, definition)
    stale = sorted((set(NOT_SERVED) | set(SCOPE_TABLE)) - {p for a in apis for p in a.collections})
    if stale:
        raise BuildError(f"in NOT_SERVED/SCOPE_TABLE but not an R39 collection: {stale}")
    return [found[name] for name in sorted(found)]


def line_collections(served: list[Resource]) -> dict[str, JsonDict]:
    """Name, owner and field of each line collection, checked against R39."""
    definition = {r.name: (r.api, r.definition) for r in served}
    out: dict[str, JsonDict] = {}
    for owner, field in LINE_COLLECTIONS:
        if owner not in definition:
            raise BuildError(f"line owner {owner} is not a resource or earlier line collection")
        api, owner_def = definition[owner]
        prop = api.definitions[owner_def].get("properties", {}).get(field, {})
        target = ref_name(prop.get("items", {})) if prop.get("type") == "array" else None
        if target is None:
            raise BuildError(f"{owner_def}.{field} is not an array of a definition")
        head = singular(owner)
        tail = field.replace("-", "_")
        name = tail if tail.startswith(f"{head}_") else f"{head}_{tail}"
        definition[name] = (api, target)
        out[name] = {"owner": owner, "field": field, "definition": f"{api.key}/{target}"}
    return out


def definitions(apis: list[ApiFile]) -> dict[str, dict[str, str]]:
    """Every definition of every file, as property -> type spec (``Api/Name`` keys)."""
    return {
        f"{api.key}/{name}": {
            prop: type_spec(api, name, prop, spec)
            for prop, spec in sorted(definition.get("properties", {}).items())
        }
        for api in apis
        for name, definition in sorted(api.definitions.items())
    }


def reachable(model: dict[str, dict[str, str]], roots: list[str]) -> set[str]:
    """Definitions a record shows: its own and its associations' (rendered one level deep)."""
    seen: set[str] = set()
    frontier = list(roots)
    for _ in range(2):
        frontier = [key for key in frontier if key not in seen]
        seen.update(frontier)
        frontier = [
            spec.strip("[]")[1:]
            for key in frontier
            for spec in model[key].values()
            if spec.strip("[]").startswith("@")
        ]
    return seen


def build(source: Path) -> JsonDict:
    """The whole model: served resources (R39's, then Compass's), lines, definitions."""
    apis = load(source)
    served = resources(apis)
    lines = line_collections(served)
    model = {**definitions(apis), **documented.DEFINITIONS}
    known = set().union(*(api.read_scopes for api in apis))
    extra = {name: dict(spec) for name, spec in sorted(documented.RESOURCES.items())}
    for name, spec in [
        *extra.items(),
        ("custom objects", {"scope": documented.CUSTOM_OBJECT_SCOPE}),
    ]:
        if name in {r.name for r in served}:
            raise BuildError(f"{name} is an R39 collection now; drop it from documented.py")
        if spec["scope"] not in known:
            raise BuildError(f"documented.py: {name} scope {spec['scope']} is not an R39 scope")
    roots = [f"{r.api.key}/{r.definition}" for r in served]
    roots += [spec["definition"] for spec in extra.values()] + [documented.CUSTOM_OBJECT]
    keep = reachable(model, [*roots, *(line["definition"] for line in lines.values())])
    return {
        "resources": {
            **{
                r.name: {
                    "path": r.path,
                    "definition": f"{r.api.key}/{r.definition}",
                    "scope": read_scope(r.path, r.api, known),
                }
                for r in served
            },
            **extra,
        },
        "custom_object": {
            "definition": documented.CUSTOM_OBJECT,
            "scope": documented.CUSTOM_OBJECT_SCOPE,
        },
        "lines": lines,
        "definitions": {key: model[key] for key in sorted(keep)},
    }


def render(model: JsonDict) -> str:
    """Stable text, one definition per line, so rebuilding gives small diffs."""
    parts = []
    for section, entries in model.items():
        rows = ",\n".join(
            f"  {json.dumps(k)}: {json.dumps(v, sort_keys=True)}" for k, v in entries.items()
        )
        parts.append(f"{json.dumps(section)}: {{\n{rows}\n}}")
    return "{\n" + ",\n".join(parts) + "\n}\n"


def main(argv: list[str] | None = None) -> int:
    """CLI entry point; exit 1 from ``--check`` means ``resources.json`` is stale."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--source", type=Path, default=DEFAULT_SOURCE, help="R39 JSON dir")
    parser.add_argument("--check", action="store_true", help="fail if the model is stale")
    args = parser.parse_args(argv)
    try:
        text = render(build(args.source))
    except BuildError as exc:
        print(f"build_resources: {exc}", file=sys.stderr)
        return 2
    current = OUTPUT.read_text(encoding="utf-8") if OUTPUT.exists() else ""
    if args.check:
        if text != current:
            print(
                "build_resources: coupa_sandbox/resources.json is out of date; "
                "run python -m coupa_sandbox.build_resources",
                file=sys.stderr,
            )
            return 1
        return 0
    OUTPUT.write_text(text, encoding="utf-8")
    print(f"build_resources: {'unchanged' if text == current else 'written'} {OUTPUT.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
