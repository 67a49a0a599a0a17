"""The first token, asked for before the SDK is imported.

Importing the SDK takes 0.3-0.8 s and Coupa answers a token request in a round trip or
more; a sync's first request waits for both. So the command (``__main__``) starts the
token request on a thread from the --config and --catalog files alone (``start``), and
imports the SDK meanwhile. The authenticator takes the answer (``take``) when it would
mint its first token, if it would ask for exactly the same (URL and form); otherwise
the answer is dropped and it mints as before. An answer taken is read as its own would
be: a refusal is reported the same way, and Coupa is not asked twice.

Only the checks that guard the secret come first, the same the settings make
(``origin``): the token is asked for over https, or plain http on loopback or with
``allow_http``. The rest of the input is checked once the SDK is there, so a run
refused for it may have asked Coupa for a token, never for data. Anything unusual
(``--config ENV``, a file that cannot be read, or a pipe the SDK must read, a
discovery) and nothing is asked here.

No SDK import here, nor in what this imports.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import stat
import threading
import typing as t
from concurrent.futures import Future
from urllib.parse import urlsplit

import httpx
import msgspec

from tap_coupa import SCHEMAS, transport

if t.TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

#: Compass names no scope for custom objects: the one every Coupa client may have.
CUSTOM_OBJECT_SCOPE = "core.common.read"
#: Options after which the command does not sync (or not from a catalog file).
_NOT_A_SYNC = frozenset({"--discover", "--test", "--about", "--version", "--help", "--format"})


def origin(url: str, *, allow_http: bool, name: str = "base_url") -> str:
    """``scheme://host[:port]`` of the URL setting ``name``; plain http only where safe.

    Raises ``ValueError`` with the one-line problem and its fix.
    """
    parts = urlsplit(url)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        example = "https://acme.coupahost.com" + ("/oauth2/token" if name == "token_url" else "")
        msg = f"{name} {url!r} needs a scheme and a host, e.g. {example}; fix {name}."
        raise ValueError(msg)
    if parts.scheme == "http" and not (_is_loopback(parts.hostname) or allow_http):
        msg = (
            f"{name} {url!r} is plain http: credentials would travel unencrypted. "
            "Use https, or set allow_http: true for a trusted network."
        )
        raise ValueError(msg)
    return f"{parts.scheme}://{parts.netloc}"


def loopback_hosts(*urls: str | None) -> frozenset[str]:
    """The URLs' hosts that are on loopback, as httpx's URL patterns write them.

    Their plain http is allowed because it never leaves the machine: no proxy from the
    environment (HTTP_PROXY, ALL_PROXY) may carry it, with the secret and the token.
    """
    hosts = {urlsplit(url).hostname for url in urls if url}
    return frozenset(
        f"[{host}]" if ":" in host else host for host in hosts if host and _is_loopback(host)
    )


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def parse_scopes(value: object) -> tuple[str, ...] | None:
    """A list, or one string separated by spaces or commas; None to derive them.

    A list may come as its JSON text (Meltano's string kind passes what ``meltano
    config set`` was given), and its items split too (the SDK splits an environment
    variable at commas only). Raises ``ValueError`` for JSON text that is not a list.
    """
    if isinstance(value, str) and value.lstrip().startswith("["):
        try:
            value = json.loads(value)
        except ValueError:
            msg = f"scopes {value!r} is not a JSON list; use e.g. core.common.read core.user.read."
            raise ValueError(msg) from None
    items = [value] if isinstance(value, str) else value if isinstance(value, list) else []
    return tuple(s for item in items for s in re.split(r"[\s,]+", str(item)) if s) or None


def token_url(setting: object, instance: str) -> str:
    """Where tokens are asked for: the ``token_url`` setting, or (blank) the instance's own."""
    return str(setting or "").strip() or f"{instance}/oauth2/token"


def token_form(client_id: str, client_secret: str, scopes: str) -> dict[str, str]:
    """The form of Coupa's token request (``scopes`` separated by spaces)."""
    form = {
        "grant_type": "client_credentials",
        "client_id": client_id,
        "client_secret": client_secret,
    }
    if scopes:
        form["scope"] = scopes
    return form


def custom_object_stream(name: str) -> str:
    """The stream of the custom object the ``custom_objects`` setting calls ``name``."""
    return f"custom_object_{name}"


class _Answer:
    """The token request sent ahead: what it asked, and its answer once it came."""

    asked: tuple[str, dict[str, str]] | None = None
    answer: Future[httpx.Response | None] | None = None


def start(args: Sequence[str]) -> None:
    """Ask for the token on a thread if ``args`` are a sync's (see the module's doc)."""
    answer: Future[httpx.Response | None] = Future()
    _Answer.answer = answer
    transport.quiet()  # before the SDK sets up logging: its answer would be logged

    def ask() -> None:
        try:
            answer.set_result(_ask(args))
        except httpx.HTTPError as exc:  # the request failed: the authenticator's first try
            answer.set_exception(exc)
        except Exception:  # then the authenticator asks, and says why
            answer.set_result(None)

    threading.Thread(target=ask, name="tap-coupa-token-ahead", daemon=True).start()


def take(url: str, form: Mapping[str, str]) -> httpx.Response | None:
    """The answer to the request sent ahead, once, if it asked for ``url`` with ``form``.

    Waits for it if it is still on its way (bounded by its ``request_timeout``); None
    if nothing was sent or it asked for something else: the authenticator then asks
    itself. Otherwise it is the authenticator's first try, whatever came of it: a 429
    or 5xx is returned, and the request's ``httpx.HTTPError`` raised, for its retries
    (and their waits, Retry-After) to follow as they would its own.
    """
    answer, _Answer.answer = _Answer.answer, None
    if answer is None:
        return None
    error = answer.exception()
    asked, _Answer.asked = _Answer.asked, None
    if asked != (url, dict(form)):
        return None
    if error is not None:
        raise error
    return answer.result()


def _ask(args: Sequence[str]) -> httpx.Response | None:
    """Send the token request ``args`` call for, if any; the answer is read whole."""
    files = _files(args)
    if files is None:
        return None
    configs, catalog_path = files
    config: dict[str, t.Any] = {}
    for path in configs:
        with open(path, "rb") as file:
            config.update(msgspec.json.decode(file.read()))
    client_id, secret = config.get("client_id"), config.get("client_secret")
    if not (client_id and secret and config.get("base_url")):
        return None
    allow_http = config.get("allow_http") is True
    instance = origin(str(config["base_url"]).strip(), allow_http=allow_http)
    url = token_url(config.get("token_url"), instance)
    origin(url, allow_http=allow_http, name="token_url")
    scopes = parse_scopes(config.get("scopes")) or _catalog_scopes(catalog_path, config)
    if not scopes:
        return None
    form = token_form(str(client_id), str(secret), " ".join(scopes))
    timeout = float(config.get("request_timeout") or transport.REQUEST_TIMEOUT)
    _Answer.asked = (url, form)
    direct = loopback_hosts(instance, url)
    with transport.client(
        timeout=timeout, user_agent=config.get("user_agent"), direct=direct
    ) as client:
        response = client.post(url, data=form, headers={"Accept": "application/json"})
        response.read()
    return response


def _files(args: Sequence[str]) -> tuple[list[str], str] | None:
    """The --config files and the --catalog file of a sync; None for any other command."""
    configs: list[str] = []
    catalogs: list[str] = []
    rest = list(args)
    while rest:
        arg = rest.pop(0)
        option, _, value = arg.partition("=")
        if option in _NOT_A_SYNC:
            return None
        if option in {"--config", "--catalog", "--state"}:
            if not value:
                if not rest:
                    return None
                value = rest.pop(0)
            {"--config": configs, "--catalog": catalogs}.get(option, []).append(value)
        else:
            return None  # not an option the command knows: it will say so
    if not configs or "ENV" in configs or len(catalogs) != 1:
        return None
    if not all(map(_regular, [*configs, *catalogs])):
        return None
    return configs, catalogs[0]


def _regular(path: str) -> bool:
    """Whether ``path`` is a regular file: a pipe or FIFO can be read once, by the SDK.

    Read here first, it would leave the SDK nothing (``--catalog /dev/stdin``,
    ``<(jq ...)``), or a FIFO whose writer is gone, to wait on forever.
    """
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except (OSError, ValueError):
        return False


class _Metadata(msgspec.Struct):
    breadcrumb: list[str] = msgspec.field(default_factory=list)
    metadata: msgspec.Raw = msgspec.Raw(b"{}")


class _Entry(msgspec.Struct):
    tap_stream_id: str
    metadata: list[_Metadata] = msgspec.field(default_factory=list)


class _Catalog(msgspec.Struct):
    streams: list[_Entry]


def _catalog_scopes(path: str, config: Mapping[str, t.Any]) -> list[str]:
    """The read scopes of the streams the catalog selects, as the tap derives them.

    Selection is the SDK's rule for a stream (its metadata at the empty breadcrumb);
    should this ever differ from the tap's, the authenticator asks for its own token.
    """
    scope_of = {
        name: spec["scope"]
        for name, spec in json.loads((SCHEMAS / "streams.json").read_text()).items()
    }
    for custom in config.get("custom_objects") or []:
        scope_of[custom_object_stream(custom["name"])] = CUSTOM_OBJECT_SCOPE
    with open(path, "rb") as file:
        catalog = msgspec.json.decode(file.read(), type=_Catalog)
    selected = set()
    # An id's last entry, and an entry's last stream-level metadata: the ones the SDK keeps.
    for name, entry in {entry.tap_stream_id: entry for entry in catalog.streams}.items():
        roots = [m.metadata for m in entry.metadata if m.breadcrumb == []]
        if not roots or _selected(msgspec.json.decode(roots[-1])):  # none: selected
            selected.add(name)
    return sorted({scope_of[name] for name in selected if name in scope_of})


def _selected(metadata: Mapping[str, t.Any]) -> bool:
    """The SDK's selection rule for one breadcrumb without a parent."""
    if metadata.get("inclusion") == "unsupported":
        return False
    if metadata.get("inclusion") == "automatic":
        return True
    if metadata.get("selected") is not None:
        return bool(metadata["selected"])
    return bool(metadata.get("selected-by-default"))
