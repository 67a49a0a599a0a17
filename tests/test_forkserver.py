"""Taps forked from the fork server (tests/forkserver.py) run as an exec'd tap would."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from coupa_sandbox import Sandbox
from tests import forkserver
from tests.helpers import TapRunner, parse_output, run_tap, tap_config

pytestmark = pytest.mark.sandbox


def exec_tap(
    args: list[str], env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """The same run as a real ``python -m tap_coupa`` process."""
    return subprocess.run(
        [*forkserver.TAP, *args], capture_output=True, text=True, env=env, timeout=300, check=False
    )


def test_a_forked_sync_emits_what_an_exec_d_one_does(sandbox: Sandbox, tap: TapRunner) -> None:
    args = tap.files(tap_config(sandbox), ["suppliers", "invoices"], None)
    env = {**os.environ, "LOGLEVEL": "DEBUG"}  # the run's environment, not the server's
    exec_d, forked = exec_tap(args, env), run_tap(args, env=env)
    assert forked.returncode == exec_d.returncode == 0, forked.stderr[-2000:]
    expected, got = parse_output(exec_d.stdout), parse_output(forked.stdout)
    assert got.records == expected.records
    assert len(got.records["invoices"]) > 100
    assert got.schemas == expected.schemas
    assert got.states == expected.states
    assert "| DEBUG" in exec_d.stderr
    assert "| DEBUG" in forked.stderr


def test_a_failed_run_ends_as_an_exec_d_one(tmp_path: Path) -> None:
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"base_url": "ftp://acme", "client_id": "a"}))
    for args in (
        ["--config", str(config)],  # one clear error
        ["--config", str(tmp_path / "missing.json")],  # a traceback
    ):
        exec_d, forked = exec_tap(args), run_tap(args)
        assert exec_d.returncode != 0, args
        assert forked.returncode == exec_d.returncode, args
        assert forked.stdout == exec_d.stdout, args
        assert last_message(forked.stderr) == last_message(exec_d.stderr), args


def last_message(stderr: str) -> str:
    """The last line, less a log line's time stamp."""
    return stderr.splitlines()[-1].split(" | ", 1)[-1]


def test_the_tap_is_forked_unless_told_to_exec(monkeypatch: pytest.MonkeyPatch) -> None:
    version = [*forkserver.TAP, "--version"]
    forked = forkserver.popen(version, stdout=subprocess.DEVNULL)
    assert isinstance(forked, forkserver.ForkedPopen)
    with pytest.raises(ChildProcessError):  # the fork server's child, not this process's
        os.waitpid(forked.pid, os.WNOHANG)
    assert forked.wait(timeout=60) == 0
    monkeypatch.setenv("TAP_COUPA_TESTS_EXEC", "1")
    exec_d = forkserver.popen(version, stdout=subprocess.DEVNULL)
    assert not isinstance(exec_d, forkserver.ForkedPopen)
    assert exec_d.wait(timeout=60) == 0
