"""FastAPI dependencies: the service object, and who is calling (partner token, device secret).

A partner's bearer token is its static token or one the OAuth sign-in issued (oauth.py); both
open the same paths, and an expired or unknown one is refused alike.

A wrong or missing credential is 401. A valid partner token on another partner's (or
account's) path is 404, worded the same whether that partner exists or not, so nothing about
other partners leaks. A device secret opens only its own device's path (403 otherwise).
"""

from __future__ import annotations

from typing import Any

from fastapi import Depends, Path, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from rig.ota.service.auth import PartnerAuth
from rig.ota.service.domain import OtaService
from rig.ota.service.errors import OtaError, not_found

bearer = HTTPBearer(auto_error=False, description="the partner's token: `Bearer <token>`")
device_header = APIKeyHeader(
    name="Authorization", auto_error=False, description="the device's secret: `Device <secret>`"
)


def service(request: Request) -> OtaService:
    return request.app.state.service


_Svc = Depends(service)
_Bearer = Depends(bearer)
_DeviceHeader = Depends(device_header)


def _caller(request: Request, creds: HTTPAuthorizationCredentials | None) -> PartnerAuth:
    challenge = {"WWW-Authenticate": "Bearer"}
    if creds is None:
        raise OtaError(
            401,
            "AUTH",
            "this path needs a partner token",
            "send the header 'Authorization: Bearer <token>'",
            challenge,
        )
    svc: OtaService = request.app.state.service
    partner = svc.partner_by_token(creds.credentials)
    if partner is None:
        partner = request.app.state.oauth.partner_for(creds.credentials)
    if partner is None:
        raise OtaError(
            401,
            "AUTH",
            "the partner token is not valid for this service",
            "use the token the service was started with (--partner ID --token T)",
            challenge,
        )
    return partner


def partner_id(
    request: Request,
    partnerId: str = Path(description="the partner whose records these are"),
    creds: HTTPAuthorizationCredentials | None = _Bearer,
) -> str:
    """The path's partner id, once the token is shown to belong to it."""
    caller = _caller(request, creds)
    if caller.partner_id != partnerId:
        raise not_found(
            f"no partner '{partnerId}' is visible to this token",
            "use the partner id your token belongs to",
        )
    return partnerId


def account(
    request: Request,
    accountId: str = Path(description="the account the devices belong to"),
    creds: HTTPAuthorizationCredentials | None = _Bearer,
) -> PartnerAuth:
    """The partner owning the path's account, once the token is shown to belong to it."""
    caller = _caller(request, creds)
    if caller.account_id != accountId:
        raise not_found(
            f"no account '{accountId}' is visible to this token",
            "use the account id of your partner",
        )
    return caller


async def device(
    deviceId: str = Path(description="the device calling"),
    header: str | None = _DeviceHeader,
    svc: OtaService = _Svc,
) -> dict[str, Any]:
    """The device row, once `Authorization: Device <secret>` is shown to be its secret."""
    scheme, _, secret = (header or "").partition(" ")
    if scheme.lower() != "device" or not secret.strip():
        raise OtaError(
            401,
            "AUTH",
            "this path needs the device's secret",
            "send the header 'Authorization: Device <secret>'",
            {"WWW-Authenticate": "Device"},
        )
    return await run_in_threadpool(svc.authenticate_device, deviceId, secret.strip())
