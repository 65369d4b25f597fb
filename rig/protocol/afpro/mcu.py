"""The MCU end of afPro over UART: the master, as a sans-IO state machine."""

from __future__ import annotations

from collections import deque
from enum import Enum

from rig.protocol.aflib import ProtocolError
from rig.protocol.afpro.wire import (
    READY,
    REPLY_TIMEOUT,
    RESYNC_TIMEOUT,
    SYNC_SIZE,
    Outbox,
    Sync,
    SyncKind,
    Timers,
    check_message,
    request,
)


class McuPhase(Enum):
    IDLE = "idle"
    AWAIT_BOOT = "await-boot"  # ASR reset: wait for its first Ready
    AWAIT_RESPONSE = "await-response"
    AWAIT_READY_TO_RESYNC = "await-ready-to-resync"  # after a collision
    AWAIT_READY_TO_ACK = "await-ready-to-ack"
    AWAIT_READY_FOR_DATA = "await-ready-for-data"
    RECEIVING = "receiving"
    AWAIT_FINAL_READY = "await-final-ready"


class McuTransport(Outbox):
    """The master: starts every transaction, wins collisions, resets a silent ASR."""

    def __init__(
        self, *, reply_timeout: float = REPLY_TIMEOUT, resync_timeout: float = RESYNC_TIMEOUT
    ) -> None:
        self.reply_timeout = reply_timeout
        self.resync_timeout = resync_timeout
        self.phase = McuPhase.IDLE
        self._queue: deque[bytes] = deque()
        self._tx = bytearray()
        self._rx = bytearray()
        self._request = request(0)
        self._response = request(0)
        self._attention = False  # the ASR sent a Ready while we were idle
        self._timers = Timers()
        self.resyncs = self.collisions = self.resets = 0

    def send(self, message: bytes) -> None:
        self._queue.append(check_message(message))
        self._kick()

    def receive(self, data: bytes) -> list[bytes]:
        delivered: list[bytes] = []
        if data:
            self._timers.heard()
        at = 0
        while at < len(data):
            if self.phase is McuPhase.RECEIVING:  # the ASR's message: taken whole, not by byte
                at = self._on_data(data, at, delivered)
                continue
            if (
                self.phase is McuPhase.AWAIT_RESPONSE
                and not self._rx
                and len(data) - at >= SYNC_SIZE
                and data[at] == SyncKind.REQUEST_OR_RESPONSE
            ):  # a whole response: what its six bytes one by one would do
                self._rx += data[at : at + SYNC_SIZE]
                at += SYNC_SIZE
                self._on_response()
                continue
            byte = data[at]
            at += 1
            if self.phase is McuPhase.AWAIT_RESPONSE:
                self._on_response_byte(byte)
            elif byte == READY:
                self._on_ready()
        return delivered

    def poll(self, now: float) -> bool:
        """Act on timeouts; True when the MCU pulls the ASR's reset line (the caller resets it)."""
        self._timers.tick(now)
        reset = self._on_timeouts(now)
        self._timers.tick(now)  # what the timeouts did, they did now
        return reset

    def deadline(self) -> float | None:
        """The earliest time `poll` may act, or None while idle (no timeout runs): a caller
        need not poll before then. Valid after a `poll`; an event since only makes it early."""
        if self.phase is McuPhase.IDLE:
            return None
        reply = self._timers.heard_at + self.reply_timeout
        if self.phase is McuPhase.AWAIT_BOOT:
            return reply
        return min(reply, self._timers.moved_at + self.resync_timeout)

    def _on_timeouts(self, now: float) -> bool:
        stuck = now - self._timers.moved_at >= self.resync_timeout
        if self.phase is McuPhase.IDLE:
            self._timers.heard()  # silence only counts while we wait for the ASR
        elif now - self._timers.heard_at >= self.reply_timeout:
            self.resets += 1
            self._rx.clear()
            self._enter(McuPhase.AWAIT_BOOT)
            self._timers.heard()
            return True
        elif not stuck or self.phase is McuPhase.AWAIT_BOOT:
            pass
        elif self.phase is McuPhase.AWAIT_FINAL_READY:
            self._enter(McuPhase.IDLE)  # our data is out; a lost Ready changes nothing
            self._kick()
        else:
            self._resync()
        return False

    # -- events ---------------------------------------------------------------------------

    def _enter(self, phase: McuPhase) -> None:
        self.phase = phase
        self._timers.moved()

    def _kick(self) -> None:
        if self.phase is McuPhase.IDLE and (self._queue or self._attention):
            self._timers.heard()  # the ASR's silence counts from now, not from the last poll
            self._start()

    def _start(self) -> None:
        self._attention = False
        self._request = request(len(self._queue[0]) if self._queue else 0)
        self._tx += self._request.encode()
        self._rx.clear()
        self._enter(McuPhase.AWAIT_RESPONSE)

    def _resync(self) -> None:
        self.resyncs += 1
        self._start()

    def _on_ready(self) -> None:
        phase = self.phase
        if phase in (McuPhase.IDLE, McuPhase.AWAIT_BOOT):
            self._attention = True
            self._enter(McuPhase.IDLE)
            self._kick()
        elif phase is McuPhase.AWAIT_READY_TO_RESYNC:
            self._start()
        elif phase is McuPhase.AWAIT_READY_TO_ACK:
            ack = Sync(SyncKind.ACK, self._request.mcu_bytes, self._response.asr_bytes)
            self._tx += ack.encode()
            self._enter(McuPhase.AWAIT_READY_FOR_DATA)
        elif phase is McuPhase.AWAIT_READY_FOR_DATA:
            if self._request.mcu_bytes:
                self._tx += self._queue.popleft()
                self._enter(McuPhase.AWAIT_FINAL_READY)
            elif self._response.asr_bytes:
                self._enter(McuPhase.RECEIVING)
            else:
                self._enter(McuPhase.IDLE)
                self._kick()
        elif phase is McuPhase.AWAIT_FINAL_READY:
            self._enter(McuPhase.IDLE)
            self._kick()

    def _on_response_byte(self, byte: int) -> None:
        if not self._rx and byte != SyncKind.REQUEST_OR_RESPONSE:
            return  # a Ready from before the response, or noise: the response starts with 0x30
        self._rx.append(byte)
        if len(self._rx) == SYNC_SIZE:
            self._on_response()

    def _on_response(self) -> None:
        """Six bytes of the ASR's response are in."""
        try:
            response = Sync.decode(self._rx)
        except ProtocolError:
            self._resync()
            return
        self._rx.clear()
        if response.mcu_bytes != self._request.mcu_bytes:
            self._resync()  # the ASR answered another request than ours
        elif response.collision:
            self.collisions += 1
            self._enter(McuPhase.AWAIT_READY_TO_RESYNC)
        else:
            self._response = response
            self._enter(McuPhase.AWAIT_READY_TO_ACK)

    def _on_data(self, data: bytes, at: int, delivered: list[bytes]) -> int:
        """Take what is left of the ASR's message from `data[at:]`; returns where it ended."""
        end = at + self._response.asr_bytes - len(self._rx)
        self._rx += data[at:end]
        self._timers.moved()
        if len(self._rx) == self._response.asr_bytes:
            delivered.append(bytes(self._rx))
            self._rx.clear()
            self._enter(McuPhase.AWAIT_FINAL_READY)
        return min(end, len(data))
