"""The emulated MCU's afLib: when it may speak, how it numbers and queues what it says.

It behaves as Afero's afLib does on a real MCU (af_lib.c), so the ASR it talks to, emulated or
not, sees a real board's traffic:

- After the MCU starts it says nothing until the ASR has notified a non-zero firmware version
  (2003) and the state that version needs (65013: INITIALIZED above 0x5062, else LINKED); then
  it SETs its capabilities (1207) and GETs the ASR's (1206), and the application reports its
  versions. The same again whenever the ASR notifies them again (it rebooted).
- Its requests carry its own counter (1, 2, …, wrapping), never the ASR's ids.
- After a SET or GET of its own it sends nothing else until the ASR sends an UPDATE of that
  attribute (any reason), or `REPLY_TIMEOUT` passes; a reject (0x0E) does not end the wait. Its
  UPDATEs (the tunnelled OTA reports) need no answer.
- An UPDATE with reason FAKE_UPDATE is dropped whole; OTA notifications (unwrapped from 1098, or
  sent on 1301/1302 directly) go to the OTA machine unless their reason marks an answer; an ASR
  SET is answered with its own request id, accepted for MCU attributes (1..1023) and refused
  (FAILED, INTERNAL_SET_REJECTED) for others.
- UPDATE_READY (65013 = 3) makes it ask the ASR to reboot: SET 65012 = 1, after which it is
  locked until the ASR's next handshake.

rig's own choice: the application's version reports made before the handshake wait in the queue
(a real application retries until afLib takes them). An MCU reboot of the double's (the console's
`reboot`, or after APPLY) keeps this layer as it is: the ASR never learns of it, so no new
handshake comes, and the application reports its versions again once it runs.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import replace

from rig.double.mcu_ota import McuOta
from rig.protocol import aflib
from rig.protocol.aflib import AsrState, Message, MsgType, UpdateReason, UpdateState

REPLY_TIMEOUT = 10.0  # afLib's MAX_COMMAND_RESULT_TIME: an unanswered SET or GET stops blocking
MCU_ATTRIBUTES = range(1, 1024)
_ANSWERS = (UpdateReason.MCU_SET, UpdateReason.GET_RESPONSE)


class McuAfLib:
    """One MCU's afLib over its OTA machine; `send` puts encoded messages on the UART."""

    def __init__(
        self,
        ota: McuOta,
        send: Callable[[bytes], None],
        *,
        log: Callable[[str], None],
        clock: Callable[[], float] = time.monotonic,
        reply_timeout: float = REPLY_TIMEOUT,
    ) -> None:
        self.ota = ota
        self._send = send
        self._log = log
        self._clock = clock
        self.reply_timeout = reply_timeout
        self.capabilities: bytes | None = None  # the ASR's 1206, once it answered
        self.reset()

    def reset(self) -> None:
        """The MCU (re)started: its RAM, queue and counter are new, the ASR is not known yet."""
        self.ready = False  # afLib's "ASR rebooting" is over
        self._asr_version = 0
        self._asr_states = 0
        self._request_id = 0
        self._queue: deque[Message] = deque()
        self._waiting: tuple[int, float] | None = None  # (attribute, since) of our SET/GET
        self._app_booted = False

    def booted(self) -> None:
        """The application runs: it reports its versions once the ASR is up."""
        self._app_booted = True
        self._queue.extend(self.ota.startup_messages())
        self.pump()

    def receive(self, msg: Message) -> None:
        """One whole message from the ASR."""
        if msg.type == MsgType.UPDATE and msg.reason == UpdateReason.FAKE_UPDATE:
            return
        if msg.type == MsgType.UPDATE:
            self._on_update(msg)
        elif msg.type == MsgType.SET:
            self._queue.append(self._set_response(msg))
        elif msg.type in aflib.REJECTS:  # afLib tells the application and keeps waiting
            self._log(f"afLib: the ASR rejected our request on {msg.attr_id} ({msg.state})")
        self.pump()

    def _set_response(self, msg: Message) -> Message:
        if msg.attr_id in MCU_ATTRIBUTES:
            return aflib.update(
                msg.request_id, msg.attr_id, msg.value, reason=UpdateReason.SERVICE_SET
            )
        return aflib.update(msg.request_id, msg.attr_id, msg.value, UpdateState.FAILED,
                            UpdateReason.INTERNAL_SET_REJECTED)  # fmt: skip

    def poll(self) -> None:
        """Give up waiting for an answer after `reply_timeout` (afLib moves on, saying so)."""
        if self._waiting and self._clock() - self._waiting[1] >= self.reply_timeout:
            self._log(f"afLib: no answer to {self._waiting[0]} within {self.reply_timeout:g} s")
            self._waiting = None
        self.pump()

    def pump(self) -> None:
        """Send what the queue holds, up to the next request that needs an answer."""
        while self.ready and self._waiting is None and self._queue:
            message = self._queue.popleft()
            if message.type != MsgType.UPDATE or message.channel is not None:
                self._request_id = (self._request_id + 1) & 0xFF  # its own requests: counted
                message = replace(message, request_id=self._request_id)
            self._send(aflib.encode(message))
            if _no_answer(message):  # it asked the ASR to reboot: locked until its handshake
                self.ready = False
            elif message.type in (MsgType.SET, MsgType.GET):
                self._waiting = (message.attr_id, self._clock())

    # -- from the ASR ---------------------------------------------------------------------------

    def _on_update(self, msg: Message) -> None:
        if msg.attr_id == aflib.ASR_CAPABILITIES and self.capabilities is None:
            self.capabilities = bytes(msg.value)  # the first one is kept, whatever its reason
        self._answered(msg.attr_id)
        if msg.attr_id in (aflib.ASR_FIRMWARE_VERSION, aflib.ASR_STATE):
            self._on_asr(msg)
        elif (
            msg.attr_id in (aflib.AF_MCU_OTA_INFO, aflib.AF_MCU_OTA_TRANSFER)
            and msg.reason not in _ANSWERS
            and msg.channel != aflib.TO_ASR_CHANNEL  # only 1098 is unwrapped towards the MCU
        ):
            self._queue.extend(self.ota.handle(msg))

    def _on_asr(self, msg: Message) -> None:
        if msg.attr_id == aflib.ASR_FIRMWARE_VERSION:
            self._asr_version = aflib.version_of(msg.value)
        elif msg.value:
            state = msg.value[0]
            if state < 8:
                self._asr_states |= 1 << state
            if state == AsrState.REBOOTED:
                self._waiting = None  # the ASR that owed us an answer is gone
            if state == AsrState.UPDATE_READY and self.ready:
                self._log("afLib: the ASR has an update ready: asking it to reboot")
                reboot = bytes([aflib.COMMAND_REBOOT, 0, 0, 0])
                self._queue.append(Message(MsgType.SET, 0, aflib.SYSTEM_COMMAND, reboot))
        gate = aflib.gate_state(self._asr_version)
        if self._asr_version and self._asr_states & (1 << gate):
            self._asr_version, self._asr_states = 0, 0  # a later handshake starts over
            first = not self.ready
            self.ready = True
            self._log("afLib: the ASR is up" + ("" if first else " again"))
            self._queue.append(Message(MsgType.SET, 0, aflib.AFLIB_CAPABILITIES, b"\x00"))
            self._queue.append(Message(MsgType.GET, 0, aflib.ASR_CAPABILITIES))
            if self._app_booted:
                self._queue.extend(self.ota.version_reports())

    def _answered(self, attr_id: int) -> None:
        if self._waiting is not None and self._waiting[0] == attr_id:
            self._waiting = None


def _no_answer(message: Message) -> bool:
    """afLib expects no answer to a reboot command (the ASR reboots instead)."""
    return (
        message.attr_id == aflib.SYSTEM_COMMAND
        and message.value[:1] == bytes([aflib.COMMAND_REBOOT])
        and message.state is None
    )
