"""The OTA pipeline through the local service, stage by stage. A benchmark, not a test.

    .venv/bin/python benches/ota_pipeline.py [--runs 10] [--mib 1 16]

A `LocalService` (uvicorn in a thread, SQLite WAL, blobs on disk) in a temporary folder gets
image type 101, device type blinky with fixtures/profiles/blinky.yaml, and one registered
device. Then, per run and per image size, over real HTTP with the project's `OtaClient`:
- upload: `POST /binaries` (streamed, hashed, fsynced), `POST /binaries/moveToRepository`,
  `POST /pool` (the image record);
- associate: `POST /deviceTypes/blinky/firmwareImages`;
- push: `PUT /deviceTypes/blinky/firmwareImages/{id}/push` (each push supersedes the last).
Every run uploads fresh random bytes (no deduplication). One warm-up run per size is not
counted. Figures are the median and the minimum over the runs, in milliseconds; the upload rate
is MiB/s over the whole upload stage; the last line compares the per-MiB upload time of the
largest size with the smallest.
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from rig.ota.client import OtaClient
from rig.ota.service.auth import PartnerAuth
from rig.ota.service.serve import LocalService

REPO = Path(__file__).resolve().parent.parent
BLINKY = REPO / "fixtures" / "profiles" / "blinky.yaml"
TOKEN = "bench-token"
DEVICE = "bench-1"
MIB = 1024 * 1024
STAGES = ("binaries", "moveToRepository", "pool record", "upload", "associate", "push", "total")


@dataclass
class Timings:
    """Milliseconds per stage, one entry per run."""

    mib: float
    ms: dict[str, list[float]] = field(default_factory=lambda: {s: [] for s in STAGES})

    def median(self, stage: str) -> float:
        return statistics.median(self.ms[stage])

    def best(self, stage: str) -> float:
        return min(self.ms[stage])


def set_up(ota: OtaClient) -> None:
    ota.add_image_type("application", "MCU application", 101)
    ota.add_device_type("blinky")
    ota.publish_profile("blinky", yaml.safe_load(BLINKY.read_text()))
    ota.register_device(DEVICE, "blinky")


def one_run(ota: OtaClient, data: bytes, version: str) -> dict[str, float]:
    """The pipeline for one image; milliseconds per stage."""
    clock = time.perf_counter
    t0 = clock()
    sha = ota.upload_binary(data)
    t1 = clock()
    url = ota.move_to_repository(sha)
    t2 = clock()
    image = ota.create_image(name="bench", description="benchmark image", type=101,
                             version=version, url=url)  # fmt: skip
    t3 = clock()
    ota.associate("blinky", 101, image["versionNumber"])
    t4 = clock()
    deployment = ota.push("blinky", image["id"], DEVICE)
    t5 = clock()
    assert image["sha256"] == sha and deployment["state"] == "QUEUED"
    ms = 1000.0
    return {
        "binaries": (t1 - t0) * ms,
        "moveToRepository": (t2 - t1) * ms,
        "pool record": (t3 - t2) * ms,
        "upload": (t3 - t0) * ms,
        "associate": (t4 - t3) * ms,
        "push": (t5 - t4) * ms,
        "total": (t5 - t0) * ms,
    }


def measure(ota: OtaClient, mib: float, runs: int, rng: random.Random) -> Timings:
    size = int(mib * MIB)
    timings = Timings(mib)
    for run in range(-1, runs):  # run -1: warm-up, not counted
        data = rng.randbytes(size)
        result = one_run(ota, data, f"{mib:g}MiB-{run}")
        if run >= 0:
            for stage, value in result.items():
                timings.ms[stage].append(value)
    return timings


def report(all_timings: list[Timings], runs: int) -> None:
    print(f"OTA pipeline through the local service (median / min of {runs} runs, ms)")
    header = f"{'stage':<18}" + "".join(f"{f'{t.mib:g} MiB':>22}" for t in all_timings)
    print(header)
    for stage in STAGES:
        cells = "".join(f"{t.median(stage):>12.1f} / {t.best(stage):>7.1f}" for t in all_timings)
        print(f"{stage:<18}{cells}")
    rates = "".join(
        f"{t.mib / (t.median('upload') / 1000):>12.1f} / {t.mib / (t.best('upload') / 1000):>7.1f}"
        for t in all_timings
    )
    print(f"{'upload MiB/s':<18}{rates}")
    if len(all_timings) > 1:
        small, large = all_timings[0], all_timings[-1]
        per_small = small.median("upload") / small.mib
        per_large = large.median("upload") / large.mib
        print(
            f"upload per MiB: {per_small:.1f} ms at {small.mib:g} MiB, {per_large:.1f} ms at "
            f"{large.mib:g} MiB: ratio {per_large / per_small:.2f} "
            f"(1.0 = linear; below 1 = fixed costs amortised)"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=10, help="counted runs per size (default 10)")
    parser.add_argument("--mib", type=float, nargs="+", default=[1.0, 16.0],
                        help="image sizes in MiB (default 1 16)")  # fmt: skip
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    rng = random.Random(2024)
    max_bytes = int(max(args.mib) * MIB) + MIB
    with tempfile.TemporaryDirectory(prefix="rig-ota-bench-") as folder:
        partners = [PartnerAuth("lab", TOKEN)]
        with LocalService(Path(folder), partners, max_image_bytes=max_bytes) as svc, OtaClient(
            svc.base_url, partner="lab", token=TOKEN, timeout_s=120
        ) as ota:  # fmt: skip
            set_up(ota)
            timings = [measure(ota, mib, args.runs, rng) for mib in args.mib]
    report(timings, args.runs)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
