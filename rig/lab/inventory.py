"""The lab inventory (boards.yaml): schema, loading with FILE:LINE errors, board selection.

The board's parts have modules of their own (`power_config`, `console_config`; `strict` holds
what every part shares); this one assembles them into a board and a lab and loads the file.

This module is data only. It knows what a board *is* (where its console and supply are, what it
runs); the drivers in `rig.instruments` and the double decide what to do with it.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal, get_args, get_origin

from pydantic import (
    AfterValidator,
    BaseModel,
    Field,
    ValidationError,
)

from rig import safe_yaml
from rig.double.catalogue import parse_fault
from rig.double.errors import FaultError
from rig.errors import RigError
from rig.lab.console_config import (
    ConsoleConfig,
)
from rig.lab.power_config import PowerConfig
from rig.lab.strict import Name, Strict, did_you_mean
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


class TapConfig(Strict):
    """The two ports of a sniffer on the ASR⇆MCU UART."""

    asr_to_mcu: str
    mcu_to_asr: str
    baud: int = 115200


class AsrConfig(Strict):
    """The ASR emulated by the double in front of the board's own MCU, with no Afero module:
    `uart` is the MCU's UART (a device, a pyserial URL, or `pty`: the double makes one and
    names it in `rig double --json`); the link's baud is `link.baud`."""

    emulated: Literal[True] = True
    uart: str = Field(min_length=1)


class LinkConfig(Strict):
    """The ASR⇆MCU UART as the profile configures it."""

    baud: Literal[4800, 9600, 38400, 115200] = 115200
    speed: Literal["fast", "paced"] = "fast"


class DoubleTimeouts(Strict):
    """Seconds each handoff stage may take on the emulated ASR (rig.double.spec.AsrTimeouts).

    A stage that runs out ends the attempt TIMED_OUT(stage); `version` (no version report after
    APPLY) ends it APPLY_FAILED, as DESIGN §3 says."""

    offer: float = Field(5.0, gt=0, le=3600)
    chunk: float = Field(5.0, gt=0, le=3600)
    verify: float = Field(10.0, gt=0, le=3600)
    version: float = Field(10.0, gt=0, le=3600)


def _known_fault(value: dict[str, Any]) -> dict[str, Any]:
    try:
        parse_fault(value)
    except FaultError as exc:
        raise ValueError(str(exc)) from None
    return value


class DoubleConfig(Strict):
    """How the board double behaves for an emulated board."""

    firmware_version: str = "1.0.0"
    min_volts: float = Field(3.0, gt=0)
    idle_amps: float = Field(0.012, ge=0)
    boot_amps: float = Field(0.045, ge=0)
    flash_write_amps: float = Field(0.018, ge=0)
    boot_s: float = Field(0.05, ge=0, le=30)
    timeouts: DoubleTimeouts = DoubleTimeouts()
    # Active from power-on, and what `clear_faults` returns to: [{name: line_noise, rate: 0.05}]
    faults: list[Annotated[dict[str, Any], AfterValidator(_known_fault)]] = []


class LimitConfig(Strict):
    """The accepted range of one measurement on this board (either side may be open)."""

    low: float | None = None
    high: float | None = None


class BoardConfig(Strict):
    """One board of the lab: where its parts are and what it is."""

    kind: Literal["real", "emulated"] = "real"
    host: str | None = None
    device_type: Name
    device_id: str | None = None
    profile: str | None = None
    console: ConsoleConfig = ConsoleConfig()
    tap: TapConfig | None = None
    power: PowerConfig | None = None
    link: LinkConfig = LinkConfig()
    double: DoubleConfig | None = None
    asr: AsrConfig | None = None
    tags: list[Name] = []
    # Limits of measurements on this board, e.g. {boot_time: {high: 2.0}}: they fill in the
    # limits a test's measure() call leaves open, and judge the built-in measurements.
    limits: dict[Name, LimitConfig] = {}

    def problems(self) -> list[tuple[tuple[str, ...], str]]:
        """Mistakes across fields: (field path within the board, what is wrong)."""
        found: list[tuple[tuple[str, ...], str]] = []
        resource = self.power.resource if self.power else None
        if self.kind == "real":
            if self.console.port is None:
                found.append(
                    (
                        ("console", "port"),
                        "required for a real board: a device path, "
                        "socket://host:port or rfc2217://host:port",
                    )
                )
            if resource is None:
                found.append(
                    (
                        ("power", "resource"),
                        "required for a real board, e.g. TCPIP0::psu-2.lab::5025::SOCKET",
                    )
                )
            if self.double is not None:
                found.append((("double",), "only applies to kind: emulated boards"))
            if self.asr is not None:
                why = "an emulated ASR runs in the double: use it on a kind: emulated board"
                found.append((("asr",), why))
        else:
            if self.console.port is not None:
                found.append(
                    (
                        ("console", "port"),
                        "an emulated board's console comes from the double: remove this line",
                    )
                )
            if resource is not None:
                found.append(
                    (
                        ("power", "resource"),
                        "an emulated board's supply comes from the double: remove this line",
                    )
                )
        return found

    @property
    def capabilities(self) -> frozenset[str]:
        """What tests may ask for with @pytest.mark.requires(...)."""
        caps = {"console"}
        if self.power is not None or self.kind == "emulated":
            caps |= {"power", "current"}
        if self.tap is not None or self.kind == "emulated":
            caps.add("tap")
        if self.kind == "emulated":
            caps |= {"emulated", "faults"}
        if self.asr is not None:  # the MCU is real: the double's console and MCU faults are not its
            caps.add("external_mcu")
            caps.discard("console")
        return frozenset(caps)


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


def _model_in(annotation: Any) -> Any:
    """The pydantic model inside `X | None` or `dict[str, X]`, else the annotation itself."""
    for arg in get_args(annotation) if get_origin(annotation) is not None else ():
        if isinstance(arg, type) and issubclass(arg, BaseModel):
            return arg
    return annotation


def _fields_at(loc: tuple[str | int, ...]) -> list[str]:
    """Names allowed at `loc` in the schema, for 'did you mean' on unknown keys."""
    model: Any = Inventory
    for part in loc:
        if get_origin(model) is dict:
            model = _model_in(model)
            continue
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            return []
        field = model.model_fields.get(str(part))
        if field is None:
            return []
        annotation = field.annotation
        model = annotation if get_origin(annotation) is dict else _model_in(annotation)
    if isinstance(model, type) and issubclass(model, BaseModel):
        return [name for name in model.model_fields if name != "path"]
    return []


_PLAIN = {
    "int_parsing": "a whole number",
    "int_type": "a whole number",
    "int_from_float": "a whole number",
    "float_parsing": "a number",
    "float_type": "a number",
    "string_type": "text",
    "bool_parsing": "true or false",
    "list_type": "a list, e.g. [a, b]",
    "dict_type": "a mapping of keys to values",
    "model_type": "a mapping of keys to values",
}


def _describe(error: dict[str, Any]) -> str:
    kind, loc = error["type"], error["loc"]
    if kind == "missing":
        return f"required field '{loc[-1]}' is missing"
    if kind == "extra_forbidden":
        return f"unknown key '{loc[-1]}'{did_you_mean(loc[-1], _fields_at(loc[:-1]))}"
    message = error["msg"].removeprefix("Value error, ")
    if kind in ("value_error", "assertion_error"):
        return message
    if kind in _PLAIN:
        return f"expected {_PLAIN[kind]}, got {safe_yaml.shown(error['input'])}"
    if kind == "literal_error":
        choices = re.findall(r"'([^']*)'", str(error.get("ctx", {}).get("expected", "")))
        hint = did_you_mean(error["input"], choices)
        return f"{safe_yaml.shown(error['input'])} is not one of {', '.join(choices)}{hint}"
    if kind == "too_short" and loc == ("boards",):
        return "no boards: describe at least one board under 'boards:'"
    if kind == "string_pattern_mismatch":
        return f"{safe_yaml.shown(error['input'])} may hold only letters, digits, '_', '.' and '-'"
    return f"{message[0].lower()}{message[1:]}, got {safe_yaml.shown(error['input'])}"


def _trim_loc(loc: tuple[str | int, ...]) -> tuple[str | int, ...]:
    # pydantic puts union branch names ("ConsoleConfig") and "[key]" markers into locations
    return tuple(p for p in loc if not (isinstance(p, str) and (p[:1].isupper() or "[" in p)))


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
            loc = _trim_loc(error["loc"])
            problems.append(Problem(shown, source.line_of(loc), dotted(loc), _describe(error)))
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
