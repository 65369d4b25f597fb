"""Cross-checking the witnesses of an OTA outcome."""

import pytest

from rig.double.tap import Tap
from rig.instruments.sniffer_port import HandoffRecorder
from rig.ota.witnesses import WitnessError, cross_check
from rig.protocol import aflib
from rig.protocol.decoder import ASR_TO_MCU, MCU_TO_ASR
from tests.unit.protocol.test_transcript import frame, handoff

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


# -- the wire witness: the MCU's version write after its echo of APPLY, read by a sniffer ---------


@pytest.fixture
def sniffed(tmp_path):
    """A tap's two sniffer ports and a recorder on them; `mirror(steps)` puts a handoff on the
    wires and waits until the recorder has decoded all of it."""
    tap = Tap(tmp_path / "tap" / "link.capture.jsonl")
    info = tap.info()
    recorder = HandoffRecorder({d: info[d] for d in (ASR_TO_MCU, MCU_TO_ASR)}, name="bench3")
    recorder.start()

    def mirror(steps) -> HandoffRecorder:
        for direction, message in steps:
            for wire, data in frame(direction, aflib.encode(message)).items():
                tap.mirror(wire, data)
        recorder.wait_for(lambda t: len(t.messages) == len(steps), timeout_s=5)
        return recorder

    yield mirror
    recorder.stop()
    tap.close()


def test_the_wire_sees_the_version_set_after_the_echo_of_apply(sniffed):
    recorder = sniffed(handoff())  # the MCU SETs 2101 = 7 after its 9-byte IDLE echo
    views = cross_check({**DEPLOYMENT, "state": "SUCCEEDED"}, {2101: "7"}, image_type=101,
                        expected_version=None, recorder=recorder)  # fmt: skip
    assert views.wire == "version attribute 2101 = 7 written after APPLY: True"


def test_success_the_wire_did_not_see_written_is_a_disagreement(sniffed):
    steps = handoff()
    del steps[-2:]  # the MCU echoes APPLY, then no version SET (and so no answer to it)
    recorder = sniffed(steps)
    with pytest.raises(WitnessError) as caught:
        cross_check({**DEPLOYMENT, "state": "SUCCEEDED"}, {2101: "7"}, image_type=101,
                    expected_version=None, recorder=recorder, console_timeout_s=0.2)  # fmt: skip
    message = str(caught.value)
    assert "disagree" in message and "device reports 2101 = 7" in message
    assert "wire:    version attribute 2101 = 7 written after APPLY: False" in message


def test_a_failure_the_wire_agrees_with_passes(sniffed):
    steps = handoff()
    at = next(i for i, (_, m) in enumerate(steps) if m.attr_id == 1301
              and m.value[:1] == bytes([aflib.OtaState.APPLY]))  # fmt: skip
    steps[at] = (steps[at][0], aflib.notify_info(aflib.OtaInfo(aflib.OtaState.FAIL)))
    del steps[at + 1 :]  # on FAIL the MCU says nothing
    recorder = sniffed(steps)
    failed = {**DEPLOYMENT, "state": "VERIFY_FAILED", "reason": "rejected"}
    views = cross_check(failed, {2101: "6"}, image_type=101, expected_version=None,
                        recorder=recorder)  # fmt: skip
    assert views.wire == "version attribute 2101 = 7 written after APPLY: False"
