"""The emulated ASR: the device's cloud side, handing OTA images to the MCU.

At power-on it runs the boot handshake afLib waits for (af_lib.c): REBOOTED, its reboot reason
(65019, a string whose code says power-on, brown-out or software reset), its firmware version
(2003), LINKED, INITIALIZED. It answers every SET and GET of the MCU's at once, as afLib
expects (1206: its capabilities; 65012 = 1: it reboots). While the board has power it checks
in with the OTA service as its device, takes the next deployment, downloads the image with HTTP
Range (so an interrupted download resumes), hands it over as afLib's reference receiver
expects (rig.double.asr_handoff, over its conversation with the MCU: rig.double.asr_conversation),
and reports every state change back (rig.double.asr_report: progress off the chunk path). It
forwards the MCU's SET of its version attribute to the service; that write is the only success
signal. Its reboot reason goes to the service too.

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
import threading
import time
from collections.abc import Callable
from typing import Any

from rig.double.asr_conversation import (
    DOORBELL,
    Conversation,
    Reboot,
    Send,
    StageTimeout,
    Stopped,
)
from rig.double.asr_handoff import Handoff
from rig.double.asr_memory import AsrMemory
from rig.double.asr_report import Reporter
from rig.double.asr_watch import WorkWatch
from rig.double.faults import Faults
from rig.double.spec import AsrTimeouts
from rig.ota.device_client import DeviceClient, OtaClientError
from rig.ota.states import TERMINAL
from rig.protocol import aflib
from rig.protocol.aflib import AsrState, Message, RebootCode

__all__ = ["Asr", "AsrMemory", "AsrTimeouts"]

DOWNLOAD_CHUNK = 64 * 1024
#: The firmware version the emulated ASR announces (above 0x5062: afLib waits for INITIALIZED).
ASR_FIRMWARE_VERSION = 0x7001
# Idle, the ASR waits on its inbox: the MCU's messages and the doorbell (work at the service, or
# power-off) wake it at once; this tick only looks at faults armed meanwhile (asr_update_ready).
IDLE_TICK_S = 1.0


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
        self._log = log
        self.attribute_size = attribute_size
        self.timeouts = timeouts or AsrTimeouts()
        self.radio_bps = radio_bps  # None: the download is not paced
        self.faults = faults or Faults()
        self.memory = memory or AsrMemory(None)
        self._on_reboot = on_reboot  # the board resets the link's transports
        self.device: DeviceClient | None = None
        self.versions: dict[int, int] = {}  # what the MCU reported: type -> version id
        self.reboots = 0
        self._boot_cause: str | None = "power loss"  # why a job in memory was broken off
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._reboot_reason = aflib.reboot_reason(RebootCode.POWER_ON)
        self._reason_told = False  # the service has heard the reboot reason of this boot
        self._watch: WorkWatch | None = None  # the long-poll for work (asr_watch.py)
        self._watch_lock = threading.Lock()
        self.mcu = Conversation(send=send, log=log, stopped=self._stop,
                                capabilities=self.capabilities,
                                on_version=self._forward_version)  # fmt: skip
        self.reports = Reporter(log)
        self._handoff = Handoff(self.mcu, report=self._report, progress=self._progress, log=log,
                                faults=self.faults, timeouts=self.timeouts,
                                memory=self.memory)  # fmt: skip

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
        self.reports.stop()  # progress not sent yet is lost with the RAM
        with self._watch_lock:
            if self._watch is not None:
                self._watch.stop()  # its poll in flight is dropped, not waited for
            self._watch = None
        self.mcu.ring()  # wakes the idle loop
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=10)
        self._thread = None

    def deliver(self, raw: bytes) -> None:
        """A whole message from the MCU (called by the link thread: queue it, never block)."""
        self.mcu.deliver(raw)

    def _boot(self, reboot: RebootCode) -> None:
        """What afLib waits for before the MCU may speak (a fresh MCU or a rebooted ASR)."""
        self._reboot_reason, self._reason_told = aflib.reboot_reason(reboot), False
        for message in aflib.boot_handshake(ASR_FIRMWARE_VERSION, reboot):
            self.mcu.send(message)

    def capabilities(self) -> bytes:
        """Attribute 1206 as this ASR holds it (bit 0x80: it can hand images to the MCU)."""
        return bytes([0 if self.faults.no_ota_capability else aflib.MCU_OTA_CAPABLE_BIT])

    # -- the loop ------------------------------------------------------------------------------

    def _run(self) -> None:
        """Idle until there is work: a check-in at boot (after one check-in period), then
        whenever the watch rings or the identity changes; never two check-ins closer than
        the check-in period."""
        due, last, as_ = True, time.monotonic(), self.device
        while not self._stop.is_set():
            try:
                while (message := self.mcu.next_message(0)) is not None:
                    due |= message is DOORBELL  # idle: forward what the MCU reports
                due |= self.device is not as_  # a new identity hears the versions at once
                if self.faults.take_update_ready():
                    self._log("ASR: an update of its own is ready: asking the MCU for a reboot")
                    self.mcu.send(aflib.asr_state(AsrState.UPDATE_READY))
                early = last + self.timeouts.checkin_s - time.monotonic()
                if self.device is None or not due or early > 0:
                    if self.device is not None and not due:
                        self._listen()
                    tick = IDLE_TICK_S if early <= 0 else min(early, IDLE_TICK_S)
                    due |= self.mcu.next_message(tick) is DOORBELL
                    continue
                due, last, as_ = False, time.monotonic(), self.device
                if not self._reason_told:
                    self._reason_told = True
                    self._forward(aflib.REBOOT_REASON, self._reboot_reason)
                self._recover()
                offer = self.device.checkin({t: str(v) for t, v in self.versions.items()})
                if offer:
                    self._deliver_image(offer)
            except Stopped:
                return
            except Reboot as reboot:
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
                self._watch = WorkWatch(self.device, ring=self.mcu.ring,
                                        period=lambda: self.timeouts.checkin_s)  # fmt: skip
                self._watch.start()
            self._watch.arm()

    def _reboot(self, why: str) -> None:
        """RAM and the link start afresh; the job in memory survives (reported by _recover)."""
        self._log(f"ASR: rebooting {why}")
        self.reboots += 1
        self.versions = {}
        self.mcu.forget()
        self.reports.forget()
        self._boot_cause = "ASR reboot"
        if self._on_reboot is not None:
            self._on_reboot()
        self.mcu.drain()
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
                self.mcu.wait_for(lambda m: m.attr_id == attribute, "version",
                                  self.timeouts.version)  # fmt: skip
            except StageTimeout:
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
        attribute_size = int(offer.get("attributeSize") or self.attribute_size)
        try:
            outcome = self._handoff.run(deployment, offer, image, attribute_size)
        except StageTimeout as timeout:
            self._report(deployment, "TIMED_OUT", reason=timeout.stage,
                         detail=f"no answer from the MCU during {timeout.stage}")  # fmt: skip
            return
        self._log(f"ASR: deployment {deployment}: {outcome}")

    def _download(self, offer: dict) -> bytes:
        """The image, fetched in Range requests so an interrupted download can resume."""
        assert self.device is not None
        size, data = int(offer["size"]), b""
        while len(data) < size:
            self.mcu.check_power()
            end = min(len(data) + DOWNLOAD_CHUNK, size) - 1
            piece = self.device.download(offer["sha256"], len(data), end)
            data += piece
            if self.radio_bps and self._stop.wait(len(piece) * 8 / self.radio_bps):
                raise Stopped  # the radio's pace; power went while waiting
        if hashlib.sha256(data).hexdigest() != offer["sha256"]:
            raise OtaClientError(f"downloaded image does not hash to {offer['sha256']}")
        return data

    def _report(self, deployment: str, state: str, **details: object) -> None:
        """Tell the service (after the progress noted before); keep the job in memory in step
        (gone once the service has heard how it ended)."""
        assert self.device is not None
        self._log(f"ASR: {state} {details if details else ''}".rstrip())
        heard = self.reports.report(self.device, deployment, state, **details)
        if state not in TERMINAL:
            self.memory.stage(state)
        elif heard:
            self.memory.save(None)

    def _progress(self, deployment: str, **details: object) -> None:
        """More of the image is at the MCU: the service hears it off this thread, coalesced."""
        assert self.device is not None
        self._log(f"ASR: TRANSFERRING {details}")
        self.reports.progress(self.device, deployment, **details)

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
