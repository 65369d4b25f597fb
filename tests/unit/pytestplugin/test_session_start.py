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


def test_a_named_board_and_the_service_start_while_the_tests_are_collected(
    pytester, rig_env, tmp_path
):
    """`--board` names what the run wants: its double and the OTA service are under way before
    collection ends (a large suite collects for seconds), not after."""
    pytester.makeconftest("""
        import threading

        def pytest_collection_finish(session):  # before rig's own (trylast)
            names = sorted(t.name for t in threading.enumerate() if t.name.startswith("rig-"))
            print("while collecting:", names)
    """)
    pytester.makepyfile(test_o="def test_registered(pipeline, ota_target): pass\n")
    result, _ = run(pytester, tmp_path, "-s")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["while collecting: *'rig-warm-up'*"])


def test_a_board_started_early_that_no_test_uses_is_given_back_at_once(pytester, rig_env, tmp_path):
    """Its lock must not be held for the whole run: another run may want the board."""
    pytester.makepyfile(
        test_plain="""
        from rig.lab.inventory import load
        from rig.lab.lock import BoardLock
        from rig.lab.setup import lock_key

        def test_the_board_is_free():
            key = lock_key(load("boards.yaml"), "alpha")
            lock = BoardLock(key, board="alpha")
            lock.acquire(0.5)  # raises LockError naming the holder if the run still holds it
            lock.release()
    """
    )
    result, out = run(pytester, tmp_path)
    result.assert_outcomes(passed=1)
    assert (out / "logs" / "alpha.double.log").exists()  # it was started, then given back


def test_no_board_starts_early_under_collect_only(pytester, rig_env, tmp_path):
    pytester.makepyfile(test_o="def test_registered(pipeline, ota_target): pass\n")
    result, out = run(pytester, tmp_path, "--collect-only")
    assert result.ret == 0
    assert not (out / "logs" / "alpha.double.log").exists()


def test_the_ota_services_log_is_beside_the_boards(pytester, rig_env, tmp_path):
    """A post-mortem finds the service's own output with the console and double logs."""
    pytester.makepyfile(test_o="def test_registered(pipeline, ota_target): pass\n")
    result, out = run(pytester, tmp_path)
    result.assert_outcomes(passed=1)
    assert (out / "logs" / "ota-service.log").exists()
    assert (out / "logs" / "alpha.double.log").exists()
