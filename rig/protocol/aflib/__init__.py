"""afLib messages and the MCU OTA attribute values (DESIGN §3), as pure functions on bytes.

The double speaks these bytes and the sniffer reads them, so both import this one codec instead of
packing structs on their own. Everything is little-endian and nothing here does I/O. Import from
`rig.protocol.aflib`; the submodules only keep each file to one concern. Choices where DESIGN
is silent are listed in docs/protocol.md.
"""

from rig.protocol.aflib.describe import describe, describe_value
from rig.protocol.aflib.messages import (
    Message,
    MsgType,
    ProtocolError,
    UpdateReason,
    UpdateState,
    decode,
    encode,
    hexdump,
    update,
)
from rig.protocol.aflib.ota import (
    AF_ASR_CAPABILITIES,
    AF_MCU_OTA_INFO,
    AF_MCU_OTA_TRANSFER,
    CLASSIC_ATTRIBUTE_SIZE,
    MCU_OTA_CAPABLE_BIT,
    REBOOT_REASON,
    STOP_TRANSFER_OFFSET,
    OtaInfo,
    OtaState,
    decode_offset,
    decode_transfer,
    encode_offset,
    encode_transfer,
    max_chunk,
    mcu_ota_capable,
    set_ota_info,
    set_transfer,
    version_attribute,
)

__all__ = [
    "AF_ASR_CAPABILITIES",
    "AF_MCU_OTA_INFO",
    "AF_MCU_OTA_TRANSFER",
    "CLASSIC_ATTRIBUTE_SIZE",
    "MCU_OTA_CAPABLE_BIT",
    "REBOOT_REASON",
    "STOP_TRANSFER_OFFSET",
    "Message",
    "MsgType",
    "OtaInfo",
    "OtaState",
    "ProtocolError",
    "UpdateReason",
    "UpdateState",
    "decode",
    "decode_offset",
    "decode_transfer",
    "describe",
    "describe_value",
    "encode",
    "encode_offset",
    "encode_transfer",
    "hexdump",
    "max_chunk",
    "mcu_ota_capable",
    "set_ota_info",
    "set_transfer",
    "update",
    "version_attribute",
]
