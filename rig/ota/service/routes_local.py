"""The local-only partner API (`/v1/local/partners/{partnerId}`) and the device API of accounts.

Device types, profile publishing, device registration and deployment tracking are what the
Profile Editor and the cloud do in the real system; the local service offers them here, under
the partner's token, so a lab can build the whole pipeline on one machine.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field

from rig.ota.service.auth import PartnerAuth
from rig.ota.service.deps import account, partner_id, service
from rig.ota.service.domain import OtaService
from rig.ota.service.errors import invalid
from rig.ota.service.export_schema import ExportDescription, ExportDeviceType
from rig.ota.service.fleet import EXPANSIONS
from rig.ota.service.http_io import StrictJsonRoute
from rig.ota.service.limits import Description, Id, Name
from rig.ota.service.paging import PageRequest, page_params
from rig.ota.service.profiles import Profile

local = APIRouter(
    prefix="/v1/local/partners/{partnerId}", tags=["local-only"], route_class=StrictJsonRoute
)
accounts = APIRouter(
    prefix="/v1/accounts/{accountId}", tags=["devices"], route_class=StrictJsonRoute
)
Svc = Depends(service)
Partner = Depends(partner_id)
Page = Depends(page_params)
Caller = Depends(account)


class DeviceTypeIn(BaseModel):
    id: Id
    name: Name = ""
    description: Description = ""


class ExportIn(BaseModel):
    """A Profile Editor export; a wrong shape is 422 naming its path (export_schema.py)."""

    deviceType: ExportDeviceType = Field(description="the export's device-type.json")
    deviceDescription: ExportDescription = Field(description="the export's device-description.json")


class DeviceIn(BaseModel):
    deviceId: Id
    deviceTypeId: Id
    accountId: Id | None = None


@local.post("/deviceTypes", status_code=201)
def create_device_type(body: DeviceTypeIn, p: str = Partner, svc: OtaService = Svc):
    return svc.create_device_type(p, body.id, body.name, body.description)


@local.get("/deviceTypes")
def list_device_types(page: PageRequest = Page, p: str = Partner, svc: OtaService = Svc):
    return svc.list_device_types(p, page)


@local.get("/deviceTypes/{dt}")
def get_device_type(dt: str, p: str = Partner, svc: OtaService = Svc) -> dict[str, Any]:
    return svc.get_device_type(p, dt)


@local.put("/deviceTypes/{dt}/profile")
def publish_profile(dt: str, body: Profile, p: str = Partner, svc: OtaService = Svc):
    """Publish a profile (R3); the answer lists every attribute, OTA ones included."""
    return svc.publish_profile(p, dt, body)


@local.put("/deviceTypes/{dt}/profile/export")
def publish_export(dt: str, body: ExportIn, p: str = Partner, svc: OtaService = Svc):
    """Publish a Profile Editor export (device-type.json + device-description.json)."""
    exported = body.deviceType.model_dump(), body.deviceDescription.model_dump()
    return svc.publish_export(p, dt, *exported)


@local.post("/devices", status_code=201)
def register_device(body: DeviceIn, p: str = Partner, svc: OtaService = Svc) -> dict[str, Any]:
    """Register a device; its secret is in this answer only."""
    return svc.register_device(p, body.deviceId, body.deviceTypeId, body.accountId)


@local.get("/deployments")
def list_deployments(
    deviceId: str | None = None,
    state: str | None = None,
    page: PageRequest = Page,
    p: str = Partner,
    svc: OtaService = Svc,
):
    return svc.list_deployments(p, page, device_id=deviceId, state=state)


@local.get("/deployments/{deploymentId}")
def get_deployment(deploymentId: str, p: str = Partner, svc: OtaService = Svc):
    return svc.get_deployment(p, deploymentId)


@local.post("/deployments/{deploymentId}/cancel")
def cancel_deployment(deploymentId: str, p: str = Partner, svc: OtaService = Svc):
    return svc.cancel(p, deploymentId)


def _expansions(text: str | None) -> list[str]:
    wanted = [e.strip() for e in (text or "").split(",") if e.strip()]
    unknown = [e for e in wanted if e not in EXPANSIONS]
    if unknown:
        raise invalid(f"unknown expansion(s) {unknown}", f"use {','.join(EXPANSIONS)}")
    return wanted


ExpansionsQuery = Query(None, description="any of state,tags,attributes, comma-separated")


@accounts.get("/devices")
def list_devices(
    expansions: str | None = ExpansionsQuery,
    caller: PartnerAuth = Caller,
    svc: OtaService = Svc,
) -> list[dict[str, Any]]:
    """Every device of the account: a bare array (Afero documents no paging for this list)."""
    return svc.list_devices(caller.partner_id, caller.account_id, _expansions(expansions))


@accounts.get("/devices/{deviceId}")
def get_device(
    deviceId: str,
    expansions: str | None = ExpansionsQuery,
    svc: OtaService = Svc,
    caller: PartnerAuth = Caller,
) -> dict[str, Any]:
    return svc.get_device(caller.partner_id, caller.account_id, deviceId, _expansions(expansions))
