"""The emulated ASR's ear at the OTA service: a long-poll that rings when the board has work.

An idle emulated ASR used to check in every 0.2 s: 50 idle boards cost two thirds of a core
between the double and the service, and a push waited up to 0.2 s to be OFFERED. Instead this
thread holds one long-poll open (`GET .../deployments/next?wait=25`, docs/ota-api.md): the
service answers the moment the board has work, and `ring` wakes the ASR's loop, which checks
in then. It polls only while the ASR is idle (`arm`), so it never asks again for the
deployment the ASR is working on.

When the service is unreachable it rings too, so the ASR checks in and logs the failure at its
usual pace. A service without the long-poll answers at once; the watch then asks at the
check-in period, as the ASR used to. Stopping never waits for a poll in flight: the thread is a
daemon told by its own event to drop whatever answer comes back.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from rig.ota.device_client import DeviceClient

#: How long one long-poll waits (the service allows 30 s): 100 idle boards ask 4 times a second.
LONG_POLL_S = 25.0


class WorkWatch:
    """One board's long-poll for work, on its own daemon thread."""

    def __init__(
        self, device: DeviceClient, ring: Callable[[], None], period: Callable[[], float]
    ) -> None:
        self.device = device
        self._ring = ring  # wakes the ASR's loop: it checks in
        self._period = period  # the check-in period: the pace when the long-poll cannot help
        self._armed = threading.Event()
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="asr-watch", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def arm(self) -> None:
        """The ASR is idle: listen for work (a poll already waiting goes on waiting)."""
        self._armed.set()

    def stop(self) -> None:
        """Power is gone: drop the poll in flight (not waited for) and end the thread."""
        self._stopped.set()
        self._armed.set()

    def _run(self) -> None:
        while True:
            self._armed.wait()
            if self._stopped.is_set():
                return
            started, failed = time.monotonic(), False
            try:
                offer = self.device.next_deployment(wait_s=LONG_POLL_S)
            except Exception:  # unreachable, refused, or the client closed under the poll:
                offer, failed = None, True  # the ASR's own check-in says why, in its log
            if self._stopped.is_set():
                return
            if offer is not None or failed:
                self._armed.clear()  # the ASR re-arms once it is idle again
                self._ring()
            elif time.monotonic() - started < LONG_POLL_S / 2:
                self._stopped.wait(self._period())  # no long-poll there: ask at the old pace
