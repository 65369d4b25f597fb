"""The HTTP face of the local OTA service: FastAPI over `OtaService`.

Routers: OAuth sign-in (oauth), the public partner API (routes_partner), the local-only partner
API and the accounts' device API (routes_local), and the device-facing API (routes_device).
Errors of every kind are rendered as `{rule, message, hint}` (errors.py); the sign-in's own
refusals are OAuth's `{error, error_description}`. The OpenAPI document is at /openapi.json;
the OTA Manager, a web page over this same API, is at / (manager).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI

from rig.ota.service import manager, oauth, routes_device, routes_local, routes_partner
from rig.ota.service.auth import PartnerAuth, partners_by_id
from rig.ota.service.domain import DEFAULT_MAX_IMAGE_BYTES, OtaService
from rig.ota.service.errors import install_error_handlers
from rig.ota.service.limits import DEFAULT_MAX_JSON_BYTES
from rig.ota.service.oauth import DEFAULT_TOKEN_LIFETIME_S, TokenIssuer
from rig.ota.service.staging_sweep import sweep_staging

log = logging.getLogger(__name__)


def create_app(
    data_dir: Path,
    partners: Mapping[str, PartnerAuth] | list[PartnerAuth],
    max_image_bytes: int = DEFAULT_MAX_IMAGE_BYTES,
    token_lifetime_s: float = DEFAULT_TOKEN_LIFETIME_S,
    max_json_bytes: int = DEFAULT_MAX_JSON_BYTES,
) -> FastAPI:
    """An app serving one data folder; `app.state.service` is its `OtaService`,
    `app.state.oauth` the `TokenIssuer` of its sign-ins, `app.state.max_json_bytes` the
    largest JSON body it reads (http_io.StrictJsonRoute)."""
    issuer = TokenIssuer(partners_by_id(partners), token_lifetime_s)  # checked before any I/O
    svc = OtaService(Path(data_dir), partners, max_image_bytes)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        swept = sweep_staging(svc.store, svc.blobs)  # before the first request is served
        if swept.partial or swept.unreferenced:
            log.info("start-up: %s", swept)
        yield
        svc.close()  # the database is closed when the server stops

    app = FastAPI(
        title="rig local OTA service",
        description="The OTA API of docs/ota-api.md: image types, images, associations, "
        "pushes, plus the local-only device types, profiles, devices and deployments.",
        version="1",
        lifespan=lifespan,
    )
    app.state.service = svc
    app.state.oauth = issuer
    app.state.max_json_bytes = max_json_bytes
    install_error_handlers(app)
    app.include_router(oauth.router)
    app.include_router(routes_partner.router)
    app.include_router(routes_local.local)
    app.include_router(routes_local.accounts)
    app.include_router(routes_device.router)
    app.include_router(manager.api)
    app.include_router(manager.page)

    @app.get("/v1/health", tags=["service"])
    def health() -> dict[str, str]:
        """Liveness, without credentials (LocalService waits on it)."""
        return {"status": "ok"}

    return app
