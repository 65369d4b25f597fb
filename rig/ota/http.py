"""What both OTA clients share on the wire: one TLS context, streamed uploads, refusals as errors.

`OtaClient` (rig.ota.client, the lab's side) and `DeviceClient` (rig.ota.device_client, a
device's side) build their httpx clients with `tls_context()`, so a process reads the CA bundle
once however many clients it opens, and turn every refused request into an `OtaClientError` with
`refusal`. This module imports no server code.
"""

from __future__ import annotations

import functools
import ssl
from collections.abc import Iterator
from pathlib import Path

import httpx

from rig.ota.errors import OtaClientError

UPLOAD_CHUNK = 256 * 1024


class LocalOnlyError(OtaClientError):
    """A local-only feature was asked of a server that does not have it."""


@functools.cache
def tls_context() -> ssl.SSLContext:
    """One TLS context for every client of the process, as httpx would build it for each: each
    build reads the CA bundle (~20 ms), which a double's 100 ASRs paid 100 times at start."""
    return httpx.create_ssl_context()


def refusal(base_url: str, method: str, path: str, response: httpx.Response) -> OtaClientError:
    """The typed error for a refused request, from the service's JSON body when it has one."""
    try:
        body = response.json()
    except ValueError:
        body = {}
    if not isinstance(body, dict) or "rule" not in body:
        if path.startswith("/v1/local/") and response.status_code in (404, 405):
            return LocalOnlyError(
                f"{method} {path} is a local-only feature of rig's OTA service; the server "
                f"at {base_url} does not offer it (use service: local in boards.yaml)",
                status=response.status_code,
                rule="LOCAL_ONLY",
            )
        text = body.get("detail") if isinstance(body, dict) else None
        message = f"{method} {path}: HTTP {response.status_code} {text or response.text[:200]}"
        return OtaClientError(message, status=response.status_code)
    return OtaClientError(
        body.get("message", ""), status=response.status_code,
        rule=body.get("rule", ""), hint=body.get("hint", ""),
    )  # fmt: skip


class FileChunks:
    """A file streamed to the server instead of read whole. Each pass reads it afresh, so a call
    re-sent after a new sign-in sends every byte again (a generator could be sent only once)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __iter__(self) -> Iterator[bytes]:
        with self.path.open("rb") as handle:
            while chunk := handle.read(UPLOAD_CHUNK):
                yield chunk
