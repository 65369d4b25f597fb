"""The double's ASR⇆MCU link: wire timing, real afPro endpoints on a thread, the tap beside it."""

from __future__ import annotations

import contextlib
import os
import random
import select
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from rig.double import link as link_mod
from rig.double import tap as tap_mod
from rig.double.link import Link, Wire
from rig.double.tap import Tap, read_capture
from rig.protocol import aflib
from rig.protocol.afpro import AsrTransport, McuTransport
from rig.protocol.decoder import ASR_TO_MCU, MCU_TO_ASR, MessageEvent, SkipEvent, replay
from tests.unit.helpers import wait_until

DIRECTIONS = (ASR_TO_MCU, MCU_TO_ASR)

# -- Wire: pure timing, no thread ------------------------------------------------------------------


def test_a_paced_wire_takes_ten_bits_per_byte_at_the_baud_rate():
    wire = Wire(115200, paced=True)
    data = bytes(1152)  # 11520 bits: 0.1 s at 115200 baud
    wire.put(data, 0.0)
    assert wire.next_due() == pytest.approx(0.1)
    assert wire.due(0.0999) == []
    assert wire.due(0.1000001) == [data]
    assert wire.next_due() is None and wire.due(5.0) == []


def test_back_to_back_puts_queue_behind_each_other():
    wire = Wire(115200, paced=True)
    first, second, third = b"a" * 1152, b"b" * 1152, b"c" * 576
    wire.put(first, 0.0)
    wire.put(second, 0.05)  # the line is still busy with the first until 0.1
    assert wire.next_due() == pytest.approx(0.1)
    assert wire.due(0.15) == [first]
    assert wire.next_due() == pytest.approx(0.2)
    assert wire.due(0.2000001) == [second]
    wire.put(third, 1.0)  # an idle line starts at once
    assert wire.next_due() == pytest.approx(1.05)
    assert wire.due(1.0500001) == [third]


def test_everything_due_comes_out_in_order():
    wire = Wire(9600, paced=True)
    pieces = [bytes([i]) * (i + 1) for i in range(10)]
    for piece in pieces:
        wire.put(piece, 0.0)
    assert wire.next_due() == pytest.approx(10 / 9600)
    assert wire.due(1.0) == pieces  # 55 bytes take 57 ms at 9600 baud


def test_a_fast_wire_delivers_at_once():
    wire = Wire(115200, paced=False)
    wire.put(bytes(100_000), 5.0)
    wire.put(b"x", 5.0)
    assert wire.next_due() == 5.0
    assert wire.due(5.0) == [bytes(100_000), b"x"]


def test_the_corrupt_hook_sees_bytes_as_they_land():
    wire = Wire(115200, paced=False)
    wire.corrupt = lambda data: data[::-1]
    wire.put(b"\x01\x02\x03", 0.0)
    assert wire.due(0.0) == [b"\x03\x02\x01"]


# -- Link: real endpoints, the link's own thread ---------------------------------------------------


class Ends:
    """What each side received, appended from the link's thread."""

    def __init__(self) -> None:
        self.at_mcu: list[bytes] = []
        self.at_asr: list[bytes] = []


@pytest.fixture
def links() -> Iterator[list[Link]]:
    started: list[Link] = []
    yield started
    for link in started:
        link.stop()


def make_link(links: list[Link], ends: Ends, *, mcu=None, asr=None, **kwargs) -> Link:
    link = Link(
        mcu=mcu or McuTransport(),
        asr=asr or AsrTransport(),
        to_mcu=ends.at_mcu.append,
        to_asr=ends.at_asr.append,
        **{"tap": None, **kwargs},
    )
    links.append(link)
    return link


def message(rng: random.Random, size: int | None = None) -> bytes:
    size = rng.randint(1, 249) if size is None else size
    return aflib.encode(aflib.notify_chunk(rng.randrange(2**20), rng.randbytes(size)))


@pytest.mark.parametrize("inline", [False, True], ids=["link-thread", "inline"])
def test_300_messages_each_way_arrive_in_order_exactly_once(links, inline: bool):
    """On the link's thread both ends have something before the first sync (a collision);
    inline (the fast link's default) every send is handed over at once, in the sender's thread."""
    rng = random.Random(7)
    ends = Ends()
    link = make_link(links, ends, inline=inline)
    from_mcu = [message(rng) for _ in range(300)]
    from_asr = [message(rng) for _ in range(300)]
    for raw in from_mcu[:20]:  # both sides have something before the first sync: a collision
        link.send_from_mcu(raw)
    for raw in from_asr[:20]:
        link.send_from_asr(raw)
    link.start()
    for a, b in zip(from_mcu[20:], from_asr[20:], strict=True):
        link.send_from_mcu(a)
        link.send_from_asr(b)
    wait_until(lambda: len(ends.at_asr) >= 300 and len(ends.at_mcu) >= 300, timeout=10,
               what="300 messages each way")  # fmt: skip
    assert ends.at_asr == from_mcu
    assert ends.at_mcu == from_asr
    assert link._mcu.collisions > 0 or inline
    assert link.asr_resets == 0
    framing = 6 * 3 + 3  # request, response, ack; three Readies (one more per attention Ready)
    assert link.bytes_moved >= sum(map(len, from_mcu + from_asr)) + 600 * framing


def test_a_paced_link_takes_the_time_its_baud_rate_gives(links):
    rng = random.Random(8)
    ends = Ends()
    link = make_link(links, ends, baud=115200, paced=True)
    sent = [message(rng, 249) for _ in range(10)]  # 10 x 261 bytes plus framing: >= 0.23 s
    link.start()
    started = time.monotonic()
    for raw in sent:
        link.send_from_asr(raw)
    wait_until(lambda: len(ends.at_mcu) == 10, timeout=5, what="10 paced messages")
    elapsed = time.monotonic() - started
    assert ends.at_mcu == sent
    # the bytes that carried them (all but the final Ready of the last one) needed this long
    assert elapsed >= (link.bytes_moved - 1) * 10 / 115200 - 0.001


def test_a_tap_nobody_reads_never_stalls_the_link_and_the_capture_keeps_every_byte(
    links, tmp_path: Path, monkeypatch
):
    monkeypatch.setattr(tap_mod, "STALL_S", 0.1)  # how long an unread backlog is kept
    rng = random.Random(9)
    tap = Tap(tmp_path / "capture.jsonl")
    try:
        ends = Ends()
        link = make_link(links, ends, tap=tap).start()
        from_mcu = [message(rng, 249) for _ in range(420)]
        from_asr = [message(rng, 249) for _ in range(420)]  # 840 x 261 B: 214 KiB of messages
        for a, b in zip(from_mcu, from_asr, strict=True):
            link.send_from_mcu(a)
            link.send_from_asr(b)
        wait_until(lambda: len(ends.at_asr) == len(ends.at_mcu) == 420, timeout=15,
                   what="214 KiB across a link whose tap nobody reads")  # fmt: skip
        wait_until(lambda: not tap.pending, what="the tap to give up its unread backlog")
        link.stop()  # each step moves and mirrors together: now the counts are final
        assert ends.at_asr == from_mcu and ends.at_mcu == from_asr
        records = read_capture(tap.capture_path)
        captured = {d: b"".join(data for _, w, data in records if w == d) for d in DIRECTIONS}
        assert sum(map(len, captured.values())) == link.bytes_moved > 200 * 1024
        # the ptys were full: bytes were dropped there, and every byte is in a pty or dropped
        for direction in DIRECTIONS:
            dropped = tap._ports[direction].dropped
            assert dropped > 0, direction
            in_pty = drain(tap.info()[direction], len(captured[direction]) - dropped)
            assert len(in_pty) + dropped == len(captured[direction]), direction
            assert captured[direction].startswith(in_pty[:64])
    finally:
        tap.close()
    # the capture decodes to exactly what was delivered, nothing skipped, times in order
    events = replay(records)
    assert not [e for e in events if isinstance(e, SkipEvent)]
    for direction, sent in {ASR_TO_MCU: from_asr, MCU_TO_ASR: from_mcu}.items():
        seen = [e.raw for e in events if isinstance(e, MessageEvent) and e.direction == direction]
        assert seen == sent
    times = [t for t, _, _ in records]
    assert times == sorted(times)


def drain(path: str, expect: int, timeout: float = 5.0) -> bytes:
    """Read a pty until it gave `expect` bytes, or nothing more came before the deadline (the
    bytes move from the kernel's pty buffers into the line discipline as they are read)."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY)
    got = bytearray()
    deadline = time.monotonic() + timeout
    try:
        while len(got) < expect and time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], max(deadline - time.monotonic(), 0))
            if ready:
                with contextlib.suppress(BlockingIOError):
                    got += os.read(fd, 65536)
    finally:
        os.close(fd)
    return bytes(got)


def test_a_silent_asr_is_reset_by_the_mcu_and_the_link_recovers(links):
    """The MCU's REPLY_TIMEOUT path with a short timeout instead of 10 s.

    No stub is needed: the ASR is the real AsrTransport and the link's own fault hook cuts its
    transmit line (every byte it sends is lost), which is what the MCU sees of an ASR that hung.
    """
    ends = Ends()
    asr = AsrTransport()
    link = make_link(links, ends, mcu=McuTransport(reply_timeout=0.3), asr=asr)
    cut = threading.Event()
    link.wires[ASR_TO_MCU].corrupt = lambda data: b"" if cut.is_set() else data
    link.start()
    # boot: the ASR's Ready, a zero sync (request, response + Ready, ack, Ready): 21 bytes
    wait_until(lambda: link.bytes_moved == 21 and link._mcu.phase.value == "idle",
               what="the boot transaction")  # fmt: skip
    cut.set()
    link.send_from_asr(aflib.encode(aflib.update(0, 2101, bytes(8))))  # lost with the reset
    link.send_from_mcu(aflib.encode(aflib.Message(aflib.MsgType.GET, 5, 1206)))
    started = time.monotonic()
    wait_until(lambda: link.asr_resets > 0, timeout=3, what="the MCU to reset the silent ASR")
    # not before the reply timeout (silence counts from the send)
    assert time.monotonic() - started >= 0.3 - 0.1
    with link._cond:  # the link thread steps under this lock: read both counts between steps
        assert link._mcu.resets == link.asr_resets
    assert asr.pending == 0  # a reset loses the ASR's RAM: its queued message is gone
    cut.clear()  # the ASR talks again: its next boot Ready reaches the MCU
    wait_until(lambda: ends.at_asr, timeout=3, what="the MCU's message after the reset")
    assert ends.at_asr == [aflib.encode(aflib.Message(aflib.MsgType.GET, 5, 1206))]
    assert ends.at_mcu == []
    resets = link.asr_resets
    link.send_from_asr(aflib.encode(aflib.update(5, 1206, b"\x80")))
    wait_until(lambda: ends.at_mcu, timeout=3, what="the ASR's answer after recovery")
    assert ends.at_mcu == [aflib.encode(aflib.update(5, 1206, b"\x80"))]
    assert link.asr_resets == resets  # a talking ASR is not reset


def test_an_idle_link_sleeps_and_a_lost_send_wakes_its_thread_for_the_timeout(links, monkeypatch):
    """No fixed tick: the link's thread sleeps until a transport's deadline, and a send handed
    over inline that leaves a timeout running tells it so (the backstop is made an hour here, so
    only the deadline can explain the reset)."""
    monkeypatch.setattr(link_mod, "IDLE_TICK_S", 3600.0)
    ends = Ends()
    link = make_link(links, ends, mcu=McuTransport(reply_timeout=0.3))
    cut = threading.Event()
    link.wires[ASR_TO_MCU].corrupt = lambda data: b"" if cut.is_set() else data
    link.start()
    wait_until(lambda: link.bytes_moved == 21 and link._mcu.phase.value == "idle",
               what="the boot transaction")  # fmt: skip
    with link._cond:
        assert link._next_wake() is None  # nothing due: the thread sleeps
    cut.set()
    link.send_from_mcu(aflib.encode(aflib.Message(aflib.MsgType.GET, 5, 1206)))  # inline, lost
    wait_until(lambda: link.asr_resets > 0, timeout=10, what="the MCU to reset the silent ASR")


# -- timing against absolute deadlines, the fast link inline, the tap's backlog -------------------


def test_a_late_step_keeps_the_wire_schedule_answers_start_when_their_cause_landed(links):
    """A paced link whose thread wakes 10 s late still hands the whole exchange over in that one
    step, and its wires end busy where the bytes alone would: lateness does not add up."""
    ends = Ends()
    link = make_link(links, ends, baud=115200, paced=True)  # not started: steps by hand
    sent = aflib.encode(aflib.notify_chunk(0, bytes(249)))
    before = time.monotonic()
    link.send_from_asr(sent)  # on the wire from now (the ASR's Ready)
    after = time.monotonic()
    assert ends.at_mcu == []
    link._step(after + 10.0)
    assert ends.at_mcu == [sent]
    end = max(wire._busy_until for wire in link.wires.values())
    wire_time = link.bytes_moved * 10 / 115200  # stop-and-wait: the directions never overlap
    assert before + wire_time <= end <= after + wire_time + 1e-6


def test_the_fast_link_hands_a_message_over_in_the_senders_thread(links):
    ends = Ends()
    link = make_link(links, ends)  # not started: no link thread at all
    sent = aflib.encode(aflib.notify_chunk(0, b"abc"))
    link.send_from_asr(sent)
    assert ends.at_mcu == [sent]
    answer = aflib.encode(aflib.notify_chunk(3, b"d"))
    link.send_from_mcu(answer)
    assert ends.at_asr == [answer]
    assert not link.wires[ASR_TO_MCU].due(time.monotonic() + 1)  # nothing left on the line


def test_wire_take_says_when_the_bytes_landed():
    wire = Wire(9600, paced=True)
    wire.put(b"ab", 1.0)
    assert wire.take(1.0) is None
    assert wire.take(2.0) == (pytest.approx(1.0 + 20 / 9600), b"ab")
    assert wire.take(2.0) is None


def test_a_sniffer_that_reads_slowly_still_gets_every_byte(tmp_path: Path):
    """More than a pty holds goes through the tap while its reader lags: the backlog waits for
    the reader instead of being dropped."""
    tap = Tap(tmp_path / "capture.jsonl")
    try:
        data = random.Random(10).randbytes(600 * 1024)
        for at in range(0, len(data), 6000):
            tap.mirror_many([(ASR_TO_MCU, data[at : at + 6000], time.time())])
        assert tap.pending  # far more than the pty takes
        fd = os.open(tap.info()[ASR_TO_MCU], os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY)
        got = bytearray()
        try:
            deadline = time.monotonic() + 10
            while len(got) < len(data) and time.monotonic() < deadline:
                tap.pump()  # the link's thread does this while the tap is pending
                select.select([fd], [], [], 0.01)
                with contextlib.suppress(BlockingIOError):
                    got += os.read(fd, 65536)
        finally:
            os.close(fd)
        assert bytes(got) == data
        assert tap._ports[ASR_TO_MCU].dropped == 0 and not tap.pending
    finally:
        tap.close()
