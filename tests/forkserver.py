"""Tap runs forked from a pre-imported interpreter: real processes without the imports.

Each ``python -m tap_coupa`` spends ~0.5 s of CPU importing the Singer SDK and the tap
before it does anything, and ``make test-fast`` starts ~140 of them. Here each xdist worker
starts one *fork server*: ``python -m tests.forkserver``, which imports the tap once
and then waits, with no thread running, for requests on a socket. Each request is
forked into a child that takes the request's stdin/stdout/stderr as fds 0-2, its
environment, working directory and arguments, and then runs ``tap_coupa`` as
``__main__`` exactly as ``-m`` does, exiting as that process would (atexit handlers,
flushed stdio, the exit code or the signal). The worker sees a ``subprocess.Popen``:
pipes, ``communicate``, timeouts, ``send_signal`` and ``returncode`` work as usual;
the pid is the child's own, so signals reach the tap itself.

What differs from an exec'd process: the modules were imported before the request's
environment was set (the tap and the SDK read the environment only when they run),
children of one server share its hash seed, and the objects made by the imports are
frozen out of the cyclic GC (``gc.freeze``: its passes would touch, and so copy, the
server's memory in every child, ~0.07 s of CPU a run). ``TAP_COUPA_TESTS_EXEC=1`` runs every
tap of the test suite as a real exec'd subprocess instead.

This module imports only the standard library at the top: the server side imports
the tap (``PRELOAD``), the worker side needs nothing else.
"""

from __future__ import annotations

import atexit
import gc
import json
import os
import runpy
import selectors
import socket
import subprocess
import sys
import threading
import typing as t
from pathlib import Path

#: What ``python -m tap_coupa`` imports before and while it syncs (httpcore: lazily).
PRELOAD = ("tap_coupa.tap", "httpcore")
#: The command a forked run stands for.
TAP = (sys.executable, "-m", "tap_coupa")
ROOT = Path(__file__).resolve().parent.parent
MAX_REQUEST = 1 << 20


# -- the server process -------------------------------------------------------------------


def _serve(control: socket.socket) -> dict[str, t.Any] | None:
    """Fork a child per request until the worker hangs up.

    Returns only in a forked child, with its request (stdio already in place); the
    server itself returns None when the worker has gone.
    """
    selector = selectors.DefaultSelector()
    selector.register(control, selectors.EVENT_READ)
    while True:
        for key, _ in selector.select():
            if key.fileobj is not control:  # a child's pidfd: it has exited
                pid, status = key.data
                selector.unregister(key.fileobj)
                os.close(key.fd)
                _, wait_status = os.waitpid(pid, 0)
                status.send(str(os.waitstatus_to_exitcode(wait_status)).encode())
                status.close()
                continue
            message, fds, _, _ = socket.recv_fds(control, MAX_REQUEST, 4)
            if not message:
                return None
            status = socket.socket(fileno=fds[0])
            pid = os.fork()
            if pid == 0:
                for other in list(selector.get_map().values()):
                    if other.data is not None:
                        os.close(other.fd)
                        other.data[1].close()
                selector.close()
                control.close()
                status.close()
                for target, fd in enumerate(fds[1:]):
                    os.dup2(fd, target)
                    os.close(fd)
                request: dict[str, t.Any] = json.loads(message)
                return request
            for fd in fds[1:]:
                os.close(fd)
            status.send(str(pid).encode())
            selector.register(os.pidfd_open(pid), selectors.EVENT_READ, (pid, status))


def main() -> None:
    """Import the tap, serve requests; in a forked child, become ``python -m tap_coupa``."""
    for module in PRELOAD:
        __import__(module)
    gc.freeze()
    if threading.active_count() != 1:  # a fork would copy a lock some thread holds
        raise RuntimeError(f"threads running in the fork server: {threading.enumerate()}")
    request = _serve(socket.socket(fileno=int(sys.argv[1])))
    if request is None:
        return
    os.environ.clear()
    os.environ.update(request["env"])
    os.chdir(request["cwd"])
    sys.path[0] = request["cwd"]  # as -m puts the working directory first
    sys.argv = [sys.argv[0], *request["args"]]
    runpy.run_module("tap_coupa", run_name="__main__", alter_sys=True)


# -- the worker's side --------------------------------------------------------------------


class ForkServer:
    """One fork server per process that runs taps, started on first use."""

    _lock = threading.Lock()
    _current: ForkServer | None = None

    def __init__(self) -> None:
        self.control, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.forkserver", str(theirs.fileno())],
            pass_fds=[theirs.fileno()],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            cwd=ROOT,
        )
        theirs.close()

    @classmethod
    def get(cls) -> ForkServer:
        with cls._lock:
            if cls._current is None or cls._current.process.poll() is not None:
                cls._current = cls()
                atexit.register(cls._current.close)
            return cls._current

    def close(self) -> None:
        """Hang up: the server exits once its pending requests are forked."""
        self.control.close()
        self.process.wait(timeout=30)

    def fork(
        self, args: list[str], env: dict[str, str], cwd: str, stdio: list[int]
    ) -> socket.socket:
        """Ask for a run; return the socket that brings its pid, then its exit code."""
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        request = json.dumps({"args": args, "env": env, "cwd": cwd}).encode()
        with self._lock:
            socket.send_fds(self.control, [request], [theirs.fileno(), *stdio])
        theirs.close()
        return ours


class ForkedPopen(subprocess.Popen[t.Any]):
    """A ``subprocess.Popen`` of ``python -m tap_coupa ...`` whose child is forked.

    Only the process creation and the wait for its exit are replaced (subprocess's
    private hooks for them); pipes, ``communicate`` and signals are Popen's own.
    """

    _status: socket.socket

    def _execute_child(  # type: ignore[override]
        self,
        args: list[str],
        executable: t.Any,
        preexec_fn: t.Any,
        close_fds: bool,
        pass_fds: t.Any,
        cwd: t.Any,
        env: t.Any,
        startupinfo: t.Any,
        creationflags: t.Any,
        shell: bool,
        p2cread: int,
        p2cwrite: int,
        c2pread: int,
        c2pwrite: int,
        errread: int,
        errwrite: int,
        *_: t.Any,
    ) -> None:
        if tuple(args[: len(TAP)]) != TAP or preexec_fn or pass_fds or shell:
            raise ValueError(f"only a plain `python -m tap_coupa` run forks: {args}")
        stdio = [
            fd if fd != -1 else default
            for fd, default in ((p2cread, 0), (c2pwrite, 1), (errwrite, 2))
        ]
        environment = dict(os.environ if env is None else env)
        directory = os.fspath(cwd) if cwd is not None else os.getcwd()
        try:
            self._status = ForkServer.get().fork(
                list(args[len(TAP) :]), environment, directory, stdio
            )
            self.pid = int(self._status.recv(32))
            self._child_created = True
        finally:
            self._close_pipe_fds(p2cread, p2cwrite, c2pread, c2pwrite, errread, errwrite)  # type: ignore[attr-defined]

    def _exit_code(self, timeout: float | None) -> int | None:
        """The child's exit code from the server, or None if not yet there."""
        self._status.settimeout(timeout)
        try:
            answer = self._status.recv(32)
        except (TimeoutError, BlockingIOError):
            return None
        if not answer:
            raise ChildProcessError(f"the fork server went away while {self.pid} ran")
        self._status.close()
        return int(answer)

    def _internal_poll(self, _deadstate: int | None = None, **_: t.Any) -> int | None:
        if self.returncode is None:
            try:
                self.returncode = self._exit_code(0)
            except (ChildProcessError, OSError):
                if _deadstate is None:
                    raise
                self.returncode = _deadstate
        return self.returncode

    def _wait(self, timeout: float | None) -> int:
        if self.returncode is None:
            self.returncode = self._exit_code(timeout)
            if self.returncode is None:
                raise subprocess.TimeoutExpired(self.args, t.cast("float", timeout))
        return self.returncode


def popen(args: list[str], **kwargs: t.Any) -> subprocess.Popen[t.Any]:
    """``subprocess.Popen(args, **kwargs)``, forked when ``args`` runs the tap."""
    forks = tuple(args[: len(TAP)]) == TAP and os.environ.get("TAP_COUPA_TESTS_EXEC") != "1"
    return (ForkedPopen if forks else subprocess.Popen)(args, **kwargs)


if __name__ == "__main__":
    main()
