"""Report hooks: measurements, per-test records, Allure labels and attachments, board records.

Loaded by rig.pytestplugin. Every test gets a record (rig.pytestplugin.record) before its first
fixture; the `measure` fixture and the framework's built-in measurements add to it; at the end
of the test its out-of-limit values fail it (all listed), and the record goes to Allure, to
JUnit as properties, and to a JSON sidecar. Per board, `boards/<name>.json` keeps what the
nightly summary shows: firmware before and after the run, boot time, OTA throughput, broken or
not."""

from __future__ import annotations

import json
import os
import socket
import statistics
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import allure
import pytest

from rig import flaky
from rig.lab.board import Board
from rig.lab.inventory import BoardConfig
from rig.pytestplugin.boards import _STATE, run_stamp
from rig.pytestplugin.record import TestRecord, property_of, record_of
from rig.report.measure import Measurement, Measurements

_REPORTS = pytest.StashKey["Reports"]()


class Reports:
    """Where this run's records go, and what it learnt per board."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.boards: dict[str, dict[str, Any]] = {}
        self.throughputs: dict[str, list[float]] = {}

    def board_seen(self, board: Board) -> None:
        """The first test on a board: its identity and the firmware it ran before the run."""
        if board.name not in self.boards:
            self._new(board.name, board.config, firmware=board.firmware, boot=board.last_boot_s)

    def board_lost(self, name: str, config: BoardConfig, reason: str) -> None:
        """A board taken out of the run: its record says why (the summary's note)."""
        if name not in self.boards:
            self._new(name, config)
        self.boards[name]["broken"] = reason.splitlines()[0]
        self.write_board(name)

    def _new(self, name: str, config: BoardConfig, firmware: str | None = None,
             boot: float | None = None) -> None:  # fmt: skip
        self.boards[name] = {
            "board": name,
            "kind": config.kind,
            "device_type": config.device_type,
            "host": config.host or socket.gethostname(),
            "worker": os.environ.get("PYTEST_XDIST_WORKER", "main"),
            "firmware_before": firmware,
            "firmware_after": None,
            "boot_time_s": boot,
            "ota_throughput_Bps": None,
            "broken": None,
        }
        self.write_board(name)

    def measured(self, board: str | None, item: Measurement) -> None:
        if board and item.name == "handoff_throughput" and item.unit == "KiB/s":
            self.throughputs.setdefault(board, []).append(item.value * 1024)

    def write_board(self, name: str) -> None:
        data = self.boards[name]
        if self.throughputs.get(name):
            data["ota_throughput_Bps"] = statistics.median(self.throughputs[name])
        folder = self.folder / "boards"
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / f"{name}.json.tmp"
        tmp.write_text(json.dumps(data, indent=2))
        tmp.replace(folder / f"{name}.json")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.getgroup("rig").addoption(
        "--rig-report-dir",
        dest="rig_report_dir",
        default=None,
        help="where rig writes per-test (tests/*.json) and per-board (boards/*.json) records "
        "(default: .rig/reports/<run> under the rootdir)",
    )


def pytest_configure(config: pytest.Config) -> None:
    chosen = config.getoption("rig_report_dir", None)
    if chosen:
        folder = Path(chosen)
    else:
        folder = Path(str(config.rootpath)) / ".rig" / "reports" / run_stamp()
    config.stash[_REPORTS] = Reports(folder)


@pytest.fixture
def measure(request: pytest.FixtureRequest) -> Measurements:
    """Record a measurement: `measure("boot_current", 41.5, low=10, high=60, unit="mA")`.

    Every value is reported; out-of-limit values fail the test at its end, all listed."""
    return record_of(request.node).measurements


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[object]:
    """Attempts of hardware-flaky steps, in any phase of the test, go to its record."""
    with flaky.recording(record_of(item).attempts.append):
        return (yield)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> Iterator[None]:
    record = record_of(item)
    reports = item.config.stash[_REPORTS]

    def recorded(measurement: Measurement) -> None:
        item.user_properties.append(property_of(measurement))
        allure.dynamic.parameter(measurement.name, measurement.shown, excluded=True)
        reports.measured(record.board, measurement)

    record.measurements.on_record = recorded
    if record.board:
        item.user_properties.append(("board", record.board))
    result = yield
    _label_board(item)
    return result


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    """Run the test, then report its record; out-of-limit measurements fail a passing test."""
    record = record_of(item)
    try:
        result = yield
    finally:
        _attach(record)
    verdict = record.measurements.verdict()
    if verdict:
        pytest.fail(verdict, pytrace=False)
    return result


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[Any]:
    report = yield
    record = record_of(item)
    if report.when == "setup" and not report.passed:
        record.outcome = "skipped" if report.skipped else "error"
    elif report.when == "call":
        record.outcome = report.outcome
    elif report.when == "teardown" and report.failed and record.outcome == "passed":
        record.outcome = "error"
    if not report.passed and record.longrepr is None:
        record.longrepr = _message(report)
    if report.when == "setup" and report.failed and record.board:
        _board_lost(item, record.board)
    if report.when == "teardown":
        for attempt in record.attempts:
            if attempt.error is not None or attempt.number > 1:
                name = f"flaky:{attempt.step}#{attempt.number}"
                item.user_properties.append((name, attempt.error or "ok after retry"))
        report.user_properties = list(item.user_properties)
        record.write(item.config.stash[_REPORTS].folder / "tests")
    return report


def _board_lost(item: pytest.Item, name: str) -> None:
    state = item.config.stash[_STATE]
    reason = state.lab.broken(name) if state.lab else None
    if reason:
        item.config.stash[_REPORTS].board_lost(name, state.inventory().boards[name], reason)


def _message(report: pytest.TestReport) -> str:
    if isinstance(report.longrepr, tuple):  # a skip: (file, line, reason)
        return str(report.longrepr[2])
    return report.longreprtext[-4000:]


def _label_board(item: pytest.Item) -> None:
    """Allure labels a reader filters by: board, device type, the firmware it runs."""
    board = getattr(item, "funcargs", {}).get("board")  # set up by now, unless it failed
    if not isinstance(board, Board):
        return
    item.config.stash[_REPORTS].board_seen(board)
    allure.dynamic.label("board", board.name)
    allure.dynamic.label("device_type", board.config.device_type)
    allure.dynamic.parent_suite(f"board {board.name}")
    if board.config.host:
        allure.dynamic.label("rig_host", board.config.host)
    if board.firmware:
        allure.dynamic.label("firmware", board.firmware)


def _attach(record: TestRecord) -> None:
    """The test's measurements and console slice, attached to its Allure entry."""
    if record.measurements.items:
        allure.attach(record.measurements.table(), name="measurements",
                      attachment_type=allure.attachment_type.TEXT)  # fmt: skip
        allure.attach(json.dumps(record.measurements.as_list(), indent=2), name="measurements",
                      attachment_type=allure.attachment_type.JSON)  # fmt: skip
    console = record.console_slice()
    if console is not None:
        allure.attach(console, name=f"console {record.board}",
                      attachment_type=allure.attachment_type.TEXT)  # fmt: skip


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session) -> None:
    """Per board: boot once more (the firmware it runs after the run, and that it still boots)."""
    reports = session.config.stash.get(_REPORTS, None)
    state = session.config.stash.get(_STATE, None)
    if reports is None or state is None or state.lab is None:
        return
    lab = state.lab
    for name, data in reports.boards.items():
        broken = lab.broken(name)
        board = lab.ready().get(name)  # set up and not broken
        if board is not None:
            try:
                data["firmware_after"] = board.boot()
            except Exception as exc:  # the record says so; the run's verdict is the tests'
                broken = f"no banner at the end of the run: {str(exc).splitlines()[0]}"
        data["broken"] = broken.splitlines()[0] if broken else None
        reports.write_board(name)
