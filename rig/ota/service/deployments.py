"""Deployments as the partner sees them: their records, history, listing and cancel.

Every state change of a deployment goes through `_move`, which asks the state machine
(rig.ota.states) and appends the history entry in the same transaction. Every history entry
(a push's QUEUED included) rings the device's `work_bell`, so a device long-polling for work
hears of a push, a cancel or a supersede at once.
"""

from __future__ import annotations

from typing import Any

from rig.ota import states as ds
from rig.ota.service.associations import Associations
from rig.ota.service.errors import conflict, invalid, not_found
from rig.ota.service.paging import PageRequest, paged
from rig.ota.service.store import now_ms
from rig.ota.service.work_bell import WorkBell


def judge(deployment_id: str, current: str, new: str) -> ds.Move:
    """'same' (a repeat: no history entry), 'move', or 'retry' (a new attempt); else 409."""
    verdict = ds.move(current, new)
    if verdict is not None:
        return verdict
    if current in ds.TERMINAL and current not in ds.RETRYABLE:
        raise conflict(
            f"deployment {deployment_id} already ended {current}; it cannot move to {new}",
            "a finished deployment is final: push the image again for a new deployment",
        )
    raise conflict(
        f"deployment {deployment_id} is {current}; it cannot move to {new}",
        f"from {current} a deployment can move to: {', '.join(ds.allowed_from(current))}",
    )


class Deployments(Associations):
    """One deployment = one push of one image to one device, with its state history."""

    #: An INTERRUPTED deployment is offered again until it has used this many attempts.
    max_attempts: int = ds.MAX_ATTEMPTS

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.work_bell = WorkBell()

    def _history(
        self, deployment_id: str, state: str, reason: str | None, detail: str | None, attempt: int
    ) -> None:
        seq = 1 + (
            self.store.scalar(
                "SELECT MAX(seq) FROM deployment_history WHERE deployment_id=?", [deployment_id]
            )
            or 0
        )
        self.store.execute(
            "INSERT INTO deployment_history VALUES (?,?,?,?,?,?,?)",
            [deployment_id, seq, state, reason, detail, now_ms(), attempt],
        )
        device_id = self.store.scalar(
            "SELECT device_id FROM deployments WHERE id=?", [deployment_id]
        )
        if device_id is not None:  # a waiter wakes and reads once this transaction commits
            self.work_bell.ring(device_id)

    def _move(
        self,
        deployment_id: str,
        state: str,
        reason: str | None,
        detail: str | None,
        *,
        bytes_: int | None = None,
        total: int | None = None,
    ) -> None:
        """Judge and apply one state change, with its history entry (inside a transaction)."""
        row = self.store.one("SELECT * FROM deployments WHERE id=?", [deployment_id])
        assert row is not None
        verdict = judge(deployment_id, row["state"], state)
        attempt = row["attempt"] + (verdict == "retry")
        if state == ds.TIMED_OUT and not reason:
            reason = row["state"]  # the stage that timed out
        if bytes_ is not None or total is not None:
            self.store.execute(
                "UPDATE deployments SET bytes=COALESCE(?, bytes), "
                "total=COALESCE(?, total), updated=? WHERE id=?",
                [bytes_, total, now_ms(), deployment_id],
            )
        if verdict == "same":
            return
        if verdict == "retry":
            detail = f"attempt {attempt} (after {row['state']})" + (f": {detail}" if detail else "")
        if state == ds.INTERRUPTED and attempt >= self.max_attempts:
            limit = f"retry limit of {self.max_attempts} attempts reached: not offered again"
            detail = f"{detail}; {limit}" if detail else limit
        self.store.execute(
            "UPDATE deployments SET state=?, reason=?, attempt=?, updated=? WHERE id=?",
            [state, reason, attempt, now_ms(), deployment_id],
        )
        self._history(deployment_id, state, reason, detail, attempt)

    def _deployment_body(self, row: dict[str, Any]) -> dict[str, Any]:
        history = [
            {
                "state": h["state"],
                "reason": h["reason"],
                "detail": h["detail"],
                "timestamp": h["timestamp"],
                "attempt": h["attempt"],
            }
            for h in self.store.all(
                "SELECT * FROM deployment_history WHERE deployment_id=? ORDER BY seq", [row["id"]]
            )
        ]
        return {
            "id": row["id"],
            "partnerId": row["partner_id"],
            "deviceId": row["device_id"],
            "deviceTypeId": row["device_type_id"],
            "imageId": row["image_id"],
            "type": row["type"],
            "versionNumber": str(row["version_number"]),
            "state": row["state"],
            "reason": row["reason"],
            "attempt": row["attempt"],
            "bytes": row["bytes"],
            "total": row["total"],
            "history": history,
            "createdTimestamp": row["created"],
            "updatedTimestamp": row["updated"],
        }

    def _deployment_row(
        self, deployment_id: str, *, partner_id: str | None = None, device_id: str | None = None
    ) -> dict[str, Any]:
        row = self.store.one("SELECT * FROM deployments WHERE id=?", [deployment_id])
        if (
            row is None
            or partner_id not in (None, row["partner_id"])
            or device_id not in (None, row["device_id"])
        ):
            raise not_found(
                f"no deployment {deployment_id!r} here",
                "list deployments with GET /v1/local/partners/{partnerId}/deployments",
            )
        return row

    def get_deployment(self, partner_id: str, deployment_id: str) -> dict[str, Any]:
        return self._deployment_body(self._deployment_row(deployment_id, partner_id=partner_id))

    def list_deployments(
        self,
        partner_id: str,
        page: PageRequest,
        *,
        device_id: str | None = None,
        state: str | None = None,
    ) -> dict[str, Any]:
        where, params = ["partner_id=?"], [partner_id]
        if device_id is not None:
            where.append("device_id=?")
            params.append(device_id)
        if state is not None:
            if state not in ds.STATES:
                raise invalid(
                    f"{state!r} is not a deployment state", f"use one of {', '.join(ds.STATES)}"
                )
            where.append("state=?")
            params.append(state)
        return paged(
            self.store,
            select="*",
            source="deployments WHERE " + " AND ".join(where),
            params=params,
            fields={
                "createdTimestamp": "created",
                "updatedTimestamp": "updated",
                "state": "state",
                "deviceId": "device_id",
            },
            default_sort="createdTimestamp,asc",
            tiebreak="rowid",
            request=page,
            convert=self._deployment_body,
        )

    def cancel(self, partner_id: str, deployment_id: str) -> dict[str, Any]:
        with self.store.transaction():
            row = self._deployment_row(deployment_id, partner_id=partner_id)
            if row["state"] not in ds.OPEN:
                raise conflict(
                    f"deployment {deployment_id} already ended {row['state']}; "
                    "it cannot be canceled",
                    "nothing to do: it is final",
                )
            self._move(deployment_id, ds.CANCELED, None, f"canceled by partner '{partner_id}'")
        return self.get_deployment(partner_id, deployment_id)
