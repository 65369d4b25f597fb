"""OtaClient over the answers Afero documents: 204 updates read back, bare arrays, records."""

from __future__ import annotations

from pathlib import Path

from rig.ota.client import OtaClient
from rig.ota.service.auth import PartnerAuth
from rig.ota.service.profiles import load_profile
from rig.ota.service.serve import LocalService

BLINKY = Path(__file__).resolve().parents[3] / "fixtures" / "profiles" / "blinky.yaml"


def test_the_client_keeps_its_return_values_over_the_documented_answers(tmp_path: Path) -> None:
    with (
        LocalService(tmp_path / "ota", [PartnerAuth("lab", "tok")]) as svc,
        OtaClient(svc.base_url, partner="lab", token="tok") as ota,
    ):
        made = ota.add_image_type("app", "first", 101)
        renamed = ota.edit_image_type(101, name="application")  # 204, then read back
        assert (renamed["id"], renamed["name"], renamed["description"]) == (
            made["id"],
            "application",
            "first",
        )
        assert [t["type"] for t in ota.image_types()] == [101]
        svc.service.create_device_type("lab", "blinky", "Blinky")
        svc.service.publish_profile("lab", "blinky", load_profile(BLINKY).model_dump())
        image = ota.upload_image(
            b"app 1", type_=101, name="app", version="1.0", tags=["beta"], device_types=["blinky"]
        )
        assert image["url"].endswith(image["sha256"])
        edited = ota.edit_image(101, image["versionNumber"], description="d2", tags=["rc"])
        assert (edited["description"], edited["tags"]) == ("d2", ["rc"])
        assert ota.tags() == ["rc"]
        assert ota.image_exists(101, "app", "1.0")
        assert not ota.image_exists(101, "app", "1.0", exclude_image_id=image["id"])
        [record] = ota.associations(101, image["versionNumber"])
        assert (record["deviceTypeId"], record["deviceTypeName"], record["firmwareImageId"]) == (
            "blinky",
            "Blinky",
            image["id"],
        )
