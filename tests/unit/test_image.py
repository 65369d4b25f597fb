"""rig.image: the container round-trips, and every kind of damage is named precisely."""

from __future__ import annotations

import hashlib
import struct
import zlib
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rig import image
from rig.errors import RigError
from rig.image import HEADER_SIZE, ImageError, ImageHeader

PAYLOAD = image.make_payload(40960, seed="test", banner="rig-app blinky 1.1.0")


def good(**overrides: object) -> bytes:
    kwargs: dict = {"image_type": 101, "version": "1.1.0", "security_counter": 1}
    kwargs.update(overrides)
    return image.build(PAYLOAD, **kwargs)


def with_header(data: bytes, **fields: object) -> bytes:
    """`data` with header fields changed and a correct CRC: damage only the CRC cannot see."""
    header = image.parse(data).header
    return replace(header, **fields).to_bytes() + data[HEADER_SIZE:]


def problems(data: bytes) -> list[str]:
    with pytest.raises(ImageError) as caught:
        image.parse(data)
    info = image.inspect(data)  # the forgiving twin agrees, without raising
    assert info["valid"] is False
    assert info["problems"] == caught.value.problems
    assert str(caught.value) == "; ".join(caught.value.problems)
    return caught.value.problems


@pytest.mark.parametrize(
    ("image_type", "version", "counter", "fails"),
    [(101, "1.0.0", 0, False), (200, "65535.0.65535", 0xFFFFFFFF, True), (150, "0.9.12", 7, True)],
)
def test_round_trip_keeps_every_field(image_type, version, counter, fails):
    data = image.build(PAYLOAD, image_type=image_type, version=version,
                       security_counter=counter, fails_to_boot=fails)  # fmt: skip
    parsed = image.parse(data)
    major, minor, patch = (int(p) for p in version.split("."))
    assert parsed.header == ImageHeader(
        image_type=image_type, major=major, minor=minor, patch=patch, security_counter=counter,
        payload_size=len(PAYLOAD), payload_sha256=hashlib.sha256(PAYLOAD).digest(),
        flags=1 if fails else 0, header_version=1, header_size=HEADER_SIZE,
    )  # fmt: skip
    assert parsed.header.version == version
    assert parsed.header.fails_to_boot is fails
    assert parsed.payload == PAYLOAD
    assert parsed.to_bytes() == data
    assert len(data) == HEADER_SIZE + len(PAYLOAD)


def test_layout_matches_the_documented_offsets():
    data = good(fails_to_boot=True)
    assert data[0:4] == b"RIGF"
    assert struct.unpack_from("<HHH", data, 4) == (1, 64, 101)
    assert struct.unpack_from("<HHH", data, 10) == (1, 1, 0)
    assert struct.unpack_from("<II", data, 16) == (1, len(PAYLOAD))
    assert data[24:56] == hashlib.sha256(PAYLOAD).digest()
    assert struct.unpack_from("<I", data, 56) == (1,)
    assert struct.unpack_from("<I", data, 60) == (zlib.crc32(data[:60]),)


def test_image_error_is_the_rig_error_users_see():
    assert issubclass(ImageError, RigError)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"image_type": 99}, "image type 99 is not an MCU image type (101-200)"),
        ({"image_type": 201}, "image type 201 is not an MCU image type (101-200)"),
        ({"version": "1.2"}, "version '1.2' is not MAJOR.MINOR.PATCH with each part 0-65535"),
        ({"version": "1.65536.0"}, "version '1.65536.0' is not MAJOR.MINOR.PATCH"),
        ({"version": "v1.0.0"}, "version 'v1.0.0' is not MAJOR.MINOR.PATCH"),
        ({"security_counter": -1}, "security counter -1 is not a u32"),
        ({"security_counter": 2**32}, "security counter 4294967296 is not a u32"),
    ],
)
def test_build_refuses_what_the_header_or_the_mcu_cannot_take(overrides, message):
    with pytest.raises(ImageError, match="^" + message.replace("(", r"\(").replace(")", r"\)")):
        good(**overrides)


def test_flipped_payload_byte_is_a_payload_hash_mismatch():
    data = bytearray(good())
    data[HEADER_SIZE + 1000] ^= 0x01
    said = hashlib.sha256(PAYLOAD).hexdigest()
    got = hashlib.sha256(data[HEADER_SIZE:]).hexdigest()
    assert problems(bytes(data)) == [
        f"payload SHA-256 mismatch: header says {said[:16]}…, payload hashes to {got[:16]}…"
    ]


@pytest.mark.parametrize("offset", [4, 9, 12, 17, 30, 58])
def test_flipped_header_byte_is_a_crc_mismatch(offset):
    data = bytearray(good())
    data[offset] ^= 0x01
    found = problems(bytes(data))
    stored = struct.unpack_from("<I", data, 60)[0]
    assert found[0] == (f"header CRC mismatch: header says 0x{stored:08x}, "
                        f"bytes 0-59 give 0x{zlib.crc32(data[:60]):08x}")  # fmt: skip


def test_version_and_counter_bytes_are_covered_by_the_crc_alone():
    data = bytearray(good())
    data[12] ^= 0x01  # minor 1 -> 0: still a well-formed header, only the CRC can tell
    assert len(problems(bytes(data))) == 1


def test_wrong_crc_is_named_with_both_values():
    data = good()
    header = image.parse(data).header
    broken = header.to_bytes(crc=0xDEADBEEF) + data[HEADER_SIZE:]
    right = zlib.crc32(data[:60])
    assert problems(broken) == [
        f"header CRC mismatch: header says 0xdeadbeef, bytes 0-59 give 0x{right:08x}"
    ]


@pytest.mark.parametrize(
    ("data", "shown"),
    [
        (b"\x7fELF" + bytes(100), r"b'\x7fELF' (7f454c46)"),
        (b"RIGG" + bytes(100), "b'RIGG' (52494747)"),
        (b"RI", "b'RI' (5249)"),
        (b"", "b'' (empty)"),
    ],
)
def test_wrong_magic_is_not_a_rig_image(data, shown):
    assert problems(data) == [f"not a rig image: magic is {shown}, expected b'RIGF'"]
    assert image.is_rig_image(data) is False


def test_truncated_payload_names_both_sizes():
    assert problems(good()[: HEADER_SIZE + 40000]) == [
        "truncated: header says 40960 payload bytes, 40000 present"
    ]


def test_truncated_header():
    assert problems(good()[:30]) == ["truncated: 30 bytes, shorter than the 64-byte header"]


def test_trailing_bytes_are_refused():
    assert problems(good() + b"\x00\x00") == [
        "trailing bytes: header says 40960 payload bytes, 40962 present"
    ]


def test_bad_type_in_an_otherwise_sound_header():
    assert problems(with_header(good(), image_type=99)) == [
        "image type 99 is not an MCU image type (101-200)"
    ]


def test_unknown_header_version_size_and_flags():
    data = with_header(good(), header_version=2, header_size=80, flags=0x5)
    assert problems(data) == [
        "header version 2 is not supported (this reader knows 1)",
        "header size 80 is not 64 (header version 1)",
        "unknown flag bits 0x00000004 (known: FAILS_TO_BOOT=0x1)",
    ]


def test_to_bytes_refuses_values_the_fields_cannot_hold():
    header = image.parse(good()).header
    with pytest.raises(ImageError, match="header field out of range"):
        replace(header, image_type=70000).to_bytes()


def test_inspect_reports_every_field_of_a_good_image():
    data = good(fails_to_boot=True)
    info = image.inspect(data)
    digest = hashlib.sha256(PAYLOAD).hexdigest()
    assert info == {
        "kind": "rig", "size": len(data), "sha256": hashlib.sha256(data).hexdigest(),
        "magic": "52494746", "fits_mcu_slot": True, "header_version": 1, "header_size": 64,
        "image_type": 101, "major": 1, "minor": 1, "patch": 0, "version": "1.1.0",
        "security_counter": 1, "payload_size": 40960, "payload_sha256": digest, "flags": 1,
        "fails_to_boot": True, "header_crc": zlib.crc32(data[:60]),
        "header_crc_actual": zlib.crc32(data[:60]), "payload_present": 40960,
        "banner": "rig-app blinky 1.1.0", "payload_sha256_actual": digest, "valid": True,
        "problems": [],
    }  # fmt: skip


def test_inspect_lists_several_problems_at_once_without_raising():
    data = bytearray(with_header(good(), image_type=5)[:-10])
    data[7] ^= 0xFF  # header size field: now the CRC is wrong too
    info = image.inspect(bytes(data))
    assert info["valid"] is False
    assert [p.split(":")[0] for p in info["problems"]] == [
        "header CRC mismatch",
        "header size 65344 is not 64 (header version 1)",
        "image type 5 is not an MCU image type (101-200)",
        "truncated",
    ]
    assert info["image_type"] == 5
    assert "payload_sha256_actual" not in info  # no hash of a payload that is not all there


def test_inspect_of_an_opaque_image():
    blob = image.make_payload(3000, seed="vendor")
    info = image.inspect(blob)
    assert info["kind"] == "opaque"
    assert info["sha256"] == hashlib.sha256(blob).hexdigest()
    assert info["size"] == 3000
    assert info["valid"] is False
    assert info["problems"][0].startswith("not a rig image: magic is ")


def test_fits_mcu_slot_counts_the_whole_image():
    fits = image.build(bytes(image.MCU_SLOT_BYTES - HEADER_SIZE), image_type=101, version="1.0.0")
    assert image.inspect(fits)["fits_mcu_slot"] is True
    over = image.build(fits[HEADER_SIZE:] + b"x", image_type=101, version="1.0.0")
    assert image.inspect(over)["fits_mcu_slot"] is False
    assert image.parse(over).header.payload_size == image.MCU_SLOT_BYTES - HEADER_SIZE + 1


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200), st.booleans())
def test_inspect_never_raises(tail, with_magic):
    data = (b"RIGF" if with_magic else b"") + tail
    info = image.inspect(data)
    assert info["valid"] is (not info["problems"])


@settings(max_examples=100, deadline=None)
@given(st.integers(0, len(PAYLOAD) + HEADER_SIZE - 1), st.integers(1, 255))
def test_any_single_byte_change_is_caught(offset, mask):
    data = bytearray(good())
    data[offset] ^= mask
    with pytest.raises(ImageError):
        image.parse(bytes(data))


def test_payload_generator_is_pinned_byte_for_byte():
    # SHA-256(seed + u64 counter) blocks: these digests change only if every sample is rebuilt.
    digest = hashlib.sha256(image.make_payload(1000, seed="pin")).hexdigest()
    assert digest == "e91e1ab09e7cb1cae4391ca97a3535832f9bf75b722ad36c52348df6ae3f587f"
    first = hashlib.sha256(b"pin" + bytes(8)).digest()
    assert image.make_payload(1000, seed="pin")[:32] == first
    with_banner = image.make_payload(1000, seed="pin", banner="rig-app pin 1.0.0")
    assert hashlib.sha256(with_banner).hexdigest() == (
        "baee6f92ea6590d77be00f748e8794a6dfeefdd8087faf78789d3921ce911295"
    )
    assert image.make_payload(5000, seed="a") == image.make_payload(5000, seed="a")
    assert image.make_payload(5000, seed="a") != image.make_payload(5000, seed="b")
    assert image.make_payload(0, seed="a") == b""
    assert len(image.make_payload(33, seed="a")) == 33


def test_banner_is_a_line_near_the_start():
    payload = image.make_payload(4096, seed="x", banner="rig-app blinky 1.1.0")
    start = image.BANNER_OFFSET
    assert payload[start : start + 22] == b"\nrig-app blinky 1.1.0\n"
    assert image.find_banner(payload) == "rig-app blinky 1.1.0"
    assert image.find_banner(image.make_payload(4096, seed="x")) is None


@pytest.mark.parametrize(
    ("size", "banner", "message"),
    [
        (40, "rig-app blinky 1.1.0", "too small for banner"),
        (4096, "two\nlines", "printable ASCII on one line"),
        (4096, "", "printable ASCII"),
        (-1, None, "negative"),
    ],
)
def test_payload_generator_refuses(size, banner, message):
    with pytest.raises(ImageError, match=message):
        image.make_payload(size, seed="x", banner=banner)
