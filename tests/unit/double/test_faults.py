"""Faults of the emulated board, end to end: each ends the deployment as it must, and the board
runs the old image after every failure and the new one after every recovered success.

In one process, as benches/ota_handoff.py sets it up: rig's local OTA service, and per test a
fresh double with one board (its own device id), told its identity over the control channel,
powered through its SCPI supply with pyvisa, pushed to with the Pipeline, watched by a
HandoffRecorder on its sniffer ports and read on its console with pyserial.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest

from rig.double.asr import Asr, AsrTimeouts
from rig.double.catalogue import parse_fault
from rig.double.control import ControlError
from rig.double.errors import DoubleError, FaultError
from rig.double.faults import Faults
from rig.double.flash import Flash
from rig.double.mcu_ota import McuOta
from rig.double.spec import EmulatedBoardSpec
from rig.ota.device_client import DeviceClient
from rig.protocol import aflib
from rig.protocol.transcript import Transcript
from tests.unit.double.bench import (
    APP,
    BOARD,
    CHUNK,
    FACTORY,
    FAST,
    STOP,
    VENDOR,
    VENDOR_VERSION,
    Bench,
    Lab,
)
from tests.unit.helpers import wait_until


def history(deployment: dict) -> list[tuple[str, int]]:
    return [(h["state"], h["attempt"]) for h in deployment["history"]]


def offsets(transcript: Transcript) -> list[int]:
    return [c.offset for c in transcript.chunks]


def begins(transcript: Transcript) -> int:
    return sum(i.state.name == "TRANSFER_BEGIN" for _, i in transcript.ota_infos("asr_to_mcu"))


def said(transcript: Transcript, direction: str) -> list[str]:
    """The 1301 states one side sent. Each sniffer port has its own reader and clock, so the
    order across the two directions is not to be trusted; within one it is."""
    return [info.state.name for _, info in transcript.ota_infos(direction)]


def applied(transcript: Transcript) -> bool:
    """APPLY went out and the MCU echoed it (as IDLE with the version, as afLib's reference MCU
    does): everything before it is on both ports."""
    echoed = any(
        i.state.name == "IDLE" and i.version_id is not None
        for _, i in transcript.ota_infos("mcu_to_asr")
    )
    return "APPLY" in said(transcript, "asr_to_mcu") and echoed


def version_written(version_id: int):
    def written(transcript: Transcript) -> bool:
        attribute = aflib.version_attribute(101)
        return any(e.direction == "mcu_to_asr" and e.message.attr_id == attribute
                   and int.from_bytes(e.message.value[:8], "little") == version_id
                   for e in transcript.messages)  # fmt: skip

    return written


def job_done(bench: Bench) -> None:
    """The ASR has forgotten the deployment (just after the service heard how it ended)."""
    wait_until(lambda: bench.status()["asr_job"] is None, what="the ASR to drop its job")


def assert_unchanged(bench: Bench) -> None:
    """After a failure: the old image runs, nothing is left half-applied."""
    assert bench.status()["running_version"] == FACTORY
    assert bench.board.mcu.state == "idle"
    job_done(bench)


# -- chunk faults ----------------------------------------------------------------------------------


def test_corrupt_chunk_is_flipped_on_the_wire_and_fails_verify(bench: Bench) -> None:
    bench.fault("corrupt_chunk", index=3)
    pushed = bench.push(VENDOR, "corrupt-1")
    deployment = bench.outcome(pushed["id"])
    assert (deployment["state"], deployment["reason"]) == ("VERIFY_FAILED", "sha256 mismatch")
    transcript = bench.wire(
        lambda t: "FAIL" in said(t, "asr_to_mcu") and "VERIFY_SIGNATURE" in said(t, "mcu_to_asr"),
        "the MCU's VERIFY and the ASR's FAIL",
    )
    chunk = next(c for c in transcript.chunks if c.offset == 3 * CHUNK)
    at = 3 * CHUNK
    assert chunk.data[0] == VENDOR[at] ^ 0xFF, "the sniffer must see the flipped byte"
    assert chunk.data[1:] == VENDOR[at + 1 : at + CHUNK]
    corrupted = VENDOR[:at] + bytes([VENDOR[at] ^ 0xFF]) + VENDOR[at + 1 :]
    verify = [
        i for _, i in transcript.ota_infos("mcu_to_asr") if i.state.name == "VERIFY_SIGNATURE"
    ]
    assert verify[-1].sha256 == hashlib.sha256(corrupted).digest()  # what the MCU got
    fail = transcript.ota_infos("asr_to_mcu")[-1][1]
    assert fail.state.name == "FAIL" and not applied(transcript)
    assert bench.status()["staged_bytes"] == 0  # FAIL: the MCU dropped what it had
    assert bench.status()["fired"] == ["corrupt_chunk(index=3)"]
    assert_unchanged(bench)


@pytest.mark.parametrize(
    ("fault", "sent"),
    [
        ("drop_chunk", [2 * CHUNK, 4 * CHUNK, 3 * CHUNK, 4 * CHUNK, 5 * CHUNK]),
        ("duplicate_chunk", [2 * CHUNK, 3 * CHUNK, 3 * CHUNK, 4 * CHUNK]),
        ("reorder_chunks", [2 * CHUNK, 4 * CHUNK, 3 * CHUNK, 4 * CHUNK, 5 * CHUNK]),
    ],
)
def test_chunk_faults_are_recovered_by_the_mcus_next_offset(
    bench: Bench, fault: str, sent: list[int]
) -> None:
    bench.fault(fault, index=3)
    pushed = bench.push(VENDOR, f"{fault}-1")
    deployment = bench.outcome(pushed["id"])
    assert deployment["state"] == "SUCCEEDED", history(deployment)
    transcript = bench.wire(applied, "APPLY")
    seen = offsets(transcript)
    start = seen.index(2 * CHUNK)
    assert seen[start : start + len(sent)] == sent
    assert transcript.retries == 1
    wanted = transcript.next_offsets
    if fault != "duplicate_chunk":  # the MCU asked for chunk 3 again, then went on
        assert wanted[wanted.index(3 * CHUNK) : wanted.index(3 * CHUNK) + 2] == [3 * CHUNK] * 2
    assert wanted[-1] == STOP and len(seen) == 25 + 1
    assert bench.status()["running_version"] == VENDOR_VERSION
    assert bench.attributes()[2101] == str(pushed["versionNumber"])
    assert bench.status()["faults"] == [], "a chunk fault fires once"


# -- the MCU misbehaves ----------------------------------------------------------------------------


def test_mcu_declines(bench: Bench) -> None:
    bench.fault("mcu_declines")
    deployment = bench.outcome(bench.push(VENDOR, "declined-1")["id"])
    assert deployment["state"] == "DECLINED", history(deployment)
    transcript = bench.wire(lambda t: said(t, "mcu_to_asr") == ["IDLE"], "the decline")
    assert said(transcript, "asr_to_mcu") == ["TRANSFER_BEGIN"]
    assert transcript.chunks == []
    bench.console_expect(r"OTA: declined type=101 .*fault injected \(mcu_declines\)")
    assert_unchanged(bench)


def test_mcu_stops_early(bench: Bench) -> None:
    bench.fault("mcu_stops_early", at=0.5)
    deployment = bench.outcome(bench.push(VENDOR, "stopped-1")["id"])
    assert deployment["state"] == "ABORTED_BY_MCU", history(deployment)
    transcript = bench.wire(lambda t: STOP in t.next_offsets, "the MCU's STOP")
    assert max(offsets(transcript)) < len(VENDOR) / 2 + CHUNK
    assert "VERIFY_SIGNATURE" not in transcript.states
    assert bench.status()["staged_bytes"] == 0
    assert_unchanged(bench)


@pytest.mark.parametrize(("at", "stage"), [(0.0, "offer"), (0.5, "chunk"), (1.0, "verify")])
def test_silent_mcu_times_the_stage_out(bench: Bench, at: float, stage: str) -> None:
    bench.fault("mcu_silent", at=at)
    deployment = bench.outcome(bench.push(VENDOR, f"silent-{stage}")["id"])
    assert (deployment["state"], deployment["reason"]) == ("TIMED_OUT", stage), history(deployment)
    assert bench.status()["mcu_silent"]
    bench.console_expect(r"OTA: going silent at \d+% of the transfer \(fault injected\)")
    if stage == "verify":  # every byte went in, and stays staged for a later attempt
        transcript = bench.wire(lambda t: STOP in t.next_offsets, "the last chunk's answer")
        assert "VERIFY_SIGNATURE" not in transcript.states
        assert bench.status()["staged_bytes"] == len(VENDOR)
    assert_unchanged(bench)
    bench.control.call("clear_faults", board=BOARD)
    assert not bench.status()["mcu_silent"], "clear_faults makes the MCU answer again"


# -- interruptions ---------------------------------------------------------------------------------


def test_asr_reboot_mid_transfer_resumes_in_attempt_2(bench: Bench) -> None:
    bench.fault("asr_reboot", at=0.5)
    pushed = bench.push(APP, "1.1.0")
    deployment = bench.outcome(pushed["id"])
    assert deployment["state"] == "SUCCEEDED", history(deployment)
    interrupted = [h for h in deployment["history"] if h["state"] == "INTERRUPTED"]
    assert [(h["reason"], h["attempt"]) for h in interrupted] == [("ASR reboot", 1)]
    assert deployment["attempt"] == 2 and history(deployment)[-1] == ("SUCCEEDED", 2)
    transcript = bench.wire(applied, "APPLY")
    assert begins(transcript) == 2
    # The MCU kept its bytes: attempt 2's first chunk (at 0 again) is answered with where it had
    # got to, so the image crossed once, plus that one chunk.
    assert offsets(transcript).count(0) == 2 and transcript.retries == 1
    assert len(transcript.chunks) == -(-len(APP) // CHUNK) + 1
    status = bench.status()
    assert (status["asr_reboots"], status["running_version"]) == (1, "1.1.0")
    job_done(bench)


def test_retry_limit_ends_the_deployment_interrupted(bench: Bench, ota_lab: Lab) -> None:
    ota_lab.service.service.max_attempts = 2
    try:
        bench.fault("asr_reboot", at=0.3, times=2)
        pushed = bench.push(VENDOR, "limited-1")

        def exhausted() -> dict | None:
            d = ota_lab.ota.deployment(pushed["id"])
            return d if (d["state"], d["attempt"]) == ("INTERRUPTED", 2) else None

        deployment = wait_until(exhausted, 20, "the second INTERRUPTED")
        assert "retry limit of 2 attempts reached" in deployment["history"][-1]["detail"]
        bell = ota_lab.service.service.work_bell  # the idle ASR long-polls for work
        wait_until(lambda: bell.waiting(bench.target.device_id),
                   what="the ASR to ask for work after the last attempt")  # fmt: skip
        assert ota_lab.ota.deployment(pushed["id"])["state"] == "INTERRUPTED", "offered again"
    finally:
        ota_lab.service.service.max_attempts = 3
    assert bench.status()["asr_reboots"] == 2
    assert_unchanged(bench)


def test_power_loss_mid_transfer_is_reported_and_resumed(bench: Bench) -> None:
    bench.control.call("timeouts", board=BOARD, chunk=20)  # the cut comes first
    bench.fault("mcu_silent", at=0.5)  # holds the transfer at half way, deterministically
    pushed = bench.push(APP, "1.1.0")
    wait_until(lambda: bench.status()["mcu_silent"], what="the transfer to reach half way")
    half = bench.status()["staged_bytes"]
    bench.scpi("OUTP OFF")
    assert bench.status()["asr_job"]["stage"] == "TRANSFERRING", "kept across the power cut"
    bench.control.call("timeouts", board=BOARD, chunk=1)
    bench.power_on()
    deployment = bench.outcome(pushed["id"])
    assert deployment["state"] == "SUCCEEDED", history(deployment)
    interrupted = next(h for h in deployment["history"] if h["state"] == "INTERRUPTED")
    assert (interrupted["reason"], interrupted["attempt"]) == ("power loss", 1)
    assert deployment["attempt"] == 2
    transcript = bench.wire(applied, "APPLY")
    wanted = transcript.next_offsets
    assert half in wanted, "attempt 2 resumed from the bytes the MCU kept"
    assert bench.status()["running_version"] == "1.1.0"


@pytest.mark.parametrize("committed", [True, False], ids=["applied", "not-applied"])
def test_power_cut_after_apply(make_bench, ota_lab: Lab, committed: bool) -> None:
    """The ASR comes back with a job that was APPLYING: the version the MCU boots decides."""
    bench = make_bench()  # off: the handoff up to APPLY is played here, by hand
    pushed = bench.push(VENDOR, f"apply-{committed}")
    device = DeviceClient(ota_lab.service.base_url, bench.target.device_id, bench.secret)
    try:
        device.checkin({})
        for state in ("ACCEPTED", "TRANSFERRING", "TRANSFERRED", "VERIFYING", "APPLYING"):
            device.progress(pushed["id"], state)
    finally:
        device.close()
    flash, version = bench.board.ota.flash, pushed["versionNumber"]
    flash.begin_staging(101, len(VENDOR), version)
    flash.write(0, VENDOR)
    if committed:
        flash.commit(version)
    bench.board.ota.memory.save({"deploymentId": pushed["id"], "attempt": 1, "type": 101,
                                 "versionNumber": version, "stage": "APPLYING"})  # fmt: skip
    bench.power_on()
    deployment = bench.outcome(pushed["id"])
    assert deployment["state"] == "SUCCEEDED", history(deployment)
    if committed:  # the MCU booted the new image: the job succeeded, no new attempt
        assert deployment["attempt"] == 1 and "INTERRUPTED" not in dict(history(deployment))
    else:  # offered again; every byte was still staged, so attempt 2 goes straight to VERIFY
        assert deployment["attempt"] == 2
        transcript = bench.wire(applied, "APPLY")
        assert offsets(transcript) == [0] and transcript.next_offsets == [STOP]
    assert bench.status()["running_version"] == VENDOR_VERSION
    job_done(bench)


# -- the line and the ASR --------------------------------------------------------------------------


def test_line_noise_is_survived(bench: Bench) -> None:
    bench.control.call("timeouts", board=BOARD, chunk=5)
    bench.fault("line_noise", rate=0.05, seed=7)
    pushed = bench.push(VENDOR, "noisy-1")
    deployment = bench.outcome(pushed["id"], timeout=40)
    assert deployment["state"] == "SUCCEEDED", history(deployment)
    transcript = bench.wire(version_written(pushed["versionNumber"]), "the version write")
    bad = [s for s in transcript.skipped if "bad sync checksum" in s.why]
    assert bad, "the sniffer must see (and say) the corrupted syncs"
    transcript.assert_delivered(VENDOR, version_id=pushed["versionNumber"])
    assert bench.status()["running_version"] == VENDOR_VERSION
    assert bench.status()["faults"] == [{"name": "line_noise", "rate": 0.05, "seed": 7}]


def test_no_ota_capability_declines_before_begin(bench: Bench) -> None:
    bench.fault("no_ota_capability")
    deployment = bench.outcome(bench.push(VENDOR, "incapable-1")["id"])
    assert (deployment["state"], deployment["reason"]) == ("DECLINED", "no MCU OTA capability")
    assert "attribute 1206" in deployment["history"][-1]["detail"]
    assert "TRANSFER_BEGIN" not in bench.recorder.transcript().states
    assert_unchanged(bench)


class _Device:
    """The service as the ASR sees it: serves the image, records the progress reports."""

    def __init__(self, image: bytes) -> None:
        self.image, self.reports = image, []

    def download(self, sha256: str, start: int, end: int) -> bytes:
        return self.image[start : end + 1]

    def progress(self, deployment: str, state: str, **details: object) -> None:
        self.reports.append((state, details.get("reason")))

    def report_attributes(self, attributes: dict) -> None:
        pass


def test_no_version_report_after_apply_is_an_apply_failure(tmp_path: Path) -> None:
    """The version stage's timeout: DESIGN §3 calls a missing version write an apply failure."""
    mcu = McuOta(Flash(tmp_path, factory_version="1.0.0"), log=lambda line: None)
    asr: Asr

    def wire(raw: bytes, flip_at: int | None) -> None:  # an MCU whose version write is lost
        for answer in mcu.handle(aflib.decode(raw)):
            if answer.attr_id != aflib.version_attribute(101):
                asr.deliver(aflib.encode(answer))

    asr = Asr(send=wire, log=lambda line: None, timeouts=AsrTimeouts(version=0.2))
    device = _Device(VENDOR)
    asr.connect(device)  # type: ignore[arg-type]
    sha = hashlib.sha256(VENDOR).hexdigest()
    offer = {"deploymentId": "d1", "type": 101, "versionNumber": "7", "size": len(VENDOR),
             "sha256": sha, "attributeSize": 253}  # fmt: skip
    asr._deliver_image(offer)
    assert device.reports[-2:] == [("APPLYING", None), ("APPLY_FAILED", "no version report")]
    assert asr.memory.job() is None
    assert mcu.flash.running_version() == VENDOR_VERSION  # it did boot: only the report is lost


# -- brown-out: real, through the supply -----------------------------------------------------------


def reboot_code(bench: Bench) -> aflib.RebootCode | int | None:
    """The code of the ASR's reboot reason (65019, a string) as the service has it."""
    text = bench.attributes().get(aflib.REBOOT_REASON)
    return aflib.reboot_code(str(text)) if text is not None else None


def test_brownout_is_the_reset_reason_on_console_and_in_the_service(bench: Bench) -> None:
    """A brown-out takes the ASR down with the MCU: the ASR's reboot reason (afLib's 65019
    string) says brown-out (5), a full power cut power-on (0)."""
    power_on = aflib.RebootCode.POWER_ON
    wait_until(lambda: reboot_code(bench) == power_on, what="power-on (0)")
    bench.scpi("VOLT 2.5")  # below min_volts 3.0: held in reset
    assert bench.status()["mcu"] == "off"
    bench.scpi("VOLT 3.3")
    bench.console_expect(r"firmware version: 1\.0\.0\r\nready\r\nreset reason: brownout\r\n")
    brownout = aflib.RebootCode.BROWNOUT
    wait_until(lambda: reboot_code(bench) == brownout, what="brownout (5)")
    assert bench.status()["reset_reason"] == "brownout"
    bench.scpi("CURR 0.01")  # a current limit below the board's boot draw is a brown-out too
    assert bench.status()["mcu"] == "off"
    bench.scpi("OUTP OFF")  # a full power cut: the next boot is a power-on
    bench.scpi("CURR 0.5")
    bench.power_on()
    wait_until(lambda: reboot_code(bench) == power_on, what="power-on again")
    assert bench.status()["reset_reason"] == "power-on"


# -- configuration and the control channel ---------------------------------------------------------


def test_faults_from_the_spec_are_the_baseline_clear_faults_returns_to(make_bench) -> None:
    bench = make_bench(faults=({"name": "mcu_declines"},))
    assert bench.status()["faults"] == [{"name": "mcu_declines"}]
    bench.power_on()
    deployment = bench.outcome(bench.push(VENDOR, "baseline-1")["id"])
    assert deployment["state"] == "DECLINED"
    assert bench.status()["faults"] == [] and bench.status()["fired"] == ["mcu_declines"]
    bench.fault("corrupt_chunk", index=1)
    answer = bench.control.call("clear_faults", board=BOARD)
    assert answer["faults"] == [{"name": "mcu_declines"}]


def test_timeouts_are_set_per_board_and_at_run_time(make_bench) -> None:
    bench = make_bench()
    assert bench.status()["timeouts"] == {**FAST}
    answer = bench.control.call("timeouts", board=BOARD, chunk=2.5, verify=3)
    assert answer["timeouts"] == {**FAST, "chunk": 2.5, "verify": 3.0}
    with pytest.raises(ControlError, match="no stage timeout 'chunck'; the stages are offer"):
        bench.control.call("timeouts", board=BOARD, chunck=1)
    with pytest.raises(ControlError, match="must be a number of seconds above 0"):
        bench.control.call("timeouts", board=BOARD, chunk=0)
    assert bench.status()["timeouts"]["chunk"] == 2.5, "a refused change changes nothing"


def test_control_refuses_faults_it_does_not_know(make_bench) -> None:
    bench = make_bench()
    unknown = r"unknown fault 'corupt_chunk' \(did you mean 'corrupt_chunk'\?\); known: corrupt_"
    with pytest.raises(ControlError, match=unknown):
        bench.fault("corupt_chunk", index=1)
    with pytest.raises(ControlError, match="no emulated board 'nope'"):
        bench.control.call("fault", board="nope", name="mcu_declines")
    with pytest.raises(ControlError, match="brown-out is real on the double"):
        bench.fault("brownout", volts=2.5)
    assert bench.status()["faults"] == []


def test_parse_fault_fills_in_defaults() -> None:
    assert parse_fault({"name": "asr_reboot", "at": 0.5}).as_dict() == {
        "name": "asr_reboot", "at": 0.5, "times": 1,
    }  # fmt: skip
    assert parse_fault({"name": "line_noise", "rate": 0}).get("seed") == 1


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"name": "drop_chunk", "idx": 3}, "has no param 'idx' (did you mean 'index'?)"),
        ({"name": "mcu_silent"}, "fault mcu_silent needs at=..."),
        ({"name": "mcu_stops_early", "at": 1}, "from 0 to below 1, got 1"),
        ({"name": "corrupt_chunk", "index": -1}, "a chunk number from 0, got -1"),
        ({"name": "asr_reboot", "at": True}, "a fraction of the image"),
        ({"name": "mcu_declines", "at": 0.5}, "it takes no params"),
        ({"index": 3}, "a fault is a mapping with a name"),
        ({"name": "power_cut"}, "cut the supply itself"),
    ],
)
def test_parse_fault_says_what_is_wrong(spec: dict, message: str) -> None:
    with pytest.raises(FaultError, match=re.escape(message)):
        parse_fault(spec)


def test_the_spec_checks_faults_and_timeouts() -> None:
    with pytest.raises(DoubleError, match="emulated board 'x': unknown fault 'noise'"):
        EmulatedBoardSpec("x", faults=({"name": "noise"},))
    with pytest.raises(DoubleError, match="emulated board 'x': no stage timeout 'apply'"):
        EmulatedBoardSpec("x", timeouts={"apply": 3})


def test_faults_fire_once() -> None:
    faults = Faults()
    faults.add(parse_fault({"name": "drop_chunk", "index": 4}))
    assert not faults.take_chunk("drop_chunk", 4, 5), "the last chunk has no next to send"
    assert faults.take_chunk("drop_chunk", 4, 6)
    assert not faults.take_chunk("drop_chunk", 4, 6)
    faults.add(parse_fault({"name": "asr_reboot", "at": 0.5, "times": 2}))
    assert not faults.take_at("asr_reboot", 0.4)
    assert faults.take_at("asr_reboot", 0.5) and faults.take_at("asr_reboot", 0.9)
    assert not faults.take_at("asr_reboot", 1.0)
    assert faults.fired == [
        "drop_chunk(index=4)", "asr_reboot(at=0.5, fired at 50%)",
        "asr_reboot(at=0.5, fired at 90%)",
    ]  # fmt: skip
