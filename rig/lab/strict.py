"""What every part of the boards.yaml schema shares: strict models, names, did-you-mean."""

from __future__ import annotations

import difflib
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

Name = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")]


class Strict(BaseModel):
    """A boards.yaml section: unknown keys are mistakes, and a loaded inventory never changes."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def did_you_mean(word: str, choices: Any) -> str:
    close = difflib.get_close_matches(str(word), [str(c) for c in choices], n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""
