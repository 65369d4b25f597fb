"""rig's firmware container: a 64-byte header in front of the payload an MCU would run.

The emulated MCU needs something it can check the way a real bootloader checks its images
(MCUboot and friends): which image type this is, its version, an anti-rollback counter, and a
hash of the payload. Vendor images (.bin, Intel HEX) carry none of that; they pass through the
OTA pipeline as opaque bytes, and `is_rig_image` tells the two apart.

Layout (all little-endian; docs/image-format.md has the table and the MCU's rules):

    0  magic b"RIGF"          4  header version u16 (1)   6  header size u16 (64)
    8  image type u16         10 major u16  12 minor u16  14 patch u16
    16 security counter u32   20 payload size u32         24 payload SHA-256 (32 bytes)
    56 flags u32 (bit 0 FAILS_TO_BOOT)                    60 CRC-32 of bytes 0-59 u32

`parse` is strict (any problem raises ImageError); `inspect` is forgiving (reports every problem
it can see, never raises), for samples that are broken on purpose.
"""

from __future__ import annotations

import hashlib
import re
import struct
import zlib
from dataclasses import dataclass
from typing import Any

from rig.errors import RigError

MAGIC = b"RIGF"
HEADER_VERSION = 1
HEADER_SIZE = 64
MCU_IMAGE_TYPES = range(101, 201)
FLAG_FAILS_TO_BOOT = 0x1
KNOWN_FLAGS = FLAG_FAILS_TO_BOOT
# The emulated MCU's application slot: a whole image (header + payload, or an opaque image's
# bytes) must fit. Real parts have more; 64 KiB keeps the over-size sample small in the repo.
MCU_SLOT_BYTES = 64 * 1024
BANNER_OFFSET = 32  # where make_payload puts its banner line: past a would-be vector table

_FIELDS = struct.Struct("<4sHHHHHHII32sI")  # everything up to the CRC: 60 bytes
_CRC = struct.Struct("<I")
_VERSION = re.compile(r"([0-9]{1,5})\.([0-9]{1,5})\.([0-9]{1,5})")
_BANNER = re.compile(rb"\n(rig-app [ -~]{1,96})\n")
assert _FIELDS.size + _CRC.size == HEADER_SIZE


class ImageError(RigError):
    """An image that is not what it claims; `problems` lists every finding, in header order."""

    def __init__(self, message: str, problems: list[str] | None = None) -> None:
        super().__init__(message)
        self.problems = problems or [message]


@dataclass(frozen=True)
class ImageHeader:
    """The decoded header; the magic and CRC are format details, checked and not stored."""

    image_type: int
    major: int
    minor: int
    patch: int
    security_counter: int
    payload_size: int
    payload_sha256: bytes
    flags: int = 0
    header_version: int = HEADER_VERSION
    header_size: int = HEADER_SIZE

    @property
    def version(self) -> str:
        return f"{self.major}.{self.minor}.{self.patch}"

    @property
    def fails_to_boot(self) -> bool:
        return bool(self.flags & FLAG_FAILS_TO_BOOT)

    def to_bytes(self, *, crc: int | None = None) -> bytes:
        """Pack as is, without checking the values: tests and samples need bad headers too.

        `crc` overrides the computed CRC-32, to make a header whose CRC is wrong.
        """
        try:
            body = _FIELDS.pack(
                MAGIC, self.header_version, self.header_size, self.image_type,
                self.major, self.minor, self.patch, self.security_counter,
                self.payload_size, self.payload_sha256, self.flags,
            )  # fmt: skip
        except struct.error as exc:
            raise ImageError(f"header field out of range: {exc}") from None
        return body + _CRC.pack(zlib.crc32(body) if crc is None else crc)


@dataclass(frozen=True)
class Image:
    """A parsed, valid rig image."""

    header: ImageHeader
    payload: bytes

    def to_bytes(self) -> bytes:
        return self.header.to_bytes() + self.payload


def parse_version(version: str) -> tuple[int, int, int]:
    """'1.2.3' -> (1, 2, 3); each part 0-65535, as the header stores them."""
    match = _VERSION.fullmatch(version.strip())
    major, minor, patch = (int(p) for p in match.groups()) if match else (-1, -1, -1)
    if not (0 <= major <= 0xFFFF and 0 <= minor <= 0xFFFF and 0 <= patch <= 0xFFFF):
        raise ImageError(f"version {version!r} is not MAJOR.MINOR.PATCH with each part 0-65535")
    return major, minor, patch


def build(
    payload: bytes,
    *,
    image_type: int,
    version: str,
    security_counter: int = 0,
    fails_to_boot: bool = False,
) -> bytes:
    """A valid rig image of `payload` (refuses values the header cannot hold or the MCU rejects)."""
    if image_type not in MCU_IMAGE_TYPES:
        raise ImageError(f"image type {image_type} is not an MCU image type (101-200)")
    if not 0 <= security_counter <= 0xFFFFFFFF:
        raise ImageError(f"security counter {security_counter} is not a u32 (0-4294967295)")
    if len(payload) > 0xFFFFFFFF:
        raise ImageError(f"payload of {len(payload)} bytes is too big for a u32 size")
    major, minor, patch = parse_version(version)
    header = ImageHeader(
        image_type=image_type, major=major, minor=minor, patch=patch,
        security_counter=security_counter, payload_size=len(payload),
        payload_sha256=hashlib.sha256(payload).digest(),
        flags=FLAG_FAILS_TO_BOOT if fails_to_boot else 0,
    )  # fmt: skip
    return header.to_bytes() + bytes(payload)


def is_rig_image(data: bytes) -> bool:
    """True when `data` starts with the rig magic; anything else is an opaque vendor image."""
    return bytes(data[:4]) == MAGIC


def parse(data: bytes) -> Image:
    """The image in `data`, or ImageError naming everything that is wrong with it."""
    info = inspect(data)
    if info["problems"]:
        raise ImageError("; ".join(info["problems"]), info["problems"])
    header = ImageHeader(
        image_type=info["image_type"], major=info["major"], minor=info["minor"],
        patch=info["patch"], security_counter=info["security_counter"],
        payload_size=info["payload_size"], payload_sha256=bytes.fromhex(info["payload_sha256"]),
        flags=info["flags"], header_version=info["header_version"],
        header_size=info["header_size"],
    )  # fmt: skip
    return Image(header, bytes(data[HEADER_SIZE:]))


def inspect(data: bytes) -> dict[str, Any]:
    """Every field of `data` that can be read, plus `valid` and `problems`; never raises.

    `kind` is "rig" or "opaque". An opaque image is not *invalid* as firmware, but it is not a
    valid rig image either: `valid` is False with the magic named in `problems`.
    """
    data = bytes(data)
    info: dict[str, Any] = {
        "kind": "rig" if is_rig_image(data) else "opaque",
        "size": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
        "magic": data[:4].hex(),
        "fits_mcu_slot": len(data) <= MCU_SLOT_BYTES,
    }
    problems: list[str] = []
    if not is_rig_image(data):
        problems.append(f"not a rig image: magic is {data[:4]!r} ({data[:4].hex() or 'empty'}), "
                        f"expected {MAGIC!r}")  # fmt: skip
    elif len(data) < HEADER_SIZE:
        problems.append(f"truncated: {len(data)} bytes, shorter than the {HEADER_SIZE}-byte header")
    else:
        _inspect_header(data, info, problems)
    info["valid"] = not problems
    info["problems"] = problems
    return info


def _inspect_header(data: bytes, info: dict[str, Any], problems: list[str]) -> None:
    (_, hver, hsize, itype, major, minor, patch, counter, psize, psha, flags) = _FIELDS.unpack_from(
        data
    )
    (crc,) = _CRC.unpack_from(data, _FIELDS.size)
    actual_crc = zlib.crc32(data[: _FIELDS.size])
    info.update(
        header_version=hver, header_size=hsize, image_type=itype, major=major, minor=minor,
        patch=patch, version=f"{major}.{minor}.{patch}", security_counter=counter,
        payload_size=psize, payload_sha256=psha.hex(), flags=flags,
        fails_to_boot=bool(flags & FLAG_FAILS_TO_BOOT), header_crc=crc,
        header_crc_actual=actual_crc,
    )  # fmt: skip
    if crc != actual_crc:
        problems.append(f"header CRC mismatch: header says 0x{crc:08x}, "
                        f"bytes 0-{_FIELDS.size - 1} give 0x{actual_crc:08x}")  # fmt: skip
    if hver != HEADER_VERSION:
        problems.append(f"header version {hver} is not supported (this reader knows "
                        f"{HEADER_VERSION})")  # fmt: skip
    if hsize != HEADER_SIZE:
        problems.append(f"header size {hsize} is not {HEADER_SIZE} (header version 1)")
    if itype not in MCU_IMAGE_TYPES:
        problems.append(f"image type {itype} is not an MCU image type (101-200)")
    if flags & ~KNOWN_FLAGS:
        problems.append(f"unknown flag bits 0x{flags & ~KNOWN_FLAGS:08x} "
                        f"(known: FAILS_TO_BOOT=0x{FLAG_FAILS_TO_BOOT:x})")  # fmt: skip
    payload = data[HEADER_SIZE:]
    info["payload_present"] = len(payload)
    info["banner"] = find_banner(payload)
    if len(payload) < psize:
        problems.append(f"truncated: header says {psize} payload bytes, {len(payload)} present")
        return
    if len(payload) > psize:
        problems.append(f"trailing bytes: header says {psize} payload bytes, "
                        f"{len(payload)} present")  # fmt: skip
    actual = hashlib.sha256(payload[:psize]).hexdigest()
    info["payload_sha256_actual"] = actual
    if actual != psha.hex():
        problems.append(f"payload SHA-256 mismatch: header says {psha.hex()[:16]}…, "
                        f"payload hashes to {actual[:16]}…")  # fmt: skip


def make_payload(size: int, *, seed: str, banner: str | None = None) -> bytes:
    """`size` pseudo-random bytes from `seed`, the same on every machine and Python version.

    SHA-256 in counter mode rather than `random`, so a sample rebuilt years later is byte-for-byte
    the one in git. `banner` (printable ASCII) is written as its own line at BANNER_OFFSET, where
    a boot console (and `find_banner`) can read it.
    """
    if size < 0:
        raise ImageError(f"payload size {size} is negative")
    key = seed.encode()
    blocks = (hashlib.sha256(key + n.to_bytes(8, "little")).digest() for n in range(size // 32 + 1))
    out = bytearray(b"".join(blocks)[:size])
    if banner is not None:
        if not re.fullmatch(r"[ -~]+", banner):
            raise ImageError(f"banner {banner!r} must be printable ASCII on one line")
        line = b"\n" + banner.encode() + b"\n"
        if BANNER_OFFSET + len(line) > size:
            raise ImageError(f"payload of {size} bytes is too small for banner {banner!r}")
        out[BANNER_OFFSET : BANNER_OFFSET + len(line)] = line
    return bytes(out)


def find_banner(payload: bytes) -> str | None:
    """The 'rig-app …' line near the start of a payload, as the emulated MCU prints at boot."""
    match = _BANNER.search(payload[:512])
    return match.group(1).decode() if match else None
