"""What a request may hold, and why: the service's limits (docs/ota-api.md, "Limits").

Two kinds. Body limits (`rig ota serve --max-json-kib`, `--max-image-mib`) are checked while a
body streams in, so nothing over them is ever held in memory or written to disk. Field limits are
fixed: each bounds text a lab types or a script writes, generous for that use, and small enough
that a list answer (up to 500 records a page) stays a few megabytes; before them a 100 KB name or
10,000 tags were stored and then carried by every list. A field over its limit is 422 VALIDATION
naming the field; a body over its limit is 413 TOO_LARGE naming the limit and the option.

Integers in bodies are strict: a JSON `true` is not the number 1, nor `"101"` or `101.0` a type
number (op 13's documented digit strings, routes_partner.AssociationIn, are the one exception).
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BeforeValidator, Field, StrictInt, StringConstraints

DEFAULT_MAX_JSON_BYTES = 1024 * 1024  # 200 times the largest real Profile Editor export (~5 KB)

NAME_CHARS = 256  # image type, image, device type and profile names: one cell of a table
DESCRIPTION_CHARS = 4096  # a paragraph of release notes; real exports' descriptions are ~150
VERSION_CHARS = 128  # semver with pre-release and build metadata: "1.4.0-rc.2+20250101.g1a2b3c4"
TAG_CHARS = 64  # a filter word: "nightly", "release", a board or branch name
TAGS_PER_IMAGE = 50  # what a person can read on one image; a search takes as many at most
ID_CHARS = 128  # device, device type and account ids (auth.ID_PATTERN says the same)
LINK_CHARS = 2048  # a url or SHA-256 given back (`url`, `value`): the usual bound of a URL
NOTE_CHARS = 1024  # a device's progress `reason` and `detail`: one sentence each

Name = Annotated[str, StringConstraints(max_length=NAME_CHARS)]
Description = Annotated[str, StringConstraints(max_length=DESCRIPTION_CHARS)]
Version = Annotated[str, StringConstraints(max_length=VERSION_CHARS)]
Tag = Annotated[str, StringConstraints(max_length=TAG_CHARS)]
Tags = Annotated[list[Tag], Field(max_length=TAGS_PER_IMAGE)]
Id = Annotated[str, StringConstraints(min_length=1, max_length=ID_CHARS)]
Link = Annotated[str, StringConstraints(max_length=LINK_CHARS)]
Note = Annotated[str, StringConstraints(max_length=NOTE_CHARS)]
Int = StrictInt  # a JSON integer only: not true/false, not 1.0, not "1"


def _no_bool(value: Any) -> Any:
    """For Literal numbers, which Python compares equal to True/False (True == 1)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError("should be a JSON integer")
    return value


IntegerOnly = BeforeValidator(_no_bool)
