"""The base of the service object, image types (R1, R2) and uploaded binaries.

`Catalogue` owns the store, the blob store and the partner table; the other layers build on it
(see service.py for the assembled `OtaService`).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rig.ota.service.auth import PartnerAuth, partner_for_token, partners_by_id
from rig.ota.service.blobs import BlobStore, is_sha256
from rig.ota.service.errors import OtaError, not_found
from rig.ota.service.profiles import MCU_TYPES
from rig.ota.service.store import Store, new_id, now_ms

DEFAULT_MAX_IMAGE_BYTES = 64 * 1024 * 1024
MAX_IMAGE_TYPES = len(MCU_TYPES)


class Catalogue:
    """Image types, device types with their profiles, and uploaded binaries of each partner."""

    def __init__(
        self,
        data_dir: Path,
        partners: Mapping[str, PartnerAuth] | list[PartnerAuth],
        max_image_bytes: int = DEFAULT_MAX_IMAGE_BYTES,
    ) -> None:
        self.data_dir = Path(data_dir)
        self.partners = partners_by_id(partners)
        self.store = Store(self.data_dir / "ota.sqlite3")
        self.blobs = BlobStore(self.data_dir, max_image_bytes)

    def close(self) -> None:
        self.store.close()

    # -- who is calling ----------------------------------------------------------------------

    def partner_by_token(self, token: str) -> PartnerAuth | None:
        return partner_for_token(self.partners, token)

    def partner_of_account(self, account_id: str) -> PartnerAuth | None:
        return next((p for p in self.partners.values() if p.account_id == account_id), None)

    # -- image types (R1, R2) ----------------------------------------------------------------

    def create_image_type(
        self, partner_id: str, name: str, description: str = "", type: int | None = None
    ) -> dict[str, Any]:
        """R1: `type` is 101..200 and unique per partner; omitted → the lowest free number."""
        with self.store.transaction():
            used = {
                r["type"]
                for r in self.store.all(
                    "SELECT type FROM image_types WHERE partner_id=?", [partner_id]
                )
            }
            if type is None:
                free = [t for t in MCU_TYPES if t not in used]
                if not free:
                    raise OtaError(
                        409,
                        "R1",
                        f"R1: partner '{partner_id}' already has {MAX_IMAGE_TYPES} MCU image types "
                        "(101..200): a partner has at most 100 MCU image types",
                        "reuse an existing image type: rename it with PUT /types/{type}",
                    )
                type = free[0]
            require_mcu_type(type)
            if type in used:
                raise OtaError(
                    409,
                    "R1",
                    f"R1: partner '{partner_id}' already has image type "
                    f"{type}: a type number is used once per partner",
                    "pick another number, or omit 'type' to get the lowest free one",
                )
            now = now_ms()
            type_id = new_id()
            self.store.execute(
                "INSERT INTO image_types (id, partner_id, type, name, description, created, "
                "updated) VALUES (?,?,?,?,?,?,?)",
                [type_id, partner_id, type, name, description, now, now],
            )
        return self.get_image_type(partner_id, type)

    def _image_type_row(self, partner_id: str, type: int) -> dict[str, Any]:
        row = self.store.one(
            "SELECT * FROM image_types WHERE partner_id=? AND type=?", [partner_id, type]
        )
        if row is None:
            raise not_found(
                f"partner '{partner_id}' has no image type {type}",
                f"list them with GET /v1/ota/partners/{partner_id}/types",
            )
        return row

    def ensure_image_type(
        self, partner_id: str, type: int, name: str = "", description: str = ""
    ) -> dict[str, Any]:
        """The image type `type`, created (with `name`) if the partner lacks it (lab set-up)."""
        with self.store.transaction():
            if self.store.one(
                "SELECT 1 FROM image_types WHERE partner_id=? AND type=?", [partner_id, type]
            ):
                return self.get_image_type(partner_id, type)
            return self.create_image_type(partner_id, name or f"type {type}", description, type)

    def get_image_type(self, partner_id: str, type: int) -> dict[str, Any]:
        return _type_body(self._image_type_row(partner_id, type))

    def list_image_types(self, partner_id: str) -> list[dict[str, Any]]:
        """Every image type of the partner, by type number (a bare array, as Afero documents)."""
        rows = self.store.all(
            "SELECT * FROM image_types WHERE partner_id=? ORDER BY type, rowid", [partner_id]
        )
        return [_type_body(row) for row in rows]

    def update_image_type(
        self,
        partner_id: str,
        type: int,
        name: str | None = None,
        description: str | None = None,
        *,
        new_type: int | None = None,
        new_id: str | None = None,
    ) -> dict[str, Any]:
        """R2: only the name and description change; `id` and `type` never do."""
        with self.store.transaction():
            row = self._image_type_row(partner_id, type)
            if new_type is not None and new_type != type:
                raise OtaError(
                    400,
                    "R2",
                    f"R2: image type {type} keeps its type number; it cannot become {new_type}",
                    "create a new image type instead",
                )
            if new_id is not None and new_id != row["id"]:
                raise OtaError(
                    400,
                    "R2",
                    f"R2: image type {type} keeps its id {row['id']}",
                    "leave 'id' out of the body (or send the same one)",
                )
            self.store.execute(
                "UPDATE image_types SET name=?, description=?, updated=? WHERE id=?",
                [
                    row["name"] if name is None else name,
                    row["description"] if description is None else description,
                    now_ms(),
                    row["id"],
                ],
            )
        return self.get_image_type(partner_id, type)

    # -- binaries ----------------------------------------------------------------------------

    def record_upload(self, partner_id: str, sha256: str, size: int) -> dict[str, str]:
        """Note that `partner_id` staged these bytes (the file is already in place)."""
        with self.store.transaction():
            self.store.execute(
                "INSERT OR IGNORE INTO binaries (partner_id, sha256, size, created) "
                "VALUES (?,?,?,?)",
                [partner_id, sha256, size, now_ms()],
            )
            if self.blobs.repository_path(sha256).is_file():  # already kept: one copy is enough
                self.blobs.staged_path(sha256).unlink(missing_ok=True)
        return {"value": sha256}

    def _binary_row(self, partner_id: str, sha256: str) -> dict[str, Any]:
        sha = sha256.lower()
        row = (
            self.store.one(
                "SELECT * FROM binaries WHERE partner_id=? AND sha256=?", [partner_id, sha]
            )
            if is_sha256(sha)
            else None
        )
        if row is None:
            raise not_found(
                f"partner '{partner_id}' has uploaded no binary with SHA-256 {sha256!r}",
                f"upload it with POST /v1/ota/partners/{partner_id}"
                "/binaries and use the value it returns",
            )
        return row

    def move_to_repository(self, partner_id: str, sha256: str) -> dict[str, str]:
        with self.store.transaction():
            row = self._binary_row(partner_id, sha256)
            if self.blobs.find(row["sha256"]) is None:
                raise not_found(
                    f"the staged bytes of {row['sha256']} are gone", "upload the image again"
                )
            self.blobs.promote(row["sha256"])
            self.store.execute(
                "UPDATE binaries SET in_repository=1 WHERE partner_id=? AND sha256=?",
                [partner_id, row["sha256"]],
            )
        return {"value": binary_url(partner_id, row["sha256"])}

    def binary_file(self, partner_id: str, sha256: str) -> Path:
        """The stored file of a binary this partner uploaded (staged or kept)."""
        row = self._binary_row(partner_id, sha256)
        path = self.blobs.find(row["sha256"])
        if path is None:
            raise not_found(f"the bytes of {row['sha256']} are gone", "upload the image again")
        return path


def require_mcu_type(type: int, hint: str = "") -> None:
    """R1: MCU image types are numbered 101..200 (whatever number a body brings: -101, 10**30)."""
    if type not in MCU_TYPES:
        digits = str(type)
        shown = digits if len(digits) <= 19 else f"{digits[:12]}... ({len(digits)} digits)"
        raise OtaError(
            400,
            "R1",
            f"R1: image type {shown} is outside 101..200, the range of MCU image types",
            hint or "choose a number from 101 to 200, or omit 'type' to get the lowest free one",
        )


def binary_url(partner_id: str, sha256: str) -> str:
    return f"/v1/ota/partners/{partner_id}/binaries/{sha256}"


def _type_body(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": row["id"],
        "type": row["type"],
        "name": row["name"],
        "description": row["description"],
        "versionAttributeId": 2000 + row["type"],
        "partnerId": row["partner_id"],
        "createdTimestamp": row["created"],
        "updatedTimestamp": row["updated"],
    }
