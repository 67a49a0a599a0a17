"""What the streams of one sync share: transport, credentials, workers, scheduling.

Streams receive this object, not the tap: it is everything they need and nothing
more. Each piece is built on first use, so ``--discover`` and ``--about`` never open a
connection or ask for credentials.
"""

from __future__ import annotations

import atexit
import contextlib
import gc
import logging
import threading
import typing as t
import weakref
from functools import cached_property

import httpx

from tap_coupa import ahead, transport
from tap_coupa.auth import CoupaAPIKeyAuthenticator, CoupaAuthenticator, CoupaOAuthAuthenticator
from tap_coupa.errors import CoupaConfigError, CoupaError
from tap_coupa.http import CoupaHTTP
from tap_coupa.projection import render
from tap_coupa.query import listing_params, stream_params
from tap_coupa.ratelimit import RateLimiter
from tap_coupa.scheduler import MemoryBudget, Scheduler

if t.TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

    from tap_coupa.projection import Spec
    from tap_coupa.settings import Settings

logger = logging.getLogger("tap-coupa")

#: Longest request URL sent: RFC 9110 (4.1) asks every server to take 8000 octets.
MAX_URL_LENGTH = 8000
#: Room kept for what the scan adds to a stream's query (ordering, id bounds, paging,
#: the bookmark filter).
SCAN_PARAMS_LENGTH = 200


class Scanned(t.Protocol):
    """A stream whose scan can start before its turn."""

    name: str

    def start(self) -> None:
        """Start the scan now (once)."""


class _Clients:
    """The clients a sync made, closed together: when it ends, or at the latest at exit.

    Left to the garbage collector, each socket would be closed only as the interpreter
    ends, with a ``ResourceWarning`` printed for it (Meltano runs taps with
    ``PYTHONWARNINGS=once``). Held weakly: a client dropped by its thread was closed
    (``CoupaHTTP.release``), and the exit hook keeps no sync alive.
    """

    def __init__(self) -> None:
        self._open: weakref.WeakSet[httpx.Client] = weakref.WeakSet()
        self._lock = threading.Lock()
        self._at_exit = False

    def add(self, client: httpx.Client) -> None:
        with self._lock:
            if not self._at_exit:
                self._at_exit = True
                atexit.register(self.close)
            self._open.add(client)

    def close(self) -> None:
        """Close them all; a request still out, which nothing waits for, fails."""
        with self._lock:
            clients = list(self._open)
            self._open.clear()
        for client in clients:
            client.close()


class SyncResources:
    """The shared pieces of one sync, built lazily from the settings."""

    def __init__(
        self,
        settings: Settings,
        *,
        scopes: Callable[[], Sequence[str]],
        sync_order: Callable[[], Sequence[Scanned]],
        full_table: frozenset[str] = frozenset(),
    ) -> None:
        self.settings = settings
        #: Streams the input catalog forces to FULL_TABLE.
        self.full_table = full_table
        #: The read scopes the selected streams need (asked when a token is minted).
        self._scopes = scopes
        #: The selected top-level streams, in the order the SDK syncs them.
        self._sync_order = sync_order
        self._heap_frozen = False
        self._minted_ahead: CoupaOAuthAuthenticator | None = None
        #: Streams whose projection did not fit in a URL (warned about once).
        self._unprojected: set[str] = set()
        self._clients = _Clients()

    def connect(self) -> httpx.Client:
        """A client as ``transport.client`` makes them, closed by ``close`` (or at exit)."""
        settings = self.settings
        client = transport.client(
            timeout=settings.request_timeout,
            user_agent=settings.user_agent,
            direct=ahead.loopback_hosts(settings.origin, settings.token_url),
        )
        self._clients.add(client)
        return client

    def close(self) -> None:
        """Close every connection (the workers', the token's): the sync is over."""
        self._clients.close()

    @cached_property
    def authenticator(self) -> CoupaAuthenticator:
        """OAuth2 client credentials, or the legacy API key when no client_id is set.

        A token minted ahead (``mint_ahead``) is taken if it has exactly the scopes
        the selected streams need.
        """
        settings = self.settings
        if settings.client_id:
            if not settings.client_secret:
                msg = "client_id is set but client_secret is not; set client_secret."
                raise CoupaConfigError(msg)
            scopes = settings.scopes or self._scopes()
            ahead = self._minted_ahead
            if ahead is not None and ahead.oauth_scopes == " ".join(scopes):
                return ahead
            return self._oauth(settings.client_id, settings.client_secret, scopes)
        if settings.api_key:
            return CoupaAPIKeyAuthenticator(api_key=settings.api_key)
        msg = "No credentials: set client_id and client_secret (or the legacy api_key)."
        raise CoupaConfigError(msg)

    def _oauth(
        self, client_id: str, client_secret: str, scopes: Sequence[str]
    ) -> CoupaOAuthAuthenticator:
        settings = self.settings
        return CoupaOAuthAuthenticator(
            token_url=settings.token_url,
            client_id=client_id,
            client_secret=client_secret,
            scopes=scopes,
            client=self.connect(),
            timeout=settings.request_timeout,
            max_retries=settings.max_retries,
        )

    def mint_ahead(self, scopes: Sequence[str]) -> None:
        """Start minting a token for ``scopes`` now, on a thread, while start-up goes on.

        Coupa takes a round trip or more to mint a token, and the first request needs
        one: with the scopes the input catalog selects known early, that wait overlaps
        building the streams. The token is used only if the selected streams turn out
        to need exactly these scopes (see ``authenticator``). A refusal is kept by the
        authenticator and reported by the first request; any other failure here is
        dropped, and the token minted at the first request.
        """
        settings = self.settings
        client_id, secret = settings.client_id, settings.client_secret
        if not (client_id and secret and scopes):
            return
        ahead = self._minted_ahead = self._oauth(client_id, secret, settings.scopes or scopes)

        def mint() -> None:
            # The lock held while minting makes the first request's headers() wait for it.
            with contextlib.suppress(Exception):
                ahead.headers()

        threading.Thread(target=mint, name="tap-coupa-token", daemon=True).start()

    @cached_property
    def limiter(self) -> RateLimiter:
        """The one rate limit every request of the sync keeps to.

        Its burst starts once the first token is there, on the first request's thread:
        meanwhile the streams' scans get ready to send.
        """
        settings, authenticator = self.settings, self.authenticator

        def ready() -> None:
            # A failure is the requests' own: each reports it when it asks for headers.
            with contextlib.suppress(CoupaError):
                authenticator.headers()

        return RateLimiter(settings.max_requests_per_second, settings.rate_limit_burst, ready)

    @cached_property
    def http(self) -> CoupaHTTP:
        """The transport every stream shares."""
        settings = self.settings
        return CoupaHTTP(
            api_base=settings.api_base,
            authenticator=self.authenticator,
            limiter=self.limiter,
            connect=self.connect,
            max_retries=settings.max_retries,
        )

    @cached_property
    def scheduler(self) -> Scheduler:
        """The request slots every stream shares, ordered as the streams are written."""
        budget = MemoryBudget(self.settings.prefetch_memory_mb * 1024 * 1024)
        scheduler = Scheduler(
            self.settings.max_concurrency, self.limiter, budget, on_exit=self.http.release
        )
        scheduler.plan([stream.name for stream in self._sync_order()])
        return scheduler

    def params(
        self,
        stream: str,
        required: Sequence[str],
        *,
        path: str = "",
        projection: Callable[[], Spec] | None = None,
    ) -> list[tuple[str, str]]:
        """The stream's query parameters: ``stream_options``, and the catalog's projection.

        A projection that would make the URL too long is left out (logged once per
        stream): the stream is then read whole, as without ``request_fields``.
        """
        options = self._options(stream)
        if projection is None or options.get("fields") or not self.settings.projects(stream):
            return stream_params(options, required)
        projected = stream_params(options, required, render(projection()))
        url = httpx.URL(f"{self.settings.api_base}/{path}", params=projected)
        length = len(str(url)) + SCAN_PARAMS_LENGTH
        if length <= MAX_URL_LENGTH:
            return projected
        if stream not in self._unprojected:
            self._unprojected.add(stream)
            extra = options.get("extra_fields")
            logger.warning(
                "Stream %r: the fields projection of the catalog's selection would make "
                "a %d-character URL (limit %d); requesting every field instead%s. Deselect "
                "properties, or set stream_options.%s.fields.",
                stream,
                length,
                MAX_URL_LENGTH,
                f", without the extra_fields {extra} (Coupa sends them only by name)"
                if extra
                else "",
                stream,
            )
        return stream_params(options, required)

    def listing_params(self, stream: str, key: str | None) -> list[tuple[str, str]]:
        """The query listing the stream's ids: its filters and ``start_date``, ids only."""
        start = self.settings.start_date
        since = start.in_timezone("UTC").isoformat() if start else None
        return listing_params(self._options(stream), key, since)

    def _options(self, stream: str) -> Mapping[str, t.Any]:
        return self.settings.stream_options.get(stream) or {}

    def freeze_heap(self) -> None:
        """Exempt the startup heap from garbage collection, once, before records flow.

        Schemas and the catalog are hundreds of thousands of long-lived objects; every
        full collection would rescan them while pages are decoded. No collection first:
        start-up leaves next to no cyclic garbage, and one full pass over that heap
        (~0.1 s) would delay the first request. The collector, paused for start-up
        (``TapCoupa.invoke``), runs again from here on.
        """
        if self._heap_frozen:
            return
        self._heap_frozen = True
        gc.freeze()
        gc.enable()

    def writing(self, current: Scanned) -> None:
        """``current`` is being written: the scans of every stream after it start too."""
        self.scheduler.emitting(current.name)
        order = list(self._sync_order())
        if current in order:
            for stream in order[order.index(current) + 1 :]:
                stream.start()
