"""Properties of the codecs and the stream decoder, with hypothesis.

Round trips for every value the protocol carries; generated captures (both wires of a sequence
of transactions, fed in random chunks) decode to exactly the messages sent; and corrupted
captures never raise, account for every byte, and decode every transaction after the damage.
"""

from __future__ import annotations

import contextlib
import random
from dataclasses import dataclass, field

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from rig.protocol import aflib
from rig.protocol.aflib import Message, MsgType, OtaInfo, OtaState, ProtocolError
from rig.protocol.afpro import READY, Sync, SyncKind
from rig.protocol.decoder import (
    ASR_TO_MCU,
    MCU_TO_ASR,
    MessageEvent,
    SkipEvent,
    StreamDecoder,
    event_bytes,
)

FAST = settings(max_examples=200, deadline=None)
STREAMS = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
R = bytes([READY])
BOTH = (MCU_TO_ASR, ASR_TO_MCU)
u8, u16, u32, u64 = (st.integers(0, 2**bits - 1) for bits in (8, 16, 32, 64))


def sized_binary(max_size: int) -> st.SearchStrategy[bytes]:
    """Bytes of a uniformly drawn length: long data phases are as likely as short ones."""
    return st.integers(0, max_size).flatmap(lambda n: st.binary(min_size=n, max_size=n))


# A valid sync inside data must not end the data phase. Padded with zeros before and one after,
# it can never be followed by what follows a real sync (Ready, 0x30 or 0x31), nor can a window
# starting in the bytes before it be: the decoder must keep it as data.
sync_in_data = st.builds(
    lambda kind, mcu, asr: bytes(6) + Sync(kind, mcu, asr).encode() + b"\0",
    st.sampled_from(list(SyncKind)),
    st.integers(0, 2**16 - 1),
    st.sampled_from([0, 20]),
)
values = st.lists(st.one_of(sized_binary(80), sync_in_data), max_size=4).map(b"".join)


REJECTS = (MsgType.UPDATE_REJECTED, MsgType.UPDATE_REJECTED_LEGACY)
CHANNELS = (1098, 1099)  # ASR → MCU, MCU → ASR: an UPDATE there carries an inner attribute
attr_ids = st.one_of(u16, st.sampled_from(CHANNELS))


@st.composite
def messages(draw: st.DrawFn) -> Message:
    """Any message as `decode` returns it: an UPDATE in a channel whose value holds an inner
    id is the tunnelled message (inner id, rest of the value, the channel)."""
    msg_type = draw(st.sampled_from(list(MsgType)))
    no_value = msg_type in (MsgType.GET, *REJECTS)
    value = b"" if no_value else draw(values)
    status = msg_type in (MsgType.UPDATE, *REJECTS)
    state, reason = (draw(u8), draw(u8)) if status else (None, None)
    request_id, attr_id = draw(u8), draw(attr_ids)
    if msg_type == MsgType.UPDATE and draw(st.booleans()):
        channel = draw(st.sampled_from(CHANNELS))
        return Message(msg_type, request_id, attr_id, value, state, reason, channel=channel)
    if msg_type == MsgType.UPDATE and attr_id in CHANNELS:
        value = value[:1]  # too short for an inner id: stays a message of the channel itself
    return Message(msg_type, request_id, attr_id, value, state, reason)


ota_infos = st.one_of(
    st.builds(OtaInfo.begin, u16, u32, u64),
    st.builds(OtaInfo.verify, st.binary(min_size=32, max_size=32)),
    st.builds(OtaInfo.apply, u64),
    st.builds(OtaInfo, st.sampled_from([OtaState.IDLE, OtaState.TRANSFER_END, OtaState.FAIL])),
    st.builds(OtaInfo.begin, u16, u32, u64).map(OtaInfo.decline),
)


# -- round trips ---------------------------------------------------------------------------------


@FAST
@given(messages())
def test_message_round_trip(msg: Message):
    raw = aflib.encode(msg)
    assert aflib.decode(raw) == msg
    # the wire view: a tunnelled message travels as its channel, its inner id before the value
    assert raw[4:6] == msg.wire_attr_id.to_bytes(2, "little")
    if msg.channel is not None:
        assert raw[-len(msg.wire_value) :] == msg.wire_value
        assert msg.wire_value == msg.attr_id.to_bytes(2, "little") + msg.value


@FAST
@given(u8, u16, st.sampled_from(CHANNELS), values, u8, u8)
def test_an_update_in_a_channel_is_read_as_the_attribute_inside(
    request_id: int, inner: int, channel: int, value: bytes, state: int, reason: int
):
    wire = Message(MsgType.UPDATE, request_id, channel, inner.to_bytes(2, "little") + value,
                   state, reason)  # fmt: skip
    msg = aflib.decode(aflib.encode(wire))
    assert (msg.attr_id, msg.value, msg.channel) == (inner, value, channel)
    assert (msg.wire_attr_id, msg.wire_value) == (channel, wire.value)
    assert aflib.encode(msg) == aflib.encode(wire)


@FAST
@given(st.binary(max_size=40))
def test_decode_accepts_only_canonical_bytes_and_refuses_the_rest_with_protocol_error(data: bytes):
    try:
        msg = aflib.decode(data)
    except ProtocolError:
        return
    assert aflib.encode(msg) == data


@FAST
@given(ota_infos)
def test_ota_info_round_trip(info: OtaInfo):
    assert OtaInfo.decode(info.encode()) == info


@FAST
@given(st.binary(max_size=40))
def test_ota_info_decode_refuses_garbage_with_protocol_error_only(data: bytes):
    with contextlib.suppress(ProtocolError):
        OtaInfo.decode(data)


@FAST
@given(u32, st.binary(max_size=300))
def test_transfer_and_offset_round_trip(offset: int, data: bytes):
    assert aflib.decode_transfer(aflib.encode_transfer(offset, data)) == (offset, data)
    assert aflib.decode_offset(aflib.encode_offset(offset)) == offset


@FAST
@given(st.sampled_from(list(SyncKind)), u16, u16)
def test_sync_round_trip(kind: SyncKind, mcu_bytes: int, asr_bytes: int):
    sync = Sync(kind, mcu_bytes, asr_bytes)
    assert Sync.decode(sync.encode()) == sync


# -- captures ------------------------------------------------------------------------------------


def req(n: int) -> bytes:
    return Sync(SyncKind.REQUEST_OR_RESPONSE, n, 0).encode()


def response(mcu: int, asr: int) -> bytes:
    return Sync(SyncKind.REQUEST_OR_RESPONSE, mcu, asr).encode()


def ack(mcu: int, asr: int) -> bytes:
    return Sync(SyncKind.ACK, mcu, asr).encode()


@dataclass
class Capture:
    """Both wires of a sequence of transactions, and where each transaction starts on each."""

    wires: dict[str, bytes] = field(default_factory=lambda: {MCU_TO_ASR: b"", ASR_TO_MCU: b""})
    starts: dict[str, list[int]] = field(default_factory=lambda: {MCU_TO_ASR: [], ASR_TO_MCU: []})
    sent: dict[str, list[bytes | None]] = field(
        default_factory=lambda: {MCU_TO_ASR: [], ASR_TO_MCU: []}
    )

    def add(self, mcu: bytes, asr: bytes, mcu_msg: bytes | None, asr_msg: bytes | None) -> None:
        for direction, wire, msg in ((MCU_TO_ASR, mcu, mcu_msg), (ASR_TO_MCU, asr, asr_msg)):
            self.starts[direction].append(len(self.wires[direction]))
            self.wires[direction] += wire
            self.sent[direction].append(msg)

    def messages(self, direction: str, first: int = 0, last: int | None = None) -> list[bytes]:
        return [m for m in self.sent[direction][first:last] if m is not None]


@st.composite
def captures(draw: st.DrawFn, min_size: int = 0) -> Capture:
    capture = Capture()
    shapes = ["mcu", "asr", "zero", "collision", "acked_collision", "lost_ack", "asr_gave_up"]
    for shape in draw(st.lists(st.sampled_from(shapes), min_size=min_size, max_size=10)):
        msg = aflib.encode(draw(messages()))
        n, other = len(msg), draw(st.integers(6, 300))
        if shape == "mcu":
            capture.add(req(n) + ack(n, 0) + msg, response(n, 0) + R + R + R, msg, None)
        elif shape == "asr":
            asr = R + response(0, n) + R + R + msg + R
            capture.add(req(0) + ack(0, n), asr, None, msg)
        elif shape == "zero":
            capture.add(req(0) + ack(0, 0), response(0, 0) + R + R, None, None)
        elif shape == "collision":  # the MCU re-syncs and wins; the ASR sends later
            mcu = req(n) + req(n) + ack(n, 0) + msg
            capture.add(mcu, response(n, other) + R + response(n, 0) + R + R + R, msg, None)
        elif shape == "acked_collision":  # an MCU that acks the collision and sends at once
            capture.add(req(n) + ack(n, other) + msg, response(n, other) + R + R + R, msg, None)
        elif shape == "lost_ack":  # lost before the tap; the MCU re-syncs
            asr = response(0, n) + R + response(0, n) + R + R + msg + R
            capture.add(req(0) + req(0) + ack(0, n), asr, None, msg)
        else:  # the ASR gave up waiting for the ack and asked again: a Ready that looks like it
            asr = response(0, n) + R + R + response(0, n) + R + R + msg + R
            capture.add(req(0) + req(0) + ack(0, n), asr, None, msg)
    return capture


def decode_in_chunks(wires: dict[str, bytes], rng: random.Random) -> dict[str, list]:
    """Feed both wires to one decoder in random-size pieces, the two wires interleaved."""
    decoder = StreamDecoder()
    pos = dict.fromkeys(wires, 0)
    events: dict[str, list] = {d: [] for d in wires}
    t = 0.0
    while any(pos[d] < len(w) for d, w in wires.items()):
        direction = rng.choice([d for d, w in wires.items() if pos[d] < len(w)])
        piece = wires[direction][pos[direction] : pos[direction] + rng.randint(1, 64)]
        pos[direction] += len(piece)
        t += 0.001
        events[direction] += decoder.feed(direction, piece, t)
    for event in decoder.flush(t):
        events[event.direction].append(event)
    for direction, wire in wires.items():  # every byte comes back in exactly one event
        assert b"".join(event_bytes(e) for e in events[direction]) == wire
    return events


def decoded(events: list) -> list[bytes]:
    return [e.raw for e in events if isinstance(e, MessageEvent)]


@STREAMS
@given(captures(), st.randoms(use_true_random=False))
def test_a_clean_capture_decodes_to_exactly_the_messages_sent(capture: Capture, rng: random.Random):
    events = decode_in_chunks(capture.wires, rng)
    for direction in (MCU_TO_ASR, ASR_TO_MCU):
        assert decoded(events[direction]) == capture.messages(direction)
        assert not [e for e in events[direction] if isinstance(e, SkipEvent)]


@st.composite
def corruptions(draw: st.DrawFn) -> tuple[Capture, str, bytes, int, int]:
    """A capture, the wire hit, that wire corrupted, and the damaged span [a, b) of the original."""
    capture = draw(captures(min_size=2))
    direction = draw(st.sampled_from([MCU_TO_ASR, ASR_TO_MCU]))
    wire = capture.wires[direction]
    p = draw(st.integers(0, len(wire) - 1))
    kind = draw(st.sampled_from(["insert", "flip", "drop", "truncate", "cut"]))
    if kind == "insert":
        return (
            capture,
            direction,
            wire[:p] + draw(st.binary(min_size=1, max_size=24)) + wire[p:],
            p,
            p,
        )
    if kind == "flip":
        bit = draw(st.integers(0, 7))
        return capture, direction, wire[:p] + bytes([wire[p] ^ 1 << bit]) + wire[p + 1 :], p, p + 1
    if kind == "drop":
        b = min(len(wire), p + draw(st.integers(1, 24)))
    elif kind == "truncate":  # the frame loses its end; the next transaction follows at once
        b = min([s for s in capture.starts[direction] if s > p] + [len(wire)])
    else:  # the capture stops
        b = len(wire)
    return capture, direction, wire[:p] + wire[b:], p, b


@STREAMS
@given(corruptions(), st.randoms(use_true_random=False))
def test_a_corrupted_capture_never_raises_and_recovers_after_the_damage(case, rng: random.Random):
    capture, hit, corrupted, a, b = case
    events = decode_in_chunks({**capture.wires, hit: corrupted}, rng)
    other = ASR_TO_MCU if hit == MCU_TO_ASR else MCU_TO_ASR
    assert decoded(events[other]) == capture.messages(other)

    starts = capture.starts[hit]
    ends = [*starts[1:], len(capture.wires[hit])]
    before = sum(1 for end in ends if end <= a)  # transactions wholly before the damage
    head = capture.messages(hit, 0, before)
    got = decoded(events[hit])
    assert got[: len(head)] == head
    # the first transaction after the damage may be lost to a false sync across its start
    after = next((i for i, s in enumerate(starts) if s >= b), len(starts))
    tail = capture.messages(hit, after + 1)
    assert got[len(got) - len(tail) :] == tail


@st.composite
def truncated_data_phases(draw: st.DrawFn) -> tuple[Capture, str, int, int, bytes]:
    """A capture where one data phase (not the last transaction's) loses 16 bytes or more."""
    capture = draw(captures(min_size=2))
    phases = [
        (direction, i)
        for direction in BOTH
        for i, msg in enumerate(capture.sent[direction][:-1])
        if msg is not None and len(msg) >= 17
    ]
    assume(phases)
    direction, i = draw(st.sampled_from(phases))
    msg, wire = capture.sent[direction][i], capture.wires[direction]
    end = capture.starts[direction][i + 1]
    start = end - len(msg) - (direction == ASR_TO_MCU)  # the ASR ends its data with a Ready
    keep = draw(st.integers(0, len(msg) - 16))
    return capture, direction, i, keep, wire[: start + keep] + wire[end:]


@STREAMS
@given(truncated_data_phases(), st.randoms(use_true_random=False))
def test_a_truncated_data_phase_ends_where_the_next_transaction_starts(case, rng: random.Random):
    capture, hit, lost, kept, corrupted = case
    events = decode_in_chunks({**capture.wires, hit: corrupted}, rng)
    expected = capture.messages(hit, 0, lost) + capture.messages(hit, lost + 1)
    assert decoded(events[hit]) == expected
    skips = [e for e in events[hit] if isinstance(e, SkipEvent)]
    if kept:  # what arrived of the cut-short phase is reported, and nothing else is lost
        assert any("truncated data phase" in e.why for e in skips)
