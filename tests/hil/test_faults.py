"""Every way the handoff can fail is reported with its reason, and no board is bricked.

Each test asserts together: the deployment's terminal state and reason (the service), what the
sniffer saw (the wire), the console, and the version the board runs afterwards: the old one on
every failure, the new one on every recovered success. Tests that need only a power supply and
a sniffer carry `requires("power", "tap")` and run on real benches; injected faults need the
double (`requires("faults")`).
"""

import hashlib
import itertools
import time
from pathlib import Path

import pytest
import yaml

from rig import AFTER_APPLY, OtaClientError, aflib, cut_power_at, image

SAMPLES = Path(__file__).resolve().parents[2] / "firmware_samples"
PROFILES = Path(__file__).resolve().parents[2] / "fixtures" / "profiles"
FAST = {"offer": 2.0, "chunk": 1.0, "verify": 2.0, "version": 2.0}
_versions = itertools.count(1)


def fresh_image(board) -> tuple[bytes, str]:
    """A rig image with a version no other test used, so the running version tells."""
    version = f"3.{next(_versions)}.{abs(hash(board.name)) % 1000}"
    payload = image.make_payload(12_000, seed=version, banner=f"rig-app fault-test {version}")
    return image.build(payload, image_type=101, version=version, security_counter=1), version


def push(pipeline, target, data, version, **kwargs):
    return pipeline.run(data, target, type_=101, version=version, until="SUCCEEDED",
                        timeout_s=60, **kwargs)  # fmt: skip


@pytest.fixture
def ready(board, request):
    """The board booted; on the double, short stage timeouts so failures end quickly."""
    if board.control_port:
        request.getfixturevalue("faults").timeouts(**FAST)
    board.boot()
    return board


# -- injected faults: the double misbehaves as a real board can ---------------------------------


@pytest.mark.requires("faults", "tap")
def test_corrupt_chunk_fails_verify_and_keeps_the_old_image(
    ready, faults, pipeline, ota_target, handoff
):
    before = ready.query_version()
    # An opaque image: the MCU has no header to check, so the corruption shows where DESIGN
    # puts it, in VERIFY (a rig image would be refused by its payload hash first).
    data, version = image.make_payload(12_000, seed=f"opaque-{next(_versions)}"), "4.0.0"
    faults.inject("corrupt_chunk", index=3)
    run = push(pipeline, ota_target, data, version)
    assert run.deployment["state"] == "VERIFY_FAILED", run.states
    transcript = handoff.wait_for(lambda t: "FAIL" in t.states)
    verify = [
        i for _, i in transcript.ota_infos("mcu_to_asr") if i.state.name == "VERIFY_SIGNATURE"
    ]
    assert verify and verify[-1].sha256 != image_sha(data)
    assert "APPLY" not in transcript.states
    assert ready.query_version() == before


@pytest.mark.requires("faults", "tap")
@pytest.mark.parametrize("fault", ["drop_chunk", "duplicate_chunk", "reorder_chunks"])
def test_chunk_faults_are_recovered(ready, faults, pipeline, ota_target, handoff, fault):
    data, version = fresh_image(ready)
    faults.inject(fault, index=3)
    run = push(pipeline, ota_target, data, version)
    assert run.deployment["state"] == "SUCCEEDED", run.states
    transcript = handoff.wait_for_delivery(data, version_id=int(run.image["versionNumber"]))
    assert transcript.retries >= 1  # the MCU asked again for the offset it expected
    assert ready.query_version() == version


@pytest.mark.requires("faults", "tap")
def test_mcu_declines(ready, faults, pipeline, ota_target, handoff):
    before = ready.query_version()
    data, version = fresh_image(ready)
    faults.inject("mcu_declines")
    run = push(pipeline, ota_target, data, version)
    assert run.deployment["state"] == "DECLINED", run.states
    transcript = handoff.wait_for(lambda t: any(i.state.name == "IDLE"
                                                for _, i in t.ota_infos("mcu_to_asr")))  # fmt: skip
    assert not transcript.chunks  # declined: nothing was sent
    assert ready.query_version() == before


@pytest.mark.requires("faults", "tap")
def test_mcu_stops_the_transfer_early(ready, faults, pipeline, ota_target, handoff):
    before = ready.query_version()
    data, version = fresh_image(ready)
    faults.inject("mcu_stops_early", at=0.3)
    run = push(pipeline, ota_target, data, version)
    assert run.deployment["state"] == "ABORTED_BY_MCU", run.states
    transcript = handoff.wait_for(lambda t: 0xFFFFFFFF in t.next_offsets)
    assert max(c.offset for c in transcript.chunks) < len(data) * 0.5
    assert ready.query_version() == before


@pytest.mark.requires("faults", "tap")
def test_mcu_goes_silent(ready, faults, pipeline, ota_target):
    before = ready.query_version()
    data, version = fresh_image(ready)
    faults.inject("mcu_silent", at=0.3)
    run = push(pipeline, ota_target, data, version)
    assert run.deployment["state"] == "TIMED_OUT", run.states
    assert "chunk" in (run.deployment.get("reason") or "")
    faults.clear()
    ready.boot()
    assert ready.query_version() == before


@pytest.mark.requires("faults", "tap")
def test_image_that_fails_to_boot_falls_back(ready, pipeline, ota_target, handoff):
    before = ready.query_version()
    crash = (SAMPLES / "blinky-app-1.2.0-crash.rigimg").read_bytes()
    run = push(pipeline, ota_target, crash, "1.2.0")
    assert run.deployment["state"] == "APPLY_FAILED", run.states
    handoff.wait_for(lambda t: "APPLY" in t.states).assert_not_applied()
    assert ready.wait_for_banner(timeout_s=10) == before  # the fallback's boot, the old image
    assert ready.query_version() == before


@pytest.mark.requires("faults", "tap")
def test_asr_reboot_mid_transfer_resumes_in_a_second_attempt(
    ready, faults, pipeline, ota_target, ota
):
    data, version = fresh_image(ready)
    faults.inject("asr_reboot", at=0.5)
    run = push(pipeline, ota_target, data, version)
    assert run.deployment["state"] == "SUCCEEDED", run.states
    assert "INTERRUPTED" in run.states and run.deployment["attempt"] >= 2
    assert ready.query_version() == version


@pytest.mark.requires("faults", "tap")
def test_line_noise_is_survived(ready, faults, pipeline, ota_target, handoff):
    data, version = fresh_image(ready)
    faults.inject("line_noise", rate=0.05)
    run = push(pipeline, ota_target, data, version)
    assert run.deployment["state"] == "SUCCEEDED", run.states
    transcript = handoff.wait_for_delivery(data, version_id=int(run.image["versionNumber"]))
    assert transcript.skipped  # the sniffer saw the bad syncs and said so
    assert ready.query_version() == version


@pytest.mark.requires("faults", "tap")
def test_no_mcu_ota_capability(ready, faults, pipeline, ota_target, handoff):
    before = ready.query_version()
    data, version = fresh_image(ready)
    faults.inject("no_ota_capability")
    run = push(pipeline, ota_target, data, version)
    assert run.deployment["state"] == "DECLINED", run.states
    assert "capab" in (run.deployment.get("reason") or "").lower()
    assert "TRANSFER_BEGIN" not in handoff.transcript().states  # nothing reached the MCU
    assert ready.query_version() == before


# -- the supply and the sniffer only: these run on a real bench too ------------------------------


@pytest.mark.requires("power", "tap")
@pytest.mark.parametrize("at", [0.1, 0.5, 0.9])
def test_power_cut_during_transfer_is_recovered(ready, pipeline, ota_target, handoff, at, request):
    data, version = fresh_image(ready)
    if ready.control_port:  # on the double, pace the link as a real UART is: a cut lands in time
        control = request.getfixturevalue("double_control")
        control.call("link", board=ready.name, speed="paced", baud=115200)
        request.addfinalizer(lambda: control.call("link", board=ready.name, speed="fast"))
        ready.boot()
    cut = cut_power_at(ready, handoff, at, off_s=0.3)
    run = push(pipeline, ota_target, data, version)
    cut.wait()
    assert cut.fraction_seen >= at
    assert run.deployment["state"] == "SUCCEEDED", run.states
    assert "INTERRUPTED" in run.states and run.deployment["attempt"] >= 2
    assert ready.query_version() == version


@pytest.mark.requires("power", "tap")
def test_power_cut_right_after_apply(ready, pipeline, ota_target, handoff, ota):
    before = ready.query_version()
    data, version = fresh_image(ready)
    cut = cut_power_at(ready, handoff, AFTER_APPLY, off_s=0.3)
    run = push(pipeline, ota_target, data, version)
    cut.wait()
    ready.wait_for_banner()
    now = ready.query_version()
    assert now in (before, version)
    reported = {a["id"]: a["value"] for a in ota.device(ota_target.device_id)["attributes"]}
    if run.deployment["state"] == "SUCCEEDED":  # the service and the board must agree
        assert now == version and reported[2101] == run.image["versionNumber"]
    else:
        assert now == before and reported.get(2101) != run.image["versionNumber"]


@pytest.mark.requires("emulated", "power", "console")  # the double's brown-out wording
def test_brownout_is_reported_as_the_reset_reason(ready, ota, ota_target):
    ready.power.set_volts(2.5)  # below the board's minimum: it browns out
    ready.power.set_volts(3.3)
    ready.wait_for_banner()
    ready.console.expect(r"reset reason: brownout", timeout=5)
    if ready.control_port or ota_target:  # the ASR reports its reboot reason to the service
        brownout, code, reported = aflib.RebootCode.BROWNOUT, None, {}
        deadline = time.monotonic() + 10
        while code != brownout and time.monotonic() < deadline:
            device = ota.device(ota_target.device_id)
            reported = {a["id"]: str(a["value"]) for a in device["attributes"]}
            text = reported.get(aflib.REBOOT_REASON)
            code = aflib.reboot_code(text) if text else None
            time.sleep(0.05)  # sleep-ok: polling interval of a deadline-bounded wait
        assert code == brownout, reported  # the ASR's 65019 string: its second field, 5


@pytest.mark.requires("power", "tap")
def test_downgrade_and_wrong_type_are_refused_before_the_device(
    ready, ota, pipeline, ota_target, handoff
):
    older = ota.upload_image(b"old build", type_=101, name=f"old-{ready.name}", version="0.0.1",
                             device_types=[ota_target.device_type])  # fmt: skip
    data, version = fresh_image(ready)
    newer = push(pipeline, ota_target, data, version)  # a higher version number than `older`
    assert newer.deployment["state"] == "SUCCEEDED", newer.states
    wire_before = len(handoff.transcript().messages)
    with pytest.raises(OtaClientError) as downgrade:
        ota.push(ota_target.device_type, older["id"], ota_target.device_id)
    assert downgrade.value.rule == "R8" and "downgrade" in downgrade.value.message
    pipeline.ensure_image_type(102, "heater")
    if not any(dt["id"] == "kettle" for dt in ota.device_types()):
        ota.add_device_type("kettle")
    ota.publish_profile("kettle", yaml.safe_load((PROFILES / "kettle.yaml").read_text()))
    heater = ota.upload_image((SAMPLES / "kettle-heater-1.0.0.rigimg").read_bytes(), type_=102,
                              name=f"heater-{version}", version="1.0.0")  # fmt: skip
    with pytest.raises(OtaClientError) as wrong_type:
        ota.push(ota_target.device_type, heater["id"], ota_target.device_id)
    assert wrong_type.value.rule == "R8"
    transcript = handoff.transcript()
    assert "TRANSFER_BEGIN" not in [s for s in transcript.states[wire_before:]]
    assert ready.query_version() == version


def image_sha(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()
