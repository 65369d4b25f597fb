"""`rig boards` (list, check or probe the inventory) and `rig double` (run the board double)."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from rig.errors import RigError
from rig.lab import inventory
from rig.report import text_table


def _boards_file(args: argparse.Namespace) -> Path:
    return inventory.find_boards_file(args.boards_file)


def cmd_boards(args: argparse.Namespace) -> int:
    """List the inventory, or with --check only validate it."""
    path = _boards_file(args)
    inv = inventory.load(path)
    names = inv.select(args.board) if args.board else list(inv.boards)
    if args.probe or args.boot:
        return _probe(inv, names, boot=args.boot)
    if args.check:
        print(f"{path}: {len(inv.boards)} board(s), no problems")
        return 0
    rows = [("BOARD", "KIND", "DEVICE TYPE", "HOST", "POWER", "CONSOLE", "TAGS")]
    for name in names:
        board = inv.boards[name]
        if board.kind == "emulated":
            power = f"{board.power.model if board.power else 'generic'} (double)"
            console = "(double)"
        else:
            assert board.power is not None
            power = f"{board.power.model} {board.power.resource} ch{board.power.channel}"
            console = f"{board.console.port} @{board.console.baud}"
        tags = ",".join(board.tags) or "-"
        rows.append((name, board.kind, board.device_type, board.host or "-", power, console, tags))
    print(text_table.render(rows))
    return 0


def _probe(inv: inventory.Inventory, names: list[str], *, boot: bool) -> int:
    """One row per board, each part ok, its model or time, or FAIL with why; 1 if any failed."""
    from rig.lab.probe import probe

    log_dir = inv.path.parent / ".rig" / "logs" / time.strftime("probe-%Y%m%d-%H%M%S")
    found = probe(inv, names, boot=boot, log_dir=log_dir)
    booted = ["BOOT s", "FIRMWARE"] if boot else []
    rows = [["BOARD", "KIND", "SUPPLY", "CONSOLE", "TAP", *booted, "NOTE"]]
    for board in found:
        booted = [board.boot.shown, board.firmware] if boot else []
        parts = [board.supply.shown, board.console.shown, board.tap.shown]
        rows.append([board.name, board.kind, *parts, *booted, board.note])
    print(text_table.render(rows, right={5} if boot else ()))
    missing = [board.name for board in found if not board.ok]
    if missing:
        print(f"missing parts on {', '.join(missing)}; logs: {log_dir}")
        return 1
    return 0


def cmd_double(args: argparse.Namespace) -> int:
    """Run the board double for the emulated boards of the inventory until SIGTERM/Ctrl-C."""
    from rig.double.processes import serve_processes, share
    from rig.double.runner import serve
    from rig.lab.double_process import spec_for

    inv = inventory.load(_boards_file(args))
    names = inv.select(args.board) if args.board else [
        n for n, b in inv.boards.items() if b.kind == "emulated"
    ]  # fmt: skip
    real = [n for n in names if inv.boards[n].kind != "emulated"]
    if real:
        raise RigError(f"rig double emulates only boards with kind: emulated; {', '.join(real)} "
                       "are real boards")  # fmt: skip
    if not names:
        raise RigError(f"{inv.path} has no board with kind: emulated")
    if args.stop_on_stdin_eof:
        from rig.lifeline import stop_when_stdin_closes

        stop_when_stdin_closes()
    state = Path(args.state_dir) if args.state_dir else None
    specs = [spec_for(name, inv.boards[name], state) for name in names]
    groups = share(names, args.processes)
    if len(groups) == 1:
        return serve(specs, as_json=args.json)

    def child(group: list[str]) -> list[str]:
        """The same command for a share of the boards, announcing as JSON to the parent."""
        command = [sys.executable, "-m", "rig", "double", "--json", "--boards-file",
                   str(inv.path), "--board", ",".join(group)]  # fmt: skip
        return command + (["--state-dir", str(state)] if state else [])

    return serve_processes(groups, child, as_json=args.json)


def register(commands: argparse._SubParsersAction) -> None:
    """Add `boards` and `double` to the rig command."""

    def with_inventory(sub: argparse.ArgumentParser) -> None:
        sub.add_argument("-f", "--boards-file", help="boards.yaml to use "
                         "(default: $RIG_BOARDS_FILE, else the nearest boards.yaml)")  # fmt: skip
        sub.add_argument("--board", help="a name, a comma list, all, or tag:T")

    boards = commands.add_parser("boards", help="list the lab inventory, or --check it")
    with_inventory(boards)
    boards.add_argument(
        "--check", action="store_true", help="validate only; exit 1 listing every mistake"
    )
    boards.add_argument(
        "--probe", action="store_true",
        help="check each board's parts are there: the supply answers *IDN?, the console and tap "
        "ports open (emulated boards: through a double started for it); exit 1 if any is not",
    )  # fmt: skip
    boards.add_argument(
        "--boot", action="store_true",
        help="with --probe (implied): also power-cycle each board and time its banner",
    )  # fmt: skip
    boards.set_defaults(run=cmd_boards)

    double = commands.add_parser("double", help="emulate the emulated boards (SCPI + console)")
    with_inventory(double)
    double.add_argument("--json", action="store_true",
                        help="print one JSON object per board once ready")  # fmt: skip
    double.add_argument("--state-dir", help="folder for the boards' persistent state (flash)")
    double.add_argument(
        "--processes", type=int, default=1, metavar="N",
        help="share the boards round-robin over N double processes, one per core (default 1: "
        "this process serves them all)",
    )  # fmt: skip
    double.add_argument(  # for launchers (the pytest plugin): see rig/lifeline.py
        "--stop-on-stdin-eof", action="store_true", help=argparse.SUPPRESS
    )
    double.set_defaults(run=cmd_double)
