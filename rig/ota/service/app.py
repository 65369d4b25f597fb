"""The HTTP face of the local OTA service: FastAPI over `OtaService`.

Routers: the public partner API (routes_partner), the local-only partner API and the accounts'
device API (routes_local), and the device-facing API (routes_device). Errors of every kind are
rendered as `{rule, message, hint}` (errors.py). The OpenAPI document is at /openapi.json.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI

from rig.ota.service import routes_device, routes_local, routes_partner
from rig.ota.service.auth import PartnerAuth
from rig.ota.service.domain import DEFAULT_MAX_IMAGE_BYTES, OtaService
from rig.ota.service.errors import install_error_handlers


def create_app(
    data_dir: Path,
    partners: Mapping[str, PartnerAuth] | list[PartnerAuth],
    max_image_bytes: int = DEFAULT_MAX_IMAGE_BYTES,
) -> FastAPI:
    """An app serving one data folder; `app.state.service` is its `OtaService`."""
    svc = OtaService(Path(data_dir), partners, max_image_bytes)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
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
    install_error_handlers(app)
    app.include_router(routes_partner.router)
    app.include_router(routes_local.local)
    app.include_router(routes_local.accounts)
    app.include_router(routes_device.router)

    @app.get("/v1/health", tags=["service"])
    def health() -> dict[str, str]:
        """Liveness, without credentials (LocalService waits on it)."""
        return {"status": "ok"}

    return app
