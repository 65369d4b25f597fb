"""A decoded ASR⇆MCU handoff, and assertions about it that read like the protocol.

Built from the sniffer's events (rig.protocol.decoder), so it is the wire's testimony: what the ASR
offered, which chunks crossed, what hash the MCU computed, what it applied and reported.
A failed assertion names the step of the handoff that broke and shows the messages around it.
The steps are afLib's (af_mcu_ota.h, generic_mcu.c): 1 BEGIN from the ASR, 2 the MCU echoes it,
3 chunks and next offsets until 0xFFFFFFFF, 4 VERIFY with the MCU's SHA-256, 5 APPLY from the
ASR, 6 the MCU echoes APPLY as IDLE and SETs its version attribute 2000 + type. An MCU numbers
its own requests, so messages pair by attribute and state, never by request id.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace

from rig.errors import RigError
from rig.protocol import aflib
from rig.protocol.aflib import MsgType, OtaInfo, OtaState
from rig.protocol.decoder import (
    ASR_TO_MCU,
    MCU_TO_ASR,
    Event,
    MessageEvent,
    SkipEvent,
    describe_event,
)

CONTEXT = 4  # messages shown on each side of the one that broke a step
CLOCK_SLACK_S = 0.5  # how far the two sniffer ports' timestamps may disagree


class HandoffError(RigError, AssertionError):
    """The handoff on the wire is not what the assertion expected."""


@dataclass(frozen=True)
class Chunk:
    t: float
    offset: int
    data: bytes
    # The message it came in: several share one `t` when a sniffer read returns a backlog.
    event: MessageEvent | None = field(default=None, compare=False, repr=False)


@dataclass
class Transcript:
    """Everything the sniffer decoded during a test."""

    events: list[Event] = field(default_factory=list)

    @property
    def messages(self) -> list[MessageEvent]:
        return [e for e in self.events if isinstance(e, MessageEvent)]

    @property
    def skipped(self) -> list[SkipEvent]:
        return [e for e in self.events if isinstance(e, SkipEvent)]

    def ota_infos(self, direction: str | None = None) -> list[tuple[MessageEvent, OtaInfo]]:
        """Every 1301 value that crossed, decoded, with its message."""
        found = []
        for event in self.messages:
            wanted = direction is None or event.direction == direction
            if wanted and event.message.attr_id == aflib.AF_MCU_OTA_INFO and event.message.value:
                try:
                    found.append((event, OtaInfo.decode(event.message.value)))
                except aflib.ProtocolError:
                    continue  # a device's malformed value: text() shows it, queries skip it
        return found

    @property
    def states(self) -> list[str]:
        """OTA states in wire order, e.g. ['TRANSFER_BEGIN', 'TRANSFER_BEGIN', 'APPLY']."""
        return [info.state.name for _, info in self.ota_infos()]

    @property
    def chunks(self) -> list[Chunk]:
        """Every chunk of 1302 the ASR sent, retries included."""
        chunks = []
        for event in self.messages:
            m = event.message
            if (
                event.direction == ASR_TO_MCU
                and m.attr_id == aflib.AF_MCU_OTA_TRANSFER
                and m.type in (MsgType.UPDATE, MsgType.SET)
            ):
                try:
                    offset, data = aflib.decode_transfer(m.value)
                except aflib.ProtocolError:
                    continue  # shorter than its offset: not a chunk (text() shows it)
                chunks.append(Chunk(event.t, offset, data, event))
        return chunks

    @property
    def next_offsets(self) -> list[int]:
        """The offsets the MCU asked for, in order (0xFFFFFFFF: stop)."""
        return [
            aflib.decode_offset(e.message.value)
            for e in self.messages
            if e.direction == MCU_TO_ASR
            and e.message.attr_id == aflib.AF_MCU_OTA_TRANSFER
            and len(e.message.value) == 4
        ]

    @property
    def retries(self) -> int:
        """Chunks sent again for an offset already sent."""
        seen: set[int] = set()
        again = 0
        for chunk in self.chunks:
            again += chunk.offset in seen
            seen.add(chunk.offset)
        return again

    def version_written(self, image_type: int, version_id: int) -> MessageEvent | None:
        """Step 6 on the wire: the MCU's write of `version_id` to 2000 + type after its echo
        of APPLY (IDLE with that version; after its VERIFY when it sent no echo), or None."""
        writes = self._version_writes(image_type, version_id)
        return next((e for e in writes if aflib.version_of(e.message.value) == version_id), None)

    def _version_writes(
        self, image_type: int, version_id: int, since: float = float("-inf")
    ) -> list[MessageEvent]:
        """The MCU's writes of 2000 + type (SET, or UPDATE from older MCUs) from its echo of
        APPLY on (the first IDLE carrying `version_id`, else its first VERIFY), among the
        events from `since` on. Each sniffer port has its own clock, so the anchor is on the
        MCU's own port, as the writes are."""
        infos = [(e, i) for e, i in self.ota_infos(MCU_TO_ASR) if e.t >= since]
        anchor = next(
            (e for e, i in infos if i.state == OtaState.IDLE and i.version_id == version_id),
            next((e for e, i in infos if i.state == OtaState.VERIFY_SIGNATURE), None),
        )
        if anchor is None:
            return []
        attribute = aflib.version_attribute(image_type)
        return [
            e
            for e in self.messages
            if e.direction == MCU_TO_ASR
            and e.message.attr_id == attribute
            and e.message.type in (MsgType.SET, MsgType.UPDATE)
            and e.t >= anchor.t
        ]

    @property
    def throughput(self) -> float:
        """Chunk payload bytes per second between the first and the last chunk."""
        chunks = self.chunks
        if len(chunks) < 2 or chunks[-1].t <= chunks[0].t:
            return 0.0
        return sum(len(c.data) for c in chunks) / (chunks[-1].t - chunks[0].t)

    def text(self) -> str:
        """The transcript as readable lines (time relative to the first event)."""
        if not self.events:
            return "(the sniffer saw nothing)"
        start = self.events[0].t
        return "\n".join(describe_event(_shift(e, start)) for e in self.events)

    # -- assertions ----------------------------------------------------------------------------

    def assert_delivered(
        self, image: bytes, *, version_id: int, image_type: int = 101, attribute_size: int = 253
    ) -> None:
        """The whole handoff of `image` happened and ended in the MCU's version report."""
        size, digest = len(image), hashlib.sha256(image).digest()
        begins = [
            (e, i)
            for e, i in self.ota_infos(ASR_TO_MCU)
            if i.state == OtaState.TRANSFER_BEGIN and i.ota_type == image_type
        ] or [(e, i) for e, i in self.ota_infos(ASR_TO_MCU) if i.state == OtaState.TRANSFER_BEGIN]
        if not begins:
            self._fail("1. BEGIN from the ASR", "not on the wire", None)
        event, info = begins[-1]  # the latest handoff of this type: earlier attempts may precede
        since = event.t
        if (info.ota_type, info.size, info.version_id) != (image_type, size, version_id):
            self._fail(
                "1. BEGIN from the ASR",
                f"BEGIN carries type={info.ota_type} size={info.size} version={info.version_id}, "
                f"expected type={image_type} size={size} version={version_id}",
                event,
            )
        # Each direction is timestamped by its own sniffer port: order across directions is
        # only as good as the sniffer's clock, so MCU-side steps are placed by the MCU's echo.
        accept_event, _ = self._find(
            "2. the MCU accepts",
            lambda e, i: (
                e.direction == MCU_TO_ASR
                and i.state == OtaState.TRANSFER_BEGIN
                and (i.ota_type, i.size, i.version_id) == (image_type, size, version_id)
                and e.t >= since - CLOCK_SLACK_S
            ),
        )
        since_mcu = accept_event.t
        # An MCU that kept what it had (a resumed attempt) is not sent those bytes again: the
        # chunks of every attempt of this same offer count.
        first = next(e for e, i in begins if (i.ota_type, i.size, i.version_id) == (
            info.ota_type, info.size, info.version_id))  # fmt: skip
        self._check_chunks(image, aflib.max_chunk(attribute_size), first.t)
        if (
            aflib.STOP_TRANSFER_OFFSET
            not in Transcript([e for e in self.events if e.t >= since]).next_offsets
        ):  # an earlier attempt's STOP says nothing about this one
            self._fail("3. chunks", "the MCU never answered 0xFFFFFFFF (all bytes in)", None)
        verify_event, verify = self._find(
            "4. VERIFY from the MCU",
            lambda e, i: (
                e.t >= since_mcu
                and e.direction == MCU_TO_ASR
                and i.state == OtaState.VERIFY_SIGNATURE
            ),
        )
        if verify.sha256 != digest:
            self._fail(
                "4. VERIFY from the MCU",
                f"the MCU hashed {verify.sha256.hex() if verify.sha256 else None}, "
                f"the image is {digest.hex()}",
                verify_event,
            )
        apply_event, apply = self._find(
            "5. APPLY from the ASR",
            lambda e, i: e.t >= since and e.direction == ASR_TO_MCU and i.state == OtaState.APPLY,
        )
        if apply.version_id != version_id:
            self._fail(
                "5. APPLY from the ASR",
                f"APPLY carries version {apply.version_id}, expected {version_id}",
                apply_event,
            )
        attribute = aflib.version_attribute(image_type)
        reports = self._version_writes(image_type, version_id, since=verify_event.t)
        if not any(aflib.version_of(e.message.value) == version_id for e in reports):
            got = [aflib.version_of(e.message.value) for e in reports]
            self._fail(
                "6. version report",
                f"attribute {attribute} was not written with {version_id} after APPLY "
                f"(writes seen: {got or 'none'}): an apply failure",
                apply_event,
            )

    def assert_not_applied(self, image_type: int = 101) -> None:
        """No APPLY crossed, or the MCU never reported the applied version: the old image runs.

        After a fallback the MCU boots and reports its old version; that is not an apply."""
        attribute = aflib.version_attribute(image_type)
        for _, info in self.ota_infos(ASR_TO_MCU):
            if info.state != OtaState.APPLY:
                continue
            applied = [
                e
                for e in self.messages
                if e.message.attr_id == attribute and e.direction == MCU_TO_ASR
                and aflib.version_of(e.message.value) == info.version_id
            ]  # fmt: skip
            if applied:
                self._fail("not applied", f"the MCU reported {attribute} after APPLY: "
                           f"{info.version_id}, the version APPLY carried", applied[0])  # fmt: skip

    def _check_chunks(self, image: bytes, largest: int, since: float) -> None:
        """Every chunk fits the attribute and matches the image; together they cover it all.

        Retries and re-requests are allowed: a dropped chunk is sent again after later ones."""
        ranges = []
        for chunk in (c for c in self.chunks if c.t >= since):
            if len(chunk.data) > largest:
                self._fail("3. chunks", f"chunk at {chunk.offset} holds {len(chunk.data)} bytes, "
                           f"more than the attribute allows ({largest})", chunk.event)  # fmt: skip
            if chunk.data != image[chunk.offset : chunk.offset + len(chunk.data)]:
                self._fail("3. chunks", f"chunk at {chunk.offset} differs from the image there",
                           chunk.event)  # fmt: skip
            ranges.append((chunk.offset, chunk.offset + len(chunk.data)))
        covered = 0
        for start, end in sorted(ranges):
            if start > covered:
                self._fail("3. chunks", f"gap: bytes [{covered}, {start}) were never sent", None)
            covered = max(covered, end)
        if covered < len(image):
            self._fail("3. chunks", f"chunks cover [0, {covered}) of {len(image)} bytes", None)

    def _find(self, step: str, wanted) -> tuple[MessageEvent, OtaInfo]:
        for event, info in self.ota_infos():
            if wanted(event, info):
                return event, info
        self._fail(step, "not on the wire", None)
        raise AssertionError  # unreachable: _fail raises

    def _fail(self, step: str, what: str, around: MessageEvent | None) -> None:
        lines = [f"handoff step {step}: {what}"]
        messages = self.messages
        if around is not None and around in messages:
            at = messages.index(around)
            window = messages[max(0, at - CONTEXT) : at + CONTEXT + 1]
        else:
            window = messages[-2 * CONTEXT :]
        start = self.events[0].t if self.events else 0.0
        lines += [
            ("  > " if e is around else "    ") + describe_event(_shift(e, start)) for e in window
        ]
        lines.append(f"  ({len(messages)} messages, {len(self.skipped)} skipped stretches)")
        raise HandoffError("\n".join(lines))


def _shift(event: Event, start: float) -> Event:
    return replace(event, t=event.t - start)
