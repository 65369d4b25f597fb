"""The emulated ASR hands images to Afero's own reference MCU, and to rig's emulated MCU alike.

`generic_mcu` (afLib3-generic, built here with cmake from the folder `RIG_AFLIB_SRC` names, by
default the shared reference copy beside the repository) runs on a pseudo-terminal the double
makes, as the external MCU of an emulated board: everything between it and the OTA service is
rig's (the ASR's boot handshake, the tunnelled handoff, the ASR-side faults). Every test runs
against both MCUs: the emulated MCU is worth only what it shares with the real one.
"""

from __future__ import annotations

import os
import random
import re
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from rig.protocol.transcript import Transcript
from tests.unit.double.bench import BLINKY, REPO, Bench
from tests.unit.helpers import wait_until

AFLIB = Path(
    os.environ.get("RIG_AFLIB_SRC") or REPO.parent / "shared" / "reference" / "aflib3-generic"
)
MCU_FILE = "ota_file_type.101"  # where generic_mcu stores an image of type 101
SLOT = 512 * 1024  # the emulated MCU's flash slot here: room for the 256 KiB image
MODULO2_ATTRIBUTE = 2046


@pytest.fixture(scope="session")
def generic_mcu(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Afero's reference MCU, built once per test process."""
    source = AFLIB / "platform" / "linux" / "examples" / "generic_mcu"
    if not source.is_dir():
        pytest.skip(f"Afero's afLib3-generic is not at {AFLIB}: set RIG_AFLIB_SRC to its folder")
    missing = [tool for tool in ("cmake", "make", "cc", "c++") if shutil.which(tool) is None]
    if missing:
        pytest.skip(f"{', '.join(missing)} not installed: apt install cmake build-essential")
    build = tmp_path_factory.mktemp("generic_mcu")
    for command in (["cmake", "-S", str(source), "-B", str(build)], ["make", "-C", str(build)]):
        done = subprocess.run(command, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, f"{' '.join(command)} failed:\n{done.stdout}{done.stderr}"
    return build / "generic_mcu"


class ReferenceMcu:
    """generic_mcu on the double's MCU UART, its stdout collected line by line."""

    def __init__(self, binary: Path, uart: str, folder: Path) -> None:
        self.folder = folder
        self.lines: list[str] = []
        self._lock = threading.Lock()
        # stdin stays an open pipe: at end of input generic_mcu prints its usage in a loop
        self.proc = subprocess.Popen(
            [str(binary), "-b", "115200", "-D", uart], cwd=folder, stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.wait_for(r"using uart path")

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with self._lock:
                self.lines.append(line.rstrip("\n"))

    def text(self) -> str:
        with self._lock:
            return "\n".join(self.lines)

    def wait_for(self, pattern: str, timeout: float = 10.0) -> re.Match[str]:
        return wait_until(
            lambda: re.search(pattern, self.text()), timeout, f"generic_mcu: {pattern}"
        )

    def stored(self) -> bytes | None:
        path = self.folder / MCU_FILE
        return path.read_bytes() if path.exists() else None

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=5)
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        self._reader.join(timeout=5)


class Handoff:
    """One board whose MCU is Afero's reference MCU or rig's emulated one."""

    def __init__(self, bench: Bench, reference: ReferenceMcu | None) -> None:
        self.bench, self.reference = bench, reference

    @property
    def kind(self) -> str:
        return "reference" if self.reference else "emulated"

    def push(self, data: bytes, version: str) -> tuple[dict, int]:
        pushed = self.bench.push(data, version)
        return self.bench.outcome(pushed["id"], timeout=120), pushed["versionNumber"]

    def wire_until_written(self, number: int) -> Transcript:
        return self.bench.recorder.wait_for(
            lambda t: t.version_written(101, number) is not None, timeout_s=10,
            what="the MCU's version write",
        )  # fmt: skip

    def stored(self) -> bytes | None:
        """The image the MCU kept: generic_mcu's file, the emulated MCU's active slot."""
        if self.reference is not None:
            return self.reference.stored()
        return self.bench.board.ota.flash.active_image()


@pytest.fixture(params=["reference", "emulated"])
def make_handoff(request: pytest.FixtureRequest, make_bench, tmp_path: Path) -> Iterator:
    """Make the board: `make_handoff()`, or with a bench's options (profile, attribute size)."""
    references: list[ReferenceMcu] = []

    def make(**bench: object) -> Handoff:
        if request.param == "emulated":
            made = make_bench(slot_bytes=SLOT, **bench)
            made.power_on()
            return Handoff(made, None)
        binary = request.getfixturevalue("generic_mcu")
        made = make_bench(external_mcu="pty", **bench)
        folder = tmp_path / f"generic_mcu-{len(references)}"
        folder.mkdir()
        references.append(ReferenceMcu(binary, made.board.ota.info()["mcu_uart"], folder))
        made.power_on()  # the ASR's boot handshake reaches an MCU that is listening
        references[-1].wait_for(r"ASR state: Initialized")
        return Handoff(made, references[-1])

    yield make
    for reference in references:
        reference.stop()


@pytest.fixture
def handoff(make_handoff) -> Handoff:
    return make_handoff()


def modulo2() -> dict:
    """blinky's profile with a Modulo-2's 1302 attribute (2046 bytes: 2042 data a chunk)."""
    profile = yaml.safe_load(BLINKY.read_text())
    return {**profile, "otaAttributeSize": MODULO2_ATTRIBUTE}


def image(size: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(size)


def test_an_image_of_odd_size_arrives_byte_for_byte_and_its_version_is_reported(handoff):
    data = image(249 * 40 + 77, seed=1)  # not a multiple of the chunk: the last one is short
    deployment, number = handoff.push(data, "odd-1")
    assert deployment["state"] == "SUCCEEDED", deployment["history"]
    transcript = handoff.wire_until_written(number)
    transcript.assert_delivered(data, version_id=number)
    assert handoff.stored() == data
    assert handoff.bench.attributes()[2101] == str(number)
    if handoff.reference:  # what Afero's MCU says it did
        handoff.reference.wait_for(rf"OTA type 101 of size {len(data)} has version {number}\b")


def test_a_256_kib_image_is_delivered_in_modulo_2_chunks(make_handoff):
    handoff = make_handoff(device_type="modulo2", profile=modulo2(),
                           ota_attribute_size=MODULO2_ATTRIBUTE)  # fmt: skip
    data = image(256 * 1024, seed=2)
    started = time.monotonic()
    deployment, number = handoff.push(data, "big-1")
    assert deployment["state"] == "SUCCEEDED", deployment["history"]
    transcript = handoff.wire_until_written(number)
    transcript.assert_delivered(data, version_id=number, attribute_size=MODULO2_ATTRIBUTE)
    assert max(len(c.data) for c in transcript.chunks) == MODULO2_ATTRIBUTE - 4
    assert handoff.stored() == data
    print(f"{handoff.kind}: 256 KiB in {time.monotonic() - started:.1f} s")


def test_a_corrupted_chunk_fails_verify_and_the_mcu_drops_the_image(handoff):
    data = image(249 * 12 + 5, seed=3)
    handoff.bench.fault("corrupt_chunk", index=3)
    deployment, _ = handoff.push(data, "corrupt-1")
    assert (deployment["state"], deployment["reason"]) == ("VERIFY_FAILED", "sha256 mismatch")
    transcript = handoff.bench.wire(lambda t: "FAIL" in t.states, "the ASR's FAIL")
    fail = next(e for e, i in transcript.ota_infos("asr_to_mcu") if i.state.name == "FAIL")
    assert not [e for e in transcript.messages if e.direction == "mcu_to_asr" and e.t > fail.t]
    if handoff.reference:
        handoff.reference.wait_for(r"OTA verify failed, deleting file")
        assert handoff.stored() is None
    assert handoff.bench.status()["staging"] is None or handoff.reference


def test_an_asr_reboot_mid_transfer_ends_in_a_second_attempt(handoff):
    data = image(249 * 30 + 100, seed=4)
    handoff.bench.fault("asr_reboot", at=0.5)
    deployment, number = handoff.push(data, "reboot-1")
    assert deployment["state"] == "SUCCEEDED", deployment["history"]
    assert deployment["attempt"] == 2 and "INTERRUPTED" in [
        h["state"] for h in deployment["history"]
    ]
    handoff.wire_until_written(number).assert_delivered(data, version_id=number)
    assert handoff.stored() == data
