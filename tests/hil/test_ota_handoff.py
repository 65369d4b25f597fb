"""An update pushed through the pipeline reaches the MCU, proved by three independent witnesses:
the wire (the sniffer's transcript), the MCU's console, and the OTA service."""

from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from rig import event_bytes

SAMPLES = Path(__file__).resolve().parents[2] / "firmware_samples"


@pytest.mark.requires("power", "console", "tap")
def test_update_is_handed_to_the_mcu_and_reported(board, pipeline, ota_target, ota, handoff):
    board.boot()
    image = (SAMPLES / "blinky-app-1.1.0.rigimg").read_bytes()
    run = pipeline.run(image, ota_target, type_=101, version="1.1.0", until="SUCCEEDED",
                       timeout_s=60, board=board, handoff=handoff,
                       expect_version="1.1.0")  # fmt: skip
    version_id = int(run.image["versionNumber"])
    assert run.witnesses is not None  # service, wire and console agreed (else it raised)

    # The service: the deployment succeeded, through every stage, and the device reports it.
    assert run.deployment["state"] == "SUCCEEDED", run.states
    for stage in ("QUEUED", "OFFERED", "ACCEPTED", "TRANSFERRING", "VERIFYING", "APPLYING"):
        assert stage in run.states
    reported = {a["id"]: a["value"] for a in ota.device(ota_target.device_id)["attributes"]}
    assert reported[2101] == str(version_id)

    # The wire: BEGIN, every chunk, VERIFY with the image's hash, APPLY, the version report.
    transcript = handoff.wait_for(lambda t: 2101 in {e.message.attr_id for e in t.messages})
    transcript.assert_delivered(image, version_id=version_id, image_type=101)
    assert transcript.chunks and transcript.throughput > 0

    # The console: the MCU rebooted into the new image (the banner was the console witness).
    assert board.query_version(timeout_s=5) == "1.1.0"


@pytest.mark.requires("power", "console", "tap")
def test_update_survives_a_power_cycle(board, pipeline, ota_target):
    image = (SAMPLES / "vendor-app.bin").read_bytes()  # an opaque vendor image passes untouched
    board.boot()
    run = pipeline.run(image, ota_target, type_=101, version="9.0.0", until="SUCCEEDED",
                       timeout_s=60)  # fmt: skip
    assert run.deployment["state"] == "SUCCEEDED", run.states
    version = board.boot()  # flash is kept across the power cycle
    assert version.startswith("opaque-")


@pytest.mark.requires("power", "console", "tap")
def test_intel_hex_vendor_image_passes_untouched(board, pipeline, ota_target, handoff):
    image = (SAMPLES / "vendor-app.hex").read_bytes()
    board.boot()
    run = pipeline.run(image, ota_target, type_=101, version="9.1.0", until="SUCCEEDED",
                       timeout_s=60)  # fmt: skip
    assert run.deployment["state"] == "SUCCEEDED", run.states
    handoff.wait_for_delivery(image, version_id=int(run.image["versionNumber"]))


@pytest.mark.requires("power", "console", "tap")
def test_two_image_types_on_one_device(board, ota, pipeline, ota_target, handoff):
    """The application (101) and a second type (102) both reach the device and both report."""
    pipeline.ensure_image_type(102, "heater firmware")
    profile = yaml.safe_load(ota_target.profile.read_text()) if ota_target.profile else {}
    profile["otaImageTypes"] = sorted({*profile.get("otaImageTypes", []), 101, 102})
    ota_target = replace(ota_target, profile=profile)  # this device type now enables both
    board.boot()
    app = (SAMPLES / "blinky-app-1.1.0.rigimg").read_bytes()
    heater = (SAMPLES / "kettle-heater-1.0.0.rigimg").read_bytes()
    first = pipeline.run(app, ota_target, type_=101, version="1.1.0", until="SUCCEEDED",
                         timeout_s=60)  # fmt: skip
    second = pipeline.run(heater, ota_target, type_=102, version="1.0.0", until="SUCCEEDED",
                          timeout_s=60)  # fmt: skip
    assert (first.deployment["state"], second.deployment["state"]) == ("SUCCEEDED", "SUCCEEDED")
    transcript = handoff.wait_for(lambda t: 2102 in {e.message.attr_id for e in t.messages})
    transcript.assert_delivered(heater, version_id=int(second.image["versionNumber"]),
                                image_type=102)  # fmt: skip
    reported = {a["id"]: a["value"] for a in ota.device(ota_target.device_id)["attributes"]}
    assert reported[2101] == first.image["versionNumber"]
    assert reported[2102] == second.image["versionNumber"]


@pytest.mark.requires("emulated", "tap")
def test_paced_link_takes_the_time_the_baud_rate_allows(
    board, pipeline, ota_target, handoff, double_control
):
    baud = 38400
    double_control.call("link", board=board.name, speed="paced", baud=baud, radio_bps=2_000_000)
    try:
        board.boot()  # the link is rebuilt at power-on, now paced
        image = (SAMPLES / "vendor-app.bin").read_bytes()
        run = pipeline.run(image, ota_target, type_=101, version="9.2.0", until="SUCCEEDED",
                           timeout_s=60)  # fmt: skip
        assert run.deployment["state"] == "SUCCEEDED", run.states
        transcript = handoff.wait_for(lambda t: "APPLY" in t.states)
    finally:
        double_control.call("link", board=board.name, speed="fast")
        board.boot()
    first = next(e for e in transcript.events if e.t >= transcript.chunks[0].t)
    last_offset = next(
        e for e in reversed(transcript.messages)
        if e.message.attr_id == 1302 and e.direction == "mcu_to_asr"
    )  # fmt: skip
    window = [e for e in transcript.events if first.t <= e.t <= last_offset.t]
    wire_bytes = sum(len(event_bytes(e)) for e in window)
    theoretical = wire_bytes * 10 / baud
    measured = last_offset.t - first.t
    # The link paces against absolute deadlines, so a late wake-up (a loaded machine, the
    # sniffer's reader) shifts an end of the window by up to `slack_s` instead of adding up per
    # chunk. Pacing ignored (~0 s) or off by 2x both fall outside.
    slack_s = 0.25
    assert 0.95 * theoretical - slack_s <= measured <= 1.05 * theoretical + slack_s, (
        f"{wire_bytes} bytes at {baud} baud took {measured:.3f} s between the first chunk and "
        f"the last offset on the sniffer; the wire allows {theoretical:.3f} s"
    )
