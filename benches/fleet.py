"""N emulated boards in one double, one 64 KiB image pushed to all of them. A benchmark.

    .venv/bin/python benches/fleet.py [--sizes 10,50,100] [--settle 3] [--processes 1]

For each N, in fresh processes: the OTA service (`python -m rig ota serve --port 0`, which prints
its URL) and one board double holding N boards (`rig.double.runner.serve(..., as_json=True)` in a
child, as `rig double --json` runs it); with `--processes P`, a parent sharing the boards over P
child doubles (`rig.double.processes.serve_processes`, as `rig double --processes P` runs it),
whose CPU, RSS, threads and descriptors are summed over the parent and its children. Each board
is registered as a device of type blinky (fixtures/profiles/blinky.yaml) through
`OtaClient`/`Pipeline`, told its identity over its double's control port and switched on over its
SCPI port. Then:

- idle: CPU of the double and of the service over `--settle` seconds with every board booted and
  nothing to do (% of one core), and the double's threads (/proc/PID/status) and descriptors
  (/proc/PID/fd);
- push: one upload of 64 KiB of random bytes (opaque image, type 101), one association, one push
  per device; the clock runs from the first push until every deployment is final. Per device:
  its SUCCEEDED timestamp (the service's history, ms) minus the wall clock of its own push;
- CPU seconds of each process during the push, and peak RSS (VmHWM) of each at the end;
- failures: every deployment that ended otherwise than SUCCEEDED, counted by state and reason.

A double that cannot start, or a board that does not answer, is printed as that N's failure and
the next N runs. Run against the code before a change with PYTHONPATH pointing at it: the
children inherit it. Figures, not a test: nothing here fails on a slow machine.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import random
import selectors
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from rig.double.control import DoubleControl
from rig.ota.client import OtaClient
from rig.ota.pipeline import Pipeline, Target
from rig.ota.states import TERMINAL

REPO = Path(__file__).resolve().parent.parent
BLINKY = REPO / "fixtures" / "profiles" / "blinky.yaml"
TICKS = os.sysconf("SC_CLK_TCK")
IMAGE_BYTES = 64 * 1024
FINAL = TERMINAL - {"INTERRUPTED"}  # INTERRUPTED is offered again: not an outcome yet
DOUBLE = """
import sys
from rig.double import runner
from rig.double.spec import EmulatedBoardSpec
sys.exit(runner.serve([EmulatedBoardSpec(name) for name in sys.argv[1:]], as_json=True))
"""
DOUBLES = f"""
import sys
from rig.double.processes import serve_processes, share
names, processes = sys.argv[2:], int(sys.argv[1])
child = lambda group: [sys.executable, "-c", {DOUBLE!r}, *group]
sys.exit(serve_processes(share(names, processes), child, as_json=True))
"""


class Failed(Exception):
    """This N could not be measured; the message says why."""


@dataclass
class Row:
    boards: int
    failure: str = ""
    total_s: float = 0.0
    median_s: float = 0.0
    ok: int = 0
    failures: dict[str, int] = field(default_factory=dict)
    idle_pct: dict[str, float] = field(default_factory=dict)
    cpu_s: dict[str, float] = field(default_factory=dict)
    rss_mib: dict[str, float] = field(default_factory=dict)
    threads: int = 0
    fds: int = 0


# -- processes -----------------------------------------------------------------------------------


def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime


def status(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


def fd_count(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def tree(pid: int) -> list[int]:
    """`pid` and its children: a `--processes` parent and its doubles, read once all are up."""
    kids = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return [pid, *(int(kid) for kid in kids)]


def total(measure: Callable[[int], float], pids: list[int]) -> float:
    return sum(measure(pid) for pid in pids)


def spawn(args: list[str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=os.environ.copy())  # fmt: skip


def read_lines(proc: subprocess.Popen[bytes], count: int, timeout: float) -> list[str]:
    """`count` lines of the child's stdout, or Failed with its stderr."""
    assert proc.stdout is not None
    data = b""
    deadline = time.monotonic() + timeout
    with selectors.DefaultSelector() as selector:
        selector.register(proc.stdout, selectors.EVENT_READ)
        while data.count(b"\n") < count:
            remaining = deadline - time.monotonic()
            chunk = b"?"
            if remaining > 0 and selector.select(remaining):
                chunk = os.read(proc.stdout.fileno(), 1 << 16)
                data += chunk
            if remaining <= 0 or not chunk:
                stop(proc)
                err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
                got = data.count(b"\n")
                raise Failed(f"child announced {got}/{count} lines; stderr: {err[-600:]}")
    return data.decode().splitlines()[:count]


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# -- one N ---------------------------------------------------------------------------------------


def scpi(resource: str, line: str) -> str:
    _, host, port, _ = resource.split("::")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(line.encode() + b"\n")
        reply = b""
        while not reply.endswith(b"\n"):
            chunk = sock.recv(4096)
            if not chunk:
                raise Failed(f"the supply at {resource} closed the connection")
            reply += chunk
    return reply.decode().strip()


def wait_all(what: str, pending: set[str], done: Callable[[str], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while pending:
        pending -= {name for name in list(pending) if done(name)}
        if pending and time.monotonic() > deadline:
            raise Failed(f"{len(pending)} boards never {what} (e.g. {sorted(pending)[0]})")
        if pending:
            time.sleep(0.1)


def measure(n: int, settle: float, work: Path, processes: int) -> Row:
    row = Row(n)
    data = str(work / f"ota-{n}")
    service = spawn([sys.executable, "-m", "rig", "ota", "serve", "--port", "0",
                     "--data", data, "--partner", "lab", "--token", "tok"])  # fmt: skip
    double = None
    try:
        url = read_lines(service, 1, 30)[0].strip()
        names = [f"fleet{i:03d}" for i in range(n)]
        if processes == 1:
            double = spawn([sys.executable, "-c", DOUBLE, *names])
        else:
            double = spawn([sys.executable, "-c", DOUBLES, str(processes), *names])
        boards = [json.loads(line) for line in read_lines(double, n, 120)]
        procs = {"double": tree(double.pid), "service": [service.pid]}
        with OtaClient(url, partner="lab", token="tok") as ota:
            run(row, ota, url, boards, procs, settle)
    except Failed as exc:
        row.failure = str(exc)
    except Exception as exc:  # a bench reports, it does not crash
        row.failure = f"{type(exc).__name__}: {exc}"
    finally:
        for proc in (double, service):
            if proc is not None:
                stop(proc)
    return row


def switch_on(
    ota: OtaClient, url: str, boards: list[dict], prefix: str
) -> tuple[dict[str, str], dict[str, DoubleControl]]:
    """Register each board as a blinky device, tell its ASR who it is, switch it on. Returns
    board -> device id, and board -> the control channel of its double process (the caller
    closes them, also when this fails)."""
    pipeline = Pipeline(ota)
    pipeline.ensure_image_type(101, "application")
    ports = {int(board["control"]) for board in boards}  # one per double process
    controls = {port: DoubleControl(port, timeout_s=60) for port in ports}
    control_of = {board["board"]: controls[int(board["control"])] for board in boards}
    devices: dict[str, str] = {}
    try:
        for i, board in enumerate(boards):
            target = Target(f"{prefix}-{uuid.uuid4().hex[:8]}", "blinky", profile=BLINKY)
            secret = pipeline.ensure_device(target)
            if i == 0:
                pipeline.publish(target, 101)
            control_of[board["board"]].call("ota", board=board["board"], url=url,
                                            device_id=target.device_id, secret=secret)  # fmt: skip
            devices[board["board"]] = target.device_id
        for board in boards:
            try:
                applied = scpi(board["power"], "OUTP ON;*OPC?") == "1"
            except OSError as exc:
                raise Failed(f"{board['board']} was announced but its supply does not answer "
                             f"OUTP ON ({exc})") from None  # fmt: skip
            if not applied:
                raise Failed(f"{board['board']}: OUTP ON was not applied")
    except BaseException:
        for control in controls.values():
            control.close()
        raise
    return devices, control_of


def run(row: Row, ota: OtaClient, url: str, boards: list[dict], procs: dict[str, list[int]],
        settle: float) -> None:  # fmt: skip
    devices, control_of = switch_on(ota, url, boards, "fleet")
    try:
        wait_all("booted", set(devices),
                 lambda b: control_of[b].call("status", board=b)["mcu"] == "idle", 60)  # fmt: skip
        time.sleep(1.0)  # let the ASRs finish their boot chatter before measuring idle
        before = {k: total(cpu_s, p) for k, p in procs.items()}
        time.sleep(settle)
        row.idle_pct = {k: 100 * (total(cpu_s, p) - before[k]) / settle for k, p in procs.items()}
        double = procs["double"]
        row.threads = int(total(lambda p: status(p, "Threads"), double))
        row.fds = int(total(fd_count, double))
        push(row, ota, devices, procs)
    finally:
        for control in set(control_of.values()):
            control.close()


def push(row: Row, ota: OtaClient, devices: dict[str, str], procs: dict[str, list[int]]) -> None:
    name = f"fleet-{uuid.uuid4().hex[:8]}"
    image = ota.upload_image(random.randbytes(IMAGE_BYTES), type_=101, version="2.0.0",
                             name=name, description="benches/fleet.py")  # fmt: skip
    ota.associate("blinky", 101, image["versionNumber"])
    cpu0 = {k: total(cpu_s, p) for k, p in procs.items()}
    t0 = time.time()
    pushed: dict[str, float] = {}
    for device in devices.values():
        pushed[ota.push("blinky", image["id"], device)["deploymentId"]] = time.time()
    done: dict[str, dict] = {}
    deadline = time.monotonic() + 60 + 2 * len(devices)
    while len(done) < len(pushed) and time.monotonic() < deadline:
        for deployment in set(pushed) - set(done):
            record = ota.deployment(deployment)
            if record["state"] in FINAL:
                done[deployment] = record
        time.sleep(0.2)
    row.cpu_s = {k: total(cpu_s, p) - cpu0[k] for k, p in procs.items()}
    row.rss_mib = {k: total(lambda p: status(p, "VmHWM"), p) / 1024 for k, p in procs.items()}
    ends, per_device, failures = [], [], collections.Counter()
    for deployment, at in pushed.items():
        record = done.get(deployment)
        if record is None:
            failures["not final"] += 1
            continue
        end = record["history"][-1]["timestamp"] / 1000
        ends.append(end)
        if record["state"] == "SUCCEEDED":
            per_device.append(end - at)
        else:
            failures[f"{record['state']}({record.get('reason') or ''})"] += 1
    row.ok = len(per_device)
    row.failures = dict(failures)
    row.total_s = (max(ends) - t0) if ends else float("nan")
    row.median_s = statistics.median(per_device) if per_device else float("nan")


# -- the table -----------------------------------------------------------------------------------


def table(rows: list[Row]) -> str:
    header = ["boards", "all final s", "median s", "ok", "failures", "idle % dbl+svc",
              "push CPU s dbl/svc", "peak RSS MiB dbl/svc", "threads", "fds"]  # fmt: skip
    cells = [header]
    for r in rows:
        if r.failure:
            cells.append([str(r.boards), "FAILED: " + r.failure.replace("\n", " ")[:200]])
            continue
        idle = f"{r.idle_pct['double']:.1f}+{r.idle_pct['service']:.1f}"
        cells.append([
            str(r.boards), f"{r.total_s:.2f}", f"{r.median_s:.2f}", f"{r.ok}/{r.boards}",
            ", ".join(f"{k} x{v}" for k, v in r.failures.items()) or "-", idle,
            f"{r.cpu_s['double']:.1f}/{r.cpu_s['service']:.1f}",
            f"{r.rss_mib['double']:.0f}/{r.rss_mib['service']:.0f}", str(r.threads), str(r.fds),
        ])  # fmt: skip
    widths = [
        max(len(c[i]) for c in cells if i < len(c) and len(c) > 2) for i in range(len(header))
    ]
    lines = []
    for c in cells:
        if len(c) == 2:
            lines.append(f"{c[0].ljust(widths[0])}  {c[1]}")
        else:
            lines.append("  ".join(x.ljust(w) for x, w in zip(c, widths, strict=True)).rstrip())
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10,50,100", help="board counts, comma-separated")
    parser.add_argument("--settle", type=float, default=3.0, help="idle CPU window, seconds")
    parser.add_argument(
        "--processes",
        type=int,
        default=1,
        help="double processes sharing the boards, as rig double --processes",
    )
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",") if s]
    code = Path(sys.modules["rig"].__file__).parent.parent
    doubles = "one double" if args.processes == 1 else f"{args.processes} double processes"
    print(f"fleet: one 64 KiB image to N boards of {doubles}; {os.cpu_count()} cores; "
          f"rig from {code}", flush=True)  # fmt: skip
    rows = []
    with tempfile.TemporaryDirectory(prefix="rig-fleet-") as work:
        for n in sizes:
            rows.append(measure(n, args.settle, Path(work), args.processes))
            print(table(rows[-1:]).splitlines()[-1], flush=True)
    print()
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
