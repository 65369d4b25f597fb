"""rig's decoder replays a capture RECORDED from Afero's reference MCU (fixtures/captures).

generic_mcu (afLib3-generic) took one handoff from rig's emulated ASR, from power-on through its
version write; the tap's capture file was kept as written (record_reference.py, README.md). Unlike
the hand-made capture, nothing here was laid out by anyone: these are afLib's own bytes, so the
decoder and the Transcript must read what the real MCU does, the way it does it.
"""

from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path

import pytest

from rig.double.tap import read_capture
from rig.protocol import aflib
from rig.protocol.aflib import (
    AF_MCU_OTA_INFO,
    AF_MCU_OTA_TRANSFER,
    AsrState,
    MsgType,
    OtaInfo,
    OtaState,
    UpdateReason,
)
from rig.protocol.decoder import (
    ASR_TO_MCU,
    MCU_TO_ASR,
    Event,
    MessageEvent,
    event_bytes,
    replay,
)
from rig.protocol.transcript import Transcript

CAPTURES = Path(__file__).resolve().parents[3] / "fixtures" / "captures"
CAPTURE = CAPTURES / "reference_generic_mcu.jsonl"
SIDECAR = CAPTURES / "reference_generic_mcu.json"
OTA_ATTRIBUTES = (AF_MCU_OTA_INFO, AF_MCU_OTA_TRANSFER)
VERSION_ATTRIBUTE = aflib.version_attribute(101)  # 2101


@pytest.fixture(scope="module")
def recorded() -> dict:
    return json.loads(SIDECAR.read_text())


@pytest.fixture(scope="module")
def image(recorded) -> bytes:
    data = random.Random(recorded["image"]["seed"]).randbytes(recorded["image"]["size"])
    assert hashlib.sha256(data).hexdigest() == recorded["image"]["sha256"]
    return data


@pytest.fixture(scope="module")
def version(recorded) -> int:
    return recorded["version_number"]


@pytest.fixture(scope="module")
def records() -> list[tuple[float, str, bytes]]:
    return read_capture(CAPTURE)


@pytest.fixture(scope="module")
def events(records) -> list[Event]:
    return replay(records)


@pytest.fixture(scope="module")
def transcript(events) -> Transcript:
    return Transcript(events)


@pytest.fixture(scope="module")
def messages(transcript) -> list[MessageEvent]:
    return transcript.messages


def _from(messages: list[MessageEvent], direction: str) -> list[MessageEvent]:
    return [e for e in messages if e.direction == direction]


def _first_begin(messages: list[MessageEvent]) -> int:
    return next(
        i
        for i, e in enumerate(messages)
        if e.message.attr_id == AF_MCU_OTA_INFO
        and OtaInfo.decode(e.message.value).state == OtaState.TRANSFER_BEGIN
    )


def test_the_fixture_is_small_and_in_the_taps_format(records, recorded):
    assert CAPTURE.stat().st_size < 64 * 1024
    assert len(records) == recorded["records"]
    assert {d for _, d, _ in records} == {MCU_TO_ASR, ASR_TO_MCU}
    for direction in (MCU_TO_ASR, ASR_TO_MCU):
        times = [t for t, d, _ in records if d == direction]
        assert times == sorted(times)


def test_nothing_is_skipped_and_every_byte_comes_back_once(records, events, transcript):
    assert transcript.skipped == []
    for direction in (MCU_TO_ASR, ASR_TO_MCU):
        wire = b"".join(data for _, d, data in records if d == direction)
        assert b"".join(event_bytes(e) for e in events if e.direction == direction) == wire
    assert all(e.raw == aflib.encode(e.message) for e in transcript.messages)


def test_the_boot_handshake_comes_first(messages):
    handshake = messages[: _first_begin(messages)]
    asr = [e.message for e in _from(handshake, ASR_TO_MCU)]
    states = [AsrState(m.value[0]) for m in asr if m.attr_id == aflib.ASR_STATE]
    assert states == [AsrState.REBOOTED, AsrState.LINKED, AsrState.INITIALIZED]
    (firmware,) = [m for m in asr if m.attr_id == aflib.ASR_FIRMWARE_VERSION]  # 2003
    assert [m.attr_id for m in asr if m.attr_id == aflib.REBOOT_REASON] == [aflib.REBOOT_REASON]
    assert all(m.type == MsgType.UPDATE for m in asr)
    # afLib speaks only once the ASR is INITIALIZED (its firmware is above afLib's gate)
    first_mcu = next(i for i, e in enumerate(handshake) if e.direction == MCU_TO_ASR)
    assert handshake[first_mcu - 1].message == aflib.asr_state(AsrState.INITIALIZED)
    asr_firmware = int.from_bytes(firmware.value, "little")
    assert aflib.gate_state(asr_firmware) is AsrState.INITIALIZED


@pytest.mark.parametrize(
    ("kind", "attr_id", "reason"),
    [
        (MsgType.SET, aflib.AFLIB_CAPABILITIES, UpdateReason.MCU_SET),  # SET 1207
        (MsgType.GET, aflib.ASR_CAPABILITIES, UpdateReason.GET_RESPONSE),  # GET 1206
    ],
)
def test_afLibs_handshake_requests_are_answered_with_their_ids(messages, kind, attr_id, reason):
    handshake = messages[: _first_begin(messages)]
    at, request = next(
        (i, e.message)
        for i, e in enumerate(handshake)
        if e.direction == MCU_TO_ASR and e.message.type == kind and e.message.attr_id == attr_id
    )
    answer = next(e.message for e in handshake[at + 1 :] if e.direction == ASR_TO_MCU)
    assert (answer.type, answer.attr_id, answer.request_id) == (
        MsgType.UPDATE,
        attr_id,
        request.request_id,
    )
    assert answer.reason == reason
    if kind == MsgType.SET:
        assert answer == aflib.answer(request)
    else:
        assert aflib.mcu_ota_capable(answer.value)  # the ASR says it does MCU OTA


def test_the_recorded_handoff_is_delivered(transcript, image, version, recorded):
    transcript.assert_delivered(
        image, version_id=version, attribute_size=recorded["ota_attribute_size"]
    )
    chunk = aflib.max_chunk(recorded["ota_attribute_size"])
    assert [c.offset for c in transcript.chunks] == list(range(0, len(image), chunk))
    assert transcript.retries == 0
    assert transcript.next_offsets[-1] == aflib.STOP_TRANSFER_OFFSET
    assert transcript.states == [
        "TRANSFER_BEGIN",  # the ASR's offer
        "TRANSFER_BEGIN",  # the MCU's echo: it accepts
        "VERIFY_SIGNATURE",
        "APPLY",
        "IDLE",  # the MCU's echo of APPLY
    ]


def test_the_mcu_numbers_its_requests_with_its_own_counter(messages):
    asr_sets = {
        (e.message.attr_id, e.message.request_id)
        for e in _from(messages, ASR_TO_MCU)
        if e.message.type == MsgType.SET
    }
    requests = [
        e.message
        for e in _from(messages, MCU_TO_ASR)
        if (e.message.attr_id, e.message.request_id) not in asr_sets  # not an answer to the ASR
    ]
    ids = [m.request_id for m in requests]
    assert ids == list(range(1, len(ids) + 1))  # from power-on: 1, 2, 3, … one per request
    # the ASR's own messages carry 0; its answers echo the id of the MCU request they answer
    for event in _from(messages, ASR_TO_MCU):
        m = event.message
        if m.reason in (UpdateReason.MCU_SET, UpdateReason.GET_RESPONSE):
            asked = [r for r in requests if r.request_id == m.request_id]
            assert [(r.attr_id, r.type) for r in asked] in (
                [(m.attr_id, MsgType.SET)],
                [(m.attr_id, MsgType.GET)],
            )
        else:
            assert m.request_id == 0, event


def test_every_ota_message_is_tunnelled(messages):
    ota = [e for e in messages if e.message.attr_id in OTA_ATTRIBUTES]
    assert len(ota) > 10
    for event in ota:
        m = event.message
        assert m.type == MsgType.UPDATE, event
        if event.direction == ASR_TO_MCU:
            assert (m.channel, m.reason, m.request_id) == (
                aflib.TO_MCU_CHANNEL,
                UpdateReason.SERVICE_SET,
                0,
            ), event
        else:
            assert (m.channel, m.reason) == (
                aflib.TO_ASR_CHANNEL,
                UpdateReason.LOCAL_OR_MCU_UPDATE,
            ), event
    assert all(
        e.message.channel is None for e in messages if e.message.attr_id not in OTA_ATTRIBUTES
    )


def test_the_apply_echo_is_the_9_byte_idle(transcript, version):
    apply, _ = next(
        (e, i) for e, i in transcript.ota_infos(ASR_TO_MCU) if i.state == OtaState.APPLY
    )
    echo, info = next((e, i) for e, i in transcript.ota_infos(MCU_TO_ASR) if e.t > apply.t)
    assert info == OtaInfo.apply(version).applied()
    assert echo.message.value == OtaInfo.apply(version).applied().encode()
    assert len(echo.message.value) == 9


def test_the_version_is_a_set_the_asr_answers(transcript, messages, version):
    written = transcript.version_written(101, version)
    assert written is not None
    assert written.message == aflib.version_report(written.message.request_id, 101, version)
    assert written.message.type == MsgType.SET and written.message.attr_id == VERSION_ATTRIBUTE
    after = messages[messages.index(written) + 1 :]
    (answer,) = after  # the ASR's answer is the last thing on the wire
    assert answer.direction == ASR_TO_MCU
    assert answer.message == aflib.answer(written.message)
    assert answer.message.reason == UpdateReason.MCU_SET
