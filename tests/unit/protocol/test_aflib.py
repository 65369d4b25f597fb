"""afLib messages and MCU OTA values: exact bytes per DESIGN §3; refusals that show the bytes."""

from __future__ import annotations

import pytest

from rig.errors import RigError
from rig.protocol import aflib
from rig.protocol.aflib import (
    Message,
    MsgType,
    OtaInfo,
    OtaState,
    ProtocolError,
    UpdateReason,
    UpdateState,
    decode,
    encode,
)

H = bytes.fromhex


# -- messages ----------------------------------------------------------------------------------


def test_set_layout_is_len_type_request_attr_value_len_value():
    msg = Message(MsgType.SET, 3, 1302, H("aabbcc"))
    # len 9 = type + req + attr(2) + value_len(2) + value(3)
    assert encode(msg) == H("0900 0b 03 1605 0300 aabbcc")
    assert decode(encode(msg)) == msg


def test_get_stops_after_attr_id():
    assert encode(Message(MsgType.GET, 1, 1206)) == H("0400 0c 01 b604")
    assert decode(H("0400 0c 01 b604")) == Message(MsgType.GET, 1, 1206)


def test_update_carries_state_and_reason_before_the_value():
    msg = Message(MsgType.UPDATE, 7, 2101, H("01"), UpdateState.FAILED, UpdateReason.SERVICE_SET)
    assert encode(msg) == H("0900 0d 07 3508 05 02 0100 01")
    decoded = decode(encode(msg))
    assert decoded == msg
    assert decoded.state is UpdateState.FAILED and decoded.reason is UpdateReason.SERVICE_SET


def test_update_rejected_carries_state_and_reason_and_no_value():
    msg = Message(MsgType.UPDATE_REJECTED, 0, 5, state=UpdateState.LENGTH_EXCEEDED, reason=1)
    assert encode(msg) == H("0600 29 00 0500 03 01")
    assert decode(H("0600 29 00 0500 03 01")) == msg


def test_set_default_is_shaped_like_set():
    msg = Message(MsgType.SET_DEFAULT, 0, 1, H("2a"))
    assert encode(msg) == H("0700 2a 00 0100 0100 2a")
    assert decode(encode(msg)) == msg


def test_unknown_state_and_reason_survive_as_numbers():
    # real ASRs send reasons DESIGN does not list (7 = NOTIFY_MCU_WE_REBOOTED); keep them
    decoded = decode(H("0800 0d 00 0100 07 07 0000"))
    assert (decoded.state, decoded.reason) == (7, 7)
    assert not isinstance(decoded.state, UpdateState)
    assert encode(decoded) == H("0800 0d 00 0100 07 07 0000")


@pytest.mark.parametrize(
    ("data", "complaint"),
    [
        (H("0400 0b 00"), "too short"),
        (H("0700 0b 00 0100 0100"), "length field says 7"),  # one value byte missing
        (H("0600 0b 00 0100 0100 2a"), "length field says 6"),
        (H("0400 99 00 0100"), "unknown afLib message type 0x99"),
        (H("0700 0b 00 0100 0200 2a"), "value length says 2"),
        (H("0500 0c 01 b604 00"), "too many"),  # a GET with a stray byte
        (H("0600 0d 00 0100 0000"), "head"),  # an UPDATE too short for state+reason+len
    ],
)
def test_malformed_messages_are_refused_with_the_bytes_in_hex(data: bytes, complaint: str):
    with pytest.raises(ProtocolError) as err:
        decode(data)
    assert complaint in str(err.value)
    assert data[:4].hex(" ") in str(err.value)
    assert isinstance(err.value, RigError)


@pytest.mark.parametrize(
    "msg",
    [
        Message(MsgType.UPDATE, 0, 1, b""),  # no state/reason
        Message(MsgType.SET, 0, 1, b"", state=UpdateState.UPDATED),
        Message(MsgType.GET, 0, 1, b"x"),
        Message(MsgType.UPDATE_REJECTED, 0, 1, b"x", 0, 0),
        Message(MsgType.SET, 256, 1),
        Message(MsgType.SET, 0, 65536),
        Message(MsgType.SET, 0, 1, bytes(65536)),
    ],
)
def test_messages_that_cannot_go_on_the_wire_are_refused(msg: Message):
    with pytest.raises(ProtocolError):
        encode(msg)


def test_update_helper_picks_the_reason_afLib_would():
    assert aflib.update(3, 1301, b"\x00").reason is UpdateReason.SERVICE_SET
    assert aflib.update(0, 2101, b"\x00").reason is UpdateReason.LOCAL_OR_MCU_UPDATE
    assert aflib.update(0, 1, b"", UpdateState.FAILED, UpdateReason.MCU_SET).state == 5


# -- MCU OTA values --------------------------------------------------------------------------------


def test_constants_match_aflib():
    assert (aflib.AF_MCU_OTA_INFO, aflib.AF_MCU_OTA_TRANSFER, aflib.ASR_CAPABILITIES) == (
        1301,
        1302,
        1206,
    )
    assert aflib.version_attribute(101) == 2101
    assert aflib.STOP_TRANSFER_OFFSET == 0xFFFFFFFF
    assert aflib.REBOOT_REASON == 65019
    assert aflib.max_chunk() == 249 and aflib.max_chunk(1024) == 1020
    assert aflib.mcu_ota_capable(H("80")) and aflib.mcu_ota_capable(H("c1 00"))
    assert not aflib.mcu_ota_capable(H("7f")) and not aflib.mcu_ota_capable(b"")


def test_begin_value_is_state_type_size_version():
    info = OtaInfo.begin(ota_type=101, size=40960, version_id=7)
    assert info.encode() == H("01 6500 00a00000 0700000000000000")
    assert OtaInfo.decode(info.encode()) == info


def test_decline_is_the_begin_value_with_state_idle_and_decodes_as_such():
    declined = OtaInfo.begin(101, 40960, 7).decline()
    assert declined.encode() == H("00 6500 00a00000 0700000000000000")
    assert OtaInfo.decode(declined.encode()) == OtaInfo(OtaState.IDLE, 101, 40960, 7)


def test_verify_and_apply_values():
    sha = bytes(range(32))
    assert OtaInfo.verify(sha).encode() == H("03") + sha
    assert OtaInfo.apply(2**40 + 1).encode() == H("04 0100000000010000")
    assert OtaInfo.decode(H("03") + sha) == OtaInfo.verify(sha)
    assert OtaInfo.decode(H("04 0100000000010000")).version_id == 2**40 + 1


@pytest.mark.parametrize("state", [OtaState.IDLE, OtaState.TRANSFER_END, OtaState.FAIL])
def test_states_without_a_union_member_are_the_state_byte_alone(state: OtaState):
    assert OtaInfo(state).encode() == bytes([state])
    assert OtaInfo.decode(bytes([state])) == OtaInfo(state)


def test_the_whole_33_byte_c_struct_is_accepted():
    # afLib's MCU copies sizeof(af_ota_info_t): the union's largest member decides the size
    begin = H("01 6500 00a00000 0700000000000000").ljust(33, b"\xee")
    assert OtaInfo.decode(begin) == OtaInfo.begin(101, 40960, 7)
    assert OtaInfo.decode(H("04 0900000000000000").ljust(33, b"\0")) == OtaInfo.apply(9)
    assert OtaInfo.decode(bytes(33)) == OtaInfo(OtaState.IDLE, 0, 0, 0)


@pytest.mark.parametrize(
    "value",
    [b"", H("06"), H("01 6500"), H("03") + bytes(31), H("04 00"), H("02 00"), H("00") + bytes(13)],
)
def test_malformed_ota_info_is_refused(value: bytes):
    with pytest.raises(ProtocolError):
        OtaInfo.decode(value)


@pytest.mark.parametrize(
    "info",
    [
        OtaInfo(OtaState.APPLY),
        OtaInfo(OtaState.TRANSFER_BEGIN, 101, 10),
        OtaInfo(OtaState.VERIFY_SIGNATURE, sha256=bytes(31)),
        OtaInfo(OtaState.APPLY, version_id=1, sha256=bytes(32)),
        OtaInfo(OtaState.IDLE, 70000, 1, 1),
        OtaInfo(OtaState.TRANSFER_BEGIN, 101, -1, 1),
    ],
)
def test_ota_info_that_fits_no_layout_is_refused(info: OtaInfo):
    with pytest.raises(ProtocolError):
        info.encode()


def test_transfer_and_next_offset_values():
    assert aflib.encode_transfer(249, b"ab") == H("f9000000 6162")
    assert aflib.decode_transfer(H("f9000000 6162")) == (249, b"ab")
    assert aflib.encode_offset(aflib.STOP_TRANSFER_OFFSET) == H("ffffffff")
    assert aflib.decode_offset(H("f9000000")) == 249
    for bad in (H("f90000"), H("f9000000 00")):
        with pytest.raises(ProtocolError):
            aflib.decode_offset(bad)
    with pytest.raises(ProtocolError):
        aflib.decode_transfer(H("000000"))
    with pytest.raises(ProtocolError):
        aflib.encode_offset(2**32)


def test_ota_steps_travel_tunnelled_as_afLib_sends_them():
    """Bytes as the reference MCU (afLib3-generic's generic_mcu) exchanged them on a pty:
    the ASR notifies on 1098, the MCU reports on 1099 with its own request counter."""
    begin = aflib.notify_info(OtaInfo.begin(101, 600, 0x0102030405060708))
    assert encode(begin) == H(
        "19 00 0d 00 4a 04 00 02 11 00 15 05 01 65 00 58 02 00 00 08 07 06 05 04 03 02 01"
    )
    answer = decode(H("0e 00 0d 04 4b 04 00 01 06 00 16 05 f9 00 00 00"))
    assert (answer.attr_id, answer.channel, answer.request_id) == (1302, 1099, 4)
    assert aflib.decode_offset(answer.value) == 249
    assert answer == aflib.report(4, 1302, aflib.encode_offset(249))
    assert encode(answer) == H("0e 00 0d 04 4b 04 00 01 06 00 16 05 f9 00 00 00")
    chunk = aflib.notify_chunk(0, bytes(249))
    assert len(encode(chunk)) == 2 + 8 + 2 + 253  # the biggest chunk of the classic module


def test_apply_is_echoed_as_a_nine_byte_idle_then_the_version_is_a_set():
    echo = decode(H("13 00 0d 08 4b 04 00 01 0b 00 15 05 00 08 07 06 05 04 03 02 01"))
    info = OtaInfo.decode(echo.value)
    assert (info.state, info.version_id) == (OtaState.IDLE, 0x0102030405060708)
    assert OtaInfo.apply(0x0102030405060708).applied().encode() == echo.value
    version = decode(H("0e 00 0b 09 35 08 08 00 08 07 06 05 04 03 02 01"))
    assert version == aflib.version_report(9, 101, 0x0102030405060708)
    reply = aflib.answer(version)  # what the ASR owes afLib, else its queue stalls 10 s
    assert encode(reply) == H("10 00 0d 09 35 08 00 03 08 00 08 07 06 05 04 03 02 01")


def test_a_set_never_travels_in_a_channel_and_short_channel_values_stay_raw():
    with pytest.raises(ProtocolError, match="only an UPDATE travels in a channel"):
        encode(Message(MsgType.SET, 1, 1302, b"", channel=1098))
    raw = decode(H("09 00 0d 00 4a 04 00 00 01 00 15"))  # one value byte: no inner id
    assert (raw.attr_id, raw.channel, raw.value) == (1098, None, H("15"))


def test_legacy_reject_and_set_refusal_decode():
    reject = decode(H("06 00 0e 00 01 00 06 00"))  # what afLib3 understands: no value
    assert (reject.type, reject.attr_id, reject.state) == (
        MsgType.UPDATE_REJECTED_LEGACY, 1, UpdateState.FORBIDDEN
    )  # fmt: skip
    assert encode(reject) == H("06 00 0e 00 01 00 06 00")
    refused = decode(H("09 00 0d 07 01 00 05 fd 01 00 00"))
    assert (refused.state, refused.reason) == (UpdateState.FAILED, 0xFD)
    assert refused.reason is UpdateReason.INTERNAL_SET_REJECTED


def test_boot_handshake_values():
    assert encode(aflib.asr_version(0x6000)) == H(
        "10 00 0d 00 d3 07 00 00 08 00 00 60 00 00 00 00 00 00"
    )
    assert encode(aflib.asr_state(aflib.AsrState.INITIALIZED)) == H(
        "09 00 0d 00 f5 fd 00 00 01 00 04"
    )
    assert aflib.gate_state(0x5063) is aflib.AsrState.INITIALIZED
    assert aflib.gate_state(0x5062) is aflib.AsrState.LINKED
    text = aflib.reboot_reason(aflib.RebootCode.BROWNOUT)
    assert len(text.split(",")) == 23 and aflib.reboot_code(text) is aflib.RebootCode.BROWNOUT
    assert (
        aflib.reboot_code("1,240,x") is aflib.RebootCode.OTHER and aflib.reboot_code("1,77") == 77
    )
    with pytest.raises(ProtocolError, match="reboot-reason"):
        aflib.reboot_code("brownout")


# -- describe --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("msg", "line"),
    [
        (
            aflib.notify_info(OtaInfo.begin(101, 40960, 7)),
            "UPDATE 1301 via 1098 TRANSFER_BEGIN type=101 size=40960 version=7",
        ),
        (aflib.update(0, 1302, aflib.encode_offset(249)), "UPDATE 1302 next offset 249"),
        (aflib.update(4, 1302, H("ffffffff")), "UPDATE 1302 next offset STOP (req 4)"),
        (aflib.notify_chunk(0, bytes(249)), "UPDATE 1302 via 1098 offset 0 +249 bytes"),
        (aflib.version_report(5, 101, 7), "SET 2101 version 7 (type 101) (req 5)"),
        (aflib.asr_state(aflib.AsrState.LINKED), "UPDATE 65013 ASR state LINKED"),
        (aflib.update(0, 1301, OtaInfo.apply(7).encode()), "UPDATE 1301 APPLY version=7"),
        (aflib.update(0, 2101, (7).to_bytes(8, "little")), "UPDATE 2101 version 7 (type 101)"),
        (Message(MsgType.GET, 1, 1206), "GET 1206 (req 1)"),
        (
            aflib.update(2, 1301, b"\x00", UpdateState.FORBIDDEN),
            "UPDATE 1301 [FORBIDDEN/SERVICE_SET] IDLE (req 2)",
        ),
        (
            Message(MsgType.UPDATE_REJECTED, 0, 5, state=3, reason=1),
            "UPDATE_REJECTED 5 [LENGTH_EXCEEDED/LOCAL_OR_MCU_UPDATE]",
        ),
        (
            Message(MsgType.SET, 0, 1301, H("09")),
            "SET 1301 unparsable value (not an OTA state: 09)",
        ),
        (Message(MsgType.SET, 0, 7, H("0102")), "SET 7 value 01 02"),
    ],
)
def test_describe_is_one_readable_line(msg: Message, line: str):
    assert aflib.describe(msg) == line


def test_the_boot_handshake_satisfies_afLibs_gate_in_order():
    messages = aflib.boot_handshake(0x7001, aflib.RebootCode.BROWNOUT)
    assert [m.attr_id for m in messages] == [65013, 65019, 2003, 65013, 65013]
    assert [m.value for m in messages if m.attr_id == 65013] == [b"\x00", b"\x01", b"\x04"]
    assert aflib.reboot_code(messages[1].value) is aflib.RebootCode.BROWNOUT
    assert all(m.request_id == 0 and m.reason != UpdateReason.FAKE_UPDATE for m in messages)
    assert aflib.gate_state(aflib.version_of(messages[2].value)) is aflib.AsrState.INITIALIZED
