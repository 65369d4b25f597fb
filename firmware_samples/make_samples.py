"""Build the firmware samples and MANIFEST.json, byte for byte the same on every run.

    .venv/bin/python firmware_samples/make_samples.py [--out DIR]   (default: this folder)

Every payload comes from rig.image.make_payload (SHA-256 counter mode, seeded by the file name),
so nothing here depends on the clock, the machine or Python's `random`. README.md says what each
sample is for; tests/unit/test_firmware_samples.py proves each is what the manifest claims and
that this script reproduces the committed files.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

from intelhex import IntelHex

from rig import image

HERE = Path(__file__).resolve().parent
BLINKY, KETTLE = 101, 102
VENDOR_BASE = 0x0800_0000  # a typical Cortex-M flash base: exercises extended address records
CORRUPT_PAYLOAD_OFFSET = 20_000  # the payload byte flipped in the corrupt sample


class Sample(NamedTuple):
    """One rig-format sample and what the emulated MCU should make of it."""

    stem: str
    image_type: int
    version: str
    security_counter: int
    payload_size: int
    fails_to_boot: bool
    expected_state: str  # the deployment's final state (DESIGN.md section 4)
    expected_outcome: str


RIG_SAMPLES = [
    Sample("blinky-app-1.0.0", BLINKY, "1.0.0", 1, 25 * 1024, False, "SUCCEEDED",
           "baseline: installs, boots, the MCU reports 1.0.0"),
    Sample("blinky-app-1.1.0", BLINKY, "1.1.0", 1, 28 * 1024, False, "SUCCEEDED",
           "upgrade over 1.0.0: boots the new slot, the MCU reports 1.1.0"),
    Sample("kettle-heater-1.0.0", KETTLE, "1.0.0", 1, 8 * 1024, False, "VERIFY_FAILED",
           "wrong image type: the service refuses to associate type 102 with blinky (R6); "
           "forced onto a blinky MCU, its header check refuses type 102 (slot is 101)"),
    Sample("blinky-app-1.2.0-crash", BLINKY, "1.2.0", 1, 16 * 1024, True, "APPLY_FAILED",
           "FAILS_TO_BOOT: transfers and verifies; the new slot fails to boot, the MCU falls "
           "back to the old slot and never writes the version attribute"),
    Sample("blinky-app-0.9.0-rollback", BLINKY, "0.9.0", 0, 16 * 1024, False, "VERIFY_FAILED",
           "anti-rollback: security counter 0 is below the installed image's 1; refused, old "
           "slot kept"),
    Sample("blinky-app-2.0.0-huge", BLINKY, "2.0.0", 1,
           image.MCU_SLOT_BYTES - image.HEADER_SIZE + 1, False, "DECLINED",
           f"one byte larger than the MCU slot ({image.MCU_SLOT_BYTES} bytes): the MCU declines "
           "TRANSFER_BEGIN (echoes it with state IDLE)"),
]  # fmt: skip
# The corrupt one: 1.1.0 with one payload byte flipped after its header was made.
CORRUPT = Sample("blinky-app-1.1.0-corrupt", BLINKY, "1.1.0", 1, 28 * 1024, False,
                 "VERIFY_FAILED", "header check fails: payload SHA-256 mismatch; the MCU "
                 "discards the data and keeps the old slot")  # fmt: skip


def _rig_entry(sample: Sample, data: bytes) -> dict[str, Any]:
    info = image.inspect(data)
    return {
        "file": f"{sample.stem}.rigimg",
        "kind": "rig",
        "image_type": sample.image_type,
        "version": sample.version,
        "security_counter": sample.security_counter,
        "fails_to_boot": sample.fails_to_boot,
        "size": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
        "payload_size": sample.payload_size,
        "banner": info["banner"],
        "valid": info["valid"],
        "problems": info["problems"],
        "expected_state": sample.expected_state,
        "expected_outcome": sample.expected_outcome,
    }


def build_all() -> tuple[dict[str, bytes], dict[str, Any]]:
    """Every sample's bytes by file name, and the manifest describing them."""
    files: dict[str, bytes] = {}
    entries: list[dict[str, Any]] = []
    for sample in RIG_SAMPLES:
        app = sample.stem.split("-")[0]
        banner = f"rig-app {app} {sample.version}"
        payload = image.make_payload(sample.payload_size, seed=sample.stem, banner=banner)
        data = image.build(
            payload,
            image_type=sample.image_type,
            version=sample.version,
            security_counter=sample.security_counter,
            fails_to_boot=sample.fails_to_boot,
        )
        files[f"{sample.stem}.rigimg"] = data
        entries.append(_rig_entry(sample, data))

    corrupt = bytearray(files["blinky-app-1.1.0.rigimg"])
    corrupt[image.HEADER_SIZE + CORRUPT_PAYLOAD_OFFSET] ^= 0xFF
    files[f"{CORRUPT.stem}.rigimg"] = bytes(corrupt)
    entry = _rig_entry(CORRUPT, bytes(corrupt))
    entry["corrupted_from"] = "blinky-app-1.1.0.rigimg"
    entry["corrupt_offset"] = image.HEADER_SIZE + CORRUPT_PAYLOAD_OFFSET
    entries.insert(2, entry)

    # Opaque vendor images: the same bytes as a raw binary and as Intel HEX text.
    vendor = image.make_payload(6 * 1024, seed="vendor-app")
    files["vendor-app.bin"] = vendor
    hexfile = IntelHex()
    hexfile.frombytes(vendor, offset=VENDOR_BASE)
    text = io.StringIO()
    hexfile.write_hex_file(text, write_start_addr=False)
    files["vendor-app.hex"] = text.getvalue().encode("ascii")
    opaque_outcome = (
        "opaque: no header check; the MCU stores exactly these bytes (the .hex as its text, "
        "not decoded) and the delivered SHA-256 equals the file's"
    )
    hex_extra = {"hex_of": "vendor-app.bin", "hex_base": VENDOR_BASE}
    for name, extra in (("vendor-app.bin", {}), ("vendor-app.hex", hex_extra)):
        data = files[name]
        entries.append(
            {
                "file": name,
                "kind": "opaque",
                "image_type": BLINKY,  # the type it is uploaded under
                "version": "1.0.0",
                "security_counter": None,
                "fails_to_boot": False,
                "size": len(data),
                "sha256": hashlib.sha256(data).hexdigest(),
                "expected_state": "SUCCEEDED",
                "expected_outcome": opaque_outcome,
                **extra,
            }
        )

    manifest = {
        "about": "firmware samples for the emulated MCU; see README.md. Built by make_samples.py.",
        "mcu_slot_bytes": image.MCU_SLOT_BYTES,
        "header_size": image.HEADER_SIZE,
        "samples": entries,
    }
    return files, manifest


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE, help="folder to write (default: here)")
    args = parser.parse_args(argv)
    files, manifest = build_all()
    args.out.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (args.out / name).write_bytes(data)
    manifest_text = json.dumps(manifest, indent=2, ensure_ascii=False) + "\n"
    (args.out / "MANIFEST.json").write_text(manifest_text, encoding="utf-8")
    total = sum(len(d) for d in files.values())
    print(f"wrote {len(files)} samples ({total} bytes) and MANIFEST.json to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
