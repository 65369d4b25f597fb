"""Reading the image pool: image records, the R7 search, associations, tags.

Kept apart from pool.py, which creates and changes images, so the read side (used by every
later layer: associations, deployments, the device side) is one small module. `Pool` extends
`ImageQueries`, as `DeviceTypes` extends `Catalogue`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from rig.ota.service.device_types import DeviceTypes
from rig.ota.service.errors import not_found
from rig.ota.service.paging import PageRequest, paged
from rig.ota.service.store import as_number

_IMAGE_SORT = {
    "versionNumber": "i.version_number",
    "name": "i.name",
    "description": "i.description",
    "version": "i.version",
    "type": "i.type",
    "createdTimestamp": "i.created",
    "updatedTimestamp": "i.updated",
}


def clean_tags(tags: Iterable[str]) -> list[str]:
    """Each tag stripped, blanks and repeats dropped, sorted."""
    return sorted({t.strip() for t in tags if t and t.strip()})


class ImageQueries(DeviceTypes):
    """The images of each partner's pool, as the API shows them."""

    def _image_body(self, row: dict[str, Any]) -> dict[str, Any]:
        tags = [
            r["tag"]
            for r in self.store.all(
                "SELECT tag FROM image_tags WHERE image_id=? ORDER BY tag", [row["id"]]
            )
        ]
        return {
            "id": row["id"],
            "partnerId": row["partner_id"],
            "versionNumber": str(row["version_number"]),
            "name": row["name"],
            "description": row["description"],
            "type": row["type"],
            "version": row["version"],
            "url": row["url"],
            "sha256": row["sha256"],
            "size": row["size"],
            "tags": tags,
            "associations": self._associations_of(row["id"]),
            "createdTimestamp": row["created"],
            "updatedTimestamp": row["updated"],
        }

    def _associations_of(self, image_id: str) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for r in self.store.all(
            "SELECT partner_id, device_type_id FROM associations WHERE "
            "image_id=? ORDER BY device_type_id",
            [image_id],
        ):
            out.setdefault(r["partner_id"], []).append(r["device_type_id"])
        return out

    def image_row(self, partner_id: str, type: int, version_number: str) -> dict[str, Any]:
        row = None
        number = as_number(version_number)
        if number is not None:
            row = self.store.one(
                "SELECT * FROM images WHERE partner_id=? AND type=? AND version_number=?",
                [partner_id, type, number],
            )
        if row is None:
            raise not_found(
                f"partner '{partner_id}' has no image of type {type} with version "
                f"number {version_number!r}",
                f"list them with GET /v1/ota/partners/{partner_id}/pool/types/{type}",
            )
        return row

    def get_image(self, partner_id: str, type: int, version_number: str) -> dict[str, Any]:
        return self._image_body(self.image_row(partner_id, type, version_number))

    def image_by_id(self, partner_id: str, image_id: str) -> dict[str, Any]:
        row = self.store.one(
            "SELECT * FROM images WHERE partner_id=? AND id=?", [partner_id, image_id]
        )
        if row is None:
            raise not_found(
                f"partner '{partner_id}' has no image with id {image_id!r}",
                f"list them with GET /v1/ota/partners/{partner_id}/pool",
            )
        return row

    def list_images(
        self,
        partner_id: str,
        page: PageRequest,
        *,
        tags: Iterable[str] = (),
        type: int | None = None,
        device_type_id: str | None = None,
    ) -> dict[str, Any]:
        """R7: filter by image type, device type, and tags (an image must carry every tag)."""
        where, params = ["i.partner_id=?"], [partner_id]
        if type is not None:
            where.append("i.type=?")
            params.append(type)
        if device_type_id is not None:
            where.append(
                "i.id IN (SELECT image_id FROM associations WHERE partner_id=? AND "
                "device_type_id=?)"
            )
            params += [partner_id, device_type_id]
        wanted = clean_tags(tags)
        if wanted:
            marks = ",".join("?" * len(wanted))
            where.append(
                f"i.id IN (SELECT image_id FROM image_tags WHERE tag IN ({marks}) "
                "GROUP BY image_id HAVING COUNT(*)=?)"
            )
            params += [*wanted, len(wanted)]
        return paged(
            self.store,
            select="i.*",
            source="images i WHERE " + " AND ".join(where),
            params=params,
            fields=_IMAGE_SORT,
            default_sort="createdTimestamp,asc",
            tiebreak="i.rowid",
            request=page,
            convert=self._image_body,
        )

    def image_associations(self, partner_id: str, type: int, vn: str) -> list[dict[str, Any]]:
        """One record per device type the image is associated with (Afero's association shape).

        rig has no partner names or e-mail addresses: `name` is the partner id, `email` is "".
        """
        image_id = self.image_row(partner_id, type, vn)["id"]
        rows = self.store.all(
            "SELECT a.partner_id, a.device_type_id, d.name AS device_type_name "
            "FROM associations a LEFT JOIN device_types d "
            "ON d.partner_id=a.partner_id AND d.id=a.device_type_id "
            "WHERE a.image_id=? ORDER BY a.partner_id, a.device_type_id",
            [image_id],
        )
        return [
            {
                "name": r["partner_id"],
                "partnerId": r["partner_id"],
                "email": "",
                "deviceTypeId": r["device_type_id"],
                "deviceTypeName": r["device_type_name"] or r["device_type_id"],
                "firmwareImageId": image_id,
            }
            for r in rows
        ]

    def image_exists(
        self,
        partner_id: str,
        type: int,
        name: str,
        version: str,
        exclude_image_id: str | None = None,
    ) -> dict[str, bool]:
        """Whether another image has this type, name and version (`exclude_image_id` aside)."""
        row = self.store.one(
            "SELECT 1 FROM images WHERE partner_id=? AND type=? AND name=? AND version=? "
            "AND id IS NOT ?",
            [partner_id, type, name, version, exclude_image_id],
        )
        return {"value": row is not None}

    def tags(self, partner_id: str) -> list[str]:
        rows = self.store.all(
            "SELECT DISTINCT t.tag FROM image_tags t JOIN images i ON "
            "i.id=t.image_id WHERE i.partner_id=? ORDER BY t.tag",
            [partner_id],
        )
        return [r["tag"] for r in rows]
