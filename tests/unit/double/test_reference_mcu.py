"""The emulated ASR hands images to Afero's own reference MCU, and to rig's emulated MCU alike.

`generic_mcu` (afLib3-generic, built here with cmake from the folder `RIG_AFLIB_SRC` names, by
default the shared reference copy beside the repository) runs on a pseudo-terminal the double
makes, as the external MCU of an emulated board: everything between it and the OTA service is
rig's (the ASR's boot handshake, the tunnelled handoff, the ASR-side faults). Every test runs
against both MCUs: the emulated MCU is worth only what it shares with the real one.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from rig.double.reference_mcu import GenericMcu
from rig.protocol import aflib
from rig.protocol.transcript import Transcript
from tests.unit.double.bench import BLINKY, Bench
from tests.unit.helpers import wait_until

SLOT = 512 * 1024  # the emulated MCU's flash slot here: room for the 256 KiB image
MODULO2_ATTRIBUTE = 2046


class Handoff:
    """One board whose MCU is Afero's reference MCU or rig's emulated one."""

    def __init__(self, bench: Bench, reference: GenericMcu | None) -> None:
        self.bench, self.reference = bench, reference

    @property
    def kind(self) -> str:
        return "reference" if self.reference else "emulated"

    def push(self, data: bytes, version: str) -> tuple[dict, int]:
        pushed = self.bench.push(data, version)
        return self.bench.outcome(pushed["id"], timeout=120), pushed["versionNumber"]

    def wire_until_written(self, number: int, size: int) -> Transcript:
        """The wire once the MCU wrote the version and every chunk's bytes were read off the
        sniffer: its two ports are read apart, so the MCU's answer may be read before the last
        chunks of the same moment (as with two USB adapters on a bench)."""
        return self.bench.recorder.wait_for(
            lambda t: t.version_written(101, number) is not None
            and sum(len(c.data) for c in t.chunks) >= size,
            timeout_s=10, what="the MCU's version write and every chunk",
        )  # fmt: skip

    def stored(self) -> bytes | None:
        """The image the MCU kept: generic_mcu's file, the emulated MCU's active slot."""
        if self.reference is not None:
            return self.reference.stored()
        return self.bench.board.ota.flash.active_image()


@pytest.fixture(params=["reference", "emulated"])
def make_handoff(request: pytest.FixtureRequest, make_bench, tmp_path: Path) -> Iterator:
    """Make the board: `make_handoff()`, or with a bench's options (profile, attribute size)."""
    references: list[GenericMcu] = []

    def make(**bench: object) -> Handoff:
        if request.param == "emulated":
            made = make_bench(slot_bytes=SLOT, **bench)
            made.power_on()
            return Handoff(made, None)
        binary = request.getfixturevalue("generic_mcu")
        made = make_bench(external_mcu="pty", **bench)
        folder = tmp_path / f"generic_mcu-{len(references)}"
        folder.mkdir()
        references.append(GenericMcu(binary, made.board.ota.info()["mcu_uart"], folder))
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
    transcript = handoff.wire_until_written(number, len(data))
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
    transcript = handoff.wire_until_written(number, len(data))
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
    handoff.wire_until_written(number, len(data)).assert_delivered(data, version_id=number)
    assert handoff.stored() == data


def test_an_asr_with_its_own_update_ready_is_asked_to_reboot_and_comes_back(handoff):
    """65013 = UPDATE_READY: afLib's MCU answers SET 65012 = 1, the ASR reboots (a software
    reset, its 65019 code 2) and runs the handshake again; an OTA then still goes through."""
    bench = handoff.bench
    bench.fault("asr_update_ready")
    wait_until(lambda: bench.status()["asr_reboots"] == 1, what="the ASR to reboot")
    recorder = bench.recorder
    wire = recorder.wait_for(
        lambda t: any(e.message.attr_id == aflib.SYSTEM_COMMAND for e in t.messages),
        timeout_s=5, what="the MCU's SET 65012",
    )  # fmt: skip
    request = next(e.message for e in wire.messages if e.message.attr_id == aflib.SYSTEM_COMMAND)
    assert (request.type, request.value[:1]) == (aflib.MsgType.SET, b"\x01")
    code = aflib.RebootCode.SOFTWARE
    wait_until(lambda: aflib.reboot_code(str(bench.attributes().get(65019, ""))) == code,
               what="the ASR's reboot reason: software")  # fmt: skip
    if handoff.reference:
        handoff.reference.wait_for(r"ASR state: Update ready")
    data = image(249 * 5 + 3, seed=5)
    deployment, _ = handoff.push(data, "after-update-ready-1")
    assert deployment["state"] == "SUCCEEDED", deployment["history"]
    assert handoff.stored() == data
