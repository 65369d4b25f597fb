"""The device-facing API the ASR (real or emulated) uses: `/v1/device/{deviceId}` (local-only).

`GET .../deployments/next?wait=S` is a long-poll: it answers at once when there is work, else
when the device's work changes (a push, a cancel, a supersede: work_bell.py) or after S
seconds (204). It is `async` and waits on the event loop, so waiting devices hold no thread.
"""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Depends, Header, Query, Request, Response
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from rig.ota.service.deps import device, service
from rig.ota.service.domain import OtaService
from rig.ota.service.http_io import StrictJsonRoute, file_response
from rig.ota.service.limits import Int, Note
from rig.ota.service.profiles import MCU_TYPES
from rig.ota.states import State

router = APIRouter(
    prefix="/v1/device/{deviceId}", tags=["device (local-only)"], route_class=StrictJsonRoute
)
Svc = Depends(service)
Device = Depends(device)


class CheckinIn(BaseModel):
    versions: dict[str, Any] = Field(
        default_factory=dict,
        max_length=len(MCU_TYPES),
        description='installed version number per type: {"101": "3"}',
    )


class ProgressIn(BaseModel):
    state: State
    reason: Note | None = None
    detail: Note | None = None
    bytes: Int | None = Field(None, ge=0, le=2**63 - 1)
    total: Int | None = Field(None, ge=0, le=2**63 - 1)


class AttributeIn(BaseModel):
    id: Int = Field(ge=1, le=65535)
    value: Any = Field(description="any JSON value; for 2000+t: the version number, as digits")


class AttributesIn(BaseModel):
    attributes: list[AttributeIn]


@router.post("/checkin")
def checkin(body: CheckinIn, me: dict[str, Any] = Device, svc: OtaService = Svc):
    """Report installed versions; answers the next deployment to work on, or null."""
    return svc.checkin(me["device_id"], body.versions)


#: The longest a long-poll may wait: under the 60 s idle timeouts of common proxies and clients.
MAX_WAIT_S = 30.0


@router.get("/deployments/next", responses={204: {"description": "nothing to do"}})
async def next_deployment(
    request: Request,
    wait: float = Query(
        0.0,
        ge=0,
        le=MAX_WAIT_S,
        description="seconds to wait for work when there is none (long-poll, at most "
        f"{MAX_WAIT_S:g}); 0 answers at once",
    ),
    me: dict[str, Any] = Device,
    svc: OtaService = Svc,
):
    """The next deployment to work on (QUEUED becomes OFFERED), or 204 when there is none."""
    device_id = me["device_id"]
    if not wait:
        offer = await run_in_threadpool(svc.next_offer, device_id)
        return Response(status_code=204) if offer is None else offer
    with svc.work_bell.listening(device_id) as rung:  # before the look: no push slips between
        offer = await run_in_threadpool(svc.poll, device_id)
        if offer is not None:
            return offer
        try:
            await asyncio.wait_for(rung.wait(), wait)
        except TimeoutError:
            return Response(status_code=204)
    if svc.work_bell.closed or await request.is_disconnected():
        return Response(status_code=204)  # stopping, or nobody to offer it to: it stays QUEUED
    offer = await run_in_threadpool(svc.next_offer, device_id)
    return Response(status_code=204) if offer is None else offer


@router.get("/images/{sha256}", response_class=Response)
def download(
    sha256: str,
    range: str | None = Header(None),
    me: dict[str, Any] = Device,
    svc: OtaService = Svc,
):
    """An image of one of this device's deployments; honours `Range` for resumed transfers."""
    return file_response(svc.device_image(me["device_id"], sha256), range, sha256.lower())


@router.post("/deployments/{deploymentId}/progress")
def progress(
    deploymentId: str, body: ProgressIn, me: dict[str, Any] = Device, svc: OtaService = Svc
):
    return svc.progress(
        me["device_id"], deploymentId, body.state, body.reason, body.detail, body.bytes, body.total
    )


@router.post("/attributes")
def attributes(body: AttributesIn, me: dict[str, Any] = Device, svc: OtaService = Svc):
    """Attribute reports; a write of 2000+t records the installed version number of type t."""
    return svc.report_attributes(me["device_id"], [a.model_dump() for a in body.attributes])
