"""SIGTERM while the tap is blocked writing a batch into a slow target's full pipe.

Python runs the signal handler between two partial writes of the batch; the stream
must stay whole Singer messages: no cut line, no batch sent twice, no blank line.
"""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import sys
import time
import typing as t
from collections.abc import Iterator
from pathlib import Path

import pytest

from coupa_sandbox import Sandbox, SandboxConfig
from tests import forkserver
from tests.helpers import TapRunner, parse_output, tap_config

pytestmark = [
    pytest.mark.sandbox,
    pytest.mark.skipif(sys.platform != "linux", reason="reads the tap's state in /proc"),
]

STREAM = "invoices"


@contextlib.contextmanager
def tap_into_a_pipe(
    tap: TapRunner, tmp_path: Path
) -> Iterator[tuple[Sandbox, dict[str, t.Any], subprocess.Popen[bytes]]]:
    """A sync of ~60 invoices of ~50 KB (more than a 1 MiB pipe holds) into a pipe the
    test reads; its stderr goes to ``tmp_path / "tap.err"``. Killed if still running."""
    with Sandbox(SandboxConfig(seed=3, rate_limit=None, records={STREAM: 60})) as sb:
        config = tap_config(sb)
        with (tmp_path / "tap.err").open("wb") as stderr:
            process = forkserver.popen(
                [*forkserver.TAP, *tap.files(config, [STREAM], None)],
                stdout=subprocess.PIPE,
                stderr=stderr,
            )
        try:
            yield sb, config, process
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()


def blocked_writing_to_pipe(pid: int) -> bool:
    """Whether the process's main thread (the one writing Singer messages) sleeps in a
    write into a full pipe: the kernel's ``pipe_write`` (``anon_pipe_write`` since 6.x)."""
    return Path(f"/proc/{pid}/wchan").read_text().endswith("pipe_write")


def signal_pending(pid: int, sig: int) -> bool:
    """Whether ``sig`` is sent to the process but not yet taken by any of its threads."""
    pending = (
        int(line.split()[1], 16)
        for line in Path(f"/proc/{pid}/status").read_text().splitlines()
        if line.startswith(("SigPnd:", "ShdPnd:"))
    )
    return any(mask & 1 << (sig - 1) for mask in pending)


def is_json(line: bytes) -> bool:
    try:
        json.loads(line)
    except ValueError:
        return False
    return True


def wait_until(condition: t.Callable[[], bool], what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting until {what}")
        time.sleep(0.005)


def test_sigterm_during_a_blocked_write_leaves_whole_messages(
    tap: TapRunner, tmp_path: Path
) -> None:
    """The pipe is not read until the tap is blocked writing into it (the kernel says
    so, not a timing guess) and has taken the SIGTERM, then it is read to its end.

    Taking the signal wakes the blocked write; Python runs the handler before writing
    on. Blocked again, with nobody reading yet, the tap is still inside the batch it
    was writing, or (handled wrongly) writing its final state into the middle of it.
    ~60 invoices of ~50 KB make more than the 1 MiB pipe holds.
    """
    with tap_into_a_pipe(tap, tmp_path) as (sb, config, process):
        wait_until(lambda: blocked_writing_to_pipe(process.pid), "the tap blocks writing")
        process.send_signal(signal.SIGTERM)
        wait_until(
            lambda: (
                not signal_pending(process.pid, signal.SIGTERM)
                and blocked_writing_to_pipe(process.pid)
            ),
            "the tap takes the signal and is blocked writing again",
        )
        stdout, _ = process.communicate(timeout=30)
        lines = stdout.split(b"\n")
        assert lines.pop() == b"", "the output ends with a whole line"
        broken = [(n, line[:80]) for n, line in enumerate(lines) if not is_json(line)]
        assert not broken, f"lines a target cannot read (cut, or blank): {broken}"
        assert process.returncode == 128 + signal.SIGTERM
        assert json.loads(lines[-1])["type"] == "STATE"
        out = parse_output(stdout.decode())
        ids = [r["id"] for r in out.records[STREAM]]
        assert len(ids) == len(set(ids)), "no record sent twice"
        # The state is not ahead of what was written: resuming from it, the records
        # delivered and those read again make the whole stream.
        resumed = tap.run(config, [STREAM], out.state)
        assert set(ids) | resumed.ids(STREAM) == {r["id"] for r in sb.records(STREAM)}


def test_a_target_that_stops_reading_ends_the_tap_with_one_clear_line(
    tap: TapRunner, tmp_path: Path
) -> None:
    """The target closes its stdin after the first message; the tap's output (more than
    the pipe holds) then fails to write: exit 1, saying so, not an unexplained failure."""
    with tap_into_a_pipe(tap, tmp_path) as (_, _, process):
        assert process.stdout is not None
        assert process.stdout.readline(), "the tap wrote"
        process.stdout.close()
        returncode = process.wait(timeout=60)
    errors = (tmp_path / "tap.err").read_text()
    assert returncode == 1
    assert "The target stopped reading the tap's output" in errors
    assert "Traceback" not in errors
