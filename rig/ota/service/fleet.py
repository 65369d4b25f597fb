"""Registered devices, and pushes (R8): the partner's side of getting an image onto a board."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Any

from rig.ota import states as ds
from rig.ota.service.auth import ID_PATTERN, hash_secret, new_secret
from rig.ota.service.deployments import Deployments
from rig.ota.service.errors import OtaError, conflict, invalid, not_found
from rig.ota.service.profiles import VERSION_BASE
from rig.ota.service.store import as_number, loads, now_ms

CONNECTED_WINDOW_MS = 120_000  # a device that checked in this recently counts as connected
EXPANSIONS = ("state", "tags", "attributes")  # Afero's three, in the order its page names them
# A device is `updating` while a deployment it has been offered is still under way: offered and
# not yet ended (QUEUED is not offered yet; INTERRUPTED waits for the next check-in).
UPDATING = tuple(sorted(ds.OPEN - {ds.QUEUED} - ds.RETRYABLE))


class Fleet(Deployments):
    """Registered devices and the deployments pushed to them."""

    # -- devices -----------------------------------------------------------------------------

    def register_device(
        self,
        partner_id: str,
        device_id: str,
        device_type_id: str,
        account_id: str | None = None,
        secret: str | None = None,
    ) -> dict[str, Any]:
        """Register a board; the answer holds its secret (shown this once).

        A device id is the ASR's hardware id, unique world-wide, and the device API addresses a
        device by its id alone, so ids are not scoped per partner: an id registers once. The
        refusal of a taken id is the same whether the caller or another partner holds it, and
        names no one, so it tells another partner nothing but that the id is taken.
        """
        if not ID_PATTERN.match(device_id):
            raise invalid(
                f"device id {device_id!r} is not usable",
                "use letters, digits, '.', '_', ':' or '-' (at most 128)",
            )
        account = self.partners[partner_id].account_id
        if account_id not in (None, account):
            raise invalid(
                f"partner '{partner_id}' has account '{account}', not '{account_id}'",
                "leave accountId out to use the partner's account",
            )
        secret = secret or new_secret()
        with self.store.transaction():
            self._device_type_row(partner_id, device_type_id)
            if self.store.one("SELECT 1 FROM devices WHERE device_id=?", [device_id]):
                raise conflict(
                    f"device id '{device_id}' is already registered",
                    "a device id is its ASR's hardware id and registers once: check the id for "
                    "a typo; if the board is yours, it is listed by GET /v1/accounts/{accountId}"
                    "/devices and keeps the secret it was given",
                )
            self.store.execute(
                "INSERT INTO devices (device_id, partner_id, account_id, device_type_id, "
                "secret_sha256, created) VALUES (?,?,?,?,?,?)",
                [device_id, partner_id, account, device_type_id, hash_secret(secret), now_ms()],
            )
        return {
            "deviceId": device_id,
            "deviceTypeId": device_type_id,
            "partnerId": partner_id,
            "accountId": account,
            "secret": secret,
        }

    def ensure_device(
        self, partner_id: str, device_id: str, device_type_id: str, secret: str | None = None
    ) -> dict[str, Any]:
        """Register the device, or give an existing one this device type and a new secret.

        For lab set-up over a kept data folder: a board's secret is shown only once, so a new
        session re-keys it instead of failing on 'already registered'.
        """
        with self.store.transaction():
            row = self.store.one("SELECT * FROM devices WHERE device_id=?", [device_id])
            if row is None:
                return self.register_device(partner_id, device_id, device_type_id, None, secret)
            if row["partner_id"] != partner_id:
                raise conflict(f"device id '{device_id}' is taken", "pick another device id")
            self._device_type_row(partner_id, device_type_id)
            secret = secret or new_secret()
            self.store.execute(
                "UPDATE devices SET device_type_id=?, secret_sha256=? WHERE device_id=?",
                [device_type_id, hash_secret(secret), device_id],
            )
            body = self._device_body(row, (), self._updating(partner_id, device_id))
            return {**body, "deviceTypeId": device_type_id, "secret": secret}

    def _device_row(self, partner_id: str, device_id: str) -> dict[str, Any] | None:
        return self.store.one(
            "SELECT * FROM devices WHERE device_id=? AND partner_id=?", [device_id, partner_id]
        )

    def installed_versions(self, device_id: str) -> dict[int, int]:
        """{type: version number} as the device last reported them (attribute 2000+t)."""
        rows = self.store.all(
            "SELECT attr_id, value FROM device_attributes WHERE device_id=? "
            "AND attr_id BETWEEN ? AND ?",
            [device_id, 2101, 2200],
        )
        out = {}
        for r in rows:
            value = loads(r["value"])
            if (number := as_number(value)) is not None:
                out[r["attr_id"] - VERSION_BASE] = number
        return out

    def _updating(self, partner_id: str, device_id: str | None = None) -> set[str]:
        """The partner's devices (or just this one) with an offered deployment not yet ended."""
        marks = ",".join("?" * len(UPDATING))
        sql = (
            f"SELECT DISTINCT device_id FROM deployments WHERE partner_id=? AND state IN ({marks})"
        )
        params: list[Any] = [partner_id, *UPDATING]
        if device_id is not None:
            sql, params = sql + " AND device_id=?", [*params, device_id]
        return {r["device_id"] for r in self.store.all(sql, params)}

    def _device_body(
        self, row: dict[str, Any], expansions: Iterable[str], updating: set[str]
    ) -> dict[str, Any]:
        """A device as Afero's device API shows one, where rig has the data, plus rig's fields.

        Afero's names: `deviceId`, `deviceTypeId`, `partnerId`, `createdTimestamp`, `updating`;
        with `state`, `deviceState` ({connected, updatedTimestamp = last check-in}); with
        `attributes`, `attributes`; with `tags`, `deviceTags` (always empty: rig has no device
        tags). rig's own: `accountId`, and `state` ({connected, lastCheckin}) beside
        `deviceState`; its attributes carry `value` (the reported JSON value), not Afero's hex
        `data`, since rig never sees the attribute's bytes.
        """
        body: dict[str, Any] = {
            "deviceId": row["device_id"],
            "deviceTypeId": row["device_type_id"],
            "partnerId": row["partner_id"],
            "accountId": row["account_id"],
            "createdTimestamp": row["created"],
            "updating": row["device_id"] in updating,
        }
        if "state" in expansions:
            last = row["last_checkin"]
            connected = last is not None and now_ms() - last < CONNECTED_WINDOW_MS
            body["deviceState"] = {"connected": connected}
            if last is not None:  # never checked in: no time to give
                body["deviceState"]["updatedTimestamp"] = last
            body["state"] = {"connected": connected, "lastCheckin": last}
        if "tags" in expansions:
            body["deviceTags"] = []
        if "attributes" in expansions:
            body["attributes"] = [
                {"id": r["attr_id"], "value": loads(r["value"]), "updatedTimestamp": r["updated"]}
                for r in self.store.all(
                    "SELECT * FROM device_attributes WHERE device_id=? ORDER BY attr_id",
                    [row["device_id"]],
                )
            ]
        return body

    def get_device(
        self, partner_id: str, account_id: str, device_id: str, expansions: Iterable[str] = ()
    ) -> dict[str, Any]:
        row = self._device_row(partner_id, device_id)
        if row is None or row["account_id"] != account_id:
            raise not_found(f"account '{account_id}' has no device '{device_id}'")
        return self._device_body(row, list(expansions), self._updating(partner_id, device_id))

    def list_devices(
        self, partner_id: str, account_id: str, expansions: Iterable[str] = ()
    ) -> list[dict[str, Any]]:
        """Every device of the account, by device id: a bare array, as Afero documents it.

        Not paged and not capped: Afero's page shows no paging parameters for this list, and a
        cap would hide devices with no way to reach them. Each device is registered by hand
        through the local API, so the list stays as small as the lab.
        """
        wanted = list(expansions)
        with self.store.transaction():  # the devices and what they show from one snapshot
            rows = self.store.all(
                "SELECT * FROM devices WHERE partner_id=? AND account_id=? ORDER BY device_id",
                [partner_id, account_id],
            )
            updating = self._updating(partner_id)
            return [self._device_body(row, wanted, updating) for row in rows]

    # -- pushes (R8) -------------------------------------------------------------------------

    def push(
        self, partner_id: str, device_type_id: str, image_id: str, device_id: str
    ) -> dict[str, Any]:
        """Queue one image for one device; older open pushes of that type are SUPERSEDED."""
        with self.store.transaction():
            image = self.image_by_id(partner_id, image_id)
            self._device_type_row(partner_id, device_type_id)
            t, vn = image["type"], image["version_number"]
            device = self._device_row(partner_id, device_id)
            if device is None:
                raise OtaError(
                    404,
                    "R8",
                    f"R8: partner '{partner_id}' has no device '{device_id}' to push to",
                    f"register it with POST /v1/local/partners/{partner_id}/devices",
                )
            if device["device_type_id"] != device_type_id:
                raise OtaError(
                    409,
                    "R8",
                    f"R8: device '{device_id}' is a "
                    f"'{device['device_type_id']}', not a '{device_type_id}'",
                    f"push through /deviceTypes/{device['device_type_id']}/...",
                )
            if not self.is_associated(image_id, partner_id, device_type_id):
                raise OtaError(
                    409,
                    "R8",
                    f"R8: image {image_id} (type {t}, version number {vn}) "
                    f"is not associated with device type '{device_type_id}'",
                    f"associate it first: POST /v1/ota/partners/{partner_id}/"
                    f"deviceTypes/{device_type_id}/firmwareImages",
                )
            installed = self.installed_versions(device_id).get(t)
            if installed is not None and installed >= vn:
                what = "would be a downgrade" if installed > vn else "would change nothing"
                raise OtaError(
                    409,
                    "R8",
                    f"R8: device '{device_id}' already runs version number "
                    f"{installed} of type {t}; pushing version number {vn} {what}",
                    "re-upload the old binary to give it a new version number"
                    if installed > vn
                    else "upload a newer build and push that",
                )
            deployment_id = str(uuid.uuid4())
            for old in self.store.all(
                "SELECT id, state FROM deployments WHERE device_id=? AND type=?", [device_id, t]
            ):
                if old["state"] in ds.OPEN:
                    self._move(
                        old["id"],
                        ds.SUPERSEDED,
                        None,
                        f"superseded by deployment {deployment_id} (version number {vn})",
                    )
            now = now_ms()
            self.store.execute(
                "INSERT INTO deployments (id, partner_id, device_id, device_type_id, image_id, "
                "type, version_number, state, attempt, created, updated) "
                "VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                [
                    deployment_id,
                    partner_id,
                    device_id,
                    device_type_id,
                    image_id,
                    t,
                    vn,
                    ds.QUEUED,
                    1,
                    now,
                    now,
                ],
            )
            self._history(
                deployment_id,
                ds.QUEUED,
                None,
                f"pushed by partner '{partner_id}': '{image['name']}' version "
                f"'{image['version']}' (type {t}, version number {vn})",
                1,
            )
        body = self.get_deployment(partner_id, deployment_id)
        return {"deploymentId": deployment_id, **body}
