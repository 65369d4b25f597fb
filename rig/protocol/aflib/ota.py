"""The MCU OTA attributes: ids, the ota_info value, transfer chunks, next offsets, and the
messages of a handoff as afLib's reference receiver (generic_mcu) exchanges them.

Every OTA message is an UPDATE tunnelled through a channel: the ASR notifies on 1098 with request
id 0, the MCU reports on 1099 with its own request counter (af_lib.c queue_put), so a handoff's
messages pair by attribute and state, never by request id. The MCU's version report after APPLY
is a SET of attribute 2000 + type (generic_mcu.c), which the ASR must answer.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, replace
from enum import IntEnum

from rig.protocol.aflib.messages import (
    TO_ASR_CHANNEL,
    TO_MCU_CHANNEL,
    Message,
    MsgType,
    ProtocolError,
    UpdateReason,
    UpdateState,
    check_range,
    hexdump,
)

AF_MCU_OTA_INFO = 1301
AF_MCU_OTA_TRANSFER = 1302
STOP_TRANSFER_OFFSET = 0xFFFFFFFF
CLASSIC_ATTRIBUTE_SIZE = 253  # the classic module's attribute size: 249 data bytes per chunk
VERSION_ATTRIBUTE_BASE = 2000


def version_attribute(ota_type: int) -> int:
    """The attribute an MCU writes its running version of image type `ota_type` to."""
    return VERSION_ATTRIBUTE_BASE + ota_type


def ota_type_of(attr_id: int) -> int | None:
    """The image type whose version attribute this is (2001..2255), else None."""
    ota_type = attr_id - VERSION_ATTRIBUTE_BASE
    return ota_type if 0 < ota_type <= 0xFF else None


class OtaState(IntEnum):
    IDLE = 0
    TRANSFER_BEGIN = 1
    TRANSFER_END = 2
    VERIFY_SIGNATURE = 3
    APPLY = 4
    FAIL = 5


# The union member each state may carry ("" = none), its fields and its layout. Step 2's decline
# is the begin member under state IDLE, so the states without a member of their own accept it too;
# the MCU's answer to APPLY is the apply member under IDLE (generic_mcu echoes what it got).
_MEMBERS = {
    OtaState.IDLE: ("", "begin", "apply"),
    OtaState.TRANSFER_BEGIN: ("begin",),
    OtaState.TRANSFER_END: ("", "begin"),
    OtaState.VERIFY_SIGNATURE: ("verify",),
    OtaState.APPLY: ("apply",),
    OtaState.FAIL: ("", "begin"),
}
_FIELDS = {
    "": (),
    "begin": ("ota_type", "size", "version_id"),
    "verify": ("sha256",),
    "apply": ("version_id",),
}
_LAYOUTS = {
    "": struct.Struct("<"),
    "begin": struct.Struct("<HIQ"),
    "verify": struct.Struct("<32s"),
    "apply": struct.Struct("<Q"),
}
_ALL_FIELDS = ("ota_type", "size", "version_id", "sha256")
_C_STRUCT_LEN = 33  # sizeof(af_ota_info_t): what afLib sends when it copies the struct whole


@dataclass(frozen=True)
class OtaInfo:
    """The AF_MCU_OTA_INFO value: a state and the union member that state carries."""

    state: OtaState
    ota_type: int | None = None
    size: int | None = None
    version_id: int | None = None
    sha256: bytes | None = None

    @classmethod
    def begin(cls, ota_type: int, size: int, version_id: int) -> OtaInfo:
        return cls(OtaState.TRANSFER_BEGIN, ota_type, size, version_id)

    @classmethod
    def verify(cls, sha256: bytes) -> OtaInfo:
        return cls(OtaState.VERIFY_SIGNATURE, sha256=bytes(sha256))

    @classmethod
    def apply(cls, version_id: int) -> OtaInfo:
        return cls(OtaState.APPLY, version_id=version_id)

    def decline(self) -> OtaInfo:
        """The MCU's answer to a TRANSFER_BEGIN it will not take: the same value, state IDLE."""
        return replace(self, state=OtaState.IDLE)

    def applied(self) -> OtaInfo:
        """The MCU's answer to APPLY: the same value, state IDLE (9 bytes on the wire)."""
        return replace(self, state=OtaState.IDLE)

    def encode(self) -> bytes:
        if self.state not in OtaState._value2member_map_:
            raise ProtocolError(f"unknown OTA state {self.state!r}")
        if self.sha256 is not None and len(self.sha256) != 32:
            raise ProtocolError(f"a sha256 is 32 bytes, not {len(self.sha256)}: {self}")
        filled = {name for name in _ALL_FIELDS if getattr(self, name) is not None}
        for member in _MEMBERS[OtaState(self.state)]:
            if set(_FIELDS[member]) == filled:
                fields = [getattr(self, name) for name in _FIELDS[member]]
                try:
                    return bytes([self.state]) + _LAYOUTS[member].pack(*fields)
                except struct.error as err:
                    raise ProtocolError(f"{self} does not fit its layout: {err}") from None
        carries = " or ".join(", ".join(_FIELDS[m]) or "nothing" for m in _MEMBERS[self.state])
        raise ProtocolError(f"{OtaState(self.state).name} carries {carries}: {self}")

    @classmethod
    def decode(cls, value: bytes) -> OtaInfo:
        """The exact union size, or the 33-byte C struct afLib sends (its tail ignored)."""
        value = bytes(value)
        if not value or value[0] not in OtaState._value2member_map_:
            raise ProtocolError(f"not an OTA state: {hexdump(value) or 'empty value'}")
        state, body = OtaState(value[0]), value[1:]
        for member in _MEMBERS[state]:
            layout = _LAYOUTS[member]
            if len(body) == layout.size or (member and len(value) == _C_STRUCT_LEN):
                fields = zip(_FIELDS[member], layout.unpack_from(body), strict=True)
                return cls(state, **dict(fields))
        raise ProtocolError(f"{state.name} value of {len(value)} bytes: {hexdump(value)}")


_OFFSET = struct.Struct("<I")


def encode_transfer(offset: int, data: bytes) -> bytes:
    """An AF_MCU_OTA_TRANSFER chunk: u32 offset, then the data."""
    check_range("offset", offset, 32)
    return _OFFSET.pack(offset) + bytes(data)


def decode_transfer(value: bytes) -> tuple[int, bytes]:
    if len(value) < _OFFSET.size:
        raise ProtocolError(f"transfer value shorter than its offset: {hexdump(value)}")
    return _OFFSET.unpack_from(value)[0], bytes(value[_OFFSET.size :])


def encode_offset(offset: int) -> bytes:
    """The MCU's answer to a chunk: the next offset it wants (STOP_TRANSFER_OFFSET: no more)."""
    check_range("offset", offset, 32)
    return _OFFSET.pack(offset)


def decode_offset(value: bytes) -> int:
    if len(value) != _OFFSET.size:
        raise ProtocolError(f"a next-offset value is 4 bytes: {hexdump(value)}")
    return _OFFSET.unpack(value)[0]


def max_chunk(attribute_size: int = CLASSIC_ATTRIBUTE_SIZE) -> int:
    """Data bytes per chunk: the transfer attribute's size minus the 4-byte offset."""
    if attribute_size <= _OFFSET.size:
        raise ProtocolError(f"attribute size {attribute_size} leaves no room for data")
    return attribute_size - _OFFSET.size


def notify(attr_id: int, value: bytes) -> Message:
    """An OTA step from the ASR: an UPDATE tunnelled on 1098, request id 0 (the ASR's own
    notifications carry none). Its reason must not read as an answer (MCU_SET, GET_RESPONSE) or
    be dropped (FAKE_UPDATE), or afLib never hands it to the OTA code; SERVICE_SET says where
    the image comes from."""
    return Message(MsgType.UPDATE, 0, attr_id, bytes(value), UpdateState.UPDATED,
                   UpdateReason.SERVICE_SET, channel=TO_MCU_CHANNEL)  # fmt: skip


def report(request_id: int, attr_id: int, value: bytes) -> Message:
    """An OTA step from the MCU: an UPDATE tunnelled on 1099 with the MCU's own request id."""
    return Message(MsgType.UPDATE, request_id, attr_id, bytes(value), UpdateState.UPDATED,
                   UpdateReason.LOCAL_OR_MCU_UPDATE, channel=TO_ASR_CHANNEL)  # fmt: skip


def notify_info(info: OtaInfo) -> Message:
    return notify(AF_MCU_OTA_INFO, info.encode())


def notify_chunk(offset: int, data: bytes) -> Message:
    return notify(AF_MCU_OTA_TRANSFER, encode_transfer(offset, data))


def version_report(request_id: int, ota_type: int, version_id: int) -> Message:
    """The MCU's SET of its version attribute after APPLY: the signal the apply worked."""
    check_range("version", version_id, 64)
    attr = version_attribute(ota_type)
    return Message(MsgType.SET, request_id, attr, version_id.to_bytes(8, "little"))


def version_of(value: bytes) -> int:
    """A version attribute's value (u64, little-endian; shorter values are zero-extended)."""
    return int.from_bytes(bytes(value[:8]), "little")
