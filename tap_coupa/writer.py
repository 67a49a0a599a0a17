"""Singer output: the SDK's msgspec writer, with RECORD lines batched into few writes."""

from __future__ import annotations

import atexit
import contextlib
import dataclasses
import sys
import typing as t

from singer_sdk.contrib.msgspec import MsgSpecWriter, encoder
from singer_sdk.singerlib import SingerMessageType
from typing_extensions import override

if t.TYPE_CHECKING:
    from singer_sdk.singerlib.encoding.simple import Message

#: RECORD bytes collected before a write (about a page of full invoices).
BATCH_BYTES = 1 << 20


def _widen_pipe(stream: t.TextIO) -> None:
    """Let a pipe on stdout hold a whole batch (Linux allows up to 1 MiB by default).

    With the default 64 KiB pipe, each batch meant a dozen waits for the target to read,
    and a thread hand-off with each: measured at ~125 µs of CPU per 20 KB invoice.
    """
    if sys.platform != "linux":
        return
    import fcntl

    with contextlib.suppress(OSError, ValueError):  # not a pipe, or a lower limit: fine
        fcntl.fcntl(stream.fileno(), fcntl.F_SETPIPE_SZ, BATCH_BYTES)


def as_dict(message: Message) -> dict[str, t.Any]:
    """The message as the SDK's ``to_dict`` makes it, without deep-copying a schema.

    ``to_dict`` (``dataclasses.asdict``) copies every nested object of a SCHEMA's
    schema only for it to be encoded once: the larger part of writing the SCHEMA, which
    every synced stream sends. Its other fields are plain JSON values, so a shallow
    dict encodes to the same bytes.
    """
    if message.type is not SingerMessageType.SCHEMA:
        return message.to_dict()
    fields = ((f.name, getattr(message, f.name)) for f in dataclasses.fields(message))
    return {name: value for name, value in fields if value is not None}


class BatchingWriter(MsgSpecWriter):
    """Writes RECORDs in batches; every other message flushes what came before it.

    The SDK's writer flushes stdout after each message: a system call per record, and
    with it a hand-off of the interpreter lock to a waiting download thread. Batching
    keeps the order of the stream: a STATE is written only after the records it
    covers, and records still buffered if the tap is killed lie after the last STATE,
    so the next run reads them again. The rest is written at exit (a sync whose state
    did not change ends without a STATE).
    """

    def __init__(self) -> None:
        super().__init__()
        #: Encoded lines waiting for a write, and their size in bytes.
        self._lines: list[bytes] = []
        self._size = 0
        #: Whether ``flush`` is under way, and what to run once it ends (``when_idle``).
        self._flushing = False
        self._after_flush: t.Callable[[], None] | None = None
        _widen_pipe(sys.stdout)
        atexit.register(self._flush_at_exit)

    @override
    def write_message(self, message: Message) -> None:
        """Encode the message's JSON line; write out unless it is a RECORD in a batch.

        Each line is encoded to its own bytes and joined at write time: msgspec's
        ``encode_into`` appending to one growing buffer measured twice as slow.
        """
        line = encoder.encode(as_dict(message))
        self._lines.append(line)
        self._size += len(line)
        if message.type is not SingerMessageType.RECORD or self._size >= BATCH_BYTES:
            self.flush()

    def _flush_at_exit(self) -> None:
        with contextlib.suppress(OSError, ValueError):  # the target is gone: nothing to do
            self.flush()

    def when_idle(self, action: t.Callable[[], None]) -> None:
        """Run ``action`` now, or, if it interrupts a ``flush``, as soon as that ends.

        For a signal handler that writes (the state on SIGTERM): Python runs handlers
        on the main thread, which writes the messages, between any two of its steps,
        such as two partial writes of a batch into a slow target's full pipe. Writing
        there would put the handler's lines inside a cut line, then send the whole
        batch again, as it is still pending. Deferred, they follow the complete batch.
        """
        if self._flushing:
            self._after_flush = action
        else:
            action()

    def flush(self) -> None:
        """Write out everything buffered, one line each; then what ``when_idle`` deferred.

        A failed write drops the deferred action: the output is gone, and the write's
        error ends the run.
        """
        self._flushing = True
        try:
            if self._lines:
                self._lines.append(b"")  # so the join ends with a newline
                write_all(sys.stdout.buffer, b"\n".join(self._lines))
                self._lines.clear()
                self._size = 0
            sys.stdout.flush()
        finally:
            self._flushing = False
            action, self._after_flush = self._after_flush, None
        if action is not None:
            action()


def write_all(out: t.BinaryIO, data: bytes) -> None:
    """Write every byte of ``data``.

    Unbuffered stdout (``python -u``, ``PYTHONUNBUFFERED``, as some orchestrators run
    taps) is a raw file: one ``write`` may take only part of a large batch into a full
    pipe when a signal interrupts it, and the rest would be lost silently.
    """
    view = memoryview(data)
    while view:
        view = view[out.write(view) or 0 :]
