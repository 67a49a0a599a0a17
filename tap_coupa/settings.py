"""The tap's settings: their JSON Schema (defaults written once, here) and a typed view.

``SETTINGS_SCHEMA`` is what ``--about`` and Meltano show; ``Settings`` is what the rest
of the tap reads, checked once, each problem worded as one line with its fix.
"""

from __future__ import annotations

import math
import re
import typing as t
from dataclasses import dataclass
from urllib.parse import urlsplit

import pendulum
from singer_sdk import typing as th

from tap_coupa import ahead, transport
from tap_coupa.errors import CoupaConfigError, hide
from tap_coupa.instants import parse_instant
from tap_coupa.pagination import MAX_PAGE_SIZE
from tap_coupa.query import parse_fields

if t.TYPE_CHECKING:
    from collections.abc import Collection, Mapping

RETURN_OBJECTS = ("limited", "shallow")

STREAM_OPTIONS = th.ObjectType(
    th.Property(
        "fields",
        th.CustomType({"type": ["array", "object", "string"]}),
        description=(
            'Coupa "fields" projection, e.g. ["id","updated-at",{"supplier":["id","name"]}]. '
            "Keep id and the replication key in it."
        ),
    ),
    th.Property(
        "filters",
        th.ObjectType(additional_properties=th.StringType()),
        description=(
            'Extra Coupa filters, e.g. {"status": "approved", "supplier[name][contains]": "Acme"}.'
        ),
    ),
    th.Property(
        "return_object",
        th.StringType(allowed_values=list(RETURN_OBJECTS)),
        description="Coupa return_object: limited or shallow.",
    ),
    th.Property(
        "lookback_window",
        th.StringType(),
        description="This stream's lookback_window (ISO-8601 duration), instead of the global one.",
    ),
    th.Property(
        "request_fields",
        th.BooleanType(),
        description="This stream's request_fields (overrides the top-level setting).",
    ),
    th.Property(
        "extra_fields",
        th.ArrayType(th.StringType()),
        description=(
            "Fields the schema lacks (a newer release's, e.g. carbon_footprint_kg) to ask "
            "Coupa for by name; they arrive under extra-fields. Implies request_fields."
        ),
    ),
)

SETTINGS_SCHEMA: dict[str, t.Any] = th.PropertiesList(
    th.Property(
        "base_url",
        th.StringType(),
        required=True,
        description="The Coupa instance, e.g. https://acme.coupahost.com (/api optional).",
    ),
    th.Property(
        "token_url",
        th.StringType(),
        description="OAuth2 token endpoint. Default: <origin of base_url>/oauth2/token.",
    ),
    th.Property("client_id", th.StringType(), description="OAuth2 client id."),
    th.Property("client_secret", th.StringType(), secret=True, description="OAuth2 client secret."),
    th.Property(
        "scopes",
        th.CustomType({"type": ["array", "string"], "items": {"type": "string"}}),
        description=(
            "OAuth2 scopes: a list, or one string separated by spaces or commas. "
            "Default: the read scopes the selected streams need."
        ),
    ),
    th.Property(
        "api_key",
        th.StringType(),
        secret=True,
        description="Legacy X-COUPA-API-KEY; used only when client_id is not set.",
    ),
    th.Property(
        "start_date",
        th.DateTimeType(),
        description="Earliest updated-at to extract (ISO-8601). Default: everything.",
    ),
    th.Property(
        "bookmark_safety_margin",
        th.StringType(),
        default="PT5M",
        description=(
            "ISO-8601 duration the bookmark stays behind the instance's clock at the "
            "scan's start, so a record changed while its page was served (or under clock "
            "skew between Coupa's servers) is read again; it re-reads a few records, "
            "never loses one."
        ),
    ),
    th.Property(
        "lookback_window",
        th.StringType(),
        default="PT0S",
        description=(
            "ISO-8601 duration: each incremental sync re-reads records updated this long "
            "before the bookmark, to catch changes Coupa makes visible late (e.g. P7D). "
            "Per stream in stream_options."
        ),
    ),
    th.Property(
        "detect_deletes",
        th.ArrayType(th.StringType()),
        description=(
            'Streams whose deleted records are reported (["*"]: every selected top-level '
            "stream): each sync lists their ids (one request per 50 records) and emits "
            "a record with _sdc_deleted_at for every id gone since the last listing."
        ),
    ),
    th.Property(
        "delete_check_interval",
        th.StringType(),
        default="PT0S",
        description=(
            "ISO-8601 duration: list ids for detect_deletes at most this often (e.g. "
            "P1D); default every sync."
        ),
    ),
    th.Property(
        "page_size",
        th.IntegerType(minimum=1, maximum=MAX_PAGE_SIZE),
        default=MAX_PAGE_SIZE,
        description="Records per request (Coupa's limit, 1-50).",
    ),
    th.Property(
        "request_timeout",
        th.NumberType(exclusive_minimum=0),
        default=transport.REQUEST_TIMEOUT,
        description="Seconds before a request is abandoned and retried.",
    ),
    th.Property(
        "max_retries",
        th.IntegerType(minimum=0),
        default=8,
        description="Retries of a failing request (5xx, network, bad body); 429s get 8 more.",
    ),
    th.Property(
        "max_requests_per_second",
        th.NumberType(exclusive_minimum=0),
        # Just under Coupa's 25 requests/s: the instance's bucket never empties.
        default=24.8,
        description="Client-side rate limit, shared by all streams (Coupa allows 25).",
    ),
    th.Property(
        "rate_limit_burst",
        th.IntegerType(minimum=1),
        # Under Coupa's burst of 20: 4 to spare, 160 ms of arrival jitter at 25/s (the
        # limiter's burst starts only once the token is there, see resources.limiter).
        default=16,
        description="Requests that may go out at once before pacing starts.",
    ),
    th.Property(
        "max_concurrency",
        th.IntegerType(minimum=1, maximum=256),
        # Rate x response time (about a second for full invoices), plus slack for slow
        # responses that hold up the ones behind them.
        default=48,
        description="Requests in flight at once; 1 fetches sequentially.",
    ),
    th.Property(
        "prefetch_memory_mb",
        th.IntegerType(minimum=1),
        # Full invoices weigh ~1.4 MB a page: ~45 pages ahead, and peak RSS stays
        # under 300 MB with the stream being written.
        default=64,
        description=(
            "Megabytes of pages that streams not yet written may download ahead of "
            "their turn (the stream being written is not limited by it)."
        ),
    ),
    th.Property(
        "user_agent",
        th.StringType(),
        description="User-Agent header. Default: tap-coupa/<version>.",
    ),
    th.Property(
        "allow_http",
        th.BooleanType(),
        default=False,
        description="Allow a plain http:// base_url or token_url that is not on loopback.",
    ),
    th.Property(
        "decimal_format",
        th.StringType(allowed_values=["number", "string"]),
        default="number",
        description=(
            "How decimals are emitted. number: JSON numbers with every digit (SDK SQL "
            "targets load NUMERIC). string: exact text declared as x-singer.decimal "
            "with R39's precision and scale (SDK SQL targets create DECIMAL(p, s); "
            "for targets that would load numbers as floats)."
        ),
    ),
    th.Property(
        "discover_custom_fields",
        th.BooleanType(),
        default=False,
        description=(
            "On --discover, type each stream's custom fields from a page of live "
            "records (one request per stream). Off: discovery is offline."
        ),
    ),
    th.Property(
        "custom_objects",
        th.ArrayType(
            th.ObjectType(
                th.Property("name", th.StringType(), required=True),
                th.Property(
                    "object_id", th.CustomType({"type": ["string", "integer"]}), required=True
                ),
            )
        ),
        description=(
            "The instance's custom objects to extract, e.g. "
            '[{"name": "vehicles", "object_id": "12"}]: each becomes stream '
            "custom_object_<name>, read from /api/custom_objects/<object_id>/object_instances."
        ),
    ),
    th.Property(
        "request_fields",
        th.BooleanType(),
        # Off: Compass does not say what an instance does with a field name it does
        # not know, and a full selection is too long a URL for the widest streams.
        default=False,
        description=(
            "Send Coupa a fields projection built from the catalog's selected properties "
            "(and the selected child streams'), so deselected properties are never "
            "transferred and an administrator's default API response filter is "
            "overridden. A stream whose projection would make the URL longer than 8000 "
            "characters is requested without one (logged once)."
        ),
    ),
    th.Property(
        "stream_options",
        th.ObjectType(additional_properties=STREAM_OPTIONS),
        description=(
            "Per-stream fields, filters, return_object, request_fields and extra_fields, "
            "keyed by stream name, e.g. "
            '{"invoices": {"filters": {"status": "approved"}}}.'
        ),
    ),
    th.Property(
        # The SDK's setting of the activate-version capability its Tap advertises; the
        # SDK's streams read it, but the SDK (0.54) does not declare it for a tap.
        "emit_activate_version_messages",
        th.BooleanType(),
        default=False,
        description=(
            "Send ACTIVATE_VERSION for each FULL_TABLE stream and its child streams, so "
            "a target that supports it replaces the table: rows gone from Coupa go too."
        ),
    ),
).to_dict()
#: Settings never shown: not in errors, not in snippets of bodies that echo them.
SECRET_SETTINGS = tuple(
    name for name, spec in SETTINGS_SCHEMA["properties"].items() if spec.get("secret")
)


def hide_secrets(config: Mapping[str, t.Any]) -> None:
    """Register the secret settings' values for redaction (``errors.hide``), as given."""
    hide(*(config.get(name) for name in SECRET_SETTINGS))


@dataclass(frozen=True)
class CustomObject:
    """One entry of the ``custom_objects`` setting (see ``custom_objects.py``)."""

    name: str
    object_id: str

    @property
    def stream(self) -> str:
        """The stream's name."""
        return ahead.custom_object_stream(self.name)

    @property
    def path(self) -> str:
        """The records' path under ``/api``."""
        return f"custom_objects/{self.object_id}/object_instances"


#: Each setting's default, read from the schema so it is written in one place.
DEFAULTS: dict[str, t.Any] = {
    name: prop["default"]
    for name, prop in SETTINGS_SCHEMA["properties"].items()
    if "default" in prop
}

#: Settings whose JSON Schema type is number (not integer).
NUMBER_SETTINGS = tuple(
    name for name, spec in SETTINGS_SCHEMA["properties"].items() if "number" in spec["type"]
)


def numbers_from_text(config: Mapping[str, t.Any]) -> dict[str, t.Any]:
    """``config`` with the number settings given as text read as numbers.

    An environment variable is text, and so is what Meltano passes for them: its
    ``decimal`` kind makes a ``Decimal`` it cannot write as JSON, so meltano.yml
    declares them ``string``. The SDK converts integers and booleans, not numbers.
    """
    numbers: dict[str, float] = {}
    for name in NUMBER_SETTINGS:
        if isinstance(text := config.get(name), str):
            try:
                number = float(text)
            except ValueError:
                number = math.nan
            if not math.isfinite(number):
                msg = f"{name} {text!r} is not a number; use e.g. {DEFAULTS[name]}."
                raise CoupaConfigError(msg)
            numbers[name] = number
    return {**config, **numbers}


@dataclass(frozen=True)
class Settings:
    """The configuration as the tap uses it: validated, typed, defaults applied."""

    origin: str
    api_base: str
    start_date: pendulum.DateTime | None
    bookmark_safety_margin: pendulum.Duration
    lookback_window: pendulum.Duration
    #: Streams whose deletes are detected ("*": every top-level stream).
    detect_deletes: frozenset[str]
    delete_check_interval: pendulum.Duration
    #: Per-stream lookback windows from ``stream_options``.
    lookbacks: Mapping[str, pendulum.Duration]
    page_size: int
    request_timeout: float
    max_retries: int
    max_requests_per_second: float
    rate_limit_burst: int
    max_concurrency: int
    prefetch_memory_mb: int
    user_agent: str | None
    decimal_strings: bool
    discover_custom_fields: bool
    request_fields: bool
    stream_options: Mapping[str, Mapping[str, t.Any]]
    custom_objects: tuple[CustomObject, ...]
    #: Where tokens are asked for (the setting, or the instance's own).
    token_url: str
    client_id: str | None
    client_secret: str | None
    api_key: str | None
    scopes: tuple[str, ...] | None

    @classmethod
    def parse(
        cls, config: Mapping[str, t.Any], streams: Collection[str], listed: Collection[str]
    ) -> Settings:
        """Check ``config`` (one clear error per problem) and apply the defaults.

        ``streams`` are every stream's name; ``listed`` the top-level ones whose ids a
        delete check can list (the custom objects' streams are added here).
        """
        hide_secrets(config)
        value = {**DEFAULTS, **{k: v for k, v in config.items() if v is not None}}
        if not value.get("base_url"):
            msg = "base_url is not set; set it to the Coupa instance, e.g. https://acme.coupahost.com."
            raise CoupaConfigError(msg)
        base_url = str(value["base_url"]).strip()
        allow_http = bool(value["allow_http"])
        origin = _origin(base_url, allow_http=allow_http)
        token_url = ahead.token_url(value.get("token_url"), origin)
        _origin(token_url, allow_http=allow_http, name="token_url")  # the secret goes there
        if not str(value.get("api_key") or "").isascii():  # httpx's error would quote it
            msg = (
                "api_key has characters other than ASCII, which no HTTP header carries; "
                "check that it was copied whole from Coupa."
            )
            raise CoupaConfigError(msg)
        path = re.sub(r"/api$", "", urlsplit(base_url).path.rstrip("/"))
        options = _stream_options(value.get("stream_options"))
        custom_objects = _custom_objects(value.get("custom_objects"), streams)
        if unknown := sorted(set(options) - {*streams, *(c.stream for c in custom_objects)}):
            msg = (
                f"stream_options names unknown streams {unknown}; use stream names "
                "from --discover (e.g. invoices, purchase_orders)."
            )
            raise CoupaConfigError(msg)
        for stream, option in options.items():
            _check_fields(stream, (option or {}).get("fields"))
            _check_extra_fields(stream, (option or {}).get("extra_fields"))
        return cls(
            origin=origin,
            api_base=f"{origin}{path}/api",
            start_date=_start_date(value.get("start_date")),
            bookmark_safety_margin=_duration(
                "bookmark_safety_margin", value["bookmark_safety_margin"]
            ),
            lookback_window=_duration("lookback_window", value["lookback_window"]),
            detect_deletes=_detect_deletes(
                value.get("detect_deletes"), {*listed, *(c.stream for c in custom_objects)}
            ),
            delete_check_interval=_duration(
                "delete_check_interval", value["delete_check_interval"]
            ),
            lookbacks={
                stream: _duration(
                    f"stream_options.{stream}.lookback_window", option["lookback_window"]
                )
                for stream, option in options.items()
                if (option or {}).get("lookback_window")
            },
            page_size=int(value["page_size"]),
            request_timeout=float(value["request_timeout"]),
            max_retries=int(value["max_retries"]),
            max_requests_per_second=float(value["max_requests_per_second"]),
            rate_limit_burst=int(value["rate_limit_burst"]),
            max_concurrency=int(value["max_concurrency"]),
            prefetch_memory_mb=int(value["prefetch_memory_mb"]),
            user_agent=value.get("user_agent"),
            decimal_strings=value["decimal_format"] == "string",
            discover_custom_fields=bool(value["discover_custom_fields"]),
            request_fields=bool(value["request_fields"]),
            stream_options=options,
            custom_objects=custom_objects,
            token_url=token_url,
            client_id=_text(value.get("client_id")),
            client_secret=_text(value.get("client_secret")),
            api_key=_text(value.get("api_key")),
            scopes=_scopes(value.get("scopes")),
        )

    def detects_deletes(self, stream: str) -> bool:
        """Whether the stream's deletes are detected (top-level streams only)."""
        return stream in self.detect_deletes or "*" in self.detect_deletes

    def lookback(self, stream: str) -> pendulum.Duration:
        """The stream's lookback window (its own, or the global one)."""
        return self.lookbacks.get(stream, self.lookback_window)

    def projects(self, stream: str) -> bool:
        """Whether ``stream`` asks for a projection built from the catalog."""
        option = self.stream_options.get(stream) or {}
        if option.get("extra_fields"):
            return True
        chosen = option.get("request_fields")
        return self.request_fields if chosen is None else bool(chosen)

    def __repr__(self) -> str:
        """Name the instance only: the dataclass default would print the secrets."""
        return f"Settings(api_base={self.api_base!r})"


def _text(value: object) -> str | None:
    return str(value) if value else None


def _origin(url: str, *, allow_http: bool, name: str = "base_url") -> str:
    try:
        return ahead.origin(url, allow_http=allow_http, name=name)
    except ValueError as exc:
        raise CoupaConfigError(str(exc)) from None


def _start_date(value: object) -> pendulum.DateTime | None:
    if not value:
        return None
    try:
        return parse_instant(str(value))
    except ValueError:
        msg = f"start_date {value!r} is not an ISO-8601 date-time; use e.g. 2024-01-01T00:00:00Z."
        raise CoupaConfigError(msg) from None


def _detect_deletes(value: object, listed: Collection[str]) -> frozenset[str]:
    if isinstance(value, str):  # one name, as an environment variable may give it
        value = [value]
    names = frozenset(str(name) for name in t.cast("list[object]", value or []))
    if unknown := sorted(names - {"*", *listed}):
        msg = (
            f"detect_deletes names {unknown[:5]}, not top-level streams whose ids can be "
            "listed; use names from --discover (child streams and purchase order revisions "
            'are not checked: see the README), or ["*"].'
        )
        raise CoupaConfigError(msg)
    return names


def _check_fields(stream: str, fields: object) -> None:
    if not fields:
        return
    try:
        parse_fields(fields)
    except ValueError as exc:
        msg = (
            f"stream_options.{stream}.fields: {exc}; give a Coupa projection such as "
            '["invoice_number", {"supplier": ["id", "name"]}].'
        )
        raise CoupaConfigError(msg) from None


def _stream_options(value: object) -> dict[str, t.Any]:
    """Each stream's options, as an object of known option names (or null)."""
    if value is not None and not isinstance(value, dict):
        msg = (
            f"stream_options {value!r} is not an object; give one keyed by stream name, "
            'e.g. {"invoices": {"filters": {"status": "approved"}}}.'
        )
        raise CoupaConfigError(msg)
    options = dict(value or {})
    known = STREAM_OPTIONS.to_dict()["properties"]
    for stream, option in options.items():
        if option is not None and not isinstance(option, dict):
            msg = (
                f"stream_options.{stream} {option!r} is not an object; give its options, "
                'e.g. {"filters": {"status": "approved"}}.'
            )
            raise CoupaConfigError(msg)
        if unknown := sorted(set(option or {}) - set(known)):
            msg = f"stream_options.{stream} has unknown options {unknown}; use {', '.join(known)}."
            raise CoupaConfigError(msg)
    return options


def _custom_objects(value: object, streams: Collection[str]) -> tuple[CustomObject, ...]:
    """Each custom object once, with a name that makes a stream name."""
    found: dict[str, CustomObject] = {}
    for entry in value if isinstance(value, list) else []:
        name = str(entry.get("name", "")) if isinstance(entry, dict) else ""
        object_id = str(entry.get("object_id", "")).strip() if isinstance(entry, dict) else ""
        custom = CustomObject(name, object_id)
        if not re.fullmatch(r"[a-z][a-z0-9_]*", name) or not object_id or "/" in object_id:
            msg = (
                f"custom_objects: {entry!r} needs a name of lowercase letters, digits and _ "
                'and the object\'s id, e.g. {"name": "vehicles", "object_id": "12"}.'
            )
            raise CoupaConfigError(msg)
        if custom.stream in found or custom.stream in streams:
            msg = f"custom_objects: {name!r} is named twice; give each object its own name."
            raise CoupaConfigError(msg)
        found[custom.stream] = custom
    return tuple(found.values())


def _check_extra_fields(stream: str, names: object) -> None:
    if names is None or (isinstance(names, list) and all(isinstance(n, str) for n in names)):
        return
    msg = (
        f"stream_options.{stream}.extra_fields {names!r} is not a list of field names; "
        'give e.g. ["carbon_footprint_kg"].'
    )
    raise CoupaConfigError(msg)


def _duration(name: str, value: object) -> pendulum.Duration:
    """An ISO-8601 duration setting (``PT5M``, ``P7D``)."""
    try:
        parsed = pendulum.parse(str(value))
    except (ValueError, pendulum.parsing.exceptions.ParserError):
        parsed = None
    if not isinstance(parsed, pendulum.Duration) or parsed.total_seconds() < 0:
        msg = f"{name} {value!r} is not an ISO-8601 duration; use e.g. PT5M or P7D."
        raise CoupaConfigError(msg)
    return parsed


def _scopes(value: object) -> tuple[str, ...] | None:
    try:
        return ahead.parse_scopes(value)
    except ValueError as exc:
        raise CoupaConfigError(str(exc)) from None
