"""Device profiles: the JSON/YAML format of docs/ota-api.md and Profile Editor exports.

A profile says what a device type is: its attributes, its MCU interface, and which MCU image
types its firmware can take over the air. Publishing adds the OTA attributes the ASR needs
(1301 info, 1302 transfer, 2000+t version per enabled type t), so a published profile always
says by itself which types it enables.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from rig import safe_yaml
from rig.ota.service.errors import OtaError, describe_validation
from rig.ota.service.export_schema import checked_export
from rig.ota.service.limits import DESCRIPTION_CHARS, NAME_CHARS, Int, IntegerOnly

BAUDS = (4800, 9600, 38400, 115200)
OTA_INFO = 1301
OTA_TRANSFER = 1302
VERSION_BASE = 2000
MCU_TYPES = range(101, 201)
DEFAULT_ATTRIBUTE_SIZE = 253
_MCU_INTERFACE_ATTR = 65021  # export: 1 = SPI, 2 = UART (best effort; absent = UART)
_MCU_UART_CONFIG_ATTR = 65000  # export: byte 1 indexes BAUDS (best effort)


def version_attribute(image_type: int) -> int:
    """The attribute through which a device reports its installed version of `image_type`."""
    return VERSION_BASE + image_type


class Attribute(BaseModel):
    """One attribute of a device type."""

    model_config = ConfigDict(extra="forbid")

    id: Int = Field(ge=1, le=65535)
    name: str = Field("", max_length=NAME_CHARS)
    dataType: str = "BYTES"
    length: Int = Field(1, ge=0, le=65535)
    operations: list[str] = Field(default_factory=lambda: ["READ"])
    value: str | None = None  # default value, as the Profile Editor writes it


class Mcu(BaseModel):
    """The ASR⇆MCU interface: UART with its line settings, or SPI."""

    model_config = ConfigDict(extra="forbid")

    interface: Literal["uart", "spi"] = "uart"
    baud: Int | None = 115200
    parity: Literal["none", "even", "odd"] = "none"
    dataBits: Annotated[Literal[7, 8], IntegerOnly] = 8
    stopBits: Annotated[Literal[1, 2], IntegerOnly] = 1  # not `true`, which Python takes for 1

    @model_validator(mode="after")
    def _baud_fits(self) -> Mcu:
        if self.interface == "uart" and self.baud not in BAUDS:
            raise ValueError(f"UART baud {self.baud} is not one of {', '.join(map(str, BAUDS))}")
        return self


class Profile(BaseModel):
    """A device type's profile, as published to the service."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=NAME_CHARS)
    description: str = Field("", max_length=DESCRIPTION_CHARS)
    mcu: Mcu = Field(default_factory=Mcu)
    otaImageTypes: list[Int] = Field(default_factory=list)
    otaAttributeSize: Int = Field(DEFAULT_ATTRIBUTE_SIZE, ge=5, le=65535)
    attributes: list[Attribute] = Field(default_factory=list)

    @field_validator("otaImageTypes")
    @classmethod
    def _types_in_range(cls, types: list[int]) -> list[int]:
        bad = [t for t in types if t not in MCU_TYPES]
        if bad:
            raise ValueError(f"MCU image types are 101..200; {bad} is outside")
        if len(set(types)) != len(types):
            raise ValueError("an image type is listed twice")
        return sorted(types)

    @model_validator(mode="after")
    def _attributes_consistent(self) -> Profile:
        ids = [a.id for a in self.attributes]
        twice = sorted({i for i in ids if ids.count(i) > 1})
        if twice:
            raise ValueError(f"attribute ids {twice} are defined more than once")
        for attr_id in ids:
            t = attr_id - VERSION_BASE
            if t in MCU_TYPES and t not in self.otaImageTypes:
                raise ValueError(
                    f"attribute {attr_id} is the version attribute of image type {t}, which "
                    f"otaImageTypes does not enable: add {t} to otaImageTypes or drop the attribute"
                )
        return self

    def published_attributes(self) -> list[dict[str, Any]]:
        """The attribute list as published: the profile's own plus the OTA ones it implies."""
        attrs = {a.id: a.model_dump() for a in self.attributes}
        if self.otaImageTypes:
            attrs.setdefault(OTA_INFO, _ota_attr(OTA_INFO, "MCU OTA Info", 46))
            attrs.setdefault(
                OTA_TRANSFER, _ota_attr(OTA_TRANSFER, "MCU OTA Transfer", self.otaAttributeSize)
            )
            for t in self.otaImageTypes:
                vid = version_attribute(t)
                attrs.setdefault(vid, _ota_attr(vid, f"MCU image type {t} version", 8, "SINT64"))
        return [attrs[i] for i in sorted(attrs)]


def _ota_attr(attr_id: int, name: str, length: int, data_type: str = "BYTES") -> dict[str, Any]:
    ops = ["READ", "WRITE", "MCU"] if attr_id in (OTA_INFO, OTA_TRANSFER) else ["READ", "MCU"]
    return Attribute(
        id=attr_id, name=name, dataType=data_type, length=length, operations=ops
    ).model_dump()


def parse_profile(data: Any, source: str = "the profile") -> Profile:
    """Validate profile data; a VALIDATION error names the field and the source."""
    try:
        return Profile.model_validate(data)
    except ValidationError as exc:
        message = describe_validation(list(exc.errors()), part="").replace(
            "invalid request", source, 1
        )
        raise OtaError(400, "VALIDATION", message, "see 'Profile JSON' in docs/ota-api.md") from exc


def _export_mcu(attrs: dict[int, dict[str, Any]]) -> Mcu:
    """The MCU interface from the export's ASR attributes, as far as we can read it."""
    interface = str(attrs.get(_MCU_INTERFACE_ATTR, {}).get("value") or "")
    if interface == "1":
        return Mcu(interface="spi", baud=None)
    config = str(attrs.get(_MCU_UART_CONFIG_ATTR, {}).get("value") or "")
    baud = 115200
    try:
        code = bytes.fromhex(config)[1]
        baud = BAUDS[code] if code < len(BAUDS) else baud
    except (ValueError, IndexError):
        pass
    return Mcu(interface="uart", baud=baud)


def profile_from_export(device_type: dict[str, Any], description: dict[str, Any]) -> Profile:
    """Convert a Profile Editor export (device-type.json + device-description.json).

    Enabled image types are the t in 101..200 whose version attribute 2000+t is present; if any
    is, the OTA attributes 1301 and 1302 must be present too. A wrong shape is refused naming
    its file and JSON path (export_schema.py).
    """
    exported_type, exported = checked_export(device_type, description)
    raw: dict[int, dict[str, Any]] = {}
    for service in exported.services:
        for attr in service.attributes:
            raw[attr.id] = attr.model_dump()
    enabled = sorted(a - VERSION_BASE for a in raw if a - VERSION_BASE in MCU_TYPES)
    missing = [a for a in (OTA_INFO, OTA_TRANSFER) if a not in raw]
    if enabled and missing:
        named = ", ".join(f"{version_attribute(t)} (type {t})" for t in enabled)
        raise OtaError(
            400,
            "VALIDATION",
            f"the export has MCU version attributes {named} but lacks OTA attribute(s) "
            f"{', '.join(map(str, missing))}",
            "turn on 'Firmware OTA Updates' for the MCU in the Profile Editor and export again",
        )
    attributes = [
        {
            "id": a["id"],
            "name": str(a.get("semanticType") or a.get("name") or f"attribute {a['id']}"),
            "dataType": str(a.get("dataType") or "BYTES"),
            "length": a.get("length") or 0,  # validated (and named if wrong) by parse_profile
            "operations": a.get("operations") or [],
            "value": None if a.get("value") is None else str(a["value"]),
        }
        for a in raw.values()
    ]
    transfer = raw.get(OTA_TRANSFER, {}).get("length") or DEFAULT_ATTRIBUTE_SIZE
    data = {
        "name": exported_type.name or "unnamed export",
        "description": exported_type.description or "",
        "mcu": _export_mcu(raw).model_dump(),
        "otaImageTypes": enabled,
        "otaAttributeSize": transfer,
        "attributes": sorted(attributes, key=lambda a: a["id"]),
    }
    return parse_profile(data, "the Profile Editor export")


def load_profile(path: Path | str) -> Profile:
    """A profile from a YAML/JSON file, or from a Profile Editor export folder.

    Every file is read through rig.safe_yaml (size, encoding, nesting and aliases bounded), so
    a wrong or hostile one is a 400 naming its FILE:LINE, never a hang or a traceback."""
    path = Path(path)
    try:
        if path.is_dir():
            device_type = json.loads(safe_yaml.read_text(path / "device-type.json"))
            description = json.loads(safe_yaml.read_text(path / "device-description.json"))
            try:
                return profile_from_export(device_type, description)
            except OtaError as exc:
                raise OtaError(exc.status, exc.rule, f"{path}: {exc.message}", exc.hint) from exc
        data = safe_yaml.load(path)
    except (safe_yaml.YamlFileError, ValueError, RecursionError) as exc:
        what = "nested too deeply" if isinstance(exc, RecursionError) else exc
        where = "" if isinstance(exc, safe_yaml.YamlFileError) else f"{path}: "
        raise OtaError(
            400,
            "VALIDATION",
            f"cannot read profile {where}{what}",
            "give a profile YAML file or a folder with device-type.json and "
            "device-description.json",
        ) from None
    return parse_profile(data, f"profile {path}")
