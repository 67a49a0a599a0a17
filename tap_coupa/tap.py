"""tap-coupa: the settings, the stream registry, discovery and the CLI."""

from __future__ import annotations

import atexit
import contextlib
import functools
import gc
import json
import logging
import os
import sys
import typing as t
from decimal import Decimal
from functools import cached_property
from pathlib import Path, PurePath

import msgspec
from singer_sdk import Tap
from singer_sdk.exceptions import ConfigValidationError, MappingError
from singer_sdk.helpers._catalog import _pop_deselected_schema as pop_deselected_schema
from singer_sdk.helpers._classproperty import classproperty
from singer_sdk.plugin_base import PluginBase
from singer_sdk.singerlib import Catalog
from typing_extensions import override

from tap_coupa import ahead, custom_objects, transport
from tap_coupa.catalog import (
    LazyStreamMaps,
    catalog_file_problem,
    check_catalog,
    check_options,
    full_table_streams,
    read_catalog,
    selected_streams,
    synced_streams,
)
from tap_coupa.collection import CollectionStream
from tap_coupa.discovery import discover_custom_fields
from tap_coupa.errors import CoupaConfigError, CoupaError, redact
from tap_coupa.resources import SyncResources
from tap_coupa.settings import SETTINGS_SCHEMA, Settings, hide_secrets, numbers_from_text
from tap_coupa.state import check_state, state_file_problem
from tap_coupa.streams import load_schema, registry, stream_types
from tap_coupa.writer import BatchingWriter

#: --state and --catalog files: any JSON, numbers with a fraction as ``Decimal``.
JSON_FILE = msgspec.json.Decoder(float_hook=Decimal)

if t.TYPE_CHECKING:
    from collections.abc import Iterator
    from types import FrameType

    import click
    from singer_sdk.plugin_base import _ConfigInput

    from tap_coupa.client import CoupaStream


class TapCoupa(Tap):
    """Singer tap for Coupa's REST API."""

    name = "tap-coupa"
    message_writer_class = BatchingWriter
    config_jsonschema = SETTINGS_SCHEMA

    def __init__(self, *args: t.Any, **kwargs: t.Any) -> None:
        """As the SDK's, but the token is asked for before the stream maps are set up.

        The SDK reads the catalog before the settings are ready; here it is read
        (``read_catalog``, which leaves schemas for later) once they are. Once the
        state and catalog are checked, the token's minting starts on its own thread
        (``SyncResources.mint_ahead``): Coupa's round trip for it overlaps the rest of
        start-up, and a run refused for its input asks Coupa nothing. Number settings
        may be given as text (``numbers_from_text``), as Meltano passes them.
        """
        if isinstance(config := kwargs.get("config"), dict):
            kwargs["config"] = numbers_from_text(config)
        catalog = kwargs.pop("catalog", None)
        if isinstance(catalog, (str, PurePath)):
            catalog = json.loads(Path(catalog).read_text())
        mapper = kwargs.pop("setup_mapper", True)
        #: Streams the input catalog forces to FULL_TABLE (see ``full_table_streams``).
        self._full_table = full_table_streams(catalog) if isinstance(catalog, dict) else frozenset()
        super().__init__(*args, **kwargs, setup_mapper=False)
        transport.quiet()
        custom: list[str] = []
        if self.config.get("base_url"):
            custom = [c.stream for c in self.settings.custom_objects]  # validates early
        check_state(self.state, [*registry(), *custom], self.logger)
        if catalog is not None:
            self._input_catalog = catalog if isinstance(catalog, Catalog) else read_catalog(catalog)
            check_catalog(self._input_catalog, custom)
            if self.config.get("base_url"):
                check_options(self._input_catalog, self.settings.stream_options)
                if isinstance(catalog, dict):
                    self.resources.mint_ahead(self._catalog_scopes(self._input_catalog))
        if mapper:
            self.setup_mapper()

    @classmethod
    @override
    def invoke(  # type: ignore[override]
        cls,
        *,
        about: bool = False,
        about_format: str | None = None,
        config: _ConfigInput | None = None,
        state: t.IO[str] | None = None,
        catalog: t.IO[str] | None = None,
    ) -> None:
        """Run the CLI as the SDK's ``Tap.invoke``; a known failure is one error line, exit 1.

        Bugs still show their traceback. Any STATE already emitted stays valid:
        bookmarks only move when a stream's scan completes. The --state and --catalog
        files are read once (``_read_json``), not checked here and parsed again by the
        SDK: a whole catalog is megabytes, read before the first request.

        The garbage collector is paused until the first stream starts writing
        (``SyncResources.freeze_heap``): start-up builds the catalog, schemas and
        streams, hundreds of thousands of objects that live the whole run, and every
        collection pass meanwhile would rescan them (about a quarter of start-up).
        The heap is frozen again at exit: the interpreter's last collections would
        otherwise scan it all once more (about 0.2 s) before the process can end.
        """
        gc.disable()
        atexit.register(gc.freeze)
        super(Tap, cls).invoke(about=about, about_format=about_format)  # --about, as Tap.invoke
        cls.print_version(print_fn=cls.logger.info)
        if config:
            hide_secrets(config.config)  # a rejected value is quoted in its error
        try:
            tap = cls(
                config=config.config if config else {},
                state=_read_json("state", state) if state else None,
                catalog=_read_json("catalog", catalog) if catalog else None,
                parse_env_config=bool(config and config.parse_env),
                validate_config=True,
            )
            # Its connections are closed once the sync ends.
            with contextlib.closing(tap.resources), tap.deselected_in_one_line():
                tap.sync_all()
        except CoupaConfigError as exc:  # says which input (setting, state, catalog) it is
            cls.logger.error("%s", redact(str(exc)))
            sys.exit(1)
        except ConfigValidationError as exc:  # the settings' schema, as the SDK checks it
            for line in exc.errors or [str(exc)]:
                cls.logger.error("Invalid config: %s", redact(line))
            sys.exit(1)
        except MappingError as exc:
            cls.logger.error("Invalid stream_maps: %s; fix the stream_maps setting.", exc)
            sys.exit(1)
        except CoupaError as exc:
            cls.logger.error("%s", redact(str(exc)))
            sys.exit(1)
        except BrokenPipeError:
            # Nothing more reaches the target; the exit's flush of stdout would fail too.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            cls.logger.error(
                "The target stopped reading the tap's output (its stdin closed): the sync "
                "stopped. See why the target ended; rerun from the last STATE it received."
            )
            sys.exit(1)

    @classmethod
    @override
    def cb_config(cls, ctx: click.Context, param: click.Option, value: tuple[str, ...]) -> t.Any:
        """Read --config as the SDK does, but a missing or broken file is one error line."""
        for path in value:
            if path != "ENV" and (problem := _config_file_problem(path)):
                cls.logger.error(
                    "The --config file %s %s; pass a JSON object of settings.", path, problem
                )
                sys.exit(1)
        return super().cb_config(ctx, param, value)

    @classmethod
    @override
    def cb_discover(cls, ctx: click.Context, param: click.Option, value: bool) -> None:
        """Discover as the SDK does, but a bad setting or refused token is one error line.

        The SDK checks no settings for a discovery (its catalog is not dynamic), so
        ``Settings`` finds the problems; the SDK's discovery runs outside ``invoke``.
        """
        try:
            super().cb_discover(ctx, param, value)
        except (CoupaConfigError, CoupaError) as exc:  # a setting, or Coupa's refusal
            cls.logger.error("%s", redact(str(exc)))
            ctx.exit(1)

    @classproperty
    @override
    def _env_var_config(cls) -> dict[str, t.Any]:  # noqa: N805
        """The SDK's settings from the environment, with the number settings as numbers.

        The SDK parses integers, booleans, arrays and objects, but leaves a number's
        text for the schema to reject.
        """
        return numbers_from_text(super()._env_var_config)

    @contextlib.contextmanager
    def deselected_in_one_line(self) -> Iterator[None]:
        """Name the deselected streams in one line, where the SDK's sync logs one each.

        A catalog from discovery or Meltano lists every stream: the SDK's line per
        deselected stream was a hundred lines of every run's log.
        """
        if self.input_catalog is not None:  # read from stream-level metadata: no masks yet
            synced = set(synced_streams(self.input_catalog))
            if skipped := sum(name not in synced for name in self.streams):
                self.logger.info("Skipping %d deselected streams.", skipped)
        quiet = _Without("Skipping deselected stream")
        self.logger.addFilter(quiet)
        try:
            yield
        finally:
            self.logger.removeFilter(quiet)

    @override
    def setup_mapper(self) -> None:
        """Register each stream with the stream maps when the stream first needs them.

        The SDK registers every stream of the catalog up front, copying and resolving
        each schema: with ~110 streams, a large part of every sync's start-up. Here a
        stream's maps are built when it first asks for them: as its scan starts, ahead
        of its turn, while the first stream's requests are already out. Discovery (no
        input catalog) registers them all.
        """
        PluginBase.setup_mapper(self)  # the mapper itself, without the SDK's registration
        mapper, catalog = self.mapper, self.catalog
        if self.input_catalog is None:
            mapper.register_raw_streams_from_catalog(catalog)
            return

        def register(name: str) -> None:
            # As the SDK's registration, less its deep copy of each schema: to_dict()
            # builds a fresh dict already, which is then trimmed in place.
            entry = catalog[name]
            schema = entry.schema.to_dict()
            pop_deselected_schema(schema, entry.metadata.resolve_selection(), name, ())
            mapper.register_raw_stream_schema(name, schema, entry.key_properties)

        mapper.stream_maps = LazyStreamMaps(register)
        if self.config.get("stream_maps"):
            # Built now, a bad map fails the run before any request, not when its
            # stream's turn comes after the streams before it have synced.
            for name in synced_streams(catalog):
                mapper.stream_maps[name]  # registers the stream's maps

    @override
    def _handle_termination(self, signum: int, frame: FrameType | None) -> None:
        """Write the state as the SDK does, then exit 128 + the signal, not 0.

        An orchestrator must not take a stopped sync for a finished one; the state
        written is safe to resume from either way. A signal that comes while a batch
        is being written (into a slow target's pipe) is handled once the batch is
        whole: written from the handler, the state would cut it (``when_idle``).
        """
        writer = t.cast("BatchingWriter", self.message_writer)
        writer.when_idle(functools.partial(self._terminate, signum, frame))

    def _terminate(self, signum: int, frame: FrameType | None) -> None:
        """The SDK's handling (write the state, exit), exiting 128 + the signal."""
        try:
            super()._handle_termination(signum, frame)
        except SystemExit:
            sys.exit(128 + signum)

    @cached_property
    def settings(self) -> Settings:
        """The configuration, checked, typed and with its defaults."""
        specs = registry()
        # The collections whose ids a delete check lists (``CollectionStream.lists_ids``).
        listed = [n for n, spec in specs.items() if not spec["parent"] and not spec["key_object"]]
        return Settings.parse(self.config, specs, listed)

    @cached_property
    def resources(self) -> SyncResources:
        """What every stream of this run shares (built piece by piece on first use)."""
        return SyncResources(
            self.settings,
            scopes=self._scopes,
            sync_order=self._sync_order,
            full_table=self._full_table,
        )

    def _scopes(self) -> list[str]:
        """The read scopes of the selected streams."""
        return sorted({s.scope for s in self._coupa_streams() if s.synced})

    def _catalog_scopes(self, catalog: Catalog) -> list[str]:
        """The read scopes of the streams the catalog selects, known before they are built.

        A child's scope is its parent's, which reads its rows; should they ever differ,
        ``_scopes`` tells, and the token minted ahead for these is not used.
        """
        specs = registry()
        custom = {c.stream for c in self.settings.custom_objects}
        return sorted(
            {
                ahead.CUSTOM_OBJECT_SCOPE if name in custom else specs[name]["scope"]
                for name in selected_streams(catalog)
                if name in custom or name in specs
            }
        )

    def _sync_order(self) -> list[CollectionStream]:
        """The collections this run syncs, in the SDK's order."""
        return [s for s in self._coupa_streams() if isinstance(s, CollectionStream) and s.synced]

    def _coupa_streams(self) -> list[CoupaStream]:
        return t.cast("list[CoupaStream]", list(self.streams.values()))

    @override
    def discover_streams(self) -> list[CoupaStream]:
        """One stream per Coupa collection in the registry, and per custom object.

        Offline by default (the schemas ship with the tap); with
        ``discover_custom_fields`` a discovery also types each stream's custom fields
        from a page of live records. Custom objects are always typed so: their
        fields are all custom.
        """
        settings = self.settings
        types = {
            **{name: (cls, name) for name, cls in stream_types().items()},
            **{
                c.stream: (custom_objects.stream_type(c), custom_objects.SCHEMA)
                for c in settings.custom_objects
            },
        }
        streams = [
            cls(
                self,
                functools.partial(
                    load_schema,
                    schema,
                    decimal_strings=settings.decimal_strings,
                    deletes=cls.lists_ids() and settings.detects_deletes(name),
                ),
                self.resources,
            )
            for name, (cls, schema) in types.items()
        ]
        if self.input_catalog is None:
            objects = [s for s in streams if isinstance(s, custom_objects.CustomObjectStream)]
            typed = streams if self.settings.discover_custom_fields else objects
            if typed:
                discover_custom_fields(typed, self.resources)
        return streams


class _Without(logging.Filter):
    """Drops the log records whose message starts with ``prefix``."""

    def __init__(self, prefix: str) -> None:
        super().__init__()
        self.prefix = prefix

    def filter(self, record: logging.LogRecord) -> bool:
        """Keep every other record."""
        return not str(record.msg).startswith(self.prefix)


def _config_file_problem(path: str) -> str | None:
    """What keeps a --config file from being read, if anything (the SDK would raise)."""
    try:
        value = json.loads(Path(path).read_text())
    except FileNotFoundError:
        return "does not exist"
    except (OSError, ValueError) as exc:
        return f"cannot be read as JSON ({exc})"
    return None if isinstance(value, dict) else "is not a JSON object"


def _read_json(name: str, file: t.IO[str]) -> dict[str, t.Any]:
    """A --state/--catalog file's object; bad JSON or shape is one clear line, exit 1.

    Decimals are read as the SDK reads them (``Decimal``), in C.
    """
    try:
        value = JSON_FILE.decode(file.read())
    except msgspec.DecodeError as exc:
        problem: str | None = f"is not valid JSON ({exc})"
    else:
        problem = (state_file_problem if name == "state" else catalog_file_problem)(value)
    if problem:
        fix = (
            "fix it, or run without it"
            if name == "state"
            else "regenerate it with tap-coupa --discover (or meltano select)"
        )
        logging.getLogger("tap-coupa").error("The --%s file %s; %s.", name, problem, fix)
        sys.exit(1)
    return t.cast("dict[str, t.Any]", value)


if __name__ == "__main__":
    TapCoupa.cli()
