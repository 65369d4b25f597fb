"""The faults one emulated board can be told to have, and their parser.

Faults come from boards.yaml (`double: {faults: [{name: line_noise, rate: 0.05}]}`, active from
power-on: the board's *baseline*) or from the control channel at run time
(`{"op": "fault", "board": ..., "name": ..., **params}`); `clear_faults` returns to the baseline.

Each fault, its params, what happens, and how the deployment ends:

- corrupt_chunk(index): the first data byte of chunk `index` is flipped on the line, before the
  tap (the sniffer sees what the MCU gets) → VERIFY_FAILED ("sha256 mismatch"; on a rig image
  the MCU's header check sees the payload hash first: "MCU refused the image").
- drop_chunk(index): the ASR skips chunk `index` once: it sends chunk index+1 at its own offset,
  the MCU answers with the offset it expects, the ASR goes on from there → SUCCEEDED.
- duplicate_chunk(index): chunk `index` is sent twice → SUCCEEDED.
- reorder_chunks(index): chunks index+1 and index go out back to back, in that order; the MCU
  asks again for index+1 → SUCCEEDED.
- mcu_declines: the MCU declines the next TRANSFER_BEGIN → DECLINED.
- mcu_stops_early(at): the MCU answers STOP once `at` of the image is in → ABORTED_BY_MCU.
- mcu_silent(at): the MCU answers the message that takes the transfer to `at` of the image, then
  nothing until its next boot → TIMED_OUT("chunk"); at 0 not even BEGIN → TIMED_OUT("offer");
  at 1 the last chunk is answered but its VERIFY never comes → TIMED_OUT("verify").
- asr_reboot(at, times=1): the ASR reboots once the MCU has acknowledged `at` of the image (its
  RAM and the UART ends reset; the MCU keeps power and its staged bytes) → INTERRUPTED, then
  offered again: SUCCEEDED in attempt 2, resumed where the MCU was.
- line_noise(rate, seed=1): each sync message's checksum byte is corrupted with probability
  `rate` (a seeded RNG: reproducible) → the ends resync → SUCCEEDED.
- asr_update_ready: the ASR has an update of its own ready: it notifies 65013 = UPDATE_READY;
  afLib's MCU answers with SET 65012 = 1 (reboot), and the ASR reboots (software reset) and runs
  its boot handshake again. No deployment is involved.
- no_ota_capability: the ASR's capabilities (attribute 1206) lack bit 0x80; it declines the
  offer before any BEGIN → DECLINED ("no MCU OTA capability").

Chunk indexes count from 0 in chunks of the offer's attribute size (249 data bytes on the classic
module). Every fault but line_noise and no_ota_capability is one-shot: it disarms when it fires
(asr_reboot after `times` reboots). A brown-out is not injected here: it is real (set the supply
below the board's min_volts, or its current limit below the board's draw).
"""

from __future__ import annotations

import random
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field, fields
from typing import Any

from rig.double.catalogue import Fault


@dataclass
class Faults:
    """The armed faults of one board (all off by default); shared by its ASR, MCU and link.

    The control thread arms them, the ASR, MCU and link threads fire them: every check that
    fires a one-shot fault also disarms it, under one lock, so a fault fires exactly once.
    """

    corrupt_chunk: int | None = None
    drop_chunk: int | None = None
    duplicate_chunk: int | None = None
    reorder_chunks: int | None = None
    mcu_declines: bool = False
    mcu_stops_early: float | None = None
    mcu_silent: float | None = None
    asr_reboot: float | None = None
    asr_reboot_times: int = 0
    line_noise: float | None = None
    line_noise_seed: int = 1
    no_ota_capability: bool = False
    asr_update_ready: bool = False
    fired: list[str] = field(default_factory=list)  # what fired, in order, for `status`
    _noise: random.Random = field(default_factory=random.Random, repr=False, compare=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, fault: Fault) -> None:
        """Arm one fault (replacing an armed fault of the same name)."""
        with self._lock:
            value: Any = True
            if fault.name in ("corrupt_chunk", "drop_chunk", "duplicate_chunk", "reorder_chunks"):
                value = fault.get("index")
            elif fault.name in ("mcu_stops_early", "mcu_silent"):
                value = fault.get("at")
            elif fault.name == "asr_reboot":
                value, self.asr_reboot_times = fault.get("at"), fault.get("times")
            elif fault.name == "line_noise":
                value, self.line_noise_seed = fault.get("rate"), fault.get("seed")
                self._noise = random.Random(self.line_noise_seed)
            setattr(self, fault.name, value)

    def reset(self, baseline: Iterable[Fault] = ()) -> None:
        """Everything off, then the baseline armed again; the fired log starts over."""
        with self._lock:
            for f in fields(self):
                if not f.name.startswith("_") and f.name != "fired":
                    setattr(self, f.name, f.default)
            self.fired = []
        for fault in baseline:
            self.add(fault)

    def active(self) -> list[dict[str, Any]]:
        """The armed faults as `{"name": ..., **params}`."""
        with self._lock:
            out: list[dict[str, Any]] = []
            for name in ("corrupt_chunk", "drop_chunk", "duplicate_chunk", "reorder_chunks"):
                if getattr(self, name) is not None:
                    out.append({"name": name, "index": getattr(self, name)})
            if self.mcu_declines:
                out.append({"name": "mcu_declines"})
            for name in ("mcu_stops_early", "mcu_silent"):
                if getattr(self, name) is not None:
                    out.append({"name": name, "at": getattr(self, name)})
            if self.asr_reboot is not None:
                out.append({"name": "asr_reboot", "at": self.asr_reboot,
                            "times": self.asr_reboot_times})  # fmt: skip
            if self.line_noise is not None:
                out.append({"name": "line_noise", "rate": self.line_noise,
                            "seed": self.line_noise_seed})  # fmt: skip
            if self.no_ota_capability:
                out.append({"name": "no_ota_capability"})
            if self.asr_update_ready:
                out.append({"name": "asr_update_ready"})
            return out

    # -- firing (each check that fires disarms, atomically) --------------------------------------

    def take_chunk(self, name: str, index: int, chunks: int) -> bool:
        """Whether chunk fault `name` fires for chunk `index` of `chunks`; disarms it if so.

        drop_chunk and reorder_chunks need a chunk after `index`: on the last one they wait."""
        if getattr(self, name) != index:  # unarmed or another chunk (checked again under the lock)
            return False
        needs_next = name in ("drop_chunk", "reorder_chunks")
        with self._lock:
            if getattr(self, name) != index or index + needs_next >= chunks:
                return False
            setattr(self, name, None)
            self.fired.append(f"{name}(index={index})")
            return True

    def take_update_ready(self) -> bool:
        with self._lock:
            fire, self.asr_update_ready = self.asr_update_ready, False
            if fire:
                self.fired.append("asr_update_ready")
            return fire

    def take_decline(self) -> bool:
        with self._lock:
            fire, self.mcu_declines = self.mcu_declines, False
            if fire:
                self.fired.append("mcu_declines")
            return fire

    def take_at(self, name: str, fraction: float) -> bool:
        """Whether `name` (mcu_stops_early, mcu_silent, asr_reboot) fires with this much of the
        image in; disarms it when it fires (asr_reboot after `times` firings)."""
        if getattr(self, name) is None:  # unarmed (checked again under the lock)
            return False
        with self._lock:
            at = getattr(self, name)
            if at is None or fraction < at:
                return False
            if name == "asr_reboot":
                self.asr_reboot_times -= 1
                if self.asr_reboot_times <= 0:
                    self.asr_reboot = None
            else:
                setattr(self, name, None)
            self.fired.append(f"{name}(at={at:g}, fired at {fraction:.0%})")
            return True

    def noisy_sync(self) -> bool:
        """One draw of the line noise for one sync message (False when there is no noise)."""
        with self._lock:
            return self.line_noise is not None and self._noise.random() < self.line_noise

    def noise_mask(self) -> int:
        """A non-zero byte to XOR a corrupted checksum with."""
        with self._lock:
            return self._noise.randrange(1, 256)
