"""The emulated ASR's deployment reports to the OTA service: in the order it makes them, with
progress kept off the chunk path.

A report of a deployment's state (ACCEPTED, TRANSFERRING, … SUCCEEDED, the failures) goes out
from the ASR's own thread, which waits for it: whether the service heard it decides what the
ASR keeps in memory, and the service's history keeps the time it heard it. Progress (more
bytes at the MCU: TRANSFERRING again, which only updates the count) is different: the ASR
notes it between two chunks of the handoff, and an HTTP round trip there cost every chunk its
share (issue 13). So `progress()` only leaves it here, and a thread of its own sends it:
started when there is progress to send, gone when there is none (an idle board keeps none).

Progress is coalesced at a bounded rate: an unsent report is replaced by a newer one (the
newest bytes count is what matters), and one goes out at most every `interval` seconds (the
first after a state report at once). A state report first lets the progress noted before it
out, at once and in order, so the service hears every state in the order the ASR reached it,
and the last progress before each. Power-off (`stop`) or an ASR reboot (`forget`) loses
progress not sent yet, as RAM would; a report already in flight is not waited for at power-off.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from rig.ota.device_client import DeviceClient, OtaClientError

PROGRESS = "TRANSFERRING"
#: Least time between two progress reports of one ASR (4 a second at most; each costs the
#: service a request, and the service may share the double's host, or even its process).
PROGRESS_INTERVAL_S = 0.25
#: A backstop for a state report waiting on the progress in flight (which ends by the client's
#: own timeout, 30 s): past it the state report goes out anyway, saying so.
FLUSH_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class _Progress:
    device: DeviceClient
    deployment: str
    details: dict[str, Any]


class Reporter:
    """One ASR's reports to the OTA service (one per power-on, like the ASR's RAM)."""

    def __init__(
        self,
        log: Callable[[str], None],
        *,
        interval: float = PROGRESS_INTERVAL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._log = log
        self.interval = interval
        self._clock = clock
        self._cond = threading.Condition()
        self._pending: _Progress | None = None  # the newest progress, not sent yet
        self._busy = False  # a progress report is in flight
        self._urgent = 0  # state reports waiting for the progress before them: no interval
        self._next_at = 0.0  # when the next progress report may go
        self._worker: threading.Thread | None = None
        self._stopped = False
        self.sent = 0  # progress reports sent (answered or not)
        self.coalesced = 0  # progress reports replaced by a newer one before they went out

    def progress(self, device: DeviceClient, deployment: str, **details: Any) -> None:
        """Note progress of `deployment` (TRANSFERRING with `details`); never blocks."""
        with self._cond:
            if self._stopped:
                return
            if self._pending is not None:
                self.coalesced += 1
            self._pending = _Progress(device, deployment, details)
            if self._worker is None:
                self._worker = threading.Thread(target=self._run, name="asr-report", daemon=True)
                self._worker.start()
            else:
                self._cond.notify_all()

    def report(self, device: DeviceClient, deployment: str, state: str, **details: Any) -> bool:
        """Send a state report, after the progress noted before it. Returns whether the
        service heard it (it answered, even to refuse it); a failure is logged."""
        self._flush()
        try:
            return self._send(device, deployment, state, details)
        finally:
            with self._cond:
                self._next_at = 0.0  # the progress after a state report goes at once

    def forget(self) -> None:
        """The ASR rebooted: progress not sent yet is lost with its RAM."""
        with self._cond:
            self._pending = None
            self._cond.notify_all()

    def stop(self) -> None:
        """Power-off: nothing more goes out from here; the report in flight is not waited for."""
        with self._cond:
            self._stopped, self._pending = True, None
            self._cond.notify_all()

    @property
    def idle(self) -> bool:
        """Nothing to send and nothing in flight."""
        with self._cond:
            return self._pending is None and not self._busy

    def _flush(self) -> None:
        """Wait until the progress noted so far has gone out (sent now, not at the interval)."""
        deadline = self._clock() + FLUSH_TIMEOUT_S
        with self._cond:
            self._urgent += 1
            self._cond.notify_all()
            try:
                while (self._pending is not None or self._busy) and not self._stopped:
                    remaining = deadline - self._clock()
                    if remaining <= 0:
                        self._log("ASR: a progress report is still in flight; reporting on")
                        return
                    self._cond.wait(remaining)
            finally:
                self._urgent -= 1

    def _run(self) -> None:
        while True:
            with self._cond:
                while True:
                    if self._stopped or self._pending is None:
                        self._worker = None  # the next progress starts a new one
                        self._cond.notify_all()
                        return
                    wait = self._next_at - self._clock()
                    if self._urgent or wait <= 0:
                        break
                    self._cond.wait(wait)
                item, self._pending, self._busy = self._pending, None, True
            try:
                self._send(item.device, item.deployment, PROGRESS, item.details)
            except Exception as exc:  # a bug must show on the console, not end reporting
                self._log(f"ASR: internal error reporting progress: {exc!r}")
            finally:
                with self._cond:
                    self._busy = False
                    self._next_at = self._clock() + self.interval
                    self.sent += 1
                    self._cond.notify_all()

    def _send(self, device: DeviceClient, deployment: str, state: str,
              details: dict[str, Any]) -> bool:  # fmt: skip
        try:
            device.progress(deployment, state, **details)
        except OtaClientError as exc:
            self._log(f"ASR: could not report {state}: {exc}")
            return exc.status != 0  # the service answered (refused): it knows better
        return True
