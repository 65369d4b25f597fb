"""The one error type of the OTA layer, and how the HTTP app renders errors.

Every refused request becomes an `OtaError` carrying the HTTP status, the rule it breaks (R1..R8 or
AUTH, NOT_FOUND, VALIDATION, TOO_LARGE, CONFLICT, RANGE) and a message plus a hint written for a
lab engineer. The handlers below turn it, FastAPI's request-validation errors and Starlette's own
HTTP errors into the JSON body of docs/ota-api.md, so bad input never reaches the client as a 500.
"""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from rig.errors import RigError

log = logging.getLogger(__name__)

_RULE_BY_STATUS = {
    401: "AUTH",
    403: "AUTH",
    404: "NOT_FOUND",
    409: "CONFLICT",
    413: "TOO_LARGE",
    416: "RANGE",
}


class OtaError(RigError):
    """A refused OTA request: status, rule, message and hint, as the API's error body."""

    def __init__(
        self,
        status: int,
        rule: str,
        message: str,
        hint: str = "",
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.rule = rule
        self.message = message
        self.hint = hint
        self.headers = headers or {}

    def __str__(self) -> str:
        return f"{self.message}\nhint: {self.hint}" if self.hint else self.message

    def body(self) -> dict[str, Any]:
        """The JSON error body of the contract: rig's `rule`, `message` and `hint`, plus the
        `status` and `error` (its reason phrase) that Spring-style services answer with. Afero
        documents no error body, so these two are a convention, not a documented shape."""
        return error_body(self.status, self.rule, self.message, self.hint)


def error_body(status: int, rule: str, message: str, hint: str = "") -> dict[str, Any]:
    try:
        reason = HTTPStatus(status).phrase
    except ValueError:
        reason = "Error"
    return {"rule": rule, "message": message, "hint": hint, "status": status, "error": reason}


def not_found(message: str, hint: str = "") -> OtaError:
    return OtaError(404, "NOT_FOUND", message, hint)


def invalid(message: str, hint: str = "", status: int = 400) -> OtaError:
    return OtaError(status, "VALIDATION", message, hint)


def conflict(message: str, hint: str = "") -> OtaError:
    return OtaError(409, "CONFLICT", message, hint)


def _where(loc: list[Any], part: str) -> tuple[str, str]:
    """('body', 'associations.lab[0]') from a pydantic location."""
    if loc and loc[0] in ("body", "query", "path", "header", "cookie"):
        part = str(loc.pop(0))
    field = ""
    for item in loc:
        field += f"[{item}]" if isinstance(item, int) else (f".{item}" if field else str(item))
    return part, field


def describe_validation(errors: list[dict[str, Any]], part: str = "body") -> str:
    """One readable sentence per pydantic error, naming the field (first five)."""
    lines = []
    for err in errors[:5]:
        where, field = _where(list(err.get("loc", ())), part)
        msg = str(err.get("msg", "")).removeprefix("Value error, ")
        if err.get("type") == "json_invalid":
            reason = (err.get("ctx") or {}).get("error", "invalid JSON")
            lines.append(f"the {where} is not valid JSON ({reason})")
        elif not field and not where:
            lines.append(msg)
        elif not field:
            missing = err.get("type") == "missing"
            lines.append(f"the request needs a JSON {where}" if missing else f"{where}: {msg}")
        else:
            lines.append(f"{where} field '{field}': {msg}".lstrip())
    more = f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""
    return "invalid request: " + "; ".join(lines) + more


_OVER_A_LIMIT = {"string_too_long", "too_long"}  # pydantic's types for a max_length refusal


def _client(request: Request) -> str:
    return f"{request.client.host}:{request.client.port}" if request.client else "(unknown)"


def install_error_handlers(app: FastAPI) -> None:
    """Render every error as `{rule, message, hint}`."""

    @app.exception_handler(OtaError)
    async def _ota(_: Request, exc: OtaError) -> JSONResponse:
        return JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = list(exc.errors())
        message = describe_validation(errors)
        hint = "see /docs or docs/ota-api.md for the expected fields"
        if any(str(e.get("type")) in _OVER_A_LIMIT for e in errors):
            hint = "the limits are listed in docs/ota-api.md (Limits) and by rig ota serve --help"
        return JSONResponse(OtaError(422, "VALIDATION", message, hint).body(), status_code=422)

    @app.exception_handler(ClientDisconnect)
    async def _gone(request: Request, _: ClientDisconnect) -> Response:
        """A client that hangs up mid-request is expected (a cancelled upload, a reboot): one
        line, no traceback. Whatever it was sending is dropped; nobody reads this answer."""
        log.info(
            "client %s went away during %s %s before its request was complete; nothing stored",
            _client(request),
            request.method,
            request.url.path,
        )
        return Response(status_code=400)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        rule = _RULE_BY_STATUS.get(exc.status_code, "VALIDATION")
        if exc.status_code == 404:
            message = f"no such path: {request.method} {request.url.path}"
            hint = "the paths are listed at /docs and in docs/ota-api.md"
        elif exc.status_code == 405:
            message = f"{request.method} is not allowed on {request.url.path}"
            hint = "the methods of each path are listed at /docs"
        else:
            message, hint = str(exc.detail), ""
        body = OtaError(exc.status_code, rule, message, hint).body()
        return JSONResponse(body, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(Exception)
    async def _bug(request: Request, exc: Exception) -> JSONResponse:
        log.exception("OTA service bug on %s %s", request.method, request.url.path)
        message = f"internal error of the OTA service: {type(exc).__name__}: {exc}"
        body = error_body(500, "INTERNAL", message, "a bug in rig: see the log")
        return JSONResponse(body, status_code=500)
