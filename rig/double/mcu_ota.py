"""The emulated MCU's side of the afLib OTA handoff, with no I/O of its own.

`handle` takes one OTA notification from the ASR (1301/1302, already unwrapped from channel
1098) and returns the MCU's messages back; `rig.double.mcu_aflib` numbers and sends them, so the
same machine runs behind the emulated UART link and in unit tests that pass Messages by hand.

It answers as Afero's reference receiver does (generic_mcu.c, af_mcu_ota.h): an exact echo of
TRANSFER_BEGIN accepts it, the same value with state IDLE declines it; every chunk is answered
with the next offset wanted, 0xFFFFFFFF once all bytes are in, followed by VERIFY_SIGNATURE with
the SHA-256 of what it stored; APPLY is echoed with state IDLE (9 bytes) and followed by a SET of
the version attribute 2000 + type; FAIL is not answered. Every report is an UPDATE the MCU's
afLib tunnels through 1099 (`aflib.report`; its request id is set when it is sent).

rig's own choices (docs/image-format.md has the MCU contract):

- The header check runs when the last byte is in: a rig image with a bad header, another image
  type than the OTA's, or a security counter below the floor is refused with 1301 FAIL *instead
  of* VERIFY_SIGNATURE, and the staged data is dropped (deployment: VERIFY_FAILED).
- After APPLY the MCU echoes it as IDLE, boots the new image and SETs its version attribute.
  If the boot fails (fallback) or the apply is refused, it reports 1301 FAIL (with the
  transfer's begin value, so a capture says which one) instead of the version.
- A chunk outside a transfer, or an APPLY with no verified image, is answered with state
  FAILED; a malformed value likewise. A chunk during VERIFY is answered STOP again (a retry).
- An early stop (`stop_early_at`) answers STOP and drops the staged data; `decline_next` is
  one-shot; `silent` swallows everything.
- The same three faults come from the board's `Faults` (rig.double.faults) as one-shot
  mcu_declines, mcu_stops_early and mcu_silent. mcu_silent(at) answers the message that takes
  the transfer to `at` of the image and then nothing (not even its own VERIFY) until the next
  boot or `clear_switches()`; at 0 it does not answer the BEGIN itself.
- At boot (once the ASR's handshake is done) the MCU SETs its version attribute for each
  installed type, as an afLib application does when the ASR is up.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import replace

from rig.double.faults import Faults
from rig.double.flash import Flash
from rig.protocol import aflib
from rig.protocol.aflib import (
    AF_MCU_OTA_INFO,
    AF_MCU_OTA_TRANSFER,
    STOP_TRANSFER_OFFSET,
    Message,
    MsgType,
    OtaInfo,
    OtaState,
    ProtocolError,
    UpdateState,
)

IDLE, RECEIVING, VERIFYING = "idle", "receiving", "verifying"


def _report(attr_id: int, value: bytes, state: UpdateState = UpdateState.UPDATED) -> Message:
    """An OTA report of the MCU's (its request id is the afLib layer's to set)."""
    message = aflib.report(0, attr_id, value)
    return message if state == UpdateState.UPDATED else replace(message, state=state)


class McuOta:
    """The afLib MCU OTA state machine over one `Flash`; RAM state is this object."""

    def __init__(
        self,
        flash: Flash,
        *,
        log: Callable[[str], None],
        attribute_size: int = aflib.CLASSIC_ATTRIBUTE_SIZE,
        accepted_types: Iterable[int] | None = None,
        on_reboot: Callable[[], None] | None = None,
        faults: Faults | None = None,
    ) -> None:
        self.flash = flash
        self.log = log
        self.max_chunk = aflib.max_chunk(attribute_size)
        types = {flash.image_type} if accepted_types is None else accepted_types
        self.accepted_types = frozenset(types)
        self.on_reboot = on_reboot  # the console prints the banner again after an apply
        # Fault hooks, off by default.
        self.decline_next = False  # decline the next TRANSFER_BEGIN (one-shot)
        self.stop_early_at: float | None = None  # fraction of the size: answer STOP there
        self.silent = False  # answer nothing at all
        self.faults = faults  # the board's injected faults (shared, one-shot)
        self._phase = IDLE
        self._info = OtaInfo(OtaState.IDLE)  # the value attribute 1301 holds
        self._transfer: OtaInfo | None = None  # the accepted TRANSFER_BEGIN
        self._decile = 0  # the last 10% step logged
        self._reset_at_reboot = False  # an APPLY's reboot already reset RAM when it began

    @property
    def phase(self) -> str:
        """IDLE, RECEIVING or VERIFYING (waiting for APPLY or FAIL)."""
        return self._phase

    def startup_messages(self) -> list[Message]:
        """What the MCU reports once booted: a SET of its version attribute for each installed
        type.

        A boot loses RAM (a silent MCU talks again), so this also resets the machine; call it
        once per boot. After an APPLY the machine was reset when the reboot began: a transfer
        the ASR started during the boot time is newer than the reboot and is kept (the fast
        link and the long-poll can offer the next image within the emulated boot time).
        """
        if not self._reset_at_reboot:
            self._reset()
        self._reset_at_reboot = False
        self.silent = False
        return self.version_reports()

    def version_reports(self) -> list[Message]:
        """A SET of the version attribute of every installed type (afLib sends them once the
        ASR is up, and again after it rebooted)."""
        installed = sorted(self.flash.installed().items())
        return [aflib.version_report(0, ota_type, vid) for ota_type, vid in installed]

    def clear_switches(self) -> None:
        """All fault switches off; a silent MCU answers again (the control channel's clear)."""
        self.decline_next, self.stop_early_at, self.silent = False, None, False

    def handle(self, msg: Message) -> list[Message]:
        """The MCU's answers to one OTA notification from the ASR (empty: nothing to say)."""
        if self.silent or msg.type != MsgType.UPDATE:
            return []
        if msg.attr_id == AF_MCU_OTA_INFO:
            return self._on_info(msg)
        if msg.attr_id == AF_MCU_OTA_TRANSFER:
            return self._on_chunk(msg)
        return []

    # -- 1301 ----------------------------------------------------------------------------------

    def _on_info(self, msg: Message) -> list[Message]:
        try:
            info = OtaInfo.decode(msg.value)
        except ProtocolError as err:
            self.log(f"OTA: bad ota_info value: {err}")
            return [_report(AF_MCU_OTA_INFO, msg.value, UpdateState.FAILED)]
        if info.state == OtaState.TRANSFER_BEGIN:
            if self._goes_silent(0.0):
                return []
            return [self._begin(info, msg.value)]
        if info.state == OtaState.APPLY:
            return self._apply(info)
        if info.state == OtaState.FAIL:
            dropped = self.flash.staged_bytes
            self.flash.discard_staging()
            self._reset()
            self.log(f"OTA: FAIL from the ASR: {dropped} staged bytes discarded")
            return []  # generic_mcu deletes what it stored and says nothing
        self.log(f"OTA: ota_info {info.state.name} from the ASR: nothing to do")
        return []

    def _begin(self, info: OtaInfo, value: bytes) -> Message:
        what = f"type={info.ota_type} size={info.size} version={info.version_id}"
        why = self._decline_reason(info)
        if why is not None:
            self._reset()
            self.log(f"OTA: declined {what}: {why}")
            return _report(AF_MCU_OTA_INFO, info.decline().encode())
        staging = self.flash.staging
        same = (info.ota_type, info.size, info.version_id)
        if staging and (staging["type"], staging["size"], staging["version_id"]) == same:
            self.log(f"OTA: resume {what} at {staging['received']}")
        else:
            self.flash.begin_staging(info.ota_type, info.size, info.version_id)
            self.log(f"OTA: begin {what}")
        self._phase, self._info, self._transfer = RECEIVING, info, info
        self._decile = self.flash.staged_bytes * 10 // info.size
        return _report(AF_MCU_OTA_INFO, value)  # the exact echo accepts

    def _decline_reason(self, info: OtaInfo) -> str | None:
        if self.decline_next:
            self.decline_next = False
            return "fault injected (decline_next)"
        if self.faults is not None and self.faults.take_decline():
            return "fault injected (mcu_declines)"
        if info.ota_type not in self.accepted_types:
            takes = ", ".join(map(str, sorted(self.accepted_types))) or "none"
            return f"image type {info.ota_type} is not one this MCU takes ({takes})"
        if info.size == 0:
            return "an empty image"
        if info.size > self.flash.slot_bytes:
            return f"{info.size} bytes do not fit the {self.flash.slot_bytes}-byte slot"
        return None

    def _apply(self, info: OtaInfo) -> list[Message]:
        if self._phase != VERIFYING or self._transfer is None:
            self.log(f"OTA: APPLY version={info.version_id} without a verified image: refused")
            return [_report(AF_MCU_OTA_INFO, info.encode(), UpdateState.FAILED)]
        transfer = self._transfer
        ack = _report(AF_MCU_OTA_INFO, info.applied().encode())  # the 9-byte IDLE
        self.log(f"OTA: apply version={info.version_id}: rebooting")
        result = self.flash.commit(info.version_id)
        self._reset()
        if result.rebooted and self.on_reboot is not None:
            self._reset_at_reboot = True
            self.on_reboot()
        if not result.ok:
            if result.rebooted:
                self.log(f"OTA: boot failed: fell back to {result.version} ({result.reason})")
            else:
                self.log(f"OTA: apply refused: {result.reason}")
            self._info = OtaInfo(
                OtaState.FAIL, transfer.ota_type, transfer.size, transfer.version_id
            )
            return [ack, _report(AF_MCU_OTA_INFO, self._info.encode())]
        attribute = aflib.version_attribute(transfer.ota_type)
        self.log(f"OTA: {result.reason}; version attribute {attribute} = {info.version_id}")
        return [ack, aflib.version_report(0, transfer.ota_type, info.version_id)]

    # -- 1302 ----------------------------------------------------------------------------------

    def _on_chunk(self, msg: Message) -> list[Message]:
        def answer(offset: int, state: UpdateState = UpdateState.UPDATED) -> Message:
            return _report(AF_MCU_OTA_TRANSFER, aflib.encode_offset(offset), state)

        if self._phase == VERIFYING:
            return [answer(STOP_TRANSFER_OFFSET)]  # the ASR retried the last chunk
        if self._phase != RECEIVING or self._transfer is None:
            self.log("OTA: chunk without a transfer in progress: refused")
            return [answer(STOP_TRANSFER_OFFSET, UpdateState.FAILED)]
        size, expected = self._transfer.size, self.flash.staged_bytes
        if expected == size:  # resumed after every byte was already in
            return [answer(STOP_TRANSFER_OFFSET), *self._transfer_complete()]
        try:
            offset, data = aflib.decode_transfer(msg.value)
        except ProtocolError as err:
            self.log(f"OTA: bad chunk: {err}")
            return [answer(expected, UpdateState.FAILED)]
        if len(data) > self.max_chunk or (offset == expected and offset + len(data) > size):
            self.log(f"OTA: chunk of {len(data)} bytes at {offset} refused (max {self.max_chunk}, "
                     f"size {size})")  # fmt: skip
            return [answer(expected, UpdateState.LENGTH_EXCEEDED)]
        if offset != expected:
            self.log(f"OTA: chunk at {offset}, expected {expected}")
            return [answer(expected)]
        self.flash.write(offset, data)
        received = offset + len(data)
        silent_now = self._goes_silent(received / size)
        if received == size:
            if silent_now:  # the last chunk is answered, the VERIFY never comes
                return [answer(STOP_TRANSFER_OFFSET)]
            return [answer(STOP_TRANSFER_OFFSET), *self._transfer_complete()]
        self._progress(received, size)
        if (self.stop_early_at is not None and received >= self.stop_early_at * size) or (
            self.faults is not None and self.faults.take_at("mcu_stops_early", received / size)
        ):
            self.log(f"OTA: stopping the transfer early at {received}/{size} (fault injected)")
            self.flash.discard_staging()
            self._reset()
            return [answer(STOP_TRANSFER_OFFSET)]
        return [answer(received)]

    def _goes_silent(self, fraction: float) -> bool:
        """Whether the mcu_silent fault fires with `fraction` of the image in (it stays so)."""
        if self.faults is None or not self.faults.take_at("mcu_silent", fraction):
            return False
        self.log(f"OTA: going silent at {fraction:.0%} of the transfer (fault injected)")
        self.silent = True
        return True

    def _progress(self, received: int, size: int) -> None:
        decile = received * 10 // size
        if decile > self._decile:
            self._decile = decile
            self.log(f"OTA: {received * 100 // size}% ({received}/{size})")

    def _transfer_complete(self) -> list[Message]:
        """All bytes are in: the header check, then VERIFY_SIGNATURE or FAIL."""
        transfer = self._transfer
        assert transfer is not None
        self.log(f"OTA: transfer complete ({transfer.size} bytes)")
        problem = self.flash.staged_problem()
        if problem is not None:
            self.flash.discard_staging()
            self._reset()
            self.log(f"OTA: header check failed: {problem}")
            self._info = OtaInfo(
                OtaState.FAIL, transfer.ota_type, transfer.size, transfer.version_id
            )
            return [_report(AF_MCU_OTA_INFO, self._info.encode())]
        sha = self.flash.staged_sha256()
        self.log(f"OTA: verify sha256={sha.hex()}")
        self._phase, self._info = VERIFYING, OtaInfo.verify(sha)
        return [_report(AF_MCU_OTA_INFO, self._info.encode())]

    def _reset(self) -> None:
        self._phase, self._info, self._transfer, self._decile = (
            IDLE,
            OtaInfo(OtaState.IDLE),
            None,
            0,
        )
