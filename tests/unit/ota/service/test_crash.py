"""Crash safety of the local OTA service: a real `rig ota serve` process, killed with SIGKILL.

No graceful shutdown runs, no `finally` block, no flush: the process is gone mid-request. The
service is then started again on the same data folder, and the folder must be sound:
- no partial upload is visible: every file of the blob tree (staging and repository) is named
  by the SHA-256 of its content, and the `.upload-*.part` file of the interrupted upload is swept;
- SQLite passes `PRAGMA integrity_check` and `foreign_key_check`;
- every record the service acknowledged before the kill is there, unchanged;
- the service works: a fresh upload becomes an image with a new version number.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import random
import re
import selectors
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from rig.ota.client import OtaClient, OtaClientError
from tests.unit.helpers import wait_until

REPO = Path(__file__).resolve().parents[4]
BLINKY = REPO / "fixtures" / "profiles" / "blinky.yaml"
TOKEN = "crash-token-1"
START_TIMEOUT_S = 20.0
CHUNK = 64 * 1024
BIG_UPLOAD = 8 * 1024 * 1024
_SHA256 = re.compile(r"^[0-9a-f]{64}$")

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="needs SIGKILL")


class Served:
    """One `python -m rig ota serve` process on a data folder; its stderr goes to a file."""

    def __init__(self, data: Path, log: Path) -> None:
        self.data, self.log_path = data, log
        self._log = log.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "rig", "ota", "serve", "--data", str(data),
             "--partner", "lab", "--token", TOKEN, "--port", "0"],
            cwd=REPO, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=self._log,
        )  # fmt: skip
        self.url = self._read_url()

    def _read_url(self) -> str:
        """The first stdout line, within a deadline (a hung start must not hang the test)."""
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        deadline = time.monotonic() + START_TIMEOUT_S
        buffer = b""
        with selectors.DefaultSelector() as selector:
            selector.register(fd, selectors.EVENT_READ)
            while b"\n" not in buffer:
                left = deadline - time.monotonic()
                if left <= 0:
                    pytest.fail(
                        f"rig ota serve printed no URL in {START_TIMEOUT_S} s: {self.log()}"
                    )
                if selector.select(left):
                    chunk = os.read(fd, 4096)
                    if not chunk:
                        pytest.fail(f"rig ota serve exited {self.proc.wait()}: {self.log()}")
                    buffer += chunk
        url = buffer.split(b"\n", 1)[0].decode().strip()
        assert url.startswith("http://127.0.0.1:"), url
        return url

    def log(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")[-2000:]

    def client(self) -> OtaClient:
        return OtaClient(self.url, partner="lab", token=TOKEN, timeout_s=15)

    def kill(self) -> None:
        """SIGKILL: no shutdown code of the service runs."""
        self.proc.send_signal(signal.SIGKILL)
        assert self.proc.wait(timeout=10) == -signal.SIGKILL

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self._log.close()


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Callable[[Path], Served]]:
    """Start `rig ota serve` on a data folder; every process is killed at teardown."""
    started: list[Served] = []

    def start(data: Path) -> Served:
        served = Served(data, tmp_path / f"serve-{len(started)}.log")
        started.append(served)
        return served

    try:
        yield start
    finally:
        for served in started:
            served.close()


# -- what a sound data folder looks like ----------------------------------------------------------


def _sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def assert_blob_tree_sound(data: Path) -> set[str]:
    """Every stored file is named by the SHA-256 of its content; returns the hashes seen."""
    seen = set()
    for path in sorted((data / "blobs").rglob("*")):
        if path.is_dir():
            assert path.parent == data / "blobs" and len(path.name) == 2, path
            continue
        name = path.parent.name + path.name
        assert _SHA256.match(name), f"{path} is not named by a SHA-256"
        assert _sha256_of(path) == name, f"{path}: content does not match its name"
        seen.add(name)
    for path in sorted((data / "staging").iterdir()):
        assert _SHA256.match(path.name), f"{path} left in staging (a partial upload?)"
        assert _sha256_of(path) == path.name, f"{path}: content does not match its name"
        seen.add(path.name)
    return seen


def assert_database_sound(data: Path) -> sqlite3.Connection:
    """integrity_check says ok and no foreign key dangles; returns a read connection."""
    db = sqlite3.connect(data / "ota.sqlite3")
    assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    assert db.execute("PRAGMA foreign_key_check").fetchall() == []
    return db


def _profile() -> dict[str, Any]:
    return yaml.safe_load(BLINKY.read_text())


def _firmware(seed: int, size: int) -> bytes:
    return random.Random(seed).randbytes(size)


# -- a kill in the middle of a large upload -------------------------------------------------------


def _files(data: Path) -> set[Path]:
    return {p for p in (data / "staging").rglob("*")} | {p for p in (data / "blobs").rglob("*")}


def _new_files(data: Path, known: set[Path], at_least: int) -> list[Path]:
    """Files of the blob tree that were not there before, holding at least `at_least` bytes."""
    found = []
    for path in _files(data) - known:
        with contextlib.suppress(FileNotFoundError):
            if path.is_file() and path.stat().st_size >= at_least:
                found.append(path)
    return found


def test_a_kill_during_an_upload_leaves_no_partial_image_and_keeps_every_record(
    serve: Callable[[Path], Served], tmp_path: Path
) -> None:
    data = tmp_path / "ota"
    first = serve(data)
    firmware = _firmware(1, 1024 * 1024)
    with first.client() as ota:
        image_type = ota.add_image_type("application", "MCU application", 101)
        ota.add_device_type("blinky")
        ota.publish_profile("blinky", _profile())
        image = ota.upload_image(firmware, type_=101, name="app", version="1.0.0",
                                 device_types=["blinky"])  # fmt: skip
        before = {
            "type": ota.image_type(101),
            "device types": ota.device_types(),
            "image": ota.image(101, image["versionNumber"]),
        }
    assert before["type"] == image_type and before["image"]["associations"] == {"lab": ["blinky"]}

    # An 8 MiB upload that stops after four chunks until the server has been killed.
    big = _firmware(2, BIG_UPLOAD)
    sent_some, killed = threading.Event(), threading.Event()
    outcome: dict[str, Any] = {}

    def body() -> Iterator[bytes]:
        for offset in range(0, BIG_UPLOAD, CHUNK):
            if offset == 4 * CHUNK:
                sent_some.set()
                killed.wait(30)
            yield big[offset : offset + CHUNK]

    def upload() -> None:
        headers = {
            "Authorization": f"Bearer {TOKEN}",
            "Content-Type": "application/octet-stream",
            "Content-Length": str(BIG_UPLOAD),
        }
        try:
            outcome["response"] = httpx.post(
                f"{first.url}/v1/ota/partners/lab/binaries", content=body(), headers=headers,
                timeout=15,
            )  # fmt: skip
        except httpx.HTTPError as exc:
            outcome["error"] = exc

    known = _files(data)
    uploader = threading.Thread(target=upload, name="big-upload", daemon=True)
    uploader.start()
    try:
        assert sent_some.wait(15), "the upload never started"
        partial = wait_until(
            lambda: _new_files(data, known, 2 * CHUNK), 15, "the server to stream to a file"
        )[0]
        first.kill()
    finally:
        killed.set()
        uploader.join(20)
    assert not uploader.is_alive()
    assert "error" in outcome, f"the upload got an answer from a dead server: {outcome}"
    # The kill landed mid-upload: the temporary file is there, holding a part of the body.
    assert partial.exists() and 2 * CHUNK <= partial.stat().st_size < BIG_UPLOAD
    partial_sha = _sha256_of(partial)

    second = serve(data)
    assert not partial.exists(), f"the partial upload {partial.name} was not swept"
    assert not list((data / "staging").glob(".upload-*"))
    stored = assert_blob_tree_sound(data)
    assert stored == {image["sha256"]}
    assert not {partial_sha, hashlib.sha256(big).hexdigest()} & stored
    db = assert_database_sound(data)
    try:
        assert db.execute("SELECT sha256 FROM binaries").fetchall() == [(image["sha256"],)]
    finally:
        db.close()

    with second.client() as ota:
        assert ota.image_type(101) == before["type"]
        assert ota.device_types() == before["device types"]
        assert ota.images() == [before["image"]]
        assert ota.request("GET", image["url"]) == firmware
        for sha in (partial_sha, hashlib.sha256(big).hexdigest()):
            with pytest.raises(OtaClientError) as refused:
                ota.request("GET", f"/v1/ota/partners/lab/binaries/{sha}")
            assert refused.value.status == 404
        # The service works on the recovered folder: a fresh upload becomes the next image.
        fresh = _firmware(3, 1024 * 1024)
        added = ota.upload_image(fresh, type_=101, name="app", version="1.0.1")
        assert added["versionNumber"] == "2"
        assert added["sha256"] == hashlib.sha256(fresh).hexdigest()
        assert ota.request("GET", added["url"]) == fresh
    assert assert_blob_tree_sound(data) == {image["sha256"], added["sha256"]}


# -- a kill while records are being created -------------------------------------------------------


def test_a_kill_during_a_stream_of_image_uploads_keeps_every_acknowledged_image(
    serve: Callable[[Path], Served], tmp_path: Path
) -> None:
    data = tmp_path / "ota"
    first = serve(data)
    with first.client() as ota:
        ota.add_image_type("application", "MCU application", 101)
        ota.add_device_type("blinky")
        ota.publish_profile("blinky", _profile())

    acknowledged: list[dict[str, Any]] = []  # list.append is atomic: shared by the loops
    endings: dict[str, str] = {}

    def uploads(name: str) -> None:
        """Upload small images until the service goes away; note each one answered 201."""
        with first.client() as ota:
            for i in range(100_000):
                try:
                    image = ota.upload_image(
                        f"{name} build {i}\n".encode() * 40, type_=101, name=name, version=f"{i}"
                    )
                except OtaClientError as exc:
                    endings[name] = str(exc)
                    return
                acknowledged.append(image)

    loops = [threading.Thread(target=uploads, args=(n,), daemon=True) for n in ("app", "boot")]
    for loop in loops:
        loop.start()
    try:
        wait_until(lambda: len(acknowledged) >= 40, 30, "40 acknowledged images")
        first.kill()
    finally:
        for loop in loops:
            loop.join(20)
    assert not any(loop.is_alive() for loop in loops)
    assert set(endings) == {"app", "boot"}
    assert all("unreachable" in why for why in endings.values()), endings
    acked = list(acknowledged)

    second = serve(data)
    assert not list((data / "staging").glob(".upload-*"))
    stored = assert_blob_tree_sound(data)
    with second.client() as ota:
        images = ota.images(type_=101)
    by_id = {image["id"]: image for image in images}
    for image in acked:
        assert by_id.get(image["id"]) == image, f"acknowledged image lost or changed: {image}"
    # At most the one request in flight per loop may have committed without its answer.
    assert len(acked) <= len(images) <= len(acked) + len(loops)
    numbers = [int(image["versionNumber"]) for image in images]
    assert len(set(numbers)) == len(numbers), "version numbers are not unique"
    assert {image["sha256"] for image in images} <= stored
    assert all((data / "blobs" / i["sha256"][:2] / i["sha256"][2:]).is_file() for i in images)

    db = assert_database_sound(data)
    try:
        counter = db.execute("SELECT last_version_number FROM image_types WHERE type=101")
        assert counter.fetchone()[0] >= max(numbers)
        rows = db.execute("SELECT COUNT(*), COUNT(DISTINCT version_number) FROM images")
        assert rows.fetchone() == (len(images), len(images))
    finally:
        db.close()

    with second.client() as ota:
        fresh = ota.upload_image(b"after the crash" * 40, type_=101, name="app", version="fresh")
        assert int(fresh["versionNumber"]) > max(numbers)
        assert len(ota.images(type_=101)) == len(images) + 1
