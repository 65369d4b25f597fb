"""Afero's reference MCU (generic_mcu) against rig's emulated MCU, image by image. A benchmark.

    .venv/bin/python benches/reference_mcu.py [--sizes 16384 262144 1048576] [--max-run-s 60]
                                              [--all] [--mcus reference emulated]

generic_mcu (afLib3-generic's Linux example) is built with cmake from the folder RIG_AFLIB_SRC
names, by default the shared reference copy beside the repository
(../shared/reference/aflib3-generic); without that folder, cmake, make or a C compiler the
script says what is missing and exits 2. It runs as the external MCU of an emulated board, on
the pseudo-terminal the double makes (`EmulatedBoardSpec(external_mcu="pty")`): the emulated
ASR, the local OTA service and everything between them are rig's, only the MCU differs from
the emulated runs.

For each MCU (reference, emulated), each ASR⇆MCU link at `--baud` (fast: bytes cross at once;
paced: each byte takes 10 bits at the baud rate, on the double's wires, see below), each 1302
attribute size (253: the classic module, 249 data bytes a chunk, device type blinky; 2046: a
Modulo-2, 2042 a chunk, device type modulo2 with otaAttributeSize 2046 and the board's
ota_attribute_size 2046) and each `--sizes` (default 16 KiB, 256 KiB, 1 MiB): one fresh double
and a freshly registered device, booted through its SCPI supply with pyvisa-py, one push of
random bytes. Every run must end SUCCEEDED, with the MCU's stored bytes equal to the image
(generic_mcu's `ota_file_type.101` in its working folder, the emulated MCU's active slot),
the wire decoded from the tap's capture passing `Transcript.assert_delivered`, and the device's
attribute 2101 equal to the image's version number; otherwise the script stops with exit 1.

Columns: **push→SUCCEEDED s**, the deployment's history (service clock, ms) from QUEUED to
SUCCEEDED (check-in, download, BEGIN, handoff, verify, apply, version report); **handoff s**,
ACCEPTED→TRANSFERRED; **wire KiB/s**, `Transcript.throughput` of the tap's capture (chunk data
bytes per second from the first chunk to the last, as they landed); **ms/chunk**, handoff s /
chunks. Then the ratios reference / emulated for each case both ran.

Paced, for an external MCU: the double paces its own two wires (rig.double.link.Wire): a byte
from the ASR is written to the pty only once it would have crossed the line, and a byte the MCU
wrote is handed to the ASR only once it would have crossed back. The pty itself is not paced
(Linux ignores its baud rate), so generic_mcu writes at once and reads whatever has landed. The
ASR's afPro recovery waits stay at the fast link's scale for an external MCU (board_ota's
`_transports`), and the ASR's download is paced at the radio rate, set here to 10 Mbit/s so
that it is not what is measured. `fast` with generic_mcu is bounded by generic_mcu itself: its
main loop polls stdin for 10 ms between two calls of af_lib_loop.

A case is skipped when its estimated time exceeds `--max-run-s` (unless `--all`): the estimate
extrapolates the same MCU, link and attribute size's last measured ms per chunk (before any, a
prior from runs on a 2-core VM), and the skip is printed with its reason.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import os
import random
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pyvisa
import yaml

from rig.double.control import DoubleControl
from rig.double.reference_mcu import (
    GenericMcu,
    ReferenceUnavailable,
    aflib_source,
    build_generic_mcu,
)
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
from rig.protocol.decoder import replay
from rig.protocol.transcript import HandoffError, Transcript
from rig.report.text_table import render

REPO = Path(__file__).resolve().parent.parent
BLINKY = REPO / "fixtures" / "profiles" / "blinky.yaml"
AFLIB_DEFAULT = REPO.parent / "shared" / "reference" / "aflib3-generic"
TYPE = 101
BOARD = "bench"
KIB = 1024
SIZES = (16 * KIB, 256 * KIB, 1024 * KIB)
ATTRIBUTES = (253, 2046)
MCUS = ("reference", "emulated")
LINKS = ("fast", "paced")
SLOT = 2 * 1024 * KIB  # the emulated MCU's flash slot: room for the largest default image
RADIO_BPS = 10_000_000  # the paced ASR's download: not the bottleneck here
TIMEOUTS = {"checkin_s": 0.05}  # the ASR's stage timeouts stay those of a real 115200 board
BOOT_S = 15.0
SETTLE_S = 20.0  # the version write and the MCU's last words, after SUCCEEDED
WIRE_BYTES_PER_CHUNK = 70  # afLib header, offset, syncs and the MCU's answer (ota_handoff.py)
# ms per chunk beyond its bytes on the wire, before a case of the kind has run (2-core VM)
PRIOR_MS = {
    ("reference", 253): 105.0,
    ("reference", 2046): 105.0,
    ("emulated", 253): 1.5,
    ("emulated", 2046): 5.0,
}
FIXED_S = {"reference": 4.0, "emulated": 2.0}  # double, boot, check-in, verify, apply


class BenchFailure(Exception):
    """A run did not end as it must (exit 1)."""


# -- the lab: one OTA service, one board per run ----------------------------------------------


def profile_for(attribute: int) -> tuple[str, dict]:
    """The device type and profile whose 1302 attribute has `attribute` bytes."""
    profile = yaml.safe_load(BLINKY.read_text())
    if attribute == aflib.CLASSIC_ATTRIBUTE_SIZE:
        return "blinky", profile
    return "modulo2", {**profile, "otaAttributeSize": attribute}


@dataclass
class Lab:
    service: LocalService
    ota: OtaClient
    pipeline: Pipeline
    rm: pyvisa.ResourceManager
    folder: Path
    runs: int = 0


@contextlib.contextmanager
def open_lab(folder: Path) -> Iterator[Lab]:
    partners = {"lab": PartnerAuth("lab", "tok", "lab")}
    rm = pyvisa.ResourceManager("@py")
    try:
        with (
            LocalService(folder / "ota", partners, max_image_bytes=64 * 1024 * KIB) as service,
            OtaClient(service.base_url, partner="lab", token="tok", timeout_s=120) as ota,
        ):
            pipeline = Pipeline(ota)
            pipeline.ensure_image_type(TYPE, "application")
            yield Lab(service, ota, pipeline, rm, folder)
    finally:
        rm.close()


@dataclass
class Board:
    """One emulated board in its own double, registered as a fresh device, switched on."""

    double: Double
    target: Target
    control: DoubleControl
    psu: pyvisa.resources.MessageBasedResource
    capture: Path
    mcu: GenericMcu | None
    folder: Path

    def stored(self) -> bytes | None:
        if self.mcu is not None:
            return self.mcu.stored()
        return self.double.boards[BOARD].ota.flash.active_image()


@contextlib.contextmanager
def open_board(
    lab: Lab,
    *,
    mcu: str,
    link: str,
    attribute: int,
    baud: int,
    binary: Path | None,
    slot: int = SLOT,
) -> Iterator[Board]:
    """A booted board whose MCU is generic_mcu (`reference`) or rig's (`emulated`)."""
    lab.runs += 1
    folder = lab.folder / f"run-{lab.runs}-{mcu}-{link}-{attribute}"
    folder.mkdir(parents=True)
    device_type, profile = profile_for(attribute)
    spec = EmulatedBoardSpec(
        BOARD,
        device_type=device_type,
        link_baud=baud,
        link_speed=link,
        timeouts=TIMEOUTS,
        ota_attribute_size=attribute,
        slot_bytes=slot,
        external_mcu="pty" if mcu == "reference" else None,
    )
    with contextlib.ExitStack() as stack:
        double = stack.enter_context(Double([spec], folder / "double"))
        info = double.info()[0]
        target = Target(f"{mcu}-{uuid.uuid4().hex[:8]}", device_type, profile=profile)
        secret = lab.pipeline.ensure_device(target)
        lab.pipeline.publish(target, TYPE)
        control = DoubleControl(int(str(info["control"])))
        stack.callback(control.close)
        control.call(
            "ota", board=BOARD, url=lab.service.base_url, device_id=target.device_id, secret=secret
        )
        # same speed and baud as the spec; the paced ASR's download at RADIO_BPS
        control.call("link", board=BOARD, speed=link, baud=baud, radio_bps=RADIO_BPS)
        psu = lab.rm.open_resource(
            str(info["power"]), read_termination="\n", write_termination="\n", timeout=5000
        )
        stack.callback(psu.close)
        generic = None
        if mcu == "reference":
            assert binary is not None
            uart = double.boards[BOARD].ota.info()["mcu_uart"]
            generic = GenericMcu(binary, uart, folder / "generic_mcu", baud=baud)
            stack.callback(generic.stop)
        board = Board(
            double, target, control, psu, Path(str(info["tap"]["capture"])), generic, folder
        )
        stack.callback(power, board, False)
        power(board, True)
        if generic is not None:  # the ASR's boot handshake reached an MCU that was listening
            generic.wait_for(r"ASR state: Initialized", timeout=BOOT_S)
        wait_booted(board)
        yield board


def power(board: Board, on: bool) -> None:
    board.psu.write("OUTP ON" if on else "OUTP OFF")
    state = board.psu.query("OUTP?").strip()  # a query: the write has been handled
    if state not in (("1", "ON") if on else ("0", "OFF")):
        raise BenchFailure(f"the board's supply says OUTP? = {state!r} after OUTP {on}")


def wait_booted(board: Board) -> None:
    deadline = time.monotonic() + BOOT_S
    while board.control.call("status", board=BOARD)["mcu"] != "idle":
        if time.monotonic() > deadline:
            raise BenchFailure(f"the board did not boot within {BOOT_S:g} s")
        time.sleep(0.02)


def transcript_of(capture: Path) -> Transcript:
    """The tap's capture file, decoded as a sniffer would have decoded it live."""
    return Transcript(replay(read_capture(capture)))


def push(lab: Lab, board: Board, data: bytes, timeout_s: float) -> tuple[dict, int]:
    """Upload, associate and push `data`; wait for the outcome. The deployment, the version."""
    run = lab.pipeline.run(data, board.target, version=f"bench-{uuid.uuid4().hex[:8]}", until=None)
    number = int(run.image["versionNumber"])
    deployment = lab.ota.wait_for_deployment(
        run.deployment["id"], {"SUCCEEDED"} | TERMINAL, timeout_s
    )
    return deployment, number


def wait_written(board: Board, number: int, timeout: float = SETTLE_S) -> Transcript:
    """The tap's capture once it holds the MCU's version write (and the ASR's answer to it)."""
    deadline = time.monotonic() + timeout
    while True:
        transcript = transcript_of(board.capture)
        written = transcript.version_written(TYPE, number)
        if written is not None and any(
            e.direction == "asr_to_mcu"
            and e.message.attr_id == written.message.attr_id
            and e.message.request_id == written.message.request_id
            and e.t >= written.t
            for e in transcript.messages
        ):
            return transcript
        if time.monotonic() > deadline:
            raise BenchFailure(f"no version write of {number} on the wire within {timeout:g} s")
        time.sleep(0.1)


# -- one case ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    mcu: str
    link: str
    attribute: int
    size: int

    @property
    def chunks(self) -> int:
        return -(-self.size // aflib.max_chunk(self.attribute))

    @property
    def kind(self) -> tuple[str, str, int]:
        return self.mcu, self.link, self.attribute

    def label(self) -> str:
        return f"{self.mcu} {self.link} {self.attribute} B {size_label(self.size)}"


@dataclass
class Result:
    case: Case
    seconds: float = 0.0  # QUEUED → SUCCEEDED
    handoff_s: float = 0.0  # ACCEPTED → TRANSFERRED
    throughput: float = 0.0  # chunk bytes / s on the wire
    skipped: str | None = None


def wire_seconds(case: Case, baud: int) -> float:
    """What the handoff's bytes alone take on a paced line (0 on the fast one)."""
    if case.link != "paced":
        return 0.0
    return (case.size + WIRE_BYTES_PER_CHUNK * case.chunks) * 10 / baud


def estimate(case: Case, baud: int, done: dict[tuple, Result]) -> tuple[float, str]:
    """Seconds `case` should take, and how that was worked out."""
    measured = done.get(case.kind)
    if measured is not None:
        ms = measured.handoff_s / measured.case.chunks * 1000
        rest = measured.seconds - measured.handoff_s + FIXED_S[case.mcu] / 2
        how = (
            f"{case.chunks} chunks x {ms:.1f} ms measured at {measured.case.size // KIB} "
            f"KiB + {rest:.1f} s"
        )
        return rest + case.chunks * ms / 1000, how
    ms = PRIOR_MS[(case.mcu, case.attribute)]
    wire = wire_seconds(case, baud)
    fixed = FIXED_S[case.mcu]
    how = f"{case.chunks} chunks x {ms:.0f} ms (prior) + {wire:.0f} s on the wire + {fixed:.0f} s"
    return fixed + wire + case.chunks * ms / 1000, how


def timestamp(deployment: dict, state: str) -> int:
    for entry in deployment["history"]:
        if entry["state"] == state:
            return entry["timestamp"]
    seen = " → ".join(h["state"] for h in deployment["history"])
    raise BenchFailure(f"deployment {deployment['id']} has no {state} (history: {seen})")


def run_case(
    lab: Lab, case: Case, baud: int, binary: Path | None, seed: int, timeout_s: float
) -> Result:
    data = random.Random(seed).randbytes(case.size)
    with open_board(
        lab, mcu=case.mcu, link=case.link, attribute=case.attribute, baud=baud, binary=binary
    ) as board:
        try:
            deployment, number = push(lab, board, data, timeout_s)
        except RigError as exc:
            raise BenchFailure(f"{case.label()}: {exc}") from None
        if deployment["state"] != "SUCCEEDED":
            states = " → ".join(h["state"] for h in deployment["history"])
            tail = f"\ngeneric_mcu said:\n{board.mcu.tail()}" if board.mcu else ""
            raise BenchFailure(
                f"{case.label()}: deployment ended {deployment['state']} "
                f"({deployment['reason']!r}; history: {states}){tail}"
            )
        transcript = wait_written(board, number)
        try:
            transcript.assert_delivered(data, version_id=number, attribute_size=case.attribute)
        except HandoffError as exc:
            raise BenchFailure(f"{case.label()}: the wire disagrees:\n{exc}") from None
        stored = board.stored()
        if stored != data:
            got = (
                "nothing"
                if stored is None
                else f"{len(stored)} bytes, sha256 " + hashlib.sha256(stored).hexdigest()[:16]
            )
            raise BenchFailure(
                f"{case.label()}: the MCU stored {got}, not the image "
                f"(sha256 {hashlib.sha256(data).hexdigest()[:16]})"
            )
        reported = {
            int(a["id"]): str(a["value"])
            for a in lab.ota.device(board.target.device_id)["attributes"]
        }
        if reported.get(2101) != str(number):
            raise BenchFailure(
                f"{case.label()}: SUCCEEDED but the device's 2101 is "
                f"{reported.get(2101)!r}, not {number}"
            )
        if board.mcu is not None:
            board.mcu.wait_for(rf"OTA type 101 of size {case.size} has version {number}\b")
        result = Result(case)
        result.seconds = (
            timestamp(deployment, "SUCCEEDED") - timestamp(deployment, "QUEUED")
        ) / 1000
        result.handoff_s = (
            timestamp(deployment, "TRANSFERRED") - timestamp(deployment, "ACCEPTED")
        ) / 1000
        result.throughput = transcript.throughput
        return result


# -- the report -------------------------------------------------------------------------------


def size_label(size: int) -> str:
    if size % (1024 * KIB) == 0:
        return f"{size // (1024 * KIB)} MiB"
    return f"{size // KIB} KiB" if size % KIB == 0 else f"{size} B"


def table(results: list[Result]) -> str:
    header = (
        "MCU",
        "link",
        "attribute",
        "image",
        "chunks",
        "push→SUCCEEDED s",
        "handoff s",
        "wire KiB/s",
        "ms/chunk",
        "check",
    )
    rows: list[tuple[str, ...]] = [header]
    for r in results:
        c = r.case
        lead = (c.mcu, c.link, f"{c.attribute} B", size_label(c.size), str(c.chunks))
        if r.skipped:
            rows.append((*lead, "-", "-", "-", "-", f"skipped ({r.skipped} estimated)"))
            continue
        rows.append(
            (
                *lead,
                f"{r.seconds:.2f}",
                f"{r.handoff_s:.2f}",
                f"{r.throughput / KIB:.1f}",
                f"{r.handoff_s / c.chunks * 1000:.2f}",
                "SUCCEEDED, bytes equal",
            )
        )
    return render(rows, right=range(3, 9))


def ratios(results: list[Result]) -> str:
    by_case = {
        (r.case.link, r.case.attribute, r.case.size, r.case.mcu): r
        for r in results
        if not r.skipped
    }
    rows: list[tuple[str, ...]] = [
        ("link", "attribute", "image", "time ref/emu", "wire KiB/s ref/emu")
    ]
    for (link, attribute, size, mcu), ref in by_case.items():
        emu = by_case.get((link, attribute, size, "emulated"))
        if mcu != "reference" or emu is None:
            continue
        rate = ref.throughput / emu.throughput if emu.throughput else float("nan")
        rows.append(
            (
                link,
                f"{attribute} B",
                size_label(size),
                f"{ref.seconds / emu.seconds:.2f}",
                f"{rate:.3f}",
            )
        )
    if len(rows) == 1:
        return "(no case ran on both MCUs)"
    return render(rows, right=range(2, 5))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--sizes",
        type=int,
        nargs="+",
        default=list(SIZES),
        metavar="BYTES",
        help="image sizes in bytes (default 16384 262144 1048576)",
    )
    parser.add_argument(
        "--attributes",
        type=int,
        nargs="+",
        default=list(ATTRIBUTES),
        choices=ATTRIBUTES,
        help="1302 attribute sizes (default 253 2046)",
    )
    parser.add_argument("--mcus", nargs="+", default=list(MCUS), choices=MCUS)
    parser.add_argument("--links", nargs="+", default=list(LINKS), choices=LINKS)
    parser.add_argument("--baud", type=int, default=115200, help="the link's baud rate")
    parser.add_argument(
        "--max-run-s",
        type=float,
        default=60.0,
        help="skip a case estimated to take longer (default 60)",
    )
    parser.add_argument("--all", action="store_true", help="run every case, however long")
    parser.add_argument("--seed", type=int, default=1, help="seed of the images' bytes")
    args = parser.parse_args(argv)
    if any(size < 1 for size in args.sizes) or args.baud < 300:
        parser.error("sizes must be positive and the baud rate at least 300")
    if max(args.sizes) > SLOT:
        parser.error(f"the emulated MCU's slot holds {SLOT} bytes: sizes up to that")
    started = time.monotonic()
    cases = [
        Case(mcu, link, attribute, size)
        for attribute in args.attributes
        for link in args.links
        for mcu in args.mcus
        for size in sorted(args.sizes)
    ]
    results: list[Result] = []
    try:
        with tempfile.TemporaryDirectory(prefix="rig-reference-mcu-") as tmp:
            folder = Path(tmp)
            binary = None
            if "reference" in args.mcus:
                built = time.monotonic()
                binary = build_generic_mcu(aflib_source(AFLIB_DEFAULT), folder / "build")
                print(
                    f"built generic_mcu from {aflib_source(AFLIB_DEFAULT)} in "
                    f"{time.monotonic() - built:.1f} s",
                    flush=True,
                )
            with open_lab(folder) as lab:
                done: dict[tuple, Result] = {}
                for case in cases:
                    guess, how = estimate(case, args.baud, done)
                    if guess > args.max_run_s and not args.all:
                        print(
                            f"skip {case.label()}: ~{guess:.0f} s estimated ({how}) > "
                            f"--max-run-s {args.max_run_s:g}; --all runs it",
                            flush=True,
                        )
                        results.append(Result(case, skipped=f"~{guess:.0f} s"))
                        continue
                    timeout = max(60.0, 3 * guess + 30)
                    result = run_case(lab, case, args.baud, binary, args.seed + case.size, timeout)
                    done[case.kind] = result
                    results.append(result)
                    print(
                        f"{case.label()}: {result.seconds:.2f} s (estimated {guess:.1f} s), "
                        f"{result.throughput / KIB:.1f} KiB/s on the wire",
                        flush=True,
                    )
    except ReferenceUnavailable as exc:
        print(f"reference_mcu: {exc}", file=sys.stderr)
        return 2
    except (BenchFailure, RigError, pyvisa.Error) as exc:
        print(f"reference_mcu: FAILED: {exc}", file=sys.stderr)
        return 1
    print()
    print(
        f"Image push → SUCCEEDED, generic_mcu (reference) and rig's emulated MCU, link "
        f"{args.baud} baud (paced radio {RADIO_BPS / 1e6:g} Mbit/s)"
    )
    print(table(results))
    print()
    print("reference / emulated (time: > 1 is slower; wire KiB/s: < 1 is slower)")
    print(ratios(results))
    print(
        f"\n{os.cpu_count()} cores, Python {sys.version.split()[0]}, "
        f"{time.monotonic() - started:.0f} s in all"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
