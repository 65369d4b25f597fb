"""McuTransport and AsrTransport joined by two byte queues: many messages both ways, collisions,
corrupted syncs, random chunking. Every message must arrive exactly once and in order, and the
sniffer reading the same wires must see exactly what was delivered."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import pytest

from rig.protocol import aflib
from rig.protocol.aflib import ProtocolError
from rig.protocol.afpro import READY, SYNC_SIZE, AsrTransport, McuTransport, Sync
from rig.protocol.decoder import ASR_TO_MCU, MCU_TO_ASR, MessageEvent, StreamDecoder


def random_message(rng: random.Random) -> bytes:
    """Framing only: what a message says does not matter to the transports, its size does. The
    chunk is a plain SET of 1302 (up to 261 bytes); the offset is tunnelled as afLib sends it."""
    kind = rng.choice(["chunk", "offset", "get", "blob"])
    if kind == "chunk":
        chunk = rng.randbytes(rng.randint(0, aflib.max_chunk()))
        value = aflib.encode_transfer(rng.randint(0, 2**20), chunk)
        return aflib.encode(aflib.Message(aflib.MsgType.SET, rng.randint(1, 255), 1302, value))
    if kind == "offset":
        return aflib.encode(aflib.report(rng.randint(0, 255), 1302, aflib.encode_offset(249)))
    if kind == "get":
        return aflib.encode(aflib.Message(aflib.MsgType.GET, rng.randint(0, 255), 1206))
    return aflib.encode(
        aflib.Message(aflib.MsgType.SET, 0, rng.randint(1, 1023), rng.randbytes(40))
    )


def is_sync(data: bytes) -> bool:
    try:
        Sync.decode(data)
    except ProtocolError:
        return False
    return True


@dataclass
class Link:
    """Two endpoints, two wires, a fake clock; optionally a bit flipped in some syncs."""

    rng: random.Random
    flip_rate: float = 0.0
    mcu: McuTransport = field(default_factory=McuTransport)
    asr: AsrTransport = field(default_factory=AsrTransport)
    now: float = 0.0
    wires: dict[str, bytearray] = field(
        default_factory=lambda: {MCU_TO_ASR: bytearray(), ASR_TO_MCU: bytearray()}
    )
    tap: dict[str, bytearray] = field(
        default_factory=lambda: {MCU_TO_ASR: bytearray(), ASR_TO_MCU: bytearray()}
    )
    at_asr: list[bytes] = field(default_factory=list)
    at_mcu: list[bytes] = field(default_factory=list)
    flips: int = 0

    def _maybe_flip(self, out: bytes, sync_at: int) -> bytes:
        if self.rng.random() >= self.flip_rate:
            return out
        bit = self.rng.randrange(SYNC_SIZE * 8)
        self.flips += 1
        out = bytearray(out)
        out[sync_at + bit // 8] ^= 1 << (bit % 8)
        return bytes(out)

    def _collect(self) -> None:
        out = self.mcu.outgoing()
        if len(out) == SYNC_SIZE and is_sync(out):  # the MCU writes each sync on its own
            out = self._maybe_flip(out, 0)
        self.wires[MCU_TO_ASR] += out
        out = self.asr.outgoing()
        body = out.lstrip(bytes([READY]))  # attention Readies, then response + Ready
        if len(body) == SYNC_SIZE + 1 and is_sync(body[:SYNC_SIZE]):
            out = self._maybe_flip(out, len(out) - len(body))
        self.wires[ASR_TO_MCU] += out

    def step(self) -> bool:
        """Move a random-size piece of each wire; False when both wires are quiet."""
        self._collect()
        if not any(self.wires.values()):
            return False
        for direction, wire in self.wires.items():
            if wire:
                piece = bytes(wire[: self.rng.randint(1, len(wire))])
                del wire[: len(piece)]
                self.tap[direction] += piece
                if direction == MCU_TO_ASR:
                    self.at_asr += self.asr.receive(piece)
                else:
                    self.at_mcu += self.mcu.receive(piece)
        self.mcu.poll(self.now)
        self.asr.poll(self.now)
        return True

    def settle(self) -> None:
        """Run until quiet, letting fake time pass while the endpoints wait on a timeout."""
        for _ in range(100_000):
            if not self.step():
                if self.idle():
                    return
                self.now += 0.25
                assert not self.mcu.poll(self.now), "the MCU gave up on the ASR"
                self.asr.poll(self.now)
        pytest.fail("the link never settled")

    def idle(self) -> bool:
        phases = (self.mcu.phase.value, self.asr.phase.value)
        return phases == ("idle", "idle") and not (self.mcu.pending or self.asr.pending)


def exchange(seed: int, flip_rate: float, count: int = 60) -> Link:
    rng = random.Random(seed)
    link = Link(rng, flip_rate)
    sent_by_mcu: list[bytes] = []
    sent_by_asr: list[bytes] = []
    while len(sent_by_mcu) < count or len(sent_by_asr) < count:
        who = rng.choice(["mcu", "asr", "both", "both", "wait"])
        if who in ("mcu", "both") and len(sent_by_mcu) < count:
            sent_by_mcu.append(random_message(rng))
            link.mcu.send(sent_by_mcu[-1])
        if who in ("asr", "both") and len(sent_by_asr) < count:
            sent_by_asr.append(random_message(rng))
            link.asr.send(sent_by_asr[-1])
        for _ in range(rng.randint(0, 12)):
            link.step()
    link.settle()
    assert link.at_asr == sent_by_mcu
    assert link.at_mcu == sent_by_asr
    assert link.mcu.resets == 0
    return link


@pytest.mark.parametrize("seed", range(8))
def test_every_message_arrives_once_and_in_order_despite_collisions(seed: int):
    link = exchange(seed, flip_rate=0.0)
    assert link.mcu.collisions > 0
    assert link.mcu.resyncs == 0


@pytest.mark.parametrize("seed", range(8))
def test_every_message_arrives_once_and_in_order_despite_flipped_sync_bits(seed: int):
    link = exchange(100 + seed, flip_rate=0.15)
    assert link.flips > 5
    assert link.mcu.resyncs > 0 and link.asr.ignored_syncs > 0


@pytest.mark.parametrize("seed", range(4))
def test_the_sniffer_on_the_wires_sees_exactly_what_was_delivered(seed: int):
    link = exchange(200 + seed, flip_rate=0.1)
    rng = random.Random(seed)
    decoder = StreamDecoder()
    events = []
    for direction, wire in link.tap.items():
        pos = 0
        while pos < len(wire):
            piece = wire[pos : pos + rng.randint(1, 300)]
            events += decoder.feed(direction, piece, pos)
            pos += len(piece)
    events += decoder.flush(float(len(link.tap[MCU_TO_ASR])))

    def seen(direction: str) -> list[bytes]:
        return [e.raw for e in events if isinstance(e, MessageEvent) and e.direction == direction]

    assert seen(MCU_TO_ASR) == link.at_asr
    assert seen(ASR_TO_MCU) == link.at_mcu
