"""afPro over UART (DESIGN §3): the sync message, the Ready byte and what both endpoints share."""

from __future__ import annotations

import functools
import struct
from collections import deque
from dataclasses import dataclass
from enum import IntEnum

from rig.protocol.aflib import ProtocolError, hexdump

READY = 0x32
SYNC_SIZE = 6
REPLY_TIMEOUT = 10.0  # DESIGN: no ASR reply within 10 s -> the MCU resets the ASR
RESYNC_TIMEOUT = 1.0  # afLib's wait for a byte; a stuck transaction then restarts with a sync
# The ASR gives a transaction up (and asks again with a Ready) only well after the MCU would have
# restarted it: a Ready sent mid-transaction would be taken for the one that answers the ack.
GIVE_UP_TIMEOUT = 2 * RESYNC_TIMEOUT
MAX_COUNT = 0xFFFF


class SyncKind(IntEnum):
    REQUEST_OR_RESPONSE = 0x30
    ACK = 0x31


SYNC_KINDS = frozenset(SyncKind)


@dataclass(frozen=True)
class Sync:
    """A sync message: who will send how many bytes (whole afLib messages, length included)."""

    kind: SyncKind
    mcu_bytes: int
    asr_bytes: int

    @property
    def collision(self) -> bool:
        return self.mcu_bytes > 0 and self.asr_bytes > 0

    def encode(self) -> bytes:
        return _encode(self.kind, self.mcu_bytes, self.asr_bytes)

    @classmethod
    def decode(cls, data: bytes) -> Sync:
        data = bytes(data)
        if cls is Sync:
            return _decode(data)  # a link repeats the same few syncs for every chunk
        return cls._decode(data)

    @classmethod
    def _decode(cls, data: bytes) -> Sync:
        if len(data) != SYNC_SIZE:
            raise ProtocolError(f"a sync is 6 bytes, got {len(data)}: {hexdump(data)}")
        if data[0] not in SYNC_KINDS:
            raise ProtocolError(f"unknown sync kind 0x{data[0]:02x}: {hexdump(data)}")
        if sum(data[:5]) & 0xFF != data[5]:
            raise ProtocolError(
                f"bad sync checksum (expected {sum(data[:5]) & 0xFF:02x}): {hexdump(data)}"
            )
        kind, mcu_bytes, asr_bytes = struct.unpack_from("<BHH", data)
        return cls(SyncKind(kind), mcu_bytes, asr_bytes)


@functools.lru_cache(maxsize=256)
def _encode(kind: SyncKind, mcu_bytes: int, asr_bytes: int) -> bytes:
    for count in (mcu_bytes, asr_bytes):
        if not 0 <= count <= MAX_COUNT:
            raise ProtocolError(f"sync count {count} does not fit in 16 bits")
    head = struct.pack("<BHH", kind, mcu_bytes, asr_bytes)
    return head + bytes([sum(head) & 0xFF])


@functools.lru_cache(maxsize=256)
def _decode(data: bytes) -> Sync:
    """A good sync's decoding (a Sync is immutable: one instance serves every copy); a bad one
    raises, and errors are not cached."""
    return Sync._decode(data)


def request(mcu_bytes: int) -> Sync:
    """The MCU's opening sync: how much it will send; the ASR fills in its own count."""
    return Sync(SyncKind.REQUEST_OR_RESPONSE, mcu_bytes, 0)


ZERO_SYNC = request(0).encode()  # 30 00 00 00 00 30


def check_message(message: bytes) -> bytes:
    if not 0 < len(message) <= MAX_COUNT:
        raise ProtocolError(f"cannot send a message of {len(message)} bytes over afPro")
    return bytes(message)


def drop_to_sync_start(window: bytearray) -> None:
    """Discard leading bytes that cannot start a sync."""
    while window and window[0] not in SYNC_KINDS:
        del window[0]


class Timers:
    """Lazy timers: an event marks progress, the next `poll(now)` turns the mark into a time."""

    def __init__(self) -> None:
        self._heard = self._moved = True
        self.heard_at = self.moved_at = 0.0

    def heard(self) -> None:
        self._heard = True

    def moved(self) -> None:
        self._moved = True

    def tick(self, now: float) -> None:
        if self._heard:
            self.heard_at, self._heard = now, False
        if self._moved:
            self.moved_at, self._moved = now, False


class Outbox:
    """What both ends of the link share: messages waiting to be sent, bytes due on the wire."""

    _queue: deque[bytes]
    _tx: bytearray

    @property
    def pending(self) -> int:
        """Messages sent to this endpoint that are not on the wire yet."""
        return len(self._queue)

    def outgoing(self) -> bytes:
        if not self._tx:
            return b""
        out, self._tx = bytes(self._tx), bytearray()
        return out
