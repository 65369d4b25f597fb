"""The framework's built-in measurements of an OTA: stage durations, throughput, supply current.

Runs on any board with a power supply that measures current and a sniffer; limits come from the
board's `limits:` in boards.yaml (none on the emulated board, so only the values are judged here).
"""

from pathlib import Path

import pytest

SAMPLES = Path(__file__).resolve().parents[2] / "firmware_samples"


@pytest.mark.requires("power", "console", "tap")
def test_an_ota_measures_its_stages_throughput_and_current(
    board, pipeline, ota_target, handoff, measure
):
    board.boot()
    image = (SAMPLES / "blinky-app-1.1.0.rigimg").read_bytes()
    run = pipeline.run(image, ota_target, type_=101, version="1.1.0", until="SUCCEEDED",
                       timeout_s=60, board=board, handoff=handoff)  # fmt: skip
    assert run.deployment["state"] == "SUCCEEDED", run.states
    got = {m.name: m for m in measure.items}

    assert got["boot_time"].unit == "s" and 0 < got["boot_time"].value < 10
    # every stage the deployment went through has a duration, and they add up to its total
    stages = [f"ota_{s.lower()}_s" for s in ("QUEUED", "OFFERED", "ACCEPTED", "TRANSFERRING")]
    assert all(name in got for name in stages), sorted(got)
    parts = sum(m.value for n, m in got.items() if n.startswith("ota_") and n != "ota_total_s")
    assert parts == pytest.approx(got["ota_total_s"].value, abs=0.002)
    # the wire saw the chunks go by: its throughput, not the service's estimate
    assert got["handoff_throughput"].source == "wire"
    assert got["handoff_throughput"].value == pytest.approx(
        handoff.transcript().throughput / 1024, rel=0.2
    )
    # the supply: the MCU draws more while it writes the image to flash than when idle
    idle, during = got["idle_current"].value, got["transfer_current"].value
    assert got["idle_current"].unit == "mA" and idle > 1
    assert during > idle * 1.3, (idle, during)


@pytest.mark.requires("power")
def test_a_power_trace_on_request_samples_the_supply(board, power_trace):
    trace = power_trace(interval_s=0.01)
    board.boot()
    trace.stop()
    amps = [a for _, a in trace.samples]
    assert trace.error is None
    assert len(amps) >= 3, "the trace sampled during the boot"
    assert min(amps) < 0.001 < max(amps)  # it saw the supply off and the board running


@pytest.mark.requires("power")
def test_boot_current(board, measure, power_trace):
    """The README's example, as written there."""
    trace = power_trace()  # samples MEAS:CURR? until the test ends
    board.boot()
    measure("boot_current", trace.peak() * 1000, low=10, high=60, unit="mA")
    measure("supply_volts", board.power.measure_volts(), unit="V")  # limits from boards.yaml
    assert [m.passed for m in measure.items if m.source == "test"] == [True, True]


@pytest.mark.requires("emulated", "power", "console")
def test_a_push_during_a_reboot_measures_idle_after_it(board, pipeline, ota_target, measure):
    """A board still booting when the push comes (as after a previous update) is not at rest:
    its boot draw, however steady, is not its idle current."""
    board.boot()
    board.console.sendline("reboot")  # the MCU draws its boot current again until the banner
    board.console.expect_exact("rebooting", timeout=5)
    image = (SAMPLES / "blinky-app-1.1.0.rigimg").read_bytes()
    run = pipeline.run(image, ota_target, type_=101, version="1.1.0", until="SUCCEEDED",
                       timeout_s=60, board=board)  # fmt: skip
    assert run.deployment["state"] == "SUCCEEDED", run.states
    idle = next(m.value for m in measure.items if m.name == "idle_current")
    spec = board.config.double
    assert idle == pytest.approx(spec.idle_amps * 1000, rel=0.05), (
        f"idle_current {idle:.1f} mA; the board idles at {spec.idle_amps * 1000:g} mA and "
        f"boots at {spec.boot_amps * 1000:g} mA"
    )
