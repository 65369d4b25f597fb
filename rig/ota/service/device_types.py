"""Device types and their published profiles (R3), and which image types they are eligible for (R6).

A device type is eligible for an image type when its latest published profile enables it; the
enabled types of the latest profile are kept in their own table, so R4 and R6 are one lookup.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rig.ota.service.auth import ID_PATTERN
from rig.ota.service.catalogue import Catalogue
from rig.ota.service.errors import OtaError, conflict, invalid, not_found
from rig.ota.service.paging import PageRequest, paged
from rig.ota.service.profiles import Profile, parse_profile, profile_from_export
from rig.ota.service.store import dumps, loads, now_ms


class DeviceTypes(Catalogue):
    """Device types of each partner, with their profiles."""

    def create_device_type(
        self, partner_id: str, device_type_id: str, name: str = "", description: str = ""
    ) -> dict[str, Any]:
        if not ID_PATTERN.match(device_type_id):
            raise invalid(
                f"device type id {device_type_id!r} is not usable",
                "use letters, digits, '.', '_', ':' or '-' (at most 128)",
            )
        with self.store.transaction():
            if self._device_type_row(partner_id, device_type_id, missing_ok=True):
                raise conflict(
                    f"partner '{partner_id}' already has device type '{device_type_id}'",
                    "publish a new profile for it instead",
                )
            now = now_ms()
            self.store.execute(
                "INSERT INTO device_types (partner_id, id, name, description, created, updated)"
                " VALUES (?,?,?,?,?,?)",
                [partner_id, device_type_id, name or device_type_id, description, now, now],
            )
        return self.get_device_type(partner_id, device_type_id)

    def ensure_device_type(
        self, partner_id: str, device_type_id: str, name: str = "", description: str = ""
    ) -> dict[str, Any]:
        """The device type, created if the partner lacks it (lab set-up)."""
        with self.store.transaction():
            if self._device_type_row(partner_id, device_type_id, missing_ok=True):
                return self.get_device_type(partner_id, device_type_id)
            return self.create_device_type(partner_id, device_type_id, name, description)

    def _device_type_row(
        self, partner_id: str, device_type_id: str, missing_ok: bool = False
    ) -> dict[str, Any] | None:
        row = self.store.one(
            "SELECT * FROM device_types WHERE partner_id=? AND id=?", [partner_id, device_type_id]
        )
        if row is None and not missing_ok:
            raise not_found(
                f"partner '{partner_id}' has no device type '{device_type_id}'",
                f"create it with POST /v1/local/partners/{partner_id}/deviceTypes",
            )
        return row

    def published_profile(self, partner_id: str, device_type_id: str) -> dict[str, Any] | None:
        """The latest published profile of a device type, or None."""
        body = self.store.scalar(
            "SELECT body FROM profiles WHERE partner_id=? AND device_type_id=? "
            "ORDER BY version DESC LIMIT 1",
            [partner_id, device_type_id],
        )
        return loads(body) if body else None

    def _device_type_body(self, row: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": row["id"],
            "partnerId": row["partner_id"],
            "name": row["name"],
            "description": row["description"],
            "createdTimestamp": row["created"],
            "updatedTimestamp": row["updated"],
            "profile": self.published_profile(row["partner_id"], row["id"]),
        }

    def get_device_type(self, partner_id: str, device_type_id: str) -> dict[str, Any]:
        row = self._device_type_row(partner_id, device_type_id)
        assert row is not None
        return self._device_type_body(row)

    def list_device_types(self, partner_id: str, page: PageRequest) -> dict[str, Any]:
        return paged(
            self.store,
            select="*",
            source="device_types WHERE partner_id=?",
            params=[partner_id],
            fields={"id": "id", "name": "name", "createdTimestamp": "created"},
            default_sort="id,asc",
            tiebreak="rowid",
            request=page,
            convert=self._device_type_body,
        )

    def publish_profile(
        self, partner_id: str, device_type_id: str, profile: Profile | Mapping[str, Any]
    ) -> dict[str, Any]:
        """R3: needs at least one image type, and every type it enables must exist."""
        if not isinstance(profile, Profile):
            profile = parse_profile(dict(profile))
        with self.store.transaction():
            self._device_type_row(partner_id, device_type_id)
            types = {
                r["type"]
                for r in self.store.all(
                    "SELECT type FROM image_types WHERE partner_id=?", [partner_id]
                )
            }
            create = f"create one with POST /v1/ota/partners/{partner_id}/types"
            if not types:
                raise OtaError(
                    409,
                    "R3",
                    f"R3: partner '{partner_id}' has no image type yet; a "
                    "profile can only be published once one exists",
                    create,
                )
            unknown = [t for t in profile.otaImageTypes if t not in types]
            if unknown:
                raise OtaError(
                    409,
                    "R3",
                    f"R3: the profile for '{device_type_id}' enables image "
                    f"type(s) {unknown}, which partner '{partner_id}' has not created",
                    f"{create}, or remove them from otaImageTypes",
                )
            version = 1 + (
                self.store.scalar(
                    "SELECT MAX(version) FROM profiles WHERE partner_id=? AND device_type_id=?",
                    [partner_id, device_type_id],
                )
                or 0
            )
            now = now_ms()
            attributes = profile.published_attributes()
            body = {
                "deviceTypeId": device_type_id,
                "partnerId": partner_id,
                "version": version,
                "publishedTimestamp": now,
                **profile.model_dump(exclude={"attributes"}),
                "attributes": attributes,
                "attributeIds": [a["id"] for a in attributes],
            }
            self.store.execute(
                "INSERT INTO profiles (partner_id, device_type_id, version, body, published)"
                " VALUES (?,?,?,?,?)",
                [partner_id, device_type_id, version, dumps(body), now],
            )
            self.store.execute(
                "DELETE FROM enabled_types WHERE partner_id=? AND device_type_id=?",
                [partner_id, device_type_id],
            )
            for t in profile.otaImageTypes:
                self.store.execute(
                    "INSERT INTO enabled_types VALUES (?,?,?)", [partner_id, device_type_id, t]
                )
            self.store.execute(
                "UPDATE device_types SET updated=? WHERE partner_id=? AND id=?",
                [now, partner_id, device_type_id],
            )
        return body

    def publish_export(
        self, partner_id: str, device_type_id: str, device_type: Any, device_description: Any
    ) -> dict[str, Any]:
        """Publish a Profile Editor export (device-type.json + device-description.json)."""
        if not isinstance(device_type, dict) or not isinstance(device_description, dict):
            raise invalid(
                "an export needs 'deviceType' and 'deviceDescription' JSON objects",
                'send {"deviceType": <device-type.json>, "deviceDescription": '
                "<device-description.json>}",
            )
        profile = profile_from_export(device_type, device_description)
        return self.publish_profile(partner_id, device_type_id, profile)

    def eligible_types(self, partner_id: str, device_type_id: str) -> list[int]:
        """The image types the device type's published profile enables (R6)."""
        rows = self.store.all(
            "SELECT type FROM enabled_types WHERE partner_id=? AND device_type_id=? ORDER BY type",
            [partner_id, device_type_id],
        )
        return [r["type"] for r in rows]

    def require_eligible(self, partner_id: str, device_type_id: str, type: int) -> None:
        """R6: the device type's published profile must enable the image's type."""
        self._device_type_row(partner_id, device_type_id)
        hint = (
            f"publish a profile for '{device_type_id}' that enables type {type}, or "
            "associate the image with another device type"
        )
        if self.published_profile(partner_id, device_type_id) is None:
            raise OtaError(
                409,
                "R6",
                f"R6: device type '{device_type_id}' is not eligible for "
                f"image type {type}: it has no published profile",
                hint,
            )
        if type not in self.eligible_types(partner_id, device_type_id):
            raise OtaError(
                409,
                "R6",
                f"R6: device type '{device_type_id}' is not eligible for "
                f"image type {type}: its published profile does not enable type "
                f"{type}",
                hint,
            )
