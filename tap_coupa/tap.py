"""tap-coupa: the settings, the stream registry and the resources all streams share."""

from __future__ import annotations

import gc
import io
import ipaddress
import json
import logging
import re
import ssl
import sys
import typing as t
from concurrent.futures import ThreadPoolExecutor
from functools import cached_property
from importlib.metadata import PackageNotFoundError, version
from urllib.parse import urlsplit

import httpx
from singer_sdk import Tap
from singer_sdk import typing as th
from singer_sdk.exceptions import ConfigValidationError

from tap_coupa.auth import CoupaAPIKeyAuthenticator, CoupaAuthenticator, CoupaOAuthAuthenticator
from tap_coupa.client import query_key
from tap_coupa.errors import CoupaConfigError, CoupaError
from tap_coupa.http import CoupaHTTP, Params
from tap_coupa.pagination import MAX_PAGE_SIZE
from tap_coupa.ratelimit import RateLimiter
from tap_coupa.records import infer_properties, parse_instant
from tap_coupa.streams import load_schema, property_names, registry, stream_types
from tap_coupa.writer import BatchingWriter

if t.TYPE_CHECKING:
    import pendulum

    from tap_coupa.client import CoupaStream

try:
    __version__ = version("tap-coupa")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0"

RETURN_OBJECTS = ("limited", "shallow")
#: Just under Coupa's 25 requests/s; with a burst well under Coupa's 20 the instance's
#: bucket never empties.
DEFAULT_RATE = 24.8
DEFAULT_BURST = 10
#: Pages in flight: rate x response time (about a second for full invoices), plus slack
#: for slow responses that hold up the ones behind them.
DEFAULT_CONCURRENCY = 48
#: How many upcoming streams have their first page requested ahead of their turn.
PREFETCH_STREAMS = 8

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
)


class TapCoupa(Tap):
    """Singer tap for Coupa's REST API."""

    name = "tap-coupa"
    message_writer_class = BatchingWriter

    config_jsonschema = th.PropertiesList(
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
        th.Property(
            "client_secret", th.StringType(), secret=True, description="OAuth2 client secret."
        ),
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
            "page_size",
            th.IntegerType(minimum=1, maximum=MAX_PAGE_SIZE),
            default=MAX_PAGE_SIZE,
            description="Records per request (Coupa's limit, 1-50).",
        ),
        th.Property(
            "request_timeout",
            th.NumberType(exclusive_minimum=0),
            default=300,
            description="Seconds before a request is abandoned and retried.",
        ),
        th.Property(
            "max_retries",
            th.IntegerType(minimum=0),
            default=8,
            description="Retries of a failing request (429, 5xx, network, bad body).",
        ),
        th.Property(
            "max_requests_per_second",
            th.NumberType(exclusive_minimum=0),
            default=DEFAULT_RATE,
            description="Client-side rate limit, shared by all streams (Coupa allows 25).",
        ),
        th.Property(
            "rate_limit_burst",
            th.IntegerType(minimum=1),
            default=DEFAULT_BURST,
            description="Requests that may go out at once before pacing starts.",
        ),
        th.Property(
            "max_concurrency",
            th.IntegerType(minimum=1, maximum=256),
            default=DEFAULT_CONCURRENCY,
            description="Requests in flight at once; 1 fetches sequentially.",
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
            description="Allow a plain http:// base_url that is not on loopback.",
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
            "stream_options",
            th.ObjectType(additional_properties=STREAM_OPTIONS),
            description=(
                "Per-stream fields, filters and return_object, keyed by stream name, e.g. "
                '{"invoices": {"filters": {"status": "approved"}}}.'
            ),
        ),
    ).to_dict()

    def __init__(self, *args: t.Any, **kwargs: t.Any) -> None:
        super().__init__(*args, **kwargs)
        self._heap_frozen = False
        # httpx logs every request at INFO; the per-stream summaries say what matters.
        for noisy in ("httpx", "httpcore"):
            logging.getLogger(noisy).setLevel(logging.WARNING)
        if self.config.get("base_url"):
            self.origin  # noqa: B018 - validate early, with a clear message
            self.start_date  # noqa: B018
            self._check_stream_options()
        self._check_state()
        self._check_catalog()

    @classmethod
    def invoke(cls, *args: t.Any, **kwargs: t.Any) -> None:
        """Run the CLI; a known failure ends in one error line and exit code 1.

        Bugs still show their traceback. Any STATE already emitted stays valid:
        bookmarks only move when a stream's scan completes.
        """
        for name in ("state", "catalog"):
            if (file := kwargs.get(name)) is not None:
                kwargs[name] = _checked_json(name, file)
        try:
            super().invoke(*args, **kwargs)
        except ConfigValidationError as exc:
            for line in exc.errors or [str(exc)]:
                cls.logger.error("Invalid config: %s", line)
            sys.exit(1)
        except CoupaError as exc:
            cls.logger.error("%s", exc)
            sys.exit(1)

    # Settings ------------------------------------------------------------------

    @cached_property
    def origin(self) -> str:
        """``scheme://host[:port]`` of the instance, validated."""
        raw = str(self.config["base_url"]).strip()
        parts = urlsplit(raw)
        if parts.scheme not in {"http", "https"} or not parts.hostname:
            msg = (
                f"base_url {raw!r} needs a scheme and a host, e.g. "
                "https://acme.coupahost.com; fix base_url."
            )
            raise CoupaConfigError(msg)
        if parts.scheme == "http" and not (
            _is_loopback(parts.hostname) or self.config.get("allow_http")
        ):
            msg = (
                f"base_url {raw!r} is plain http: credentials would travel unencrypted. "
                "Use https, or set allow_http: true for a trusted network."
            )
            raise CoupaConfigError(msg)
        return f"{parts.scheme}://{parts.netloc}"

    @property
    def api_base(self) -> str:
        """The instance's ``/api`` root (``base_url`` may or may not include it)."""
        path = urlsplit(str(self.config["base_url"]).strip()).path.rstrip("/")
        path = re.sub(r"/api$", "", path)
        return f"{self.origin}{path}/api"

    @cached_property
    def start_date(self) -> pendulum.DateTime | None:
        """``start_date`` as an instant."""
        value = self.config.get("start_date")
        if not value:
            return None
        try:
            return parse_instant(str(value))
        except ValueError:
            msg = (
                f"start_date {value!r} is not an ISO-8601 date-time; use e.g. 2024-01-01T00:00:00Z."
            )
            raise CoupaConfigError(msg) from None

    @property
    def page_size(self) -> int:
        """Records per request."""
        return int(self.config.get("page_size", MAX_PAGE_SIZE))

    @property
    def decimal_strings(self) -> bool:
        """Emit decimals as x-singer.decimal strings instead of JSON numbers."""
        return self.config.get("decimal_format") == "string"

    @property
    def max_concurrency(self) -> int:
        """Requests in flight at once."""
        return int(self.config.get("max_concurrency", DEFAULT_CONCURRENCY))

    @property
    def scopes(self) -> list[str]:
        """Configured scopes, or the read scopes of the selected streams."""
        configured = self.config.get("scopes")
        if isinstance(configured, str):
            return [scope for scope in re.split(r"[\s,]+", configured) if scope]
        if configured:
            return [str(scope) for scope in configured]
        streams: t.Iterable[CoupaStream] = self.streams.values()  # type: ignore[assignment]
        wanted = {s.scope for s in streams if s.selected or s.has_selected_descendents}
        return sorted(wanted)

    def _check_state(self) -> None:
        """Refuse a state file that is not ours or not well-formed, before any request."""
        bookmarks = self.state.get("bookmarks", {})
        known = set(registry())
        unknown = sorted(set(bookmarks) - known)
        if unknown and not set(bookmarks) & known:
            msg = (
                f"The state file's bookmarks ({', '.join(unknown[:5])}) are not tap-coupa "
                "streams: it belongs to another tap. Pass this tap's state, or none."
            )
            raise CoupaConfigError(msg)
        for name in unknown:
            self.logger.warning("State has a bookmark for unknown stream %r; ignoring it.", name)
        for name in set(bookmarks) & known:
            value = bookmarks[name].get("replication_key_value")
            progress = bookmarks[name].get("progress")
            problem = None
            if value is not None and not _is_instant(value):
                problem = f"has replication_key_value {value!r}, not an ISO-8601 date-time"
            elif progress is not None and not _valid_progress(progress):
                problem = f"has an invalid progress entry {progress!r}"
            if problem:
                msg = (
                    f"State for stream {name!r} {problem}; fix it, or remove that stream's "
                    "bookmark to re-extract it."
                )
                raise CoupaConfigError(msg)

    def _check_catalog(self) -> None:
        """Refuse a catalog naming streams or properties this tap does not have."""
        catalog = self.input_catalog
        if catalog is None:
            return
        specs = registry()
        unknown = sorted(
            entry.tap_stream_id for entry in catalog.streams if entry.tap_stream_id not in specs
        )
        if unknown:
            msg = (
                f"The catalog names unknown streams {unknown[:5]}; regenerate it with "
                "tap-coupa --discover (or meltano select)."
            )
            raise CoupaConfigError(msg)
        for entry in catalog.streams:
            known = property_names(entry.tap_stream_id)
            named = set((entry.schema.properties or {}) if entry.schema else {})
            named |= {crumb[1] for crumb in entry.metadata if len(crumb) > 1}
            if extra := sorted(named - known):
                msg = (
                    f"The catalog's {entry.tap_stream_id!r} stream names unknown properties "
                    f"{extra[:5]}; regenerate the catalog with tap-coupa --discover."
                )
                raise CoupaConfigError(msg)

    def _check_stream_options(self) -> None:
        unknown = set(self.config.get("stream_options") or {}) - set(registry())
        if unknown:
            msg = (
                f"stream_options names unknown streams {sorted(unknown)}; use stream names "
                "from --discover (e.g. invoices, purchase_orders)."
            )
            raise CoupaConfigError(msg)

    def stream_params(self, stream: str, required: t.Sequence[str]) -> Params:
        """Query parameters from ``stream_options`` (fields, filters, return_object).

        A ``fields`` list always gets the ``required`` keys (id, replication key): the
        scan orders and resumes by id, and the bookmark needs the replication key.
        """
        options = (self.config.get("stream_options") or {}).get(stream) or {}
        params: list[tuple[str, str]] = list((options.get("filters") or {}).items())
        if fields := options.get("fields"):
            if isinstance(fields, list):
                missing = [query_key(k) for k in required if query_key(k) not in fields]
                fields = [*missing, *fields]
            params.append(("fields", fields if isinstance(fields, str) else json.dumps(fields)))
        if return_object := options.get("return_object"):
            params.append(("return_object", return_object))
        return params

    # Shared resources ----------------------------------------------------------

    @cached_property
    def client(self) -> httpx.Client:
        """The token endpoint's client (API requests use one client per thread)."""
        return self.new_client()

    @cached_property
    def tls(self) -> ssl.SSLContext:
        """TLS verification as httpx does it by default, set up once (loading CAs is slow)."""
        return httpx.create_ssl_context()

    def new_client(self) -> httpx.Client:
        """A keep-alive client with the tap's timeouts and headers, never redirected."""
        timeout = float(self.config.get("request_timeout", 300))
        return httpx.Client(
            verify=self.tls,
            timeout=httpx.Timeout(timeout, connect=min(timeout, 30.0)),
            limits=httpx.Limits(max_connections=2, max_keepalive_connections=2),
            headers={"User-Agent": self.config.get("user_agent") or f"tap-coupa/{__version__}"},
            follow_redirects=False,
        )

    @cached_property
    def authenticator(self) -> CoupaAuthenticator:
        """OAuth2 client credentials, or the legacy API key when no client_id is set."""
        if self.config.get("client_id"):
            if not self.config.get("client_secret"):
                msg = "client_id is set but client_secret is not; set client_secret."
                raise CoupaConfigError(msg)
            return CoupaOAuthAuthenticator(
                token_url=self.config.get("token_url") or f"{self.origin}/oauth2/token",
                client_id=str(self.config["client_id"]),
                client_secret=str(self.config["client_secret"]),
                scopes=self.scopes,
                client=self.client,
                timeout=float(self.config.get("request_timeout", 300)),
            )
        if self.config.get("api_key"):
            return CoupaAPIKeyAuthenticator(api_key=str(self.config["api_key"]))
        msg = "No credentials: set client_id and client_secret (or the legacy api_key)."
        raise CoupaConfigError(msg)

    @cached_property
    def http(self) -> CoupaHTTP:
        """The transport every stream shares."""
        return CoupaHTTP(
            api_base=self.api_base,
            authenticator=self.authenticator,
            limiter=RateLimiter(
                float(self.config.get("max_requests_per_second", DEFAULT_RATE)),
                int(self.config.get("rate_limit_burst", DEFAULT_BURST)),
            ),
            new_client=self.new_client,
            max_retries=int(self.config.get("max_retries", 8)),
        )

    @cached_property
    def executor(self) -> ThreadPoolExecutor:
        """Worker threads that fetch and decode pages."""
        return ThreadPoolExecutor(self.max_concurrency, thread_name_prefix="tap-coupa")

    def freeze_heap(self) -> None:
        """Exempt the startup heap from garbage collection, once, before records flow.

        Schemas and the catalog are hundreds of thousands of long-lived objects; every
        full collection would rescan them while pages are decoded.
        """
        if self._heap_frozen:
            return
        self._heap_frozen = True
        gc.collect()
        gc.freeze()

    def prefetch_after(self, current: CoupaStream) -> None:
        """Request the first pages of the next few streams while ``current`` syncs."""
        order = [
            stream
            for stream in t.cast("dict[str, CoupaStream]", self.streams).values()
            if not stream.parent_stream_type
            and (stream.selected or stream.has_selected_descendents)
        ]
        if current in order:
            position = order.index(current) + 1
            for stream in order[position : position + PREFETCH_STREAMS]:
                stream.prefetch()

    def discover_streams(self) -> list[CoupaStream]:
        """One stream per Coupa collection in the registry.

        Offline by default (the schemas ship with the tap); with
        ``discover_custom_fields`` a discovery also types each stream's custom fields
        from a page of live records.
        """
        streams = [
            cls(tap=self, schema=load_schema(name, decimal_strings=self.decimal_strings))
            for name, cls in stream_types().items()
        ]
        if self.config.get("discover_custom_fields") and self.input_catalog is None:
            self._discover_custom_fields(streams)
        return streams

    def _discover_custom_fields(self, streams: list[CoupaStream]) -> None:
        top_level = [s for s in streams if not s.parent_stream_type]
        futures = {
            stream: self.executor.submit(
                self.http.get,
                stream.path,
                [("limit", str(self.page_size))],
                stream=stream.name,
                scope=stream.scope,
                stats=self.http.stats,
            )
            for stream in top_level
        }
        for stream, future in futures.items():
            try:
                records = future.result().records
            except CoupaError as exc:
                self.logger.warning("No custom fields discovered for %r: %s", stream.name, exc)
                continue
            found = infer_properties(
                r["custom-fields"] for r in records if isinstance(r.get("custom-fields"), dict)
            )
            if found:
                stream.schema["properties"]["custom-fields"]["properties"] = found
                self.logger.info("Stream %r: custom fields %s.", stream.name, ", ".join(found))


def _checked_json(name: str, file: t.IO[str]) -> t.IO[str]:
    """Read a --state/--catalog file now, so bad JSON or shape gets one clear line."""
    text = file.read()
    try:
        value = json.loads(text)
    except ValueError as exc:
        problem = f"is not valid JSON ({exc})"
    else:
        bookmarks = value.get("bookmarks", {}) if isinstance(value, dict) else None
        problem = ""
        if not isinstance(value, dict):
            problem = "is not a JSON object"
        elif name == "state" and not (
            isinstance(bookmarks, dict) and all(isinstance(b, dict) for b in bookmarks.values())
        ):
            problem = 'has no "bookmarks" object of per-stream objects'
    if problem:
        logging.getLogger("tap-coupa").error(
            "The --%s file %s; fix it, or run without it.", name, problem
        )
        sys.exit(1)
    return io.StringIO(text)


def _is_instant(value: object) -> bool:
    try:
        parse_instant(str(value))
    except ValueError:
        return False
    return True


def _valid_progress(progress: object) -> bool:
    if not isinstance(progress, dict):
        return False
    after_id, since, started = (progress.get(k) for k in ("after_id", "since", "started_at"))
    return (
        (after_id is None or (isinstance(after_id, int) and not isinstance(after_id, bool)))
        and (since is None or _is_instant(since))
        and (started is None or _is_instant(started))
    )


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


if __name__ == "__main__":
    TapCoupa.cli()
