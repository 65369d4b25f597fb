"""The OTA Manager in a browser: Afero's web application for image types, uploads and pushes.

Served by the local service at `/` (afero-devdocs, OTAMgr.md, is the user guide it follows). The
page is static HTML, CSS and a few ES modules from `static/`, with no build step and nothing
fetched from elsewhere (the Content-Security-Policy says so to the browser). Everything it shows
and does goes through the service's own HTTP API; the one route added here is the sign-in by
user name and password, because a browser cannot hold an OAuth client secret.
"""

from __future__ import annotations

from importlib import resources
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import BaseModel, Field

from rig.ota.service.errors import OtaError, not_found
from rig.ota.service.http_io import StrictJsonRoute
from rig.ota.service.oauth import TokenIssuer

_STATIC = resources.files(__package__).joinpath("static")
_TYPES = {".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml"}
_PAGE = "index.html"
#: Only the page's own files, from its own origin: no script, style or font from the internet.
_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; object-src 'none'; "
    "base-uri 'none'; frame-ancestors 'none'",
    "Cache-Control": "no-cache",
    "X-Content-Type-Options": "nosniff",
}

page = APIRouter(include_in_schema=False)
api = APIRouter(prefix="/v1/local", tags=["ota-manager"], route_class=StrictJsonRoute)


def _files() -> dict[str, tuple[bytes, str]]:
    """name → (bytes, content type) of every static file but the page itself (served at /)."""
    found = {}
    for item in _STATIC.iterdir():
        suffix = "." + item.name.rpartition(".")[2]
        if item.is_file() and suffix in _TYPES:
            found[item.name] = (item.read_bytes(), _TYPES[suffix])
    return found


# Read once: a fixed set, so no path from a request ever reaches the disk.
_ASSETS = _files()
_INDEX = _STATIC.joinpath(_PAGE).read_text("utf-8")


@page.get("/")
def index() -> HTMLResponse:
    return HTMLResponse(_INDEX, headers=_HEADERS)


@page.get("/ui/{name}")
def asset(name: str) -> Response:
    if name not in _ASSETS:
        raise not_found(f"the OTA Manager has no file {name[:80]!r}", "open the page at /")
    body, media_type = _ASSETS[name]
    return Response(body, media_type=media_type, headers=_HEADERS)


class SignIn(BaseModel):
    username: str = Field(min_length=1, max_length=256)
    password: str = Field(min_length=1, max_length=1024)


@api.post("/signin")
def sign_in(body: SignIn, request: Request) -> dict[str, Any]:
    """Sign in to the OTA Manager: an expiring bearer token and the partner it opens.

    The user is a partner's OAuth user (`--username`/`--password`), or its id and static token.
    """
    issuer: TokenIssuer = request.app.state.oauth
    signed_in = issuer.sign_in_user(body.username, body.password)
    if signed_in is None:
        raise OtaError(
            401,
            "AUTH",
            "the user name or password is wrong",
            "use a partner's --username and --password, or its id and --token",
        )
    partner, issued = signed_in
    return {
        "access_token": issued.access_token,
        "token_type": "bearer",
        "expires_in": issued.expires_in,
        "partnerId": partner.partner_id,
        "accountId": partner.account_id,
    }
