"""The emulated ASR's handoff of one image to its MCU, as afLib's reference receiver expects it
(DESIGN §3, `generic_mcu.c`): every step an UPDATE tunnelled on 1098, answers paired by
attribute and state.

BEGIN (1301) → the MCU's echo (or IDLE: declined) → chunks (1302 `{offset, data}`) from
wherever the MCU asks, each answered with the next offset it wants, STOP when it has all →
its VERIFY_SIGNATURE with the SHA-256 of what it stored → APPLY (or FAIL on a mismatch) → its
SET of the version attribute, the only success signal. Each stage is reported to the service
as it is reached, TRANSFERRING after the first chunk included (the service's history keeps its
time: when the transfer began). Further progress (by tenths of the image) only updates the
bytes count: it is handed to `progress`, which sends it off the chunk path (asr_report.py).

The chunk faults (rig.double.faults) act here: the ASR sends the wrong chunks (drop, reorder,
duplicate), marks one to be corrupted on the line, or reboots part way (asr_reboot).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

from rig.double.asr_conversation import Conversation, Reboot, StageTimeout, info_in
from rig.double.asr_memory import AsrMemory
from rig.double.faults import Faults
from rig.double.spec import AsrTimeouts
from rig.protocol import aflib
from rig.protocol.aflib import Message, MsgType, OtaInfo, OtaState

# After a STOP before the last chunk was sent: how long the MCU's VERIFY (or FAIL) may take to
# follow. It does when a resumed transfer already had every byte; else the MCU stopped early.
STOP_GRACE_S = 1.0
CORRUPT_AT = 4  # the byte of a chunk (1302 value) corrupt_chunk flips: its first data

Report = Callable[..., None]  # (deployment, state, **details): to the service, in order
Progress = Callable[..., None]  # (deployment, bytes=, total=): noted, sent off the chunk path


class Handoff:
    """Hands images to the MCU over one ASR's conversation with it."""

    def __init__(
        self,
        mcu: Conversation,
        *,
        report: Report,
        progress: Progress,
        log: Callable[[str], None],
        faults: Faults,
        timeouts: AsrTimeouts,
        memory: AsrMemory,
    ) -> None:
        self.mcu = mcu
        self._report = report
        self._progress = progress
        self._log = log
        self.faults = faults
        self.timeouts = timeouts
        self.memory = memory

    def run(self, deployment: str, offer: dict, image: bytes, attribute_size: int) -> str:
        """The whole handoff of `image`; how it ended, in words (StageTimeout: the MCU did not
        answer a stage in time)."""
        type_, version_id, size = int(offer["type"]), int(offer["versionNumber"]), len(image)
        self.mcu.drain()
        begin = OtaInfo(OtaState.TRANSFER_BEGIN, ota_type=type_, size=size, version_id=version_id)
        answer = self.mcu.ask(aflib.AF_MCU_OTA_INFO, begin.encode(), "offer",
                              self.timeouts.offer,
                              states=(OtaState.TRANSFER_BEGIN, OtaState.IDLE))  # fmt: skip
        if OtaInfo.decode(answer.value).state != OtaState.TRANSFER_BEGIN:
            self._report(deployment, "DECLINED", detail="the MCU answered BEGIN with IDLE")
            return "declined by the MCU"
        self._report(deployment, "ACCEPTED")
        if not self._transfer(deployment, image, attribute_size):
            return "the MCU stopped the transfer"
        self._report(deployment, "TRANSFERRED", bytes=size, total=size)
        verify = self.mcu.wait_for(
            lambda m: info_in(m, OtaState.VERIFY_SIGNATURE, OtaState.FAIL),
            "verify", self.timeouts.verify,
        )  # fmt: skip
        if OtaInfo.decode(verify.value).state == OtaState.FAIL:
            detail = "the MCU answered the transfer with FAIL (see its console)"
            self._report(deployment, "VERIFY_FAILED", reason="MCU refused the image", detail=detail)
            return "refused by the MCU"
        reported = OtaInfo.decode(verify.value).sha256 or b""
        self._report(deployment, "VERIFYING", detail=f"MCU sha256 {reported.hex()}")
        expected = hashlib.sha256(image).digest()
        if reported != expected:
            self.mcu.request(aflib.AF_MCU_OTA_INFO, OtaInfo(OtaState.FAIL).encode())
            self._report(deployment, "VERIFY_FAILED", reason="sha256 mismatch",
                         detail=f"MCU {reported.hex()} != image {expected.hex()}")  # fmt: skip
            return "verify failed"
        self.memory.stage("APPLYING")  # before APPLY leaves: a reboot now must look for it
        apply = OtaInfo(OtaState.APPLY, version_id=version_id)
        self.mcu.request(aflib.AF_MCU_OTA_INFO, apply.encode())
        self._report(deployment, "APPLYING")
        return self._applied(deployment, type_, version_id)

    def _applied(self, deployment: str, type_: int, version_id: int) -> str:
        """After APPLY: the MCU's version write says it took the image (FAIL: it did not)."""
        attribute = aflib.version_attribute(type_)
        try:
            report = self.mcu.wait_for(
                lambda m: (m.attr_id == attribute and m.type == MsgType.SET)
                or info_in(m, OtaState.FAIL),
                "version", self.timeouts.version,
            )  # fmt: skip
        except StageTimeout:
            self._report(deployment, "APPLY_FAILED", reason="no version report",
                         detail=f"attribute {attribute} was not written after APPLY")  # fmt: skip
            return "apply failed"
        if report.attr_id != attribute or aflib.version_of(report.value) != version_id:
            self._report(deployment, "APPLY_FAILED", reason="MCU reported FAIL after APPLY")
            return "apply failed"
        self._report(deployment, "SUCCEEDED", detail=f"attribute {attribute} = {version_id}")
        return "succeeded"

    def _transfer(self, deployment: str, image: bytes, attribute_size: int) -> bool:
        """Chunks from wherever the MCU asks; False if it stopped early."""
        chunk = aflib.max_chunk(attribute_size)
        offset, size, reported = 0, len(image), -1
        while True:
            answer = self._send_chunk(image, offset, chunk)
            wanted = aflib.decode_offset(answer.value)
            if wanted == aflib.STOP_TRANSFER_OFFSET:
                if offset + chunk >= size or self._verify_follows():
                    return True
                self._report(deployment, "ABORTED_BY_MCU", bytes=offset, total=size,
                             detail=f"MCU stopped the transfer at {offset}/{size}")  # fmt: skip
                return False
            if self.faults.take_at("asr_reboot", wanted / max(size, 1)):
                raise Reboot(f"at {wanted}/{size} bytes (fault injected)")
            offset = wanted
            decile = offset * 10 // max(size, 1)
            if decile != reported:
                if reported < 0:  # the stage begins: the service hears it now, with its time
                    self._report(deployment, "TRANSFERRING", bytes=offset, total=size)
                else:
                    self._progress(deployment, bytes=offset, total=size)
                reported = decile

    def _send_chunk(self, image: bytes, offset: int, chunk: int) -> Message:
        """The chunk at `offset` (1302 via 1098) and the MCU's answer: chunk faults act here."""

        def value(at: int) -> bytes:
            return aflib.encode_transfer(at, image[at : at + chunk])

        def ask(at: int, flip_at: int | None = None) -> Message:
            return self.mcu.ask(aflib.AF_MCU_OTA_TRANSFER, value(at), "chunk",
                                self.timeouts.chunk, flip_at=flip_at)  # fmt: skip

        index, misaligned = divmod(offset, chunk)
        chunks = -(-len(image) // chunk)
        take = self.faults.take_chunk
        if misaligned:
            return ask(offset)
        if take("drop_chunk", index, chunks):
            self._log(f"ASR: chunk {index} dropped (fault injected): sending chunk {index + 1}")
            return ask(offset + chunk)
        if take("reorder_chunks", index, chunks):
            self._log(f"ASR: chunks {index + 1} and {index} sent swapped (fault injected)")
            self.mcu.request(aflib.AF_MCU_OTA_TRANSFER, value(offset + chunk))
            owed = self.mcu.stale.get(aflib.AF_MCU_OTA_TRANSFER, 0)
            self.mcu.stale[aflib.AF_MCU_OTA_TRANSFER] = owed + 1  # its answer is not waited for
            return ask(offset)
        if take("duplicate_chunk", index, chunks):
            self._log(f"ASR: chunk {index} sent twice (fault injected)")
            ask(offset)
            return ask(offset)
        if take("corrupt_chunk", index, chunks):
            self._log(f"ASR: chunk {index} goes out to be corrupted on the line (fault injected)")
            return ask(offset, flip_at=CORRUPT_AT)
        return ask(offset)

    def _verify_follows(self) -> bool:
        """After an early STOP: whether the MCU had every byte already (its VERIFY follows)."""
        try:
            message = self.mcu.wait_for(
                lambda m: info_in(m, OtaState.VERIFY_SIGNATURE, OtaState.FAIL),
                "verify", min(self.timeouts.verify, STOP_GRACE_S),
            )  # fmt: skip
        except StageTimeout:
            return False
        self.mcu.backlog.insert(0, message)  # the verify stage takes it from here
        return True
