"""Which board a test ran on, read from its pytest node id.

rig parametrizes every board test by the board's name, so the name is one part of the id's
`[...]`. The xdist scheduler groups by it and the nightly summary counts by it; neither needs
pytest to read it.
"""

from __future__ import annotations

from collections.abc import Iterable


def board_of(nodeid: str, boards: Iterable[str]) -> str | None:
    """The board a parametrized node id runs on (its id holds the board name as one part)."""
    if not nodeid.endswith("]") or "[" not in nodeid:
        return None
    params = nodeid[nodeid.index("[") + 1 : -1]
    for name in sorted(boards, key=len, reverse=True):
        if (
            params == name
            or params.startswith(f"{name}-")
            or params.endswith(f"-{name}")
            or f"-{name}-" in params
        ):
            return name
    return None
