"""An update pushed through the pipeline reaches the MCU, proved by three independent witnesses:
the wire (the sniffer's transcript), the MCU's console, and the OTA service."""

from pathlib import Path

import pytest

SAMPLES = Path(__file__).resolve().parents[2] / "firmware_samples"


@pytest.mark.requires("power", "console", "tap")
def test_update_is_handed_to_the_mcu_and_reported(board, pipeline, ota_target, ota, handoff):
    board.boot()
    image = (SAMPLES / "blinky-app-1.1.0.rigimg").read_bytes()
    run = pipeline.run(image, ota_target, type_=101, version="1.1.0", until="SUCCEEDED",
                       timeout_s=60)  # fmt: skip
    version_id = int(run.image["versionNumber"])

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

    # The console: the MCU rebooted into the new image.
    board.console.expect(r"firmware version: 1\.1\.0\r?\n", timeout=10)
    board.console.sendline("version")
    board.console.expect(r"firmware version: 1\.1\.0\r?\n", timeout=5)


@pytest.mark.requires("power", "console", "tap")
def test_update_survives_a_power_cycle(board, pipeline, ota_target):
    image = (SAMPLES / "vendor-app.bin").read_bytes()  # an opaque vendor image passes untouched
    board.boot()
    run = pipeline.run(image, ota_target, type_=101, version="9.0.0", until="SUCCEEDED",
                       timeout_s=60)  # fmt: skip
    assert run.deployment["state"] == "SUCCEEDED", run.states
    version = board.boot()  # flash is kept across the power cycle
    assert version.startswith("opaque-")
