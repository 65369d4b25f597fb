"""Cross-checking the witnesses of an OTA outcome."""

import pytest

from rig.ota.witnesses import WitnessError, cross_check

DEPLOYMENT = {
    "id": "d-1",
    "versionNumber": "7",
    "reason": None,
    "history": [{"state": "QUEUED"}, {"state": "APPLYING"}, {"state": "SUCCEEDED"}],
}


def test_success_the_device_does_not_report_is_a_disagreement():
    with pytest.raises(WitnessError) as caught:
        cross_check({**DEPLOYMENT, "state": "SUCCEEDED"}, {2101: "6"}, image_type=101,
                    expected_version=None)  # fmt: skip
    message = str(caught.value)
    assert "disagree" in message and "QUEUED → APPLYING → SUCCEEDED" in message
    assert "service: SUCCEEDED" in message and "device reports 2101 = 6" in message
    assert "wire:    not recorded" in message


def test_agreeing_success_and_agreeing_failure_pass():
    views = cross_check({**DEPLOYMENT, "state": "SUCCEEDED"}, {2101: "7"}, image_type=101,
                        expected_version=None)  # fmt: skip
    assert "device reports 2101 = 7" in views.service
    failed = {**DEPLOYMENT, "state": "VERIFY_FAILED", "reason": "sha256 mismatch"}
    assert (
        "VERIFY_FAILED (sha256 mismatch)"
        in cross_check(failed, {}, image_type=101, expected_version=None).service
    )
