"""The parts of a Profile Editor export rig reads, as a schema checked before any of it is used.

An export is two files: device-type.json (rig reads `name`, `description`) and
device-description.json (rig reads `services[].attributes[]`: `id`, `semanticType` or `name`,
`dataType`, `length`, `operations`, `value`). A wrong shape there (`services: [5]`,
`{"attributes": 5}`) used to reach the converter and end in a 500; now it is refused naming its
JSON path, e.g. `services[0].attributes`. Everything else in an export (module configuration,
timestamps, ids, `defaultValue`) is allowed and not read, so exports of other Profile Editor
versions keep loading.
"""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from rig.ota.service.errors import OtaError, describe_validation
from rig.ota.service.limits import DESCRIPTION_CHARS, NAME_CHARS, Int

_OPEN = ConfigDict(extra="allow")
M = TypeVar("M", bound=BaseModel)


class ExportAttribute(BaseModel):
    """One attribute of a service, as device-description.json holds it."""

    model_config = _OPEN

    id: Int = Field(ge=1, le=65535)
    semanticType: str | None = Field(None, max_length=NAME_CHARS)
    name: str | None = Field(None, max_length=NAME_CHARS)
    dataType: str | None = Field(None, max_length=NAME_CHARS)
    length: Int | None = Field(None, ge=0, le=65535)
    operations: list[str] | None = None
    value: Any = None  # the default value, a string in every real export; kept as its text


class ExportService(BaseModel):
    model_config = _OPEN

    attributes: list[ExportAttribute] = Field(default_factory=list)


class ExportDescription(BaseModel):
    """device-description.json"""

    model_config = _OPEN

    services: list[ExportService]


class ExportDeviceType(BaseModel):
    """device-type.json"""

    model_config = _OPEN

    name: str | None = Field(None, max_length=NAME_CHARS)
    description: str | None = Field(None, max_length=DESCRIPTION_CHARS)


def checked_export(
    device_type: Any, description: Any
) -> tuple[ExportDeviceType, ExportDescription]:
    """Both files of an export, validated; 400 VALIDATION naming the file and JSON path."""
    return (
        _checked(ExportDeviceType, device_type, "device-type.json"),
        _checked(ExportDescription, description, "device-description.json"),
    )


def _checked(model: type[M], data: Any, file: str) -> M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        message = describe_validation(list(exc.errors()), part="").replace(
            "invalid request", f"the Profile Editor export's {file} has the wrong shape", 1
        )
        raise OtaError(
            400,
            "VALIDATION",
            message,
            "export the profile again from the Profile Editor; rig reads services[].attributes[]"
            " (id, semanticType, dataType, length, operations, value) and the type's name",
        ) from exc
