"""HandoffRecorder on the double's tap: real pseudo-terminals, read with pyserial, decoded live."""

from __future__ import annotations

import fcntl
import os
import struct
import termios
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from rig.double.tap import Tap, read_capture
from rig.errors import RigError
from rig.instruments.sniffer_port import HandoffRecorder, SnifferError
from rig.protocol import aflib
from rig.protocol.afpro import ZERO_SYNC
from rig.protocol.decoder import (
    ASR_TO_MCU,
    MCU_TO_ASR,
    MessageEvent,
    ReadyEvent,
    SkipEvent,
    SyncEvent,
    event_bytes,
    replay,
)
from rig.protocol.transcript import HandoffError
from tests.unit.helpers import wait_until
from tests.unit.protocol.test_transcript import IMAGE, VERSION, frame, handoff

DIRECTIONS = (ASR_TO_MCU, MCU_TO_ASR)


@pytest.fixture
def tap(tmp_path: Path) -> Iterator[Tap]:
    tap = Tap(tmp_path / "tap" / "link.capture.jsonl")
    yield tap
    tap.close()


@pytest.fixture
def recorder(tap: Tap) -> Iterator[HandoffRecorder]:
    info = tap.info()
    recorder = HandoffRecorder({d: info[d] for d in DIRECTIONS}, name="bench3").start()
    yield recorder
    recorder.stop()


def queued(path: str) -> int:
    """Bytes waiting in a pty's input queue, asked through a descriptor of our own."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY)
    try:
        raw = fcntl.ioctl(fd, termios.FIONREAD, struct.pack("i", 0))
        return struct.unpack("i", raw)[0]
    finally:
        os.close(fd)


def test_a_handoff_mirrored_through_the_tap_is_recorded_and_delivered(tap, recorder):
    steps = handoff()
    mirrored = 0
    for i, (direction, message) in enumerate(steps):
        for wire, data in frame(direction, aflib.encode(message)).items():
            tap.mirror(wire, data)
            mirrored += len(data)
        # each wire is read by its own thread: let step i land before step i + 1 crosses, so
        # the times the recorder stamps keep the wire's order across the two directions
        recorder.wait_for(lambda t, n=i + 1: len(t.messages) == n, timeout_s=5)
    # every byte decoded (the last step's Readies may still be on their way after its message)
    transcript = recorder.wait_for(lambda t: sum(map(len, map(event_bytes, t.events))) == mirrored)
    assert [e.raw for e in transcript.messages] == [aflib.encode(m) for _, m in steps]
    assert [e.direction for e in transcript.messages] == [d for d, _ in steps]
    assert not transcript.skipped
    transcript.assert_delivered(IMAGE, version_id=VERSION)
    times = [e.t for e in transcript.messages]
    assert times == sorted(times) and transcript.throughput > 0

    final = recorder.stop()
    assert final.events == transcript.events  # nothing left over: the flush added nothing
    # the capture file holds the same bytes, and the sniffer read every one of them
    replayed = replay(read_capture(tap.capture_path))
    assert [e.raw for e in replayed if isinstance(e, MessageEvent)] == [
        e.raw for e in final.messages
    ]
    assert all(port.dropped == 0 for port in tap._ports.values())


def test_stop_reports_a_frame_cut_short_as_skipped(tap, recorder):
    chunk = aflib.encode(aflib.notify_chunk(0, IMAGE[:249]))
    cut = frame(ASR_TO_MCU, chunk)[ASR_TO_MCU][:-100]  # Ready, response, Readies, part of data
    tap.mirror(ASR_TO_MCU, cut)
    half_sync = bytes.fromhex("30 0e 00")
    tap.mirror(MCU_TO_ASR, ZERO_SYNC + half_sync)
    # the bytes of one write reach the pty's reader together: once the events before the cut
    # show, the rest is readable too, and an empty input queue means the recorder took it
    recorder.wait_for(
        lambda t: (
            sum(isinstance(e, ReadyEvent) for e in t.events) == 3
            and any(isinstance(e, SyncEvent) and e.direction == MCU_TO_ASR for e in t.events)
        )
    )
    paths = tap.info()
    wait_until(lambda: queued(paths[ASR_TO_MCU]) == queued(paths[MCU_TO_ASR]) == 0,
               what="the recorder to take every byte off both ports")  # fmt: skip
    assert not recorder.transcript().skipped  # held back: more bytes may still come

    transcript = recorder.stop()
    skips = {e.direction: e for e in transcript.skipped}
    assert set(skips) == {ASR_TO_MCU, MCU_TO_ASR}
    asr_skip, mcu_skip = skips[ASR_TO_MCU], skips[MCU_TO_ASR]
    assert asr_skip.data == chunk[: len(cut) - 9]  # after Ready, response, Ready, Ready
    assert asr_skip.why == "truncated data phase at end of capture"
    assert mcu_skip.data == half_sync and mcu_skip.why == "incomplete frame at end of capture"
    assert isinstance(transcript.events[-1], SkipEvent)
    assert recorder.stop().events == transcript.events  # stopping twice adds nothing


@pytest.mark.parametrize("broken", DIRECTIONS)
def test_a_sniffer_port_that_does_not_exist_names_the_boards_yaml_key(tap, tmp_path, broken):
    info = tap.info()
    ports = {d: info[d] for d in DIRECTIONS}
    ports[broken] = str(tmp_path / "no-such-sniffer")
    recorder = HandoffRecorder(ports, name="bench3")
    with pytest.raises(SnifferError) as caught:
        recorder.start()
    text = str(caught.value)
    assert f"check boards.bench3.tap.{broken}" in text
    assert f"sniffer port {ports[broken]} ({broken}) cannot be opened" in text
    assert text.startswith("bench3: ")
    assert isinstance(caught.value, RigError)
    # the port that did open (asr_to_mcu comes first) is closed again, no thread is left
    assert all(not port.is_open for port in recorder._serials)
    assert not any(thread.is_alive() for thread in recorder._threads)


def mirror_steps(tap: Tap, recorder: HandoffRecorder, steps) -> None:
    """Each step across the tap, landed before the next crosses (each wire has its reader)."""
    for direction, message in steps:
        count = len(recorder.transcript().messages) + 1
        for wire, data in frame(direction, aflib.encode(message)).items():
            tap.mirror(wire, data)
        recorder.wait_for(lambda t, n=count: len(t.messages) == n, timeout_s=5)


def test_wait_for_delivery_waits_for_the_version_write_that_comes_last(tap, recorder):
    steps = handoff()  # ends with the MCU's version write and the ASR's answer to it
    mirror_steps(tap, recorder, steps[:-2])
    assert "APPLY" in recorder.transcript().states  # where waiting for APPLY would stop
    done = threading.Event()
    got = []

    def wait() -> None:
        got.append(recorder.wait_for_delivery(IMAGE, version_id=VERSION, timeout_s=10))
        done.set()

    waiter = threading.Thread(target=wait)
    waiter.start()
    assert not done.wait(0.2)  # still waiting: the handoff is not whole yet
    mirror_steps(tap, recorder, steps[-2:])
    waiter.join(10)
    assert done.is_set() and got[0].version_written(101, VERSION) is not None


def test_wait_for_delivery_without_the_version_write_names_that_step(tap, recorder):
    mirror_steps(tap, recorder, handoff()[:-2])  # no version write
    with pytest.raises(HandoffError) as caught:
        recorder.wait_for_delivery(IMAGE, version_id=VERSION, timeout_s=0.2)
    assert str(caught.value).startswith("handoff step 6. version report: attribute 2101")


def test_wait_for_gives_up_with_what_the_sniffer_saw(tap, recorder):
    tap.mirror(ASR_TO_MCU, b"\x32")
    recorder.wait_for(lambda t: t.events, timeout_s=5)
    with pytest.raises(SnifferError) as caught:
        recorder.wait_for(lambda t: "APPLY" in t.states, timeout_s=0.1, what="APPLY")
    text = str(caught.value)
    assert text.startswith("bench3: APPLY did not show on the sniffer within 0.1 s; it saw:\n")
    assert text.endswith("0.000 asr_to_mcu READY")


def test_the_tap_capture_keeps_every_mirrored_byte_with_its_time(tap):
    records = [
        (1.5, ASR_TO_MCU, b"\x32"),
        (1.75, MCU_TO_ASR, bytes(range(256))),
        (2.0, ASR_TO_MCU, b""),
    ]
    for t, direction, data in records:
        tap.mirror(direction, data, t)
    assert read_capture(tap.capture_path) == records


def thread_cpu_ticks(thread: threading.Thread) -> int:
    """utime + stime of one thread, in clock ticks (Linux /proc)."""
    stat = Path(f"/proc/self/task/{thread.native_id}/stat").read_text()
    fields = stat.rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # fields 14 and 15 of stat(5)


def test_a_sniffer_port_that_goes_away_does_not_spin_the_reader(tmp_path):
    tap = Tap(tmp_path / "capture.jsonl")
    info = tap.info()
    recorder = HandoffRecorder({d: info[d] for d in DIRECTIONS}, name="bench3").start()
    try:
        tap.mirror(ASR_TO_MCU, b"\x32")
        recorder.wait_for(lambda t: t.events, timeout_s=5)
        tap.close()  # the double went away: reading the pty now fails at once (EIO)
        before = [thread_cpu_ticks(t) for t in recorder._threads]
        threading.Event().wait(0.5)  # a measuring interval, not a synchronisation
        used = [thread_cpu_ticks(t) - b for t, b in zip(recorder._threads, before, strict=True)]
        ticks = os.sysconf("SC_CLK_TCK")
        assert max(used) < 0.1 * ticks, f"reader threads used {used} ticks in 0.5 s"
    finally:
        transcript = recorder.stop()
    assert [type(e).__name__ for e in transcript.events] == ["ReadyEvent"]
