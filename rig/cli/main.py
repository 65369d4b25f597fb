"""The `rig` command: the parser, built from one module per verb family, and the dispatch.

Every RigError becomes one message on stderr and exit code 1 (or 2 for usage), never a traceback.
"""

from __future__ import annotations

import argparse
import gc
import sys
from collections.abc import Sequence

from rig.cli import image, lab, nightly, ota
from rig.errors import RigError
from rig.lab import inventory


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rig", description="rig: hardware-in-the-loop tests for Afero-style boards"
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    for verbs in (lab, ota, image, nightly):  # each module adds its own verbs
        verbs.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    gc.freeze()  # what start-up loaded stays: later collections need not look at it
    gc.enable()  # `python -m rig` left it off while it loaded (rig/__main__.py)
    try:
        return args.run(args)
    except RigError as exc:
        located = isinstance(exc, inventory.InventoryError) and exc.problems
        print(str(exc) if located else f"rig {args.command}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
