"""Associations: which device types an image is made available to (R6)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from rig.ota.service.errors import not_found
from rig.ota.service.paging import PageRequest
from rig.ota.service.pool import Pool


class Associations(Pool):
    """Images made available to device types."""

    def associate(self, partner_id: str, device_type_id: str, type: int, vn: str) -> dict[str, Any]:
        with self.store.transaction():
            row = self.image_row(partner_id, type, vn)
            self.require_eligible(partner_id, device_type_id, type)
            self._associate_row(row["id"], partner_id, device_type_id)
            created = self.store.scalar(
                "SELECT created FROM associations WHERE image_id=? AND partner_id=? AND "
                "device_type_id=?",
                [row["id"], partner_id, device_type_id],
            )
        # Afero answers the image record plus its deviceTypeId; rig keeps `imageId` and the
        # association's own timestamp as `associatedTimestamp` for its older callers.
        return self._image_body(row) | {
            "deviceTypeId": device_type_id,
            "imageId": row["id"],
            "associatedTimestamp": created,
        }

    def _associated_row(
        self, partner_id: str, device_type_id: str, type: int, vn: str
    ) -> dict[str, Any]:
        row = self.image_row(partner_id, type, vn)
        if not self.is_associated(row["id"], partner_id, device_type_id):
            raise not_found(
                f"image type {type} version number {vn} is not associated with "
                f"device type '{device_type_id}'",
                "associate it with POST "
                f"/v1/ota/partners/{partner_id}/deviceTypes/{device_type_id}"
                "/firmwareImages",
            )
        return row

    def is_associated(self, image_id: str, partner_id: str, device_type_id: str) -> bool:
        row = self.store.one(
            "SELECT 1 FROM associations WHERE image_id=? AND partner_id=? AND device_type_id=?",
            [image_id, partner_id, device_type_id],
        )
        return row is not None

    def associated_images(
        self,
        partner_id: str,
        device_type_id: str,
        page: PageRequest,
        type: int | None = None,
        tags: Iterable[str] = (),
    ) -> dict[str, Any]:
        """A page of the images associated with a device type, each with its `deviceTypeId`."""
        self._device_type_row(partner_id, device_type_id)
        body = self.list_images(
            partner_id, page, type=type, device_type_id=device_type_id, tags=tags
        )
        body["content"] = [item | {"deviceTypeId": device_type_id} for item in body["content"]]
        return body

    def associated_image(
        self, partner_id: str, device_type_id: str, type: int, vn: str
    ) -> dict[str, Any]:
        row = self._associated_row(partner_id, device_type_id, type, vn)
        return self._image_body(row) | {"deviceTypeId": device_type_id}

    def dissociate(self, partner_id: str, device_type_id: str, type: int, vn: str) -> None:
        with self.store.transaction():
            row = self._associated_row(partner_id, device_type_id, type, vn)
            self.store.execute(
                "DELETE FROM associations WHERE image_id=? AND partner_id=? AND device_type_id=?",
                [row["id"], partner_id, device_type_id],
            )
