"""firmware_samples/: each file is what MANIFEST.json claims, and make_samples.py rebuilds them."""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
from intelhex import IntelHex

from rig import image
from rig.cli.image import register

SAMPLES = Path(__file__).resolve().parents[2] / "firmware_samples"
MANIFEST = json.loads((SAMPLES / "MANIFEST.json").read_text(encoding="utf-8"))
ENTRIES = {entry["file"]: entry for entry in MANIFEST["samples"]}
RIG = [name for name, entry in ENTRIES.items() if entry["kind"] == "rig"]
CHUNK = 249  # data bytes per afLib transfer chunk on the classic module (DESIGN.md section 3)


def data(name: str) -> bytes:
    return (SAMPLES / name).read_bytes()


def test_the_manifest_lists_the_promised_samples():
    assert set(ENTRIES) == {
        "blinky-app-1.0.0.rigimg", "blinky-app-1.1.0.rigimg", "blinky-app-1.1.0-corrupt.rigimg",
        "kettle-heater-1.0.0.rigimg", "blinky-app-1.2.0-crash.rigimg",
        "blinky-app-0.9.0-rollback.rigimg", "blinky-app-2.0.0-huge.rigimg", "vendor-app.bin",
        "vendor-app.hex",
    }  # fmt: skip
    assert MANIFEST["mcu_slot_bytes"] == image.MCU_SLOT_BYTES
    assert MANIFEST["header_size"] == image.HEADER_SIZE
    on_disk = {p.name for p in SAMPLES.iterdir() if p.is_file()}
    on_disk -= {"MANIFEST.json", "README.md", "make_samples.py", ".gitattributes"}
    assert on_disk == set(ENTRIES), "every sample file is in the manifest, and no other file"


def test_the_folder_stays_small():
    sizes = {p.name: p.stat().st_size for p in SAMPLES.iterdir() if p.is_file()}
    assert max(sizes.values()) < 100 * 1024
    assert sum(sizes.values()) < 300 * 1024


@pytest.mark.parametrize("name", sorted(ENTRIES))
def test_size_and_hash_are_as_claimed(name):
    entry, raw = ENTRIES[name], data(name)
    assert len(raw) == entry["size"]
    assert hashlib.sha256(raw).hexdigest() == entry["sha256"]
    assert image.is_rig_image(raw) is (entry["kind"] == "rig")


@pytest.mark.parametrize("name", RIG)
def test_rig_samples_decode_to_their_claims(name):
    entry = ENTRIES[name]
    info = image.inspect(data(name))
    claimed = {k: entry[k] for k in ("image_type", "version", "security_counter",
                                     "fails_to_boot", "payload_size", "banner")}  # fmt: skip
    assert {k: info[k] for k in claimed} == claimed
    assert (info["valid"], info["problems"]) == (entry["valid"], entry["problems"])
    assert info["fits_mcu_slot"] is (entry["expected_state"] != "DECLINED")


def test_the_good_and_deliberately_odd_samples_parse():
    """Only the corrupt one is broken as a file; the others are refused by MCU rules alone."""
    for name in RIG:
        if name == "blinky-app-1.1.0-corrupt.rigimg":
            continue
        parsed = image.parse(data(name))
        assert parsed.header.version == ENTRIES[name]["version"]


def test_v1_and_v2_transfer_in_100_to_160_chunks():
    for name in ("blinky-app-1.0.0.rigimg", "blinky-app-1.1.0.rigimg"):
        chunks = -(-len(data(name)) // CHUNK)
        assert 100 <= chunks <= 160, (name, chunks)


def test_corrupt_is_1_1_0_with_one_payload_byte_changed():
    good, bad = data("blinky-app-1.1.0.rigimg"), data("blinky-app-1.1.0-corrupt.rigimg")
    entry = ENTRIES["blinky-app-1.1.0-corrupt.rigimg"]
    assert entry["corrupted_from"] == "blinky-app-1.1.0.rigimg"
    differ = [i for i, (a, b) in enumerate(zip(good, bad, strict=True)) if a != b]
    assert differ == [entry["corrupt_offset"]]
    assert differ[0] >= image.HEADER_SIZE
    with pytest.raises(image.ImageError) as caught:
        image.parse(bad)
    assert len(caught.value.problems) == 1
    assert caught.value.problems[0].startswith("payload SHA-256 mismatch: header says ")
    assert entry["expected_state"] == "VERIFY_FAILED"


def test_each_odd_sample_differs_from_1_1_0_in_the_way_it_claims():
    base = image.parse(data("blinky-app-1.1.0.rigimg")).header
    kettle = image.parse(data("kettle-heater-1.0.0.rigimg")).header
    crash = image.parse(data("blinky-app-1.2.0-crash.rigimg")).header
    rollback = image.parse(data("blinky-app-0.9.0-rollback.rigimg")).header
    huge = data("blinky-app-2.0.0-huge.rigimg")
    assert (base.image_type, base.security_counter, base.fails_to_boot) == (101, 1, False)
    assert kettle.image_type == 102 != base.image_type
    assert crash.fails_to_boot and crash.image_type == 101 and crash.security_counter == 1
    assert (crash.major, crash.minor) > (base.major, base.minor)  # a real upgrade, apart from that
    assert rollback.security_counter == 0 < base.security_counter
    assert (rollback.major, rollback.minor) < (base.major, base.minor)
    assert len(huge) == image.MCU_SLOT_BYTES + 1  # just over the slot
    assert len(data("blinky-app-1.1.0.rigimg")) <= image.MCU_SLOT_BYTES


def test_expected_outcomes():
    states = {name: entry["expected_state"] for name, entry in ENTRIES.items()}
    assert states == {
        "blinky-app-1.0.0.rigimg": "SUCCEEDED", "blinky-app-1.1.0.rigimg": "SUCCEEDED",
        "blinky-app-1.1.0-corrupt.rigimg": "VERIFY_FAILED",
        "kettle-heater-1.0.0.rigimg": "VERIFY_FAILED",
        "blinky-app-1.2.0-crash.rigimg": "APPLY_FAILED",
        "blinky-app-0.9.0-rollback.rigimg": "VERIFY_FAILED",
        "blinky-app-2.0.0-huge.rigimg": "DECLINED",
        "vendor-app.bin": "SUCCEEDED", "vendor-app.hex": "SUCCEEDED",
    }  # fmt: skip
    assert all(entry["expected_outcome"] for entry in ENTRIES.values())


def test_vendor_hex_decodes_to_exactly_the_bin():
    entry = ENTRIES["vendor-app.hex"]
    decoded = IntelHex(io.StringIO(data("vendor-app.hex").decode("ascii")))
    assert decoded.minaddr() == entry["hex_base"] == 0x0800_0000
    assert decoded.tobinstr() == data(entry["hex_of"])
    for name in ("vendor-app.bin", "vendor-app.hex"):
        assert image.inspect(data(name))["kind"] == "opaque"
        assert ENTRIES[name]["security_counter"] is None


def test_make_samples_regenerates_identical_bytes(tmp_path: Path):
    run = subprocess.run(
        [sys.executable, str(SAMPLES / "make_samples.py"), "--out", str(tmp_path)],
        capture_output=True, text=True, check=False, cwd=tmp_path,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    made = sorted(p.name for p in tmp_path.iterdir())
    assert made == sorted([*ENTRIES, "MANIFEST.json"])
    for name in made:
        assert (tmp_path / name).read_bytes() == (SAMPLES / name).read_bytes(), name


@pytest.mark.parametrize("name", [n for n in RIG if "corrupt" not in n])
def test_rig_image_build_makes_the_same_bytes_as_the_readme_says(tmp_path: Path, name):
    entry = ENTRIES[name]
    out = tmp_path / name
    argv = ["image", "build", str(out), "--type", str(entry["image_type"]),
            "--version", entry["version"], "--security-counter", str(entry["security_counter"]),
            "--size", str(entry["payload_size"]), "--seed", name.removesuffix(".rigimg"),
            "--name", entry["banner"].split()[1]]  # fmt: skip
    if entry["fails_to_boot"]:
        argv.append("--fails-to-boot")
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    assert args.run(args) == 0
    assert out.read_bytes() == data(name)
