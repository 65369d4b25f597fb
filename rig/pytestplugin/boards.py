"""Boards in pytest: `--board`, the `board` fixture and its parts, capability markers.

It only composes: the inventory says which boards exist, `rig.lab.setup.Lab` sets them up with
the drivers, and this module maps that onto pytest (options, parametrization, fixtures, xdist
grouping, report header). Board errors reach the user as one message, never a traceback.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from rig import steps
from rig.errors import RigError
from rig.flaky import retry_flaky
from rig.pytestplugin.record import board_param, record_of
from rig.pytestplugin.session import (
    DEFAULT_BOARD,
    RigSession,
    find_session,
    session_of,
    start_session,
)

if TYPE_CHECKING:  # loaded when a test first needs a board
    from rig.lab.board import Board
    from rig.lab.setup import Lab


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("rig", "rig hardware-in-the-loop")
    group.addoption(
        "--board",
        dest="rig_board",
        default=os.environ.get("RIG_BOARD"),
        help=f"board(s) to test: a name, a comma list, all, or tag:T "
        f"(default: $RIG_BOARD, else {DEFAULT_BOARD})",
    )
    group.addoption(
        "--boards-file",
        dest="rig_boards_file",
        default=None,
        help="the lab inventory (default: $RIG_BOARDS_FILE, else the nearest boards.yaml)",
    )
    group.addoption(
        "--lock-timeout",
        dest="rig_lock_timeout",
        type=float,
        default=60.0,
        help="seconds to wait for a board another run holds (default 60)",
    )
    group.addoption(
        "--rig-log-dir",
        dest="rig_log_dir",
        default=None,
        help="where console and double logs go (default: .rig/logs/<run> under the rootdir)",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "requires(*capabilities): skip on boards lacking a capability (e.g. 'tap')"
    )
    start_session(config)


@pytest.hookimpl(tryfirst=True, optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log):
    """Under `-n N` (xdist's default `--dist load`), keep each board's tests on one worker."""
    if config.getoption("dist") != "load":
        return None
    from rig.pytestplugin.scheduling import BoardScheduling

    try:
        session = session_of(config)
        names = session.inventory().select(session.selector)
    except RigError:
        return None  # the usage error is raised where the board is first needed
    return BoardScheduling(config, log, boards=names)


def pytest_unconfigure(config: pytest.Config) -> None:
    session = find_session(config)
    if session is not None:
        session.close()


def pytest_report_header(config: pytest.Config) -> list[str]:
    state = session_of(config)
    try:
        inv = state.inventory()
        names = inv.select(state.selector)
    except RigError as exc:
        return [f"rig: {str(exc).splitlines()[0]}"]
    shown = ", ".join(f"{n} ({inv.boards[n].kind}, {inv.boards[n].device_type})" for n in names)
    return [f"rig: boards {shown} from {inv.path}"]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "board" in metafunc.fixturenames:
        names = session_of(metafunc.config).names()
        metafunc.parametrize("board", names, indirect=True, ids=names, scope="session")


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Stop on a bad --board or inventory; skip tests a board cannot serve, touching none."""
    state = session_of(config)
    if state.problem and any("board" in getattr(i, "fixturenames", ()) for i in items):
        # Raised here, not while collecting, so pytest prints one line and exits 4.
        raise pytest.UsageError(f"rig: {state.problem}")
    for item in items:
        name = board_param(item)
        if name is None:
            continue
        capabilities = state.inventory().boards[name].capabilities
        for mark in item.iter_markers("requires"):
            missing = [cap for cap in mark.args if cap not in capabilities]
            if missing:
                item.add_marker(
                    pytest.mark.skip(reason=f"board {name!r} lacks {', '.join(missing)}")
                )


@pytest.fixture(scope="session")
def rig_session(pytestconfig: pytest.Config) -> RigSession:
    """This run's view of the lab: the inventory and the selected boards."""
    return session_of(pytestconfig)


@pytest.fixture(scope="session")
def rig_lab(pytestconfig: pytest.Config) -> Lab:
    """The boards this process holds (locked, set up lazily, released at the end)."""
    return session_of(pytestconfig).open_lab()


@pytest.fixture(scope="session")
def board(request: pytest.FixtureRequest, rig_session: RigSession, rig_lab: Lab) -> Board:
    """The board under test: `.name`, `.power`, `.console`, `.boot()`.

    Set up once per run and booted once (the firmware it runs before any test, its boot
    time), often before the first test asks (`RigSession.warm_up`); a board that cannot be
    set up or booted is taken out of the run."""
    name = getattr(request, "param", None)
    if name is None:
        pytest.fail("the board fixture is parametrized by rig's --board option", pytrace=False)
    booted = rig_session.first_boot(name)
    for event in booted.events:  # its flaky attempts go to this test's record
        steps.emit(event)
    if booted.problem or booted.board is None:
        pytest.fail(booted.problem or f"board {name!r} did not boot", pytrace=False)
    return booted.board


@pytest.hookimpl(tryfirst=True)
def pytest_collection(session: pytest.Session) -> None:
    """A run that names its board starts it, and the OTA service, while it collects."""
    session_of(session.config).warm_up_early()


@pytest.hookimpl(trylast=True)
def pytest_collection_finish(session: pytest.Session) -> None:
    """Collection says what the first test needs: start it now, side by side."""
    if not session.config.option.collectonly:
        session_of(session.config).warm_up(session.items)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """A board taken out of the run: its remaining tests are skipped, saying why."""
    rig_session = session_of(item.config)
    name, lab = board_param(item), rig_session.lab
    early = name is not None and rig_session.boot_waiting(name)  # its failure is this test's
    reason = lab.broken(name) if name and lab and not early else None
    if reason:
        pytest.skip(f"board {name!r} is out of this run: {reason.splitlines()[0]}")


@pytest.fixture(autouse=True)
def _board_each_test(request: pytest.FixtureRequest) -> Iterator[None]:
    """Per test on a board: recover it if the last test failed, mark the test in its console
    log, and send the board's built-in measurements to this test's record."""
    if "board" not in request.fixturenames:
        yield
        return
    board: Board = request.getfixturevalue("board")
    lab: Lab = request.getfixturevalue("rig_lab")
    record = record_of(request.node)
    record.measurements.limits = dict(board.config.limits)
    record.console_log = board.console.log_path
    if board.console.log_path and board.console.log_path.exists():
        record.console_from = board.console.log_path.stat().st_size
    board.record = record.measurements.record
    problem = None
    if board.name in lab.dirty:  # the last test failed on it: start from a known state
        lab.dirty.discard(board.name)
        board.console.mark("recovering after a failed test: power cycle, expect the banner")
        try:
            retry_flaky(f"recovery boot of {board.name}", board.boot, attempts=2)
        except RigError as exc:
            problem = f"board {board.name!r} is broken: no good boot after a failed test: {exc}"
            lab.mark_broken(board.name, problem)
    if problem:  # outside the except block: one message, no chained traceback
        pytest.fail(problem, pytrace=False)
    board.console.mark(f"test start: {request.node.nodeid}")
    try:
        yield
    finally:
        board.console.mark(f"test end: {request.node.nodeid}")
        record.firmware = board.firmware
        board.record = None


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    """Remember boards whose test failed, so one failure never cascades into the next test."""
    outcome = yield
    report = outcome.get_result()
    name, lab = board_param(item), session_of(item.config).lab
    if name and lab and report.failed and report.when in ("setup", "call"):
        lab.dirty.add(name)


@pytest.fixture
def power(board: Board):
    """The board's power supply driver (on/off/cycle/measure)."""
    return board.power


@pytest.fixture
def console(board: Board):
    """The board's console (expect/expect_exact/sendline)."""
    return board.console
