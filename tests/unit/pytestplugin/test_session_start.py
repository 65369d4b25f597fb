"""Session start and end of the plugin, on inner pytest runs against an emulated board: what the
first test needs starts before it asks, boardless tests leave no record, and the OTA service
outlives the boards' last boot."""

import json

BOARDS = """
ota: {service: local, partner: lab}
boards:
  alpha:
    kind: emulated
    device_type: blinky
    console: {boot_timeout_s: 5}
    power: {off_s: 0.05}
    double: {firmware_version: 1.1.0}
"""


def run(pytester, tmp_path, *args):
    pytester.makefile(".yaml", boards=BOARDS)
    out = tmp_path / "out"
    result = pytester.runpytest(
        "--board", "alpha", "--rig-report-dir", str(out / "rig"),
        "--rig-log-dir", str(out / "logs"), "-p", "no:cacheprovider", *args,
    )  # fmt: skip
    return result, out


def test_the_ota_service_is_stopped_after_the_last_boot(pytester, rig_env, tmp_path):
    """The boards' final boot (and their ASRs, which talk to the service until powered off)
    must find the service still there: no "unreachable" in the console log, a firmware after."""
    pytester.makepyfile(test_o="def test_registered(pipeline, ota_target): pass\n")
    result, out = run(pytester, tmp_path)
    result.assert_outcomes(passed=1)
    console = (out / "logs" / "alpha.console.log").read_text()
    assert "OTA service unreachable" not in console
    assert json.loads((out / "rig" / "boards" / "alpha.json").read_text())["firmware_after"]


def test_the_first_tests_board_and_service_start_before_it_asks(pytester, rig_env, tmp_path):
    pytester.makeconftest("""
        import threading
        seen = []

        def pytest_runtest_setup(item):
            seen.append({t.name for t in threading.enumerate()})

        def pytest_unconfigure(config):
            first = seen[0] if seen else set()
            print("early:", sorted(n for n in first if n.startswith("rig-")))
    """)
    pytester.makepyfile(test_o="def test_registered(pipeline, ota_target): pass\n")
    result, _ = run(pytester, tmp_path, "-s")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["early: *'rig-boot-alpha'*'rig-ota-service'*"])


def test_tests_without_a_board_leave_no_record(pytester, rig_env, tmp_path):
    pytester.makepyfile(
        test_b="""
        def test_plain(): pass
        def test_measured(measure): measure("x", 1.0)
        def test_on_board(board): pass
    """
    )
    result, out = run(pytester, tmp_path)
    result.assert_outcomes(passed=3)
    names = {json.loads(p.read_text())["nodeid"] for p in (out / "rig" / "tests").glob("*.json")}
    assert names == {"test_b.py::test_measured", "test_b.py::test_on_board[alpha]"}
