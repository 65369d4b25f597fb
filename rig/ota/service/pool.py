"""Firmware images in the pool (R4, R5, R7): adding and changing them, and their tags.

Reading the pool (records, search, associations, tags) is `ImageQueries` in image_queries.py,
which `Pool` extends; this module holds the upload rules and the writes.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Mapping
from typing import Any

from rig.ota.service.catalogue import binary_url, require_mcu_type
from rig.ota.service.errors import OtaError, conflict, invalid, not_found
from rig.ota.service.image_queries import ImageQueries, clean_tags
from rig.ota.service.limits import TAGS_PER_IMAGE
from rig.ota.service.store import new_id, now_ms


def sha_from_url(url: str) -> str:
    """The SHA-256 at the end of a repository url (absolute or path-only)."""
    return url.rstrip("/").rsplit("/", 1)[-1].lower()


class Pool(ImageQueries):
    """The image pool of each partner."""

    def create_image(
        self,
        partner_id: str,
        *,
        type: int,
        url: str,
        name: str | None = None,
        description: str | None = None,
        version: str | None = None,
        tags: Iterable[str] = (),
        associations: Mapping[str, Iterable[str]] | None = None,
    ) -> dict[str, Any]:
        """Add an image to the pool; the service assigns its version number."""
        fields = {"name": name, "description": description, "version": version}
        missing = [k for k, v in fields.items() if v is None or not str(v).strip()]
        if missing:
            raise OtaError(
                400,
                "R5",
                "R5: an image needs a name, a description and a version "
                f"string; missing: {', '.join(missing)}",
                "fill in every one of name, description and version",
            )
        with self.store.transaction():
            self._require_uploadable(partner_id, type)
            sha = sha_from_url(url)
            binary = self._stored_binary(partner_id, sha, url)
            self._require_new_version(partner_id, type, str(name), str(version))
            wanted = {p: list(dts) for p, dts in (associations or {}).items()}
            for other, device_types in wanted.items():
                for dt in device_types:
                    self._require_own_partner(partner_id, other, dt)
                    self.require_eligible(partner_id, dt, type)
            number = 1 + self.store.scalar(
                "SELECT last_version_number FROM image_types WHERE partner_id=? AND type=?",
                [partner_id, type],
            )
            self.store.execute(
                "UPDATE image_types SET last_version_number=? WHERE partner_id=? AND type=?",
                [number, partner_id, type],
            )
            image_id, now = new_id(), now_ms()
            self.store.execute(
                "INSERT INTO images (id, partner_id, type, version_number, name, description, "
                "version, url, sha256, size, created, updated) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                [
                    image_id,
                    partner_id,
                    type,
                    number,
                    name,
                    description,
                    version,
                    binary_url(partner_id, sha),  # the path: valid whatever host serves it
                    sha,
                    binary["size"],
                    now,
                    now,
                ],
            )
            self._set_tags(image_id, tags)
            for dts in wanted.values():
                for dt in dts:
                    self._associate_row(image_id, partner_id, dt)
        return self.get_image(partner_id, type, str(number))

    def add_image(self, partner_id: str, data: bytes, **fields: Any) -> dict[str, Any]:
        """Upload, keep and register bytes in one call (lab set-up without HTTP).

        `fields` are those of `create_image` except `url`: type, name, description, version,
        tags, associations. The same rules apply as over HTTP.
        """
        with self.blobs.upload() as upload:
            upload.write(data)
            sha, size = upload.commit()
        self.record_upload(partner_id, sha, size)
        url = self.move_to_repository(partner_id, sha)["value"]
        return self.create_image(partner_id, url=url, **fields)

    def _require_uploadable(self, partner_id: str, type: int) -> None:
        """R4: the type exists and some published profile enables it."""
        require_mcu_type(type, "use the number of one of your image types (GET /types)")
        if (
            self.store.one(
                "SELECT 1 FROM image_types WHERE partner_id=? AND type=?", [partner_id, type]
            )
            is None
        ):
            raise OtaError(
                404,
                "R4",
                f"R4: partner '{partner_id}' has no image type {type}; an "
                "image can only be uploaded into an existing image type",
                f"create it with POST /v1/ota/partners/{partner_id}/types",
            )
        if (
            self.store.one(
                "SELECT 1 FROM enabled_types WHERE partner_id=? AND type=?", [partner_id, type]
            )
            is None
        ):
            raise OtaError(
                409,
                "R4",
                f"R4: no published profile of partner '{partner_id}' enables image type {type} yet",
                f"publish a device type's profile "
                f"with otaImageTypes: [{type}] first (PUT /v1/local/partners/"
                f"{partner_id}/deviceTypes/{{dt}}/profile)",
            )

    def _require_new_version(self, partner_id: str, type: int, name: str, version: str) -> None:
        row = self.store.one(
            "SELECT version_number FROM images WHERE partner_id=? AND type=? "
            "AND name=? AND version=?",
            [partner_id, type, name, version],
        )
        if row is not None:
            raise OtaError(
                409,
                "R5",
                f"R5: image type {type} already has '{name}' version "
                f"'{version}' (version number {row['version_number']})",
                "give the new build another version string",
            )

    def _require_own_partner(self, partner_id: str, other: str, device_type_id: str) -> None:
        if other != partner_id:
            raise not_found(
                f"partner '{partner_id}' cannot see device type '{device_type_id}' "
                f"of partner '{other}'",
                f'associate with your own device types: {{"{partner_id}": [...]}}',
            )

    def _set_tags(self, image_id: str, tags: Iterable[str]) -> None:
        self.store.execute("DELETE FROM image_tags WHERE image_id=?", [image_id])
        for tag in clean_tags(tags):
            self.store.execute("INSERT INTO image_tags VALUES (?,?)", [image_id, tag])

    def _associate_row(self, image_id: str, partner_id: str, device_type_id: str) -> None:
        self.store.execute(
            "INSERT OR IGNORE INTO associations VALUES (?,?,?,?)",
            [image_id, partner_id, device_type_id, now_ms()],
        )

    def update_image(
        self,
        partner_id: str,
        type: int,
        version_number: str,
        *,
        name: str | None = None,
        description: str | None = None,
        version: str | None = None,
        url: str | None = None,
        tags: Iterable[str] | None = None,
    ) -> dict[str, Any]:
        """Change an image's name, description, version string, url or tags; its numbers stay.

        A new `url` must name a binary in the partner's repository; it can replace the bytes
        only while no deployment uses the image.
        """
        with self.store.transaction():
            row = self.image_row(partner_id, type, version_number)
            for field, value in (
                ("name", name),
                ("description", description),
                ("version", version),
            ):
                if value is not None and not value.strip():
                    raise OtaError(400, "R5", f"R5: an image's {field} cannot be empty")
            new_name, new_version = name or row["name"], version or row["version"]
            try:
                self.store.execute(
                    "UPDATE images SET name=?, description=?, version=?, updated=? WHERE id=?",
                    [
                        new_name,
                        description or row["description"],
                        new_version,
                        now_ms(),
                        row["id"],
                    ],
                )
            except sqlite3.IntegrityError as exc:
                raise OtaError(
                    409,
                    "R5",
                    f"R5: image type {type} already has '{new_name}' version '{new_version}'",
                    "choose another name or version string",
                ) from exc
            if url is not None:
                self._replace_bytes(partner_id, row, url)
            if tags is not None:
                self._set_tags(row["id"], tags)
        return self.get_image(partner_id, type, version_number)

    def _stored_binary(self, partner_id: str, sha: str, url: str) -> dict[str, Any]:
        """The partner's kept binary an image's `url` names (R4: only kept bytes are images)."""
        binary = self.store.one(
            "SELECT * FROM binaries WHERE partner_id=? AND sha256=? AND in_repository=1",
            [partner_id, sha],
        )
        if binary is None:
            raise not_found(
                f"url {url!r} names no binary in partner '{partner_id}''s repository",
                "upload the bytes (POST /binaries), keep them (POST "
                "/binaries/moveToRepository) and use the url that returns",
            )
        return binary

    def _replace_bytes(self, partner_id: str, row: dict[str, Any], url: str) -> None:
        sha = sha_from_url(url)
        if sha == row["sha256"]:
            return
        binary = self._stored_binary(partner_id, sha, url)
        if self.store.one("SELECT 1 FROM deployments WHERE image_id=?", [row["id"]]):
            raise conflict(
                f"image {row['id']} has deployments: its bytes cannot change any more",
                "add the new bytes as a new image (POST /pool)",
            )
        self.store.execute(
            "UPDATE images SET url=?, sha256=?, size=? WHERE id=?",
            [binary_url(partner_id, sha), sha, binary["size"], row["id"]],
        )


def parse_tags(text: str | None) -> list[str]:
    """`a,b` → ['a', 'b'] (the `tags` query parameter)."""
    if text is None:
        return []
    tags = clean_tags(text.split(","))
    if not tags and text.strip(","):
        raise invalid(f"tags {text[:80]!r} names no tag", "give tags as tags=a,b")
    if len(tags) > TAGS_PER_IMAGE:  # no image carries more, so no image could match
        raise invalid(
            f"tags names {len(tags)} tags; an image carries at most {TAGS_PER_IMAGE}",
            f"search with at most {TAGS_PER_IMAGE} tags",
        )
    return tags
