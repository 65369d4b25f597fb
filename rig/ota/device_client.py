"""The device's side of rig's OTA service, over httpx: what an ASR (or a test playing one) calls.

A `DeviceClient` checks in, long-polls for its next deployment, downloads image bytes (by range
if asked), reports progress and attributes, all under `/v1/device/{id}` with the device's secret.
The board double's emulated ASR uses it; the lab's side of the API is `rig.ota.client`. Every
refused request becomes an `OtaClientError` (rig.ota.http). This module imports no server code.
"""

from __future__ import annotations

from typing import Any

import httpx

from rig.ota.errors import OtaClientError
from rig.ota.http import refusal, tls_context


class DeviceClient:
    """The device-facing side of the local service, as an ASR (or a test playing one) uses it."""

    def __init__(self, base_url: str, device_id: str, secret: str, timeout_s: float = 30.0) -> None:
        self.device_id = device_id
        self.base = f"/v1/device/{device_id}"
        self._http = httpx.Client(
            base_url=base_url.rstrip("/"),
            headers={"Authorization": f"Device {secret}"},
            timeout=timeout_s,
            verify=tls_context(),
        )
        self.base_url = base_url

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> DeviceClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self._http.request(method, self.base + path, **kwargs)
        except httpx.HTTPError as exc:
            raise OtaClientError(f"OTA service unreachable for {self.device_id}: {exc}") from None
        if response.status_code >= 400:
            raise refusal(self.base_url, method, self.base + path, response)
        return response

    def checkin(self, versions: dict[int, str]) -> dict | None:
        body = {"versions": {str(t): str(v) for t, v in versions.items()}}
        return self._call("POST", "/checkin", json=body).json().get("deployment")

    def next_deployment(self, wait_s: float = 0.0) -> dict | None:
        """The next deployment (it becomes OFFERED), or None. `wait_s` > 0 long-polls: the
        service answers as soon as this device's work changes, or with None after `wait_s`
        (at most 30 s; a service without the long-poll answers at once)."""
        if not wait_s:
            response = self._call("GET", "/deployments/next")
        else:
            timeout = self._http.timeout.read or 30.0
            response = self._call("GET", "/deployments/next", params={"wait": f"{wait_s:g}"},
                                  timeout=httpx.Timeout(timeout + wait_s))  # fmt: skip
        return None if response.status_code == 204 or not response.content else response.json()

    def download(self, sha256: str, start: int = 0, end: int | None = None) -> bytes:
        """Bytes [start, end] of an image (HTTP Range), or all of it."""
        headers = {}
        if start or end is not None:
            headers["Range"] = f"bytes={start}-{'' if end is None else end}"
        return self._call("GET", f"/images/{sha256}", headers=headers).content

    def progress(self, deployment_id: str, state: str, **details: Any) -> dict:
        body = {"state": state, **details}
        return self._call("POST", f"/deployments/{deployment_id}/progress", json=body).json()

    def report_attributes(self, attributes: dict[int, Any]) -> Any:
        body = {"attributes": [{"id": k, "value": v} for k, v in attributes.items()]}
        return self._call("POST", "/attributes", json=body).json()
