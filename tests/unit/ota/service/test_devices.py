"""Devices, pushes (R8) and deployments over real HTTP, from the partner's and the ASR's side."""

from __future__ import annotations

import threading

import pytest

from rig.ota.service.serve import LocalService
from rig.ota.states import PATH
from tests.unit.ota.service import test_service as common
from tests.unit.ota.service.test_service import Board, Partner

ota, partner, blinky_partner = common.ota, common.partner, common.blinky_partner  # shared fixtures


@pytest.fixture
def pushed(blinky_partner: Partner, ota: LocalService) -> tuple[Partner, Board, dict, dict]:
    """dev-1 (blinky) registered, image 101 #1 associated and pushed: (lab, board, image, push)."""
    partner = blinky_partner
    board = Board(ota.base_url, "dev-1", partner.register("dev-1", "blinky"))
    image = partner.image(101, "1.0.0", data=bytes(range(256)) * 40)
    partner.associate("blinky", image)
    return partner, board, image, partner.push("blinky", image, "dev-1")


def test_the_device_flow_ends_succeeded_with_its_full_history(pushed, ota: LocalService) -> None:
    partner, board, image, push = pushed
    assert (push["state"], push["attempt"], push["versionNumber"]) == ("QUEUED", 1, "1")
    offer = board.checkin(**{"101": "0"})
    assert offer == {
        "deploymentId": push["deploymentId"],
        "imageId": image["id"],
        "type": 101,
        "versionNumber": "1",
        "size": image["size"],
        "sha256": image["sha256"],
        "state": "OFFERED",
        "attempt": 1,
        "attributeSize": 253,
        "downloadUrl": f"/v1/device/dev-1/images/{image['sha256']}",
    }
    assert board.ok("GET", "/deployments/next")["deploymentId"] == offer["deploymentId"]
    data = board.http.get(offer["downloadUrl"]).content
    assert len(data) == image["size"]
    dep = offer["deploymentId"]
    board.report("ACCEPTED", deployment=dep)
    for sent in (0, 4096, 8192, len(data)):
        moved = board.report("TRANSFERRING", deployment=dep, bytes=sent, total=len(data))
    assert (moved["bytes"], moved["total"]) == (len(data), len(data))
    for state in ("TRANSFERRED", "VERIFYING", "APPLYING"):
        board.report(state, deployment=dep, detail=f"handoff step {state.lower()}")
    # the MCU writes the new version number to attribute 2101: that is the success signal
    board.ok("POST", "/attributes", json={"attributes": [{"id": 2101, "value": "1"}]})
    done = partner.deployment(dep)
    assert done["state"] == "SUCCEEDED"
    assert [h["state"] for h in done["history"]] == list(PATH)  # every stage, in order
    assert {h["attempt"] for h in done["history"]} == {1}
    stamps = [h["timestamp"] for h in done["history"]]
    assert stamps == sorted(stamps)
    assert done["history"][3]["detail"] == f"0/{len(data)} bytes"
    assert "version number 1 of type 101" in done["history"][-1]["detail"]
    # an ASR that reports SUCCEEDED too (after the attribute) is not refused
    assert board.report("SUCCEEDED", deployment=dep)["state"] == "SUCCEEDED"
    assert board.http.get(f"{board.d}/deployments/next").status_code == 204
    device = partner.ok("GET", "/v1/accounts/lab-account/devices/dev-1?expansions=state,attributes")
    assert device["state"]["connected"] is True
    assert {"id": 2101, "value": "1"}.items() <= device["attributes"][0].items()
    assert "state" not in partner.ok("GET", "/v1/accounts/lab-account/devices/dev-1")
    listed = partner.ok("GET", "/v1/accounts/lab-account/devices?expansions=state")
    assert [d["deviceId"] for d in listed] == ["dev-1"]
    by_state = partner.ok("GET", f"{partner.local}/deployments?deviceId=dev-1&state=SUCCEEDED")
    assert by_state["totalElements"] == 1


DEVICES = "/v1/accounts/lab-account/devices"
AFERO_DEVICE = {"deviceId", "deviceTypeId", "partnerId", "createdTimestamp", "updating"}


def test_the_device_list_is_a_bare_array_of_every_device_with_afero_fields(
    blinky_partner: Partner, ota: LocalService
) -> None:
    partner = blinky_partner
    for device_id in ("dev-b", "dev-a"):
        partner.register(device_id, "blinky")
    ota.service.create_device_type("other", "gadget")  # another partner's device: not listed
    ota.service.register_device("other", "theirs", "gadget")
    listed = partner.ok("GET", DEVICES)
    assert isinstance(listed, list), f"expected a bare array, got {listed!r}"
    assert [d["deviceId"] for d in listed] == ["dev-a", "dev-b"]  # by device id, own account
    for device in listed:
        assert set(device) >= AFERO_DEVICE, device
        assert (device["deviceTypeId"], device["partnerId"]) == ("blinky", "lab")
        assert device["accountId"] == "lab-account" and device["updating"] is False
        assert isinstance(device["createdTimestamp"], int)
        assert not {"deviceState", "state", "deviceTags", "attributes"} & set(device)
    # Afero documents no paging here: paging parameters change nothing, and nothing is cut off
    assert partner.ok("GET", DEVICES, params={"page": 1, "size": 1}) == listed
    for n in range(60):  # more than a default page of 50
        ota.service.register_device("lab", f"dev-{n:02}", "blinky")
    assert len(partner.ok("GET", DEVICES)) == 62


def test_device_expansions_state_tags_and_attributes(blinky_partner: Partner, ota) -> None:
    partner = blinky_partner
    board = Board(ota.base_url, "dev-1", partner.register("dev-1", "blinky"))
    partner.register("dev-2", "blinky")
    one = f"{DEVICES}/dev-1"
    tagged = partner.ok("GET", DEVICES, params={"expansions": "tags"})
    assert [d["deviceTags"] for d in tagged] == [[], []]  # rig keeps no device tags
    assert "deviceState" not in tagged[0] and "attributes" not in tagged[0]
    assert partner.ok("GET", one, params={"expansions": "tags"})["deviceTags"] == []
    before = partner.ok("GET", one, params={"expansions": "state"})
    assert before["deviceState"] == {"connected": False}  # never checked in: no time to show
    assert before["state"] == {"connected": False, "lastCheckin": None}  # rig's own, kept
    board.checkin(**{"101": "0"})
    board.ok("POST", "/attributes", json={"attributes": [{"id": 1, "value": True}]})
    every = partner.ok("GET", DEVICES, params={"expansions": "state,tags,attributes"})
    mine = every[0]
    assert mine["deviceId"] == "dev-1"
    assert mine["deviceState"]["connected"] is True
    assert mine["deviceState"]["updatedTimestamp"] == mine["state"]["lastCheckin"] > 0
    assert [(a["id"], a["value"]) for a in mine["attributes"]] == [(1, True), (2101, "0")]
    assert all(isinstance(a["updatedTimestamp"], int) for a in mine["attributes"])
    assert mine["deviceTags"] == [] and every[1]["attributes"] == []
    assert partner.ok("GET", one, params={"expansions": "attributes,state,tags"}) == mine
    for bad in ("bogus", "state,deviceTags"):
        body = partner.refused("GET", DEVICES, 400, "VALIDATION", params={"expansions": bad})
        assert "state,tags,attributes" in body["hint"]
        partner.refused("GET", one, 400, "VALIDATION", params={"expansions": bad})


def test_a_device_is_updating_from_the_offer_until_its_deployment_ends(pushed) -> None:
    partner, board, _, push = pushed
    partner.register("dev-2", "blinky")

    def updating() -> dict[str, bool]:
        return {d["deviceId"]: d["updating"] for d in partner.ok("GET", DEVICES)}

    assert updating() == {"dev-1": False, "dev-2": False}  # QUEUED: not offered yet
    board.checkin(**{"101": "0"})
    assert updating() == {"dev-1": True, "dev-2": False}
    assert partner.ok("GET", f"{DEVICES}/dev-1")["updating"] is True
    board.report("ACCEPTED", deployment=push["deploymentId"])
    board.report("INTERRUPTED", deployment=push["deploymentId"], reason="power lost")
    assert updating()["dev-1"] is False  # waits for the next check-in
    board.checkin(**{"101": "0"})
    assert updating()["dev-1"] is True
    partner.ok("POST", f"{partner.local}/deployments/{push['deploymentId']}/cancel")
    assert updating() == {"dev-1": False, "dev-2": False}  # ended


def test_r8_refuses_unknown_devices_wrong_types_unassociated_images_and_downgrades(
    blinky_partner: Partner, ota: LocalService
) -> None:
    partner = blinky_partner
    partner.image_type(102)
    partner.device_type("kettle", "kettle")
    secret = partner.register("dev-1", "blinky")
    partner.register("kettle-1", "kettle")
    old, mid, new = (partner.image(101, v) for v in ("1.0", "1.1", "1.2"))
    for image in (old, mid):
        partner.associate("blinky", image)
    push = f"{partner.p}/deviceTypes/blinky/firmwareImages"
    body = partner.refused("PUT", f"{push}/{old['id']}/push", 404, "R8", json={"value": "dev-9"})
    assert "'dev-9'" in body["message"]
    body = partner.refused("PUT", f"{push}/{old['id']}/push", 409, "R8", json={"value": "kettle-1"})
    assert "'kettle-1' is a 'kettle'" in body["message"]
    body = partner.refused("PUT", f"{push}/{new['id']}/push", 409, "R8", json={"value": "dev-1"})
    assert "not associated with device type 'blinky'" in body["message"]
    Board(ota.base_url, "dev-1", secret).checkin(**{"101": "2"})
    body = partner.refused("PUT", f"{push}/{old['id']}/push", 409, "R8", json={"value": "dev-1"})
    assert body["message"] == (
        "R8: device 'dev-1' already runs version number 2 of type 101; "
        "pushing version number 1 would be a downgrade"
    )
    assert body["hint"] == "re-upload the old binary to give it a new version number"
    body = partner.refused("PUT", f"{push}/{mid['id']}/push", 409, "R8", json={"value": "dev-1"})
    assert "would change nothing" in body["message"]
    partner.associate("blinky", new)
    assert partner.push("blinky", new, "dev-1")["versionNumber"] == "3"


def test_a_version_attribute_report_updates_what_r8_sees(pushed) -> None:
    partner, board, _, _ = pushed
    newer = partner.image(101, "2.0")
    partner.associate("blinky", newer)
    board.ok("POST", "/attributes", json={"attributes": [{"id": 2101, "value": 2}]})
    path = f"{partner.p}/deviceTypes/blinky/firmwareImages/{newer['id']}/push"
    partner.refused("PUT", path, 409, "R8", json={"value": "dev-1"})
    r = board.http.post(f"{board.d}/attributes", json={"attributes": [{"id": 2101, "value": "x"}]})
    assert (r.status_code, r.json()["rule"]) == (400, "VALIDATION")
    assert "2101" in r.json()["message"]


def test_a_newer_push_supersedes_an_open_one_and_cancel_is_final(pushed) -> None:
    partner, board, _, first = pushed
    newer = partner.image(101, "2.0")
    partner.associate("blinky", newer)
    board.checkin()
    board.report("ACCEPTED", deployment=first["deploymentId"])
    second = partner.push("blinky", newer, "dev-1")
    old = partner.deployment(first["deploymentId"])
    assert old["state"] == "SUPERSEDED"
    assert second["deploymentId"] in old["history"][-1]["detail"]
    assert board.checkin()["deploymentId"] == second["deploymentId"]
    r = board.http.post(
        f"{board.d}/deployments/{first['deploymentId']}/progress", json={"state": "TRANSFERRING"}
    )
    assert (r.status_code, r.json()["rule"]) == (409, "CONFLICT")
    assert "SUPERSEDED" in r.json()["message"]
    cancel = f"{partner.local}/deployments/{second['deploymentId']}/cancel"
    canceled = partner.ok("POST", cancel)
    assert canceled["state"] == "CANCELED" and "lab" in canceled["history"][-1]["detail"]
    assert "already ended CANCELED" in partner.refused("POST", cancel, 409, "CONFLICT")["message"]
    assert board.http.get(f"{board.d}/deployments/next").status_code == 204
    partner.refused("POST", f"{partner.local}/deployments/nope/cancel", 404, "NOT_FOUND")


def test_moves_are_validated_and_an_interrupted_deployment_is_retried_as_a_new_attempt(
    pushed,
) -> None:
    partner, board, _, push = pushed
    dep = push["deploymentId"]
    board.checkin()
    board.report("ACCEPTED", deployment=dep)
    board.report("VERIFYING", deployment=dep)
    r = board.http.post(f"{board.d}/deployments/{dep}/progress", json={"state": "TRANSFERRING"})
    assert (r.status_code, r.json()["rule"]) == (409, "CONFLICT")
    assert "APPLYING" in r.json()["hint"]
    for bad in ({"state": "CANCELED"}, {"state": "QUEUED"}):
        r = board.http.post(f"{board.d}/deployments/{dep}/progress", json=bad)
        assert (r.status_code, r.json()["rule"]) == (400, "VALIDATION")
    r = board.http.post(f"{board.d}/deployments/{dep}/progress", json={"state": "DONE"})
    assert (r.status_code, r.json()["rule"]) == (422, "VALIDATION")
    assert "'state'" in r.json()["message"]
    board.report("INTERRUPTED", deployment=dep, reason="power lost")
    retry = board.checkin()
    assert (retry["deploymentId"], retry["attempt"], retry["state"]) == (dep, 2, "OFFERED")
    board.report("ACCEPTED", deployment=dep)
    timed_out = board.report("TIMED_OUT", deployment=dep)
    assert (timed_out["state"], timed_out["reason"], timed_out["attempt"]) == (
        "TIMED_OUT",
        "ACCEPTED",
        2,
    )
    states = [(h["state"], h["attempt"]) for h in partner.deployment(dep)["history"]]
    assert states == [
        ("QUEUED", 1),
        ("OFFERED", 1),
        ("ACCEPTED", 1),
        ("VERIFYING", 1),
        ("INTERRUPTED", 1),
        ("OFFERED", 2),
        ("ACCEPTED", 2),
        ("TIMED_OUT", 2),
    ]
    assert board.checkin() is None


def test_pushes_in_parallel_leave_one_open_deployment(blinky_partner: Partner, ota) -> None:
    partner = blinky_partner
    partner.register("dev-1", "blinky")
    images = [partner.image(101, f"1.{i}") for i in range(8)]
    for image in images:
        partner.associate("blinky", image)
    errors: list[BaseException] = []

    def push(image: dict) -> None:
        try:
            Partner(ota.base_url).push("blinky", image, "dev-1")
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=push, args=(image,)) for image in images]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert errors == []
    page = partner.ok("GET", f"{partner.local}/deployments?deviceId=dev-1")
    states = sorted(d["state"] for d in page["content"])
    assert states == ["QUEUED"] + ["SUPERSEDED"] * 7


def test_the_plugin_can_set_up_a_lab_directly_and_again_on_a_kept_folder(tmp_path) -> None:
    from rig.ota.service.profiles import load_profile

    blinky = load_profile(common.PROFILES / "blinky.yaml")
    secrets: list[str] = []
    for session in range(2):  # a second session over the same data folder
        with LocalService(tmp_path, common.PARTNERS, common.MAX_IMAGE_BYTES) as ota:
            svc = ota.service
            assert svc.ensure_image_type("lab", 101, "application")["type"] == 101
            svc.ensure_device_type("lab", "blinky")
            assert svc.publish_profile("lab", "blinky", blinky)["version"] == session + 1
            secret = svc.ensure_device("lab", "dev-1", "blinky")["secret"]
            board = Board(ota.base_url, "dev-1", secret)
            assert board.checkin(**{"101": str(session)}) is None
            if session == 1:
                stale = Board(ota.base_url, "dev-1", secrets[0])
                r = stale.http.post(f"{stale.d}/checkin", json={"versions": {}})
                assert r.status_code == 403  # re-keyed: the old secret no longer opens it
            secrets.append(secret)
            image = svc.add_image(
                "lab",
                b"app v%d" % session,
                type=101,
                name="app",
                description="direct",
                version=f"1.{session}",
            )
            assert image["versionNumber"] == str(session + 1)
            partner = Partner(ota.base_url)
            assert len(partner.ok("GET", f"{partner.p}/types")) == 1
            assert partner.ok("GET", f"{partner.p}/pool")["totalElements"] == session + 1
            for client in common.OPEN_CLIENTS:
                client.close()
            common.OPEN_CLIENTS.clear()
