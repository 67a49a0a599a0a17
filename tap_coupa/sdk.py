"""The Singer SDK's private parts this tap relies on, each with why.

The SDK's public hooks cannot express a concurrent, resumable scan that feeds child
streams from the parent's record and emits decimals exactly, so a few private methods
are overridden or called. Every override is marked ``@override`` (a renamed hook then
fails type checking); this list lets a test check each one still exists in the pinned
SDK, so an upgrade that drops one fails loudly instead of silently doing the SDK's
default.
"""

from __future__ import annotations

#: ``module:qualified name`` of each private SDK member used, and why.
PRIVATE_SDK_MEMBERS: dict[str, str] = {
    "singer_sdk.streams.core:Stream._generate_schema_messages": (
        "overridden: put back the DECIMAL precision/scale the SDK's catalog model drops"
    ),
    "singer_sdk.streams.core:Stream._generate_record_messages": (
        "overridden: skip the SDK's per-record walk; the shaper already conformed the record"
    ),
    "singer_sdk.streams.core:Stream._increment_stream_state": (
        "overridden as a no-op: bookmarks are instants bounded by the scan start (state.py)"
    ),
    "singer_sdk.streams.core:Stream._sync_children": (
        "overridden: children take their rows from the parent record, with no request"
    ),
    "singer_sdk.streams.core:Stream._write_schema_message": (
        "called: a child stream sends its SCHEMA before its parent's first record"
    ),
    "singer_sdk.streams.core:Stream._write_record_message": (
        "called: a child stream emits its rows as the parent record is emitted"
    ),
    "singer_sdk.streams.core:Stream._write_state_message": (
        "called: checkpoint STATE every 500 records or 10 s, not every 10,000 records"
    ),
    "singer_sdk.streams.core:Stream._schema": (
        "read and written: the schema property loads a stream's schema on first use"
    ),
    "singer_sdk.streams.core:Stream._input_schema": (
        "read and written: apply_catalog leaves the catalog's schema to effective_schema, "
        "which converts it on first read"
    ),
    "singer_sdk.streams.core:Stream._tap_input_catalog": (
        "written: apply_catalog does the SDK's work itself, less converting the schema"
    ),
    "singer_sdk.streams.core:Stream._stream_version": (
        "read: the RECORD messages built in _generate_record_messages carry it; written: "
        "a child stream takes its parent's"
    ),
    "singer_sdk.streams.core:Stream._write_activate_version_message": (
        "called: a child stream sends ACTIVATE_VERSION with its parent's version"
    ),
    "singer_sdk.plugin_base:PluginBase._env_var_config": (
        "overridden: number settings from the environment are numbers (numbers_from_text)"
    ),
    "singer_sdk.plugin_base:PluginBase.setup_mapper": (
        "called past Tap.setup_mapper: the mapper is built, then each stream is "
        "registered when it first needs its maps"
    ),
    "singer_sdk.helpers._catalog:_pop_deselected_schema": (
        "called: stream maps registered per stream trim the catalog's schema as the "
        "SDK does, without its deep copy"
    ),
    "singer_sdk.plugin_base:_ConfigInput": (
        "read: TapCoupa.invoke, as Tap.invoke, builds the tap from the --config the CLI read"
    ),
    "singer_sdk.tap_base:Tap._input_catalog": (
        "written: TapCoupa.__init__ reads the catalog itself once the settings are ready"
    ),
    "singer_sdk.tap_base:Tap._handle_termination": (
        "overridden: exit 128 + signal after the SDK writes the state, not 0"
    ),
    "singer_sdk.helpers._util:utc_now": "called: time_extracted and token ages, as the SDK does",
    "singer_sdk.pagination:BaseAPIPaginator._page_count": (
        "written: CoupaOffsetPaginator.advance takes pages as well as responses"
    ),
    "singer_sdk.pagination:BaseAPIPaginator._finished": "written: as _page_count",
    "singer_sdk.pagination:BaseAPIPaginator._value": "written: as _page_count",
}
