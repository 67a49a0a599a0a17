"""The house rules a reader relies on: no import cycle, SDK overrides marked and present."""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
from pathlib import Path

import pytest
import yaml
from singer_sdk.helpers._catalog import get_selected_schema

import tap_coupa
from tap_coupa.pagination import CoupaOffsetPaginator
from tap_coupa.sdk import PRIVATE_SDK_MEMBERS
from tap_coupa.settings import SETTINGS_SCHEMA
from tap_coupa.tap import TapCoupa

pytestmark = pytest.mark.unit

PACKAGE = Path(tap_coupa.__file__).parent


def import_graph(package: Path) -> dict[str, set[str]]:
    """Module -> the package's modules it imports, ``TYPE_CHECKING`` imports included."""
    names = {f"tap_coupa.{p.stem}" for p in package.glob("*.py") if p.stem != "__init__"}
    names.add("tap_coupa")
    graph: dict[str, set[str]] = {}
    for path in package.glob("*.py"):
        module = "tap_coupa" if path.stem == "__init__" else f"tap_coupa.{path.stem}"
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module:
                targets.add(node.module)
                targets |= {f"{node.module}.{alias.name}" for alias in node.names}
        graph[module] = {name for name in targets & names if name != module}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle, as the modules along it, or None."""
    done: set[str] = set()

    def visit(module: str, path: list[str]) -> list[str] | None:
        if module in path:
            return [*path[path.index(module) :], module]
        if module in done:
            return None
        for target in sorted(graph.get(module, ())):
            if cycle := visit(target, [*path, module]):
                return cycle
        done.add(module)
        return None

    for module in sorted(graph):
        if cycle := visit(module, []):
            return cycle
    return None


def test_the_cycle_finder_finds_a_cycle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert find_cycle(graph) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_cycle_in_the_package() -> None:
    graph = import_graph(PACKAGE)
    assert "tap_coupa.client" in graph["tap_coupa.collection"], "the graph is read"
    assert find_cycle(graph) is None


def test_the_base_stream_knows_neither_the_tap_nor_its_subclasses() -> None:
    imported = import_graph(PACKAGE)["tap_coupa.client"]
    assert not imported & {"tap_coupa.tap", "tap_coupa.collection", "tap_coupa.children"}


def _sdk_classes() -> list[type]:
    """Every class of the package that derives from a Singer SDK class."""
    found: dict[str, type] = {}
    for info in pkgutil.iter_modules([str(PACKAGE)]):
        if info.name == "__main__":  # runs the CLI
            continue
        module = importlib.import_module(f"tap_coupa.{info.name}")
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if cls.__module__ == module.__name__ and any(
                base.__module__.startswith("singer_sdk") for base in cls.__mro__[1:]
            ):
                found[cls.__qualname__] = cls
    return list(found.values())


def _function(member: object) -> object:
    if isinstance(member, (classmethod, staticmethod)):
        return member.__func__
    if isinstance(member, property):
        return member.fget
    return member


def test_every_sdk_override_is_marked() -> None:
    classes = _sdk_classes()
    assert {"TapCoupa", "CoupaStream", "CoupaOffsetPaginator"} <= {c.__name__ for c in classes}
    unmarked = []
    checked = 0
    for cls in classes:
        sdk_bases = [b for b in cls.__mro__[1:] if b.__module__.startswith("singer_sdk")]
        for name, member in vars(cls).items():
            if name.startswith("__") or isinstance(member, type) or not callable(_function(member)):
                continue
            if any(name in vars(base) for base in sdk_bases):
                checked += 1
                if not getattr(_function(member), "__override__", False):
                    unmarked.append(f"{cls.__name__}.{name}")
    assert checked >= 10, "the check saw the overrides"
    assert not unmarked, f"SDK overrides without @override: {unmarked}"


def test_the_private_sdk_members_the_tap_relies_on_exist() -> None:
    tap = TapCoupa(config={"base_url": "https://acme.coupahost.com"}, setup_mapper=False)
    instances = {
        "Tap": tap,
        "Stream": tap.streams["invoices"],
        "BaseAPIPaginator": CoupaOffsetPaginator(50),
    }
    missing = []
    for target, why in PRIVATE_SDK_MEMBERS.items():
        assert why, target
        module_name, qualname = target.split(":")
        owner: object = importlib.import_module(module_name)
        *path, member = qualname.split(".")
        for part in path:
            owner = getattr(owner, part)
        instance = instances.get(path[0]) if path else None
        # dir(), not hasattr(): a class property (PluginBase._env_var_config) would run.
        if not (member in dir(owner) or hasattr(instance, member)):
            missing.append(target)
    assert not missing, f"the pinned SDK no longer has {missing}: see tap_coupa/sdk.py"


def test_meltano_yml_declares_every_setting_without_restating_defaults() -> None:
    """A setting's default is written once, in settings.py; Meltano lists every setting."""
    project = yaml.safe_load((PACKAGE.parent / "meltano.yml").read_text())
    [extractor] = project["plugins"]["extractors"]
    declared = {setting["name"]: setting for setting in extractor["settings"]}
    ours = set(SETTINGS_SCHEMA["properties"])
    assert ours <= declared.keys(), f"missing from meltano.yml: {sorted(ours - declared.keys())}"
    restated = sorted(name for name, setting in declared.items() if "value" in setting)
    assert not restated, f"meltano.yml restates defaults of {restated}"


def test_meltano_yml_advertises_the_capabilities_of_about() -> None:
    """Without structured-logging, Meltano shows the tap's warnings and errors as info."""
    project = yaml.safe_load((PACKAGE.parent / "meltano.yml").read_text())
    [extractor] = project["plugins"]["extractors"]
    assert extractor["capabilities"] == [str(c) for c in TapCoupa.capabilities]


def test_stream_maps_are_built_per_stream_as_the_sdk_builds_them() -> None:
    """Registered on first use, each stream's map has the schema the SDK would give it."""
    config = {"base_url": "https://acme.coupahost.com"}
    catalog = TapCoupa(config=config, setup_mapper=False).catalog_dict
    for entry in catalog["streams"]:
        for meta in entry["metadata"]:
            if meta["breadcrumb"] == []:
                meta["metadata"]["selected"] = entry["tap_stream_id"] in {"invoices", "users"}
            elif entry["tap_stream_id"] == "invoices" and meta["breadcrumb"][-1] in {
                "currency",
                "invoice-lines",
            }:
                meta["metadata"]["selected"] = False
    tap = TapCoupa(config=config, catalog=catalog)
    maps = tap.mapper.stream_maps
    assert "invoices" not in maps, "nothing is registered before a stream asks"
    for name in ("invoices", "users"):
        entry = tap.catalog[name]
        expected = get_selected_schema(
            name, entry.schema.to_dict(), entry.metadata.resolve_selection()
        )
        assert maps[name][0].transformed_schema == expected, name
    assert "currency" not in maps["invoices"][0].transformed_schema["properties"]
    assert set(maps) == {"invoices", "users"}, "only the streams asked for"
