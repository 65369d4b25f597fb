"""The whole OTA pipeline on an emulated board, upload → SUCCEEDED, stage by stage. A benchmark.

    .venv/bin/python benches/ota_handoff.py [--runs 3]

In one process: rig's local OTA service (`LocalService`) and a board double (`Double`) with one
board, `bench`, whose MCU has a 2 MiB slot. The board is registered as a device of type blinky
(fixtures/profiles/blinky.yaml), its ASR is told its identity over the double's control port, and
it is switched on through its SCPI power supply with pyvisa-py, as a lab would.

Part 1, fast link (bytes cross the emulated UART at once): opaque images of 64 KiB, 256 KiB and
1 MiB, `--runs` times each (after one uncounted 16 KiB warm-up), fresh random bytes every run.
Client side, timed with perf_counter: upload (binaries + moveToRepository + pool record),
associate, push. Service side, from the deployment's history timestamps (ms): QUEUED→OFFERED
(the ASR's next check-in), OFFERED→ACCEPTED (download + TRANSFER_BEGIN), ACCEPTED→TRANSFERRED
(the handoff over the UART), TRANSFERRED→VERIFYING, VERIFYING→APPLYING, APPLYING→SUCCEEDED.
Total = SUCCEEDED's timestamp - the wall clock when the upload began. Handoff KiB/s = image bytes
/ the ACCEPTED→TRANSFERRED time. Every cell is the median over the runs.

Part 2, paced link (each byte takes 10 bits at the baud rate; radio 10 Mbit/s): for 115200 and
38400 baud, the link is switched over the control port, the board power-cycled (the link is
rebuilt at power-on), and a 16 KiB opaque image pushed `--runs` times. The bytes that crossed
the UART (both directions: the handoff is stop-and-wait, so they never overlap) between ACCEPTED
and TRANSFERRED are read from the tap's capture file; theoretical time = bytes x 10 / baud;
efficiency = theoretical / measured (ACCEPTED→TRANSFERRED); ms/chunk+ = (measured - theoretical)
/ the number of chunks (66 of 249 bytes): what each chunk costs beyond its bytes on the wire.

Every run must end SUCCEEDED with the device's attribute 2101 equal to the image's version
number; otherwise the script stops with a message and exit status 1.

Last, the issue-13 summary in one place: upload → SUCCEEDED for 256 KiB on the fast link, the
per-chunk cost there (ACCEPTED→TRANSFERRED / chunks, real afLib framing, every chunk through the
double's link, tap, MCU afLib and flash), paced measured/theory at both bauds, and push →
OFFERED (the push's 202 on the client's wall clock to the deployment's OFFERED timestamp: how
soon the device side learns of work). Runs against older code too (PYTHONPATH=/tmp/before13).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pyvisa

from rig.double.control import DoubleControl
from rig.double.runner import Double
from rig.double.spec import EmulatedBoardSpec
from rig.double.tap import read_capture
from rig.errors import RigError
from rig.ota.client import OtaClient
from rig.ota.pipeline import Pipeline, Target
from rig.ota.service.auth import PartnerAuth
from rig.ota.service.serve import LocalService
from rig.ota.states import TERMINAL
from rig.protocol import aflib

REPO = Path(__file__).resolve().parent.parent
BLINKY = REPO / "fixtures" / "profiles" / "blinky.yaml"
BOARD = "bench"
TYPE = 101
KIB = 1024
SIZES = (64 * KIB, 256 * KIB, 1024 * KIB)
PACED_BYTES = 16 * KIB
PACED_BAUDS = (115200, 38400)
CHUNKS = -(-PACED_BYTES // aflib.max_chunk(253))  # blinky's otaAttributeSize: 249 B a chunk
RADIO_BPS = 10_000_000
TIMEOUT_S = 300.0
CLIENT_STAGES = ("upload", "associate", "push")
SERVICE_STAGES = (
    ("QUEUED", "OFFERED", "QUEUED→OFFERED (check-in)"),
    ("OFFERED", "ACCEPTED", "OFFERED→ACCEPTED (download+BEGIN)"),
    ("ACCEPTED", "TRANSFERRED", "ACCEPTED→TRANSFERRED (handoff)"),
    ("TRANSFERRED", "VERIFYING", "TRANSFERRED→VERIFYING"),
    ("VERIFYING", "APPLYING", "VERIFYING→APPLYING"),
    ("APPLYING", "SUCCEEDED", "APPLYING→SUCCEEDED"),
)


class BenchFailure(Exception):
    """A run did not end as it must."""


@dataclass
class Bench:
    """The running service, double and clients, wired to one board."""

    ota: OtaClient
    pipeline: Pipeline
    target: Target
    control: DoubleControl
    psu: pyvisa.resources.MessageBasedResource
    capture: Path
    runs_done: int = 0

    def power(self, on: bool) -> None:
        self.psu.write("OUTP ON" if on else "OUTP OFF")
        state = self.psu.query("OUTP?").strip()  # a query: the write has been handled
        if state not in (("1", "ON") if on else ("0", "OFF")):
            raise BenchFailure(f"the board's supply says OUTP? = {state!r} after OUTP {on}")


@dataclass
class Run:
    """One push, upload → SUCCEEDED."""

    size: int
    ms: dict[str, float] = field(default_factory=dict)
    deployment: dict = field(default_factory=dict)

    def timestamp(self, state: str) -> int:
        for entry in self.deployment["history"]:
            if entry["state"] == state:
                return entry["timestamp"]
        seen = " → ".join(h["state"] for h in self.deployment["history"])
        raise BenchFailure(f"deployment {self.deployment['id']} has no {state} (history: {seen})")


def push_one(bench: Bench, data: bytes, label: str) -> Run:
    """Upload, associate and push `data`, wait for the outcome, and check it."""
    ota, target = bench.ota, bench.target
    bench.runs_done += 1
    version = f"bench-{label}-{bench.runs_done}-{uuid.uuid4().hex[:8]}"
    run = Run(len(data))
    clock = time.perf_counter
    wall_start = time.time() * 1000
    t0 = clock()
    image = ota.upload_image(data, type_=TYPE, name="ota-handoff-bench", version=version,
                             description="benchmark image (opaque)")  # fmt: skip
    t1 = clock()
    ota.associate(target.device_type, TYPE, image["versionNumber"])
    t2 = clock()
    pushed = ota.push(target.device_type, image["id"], target.device_id)
    t3 = clock()
    wall_pushed = time.time() * 1000  # the 202 is in: the deployment is queued
    run.ms.update(upload=(t1 - t0) * 1000, associate=(t2 - t1) * 1000, push=(t3 - t2) * 1000)
    run.deployment = ota.wait_for_deployment(
        pushed["deploymentId"], {"SUCCEEDED"} | TERMINAL, TIMEOUT_S
    )
    states = " → ".join(h["state"] for h in run.deployment["history"])
    if run.deployment["state"] != "SUCCEEDED":
        raise BenchFailure(
            f"{label} run {bench.runs_done}: deployment {run.deployment['id']} ended "
            f"{run.deployment['state']} (reason {run.deployment['reason']!r}; history: {states})"
        )
    attributes = {a["id"]: a["value"] for a in ota.device(target.device_id)["attributes"]}
    if str(attributes.get(2101)) != str(image["versionNumber"]):
        raise BenchFailure(
            f"{label} run {bench.runs_done}: deployment SUCCEEDED but the device's attribute "
            f"2101 is {attributes.get(2101)!r}, not the image's version number "
            f"{image['versionNumber']}"
        )
    for start, end, name in SERVICE_STAGES:
        run.ms[name] = run.timestamp(end) - run.timestamp(start)
    run.ms["total"] = run.timestamp("SUCCEEDED") - wall_start
    run.ms["push→OFFERED"] = run.timestamp("OFFERED") - wall_pushed
    run.ms["ms/chunk"] = run.ms[SERVICE_STAGES[2][2]] / -(-len(data) // aflib.max_chunk(253))
    run.ms["handoff KiB/s"] = (len(data) / KIB) / max(run.ms[SERVICE_STAGES[2][2]] / 1000, 1e-3)
    return run


def uart_bytes(capture: Path, start_ms: int, end_ms: int) -> dict[str, int]:
    """Bytes per direction the tap recorded with start_ms <= t <= end_ms (t in seconds)."""
    counts = {"asr_to_mcu": 0, "mcu_to_asr": 0}
    for t, direction, data in read_capture(capture):
        if start_ms / 1000 <= t <= end_ms / 1000:
            counts[direction] += len(data)
    return counts


def paced(bench: Bench, baud: int, runs: int) -> dict[str, float]:
    """The 16 KiB handoff over a paced UART at `baud`; medians over `runs`."""
    bench.control.call("link", board=BOARD, speed="paced", baud=baud, radio_bps=RADIO_BPS)
    bench.power(False)
    bench.power(True)  # the link is rebuilt at power-on with the new speed
    rows: list[dict[str, float]] = []
    for _ in range(runs):
        run = push_one(bench, os.urandom(PACED_BYTES), f"paced-{baud}")
        accepted, transferred = run.timestamp("ACCEPTED"), run.timestamp("TRANSFERRED")
        counts = uart_bytes(bench.capture, accepted, transferred)
        crossed = counts["asr_to_mcu"] + counts["mcu_to_asr"]
        if crossed < PACED_BYTES:
            raise BenchFailure(
                f"paced {baud}: the tap saw only {crossed} bytes between ACCEPTED and "
                f"TRANSFERRED for a {PACED_BYTES}-byte image ({bench.capture})"
            )
        theoretical = crossed * 10 / baud * 1000
        measured = transferred - accepted
        rows.append({
            "asr_to_mcu": counts["asr_to_mcu"], "mcu_to_asr": counts["mcu_to_asr"],
            "theoretical": theoretical, "measured": measured,
            "ratio": measured / theoretical, "efficiency": theoretical / measured,
            "per chunk": (measured - theoretical) / CHUNKS,
        })  # fmt: skip
    return {key: statistics.median(r[key] for r in rows) for key in rows[0]}


def fast(bench: Bench, runs: int) -> dict[int, dict[str, float]]:
    """Medians per size over `runs`, on the fast link."""
    push_one(bench, os.urandom(16 * KIB), "warm-up")  # the board has booted, the ASR checks in
    results: dict[int, list[Run]] = {size: [] for size in SIZES}
    for _ in range(runs):
        for size in SIZES:  # round-robin: background load weighs on every size alike
            results[size].append(push_one(bench, os.urandom(size), f"{size // KIB}KiB"))
    return {
        size: {key: statistics.median(r.ms[key] for r in done) for key in done[0].ms}
        for size, done in results.items()
    }


def report_fast(medians: dict[int, dict[str, float]], runs: int) -> None:
    print(f"OTA upload → SUCCEEDED on the emulated board, fast link (median of {runs} runs, ms)")
    rows = [*CLIENT_STAGES, *(name for _, _, name in SERVICE_STAGES), "total", "push→OFFERED",
            "ms/chunk", "handoff KiB/s"]  # fmt: skip
    width = max(map(len, rows)) + 2
    print(f"{'stage':<{width}}" + "".join(f"{f'{size // KIB} KiB':>12}" for size in medians))
    for row in rows:
        digits = {"handoff KiB/s": 0, "ms/chunk": 3}.get(row, 1)
        cells = "".join(f"{m[row]:>12.{digits}f}" for m in medians.values())
        print(f"{row:<{width}}{cells}")


def report_paced(results: dict[int, dict[str, float]], runs: int) -> None:
    print()
    print(f"Paced UART, {PACED_BYTES // KIB} KiB opaque image, radio {RADIO_BPS / 1e6:g} Mbit/s "
          f"(median of {runs} runs)")  # fmt: skip
    header = ("baud", "ASR→MCU B", "MCU→ASR B", "theory ms", "measured ms", "meas/theory",
              "efficiency", "ms/chunk+")  # fmt: skip
    print("".join(f"{h:>12}" for h in header))
    for baud, r in results.items():
        print(
            f"{baud:>12}{r['asr_to_mcu']:>12.0f}{r['mcu_to_asr']:>12.0f}{r['theoretical']:>12.1f}"
            f"{r['measured']:>12.1f}{r['ratio']:>12.2f}{r['efficiency']:>12.1%}"
            f"{r['per chunk']:>12.2f}"
        )
    print(f"ms/chunk+ = (measured - theory) / {CHUNKS} chunks: time per chunk beyond the wire's")


def report_targets(medians: dict[int, dict[str, float]], paced: dict[int, dict[str, float]],
                   runs: int) -> None:  # fmt: skip
    """Issue 13's figures for one OTA, side by side with its targets."""
    big = medians[256 * KIB]
    offered = statistics.median(m["push→OFFERED"] for m in medians.values())
    print()
    print(f"Issue 13 targets (medians of {runs} runs)          measured      target")
    print(f"  upload → SUCCEEDED, 256 KiB, fast link      {big['total']:>8.0f} ms   ≤ 500 ms")
    print(f"  per chunk on the fast link (249 B, afLib)   {big['ms/chunk']:>8.3f} ms   ≤ 0.2 ms")
    for baud, r in paced.items():
        print(f"  paced {baud:>6} baud, measured / wire time   {r['ratio']:>8.3f}      ≤ 1.05")
    print(f"  push → OFFERED (all fast-link runs)         {offered:>8.0f} ms   ≤ 20 ms")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="counted runs per case (default 3)")
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    started = time.monotonic()
    rm = pyvisa.ResourceManager("@py")
    try:
        with tempfile.TemporaryDirectory(prefix="rig-ota-handoff-") as folder:
            tmp = Path(folder)
            partners = {"lab": PartnerAuth("lab", "tok", "lab")}
            spec = EmulatedBoardSpec(BOARD, slot_bytes=2 * 1024 * KIB)
            with (
                LocalService(tmp / "ota", partners) as svc,
                Double([spec], tmp / "double") as double,
                OtaClient(svc.base_url, partner="lab", token="tok", timeout_s=120) as ota,
            ):
                info = double.info()[0]
                device_id = f"bench-{uuid.uuid4().hex[:8]}"
                pipeline = Pipeline(ota)
                target = Target(device_id, "blinky", profile=BLINKY)
                pipeline.ensure_image_type(TYPE, "application")
                secret = pipeline.ensure_device(target)
                pipeline.publish(target, TYPE)
                control = DoubleControl(info["control"])
                psu = rm.open_resource(info["power"], read_termination="\n",
                                       write_termination="\n")  # fmt: skip
                try:
                    control.call("ota", board=BOARD, url=svc.base_url, device_id=device_id,
                                 secret=secret)  # fmt: skip
                    bench = Bench(ota, pipeline, target, control, psu,
                                  Path(info["tap"]["capture"]))  # fmt: skip
                    bench.power(True)
                    medians = fast(bench, args.runs)
                    paced_results = {baud: paced(bench, baud, args.runs) for baud in PACED_BAUDS}
                    bench.power(False)
                finally:
                    psu.close()
                    control.close()
    except (BenchFailure, RigError, pyvisa.Error) as exc:
        print(f"ota_handoff: FAILED: {exc}", file=sys.stderr)
        return 1
    finally:
        rm.close()
    report_fast(medians, args.runs)
    report_paced(paced_results, args.runs)
    report_targets(medians, paced_results, args.runs)
    print(f"\n{os.cpu_count()} cores, Python {sys.version.split()[0]}, "
          f"{time.monotonic() - started:.0f} s in all")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
