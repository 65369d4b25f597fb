"""Image bytes over real HTTP: streamed uploads, the size limit, Range downloads, crash safety."""

from __future__ import annotations

import hashlib
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from rig.ota.service.serve import LocalService
from tests.unit.helpers import wait_until
from tests.unit.ota.service import test_service as common
from tests.unit.ota.service.test_service import MAX_IMAGE_BYTES, PARTNERS, Board, Partner

ota, partner, blinky_partner = common.ota, common.partner, common.blinky_partner  # shared fixtures


def _stored_files(data_dir: Path) -> list[Path]:
    return [p for d in ("staging", "blobs") for p in (data_dir / d).rglob("*") if p.is_file()]


def test_uploads_stream_in_as_octet_stream_or_multipart(
    partner: Partner, ota: LocalService
) -> None:
    data = bytes(range(256)) * 100
    sha = hashlib.sha256(data).hexdigest()
    assert partner.ok("POST", f"{partner.p}/binaries", content=data)["value"] == sha
    assert (
        partner.ok("POST", f"{partner.p}/binaries", content=iter([data[:1000], data[1000:]]))[
            "value"
        ]
        == sha
    )  # chunked
    other = data[::-1]
    got = partner.ok("POST", f"{partner.p}/binaries", files={"file": ("app.bin", other)})
    assert got["value"] == hashlib.sha256(other).hexdigest()
    assert (ota.data_dir / "staging" / sha).read_bytes() == data
    url = partner.ok("POST", f"{partner.p}/binaries/moveToRepository", json={"value": sha})["value"]
    assert url == f"{ota.base_url}/v1/ota/partners/lab/binaries/{sha}"  # absolute
    assert (ota.data_dir / "blobs" / sha[:2] / sha[2:]).read_bytes() == data
    assert not (ota.data_dir / "staging" / sha).exists()
    assert partner.http.get(url).content == data
    body = partner.refused(
        "POST", f"{partner.p}/binaries", 400, "VALIDATION", files={"other": b"x"}
    )
    assert "'file'" in body["message"]
    partner.refused("POST", f"{partner.p}/binaries", 400, "VALIDATION", content=b"")
    # another partner cannot reach these bytes, even knowing the hash
    other_partner = Partner(ota.base_url, "other", PARTNERS[1].token)
    other_partner.refused("GET", f"/v1/ota/partners/other/binaries/{sha}", 404, "NOT_FOUND")
    other_partner.refused(
        "POST",
        "/v1/ota/partners/other/binaries/moveToRepository",
        404,
        "NOT_FOUND",
        json={"value": sha},
    )


@pytest.mark.parametrize("how", ["declared", "chunked", "multipart", "big multipart"])
def test_an_oversized_upload_is_413_and_leaves_nothing(
    how: str, partner: Partner, ota: LocalService
) -> None:
    data = b"x" * (MAX_IMAGE_BYTES + 1)
    kwargs = {
        "declared": {"content": data},
        "chunked": {"content": iter([data[i : i + 4096] for i in range(0, len(data), 4096)])},
        "multipart": {"files": {"file": ("big.bin", data)}},
        "big multipart": {"files": {"file": ("big.bin", data * 3)}},
    }[how]
    body = partner.refused("POST", f"{partner.p}/binaries", 413, "TOO_LARGE", **kwargs)
    assert str(MAX_IMAGE_BYTES) in body["message"]
    assert _stored_files(ota.data_dir) == []
    assert partner.ok(
        "POST", f"{partner.p}/binaries", content=data[:-1]
    )  # the limit itself is fine


def test_a_client_that_hangs_up_mid_upload_leaves_no_partial_file(ota: LocalService) -> None:
    host, port = ota.base_url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(
            b"POST /v1/ota/partners/lab/binaries HTTP/1.1\r\nHost: x\r\n"
            b"Authorization: Bearer " + PARTNERS[0].token.encode() + b"\r\n"
            b"Content-Type: application/octet-stream\r\nContent-Length: 50000\r\n\r\n"
        )
        sock.sendall(b"y" * 10000)
        wait_until(
            lambda: list((ota.data_dir / "staging").glob(".upload-*.part")),
            what="the upload to start",
        )
    wait_until(lambda: _stored_files(ota.data_dir) == [], what="the partial upload to go")


def test_leftovers_of_a_crash_are_swept_at_start(tmp_path: Path) -> None:
    staging = tmp_path / "staging"
    staging.mkdir()
    (staging / ".upload-crashed.part").write_bytes(b"half an image")
    with LocalService(tmp_path, PARTNERS, MAX_IMAGE_BYTES):
        assert _stored_files(tmp_path) == []


def test_a_refused_image_leaves_no_half_record(blinky_partner: Partner) -> None:
    partner = blinky_partner
    partner.device_type("bare")
    url = partner.upload(b"payload")
    image = {"name": "a", "description": "d", "type": 101, "version": "1", "url": url}
    partner.refused(
        "POST",
        f"{partner.p}/pool",
        404,
        "NOT_FOUND",
        json=image | {"associations": {"lab": ["blinky", "ghost"]}},
    )
    partner.refused(
        "POST",
        f"{partner.p}/pool",
        409,
        "R6",
        json=image | {"associations": {"lab": ["blinky", "bare"]}},
    )
    assert partner.ok("GET", f"{partner.p}/pool")["totalElements"] == 0
    assert partner.ok("GET", f"{partner.p}/tags") == []
    first = partner.ok("POST", f"{partner.p}/pool", 201, json=image)
    assert (first["versionNumber"], first["associations"]) == ("1", {})


def test_range_downloads_resume_a_transfer(blinky_partner: Partner, ota: LocalService) -> None:
    partner = blinky_partner
    board = Board(ota.base_url, "dev-1", partner.register("dev-1", "blinky"))
    data = hashlib.sha256(b"seed").digest() * 300
    image = partner.image(101, data=data)
    partner.associate("blinky", image)
    partner.push("blinky", image, "dev-1")
    url = board.checkin()["downloadUrl"]
    size = len(data)

    def get(rng: str | None) -> httpx.Response:
        return board.http.get(url, headers={"Range": rng} if rng else {})

    whole = get(None)
    assert (whole.status_code, whole.content) == (200, data)
    assert whole.headers["accept-ranges"] == "bytes"
    for rng, start, end in (
        ("bytes=0-99", 0, 99),
        ("bytes=100-", 100, size - 1),
        ("bytes=-10", size - 10, size - 1),
        (f"bytes=9000-{size + 50}", 9000, size - 1),
    ):
        part = get(rng)
        assert part.status_code == 206, rng
        assert part.content == data[start : end + 1], rng
        assert part.headers["content-range"] == f"bytes {start}-{end}/{size}"
        assert int(part.headers["content-length"]) == end - start + 1
    for rng in (f"bytes={size}-", "bytes=0-1,5-9", "bytes=abc"):
        refused = get(rng)
        assert (refused.status_code, refused.json()["rule"]) == (416, "RANGE"), rng
        assert refused.headers["content-range"] == f"bytes */{size}"
    partner_part = partner.http.get(image["url"], headers={"Range": "bytes=1-2"})
    assert (partner_part.status_code, partner_part.content) == (206, data[1:3])


def test_concurrent_uploads_get_unique_version_numbers(blinky_partner: Partner, ota) -> None:
    results: list[str] = []
    errors: list[BaseException] = []

    def upload(i: int) -> None:
        try:
            results.append(Partner(ota.base_url).image(101, f"2.{i}")["versionNumber"])
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=upload, args=(i,)) for i in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert errors == []
    assert sorted(results, key=int) == [str(n) for n in range(1, 13)]


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], str]]:
    code = (
        "from rig.ota.service.serve import run; from rig.ota.service.auth import PartnerAuth; "
        f"run(data_dir={str(tmp_path)!r}, partners=[PartnerAuth('lab', 'tok')])"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.append(proc.stdout.readline()), daemon=True)
    reader.start()
    try:
        wait_until(lambda: lines or proc.poll() is not None, timeout=15, what="the service URL")
        yield proc, lines[0].strip() if lines else ""
    finally:
        proc.terminate()
        proc.wait(10)
        reader.join(5)
        proc.stdout.close()


def test_run_prints_its_url_once_it_serves(served) -> None:
    proc, url = served
    assert url.startswith("http://127.0.0.1:") and not url.endswith(":0"), url
    assert httpx.get(f"{url}/v1/health").json() == {"status": "ok"}
    r = httpx.get(f"{url}/v1/ota/partners/lab/types", headers={"Authorization": "Bearer tok"})
    assert r.json() == []
    proc.terminate()  # uvicorn shuts down gracefully, then re-raises SIGTERM
    assert proc.wait(10) in (0, -signal.SIGTERM)
