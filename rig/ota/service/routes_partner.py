"""The public partner API, `/v1/ota/partners/{partnerId}` (docs/ota-api.md, "Partner side")."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Path, Query, Request, Response
from pydantic import BaseModel, BeforeValidator, Field, WithJsonSchema
from starlette.concurrency import run_in_threadpool

from rig.ota.service.deps import partner_id, service
from rig.ota.service.domain import OtaService
from rig.ota.service.http_io import StrictJsonRoute, file_response
from rig.ota.service.limits import ID_CHARS, Description, Id, Int, Link, Name, Tags, Version
from rig.ota.service.paging import PageRequest, page_params
from rig.ota.service.pool import parse_tags
from rig.ota.service.uploads import UPLOAD_OPENAPI, receive_upload

router = APIRouter(
    prefix="/v1/ota/partners/{partnerId}", tags=["partner"], route_class=StrictJsonRoute
)
Svc = Depends(service)
Partner = Depends(partner_id)
Page = Depends(page_params)
TypeNo = Annotated[int, Path(ge=0, le=65535, description="image type number (101..200)")]
TYPE_FIELD = {"ge": 0, "le": 65535}
TagsQuery = Query(None, description="only images carrying all of these tags: a,b")


class ImageTypeIn(BaseModel):
    name: Name = Field(min_length=1)
    description: Description = ""
    type: Int | None = Field(None, description="101..200 (R1); omitted: the lowest free number")


class ImageTypeUpdate(BaseModel):
    name: Name | None = Field(None, min_length=1)
    description: Description | None = None
    type: Int | None = Field(None, description="must equal the path's type if given (R2)")
    id: str | None = Field(
        None, max_length=ID_CHARS, description="must equal the type's id if given (R2)"
    )


class Value(BaseModel):
    value: Link


class ImageIn(BaseModel):
    name: Name | None = None
    description: Description | None = None
    type: Int = Field(description="an image type number, 101..200 (R1, R4)")
    version: Version | None = None
    url: Link = Field(description="the url returned by POST /binaries/moveToRepository")
    tags: Tags = Field(default_factory=list)
    associations: dict[Id, list[Id]] | None = None


class ImageUpdate(BaseModel):
    name: Name | None = None
    description: Description | None = None
    version: Version | None = None
    url: Link | None = Field(None, description="a url from POST /binaries/moveToRepository")
    tags: Tags | None = None


MAX_DIGITS = 18  # the longest version number the store keeps (rig.ota.service.store)


def _whole_number(value: object) -> int:
    """A JSON integer, or a string of decimal digits ("101"), as a non-negative int.

    Afero's schema for op 13 quotes `type` and `versionNumber` as strings, so both spellings
    are taken; a boolean (which Python would read as 0 or 1), a float or any other text is not.
    """
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 0:
            raise ValueError("should not be negative")
        if value >= 10**MAX_DIGITS:
            raise ValueError(f"should have at most {MAX_DIGITS} digits")
        return value
    if isinstance(value, str) and value.isascii() and value.isdigit():
        if len(value) > MAX_DIGITS:
            raise ValueError(f"should have at most {MAX_DIGITS} digits")
        return int(value)
    raise ValueError("should be an integer or a string of decimal digits")


def _digits_schema(**bounds: int) -> WithJsonSchema:
    """The OpenAPI schema of such a field: a bounded integer, or digits in a string."""
    return WithJsonSchema(
        {"anyOf": [{"type": "integer", **bounds}, {"type": "string", "pattern": "^[0-9]+$"}]}
    )


class AssociationIn(BaseModel):
    """Op 13's payload: only `type` and `versionNumber` are read (the whole pool record may be
    sent, as Afero advises); each is a JSON integer or a string of digits."""

    type: Annotated[
        int,
        BeforeValidator(_whole_number),
        Field(**TYPE_FIELD),
        _digits_schema(minimum=TYPE_FIELD["ge"], maximum=TYPE_FIELD["le"]),
    ]
    versionNumber: Annotated[
        str, BeforeValidator(lambda v: str(_whole_number(v))), _digits_schema(minimum=0)
    ]


@router.post("/types", status_code=201)
def create_type(body: ImageTypeIn, p: str = Partner, svc: OtaService = Svc) -> dict[str, Any]:
    return svc.create_image_type(p, body.name, body.description, body.type)


@router.get("/types")
def list_types(p: str = Partner, svc: OtaService = Svc) -> list[dict[str, Any]]:
    """Every image type: a bare array (Afero documents no paging for this list)."""
    return svc.list_image_types(p)


@router.get("/types/{type}")
def get_type(type: TypeNo, p: str = Partner, svc: OtaService = Svc) -> dict[str, Any]:
    return svc.get_image_type(p, type)


@router.put("/types/{type}", status_code=204, response_class=Response)
def update_type(
    type: TypeNo, body: ImageTypeUpdate, p: str = Partner, svc: OtaService = Svc
) -> Response:
    """Rename or re-describe an image type; 204 without a body (read it back with GET)."""
    svc.update_image_type(p, type, body.name, body.description, new_type=body.type, new_id=body.id)
    return Response(status_code=204)


@router.post("/binaries", status_code=200, openapi_extra=UPLOAD_OPENAPI)
async def upload_binary(request: Request, p: str = Partner, svc: OtaService = Svc):
    """Stage an image's bytes (octet-stream or multipart `file`); answers its SHA-256."""
    sha, size = await receive_upload(request, svc.blobs)
    return await run_in_threadpool(svc.record_upload, p, sha, size)


@router.post("/binaries/moveToRepository")
def move_to_repository(
    request: Request, body: Value, p: str = Partner, svc: OtaService = Svc
) -> dict[str, str]:
    """Keep staged bytes; answers the binary's absolute URL on this server."""
    path = svc.move_to_repository(p, body.value)["value"]
    return {"value": str(request.base_url).rstrip("/") + path}


@router.get("/binaries/{sha256}", response_class=Response)
def download_binary(
    sha256: str, p: str = Partner, svc: OtaService = Svc, range: str | None = Header(None)
):
    return file_response(svc.binary_file(p, sha256), range, sha256.lower())


@router.post("/pool", status_code=201)
def create_image(body: ImageIn, p: str = Partner, svc: OtaService = Svc) -> dict[str, Any]:
    return svc.create_image(p, **body.model_dump())


@router.get("/pool")
def list_images(
    tags: str | None = TagsQuery,
    type: int | None = Query(None, **TYPE_FIELD),
    deviceTypeId: str | None = None,
    page: PageRequest = Page,
    p: str = Partner,
    svc: OtaService = Svc,
):
    return svc.list_images(p, page, tags=parse_tags(tags), type=type, device_type_id=deviceTypeId)


@router.get("/pool/types/{type}")
def list_images_of_type(
    type: TypeNo,
    tags: str | None = TagsQuery,
    page: PageRequest = Page,
    p: str = Partner,
    svc: OtaService = Svc,
):
    return svc.list_images(p, page, type=type, tags=parse_tags(tags))


@router.get("/pool/types/{type}/versionNumbers/{vn}")
def get_image(type: TypeNo, vn: str, p: str = Partner, svc: OtaService = Svc) -> dict[str, Any]:
    return svc.get_image(p, type, vn)


@router.put("/pool/types/{type}/versionNumbers/{vn}", status_code=204, response_class=Response)
def update_image(
    type: TypeNo, vn: str, body: ImageUpdate, p: str = Partner, svc: OtaService = Svc
) -> Response:
    """Change an image's name, description or tags; 204 without a body."""
    svc.update_image(p, type, vn, **body.model_dump())
    return Response(status_code=204)


@router.get("/pool/types/{type}/versionNumbers/{vn}/associations")
def image_associations(
    type: TypeNo, vn: str, p: str = Partner, svc: OtaService = Svc
) -> list[dict[str, Any]]:
    return svc.image_associations(p, type, vn)


@router.get("/pool/types/{type}/names/{name}/versions/{version}/exists")
def image_exists(
    type: TypeNo,
    name: str,
    version: str,
    excludeFirmwareImageId: str | None = Query(None, description="an image id to leave out"),
    p: str = Partner,
    svc: OtaService = Svc,
) -> dict[str, bool]:
    return svc.image_exists(p, type, name, version, excludeFirmwareImageId)


@router.post("/deviceTypes/{dt}/firmwareImages", status_code=201)
def associate(dt: str, body: AssociationIn, p: str = Partner, svc: OtaService = Svc):
    return svc.associate(p, dt, body.type, body.versionNumber)


@router.get("/deviceTypes/{dt}/firmwareImages")
def associated(
    dt: str,
    tags: str | None = TagsQuery,
    page: PageRequest = Page,
    p: str = Partner,
    svc: OtaService = Svc,
):
    return svc.associated_images(p, dt, page, tags=parse_tags(tags))


@router.get("/deviceTypes/{dt}/firmwareImages/types/{type}")
def associated_of_type(
    dt: str,
    type: TypeNo,
    tags: str | None = TagsQuery,
    page: PageRequest = Page,
    p: str = Partner,
    svc: OtaService = Svc,
):
    return svc.associated_images(p, dt, page, type=type, tags=parse_tags(tags))


@router.get("/deviceTypes/{dt}/firmwareImages/types/{type}/versionNumbers/{vn}")
def associated_image(dt: str, type: TypeNo, vn: str, p: str = Partner, svc: OtaService = Svc):
    return svc.associated_image(p, dt, type, vn)


@router.delete(
    "/deviceTypes/{dt}/firmwareImages/types/{type}/versionNumbers/{vn}",
    status_code=204,
    response_class=Response,
)
def dissociate(dt: str, type: TypeNo, vn: str, p: str = Partner, svc: OtaService = Svc) -> None:
    svc.dissociate(p, dt, type, vn)


@router.put("/deviceTypes/{dt}/firmwareImages/{imageId}/push", status_code=202)
def push(dt: str, imageId: str, body: Value, p: str = Partner, svc: OtaService = Svc):
    """Deploy one image to one device (R8); answers the QUEUED deployment."""
    return svc.push(p, dt, imageId, body.value)


@router.get("/tags")
def tags(p: str = Partner, svc: OtaService = Svc) -> list[str]:
    return svc.tags(p)
