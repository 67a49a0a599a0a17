"""The tap's generated registry and schemas against the sandbox's own R39 model.

The sandbox builds its resources from Coupa's R39 definitions without reading
``tap_coupa`` (``coupa_sandbox/build_resources.py``), so it is an independent
expectation: a wrong path, scope, type or child mapping in ``tap_coupa/schemas``
fails here. Each check returns the problems it finds, so a test can name the known
disagreements explicitly (none today) and a corrupted copy of the tap's files can
be shown to fail.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import typing as t
from pathlib import Path

import pytest

from coupa_sandbox import build_resources
from coupa_sandbox.schema import Node, Registry, StreamDef, load_registry

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parent.parent
TAP_SCHEMAS = ROOT / "tap_coupa" / "schemas"
R39 = ROOT.parent / "shared" / "coupa-api-r39"

TapStreams = dict[str, dict[str, t.Any]]
Schema = dict[str, t.Any]


def tap_streams(directory: Path | None = None) -> TapStreams:
    """The tap's generated stream registry (``streams.json``)."""
    streams: TapStreams = json.loads(((directory or TAP_SCHEMAS) / "streams.json").read_text())
    return streams


def tap_schema(name: str, directory: Path | None = None) -> Schema:
    """One of the tap's generated stream schemas."""
    schema: Schema = json.loads(((directory or TAP_SCHEMAS) / f"{name}.json").read_text())
    return schema


def sandbox_stream(name: str, streams: TapStreams, registry: Registry) -> StreamDef | None:
    """The sandbox stream serving a tap stream: by path, then down the array fields."""
    spec = streams[name]
    if spec["parent"] is None:
        return registry.by_path.get(spec["path"].strip("/"))
    owner = sandbox_stream(spec["parent"], streams, registry)
    if owner is None:
        return None
    return next(
        (
            s
            for s in registry.children
            if s.parent == owner.name and s.array_field == spec["array_field"]
        ),
        None,
    )


def path_problems(streams: TapStreams, registry: Registry) -> list[str]:
    """Top-level tap streams the sandbox does not serve, and served paths the tap lacks."""
    tap_paths = {s["path"].strip("/") for s in streams.values() if s["parent"] is None}
    missing = [
        f"{path}: not served by the sandbox" for path in sorted(tap_paths - set(registry.by_path))
    ]
    unsynced = [
        f"{path}: served but no tap stream" for path in sorted(set(registry.by_path) - tap_paths)
    ]
    return missing + unsynced


def scope_problems(streams: TapStreams, registry: Registry) -> list[str]:
    """Tap streams whose scope differs from the one the sandbox requires."""
    problems = []
    for name, spec in sorted(streams.items()):
        served = sandbox_stream(name, streams, registry)
        if served is not None and served.scope != spec["scope"]:
            problems.append(f"{name}: tap {spec['scope']}, sandbox {served.scope}")
    return problems


def child_problems(streams: TapStreams, registry: Registry) -> list[str]:
    """Child streams not reading the sandbox's line collection of the same name.

    The array field must be an array of objects in the parent's records, and name the
    same rows the sandbox counts under that name (so two streams cannot read one array).
    """
    problems = []
    for name, spec in sorted(streams.items()):
        if spec["parent"] is None:
            continue
        where = f"{name}: {spec['parent']}.{spec['array_field']}"
        owner = sandbox_stream(spec["parent"], streams, registry)
        node = owner.schema.props.get(spec["array_field"]) if owner is not None else None
        served = sandbox_stream(name, streams, registry)
        if node is None or not node.is_line_array:
            problems.append(f"{where} is no array of objects")
        elif served is None or served.name != name:
            problems.append(f"{where} is {served.name if served else 'no line collection'}")
    return problems


def _kind(spec: Schema) -> str:
    """The tap's JSON Schema type in the sandbox's node kinds (``open``: any object;
    ``any``: text, an object or a list, as an easy form widget's answer)."""
    raw = spec.get("type", [])
    types = {raw} if isinstance(raw, str) else set(raw)
    if {"string", "object", "array"} <= types:
        return "any"
    for kind in ("number", "integer", "boolean", "array"):
        if kind in types:
            return kind
    if "object" in types:
        return "object" if spec.get("properties") else "open"
    return "datetime" if spec.get("format") == "date-time" else "string"


def _compare(spec: Schema, node: Node, where: str, problems: list[str]) -> None:
    kind = _kind(spec)
    if kind == "any":
        return
    if kind == "open":
        if node.is_scalar:
            problems.append(f"{where}: tap object, sandbox {node.kind}")
        return
    if node.kind != kind:
        problems.append(f"{where}: tap {kind}, sandbox {node.kind}")
        return
    size = (spec.get("precision"), spec.get("scale")) if "precision" in spec else None
    if kind == "number" and size != node.size:
        problems.append(f"{where}: tap decimal size {size}, sandbox {node.size}")
    if kind == "array" and spec.get("items") and node.items is not None:
        _compare(spec["items"], node.items, f"{where}[]", problems)
    for prop, sub in spec.get("properties", {}).items() if kind == "object" else ():
        if prop not in node.props:
            problems.append(f"{where}.{prop}: not in the sandbox's record")
        else:
            _compare(sub, node.props[prop], f"{where}.{prop}", problems)


def type_problems(
    streams: TapStreams, registry: Registry, directory: Path | None = None
) -> list[str]:
    """Tap properties the sandbox lacks or types differently (decimals with their size).

    A child stream's parent and ancestor keys are the tap's own (R39 lines have none),
    and so are the keys a stream lifts out of its key object (the sandbox's record keeps
    them inside ``revision-record``, where they are compared).
    """
    problems: list[str] = []
    for name, spec in sorted(streams.items()):
        served = sandbox_stream(name, streams, registry)
        if served is None:
            continue
        schema = tap_schema(name, directory)
        lifted = spec["key_object"] or {"keys": [], "displaced_id": None}
        own = [spec["parent_key"], *spec["ancestor_keys"], lifted["displaced_id"]]
        for key in [*own, *(k for k in lifted["keys"] if k != "id")]:
            schema["properties"].pop(key or "", None)
        _compare(schema, served.schema, name, problems)
    return problems


# Known tap-vs-R39 disagreements, each named with why it is accepted (none today).
KNOWN: dict[str, list[str]] = {"paths": [], "scopes": [], "children": [], "types": []}


@pytest.fixture(scope="module")
def registry() -> Registry:
    return load_registry()


def test_every_tap_stream_path_is_served_and_every_served_path_synced(registry: Registry) -> None:
    assert path_problems(tap_streams(), registry) == KNOWN["paths"]


def test_every_tap_scope_is_the_scope_the_sandbox_requires(registry: Registry) -> None:
    streams = tap_streams()
    assert all(sandbox_stream(name, streams, registry) for name in streams)
    assert scope_problems(streams, registry) == KNOWN["scopes"]


def test_every_child_stream_reads_the_sandbox_line_collection(registry: Registry) -> None:
    assert child_problems(tap_streams(), registry) == KNOWN["children"]


def test_every_tap_property_has_the_sandbox_type(registry: Registry) -> None:
    assert type_problems(tap_streams(), registry) == KNOWN["types"]


def r39_source() -> Path:
    """The R39 files; without them a newcomer's run skips, CI (``CI=true``) fails."""
    if not any(R39.glob("*.json")):
        if os.environ.get("CI") == "true":
            pytest.fail(f"Coupa's R39 definitions are missing at {R39}")
        pytest.skip(f"Coupa's R39 definitions are not at {R39}")
    return R39


def test_tap_schemas_are_generated_from_r39() -> None:
    source = r39_source()
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts" / "generate_schemas.py"),
            "--source",
            str(source),
            "--check",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr


def test_sandbox_model_is_built_from_r39(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    source = r39_source()
    assert build_resources.main(["--source", str(source), "--check"]) == 0
    stale = tmp_path / "resources.json"
    stale.write_text(
        build_resources.OUTPUT.read_text().replace("core.invoice.read", "core.invoice.write")
    )
    monkeypatch.setattr(build_resources, "OUTPUT", stale)
    assert build_resources.main(["--source", str(source), "--check"]) == 1
