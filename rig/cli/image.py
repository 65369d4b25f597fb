"""`rig image build` and `rig image inspect`: make and check images in rig's container format.

A lab engineer builds test images for the emulated MCU with `build` (from a real payload or from
reproducible pseudo-random bytes) and looks at any firmware file with `inspect`: rig images are
decoded and checked, vendor images (.bin, Intel HEX) are reported as opaque with their hash.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

from rig import image
from rig.image import ImageError


def _read(path: str, what: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise ImageError(f"cannot read {what} {path}: {exc.strerror or exc}") from None


def cmd_build(args: argparse.Namespace) -> int:
    """Write a valid rig image; the payload comes from a file or from --size/--seed."""
    if args.payload is not None:
        payload = _read(args.payload, "payload")
    elif args.size is not None:
        banner = f"rig-app {args.name} {args.version}"
        payload = image.make_payload(args.size, seed=args.seed, banner=banner)
    else:
        raise ImageError("give the payload: --payload FILE, or --size N [--seed S]")
    data = image.build(
        payload,
        image_type=args.type,
        version=args.version,
        security_counter=args.security_counter,
        fails_to_boot=args.fails_to_boot,
    )
    out = Path(args.out)
    tmp = out.with_name(f".{out.name}.tmp")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, out)  # never leave a half-written image under the real name
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise ImageError(f"cannot write {out}: {exc.strerror or exc}") from None
    info = image.inspect(data)
    flags = ", fails to boot" if args.fails_to_boot else ""
    print(f"wrote {out}: {len(data)} bytes (header {image.HEADER_SIZE} + payload {len(payload)}), "
          f"type {args.type}, version {info['version']}, security counter "
          f"{args.security_counter}{flags}, sha256 {info['sha256']}")  # fmt: skip
    if not info["fits_mcu_slot"]:
        print(f"note: larger than the emulated MCU's slot ({image.MCU_SLOT_BYTES} bytes); "
              "it will decline this image")  # fmt: skip
    return 0


def _opaque_kind(data: bytes) -> str:
    """'Intel HEX' when every line looks like a record, else 'binary': a hint, not a check."""
    try:
        lines = data.decode("ascii").split()
    except UnicodeDecodeError:
        return "binary"
    return "Intel HEX" if lines and all(line.startswith(":") for line in lines) else "binary"


def _lines(info: dict[str, Any]) -> list[str]:
    """The readable report of a rig image, as far as its header could be read."""
    out = [f"rig image: {info['size']} bytes, sha256 {info['sha256']}"]
    if "header_version" not in info:
        return out
    crc_ok = "ok" if info["header_crc"] == info["header_crc_actual"] else "MISMATCH"
    hash_ok = info.get("payload_sha256_actual") == info["payload_sha256"]
    present = (
        "" if info["payload_present"] == info["payload_size"]
        else f" ({info['payload_present']} present)"
    )  # fmt: skip
    slot = "fits" if info["fits_mcu_slot"] else "does NOT fit"
    out += [
        f"  header            version {info['header_version']}, {info['header_size']} bytes, "
        f"CRC 0x{info['header_crc']:08x} ({crc_ok})",
        f"  image type        {info['image_type']}",
        f"  version           {info['version']}",
        f"  security counter  {info['security_counter']}",
        f"  payload           {info['payload_size']} bytes{present}, "
        f"sha256 {info['payload_sha256']} ({'ok' if hash_ok else 'MISMATCH'})",
        f"  flags             0x{info['flags']:08x}"
        + (" (FAILS_TO_BOOT)" if info["fails_to_boot"] else ""),
        f"  banner            {info['banner'] or '-'}",
        f"  MCU slot          {slot} ({image.MCU_SLOT_BYTES} bytes)",
    ]
    return out


def cmd_inspect(args: argparse.Namespace) -> int:
    """Report a firmware file; exit 1 only for a rig image with problems."""
    data = _read(args.file, "image")
    info = image.inspect(data)
    opaque = info["kind"] == "opaque"
    if args.json:
        print(json.dumps({"file": args.file, **info}, indent=2, sort_keys=True))
    elif opaque:
        print(f"opaque image ({_opaque_kind(data)}): {info['size']} bytes, "
              f"sha256 {info['sha256']}")  # fmt: skip
    else:
        print(f"{args.file}")
        print("\n".join(_lines(info)))
        if info["valid"]:
            print("valid")
        else:
            print(f"INVALID: {len(info['problems'])} problem(s)")
            print("\n".join(f"  - {problem}" for problem in info["problems"]))
    return 0 if opaque or info["valid"] else 1


def register(commands: argparse._SubParsersAction) -> None:
    """Add `image` and its verbs to the `rig` command's subparsers."""
    top = commands.add_parser("image", help="build and inspect firmware images")
    verbs = top.add_subparsers(dest="verb", required=True, metavar="VERB")

    build = verbs.add_parser("build", help="write a rig image (header + payload)")
    build.add_argument("out", metavar="OUT", help="file to write")
    build.add_argument("--type", type=int, required=True, help="MCU image type, 101-200")
    build.add_argument("--version", required=True, help="MAJOR.MINOR.PATCH")
    build.add_argument("--security-counter", type=int, default=0,
                       help="anti-rollback counter (default 0)")  # fmt: skip
    build.add_argument(
        "--fails-to-boot",
        action="store_true",
        help="set FAILS_TO_BOOT: the emulated MCU falls back to its old slot",
    )
    source = build.add_mutually_exclusive_group()
    source.add_argument("--payload", metavar="FILE", help="payload bytes from a file")
    source.add_argument("--size", type=int, metavar="N",
                        help="N reproducible pseudo-random payload bytes")  # fmt: skip
    build.add_argument("--seed", default="rig", help="seed for --size (default 'rig')")
    build.add_argument(
        "--name",
        default="app",
        help="app name in the banner 'rig-app NAME VERSION' of --size payloads",
    )
    build.set_defaults(run=cmd_build)

    inspect = verbs.add_parser("inspect", help="decode and check a rig image; hash an opaque one")
    inspect.add_argument("file", metavar="FILE")
    inspect.add_argument("--json", action="store_true", help="every field as JSON")
    inspect.set_defaults(run=cmd_inspect)
