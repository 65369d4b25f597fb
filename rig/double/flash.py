"""The emulated MCU's flash: two application slots and a small record, in the board's state folder.

A power cut is the double's favourite fault, so everything here must survive one at any point:
slot files and the record (`mcu-flash.json`) are replaced atomically (temp file + os.replace),
and a staged chunk is written into the inactive slot *before* the record counts it, so the record
never claims bytes the slot does not hold. What is not in the record is RAM and is lost with
power. Files are not fsync'ed: the double's power cut is emulated, the host's page cache is not.

The staging count is saved in batches, as an MCU that does not erase a record page per chunk
would: every `SAVE_EVERY_BYTES` or `SAVE_EVERY_S`, when the last byte is in, and at `sync()`
(the board's power-off). Rewriting the record on every chunk cost more than the rest of the
chunk's path, and a save (temp file + rename) takes 0.2 ms to 2 ms on ext4 as the host's load
goes: every 16 KiB that was up to a sixth of a fast-link chunk's time on a busy host. A crash
between saves resumes from the last saved count: fewer bytes than the slot holds, never more,
and the bytes past it are written again.

The checks are a bootloader's (docs/image-format.md): rig images get a header check, an image
type check and anti-rollback; opaque vendor images are stored and booted as they are.
One instance per board, used from one thread (the MCU's).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rig import image
from rig.double.errors import DoubleError

RECORD = "mcu-flash.json"
SLOTS = ("A", "B")
FACTORY_PAYLOAD_BYTES = 4096
_RECORD_KEYS = {"active", "running", "security_counter", "installed", "staging"}
SAVE_EVERY_BYTES = 64 * 1024  # at most this much staged data is not counted on disk …
SAVE_EVERY_S = 0.25  # … nor older than this (a paced link moves ~3 KiB/s at 38400 baud)


class FlashError(DoubleError):
    """The flash was asked for something a bootloader would not do (a caller bug or bad state)."""


@dataclass(frozen=True)
class BootResult:
    """The outcome of applying a staged image; `version` is what runs afterwards.

    `rebooted` tells a refusal before booting (False) from a boot that happened: the new image
    runs, or it failed and the bootloader fell back.
    """

    ok: bool
    reason: str
    version: str
    rebooted: bool = False


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _opaque_version(data: bytes) -> str:
    return f"opaque-{hashlib.sha256(data).hexdigest()[:8]}"


class Flash:
    """Slots A/B plus the record: active slot, running image, anti-rollback floor, staging."""

    def __init__(
        self,
        state_dir: Path,
        *,
        factory_version: str,
        image_type: int = 101,
        slot_bytes: int = image.MCU_SLOT_BYTES,
        factory_version_id: int | None = None,
    ) -> None:
        self.state_dir = Path(state_dir)
        self.image_type = image_type
        self.slot_bytes = slot_bytes
        self._path = self.state_dir / RECORD
        self._slot_fd: int | None = None  # the staging slot, open while a transfer writes it
        self._saved_at = 0.0  # monotonic time of the last record save
        self._saved_received = 0  # the staging count the record on disk holds
        self.state_dir.mkdir(parents=True, exist_ok=True)
        if self._path.exists():
            self._record = self._load()
            self._saved_received = self.staged_bytes
        else:  # first use: the factory programmed slot A (a later spec change does not reflash)
            self._flash_factory(factory_version, factory_version_id)

    # -- what runs -----------------------------------------------------------------------------

    @property
    def active_slot(self) -> str:
        return self._record["active"]

    def active_image(self) -> bytes:
        return self._slot(self.active_slot).read_bytes()

    def running_version(self) -> str:
        """The version string the boot banner shows: the header's, or opaque-<sha8>."""
        return self._record["running"]["version"]

    @property
    def banner(self) -> str | None:
        """The running payload's 'rig-app …' line, if it has one."""
        return self._record["running"].get("banner")

    @property
    def security_counter(self) -> int:
        """The anti-rollback floor: the highest counter of any image that booted."""
        return self._record["security_counter"]

    def installed_version_id(self, ota_type: int) -> int | None:
        """The service's version number of the image of `ota_type` this MCU runs, if known."""
        return self._record["installed"].get(str(ota_type))

    def installed(self) -> dict[int, int]:
        return {int(t): v for t, v in self._record["installed"].items()}

    # -- staging -------------------------------------------------------------------------------

    @property
    def staging(self) -> dict[str, int] | None:
        """{type, size, version_id, received} of the transfer in progress, or None."""
        staging = self._record["staging"]
        return dict(staging) if staging else None

    @property
    def staged_bytes(self) -> int:
        """How many contiguous bytes from offset 0 the inactive slot holds (0 without staging)."""
        staging = self._record["staging"]
        return staging["received"] if staging else 0

    def begin_staging(self, ota_type: int, size: int, version_id: int) -> None:
        """Start a fresh transfer into the inactive slot, dropping any earlier staging."""
        if not 0 < size <= self.slot_bytes:
            raise FlashError(
                f"an image of {size} bytes does not fit the {self.slot_bytes}-byte slot"
            )
        staging = {"type": ota_type, "size": size, "version_id": version_id, "received": 0}
        self._close_slot()
        self._save(staging=staging)  # record first: the slot's old bytes are now don't-care
        _write_atomic(self._slot(self._inactive()), b"")

    def write(self, offset: int, data: bytes) -> None:
        """Append `data` at `offset`, which must equal `staged_bytes` (no holes, no rewrites)."""
        staging = self._record["staging"]
        if staging is None:
            raise FlashError("write without a transfer in progress: call begin_staging first")
        if offset != staging["received"]:
            raise FlashError(f"write at {offset}, but the slot holds {staging['received']} bytes")
        if offset + len(data) > staging["size"]:
            raise FlashError(f"write of {len(data)} bytes at {offset} passes the declared size "
                             f"{staging['size']}")  # fmt: skip
        if self._slot_fd is None:
            self._slot_fd = os.open(self._slot(self._inactive()), os.O_RDWR)
        os.pwrite(self._slot_fd, data, offset)  # bytes past the count are don't-care
        received = offset + len(data)
        staging["received"] = received  # RAM; the record on disk catches up below
        if (
            received == staging["size"]
            or received - self._saved_received >= SAVE_EVERY_BYTES
            or time.monotonic() - self._saved_at >= SAVE_EVERY_S
        ):
            self._save()

    def sync(self) -> None:
        """Save the staging count if the record on disk lags it (power-off, shutdown)."""
        if self.staged_bytes != self._saved_received:
            self._save()

    def close(self) -> None:
        """Save what is pending and let go of the slot file (the double stops)."""
        self.sync()
        self._close_slot()

    def staged_data(self) -> bytes:
        size = self.staged_bytes
        if self._slot_fd is not None:
            return os.pread(self._slot_fd, size, 0) if size else b""
        return self._slot(self._inactive()).read_bytes()[:size]

    def staged_sha256(self) -> bytes:
        """SHA-256 of every byte staged so far (the VERIFY_SIGNATURE value once all are in)."""
        return hashlib.sha256(self.staged_data()).digest()

    def discard_staging(self) -> None:
        if self._record["staging"] is not None:
            self._close_slot()
            self._save(staging=None)
            _write_atomic(self._slot(self._inactive()), b"")

    def staged_problem(self) -> str | None:
        """Why the bootloader would refuse the staged image (None: acceptable).

        Incomplete data, a bad rig header, an image type other than the OTA's, a security
        counter below the floor. Opaque images pass: there is nothing to check.
        """
        staging = self._record["staging"]
        if staging is None:
            return "no staged image"
        if staging["received"] != staging["size"]:
            return f"only {staging['received']} of {staging['size']} bytes staged"
        data = self.staged_data()
        if not image.is_rig_image(data):
            return None
        try:
            header = image.parse(data).header
        except image.ImageError as err:
            return f"bad image header: {err}: refused"
        if header.image_type != staging["type"]:
            return (f"image type {header.image_type} in the header does not match the OTA type "
                    f"{staging['type']}: refused")  # fmt: skip
        if header.security_counter < self.security_counter:
            return (f"security counter {header.security_counter} is lower than the accepted "
                    f"{self.security_counter}: rollback refused")  # fmt: skip
        return None

    def commit(self, version_id: int) -> BootResult:
        """Apply and boot the staged image; after a refusal or failed boot the old slot runs on.

        Either way the staging is gone afterwards. Success records the new active slot, the
        security counter and `version_id` in one atomic record write.
        """
        staging = self._record["staging"]
        old = self.running_version()
        problem = self.staged_problem()
        if problem is None and staging["version_id"] != version_id:
            problem = (f"APPLY version {version_id} does not match the transferred version "
                       f"{staging['version_id']}: refused")  # fmt: skip
        if problem is not None:
            self.discard_staging()
            return BootResult(False, problem, old)
        data = self.staged_data()
        self._close_slot()
        if staging["type"] != self.image_type:
            return self._store_secondary(staging["type"], data, version_id, old)
        slot = self._inactive()
        if image.is_rig_image(data):
            parsed = image.parse(data)
            if parsed.header.fails_to_boot:
                self.discard_staging()
                reason = f"image fails to boot: fell back to slot {self.active_slot} ({old})"
                return BootResult(False, reason, old, rebooted=True)
            running = self._running(parsed.header.version, staging["type"], data)
            counter = parsed.header.security_counter
        else:
            running = self._running(_opaque_version(data), staging["type"], data)
            counter = self.security_counter
        _write_atomic(self._slot(slot), data)  # drop anything past the image
        installed = {**self._record["installed"], str(staging["type"]): version_id}
        self._save(active=slot, running=running, security_counter=counter,
                   installed=installed, staging=None)  # fmt: skip
        version = running["version"]
        return BootResult(True, f"booted slot {slot} ({version})", version, rebooted=True)

    def _store_secondary(self, ota_type: int, data: bytes, version_id: int, old: str) -> BootResult:
        """An image of another type (assets, a co-processor's firmware) beside the application:
        kept in its own region, the application keeps running, no reboot."""
        _write_atomic(self.state_dir / f"mcu-type-{ota_type}.bin", data)
        installed = {**self._record["installed"], str(ota_type): version_id}
        self._save(installed=installed, staging=None)
        return BootResult(True, f"stored image type {ota_type} ({len(data)} bytes)", old)

    def secondary_image(self, ota_type: int) -> bytes | None:
        path = self.state_dir / f"mcu-type-{ota_type}.bin"
        return path.read_bytes() if path.exists() else None

    # -- internals -----------------------------------------------------------------------------

    def _slot(self, name: str) -> Path:
        return self.state_dir / f"mcu-slot-{name.lower()}.bin"

    def _inactive(self) -> str:
        return SLOTS[1 - SLOTS.index(self.active_slot)]

    @staticmethod
    def _running(version: str, ota_type: int, data: bytes) -> dict[str, Any]:
        banner = image.find_banner(data[image.HEADER_SIZE :]) if image.is_rig_image(data) else None
        return {"version": version, "image_type": ota_type, "banner": banner}

    def _flash_factory(self, version: str, version_id: int | None) -> None:
        payload = image.make_payload(
            FACTORY_PAYLOAD_BYTES, seed=f"factory-{version}", banner=f"rig-app factory {version}"
        )
        try:
            data = image.build(payload, image_type=self.image_type, version=version,
                               security_counter=1)  # fmt: skip
            counter = 1
        except image.ImageError:  # e.g. "1.0-beta": no rig header can hold it; ship it opaque
            data, counter = payload, 0
        _write_atomic(self._slot("A"), data)
        _write_atomic(self._slot("B"), b"")
        running = {"version": version, "image_type": self.image_type,
                   "banner": image.find_banner(payload)}  # fmt: skip
        installed = {} if version_id is None else {str(self.image_type): version_id}
        self._record = {"active": "A", "running": running, "security_counter": counter,
                        "installed": installed, "staging": None}  # fmt: skip
        self._save()

    def _save(self, **changes: Any) -> None:
        record = {**self._record, **changes}
        staging = record["staging"]
        record["staging"] = dict(staging) if staging else None  # RAM's copy may count on
        _write_atomic(self._path, json.dumps(record, indent=1, sort_keys=True).encode())
        self._record = record
        self._saved_received = staging["received"] if staging else 0
        self._saved_at = time.monotonic()

    def _close_slot(self) -> None:
        if self._slot_fd is not None:
            os.close(self._slot_fd)
            self._slot_fd = None

    def _load(self) -> dict[str, Any]:
        try:
            record = json.loads(self._path.read_text())
            missing = _RECORD_KEYS - set(record)
            if missing or record["active"] not in SLOTS:
                raise ValueError(f"missing {sorted(missing)} or bad active slot")
        except (OSError, ValueError, TypeError) as err:
            raise FlashError(
                f"emulated MCU flash record {self._path} is unreadable ({err!r}); delete "
                f"{self.state_dir} to start again from the factory image"
            ) from None
        return record
