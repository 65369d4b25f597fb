"""The emulated ASR's reports (rig/double/asr_report.py): progress leaves the chunk path, is
coalesced at a bounded rate, and every state still reaches the service in order."""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path

from rig.double.asr import Asr, AsrTimeouts
from rig.double.asr_report import Reporter
from rig.double.flash import Flash
from rig.double.mcu_ota import McuOta
from rig.ota.errors import OtaClientError
from rig.protocol import aflib
from tests.unit.double.bench import CHUNK, VENDOR
from tests.unit.helpers import wait_until


class Service:
    """The service as the ASR's device client sees it. Each report is recorded when it comes
    in and when it is answered; a report of a state in `held` waits until `release` (all but
    the first `free` of them)."""

    def __init__(self, image: bytes = b"", held: tuple[str, ...] = (), free: int = 0) -> None:
        self.image = image
        self.held, self.free, self.gate = held, free, threading.Event()
        self.log: list[tuple[str, str, dict]] = []  # ("in"/"out", state, details)
        self.refuse: dict[str, OtaClientError] = {}
        self._lock = threading.Lock()

    def release(self) -> None:
        self.gate.set()

    def progress(self, deployment: str, state: str, **details: object) -> dict:
        with self._lock:
            self.log.append(("in", state, details))
            seen = sum(kind == "in" and s == state for kind, s, _ in self.log)
        if state in self.held and seen > self.free:
            assert self.gate.wait(10), "the test never released the held report"
        with self._lock:
            self.log.append(("out", state, details))
        if state in self.refuse:
            raise self.refuse[state]
        return {}

    def heard(self) -> list[tuple[str, dict]]:
        """The reports answered, in order."""
        with self._lock:
            return [(state, details) for kind, state, details in self.log if kind == "out"]

    def download(self, sha256: str, start: int, end: int) -> bytes:
        return self.image[start : end + 1]

    def report_attributes(self, attributes: dict) -> None:
        pass


class Clock:
    """A clock the test moves; it counts how often it was read."""

    def __init__(self) -> None:
        self.now, self.reads = 1000.0, 0

    def __call__(self) -> float:
        self.reads += 1
        return self.now


def no_reporter_thread() -> bool:
    return not any(t.name == "asr-report" and t.is_alive() for t in threading.enumerate())


def test_progress_never_waits_for_the_service_and_is_coalesced_while_one_is_in_flight() -> None:
    service, lines = Service(held=("TRANSFERRING",)), []
    reporter = Reporter(lines.append, interval=0.0)
    reporter.progress(service, "d1", bytes=249, total=1000)  # type: ignore[arg-type]
    wait_until(lambda: service.log, what="the first progress report to go out")
    for sent in (498, 747, 996):  # the service is still answering the first one
        reporter.progress(service, "d1", bytes=sent, total=1000)  # type: ignore[arg-type]
    assert service.heard() == [] and reporter.coalesced == 2
    service.release()
    wait_until(lambda: reporter.idle, what="the progress to be sent")
    assert service.heard() == [
        ("TRANSFERRING", {"bytes": 249, "total": 1000}),
        ("TRANSFERRING", {"bytes": 996, "total": 1000}),  # the newest replaced 498 and 747
    ]
    assert reporter.sent == 2 and lines == []
    wait_until(no_reporter_thread, what="the reporter's thread to end once idle")


def test_progress_goes_out_at_most_once_an_interval_and_a_state_report_flushes_it() -> None:
    service, clock = Service(), Clock()
    reporter = Reporter(lambda line: None, interval=5.0, clock=clock)
    reporter.progress(service, "d1", bytes=100, total=1000)  # type: ignore[arg-type]
    wait_until(lambda: reporter.sent == 1, what="the first progress report: at once")
    reads = clock.reads
    reporter.progress(service, "d1", bytes=200, total=1000)  # type: ignore[arg-type]
    wait_until(lambda: clock.reads > reads, what="the reporter to look at the clock")
    assert service.heard() == [("TRANSFERRING", {"bytes": 100, "total": 1000})], "too early"
    clock.now += 5.0  # the interval has passed: the next look sends the newest
    reporter.progress(service, "d1", bytes=400, total=1000)  # type: ignore[arg-type]
    wait_until(lambda: reporter.sent == 2, what="the progress once the interval passed")
    reporter.progress(service, "d1", bytes=500, total=1000)  # type: ignore[arg-type]
    heard = reporter.report(service, "d1", "TRANSFERRED", bytes=1000, total=1000)  # type: ignore[arg-type]
    assert heard and reporter.coalesced == 1
    assert service.heard() == [
        ("TRANSFERRING", {"bytes": 100, "total": 1000}),
        ("TRANSFERRING", {"bytes": 400, "total": 1000}),
        ("TRANSFERRING", {"bytes": 500, "total": 1000}),  # not held back: a state followed
        ("TRANSFERRED", {"bytes": 1000, "total": 1000}),
    ]
    reporter.progress(service, "d2", bytes=1, total=10)  # type: ignore[arg-type]
    wait_until(lambda: reporter.sent == 4, what="progress after a state report: at once")


def test_a_state_report_waits_for_the_progress_in_flight_then_goes_in_order() -> None:
    service = Service(held=("TRANSFERRING",))
    reporter = Reporter(lambda line: None, interval=0.0)
    reporter.progress(service, "d1", bytes=249, total=498)  # type: ignore[arg-type]
    wait_until(lambda: service.log, what="the progress report to be in flight")
    done: list[bool] = []
    reporting = threading.Thread(
        target=lambda: done.append(reporter.report(service, "d1", "TRANSFERRED")),  # type: ignore[arg-type]
    )
    reporting.start()
    wait_until(lambda: reporter._urgent, what="the state report to wait for the progress")
    assert [s for _, s, _ in service.log] == ["TRANSFERRING"]
    service.release()
    reporting.join(timeout=10)
    assert done == [True]
    assert [(kind, state) for kind, state, _ in service.log] == [
        ("in", "TRANSFERRING"), ("out", "TRANSFERRING"), ("in", "TRANSFERRED"),
        ("out", "TRANSFERRED"),
    ]  # fmt: skip


def test_failures_are_logged_and_say_whether_the_service_heard() -> None:
    service, lines = Service(), []
    reporter = Reporter(lines.append, interval=0.0)
    service.refuse["TRANSFERRING"] = OtaClientError("unreachable")
    reporter.progress(service, "d1", bytes=1, total=2)  # type: ignore[arg-type]
    wait_until(lambda: reporter.sent == 1 and reporter.idle, what="the failed progress report")
    service.refuse["ABORTED_BY_MCU"] = OtaClientError("refused", status=409)
    assert reporter.report(service, "d1", "ABORTED_BY_MCU") is True  # type: ignore[arg-type]
    service.refuse["TIMED_OUT"] = OtaClientError("unreachable")
    assert reporter.report(service, "d1", "TIMED_OUT") is False  # type: ignore[arg-type]
    assert [line.split(":")[1].strip() for line in lines] == [
        "could not report TRANSFERRING", "could not report ABORTED_BY_MCU",
        "could not report TIMED_OUT",
    ]  # fmt: skip


def test_power_off_and_reboot_lose_progress_not_sent_yet() -> None:
    service, clock = Service(), Clock()
    reporter = Reporter(lambda line: None, interval=5.0, clock=clock)
    reporter.progress(service, "d1", bytes=1, total=9)  # type: ignore[arg-type]
    wait_until(lambda: reporter.sent == 1, what="the first progress report")
    reporter.progress(service, "d1", bytes=2, total=9)  # type: ignore[arg-type]
    reporter.forget()  # an ASR reboot
    wait_until(lambda: reporter.idle, what="the reboot to drop the unsent progress")
    reporter.progress(service, "d1", bytes=3, total=9)  # type: ignore[arg-type]
    reporter.stop()  # power-off
    reporter.progress(service, "d1", bytes=4, total=9)  # type: ignore[arg-type]
    wait_until(no_reporter_thread, what="the reporter's thread to end")
    assert [d["bytes"] for _, d in service.heard()] == [1]


def test_the_chunks_keep_flowing_while_the_service_is_slow_to_hear_progress(
    tmp_path: Path,
) -> None:
    """The issue-13 cost: a progress report in flight does not hold the next chunk back. The
    service hears the stage begin (the first TRANSFERRING, after the first chunk: its time is
    the transfer's start) and then answers no progress until every chunk is in; the handoff
    still ends in order."""
    mcu = McuOta(Flash(tmp_path, factory_version="1.0.0"), log=lambda line: None)
    asr: Asr

    def wire(raw: bytes, flip_at: int | None) -> None:  # the MCU answers at once
        for answer in mcu.handle(aflib.decode(raw)):
            asr.deliver(aflib.encode(answer))

    asr = Asr(send=wire, log=lambda line: None, timeouts=AsrTimeouts(chunk=5, verify=5))
    service = Service(VENDOR, held=("TRANSFERRING",), free=1)
    asr.connect(service)  # type: ignore[arg-type]
    offer = {"deploymentId": "d1", "type": 101, "versionNumber": "7", "size": len(VENDOR),
             "sha256": hashlib.sha256(VENDOR).hexdigest(), "attributeSize": 253}  # fmt: skip
    handoff = threading.Thread(target=asr._deliver_image, args=(offer,))
    handoff.start()
    try:

        def all_in_while_held() -> bool:
            return mcu.flash.staged_bytes == len(VENDOR) and service.log[-1][:2] == (
                "in", "TRANSFERRING",
            )  # fmt: skip

        wait_until(all_in_while_held, timeout=10,
                   what="every chunk at the MCU, a TRANSFERRING report unanswered")  # fmt: skip
        assert (asr.memory.job() or {}).get("stage") == "TRANSFERRING"
    finally:
        service.release()
        handoff.join(timeout=10)
    states = [state for state, _ in service.heard()]
    assert states[0] == "ACCEPTED" and states[-4:] == [
        "TRANSFERRED", "VERIFYING", "APPLYING", "SUCCEEDED",
    ]  # fmt: skip
    progress = [d["bytes"] for state, d in service.heard() if state == "TRANSFERRING"]
    assert progress[0] == CHUNK, "the first chunk's report went out as the stage began"
    assert 2 <= len(progress) <= 3 < -(-len(VENDOR) // CHUNK)  # the rest was coalesced
    assert progress == sorted(progress) and progress[-1] < len(VENDOR), service.log
    assert asr.reports.coalesced >= 1 and asr.memory.job() is None
    wait_until(no_reporter_thread, what="the reporter's thread to end once idle")
