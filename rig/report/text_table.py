"""Aligned plain-text tables, as `rig boards`, the measurements attachment and the nightly
summary print them: columns two spaces apart, trailing blanks trimmed."""

from __future__ import annotations

from collections.abc import Collection, Sequence


def render(rows: Sequence[Sequence[str]], right: Collection[int] = ()) -> str:
    """The rows (the first is the header) as lines; columns in `right` are right-aligned."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(
            cell.rjust(width) if i in right else cell.ljust(width)
            for i, (cell, width) in enumerate(zip(row, widths, strict=True))
        ).rstrip()
        for row in rows
    )
