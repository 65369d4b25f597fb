"""The bell a device's long-poll waits on: rung by any change of that device's deployments.

Without it a device learns of a push only when it next asks, so an emulated fleet asked every
0.2 s: 150-180 ms between a push and OFFERED, and idle boards that cost a core between them.
A long-poll (GET /v1/device/{deviceId}/deployments/next?wait=S) waits here instead.

Waiters are asyncio events on the server's loop, so a hundred waiting devices hold no thread
of the pool (40 threads: they would run out). Changes are made by sync code in pool threads,
or by a test calling the service directly, so a ring reaches the loop through
`loop.call_soon_threadsafe`. When the server stops, `close` ends every wait at once: uvicorn
would otherwise hold its graceful stop for the waits, then cancel them with a traceback.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress

_Waiter = tuple[asyncio.AbstractEventLoop, asyncio.Event]


class WorkBell:
    """Per device: the long-polls waiting for its next change of work."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waiting: dict[str, list[_Waiter]] = {}
        self.closed = False

    @contextmanager
    def listening(self, device_id: str) -> Iterator[asyncio.Event]:
        """An event set at the next ring for `device_id` (listen before looking for work, so a
        push between the look and the wait is not missed). Call on the event loop."""
        waiter = (asyncio.get_running_loop(), asyncio.Event())
        with self._lock:
            self._waiting.setdefault(device_id, []).append(waiter)
            if self.closed:
                waiter[1].set()
        try:
            yield waiter[1]
        finally:
            with self._lock:
                waiters = self._waiting.get(device_id, [])
                if waiter in waiters:
                    waiters.remove(waiter)
                if not waiters:
                    self._waiting.pop(device_id, None)

    def ring(self, device_id: str) -> None:
        """Wake every long-poll of `device_id`; safe from any thread."""
        with self._lock:
            waiters = list(self._waiting.get(device_id, ()))
        for loop, event in waiters:
            with suppress(RuntimeError):  # that loop has closed: nobody waits there any more
                loop.call_soon_threadsafe(event.set)

    def close(self) -> None:
        """The server is stopping: every wait ends now, and every later one at once."""
        with self._lock:
            self.closed = True
            devices = list(self._waiting)
        for device_id in devices:
            self.ring(device_id)

    def waiting(self, device_id: str | None = None) -> int:
        """How many long-polls wait (for one device, or for all)."""
        with self._lock:
            if device_id is not None:
                return len(self._waiting.get(device_id, ()))
            return sum(len(w) for w in self._waiting.values())
