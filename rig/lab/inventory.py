"""The lab inventory (boards.yaml): schema, loading with FILE:LINE errors, board selection.

This module is data only. It knows what a board *is* (where its console and supply are, what it
runs); the drivers in `rig.instruments` and the double decide what to do with it.
"""

from __future__ import annotations

import difflib
import os
import re
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any, Literal, get_args, get_origin

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pyvisa import rname

from rig.double.catalogue import parse_fault
from rig.double.errors import FaultError
from rig.errors import RigError
from rig.instruments.power_dialects import (
    DIALECTS,
    FAMILIES,
    FIELDS,
    PLACEHOLDERS,
    Dialect,
    pattern_problem,
    template_problem,
)
from rig.lab.yaml_source import Problem, YamlSource, dotted

DEFAULT_BANNER = r"firmware version: (?P<version>\S+)\r?\n"  # to the line end: never half a version
# The double answers `version` with the same line its banner shows; a real board says its own.
DEFAULT_VERSION_COMMAND = "version"
DEFAULT_VERSION_PATTERN = DEFAULT_BANNER
UART_BAUDS = (4800, 9600, 19200, 38400, 57600, 115200, 230400, 460800, 921600)
LINK_BAUDS = (4800, 9600, 38400, 115200)  # what an Afero profile's UART config allows

Name = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")]


class InventoryError(RigError):
    """boards.yaml is wrong; carries every problem found, each with file and line."""

    def __init__(self, problems: list[Problem] | str) -> None:
        self.problems = [] if isinstance(problems, str) else problems
        super().__init__(problems if isinstance(problems, str) else "\n".join(map(str, problems)))


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _one_or_more(value: Any) -> Any:
    """A single command may be written as a string; the dialect takes a list of them."""
    return [value] if isinstance(value, str) else value


def _replies(value: Any) -> Any:
    """Replies are text, but YAML reads unquoted ON/OFF/yes/no as booleans and 1 as a number."""
    if value is None:
        return None
    items = value if isinstance(value, list) else [value]
    if any(isinstance(item, bool) for item in items):
        raise ValueError(
            "write the replies in quotes, e.g. ['1', 'ON']: unquoted, YAML reads ON, OFF, yes "
            "and no as true/false"
        )
    return [str(item) if isinstance(item, int | float) else item for item in items]


Commands = Annotated[list[str] | None, BeforeValidator(_one_or_more)]
Replies = Annotated[list[str] | None, BeforeValidator(_replies)]
_MAY_BE_NULL = ("select", "output_query", "error_query", "idn")


class PowerDialectConfig(_Strict):
    """A supply's dialect written in boards.yaml (`power.dialect`): the fields of
    `rig.instruments.power_dialects.Dialect`. Any field left out is the `base` dialect's, so a
    supply close to a built-in one needs only what differs."""

    base: str = "generic"
    select: str | None = None
    output_on: Commands = None
    output_off: Commands = None
    output_query: Commands = None
    volts: str | None = None
    volts_query: str | None = None
    amps: str | None = None
    amps_query: str | None = None
    measure_volts: str | None = None
    measure_amps: str | None = None
    on_reply: Replies = None
    off_reply: Replies = None
    output_bits: list[int] | None = None
    number: str | None = None
    error_query: str | None = None
    no_error: str | None = None
    idn: str | None = None
    channels: int | None = Field(None, ge=1, le=4)

    @field_validator("base")
    @classmethod
    def _known_base(cls, value: str) -> str:
        if value not in DIALECTS:
            raise ValueError(
                f"unknown base dialect {value!r}{_did_you_mean(value, DIALECTS)}; the built-in "
                f"ones are {', '.join(FAMILIES)} and their models (see README)"
            )
        return value

    @field_validator(*(name for name in FIELDS))
    @classmethod
    def _field_is_usable(cls, value: Any, info: ValidationInfo) -> Any:
        name = str(info.field_name)
        if value is None:
            if name not in _MAY_BE_NULL:
                raise ValueError("may not be empty: leave the line out to keep the base's")
            return value
        if name in PLACEHOLDERS:
            templates = [value] if isinstance(value, str) else value
            if not templates and name in ("output_on", "output_off"):
                raise ValueError("give at least one command")
            problem = next(filter(None, (template_problem(name, t) for t in templates)), None)
        elif name in ("number", "no_error", "idn"):
            problem = pattern_problem(value, group="value" if name == "number" else None)
        else:
            problem = None
        if problem:
            raise ValueError(problem)
        return value

    @model_validator(mode="after")
    def _whole_dialect_is_usable(self) -> PowerDialectConfig:
        self.to_dialect()  # its own checks, e.g. output_bits against channels
        return self

    def to_dialect(self) -> Dialect:
        """The base dialect with the fields written here; ValueError if they do not fit."""
        given = {name: getattr(self, name) for name in self.model_fields_set if name != "base"}
        for name, value in given.items():
            if isinstance(value, list):
                given[name] = tuple(value)
        if given.get("output_query", ()) is None:
            given["output_query"] = ()  # null: this supply cannot say whether it is on
        return replace(DIALECTS[self.base], **given)


class PowerConfig(_Strict):
    """A bench supply channel reached through VISA."""

    resource: str | None = None
    # Before model and channel: their checks depend on it.
    dialect: PowerDialectConfig | None = None  # the commands of a supply with no built-in
    model: str = "generic"
    channel: int = Field(1, ge=1, le=4)
    volts: float = Field(3.3, gt=0, le=60)
    amps: float = Field(0.5, gt=0, le=10)
    off_s: float = Field(1.0, ge=0, le=60)
    visa_library: str = "@py"
    timeout_s: float = Field(2.0, gt=0, le=60)

    @field_validator("resource")
    @classmethod
    def _resource_parses(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                rname.parse_resource_name(value)
            except rname.InvalidResourceName as exc:
                raise ValueError(
                    f"{value!r} is not a VISA resource string "
                    "(e.g. TCPIP0::psu-2.lab::5025::SOCKET or USB0::0x1AB1::0x0E11::SERIAL::INSTR)"
                    f": {str(exc).splitlines()[0]}"
                ) from None
        return value

    @field_validator("model")
    @classmethod
    def _known_model(cls, value: str, info: ValidationInfo) -> str:
        if "dialect" not in info.data:
            return value  # the dialect is wrong, and reported where it is
        if info.data["dialect"] is None and value not in DIALECTS:
            raise ValueError(
                f"unknown power model {value!r}{_did_you_mean(value, DIALECTS)}; the built-in "
                f"dialects are {', '.join(FAMILIES)} and their models (see README), or describe "
                "the supply's commands under power.dialect"
            )
        if info.data["dialect"] is not None and value in DIALECTS:
            raise ValueError(
                f"{value!r} is a built-in dialect, so it cannot name the one under "
                f"power.dialect: call that one something else (e.g. {value}-lab), with "
                f"base: {value} in it to start from the built-in"
            )
        return value

    @field_validator("channel")
    @classmethod
    def _channel_exists(cls, value: int, info: ValidationInfo) -> int:
        model, written = info.data.get("model"), info.data.get("dialect")
        if model is None or "dialect" not in info.data:
            return value  # reported where it is wrong
        dialect = written.to_dialect() if written else DIALECTS[model]
        if value > dialect.channels:
            has = f"channels 1 to {dialect.channels}" if dialect.channels > 1 else "one channel"
            raise ValueError(f"{model} has {has}: there is no channel {value}")
        return value

    @model_validator(mode="after")
    def _dialect_is_named(self) -> PowerConfig:
        if self.dialect is not None and "model" not in self.model_fields_set:
            raise ValueError(
                "power.dialect needs a name: add model: NAME beside it (any name that is not "
                "a built-in one, e.g. bench-psu)"
            )
        return self

    def supply_dialect(self) -> Dialect:
        """What the driver speaks to this supply: the one written here, or the built-in."""
        return self.dialect.to_dialect() if self.dialect else DIALECTS[self.model]


class ConsoleConfig(_Strict):
    """The MCU debug UART (any pyserial URL: device path, socket://, rfc2217://) and the words
    its firmware uses. Tests read and type only these, so a real board with its own wording runs
    the same suite; the defaults are the double's."""

    port: str | None = None
    baud: int = 115200
    banner: str = DEFAULT_BANNER  # a finished boot; a `version` group names the firmware
    boot_timeout_s: float = Field(10.0, gt=0, le=600)
    version_command: str = DEFAULT_VERSION_COMMAND  # typed to ask the running firmware
    version_pattern: str = DEFAULT_VERSION_PATTERN  # its answer, with a `version` group
    reply_timeout_s: float = Field(5.0, gt=0, le=600)  # how long an answer may take

    @field_validator("baud")
    @classmethod
    def _standard_baud(cls, value: int) -> int:
        if value not in UART_BAUDS:
            raise ValueError(
                f"{value} is not a standard baud rate ({', '.join(map(str, UART_BAUDS))})"
            )
        return value

    @field_validator("banner")
    @classmethod
    def _banner_compiles(cls, value: str) -> str:
        _console_pattern("banner", value, group=None)
        return value

    @field_validator("version_pattern")
    @classmethod
    def _version_pattern_has_version(cls, value: str) -> str:
        _console_pattern("version_pattern", value, group="version")
        return value

    @field_validator("version_command")
    @classmethod
    def _one_line_command(cls, value: str) -> str:
        if not value.strip() or any(c in value for c in "\r\n"):
            raise ValueError(
                f"{value!r} must be one non-empty line, e.g. 'version': rig ends it with \\r\\n"
            )
        return value


def _console_pattern(key: str, value: str, group: str | None) -> None:
    """A console pattern must compile, must not match before anything arrived, and must have
    the named group its reader takes the answer from."""
    try:
        compiled = re.compile(value)
    except re.error as exc:
        raise ValueError(f"{key} is not a valid regular expression: {exc}") from None
    if compiled.fullmatch(""):
        raise ValueError(
            f"'{value}' matches empty text, so it would match before the board printed "
            "anything: make it match a line the firmware prints"
        )
    if group is not None and group not in compiled.groupindex:
        raise ValueError(
            f"'{value}' has no (?P<{group}>...) group: wrap the part that is the "
            f"{group} in one, e.g. 'App v(?P<{group}>\\S+)\\r?\\n'"
        )


class TapConfig(_Strict):
    """The two ports of a sniffer on the ASR⇆MCU UART."""

    asr_to_mcu: str
    mcu_to_asr: str
    baud: int = 115200


class AsrConfig(_Strict):
    """The ASR emulated by the double in front of the board's own MCU, with no Afero module:
    `uart` is the MCU's UART (a device, a pyserial URL, or `pty`: the double makes one and
    names it in `rig double --json`); the link's baud is `link.baud`."""

    emulated: Literal[True] = True
    uart: str = Field(min_length=1)


class LinkConfig(_Strict):
    """The ASR⇆MCU UART as the profile configures it."""

    baud: Literal[4800, 9600, 38400, 115200] = 115200
    speed: Literal["fast", "paced"] = "fast"


class DoubleTimeouts(_Strict):
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


class DoubleConfig(_Strict):
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


class LimitConfig(_Strict):
    """The accepted range of one measurement on this board (either side may be open)."""

    low: float | None = None
    high: float | None = None


class BoardConfig(_Strict):
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
        if self.asr is not None:
            caps.add("external_mcu")  # the MCU is real: the emulated MCU's faults do not apply
        return frozenset(caps)


class OtaConfig(_Strict):
    """Which OTA service the lab uses: the local one, or a remote server."""

    service: str = "local"
    partner: Name = "lab"
    account: str | None = None
    token_env: str | None = None

    def problems(self) -> list[tuple[tuple[str, ...], str]]:
        """Mistakes across fields: (field path within `ota`, what is wrong)."""
        if self.service == "local":
            return []
        if not re.match(r"^https?://", self.service):
            return [(("service",), f"must be 'local' or an http(s) URL, not {self.service!r}")]
        if not self.token_env:
            return [
                (
                    ("token_env",),
                    "a remote service needs it: the name of the environment "
                    "variable holding the partner's bearer token",
                )
            ]
        return []


class Inventory(_Strict):
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


def _did_you_mean(word: str, choices: Any) -> str:
    close = difflib.get_close_matches(str(word), [str(c) for c in choices], n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


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
        return f"unknown key '{loc[-1]}'{_did_you_mean(loc[-1], _fields_at(loc[:-1]))}"
    message = error["msg"].removeprefix("Value error, ")
    if kind in ("value_error", "assertion_error"):
        return message
    if kind in _PLAIN:
        return f"expected {_PLAIN[kind]}, got {error['input']!r}"
    if kind == "literal_error":
        choices = re.findall(r"'([^']*)'", str(error.get("ctx", {}).get("expected", "")))
        hint = _did_you_mean(error["input"], choices)
        return f"{error['input']!r} is not one of {', '.join(choices)}{hint}"
    if kind == "too_short" and loc == ("boards",):
        return "no boards: describe at least one board under 'boards:'"
    if kind == "string_pattern_mismatch":
        return f"{error['input']!r} may hold only letters, digits, '_', '.' and '-'"
    return f"{message[0].lower()}{message[1:]}, got {error['input']!r}"


def _trim_loc(loc: tuple[str | int, ...]) -> tuple[str | int, ...]:
    # pydantic puts union branch names ("ConsoleConfig") and "[key]" markers into locations
    return tuple(p for p in loc if not (isinstance(p, str) and (p[:1].isupper() or "[" in p)))


def load(path: str | os.PathLike[str]) -> Inventory:
    """Read and validate boards.yaml; raise InventoryError listing every mistake."""
    file = Path(path)
    shown = str(path)
    if not file.is_file():
        raise InventoryError(
            f"{shown}: no such file: create it, or pass --boards-file FILE or set RIG_BOARDS_FILE"
        )
    try:
        source = YamlSource.read(file)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 1
        what = f"not valid YAML: {exc.problem or exc.context}"
        if exc.context and exc.context_mark and exc.context_mark.line + 1 != line:
            what += f" ({exc.context} that starts at line {exc.context_mark.line + 1})"
        raise InventoryError([Problem(shown, line, "(yaml)", what)]) from None
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
                f"{_did_you_mean(tag, tags)}; tags in use: {', '.join(tags) or 'none'}"
            )
        return chosen
    chosen = list(dict.fromkeys(n.strip() for n in selector.split(",") if n.strip()))
    if not chosen:
        raise InventoryError("--board is empty: give a board name, a comma list, all or tag:T")
    unknown = [n for n in chosen if n not in inventory.boards]
    if unknown:
        raise InventoryError(
            "\n".join(
                f"--board {n}: no board named {n!r} {where}{_did_you_mean(n, names)}; "
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
