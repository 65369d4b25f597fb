"""OAuth 2.0 sign-in for the local service: `POST /oauth/token` with the password grant.

Afero's cloud API signs partners in this way (afero-devdocs: "OAuth API Endpoint" in
API-OAuthEndpoints.md, and the "Security" part of CloudAPIs.md): the client id and secret come
as HTTP Basic auth, the user's name and password as form fields, and the answer is an access
token that expires. rig serves the same so a lab can rehearse the remote set-up locally.

What the Afero page does not say (refusals, repeated fields, caching), we do as RFC 6749 says
and as mature OAuth servers do; each such choice is marked "RFC" below. Issued tokens are
random, live in memory only (a restart forgets them, as it would any session), and open exactly
what the partner's static token opens; the static token keeps working beside them.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from rig.ota.service.errors import invalid

if TYPE_CHECKING:
    from rig.ota.service.auth import PartnerAuth

#: Afero's tokens last "approximately four hours" (CloudAPIs.md); its example answer says
#: expires_in 16086 s. We default to four and a half hours.
DEFAULT_TOKEN_LIFETIME_S = 4.5 * 3600
#: What a token opens: the partner's OTA paths and its account's device paths. The value is the
#: one Afero's example answer carries.
SCOPE = "partner account"
#: Live tokens kept per partner; past this the oldest is dropped (a loop that signs in without
#: end must not grow the service's memory without end).
MAX_LIVE_TOKENS = 64
_FORM = "application/x-www-form-urlencoded"
MAX_FORM_BYTES = 16 * 1024  # a sign-in is a few short fields; more is not one
# RFC 6749 §5.1: token answers must not be cached
_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


@dataclass(frozen=True)
class OAuthLogin:
    """A partner's OAuth client (id, secret) and its one user (name, password).

    The secret and the password stay out of repr, so a logged `PartnerAuth` shows neither.
    """

    client_id: str
    client_secret: str = field(repr=False)
    username: str
    password: str = field(repr=False)

    def __post_init__(self) -> None:
        empty = [n for n in ("client_id", "client_secret", "username", "password")
                 if not getattr(self, n)]  # fmt: skip
        if empty:
            raise invalid(
                f"OAuth sign-in needs a non-empty {', '.join(empty)}",
                "give all four: --client-id, --client-secret, --username, --password",
            )
        if ":" in self.client_id:
            raise invalid(
                f"the OAuth client id {self.client_id!r} holds a ':'",
                "HTTP Basic auth splits 'id:secret' at the first ':': pick an id without one",
            )


@dataclass(frozen=True)
class Issued:
    """A token just issued: the value to hand out once, and its lifetime in seconds."""

    access_token: str
    expires_in: int


class TokenIssuer:
    """Checks sign-ins and remembers the tokens it issued, by SHA-256, until they expire."""

    def __init__(
        self, partners: Mapping[str, PartnerAuth], lifetime_s: float = DEFAULT_TOKEN_LIFETIME_S
    ) -> None:
        if not lifetime_s > 0:
            raise invalid(
                f"a token lifetime of {lifetime_s} s is not usable",
                "give --token-lifetime a number of seconds above 0",
            )
        clients = [p.oauth.client_id for p in partners.values() if p.oauth]
        if len(set(clients)) != len(clients):
            raise invalid(
                "two partners share one OAuth client id",
                "a client id must say which partner is signing in: give each its own",
            )
        users = [p.oauth.username for p in partners.values() if p.oauth]
        if len(set(users)) != len(users):
            raise invalid(
                "two partners share one OAuth user name",
                "the OTA Manager signs in by user name alone: give each partner its own",
            )
        self.partners = dict(partners)
        self.lifetime_s = lifetime_s
        self._live: dict[str, tuple[str, float]] = {}  # sha256(token) -> (partner id, expiry)
        self._lock = threading.Lock()

    def client(self, client_id: str, secret: str) -> PartnerAuth | None:
        """The partner whose OAuth client this is, or None; compared in constant time."""
        found = None
        for partner in self.partners.values():
            login = partner.oauth
            if login is None:
                continue
            same_id = hmac.compare_digest(login.client_id.encode(), client_id.encode())
            same_secret = hmac.compare_digest(login.client_secret.encode(), secret.encode())
            if same_id and same_secret:
                found = partner
        return found

    def issue(self, partner: PartnerAuth, username: str, password: str) -> Issued | None:
        """A new token when the user is the partner's, else None."""
        login = partner.oauth
        assert login is not None  # client() found the partner by its login
        same_user = hmac.compare_digest(login.username.encode(), username.encode())
        same_password = hmac.compare_digest(login.password.encode(), password.encode())
        if not (same_user and same_password):
            return None
        return self._new_token(partner)

    def sign_in_user(self, username: str, password: str) -> tuple[PartnerAuth, Issued] | None:
        """The OTA Manager's sign-in, by user alone (a browser holds no client secret).

        A partner's OAuth user and password open it; so do a partner id and its static token,
        for services started without OAuth logins. Every partner is compared, in constant time.
        """
        found = None
        for partner in self.partners.values():
            login = partner.oauth
            pairs = [(partner.partner_id, partner.token)]
            if login is not None:
                pairs.append((login.username, login.password))
            for user, secret in pairs:
                same_user = hmac.compare_digest(user.encode(), username.encode())
                same_secret = hmac.compare_digest(secret.encode(), password.encode())
                if same_user and same_secret:
                    found = partner
        return None if found is None else (found, self._new_token(found))

    def _new_token(self, partner: PartnerAuth) -> Issued:
        token = secrets.token_urlsafe(32)
        now = time.monotonic()
        with self._lock:
            self._forget_expired(now)
            mine = [k for k, (pid, _) in self._live.items() if pid == partner.partner_id]
            for key in mine[: max(0, len(mine) - MAX_LIVE_TOKENS + 1)]:
                del self._live[key]  # dicts keep insertion order: these are the oldest
            self._live[_digest(token)] = (partner.partner_id, now + self.lifetime_s)
        # rounded down: a client told "n seconds" must never find the token dead before then
        return Issued(token, int(self.lifetime_s))

    def partner_for(self, token: str) -> PartnerAuth | None:
        """The partner an issued, unexpired token belongs to, or None."""
        with self._lock:
            entry = self._live.get(_digest(token))
            if entry is None:
                return None
            partner_id, expires = entry
            if time.monotonic() >= expires:
                del self._live[_digest(token)]
                return None
        return self.partners.get(partner_id)

    def _forget_expired(self, now: float) -> None:
        for key in [k for k, (_, expires) in self._live.items() if expires <= now]:
            del self._live[key]


def _digest(token: str) -> str:
    # looked up by hash: a dict probe on the token itself could leak its prefix through timing
    return hashlib.sha256(token.encode()).hexdigest()


def refusal(status: int, error: str, description: str, basic: bool = False) -> JSONResponse:
    """An OAuth error answer (RFC 6749 §5.2): `{error, error_description}`.

    The Afero page shows no refusal; this is the RFC's shape, which OAuth client libraries read.
    """
    headers = dict(_NO_STORE)
    if basic:  # RFC 6749 §5.2: a 401 names the scheme the client should use
        headers["WWW-Authenticate"] = 'Basic realm="oauth"'
    body = {"error": error, "error_description": description}
    return JSONResponse(body, status_code=status, headers=headers)


def _basic(header: str | None) -> tuple[str, str] | None:
    """(client id, secret) from `Authorization: Basic base64(id:secret)`, or None."""
    scheme, _, value = (header or "").partition(" ")
    if scheme.lower() != "basic" or not value.strip():
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    client_id, colon, secret = decoded.partition(":")
    return (client_id, secret) if colon else None


TOKEN_OPENAPI = {
    "requestBody": {
        "required": True,
        "content": {
            _FORM: {
                "schema": {
                    "type": "object",
                    "properties": {
                        "grant_type": {"type": "string", "enum": ["password"]},
                        "username": {"type": "string"},
                        "password": {"type": "string", "format": "password"},
                    },
                    "required": ["grant_type", "username", "password"],
                }
            }
        },
    },
}

router = APIRouter(tags=["oauth"])


@router.post("/oauth/token", openapi_extra=TOKEN_OPENAPI, response_model=None)
async def token(request: Request) -> JSONResponse:
    """Sign in: the OAuth client as HTTP Basic, the user as form fields → an access token."""
    issuer: TokenIssuer = request.app.state.oauth
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != _FORM:  # RFC 6749 §4.3.2: the parameters come form-encoded
        return refusal(400, "invalid_request",
                       f"send the parameters form-encoded (Content-Type: {_FORM})")  # fmt: skip
    client = _basic(request.headers.get("authorization"))
    # RFC 6749 §2.3.1 also allows the client in the form; Afero's page uses Basic only, so do we
    partner = issuer.client(*client) if client else None
    if partner is None:
        return refusal(401, "invalid_client",
                       "the OAuth client id or secret is wrong, or not sent: send them as "
                       "'Authorization: Basic base64(client_id:client_secret)'",
                       basic=True)  # fmt: skip
    declared = request.headers.get("content-length", "")
    if declared.isascii() and declared.isdigit() and int(declared) > MAX_FORM_BYTES:
        return refusal(400, "invalid_request", f"the form is over {MAX_FORM_BYTES} bytes")
    try:
        async with request.form(max_files=0, max_fields=20) as form:
            fields = {name: form.getlist(name) for name in ("grant_type", "username", "password")}
    except StarletteHTTPException as exc:  # a form Starlette cannot read
        return refusal(400, "invalid_request", f"the form cannot be read: {exc.detail}")
    repeated = [name for name, values in fields.items() if len(values) > 1]
    if repeated:  # RFC 6749 §3.2: no parameter more than once
        return refusal(400, "invalid_request", f"{', '.join(repeated)} given more than once")
    grant = str(fields["grant_type"][0]) if fields["grant_type"] else ""
    if not grant:
        return refusal(400, "invalid_request", "grant_type is missing: send grant_type=password")
    if grant != "password":  # RFC 6749 §5.2; Afero's page documents the password grant only
        return refusal(400, "unsupported_grant_type",
                       f"grant_type {grant[:40]!r} is not offered: send grant_type=password with "
                       "username and password (to renew a token, sign in again)")  # fmt: skip
    missing = [name for name in ("username", "password") if not fields[name]]
    if missing:
        return refusal(400, "invalid_request", f"{' and '.join(missing)} missing: the password "
                       "grant needs the user's name and password")  # fmt: skip
    issued = issuer.issue(partner, str(fields["username"][0]), str(fields["password"][0]))
    if issued is None:  # RFC 6749 §5.2: a wrong user or password is invalid_grant
        return refusal(400, "invalid_grant",
                       "the user name or password is wrong for this OAuth client")  # fmt: skip
    body = {"access_token": issued.access_token, "token_type": "bearer",
            "expires_in": issued.expires_in, "scope": SCOPE}  # fmt: skip
    return JSONResponse(body, headers=_NO_STORE)
