"""What a nightly run found, per board: counts from JUnit XML, figures from rig's sidecars.

Kept apart from running pytest so the summary can be rebuilt from a report folder alone, and
tested with hand-written files. JUnit XML is the source of truth for pass/fail (any CI reads the
same file); rig's per-board sidecars add what JUnit cannot carry (firmware, OTA, boot time).
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rig.errors import RigError
from rig.lab.nodeids import board_of
from rig.report import text_table

NO_BOARD = "(no board)"
NOTE_WIDTH = 60
COLUMNS = ("BOARD", "PASSED", "FAILED", "SKIPPED", "FIRMWARE", "OTA KiB/s", "BOOT s", "NOTE")
NUMERIC = {"PASSED", "FAILED", "SKIPPED", "OTA KiB/s", "BOOT s"}


class SummaryError(RigError):
    """A report file of the run cannot be read."""


@dataclass
class Counts:
    """Outcomes of one board's tests; `failed` and `errors` both count as FAILED in the table."""

    passed: int = 0
    failed: int = 0
    errors: int = 0
    skipped: int = 0
    first_problem: str | None = field(default=None, compare=False)  # a note when none passed

    @property
    def not_passed(self) -> int:
        return self.failed + self.errors

    def numbers(self) -> dict[str, int]:
        return {"passed": self.passed, "failed": self.failed, "errors": self.errors,
                "skipped": self.skipped}  # fmt: skip

    def add(self, other: Counts) -> None:
        self.passed += other.passed
        self.failed += other.failed
        self.errors += other.errors
        self.skipped += other.skipped


def _board_of_case(case: ET.Element, boards: Iterable[str]) -> str:
    """The plugin's `board` property; else the board id in the `[params]` suffix of the name."""
    prop = case.find("properties/property[@name='board']")
    if prop is not None and prop.get("value"):
        return str(prop.get("value"))
    name = case.get("name", "")
    known = list(boards)
    if known:
        return board_of(name, known) or NO_BOARD
    if name.endswith("]") and "[" in name:
        return name[name.index("[") + 1 : -1]
    return NO_BOARD


def parse_junit(path: Path, boards: Iterable[str] = ()) -> dict[str, Counts]:
    """Counts per board from pytest's JUnit XML; `boards` (inventory names) helps the fallback."""
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError) as exc:
        raise SummaryError(f"cannot read the JUnit XML {path}: {exc}") from None
    known = list(boards)
    found: dict[str, Counts] = {}
    for case in root.iter("testcase"):
        counts = found.setdefault(_board_of_case(case, known), Counts())
        problem = case.find("failure")
        if problem is None:
            problem = case.find("error")
        if problem is not None:
            if problem.tag == "failure":
                counts.failed += 1
            else:
                counts.errors += 1
            said = problem.get("message") or (problem.text or "").strip()
            counts.first_problem = counts.first_problem or said or None
        elif case.find("skipped") is not None:
            counts.skipped += 1
        else:
            counts.passed += 1
    return found


def read_board_records(rigdir: Path) -> dict[str, dict[str, Any]]:
    """rig's sidecars `RIGDIR/boards/<board>.json`; a missing folder is no records, not an error."""
    records: dict[str, dict[str, Any]] = {}
    for file in sorted((rigdir / "boards").glob("*.json")):
        try:
            data = json.loads(file.read_text(encoding="utf-8"))
            if not isinstance(data, dict):
                raise ValueError("not a JSON object")
        except (OSError, ValueError) as exc:
            data = {"note": f"unreadable rig record {file.name}: {exc}"}
        records[str(data.get("board") or file.stem)] = data
    return records


def read_sign_ins(rigdir: Path) -> tuple[int, float]:
    """How often the run's OTA clients signed in, and the seconds it took, over all workers
    (`RIGDIR/ota/signin-<worker>.json`); unreadable files count as nothing."""
    count, seconds = 0, 0.0
    for file in sorted((rigdir / "ota").glob("signin-*.json")):
        try:
            data = json.loads(file.read_text(encoding="utf-8"))
            count += int(data["sign_ins"])
            seconds += float(data["seconds"])
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return count, seconds


def sign_in_text(count: int, seconds: float) -> str:
    if not count:
        return "none (no test signed in to the OTA service)"
    return f"{count} sign-in(s), {seconds * 1000:.0f} ms in all"


def build_rows(
    selected: Iterable[str], counts: Mapping[str, Counts], records: Mapping[str, dict[str, Any]]
) -> list[dict[str, Any]]:
    """One row per board: the selected ones in order, then any others the reports name."""
    names = list(dict.fromkeys([*selected, *counts, *records]))
    names = [n for n in names if n != NO_BOARD] + ([NO_BOARD] if NO_BOARD in counts else [])
    rows = []
    for name in names:
        record = records.get(name, {})
        row: dict[str, Any] = {"board": name, **asdict(counts.get(name, Counts()))}
        for key in (
            "kind",
            "device_type",
            "host",
            "firmware_before",
            "firmware_after",
            "boot_time_s",
            "ota_throughput_Bps",
            "broken",
            "note",
        ):
            row[key] = record.get(key)
        rows.append(row)
    return rows


def _firmware(row: Mapping[str, Any]) -> str:
    before, after = row.get("firmware_before"), row.get("firmware_after")
    if before is None and after is None:
        return "-"
    if after is None or after == before:
        return str(before)
    return f"{before or '-'} → {after}"


def _number(value: Any, scale: float, digits: int) -> str:
    return "-" if not isinstance(value, int | float) else f"{value / scale:.{digits}f}"


def _note(row: Mapping[str, Any]) -> str:
    """Why a board is out (rig's record), else what stopped it when none of its tests passed."""
    text = row.get("broken") or row.get("note")
    if not text and row["passed"] == 0 and row.get("first_problem"):
        text = re.sub(r'^failed on \w+ with "(.*)"$', r"\1", row["first_problem"], flags=re.S)
        text = text.removeprefix("Failed: ")
    name = row["board"]  # the row names the board: do not spend the note's width on it again
    text = " ".join(
        str(text or "-").replace(f"board '{name}' ", "").replace(f"{name}: ", "").split()
    )
    return text if len(text) <= NOTE_WIDTH else text[: NOTE_WIDTH - 1] + "…"


def total(rows: Iterable[Mapping[str, Any]]) -> Counts:
    """The counts of all rows together."""
    sums = Counts()
    for row in rows:
        sums.add(Counts(row["passed"], row["failed"], row["errors"], row["skipped"]))
    return sums


def render_table(rows: list[dict[str, Any]]) -> str:
    """The per-board table with a TOTAL row; numbers right-aligned, '-' where nothing is known."""
    cells = [list(COLUMNS)]
    for row in rows:
        cells.append(
            [
                row["board"],
                str(row["passed"]),
                str(row["failed"] + row["errors"]),
                str(row["skipped"]),
                _firmware(row),
                _number(row.get("ota_throughput_Bps"), 1024, 1),
                _number(row.get("boot_time_s"), 1, 2),
                _note(row),
            ]
        )
    sums = total(rows)
    cells.append(
        ["TOTAL", str(sums.passed), str(sums.not_passed), str(sums.skipped), "", "", "", ""]
    )
    right = [i for i, column in enumerate(COLUMNS) if column in NUMERIC]
    return text_table.render(cells, right)


def render_summary(rows: list[dict[str, Any]], paths: Mapping[str, str]) -> str:
    """The table, then how pytest ended and where each report is (or why it is missing)."""
    width = max(len(label) for label in paths) + 1
    where = [f"{label + ':':<{width}} {value}" for label, value in paths.items()]
    return "\n".join([render_table(rows), "", *where]) + "\n"


def write_summary(
    folder: Path, rows: list[dict[str, Any]], paths: Mapping[str, str], meta: Mapping[str, Any]
) -> str:
    """summary.txt (what the terminal shows) and summary.json (the same, for scripts)."""
    text = render_summary(rows, paths)
    (folder / "summary.txt").write_text(text, encoding="utf-8")
    data = {**meta, "rows": rows, "total": total(rows).numbers(), "paths": dict(paths)}
    (folder / "summary.json").write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    return text
