"""xdist scheduling that keeps each board's tests on one worker.

A board is held (locked, its console open) by the worker that first uses it, for that worker's
whole session; tests of one board spread over two workers would have the second wait for the
first. xdist's own `loadgroup` cannot do this under pytest 9 (it rewrites node ids through an
attribute pytest 9 no longer reads), so rig groups by the board id it put into the node id.
"""

from __future__ import annotations

from collections.abc import Iterable

from xdist.scheduler import LoadScopeScheduling

from rig.lab.nodeids import board_of


class BoardScheduling(LoadScopeScheduling):
    """Like `--dist load`, except that all tests of one board form one unit of work."""

    def __init__(self, config, log=None, boards: Iterable[str] = ()) -> None:
        super().__init__(config, log)
        self.boards = list(boards)

    def _split_scope(self, nodeid: str) -> str:
        board = board_of(nodeid, self.boards)
        return f"rig-board:{board}" if board else nodeid
