"""afLib commands (SET, GET, UPDATE, …): the one error type and the message codec.

Tunnelled attributes (MCU OTA 1301..1400) travel inside UPDATEs of the two channel attributes,
1098 from the ASR and 1099 from the MCU, their own id in the first two value bytes (afLib's
af_lib.c unwraps 1098; its queue_put wraps into 1099). `decode` unwraps them, so every reader
sees the attribute that was meant, and keeps the channel in `Message.channel`; `encode` wraps
them again, so a decoded message re-encodes to the same bytes.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum

from rig.errors import RigError


class ProtocolError(RigError):
    """Bytes that do not follow the ASR⇆MCU protocol, or a value that cannot be put on the wire."""


def hexdump(data: bytes, limit: int = 48) -> str:
    """Bytes as spaced hex, cut after `limit` so an error message stays one readable line."""
    text = bytes(data[:limit]).hex(" ")
    return text + f" … ({len(data)} bytes)" if len(data) > limit else text


def check_range(what: str, value: int, bits: int) -> None:
    """Refuse a field that would be silently truncated on the wire."""
    if not 0 <= value < 1 << bits:
        raise ProtocolError(f"{what} {value} does not fit in {bits} bits")


class MsgType(IntEnum):
    SET = 0x0B
    GET = 0x0C
    UPDATE = 0x0D
    UPDATE_REJECTED_LEGACY = 0x0E  # what ASRs before protocol 2 send, and all afLib3 reads
    UPDATE_REJECTED = 0x29
    SET_DEFAULT = 0x2A


class UpdateState(IntEnum):
    UPDATED = 0
    INTERRUPTED = 1
    UNKNOWN_UUID = 2
    LENGTH_EXCEEDED = 3
    CONFLICT = 4
    FAILED = 5
    FORBIDDEN = 6


class UpdateReason(IntEnum):
    UNKNOWN = 0
    LOCAL_OR_MCU_UPDATE = 1
    SERVICE_SET = 2
    MCU_SET = 3  # an ASR's answer to an MCU SET
    RELINK = 4
    BIND_FOLLOW = 5
    FAKE_UPDATE = 6  # afLib drops the whole message
    NOTIFY_MCU_WE_REBOOTED = 7
    LOCAL_SET = 8
    REBOOTED = 9  # a default value after the ASR rebooted
    CRC_FAIL = 0x0A
    GET_RESPONSE = 0x0B
    INTERNAL_SET_REJECTED = 0xFD  # with state FAILED: the MCU refuses an ASR SET
    INTERNAL_SET_FAIL = 0xFE
    NO_CHANGE = 0xFF


#: The channel attributes tunnelled values travel in, and the range of ids that are tunnelled.
TO_MCU_CHANNEL = 1098
TO_ASR_CHANNEL = 1099
CHANNELS = (TO_MCU_CHANNEL, TO_ASR_CHANNEL)
TUNNELLED = range(1301, 1401)


REJECTS = (MsgType.UPDATE_REJECTED, MsgType.UPDATE_REJECTED_LEGACY)
WITH_STATUS = (MsgType.UPDATE, *REJECTS)  # carry u8 state, u8 reason
WITHOUT_VALUE = (MsgType.GET, *REJECTS)  # stop before u16 value_len


@dataclass(frozen=True)
class Message:
    """One afLib command. `state`/`reason` belong to UPDATE and the rejects only.

    `attr_id` and `value` are what the message is about; `channel` is the attribute it travelled
    in when it was tunnelled (1098 or 1099), else None. Decoded states and reasons are enum
    members when known and plain ints otherwise: a sniffer must show whatever a module sends.
    """

    type: MsgType
    request_id: int
    attr_id: int
    value: bytes = b""
    state: UpdateState | int | None = None
    reason: UpdateReason | int | None = None
    channel: int | None = None

    @property
    def wire_attr_id(self) -> int:
        """The attribute id on the wire: the channel's when tunnelled."""
        return self.channel if self.channel is not None else self.attr_id

    @property
    def wire_value(self) -> bytes:
        """The value on the wire: the inner id in front when tunnelled."""
        if self.channel is None:
            return self.value
        return struct.pack("<H", self.attr_id) + self.value


def encode(msg: Message) -> bytes:
    """The bytes of `msg` on the wire, its u16 length prefix included."""
    if msg.type not in MsgType._value2member_map_:
        raise ProtocolError(f"unknown afLib message type {msg.type!r}")
    check_range("request id", msg.request_id, 8)
    check_range("attribute id", msg.attr_id, 16)
    if msg.channel is not None and (msg.channel not in CHANNELS or msg.type != MsgType.UPDATE):
        raise ProtocolError(f"{_name(msg)}: only an UPDATE travels in a channel (1098, 1099), "
                            f"not {msg.channel}")  # fmt: skip
    body = struct.pack("<BBH", msg.type, msg.request_id, msg.wire_attr_id)
    if msg.type in WITH_STATUS:
        if msg.state is None or msg.reason is None:
            raise ProtocolError(f"{_name(msg)} needs both a state and a reason")
        check_range("update state", msg.state, 8)
        check_range("update reason", msg.reason, 8)
        body += bytes([msg.state, msg.reason])
    elif msg.state is not None or msg.reason is not None:
        raise ProtocolError(f"{_name(msg)} carries no state or reason")
    if msg.type in WITHOUT_VALUE:
        if msg.value:
            raise ProtocolError(f"{_name(msg)} carries no value")
    else:
        value = msg.wire_value
        check_range("value length", len(value), 16)
        body += struct.pack("<H", len(value)) + bytes(value)
    check_range("message length", len(body), 16)
    return struct.pack("<H", len(body)) + body


def _name(msg: Message) -> str:
    """How an error message names `msg` (built only when there is an error to tell)."""
    return f"{MsgType(msg.type).name} {msg.attr_id}"


def _enum_or_int(kind: type[IntEnum], raw: int) -> IntEnum | int:
    return kind(raw) if raw in kind._value2member_map_ else raw


def decode(data: bytes) -> Message:
    """Parse one whole message (length prefix included); anything malformed is a ProtocolError."""
    data = bytes(data)
    if len(data) < 6:
        raise ProtocolError(f"afLib message too short ({len(data)} bytes): {hexdump(data)}")
    length, raw_type, request_id, attr_id = struct.unpack_from("<HBBH", data)
    if length != len(data) - 2:
        raise ProtocolError(
            f"afLib length field says {length} bytes follow, {len(data) - 2} do: {hexdump(data)}"
        )
    if raw_type not in MsgType._value2member_map_:
        raise ProtocolError(f"unknown afLib message type 0x{raw_type:02x}: {hexdump(data)}")
    msg_type = MsgType(raw_type)
    head = 6 + 2 * (msg_type in WITH_STATUS) + 2 * (msg_type not in WITHOUT_VALUE)
    if len(data) < head:
        raise ProtocolError(f"{msg_type.name} shorter than its {head}-byte head: {hexdump(data)}")
    state = reason = None
    if msg_type in WITH_STATUS:
        state, reason = _enum_or_int(UpdateState, data[6]), _enum_or_int(UpdateReason, data[7])
    value = data[head:]
    if msg_type in WITHOUT_VALUE and value:
        raise ProtocolError(f"{msg_type.name} with {len(value)} bytes too many: {hexdump(data)}")
    if msg_type not in WITHOUT_VALUE:
        (value_len,) = struct.unpack_from("<H", data, head - 2)
        if value_len != len(value):
            raise ProtocolError(
                f"{msg_type.name} {attr_id} value length says {value_len}, "
                f"{len(value)} bytes follow: {hexdump(data)}"
            )
    if msg_type == MsgType.UPDATE and attr_id in CHANNELS and len(value) >= 2:
        (inner,) = struct.unpack_from("<H", value)
        return Message(msg_type, request_id, inner, value[2:], state, reason, channel=attr_id)
    return Message(msg_type, request_id, attr_id, value, state, reason)


def update(
    request_id: int,
    attr_id: int,
    value: bytes,
    state: UpdateState | int = UpdateState.UPDATED,
    reason: UpdateReason | int | None = None,
) -> Message:
    """An UPDATE; the reason defaults to SERVICE_SET when it answers a request (id > 0) and to
    LOCAL_OR_MCU_UPDATE when it is unsolicited (id 0), as afLib's rules have it."""
    if reason is None:
        reason = UpdateReason.SERVICE_SET if request_id else UpdateReason.LOCAL_OR_MCU_UPDATE
    return Message(MsgType.UPDATE, request_id, attr_id, bytes(value), state, reason)


def answer(request: Message, value: bytes | None = None) -> Message:
    """The ASR's UPDATE that completes an MCU SET or GET: same attribute, the request's id echoed
    (afLib waits for it, matched by attribute, up to 10 s), reason MCU_SET or GET_RESPONSE."""
    if request.type not in (MsgType.SET, MsgType.GET):
        raise ProtocolError(f"only a SET or a GET is answered, not {request.type!r}")
    reason = UpdateReason.MCU_SET if request.type == MsgType.SET else UpdateReason.GET_RESPONSE
    value = request.value if value is None else value
    return Message(MsgType.UPDATE, request.request_id, request.attr_id, bytes(value),
                   UpdateState.UPDATED, reason)  # fmt: skip


def tunnelled(msg: Message) -> bool:
    return msg.channel is not None
