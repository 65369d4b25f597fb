"""`rig nightly`: its parts on hand-written files, then real runs over three emulated boards."""

from __future__ import annotations

import itertools
import json
import os
import re
import subprocess
import sys
import textwrap
import xml.etree.ElementTree as ET
from datetime import datetime
from pathlib import Path

import pytest

from rig.cli.main import build_parser, main
from rig.nightly.run import (
    NightlyOptions,
    NightlyUsageError,
    build_allure,
    build_command,
    exit_code,
    find_allure,
    make_run_dir,
    plan,
    tee,
    update_latest,
)
from rig.nightly.summary import (
    NO_BOARD,
    Counts,
    SummaryError,
    build_rows,
    parse_junit,
    read_board_records,
    render_table,
)

BOARDS = ("emulated", "emulated-b", "emulated-c")


def junit(tmp_path: Path, cases: str) -> Path:
    path = tmp_path / "junit.xml"
    path.write_text(
        '<?xml version="1.0" encoding="utf-8"?><testsuites>'
        f'<testsuite name="pytest">{textwrap.dedent(cases)}</testsuite></testsuites>'
    )
    return path


def prop(board: str) -> str:
    return f'<properties><property name="board" value="{board}"/></properties>'


# --- parse_junit ---------------------------------------------------------------------------


def test_counts_per_board_from_the_board_property(tmp_path):
    path = junit(
        tmp_path,
        f"""
        <testcase classname="t" name="test_a[x]">{prop("emulated-b")}</testcase>
        <testcase classname="t" name="test_b[x]">{prop("emulated-b")}
          <failure message="boom">trace</failure></testcase>
        <testcase classname="t" name="test_c[x]">{prop("emulated-b")}
          <error message="setup broke">trace</error></testcase>
        <testcase classname="t" name="test_d[x]">{prop("emulated-b")}
          <skipped type="pytest.skip" message="no tap">why</skipped></testcase>
        <testcase classname="t" name="test_a[y]">{prop("emulated")}</testcase>
        """,
    )
    found = parse_junit(path)
    assert found == {
        "emulated-b": Counts(passed=1, failed=1, errors=1, skipped=1),
        "emulated": Counts(passed=1),
    }
    assert found["emulated-b"].not_passed == 2


def test_board_from_the_parametrization_when_the_property_is_missing(tmp_path):
    path = junit(
        tmp_path,
        """
        <testcase classname="t" name="test_a[emulated-b]"/>
        <testcase classname="t" name="test_rate[emulated-b-10]"><failure message="x"/></testcase>
        <testcase classname="t" name="test_rate[20-emulated]"/>
        <testcase classname="t" name="test_plain"/>
        <testcase classname="t" name="test_numbers[10]"/>
        """,
    )
    found = parse_junit(path, BOARDS)
    assert found == {
        "emulated-b": Counts(passed=1, failed=1),
        "emulated": Counts(passed=1),
        NO_BOARD: Counts(passed=2),
    }
    # without the inventory's names, the whole parameter id is taken as the board
    assert parse_junit(path)["emulated-b-10"] == Counts(failed=1)


def test_a_failure_with_a_teardown_error_is_one_failed_test(tmp_path):
    path = junit(
        tmp_path,
        f"""<testcase classname="t" name="test_a">{prop("emulated")}
        <failure message="call"/><error message="teardown"/></testcase>""",
    )
    assert parse_junit(path) == {"emulated": Counts(failed=1)}


def test_several_testsuites_are_all_counted(tmp_path):
    path = tmp_path / "junit.xml"
    path.write_text(
        "<testsuites>"
        f'<testsuite><testcase name="a">{prop("emulated")}</testcase></testsuite>'
        f'<testsuite><testcase name="b">{prop("emulated")}</testcase></testsuite>'
        "</testsuites>"
    )
    assert parse_junit(path) == {"emulated": Counts(passed=2)}


def test_unreadable_junit_is_one_clear_error(tmp_path):
    bad = tmp_path / "junit.xml"
    bad.write_text("<testsuites><testcase")
    with pytest.raises(SummaryError, match=r"cannot read the JUnit XML .*junit\.xml"):
        parse_junit(bad)


# --- board records and the table ----------------------------------------------------------


def test_board_records_are_read_and_missing_ones_are_no_error(tmp_path):
    assert read_board_records(tmp_path / "nothing") == {}
    boards = tmp_path / "rig" / "boards"
    boards.mkdir(parents=True)
    (boards / "emulated.json").write_text(json.dumps({"board": "emulated", "boot_time_s": 0.5}))
    (boards / "emulated-b.json").write_text("{not json")
    records = read_board_records(tmp_path / "rig")
    assert records["emulated"]["boot_time_s"] == 0.5
    assert records["emulated-b"]["note"].startswith("unreadable rig record emulated-b.json")


def test_rows_keep_the_selection_order_and_put_no_board_last():
    counts = {NO_BOARD: Counts(passed=1), "emulated-c": Counts(passed=2), "extra": Counts()}
    rows = build_rows(["emulated-c", "emulated"], counts, {"emulated": {"boot_time_s": 1.0}})
    assert [r["board"] for r in rows] == ["emulated-c", "emulated", "extra", NO_BOARD]
    assert rows[1]["passed"] == 0 and rows[1]["boot_time_s"] == 1.0
    assert rows[0]["firmware_before"] is None


def test_table_shows_counts_firmware_throughput_boot_and_notes():
    records = {
        "emulated": {
            "firmware_before": "1.0.0",
            "firmware_after": "1.2.0",
            "ota_throughput_Bps": 10342.4,
            "boot_time_s": 0.4567,
        },
        "emulated-b": {"firmware_before": "1.0.0", "firmware_after": "1.0.0"},
        "bench-3": {
            "broken": "power supply TCPIP0::127.0.0.1::1::SOCKET refused the "
            "connection: check the supply is on and its address in boards.yaml"
        },
    }
    counts = {
        "emulated": Counts(passed=3, skipped=1),
        "emulated-b": Counts(passed=1, failed=1, errors=1),
        "bench-3": Counts(errors=2),
        NO_BOARD: Counts(passed=1),
    }
    table = render_table(build_rows(["emulated", "emulated-b", "bench-3"], counts, records))
    lines = table.splitlines()
    assert lines[0].split() == [
        "BOARD",
        "PASSED",
        "FAILED",
        "SKIPPED",
        "FIRMWARE",
        "OTA",
        "KiB/s",
        "BOOT",
        "s",
        "NOTE",
    ]
    assert lines[1].split() == [
        "emulated",
        "3",
        "0",
        "1",
        "1.0.0",
        "→",
        "1.2.0",
        "10.1",
        "0.46",
        "-",
    ]
    assert lines[2].split() == ["emulated-b", "1", "2", "0", "1.0.0", "-", "-", "-"]
    assert lines[3].split()[:6] == ["bench-3", "0", "2", "0", "-", "-"]
    assert lines[3].endswith("…") and "power supply TCPIP0" in lines[3]
    assert len(lines[3].split("  ")[-1].strip()) == 60  # the note is cut to 60 characters
    assert lines[4].split() == [
        NO_BOARD.split()[0],
        NO_BOARD.split()[1],
        "1",
        "0",
        "0",
        "-",
        "-",
        "-",
        "-",
    ]
    assert lines[5].split() == ["TOTAL", "5", "4", "1"]
    # columns line up: every row's PASSED ends where the header's does
    end = lines[0].index("PASSED") + len("PASSED")
    assert all(line[end - 1].isdigit() for line in lines[1:])


def test_a_board_that_passed_nothing_shows_what_stopped_it(tmp_path):
    message = (
        "failed on setup with &quot;Failed: board 'bench-3' could not be set up: bench-3: "
        "console /dev/ttyUSB9: cannot open it: it does not exist.&quot;"
    )
    path = junit(
        tmp_path,
        f"""
        <testcase name="test_a[bench-3]"><error message="{message}">trace</error></testcase>
        <testcase name="test_b[bench-3]"><skipped message="out of this run"/></testcase>
        <testcase name="test_a[emulated]"><failure message="AssertionError: 2 != 3"/></testcase>
        <testcase name="test_b[emulated]"/>
        """,
    )
    counts = parse_junit(path, ["bench-3", "emulated"])
    assert counts["bench-3"].first_problem.startswith("failed on setup with")
    rows = build_rows(["bench-3", "emulated"], counts, {})
    lines = render_table(rows).splitlines()
    note = lines[1].split("  ")[-1]
    assert note == "could not be set up: console /dev/ttyUSB9: cannot open it: …"
    assert lines[2].endswith("-")  # one of its tests passed: the failure is in the counts only
    assert json.loads(json.dumps(rows))[0]["first_problem"] == counts["bench-3"].first_problem


# --- command, exit code, folders, Allure ---------------------------------------------------


def test_command_runs_the_suite_with_every_report_option(tmp_path):
    command = build_command(
        Path("tests/hil"),
        "tag:nightly",
        Path("/lab/boards.yaml"),
        3,
        tmp_path,
        ["-k", "boots"],
        python="py",
    )
    assert command[:4] == ["py", "-m", "pytest", "tests/hil"]
    pairs = dict(itertools.pairwise(command))
    given = dict(part.split("=", 1) for part in command if part.startswith("--"))
    assert given["--board"] == "tag:nightly"
    assert given["--boards-file"] == "/lab/boards.yaml"
    assert pairs["-n"] == "3"
    assert given["--junitxml"] == str(tmp_path / "junit.xml")
    assert given["--alluredir"] == str(tmp_path / "allure-results")
    assert given["--rig-log-dir"] == str(tmp_path / "logs")
    assert given["--rig-report-dir"] == str(tmp_path / "rig")
    # the suite is the only word pytest could take for a path (its rootdir comes from it)
    assert [part for part in command[3:] if "/" in part and not part.startswith("-")] == [
        "tests/hil"
    ]
    assert pairs["-p"] == "no:cacheprovider"
    assert command[-2:] == ["-k", "boots"]


def test_one_worker_runs_without_xdist(tmp_path):
    command = build_command(Path("s"), "all", Path("b.yaml"), 1, tmp_path)
    assert "-n" not in command and "no:xdist" not in command


@pytest.mark.parametrize(
    ("pytest_rc", "counts", "expected"),
    [
        (0, {"a": Counts(passed=2)}, 0),
        (0, {"a": Counts(passed=2), "b": Counts(failed=1)}, 1),
        (0, {"a": Counts(errors=1)}, 1),
        (0, {}, 0),
        (1, {"a": Counts(failed=1)}, 1),
        (2, {"a": Counts(passed=1)}, 2),  # interrupted
        (3, {}, 3),
        (4, {}, 4),
        (5, {}, 5),  # no tests collected: a failure too
    ],
)
def test_exit_code(pytest_rc, counts, expected):
    assert exit_code(pytest_rc, counts) == expected


def test_dated_folders_get_a_suffix_when_the_second_is_taken(tmp_path):
    now = datetime(2025, 3, 4, 1, 2, 3)
    out = tmp_path / "reports"
    first, second, third = (make_run_dir(out, now) for _ in range(3))
    assert [f.name for f in (first, second, third)] == [
        "2025-03-04_010203",
        "2025-03-04_010203-2",
        "2025-03-04_010203-3",
    ]
    assert all(f.is_dir() for f in (first, second, third))
    assert update_latest(out, first) and update_latest(out, third)
    assert os.readlink(out / "latest") == third.name
    assert (out / "latest").resolve() == third.resolve()
    assert sorted(p.name for p in out.iterdir()) == [first.name, second.name, third.name, "latest"]


def test_latest_is_best_effort(tmp_path):
    (tmp_path / "latest").mkdir()  # someone made a real folder of that name
    (tmp_path / "latest" / "keep").write_text("x")
    assert update_latest(tmp_path, make_run_dir(tmp_path, datetime.now())) is False
    assert (tmp_path / "latest" / "keep").is_file()


def fake_tool(tmp_path: Path, name: str, script: str) -> Path:
    path = tmp_path / name
    path.write_text(f"#!/bin/sh\n{script}\n")
    path.chmod(0o755)
    return path


def test_allure_is_found_from_rig_allure_then_path(tmp_path):
    tool = fake_tool(tmp_path, "allure", "exit 0")
    assert find_allure("off", {"RIG_ALLURE": str(tool)}) == (None, "not built: --allure off")
    assert find_allure("auto", {"RIG_ALLURE": str(tool), "PATH": ""}) == (str(tool), "")
    assert find_allure("auto", {"PATH": str(tmp_path)}) == (str(tool), "")
    assert find_allure("auto", {"PATH": str(tmp_path / "none")}) == (
        None,
        "not built: allure command not found — npm install -g allure",
    )
    assert find_allure("auto", {"RIG_ALLURE": str(tmp_path / "gone")})[1] == (
        f"not built: RIG_ALLURE={tmp_path / 'gone'} is not an executable"
    )
    assert find_allure(str(tool), {}) == (str(tool), "")
    with pytest.raises(NightlyUsageError, match=r"--allure .*gone: no such executable"):
        find_allure(str(tmp_path / "gone"), {})


def test_a_failing_allure_is_a_warning_with_its_last_words(tmp_path):
    tool = fake_tool(tmp_path, "allure", "echo 'starting'; echo 'Node 16 is too old' >&2; exit 3")
    warning = build_allure(str(tool), tmp_path, tmp_path / "html", "r")
    assert warning == "allure generate failed (exit 3): Node 16 is too old"
    silent = fake_tool(tmp_path, "silent", "exit 0")  # says it worked, wrote nothing
    assert "allure generate failed (exit 0)" in build_allure(str(silent), tmp_path, tmp_path, "r")


def test_tee_streams_to_the_terminal_and_the_log(tmp_path):
    out = tmp_path / "terminal"
    with out.open("wb") as terminal:
        rc = tee(
            [
                sys.executable,
                "-c",
                "import sys; print('out'); print('err', file=sys.stderr);sys.exit(3)",
            ],
            tmp_path / "log",
            os.environ,
            terminal,
        )
    assert rc == 3
    assert (tmp_path / "log").read_bytes() == out.read_bytes()
    assert set(out.read_text().split()) == {"out", "err"}


# --- checking the request ------------------------------------------------------------------

EMULATED = """
  {name}:
    kind: emulated
    device_type: blinky
    power: {{model: {model}, channel: {channel}, off_s: 0.05}}
    double: {{firmware_version: 1.0.0}}
"""

BROKEN = """
  {name}:
    kind: real
    device_type: blinky
    console: {{port: /nonexistent/ttyRIG0, baud: 115200, boot_timeout_s: 2}}
    power: {{resource: "TCPIP0::127.0.0.1::1::SOCKET", timeout_s: 1}}
"""


def lab_yaml(broken: str | None = None) -> str:
    """Three boards shaped like the shipped boards.yaml's emulated ones; `broken` made real."""
    models = ("generic", "rigol-dp832", "generic")
    parts = [
        (BROKEN if name == broken else EMULATED).format(name=name, model=model, channel=i + 1)
        for i, (name, model) in enumerate(zip(BOARDS, models, strict=True))
    ]
    return "boards:" + "".join(parts)


LAB = lab_yaml()


@pytest.fixture
def nightly_dir(tmp_path, monkeypatch):
    for name in ("RIG_BOARD", "RIG_BOARDS_FILE", "RIG_ALLURE"):
        monkeypatch.delenv(name, raising=False)
    (tmp_path / "boards.yaml").write_text(LAB)
    (tmp_path / "suite").mkdir()
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_plan_defaults_to_one_worker_per_board_at_most_the_cpus(nightly_dir, monkeypatch):
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    checked = plan(NightlyOptions(suite=Path("suite")), {})
    assert checked.boards == list(BOARDS) and checked.workers == 2
    checked = plan(NightlyOptions(board="emulated-c", suite=Path("suite")), {})
    assert checked.boards == ["emulated-c"] and checked.workers == 1


def test_bad_board_is_one_line_with_did_you_mean_and_exit_2(nightly_dir, capsys):
    assert main(["nightly", "--board", "emulatd-b", "--suite", "suite"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("rig nightly: --board emulatd-b: no board named 'emulatd-b'")
    assert "(did you mean 'emulated-b'?)" in err and err.count("\n") == 1
    assert not (nightly_dir / "reports").exists()  # nothing started


def test_missing_suite_is_one_line_and_exit_2(nightly_dir, capsys):
    assert main(["nightly"]) == 2
    err = capsys.readouterr().err
    assert err == (
        "rig nightly: no test suite at tests/hil: run from the repository root, "
        "or pass --suite PATH\n"
    )


def test_bad_workers_and_allure_are_usage_errors(nightly_dir, capsys):
    assert main(["nightly", "--suite", "suite", "--workers", "0"]) == 2
    assert main(["nightly", "--suite", "suite", "--allure", str(nightly_dir / "no-allure")]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err[0] == "rig nightly: --workers 0: give 1 or more"
    missing = nightly_dir / "no-allure"
    assert err[1].startswith(f"rig nightly: --allure {missing}: no such executable")


def test_a_broken_inventory_is_reported_like_rig_boards(nightly_dir, capsys):
    (nightly_dir / "boards.yaml").write_text("boards:\n  x: {kind: emulatd, device_type: blinky}\n")
    assert main(["nightly", "--suite", "suite"]) == 1
    assert "boards.yaml:2: boards.x.kind: 'emulatd' is not one of" in capsys.readouterr().err


def test_arguments_after_double_dash_go_to_pytest():
    args = build_parser().parse_args(["nightly", "--board", "all", "--", "-k", "boots", "-x"])
    assert args.pytest_args in (["--", "-k", "boots", "-x"], ["-k", "boots", "-x"])
    assert build_parser().parse_args(["nightly"]).pytest_args == []


# --- real runs ------------------------------------------------------------------------------

SUITE = """
import pytest

def test_boots(board):
    assert board.boot(timeout_s=10)

def test_fails_on_b(board):
    if board.name == "emulated-b":
        raise AssertionError("fails on purpose")

def test_skipped(board):
    pytest.skip("skipped on purpose")

def test_without_board():
    pass

def test_signs_in_to_the_ota_service(ota):
    ota.image_types()  # any call: the client signs in first
"""


def run_rig_nightly(tmp_path: Path, boards_yaml: str, *args: str) -> subprocess.CompletedProcess:
    (tmp_path / "boards.yaml").write_text(boards_yaml)
    (tmp_path / "suite").mkdir(exist_ok=True)
    (tmp_path / "suite" / "test_sample.py").write_text(SUITE)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RIG_", "PYTEST_"))}
    env["RIG_LOCK_DIR"] = str(tmp_path / "locks")
    command = [
        sys.executable,
        "-m",
        "rig.cli.main",
        "nightly",
        "--boards-file",
        "boards.yaml",
        "--suite",
        "suite",
        "--output",
        "out",
        "--allure",
        "off",
        *args,
    ]
    return subprocess.run(
        command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )


def junit_counts(path: Path) -> dict[str, tuple[int, int, int]]:
    """(passed, failed, skipped) per board, read here independently of rig.nightly.summary."""
    found: dict[str, list[int]] = {}
    for case in ET.parse(path).iter("testcase"):
        name = case.get("name", "")
        board = name[name.index("[") + 1 : -1] if name.endswith("]") else NO_BOARD
        slot = found.setdefault(board, [0, 0, 0])
        if case.find("failure") is not None or case.find("error") is not None:
            slot[1] += 1
        elif case.find("skipped") is not None:
            slot[2] += 1
        else:
            slot[0] += 1
    return {board: tuple(counts) for board, counts in found.items()}


def table_counts(summary: str) -> dict[str, tuple[int, int, int]]:
    """(passed, failed, skipped) per row of the printed table."""
    rows = {}
    for line in summary.splitlines():
        match = re.match(r"^(\S+(?: board\))?)\s+(\d+)\s+(\d+)\s+(\d+)", line)
        if match:
            rows[match[1]] = (int(match[2]), int(match[3]), int(match[4]))
    return rows


def allure_workers(results: Path) -> dict[str, set[str]]:
    """Per board, the worker processes (Allure's thread label holds the pid) that ran it."""
    found: dict[str, set[str]] = {}
    for file in results.glob("*-result.json"):
        data = json.loads(file.read_text())
        match = re.search(r"\[(.+)\]$", data["name"])
        if match:
            labels = {label["name"]: label["value"] for label in data["labels"]}
            found.setdefault(match[1], set()).add(labels["thread"].split("-")[0])
    return found


def test_nightly_over_three_boards_on_two_workers(tmp_path):
    done = run_rig_nightly(tmp_path, LAB, "--workers", "2")
    assert done.returncode == 1, done.stdout + done.stderr
    assert done.stdout.startswith(
        "rig nightly: 3 board(s) (emulated, emulated-b, emulated-c) on 2 worker(s)"
    )
    latest = tmp_path / "out" / "latest"
    folder = latest.resolve()
    assert re.fullmatch(r"\d{4}-\d\d-\d\d_\d{6}", folder.name)
    for part in ("junit.xml", "allure-results", "pytest.log", "summary.txt", "summary.json"):
        assert (folder / part).exists(), part
    assert list((folder / "logs").rglob("emulated-b.console.log"))
    assert "2 workers" in (folder / "pytest.log").read_text()  # xdist ran
    assert not (folder / "allure-report").exists()

    expected = junit_counts(folder / "junit.xml")
    assert expected == {
        "emulated": (2, 0, 1),
        "emulated-b": (1, 1, 1),
        "emulated-c": (2, 0, 1),
        NO_BOARD: (2, 0, 0),
    }
    summary = (folder / "summary.txt").read_text()
    assert summary in done.stdout  # what was printed is what was kept
    assert table_counts(summary) == {**expected, "TOTAL": (7, 1, 3)}
    sign_ins = re.search(r"OTA sign-in:\s+(\d+) sign-in\(s\), (\d+) ms in all", summary)
    assert sign_ins and int(sign_ins[1]) >= 1, summary  # the worker that ran the OTA test
    assert "Allure HTML:    not built: --allure off" in summary
    assert "pytest:         exit 1 (some tests failed)" in summary
    data = json.loads((folder / "summary.json").read_text())
    assert data["exit_code"] == 1 and data["workers"] == 2
    assert {r["board"]: (r["passed"], r["failed"], r["skipped"]) for r in data["rows"]} == expected
    assert data["total"] == {"passed": 7, "failed": 1, "errors": 0, "skipped": 3}
    assert data["ota_sign_ins"] == int(sign_ins[1])
    workers = allure_workers(folder / "allure-results")
    assert set(workers) == set(BOARDS) and all(len(pids) == 1 for pids in workers.values())
    print(summary)  # shown with -s: the table a lab engineer sees


def test_a_broken_board_does_not_stop_the_others(tmp_path):
    done = run_rig_nightly(tmp_path, lab_yaml(broken="emulated-b"), "--workers", "2")
    assert done.returncode != 0, done.stdout + done.stderr
    folder = (tmp_path / "out" / "latest").resolve()
    counts = junit_counts(folder / "junit.xml")
    assert counts["emulated"] == (2, 0, 1) and counts["emulated-c"] == (2, 0, 1)
    assert counts["emulated-b"][0] == 0  # nothing passed on the broken board
    first = next(
        case
        for case in ET.parse(folder / "junit.xml").iter("testcase")
        if case.get("name") == "test_boots[emulated-b]"
    )
    outcome = next(e for e in first if e.tag in ("failure", "error", "skipped"))
    assert "emulated-b" in (outcome.get("message", "") + (outcome.text or ""))
    summary = (folder / "summary.txt").read_text()
    assert table_counts(summary)["emulated-b"][0] == 0
    row = next(line for line in summary.splitlines() if line.startswith("emulated-b "))
    assert not row.endswith("  -"), "the broken board's row says why it is out"
    assert summary in done.stdout


def test_sign_ins_are_added_up_over_workers_and_unreadable_files_count_as_nothing(tmp_path):
    from rig.nightly.summary import read_sign_ins, sign_in_text

    folder = tmp_path / "ota"
    folder.mkdir()
    (folder / "signin-gw0.json").write_text('{"sign_ins": 2, "seconds": 0.004}')
    (folder / "signin-gw1.json").write_text('{"sign_ins": 1, "seconds": 0.0015}')
    (folder / "signin-gw2.json").write_text("not json")
    assert read_sign_ins(tmp_path) == (3, pytest.approx(0.0055))
    assert sign_in_text(3, 0.0055) == "3 sign-in(s), 6 ms in all"
    assert sign_in_text(*read_sign_ins(tmp_path / "nowhere")).startswith("none")
