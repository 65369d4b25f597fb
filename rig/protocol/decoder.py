"""The streaming decoder a sniffer feeds: raw ASR⇆MCU UART bytes in, protocol events out.

A sniffer sees the two wires separately (one port per direction), so each direction has its own
small state machine and needs nothing from the other:

- MCU → ASR carries sync requests, acks and the MCU's data, whose length the ack gives;
- ASR → MCU carries Ready bytes, sync responses and the ASR's data, whose length the response
  gives (none on a collision), after the two Readies that frame the MCU's ack.

It never raises on bytes: anything it cannot place is reported as a SkipEvent, and it
resynchronises on the next valid sync. Every byte fed comes back in exactly one event.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum
from typing import Literal

from rig.protocol.aflib import Message, ProtocolError, decode, describe, hexdump
from rig.protocol.afpro import READY, SYNC_SIZE, Sync, SyncKind

Direction = Literal["mcu_to_asr", "asr_to_mcu"]
MCU_TO_ASR: Direction = "mcu_to_asr"
ASR_TO_MCU: Direction = "asr_to_mcu"


@dataclass(frozen=True)
class SyncEvent:
    t: float
    direction: Direction
    sync: Sync


@dataclass(frozen=True)
class ReadyEvent:
    t: float
    direction: Direction


@dataclass(frozen=True)
class MessageEvent:
    t: float
    direction: Direction
    message: Message
    raw: bytes


@dataclass(frozen=True)
class SkipEvent:
    t: float
    direction: Direction
    data: bytes
    why: str


Event = SyncEvent | ReadyEvent | MessageEvent | SkipEvent


def event_bytes(event: Event) -> bytes:
    """The wire bytes an event stands for (the decoder accounts for every byte it was fed)."""
    if isinstance(event, SyncEvent):
        return event.sync.encode()
    if isinstance(event, ReadyEvent):
        return bytes([READY])
    return event.raw if isinstance(event, MessageEvent) else event.data


def describe_event(event: Event) -> str:
    """One log line, e.g. '12.500 asr_to_mcu SET 1302 offset 0 +249 bytes (req 3)'."""
    head = f"{event.t:.3f} {event.direction}"
    if isinstance(event, SyncEvent):
        sync = event.sync
        kind = "REQUEST" if event.direction == MCU_TO_ASR else "RESPONSE"
        kind = "ACK" if sync.kind is SyncKind.ACK else kind
        collision = " (collision)" if sync.collision and kind == "RESPONSE" else ""
        return f"{head} {kind} mcu={sync.mcu_bytes} asr={sync.asr_bytes}{collision}"
    if isinstance(event, ReadyEvent):
        return f"{head} READY"
    if isinstance(event, MessageEvent):
        return f"{head} {describe(event.message)}"
    return f"{head} SKIP {len(event.data)} bytes ({event.why}): {hexdump(event.data, 16)}"


_REQ, _ACK = SyncKind.REQUEST_OR_RESPONSE, SyncKind.ACK


def _valid_sync(window: bytes | bytearray) -> bool:
    return window[0] in (_REQ, _ACK) and sum(window[:5]) & 0xFF == window[5]


class _Mode(Enum):
    HUNT = "hunt"  # between frames: syncs, Readies, or garbage to skip
    READIES = "readies"  # after an ASR response that announces data: two Readies, then data
    DATA = "data"  # counting a data phase


class _Stream:
    """One direction's decoder. Bytes wait in `_buf` until they can be placed in an event."""

    def __init__(self, direction: Direction) -> None:
        self.direction = direction
        self.asr = direction == ASR_TO_MCU
        self.sync_kinds = (_REQ,) if self.asr else (_REQ, _ACK)
        self._window = SYNC_SIZE + (2 if self.asr else 1)  # a sync and what must follow it
        self._buf = bytearray()
        self._data = bytearray()
        self._garbage = bytearray()
        self._why: list[str] = []
        self._pending_why = ""  # why the bytes now being hunted were not a message
        self._mode = _Mode.HUNT
        self._expect = 0
        self._readies = 0

    def feed(self, data: bytes, t: float) -> list[Event]:
        out: list[Event] = []
        self._buf += data
        step = {_Mode.HUNT: self._hunt, _Mode.READIES: self._readies_step, _Mode.DATA: self._count}
        while step[self._mode](t, out):
            pass
        self._flush_garbage(t, out)
        return out

    def flush(self, t: float) -> list[Event]:
        out: list[Event] = []
        self._flush_garbage(t, out)
        leftover = bytes(self._data + self._buf)
        if leftover:
            why = "truncated data phase" if self._mode is _Mode.DATA else "incomplete frame"
            out.append(SkipEvent(t, self.direction, leftover, why + " at end of capture"))
        self._buf.clear()
        self._data.clear()
        self._mode, self._pending_why = _Mode.HUNT, ""
        return out

    # -- emitting ---------------------------------------------------------------------------

    def _skip(self, byte: int, why: str) -> None:
        self._garbage.append(byte)
        for reason in (self._pending_why, why):
            if reason and reason not in self._why:
                self._why.append(reason)

    def _flush_garbage(self, t: float, out: list[Event]) -> None:
        if self._garbage:
            out.append(SkipEvent(t, self.direction, bytes(self._garbage), "; ".join(self._why)))
            self._garbage.clear()
            self._why.clear()

    def _emit(self, t: float, out: list[Event], event: Event) -> None:
        self._flush_garbage(t, out)  # keep events in wire order
        self._pending_why = ""
        out.append(event)

    # -- modes: each step places some bytes and returns False when it needs more ----------------

    def _hunt(self, t: float, out: list[Event]) -> bool:
        buf = self._buf
        if not buf:
            return False
        if self.asr and buf[0] == READY:
            self._emit(t, out, ReadyEvent(t, self.direction))
            del buf[0]
            return True
        if buf[0] not in self.sync_kinds:
            self._skip(buf[0], "not a sync" + (" or Ready" if self.asr else ""))
            del buf[0]
            return True
        if len(buf) < SYNC_SIZE:
            return False
        if not _valid_sync(buf):
            self._skip(buf[0], f"bad sync checksum ({hexdump(buf[:SYNC_SIZE])})")
            del buf[0]  # a real sync may start inside the bad one
            return True
        sync = Sync.decode(buf[:SYNC_SIZE])
        del buf[:SYNC_SIZE]
        self._emit(t, out, SyncEvent(t, self.direction, sync))
        if not self.asr and sync.kind is SyncKind.ACK and sync.mcu_bytes:
            self._start_data(sync.mcu_bytes)
        elif self.asr and sync.asr_bytes and not sync.mcu_bytes:
            self._mode, self._readies, self._expect = _Mode.READIES, 2, sync.asr_bytes
        return True

    def _readies_step(self, t: float, out: list[Event]) -> bool:
        if not self._buf:
            return False
        if self._buf[0] != READY:  # the MCU never acked: the ASR is answering a new sync
            self._mode = _Mode.HUNT
            return True
        del self._buf[0]
        self._emit(t, out, ReadyEvent(t, self.direction))
        self._readies -= 1
        if not self._readies:
            self._start_data(self._expect)
        return True

    def _start_data(self, count: int) -> None:
        self._mode, self._expect = _Mode.DATA, count
        self._data.clear()

    def _count(self, t: float, out: list[Event]) -> bool:
        data, window = self._data, self._window
        if self.asr and not data and self._buf[:1] == bytes([READY]) and self._extra_ready():
            del self._buf[0]  # the ASR repeats its Ready while it waits: not the data yet
            self._emit(t, out, ReadyEvent(t, self.direction))
            return True
        for i, byte in enumerate(self._buf):
            data.append(byte)
            start = len(data) - window
            if start >= 0 and data[start] == _REQ and self._next_transaction_starts(data[start:]):
                partial, tail = bytes(data[:start]), data[start:]
                self._buf[: i + 1] = tail  # decode the sync (and what follows it) again
                data.clear()
                self._mode = _Mode.HUNT
                if partial:
                    why = f"truncated data phase: {len(partial)} of {self._expect} bytes"
                    self._emit(t, out, SkipEvent(t, self.direction, partial, why))
                return True
            if len(data) == self._expect:
                del self._buf[: i + 1]
                raw = bytes(data)
                data.clear()
                self._mode = _Mode.HUNT
                try:
                    self._emit(t, out, MessageEvent(t, self.direction, decode(raw), raw))
                except ProtocolError as err:
                    self._undecodable(raw, str(err))
                return True
        self._buf.clear()
        return False

    def _extra_ready(self) -> bool:
        """A Ready where the ASR's data should start is one more Ready, unless the data's own
        first byte (the low byte of its length field) is 0x32 too."""
        return self._expect >= 2 and (self._expect - 2) & 0xFF != READY

    def _undecodable(self, raw: bytes, err: str) -> None:
        """Not a message: decode its bytes again as if no data phase had begun.

        A data phase that decodes to nothing was most likely never one, or was cut short (a
        Ready taken for the one after the ack, a lost ack, a reset, dropped bytes): the next
        transaction may start anywhere inside it, even in its last bytes."""
        self._buf[0:0] = raw
        self._pending_why = f"undecodable message: {err}"

    def _next_transaction_starts(self, window: bytearray) -> bool:
        """Whether a data phase ends in a sync plus the bytes that must follow that sync.

        Data may hold any bytes, and a bare valid sync turns up about once per 32-64 kB of
        random data. What follows a sync is fixed, though: the ASR sends a Ready after its
        response, then the Ready that answers the ack or a new response; the MCU's request
        (asr_bytes 0) is followed by its ack or a new request. Requiring that makes a false cut
        ~2^-31 rare (ASR) or ~2^-39 (MCU) per byte of data.
        """
        if not _valid_sync(window):
            return False
        if self.asr:
            return window[6] == READY and window[7] in (READY, _REQ)
        return window[3] == window[4] == 0 and window[6] in (_REQ, _ACK)


class StreamDecoder:
    """Both directions of one ASR⇆MCU UART; feed bytes as the sniffer sees them."""

    def __init__(self) -> None:
        self._streams = {d: _Stream(d) for d in (MCU_TO_ASR, ASR_TO_MCU)}

    def feed(self, direction: Direction, data: bytes, t: float) -> list[Event]:
        """Bytes seen on one wire at time `t`; returns the events they complete."""
        if direction not in self._streams:
            raise ValueError(f"direction {direction!r} is neither {MCU_TO_ASR} nor {ASR_TO_MCU}")
        return self._streams[direction].feed(bytes(data), t)

    def flush(self, t: float) -> list[Event]:
        """End of capture: whatever is still undecided comes back as skipped."""
        return [e for stream in self._streams.values() for e in stream.flush(t)]


def replay(records: Iterable[tuple[float, Direction, bytes]]) -> list[Event]:
    """A recorded capture's `(t, direction, bytes)` records decoded as a live sniffer would have
    decoded them, flushed at the last record's time."""
    decoder, events, last = StreamDecoder(), [], 0.0
    for t, direction, data in records:
        events += decoder.feed(direction, data, t)
        last = t
    return events + decoder.flush(last)
