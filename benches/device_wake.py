"""How fast an idle emulated board learns of a push, and what idle boards cost. A benchmark.

    .venv/bin/python benches/device_wake.py [--sizes 10,50] [--pushes 20] [--idle 5]

For each N, in fresh processes: the OTA service (`python -m rig ota serve --port 0`) and one
board double of N boards (`rig.double.runner.serve(..., as_json=True)` in a child), each board
registered as a blinky device, given its identity over the control port, switched on over SCPI.

- idle: CPU of the double and of the service over `--idle` seconds once every board has booted
  and has nothing to do (% of one core), and the double's thread count;
- push → OFFERED (first N only): `--pushes` pushes of a 2 KiB image, one at a time to the
  boards in turn (a newer version each round), each after a random pause so as not to fall in
  step with a polling ASR, each waited on until SUCCEEDED before the next. The figure is the
  service's own clock: the OFFERED entry of the history minus the QUEUED one (ms).

Runs against older code too (PYTHONPATH pointing at it; the children inherit it): there the
ASR polls at its check-in period. Figures, not a test: nothing here fails on a slow machine.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fleet import (  # the fleet bench's set-up: same service, same double
    DOUBLE,
    FINAL,
    Failed,
    cpu_s,
    read_lines,
    spawn,
    status,
    stop,
    switch_on,
)

from rig.ota.client import OtaClient

IMAGE_BYTES = 2 * 1024


def threads(pid: int) -> int:
    return status(pid, "Threads")


def until(what: str, done: Callable[[], Any], timeout: float, every: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := done()):
        if time.monotonic() > deadline:
            raise Failed(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(every)
    return value


def boot(ota: OtaClient, url: str, boards: list[dict]) -> dict[str, str]:
    """Register, identify and switch on every board; board name -> device id."""
    devices, control_of = switch_on(ota, url, boards, "wake")
    try:
        for name in devices:
            until(f"{name} to boot", lambda n=name: control_of[n].call("status", board=n)["mcu"]
                  == "idle", 60)  # fmt: skip
    finally:
        for control in set(control_of.values()):
            control.close()
    return devices


def final(record: dict) -> dict | None:
    return record if record["state"] in FINAL else None


def push_to_offered(ota: OtaClient, devices: list[str], pushes: int) -> list[float]:
    """ms from QUEUED to OFFERED, by the service's clock, one push at a time."""
    delays: list[float] = []
    image: dict = {}
    for i in range(pushes):
        if i % len(devices) == 0:  # a newer version for the next round of boards
            version = f"{2 + i // len(devices)}.0.0"
            image = ota.upload_image(random.randbytes(IMAGE_BYTES), type_=101, version=version,
                                     name=f"wake-{uuid.uuid4().hex[:6]}",
                                     description="benches/device_wake.py")  # fmt: skip
            ota.associate("blinky", 101, image["versionNumber"])
        time.sleep(random.uniform(0.05, 0.3))  # out of step with a polling ASR
        deployment = ota.push("blinky", image["id"], devices[i % len(devices)])["deploymentId"]
        record = until("the deployment to end", lambda d=deployment: final(ota.deployment(d)),
                       30, 0.02)  # fmt: skip
        stamps = {h["state"]: h["timestamp"] for h in reversed(record["history"])}
        if "OFFERED" not in stamps:
            raise Failed(f"deployment {deployment} ended {record['state']} without an offer")
        delays.append(stamps["OFFERED"] - stamps["QUEUED"])
    return delays


def measure(n: int, pushes: int, idle_s: float, work: Path) -> str:
    data = str(work / f"ota-{n}")
    service = spawn([sys.executable, "-m", "rig", "ota", "serve", "--port", "0",
                     "--data", data, "--partner", "lab", "--token", "tok"])  # fmt: skip
    double = None
    try:
        url = read_lines(service, 1, 30)[0].strip()
        double = spawn([sys.executable, "-c", DOUBLE, *(f"wake{i:03d}" for i in range(n))])
        boards = [json.loads(line) for line in read_lines(double, n, 120)]
        with OtaClient(url, partner="lab", token="tok") as ota:
            devices = boot(ota, url, boards)
            time.sleep(1.0)  # the boot chatter and first check-ins end
            procs = {"double": double.pid, "service": service.pid}
            before = {k: cpu_s(p) for k, p in procs.items()}
            time.sleep(idle_s)
            idle = {k: 100 * (cpu_s(p) - before[k]) / idle_s for k, p in procs.items()}
            line = (f"N={n:<3}  idle CPU: double {idle['double']:5.1f} %  service "
                    f"{idle['service']:5.1f} %  together {sum(idle.values()):5.1f} % of a core"
                    f"  (double threads {threads(double.pid)})")  # fmt: skip
            if pushes:
                delays = sorted(push_to_offered(ota, list(devices.values()), pushes))
                p95 = delays[min(len(delays) - 1, round(0.95 * (len(delays) - 1)))]
                line += (f"\n       push -> OFFERED over {len(delays)} pushes: median "
                         f"{statistics.median(delays):.0f} ms  p95 {p95:.0f} ms  "
                         f"max {delays[-1]:.0f} ms")  # fmt: skip
            return line
    except Failed as exc:
        return f"N={n:<3}  FAILED: {exc}"
    except Exception as exc:  # a bench reports, it does not crash
        return f"N={n:<3}  FAILED: {type(exc).__name__}: {exc}"
    finally:
        for proc in (double, service):
            if proc is not None:
                stop(proc)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10,50", help="board counts, comma-separated")
    parser.add_argument("--pushes", type=int, default=20, help="pushes timed (first size only)")
    parser.add_argument("--idle", type=float, default=5.0, help="idle CPU window, seconds")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",") if s]
    code = Path(sys.modules["rig"].__file__).parent.parent
    print(f"device wake: push -> OFFERED and idle cost; {os.cpu_count()} cores; rig from {code}",
          flush=True)  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="rig-wake-") as work:
        for i, n in enumerate(sizes):
            print(measure(n, args.pushes if i == 0 else 0, args.idle, Path(work)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
