"""The emulated ASR: the device's cloud side, handing OTA images to the MCU.

While the board has power it checks in with the OTA service as its device, takes the next
deployment, downloads the image with HTTP Range (so an interrupted download resumes), runs the
handoff of DESIGN §3 with the MCU over the link, and reports every state change back. It
forwards the MCU's version attribute to the service; that write is the only success signal.
"""

from __future__ import annotations

import hashlib
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from rig import aflib
from rig.aflib import Message, MsgType, OtaInfo, OtaState
from rig.ota.client import DeviceClient, OtaClientError

DOWNLOAD_CHUNK = 64 * 1024


@dataclass
class AsrTimeouts:
    """Seconds each stage may take before the attempt ends as TIMED_OUT(stage)."""

    offer: float = 5.0  # BEGIN → the MCU's accept/decline
    chunk: float = 5.0  # one SET 1302 → the MCU's next offset
    verify: float = 10.0  # last chunk → VERIFY_SIGNATURE
    version: float = 10.0  # APPLY → the version attribute
    checkin_s: float = 0.2  # how often an idle ASR asks the service for work


class _Timeout(Exception):
    def __init__(self, stage: str) -> None:
        self.stage = stage


class _Stopped(Exception):
    """Power went away: whatever was in RAM is gone."""


class Asr:
    """One board's ASR; `start()` at power-on, `stop()` at power-off."""

    def __init__(
        self,
        *,
        send: Callable[[bytes], None],
        log: Callable[[str], None],
        attribute_size: int = 253,
        timeouts: AsrTimeouts | None = None,
        radio_bps: float | None = None,
    ) -> None:
        self._send = send
        self._log = log
        self.attribute_size = attribute_size
        self.timeouts = timeouts or AsrTimeouts()
        self.radio_bps = radio_bps  # None: the download is not paced
        self.device: DeviceClient | None = None
        self.inbox: queue.Queue[Message] = queue.Queue()
        self.versions: dict[int, int] = {}  # what the MCU reported: type -> version id
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._request_id = 0

    def connect(self, device: DeviceClient | None) -> None:
        """Give the ASR its identity at the OTA service (None: it stays offline)."""
        self.device = device

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="asr", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=10)
        self._thread = None

    def deliver(self, raw: bytes) -> None:
        """A whole message from the MCU (called by the link thread: queue it, never block)."""
        try:
            self.inbox.put(aflib.decode(raw))
        except aflib.ProtocolError as exc:
            self._log(f"ASR: undecodable message from the MCU: {exc}")

    def _next_message(self, timeout: float) -> Message | None:
        """The MCU's next message; version reports are forwarded to the service on the way."""
        try:
            message = self.inbox.get(timeout=timeout)
        except queue.Empty:
            return None
        if self._is_version_report(message):
            self._forward_version(message)
        return message

    # -- the loop ------------------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.is_set():
            while self._next_message(0) is not None:
                pass  # idle: forward what the MCU reports (its version at boot)
            if self._stop.wait(self.timeouts.checkin_s) or self.device is None:
                continue
            try:
                offer = self.device.checkin({t: str(v) for t, v in self.versions.items()})
                if offer:
                    self._deliver_image(offer)
            except _Stopped:
                return
            except OtaClientError as exc:
                self._log(f"ASR: OTA service: {exc}")
            except Exception as exc:  # a bug must show on the console, not kill the ASR silently
                self._log(f"ASR: internal error: {exc!r}")
                raise

    def _deliver_image(self, offer: dict) -> None:
        assert self.device is not None
        deployment = str(offer["deploymentId"])
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
        answer = self._ask(aflib.AF_MCU_OTA_INFO, begin.encode(), "offer", self.timeouts.offer)
        if OtaInfo.decode(answer.value).state != OtaState.TRANSFER_BEGIN:
            self._report(deployment, "DECLINED", detail="the MCU answered BEGIN with IDLE")
            return "declined by the MCU"
        self._report(deployment, "ACCEPTED")
        attribute_size = int(offer.get("attributeSize") or self.attribute_size)
        if not self._transfer(deployment, image, attribute_size):
            return "the MCU stopped the transfer"
        self._report(deployment, "TRANSFERRED", bytes=size, total=size)
        verify = self._await(
            lambda m: m.attr_id == aflib.AF_MCU_OTA_INFO
            and OtaInfo.decode(m.value).state in (OtaState.VERIFY_SIGNATURE, OtaState.FAIL),
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
        self._request(
            aflib.AF_MCU_OTA_INFO, OtaInfo(OtaState.APPLY, version_id=version_id).encode()
        )
        self._report(deployment, "APPLYING")
        attribute = aflib.version_attribute(type_)
        try:
            report = self._await(
                lambda m: (m.attr_id == attribute)
                or (m.attr_id == aflib.AF_MCU_OTA_INFO
                    and OtaInfo.decode(m.value).state == OtaState.FAIL),
                "version", self.timeouts.version,
            )  # fmt: skip
        except _Timeout:
            self._report(deployment, "APPLY_FAILED", reason="no version report",
                         detail=f"attribute {attribute} was not written after APPLY")  # fmt: skip
            return "apply failed"
        if report.attr_id != attribute or _version_of(report.value) != version_id:
            self._report(deployment, "APPLY_FAILED", reason="MCU reported FAIL after APPLY")
            return "apply failed"
        self._report(deployment, "SUCCEEDED", detail=f"attribute {attribute} = {version_id}")
        return "succeeded"

    def _transfer(self, deployment: str, image: bytes, attribute_size: int) -> bool:
        """Chunks from wherever the MCU asks; False if it stopped early."""
        chunk = aflib.max_chunk(attribute_size)
        offset, size, reported = 0, len(image), -1
        while True:
            value = aflib.encode_transfer(offset, image[offset : offset + chunk])
            answer = self._ask(aflib.AF_MCU_OTA_TRANSFER, value, "chunk", self.timeouts.chunk)
            wanted = aflib.decode_offset(answer.value)
            if wanted == aflib.STOP_TRANSFER_OFFSET:
                if offset + chunk < size:
                    self._report(deployment, "ABORTED_BY_MCU", bytes=offset, total=size,
                                 detail=f"MCU stopped the transfer at {offset}/{size}")  # fmt: skip
                    return False
                return True
            offset = wanted
            decile = offset * 10 // max(size, 1)
            if decile != reported:
                reported = decile
                self._report(deployment, "TRANSFERRING", bytes=offset, total=size)

    # -- messages ------------------------------------------------------------------------------

    def _request(self, attr_id: int, value: bytes) -> int:
        self._request_id = self._request_id % 255 + 1  # 1..255: 0 is the MCU's own reports
        message = Message(MsgType.SET, self._request_id, attr_id, value)
        self._send(aflib.encode(message))
        return self._request_id

    def _ask(self, attr_id: int, value: bytes, stage: str, timeout: float) -> Message:
        """SET and wait for the MCU's UPDATE with the same request id."""
        request_id = self._request(attr_id, value)
        return self._await(
            lambda m: m.request_id == request_id and m.attr_id == attr_id, stage, timeout
        )

    def _await(self, wanted: Callable[[Message], bool], stage: str, timeout: float) -> Message:
        deadline = time.monotonic() + timeout
        while True:
            self._check_power()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise _Timeout(stage)
            message = self._next_message(min(remaining, 0.1))
            if message is not None and wanted(message):
                return message

    def _drain(self) -> None:
        while self._next_message(0) is not None:
            pass

    def _check_power(self) -> None:
        if self._stop.is_set():
            raise _Stopped

    def _report(self, deployment: str, state: str, **details: object) -> None:
        assert self.device is not None
        self._log(f"ASR: {state} {details if details else ''}".rstrip())
        try:
            self.device.progress(deployment, state, **details)
        except OtaClientError as exc:
            self._log(f"ASR: could not report {state}: {exc}")

    @staticmethod
    def _is_version_report(message: Message) -> bool:
        return 2101 <= message.attr_id <= 2200 and message.type == MsgType.UPDATE

    def _forward_version(self, message: Message) -> None:
        type_ = message.attr_id - 2000
        self.versions[type_] = _version_of(message.value)
        if self.device is not None:
            try:
                self.device.report_attributes({message.attr_id: str(self.versions[type_])})
            except OtaClientError as exc:
                self._log(f"ASR: could not forward attribute {message.attr_id}: {exc}")


def _version_of(value: bytes) -> int:
    return int.from_bytes(value[:8], "little")
