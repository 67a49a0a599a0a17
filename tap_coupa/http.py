"""The one HTTP transport every stream shares: httpx keep-alive, pacing, retries.

Each worker thread keeps its own ``httpx.Client`` connection to the instance alive
across streams; every request first takes a token from the shared rate limiter, so
concurrency never turns into a 429 storm. Transient failures (429, 5xx, resets,
timeouts, truncated or non-JSON bodies) are retried with ``backoff``; anything else
fails fast with one line naming the stream, status, path and a body snippet.

A 404 is the end of a collection only when it is Coupa's "no results" answer. Any
other 404 is retried, then fails, unless it answers a scan's first request, where it
may mean the resource does not exist on the instance (logged, not fatal).
"""

from __future__ import annotations

import email.utils
import logging
import threading
import time
import typing as t
from dataclasses import dataclass, field

import httpcore  # httpx's own transport
import httpx
import msgspec

from tap_coupa import rawjson, retry
from tap_coupa.errors import CoupaAPIError, CoupaError, CoupaRetriableError, redact, snippet
from tap_coupa.rawjson import Record

if t.TYPE_CHECKING:
    from tap_coupa.auth import CoupaAuthenticator
    from tap_coupa.ratelimit import RateLimiter

Params = t.Sequence[tuple[str, str]]

#: Coupa's answer to a query without results: "No results match your search criteria".
NO_RESULTS = "no results"


def is_no_results(answer: str) -> bool:
    """Whether a 404's body is Coupa's "No results match your search criteria"."""
    return NO_RESULTS in answer.lower()


logger = logging.getLogger("tap-coupa")

#: Retries of a request answered 429, beyond ``max_retries``.
THROTTLED_RETRIES = 8

#: The most one read of a response takes (httpcore reads 64 KiB). A page of full
#: invoices is ~1.3 MB: in 64 KiB reads, each went through h11's copies and took the
#: interpreter lock back from the thread decoding. In 256 KiB reads a scan of them took
#: 6-7% less CPU. 1 MiB reads saved 7-13% but, with 48 slow responses arriving at
#: once, raised peak RSS by 60-110 MB (each read allocates its size).
READ_BYTES = 1 << 18
httpcore.HTTP11Connection.READ_NUM_BYTES = READ_BYTES


@dataclass
class RequestStats:
    """Counters for the progress log and the benchmark."""

    requests: int = 0
    retries: int = 0
    throttled: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, *, requests: int = 0, retries: int = 0, throttled: int = 0) -> None:
        """Count thread-safely."""
        with self._lock:
            self.requests += requests
            self.retries += retries
            self.throttled += throttled


@dataclass
class Page:
    """One page and the server's clock when it was produced.

    Worker threads leave an offset page's ``body`` undecoded: decoding holds the GIL,
    so it is done once, by the thread that scans the stream, and pages in flight stay
    compact bytes.
    """

    records: list[Record]
    server_time: float | None
    #: The body of Coupa's 404: its "no results" answer, or a first page's unknown resource.
    not_found: str = ""
    body: bytes | None = None
    #: Not requested after all: the scan no longer needed it (see ``IdScan``).
    skipped: bool = False
    #: Bytes of the body as received (what holding the page costs).
    size: int = 0

    def json(self) -> list[Record]:
        """The decoded records (what the paginator reads, as of an SDK response)."""
        return self.records


def parse_records(
    body: bytes, *, stream: str, path: str, raw: rawjson.Decoding = False
) -> list[Record]:
    """Decode Coupa's bare JSON array; raises ``msgspec.DecodeError`` on broken JSON.

    ``raw`` keeps each record one level deep, or is the stream's reader (see ``rawjson``).
    A value nested deeper than the decoder follows (~1,000 levels) fails at once: Coupa
    would send it again.
    """
    try:
        records = rawjson.decode(body, raw=raw)
    except RecursionError:
        msg = (
            f"Stream {stream!r}: /api/{path} sent a value nested too deep to decode "
            "(over ~1,000 levels), not a Coupa record; check base_url."
        )
        raise CoupaAPIError(msg) from None
    if isinstance(records, list):
        return records
    if isinstance(records, dict) and "errors" in records:
        msg = f"Stream {stream!r}: /api/{path} answered 200 with errors: {snippet(str(records))!r}."
    else:
        msg = (
            f"Stream {stream!r}: /api/{path} returned {rawjson.kind(records)}, "
            "not a JSON array; check base_url."
        )
    raise CoupaAPIError(msg)


@dataclass
class _Call:
    """One logical request across its retries."""

    stream: str
    path: str
    params: Params
    scope: str
    stats: RequestStats
    decode: bool
    raw: rawjson.Decoding
    missing_ok: bool = False
    cancelled: t.Callable[[], bool] | None = None
    reauthenticated: bool = False
    #: Tries that failed: answered 429, and otherwise.
    throttled: int = 0
    failures: int = 0


class CoupaHTTP:
    """Shared transport: one limiter, one authenticator, one retry policy.

    Each thread gets its own keep-alive client: httpx's connection pool serialises
    every request and response close on one lock, and with dozens of download threads
    that lock, not the network, became the busiest thing in the process.
    """

    def __init__(
        self,
        *,
        api_base: str,
        authenticator: CoupaAuthenticator,
        limiter: RateLimiter,
        connect: t.Callable[[], httpx.Client],
        max_retries: int,
    ) -> None:
        self.api_base = api_base.rstrip("/")
        self.auth = authenticator
        self.limiter = limiter
        self._connect = connect
        self._local = threading.local()
        self.stats = RequestStats()
        self.max_retries = max_retries
        self._fetch = retry.retrying(
            self._attempt,
            CoupaRetriableError,
            max_retries=max_retries,
            on_backoff=self._on_backoff,
            on_giveup=self._on_giveup,
            giveup=lambda exc: getattr(exc, "exhausted", True),
        )

    @property
    def connection(self) -> httpx.Client:
        """The calling thread's client (one connection, reused)."""
        client: httpx.Client | None = getattr(self._local, "client", None)
        if client is None:
            client = self._local.client = self._connect()
        return client

    def release(self) -> None:
        """Close the calling thread's client: the thread ends (see ``Scheduler``).

        Dropped unclosed, its socket would only be closed by the garbage collector,
        with a ``ResourceWarning``, and stay open until then.
        """
        client: httpx.Client | None = getattr(self._local, "client", None)
        if client is not None:
            del self._local.client
            client.close()

    def get(
        self,
        path: str,
        params: Params,
        *,
        stream: str,
        scope: str,
        stats: RequestStats,
        decode: bool = True,
        raw: rawjson.Decoding = False,
        missing_ok: bool = False,
        cancelled: t.Callable[[], bool] | None = None,
    ) -> Page:
        """GET ``/api/<path>``, retrying transient failures; ``decode=False`` keeps the body.

        ``raw`` decodes records one level deep (see ``rawjson``). ``missing_ok`` reads any
        404 as an empty page: only a scan's first request may meet a missing resource.

        A request still waiting for the rate limiter when ``cancelled()`` turns true is
        not sent; its page comes back empty and marked ``skipped``.
        """
        call = _Call(stream, path, params, scope, stats, decode, raw, missing_ok, cancelled)
        return self._fetch(call)

    def _count(self, call: _Call, **counts: int) -> None:
        self.stats.add(**counts)
        call.stats.add(**counts)

    def _on_backoff(self, details: t.Any) -> None:
        call: _Call = details["args"][0]
        self._count(call, retries=1)
        logger.warning(
            "Retrying %s page of %s in %.1fs (attempt %d): %s",
            call.stream,
            call.path,
            details["wait"],
            details["tries"],
            details["exception"],
        )

    def _on_giveup(self, details: t.Any) -> None:
        call: _Call = details["args"][0]
        msg = (
            f"Stream {call.stream!r}: giving up on /api/{call.path} after "
            f"{details['tries']} attempts: {details['exception']}. Coupa kept failing; "
            "rerun later (state is safe to resume from) or raise max_retries."
        )
        raise CoupaError(msg) from None

    def _attempt(self, call: _Call) -> Page:
        """One try of ``call``; a failure says whether it leaves a retry.

        429s are counted apart, with ``THROTTLED_RETRIES`` more: they say the pace was
        too fast (the limiter slows down), not that the request fails. Counted with
        the rest, a request that met a few storms in a row on an instance stricter
        than Coupa's ended the sync.
        """
        try:
            return self._fetch_once(call)
        except CoupaRetriableError as exc:
            if exc.throttled:
                call.throttled += 1
            else:
                call.failures += 1
            exc.exhausted = (
                call.failures > self.max_retries
                or call.throttled > self.max_retries + THROTTLED_RETRIES
            )
            raise

    def _fetch_once(self, call: _Call) -> Page:
        url = f"{self.api_base}/{call.path}"
        if not self.limiter.acquire(call.cancelled):
            return Page([], None, skipped=True)
        sent_at = time.monotonic()
        # The token is taken at send time, not before waiting for the rate limiter: one
        # that expired in the queue would be rejected, and a second 401 is final.
        headers = {"Accept": "application/json", **self.auth.headers()}
        self._count(call, requests=1)
        client = self.connection
        try:
            with client.stream("GET", url, params=list(call.params), headers=headers) as r:
                response, body = r, _read(r)
        except httpx.TransportError as exc:
            if client.is_closed:  # the sync ended (``SyncResources.close``): nothing waits
                msg = f"Stream {call.stream!r}: the sync ended before /api/{call.path} answered."
                raise CoupaError(msg) from None
            if isinstance(exc, httpx.TimeoutException):
                msg = f"timed out ({type(exc).__name__})"
            else:  # redacted: h11 quotes a header value it refuses (a key with a space)
                msg = f"connection failed ({type(exc).__name__}: {redact(str(exc))})"
            raise CoupaRetriableError(msg) from None
        status = response.status_code
        if status == httpx.codes.OK:
            return self._decode(call, response, body)
        if status == httpx.codes.NOT_FOUND:
            answer = snippet(response.text, 120)
            # Some instances answer a JSON list query that matches nothing with a 404.
            if call.missing_ok or is_no_results(answer):
                return Page([], _server_time(response), not_found=answer or "404")
            msg = (
                f"HTTP 404 {answer!r} where the collection is known to exist, which is not Coupa's "
                "'No results match your search criteria' (the only 404 that ends a scan); "
                "if it persists, check that base_url reaches the instance directly"
            )
            raise CoupaRetriableError(msg)
        if status == httpx.codes.UNAUTHORIZED and not call.reauthenticated:
            call.reauthenticated = True
            if self.auth.invalidate(headers):
                msg = "HTTP 401: token rejected, minting a new one"
                raise CoupaRetriableError(msg, retry_after=0.0)
        if status == httpx.codes.TOO_MANY_REQUESTS:
            self.limiter.throttled(sent_at)
            self._count(call, throttled=1)
        if status in retry.RETRY_STATUSES:
            msg = f"HTTP {status} {snippet(response.text, 120)!r}"
            raise CoupaRetriableError(
                msg,
                retry_after=retry.retry_after(response.headers.get("Retry-After")),
                throttled=status == httpx.codes.TOO_MANY_REQUESTS,
            )
        raise CoupaAPIError(self._failure(call, response))

    def _decode(self, call: _Call, response: httpx.Response, body: bytes | None) -> Page:
        """Accept only JSON; an HTML maintenance page or XML is retried, then reported."""
        if body is None:
            content_type = snippet(response.headers.get("Content-Type", ""), 80)
            msg = (
                f"expected a JSON array but got {content_type or 'no content type'} "
                f"({snippet(response.text, 80)!r}); Coupa may be in maintenance, or "
                "base_url is not a Coupa instance"
            )
            raise CoupaRetriableError(msg)
        page = Page(records=[], server_time=_server_time(response), body=body, size=len(body))
        if call.decode:
            try:
                page.records = parse_records(
                    page.body or b"", stream=call.stream, path=call.path, raw=call.raw
                )
            except msgspec.DecodeError as exc:
                msg = f"invalid or truncated JSON ({exc})"
                raise CoupaRetriableError(msg) from None
            page.body = None
        return page

    @staticmethod
    def _failure(call: _Call, response: httpx.Response) -> str:
        status = response.status_code
        hint = {
            401: "check the credentials (client_id/client_secret or api_key)",
            403: (
                f"the token may lack the scope {call.scope}: grant it to the API client "
                "(and list it in scopes, if set), or deselect the stream"
            ),
        }.get(status, "check the stream's filters and fields settings")
        location = response.headers.get("Location")
        if 300 <= status < 400 and location:
            hint = (
                f"Coupa redirected to {snippet(location)!r}; set base_url to the instance's "
                "final URL (credentials are never forwarded)"
            )
        elif 300 <= status < 400:  # a 304 answers a conditional request the tap never sends
            hint = "no Coupa API answers so: set base_url to the instance itself, not a proxy"
        return (
            f"Stream {call.stream!r}: HTTP {status} from /api/{call.path}: "
            f"{snippet(response.text)!r}; {hint}."
        )


def _read(response: httpx.Response) -> bytes | None:
    """A 200 JSON body, read without caching it on the response (None for any other).

    httpx keeps each Response in a reference cycle with its stream, which only a full
    garbage collection frees; a body cached there would keep every page's megabyte
    alive until then. Other answers are small, and read as usual for their text.
    """
    if response.status_code == httpx.codes.OK and "json" in response.headers.get(
        "Content-Type", ""
    ):
        return b"".join(response.iter_bytes())
    response.read()
    return None


def _server_time(response: httpx.Response) -> float | None:
    """The instance's clock from the ``Date`` header, to bound bookmarks safely."""
    value = response.headers.get("Date")
    if not value:
        return None
    try:
        return email.utils.parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError):
        return None
