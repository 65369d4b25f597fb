"""The ASR⇆MCU UART of one emulated board, while the board has power.

Two sans-IO afPro endpoints (the MCU is master, rig.protocol.afpro) exchange bytes through two
wires, one per direction. A wire either delivers at once (`fast`, for CI) or as a UART would: 10
bits per byte at the profile's baud rate (`paced`). Every byte is mirrored to the tap as it lands.
One thread moves bytes and hands whole messages to each side; it never blocks on anyone.

Paced time is kept against absolute deadlines: an answer goes on the wire at the moment the bytes
it answers landed (their due time), not when the link's thread woke up to hand them over, and a
message from the ASR's thread at the moment it was sent. A late wake-up delays the hand-over, never
the schedule, so lateness does not add up over a transfer. On the fast link the same loop runs
a whole afPro exchange in one pass, without a wake-up per turn; and unless an end is a real
UART (`inline=False`), in the sender's own thread: a chunk and its answer then cost no thread
switch at all. The link's thread still runs the transports' timeouts: it sleeps until the next
byte lands or the next timeout a transport has running (`deadline()`), so an idle board's link
does not wake at all (100 idle boards woke 2,000 times a second with a fixed 50 ms tick).

Faults on the line happen here, before the tap, so a sniffer sees what the receiver gets: a
message can be marked to have one byte flipped as it crosses (corrupt_chunk), and a
`NoisyEndpoint` corrupts the checksum of the sync messages its transport sends (line_noise).
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable
from typing import Protocol

from rig.double.faults import Faults
from rig.double.tap import Tap
from rig.protocol.aflib import ProtocolError
from rig.protocol.afpro import READY, SYNC_SIZE, Sync

BITS_PER_BYTE = 10  # start bit, 8 data bits, stop bit
IDLE_TICK_S = 1.0  # a backstop only: bytes, sends and the transports' deadlines wake the link
TAP_PUMP_S = 0.002  # how soon the tap's ptys are written again while their reader catches up
TAP_RETRY_S = 0.02  # … and while it takes nothing (none may be attached: the tap gives up)


class Transport(Protocol):
    def send(self, message: bytes) -> None: ...
    def receive(self, data: bytes) -> list[bytes]: ...
    def outgoing(self) -> bytes: ...
    def poll(self, now: float) -> bool | None: ...
    def deadline(self) -> float | None: ...
    def reset(self) -> None: ...


class Wire:
    """One direction: bytes in order, each available once it would have crossed the line."""

    def __init__(self, baud: int, paced: bool) -> None:
        self.seconds_per_byte = BITS_PER_BYTE / baud if paced else 0.0
        self._busy_until = 0.0
        self._queue: collections.deque[tuple[float, bytes]] = collections.deque()
        self.corrupt: Callable[[bytes], bytes] | None = None  # fault hook (line noise)
        self._flips: list[tuple[bytes, int]] = []  # (message, index of the byte to flip)

    def flip(self, message: bytes, at: int) -> None:
        """Flip byte `at` of `message` (XOR 0xFF) when it crosses this wire (once)."""
        self._flips.append((bytes(message), at))

    def clear(self) -> None:
        """Forget whatever is on the line (both ends were reset)."""
        self._queue.clear()
        self._flips.clear()
        self._busy_until = 0.0

    def put(self, data: bytes, now: float) -> None:
        """`data` starts crossing at `now` (the moment it was written), or once the line is free."""
        start = now if now > self._busy_until else self._busy_until
        self._busy_until = start + len(data) * self.seconds_per_byte
        self._queue.append((self._busy_until, data))

    def due(self, now: float) -> list[bytes]:
        ready = []
        while (landed := self.take(now)) is not None:
            ready.append(landed[1])
        return ready

    def take(self, now: float) -> tuple[float, bytes] | None:
        """The next bytes that have landed by `now`, with the time they landed, or None."""
        if not self._queue or self._queue[0][0] > now:
            return None
        at, data = self._queue.popleft()
        if self._flips:
            data = self._flipped(data)
        return at, self.corrupt(data) if self.corrupt else data

    def _flipped(self, data: bytes) -> bytes:
        for i, (message, at) in enumerate(self._flips):
            where = data.find(message)  # a transport writes a message out in one piece
            if where >= 0:
                del self._flips[i]
                out = bytearray(data)
                out[where + at] ^= 0xFF
                return bytes(out)
        return data

    def next_due(self) -> float | None:
        return self._queue[0][0] if self._queue else None


class Link:
    """Runs the two endpoints of one board's UART until stopped (power off)."""

    def __init__(
        self,
        *,
        mcu: Transport,
        asr: Transport,
        to_mcu: Callable[[bytes], None],
        to_asr: Callable[[bytes], None],
        tap: Tap | None,
        baud: int = 115200,
        paced: bool = False,
        name: str = "board",
        inline: bool = True,
    ) -> None:
        self._mcu, self._asr = mcu, asr
        self._to_mcu, self._to_asr = to_mcu, to_asr
        self._tap = tap
        self.wires = {"mcu_to_asr": Wire(baud, paced), "asr_to_mcu": Wire(baud, paced)}
        self._cond = threading.Condition()
        self._running = True
        self._in_step = False  # bytes are being handed over (answers are put by the step)
        self._wakes_at = 0.0  # when the link's thread next steps unless notified
        self._inline = inline and not paced  # fast link: the sender's thread hands bytes over
        self._thread = threading.Thread(target=self._run, name=f"link-{name}", daemon=True)
        self.bytes_moved = 0
        self.asr_resets = 0

    def start(self) -> Link:
        self._thread.start()
        return self

    def stop(self) -> None:
        with self._cond:
            self._running = False
            self._cond.notify_all()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)

    def wake(self) -> None:
        """Bytes arrived from outside (an external MCU's UART): move them now."""
        with self._cond:
            self._cond.notify_all()

    def send_from_mcu(self, message: bytes) -> None:
        with self._cond:
            self._mcu.send(message)
            self._sent()

    def send_from_asr(self, message: bytes, *, flip_at: int | None = None) -> None:
        """Queue a message at the ASR; `flip_at`: that byte of it is corrupted on the line."""
        with self._cond:
            if flip_at is not None:
                self.wires["asr_to_mcu"].flip(message, flip_at)
            self._asr.send(message)
            self._sent()

    def _sent(self) -> None:
        """A message was queued at one end (under the lock). Outside a step, what it makes the
        end write starts crossing now (inside one, the step puts it at the time the bytes that
        caused it landed); on the fast link it is handed over at once, in this thread."""
        if self._in_step:
            return
        now = time.monotonic()
        self._put_outgoing(now)
        if not self._inline:
            self._cond.notify()
            return
        self._step(now)
        due = self._next_wake()  # a timeout the step started, bytes a poll wrote: not too late
        if due is not None and due < self._wakes_at:
            self._cond.notify()

    def reset_transports(self, mcu: Transport, asr: Transport) -> None:
        """Both ends start afresh (the ASR rebooted): what was queued or on the line is lost."""
        with self._cond:
            self._mcu, self._asr = mcu, asr
            for wire in self.wires.values():
                wire.clear()
            self._cond.notify_all()

    def _run(self) -> None:
        with self._cond:
            while self._running:
                now = time.monotonic()
                self._step(now)
                due = self._next_wake()
                timeout = IDLE_TICK_S if due is None else due - time.monotonic()
                if self._tap is not None and self._tap.pending:
                    timeout = min(timeout, TAP_PUMP_S if self._tap.pump() else TAP_RETRY_S)
                if timeout > 0:
                    timeout = min(timeout, IDLE_TICK_S)
                    self._wakes_at = time.monotonic() + timeout
                    self._cond.wait(timeout)
                    self._wakes_at = 0.0  # awake: a send need not notify

    def _next_wake(self) -> float | None:
        """When something is next due: bytes landing, or a timeout either transport runs."""
        due = None
        for t in (*(w.next_due() for w in self.wires.values()), self._mcu.deadline(),
                  self._asr.deadline()):  # fmt: skip
            if t is not None and (due is None or t < due):
                due = t
        return due

    def _step(self, now: float) -> bool:
        """Hand over everything that has landed by `now`, oldest first, putting each answer on
        the wire at the time its cause landed; then the transports' timeouts.

        Returns whether anything moved."""
        self._in_step = True
        try:
            moved = self._put_outgoing(now)  # e.g. an external MCU's bytes
            mirrored: list[tuple[str, bytes, float]] = []  # for the tap, in one go
            to_asr, to_mcu = self.wires["mcu_to_asr"], self.wires["asr_to_mcu"]
            while True:
                first, second = to_asr.next_due(), to_mcu.next_due()
                if first is not None and (second is None or first <= second):
                    wire, direction = to_asr, "mcu_to_asr"
                    receiver, deliver = self._asr, self._to_asr
                elif second is not None:
                    wire, direction = to_mcu, "asr_to_mcu"
                    receiver, deliver = self._mcu, self._to_mcu
                else:
                    break
                landed = wire.take(now)
                if landed is None:
                    break
                at, data = landed
                moved = True
                self.bytes_moved += len(data)
                mirrored.append((direction, data, time.time()))
                for message in receiver.receive(data):
                    deliver(message)
                self._put_outgoing(at)
            if mirrored and self._tap is not None:
                self._tap.mirror_many(mirrored)
            if self._mcu.poll(now):  # 10 s without an ASR reply: the MCU pulls the ASR's reset
                self._asr.reset()
                self.asr_resets += 1
            self._asr.poll(now)
            return self._put_outgoing(now) or moved
        finally:
            self._in_step = False

    def _put_outgoing(self, at: float) -> bool:
        """What each end has written goes on its wire, starting at `at`."""
        moved = False
        data = self._mcu.outgoing()
        if data:
            self.wires["mcu_to_asr"].put(data, at)
            moved = True
        data = self._asr.outgoing()
        if data:
            self.wires["asr_to_mcu"].put(data, at)
            moved = True
        return moved


def _sync_at(out: bytes) -> int | None:
    """Where the sync message is in what a transport wrote in answer to one event, if any.

    One event makes the MCU write one sync or one message, and the ASR some Readies around at
    most one sync (its response) or one message; a message never passes for a sync here: its
    length field would have to be 0x30/0x31 and its tail all Readies.
    """
    start = len(out) - len(out.lstrip(bytes([READY])))
    tail = out[start + SYNC_SIZE :]
    if len(out) - start < SYNC_SIZE or tail.strip(bytes([READY])):
        return None
    try:
        Sync.decode(out[start : start + SYNC_SIZE])
    except ProtocolError:
        return None
    return start


class NoisyEndpoint:
    """A transport behind a noisy line: each sync message it sends may arrive with a bad
    checksum, with the probability the board's line_noise fault says (else it changes nothing).

    To know which bytes are syncs it feeds the transport one byte at a time while there is
    noise, and looks at what each byte made it write (`_sync_at`). On a quiet line it is a
    pass-through: what the transport writes is taken as it is, when the link asks for it.
    """

    def __init__(self, inner: Transport, faults: Faults | None) -> None:
        self.inner = inner
        self._faults = faults
        self._tx = bytearray()
        self.corrupted = 0  # sync messages sent with a bad checksum

    def __getattr__(self, name: str) -> object:
        return getattr(self.inner, name)  # phase, pending, counters: the transport's own

    def _noisy(self) -> bool:
        return self._faults is not None and self._faults.line_noise is not None

    def _collect(self) -> None:
        out = self.inner.outgoing()
        if out and self._noisy():
            at = _sync_at(out)
            if at is not None and self._faults is not None and self._faults.noisy_sync():
                corrupted = bytearray(out)
                corrupted[at + SYNC_SIZE - 1] ^= self._faults.noise_mask()
                out = bytes(corrupted)
                self.corrupted += 1
        self._tx += out

    def send(self, message: bytes) -> None:
        self.inner.send(message)
        if self._noisy():
            self._collect()

    def receive(self, data: bytes) -> list[bytes]:
        if not self._noisy():
            return self.inner.receive(data)
        delivered = []
        for byte in data:
            delivered += self.inner.receive(bytes([byte]))
            self._collect()
        return delivered

    def outgoing(self) -> bytes:
        faults = self._faults  # inline _noisy(): the link asks both ends after every step
        if not self._tx and (faults is None or faults.line_noise is None):
            return self.inner.outgoing()  # a quiet line: the transport's bytes as they are
        self._collect()
        out, self._tx = bytes(self._tx), bytearray()
        return out

    def poll(self, now: float) -> bool | None:
        result = self.inner.poll(now)
        if self._noisy():
            self._collect()
        return result

    def deadline(self) -> float | None:
        return self.inner.deadline()

    def reset(self) -> None:
        self.inner.reset()
        if self._noisy():
            self._collect()
