"""Start-up: what the tap does before its first request, and at exit, to be quick."""

from __future__ import annotations

import atexit
import typing as t

import pytest
from singer_sdk import Tap

from tap_coupa import resources as resources_module
from tap_coupa import tap as tap_module
from tap_coupa.resources import SyncResources
from tap_coupa.settings import Settings
from tap_coupa.streams import registry

pytestmark = pytest.mark.unit


class FakeGC:
    """Records what the tap asks of the garbage collector, without touching the real one."""

    def __init__(self) -> None:
        self.enabled = True
        self.frozen = 0

    def disable(self) -> None:
        self.enabled = False

    def enable(self) -> None:
        self.enabled = True

    def freeze(self) -> None:
        self.frozen += 1


def settings() -> Settings:
    specs = registry()
    collections = [name for name, spec in specs.items() if not spec["parent"]]
    config = {"base_url": "http://127.0.0.1:9", "client_id": "id", "client_secret": "secret"}
    return Settings.parse(config, specs, collections)


def test_the_collector_is_paused_for_start_up_and_runs_once_records_flow(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake = FakeGC()
    at_exit: list[t.Callable[[], None]] = []
    seen: list[bool] = []
    monkeypatch.setattr(tap_module, "gc", fake)
    monkeypatch.setattr(resources_module, "gc", fake)
    monkeypatch.setattr(atexit, "register", at_exit.append)
    monkeypatch.setattr(Tap, "invoke", classmethod(lambda cls, **_: seen.append(fake.enabled)))

    tap_module.TapCoupa.invoke()
    assert seen == [False], "the SDK's start-up ran with the collector on"

    shared = SyncResources(settings(), scopes=list, sync_order=list)
    shared.freeze_heap()
    shared.freeze_heap()
    assert fake.enabled, "the collector stayed off once the first stream wrote"
    assert fake.frozen == 1

    assert at_exit == [fake.freeze], "the heap is not frozen at exit"
