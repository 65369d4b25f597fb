"""Record a board's ASR⇆MCU link from its sniffer ports while a test runs.

A real bench wires a two-port UART sniffer (one port per direction) and names the ports in
boards.yaml under `tap:`; an emulated board's double offers the same on two pseudo-terminals.
Either way the bytes are read here with pyserial, timestamped, and fed to the decoder.
"""

from __future__ import annotations

import contextlib
import threading
import time

import serial

from rig.errors import RigError
from rig.protocol import aflib
from rig.protocol.decoder import ASR_TO_MCU, MCU_TO_ASR, Event, StreamDecoder
from rig.protocol.transcript import Transcript


class SnifferError(RigError):
    """A sniffer port could not be opened."""


class HandoffRecorder:
    """Reads both directions of the link until stopped; `transcript()` at any time."""

    def __init__(self, ports: dict[str, str], *, baud: int = 115200, name: str = "board") -> None:
        self.ports = {ASR_TO_MCU: ports[ASR_TO_MCU], MCU_TO_ASR: ports[MCU_TO_ASR]}
        self.baud, self.name = baud, name
        self._decoder = StreamDecoder()
        self._events: list[Event] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._serials: list[serial.SerialBase] = []
        self._threads: list[threading.Thread] = []

    def start(self) -> HandoffRecorder:
        for direction, url in self.ports.items():
            try:
                port = serial.serial_for_url(url, baudrate=self.baud, timeout=0.05)
            except (serial.SerialException, OSError) as exc:
                self.stop()
                raise SnifferError(
                    f"{self.name}: sniffer port {url} ({direction}) cannot be opened: {exc}; "
                    f"check boards.{self.name}.tap.{direction}"
                ) from None
            self._serials.append(port)
            thread = threading.Thread(
                target=self._read, args=(direction, port), name=f"tap-{direction}", daemon=True
            )
            self._threads.append(thread)
        for thread in self._threads:
            thread.start()
        return self

    def _read(self, direction: str, port: serial.SerialBase) -> None:
        while not self._stop.is_set():
            try:
                data = port.read(max(1, port.in_waiting))
            except (serial.SerialException, OSError, TypeError):
                if self._stop.is_set():
                    return
                self._stop.wait(0.1)  # a port gone (unplugged, EIO) fails at once: do not spin
                continue
            if data:
                with self._lock:
                    self._events += self._decoder.feed(direction, data, time.time())

    def transcript(self) -> Transcript:
        """What was decoded so far (the recorder keeps going)."""
        with self._lock:
            return Transcript(list(self._events))

    def wait_for(self, predicate, timeout_s: float = 30.0, what: str = "the handoff") -> Transcript:
        """Poll the transcript until `predicate(transcript)` holds; raise with the transcript."""
        deadline = time.monotonic() + timeout_s
        while True:
            transcript = self.transcript()
            if predicate(transcript):
                return transcript
            if time.monotonic() > deadline:
                raise SnifferError(
                    f"{self.name}: {what} did not show on the sniffer within {timeout_s:g} s; "
                    f"it saw:\n{transcript.text()[-3000:]}"
                )
            time.sleep(0.02)

    def wait_for_delivery(
        self, image: bytes, *, version_id: int, image_type: int = 101, timeout_s: float = 10.0
    ) -> Transcript:
        """The handoff of `image` as the sniffer saw it, checked whole (`assert_delivered`).

        Waits for its last step first, the MCU's version write: the two ports are read apart,
        so the service may say SUCCEEDED before the MCU's last bytes are decoded here. A
        handoff that never ends is checked as it stands, and the error names the missing step."""
        try:
            transcript = self.wait_for(
                lambda t: t.version_written(image_type, version_id) is not None,
                timeout_s,
                what=f"the version write of {version_id} to {aflib.version_attribute(image_type)}",
            )
        except SnifferError:
            transcript = self.transcript()
        transcript.assert_delivered(image, version_id=version_id, image_type=image_type)
        return transcript

    def stop(self) -> Transcript:
        self._stop.set()
        for port in self._serials:
            with contextlib.suppress(Exception):
                port.cancel_read()
        for thread in self._threads:
            if thread.ident is not None:  # start() may fail on a later port before any runs
                thread.join(timeout=2)
        for port in self._serials:
            with contextlib.suppress(Exception):
                port.close()
        with self._lock:
            self._events += self._decoder.flush(time.time())
        return self.transcript()
