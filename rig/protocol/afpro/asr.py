"""The ASR end of afPro over UART: the slave, as a sans-IO state machine."""

from __future__ import annotations

from collections import deque
from enum import Enum

from rig.protocol.aflib import ProtocolError
from rig.protocol.afpro.wire import (
    GIVE_UP_TIMEOUT,
    READY,
    SYNC_KINDS,
    SYNC_SIZE,
    Outbox,
    Sync,
    SyncKind,
    Timers,
    check_message,
    drop_to_sync_start,
    request,
)


class AsrPhase(Enum):
    IDLE = "idle"
    AWAIT_ACK = "await-ack"
    RECEIVING = "receiving"


class AsrTransport(Outbox):
    """The slave: answers syncs, asks for attention with a Ready, yields collisions to the MCU."""

    def __init__(self, *, give_up_timeout: float = GIVE_UP_TIMEOUT) -> None:
        self.give_up_timeout = give_up_timeout
        self._timers = Timers()
        self.reset()

    def reset(self) -> None:
        """A reboot: everything queued is lost, and the ASR announces itself with a Ready."""
        self._enter(AsrPhase.IDLE)
        self._queue: deque[bytes] = deque()
        self._tx = bytearray([READY])
        self._rx = bytearray()
        self._response = request(0)
        self._yield = False  # we lost a collision: the next request gets no ASR bytes
        self._asked = True  # a Ready asking for attention is out
        self.ignored_syncs = 0

    def send(self, message: bytes) -> None:
        self._queue.append(check_message(message))
        self._ask()

    def receive(self, data: bytes) -> list[bytes]:
        delivered: list[bytes] = []
        if data:
            self._timers.moved()  # the MCU is talking: nothing to give up on
        at, end = 0, len(data)
        while at < end:
            if self.phase is AsrPhase.RECEIVING:  # the MCU's message: taken whole, not by byte
                at = self._on_data(data, at, delivered)
            elif not self._rx and self._on_sync(data[at : at + SYNC_SIZE]):
                at += SYNC_SIZE  # a whole good sync: what its six bytes one by one would do
            else:
                self._on_sync_byte(data[at])
                at += 1
        return delivered

    def poll(self, now: float) -> None:
        """Give up a transaction the MCU abandoned; ask again if an attention Ready went unheard."""
        self._timers.tick(now)
        if now - self._timers.moved_at >= self.give_up_timeout:
            self._rx.clear()
            self._enter(AsrPhase.IDLE)
            self._asked = False
            self._ask()
        self._timers.tick(now)  # what the timeout did, it did now

    def deadline(self) -> float | None:
        """The earliest time `poll` may act, or None when giving up would change nothing (idle,
        nothing queued, no Ready out): a caller need not poll before then. Valid after a
        `poll`; an event since only makes it early."""
        if self.phase is AsrPhase.IDLE and not self._queue and not self._asked:
            return None
        return self._timers.moved_at + self.give_up_timeout

    # -- events ---------------------------------------------------------------------------

    def _enter(self, phase: AsrPhase) -> None:
        self.phase = phase
        self._timers.moved()

    def _ask(self) -> None:
        if self.phase is AsrPhase.IDLE and self._queue and not self._asked:
            self._tx.append(READY)
            self._asked = True
            self._timers.moved()

    def _on_sync_byte(self, byte: int) -> None:
        self._rx.append(byte)
        drop_to_sync_start(self._rx)
        if len(self._rx) < SYNC_SIZE:
            return
        window = bytes(self._rx)
        self._rx.clear()
        if not self._on_sync(window):
            self.ignored_syncs += 1
            self._rx += window[1:]  # slide: a real sync may start inside the bad one
            drop_to_sync_start(self._rx)

    def _on_sync(self, window: bytes) -> bool:
        """Act on six bytes that should be a sync; False (nothing done) if they are not one."""
        if len(window) != SYNC_SIZE or window[0] not in SYNC_KINDS:
            return False
        try:
            sync = Sync.decode(window)
        except ProtocolError:
            return False
        if sync.kind is SyncKind.REQUEST_OR_RESPONSE:
            self._onrequest(sync)
        else:
            self._on_ack(sync)
        return True

    def _onrequest(self, request: Sync) -> None:
        asr_bytes = len(self._queue[0]) if self._queue and not self._yield else 0
        self._response = Sync(SyncKind.REQUEST_OR_RESPONSE, request.mcu_bytes, asr_bytes)
        self._yield = self._response.collision
        self._asked = True  # the MCU is talking to us: our Ready was heard
        self._tx += self._response.encode() + bytes([READY])
        self._enter(AsrPhase.AWAIT_ACK)

    def _on_ack(self, ack: Sync) -> None:
        expected = (self._response.mcu_bytes, self._response.asr_bytes)
        if self.phase is not AsrPhase.AWAIT_ACK or (ack.mcu_bytes, ack.asr_bytes) != expected:
            self.ignored_syncs += 1
            return
        self._tx.append(READY)
        self._yield = False  # this transaction goes through: any collision is settled
        if ack.mcu_bytes:  # the MCU sends, also when it acked a collision: it wins
            self._enter(AsrPhase.RECEIVING)
        elif ack.asr_bytes:
            self._tx += self._queue.popleft() + bytes([READY])
            self._idle()
        else:
            self._idle()

    def _on_data(self, data: bytes, at: int, delivered: list[bytes]) -> int:
        """Take what is left of the MCU's message from `data[at:]`; returns where it ended."""
        end = at + self._response.mcu_bytes - len(self._rx)
        self._rx += data[at:end]
        if len(self._rx) == self._response.mcu_bytes:
            delivered.append(bytes(self._rx))
            self._rx.clear()
            self._tx.append(READY)
            self._idle()
        return min(end, len(data))

    def _idle(self) -> None:
        self._enter(AsrPhase.IDLE)
        self._asked = False
        self._ask()
