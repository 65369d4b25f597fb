"""The sniffer's stream decoder on hand-made captures: each frame kind, each way to recover."""

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
    describe_event,
    event_bytes,
)

H = bytes.fromhex
R = bytes([READY])
SET_20 = aflib.encode(aflib.set_transfer(3, 0, bytes(range(8))))
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
    asr_msg = aflib.encode(aflib.set_transfer(1, 0, resp(0, 9) + R + b"\x00" + resp(0, 0)))
    asr = resp(0, len(asr_msg)) + R + R + asr_msg + R
    assert messages(feed_all(ASR_TO_MCU, asr)) == [asr_msg]


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
