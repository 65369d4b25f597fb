"""`rig nightly`: the regression suite across boards, in parallel, into a dated report folder.

A wrong request (unknown board, missing suite, bad --workers or --allure) is one line and exit
code 2 before any board is touched; a broken boards.yaml is reported like `rig boards --check`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rig.nightly.run import NightlyOptions, NightlyUsageError, run_nightly


def cmd_nightly(args: argparse.Namespace) -> int:
    extra = list(args.pytest_args)
    if extra[:1] == ["--"]:  # argparse keeps the separator in a REMAINDER
        extra = extra[1:]
    options = NightlyOptions(
        boards_file=args.boards_file,
        board=args.board,
        workers=args.workers,
        output=Path(args.output),
        suite=Path(args.suite),
        allure=args.allure,
        extra=extra,
    )
    try:
        return run_nightly(options)
    except NightlyUsageError as exc:
        print(f"rig nightly: {exc}", file=sys.stderr)
        return 2


def register(commands: argparse._SubParsersAction) -> None:
    """Add `rig nightly` to the main parser."""
    nightly = commands.add_parser(
        "nightly",
        help="run the regression suite across boards in parallel, with reports",
        description="Run the regression suite across the selected boards (one pytest-xdist "
        "worker per board at a time), write JUnit XML, Allure results and HTML into "
        "OUTPUT/<date_time>/, and print a per-board summary. Exit code 1 when anything failed. "
        "Arguments after -- go to pytest as they are.",
    )
    nightly.add_argument(
        "-f",
        "--boards-file",
        help="boards.yaml to use (default: $RIG_BOARDS_FILE, else the nearest boards.yaml)",
    )
    nightly.add_argument(
        "--board", default="all", help="a name, a comma list, all, or tag:T (default: all)"
    )
    nightly.add_argument(
        "--workers",
        type=int,
        metavar="N",
        help="parallel pytest workers (default: one per board, at most the number of CPUs)",
    )
    nightly.add_argument(
        "--output",
        default="reports",
        metavar="DIR",
        help="where the dated report folders go (default: reports)",
    )
    nightly.add_argument(
        "--suite", default="tests/hil", metavar="PATH", help="the tests to run (default: tests/hil)"
    )
    nightly.add_argument(
        "--allure",
        default="auto",
        metavar="auto|off|PATH",
        help="Allure CLI for the HTML report: auto ($RIG_ALLURE, else allure "
        "on PATH), off, or its path (install: npm install -g allure)",
    )
    nightly.add_argument(
        "pytest_args",
        nargs=argparse.REMAINDER,
        metavar="-- PYTEST_ARGS",
        help="passed on to pytest, e.g. -- -k boots -x",
    )
    nightly.set_defaults(run=cmd_nightly)
