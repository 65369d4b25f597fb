"""Bytes over HTTP: streamed uploads into the blob store, ranged downloads, strict JSON bodies.

An upload is never held in memory: octet-stream bodies are read chunk by chunk from the
request stream, multipart files chunk by chunk from the UploadFile. When the size limit is hit,
the partial file is gone at once and the rest of the body is read and dropped (up to a cap) so
the client gets its 413 instead of a broken connection.

JSON bodies are read strictly (`StrictJsonRoute`): Python's reader also takes `NaN`/`Infinity`
and `\\udc00`-style lone surrogates, which then cannot be stored (SQLite wants UTF-8) or
answered (a JSON answer has neither), so they are refused as invalid JSON up front.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Coroutine
from pathlib import Path
from typing import Any

from fastapi.routing import APIRoute
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from rig.ota.service.blobs import CHUNK, BlobStore, parse_range, read_range
from rig.ota.service.errors import OtaError, invalid

DRAIN_CAP = 256 * 1024 * 1024  # past this much refused body we stop reading and just close
MULTIPART_OVERHEAD = 64 * 1024

UPLOAD_OPENAPI = {
    "requestBody": {
        "required": True,
        "content": {
            "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {"file": {"type": "string", "format": "binary"}},
                    "required": ["file"],
                }
            },
        },
    }
}


async def _drain(chunks: AsyncIterator[bytes]) -> None:
    seen = 0
    async for chunk in chunks:
        seen += len(chunk)
        if seen > DRAIN_CAP:
            return


async def _file_chunks(file: UploadFile) -> AsyncIterator[bytes]:
    while chunk := await file.read(CHUNK):
        yield chunk


def _too_large(limit: int) -> OtaError:
    return OtaError(
        413,
        "TOO_LARGE",
        f"the image is larger than this service's limit of {limit} bytes",
        "build a smaller image, or start the service with a larger --max-image-bytes",
    )


async def receive_upload(request: Request, blobs: BlobStore) -> tuple[str, int]:
    """Stream the request's image into staging; (sha256, size) once it is safely in place."""
    multipart = request.headers.get("content-type", "").startswith("multipart/form-data")
    declared = request.headers.get("content-length", "")
    overhead = MULTIPART_OVERHEAD if multipart else 0
    if declared.isascii() and declared.isdigit() and int(declared) > blobs.max_bytes + overhead:
        await _drain(request.stream())
        raise _too_large(blobs.max_bytes)
    upload = blobs.upload()
    try:
        if multipart:
            async with request.form(max_files=1, max_fields=20) as form:
                file = form.get("file")
                if not isinstance(file, UploadFile):
                    raise invalid(
                        "a multipart upload needs the image in a field named 'file'",
                        "or send the bytes as application/octet-stream",
                    )
                async for chunk in _file_chunks(file):
                    upload.write(chunk)
        else:
            chunks = request.stream()
            try:
                async for chunk in chunks:
                    upload.write(chunk)
            except OtaError as exc:
                if exc.status == 413:
                    await _drain(chunks)
                raise
        return await run_in_threadpool(upload.commit)
    finally:
        upload.abort()  # no-op after a commit; removes the partial file otherwise


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
    """Standard JSON only: no NaN/Infinity, no text that is not valid Unicode."""
    doc = body.decode("utf-8", errors="replace")

    def refuse_constant(name: str) -> Any:
        raise _not_json(f"{name} is not a JSON number", doc)

    value = json.loads(body, parse_constant=refuse_constant)
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


class _StrictJsonRequest(Request):
    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            self._json = strict_json(await self.body())
        return self._json


class StrictJsonRoute(APIRoute):
    """A route whose JSON body is read by `strict_json` (a refusal is 422 VALIDATION)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def strict(request: Request) -> Response:
            return await handler(_StrictJsonRequest(request.scope, request.receive))

        return strict
