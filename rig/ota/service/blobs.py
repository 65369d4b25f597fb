"""Image bytes, stored by SHA-256, written so that a crash never leaves half an image visible.

Layout under the data folder:
    staging/<sha256>              uploaded by `POST /binaries`, not yet kept
    staging/.upload-*.part        an upload in flight (removed on failure, swept at start:
                                  staging_sweep.py)
    blobs/ab/cdef...              the repository (`moveToRepository`), content-addressed

An upload streams into a temporary file in the staging folder while hashing, is fsynced, then
`os.replace`d onto its final name: readers see the whole file or nothing. The size limit is
checked while streaming, so an oversized upload is refused without ever being stored.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path

from rig.ota.service.errors import OtaError

CHUNK = 64 * 1024
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_RANGE = re.compile(r"^bytes=([0-9]{0,18})-([0-9]{0,18})$")


def is_sha256(text: str) -> bool:
    return bool(_SHA256.match(text))


def too_large(limit: int) -> OtaError:
    """413 for an image over the limit, naming the option that raises it."""
    return OtaError(
        413,
        "TOO_LARGE",
        f"the image is larger than this service's limit of {limit / 2**20:g} MiB ({limit} bytes)",
        "build a smaller image, or start the service with a larger --max-image-mib",
    )


def _fsync_dir(path: Path) -> None:
    """Make a rename durable (the directory entry), where the OS allows it."""
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


class Upload:
    """One upload being streamed into the staging folder: write(), then commit() or abort()."""

    def __init__(self, staging: Path, max_bytes: int) -> None:
        self._staging = staging
        self._max = max_bytes
        fd, name = tempfile.mkstemp(dir=staging, prefix=".upload-", suffix=".part")
        self.temp_path = Path(name)
        self._file = os.fdopen(fd, "wb")
        self._hash = hashlib.sha256()
        self.size = 0

    def write(self, chunk: bytes) -> None:
        """Append a chunk; over the limit the upload is removed and 413 raised."""
        if self.size + len(chunk) > self._max:
            self.abort()
            raise too_large(self._max)
        self._file.write(chunk)
        self._hash.update(chunk)
        self.size += len(chunk)

    def commit(self) -> tuple[str, int]:
        """fsync, then move into place as staging/<sha256>; returns (sha256, size)."""
        if self.size == 0:
            self.abort()
            raise OtaError(
                400,
                "VALIDATION",
                "the upload is empty",
                "send the image bytes as application/octet-stream or multipart 'file'",
            )
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        sha = self._hash.hexdigest()
        os.replace(self.temp_path, self._staging / sha)
        _fsync_dir(self._staging)
        return sha, self.size

    def abort(self) -> None:
        """Forget the upload; safe to call twice."""
        with contextlib.suppress(OSError):
            self._file.close()
        with contextlib.suppress(FileNotFoundError):
            self.temp_path.unlink()

    def __enter__(self) -> Upload:
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        if exc_type is not None:
            self.abort()


class BlobStore:
    """The staging area and the content-addressed repository of one data folder."""

    def __init__(self, data_dir: Path, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.staging = data_dir / "staging"
        self.repository = data_dir / "blobs"
        self.staging.mkdir(parents=True, exist_ok=True)
        self.repository.mkdir(parents=True, exist_ok=True)

    def upload(self) -> Upload:
        return Upload(self.staging, self.max_bytes)

    def repository_path(self, sha: str) -> Path:
        return self.repository / sha[:2] / sha[2:]

    def staged_path(self, sha: str) -> Path:
        return self.staging / sha

    def find(self, sha: str) -> Path | None:
        """Where the bytes of `sha` are, repository first; None when nowhere."""
        for path in (self.repository_path(sha), self.staged_path(sha)):
            if path.is_file():
                return path
        return None

    def promote(self, sha: str) -> Path:
        """Move staged bytes into the repository (atomic rename; idempotent)."""
        final = self.repository_path(sha)
        staged = self.staged_path(sha)
        if final.is_file():
            with contextlib.suppress(FileNotFoundError):
                staged.unlink()
            return final
        final.parent.mkdir(exist_ok=True)
        os.replace(staged, final)
        _fsync_dir(final.parent)
        return final


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """The inclusive byte range asked by an HTTP `Range` header; None = the whole file.

    Raises 416 RANGE (with `Content-Range: bytes */size`) when it cannot be satisfied.
    """
    if header is None:
        return None
    unsatisfiable = {"Content-Range": f"bytes */{size}"}
    match = _RANGE.match(header.strip().replace(" ", ""))
    if not match or match.groups() == ("", ""):
        raise OtaError(
            416,
            "RANGE",
            f"cannot serve the range {header!r}",
            "ask for one range: bytes=START-END, bytes=START- or bytes=-SUFFIX",
            unsatisfiable,
        )
    first, last = match.groups()
    if first == "":  # suffix: the last N bytes
        start, end = max(size - int(last), 0), size - 1
        if int(last) == 0:
            start = size
    else:
        start = int(first)
        end = min(int(last), size - 1) if last else size - 1
        if last and int(last) < start:
            start = size  # backwards range: unsatisfiable
    if start >= size:
        raise OtaError(
            416,
            "RANGE",
            f"range {header!r} is outside the image of {size} bytes",
            f"ask for bytes 0 to {size - 1}",
            unsatisfiable,
        )
    return start, end


def read_range(path: Path, start: int, end: int) -> Iterator[bytes]:
    """The bytes start..end (inclusive) of a stored file, in chunks."""
    with path.open("rb") as f:
        f.seek(start)
        remaining = end - start + 1
        while remaining > 0:
            chunk = f.read(min(CHUNK, remaining))
            if not chunk:
                return
            remaining -= len(chunk)
            yield chunk
