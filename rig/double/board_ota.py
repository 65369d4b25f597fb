"""The OTA half of an emulated board: flash, MCU OTA state machine, link, tap and ASR.

With `external_mcu` in its spec the MCU is a real one on a UART (rig.double.external_mcu): the
emulated ASR talks to it through the same link and tap, and the emulated MCU has no OTA part.

It follows the MCU's power: at power-on a fresh link and ASR start (RAM state is new) over the
same flash and ASR memory (kept); at power-off they stop and whatever was in flight is lost, as
on a board. The board's faults (rig.double.faults) and stage timeouts live here, across power
cycles, shared with whichever ASR, MCU and link are running.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from rig.double.asr import Asr, AsrMemory
from rig.double.catalogue import Fault, parse_faults
from rig.double.external_mcu import ExternalMcu
from rig.double.faults import Faults
from rig.double.flash import Flash
from rig.double.link import Link, NoisyEndpoint
from rig.double.mcu import EmulatedMcu, ResetReason
from rig.double.mcu_aflib import McuAfLib
from rig.double.mcu_ota import RECEIVING, McuOta
from rig.double.spec import AsrTimeouts, EmulatedBoardSpec
from rig.double.tap import Tap
from rig.ota.device_client import DeviceClient
from rig.protocol import aflib
from rig.protocol.afpro import GIVE_UP_TIMEOUT, RESYNC_TIMEOUT, AsrTransport, McuTransport

DEFAULT_IMAGE_TYPE = 101
ASR_MEMORY = "asr-memory.json"
# On the fast link bytes cross at once, so afPro's recovery waits (afLib's 1 s resync, the ASR's
# 2 s give-up) are only lost time after a bad sync: scaled down, same ratio. Paced: afLib's own.
FAST_LINK_RECOVERY = 0.2


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
        self.timeouts.update(spec.timeouts)
        self.baseline: tuple[Fault, ...] = parse_faults(spec.faults)
        self.faults = Faults()
        self.faults.reset(self.baseline)
        self.memory = AsrMemory(state_dir / ASR_MEMORY)  # the ASR's flash: its OTA job
        self.image_types = range(101, 201)  # what the MCU takes; its profile says what is sent
        self.mcu: EmulatedMcu | None = None  # the console side, wired by the runner
        self.asr_reboots = 0
        self._device: DeviceClient | None = None
        self._lock = threading.RLock()
        self._link: Link | None = None
        self._asr: Asr | None = None
        self._ota: McuOta | None = None
        self._aflib: McuAfLib | None = None
        self.external = (
            ExternalMcu(spec.external_mcu, baud=baud, name=spec.name) if spec.external_mcu else None
        )

    # -- wiring --------------------------------------------------------------------------------

    def running_version(self) -> str:
        return self.flash.running_version()

    def receiving(self) -> bool:
        """True while the MCU takes an image into flash (it draws more current then)."""
        ota = self._ota
        return ota is not None and ota.phase == RECEIVING

    def connect(self, url: str, device_id: str, secret: str) -> None:
        """The ASR's identity at the OTA service (it keeps it across power cycles)."""
        with self._lock:
            if self._device is not None:
                self._device.close()
            self._device = DeviceClient(url, device_id, secret)
            if self._asr is not None:
                self._asr.connect(self._device)

    def info(self) -> dict[str, str]:
        info = self.tap.info()
        if self.external is not None:
            info["mcu_uart"] = self.external.path
        return info

    # -- faults and timeouts (the control channel) ---------------------------------------------

    def add_fault(self, fault: Fault) -> None:
        self.faults.add(fault)

    def clear_faults(self) -> None:
        """Back to the baseline of boards.yaml; a silent or declining MCU behaves again."""
        self.faults.reset(self.baseline)
        with self._lock:
            if self._ota is not None:
                self._ota.clear_switches()

    def status(self) -> dict[str, Any]:
        """What a test waits on: power, versions, staged bytes, faults, the ASR's job."""
        with self._lock:
            ota = self._ota
        mcu = self.mcu
        return {
            "power": self._link is not None,
            "mcu": mcu.state if mcu is not None else None,
            "reset_reason": mcu.reset_reason.label if mcu is not None else None,
            "running_version": self.flash.running_version(),
            "installed": {str(t): v for t, v in self.flash.installed().items()},
            "staged_bytes": self.flash.staged_bytes,
            "staging": self.flash.staging,
            "ota_phase": ota.phase if ota is not None else None,
            "mcu_silent": bool(ota and ota.silent),
            "faults": self.faults.active(),
            "baseline": [fault.as_dict() for fault in self.baseline],
            "fired": list(self.faults.fired),
            "timeouts": self.timeouts.as_dict(),
            "asr_reboots": self.asr_reboots,
            "asr_job": self.memory.job(),
        }

    # -- power ---------------------------------------------------------------------------------

    def power(self, on: bool) -> None:
        with self._lock:
            if on and self._link is None:
                self._start()
            elif not on and self._link is not None:
                self._stop()

    def booted(self) -> None:
        """The firmware is running: its application reports its versions once the ASR is up."""
        with self._lock:
            if self._aflib is not None:
                self._aflib.booted()

    def _transports(self) -> tuple[NoisyEndpoint | ExternalMcu, NoisyEndpoint]:
        """A fresh pair of afPro ends, behind the board's line noise (an external MCU's UART
        is the MCU's end as it is: its bytes are its own)."""
        # A real MCU keeps afLib's own pace: the ASR gives a transaction up as late as it would
        scale = 1.0 if self.paced or self.external is not None else FAST_LINK_RECOVERY
        asr = NoisyEndpoint(AsrTransport(give_up_timeout=GIVE_UP_TIMEOUT * scale), self.faults)
        if self.external is not None:
            self.external.reset()
            return self.external, asr
        mcu = McuTransport(resync_timeout=RESYNC_TIMEOUT * scale)
        return NoisyEndpoint(mcu, self.faults), asr

    def _start(self) -> None:
        mcu_side, asr_side = self._transports()
        if self.external is None:
            self._ota = McuOta(self.flash, log=self._console, on_reboot=self._reboot,
                               accepted_types=self.image_types, faults=self.faults,
                               attribute_size=self.spec.ota_attribute_size)  # fmt: skip
            self._aflib = McuAfLib(self._ota, self._from_mcu, log=self._console)
        asr = Asr(send=self._from_asr, log=self._console, timeouts=self.timeouts,
                  attribute_size=self.spec.ota_attribute_size,
                  radio_bps=self.radio_bps if self.paced else None, faults=self.faults,
                  memory=self.memory, on_reboot=self._asr_rebooted)  # fmt: skip
        self._link = Link(
            mcu=mcu_side, asr=asr_side, to_mcu=self._to_mcu, to_asr=asr.deliver, tap=self.tap,
            baud=self.baud, paced=self.paced, name=self.spec.name,
            inline=self.external is None,  # a real UART's writes may block: the link's thread
        )  # fmt: skip
        self._asr = asr
        asr.connect(self._device)
        if self.external is not None:
            self.external.wake = self._link.wake
        self._link.start()
        reason = self.mcu.reset_reason if self.mcu is not None else ResetReason.POWER_ON
        asr.start(aflib.RebootCode(int(reason)))  # power went for both: the same cause

    def _stop(self) -> None:
        asr, link = self._asr, self._link
        self._asr = self._link = self._ota = self._aflib = None
        if asr is not None:
            asr.stop()
        if link is not None:
            link.stop()
        self.flash.sync()  # the staged bytes are on flash: the count the MCU resumes from goes too

    def _from_asr(self, raw: bytes, flip_at: int | None) -> None:
        link = self._link
        if link is not None:
            link.send_from_asr(raw, flip_at=flip_at)

    def _asr_rebooted(self) -> None:
        """The ASR reset itself (a fault; its thread calls this): the UART ends start afresh.

        Not under the board lock: power-off holds it while it joins the ASR's thread."""
        self.asr_reboots += 1
        link = self._link
        if link is not None:
            link.reset_transports(*self._transports())

    def _to_mcu(self, raw: bytes) -> None:
        """A whole message reached the MCU: its afLib takes it (and answers through the link)."""
        afl = self._aflib
        if afl is None:
            return
        try:
            message = aflib.decode(raw)
        except aflib.ProtocolError as exc:
            self._console(f"afLib: dropped a malformed message: {exc}")
            return
        afl.receive(message)

    def _from_mcu(self, raw: bytes) -> None:
        link = self._link
        if link is not None:
            link.send_from_mcu(raw)

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
            if self.external is not None:
                self.external.close()
            self.flash.close()
            self.tap.close()
