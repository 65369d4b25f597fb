"""Signing in to an OTA server with OAuth 2.0 (the password grant), for `OtaClient`.

Afero's cloud API takes no long-lived partner token: a caller trades its OAuth client id and
secret plus a user's name and password for an access token at `POST /oauth/token`, and that
token expires after a few hours. rig's local service does the same (rig.ota.service.oauth), so
a lab can rehearse the remote set-up at home.

`OAuthSignIn` is an httpx auth flow: it signs in on first use, and when a call comes back 401
(the token expired, or the server forgot it on a restart) it signs in once more and sends the
call once more. A second 401, or a refused sign-in, is one `OtaClientError` saying what to check.
The time spent signing in is counted (`SignInStats`) so a run can report what sign-in cost it.

Secrets (client secret, password, tokens) never appear in a message, a repr or a log line.
This module imports no server code.
"""

from __future__ import annotations

import base64
import os
import time
from collections.abc import Generator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import httpx

from rig.ota.errors import OtaClientError

if TYPE_CHECKING:
    from rig.lab.inventory import OtaConfig

TOKEN_PATH = "/oauth/token"
#: How boards.yaml names the four variables (`ota:` keys), for messages.
BOARDS_KEYS = ("client_id_env", "client_secret_env", "username_env", "password_env")
_WHAT = ("OAuth client id", "OAuth client secret", "user name (the account's email)",
         "user's password")  # fmt: skip


@dataclass(frozen=True)
class OAuthCredentials:
    """What a password-grant sign-in sends. The secret and the password stay out of repr."""

    client_id: str
    client_secret: str = field(repr=False)
    username: str
    password: str = field(repr=False)
    #: where each of the four came from (e.g. environment variable names), for messages
    origin: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        empty = [n for n in ("client_id", "client_secret", "username", "password")
                 if not getattr(self, n)]  # fmt: skip
        if empty:
            raise OtaClientError(f"OAuth sign-in needs a non-empty {', '.join(empty)}")
        if ":" in self.client_id:
            # HTTP Basic splits "id:secret" at the first colon: an id holding one is unusable
            raise OtaClientError(f"the OAuth client id {self.client_id!r} holds a ':', which "
                                 "HTTP Basic auth cannot carry: check the client id")  # fmt: skip


@dataclass(frozen=True)
class SignInEnv:
    """The names of the environment variables holding the four sign-in values.

    `where` and `keys` say, in messages, who named each variable (`boards.yaml: ota.` with the
    boards.yaml keys, or the CLI's `--client-id-env` …).
    """

    client_id_env: str
    client_secret_env: str
    username_env: str
    password_env: str
    where: str = ""
    keys: tuple[str, str, str, str] = BOARDS_KEYS

    def names(self) -> tuple[str, str, str, str]:
        return (self.client_id_env, self.client_secret_env, self.username_env, self.password_env)

    def read(self) -> OAuthCredentials:
        """The credentials from the environment; one message naming every variable not set."""
        names = self.names()
        missing = [
            f"{self.where}{key} names {name}, which is not set: export the {what} in it"
            for key, name, what in zip(self.keys, names, _WHAT, strict=True)
            if not os.environ.get(name)
        ]
        if missing:
            raise OtaClientError("; ".join(missing))
        values = [os.environ[name] for name in names]
        return OAuthCredentials(*values, origin=names)


def sign_in_env(ota: OtaConfig, boards_file: Path | None = None) -> SignInEnv | None:
    """The sign-in variables an `ota:` section of boards.yaml names, or None (it uses a token)."""
    names = [getattr(ota, key) for key in BOARDS_KEYS]
    if not all(names):
        return None
    where = f"{boards_file}: ota." if boards_file else "boards.yaml: ota."
    return SignInEnv(*names, where=where)


@dataclass
class SignInStats:
    """Sign-in attempts of one client (refused ones too) and the seconds they took in all."""

    count: int = 0
    seconds: float = 0.0


class OAuthSignIn(httpx.Auth):
    """Bearer auth whose token comes from a password-grant sign-in (see the module docstring)."""

    requires_response_body = True  # the token answer is read inside the flow

    def __init__(self, base_url: str, credentials: OAuthCredentials) -> None:
        self.base_url = base_url.rstrip("/")
        self.credentials = credentials
        self.stats = SignInStats()
        self._token = ""

    def __repr__(self) -> str:
        return f"OAuthSignIn({self.base_url!r}, {self.credentials!r})"

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        if not self._token:
            yield from self._sign_in(request)
        response = yield self._with_token(request)
        if response.status_code != 401:
            return
        self._token = ""  # expired or forgotten: sign in again, once, and re-send, once
        yield from self._sign_in(request)
        response = yield self._with_token(request)
        if response.status_code == 401:
            self._token = ""
            raise OtaClientError(
                f"{request.method} {request.url.path}: the OTA service at {self.base_url} "
                f"refused the access token it had just issued to {self.credentials.username!r} "
                f"(HTTP 401: {_said(response)})",
                status=401, rule="AUTH",
                hint="its tokens may expire faster than a call takes (see its token lifetime)",
            )  # fmt: skip

    def _with_token(self, request: httpx.Request) -> httpx.Request:
        request.headers["Authorization"] = f"Bearer {self._token}"
        return request

    def _sign_in(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        started = time.perf_counter()
        try:
            response = yield self._token_request(request)
        finally:  # a refused or broken sign-in counts too: it is time the run spent
            self.stats.count += 1
            self.stats.seconds += time.perf_counter() - started
        self._token = self._token_from(response)

    def _token_request(self, request: httpx.Request) -> httpx.Request:
        """`POST /oauth/token`, form-encoded, the client as HTTP Basic (Afero's OAuth page)."""
        creds = self.credentials
        # Afero's page base64-encodes "id:secret" as it is (RFC 6749 §2.3.1 would form-encode
        # each first; the two agree for ids and secrets without reserved characters).
        basic = base64.b64encode(f"{creds.client_id}:{creds.client_secret}".encode()).decode()
        return httpx.Request(
            "POST",
            self.base_url + TOKEN_PATH,
            data={"grant_type": "password", "username": creds.username,
                  "password": creds.password},
            headers={"Authorization": f"Basic {basic}", "Accept": "application/json"},
            extensions=request.extensions,  # the client's timeouts
        )  # fmt: skip

    def _token_from(self, response: httpx.Response) -> str:
        if response.status_code != 200:
            raise self._refused(response)
        body = _json(response)
        token = body.get("access_token")
        bearer = str(body.get("token_type")).lower() == "bearer"
        if not isinstance(token, str) or not token or not bearer:
            raise OtaClientError(
                f"the OTA service at {self.base_url} answered the sign-in without a bearer "
                "access_token", rule="AUTH",
                hint=f"is {self.base_url} the API's base URL? POST {TOKEN_PATH} should answer "
                "{access_token, token_type: bearer, expires_in}",
            )  # fmt: skip
        return token

    def _refused(self, response: httpx.Response) -> OtaClientError:
        creds, status = self.credentials, response.status_code
        if status in (404, 405):
            return OtaClientError(
                f"the OTA server at {self.base_url} offers no OAuth sign-in "
                f"(POST {TOKEN_PATH} answered HTTP {status})", status=status, rule="AUTH",
                hint="give it a partner bearer token instead (token_env / --token-env)",
            )  # fmt: skip
        body = _json(response)
        error = body.get("error")
        who = f"as {creds.username!r} with OAuth client {creds.client_id!r}"
        if not isinstance(error, str):
            return OtaClientError(
                f"signing in to the OTA service at {self.base_url} {who} failed: HTTP {status} "
                f"{response.text[:200]}", status=status, rule="AUTH",
            )  # fmt: skip
        said = body.get("error_description")
        client, user = _origin(creds.origin[:2]), _origin(creds.origin[2:])
        hints = {
            "invalid_client": f"check the OAuth client id and secret{client}",
            "invalid_grant": f"check the user name and password{user}",
        }
        return OtaClientError(
            f"signing in to the OTA service at {self.base_url} {who} was refused: "
            f"{error}{f' ({said})' if said else ''}", status=status, rule="AUTH",
            hint=hints.get(error, ""),
        )  # fmt: skip


def _json(response: httpx.Response) -> dict:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _said(response: httpx.Response) -> str:
    body = _json(response)
    return str(body.get("message") or body.get("error_description") or response.text[:200])


def _origin(names: tuple[str, ...]) -> str:
    return f" in {' and '.join(names)}" if names else ""
