"""The OTA half of an emulated board: flash, MCU OTA state machine, link, tap and ASR.

It follows the MCU's power: at power-on a fresh link and ASR start (RAM state is new) over the
same flash (kept); at power-off they stop and whatever was in flight is lost, as on a board.
"""

from __future__ import annotations

import threading
from pathlib import Path

from rig import aflib
from rig.afpro import AsrTransport, McuTransport
from rig.double.asr import Asr, AsrTimeouts
from rig.double.flash import Flash
from rig.double.link import Link
from rig.double.mcu import EmulatedMcu
from rig.double.mcu_ota import McuOta
from rig.double.spec import EmulatedBoardSpec
from rig.double.tap import Tap
from rig.ota.client import DeviceClient

DEFAULT_IMAGE_TYPE = 101


class BoardOta:
    """Everything behind one board's ASR⇆MCU UART, across power cycles."""

    def __init__(self, spec: EmulatedBoardSpec, state_dir: Path, *, baud: int = 115200,
                 paced: bool = False) -> None:  # fmt: skip
        self.spec = spec
        self.state_dir = state_dir
        self.flash = Flash(
            state_dir / "flash", factory_version=spec.firmware_version,
            image_type=DEFAULT_IMAGE_TYPE, slot_bytes=spec.slot_bytes,
        )  # fmt: skip
        self.tap = Tap(state_dir / "link.capture.jsonl")
        self.baud, self.paced = baud, paced
        self.radio_bps: float = 250_000  # the cloud→ASR leg when paced (a BLE-class radio)
        self.timeouts = AsrTimeouts()
        self.image_types = range(101, 201)  # what the MCU takes; its profile says what is sent
        self.mcu: EmulatedMcu | None = None  # the console side, wired by the runner
        self._device: DeviceClient | None = None
        self._lock = threading.RLock()
        self._link: Link | None = None
        self._asr: Asr | None = None
        self._ota: McuOta | None = None

    # -- wiring --------------------------------------------------------------------------------

    def running_version(self) -> str:
        return self.flash.running_version()

    def connect(self, url: str, device_id: str, secret: str) -> None:
        """The ASR's identity at the OTA service (it keeps it across power cycles)."""
        with self._lock:
            if self._device is not None:
                self._device.close()
            self._device = DeviceClient(url, device_id, secret)
            if self._asr is not None:
                self._asr.connect(self._device)

    def info(self) -> dict[str, str]:
        return self.tap.info()

    # -- power ---------------------------------------------------------------------------------

    def power(self, on: bool) -> None:
        with self._lock:
            if on and self._link is None:
                self._start()
            elif not on and self._link is not None:
                self._stop()

    def booted(self) -> None:
        """The firmware is running: it reports its version attributes (afLib does at start)."""
        with self._lock:
            if self._ota is None or self._link is None:
                return
            for message in self._ota.startup_messages():
                self._link.send_from_mcu(aflib.encode(message))

    def _start(self) -> None:
        mcu_side, asr_side = McuTransport(), AsrTransport()
        self._ota = McuOta(self.flash, log=self._console, on_reboot=self._reboot,
                           accepted_types=self.image_types)  # fmt: skip
        asr = Asr(send=lambda raw: self._link.send_from_asr(raw) if self._link else None,
                  log=self._console, timeouts=self.timeouts,
                  radio_bps=self.radio_bps if self.paced else None)  # fmt: skip
        self._link = Link(
            mcu=mcu_side, asr=asr_side, to_mcu=self._to_mcu, to_asr=asr.deliver, tap=self.tap,
            baud=self.baud, paced=self.paced, name=self.spec.name,
        )  # fmt: skip
        self._asr = asr
        asr.connect(self._device)
        self._link.start()
        asr.start()

    def _stop(self) -> None:
        asr, link = self._asr, self._link
        self._asr = self._link = self._ota = None
        if asr is not None:
            asr.stop()
        if link is not None:
            link.stop()

    def _to_mcu(self, raw: bytes) -> None:
        """A whole message reached the MCU: run its OTA state machine, send its answers."""
        ota, link = self._ota, self._link
        if ota is None or link is None:
            return
        try:
            message = aflib.decode(raw)
        except aflib.ProtocolError as exc:
            self._console(f"afLib: dropped a malformed message: {exc}")
            return
        for answer in ota.handle(message):
            link.send_from_mcu(aflib.encode(answer))

    def _reboot(self) -> None:
        """The MCU applied an image (or fell back): the console shows a fresh boot."""
        if self.mcu is not None:
            self.mcu.reboot()

    def _console(self, line: str) -> None:
        if self.mcu is not None:
            self.mcu.log_line(line)

    def close(self) -> None:
        with self._lock:
            self._stop()
            if self._device is not None:
                self._device.close()
            self.tap.close()
