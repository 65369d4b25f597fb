"""Report hooks: measurements, per-test records, Allure labels and attachments, board records.

Loaded by rig.pytestplugin. Every test gets a record (rig.pytestplugin.record) before its first
fixture; the `measure` fixture and the framework's built-in measurements add to it; at the end
of the test its out-of-limit values fail it (all listed), and the record goes to Allure, to
JUnit as properties, and to a JSON sidecar (only for a test that touched a board or left
something of its own: a unit test run next to the lab's leaves no file). Per board,
`boards/<name>.json` keeps what the nightly summary shows: firmware before and after the run,
boot time, OTA throughput, broken or not."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from typing import Any

import allure
import pytest

from rig import steps
from rig.flaky import Attempt
from rig.pytestplugin.record import TestRecord, property_of, record_of
from rig.pytestplugin.session import find_session, session_of
from rig.report.allure_listener import AllureListener
from rig.report.measure import Measurement, Measurements


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.getgroup("rig").addoption(
        "--rig-report-dir",
        dest="rig_report_dir",
        default=None,
        help="where rig writes per-test (tests/*.json) and per-board (boards/*.json) records "
        "(default: .rig/reports/<run> under the rootdir)",
    )


@pytest.fixture
def measure(request: pytest.FixtureRequest) -> Measurements:
    """Record a measurement: `measure("boot_current", 41.5, low=10, high=60, unit="mA")`.

    Every value is reported; out-of-limit values fail the test at its end, all listed."""
    return record_of(request.node).measurements


class TestListener(steps.Listener):
    """What rig emits during one test, into that test's record: flaky attempts, OTA outcomes
    (their measurements, and their pictures when an Allure report is written)."""

    __test__ = False  # not a test class, whatever pytest's name matching thinks

    def __init__(self, record: TestRecord, *, pictures: bool) -> None:
        self.record, self.pictures = record, pictures

    def event(self, event: object) -> None:
        if isinstance(event, Attempt):
            self.record.attempts.append(event)
            return
        pipeline = sys.modules.get("rig.ota.pipeline")  # no outcome before it is loaded
        if pipeline is not None and isinstance(event, pipeline.OtaOutcome):
            from rig.report.ota import report_outcome

            self.record.deployments.append(event.deployment)
            report_outcome(event, self.record.measurements.record, pictures=self.pictures)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[object]:
    """While a test runs (every phase), what rig emits goes to Allure and to its record; an
    inner pytest run inside a test listens for itself, not for the outer test."""
    listener = TestListener(record_of(item), pictures=session_of(item.config).allure)
    with steps.listening(AllureListener(), listener, only=True):
        return (yield)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> Iterator[None]:
    record = record_of(item)
    session = session_of(item.config)

    def recorded(measurement: Measurement) -> None:
        item.user_properties.append(property_of(measurement))
        allure.dynamic.parameter(measurement.name, measurement.shown, excluded=True)
        if record.board:  # per-board figures (the nightly's OTA column)
            session.records.measured(record.board, measurement)

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
        if record.worth_keeping():
            record.write(session_of(item.config).records.folder / "tests")
    return report


def _board_lost(item: pytest.Item, name: str) -> None:
    session = session_of(item.config)
    reason = session.lab.broken(name) if session.lab else None
    if reason:
        session.records.board_lost(name, session.inventory().boards[name], reason)


def _message(report: pytest.TestReport) -> str:
    if isinstance(report.longrepr, tuple):  # a skip: (file, line, reason)
        return str(report.longrepr[2])
    return report.longreprtext[-4000:]


def _label_board(item: pytest.Item) -> None:
    """Allure labels a reader filters by: board, device type, the firmware it runs."""
    board = getattr(item, "funcargs", {}).get("board")  # set up by now, unless it failed
    lab_board = sys.modules.get("rig.lab.board")  # no Board before it is loaded
    if lab_board is None or not isinstance(board, lab_board.Board):
        return
    session_of(item.config).records.board_seen(board)
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
    state = find_session(session.config)
    if state is None or state.lab is None:
        return
    reports, lab = state.records, state.lab
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
