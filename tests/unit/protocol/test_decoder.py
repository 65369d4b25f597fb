"""The sniffer's stream decoder on hand-made captures: each frame kind, each way to recover.

Framing tests use a plain 20-byte SET 1302 (`SET_20`) so the counts stay easy to check; the tests
about afLib's own messages (tunnelled OTA steps, the legacy reject, the 9-byte IDLE) use the
shapes afLib sends.
"""

from __future__ import annotations

import pytest

from rig.protocol import aflib
from rig.protocol.afpro import READY, Sync, SyncKind
from rig.protocol.decoder import (
    ASR_TO_MCU,
    MCU_TO_ASR,
    Event,
    MessageEvent,
    SkipEvent,
    StreamDecoder,
    SyncEvent,
    describe_event,
    event_bytes,
)

H = bytes.fromhex
R = bytes([READY])
# framing only: a SET of 1302 keeps the arithmetic of the counts (afLib tunnels OTA steps)
SET_20 = aflib.encode(
    aflib.Message(aflib.MsgType.SET, 3, 1302, aflib.encode_transfer(0, bytes(range(8))))
)
UPDATE_14 = aflib.encode(aflib.update(3, 1302, aflib.encode_offset(8)))


def req(n: int) -> bytes:
    return Sync(SyncKind.REQUEST_OR_RESPONSE, n, 0).encode()


def resp(mcu: int, asr: int) -> bytes:
    return Sync(SyncKind.REQUEST_OR_RESPONSE, mcu, asr).encode()


def ack(mcu: int, asr: int) -> bytes:
    return Sync(SyncKind.ACK, mcu, asr).encode()


def feed_all(direction: str, data: bytes, *, bytewise: bool = False) -> list[Event]:
    decoder = StreamDecoder()
    events: list[Event] = []
    pieces = [data[i : i + 1] for i in range(len(data))] if bytewise else [data]
    for t, piece in enumerate(pieces):
        events += decoder.feed(direction, piece, float(t))
    events += decoder.flush(float(len(pieces)))
    assert b"".join(event_bytes(e) for e in events) == data  # every byte, once, in order
    return events


def kinds(events: list[Event]) -> list[str]:
    return [type(e).__name__.removesuffix("Event") for e in events]


def messages(events: list[Event]) -> list[bytes]:
    return [e.raw for e in events if isinstance(e, MessageEvent)]


# -- clean captures -------------------------------------------------------------------------------


@pytest.mark.parametrize("bytewise", [False, True])
def test_asr_stream_of_a_set_from_the_asr(bytewise: bool):
    events = feed_all(ASR_TO_MCU, R + resp(0, 20) + R + R + SET_20 + R, bytewise=bytewise)
    assert kinds(events) == ["Ready", "Sync", "Ready", "Ready", "Message", "Ready"]
    (msg,) = [e for e in events if isinstance(e, MessageEvent)]
    assert msg.message == aflib.decode(SET_20) and msg.raw == SET_20
    assert events[1].sync == Sync(SyncKind.REQUEST_OR_RESPONSE, 0, 20)


@pytest.mark.parametrize("bytewise", [False, True])
def test_mcu_stream_of_an_update_from_the_mcu(bytewise: bool):
    events = feed_all(MCU_TO_ASR, req(14) + ack(14, 0) + UPDATE_14, bytewise=bytewise)
    assert kinds(events) == ["Sync", "Sync", "Message"]
    assert messages(events) == [UPDATE_14]


def test_events_carry_the_time_of_the_bytes_that_completed_them():
    decoder = StreamDecoder()
    assert decoder.feed(MCU_TO_ASR, req(14) + ack(14, 0) + UPDATE_14[:5], 1.0)[-1].t == 1.0
    (event,) = decoder.feed(MCU_TO_ASR, UPDATE_14[5:], 2.5)
    assert isinstance(event, MessageEvent) and event.t == 2.5 and event.direction == MCU_TO_ASR


def test_a_collision_response_announces_no_asr_data():
    # after a collision the ASR sends no data: the next bytes are syncs and Readies again
    stream = resp(14, 20) + R + resp(14, 0) + R + R + R + R + resp(0, 20) + R + R + SET_20 + R
    events = feed_all(ASR_TO_MCU, stream)
    assert messages(events) == [SET_20]
    assert not any(isinstance(e, SkipEvent) for e in events)


def test_an_mcu_that_acks_a_collision_sends_its_data():
    events = feed_all(MCU_TO_ASR, req(14) + ack(14, 20) + UPDATE_14)
    assert messages(events) == [UPDATE_14]


def test_a_lost_ack_the_asr_answers_the_next_request_and_nothing_is_skipped():
    events = feed_all(ASR_TO_MCU, resp(0, 20) + R + resp(0, 20) + R + R + SET_20 + R)
    assert messages(events) == [SET_20]
    assert not any(isinstance(e, SkipEvent) for e in events)


def test_a_bare_valid_sync_inside_data_is_data():
    # what follows it is not what follows a real sync, so it cannot end the data phase
    mcu_value = req(14) + b"\x00" + ack(0, 0) + b"\x07"
    mcu_msg = aflib.encode(aflib.Message(aflib.MsgType.SET, 0, 1, mcu_value))
    events = feed_all(MCU_TO_ASR, req(len(mcu_msg)) + ack(len(mcu_msg), 0) + mcu_msg)
    assert messages(events) == [mcu_msg]
    asr_msg = aflib.encode(aflib.notify_chunk(0, resp(0, 9) + R + b"\x00" + resp(0, 0)))
    asr = resp(0, len(asr_msg)) + R + R + asr_msg + R
    assert messages(feed_all(ASR_TO_MCU, asr)) == [asr_msg]


# -- afLib's own messages -------------------------------------------------------------------------


def asr_sends(raw: bytes) -> bytes:
    """The ASR wire of one ASR transaction: attention, response, Ready, Ready + data, Ready."""
    return R + resp(0, len(raw)) + R + R + raw + R


def mcu_sends(raw: bytes) -> bytes:
    """The MCU wire of one MCU transaction: request, ack, data."""
    return req(len(raw)) + ack(len(raw), 0) + raw


@pytest.mark.parametrize("bytewise", [False, True])
def test_a_legacy_reject_from_the_asr_is_eight_bytes_with_no_value(bytewise: bool):
    # what afLib3 understands as a refused SET: type 0x0E, state and reason, no value length
    reject = H("0600 0e 00 0100 06 00")
    events = feed_all(ASR_TO_MCU, asr_sends(reject) + asr_sends(SET_20), bytewise=bytewise)
    assert not any(isinstance(e, SkipEvent) for e in events)
    assert messages(events) == [reject, SET_20]  # the next transaction is not eaten by it
    sync = next(e for e in events if isinstance(e, SyncEvent))
    assert sync.sync == Sync(SyncKind.REQUEST_OR_RESPONSE, 0, 8)
    (first, _) = [e for e in events if isinstance(e, MessageEvent)]
    assert first.message == aflib.Message(
        aflib.MsgType.UPDATE_REJECTED_LEGACY, 0, 1, b"", aflib.UpdateState.FORBIDDEN, 0
    )
    assert describe_event(first).endswith("asr_to_mcu UPDATE_REJECTED_LEGACY 1 [FORBIDDEN/UNKNOWN]")


def test_repeated_readies_from_the_asr_between_transactions_are_readies_only():
    # the ASR repeats its Ready while the MCU is slow to answer, and afLib skips any Readies
    # before a response: none of them is data, and nothing is skipped
    stream = R * 3 + resp(0, 20) + R + R + SET_20 + R * 5 + resp(0, 0) + R + R
    stream += R * 2 + resp(14, 0) + R * 4
    events = feed_all(ASR_TO_MCU, stream)
    assert messages(events) == [SET_20]
    assert not any(isinstance(e, SkipEvent) for e in events)
    ready, sync = "Ready", "Sync"
    assert kinds(events) == [ready] * 3 + [sync, ready, ready, "Message"] + [ready] * 5 + [
        sync, ready, ready, ready, ready, sync, ready, ready, ready, ready,
    ]  # fmt: skip
    assert [e.sync for e in events if isinstance(e, SyncEvent)] == [
        Sync(SyncKind.REQUEST_OR_RESPONSE, 0, 20),
        Sync(SyncKind.REQUEST_OR_RESPONSE, 0, 0),
        Sync(SyncKind.REQUEST_OR_RESPONSE, 14, 0),
    ]


@pytest.mark.parametrize("bytewise", [False, True])
def test_the_mcus_nine_byte_idle_after_apply_is_read_through_its_channel(bytewise: bool):
    # the reference MCU's answer to APPLY: the 9-byte value echoed with state IDLE, on 1099
    idle = H("1300 0d 08 4b04 00 01 0b00 1505 00 0807060504030201")
    events = feed_all(MCU_TO_ASR, mcu_sends(idle) + mcu_sends(UPDATE_14), bytewise=bytewise)
    assert messages(events) == [idle, UPDATE_14]
    assert not any(isinstance(e, SkipEvent) for e in events)
    event = next(e for e in events if isinstance(e, MessageEvent))
    msg = event.message
    assert (msg.attr_id, msg.channel, msg.request_id) == (aflib.AF_MCU_OTA_INFO, 1099, 8)
    assert aflib.OtaInfo.decode(msg.value) == aflib.OtaInfo.apply(0x0102030405060708).applied()
    assert len(msg.value) == 9
    assert describe_event(event).split(" ", 1)[1] == (
        f"mcu_to_asr UPDATE 1301 via 1099 IDLE version={0x0102030405060708} (req 8)"
    )


def test_tunnelled_messages_round_trip_through_the_decoder():
    begin = aflib.OtaInfo.begin(101, 1000, 7)
    asr_sent = [
        aflib.notify_info(begin),
        aflib.notify_chunk(0, bytes(range(97))),
        aflib.notify_info(aflib.OtaInfo.apply(7)),
        aflib.Message(aflib.MsgType.SET, 9, 1098, H("1505 01")),  # afLib unwraps no SET
        aflib.update(0, 1098, H("15")),  # too short to hold an inner id
    ]
    mcu_sent = [
        aflib.report(1, aflib.AF_MCU_OTA_INFO, begin.encode()),
        aflib.report(2, aflib.AF_MCU_OTA_TRANSFER, aflib.encode_offset(97)),
        aflib.report(200, aflib.AF_MCU_OTA_INFO, aflib.OtaInfo.apply(7).applied().encode()),
        aflib.version_report(201, 101, 7),
    ]
    for direction, sent, frame in (
        (ASR_TO_MCU, asr_sent, asr_sends),
        (MCU_TO_ASR, mcu_sent, mcu_sends),
    ):
        raws = [aflib.encode(m) for m in sent]
        events = feed_all(direction, b"".join(frame(raw) for raw in raws), bytewise=True)
        got = [e for e in events if isinstance(e, MessageEvent)]
        assert [e.message for e in got] == sent
        assert [e.raw for e in got] == raws
        assert [aflib.encode(e.message) for e in got] == raws
    # the wire view: the channel and the inner id in front of the value
    chunk = aflib.decode(aflib.encode(asr_sent[1]))
    assert (chunk.attr_id, chunk.channel, chunk.wire_attr_id) == (1302, 1098, 1098)
    assert chunk.wire_value == H("1605") + aflib.encode_transfer(0, bytes(range(97)))
    assert aflib.encode(asr_sent[1])[4:6] == H("4a04")  # attribute 1098 on the wire
    set_1098, short = (aflib.decode(aflib.encode(m)) for m in asr_sent[3:])
    assert (set_1098.attr_id, set_1098.channel) == (1098, None)
    assert (short.attr_id, short.channel, short.value) == (1098, None, H("15"))


# -- recovery -------------------------------------------------------------------------------------


def test_garbage_is_skipped_in_one_event_until_the_next_valid_sync():
    events = feed_all(MCU_TO_ASR, H("01 02 03 ff") + req(14) + ack(14, 0) + UPDATE_14)
    assert kinds(events) == ["Skip", "Sync", "Sync", "Message"]
    assert events[0].data == H("01 02 03 ff") and "not a sync" in events[0].why


def test_a_bad_checksum_is_skipped_and_named():
    events = feed_all(MCU_TO_ASR, H("30 0e00 0000 3f") + req(14) + ack(14, 0) + UPDATE_14)
    assert kinds(events) == ["Skip", "Sync", "Sync", "Message"]
    assert events[0].data == H("30 0e00 0000 3f") and "bad sync checksum" in events[0].why


def test_an_ack_on_the_asr_wire_is_not_a_sync():
    events = feed_all(ASR_TO_MCU, ack(0, 0) + R)
    assert kinds(events) == ["Skip", "Ready"]


def test_a_truncated_mcu_data_phase_ends_at_the_next_transaction():
    set_30 = aflib.encode(aflib.Message(aflib.MsgType.SET, 0, 9, bytes(24)))
    stream = req(30) + ack(30, 0) + set_30[:9] + req(14) + ack(14, 0) + UPDATE_14
    events = feed_all(MCU_TO_ASR, stream, bytewise=True)
    assert kinds(events) == ["Sync", "Sync", "Skip", "Sync", "Sync", "Message"]
    assert events[2].data == set_30[:9] and "truncated data phase: 9 of 30" in events[2].why
    assert messages(events) == [UPDATE_14]


def test_a_data_phase_completed_by_the_next_request_is_decoded_again():
    # 9 of 14 bytes, then the next request: the count runs out inside the request
    stream = req(14) + ack(14, 0) + UPDATE_14[:9] + req(14) + ack(14, 0) + UPDATE_14
    events = feed_all(MCU_TO_ASR, stream, bytewise=True)
    assert kinds(events) == ["Sync", "Sync", "Skip", "Sync", "Sync", "Message"]
    assert events[2].data == UPDATE_14[:9] and "undecodable message" in events[2].why
    assert messages(events) == [UPDATE_14]


def test_a_truncated_asr_data_phase_is_skipped_and_the_next_transaction_decodes():
    announce = resp(0, 20) + R + R
    stream = announce + SET_20[:11] + R + announce + SET_20 + R
    events = feed_all(ASR_TO_MCU, stream)
    skipped = [e for e in events if isinstance(e, SkipEvent)]
    assert [e.data for e in skipped] == [SET_20[:11] + R]
    assert messages(events) == [SET_20]


def test_a_ready_taken_for_the_acks_ready_costs_nothing():
    # the ASR gave up the transaction and asked again; its Ready looks like the one after the ack
    stream = resp(0, 6) + R + R + resp(0, 6) + R + R + H("0400 0c 01 b604") + R
    events = feed_all(ASR_TO_MCU, stream)
    assert messages(events) == [H("0400 0c 01 b604")]
    assert not any(isinstance(e, SkipEvent) for e in events)


def test_an_undecodable_data_phase_is_skipped_with_the_reason():
    bad = H("0900 77 03 1605 0300 aabbcc")  # type 0x77
    events = feed_all(MCU_TO_ASR, req(11) + ack(11, 0) + bad + req(14) + ack(14, 0) + UPDATE_14)
    skipped = [e for e in events if isinstance(e, SkipEvent)]
    assert [e.data for e in skipped] == [bad]
    assert "unknown afLib message type 0x77" in skipped[0].why
    assert messages(events) == [UPDATE_14]


def test_flush_reports_what_is_left_as_skipped():
    decoder = StreamDecoder()
    decoder.feed(MCU_TO_ASR, req(14) + ack(14, 0) + UPDATE_14[:5], 1.0)
    decoder.feed(ASR_TO_MCU, H("30 00"), 1.0)
    events = decoder.flush(3.0)
    assert {(e.direction, e.data, e.t) for e in events} == {
        (MCU_TO_ASR, UPDATE_14[:5], 3.0),
        (ASR_TO_MCU, H("30 00"), 3.0),
    }
    assert all(isinstance(e, SkipEvent) and "end of capture" in e.why for e in events)
    assert decoder.flush(4.0) == []


def test_a_direction_that_does_not_exist_is_a_caller_bug():
    with pytest.raises(ValueError, match="neither"):
        StreamDecoder().feed("sideways", b"", 0.0)  # type: ignore[arg-type]


def test_describe_event_lines():
    decoder = StreamDecoder()
    events = decoder.feed(ASR_TO_MCU, resp(14, 20) + R + H("ee"), 1.5)
    events += decoder.feed(MCU_TO_ASR, req(0) + ack(0, 20), 2.0)
    events += decoder.feed(ASR_TO_MCU, resp(0, 20) + R + R + SET_20, 2.0)
    lines = [describe_event(e) for e in events]
    assert lines[:3] == [
        "1.500 asr_to_mcu RESPONSE mcu=14 asr=20 (collision)",
        "1.500 asr_to_mcu READY",
        "1.500 asr_to_mcu SKIP 1 bytes (not a sync or Ready): ee",
    ]
    assert lines[3:5] == [
        "2.000 mcu_to_asr REQUEST mcu=0 asr=0",
        "2.000 mcu_to_asr ACK mcu=0 asr=20",
    ]
    assert lines[-1] == "2.000 asr_to_mcu SET 1302 offset 0 +8 bytes (req 3)"


def test_a_ready_the_asr_repeats_before_its_data_is_a_ready_not_data():
    """The ASR repeats its Ready while it waits for the MCU; a third one before its data must
    not be read as the data's first byte (whose low length byte here is 0x19, not 0x32)."""
    msg = aflib.encode(aflib.notify_info(aflib.OtaInfo.begin(101, 600, 7)))
    response = Sync(SyncKind.REQUEST_OR_RESPONSE, 0, len(msg)).encode()
    events = StreamDecoder().feed(
        ASR_TO_MCU, response + bytes([READY] * 3) + msg + bytes([READY]), 0
    )
    kinds = [type(e).__name__ for e in events]
    assert kinds == ["SyncEvent", *["ReadyEvent"] * 3, "MessageEvent", "ReadyEvent"]
    assert events[4].message.attr_id == aflib.AF_MCU_OTA_INFO
