"""The SDK capabilities meltano.yml declares: stream maps, schema flattening, BATCH."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from urllib.parse import urlparse

import pytest

from coupa_sandbox import Sandbox
from tests.helpers import TapRunner, run_tap, tap_config

pytestmark = pytest.mark.sandbox


def test_stream_maps(sandbox: Sandbox, tap: TapRunner) -> None:
    maps = {
        "suppliers": {"name_upper": "name.upper() if name else None", "__else__": None},
        "users": None,
    }
    config = tap_config(sandbox, stream_maps=maps)
    config["stream_maps"]["suppliers"]["id"] = "id"
    out = tap.run(config, ["suppliers", "users"])
    expected = {
        r["id"]: (r.get("name") or "").upper() or None for r in sandbox.records("suppliers")
    }
    assert {r["id"]: r["name_upper"] for r in out.records["suppliers"]} == expected
    assert all(set(r) == {"id", "name_upper"} for r in out.records["suppliers"])
    assert "users" not in out.records, "a stream mapped to null is dropped"


def test_flattening(sandbox: Sandbox, tap: TapRunner) -> None:
    config = tap_config(sandbox, flattening_enabled=True, flattening_max_depth=1)
    out = tap.run(config, ["suppliers"])
    properties = out.schemas["suppliers"]["schema"]["properties"]
    flattened = [name for name in properties if name.startswith("created-by__")]
    assert flattened, "nested associations become columns"
    source = {r["id"]: r for r in sandbox.records("suppliers")}
    for record in out.records["suppliers"]:
        creator = source[record["id"]].get("created-by") or {}
        if creator.get("id") is not None:
            assert record["created-by__id"] == creator["id"]


def test_batch_messages(sandbox: Sandbox, tap: TapRunner, tmp_path: Path) -> None:
    batch_config = {
        "encoding": {"format": "jsonl", "compression": "gzip"},
        "storage": {"root": f"file://{tmp_path}", "prefix": "coupa-"},
    }
    settings = tap_config(sandbox, batch_config=batch_config)
    args = tap.files(settings, ["users"], None)
    done = run_tap(args, check=True)
    messages = [json.loads(line) for line in done.stdout.splitlines() if line.strip()]
    batches = [m for m in messages if m["type"] == "BATCH"]
    assert batches
    assert not [m for m in messages if m["type"] == "RECORD"]
    ids = set()
    for batch in batches:
        for url in batch["manifest"]:
            with gzip.open(urlparse(url).path, "rt") as handle:
                ids |= {json.loads(line)["id"] for line in handle}
    assert ids == {r["id"] for r in sandbox.records("users")}
    final = [m for m in messages if m["type"] == "STATE"][-1]["value"]
    assert final["bookmarks"]["users"]["replication_key"] == "updated-at"
