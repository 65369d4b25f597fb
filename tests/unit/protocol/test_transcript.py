"""Transcript: the MCU OTA handoff read back from sniffer events, and its assertions.

A correct handoff is built message by message as afLib's reference MCU exchanges it (every OTA
step an UPDATE tunnelled through 1098 from the ASR and 1099 from the MCU, the MCU numbering its
messages with its own counter, APPLY echoed as a 9-byte IDLE and the version SET to 2000 + type
and answered), framed on both UART wires as afPro transactions (docs/protocol.md §3) and fed to
the real StreamDecoder. Then one thing at a time is broken, and the HandoffError must name the
step that broke and show the messages around it.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Callable
from dataclasses import replace

import pytest

from rig.double.flash import Flash
from rig.double.mcu_aflib import McuAfLib
from rig.double.mcu_ota import McuOta
from rig.protocol import aflib
from rig.protocol.aflib import (
    AF_MCU_OTA_INFO,
    AF_MCU_OTA_TRANSFER,
    STOP_TRANSFER_OFFSET,
    Message,
    MsgType,
    OtaInfo,
    OtaState,
    UpdateReason,
)
from rig.protocol.afpro import READY, AsrTransport, McuTransport, Sync, SyncKind
from rig.protocol.decoder import ASR_TO_MCU, MCU_TO_ASR, Event, StreamDecoder
from rig.protocol.transcript import HandoffError, Transcript

IMAGE = bytes((i * 37 + 11) % 251 for i in range(1000))  # 4 full chunks of 249 + one of 4
VERSION = 7
TYPE = 101
T0, DT = 100.0, 0.01  # step i of a handoff crosses the wire at T0 + i * DT
R = bytes([READY])

Step = tuple[str, Message]  # (direction, message)


# -- building a handoff on the wire ---------------------------------------------------------------


def _sync(kind: SyncKind, mcu: int, asr: int) -> bytes:
    return Sync(kind, mcu, asr).encode()


def frame(direction: str, raw: bytes) -> dict[str, bytes]:
    """One afPro transaction carrying `raw`, as each wire shows it (docs/protocol.md §3)."""
    n, req, ack = len(raw), SyncKind.REQUEST_OR_RESPONSE, SyncKind.ACK
    if direction == MCU_TO_ASR:
        return {
            MCU_TO_ASR: _sync(req, n, 0) + _sync(ack, n, 0) + raw,
            ASR_TO_MCU: _sync(req, n, 0) + R + R + R,  # response, Ready, Ready, final Ready
        }
    return {
        MCU_TO_ASR: _sync(req, 0, 0) + _sync(ack, 0, n),
        ASR_TO_MCU: R + _sync(req, 0, n) + R + R + raw + R,  # attention Ready first
    }


def record(steps: list[Step], *, dt: float = DT) -> Transcript:
    """What a sniffer on both wires decodes when `steps` cross them, step i at T0 + i * dt."""
    decoder = StreamDecoder()
    events: list[Event] = []
    for i, (direction, message) in enumerate(steps):
        for wire, data in frame(direction, aflib.encode(message)).items():
            events += decoder.feed(wire, data, T0 + i * dt)
    events += decoder.flush(T0 + len(steps) * dt)
    return Transcript(events)


def version_value(version: int) -> bytes:
    return struct.pack("<Q", version)


def numbered(steps: list[Step], first: int = 1) -> list[Step]:
    """The steps with the MCU's request ids as afLib numbers them: one counter of its own for
    everything it sends (1, 2, …, wrapping after 255), and the ASR's answer to an MCU SET or GET
    echoing that request's id. The ASR's notifications keep theirs (0)."""
    out: list[Step] = []
    counter = first
    asked: dict[int, int] = {}  # attribute -> the id of the MCU's latest SET or GET of it
    for direction, m in steps:
        if direction == MCU_TO_ASR:
            m = replace(m, request_id=counter & 0xFF)
            counter += 1
            if m.type in (MsgType.SET, MsgType.GET):
                asked[m.attr_id] = m.request_id
        elif m.reason in (UpdateReason.MCU_SET, UpdateReason.GET_RESPONSE):
            m = replace(m, request_id=asked.get(m.attr_id, m.request_id))
        out.append((direction, m))
    return out


def handoff(
    image: bytes = IMAGE,
    *,
    version: int = VERSION,
    ota_type: int = TYPE,
    chunk: int = 249,
    first_id: int = 1,
) -> list[Step]:
    """Steps 1-6 of a successful handoff, in wire order; the MCU's ids count from `first_id`."""
    begin = OtaInfo.begin(ota_type, len(image), version)
    steps: list[Step] = [
        (ASR_TO_MCU, aflib.notify_info(begin)),  # 1
        (MCU_TO_ASR, aflib.report(0, AF_MCU_OTA_INFO, begin.encode())),  # 2 accept: the echo
    ]
    for offset in range(0, len(image), chunk):  # 3
        data = image[offset : offset + chunk]
        following = offset + len(data)
        wanted = following if following < len(image) else STOP_TRANSFER_OFFSET
        steps.append((ASR_TO_MCU, aflib.notify_chunk(offset, data)))
        answer = aflib.report(0, AF_MCU_OTA_TRANSFER, aflib.encode_offset(wanted))
        steps.append((MCU_TO_ASR, answer))
    verify = OtaInfo.verify(hashlib.sha256(image).digest())
    apply = OtaInfo.apply(version)
    written = aflib.version_report(0, ota_type, version)
    steps += [
        (MCU_TO_ASR, aflib.report(0, AF_MCU_OTA_INFO, verify.encode())),  # 4
        (ASR_TO_MCU, aflib.notify_info(apply)),  # 5
        (MCU_TO_ASR, aflib.report(0, AF_MCU_OTA_INFO, apply.applied().encode())),  # 6: 9-byte IDLE
        (MCU_TO_ASR, written),  # 6: the version SET
        (ASR_TO_MCU, aflib.answer(written)),  # the ASR completes it
    ]
    return numbered(steps, first_id)


def index(steps: list[Step], direction: str, attr: int, test: Callable[[bytes], bool]) -> int:
    """The position of the only step that matches."""
    found = [
        i
        for i, (d, m) in enumerate(steps)
        if d == direction and m.attr_id == attr and test(m.value)
    ]
    assert len(found) == 1, found
    return found[0]


def info_is(state: OtaState) -> Callable[[bytes], bool]:
    return lambda value: OtaInfo.decode(value).state == state


def chunk_at(offset: int) -> Callable[[bytes], bool]:
    return lambda value: aflib.decode_transfer(value)[0] == offset


def answer_is(offset: int) -> Callable[[bytes], bool]:
    return lambda value: aflib.decode_offset(value) == offset


def with_value(step: Step, value: bytes) -> Step:
    direction, m = step
    return direction, replace(m, value=value)


def marked(error: HandoffError) -> list[str]:
    """The lines of a failure message that the '>' marker points at."""
    return [line for line in str(error).splitlines() if line.startswith("  > ")]


# -- the correct handoff --------------------------------------------------------------------------


def test_the_correct_handoff_is_delivered():
    transcript = record(handoff())
    assert not transcript.skipped  # the framing is what the decoder reads
    assert len(transcript.messages) == len(handoff())
    transcript.assert_delivered(IMAGE, version_id=VERSION)
    transcript.assert_delivered(IMAGE, version_id=VERSION, image_type=TYPE, attribute_size=253)


def test_chunks_next_offsets_and_states_read_like_the_protocol():
    transcript = record(handoff())
    assert [(c.offset, len(c.data)) for c in transcript.chunks] == [
        (0, 249),
        (249, 249),
        (498, 249),
        (747, 249),
        (996, 4),
    ]
    assert b"".join(c.data for c in transcript.chunks) == IMAGE
    assert transcript.next_offsets == [249, 498, 747, 996, STOP_TRANSFER_OFFSET]
    assert transcript.retries == 0
    assert transcript.states == [
        "TRANSFER_BEGIN",  # ASR: step 1
        "TRANSFER_BEGIN",  # MCU accepts: step 2
        "VERIFY_SIGNATURE",  # step 4
        "APPLY",  # ASR: step 5
        "IDLE",  # step 6: the MCU's echo of APPLY
    ]
    directions = [e.direction for e, _ in transcript.ota_infos()]
    assert directions == [ASR_TO_MCU, MCU_TO_ASR, MCU_TO_ASR, ASR_TO_MCU, MCU_TO_ASR]
    assert [i.state for _, i in transcript.ota_infos(ASR_TO_MCU)] == [
        OtaState.TRANSFER_BEGIN,
        OtaState.APPLY,
    ]
    echo = transcript.ota_infos(MCU_TO_ASR)[-1]
    assert echo[1] == OtaInfo.apply(VERSION).applied() and len(echo[0].message.value) == 9
    # every OTA step is read as the attribute it is about, through the channel it took
    ota = [e for e in transcript.messages if e.message.attr_id in (1301, 1302)]
    assert {(e.direction, e.message.channel, e.message.type) for e in ota} == {
        (ASR_TO_MCU, 1098, MsgType.UPDATE),
        (MCU_TO_ASR, 1099, MsgType.UPDATE),
    }
    written = transcript.version_written(TYPE, VERSION)
    assert written is not None and written.message.type == MsgType.SET
    assert written.message.attr_id == 2101 and written.direction == MCU_TO_ASR


def test_throughput_is_payload_bytes_per_second_between_first_and_last_chunk():
    transcript = record(handoff())
    first, last = transcript.chunks[0].t, transcript.chunks[-1].t
    assert (first, last) == (pytest.approx(T0 + 2 * DT), pytest.approx(T0 + 10 * DT))
    assert transcript.throughput == pytest.approx(len(IMAGE) / (8 * DT))
    # no elapsed time between chunks (a replay fed at once), or a single chunk: no figure
    assert record(handoff(), dt=0.0).throughput == 0.0
    assert record(handoff(IMAGE[:200])).throughput == 0.0


def resent_chunk_steps() -> tuple[list, int]:
    """The handoff with chunk 249 sent twice, and the step index of the first send."""
    steps = handoff()
    at = index(steps, ASR_TO_MCU, AF_MCU_OTA_TRANSFER, chunk_at(249))
    # the MCU asks for 249 again (say the chunk arrived corrupted), the ASR sends it again
    again = aflib.report(0, AF_MCU_OTA_TRANSFER, aflib.encode_offset(249))
    steps[at + 1 : at + 1] = [(MCU_TO_ASR, again), steps[at]]
    return numbered(steps), at


def test_a_resent_chunk_counts_as_a_retry_and_the_handoff_still_holds():
    steps, _ = resent_chunk_steps()
    transcript = record(steps)
    assert [c.offset for c in transcript.chunks] == [0, 249, 249, 498, 747, 996]
    assert transcript.retries == 1
    assert transcript.next_offsets[:3] == [249, 249, 498]
    transcript.assert_delivered(IMAGE, version_id=VERSION)


def test_text_is_one_readable_line_per_event_in_time_relative_to_the_first():
    transcript = record(handoff())
    lines = transcript.text().splitlines()
    assert len(lines) == len(transcript.events)
    assert lines[0].startswith("0.000 ")
    expected = [
        "0.000 asr_to_mcu UPDATE 1301 via 1098 TRANSFER_BEGIN type=101 size=1000 version=7",
        "0.010 mcu_to_asr UPDATE 1301 via 1099 TRANSFER_BEGIN type=101 size=1000 version=7 (req 1)",
        "0.020 asr_to_mcu UPDATE 1302 via 1098 offset 0 +249 bytes",
        "0.030 mcu_to_asr UPDATE 1302 via 1099 next offset 249 (req 2)",
        "0.110 mcu_to_asr UPDATE 1302 via 1099 next offset STOP (req 6)",
        "0.120 mcu_to_asr UPDATE 1301 via 1099 VERIFY_SIGNATURE sha256="
        + hashlib.sha256(IMAGE).hexdigest()[:16]
        + "… (req 7)",
        "0.130 asr_to_mcu UPDATE 1301 via 1098 APPLY version=7",
        "0.140 mcu_to_asr UPDATE 1301 via 1099 IDLE version=7 (req 8)",
        "0.150 mcu_to_asr SET 2101 version 7 (type 101) (req 9)",
        "0.160 asr_to_mcu UPDATE 2101 version 7 (type 101) (req 9)",
    ]
    for line in expected:
        assert line in lines
    assert "0.000 mcu_to_asr REQUEST mcu=0 asr=0" in lines
    assert "0.000 asr_to_mcu READY" in lines
    assert Transcript().text() == "(the sniffer saw nothing)"


# -- one thing broken at a time -------------------------------------------------------------------


def _replace_begin(info: OtaInfo) -> Callable[[list[Step]], None]:
    def breaks(steps: list[Step]) -> None:
        at = index(steps, ASR_TO_MCU, AF_MCU_OTA_INFO, info_is(OtaState.TRANSFER_BEGIN))
        steps[at] = with_value(steps[at], info.encode())

    return breaks


def _decline(steps: list[Step]) -> None:
    at = index(steps, MCU_TO_ASR, AF_MCU_OTA_INFO, info_is(OtaState.TRANSFER_BEGIN))
    steps[at] = with_value(steps[at], OtaInfo.begin(TYPE, len(IMAGE), VERSION).decline().encode())


def _drop_chunk_249(steps: list[Step]) -> None:
    at = index(steps, ASR_TO_MCU, AF_MCU_OTA_TRANSFER, chunk_at(249))
    del steps[at : at + 2]  # the chunk and the MCU's answer to it


def _corrupt_chunk_498(steps: list[Step]) -> None:
    at = index(steps, ASR_TO_MCU, AF_MCU_OTA_TRANSFER, chunk_at(498))
    data = bytearray(IMAGE[498:747])
    data[100] ^= 0x01
    steps[at] = with_value(steps[at], aflib.encode_transfer(498, bytes(data)))


def _oversize_chunks(steps: list[Step]) -> None:
    steps[:] = handoff(chunk=250)


def _no_stop(steps: list[Step]) -> None:
    at = index(steps, MCU_TO_ASR, AF_MCU_OTA_TRANSFER, answer_is(STOP_TRANSFER_OFFSET))
    steps[at] = with_value(steps[at], aflib.encode_offset(len(IMAGE)))


def _stop_early(steps: list[Step]) -> None:
    at = index(steps, MCU_TO_ASR, AF_MCU_OTA_TRANSFER, answer_is(747))
    steps[at] = with_value(steps[at], aflib.encode_offset(STOP_TRANSFER_OFFSET))
    last = index(steps, ASR_TO_MCU, AF_MCU_OTA_TRANSFER, chunk_at(996))
    del steps[at + 1 : last + 2]  # the ASR sends no more chunks


def _wrong_hash(steps: list[Step]) -> None:
    at = index(steps, MCU_TO_ASR, AF_MCU_OTA_INFO, info_is(OtaState.VERIFY_SIGNATURE))
    steps[at] = with_value(steps[at], OtaInfo.verify(hashlib.sha256(b"other").digest()).encode())


def _fail_instead_of_apply(steps: list[Step]) -> None:
    at = index(steps, ASR_TO_MCU, AF_MCU_OTA_INFO, info_is(OtaState.APPLY))
    steps[at] = with_value(steps[at], OtaInfo(OtaState.FAIL).encode())
    del steps[at + 1 :]


def _apply_other_version(steps: list[Step]) -> None:
    at = index(steps, ASR_TO_MCU, AF_MCU_OTA_INFO, info_is(OtaState.APPLY))
    steps[at] = with_value(steps[at], OtaInfo.apply(VERSION + 1).encode())


def _no_version_write(steps: list[Step]) -> None:
    del steps[-2:]  # the MCU's SET and the ASR's answer to it


def _old_version_written(steps: list[Step]) -> None:
    steps[-2:] = [with_value(step, version_value(VERSION - 1)) for step in steps[-2:]]


def _version_written_before_apply(steps: list[Step]) -> None:
    at = index(steps, ASR_TO_MCU, AF_MCU_OTA_INFO, info_is(OtaState.APPLY))
    steps[at:at] = [steps.pop(-2), steps.pop()]  # the right version, but not after APPLY


# (how it breaks, step named, words in the message, the message the '>' marker points at or None)
BREAKS = {
    "begin size": (
        _replace_begin(OtaInfo.begin(TYPE, 999, VERSION)),
        "1. BEGIN from the ASR",
        "BEGIN carries type=101 size=999 version=7, expected type=101 size=1000 version=7",
        "asr_to_mcu UPDATE 1301 via 1098 TRANSFER_BEGIN type=101 size=999 version=7",
    ),
    "begin type": (
        _replace_begin(OtaInfo.begin(102, 1000, VERSION)),
        "1. BEGIN from the ASR",
        "BEGIN carries type=102 size=1000 version=7, expected type=101",
        "asr_to_mcu UPDATE 1301 via 1098 TRANSFER_BEGIN type=102 size=1000 version=7",
    ),
    "begin version": (
        _replace_begin(OtaInfo.begin(TYPE, 1000, 6)),
        "1. BEGIN from the ASR",
        "version=6, expected type=101 size=1000 version=7",
        "asr_to_mcu UPDATE 1301 via 1098 TRANSFER_BEGIN type=101 size=1000 version=6",
    ),
    "mcu declines": (_decline, "2. the MCU accepts", "not on the wire", None),
    "missing chunk": (
        _drop_chunk_249,
        "3. chunks",
        "gap: bytes [249, 498) were never sent",
        None,
    ),
    "different bytes": (
        _corrupt_chunk_498,
        "3. chunks",
        "chunk at 498 differs from the image there",
        "asr_to_mcu UPDATE 1302 via 1098 offset 498 +249 bytes",
    ),
    "oversize chunk": (
        _oversize_chunks,
        "3. chunks",
        "chunk at 0 holds 250 bytes, more than the attribute allows (249)",
        "asr_to_mcu UPDATE 1302 via 1098 offset 0 +250 bytes",
    ),
    "no stop": (_no_stop, "3. chunks", "never answered 0xFFFFFFFF", None),
    "stopped early": (_stop_early, "3. chunks", "chunks cover [0, 747) of 1000 bytes", None),
    "verify hash": (
        _wrong_hash,
        "4. VERIFY from the MCU",
        f"the MCU hashed {hashlib.sha256(b'other').hexdigest()}, "
        f"the image is {hashlib.sha256(IMAGE).hexdigest()}",
        "mcu_to_asr UPDATE 1301 via 1099 VERIFY_SIGNATURE sha256=",
    ),
    "fail instead of apply": (
        _fail_instead_of_apply,
        "5. APPLY from the ASR",
        "not on the wire",
        None,
    ),
    "apply version": (
        _apply_other_version,
        "5. APPLY from the ASR",
        "APPLY carries version 8, expected 7",
        "asr_to_mcu UPDATE 1301 via 1098 APPLY version=8",
    ),
    "no version write": (
        _no_version_write,
        "6. version report",
        "attribute 2101 was not written with 7 after APPLY (writes seen: none): an apply failure",
        "asr_to_mcu UPDATE 1301 via 1098 APPLY version=7",
    ),
    "old version written": (
        _old_version_written,
        "6. version report",
        "(writes seen: [6])",
        "asr_to_mcu UPDATE 1301 via 1098 APPLY version=7",
    ),
    "version before apply": (
        _version_written_before_apply,
        "6. version report",
        "(writes seen: none)",
        "asr_to_mcu UPDATE 1301 via 1098 APPLY version=7",
    ),
}


@pytest.mark.parametrize("case", BREAKS)
def test_a_broken_handoff_names_the_step_that_broke(case: str):
    breaks, step, words, marked_message = BREAKS[case]
    steps = handoff()
    breaks(steps)
    with pytest.raises(HandoffError) as caught:
        record(steps).assert_delivered(IMAGE, version_id=VERSION)
    text = str(caught.value)
    first = text.splitlines()[0]
    assert first.startswith(f"handoff step {step}: "), text
    assert words in first, text
    if marked_message is None:
        assert marked(caught.value) == [], text
    else:
        (line,) = marked(caught.value)
        assert marked_message in line, text
    assert isinstance(caught.value, AssertionError)  # pytest reports it as a failed assertion


def test_no_begin_at_all_is_step_one():
    steps = [s for s in handoff() if not (s[0] == ASR_TO_MCU and s[1].attr_id == AF_MCU_OTA_INFO)]
    with pytest.raises(
        HandoffError, match=r"^handoff step 1\. BEGIN from the ASR: not on the wire"
    ):
        record(steps).assert_delivered(IMAGE, version_id=VERSION)
    with pytest.raises(HandoffError, match=r"^handoff step 1\. .*not on the wire"):
        Transcript().assert_delivered(IMAGE, version_id=VERSION)


def test_the_failure_shows_the_messages_around_the_broken_one():
    steps = handoff()
    _corrupt_chunk_498(steps)
    with pytest.raises(HandoffError) as caught:
        record(steps).assert_delivered(IMAGE, version_id=VERSION)
    lines = str(caught.value).splitlines()
    assert lines[0] == "handoff step 3. chunks: chunk at 498 differs from the image there"
    window, footer = lines[1:-1], lines[-1]
    assert len(window) == 9  # four messages on each side of the broken one
    assert [line[:4] for line in window] == ["    "] * 4 + ["  > "] + ["    "] * 4
    # times are relative to the first event; the chunk is step 6 of the handoff
    assert window[4] == "  > 0.060 asr_to_mcu UPDATE 1302 via 1098 offset 498 +249 bytes"
    assert window[3] == "    0.050 mcu_to_asr UPDATE 1302 via 1099 next offset 498 (req 3)"
    assert window[5] == "    0.070 mcu_to_asr UPDATE 1302 via 1099 next offset 747 (req 4)"
    assert window[0] == "    0.020 asr_to_mcu UPDATE 1302 via 1098 offset 0 +249 bytes"
    assert window[8] == "    0.100 asr_to_mcu UPDATE 1302 via 1098 offset 996 +4 bytes"
    assert footer == f"  ({len(steps)} messages, 0 skipped stretches)"


def test_a_step_missing_altogether_shows_the_last_messages():
    steps = handoff()
    _no_version_write(steps)
    del steps[-1]  # no IDLE echo either: the MCU went quiet after APPLY
    with pytest.raises(HandoffError) as caught:
        record(steps).assert_delivered(IMAGE, version_id=VERSION)
    lines = str(caught.value).splitlines()
    assert lines[0].startswith("handoff step 6. version report: ")
    (line,) = marked(caught.value)
    assert line.endswith("asr_to_mcu UPDATE 1301 via 1098 APPLY version=7")
    assert lines[-2] == line  # APPLY is the last message: nothing after it to show


def test_the_marker_points_at_the_broken_chunk_when_chunks_share_a_timestamp():
    # A sniffer port read after a backlog returns several transactions in one read, and every
    # event of that read carries the same time; the marker must still find the right chunk.
    steps = handoff()
    _corrupt_chunk_498(steps)
    with pytest.raises(HandoffError) as caught:
        record(steps, dt=0.0).assert_delivered(IMAGE, version_id=VERSION)
    (line,) = marked(caught.value)
    assert line.endswith("asr_to_mcu UPDATE 1302 via 1098 offset 498 +249 bytes"), str(caught.value)


def test_an_earlier_failed_attempt_does_not_hide_the_handoff_that_followed():
    failed = handoff(IMAGE, version=VERSION)
    _stop_early(failed)
    transcript = record(numbered(failed + handoff(IMAGE, version=VERSION)))  # one MCU counter
    transcript.assert_delivered(IMAGE, version_id=VERSION)


def test_the_stop_of_an_earlier_attempt_does_not_count_for_the_next_one():
    failed = handoff()
    _stop_early(failed)  # this attempt's MCU answered STOP (early)
    retried = handoff()
    _no_stop(retried)  # this one's MCU never says all bytes are in
    with pytest.raises(HandoffError, match=r"^handoff step 3\. chunks: .*never answered 0xFFFF"):
        record(numbered(failed + retried)).assert_delivered(IMAGE, version_id=VERSION)


def test_a_malformed_ota_value_on_the_wire_is_shown_not_raised():
    # An MCU that answers a 1301 with a value no state decodes (a buggy device) must not turn
    # every transcript query into a ProtocolError: the transcript is what one debugs it with.
    steps = handoff()
    steps.insert(2, (MCU_TO_ASR, aflib.report(0, AF_MCU_OTA_INFO, b"\x09\x01")))
    steps.insert(3, (ASR_TO_MCU, aflib.notify(AF_MCU_OTA_TRANSFER, b"\x01\x02")))
    steps.insert(4, (ASR_TO_MCU, Message(MsgType.SET, 9, AF_MCU_OTA_TRANSFER, b"\x01\x02")))
    transcript = record(numbered(steps))
    assert transcript.states[:2] == ["TRANSFER_BEGIN", "TRANSFER_BEGIN"]
    assert [c.offset for c in transcript.chunks] == [0, 249, 498, 747, 996]
    assert "unparsable value" in transcript.text()
    transcript.assert_delivered(IMAGE, version_id=VERSION)


# -- assert_not_applied ---------------------------------------------------------------------------


def test_not_applied_holds_without_apply_and_without_a_version_report():
    failed = handoff()
    _fail_instead_of_apply(failed)
    record(failed).assert_not_applied()
    no_report = handoff()
    _no_version_write(no_report)
    record(no_report).assert_not_applied()
    record(no_report).assert_not_applied(image_type=102)
    Transcript().assert_not_applied()


def test_not_applied_fails_when_the_version_was_reported_after_apply():
    with pytest.raises(HandoffError) as caught:
        record(handoff()).assert_not_applied()
    text = str(caught.value)
    assert text.startswith("handoff step not applied: the MCU reported 2101 after APPLY")
    (line,) = marked(caught.value)
    assert line.endswith("mcu_to_asr SET 2101 version 7 (type 101) (req 9)")
    # another image type's report says nothing about this one
    record(handoff()).assert_not_applied(image_type=102)


# -- request ids --------------------------------------------------------------------------------


@pytest.mark.parametrize("asr_numbers_its_notifications", [False, True])
@pytest.mark.parametrize(("chunk", "last"), [(97, 30), (131, 83), (199, 5)])
def test_steps_pair_by_attribute_and_state_never_by_request_id(
    asr_numbers_its_notifications: bool, chunk: int, last: int
):
    """afLib's MCU numbers what it sends with its own counter, which here starts near the end
    of its range and wraps mid-handoff; the ASR notifies with id 0, or with a counter of its own.
    The ids of a step and of its answer have nothing to do with each other: the handoff holds."""
    steps = handoff(chunk=chunk, first_id=250)
    if asr_numbers_its_notifications:
        notes = [i for i, (d, m) in enumerate(steps) if d == ASR_TO_MCU and m.channel is not None]
        for n, i in enumerate(notes, start=1):
            steps[i] = (ASR_TO_MCU, replace(steps[i][1], request_id=n))
    transcript = record(steps)
    assert not transcript.skipped
    sizes = [len(c.data) for c in transcript.chunks]
    assert sizes == [chunk] * (len(IMAGE) // chunk) + [last]  # odd sizes, the last one short
    mcu_ids = [m.request_id for d, m in steps if d == MCU_TO_ASR]
    assert mcu_ids == [(250 + i) & 0xFF for i in range(len(mcu_ids))] and 0 in mcu_ids
    asr_ids = [m.request_id for d, m in steps if d == ASR_TO_MCU and m.channel is not None]
    assert asr_ids == (list(range(1, len(asr_ids) + 1)) if asr_numbers_its_notifications
                       else [0] * len(asr_ids))  # fmt: skip
    assert steps[1][1].request_id != steps[0][1].request_id  # the accept echoes BEGIN's value only
    transcript.assert_delivered(IMAGE, version_id=VERSION)
    written = transcript.version_written(TYPE, VERSION)
    assert written is not None and written.message.request_id == mcu_ids[-1]
    answer = transcript.messages[-1].message  # the ASR's completion echoes the MCU's id
    assert (answer.attr_id, answer.request_id, answer.reason) == (2101, mcu_ids[-1], 3)


def test_version_written_is_the_mcus_write_of_that_version_after_its_echo_of_apply():
    assert record(handoff()).version_written(TYPE, VERSION).message.type == MsgType.SET
    assert record(handoff()).version_written(TYPE, VERSION + 1) is None
    assert record(handoff()).version_written(TYPE + 1, VERSION) is None
    as_update = handoff()  # an MCU that reports its version as an UPDATE is read alike
    as_update[-2:] = [(MCU_TO_ASR, aflib.update(9, 2101, version_value(VERSION)))]  # no answer
    assert record(as_update).version_written(TYPE, VERSION).message.type == MsgType.UPDATE
    for breaks in (_no_version_write, _old_version_written, _version_written_before_apply):
        steps = handoff()
        breaks(steps)
        assert record(steps).version_written(TYPE, VERSION) is None, breaks.__name__
    unechoed = handoff()  # no IDLE echo of APPLY: the write after the MCU's VERIFY counts,
    del unechoed[-3]  # as assert_delivered reads it (the two must agree)
    assert record(unechoed).version_written(TYPE, VERSION).message.type == MsgType.SET
    record(unechoed).assert_delivered(IMAGE, version_id=VERSION, image_type=TYPE)
    asr_side = handoff()  # the ASR's answer alone is not the MCU's write
    del asr_side[-2]
    assert record(asr_side).version_written(TYPE, VERSION) is None


# -- against the real endpoints and the emulated MCU ----------------------------------------------


def test_a_handoff_run_by_the_real_transports_and_mcu_passes(tmp_path):
    """The ASR side is driven by hand, the MCU is rig's afLib over its OTA machine and a flash;
    the bytes go through McuTransport/AsrTransport and the sniffer reads both wires. The ASR
    does the boot handshake, answers every MCU SET and GET, and sends the OTA steps."""
    flash = Flash(tmp_path / "flash", factory_version="1.0.0")
    ota = McuOta(flash, log=lambda line: None)
    mcu, asr = McuTransport(), AsrTransport()
    clock = [0.0]
    aflib_mcu = McuAfLib(ota, mcu.send, log=lambda line: None, clock=lambda: clock[0])
    decoder = StreamDecoder()
    events: list[Event] = []
    at_asr: list[Message] = []

    def run() -> None:
        """Move bytes until both ends are quiet; each end answers what reaches it."""
        for _ in range(10_000):
            clock[0] += 0.001
            to_asr, to_mcu = mcu.outgoing(), asr.outgoing()
            if not (to_asr or to_mcu):
                return
            events.extend(decoder.feed(MCU_TO_ASR, to_asr, clock[0]))
            events.extend(decoder.feed(ASR_TO_MCU, to_mcu, clock[0]))
            for raw in asr.receive(to_asr):
                at_asr.append(aflib.decode(raw))
                if at_asr[-1].type in (MsgType.SET, MsgType.GET):
                    capabilities = b"\x80" if at_asr[-1].type == MsgType.GET else None
                    asr.send(aflib.encode(aflib.answer(at_asr[-1], capabilities)))
            for raw in mcu.receive(to_mcu):
                aflib_mcu.receive(aflib.decode(raw))
            mcu.poll(clock[0])
            asr.poll(clock[0])
            aflib_mcu.poll()
        pytest.fail("the link never went quiet")

    aflib_mcu.booted()
    run()  # the ASR's boot Ready and the zero sync it draws
    assert at_asr == []  # afLib says nothing before the ASR's handshake
    asr.send(aflib.encode(aflib.asr_version(0x7001)))
    asr.send(aflib.encode(aflib.asr_state(aflib.AsrState.INITIALIZED)))
    run()
    assert aflib_mcu.ready and aflib_mcu.capabilities == b"\x80"
    booted = len(at_asr)
    asr.send(aflib.encode(aflib.notify_info(OtaInfo.begin(TYPE, len(IMAGE), VERSION))))
    run()
    wanted = 0
    while wanted != STOP_TRANSFER_OFFSET:
        asr.send(aflib.encode(aflib.notify_chunk(wanted, IMAGE[wanted:][:249])))
        run()
        answers = [m for m in at_asr if m.attr_id == AF_MCU_OTA_TRANSFER]
        wanted = aflib.decode_offset(answers[-1].value)
    verify = OtaInfo.decode(at_asr[-1].value)
    assert verify.state == OtaState.VERIFY_SIGNATURE
    asr.send(aflib.encode(aflib.notify_info(OtaInfo.apply(VERSION))))
    run()
    events.extend(decoder.flush(clock[0]))

    # the MCU numbered everything it sent with its own counter, from its first SET on
    assert [m.request_id for m in at_asr] == list(range(1, len(at_asr) + 1))
    assert [m.channel for m in at_asr[booted:-1]] == [1099] * (len(at_asr) - booted - 1)
    assert at_asr[-1] == aflib.version_report(len(at_asr), TYPE, VERSION)
    transcript = Transcript(events)
    assert not transcript.skipped
    notes = [e.message for e in transcript.messages if e.message.channel == 1098]
    assert len(notes) == len(transcript.chunks) + 2  # BEGIN, the chunks, APPLY
    assert {m.request_id for m in notes} == {0}  # the ASR's notifications carry no id
    transcript.assert_delivered(IMAGE, version_id=VERSION)
    assert flash.installed_version_id(TYPE) == VERSION
    with pytest.raises(HandoffError, match="reported 2101 after APPLY"):
        transcript.assert_not_applied()
