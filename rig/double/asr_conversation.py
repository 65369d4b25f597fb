"""The emulated ASR's conversation with its MCU: what it notifies, and what it hears back.

The MCU's messages arrive whole from the link's thread into an inbox (`deliver` never blocks).
The ASR's own thread takes them: it answers the MCU's SETs and GETs on the way, as afLib
expects (its queue waits until they are: 1206 is the ASR's capabilities, an attribute it does
not hold is UNKNOWN_UUID, 65012 = 1 is a reboot), hands the MCU's version writes on, and
pairs the answers to its own OTA notifications by attribute and state, never by request id.
The MCU's 1301 reports that arrive out of turn wait in a backlog for the stage that wants them;
answers owed to notifications nobody waits for (a reordered chunk) are skipped when they come.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from dataclasses import replace

from rig.protocol import aflib
from rig.protocol.aflib import Message, MsgType, OtaInfo, OtaState

MAX_BACKLOG = 64
#: Inert to the handoff (no stage waits for attribute 0): what wakes the ASR's idle loop.
DOORBELL = Message(MsgType.UPDATE, 0, 0)

Send = Callable[[bytes, int | None], None]  # (message, index of a byte to corrupt on the line)


class StageTimeout(Exception):
    """The MCU did not answer within a stage's time."""

    def __init__(self, stage: str) -> None:
        super().__init__(stage)
        self.stage = stage


class Stopped(Exception):
    """Power went away: whatever was in RAM is gone."""


class Reboot(Exception):
    """The ASR resets (the asr_reboot fault, or the MCU asked): its RAM goes, the MCU keeps
    power."""


class Conversation:
    """One ASR's side of the afLib exchange with its MCU (its own thread calls all but
    `deliver`)."""

    def __init__(
        self,
        *,
        send: Send,
        log: Callable[[str], None],
        stopped: threading.Event,
        capabilities: Callable[[], bytes],
        on_version: Callable[[Message], None],
    ) -> None:
        self._send = send
        self._log = log
        self._stopped = stopped  # set at power-off
        self._capabilities = capabilities
        self._on_version = on_version  # the MCU wrote its version attribute (answered already)
        self.inbox: queue.SimpleQueue[Message] = queue.SimpleQueue()
        self.backlog: list[Message] = []  # the MCU's own reports that arrived out of turn
        self.stale: dict[int, int] = {}  # answers owed to notifications nobody waits for

    def deliver(self, raw: bytes) -> None:
        """A whole message from the MCU (called by the link thread: queue it, never block)."""
        try:
            self.inbox.put(aflib.decode(raw))
        except aflib.ProtocolError as exc:
            self._log(f"ASR: undecodable message from the MCU: {exc}")

    def ring(self) -> None:
        """Wake the thread waiting on the inbox (work at the service, or power-off)."""
        self.inbox.put(DOORBELL)

    def forget(self) -> None:
        """The ASR rebooted: what it was waiting for is gone with its RAM."""
        self.backlog, self.stale = [], {}

    def send(self, message: Message) -> None:
        self._send(aflib.encode(message), None)

    def next_message(self, timeout: float) -> Message | None:
        """The MCU's next message. Its SETs and GETs are answered on the way (afLib holds its
        queue until they are), and its version reports are handed on."""
        try:
            message = self.inbox.get(timeout=timeout)
        except queue.Empty:
            return None
        if message.type == MsgType.GET:
            self._answer_get(message)
        elif message.type == MsgType.SET:
            if message.attr_id == aflib.SYSTEM_COMMAND and message.value[:1] == bytes(
                [aflib.COMMAND_REBOOT]
            ):
                raise Reboot("on the MCU's request (65012 = reboot)")
            self.send(aflib.answer(message))
            if aflib.ota_type_of(message.attr_id) is not None:
                self._on_version(message)
        return message

    def _answer_get(self, message: Message) -> None:
        if message.attr_id == aflib.ASR_CAPABILITIES:
            answer = aflib.answer(message, self._capabilities())
        else:  # an attribute this ASR does not hold
            unknown = aflib.UpdateState.UNKNOWN_UUID
            answer = replace(aflib.answer(message, b""), state=unknown)
        self.send(answer)

    def request(self, attr_id: int, value: bytes, *, flip_at: int | None = None) -> None:
        """Notify an OTA step without waiting; `flip_at` (an index into `value`): corrupted on
        the line."""
        raw = aflib.encode(aflib.notify(attr_id, value))
        self._send(raw, None if flip_at is None else len(raw) - len(value) + flip_at)

    def ask(
        self,
        attr_id: int,
        value: bytes,
        stage: str,
        timeout: float,
        *,
        flip_at: int | None = None,
        states: tuple[OtaState, ...] = (),
    ) -> Message:
        """Notify an OTA step and wait for the MCU's report of the same attribute (in one of
        `states`, for 1301). Reports owed to notifications nobody waited for go first."""
        self.request(attr_id, value, flip_at=flip_at)
        while True:
            answer = self.wait_for(
                lambda m: m.type == MsgType.UPDATE and m.attr_id == attr_id
                and (not states or info_in(m, *states)),
                stage, timeout,
            )  # fmt: skip
            if not self.stale.get(attr_id):
                return answer
            self.stale[attr_id] -= 1

    def wait_for(self, wanted: Callable[[Message], bool], stage: str, timeout: float) -> Message:
        """The first message `wanted` takes. The MCU's 1301 reports that arrive meanwhile are
        kept for a later stage; other answers are stale: dropped (its version writes have
        been answered and handed on the way)."""
        for i, message in enumerate(self.backlog):
            if wanted(message):
                return self.backlog.pop(i)
        deadline = time.monotonic() + timeout
        while True:
            self.check_power()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise StageTimeout(stage)
            message = self.next_message(min(remaining, 0.1))
            if message is None:
                continue
            if wanted(message):
                return message
            if message.attr_id == aflib.AF_MCU_OTA_INFO:
                self.backlog = [*self.backlog, message][-MAX_BACKLOG:]

    def drain(self) -> None:
        """Forget what the MCU said before now (its SETs and GETs are answered on the way)."""
        self.backlog = []
        while self.next_message(0) is not None:
            pass

    def check_power(self) -> None:
        if self._stopped.is_set():
            raise Stopped


def info_in(message: Message, *states: OtaState) -> bool:
    """Whether `message` is an MCU report of 1301 in one of `states`."""
    if message.attr_id != aflib.AF_MCU_OTA_INFO or message.type != MsgType.UPDATE:
        return False
    try:
        return OtaInfo.decode(message.value).state in states
    except aflib.ProtocolError:
        return False
