"""`rig double --processes N`: the boards shared round-robin over N child doubles, one per core.

One double is one Python process, so a fleet push is bound by one core. The parent starts N
`rig double --json` children, each with a share of the boards, and relays their announcements as
one double's (the same JSON line per board, or the same table), so its consumers need no change:
each board's `control` is the control port of the child serving it. The parent stays between
the children and whoever started it: SIGTERM/SIGINT stops every child; a child that fails to
start fails the start with its reason; a child that dies while serving ends the parent with
exit 1, naming the boards that went away. Children get SIGTERM if the parent is killed outright.
"""

from __future__ import annotations

import collections
import contextlib
import ctypes
import json
import os
import selectors
import signal
import subprocess
import sys
from collections.abc import Callable, Sequence
from typing import TextIO

from rig.double.errors import DoubleError
from rig.double.runner import StopSignals, ready_table

STOP_TIMEOUT_S = 15.0  # a child closing 50 boards takes well under a second
REASON_LINES = 4  # of a child's stderr, quoted when it fails


def share(names: Sequence[str], processes: int) -> list[list[str]]:
    """Board i goes to child i mod N (never an empty child): neighbours land on different cores."""
    if processes < 1:
        raise DoubleError(f"--processes {processes}: give 1 (one double) or more")
    count = min(processes, len(names))
    return [list(names[i::count]) for i in range(count)]


def _die_with_parent() -> None:
    """Runs in the child before exec: SIGTERM when the parent dies, even by SIGKILL (Linux)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class _Child:
    """One child double: its process, its boards, what it announced and said on stderr."""

    def __init__(self, names: list[str], argv: list[str]) -> None:
        self.names = names
        self.boards: dict[str, dict] = {}
        self.tail: collections.deque[str] = collections.deque(maxlen=REASON_LINES)
        self._pending = b""
        self.terminated = False  # SIGTERM sent (see terminate)
        self.proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            preexec_fn=_die_with_parent if sys.platform == "linux" else None,
        )  # fmt: skip
        assert self.proc.stdout is not None and self.proc.stderr is not None
        self.stdout, self.stderr = self.proc.stdout.fileno(), self.proc.stderr.fileno()
        os.set_blocking(self.stderr, False)  # read what is there once it exits, never hang

    @property
    def label(self) -> str:
        return f"the double process (pid {self.proc.pid}) for boards {', '.join(self.names)}"

    def read_stdout(self) -> bool:
        """Take its announcement lines; False once its stdout is closed (it exited)."""
        chunk = os.read(self.stdout, 65536)
        self._pending += chunk
        *lines, self._pending = self._pending.split(b"\n")
        for line in lines:
            with contextlib.suppress(ValueError, KeyError, TypeError):
                info = json.loads(line)
                self.boards[str(info["board"])] = info
        return bool(chunk)

    def relay_stderr(self, err: TextIO) -> bool | None:
        """Pass its stderr on to ours, keeping the last lines.

        True: text passed on; False: end of file; None: nothing there now."""
        try:
            chunk = os.read(self.stderr, 65536)
        except BlockingIOError:
            return None
        text = chunk.decode(errors="replace")
        if text:
            err.write(text)
            err.flush()
            self.tail.extend(line for line in text.splitlines() if line.strip())
        return bool(chunk)

    def reason(self, err: TextIO) -> str:
        """Why it ended: its last stderr lines (it says why), else its exit code or signal."""
        code = self.proc.wait(timeout=STOP_TIMEOUT_S)
        with contextlib.suppress(OSError):
            while self.relay_stderr(err):
                pass
        said = [line.removeprefix("rig double: ") for line in self.tail]
        how = f"killed by signal {-code}" if code < 0 else f"exit code {code}"
        return f"{' / '.join(said)} ({how})" if said else how

    def terminate(self) -> None:
        """SIGTERM, once, if it still runs: it closes its boards and exits 0.

        Once only: a child that took the first puts the default handler back once its boards
        are closed, so a second one (from `_stop_all`, then `stop`, then the cleanup) landing
        while it exits would kill it (exit -15, not 0): a clean stop reported as a failure."""
        if self.proc.poll() is None and not self.terminated:
            self.terminated = True
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGTERM)

    def stop(self) -> int:
        """SIGTERM, wait, SIGKILL if it hangs; its exit code."""
        self.terminate()
        try:
            return self.proc.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()

    def close(self) -> None:
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()


def serve_processes(
    groups: Sequence[list[str]],
    argv: Callable[[list[str]], list[str]],
    *,
    as_json: bool,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    """Run one child per group (`argv(names)` starts a `rig double --json` for those boards).

    Announces every board, in the order of `groups` round-robin, once all children are ready;
    then waits for SIGTERM/SIGINT. DoubleError if a child fails to start (the others are
    stopped). Returns 0, or 1 if a child died while serving or failed while stopping.
    """
    out = out if out is not None else sys.stdout
    err = err if err is not None else sys.stderr
    order = [name for row in zip(*groups, strict=False) for name in row]
    order += [name for group in groups for name in group if name not in order]
    children: list[_Child] = []
    with StopSignals() as stop, selectors.DefaultSelector() as selector:
        selector.register(stop.fileno(), selectors.EVENT_READ, None)
        try:
            for names in groups:
                child = _Child(names, argv(names))
                children.append(child)
                selector.register(child.stdout, selectors.EVENT_READ, (child, "out"))
                selector.register(child.stderr, selectors.EVENT_READ, (child, "err"))
            ended = _until(selector, children, err, ready=False)
            if ended is _STOP:
                return _stop_all(children, err)
            if isinstance(ended, _Child):
                raise DoubleError(f"{ended.label} could not start: {ended.reason(err)}")
            rows = {name: info for child in children for name, info in child.boards.items()}
            rows_in_order = [rows[name] for name in order]
            if as_json:
                out.write("".join(json.dumps(row) + "\n" for row in rows_in_order))
            else:
                out.write(ready_table(rows_in_order))
            out.flush()
            ended = _until(selector, children, err, ready=True)
            if isinstance(ended, _Child):
                print(f"rig double: {ended.label} died while serving: {ended.reason(err)}; "
                      f"boards {', '.join(ended.names)} no longer answer; stopping the other "
                      "double processes", file=err)  # fmt: skip
                _stop_all(children, err)
                return 1
            return _stop_all(children, err)
        finally:  # never leave a child behind, whatever went wrong above
            for child in children:
                child.terminate()
            for child in children:
                child.stop()
                child.close()


_STOP = object()  # what `_until` returns when SIGTERM/SIGINT arrived


def _until(
    selector: selectors.BaseSelector, children: list[_Child], err: TextIO, *, ready: bool
) -> object:
    """Pump the children until every board is announced (with `ready`: until something ends).

    Returns None once all are announced, `_STOP` when a stop was asked (checked first, so a
    Ctrl-C reaching parent and children at once is a stop, not a death), or the child whose
    stdout closed (it exited)."""
    while ready or any(set(child.names) - set(child.boards) for child in children):
        events = selector.select()
        if any(key.data is None for key, _ in events):
            return _STOP
        for key, _ in events:
            child, stream = key.data
            if stream == "err" and child.relay_stderr(err) is False:
                selector.unregister(key.fileobj)
            elif stream == "out" and not child.read_stdout():
                selector.unregister(key.fileobj)
                return child
    return None


def _stop_all(children: list[_Child], err: TextIO) -> int:
    """SIGTERM every child and wait for each; 1 if one did not stop cleanly (said on stderr)."""
    for child in children:
        child.terminate()  # all at once: they close their boards side by side
    failed = 0
    for child in children:
        if child.stop() != 0:
            print(f"rig double: {child.label} did not stop cleanly: {child.reason(err)}", file=err)
            failed = 1
    return failed
