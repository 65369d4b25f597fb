"""Transcript: the DESIGN §3 handoff read back from sniffer events, and its assertions.

A correct handoff is built message by message from DESIGN §3, framed on both UART wires as afPro
transactions (docs/protocol.md §2) and fed to the real StreamDecoder. Then one thing at a time is
broken, and the HandoffError must name the step that broke and show the messages around it.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Callable

import pytest

from rig.double.flash import Flash
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
    """One afPro transaction carrying `raw`, as each wire shows it (docs/protocol.md §2)."""
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


def handoff(
    image: bytes = IMAGE,
    *,
    version: int = VERSION,
    ota_type: int = TYPE,
    chunk: int = 249,
) -> list[Step]:
    """DESIGN §3 steps 1-6 of a successful handoff, in wire order."""
    begin = OtaInfo.begin(ota_type, len(image), version)
    steps: list[Step] = [
        (ASR_TO_MCU, aflib.set_ota_info(1, begin)),  # 1
        (MCU_TO_ASR, aflib.update(1, AF_MCU_OTA_INFO, begin.encode())),  # 2 accept
    ]
    request_id = 2
    for offset in range(0, len(image), chunk):  # 3
        data = image[offset : offset + chunk]
        following = offset + len(data)
        wanted = following if following < len(image) else STOP_TRANSFER_OFFSET
        steps.append((ASR_TO_MCU, aflib.set_transfer(request_id, offset, data)))
        answer = aflib.update(request_id, AF_MCU_OTA_TRANSFER, aflib.encode_offset(wanted))
        steps.append((MCU_TO_ASR, answer))
        request_id += 1
    verify = OtaInfo.verify(hashlib.sha256(image).digest())
    apply = OtaInfo.apply(version)
    steps += [
        (MCU_TO_ASR, aflib.update(0, AF_MCU_OTA_INFO, verify.encode())),  # 4
        (ASR_TO_MCU, aflib.set_ota_info(request_id, apply)),  # 5
        (MCU_TO_ASR, aflib.update(request_id, AF_MCU_OTA_INFO, apply.encode())),  # echo
        (MCU_TO_ASR, aflib.update(0, AF_MCU_OTA_INFO, OtaInfo(OtaState.IDLE).encode())),  # 6
        (MCU_TO_ASR, aflib.update(0, aflib.version_attribute(ota_type), version_value(version))),
    ]
    return steps


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
    return direction, Message(m.type, m.request_id, m.attr_id, value, m.state, m.reason)


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
        "APPLY",  # the MCU's echo
        "IDLE",  # step 6
    ]
    directions = [e.direction for e, _ in transcript.ota_infos()]
    assert directions == [ASR_TO_MCU, MCU_TO_ASR, MCU_TO_ASR, ASR_TO_MCU, MCU_TO_ASR, MCU_TO_ASR]
    assert [i.state for _, i in transcript.ota_infos(ASR_TO_MCU)] == [
        OtaState.TRANSFER_BEGIN,
        OtaState.APPLY,
    ]


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
    again = aflib.update(3, AF_MCU_OTA_TRANSFER, aflib.encode_offset(249))
    steps[at + 1 : at + 1] = [(MCU_TO_ASR, again), steps[at]]
    return steps, at


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
        "0.000 asr_to_mcu SET 1301 TRANSFER_BEGIN type=101 size=1000 version=7 (req 1)",
        "0.010 mcu_to_asr UPDATE 1301 TRANSFER_BEGIN type=101 size=1000 version=7 (req 1)",
        "0.020 asr_to_mcu SET 1302 offset 0 +249 bytes (req 2)",
        "0.030 mcu_to_asr UPDATE 1302 next offset 249 (req 2)",
        "0.110 mcu_to_asr UPDATE 1302 next offset STOP (req 6)",
        "0.160 mcu_to_asr UPDATE 2101 version 7 (type 101)",
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
    del steps[-1]


def _old_version_written(steps: list[Step]) -> None:
    steps[-1] = with_value(steps[-1], version_value(VERSION - 1))


def _version_written_before_apply(steps: list[Step]) -> None:
    at = index(steps, ASR_TO_MCU, AF_MCU_OTA_INFO, info_is(OtaState.APPLY))
    steps.insert(at, steps.pop())  # the right version, but not after APPLY


# (how it breaks, step named, words in the message, the message the '>' marker points at or None)
BREAKS = {
    "begin size": (
        _replace_begin(OtaInfo.begin(TYPE, 999, VERSION)),
        "1. BEGIN from the ASR",
        "BEGIN carries type=101 size=999 version=7, expected type=101 size=1000 version=7",
        "asr_to_mcu SET 1301 TRANSFER_BEGIN type=101 size=999 version=7 (req 1)",
    ),
    "begin type": (
        _replace_begin(OtaInfo.begin(102, 1000, VERSION)),
        "1. BEGIN from the ASR",
        "BEGIN carries type=102 size=1000 version=7, expected type=101",
        "asr_to_mcu SET 1301 TRANSFER_BEGIN type=102 size=1000 version=7 (req 1)",
    ),
    "begin version": (
        _replace_begin(OtaInfo.begin(TYPE, 1000, 6)),
        "1. BEGIN from the ASR",
        "version=6, expected type=101 size=1000 version=7",
        "asr_to_mcu SET 1301 TRANSFER_BEGIN type=101 size=1000 version=6 (req 1)",
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
        "asr_to_mcu SET 1302 offset 498 +249 bytes (req 4)",
    ),
    "oversize chunk": (
        _oversize_chunks,
        "3. chunks",
        "chunk at 0 holds 250 bytes, more than the attribute allows (249)",
        "asr_to_mcu SET 1302 offset 0 +250 bytes (req 2)",
    ),
    "no stop": (_no_stop, "3. chunks", "never answered 0xFFFFFFFF", None),
    "stopped early": (_stop_early, "3. chunks", "chunks cover [0, 747) of 1000 bytes", None),
    "verify hash": (
        _wrong_hash,
        "4. VERIFY from the MCU",
        f"the MCU hashed {hashlib.sha256(b'other').hexdigest()}, "
        f"the image is {hashlib.sha256(IMAGE).hexdigest()}",
        "mcu_to_asr UPDATE 1301 VERIFY_SIGNATURE sha256=",
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
        "asr_to_mcu SET 1301 APPLY version=8 (req 7)",
    ),
    "no version write": (
        _no_version_write,
        "6. version report",
        "attribute 2101 was not written with 7 after APPLY (writes seen: none): an apply failure",
        "asr_to_mcu SET 1301 APPLY version=7 (req 7)",
    ),
    "old version written": (
        _old_version_written,
        "6. version report",
        "(writes seen: [6])",
        "asr_to_mcu SET 1301 APPLY version=7 (req 7)",
    ),
    "version before apply": (
        _version_written_before_apply,
        "6. version report",
        "(writes seen: none)",
        "asr_to_mcu SET 1301 APPLY version=7 (req 7)",
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
    assert window[4] == "  > 0.060 asr_to_mcu SET 1302 offset 498 +249 bytes (req 4)"
    assert window[3] == "    0.050 mcu_to_asr UPDATE 1302 next offset 498 (req 3)"
    assert window[5] == "    0.070 mcu_to_asr UPDATE 1302 next offset 747 (req 4)"
    assert window[0] == "    0.020 asr_to_mcu SET 1302 offset 0 +249 bytes (req 2)"
    assert window[8] == "    0.100 asr_to_mcu SET 1302 offset 996 +4 bytes (req 6)"
    assert footer == f"  ({len(steps)} messages, 0 skipped stretches)"


def test_a_step_missing_altogether_shows_the_last_messages():
    steps = handoff()
    _no_version_write(steps)
    del steps[-2:]  # no echo or IDLE either: the MCU went quiet after APPLY
    with pytest.raises(HandoffError) as caught:
        record(steps).assert_delivered(IMAGE, version_id=VERSION)
    lines = str(caught.value).splitlines()
    assert lines[0].startswith("handoff step 6. version report: ")
    (line,) = marked(caught.value)
    assert line.endswith("asr_to_mcu SET 1301 APPLY version=7 (req 7)")
    assert lines[-2] == line  # APPLY is the last message: nothing after it to show


def test_the_marker_points_at_the_broken_chunk_when_chunks_share_a_timestamp():
    # A sniffer port read after a backlog returns several transactions in one read, and every
    # event of that read carries the same time; the marker must still find the right chunk.
    steps = handoff()
    _corrupt_chunk_498(steps)
    with pytest.raises(HandoffError) as caught:
        record(steps, dt=0.0).assert_delivered(IMAGE, version_id=VERSION)
    (line,) = marked(caught.value)
    assert line.endswith("asr_to_mcu SET 1302 offset 498 +249 bytes (req 4)"), str(caught.value)


def test_an_earlier_failed_attempt_does_not_hide_the_handoff_that_followed():
    failed = handoff(IMAGE, version=VERSION)
    _stop_early(failed)
    transcript = record(failed + handoff(IMAGE, version=VERSION))
    transcript.assert_delivered(IMAGE, version_id=VERSION)


def test_the_stop_of_an_earlier_attempt_does_not_count_for_the_next_one():
    failed = handoff()
    _stop_early(failed)  # this attempt's MCU answered STOP (early)
    retried = handoff()
    _no_stop(retried)  # this one's MCU never says all bytes are in
    with pytest.raises(HandoffError, match=r"^handoff step 3\. chunks: .*never answered 0xFFFF"):
        record(failed + retried).assert_delivered(IMAGE, version_id=VERSION)


def test_a_malformed_ota_value_on_the_wire_is_shown_not_raised():
    # An MCU that answers a 1301 with a value no state decodes (a buggy device) must not turn
    # every transcript query into a ProtocolError: the transcript is what one debugs it with.
    steps = handoff()
    steps.insert(2, (MCU_TO_ASR, aflib.update(0, AF_MCU_OTA_INFO, b"\x09\x01")))
    steps.insert(3, (ASR_TO_MCU, Message(MsgType.SET, 9, AF_MCU_OTA_TRANSFER, b"\x01\x02")))
    transcript = record(steps)
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
    assert line.endswith("mcu_to_asr UPDATE 2101 version 7 (type 101)")
    # another image type's report says nothing about this one
    record(handoff()).assert_not_applied(image_type=102)


# -- against the real endpoints and the emulated MCU ----------------------------------------------


def test_a_handoff_run_by_the_real_transports_and_mcu_passes(tmp_path):
    """The ASR side is driven by hand, the MCU is rig's afLib OTA machine over a flash; the
    bytes go through McuTransport/AsrTransport and the sniffer reads both wires."""
    flash = Flash(tmp_path / "flash", factory_version="1.0.0")
    ota = McuOta(flash, log=lambda line: None)
    mcu, asr = McuTransport(), AsrTransport()
    decoder = StreamDecoder()
    events: list[Event] = []
    at_asr: list[Message] = []
    clock = [0.0]

    def run() -> None:
        """Move bytes until both ends are quiet; the MCU answers what reaches it."""
        for _ in range(10_000):
            clock[0] += 0.001
            to_asr, to_mcu = mcu.outgoing(), asr.outgoing()
            if not (to_asr or to_mcu):
                return
            events.extend(decoder.feed(MCU_TO_ASR, to_asr, clock[0]))
            events.extend(decoder.feed(ASR_TO_MCU, to_mcu, clock[0]))
            at_asr.extend(aflib.decode(raw) for raw in asr.receive(to_asr))
            for raw in mcu.receive(to_mcu):
                for answer in ota.handle(aflib.decode(raw)):
                    mcu.send(aflib.encode(answer))
            mcu.poll(clock[0])
            asr.poll(clock[0])
        pytest.fail("the link never went quiet")

    run()  # the ASR's boot Ready and the zero sync it draws
    asr.send(aflib.encode(aflib.set_ota_info(1, OtaInfo.begin(TYPE, len(IMAGE), VERSION))))
    run()
    request_id, wanted = 2, 0
    while wanted != STOP_TRANSFER_OFFSET:
        asr.send(aflib.encode(aflib.set_transfer(request_id, wanted, IMAGE[wanted:][:249])))
        run()
        answers = [m for m in at_asr if m.attr_id == AF_MCU_OTA_TRANSFER]
        assert answers[-1].request_id == request_id
        wanted = aflib.decode_offset(answers[-1].value)
        request_id += 1
    verify = OtaInfo.decode(at_asr[-1].value)
    assert verify.state == OtaState.VERIFY_SIGNATURE
    asr.send(aflib.encode(aflib.set_ota_info(request_id, OtaInfo.apply(VERSION))))
    run()
    events.extend(decoder.flush(clock[0]))

    transcript = Transcript(events)
    assert not transcript.skipped
    transcript.assert_delivered(IMAGE, version_id=VERSION)
    assert flash.installed_version_id(TYPE) == VERSION
    with pytest.raises(HandoffError, match="reported 2101 after APPLY"):
        transcript.assert_not_applied()
