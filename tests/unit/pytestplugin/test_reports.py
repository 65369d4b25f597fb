"""The report side of the plugin, on inner pytest runs against emulated boards: measurements,
JUnit properties, JSON sidecars, Allure labels and attachments, broken boards, flaky steps."""

import json
import os
import socket
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

BOARDS = """
boards:
  alpha:
    kind: emulated
    device_type: blinky
    console: {boot_timeout_s: 1.5}
    power: {off_s: 0.05}
    double: {firmware_version: 1.1.0}
    limits:
      boot_time: {high: 30}
      supply_volts: {low: 3.2, high: 3.4}
  bravo:
    kind: emulated
    device_type: kettle
    console: {boot_timeout_s: 1.5}
    power: {off_s: 0.05}
    double: {firmware_version: 2.0.3}
"""

TESTS = """
def test_in_limits(board, measure):
    measure("supply_volts", board.power.measure_volts(), unit="V")
    measure("idle_current", board.power.measure_current() * 1000, low=5, high=20, unit="mA")

def test_out_of_limits(board, measure):
    measure("first", 10.0, high=5, unit="mA")
    measure("fine", 1.0, high=5, unit="mA")
    measure("second", -1.0, low=0, unit="V")

def test_fails_on_its_own(board, measure):
    measure("late", 99.0, high=1)
    assert board.name == "nobody", "the test's own failure"
"""


@pytest.fixture
def inner_lab(pytester, rig_env):
    pytester.makefile(".yaml", boards=BOARDS)
    return pytester


def run(inner_lab, tmp_path, *args):
    out = tmp_path / "out"
    result = inner_lab.runpytest(
        "--junitxml", str(out / "junit.xml"), "--alluredir", str(out / "allure"),
        "--rig-report-dir", str(out / "rig"), "-p", "no:cacheprovider", *args,
    )  # fmt: skip
    return result, out


def sidecars(out: Path) -> dict[str, dict]:
    found = {}
    for path in (out / "rig" / "tests").glob("*.json"):
        data = json.loads(path.read_text())
        found[data["nodeid"].split("::")[-1]] = data
    return found


def junit_properties(out: Path, name: str) -> dict[str, str]:
    case = next(c for c in ET.parse(out / "junit.xml").iter("testcase") if c.get("name") == name)
    return {p.get("name"): p.get("value") for p in case.iter("property")}


def test_out_of_limit_values_fail_the_test_at_its_end_all_listed(inner_lab, tmp_path):
    inner_lab.makepyfile(test_m=TESTS)
    result, _ = run(inner_lab, tmp_path, "--board", "alpha")
    result.assert_outcomes(passed=1, failed=2)
    text = result.stdout.str()
    assert "2 measurement(s) out of limits:" in text
    assert "first = 10 mA, limits ≤ 5" in text and "second = -1 V, limits ≥ 0" in text
    assert "fine =" not in text
    # a test that failed on its own keeps its own failure as the reason
    assert "the test's own failure" in text


def test_every_measurement_goes_to_the_json_sidecar(inner_lab, tmp_path):
    inner_lab.makepyfile(test_m=TESTS)
    _, out = run(inner_lab, tmp_path, "--board", "alpha")
    records = sidecars(out)
    assert set(records) == {
        "test_in_limits[alpha]", "test_out_of_limits[alpha]", "test_fails_on_its_own[alpha]"
    }  # fmt: skip
    passed = records["test_in_limits[alpha]"]
    assert passed["outcome"] == "passed" and passed["board"] == "alpha"
    assert passed["firmware"] == "1.1.0"
    by_name = {m["name"]: m for m in passed["measurements"]}
    assert by_name["supply_volts"]["value"] == pytest.approx(3.3)
    assert (by_name["supply_volts"]["low"], by_name["supply_volts"]["high"]) == (3.2, 3.4)
    assert 5 <= by_name["idle_current"]["value"] <= 20
    failed = records["test_out_of_limits[alpha]"]
    assert failed["outcome"] == "failed"
    assert [m["passed"] for m in failed["measurements"]] == [False, True, False]
    assert "2 measurement(s) out of limits" in failed["message"]


def test_measurements_and_board_are_junit_properties(inner_lab, tmp_path):
    inner_lab.makepyfile(test_m=TESTS)
    _, out = run(inner_lab, tmp_path, "--board", "alpha")
    props = junit_properties(out, "test_out_of_limits[alpha]")
    assert props["board"] == "alpha"
    assert props["measure:first"] == "10 mA [≤ 5] FAIL"
    assert props["measure:fine"] == "1 mA [≤ 5] PASS"


def test_allure_results_carry_labels_parameters_and_attachments(inner_lab, tmp_path):
    inner_lab.makepyfile(test_m=TESTS)
    _, out = run(inner_lab, tmp_path, "--board", "alpha")
    results = [json.loads(p.read_text()) for p in (out / "allure").glob("*-result.json")]
    result = next(r for r in results if r["name"] == "test_in_limits[alpha]")
    labels = {(lb["name"], lb["value"]) for lb in result["labels"]}
    assert {("board", "alpha"), ("device_type", "blinky"), ("firmware", "1.1.0")} <= labels
    assert any(name == "host" for name, _ in labels)
    params = {p["name"]: p["value"] for p in result["parameters"]}
    assert params["supply_volts"] == "'3.3 V'"
    attachments = {a["name"]: out / "allure" / a["source"] for a in result["attachments"]}
    assert {"measurements", "console alpha"} <= set(attachments)
    console = attachments["console alpha"].read_text()
    # this test's slice of the console log: its own start mark, no other test's
    assert "[rig] test start: test_m.py::test_in_limits[alpha]" in console
    assert "test_out_of_limits" not in console and "test_fails_on_its_own" not in console


def test_a_board_that_cannot_boot_is_out_of_the_run_and_the_others_go_on(inner_lab, tmp_path):
    inner_lab.makefile(
        ".yaml",
        boards=BOARDS.replace(
            "double: {firmware_version: 2.0.3}", "double: {firmware_version: 2.0.3, min_volts: 5.0}"
        ),
    )  # fmt: skip  (bravo's supply is below its brown-out level: it never shows a banner)
    inner_lab.makepyfile(
        test_b="""
        def test_one(board): assert board.firmware
        def test_two(board): assert board.firmware
        def test_three(board): assert board.firmware
    """
    )
    result, out = run(inner_lab, tmp_path, "--board", "alpha,bravo", "-rs")
    result.assert_outcomes(passed=3, errors=1, skipped=2)
    text = result.stdout.str()
    assert "first boot of bravo failed on all 2 attempts" in text
    result.stdout.fnmatch_lines(["SKIPPED [[]2[]] *board 'bravo' is out of this run: *"])
    bravo = json.loads((out / "rig" / "boards" / "bravo.json").read_text())
    assert bravo["broken"].startswith("first boot of bravo failed on all 2 attempts")
    assert bravo["firmware_before"] is None and bravo["device_type"] == "kettle"
    alpha = json.loads((out / "rig" / "boards" / "alpha.json").read_text())
    assert (alpha["firmware_before"], alpha["firmware_after"]) == ("1.1.0", "1.1.0")
    assert alpha["broken"] is None and alpha["boot_time_s"] > 0


def test_a_board_that_fails_its_recovery_is_out_of_the_run(inner_lab, tmp_path):
    inner_lab.makepyfile(
        test_c="""
        def test_breaks_it(board):
            board.power.set_volts(2.0)  # below its brown-out level: no boot from now on
            assert False, "left the board browned out"
        def test_next(board): pass
        def test_after(board): pass
    """
    )
    result, out = run(inner_lab, tmp_path, "--board", "alpha", "-rs")
    result.assert_outcomes(failed=1, errors=1, skipped=1)
    text = result.stdout.str()
    assert "board 'alpha' is broken: no good boot after a failed test" in text
    result.stdout.fnmatch_lines(["SKIPPED * board 'alpha' is out of this run: *"])
    records = sidecars(out)
    assert records["test_next[alpha]"]["outcome"] == "error"
    assert [a["number"] for a in records["test_next[alpha]"]["attempts"]] == [1, 2]
    assert records["test_after[alpha]"]["outcome"] == "skipped"
    alpha = json.loads((out / "rig" / "boards" / "alpha.json").read_text())
    assert alpha["broken"].startswith("board 'alpha' is broken")
    assert alpha["firmware_after"] is None


def test_a_flaky_step_is_recorded_and_a_failing_test_is_never_rerun(inner_lab, tmp_path):
    inner_lab.makepyfile(
        test_f="""
        from rig.errors import RigError
        from rig.flaky import retry_flaky

        runs = []

        def test_flaky_step(board):
            calls = []
            def wobbly():
                calls.append(1)
                if len(calls) == 1:
                    raise RigError("sniffer adapter re-enumerated")
                return board.power.measure_volts()
            assert retry_flaky("read supply", wobbly, attempts=3) > 3

        def test_real_failure(board):
            runs.append(1)
            assert len(runs) == 1
            raise AssertionError("firmware bug")
    """
    )
    result, out = run(inner_lab, tmp_path, "--board", "alpha")
    result.assert_outcomes(passed=1, failed=1)
    assert result.stdout.str().count("firmware bug") >= 1
    records = sidecars(out)
    attempts = records["test_flaky_step[alpha]"]["attempts"]
    steps = [(a["step"], a["number"], a["error"]) for a in attempts if a["step"] == "read supply"]
    assert steps == [("read supply", 1, "sniffer adapter re-enumerated"), ("read supply", 2, None)]
    props = junit_properties(out, "test_flaky_step[alpha]")
    assert props["flaky:read supply#1"] == "sniffer adapter re-enumerated"
    assert props["flaky:read supply#2"] == "ok after retry"


def test_an_instrument_that_does_not_answer_takes_its_board_out_of_the_run(inner_lab, tmp_path):
    """A real board whose supply accepts the connection but never answers (a hung LXI stack):
    a real pseudo-terminal for its console and a real, silent TCP listener for its supply."""
    master, slave = os.openpty()
    silent = socket.create_server(("127.0.0.1", 0))
    port = silent.getsockname()[1]
    try:
        inner_lab.makefile(".yaml", boards=BOARDS.replace("boards:\n", f"""boards:
  bench-7:
    device_type: blinky
    console: {{port: {os.ttyname(slave)}}}
    power: {{resource: "TCPIP0::127.0.0.1::{port}::SOCKET", timeout_s: 0.5}}
""", 1))  # fmt: skip
        inner_lab.makepyfile(
            test_i="""
            def test_one(board): assert board.firmware
            def test_two(board): assert board.firmware
        """
        )
        result, out = run(inner_lab, tmp_path, "--board", "bench-7,alpha", "-rs")
    finally:
        silent.close()
        os.close(master)
        os.close(slave)
    result.assert_outcomes(passed=2, errors=1, skipped=1)
    assert "nothing answered *IDN? within 0.5 s" in result.stdout.str()
    result.stdout.fnmatch_lines(["SKIPPED * board 'bench-7' is out of this run: *"])
    inner_lab = json.loads((out / "rig" / "boards" / "bench-7.json").read_text())
    assert "nothing answered *IDN?" in inner_lab["broken"]


REPO = Path(__file__).resolve().parents[3]


def _steps(entry: dict) -> list[str]:
    """Every step name in an Allure result, depth first."""
    names = []
    for step in entry.get("steps", []):
        names.append(step["name"])
        names.extend(_steps(step))
    return names


def _attachments(entry: dict) -> list[str]:
    names = [a["name"] for a in entry.get("attachments", [])]
    for step in entry.get("steps", []):
        names.extend(_attachments(step))
    return names


def test_a_pipeline_run_becomes_allure_steps_pictures_and_measurements(inner_lab, tmp_path):
    """The pipeline only emits (rig.steps): the plugin turns its stages into Allure steps, its
    outcome into pictures, and the test's record into measurements and deployments."""
    profile = REPO / "fixtures" / "profiles" / "blinky.yaml"
    image = REPO / "firmware_samples" / "blinky-app-1.1.0.rigimg"
    inner_lab.makefile(".yaml", boards=BOARDS.replace(
        "    double: {firmware_version: 1.1.0}",
        f"    double: {{firmware_version: 1.0.0}}\n    profile: {profile}", 1,
    ))  # fmt: skip
    inner_lab.makepyfile(test_o=f"""
        from pathlib import Path

        def test_update(board, pipeline, ota_target, handoff):
            run = pipeline.run(Path({str(image)!r}), ota_target, type_=101, version="1.1.0",
                               until="SUCCEEDED", board=board, handoff=handoff)
            assert run.deployment["state"] == "SUCCEEDED"
    """)  # fmt: skip
    result, out = run(inner_lab, tmp_path, "--board", "alpha")
    result.assert_outcomes(passed=1)
    results = [json.loads(p.read_text()) for p in (out / "allure").glob("*-result.json")]
    entry = next(r for r in results if r["name"] == "test_update[alpha]")
    names = _steps(entry)
    stages = ["image type 101", "profile of blinky", "upload version 1.1.0"]
    stages += ["associate with blinky", "outcome: SUCCEEDED", "three witnesses agree"]
    assert [n for n in names if n in stages] == stages
    assert any(n.startswith("push to ") for n in names)
    labels = {(lb["name"], lb["value"]) for lb in entry["labels"]}
    assert ("image_version", "type 101 v1.1.0") in labels
    attached = _attachments(entry)
    for name in ("deployment history", "power trace alpha", "handoff timeline alpha"):
        assert name in attached
    # the handoff fixture attaches the whole wire at teardown: Allure keeps it with the fixture
    containers = [json.loads(p.read_text()) for p in (out / "allure").glob("*-container.json")]
    teardowns = [_attachments(after) for c in containers for after in c.get("afters", [])]
    assert any("handoff alpha" in names for names in teardowns)
    record = sidecars(out)["test_update[alpha]"]
    assert [d["state"] for d in record["deployments"]] == ["SUCCEEDED"]
    measured = {m["name"] for m in record["measurements"]}
    assert {"ota_total_s", "handoff_throughput", "idle_current"} <= measured
