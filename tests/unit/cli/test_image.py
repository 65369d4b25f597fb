"""`rig image build` and `rig image inspect`, through their own argparse registration."""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

import pytest

from rig import image
from rig.cli.image import register
from rig.image import ImageError


def rig(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="rig")
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(list(argv))
    return args.run(args)


def test_build_then_inspect(tmp_path: Path, capsys):
    out = tmp_path / "blinky.rigimg"
    assert rig("image", "build", str(out), "--type", "101", "--version", "1.1.0",
               "--security-counter", "3", "--size", "30000", "--seed", "s1",
               "--name", "blinky") == 0  # fmt: skip
    data = out.read_bytes()
    said = capsys.readouterr().out
    assert said.startswith(f"wrote {out}: 30064 bytes (header 64 + payload 30000), type 101, ")
    assert f"sha256 {hashlib.sha256(data).hexdigest()}" in said
    parsed = image.parse(data)
    assert (parsed.header.image_type, parsed.header.version) == (101, "1.1.0")
    assert parsed.header.security_counter == 3
    assert parsed.payload == image.make_payload(30000, seed="s1", banner="rig-app blinky 1.1.0")
    assert not list(tmp_path.glob(".*.tmp"))

    assert rig("image", "inspect", str(out)) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == str(out)
    assert "  image type        101" in lines
    assert "  version           1.1.0" in lines
    assert "  security counter  3" in lines
    assert "  banner            rig-app blinky 1.1.0" in lines
    assert lines[-1] == "valid"


def test_build_from_a_payload_file_with_fails_to_boot(tmp_path: Path, capsys):
    payload = tmp_path / "app.bin"
    payload.write_bytes(b"\x01\x02\x03" * 100)
    out = tmp_path / "crash.rigimg"
    assert rig("image", "build", str(out), "--type", "150", "--version", "2.0.1",
               "--payload", str(payload), "--fails-to-boot") == 0  # fmt: skip
    assert "fails to boot" in capsys.readouterr().out
    parsed = image.parse(out.read_bytes())
    assert parsed.payload == payload.read_bytes()
    assert parsed.header.fails_to_boot


def test_build_is_reproducible(tmp_path: Path):
    for name in ("a", "b"):
        rig("image", "build", str(tmp_path / name), "--type", "101", "--version", "1.0.0",
            "--size", "5000", "--seed", "same")  # fmt: skip
    assert (tmp_path / "a").read_bytes() == (tmp_path / "b").read_bytes()


def test_build_notes_an_image_bigger_than_the_slot(tmp_path: Path, capsys):
    size = str(image.MCU_SLOT_BYTES)
    rig("image", "build", str(tmp_path / "huge"), "--type", "101", "--version", "1.0.0",
        "--size", size)  # fmt: skip
    assert "note: larger than the emulated MCU's slot (65536 bytes)" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ([], "give the payload: --payload FILE, or --size N"),
        (["--payload", "/nonexistent/app.bin"], "cannot read payload /nonexistent/app.bin: "),
        (["--size", "100", "--bogus"], None),
    ],
)
def test_build_user_errors(tmp_path: Path, extra, message):
    argv = ["image", "build", str(tmp_path / "x"), "--type", "101", "--version", "1.0.0", *extra]
    if message is None:
        with pytest.raises(SystemExit) as exited:
            rig(*argv)
        assert exited.value.code == 2
        return
    with pytest.raises(ImageError, match=message):
        rig(*argv)
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--type", "99", "--version", "1.0.0"], r"image type 99 is not an MCU image type"),
        (["--type", "101", "--version", "1.0"], r"version '1.0' is not MAJOR.MINOR.PATCH"),
        (["--type", "101", "--version", "1.0.0", "--security-counter", "-1"], "not a u32"),
    ],
)
def test_build_refuses_bad_header_values(tmp_path: Path, argv, message):
    with pytest.raises(ImageError, match=message):
        rig("image", "build", str(tmp_path / "x"), *argv, "--size", "100")


def test_payload_and_size_are_exclusive(tmp_path: Path, capsys):
    with pytest.raises(SystemExit):
        rig("image", "build", str(tmp_path / "x"), "--type", "101", "--version", "1.0.0",
            "--payload", "p", "--size", "3")  # fmt: skip
    assert "not allowed with argument" in capsys.readouterr().err


def test_inspect_of_a_broken_image_exits_1_listing_problems(tmp_path: Path, capsys):
    data = bytearray(image.build(bytes(500), image_type=101, version="1.0.0"))
    data[100] ^= 0xFF
    broken = tmp_path / "broken.rigimg"
    broken.write_bytes(bytes(data[:-20]))
    assert rig("image", "inspect", str(broken)) == 1
    out = capsys.readouterr().out.splitlines()
    assert "INVALID: 1 problem(s)" in out
    assert out[-1] == "  - truncated: header says 500 payload bytes, 480 present"
    assert "  payload           500 bytes (480 present), sha256 " in "\n".join(out)


def test_inspect_of_a_non_image_that_starts_like_one(tmp_path: Path, capsys):
    stub = tmp_path / "stub"
    stub.write_bytes(b"RIGF\x01")
    assert rig("image", "inspect", str(stub)) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[-1] == "  - truncated: 5 bytes, shorter than the 64-byte header"


@pytest.mark.parametrize(
    ("content", "kind"),
    [(b"\x00\x01\x02\xffvendor", "binary"), (b":020000040800F2\n:00000001FF\n", "Intel HEX")],
)
def test_inspect_of_an_opaque_image(tmp_path: Path, capsys, content, kind):
    blob = tmp_path / "vendor"
    blob.write_bytes(content)
    assert rig("image", "inspect", str(blob)) == 0
    digest = hashlib.sha256(content).hexdigest()
    assert capsys.readouterr().out == (
        f"opaque image ({kind}): {len(content)} bytes, sha256 {digest}\n"
    )


def test_inspect_json(tmp_path: Path, capsys):
    path = tmp_path / "ok.rigimg"
    path.write_bytes(image.build(b"abc" * 50, image_type=120, version="3.2.1"))
    assert rig("image", "inspect", str(path), "--json") == 0
    info = json.loads(capsys.readouterr().out)
    assert info["file"] == str(path)
    assert (info["kind"], info["valid"], info["problems"]) == ("rig", True, [])
    assert (info["image_type"], info["version"], info["payload_size"]) == (120, "3.2.1", 150)

    corrupt = bytearray(path.read_bytes())
    corrupt[-1] ^= 1
    path.write_bytes(bytes(corrupt))
    assert rig("image", "inspect", str(path), "--json") == 1
    info = json.loads(capsys.readouterr().out)
    assert info["valid"] is False
    assert info["problems"][0].startswith("payload SHA-256 mismatch: header says ")

    path.write_bytes(b"opaque")
    assert rig("image", "inspect", str(path), "--json") == 0
    assert json.loads(capsys.readouterr().out)["kind"] == "opaque"


def test_inspect_of_a_missing_file(tmp_path: Path):
    with pytest.raises(ImageError, match=r"cannot read image .*nope: No such file"):
        rig("image", "inspect", str(tmp_path / "nope"))
