"""An image upload from the request stream into the blob store, never more than the limit.

An upload is never held in memory and never written past the image limit: octet-stream bodies
are fed chunk by chunk into an `Upload`, and multipart bodies are parsed as they arrive, their
one file part fed into the `Upload` the same way (Starlette's form reader would first spool the
whole file into the system's temporary folder: a 1 GiB body took 1 GiB of disk before the 413).
At the limit the partial file is removed and 413 answered at once; the server reads and drops
the rest of the body, so the client still gets its answer and the connection stays usable.
"""

from __future__ import annotations

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from rig.ota.service.blobs import BlobStore, Upload, too_large
from rig.ota.service.errors import invalid

MULTIPART_OVERHEAD = 64 * 1024  # boundaries, part headers and small fields besides the file
MAX_FIELDS = 20

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

_NO_FILE = "a multipart upload takes exactly one file, in a field named 'file'"
_AS_RAW = "or send the bytes as application/octet-stream"


class _FilePart:
    """python-multipart callbacks that feed the part named `file` into the upload.

    Other fields are counted and dropped (at most `MAX_FIELDS`, `MULTIPART_OVERHEAD` bytes);
    a second file, or a file in another field, is refused.
    """

    def __init__(self, upload: Upload) -> None:
        self.upload = upload
        self.fields = self.field_bytes = 0
        self.complete = False
        self._header = self._value = self._disposition = b""
        self._into_upload = self._seen_file = False

    def callbacks(self) -> dict[str, object]:
        return {
            "on_part_begin": self._begin,
            "on_header_field": self._header_field,
            "on_header_value": self._header_value,
            "on_header_end": self._header_end,
            "on_headers_finished": self._headers_finished,
            "on_part_data": self._data,
            "on_part_end": self._end,
        }

    def _begin(self) -> None:
        self._disposition, self._into_upload = b"", False

    def _header_field(self, data: bytes, start: int, end: int) -> None:
        self._header += data[start:end]

    def _header_value(self, data: bytes, start: int, end: int) -> None:
        self._value += data[start:end]

    def _header_end(self) -> None:
        if self._header.lower() == b"content-disposition":
            self._disposition = self._value
        self._header = self._value = b""

    def _headers_finished(self) -> None:
        _, options = parse_options_header(self._disposition)
        name = options.get(b"name", b"").decode("latin-1")
        if b"filename" not in options:
            self.fields += 1
            if self.fields > MAX_FIELDS:
                raise invalid(f"the multipart body has more than {MAX_FIELDS} fields", _NO_FILE)
            return
        if self._seen_file or name != "file":
            where = "a second file" if self._seen_file else f"a file in the field {name[:40]!r}"
            raise invalid(f"{_NO_FILE}; this body has {where}", _AS_RAW)
        self._seen_file = self._into_upload = True

    def _data(self, data: bytes, start: int, end: int) -> None:
        if self._into_upload:
            self.upload.write(data[start:end])  # 413 at the image limit
            return
        self.field_bytes += end - start
        if self.field_bytes > MULTIPART_OVERHEAD:
            raise invalid(
                f"the multipart fields besides 'file' hold more than {MULTIPART_OVERHEAD} bytes",
                "send only the image, in the field 'file'",
            )

    def _end(self) -> None:
        if self._into_upload:
            self.complete = True
        self._into_upload = False


async def _stream_multipart(request: Request, upload: Upload, limit: int) -> None:
    _, params = parse_options_header(request.headers.get("content-type", ""))
    boundary = params.get(b"boundary")
    if not boundary:
        raise invalid("the multipart upload has no boundary in its Content-Type", _AS_RAW)
    part = _FilePart(upload)
    parser = MultipartParser(boundary, part.callbacks())  # type: ignore[arg-type]
    seen = 0
    try:
        async for chunk in request.stream():
            seen += len(chunk)
            if seen > limit + MULTIPART_OVERHEAD:  # whatever the parts: bounded all the same
                raise too_large(limit)
            parser.write(chunk)
        parser.finalize()
    except MultipartParseError as exc:
        raise invalid(f"the multipart body cannot be read: {exc}", _AS_RAW) from exc
    if not part.complete:
        raise invalid(_NO_FILE + " (none came, or it was cut short)", _AS_RAW)


async def receive_upload(request: Request, blobs: BlobStore) -> tuple[str, int]:
    """Stream the request's image into staging; (sha256, size) once it is safely in place."""
    multipart = request.headers.get("content-type", "").startswith("multipart/form-data")
    declared = request.headers.get("content-length", "")
    slack = MULTIPART_OVERHEAD if multipart else 0
    if declared.isascii() and declared.isdigit() and int(declared) > blobs.max_bytes + slack:
        raise too_large(blobs.max_bytes)
    upload = blobs.upload()
    try:
        if multipart:
            await _stream_multipart(request, upload, blobs.max_bytes)
        else:
            async for chunk in request.stream():
                upload.write(chunk)
        return await run_in_threadpool(upload.commit)
    finally:
        upload.abort()  # no-op after a commit; removes the partial file otherwise
