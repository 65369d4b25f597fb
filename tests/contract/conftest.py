"""The contract suite's target: rig's local OTA service by default, or a remote base URL.

Set `RIG_OTA_CONTRACT_URL` to run the same tests against another server. It then needs:
- `RIG_OTA_CONTRACT_PARTNER`: the partner id in the paths;
- credentials: a bearer token in `RIG_OTA_CONTRACT_TOKEN`, or the four OAuth sign-in variables
  `RIG_OTA_CONTRACT_CLIENT_ID`, `…_CLIENT_SECRET`, `…_USERNAME`, `…_PASSWORD` (rig.ota.signin);
- for the operations that read records: `RIG_OTA_CONTRACT_TYPE` (an existing firmware type) and
  `RIG_OTA_CONTRACT_DEVICE_TYPE` (a device type eligible for that type);
- for the operations that write (create types and pool images, associate, push):
  `RIG_OTA_CONTRACT_WRITE=1`, and `RIG_OTA_CONTRACT_DEVICE` (a device to push to) for the push;
- for the device API's listing: `RIG_OTA_CONTRACT_ACCOUNT` (the account holding that device).
An operation whose set-up the remote cannot do is skipped, with the variable it lacks as reason.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from rig.ota.service.auth import PartnerAuth
from rig.ota.service.profiles import load_profile
from rig.ota.service.serve import LocalService
from rig.ota.signin import OAuthSignIn, SignInEnv

REPO = Path(__file__).resolve().parents[2]
BLINKY = REPO / "fixtures" / "profiles" / "blinky.yaml"
LOCAL_TOKEN = "contract-token"
SIGN_IN = SignInEnv(
    "RIG_OTA_CONTRACT_CLIENT_ID",
    "RIG_OTA_CONTRACT_CLIENT_SECRET",
    "RIG_OTA_CONTRACT_USERNAME",
    "RIG_OTA_CONTRACT_PASSWORD",
    where="contract suite: ",
)


@dataclass
class Target:
    """One server and partner, with the records the tests read (made here when local)."""

    http: httpx.Client
    partner: str
    local: bool
    type: int | None = None
    device_type: str | None = None
    device: str | None = None
    writable: bool = False
    account: str | None = None
    images: list[dict[str, Any]] = field(default_factory=list)

    @property
    def p(self) -> str:
        return f"/v1/ota/partners/{self.partner}"

    def need(self, *what: str) -> None:
        """Skip the test unless the target has these (`type`, `device_type`, `device`,
        `write`), naming the variable a remote run lacks."""
        names = {
            "type": "RIG_OTA_CONTRACT_TYPE",
            "device_type": "RIG_OTA_CONTRACT_DEVICE_TYPE",
            "device": "RIG_OTA_CONTRACT_DEVICE",
            "write": "RIG_OTA_CONTRACT_WRITE=1",
            "account": "RIG_OTA_CONTRACT_ACCOUNT",
        }
        for item in what:
            have = self.writable if item == "write" else getattr(self, item) is not None
            if not have:
                pytest.skip(f"the remote target needs {names[item]} for this operation")

    def upload(self, data: bytes) -> str:
        """Stage and keep bytes; the repository URL."""
        sha = (
            self.http.post(
                f"{self.p}/binaries",
                content=data,
                headers={"Content-Type": "application/octet-stream"},
            )
            .raise_for_status()
            .json()["value"]
        )
        assert sha == hashlib.sha256(data).hexdigest()
        moved = self.http.post(f"{self.p}/binaries/moveToRepository", json={"value": sha})
        return moved.raise_for_status().json()["value"]

    def new_image(self, *, tags: list[str], description: str = "contract build") -> dict:
        """A fresh pool image of the target's type (a unique version string each time)."""
        self.need("type", "write")
        version = f"0.0.{uuid.uuid4().int % 10**9}"
        body = {
            "name": "rig-contract",
            "description": description,
            "type": self.type,
            "version": version,
            "url": self.upload(f"rig contract {version}".encode() * 8),
            "tags": tags,
        }
        answer = self.http.post(f"{self.p}/pool", json=body)
        assert answer.status_code == 201, answer.text
        return answer.json()


def _local(tmp: Path) -> Iterator[Target]:
    with LocalService(tmp, [PartnerAuth("lab", LOCAL_TOKEN, "lab")]) as svc:
        svc.service.create_device_type("lab", "blinky", "Blinky")
        http = httpx.Client(
            base_url=svc.base_url, headers={"Authorization": f"Bearer {LOCAL_TOKEN}"}, timeout=10
        )
        made = http.post("/v1/ota/partners/lab/types", json={"name": "application", "type": 101})
        assert made.status_code == 201, made.text
        # local-only set-up: a profile enabling the type, and a device
        svc.service.publish_profile("lab", "blinky", load_profile(BLINKY).model_dump())
        svc.service.register_device("lab", "dev-1", "blinky")
        svc.service.report_attributes("dev-1", [{"id": 1, "value": True}])  # one to list
        target = Target(http, "lab", True, 101, "blinky", "dev-1", writable=True, account="lab")
        try:
            yield target
        finally:
            http.close()


def _remote(url: str) -> Iterator[Target]:
    partner = os.environ.get("RIG_OTA_CONTRACT_PARTNER")
    if not partner:
        pytest.skip("RIG_OTA_CONTRACT_URL is set but RIG_OTA_CONTRACT_PARTNER is not")
    token = os.environ.get("RIG_OTA_CONTRACT_TOKEN")
    if token:
        http = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=30)
    elif all(os.environ.get(name) for name in SIGN_IN.names()):
        http = httpx.Client(base_url=url, auth=OAuthSignIn(url, SIGN_IN.read()), timeout=30)
    else:
        pytest.skip(
            "RIG_OTA_CONTRACT_URL is set without credentials: export RIG_OTA_CONTRACT_TOKEN "
            f"or {', '.join(SIGN_IN.names())}"
        )
    type_ = os.environ.get("RIG_OTA_CONTRACT_TYPE")
    target = Target(
        http,
        partner,
        False,
        int(type_) if type_ else None,
        os.environ.get("RIG_OTA_CONTRACT_DEVICE_TYPE") or None,
        os.environ.get("RIG_OTA_CONTRACT_DEVICE") or None,
        writable=os.environ.get("RIG_OTA_CONTRACT_WRITE") == "1",
        account=os.environ.get("RIG_OTA_CONTRACT_ACCOUNT") or None,
    )
    try:
        yield target
    finally:
        http.close()


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    url = os.environ.get("RIG_OTA_CONTRACT_URL")
    if url:
        yield from _remote(url.rstrip("/"))
    else:
        yield from _local(tmp_path_factory.mktemp("ota-contract"))
