"""Bytes over HTTP: ranged downloads, and JSON bodies read strictly and within a size limit.

JSON bodies are read by `StrictJsonRoute`: at most the service's JSON limit (`rig ota serve
--max-json-kib`), counted while the body streams in, so a 100 MB body is refused after 1 MiB
instead of being held whole (it used to cost the service 4 times its size in memory); a
`Content-Length` over the limit is refused before anything is read. Then strictly: Python's
reader also takes `NaN`/`Infinity`, numbers such as `1e999` (infinite), and `\\udc00`-style lone
surrogates, which then cannot be stored (SQLite wants UTF-8) or answered (a JSON answer has
none of them), so they are refused as invalid JSON up front, as are bytes that are not UTF-8,
nesting too deep for the reader and integers too long for it.

Uploads (image bytes) are not JSON: uploads.py streams them, within the image limit.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from rig.ota.service.blobs import parse_range, read_range
from rig.ota.service.errors import OtaError
from rig.ota.service.limits import DEFAULT_MAX_JSON_BYTES


def file_response(path: Path, range_header: str | None, sha256: str) -> StreamingResponse:
    """The stored bytes, whole (200) or one `Range` (206 + Content-Range; 416 if impossible)."""
    size = path.stat().st_size
    wanted = parse_range(range_header, size)
    start, end = wanted or (0, size - 1)
    headers = {
        "Accept-Ranges": "bytes",
        "ETag": f'"{sha256}"',
        "Content-Length": str(end - start + 1),
    }
    if wanted is not None:
        headers["Content-Range"] = f"bytes {start}-{end}/{size}"
    return StreamingResponse(
        read_range(path, start, end),
        status_code=206 if wanted else 200,
        media_type="application/octet-stream",
        headers=headers,
    )


def _not_json(message: str, doc: str) -> json.JSONDecodeError:
    return json.JSONDecodeError(message, doc, 0)


def strict_json(body: bytes) -> Any:
    """Standard JSON only: no NaN/Infinity, no infinite number, no text that is not Unicode."""
    doc = body[:200].decode("utf-8", errors="replace")

    def refuse_constant(name: str) -> Any:
        raise _not_json(f"{name} is not a JSON number", doc)

    def finite(text: str) -> float:
        value = float(text)
        if math.isinf(value):
            raise _not_json(f"the number {text[:40]} is too large", doc)
        return value

    try:
        value = json.loads(body, parse_constant=refuse_constant, parse_float=finite)
    except json.JSONDecodeError:
        raise
    except RecursionError:
        raise _not_json("it is nested too deeply", doc) from None
    except UnicodeDecodeError:
        raise _not_json("it is not UTF-8 text", doc) from None
    except ValueError as exc:  # Python's own bound: an integer of more than 4300 digits
        digits = "integer string conversion" in str(exc)
        why = "an integer in it has more than 4300 digits" if digits else str(exc)
        raise _not_json(why, doc) from None
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            stack += [*item.keys(), *item.values()]
        elif isinstance(item, list):
            stack += item
        elif isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError as exc:
                bad = item[exc.start : exc.end].encode("unicode_escape").decode()
                raise _not_json(f"a string holds a lone surrogate ({bad})", doc) from None
    return value


def json_too_large(limit: int) -> OtaError:
    """413 for a JSON body over the limit, naming the option that raises it."""
    return OtaError(
        413,
        "TOO_LARGE",
        f"the JSON body is larger than this service's limit of {limit / 1024:g} KiB "
        f"({limit} bytes)",
        "send less (a Profile Editor export is a few KiB), or start the service with a "
        "larger --max-json-kib",
    )


class _StrictJsonRequest(Request):
    """A request whose body is read within the JSON limit and parsed by `strict_json`."""

    async def body(self) -> bytes:
        if not hasattr(self, "_limited_body"):
            limit = getattr(self.app.state, "max_json_bytes", DEFAULT_MAX_JSON_BYTES)
            declared = self.headers.get("content-length", "")
            if declared.isascii() and declared.isdigit() and int(declared) > limit:
                raise json_too_large(limit)  # the server drops the unread rest of the body
            body = bytearray()
            async for chunk in self.stream():
                if len(body) + len(chunk) > limit:
                    raise json_too_large(limit)
                body += chunk
            self._limited_body = bytes(body)
        return self._limited_body

    async def json(self) -> Any:
        if not hasattr(self, "_strict_json"):
            self._strict_json = strict_json(await self.body())
        return self._strict_json


class StrictJsonRoute(APIRoute):
    """A route whose JSON body is read within the limit (413 TOO_LARGE) and by `strict_json`
    (a refusal is 422 VALIDATION). Routes without a body model read nothing here."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        reads_body = self.body_field is not None

        async def strict(request: Request) -> Response:
            strict_request = _StrictJsonRequest(request.scope, request.receive)
            if reads_body:  # here, not in FastAPI's reader, which would make a 413 a 400
                await strict_request.body()
            return await handler(strict_request)

        return strict
