"""What every part of the boards.yaml schema shares: strict models, names, did-you-mean."""

from __future__ import annotations

import difflib
import functools
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

Name = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")]


class Strict(BaseModel):
    """A boards.yaml section: unknown keys are mistakes, and a loaded inventory never changes."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def did_you_mean(word: Any, choices: Any) -> str:
    short_number = isinstance(word, float) or (isinstance(word, int) and word.bit_length() < 600)
    text = word if isinstance(word, str) else str(word) if short_number else ""
    if not text or len(text) > 200:  # a list, a mapping, a pasted page: not a misspelling
        return ""
    return _closest(text, tuple(str(c) for c in choices))


@functools.lru_cache(maxsize=256)  # a file with thousands of one misspelt key asks thousands times
def _closest(text: str, choices: tuple[str, ...]) -> str:
    close = difflib.get_close_matches(text, choices, n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""
