"""The sniffer's decoder replays a hand-made capture (fixtures/captures): the ASR's boot handshake
and a whole handoff as afLib speaks it, with a collision and a sync hit by line noise. The
capture was laid out with struct alone, without rig's code; the expected messages below are
built with rig.protocol.aflib, so both sides must agree."""

from __future__ import annotations

import hashlib
import importlib.util
from pathlib import Path

import pytest

from rig.double.tap import read_capture
from rig.protocol import aflib
from rig.protocol.aflib import (
    AF_MCU_OTA_INFO,
    AF_MCU_OTA_TRANSFER,
    STOP_TRANSFER_OFFSET,
    AsrState,
    Message,
    MsgType,
    OtaInfo,
    RebootCode,
)
from rig.protocol.afpro import Sync, SyncKind
from rig.protocol.decoder import (
    ASR_TO_MCU,
    MCU_TO_ASR,
    Event,
    MessageEvent,
    ReadyEvent,
    SkipEvent,
    SyncEvent,
    describe_event,
    event_bytes,
    replay,
)
from rig.protocol.transcript import Transcript

CAPTURES = Path(__file__).resolve().parents[3] / "fixtures" / "captures"
CAPTURE = CAPTURES / "handoff_with_collision.jsonl"
IMAGE = b"rig capture demo"
BAD_SYNC = bytes.fromhex("30 12 00 00 00 40")
BAD_AT = 0.405
REBOOT_REASON = aflib.reboot_reason(RebootCode.RESET_PIN)


BEGIN = OtaInfo.begin(101, 16, 7)
APPLY = OtaInfo.apply(7)
CAPABILITIES = Message(MsgType.SET, 1, aflib.AFLIB_CAPABILITIES, b"\x00")  # afLib's first words
ASK = Message(MsgType.GET, 2, aflib.ASR_CAPABILITIES)
VERSION_SET = aflib.version_report(8, 101, 7)  # the success signal
EXPECTED = [
    # the ASR's handshake (its notifications carry request id 0)
    (ASR_TO_MCU, aflib.asr_state(AsrState.REBOOTED)),
    (ASR_TO_MCU, aflib.notification(aflib.REBOOT_REASON, REBOOT_REASON.encode())),
    (ASR_TO_MCU, aflib.asr_version(0x7001)),
    (ASR_TO_MCU, aflib.asr_state(AsrState.LINKED)),
    (ASR_TO_MCU, aflib.asr_state(AsrState.INITIALIZED)),
    # afLib speaks, numbering with its own counter; the ASR answers each, echoing the id
    (MCU_TO_ASR, CAPABILITIES),
    (ASR_TO_MCU, aflib.answer(CAPABILITIES)),
    (MCU_TO_ASR, ASK),
    (ASR_TO_MCU, aflib.answer(ASK, b"\x80")),
    # the handoff, tunnelled: 1098 from the ASR (id 0), 1099 from the MCU (its counter)
    (ASR_TO_MCU, aflib.notify_info(BEGIN)),
    (MCU_TO_ASR, aflib.report(3, AF_MCU_OTA_INFO, BEGIN.encode())),  # won the collision
    (ASR_TO_MCU, Message(MsgType.SET, 0x43, 1, b"\x01")),  # lost it, sent later
    (MCU_TO_ASR, aflib.update(0x43, 1, b"\x01")),  # the answer to an ASR SET echoes its id
    (ASR_TO_MCU, aflib.notify_chunk(0, IMAGE[:8])),
    (MCU_TO_ASR, aflib.report(4, AF_MCU_OTA_TRANSFER, aflib.encode_offset(8))),  # after the noise
    (ASR_TO_MCU, aflib.notify_chunk(8, IMAGE[8:])),
    (MCU_TO_ASR, aflib.report(5, AF_MCU_OTA_TRANSFER, aflib.encode_offset(STOP_TRANSFER_OFFSET))),
    (
        MCU_TO_ASR,
        aflib.report(6, AF_MCU_OTA_INFO, OtaInfo.verify(hashlib.sha256(IMAGE).digest()).encode()),
    ),
    (ASR_TO_MCU, aflib.notify_info(APPLY)),
    (MCU_TO_ASR, aflib.report(7, AF_MCU_OTA_INFO, APPLY.applied().encode())),  # the 9-byte IDLE
    (MCU_TO_ASR, VERSION_SET),
    (ASR_TO_MCU, aflib.answer(VERSION_SET)),
]
AFTER_NOISE = EXPECTED.index(
    (MCU_TO_ASR, aflib.report(4, AF_MCU_OTA_TRANSFER, aflib.encode_offset(8)))
)


@pytest.fixture(scope="module")
def records() -> list[tuple[float, str, bytes]]:
    return read_capture(CAPTURE)


@pytest.fixture(scope="module")
def events(records) -> list[Event]:
    return replay(records)


def on(events: list[Event], direction: str) -> list[Event]:
    return [e for e in events if e.direction == direction]


def test_the_capture_is_what_its_script_writes():
    spec = importlib.util.spec_from_file_location("make_capture", CAPTURES / "make_capture.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    assert CAPTURE.read_text() == script.render(script.build())


def test_the_capture_is_in_the_taps_format(records):
    assert len(records) == 126
    assert {d for _, d, _ in records} == {MCU_TO_ASR, ASR_TO_MCU}
    times = [t for t, _, _ in records]
    assert times == sorted(times) and times[0] == 0.0


def test_the_decoder_finds_exactly_the_handoffs_messages(events):
    got = [(e.direction, e.message) for e in events if isinstance(e, MessageEvent)]
    assert got == EXPECTED
    assert all(e.raw == aflib.encode(e.message) for e in events if isinstance(e, MessageEvent))


def test_every_byte_comes_back_once_in_wire_order(records, events):
    for direction in (MCU_TO_ASR, ASR_TO_MCU):
        wire = b"".join(data for _, d, data in records if d == direction)
        assert b"".join(event_bytes(e) for e in on(events, direction)) == wire


def test_the_bad_sync_is_skipped_and_reported_with_its_bytes_and_why(events):
    (skip,) = [e for e in events if isinstance(e, SkipEvent)]
    assert skip.direction == MCU_TO_ASR
    assert skip.data == BAD_SYNC
    assert skip.why == "bad sync checksum (30 12 00 00 00 40); not a sync"
    assert skip.t == BAD_AT
    assert describe_event(skip) == (
        "0.405 mcu_to_asr SKIP 6 bytes (bad sync checksum (30 12 00 00 00 40); not a sync): "
        "30 12 00 00 00 40"
    )


def test_nothing_after_the_bad_sync_is_lost(events):
    mcu_wire = on(events, MCU_TO_ASR)
    at = next(i for i, e in enumerate(mcu_wire) if isinstance(e, SkipEvent))
    resync, ack, answer = mcu_wire[at + 1 : at + 4]
    assert isinstance(resync, SyncEvent) and resync.t == pytest.approx(BAD_AT + 1.0)
    assert resync.sync == Sync(SyncKind.REQUEST_OR_RESPONSE, 16, 0)
    assert isinstance(ack, SyncEvent) and ack.sync == Sync(SyncKind.ACK, 16, 0)
    assert isinstance(answer, MessageEvent) and answer.message == EXPECTED[AFTER_NOISE][1]
    after = [e for e in events if isinstance(e, MessageEvent) and e.t > BAD_AT]
    assert [(e.direction, e.message) for e in after] == EXPECTED[AFTER_NOISE:]


def test_the_asr_handshake_comes_first_and_afLib_speaks_only_after_it(events):
    before_ota = [e for e in events if isinstance(e, MessageEvent) and e.t < 0.2]
    assert [describe_event(e).split(" ", 1)[1] for e in before_ota] == [
        "asr_to_mcu UPDATE 65013 ASR state REBOOTED",
        f"asr_to_mcu UPDATE 65019 reboot reason RESET_PIN ({REBOOT_REASON})",
        "asr_to_mcu UPDATE 2003 ASR firmware version 0x7001",
        "asr_to_mcu UPDATE 65013 ASR state LINKED",
        "asr_to_mcu UPDATE 65013 ASR state INITIALIZED",
        "mcu_to_asr SET 1207 value 00 (req 1)",
        "asr_to_mcu UPDATE 1207 value 00 (req 1)",
        "mcu_to_asr GET 1206 (req 2)",
        "asr_to_mcu UPDATE 1206 capabilities 80 (MCU OTA) (req 2)",
    ]
    # 0x7001 is above afLib's gate, so INITIALIZED (not LINKED) is what lets the MCU speak
    assert aflib.gate_state(0x7001) is AsrState.INITIALIZED
    first_mcu = next(i for i, e in enumerate(before_ota) if e.direction == MCU_TO_ASR)
    assert before_ota[first_mcu - 1].message == aflib.asr_state(AsrState.INITIALIZED)
    answers = [e.message for e in before_ota[first_mcu:] if e.direction == ASR_TO_MCU]
    assert [(m.reason, m.request_id) for m in answers] == [
        (aflib.UpdateReason.MCU_SET, 1),
        (aflib.UpdateReason.GET_RESPONSE, 2),
    ]
    # the reason string is ASCII: its '0's are 0x30, the sync byte, and stay data
    assert REBOOT_REASON.encode().count(b"0") > 20
    assert aflib.reboot_code(before_ota[1].message.value) is RebootCode.RESET_PIN


def test_the_collision_the_mcu_wins_and_the_asr_sends_later(events):
    collisions = [e for e in events if isinstance(e, SyncEvent) and e.sync.collision]
    (response,) = collisions
    assert response.direction == ASR_TO_MCU
    assert (response.sync.mcu_bytes, response.sync.asr_bytes) == (27, 9)
    assert describe_event(response) == "0.301 asr_to_mcu RESPONSE mcu=27 asr=9 (collision)"
    # the MCU sends its request again instead of an ack, and its data goes through
    mcu_wire = [e for e in on(events, MCU_TO_ASR) if 0.3 <= e.t < 0.307]
    assert [describe_event(e) for e in mcu_wire] == [
        "0.300 mcu_to_asr REQUEST mcu=27 asr=0",
        "0.302 mcu_to_asr REQUEST mcu=27 asr=0",
        "0.304 mcu_to_asr ACK mcu=27 asr=0",
        "0.306 mcu_to_asr UPDATE 1301 via 1099 TRANSFER_BEGIN type=101 size=16 version=7 (req 3)",
    ]
    # the ASR yields, then asks again with a Ready and sends the 9 bytes it kept
    asr_wire = [e for e in on(events, ASR_TO_MCU) if 0.3 <= e.t <= 0.311]
    assert [describe_event(e) for e in asr_wire] == [
        "0.301 asr_to_mcu RESPONSE mcu=27 asr=9 (collision)",
        "0.301 asr_to_mcu READY",
        "0.303 asr_to_mcu RESPONSE mcu=27 asr=0",
        "0.303 asr_to_mcu READY",
        "0.305 asr_to_mcu READY",
        "0.307 asr_to_mcu READY",  # the final Ready of the MCU's transaction
        "0.307 asr_to_mcu READY",  # the ASR asks for attention
        "0.309 asr_to_mcu RESPONSE mcu=0 asr=9",
        "0.309 asr_to_mcu READY",
        "0.311 asr_to_mcu READY",
        "0.311 asr_to_mcu SET 1 value 01 (req 67)",
        "0.311 asr_to_mcu READY",
    ]


def test_the_asr_wire_is_readies_responses_and_data_only(events):
    asr_wire = on(events, ASR_TO_MCU)
    assert all(isinstance(e, SyncEvent | ReadyEvent | MessageEvent) for e in asr_wire)
    assert all(
        e.sync.kind is SyncKind.REQUEST_OR_RESPONSE for e in asr_wire if isinstance(e, SyncEvent)
    )


def test_the_replayed_handoff_is_delivered(events):
    transcript = Transcript(events)
    transcript.assert_delivered(IMAGE, version_id=7, image_type=101)
    assert transcript.states == [
        "TRANSFER_BEGIN",
        "TRANSFER_BEGIN",
        "VERIFY_SIGNATURE",
        "APPLY",
        "IDLE",  # the MCU's echo of APPLY
    ]
    written = transcript.version_written(101, 7)
    assert written is not None and written.message == VERSION_SET
    assert [(c.offset, c.data) for c in transcript.chunks] == [(0, b"rig capt"), (8, b"ure demo")]
    assert transcript.next_offsets == [8, STOP_TRANSFER_OFFSET]
    assert transcript.retries == 0
    assert transcript.throughput == pytest.approx(16 / (1.604 - 0.404))
    assert len(transcript.skipped) == 1


@pytest.mark.parametrize("piece", [1, 5, 64])
def test_how_the_bytes_are_cut_into_reads_changes_nothing(records, events, piece):
    """A sniffer port hands over bytes in reads of any size; the decoding must not care."""
    cut = [
        (t, direction, data[i : i + piece])
        for t, direction, data in records
        for i in range(0, len(data), piece)
    ]
    again = replay(cut)
    assert [(e.direction, e.message) for e in again if isinstance(e, MessageEvent)] == EXPECTED
    (skip,) = [e for e in again if isinstance(e, SkipEvent)]
    assert skip.data == BAD_SYNC and skip.t == BAD_AT


def test_the_two_wires_decode_independently(records):
    """A sniffer has one port per direction: each wire alone yields its own messages."""
    for direction in (MCU_TO_ASR, ASR_TO_MCU):
        alone = replay([r for r in records if r[1] == direction])
        got = [(e.direction, e.message) for e in alone if isinstance(e, MessageEvent)]
        assert got == [m for m in EXPECTED if m[0] == direction]
