"""One selector thread for every board of a double, plus timers and a few shared workers.

A double of 100 boards used to run ~6 threads and `select()` calls per board; `select()` cannot
take descriptors past 1024 and the threads cost memory and wake-ups. Here one thread waits on an
epoll selector (any descriptor number) for every SCPI listener and client and every console pty,
and runs timers (boot banners, late SCPI replies). Work that may block (a supply command that
powers a board, which joins that board's threads) goes to a small shared pool, so one board
never stalls the others.

If the loop itself dies, `failed` says why and the `on_failure` callbacks run: the double
reports it instead of carrying on with boards that no longer answer.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import logging
import os
import selectors
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

log = logging.getLogger(__name__)
WORKERS = 8  # commands that power boards run here; most take microseconds


class ReactorError(RuntimeError):
    """The reactor is closed or its thread died: nothing more runs on it."""


class Reactor:
    """Started on construction, stopped by `close()`; every method is thread-safe."""

    def __init__(self, name: str = "double", workers: int = WORKERS) -> None:
        self.name = name
        self.failed: BaseException | None = None
        self.on_failure: list[Callable[[BaseException], None]] = []
        self._selector = selectors.DefaultSelector()
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._selector.register(self._wake_r, selectors.EVENT_READ)
        self._lock = threading.Lock()
        self._calls: list[Callable[[], None]] = []
        self._timers: list[tuple[float, int, Callable[[], None]]] = []
        self._order = itertools.count()
        self._handlers: dict[int, tuple[Callable[[], None] | None, Callable[[], None] | None]] = {}
        self._woken = False
        self._closed = False
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix=f"{name}-work")
        self._thread = threading.Thread(target=self._run, name=f"{name}-reactor", daemon=True)
        self._thread.start()

    # -- from any thread -----------------------------------------------------------------------

    def alive(self) -> bool:
        return self._thread.is_alive() and self.failed is None

    def call_soon(self, fn: Callable[[], None]) -> None:
        """Run `fn` in the reactor thread, soon."""
        with self._lock:
            if self._closed:
                return
            self._calls.append(fn)
        self._wake()

    def call_at(self, when: float, fn: Callable[[], None]) -> None:
        """Run `fn` in the reactor thread at `when` (time.monotonic()); no cancel: check state."""
        with self._lock:
            if self._closed:
                return
            first = not self._timers or when < self._timers[0][0]
            heapq.heappush(self._timers, (when, next(self._order), fn))
        if first:
            self._wake()

    def call(self, fn: Callable[[], Any]) -> Any:
        """Run `fn` in the reactor thread and return its result (its exception is raised here)."""
        if threading.current_thread() is self._thread:
            return fn()
        future: Future = Future()

        def run() -> None:
            try:
                future.set_result(fn())
            except BaseException as exc:  # handed to the caller
                future.set_exception(exc)

        with self._lock:
            if self._closed or not self._thread.is_alive():
                raise ReactorError(f"the {self.name} reactor is not running ({self.failed})")
            self._calls.append(run)
        self._wake()
        while True:  # a reactor that dies meanwhile must not leave the caller waiting forever
            with contextlib.suppress(TimeoutError):
                return future.result(timeout=1.0)
            if not self._thread.is_alive():
                raise ReactorError(f"the {self.name} reactor died: {self.failed}")

    def submit(self, fn: Callable[[], None]) -> None:
        """Run `fn` on a worker thread (it may block); its exception is logged."""

        def guarded() -> None:
            try:
                fn()
            except Exception:
                log.exception("%s: a worker task failed", self.name)

        with contextlib.suppress(RuntimeError):  # closed: the work is moot
            self._pool.submit(guarded)

    def add_reader(self, fd: Any, on_read: Callable[[], None]) -> None:
        """Call `on_read` in the reactor thread whenever `fd` is readable (raises if it can't)."""
        self.call(lambda: self._set(fd, on_read, None))

    def set_writer(self, fd: Any, on_write: Callable[[], None] | None) -> None:
        """From the reactor thread: also (or no longer) call `on_write` when `fd` is writable."""
        number = fd if isinstance(fd, int) else fd.fileno()
        on_read, _ = self._handlers.get(number, (None, None))
        self._set(fd, on_read, on_write)

    def remove(self, fd: Any) -> None:
        """Forget `fd` (before closing it). Safe for an fd never added."""
        self.call(lambda: self._forget(fd))

    def close(self) -> None:
        """Stop the loop and the workers; join them. Safe to call twice."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._wake()
        if threading.current_thread() is not self._thread:
            self._thread.join()
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._selector.close()
        os.close(self._wake_r)
        os.close(self._wake_w)

    # -- in the reactor thread -----------------------------------------------------------------

    def _set(self, fd: Any, on_read: Callable[[], None] | None,
             on_write: Callable[[], None] | None) -> None:  # fmt: skip
        number = fd if isinstance(fd, int) else fd.fileno()
        events = (selectors.EVENT_READ if on_read else 0) | (
            selectors.EVENT_WRITE if on_write else 0
        )
        if number in self._handlers:
            self._selector.modify(number, events)
        else:
            self._selector.register(number, events)
        self._handlers[number] = (on_read, on_write)

    def _forget(self, fd: Any) -> None:
        number = fd if isinstance(fd, int) else fd.fileno()
        if self._handlers.pop(number, None) is not None:
            self._selector.unregister(number)

    def _wake(self) -> None:
        with self._lock:
            if self._woken:
                return
            self._woken = True
        with contextlib.suppress(BlockingIOError, OSError):
            os.write(self._wake_w, b"\0")

    def _run(self) -> None:
        try:
            self._loop()
        except BaseException as exc:
            self.failed = exc
            log.exception("%s: the reactor died; its boards no longer answer", self.name)
            for callback in list(self.on_failure):
                with contextlib.suppress(Exception):
                    callback(exc)

    def _loop(self) -> None:
        while True:
            with self._lock:
                if self._closed:
                    return
                calls, self._calls = self._calls, []
                now = time.monotonic()
                while self._timers and self._timers[0][0] <= now:
                    calls.append(heapq.heappop(self._timers)[2])
                timeout = None if not self._timers else max(self._timers[0][0] - now, 0.0)
            for fn in calls:
                self._guard(fn)
            if calls:
                continue  # a call may have added work or timers: look again before waiting
            for key, events in self._selector.select(timeout):
                if key.fd == self._wake_r:
                    with self._lock:
                        self._woken = False
                    with contextlib.suppress(BlockingIOError):
                        os.read(self._wake_r, 4096)
                    continue
                on_read, on_write = self._handlers.get(key.fd, (None, None))
                if events & selectors.EVENT_WRITE and on_write is not None:
                    self._guard(on_write)
                on_read = self._handlers.get(key.fd, (None, None))[0]  # on_write may drop it
                if events & selectors.EVENT_READ and on_read is not None:
                    self._guard(on_read)

    def _guard(self, fn: Callable[[], None]) -> None:
        """A bug in one board's handler costs that handler's call, never the loop."""
        try:
            fn()
        except Exception:
            log.exception("%s: a handler failed", self.name)
