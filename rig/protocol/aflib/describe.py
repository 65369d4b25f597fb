"""One readable line per message, for logs, sniffer output and test failure messages."""

from __future__ import annotations

from enum import IntEnum

from rig.protocol.aflib.messages import (
    WITH_STATUS,
    WITHOUT_VALUE,
    Message,
    MsgType,
    ProtocolError,
    UpdateReason,
    UpdateState,
    hexdump,
)
from rig.protocol.aflib.ota import (
    AF_MCU_OTA_INFO,
    AF_MCU_OTA_TRANSFER,
    STOP_TRANSFER_OFFSET,
    OtaInfo,
    decode_offset,
    decode_transfer,
    ota_type_of,
    version_of,
)
from rig.protocol.aflib.system import (
    ASR_CAPABILITIES,
    ASR_FIRMWARE_VERSION,
    ASR_STATE,
    REBOOT_REASON,
    AsrState,
    mcu_ota_capable,
    reboot_code,
)


def _name(kind: type[IntEnum], value: int | None) -> str:
    return kind(value).name if value in kind._value2member_map_ else str(value)


def describe_value(attr_id: int, value: bytes, msg_type: MsgType = MsgType.SET) -> str:
    """What a value means for the attributes rig knows; hex for the rest. Never raises."""
    try:
        if attr_id == AF_MCU_OTA_INFO:
            info = OtaInfo.decode(value)
            text = info.state.name
            if info.ota_type is not None:
                text += f" type={info.ota_type} size={info.size}"
            if info.version_id is not None:
                text += f" version={info.version_id}"
            return text + (f" sha256={info.sha256.hex()[:16]}…" if info.sha256 else "")
        if attr_id == AF_MCU_OTA_TRANSFER and len(value) == 4:
            offset = decode_offset(value)
            return "next offset " + ("STOP" if offset == STOP_TRANSFER_OFFSET else str(offset))
        if attr_id == AF_MCU_OTA_TRANSFER:
            offset, data = decode_transfer(value)
            return f"offset {offset} +{len(data)} bytes"
        ota_type = ota_type_of(attr_id)
        if attr_id == ASR_FIRMWARE_VERSION and len(value) == 8:
            return f"ASR firmware version 0x{version_of(value):x}"
        if ota_type is not None and len(value) == 8:
            return f"version {version_of(value)} (type {ota_type})"
        if attr_id == ASR_STATE and len(value) == 1:
            return f"ASR state {_name(AsrState, value[0])}"
        if attr_id == ASR_CAPABILITIES and value:
            ota = " (MCU OTA)" if mcu_ota_capable(value) else ""
            return f"capabilities {value.hex(' ')}{ota}"
        if attr_id == REBOOT_REASON and value:
            text = value.decode("utf-8", "replace")
            return f"reboot reason {_name_of(reboot_code(value))} ({text})"
    except ProtocolError as err:
        return f"unparsable value ({err})"
    return f"value {hexdump(value, 16)}" if value else "empty value"


def _name_of(code: object) -> str:
    return getattr(code, "name", str(code))


def describe(msg: Message) -> str:
    """One readable line, e.g. 'UPDATE 1301 via 1098 TRANSFER_BEGIN type=101 size=4096 ...'."""
    text = f"{_name(MsgType, msg.type)} {msg.attr_id}"
    if msg.channel is not None:
        text += f" via {msg.channel}"
    if msg.type in WITH_STATUS and (msg.type != MsgType.UPDATE or msg.state != UpdateState.UPDATED):
        text += f" [{_name(UpdateState, msg.state)}/{_name(UpdateReason, msg.reason)}]"
    if msg.type not in WITHOUT_VALUE:
        text += " " + describe_value(msg.attr_id, msg.value, msg.type)
    return text + (f" (req {msg.request_id})" if msg.request_id else "")
