"""How fast rig can sample a supply's current, the way a power trace does. A benchmark.

    .venv/bin/python benches/power_sampling.py [--queries 200] [--seconds 2]

In one process: the double's SCPI supply model (`PsuModel`, generic dialect: `INST:NSEL n`
before each channel query) served on 127.0.0.1 by `ScpiServer`, and rig's `PowerSupply` talking
to it through pyvisa-py, as a lab would talk to an LXI supply on port 5025.

1. **query**: `measure_current()` (a write `INST:NSEL 1` with no reply, then the query
   `MEAS:CURR?`) `--queries` times; median and 95th percentile in ms.
2. **trace**: a `PowerTrace` at 20 ms and at 5 ms for `--seconds`; samples per second achieved
   against the rate asked for.

Both with the server ACKing each write at once (`TCP_QUICKACK`, as the double does now) and
without (the kernel's delayed ACK, as before): the client's next command then waits for the ACK
(Nagle), ~40 ms. The last line gives the ratio of the two query medians.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

from rig.double import scpi_server
from rig.double.psu import PsuModel
from rig.double.scpi_server import ScpiServer
from rig.instruments.power import PowerSupply
from rig.report.power_trace import PowerTrace


def run_case(quickack: bool, queries: int, seconds: float) -> dict[str, float]:
    saved = scpi_server._QUICKACK
    scpi_server._QUICKACK = saved if quickack else None
    model = PsuModel("generic", draw=lambda channel: 0.012)
    server = ScpiServer(model)
    supply = PowerSupply(f"TCPIP0::127.0.0.1::{server.port}::SOCKET", name="bench")
    try:
        supply.open()
        supply.on()
        times = []
        for _ in range(queries):
            started = time.perf_counter()
            supply.measure_current()
            times.append((time.perf_counter() - started) * 1000)
        times.sort()
        result = {"median": statistics.median(times), "p95": times[int(len(times) * 0.95) - 1]}
        for interval in (0.02, 0.005):
            with PowerTrace(supply.measure_current, interval_s=interval, name="bench") as trace:
                time.sleep(seconds)  # the span to sample, not a synchronisation
            result[f"rate {interval * 1000:g} ms"] = len(trace.samples) / seconds
        return result
    finally:
        supply.close()
        server.close()
        scpi_server._QUICKACK = saved


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=2.0)
    args = parser.parse_args()
    cases = {
        "quick ACK (now)": run_case(True, args.queries, args.seconds),
        "delayed ACK (before)": run_case(False, max(20, args.queries // 5), args.seconds),
    }
    print(f"MEAS:CURR? through pyvisa-py to the double's SCPI supply ({args.seconds:g} s traces)")
    header = f"{'server':22} {'query median':>13} {'p95':>9} {'trace @20ms':>12} {'@5ms':>9}"
    print(header)
    print("-" * len(header))
    for name, r in cases.items():
        print(f"{name:22} {r['median']:10.3f} ms {r['p95']:6.3f} ms "
              f"{r['rate 20 ms']:8.1f} /s {r['rate 5 ms']:6.1f} /s")  # fmt: skip
    print("asked: 50 /s at 20 ms, 200 /s at 5 ms")
    slow, fast = cases["delayed ACK (before)"]["median"], cases["quick ACK (now)"]["median"]
    print(f"query median, before / now: {slow / fast:.0f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
