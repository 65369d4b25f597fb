"""boards.yaml `power:`: a bench supply channel, and a supply dialect written in the file."""

from __future__ import annotations

from dataclasses import replace
from typing import Annotated, Any

from pydantic import (
    BeforeValidator,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from rig.instruments.power_dialects import (
    DIALECTS,
    FAMILIES,
    FIELDS,
    PLACEHOLDERS,
    Dialect,
    pattern_problem,
    template_problem,
)
from rig.lab.strict import Strict, did_you_mean


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


class PowerDialectConfig(Strict):
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
                f"unknown base dialect {value!r}{did_you_mean(value, DIALECTS)}; the built-in "
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


def _parse_resource_name(value: str) -> None:
    """pyvisa's own parser, imported when a resource is given: pyvisa (and numpy beneath it)
    costs ~0.1 s, which an inventory of emulated boards, read at every pytest start, never needs."""
    from pyvisa import rname

    rname.parse_resource_name(value)


class PowerConfig(Strict):
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
                _parse_resource_name(value)
            except ValueError as exc:  # pyvisa's InvalidResourceName is one
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
                f"unknown power model {value!r}{did_you_mean(value, DIALECTS)}; the built-in "
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
