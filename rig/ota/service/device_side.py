"""The device's side of the service: what the ASR (real or emulated) calls with its secret.

A device reports its installed version of image type t through attribute 2000+t (at check-in
as `versions`, or as an attribute write); R8 reads that to refuse downgrades, and a matching
report while a deployment is APPLYING is the success signal of the handoff (DESIGN §3 step 6).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from rig.ota import states as ds
from rig.ota.service.auth import hash_secret, new_secret, secret_matches
from rig.ota.service.errors import OtaError, invalid, not_found
from rig.ota.service.fleet import Fleet
from rig.ota.service.profiles import DEFAULT_ATTRIBUTE_SIZE, MCU_TYPES, VERSION_BASE
from rig.ota.service.store import as_number, dumps, now_ms


class DeviceSide(Fleet):
    """Check-in, offers, downloads, progress and attribute reports of one device."""

    def authenticate_device(self, device_id: str, secret: str) -> dict[str, Any]:
        """The device row, if `secret` is its secret; 403 otherwise (unknown id included)."""
        row = self.store.one("SELECT * FROM devices WHERE device_id=?", [device_id])
        stored = row["secret_sha256"] if row else hash_secret(new_secret())
        if not secret_matches(secret, stored) or row is None:
            raise OtaError(
                403,
                "AUTH",
                f"this secret does not belong to device '{device_id}'",
                "use the secret returned when the device was registered",
            )
        return row

    def checkin(self, device_id: str, versions: Mapping[str, Any]) -> dict[str, Any]:
        """Record installed versions, mark the device connected, and offer its next deployment."""
        reports = []
        for key, value in versions.items():
            if as_number(key) not in MCU_TYPES:
                raise invalid(
                    f"versions key {key!r} is not an MCU image type (101..200)",
                    'send {"versions": {"101": "3"}}',
                )
            reports.append({"id": VERSION_BASE + int(key), "value": value})
        with self.store.transaction():
            self.report_attributes(device_id, reports)
            self.store.execute(
                "UPDATE devices SET last_checkin=? WHERE device_id=?", [now_ms(), device_id]
            )
            return {"deployment": self.next_offer(device_id)}

    def report_attributes(
        self, device_id: str, attributes: Iterable[Mapping[str, Any]]
    ) -> dict[str, Any]:
        """Store attribute values; 2000+t is the installed version number of type t."""
        with self.store.transaction():
            now = now_ms()
            for attr in attributes:
                attr_id, value = attr["id"], attr["value"]
                t = attr_id - VERSION_BASE
                if t in MCU_TYPES:
                    number = as_number(value)
                    if number is None:
                        raise invalid(
                            f"attribute {attr_id} carries the installed version number "
                            f"of type {t}; {value!r} is not a version number",
                            'report the version number as digits, e.g. "3"',
                        )
                    self._version_reported(device_id, t, number)
                self.store.execute(
                    "INSERT OR REPLACE INTO device_attributes VALUES (?,?,?,?)",
                    [device_id, attr_id, dumps(value), now],
                )
        return {"attributes": [{"id": a["id"], "value": a["value"]} for a in attributes]}

    def _version_reported(self, device_id: str, t: int, number: int) -> None:
        """The success signal: an APPLYING deployment of that version now runs."""
        for row in self.store.all(
            "SELECT id FROM deployments WHERE device_id=? AND type=? AND "
            "state=? AND version_number=?",
            [device_id, t, ds.APPLYING, number],
        ):
            self._move(
                row["id"], ds.SUCCEEDED, None, f"device reports version number {number} of type {t}"
            )

    def poll(self, device_id: str) -> dict[str, Any] | None:
        """A long-poll's first look: the device is connected (as at a check-in, which it no
        longer needs to repeat while it waits), and its next offer if it has one."""
        with self.store.transaction():
            self.store.execute(
                "UPDATE devices SET last_checkin=? WHERE device_id=?", [now_ms(), device_id]
            )
            return self.next_offer(device_id)

    def next_offer(self, device_id: str) -> dict[str, Any] | None:
        """The oldest open deployment as an offer (QUEUED → OFFERED; INTERRUPTED → a retry,
        unless it has used its `max_attempts`)."""
        with self.store.transaction():
            marks = ",".join("?" * len(ds.OPEN))
            row = self.store.one(
                f"SELECT * FROM deployments WHERE device_id=? AND state IN ({marks}) "
                "AND NOT (state=? AND attempt>=?) ORDER BY created, rowid LIMIT 1",
                [device_id, *sorted(ds.OPEN), ds.INTERRUPTED, self.max_attempts],
            )
            if row is None:
                return None
            if row["state"] in (ds.QUEUED, ds.INTERRUPTED):
                self._move(row["id"], ds.OFFERED, None, "offered to the device")
                row = self._deployment_row(row["id"])
            image = self.store.one("SELECT * FROM images WHERE id=?", [row["image_id"]])
            assert image is not None
            profile = self.published_profile(row["partner_id"], row["device_type_id"]) or {}
            return {
                "deploymentId": row["id"],
                "imageId": row["image_id"],
                "type": row["type"],
                "versionNumber": str(row["version_number"]),
                "size": image["size"],
                "sha256": image["sha256"],
                "state": row["state"],
                "attempt": row["attempt"],
                "downloadUrl": f"/v1/device/{device_id}/images/{image['sha256']}",
                "attributeSize": profile.get("otaAttributeSize", DEFAULT_ATTRIBUTE_SIZE),
            }

    def device_image(self, device_id: str, sha256: str) -> Path:
        """An image file the device may download: one of its own deployments'."""
        found = self.store.one(
            "SELECT 1 FROM deployments d JOIN images i ON i.id=d.image_id "
            "WHERE d.device_id=? AND i.sha256=?",
            [device_id, sha256.lower()],
        )
        path = self.blobs.find(sha256.lower()) if found else None
        if path is None:
            raise not_found(
                f"device '{device_id}' has no deployment of image {sha256}",
                "download the downloadUrl of an offered deployment",
            )
        return path

    def progress(
        self,
        device_id: str,
        deployment_id: str,
        state: str,
        reason: str | None = None,
        detail: str | None = None,
        bytes: int | None = None,
        total: int | None = None,
    ) -> dict[str, Any]:
        """A device's report on its deployment; the move is judged by the state machine."""
        if state in ds.SERVICE_ONLY:
            reportable = [s for s in ds.STATES if s not in ds.SERVICE_ONLY]
            raise invalid(
                f"a device cannot report {state}; only the service sets it",
                f"report one of {', '.join(reportable)}",
            )
        with self.store.transaction():
            self._deployment_row(deployment_id, device_id=device_id)
            if state == ds.TRANSFERRING and bytes is not None and detail is None:
                detail = f"{bytes}/{total if total is not None else '?'} bytes"
            self._move(deployment_id, state, reason, detail, bytes_=bytes, total=total)
            row = self._deployment_row(deployment_id)
        return self._deployment_body(row)
