"""Batched output: RECORDs wait for a batch, every other message writes out what came before."""

from __future__ import annotations

import io
import json
import sys
import typing as t

import pytest
from singer_sdk import singerlib as singer

from tap_coupa import writer

pytestmark = pytest.mark.unit


class FakeStdout(io.TextIOWrapper):
    """A text stdout whose bytes we can read."""

    def __init__(self) -> None:
        self.raw_bytes = io.BytesIO()
        super().__init__(t.cast("t.BinaryIO", self.raw_bytes), encoding="utf-8")

    def lines(self) -> list[dict[str, t.Any]]:
        return [json.loads(line) for line in self.raw_bytes.getvalue().splitlines()]


@pytest.fixture
def at_exit(monkeypatch: pytest.MonkeyPatch) -> list[t.Callable[[], None]]:
    """What the writer registers to run at exit (collected here, not run at exit)."""
    registered: list[t.Callable[[], None]] = []
    monkeypatch.setattr(writer.atexit, "register", registered.append)
    return registered


def writer_on_fake_stdout(
    monkeypatch: pytest.MonkeyPatch,
) -> tuple[writer.BatchingWriter, FakeStdout]:
    """A writer and the stdout it writes to (set in the test: pytest resets sys.stdout
    between fixture setup and the test)."""
    stdout = FakeStdout()
    monkeypatch.setattr(sys, "stdout", stdout)
    return writer.BatchingWriter(), stdout


def record(n: int) -> singer.RecordMessage:
    return singer.RecordMessage(stream="invoices", record={"id": n})


def test_records_wait_for_a_state_and_keep_their_order(
    monkeypatch: pytest.MonkeyPatch, at_exit: list[t.Callable[[], None]]
) -> None:
    sink, out = writer_on_fake_stdout(monkeypatch)
    for n in range(3):
        sink.write_message(record(n))
    assert out.raw_bytes.getvalue() == b"", "records are batched"
    sink.write_message(singer.StateMessage(value={"bookmarks": {"invoices": {"after": 2}}}))
    assert [m["type"] for m in out.lines()] == ["RECORD", "RECORD", "RECORD", "STATE"]
    assert [m["record"]["id"] for m in out.lines()[:3]] == [0, 1, 2]


def test_a_full_batch_is_written_without_waiting(
    monkeypatch: pytest.MonkeyPatch, at_exit: list[t.Callable[[], None]]
) -> None:
    monkeypatch.setattr(writer, "BATCH_BYTES", 200)
    sink, out = writer_on_fake_stdout(monkeypatch)
    for n in range(10):
        sink.write_message(record(n))
    written = out.lines()
    assert 0 < len(written) < 10
    assert [m["record"]["id"] for m in written] == list(range(len(written)))


def test_records_after_the_last_state_are_written_at_exit(
    monkeypatch: pytest.MonkeyPatch, at_exit: list[t.Callable[[], None]]
) -> None:
    sink, out = writer_on_fake_stdout(monkeypatch)
    sink.write_message(singer.StateMessage(value={}))
    sink.write_message(record(7))  # an unchanged bookmark ends a sync without a STATE
    assert [m["type"] for m in out.lines()] == ["STATE"]
    for flush in at_exit:
        flush()
    assert [m["type"] for m in out.lines()] == ["STATE", "RECORD"]


def test_a_written_batch_is_not_written_again(
    monkeypatch: pytest.MonkeyPatch, at_exit: list[t.Callable[[], None]]
) -> None:
    sink, out = writer_on_fake_stdout(monkeypatch)
    sink.write_message(singer.RecordMessage(stream="invoices", record={"id": 1, "x": "y" * 5000}))
    sink.write_message(singer.StateMessage(value={"n": 1}))
    sink.write_message(record(2))  # goes where the long record was
    sink.write_message(singer.StateMessage(value={"n": 2}))
    lines = out.lines()
    assert [m["type"] for m in lines] == ["RECORD", "STATE", "RECORD", "STATE"]
    assert lines[2]["record"] == {"id": 2}
    assert len(out.raw_bytes.getvalue()) < 5200


class ShortWrites(io.RawIOBase):
    """A raw stdout into a full pipe: each write takes at most 1,000 bytes."""

    def __init__(self) -> None:
        self.data = bytearray()
        self.calls = 0

    def writable(self) -> bool:
        return True

    def write(self, b: t.Any) -> int:
        self.calls += 1
        chunk = bytes(b[:1000])
        self.data += chunk
        return len(chunk)


def test_a_short_write_to_unbuffered_stdout_loses_nothing() -> None:
    out = ShortWrites()
    data = b"".join(b'{"type":"RECORD","n":%d}\n' % i for i in range(500))
    writer.write_all(t.cast("t.BinaryIO", out), data)
    assert out.calls > 1, "the pipe took the batch in parts"
    assert bytes(out.data) == data


class InterruptedWrites(ShortWrites):
    """As ``ShortWrites``, with a signal handler run after the first partial write, as
    Python runs one between the partial writes of a batch into a full pipe."""

    def __init__(self, handler: t.Callable[[], None]) -> None:
        super().__init__()
        self.handler = handler

    def write(self, b: t.Any) -> int:
        taken = super().write(b)
        if self.calls == 1:
            self.handler()
        return taken


def test_a_handler_interrupting_a_write_writes_after_the_whole_batch(
    monkeypatch: pytest.MonkeyPatch, at_exit: list[t.Callable[[], None]]
) -> None:
    def on_signal() -> None:  # as TapCoupa._handle_termination
        sink.when_idle(lambda: sink.write_message(singer.StateMessage(value={"n": 1})))

    out = InterruptedWrites(on_signal)
    monkeypatch.setattr(sys, "stdout", io.TextIOWrapper(t.cast("t.BinaryIO", out)))
    sink = writer.BatchingWriter()
    for n in range(100):
        sink.write_message(record(n))
    sink.flush()
    assert out.calls > 1, "the handler came between two parts of the batch"
    lines = [json.loads(line) for line in bytes(out.data).split(b"\n")[:-1]]
    assert [m["type"] for m in lines] == ["RECORD"] * 100 + ["STATE"]
    sink.when_idle(lambda: sink.write_message(singer.StateMessage(value={"n": 2})))
    assert json.loads(bytes(out.data).split(b"\n")[-2])["value"] == {"n": 2}, "idle: at once"
