"""The emulated ASR: the device's cloud side, handing OTA images to the MCU.

At power-on it runs the boot handshake afLib waits for (af_lib.c): REBOOTED, its reboot reason
(65019, a string whose code says power-on, brown-out or software reset), its firmware version
(2003), LINKED, INITIALIZED. It answers every SET and GET of the MCU's at once, as afLib
expects (1206: its capabilities; 65012 = 1: it reboots). While the board has power it checks
in with the OTA service as its device, takes the next deployment, downloads the image with HTTP
Range (so an interrupted download resumes), hands it over as afLib's reference receiver
expects (every step an UPDATE tunnelled on 1098, answers paired by attribute and state, never
by request id), and reports every state change back. It forwards the MCU's SET of its version
attribute to the service; that write is the only success signal. Its reboot reason goes to the
service too.

Interruptions: a real ASR keeps its OTA job across a reboot, so this one keeps the deployment in
flight in a small JSON file (`AsrMemory`, the board's state folder). When it boots (power-on, or
the asr_reboot fault) with a job there, it reports that attempt INTERRUPTED (reason "power loss"
or "ASR reboot") before its next check-in, and the service offers the deployment again as a new
attempt; the MCU resumes from the bytes it kept. A job that was APPLYING is different: if the
MCU comes up reporting the new version the apply happened and the job SUCCEEDED.

Faults it plays (rig.double.faults): the chunk faults (it sends the wrong chunks, or marks one to
be corrupted on the line), asr_reboot, and no_ota_capability: the ASR reads its own
capabilities attribute (1206) before taking an offer and, without bit 0x80, declines it
(DECLINED, "no MCU OTA capability") without sending BEGIN, as a module that cannot hand images
to its MCU would.
"""

from __future__ import annotations

import hashlib
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from rig.double.asr_memory import AsrMemory
from rig.double.asr_watch import WorkWatch
from rig.double.faults import Faults
from rig.double.spec import AsrTimeouts
from rig.ota.client import DeviceClient, OtaClientError
from rig.ota.states import TERMINAL
from rig.protocol import aflib
from rig.protocol.aflib import AsrState, Message, MsgType, OtaInfo, OtaState, RebootCode

__all__ = ["Asr", "AsrMemory", "AsrTimeouts"]

DOWNLOAD_CHUNK = 64 * 1024
#: The firmware version the emulated ASR announces (above 0x5062: afLib waits for INITIALIZED).
ASR_FIRMWARE_VERSION = 0x7001
# After a STOP before the last chunk was sent: how long the MCU's VERIFY (or FAIL) may take to
# follow. It does when a resumed transfer already had every byte; else the MCU stopped early.
STOP_GRACE_S = 1.0
CORRUPT_AT = 4  # the byte of a chunk (1302 value) corrupt_chunk flips: its first data
MAX_BACKLOG = 64
# Idle, the ASR waits on its inbox: the MCU's messages and the doorbell (work at the service, or
# power-off) wake it at once; this tick only looks at faults armed meanwhile (asr_update_ready).
IDLE_TICK_S = 1.0
_DOORBELL = Message(MsgType.UPDATE, 0, 0)  # inert to the handoff: no stage waits for attribute 0

Send = Callable[[bytes, int | None], None]  # (message, index of a byte to corrupt on the line)


class _Timeout(Exception):
    def __init__(self, stage: str) -> None:
        self.stage = stage


class _Stopped(Exception):
    """Power went away: whatever was in RAM is gone."""


class _Reboot(Exception):
    """The asr_reboot fault: the ASR resets; its RAM goes, the MCU keeps power."""


class Asr:
    """One board's ASR; `start()` at power-on, `stop()` at power-off."""

    def __init__(
        self,
        *,
        send: Send,
        log: Callable[[str], None],
        attribute_size: int = 253,
        timeouts: AsrTimeouts | None = None,
        radio_bps: float | None = None,
        faults: Faults | None = None,
        memory: AsrMemory | None = None,
        on_reboot: Callable[[], None] | None = None,
    ) -> None:
        self._send = send
        self._log = log
        self.attribute_size = attribute_size
        self.timeouts = timeouts or AsrTimeouts()
        self.radio_bps = radio_bps  # None: the download is not paced
        self.faults = faults or Faults()
        self.memory = memory or AsrMemory(None)
        self._on_reboot = on_reboot  # the board resets the link's transports
        self.device: DeviceClient | None = None
        self.inbox: queue.Queue[Message] = queue.Queue()
        self.versions: dict[int, int] = {}  # what the MCU reported: type -> version id
        self.reboots = 0
        self._boot_cause: str | None = "power loss"  # why a job in memory was broken off
        self._backlog: list[Message] = []  # the MCU's own reports that arrived out of turn
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._reboot_reason = aflib.reboot_reason(RebootCode.POWER_ON)
        self._reason_told = False  # the service has heard the reboot reason of this boot
        self._stale: dict[int, int] = {}  # answers owed to notifications nobody waits for
        self._watch: WorkWatch | None = None  # the long-poll for work (asr_watch.py)
        self._watch_lock = threading.Lock()

    def connect(self, device: DeviceClient | None) -> None:
        """Give the ASR its identity at the OTA service (None: it stays offline)."""
        self.device = device

    def start(self, reboot: RebootCode = RebootCode.POWER_ON) -> None:
        """Power-on: the boot handshake goes out first, then the OTA loop runs."""
        self._boot(reboot)
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="asr", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        with self._watch_lock:
            if self._watch is not None:
                self._watch.stop()  # its poll in flight is dropped, not waited for
            self._watch = None
        self.inbox.put(_DOORBELL)  # wakes the idle loop
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=10)
        self._thread = None

    def deliver(self, raw: bytes) -> None:
        """A whole message from the MCU (called by the link thread: queue it, never block)."""
        try:
            self.inbox.put(aflib.decode(raw))
        except aflib.ProtocolError as exc:
            self._log(f"ASR: undecodable message from the MCU: {exc}")

    def _boot(self, reboot: RebootCode) -> None:
        """What afLib waits for before the MCU may speak (a fresh MCU or a rebooted ASR)."""
        self._reboot_reason, self._reason_told = aflib.reboot_reason(reboot), False
        for message in aflib.boot_handshake(ASR_FIRMWARE_VERSION, reboot):
            self._send(aflib.encode(message), None)

    def capabilities(self) -> bytes:
        """Attribute 1206 as this ASR holds it (bit 0x80: it can hand images to the MCU)."""
        return bytes([0 if self.faults.no_ota_capability else aflib.MCU_OTA_CAPABLE_BIT])

    def _next_message(self, timeout: float) -> Message | None:
        """The MCU's next message. Its SETs and GETs are answered on the way (afLib holds its
        queue until they are), and its version reports go to the service."""
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
                raise _Reboot("on the MCU's request (65012 = reboot)")
            self._send(aflib.encode(aflib.answer(message)), None)
            if aflib.ota_type_of(message.attr_id) is not None:
                self._forward_version(message)
        return message

    def _answer_get(self, message: Message) -> None:
        if message.attr_id == aflib.ASR_CAPABILITIES:
            answer = aflib.answer(message, self.capabilities())
        else:  # an attribute this ASR does not hold
            unknown = aflib.UpdateState.UNKNOWN_UUID
            answer = replace(aflib.answer(message, b""), state=unknown)
        self._send(aflib.encode(answer), None)

    # -- the loop ------------------------------------------------------------------------------

    def _run(self) -> None:
        """Idle until there is work: a check-in at boot (after one check-in period), then
        whenever the watch rings or the identity changes; never two check-ins closer than
        the check-in period."""
        due, last, as_ = True, time.monotonic(), self.device
        while not self._stop.is_set():
            try:
                while (message := self._next_message(0)) is not None:
                    due |= message is _DOORBELL  # idle: forward what the MCU reports
                due |= self.device is not as_  # a new identity hears the versions at once
                if self.faults.take_update_ready():
                    self._log("ASR: an update of its own is ready: asking the MCU for a reboot")
                    self._send(aflib.encode(aflib.asr_state(AsrState.UPDATE_READY)), None)
                early = last + self.timeouts.checkin_s - time.monotonic()
                if self.device is None or not due or early > 0:
                    if self.device is not None and not due:
                        self._listen()
                    tick = IDLE_TICK_S if early <= 0 else min(early, IDLE_TICK_S)
                    due |= self._next_message(tick) is _DOORBELL
                    continue
                due, last, as_ = False, time.monotonic(), self.device
                if not self._reason_told:
                    self._reason_told = True
                    self._forward(aflib.REBOOT_REASON, self._reboot_reason)
                self._recover()
                offer = self.device.checkin({t: str(v) for t, v in self.versions.items()})
                if offer:
                    self._deliver_image(offer)
            except _Stopped:
                return
            except _Reboot as reboot:
                self._reboot(str(reboot))
                due = True  # the rebooted ASR checks in (its reboot reason, its job)
            except OtaClientError as exc:
                self._log(f"ASR: OTA service: {exc}")
                self._boot_cause = "OTA service error"  # a job it broke off is retried
                due = True  # again after a check-in period, as ever
            except Exception as exc:  # a bug must show on the console, not kill the ASR silently
                self._log(f"ASR: internal error: {exc!r}")
                raise

    def _listen(self) -> None:
        """Idle and checked in: the watch listens for work (a new one for a new identity)."""
        with self._watch_lock:
            if self._stop.is_set() or self.device is None:
                return
            if self._watch is None or self._watch.device is not self.device:
                if self._watch is not None:
                    self._watch.stop()
                self._watch = WorkWatch(self.device, ring=lambda: self.inbox.put(_DOORBELL),
                                        period=lambda: self.timeouts.checkin_s)  # fmt: skip
                self._watch.start()
            self._watch.arm()

    def _reboot(self, why: str) -> None:
        """RAM and the link start afresh; the job in memory survives (reported by _recover)."""
        self._log(f"ASR: rebooting {why}")
        self.reboots += 1
        self.versions, self._backlog, self._stale = {}, [], {}
        self._boot_cause = "ASR reboot"
        if self._on_reboot is not None:
            self._on_reboot()
        self._drain()
        self._boot(RebootCode.SOFTWARE)

    def _recover(self) -> None:
        """A job in memory is an attempt that broke off: say how it ended, once."""
        job = self.memory.job()
        if job is None:
            return
        deployment, stage = str(job["deploymentId"]), job.get("stage", "OFFERED")
        cause = self._boot_cause or "the ASR lost its place"
        if stage == "APPLYING" and self._applied(job):
            self._report(deployment, "SUCCEEDED",
                         detail=f"the MCU came back from {cause} running version number "
                                f"{job['versionNumber']}")  # fmt: skip
        else:
            self._report(deployment, "INTERRUPTED", reason=cause,
                         detail=f"attempt {job.get('attempt', 1)} was {stage} when the board "
                                f"went down ({cause}); the ASR asks for it again")  # fmt: skip
        self._boot_cause = None

    def _applied(self, job: dict[str, Any]) -> bool:
        """After a reboot in APPLYING: does the MCU report the job's version (at its boot)?"""
        type_, version_id = int(job["type"]), int(job["versionNumber"])
        if type_ not in self.versions:
            attribute = aflib.version_attribute(type_)
            try:
                self._await(lambda m: m.attr_id == attribute, "version", self.timeouts.version)
            except _Timeout:
                return False
        return self.versions.get(type_) == version_id

    def _deliver_image(self, offer: dict) -> None:
        assert self.device is not None
        deployment = str(offer["deploymentId"])
        self.memory.save({
            "deploymentId": deployment, "attempt": offer.get("attempt", 1),
            "type": int(offer["type"]), "versionNumber": int(offer["versionNumber"]),
            "stage": "OFFERED",
        })  # fmt: skip
        capabilities = self.capabilities()
        if not aflib.mcu_ota_capable(capabilities):
            detail = (f"the ASR's capabilities (attribute {aflib.ASR_CAPABILITIES}) are "
                      f"{capabilities.hex()}: bit 0x80 (MCU OTA) is not set")  # fmt: skip
            self._report(deployment, "DECLINED", reason="no MCU OTA capability", detail=detail)
            return
        image = self._download(offer)
        try:
            outcome = self._handoff(deployment, offer, image)
        except _Timeout as timeout:
            self._report(deployment, "TIMED_OUT", reason=timeout.stage,
                         detail=f"no answer from the MCU during {timeout.stage}")  # fmt: skip
            return
        self._log(f"ASR: deployment {deployment}: {outcome}")

    def _download(self, offer: dict) -> bytes:
        """The image, fetched in Range requests so an interrupted download can resume."""
        assert self.device is not None
        size, data = int(offer["size"]), b""
        while len(data) < size:
            self._check_power()
            end = min(len(data) + DOWNLOAD_CHUNK, size) - 1
            piece = self.device.download(offer["sha256"], len(data), end)
            data += piece
            if self.radio_bps and self._stop.wait(len(piece) * 8 / self.radio_bps):
                raise _Stopped  # the radio's pace; power went while waiting
        if hashlib.sha256(data).hexdigest() != offer["sha256"]:
            raise OtaClientError(f"downloaded image does not hash to {offer['sha256']}")
        return data

    def _handoff(self, deployment: str, offer: dict, image: bytes) -> str:
        type_, version_id, size = int(offer["type"]), int(offer["versionNumber"]), len(image)
        self._drain()
        begin = OtaInfo(OtaState.TRANSFER_BEGIN, ota_type=type_, size=size, version_id=version_id)
        answer = self._ask(aflib.AF_MCU_OTA_INFO, begin.encode(), "offer", self.timeouts.offer,
                           states=(OtaState.TRANSFER_BEGIN, OtaState.IDLE))  # fmt: skip
        if OtaInfo.decode(answer.value).state != OtaState.TRANSFER_BEGIN:
            self._report(deployment, "DECLINED", detail="the MCU answered BEGIN with IDLE")
            return "declined by the MCU"
        self._report(deployment, "ACCEPTED")
        attribute_size = int(offer.get("attributeSize") or self.attribute_size)
        if not self._transfer(deployment, image, attribute_size):
            return "the MCU stopped the transfer"
        self._report(deployment, "TRANSFERRED", bytes=size, total=size)
        verify = self._await(
            lambda m: _info_in(m, OtaState.VERIFY_SIGNATURE, OtaState.FAIL),
            "verify", self.timeouts.verify,
        )  # fmt: skip
        if OtaInfo.decode(verify.value).state == OtaState.FAIL:
            self._report(
                deployment,
                "VERIFY_FAILED",
                reason="MCU refused the image",
                detail="the MCU answered the transfer with FAIL (see its console)",
            )
            return "refused by the MCU"
        reported = OtaInfo.decode(verify.value).sha256 or b""
        self._report(deployment, "VERIFYING", detail=f"MCU sha256 {reported.hex()}")
        expected = hashlib.sha256(image).digest()
        if reported != expected:
            self._request(aflib.AF_MCU_OTA_INFO, OtaInfo(OtaState.FAIL).encode())
            self._report(deployment, "VERIFY_FAILED", reason="sha256 mismatch",
                         detail=f"MCU {reported.hex()} != image {expected.hex()}")  # fmt: skip
            return "verify failed"
        self.memory.stage("APPLYING")  # before APPLY leaves: a reboot now must look for it
        self._request(
            aflib.AF_MCU_OTA_INFO, OtaInfo(OtaState.APPLY, version_id=version_id).encode()
        )
        self._report(deployment, "APPLYING")
        attribute = aflib.version_attribute(type_)
        try:
            report = self._await(
                lambda m: (m.attr_id == attribute and m.type == MsgType.SET)
                or _info_in(m, OtaState.FAIL),
                "version", self.timeouts.version,
            )  # fmt: skip
        except _Timeout:
            self._report(deployment, "APPLY_FAILED", reason="no version report",
                         detail=f"attribute {attribute} was not written after APPLY")  # fmt: skip
            return "apply failed"
        if report.attr_id != attribute or aflib.version_of(report.value) != version_id:
            self._report(deployment, "APPLY_FAILED", reason="MCU reported FAIL after APPLY")
            return "apply failed"
        self._report(deployment, "SUCCEEDED", detail=f"attribute {attribute} = {version_id}")
        return "succeeded"

    def _transfer(self, deployment: str, image: bytes, attribute_size: int) -> bool:
        """Chunks from wherever the MCU asks; False if it stopped early."""
        chunk = aflib.max_chunk(attribute_size)
        offset, size, reported = 0, len(image), -1
        while True:
            answer = self._send_chunk(image, offset, chunk)
            wanted = aflib.decode_offset(answer.value)
            if wanted == aflib.STOP_TRANSFER_OFFSET:
                if offset + chunk >= size or self._verify_follows():
                    return True
                self._report(deployment, "ABORTED_BY_MCU", bytes=offset, total=size,
                             detail=f"MCU stopped the transfer at {offset}/{size}")  # fmt: skip
                return False
            if self.faults.take_at("asr_reboot", wanted / max(size, 1)):
                raise _Reboot(f"at {wanted}/{size} bytes (fault injected)")
            offset = wanted
            decile = offset * 10 // max(size, 1)
            if decile != reported:
                reported = decile
                self._report(deployment, "TRANSFERRING", bytes=offset, total=size)

    def _send_chunk(self, image: bytes, offset: int, chunk: int) -> Message:
        """The chunk at `offset` (1302 via 1098) and the MCU's answer: chunk faults act here."""

        def value(at: int) -> bytes:
            return aflib.encode_transfer(at, image[at : at + chunk])

        def ask(at: int, flip_at: int | None = None) -> Message:
            return self._ask(aflib.AF_MCU_OTA_TRANSFER, value(at), "chunk", self.timeouts.chunk,
                             flip_at=flip_at)  # fmt: skip

        index, misaligned = divmod(offset, chunk)
        chunks = -(-len(image) // chunk)
        take = self.faults.take_chunk
        if misaligned:
            return ask(offset)
        if take("drop_chunk", index, chunks):
            self._log(f"ASR: chunk {index} dropped (fault injected): sending chunk {index + 1}")
            return ask(offset + chunk)
        if take("reorder_chunks", index, chunks):
            self._log(f"ASR: chunks {index + 1} and {index} sent swapped (fault injected)")
            self._request(aflib.AF_MCU_OTA_TRANSFER, value(offset + chunk))
            owed = self._stale.get(aflib.AF_MCU_OTA_TRANSFER, 0)
            self._stale[aflib.AF_MCU_OTA_TRANSFER] = owed + 1  # its answer is not waited for
            return ask(offset)
        if take("duplicate_chunk", index, chunks):
            self._log(f"ASR: chunk {index} sent twice (fault injected)")
            ask(offset)
            return ask(offset)
        if take("corrupt_chunk", index, chunks):
            self._log(f"ASR: chunk {index} goes out to be corrupted on the line (fault injected)")
            return ask(offset, flip_at=CORRUPT_AT)
        return ask(offset)

    def _verify_follows(self) -> bool:
        """After an early STOP: whether the MCU had every byte already (its VERIFY follows)."""
        try:
            message = self._await(
                lambda m: _info_in(m, OtaState.VERIFY_SIGNATURE, OtaState.FAIL),
                "verify", min(self.timeouts.verify, STOP_GRACE_S),
            )  # fmt: skip
        except _Timeout:
            return False
        self._backlog.insert(0, message)  # the verify stage takes it from here
        return True

    # -- messages ------------------------------------------------------------------------------

    def _request(self, attr_id: int, value: bytes, *, flip_at: int | None = None) -> None:
        """Notify an OTA step without waiting; `flip_at` (an index into `value`): corrupted on
        the line."""
        raw = aflib.encode(aflib.notify(attr_id, value))
        self._send(raw, None if flip_at is None else len(raw) - len(value) + flip_at)

    def _ask(
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
        self._request(attr_id, value, flip_at=flip_at)
        while True:
            answer = self._await(
                lambda m: m.type == MsgType.UPDATE and m.attr_id == attr_id
                and (not states or _info_in(m, *states)),
                stage, timeout,
            )  # fmt: skip
            if not self._stale.get(attr_id):
                return answer
            self._stale[attr_id] -= 1

    def _await(self, wanted: Callable[[Message], bool], stage: str, timeout: float) -> Message:
        """The first message `wanted` takes. The MCU's 1301 reports that arrive meanwhile are
        kept for a later stage; other answers are stale: dropped (its version writes have
        been answered and forwarded on the way: `versions` has them)."""
        for i, message in enumerate(self._backlog):
            if wanted(message):
                return self._backlog.pop(i)
        deadline = time.monotonic() + timeout
        while True:
            self._check_power()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise _Timeout(stage)
            message = self._next_message(min(remaining, 0.1))
            if message is None:
                continue
            if wanted(message):
                return message
            if message.attr_id == aflib.AF_MCU_OTA_INFO:
                self._backlog = [*self._backlog, message][-MAX_BACKLOG:]

    def _drain(self) -> None:
        self._backlog = []
        while self._next_message(0) is not None:
            pass

    def _check_power(self) -> None:
        if self._stop.is_set():
            raise _Stopped

    def _report(self, deployment: str, state: str, **details: object) -> None:
        """Tell the service; keep the job in memory in step (gone once the service has heard
        how it ended)."""
        assert self.device is not None
        self._log(f"ASR: {state} {details if details else ''}".rstrip())
        heard = True
        try:
            self.device.progress(deployment, state, **details)
        except OtaClientError as exc:
            self._log(f"ASR: could not report {state}: {exc}")
            heard = exc.status != 0  # the service answered (refused): it knows better
        if state not in TERMINAL:
            self.memory.stage(state)
        elif heard:
            self.memory.save(None)

    def _forward_version(self, message: Message) -> None:
        type_ = message.attr_id - aflib.version_attribute(0)
        self.versions[type_] = aflib.version_of(message.value)
        self._forward(message.attr_id, str(self.versions[type_]))

    def _forward(self, attr_id: int, value: object) -> None:
        if self.device is not None:
            try:
                self.device.report_attributes({attr_id: value})
            except OtaClientError as exc:
                self._log(f"ASR: could not forward attribute {attr_id}: {exc}")


def _info_in(message: Message, *states: OtaState) -> bool:
    """Whether `message` is an MCU report of 1301 in one of `states`."""
    if message.attr_id != aflib.AF_MCU_OTA_INFO or message.type != MsgType.UPDATE:
        return False
    try:
        return OtaInfo.decode(message.value).state in states
    except aflib.ProtocolError:
        return False
