"""One client for the OTA API, over httpx: the plugin, the CLI and the double all use it.

It speaks the public paths to any server (rig's local service or a remote one) and the
local-only paths to rig's service; against a server without them it says so plainly. Every
refused request becomes an `OtaClientError` carrying the service's rule and message. It
authenticates with a partner's static bearer token, or signs in with OAuth credentials
(rig.ota.signin) and signs in again when the token has expired.
"""

from __future__ import annotations

import functools
import os
import ssl
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import httpx

from rig.ota.errors import OtaClientError
from rig.ota.signin import OAuthCredentials, OAuthSignIn, SignInEnv, SignInStats
from rig.ota.states import TERMINAL

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


class OtaClient:
    """A partner's view of one OTA server, with a static `token` or sign-in `credentials`."""

    def __init__(
        self,
        base_url: str,
        *,
        partner: str,
        token: str | None = None,
        credentials: OAuthCredentials | None = None,
        account: str | None = None,
        timeout_s: float = 30.0,
    ) -> None:
        if (token is None) == (credentials is None):
            raise OtaClientError("an OtaClient needs a partner token or OAuth credentials, "
                                 "one of the two")  # fmt: skip
        self.base_url = base_url.rstrip("/")
        self.partner = partner
        self.account = account or partner
        self._sign_in = OAuthSignIn(self.base_url, credentials) if credentials else None
        self._http = httpx.Client(
            base_url=self.base_url,
            headers={"Authorization": f"Bearer {token}"} if token is not None else {},
            auth=self._sign_in,
            timeout=timeout_s,
            verify=tls_context(),
        )
        self.ota = f"/v1/ota/partners/{partner}"
        self.local = f"/v1/local/partners/{partner}"

    @classmethod
    def remote(
        cls,
        base_url: str,
        *,
        partner: str,
        account: str,
        token_env: str = "RIG_OTA_TOKEN",
        sign_in: SignInEnv | None = None,
    ) -> OtaClient:
        """A client for a remote server: it signs in with the credentials in the variables
        `sign_in` names, or else uses the bearer token in the variable `token_env`."""
        if sign_in is not None:
            return cls(base_url, partner=partner, credentials=sign_in.read(), account=account)
        token = os.environ.get(token_env)
        if not token:
            raise OtaClientError(f"the OTA token variable {token_env} is not set: export it "
                                 "with the partner's bearer token")  # fmt: skip
        return cls(base_url, partner=partner, token=token, account=account)

    @property
    def sign_ins(self) -> SignInStats:
        """Sign-ins so far and the seconds they took (zero for a client with a static token)."""
        stats = self._sign_in.stats if self._sign_in else SignInStats()
        return SignInStats(stats.count, stats.seconds)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> OtaClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- transport -----------------------------------------------------------------------------

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        """Send one request; JSON answer (None for an empty one), or OtaClientError."""
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise OtaClientError(f"OTA service {self.base_url} unreachable: {exc}") from None
        if response.status_code >= 400:
            raise refusal(self.base_url, method, path, response)
        if not response.content:
            return None
        if response.headers.get("content-type", "").startswith("application/json"):
            return response.json()
        return response.content

    def pages(self, path: str, params: dict[str, Any] | None = None) -> Iterator[dict]:
        """Every element of a paged list, page after page."""
        page = 0
        while True:
            body = self.request("GET", path, params={**(params or {}), "page": page, "size": 200})
            yield from body["content"]
            page += 1
            if page >= body["totalPages"]:
                return

    # -- image types (R1, R2) ------------------------------------------------------------------

    def image_types(self) -> list[dict]:
        """Every image type (Afero answers a bare array; an older rig service, a page)."""
        return _items(self.request("GET", f"{self.ota}/types"))

    def image_type(self, type_: int) -> dict:
        return self.request("GET", f"{self.ota}/types/{type_}")

    def add_image_type(self, name: str, description: str = "", type_: int | None = None) -> dict:
        body: dict[str, Any] = {"name": name, "description": description}
        if type_ is not None:
            body["type"] = type_
        return self.request("POST", f"{self.ota}/types", json=body)

    def edit_image_type(
        self, type_: int, *, name: str | None = None, description: str | None = None
    ) -> dict:
        """Rename or re-describe an image type; returns the type as it now reads (the PUT
        itself answers 204 without a body)."""
        body = {k: v for k, v in (("name", name), ("description", description)) if v is not None}
        self.request("PUT", f"{self.ota}/types/{type_}", json=body)
        return self.image_type(type_)

    # -- binaries and the image pool (R4, R5, R7) ----------------------------------------------

    def upload_binary(self, source: Path | bytes) -> str:
        """Stage bytes; returns their SHA-256 as the service computed it."""
        if isinstance(source, bytes):
            content: Any = source
        else:
            content = FileChunks(Path(source))
        headers = {"Content-Type": "application/octet-stream"}
        return self.request("POST", f"{self.ota}/binaries", content=content, headers=headers)[
            "value"
        ]

    def move_to_repository(self, sha256: str) -> str:
        return self.request(
            "POST", f"{self.ota}/binaries/moveToRepository", json={"value": sha256}
        )["value"]

    def create_image(self, **record: Any) -> dict:
        return self.request("POST", f"{self.ota}/pool", json=record)

    def upload_image(
        self,
        source: Path | bytes,
        *,
        type_: int,
        name: str,
        version: str,
        description: str = "",
        tags: Iterable[str] = (),
        device_types: Iterable[str] = (),
    ) -> dict:
        """The OTA Manager's three-step upload wizard, then the associations, as one call."""
        url = self.move_to_repository(self.upload_binary(source))
        image = self.create_image(
            name=name, description=description or name, type=type_, version=version,
            url=url, tags=list(tags),
        )  # fmt: skip
        for device_type in device_types:
            self.associate(device_type, type_, image["versionNumber"])
        return self.image(type_, image["versionNumber"]) if device_types else image

    def images(
        self, *, type_: int | None = None, device_type: str | None = None, tags: Iterable[str] = ()
    ) -> list[dict]:
        params: dict[str, Any] = {}
        if type_ is not None:
            params["type"] = type_
        if device_type:
            params["deviceTypeId"] = device_type
        if tags:
            params["tags"] = ",".join(tags)
        return list(self.pages(f"{self.ota}/pool", params))

    def image(self, type_: int, version_number: str) -> dict:
        return self.request("GET", f"{self.ota}/pool/types/{type_}/versionNumbers/{version_number}")

    def edit_image(
        self,
        type_: int,
        version_number: str,
        *,
        name: str | None = None,
        description: str | None = None,
        tags: Iterable[str] | None = None,
    ) -> dict:
        """Change a pool image's name, description or tags; returns the image as it now reads
        (the PUT itself answers 204 without a body)."""
        body: dict[str, Any] = {
            k: v for k, v in (("name", name), ("description", description)) if v is not None
        }
        if tags is not None:
            body["tags"] = list(tags)
        path = f"{self.ota}/pool/types/{type_}/versionNumbers/{version_number}"
        self.request("PUT", path, json=body)
        return self.image(type_, version_number)

    def image_exists(
        self, type_: int, name: str, version: str, exclude_image_id: str | None = None
    ) -> bool:
        """Whether the pool has an image of this type, name and version (other than
        `exclude_image_id`, the image about to be edited)."""
        path = f"{self.ota}/pool/types/{type_}/names/{name}/versions/{version}/exists"
        params = {"excludeFirmwareImageId": exclude_image_id} if exclude_image_id else None
        return bool(self.request("GET", path, params=params)["value"])

    def tags(self) -> list[str]:
        """Every tag in use (a bare array; an older rig service wrapped it in `{tags}`)."""
        body = self.request("GET", f"{self.ota}/tags")
        return body["tags"] if isinstance(body, dict) else body

    # -- associations and push (R6, R8) --------------------------------------------------------

    def associate(self, device_type: str, type_: int, version_number: str) -> Any:
        return self.request(
            "POST", f"{self.ota}/deviceTypes/{device_type}/firmwareImages",
            json={"type": type_, "versionNumber": str(version_number)},
        )  # fmt: skip

    def associations(self, type_: int, version_number: str) -> list[dict]:
        """The image's associations: `{name, partnerId, email, deviceTypeId, deviceTypeName,
        firmwareImageId}` records, one per device type."""
        path = f"{self.ota}/pool/types/{type_}/versionNumbers/{version_number}/associations"
        return self.request("GET", path)

    def associated_images(self, device_type: str) -> list[dict]:
        return list(self.pages(f"{self.ota}/deviceTypes/{device_type}/firmwareImages"))

    def push(self, device_type: str, image_id: str, device_id: str) -> dict:
        path = f"{self.ota}/deviceTypes/{device_type}/firmwareImages/{image_id}/push"
        return self.request("PUT", path, json={"value": device_id})

    # -- devices -------------------------------------------------------------------------------

    def devices(self) -> list[dict]:
        """Every device of the account, with state and attributes (a bare array, as Afero
        documents this list: it is not paged)."""
        return self.request(
            "GET", f"/v1/accounts/{self.account}/devices",
            params={"expansions": "state,attributes"},
        )  # fmt: skip

    def device(self, device_id: str) -> dict:
        return self.request(
            "GET", f"/v1/accounts/{self.account}/devices/{device_id}",
            params={"expansions": "state,attributes"},
        )  # fmt: skip

    # -- local-only: profiles, registration, deployment status ---------------------------------

    def add_device_type(self, device_type: str, name: str = "", description: str = "") -> dict:
        return self.request(
            "POST", f"{self.local}/deviceTypes",
            json={"id": device_type, "name": name or device_type, "description": description},
        )  # fmt: skip

    def device_types(self) -> list[dict]:
        return list(self.pages(f"{self.local}/deviceTypes"))

    def publish_profile(self, device_type: str, profile: dict) -> dict:
        return self.request("PUT", f"{self.local}/deviceTypes/{device_type}/profile", json=profile)

    def publish_export(self, device_type: str, device_type_json: dict, description: dict) -> dict:
        return self.request(
            "PUT", f"{self.local}/deviceTypes/{device_type}/profile/export",
            json={"deviceType": device_type_json, "deviceDescription": description},
        )  # fmt: skip

    def register_device(self, device_id: str, device_type: str) -> dict:
        return self.request(
            "POST", f"{self.local}/devices",
            json={"deviceId": device_id, "deviceTypeId": device_type, "accountId": self.account},
        )  # fmt: skip

    def deployments(self, device_id: str | None = None) -> list[dict]:
        params = {"deviceId": device_id} if device_id else {}
        return list(self.pages(f"{self.local}/deployments", params))

    def deployment(self, deployment_id: str) -> dict:
        return self.request("GET", f"{self.local}/deployments/{deployment_id}")

    def cancel(self, deployment_id: str) -> dict:
        return self.request("POST", f"{self.local}/deployments/{deployment_id}/cancel")

    def wait_for_deployment(
        self, deployment_id: str, states: Iterable[str] = TERMINAL, timeout_s: float = 60.0
    ) -> dict:
        """Poll until the deployment reaches one of `states`; raise with its history if not."""
        wanted = set(states)
        deadline = time.monotonic() + timeout_s
        while True:
            record = self.deployment(deployment_id)
            if record["state"] in wanted and not _will_retry(record):
                return record
            if time.monotonic() > deadline:
                seen = " → ".join(h["state"] for h in record.get("history", []))
                raise OtaClientError(
                    f"deployment {deployment_id} did not reach {'/'.join(sorted(wanted))} within "
                    f"{timeout_s:g} s; it is {record['state']} (history: {seen})"
                )
            time.sleep(0.05)


def _items(body: Any) -> list[dict]:
    """A list answer: a bare array as is, the content of a (single) page object."""
    if isinstance(body, dict) and "content" in body:
        return list(body["content"])
    return list(body or [])


def _will_retry(record: dict) -> bool:
    """INTERRUPTED is offered again as a new attempt until the service's retry limit."""
    if record["state"] != "INTERRUPTED":
        return False
    last = (record.get("history") or [{}])[-1]
    return "retry limit" not in (last.get("detail") or "")


class FileChunks:
    """A file streamed to the server instead of read whole. Each pass reads it afresh, so a call
    re-sent after a new sign-in sends every byte again (a generator could be sent only once)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __iter__(self) -> Iterator[bytes]:
        with self.path.open("rb") as handle:
            while chunk := handle.read(UPLOAD_CHUNK):
                yield chunk


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
