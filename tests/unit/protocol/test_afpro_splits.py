"""afPro endpoints are byte-stream machines: how the bytes arrive (one read or one byte at a
time) never changes what they do. The endpoints take whole syncs and whole messages in one step
when a read holds them; this checks that against the byte-by-byte path, noise included."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import pytest

from rig.protocol.afpro import AsrTransport, McuTransport

Transport = AsrTransport | McuTransport
STRAYS = (0x30, 0x31, 0x32, 0x00, 0xFF)  # sync kinds, Ready, and two others
Event = tuple[str, object]  # ("send", message), ("receive", bytes as one read), ("poll", now)


@dataclass
class Recording:
    """What each end was given, in order, in one exchange between an MCU and an ASR."""

    mcu: list[Event] = field(default_factory=list)
    asr: list[Event] = field(default_factory=list)


def message(rng: random.Random) -> bytes:
    body = bytes(rng.randrange(256) for _ in range(rng.randint(4, 40)))
    return len(body).to_bytes(2, "little") + body


def record(seed: int, rounds: int = 1000, noise: float = 0.1) -> Recording:
    """Both ends talking, messages queued at random moments, bytes handed over in reads of
    random length; now and then a byte flipped on the line (bad syncs, cut messages), which
    the ends' timeouts recover from (a clock of 0.1 s a round)."""
    rng = random.Random(seed)
    ends: dict[str, Transport] = {"mcu": McuTransport(), "asr": AsrTransport()}
    events = Recording()
    lines = {"mcu": bytearray(), "asr": bytearray()}  # bytes on their way to that end
    for round_ in range(rounds):
        for name, end in ends.items():
            now = round_ / 10
            getattr(events, name).append(("poll", now))
            end.poll(now)
            if rng.random() < 0.02:
                sent = message(rng)
                end.send(sent)
                getattr(events, name).append(("send", sent))
        lines["asr"] += ends["mcu"].outgoing()
        lines["mcu"] += ends["asr"].outgoing()
        for name, end in ends.items():
            line = lines[name]
            take = rng.randint(0, len(line))
            read = bytearray(line[:take])
            del line[:take]
            if read and rng.random() < noise:  # a bit flipped, or a stray byte
                if rng.random() < 0.5:
                    read[rng.randrange(len(read))] ^= 1 << rng.randrange(8)
                else:
                    read.insert(rng.randrange(len(read)), rng.choice(STRAYS))
            getattr(events, name).append(("receive", bytes(read)))
            end.receive(bytes(read))
    return events


def split(events: list[Event], how: str, rng: random.Random) -> list[Event]:
    """The same bytes in other reads: one byte each, or cut at random places."""
    out: list[Event] = []
    for kind, data in events:
        if kind != "receive" or how == "as recorded":
            out.append((kind, data))
        elif how == "byte by byte":
            assert isinstance(data, bytes)
            out += [("receive", data[i : i + 1]) for i in range(len(data))]
        else:
            assert isinstance(data, bytes)
            cuts = sorted(rng.sample(range(1, len(data)), min(3, len(data) - 1))) if data else []
            for start, end in zip([0, *cuts], [*cuts, len(data)], strict=True):
                out.append(("receive", data[start:end]))
    return out


def replay(make: type[Transport], events: list[Event]) -> dict[str, object]:
    end = make()
    written, delivered = bytearray(), []
    for kind, data in events:
        if kind == "send":
            end.send(data)  # type: ignore[arg-type]
        elif kind == "poll":
            end.poll(data)  # type: ignore[arg-type]
        else:
            delivered += end.receive(data)  # type: ignore[arg-type]
        written += end.outgoing()
    names = ("ignored_syncs", "resyncs", "collisions", "resets")
    counters = {name: getattr(end, name) for name in names if hasattr(end, name)}
    return {"written": bytes(written), "delivered": delivered, "phase": end.phase, **counters}


SEEDS = range(12)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("how", ["byte by byte", "random cuts"])
def test_reads_of_any_size_give_the_same_bytes_messages_and_state(seed: int, how: str) -> None:
    recording = record(seed)
    rng = random.Random(seed)
    for make, events in ((McuTransport, recording.mcu), (AsrTransport, recording.asr)):
        whole = replay(make, split(events, "as recorded", rng))
        assert replay(make, split(events, how, rng)) == whole, make.__name__


def test_the_recordings_carry_messages_both_ways_and_bad_syncs() -> None:
    """The exchanges above are worth comparing: messages got through, and noise made both ends
    meet bad syncs (the paths where a whole read and single bytes could part ways)."""
    mcu = [replay(McuTransport, record(seed).mcu) for seed in SEEDS]
    asr = [replay(AsrTransport, record(seed).asr) for seed in SEEDS]
    assert sum(len(r["delivered"]) for r in mcu) > 30  # type: ignore[arg-type]
    assert sum(len(r["delivered"]) for r in asr) > 30  # type: ignore[arg-type]
    assert sum(r["ignored_syncs"] for r in asr) > 0  # type: ignore[misc]
    assert sum(r["resyncs"] for r in mcu) > 0  # type: ignore[misc]
