"""A child process's tie to the process that launched it: its stdin. Both ends live here:
`TiedChild` is the launcher's, `stop_when_stdin_closes` the child's.

The launcher keeps the write end of the child's stdin open and never writes to it (past any
start-up line). When the launcher stops the child it closes it; when the launcher dies by any
means, even SIGKILL, the kernel closes it. Either way the child reads end-of-file and stops as
on SIGTERM, so a killed pytest leaves no double or OTA service behind. (PR_SET_PDEATHSIG would
fire when the launching *thread* ends, and the plugin launches from short-lived threads.)
"""

from __future__ import annotations

import contextlib
import os
import selectors
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path


def stop_when_stdin_closes() -> threading.Thread:
    """Watch stdin in a daemon thread; at its end, SIGTERM this process (its graceful stop)."""

    # os.read, not sys.stdin: a daemon thread blocked in the buffered reader holds its lock, and
    # the interpreter, flushing stdin at exit, aborts with "could not acquire lock".
    fd = sys.stdin.fileno()

    def watch() -> None:
        with contextlib.suppress(OSError):
            while os.read(fd, 4096):
                pass
        os.kill(os.getpid(), signal.SIGTERM)

    thread = threading.Thread(target=watch, name="rig-lifeline", daemon=True)
    thread.start()
    return thread


#: How often a launcher waiting for a child's line looks whether the child is still there.
EXIT_POLL_S = 0.5


class TiedChild:
    """The launcher's end: a child with its stdin held open, stderr appended to `log_path`, and
    stdout read as lines (a child announces itself there). In its own session, so Ctrl-C at
    the terminal reaches the launcher, which stops it in order."""

    def __init__(self, argv: Sequence[str], *, log_path: Path) -> None:
        self.argv = list(argv)
        self.log_path = log_path
        self.launched = 0.0  # time.monotonic() at launch: deadlines count from it
        self._proc: subprocess.Popen[bytes] | None = None
        self._pending = b""

    def launch(self) -> None:
        """Start the child and return at once."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self._proc = subprocess.Popen(
                self.argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log,
                start_new_session=True,
            )  # fmt: skip
        self.launched = time.monotonic()
        self._pending = b""

    def send(self, data: bytes) -> None:
        """Write to its stdin, which stays open: its end is the child's signal to stop."""
        assert self._proc is not None and self._proc.stdin is not None, "launch() first"
        self._proc.stdin.write(data)
        self._proc.stdin.flush()

    def lines(self, deadline: float) -> Iterator[bytes]:
        """Its stdout, line by line as they come, until the child exits or the deadline
        (time.monotonic) passes. (Its exit is looked at twice a second as well as at the end of
        its stdout: a process it started may hold that open after it is gone.)"""
        proc = self._proc
        assert proc is not None and proc.stdout is not None, "launch() first"
        fd = proc.stdout.fileno()
        with selectors.DefaultSelector() as selector:
            selector.register(fd, selectors.EVENT_READ)
            while True:
                while b"\n" in self._pending:
                    line, self._pending = self._pending.split(b"\n", 1)
                    yield line
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return
                if not selector.select(min(remaining, EXIT_POLL_S)):
                    if proc.poll() is not None:
                        return
                    continue
                chunk = os.read(fd, 65536)
                if not chunk:
                    return
                self._pending += chunk

    def stop(self, timeout_s: float) -> None:
        """Close its stdin (it stops gracefully), then SIGTERM, then SIGKILL to its whole
        session, waiting `timeout_s` after each; safe twice."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        for step in (_close_stdin, _terminate, _kill):
            step(proc)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout_s)
                break
        if proc.stdout is not None:
            proc.stdout.close()

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None


def _close_stdin(proc: subprocess.Popen[bytes]) -> None:
    if proc.stdin is not None:
        with contextlib.suppress(OSError):
            proc.stdin.close()


def _terminate(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        proc.send_signal(signal.SIGTERM)


def _kill(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
