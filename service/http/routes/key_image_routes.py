"""Key images over HTTP (issue 19, 图文报告): the reader marks, lists and unmarks the draft's key
images; anyone who may see a signed version sees its figures (the portal)."""

from __future__ import annotations

from typing import Any, Literal

from aiohttp import web
from pydantic import BaseModel, Field

from ...clock import utc_now
from ...reports import authoring, key_images
from ...reports.acknowledgement import signed_report
from ...storage import key_images as key_image_store
from ...storage import reports as report_store
from ..access import allow
from ..auditing import audit_context, audited
from ..errors import ApiError
from ..keys import DATABASE, ORTHANC, VIEWING, current_user
from ..models import Strict
from ..requests import path_id, read_model
from .openapi import NO_BODY, documented
from .worklist_routes import WORKLIST_ROLES

routes = web.RouteTableDef()

WRITERS = ("specialist", "manager")
UID = r"^[0-9]+(\.[0-9]+)*$"
BASE = r"/api/consultations/{id:\d+}/report"


class Point(Strict):
    x: float = Field(ge=-1e6, le=1e6)
    y: float = Field(ge=-1e6, le=1e6)


class MeasurementBody(Strict):
    type: Literal["length", "angle", "roi"]
    points: list[Point] = Field(min_length=2, max_length=3)
    text: str = Field(default="", max_length=200)


class WindowBody(Strict):
    center: float = Field(ge=-1e7, le=1e7)
    width: float = Field(ge=1, le=1e7)


class ViewBody(Strict):
    """What the viewport showed, in its display pixels (viewer/static/viewport.js)."""

    viewport: tuple[float, float] = Field(description="Canvas width and height")
    window: WindowBody | None = Field(default=None, description="null: the image's own")
    invert: bool = False
    rotation: int = Field(default=0, ge=0, le=3, description="Quarter turns clockwise")
    flip_h: bool = False
    flip_v: bool = False
    scale: float | None = Field(
        default=None, gt=0, le=1000, description="Display pixels per image pixel; null: fit"
    )
    pan_x: float = Field(default=0, ge=-1e6, le=1e6)
    pan_y: float = Field(default=0, ge=-1e6, le=1e6)
    measurements: list[MeasurementBody] = Field(default=[], max_length=50)
    overlays: bool = Field(default=False, description="DICOM overlays (60xx) shown, burnt in")


class KeyImageBody(Strict):
    series_instance_uid: str = Field(max_length=64, pattern=UID)
    sop_instance_uid: str = Field(max_length=64, pattern=UID)
    frame: int = Field(default=1, ge=1, le=100000)
    caption: str = Field(default="", max_length=200)
    view: ViewBody


class KeyImage(BaseModel):
    id: int
    series_instance_uid: str
    sop_instance_uid: str
    frame: int
    caption: str
    view: dict[str, Any]
    marked_at: str
    image: str = Field(description="The key image rendered as it will be printed (PNG)")


class KeyImages(BaseModel):
    consultation_id: int
    items: list[KeyImage]
    max_marked: int = Field(description="At most this many key images per report")
    printed: int = Field(description="The PDF prints the first this many")


class Figure(BaseModel):
    position: int
    caption: str
    label: str
    sha256: str
    image: str


class Figures(BaseModel):
    consultation_id: int
    version: int
    items: list[Figure]


def _image_url(consultation_id: int, mark_id: int) -> str:
    return f"/api/consultations/{consultation_id}/report/key-images/{mark_id}/image"


def _figure_url(consultation_id: int, version: int, position: int) -> str:
    return f"/api/consultations/{consultation_id}/report/versions/{version}/figures/{position}"


def _audit(request: web.Request, row: dict[str, Any]) -> None:
    audit_context(request).touches(row["patient_id"], row["study_instance_uid"], row["id"])


def _not_author(exc: authoring.NotAuthor) -> ApiError:
    """Not the claim holder, signed, awaiting review: the draft's state, 409 as for the draft
    itself (the role was checked by ``allow``: 403 is for rights)."""
    return ApiError(409, exc.code, exc.detail)


async def _list_answer(request: web.Request) -> web.Response:
    try:
        row, marks = await request.app[DATABASE].read(
            key_images.marks_for_reader, path_id(request), current_user(request)
        )
    except authoring.NotAuthor as exc:
        raise _not_author(exc) from exc
    _audit(request, row)
    items = [
        KeyImage(
            **{k: m[k] for k in KeyImage.model_fields if k != "image"},
            image=_image_url(row["id"], m["id"]),
        )
        for m in marks
    ]
    answer = KeyImages(
        consultation_id=row["id"],
        items=items,
        max_marked=key_images.MAX_MARKED,
        printed=key_images.PRINTED,
    )
    return web.json_response(answer.model_dump())


@routes.get(BASE + "/key-images")
@allow(*WRITERS)
@audited("report.key_images", "consultation")
@documented(
    "The draft's key images (readers of the consultation's facility scope)",
    response=KeyImages,
    errors=(403, 404),
)
async def list_key_images(request: web.Request) -> web.Response:
    return await _list_answer(request)


@routes.post(BASE + "/key-images")
@allow(*WRITERS)
@audited("report.key_image_mark", "consultation")
@documented(
    "Mark the image in view as a key image, with the view as seen and a caption (whoever may"
    " write the report now: the claim holder, or the author of a correction)",
    body=KeyImageBody,
    response=KeyImages,
    errors=(400, 403, 404, 409),
    success=(201,),
)
async def post_key_image(request: web.Request) -> web.Response:
    body = await read_model(request, KeyImageBody)
    database, user, now = request.app[DATABASE], current_user(request), utc_now()
    try:
        row = await database.read(key_images.consultation_to_mark, path_id(request), user, now)
        # The instance must be one of this study's (404 otherwise), as the viewer's routes say.
        await request.app[VIEWING].instance(
            user, row["study_instance_uid"], body.series_instance_uid, body.sop_instance_uid
        )
        values = body.model_dump()
        mark = await database.write(key_images.mark, row["id"], user, values, now)
    except authoring.NotAuthor as exc:
        raise _not_author(exc) from exc
    audit_context(request).detail |= {"key_image": mark["id"], "instance": mark["sop_instance_uid"]}
    response = await _list_answer(request)
    response.set_status(201)
    return response


@routes.delete(BASE + r"/key-images/{key:\d+}")
@allow(*WRITERS)
@audited("report.key_image_unmark", "consultation")
@documented(
    "Remove a key image from the draft (whoever may write the report now)",
    body=NO_BODY,
    response=KeyImages,
    errors=(403, 404, 409),
)
async def delete_key_image(request: web.Request) -> web.Response:
    key = path_id(request, "key")
    try:
        await request.app[DATABASE].write(
            key_images.unmark, path_id(request), key, current_user(request), utc_now()
        )
    except authoring.NotAuthor as exc:
        raise _not_author(exc) from exc
    audit_context(request).detail["key_image"] = key
    return await _list_answer(request)


@routes.get(BASE + r"/key-images/{key:\d+}/image")
@allow(*WRITERS)
@audited("report.key_image_view", "consultation")
@documented(
    "A draft's key image rendered as the PDF will print it (smaller): PNG",
    response_media_type="image/png",
    errors=(403, 404),
)
async def key_image_png(request: web.Request) -> web.Response:
    try:
        row, mark = await request.app[DATABASE].read(
            key_images.one_mark_for_reader,
            path_id(request),
            path_id(request, "key"),
            current_user(request),
        )
    except authoring.NotAuthor as exc:
        raise _not_author(exc) from exc
    _audit(request, row)
    png = await key_images.render_one(request.app[ORTHANC], row, mark, key_images.THUMBNAIL_SIDE)
    return web.Response(body=png, content_type="image/png")


def _signed_version(db, consultation_id: int, version: int, user) -> tuple[dict, dict]:
    row, report = signed_report(db, consultation_id, user)
    return row, report_store.version_blobs(db, report["id"], version)


def _figures(db, consultation_id: int, version: int, user) -> tuple[dict, list[dict]]:
    row, blobs = _signed_version(db, consultation_id, version, user)
    return row, key_image_store.figures_of(db, blobs["id"], with_png=False)


def _figure(db, consultation_id: int, version: int, position: int, user) -> tuple[dict, bytes]:
    row, blobs = _signed_version(db, consultation_id, version, user)
    return row, key_image_store.figure_png(db, blobs["id"], position)


@routes.get(BASE + r"/versions/{version:\d+}/figures")
@allow(*WORKLIST_ROLES)
@audited("report.figures", "consultation")
@documented(
    "A signed version's key images (figures) with their captions, as its PDF prints them",
    response=Figures,
    errors=(404,),
)
async def list_figures(request: web.Request) -> web.Response:
    version = path_id(request, "version")
    row, figures = await request.app[DATABASE].read(
        _figures, path_id(request), version, current_user(request)
    )
    _audit(request, row)
    audit_context(request).detail["version"] = version
    items = [
        Figure(
            **{k: f[k] for k in ("position", "caption", "label", "sha256")},
            image=_figure_url(row["id"], version, f["position"]),
        )
        for f in figures
    ]
    answer = Figures(consultation_id=row["id"], version=version, items=items)
    return web.json_response(answer.model_dump())


@routes.get(BASE + r"/versions/{version:\d+}/figures/{position:\d+}")
@allow(*WORKLIST_ROLES)
@audited("report.figure_view", "consultation")
@documented(
    "One figure of a signed version: the PNG its PDF embeds",
    response_media_type="image/png",
    errors=(404,),
)
async def figure_png(request: web.Request) -> web.Response:
    version = path_id(request, "version")
    row, png = await request.app[DATABASE].read(
        _figure, path_id(request), version, path_id(request, "position"), current_user(request)
    )
    _audit(request, row)
    audit_context(request).detail["version"] = version
    return web.Response(body=png, content_type="image/png")
