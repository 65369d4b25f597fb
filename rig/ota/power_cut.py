"""Cut a board's supply at a chosen moment of an OTA handoff, then restore it.

The moment is observed from the sniffer (the fraction of the image the ASR has sent, or the
APPLY crossing the wire), so this needs only a power supply and a tap: it works on a real bench
exactly as on the emulated board.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from rig.instruments.sniffer_port import HandoffRecorder
from rig.lab.board import Board
from rig.protocol.aflib import OtaState
from rig.protocol.transcript import Transcript

AFTER_APPLY = "after_apply"


@dataclass
class PowerCut:
    """What happened: when the cut came, at what point of the transfer, and any error."""

    at: float | str
    cut_at: float | None = None
    restored_at: float | None = None
    fraction_seen: float = 0.0
    error: str | None = None
    _thread: threading.Thread | None = field(default=None, repr=False)

    def wait(self, timeout_s: float = 60.0) -> PowerCut:
        """Until the supply is back on; raises AssertionError if the moment never came."""
        if self._thread is not None:
            self._thread.join(timeout_s)
        if self.error or self.restored_at is None:
            raise AssertionError(
                f"power cut at {self.at} did not happen: {self.error or 'still waiting'} "
                f"(transfer seen up to {self.fraction_seen:.0%})"
            )
        return self


def transfer_fraction(transcript: Transcript) -> float:
    """How far the latest handoff on the wire has got: bytes sent ÷ image size."""
    begins = [i for e, i in transcript.ota_infos("asr_to_mcu")
              if i.state == OtaState.TRANSFER_BEGIN]  # fmt: skip
    if not begins or not begins[-1].size:
        return 0.0
    size = begins[-1].size
    sent = max((c.offset + len(c.data) for c in transcript.chunks), default=0)
    return min(sent / size, 1.0)


def applied(transcript: Transcript) -> bool:
    return any(i.state == OtaState.APPLY for _, i in transcript.ota_infos("asr_to_mcu"))


def cut_power_at(
    board: Board,
    recorder: HandoffRecorder,
    at: float | str,
    *,
    off_s: float = 1.0,
    timeout_s: float = 60.0,
) -> PowerCut:
    """Start watching; cut when the transfer passes `at` (a fraction) or at AFTER_APPLY."""
    cut = PowerCut(at)

    def reached(transcript: Transcript) -> bool:
        cut.fraction_seen = transfer_fraction(transcript)
        if at == AFTER_APPLY:
            return applied(transcript)
        return cut.fraction_seen >= float(at)

    def watch() -> None:
        deadline = time.monotonic() + timeout_s
        try:
            while not reached(recorder.transcript()):
                if time.monotonic() > deadline:
                    cut.error = f"the moment never came within {timeout_s:g} s"
                    return
                time.sleep(0.002)  # poll the sniffer often: a fast link moves 250 KiB/s
            board.power.off()
            cut.cut_at = time.time()
            board.console.mark(f"power cut at {at} (transfer {cut.fraction_seen:.0%})")
            time.sleep(off_s)  # the supply stays off this long, as asked
            board.power.on()
            cut.restored_at = time.time()
        except Exception as exc:  # reported through wait(), never lost in a thread
            cut.error = f"{type(exc).__name__}: {exc}"

    cut._thread = threading.Thread(target=watch, name=f"power-cut-{board.name}", daemon=True)
    cut._thread.start()
    return cut
