"""The lab's client for the OTA API, over httpx: the plugin, the pipeline and the CLI use it.

It speaks the public paths to any server (rig's local service or a remote one) and the
local-only paths to rig's service; against a server without them it says so plainly. Every
refused request becomes an `OtaClientError` carrying the service's rule and message. It
authenticates with a partner's static bearer token, or signs in with OAuth credentials
(rig.ota.signin) and signs in again when the token has expired. The device's side of the API
is `rig.ota.device_client`; what both share on the wire is `rig.ota.http`.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import httpx

from rig.ota.errors import OtaClientError
from rig.ota.http import FileChunks, refusal, tls_context
from rig.ota.signin import OAuthCredentials, OAuthSignIn, SignInEnv, SignInStats
from rig.ota.states import TERMINAL


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
