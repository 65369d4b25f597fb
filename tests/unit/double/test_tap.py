"""The tap's capture records (rig/double/tap.py): formatted directly, they must stay exactly what
json.dumps wrote before, so every reader of a capture file (and old captures) still agrees."""

from __future__ import annotations

import json
import math
import random

import pytest

from rig.double.tap import DIRECTIONS, capture_line, read_capture


def reference(t: object, direction: str, data: bytes) -> str:
    return json.dumps({"t": t, "dir": direction, "hex": data.hex()}) + "\n"


@pytest.mark.parametrize("seed", range(5))
def test_capture_lines_are_byte_for_byte_what_json_dumps_writes(seed: int) -> None:
    rng = random.Random(seed)
    times = [1764200000.123456, 0.0, -0.0, 1e-7, 1e22, 123.0, 2.5e-300, rng.random() * 1e10]
    times += [rng.uniform(0, 2e9) for _ in range(50)]
    for t in times:
        for direction in DIRECTIONS:
            data = bytes(rng.randrange(256) for _ in range(rng.randrange(0, 300)))
            assert capture_line(t, direction, data) == reference(t, direction, data)


@pytest.mark.parametrize("t", [math.nan, math.inf, -math.inf, 5, True])
def test_odd_times_and_directions_fall_back_to_json(t: object) -> None:
    assert capture_line(t, "asr_to_mcu", b"\x32") == reference(t, "asr_to_mcu", b"\x32")  # type: ignore[arg-type]
    assert capture_line(1.5, 'we"ird', b"") == reference(1.5, 'we"ird', b"")


def test_a_capture_file_of_such_lines_reads_back(tmp_path) -> None:
    records = [(1.25, "asr_to_mcu", b"\x32"), (1.5, "mcu_to_asr", bytes(range(256)))]
    path = tmp_path / "capture.jsonl"
    path.write_text("".join(capture_line(t, d, data) for t, d, data in records))
    assert read_capture(path) == records
