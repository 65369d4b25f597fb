"""The ASR's system attributes afLib needs before an MCU may speak, and the reboot reason.

afLib (af_lib.c) holds every MCU message until the ASR has notified its firmware version (2003,
non-zero) and its state (65013): INITIALIZED when that version is above 0x5062, LINKED at or
below it. Then afLib SETs its capabilities (1207) and GETs the ASR's (1206, bit 0 = the first
byte's top bit = MCU OTA). 65012 is the command attribute an MCU writes 1 to when the ASR is
UPDATE_READY (a reboot to apply its own update); 65019 is the ASR's reboot reason, a
comma-separated string whose second field is a code (Afero's attribute registry).
"""

from __future__ import annotations

from enum import IntEnum

from rig.protocol.aflib.messages import Message, MsgType, ProtocolError, UpdateReason, UpdateState

ASR_FIRMWARE_VERSION = 2003
ASR_CAPABILITIES = 1206
AFLIB_CAPABILITIES = 1207
SYSTEM_COMMAND = 65012
ASR_STATE = 65013
REBOOT_REASON = 65019

COMMAND_REBOOT = 1  # SYSTEM_COMMAND's first byte
MCU_OTA_CAPABLE_BIT = 0x80  # capability bit 0, counted from the first byte's top bit
#: Above this ASR firmware version afLib waits for INITIALIZED; at or below it, LINKED.
INITIALIZED_GATE = 0x5062
REBOOT_REASON_FIELDS = 23  # fields of the V1 reboot-reason string


class AsrState(IntEnum):
    REBOOTED = 0
    LINKED = 1
    UPDATING = 2
    UPDATE_READY = 3
    INITIALIZED = 4
    RELINKED = 5
    FACTORY_RESET = 6


class RebootCode(IntEnum):
    POWER_ON = 0
    WATCHDOG = 1
    SOFTWARE = 2
    RESET_PIN = 3
    CRYSTAL = 4
    BROWNOUT = 5
    OTHER = 240
    UNKNOWN = 255


def gate_state(asr_version: int) -> AsrState:
    """The ASR state afLib waits for, given the ASR firmware version it was told."""
    return AsrState.INITIALIZED if asr_version > INITIALIZED_GATE else AsrState.LINKED


def mcu_ota_capable(capabilities: bytes) -> bool:
    """Whether an ASR_CAPABILITIES value says the ASR can hand images to the MCU."""
    return bool(capabilities) and bool(capabilities[0] & MCU_OTA_CAPABLE_BIT)


def notification(attr_id: int, value: bytes) -> Message:
    """The ASR telling the MCU one of its own attributes (request id 0)."""
    return Message(MsgType.UPDATE, 0, attr_id, bytes(value), UpdateState.UPDATED,
                   UpdateReason.UNKNOWN)  # fmt: skip


def asr_version(version: int) -> Message:
    return notification(ASR_FIRMWARE_VERSION, version.to_bytes(8, "little"))


def asr_state(state: AsrState) -> Message:
    return notification(ASR_STATE, bytes([state]))


def reboot_reason(code: RebootCode | int) -> str:
    """The reboot-reason string: format version 1, the code, the remaining fields zero."""
    return ",".join(["1", str(int(code))] + ["0"] * (REBOOT_REASON_FIELDS - 2))


def reboot_code(text: str | bytes) -> RebootCode | int:
    """The code in a reboot-reason string (its second field)."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    fields = text.rstrip("\x00").split(",")
    try:
        code = int(fields[1])
    except (IndexError, ValueError):
        raise ProtocolError(f"not a reboot-reason string (no code in field 2): {text!r}") from None
    return RebootCode(code) if code in RebootCode._value2member_map_ else code


def boot_handshake(asr_version_id: int, reboot: RebootCode | int) -> list[Message]:
    """What an ASR notifies when it (re)starts, in order: REBOOTED, its reboot reason, its
    firmware version, LINKED, INITIALIZED (afLib needs the version and the state it gates on)."""
    return [
        asr_state(AsrState.REBOOTED),
        notification(REBOOT_REASON, reboot_reason(reboot).encode()),
        asr_version(asr_version_id),
        asr_state(AsrState.LINKED),
        asr_state(AsrState.INITIALIZED),
    ]
