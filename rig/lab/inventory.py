"""The lab inventory (boards.yaml): the lab as a whole, loading with FILE:LINE errors, selection.

A board and its parts have modules of their own (`board_config`, which assembles `power_config`
and `console_config`; `strict` holds what every part shares), and `validation_messages` words
pydantic's errors; this one adds the `ota:` section, gathers the boards into a lab, loads the
file and finds it, and picks boards for `--board`.

This module is data only. It knows what a board *is* (where its console and supply are, what it
runs); the drivers in `rig.instruments` and the double decide what to do with it.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    Field,
    ValidationError,
)

from rig import safe_yaml
from rig.errors import RigError
from rig.lab.board_config import BoardConfig
from rig.lab.strict import Name, Strict, did_you_mean
from rig.lab.validation_messages import describe, trim_loc
from rig.lab.yaml_source import Problem, YamlSource, dotted

#: Problems a message lists; the rest are counted. A hostile file can hold tens of thousands.
MAX_LISTED = 100


class InventoryError(RigError):
    """boards.yaml is wrong; carries every problem found, each with file and line."""

    def __init__(self, problems: list[Problem] | str) -> None:
        self.problems = [] if isinstance(problems, str) else problems
        super().__init__(problems if isinstance(problems, str) else _listed(problems))


def _listed(problems: list[Problem]) -> str:
    lines = [str(problem) for problem in problems[:MAX_LISTED]]
    if len(problems) > MAX_LISTED:
        lines.append(
            f"… and {len(problems) - MAX_LISTED:,} more problems: fix these and check again"
        )
    return "\n".join(lines)


def _env_name(value: str) -> str:
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", value):
        raise ValueError(
            f"{value!r} is not an environment variable name: use letters, digits and '_', "
            "not starting with a digit"
        )
    return value


EnvName = Annotated[str, AfterValidator(_env_name)]
#: The keys naming the variables of an OAuth sign-in (rig.ota.signin), all four or none.
SIGN_IN_KEYS = ("client_id_env", "client_secret_env", "username_env", "password_env")


class OtaConfig(Strict):
    """Which OTA service the lab uses: the local one, or a remote server, and how rig proves
    who it is there: a bearer token (`token_env`) or an OAuth sign-in (the four `*_env` keys
    of `SIGN_IN_KEYS`). Each names an environment variable; no secret is written here."""

    service: str = "local"
    partner: Name = "lab"
    account: str | None = None
    token_env: EnvName | None = None
    client_id_env: EnvName | None = None
    client_secret_env: EnvName | None = None
    username_env: EnvName | None = None
    password_env: EnvName | None = None

    def problems(self) -> list[tuple[tuple[str, ...], str]]:
        """Mistakes across fields: (field path within `ota`, what is wrong)."""
        given = [key for key in SIGN_IN_KEYS if getattr(self, key)]
        if self.service == "local":
            return [
                ((key,), "the local service rig starts makes its own credentials for each run: "
                 "remove it, or set service: to the URL of the server to sign in to")
                for key in given
            ]  # fmt: skip
        if not re.match(r"^https?://", self.service):
            return [(("service",), f"must be 'local' or an http(s) URL, not {self.service!r}")]
        if given and self.token_env:
            return [(("token_env",), "give either token_env (a bearer token) or the sign-in "
                     f"keys ({', '.join(given)}), not both: remove one")]  # fmt: skip
        if given:
            return [
                ((key,), f"signing in needs all of {', '.join(SIGN_IN_KEYS)}: add {key}, the "
                 "name of the environment variable holding it")
                for key in SIGN_IN_KEYS if key not in given
            ]  # fmt: skip
        if not self.token_env:
            return [
                (
                    ("token_env",),
                    "a remote service needs it: the name of the environment "
                    "variable holding the partner's bearer token (or sign in instead: "
                    f"{', '.join(SIGN_IN_KEYS)})",
                )
            ]
        return []


class Inventory(Strict):
    """The whole boards.yaml."""

    ota: OtaConfig = OtaConfig()
    boards: dict[Name, BoardConfig] = Field(min_length=1)
    path: Path = Path("boards.yaml")  # where it was read from; set by load()

    def resolve(self, relative: str) -> Path:
        """A path written in boards.yaml, taken relative to the file."""
        return (self.path.parent / relative).resolve()

    def select(self, selector: str) -> list[str]:
        """Board names for `--board`: a name, a comma list, `all`, or `tag:T`."""
        return select(self, selector)


def _what(loc: tuple[str | int, ...]) -> str:
    return "board" if len(loc) == 2 and loc[0] == "boards" else "key"


def load(path: str | os.PathLike[str]) -> Inventory:
    """Read and validate boards.yaml; raise InventoryError listing every mistake."""
    file = Path(path)
    shown = str(path)
    try:
        source = YamlSource.read(file, shown)
    except safe_yaml.YamlFileError as exc:
        raise _unreadable(file, exc) from None
    problems = [
        Problem(
            shown,
            again,
            dotted(loc),
            f"duplicate {_what(loc)} '{loc[-1]}' (first defined at line {first})",
        )
        for loc, first, again in source.duplicate_keys()
    ]
    if not isinstance(source.data, dict):
        problems.append(
            Problem(
                shown,
                1,
                "(top level)",
                "expected a mapping with a 'boards:' "
                "section (see the boards.yaml shipped with rig)",
            )
        )
        raise InventoryError(problems)
    try:
        inventory = Inventory.model_validate({**source.data, "path": file.resolve()})
    except ValidationError as exc:
        inventory = None
        for error in exc.errors():
            loc = trim_loc(error["loc"])
            message = describe(error, Inventory)
            problems.append(Problem(shown, source.line_of(loc), dotted(loc), message))
    for loc, message in _consistency(source.data):
        problems.append(Problem(shown, source.line_of(loc), dotted(loc), message))
    if problems or inventory is None:
        raise InventoryError(sorted(problems, key=lambda p: p.line))
    return inventory


def _unreadable(file: Path, exc: safe_yaml.YamlFileError) -> InventoryError:
    """The error for a boards file that could not be read at all, in the inventory's words."""
    if exc.reason == "missing":
        return InventoryError(
            f"{exc.file}: no such file: create it, or pass --boards-file FILE or set "
            "RIG_BOARDS_FILE"
        )
    if exc.line is None:
        inside = file / "boards.yaml"
        hint = (
            f" (this one holds {inside}: pass that)" if file.is_dir() and inside.is_file() else ""
        )
        return InventoryError(f"{exc}{hint}")
    return InventoryError([Problem(exc.file, exc.line, "(yaml)", exc.problem)])


def _consistency(data: dict[str, Any]) -> list[tuple[tuple[str | int, ...], str]]:
    """Cross-field mistakes of every section that is valid on its own, so all are reported."""
    found: list[tuple[tuple[str | int, ...], str]] = []
    sections: list[tuple[tuple[str, ...], type[BoardConfig | OtaConfig], Any]] = [
        (("ota",), OtaConfig, data.get("ota") or {})
    ]
    boards = data.get("boards")
    if isinstance(boards, dict):
        sections += [(("boards", str(n)), BoardConfig, b) for n, b in boards.items()]
    for prefix, model, raw in sections:
        try:
            section = model.model_validate(raw)
        except ValidationError:
            continue  # already reported field by field
        found += [((*prefix, *field), message) for field, message in section.problems()]
    return found


def select(inventory: Inventory, selector: str) -> list[str]:
    """Resolve `--board` against the inventory, with 'did you mean' for typos."""
    names = list(inventory.boards)
    where = f"in {inventory.path}"
    selector = selector.strip()
    if selector == "all":
        return names
    if selector.startswith("tag:"):
        tag = selector[4:]
        if not tag:
            raise InventoryError("--board tag: names no tag: write tag:NAME, e.g. tag:nightly")
        chosen = [n for n, b in inventory.boards.items() if tag in b.tags]
        if not chosen:
            tags = sorted({t for b in inventory.boards.values() for t in b.tags})
            raise InventoryError(
                f"--board {selector}: no board has tag {tag!r} {where}"
                f"{did_you_mean(tag, tags)}; tags in use: {', '.join(tags) or 'none'}"
            )
        return chosen
    chosen = list(dict.fromkeys(n.strip() for n in selector.split(",") if n.strip()))
    if not chosen:
        raise InventoryError("--board is empty: give a board name, a comma list, all or tag:T")
    unknown = [n for n in chosen if n not in inventory.boards]
    if unknown:
        raise InventoryError(
            "\n".join(
                f"--board {n}: no board named {n!r} {where}{did_you_mean(n, names)}; "
                f"boards: {', '.join(names)}"
                for n in unknown
            )
        )
    return chosen


def find_boards_file(explicit: str | None = None, start: Path | None = None) -> Path:
    """The boards file to use: explicit, else $RIG_BOARDS_FILE, else the nearest boards.yaml up."""
    chosen = explicit or os.environ.get("RIG_BOARDS_FILE")
    if chosen:
        return Path(chosen)
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "boards.yaml").is_file():
            return folder / "boards.yaml"
    return here / "boards.yaml"
