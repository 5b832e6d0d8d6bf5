"""WADO-URI (PS3.18 9): ``GET /wado?requestType=WADO&studyUID=&seriesUID=&objectUID=``, for
older viewers and report systems that link to one object by query string.

``contentType`` ``application/dicom`` answers the file (``transferSyntax`` picks the syntax,
Explicit VR Little Endian by default, PS3.18 9.1.2.3.2), ``image/jpeg`` (the default) or
``image/png`` a rendered frame (``frameNumber``, ``windowCenter``/``windowWidth``, ``rows``/
``columns``, ``imageQuality``). The object must belong to a study in the caller's scope (else
404); every call writes a ``study.retrieved`` audit record naming the patient.
"""

from __future__ import annotations

from aiohttp import web

from ...viewing import dicomweb_retrieve as wado
from ...viewing.dicomweb_media import EXPLICIT_LE, TRANSCODABLE
from ...viewing.rendering import FrameRef
from ..access import allow
from ..auditing import audit_context, audited, record_before_streaming
from ..errors import ApiError
from ..keys import ORTHANC, RENDER_WORKERS, VIEWING, current_user
from ..middleware import PRIVATE_NO_STORE
from .openapi import documented
from .worklist_routes import WORKLIST_ROLES

routes = web.RouteTableDef()

IMAGES = {"image/jpeg": "jpeg", "image/png": "png"}
DICOM = "application/dicom"


def _required(request: web.Request, name: str) -> str:
    value = request.query.get(name, "").strip()
    if not value:
        raise ApiError(400, "bad_request", f"{name} is required")
    return value


def _content_type(request: web.Request) -> str:
    """The first of the asked-for types served (PS3.18 9.1.2.3.1: a list, in preference)."""
    asked = [
        t.split(";")[0].strip().lower() for t in request.query.get("contentType", "").split(",")
    ]
    for media in asked or ["image/jpeg"]:
        if media in ("", "*/*", "image/*"):
            return "image/jpeg"
        if media == DICOM or media in IMAGES:
            return media
    raise ApiError(
        406, "not_acceptable", "contentType must be application/dicom, image/jpeg or image/png"
    )


def _number(request: web.Request, name: str, default: int, low: int, high: int) -> int:
    text = request.query.get(name)
    if text is None:
        return default
    try:
        value = int(text)
    except ValueError as exc:
        raise ApiError(400, "bad_request", f"{name} must be a whole number") from exc
    if not low <= value <= high:
        raise ApiError(400, "bad_request", f"{name} must be from {low} to {high}")
    return value


@routes.get("/wado")
@allow(*WORKLIST_ROLES)
@audited("study.retrieved", "consultation")
@documented(
    "WADO-URI: one object by its UIDs, as DICOM or a rendered image (PS3.18 9)", errors=(406, 422)
)
async def wado_uri(request: web.Request) -> web.StreamResponse:
    if request.query.get("requestType") != "WADO":
        raise ApiError(400, "bad_request", "requestType must be WADO")
    study, series, sop = (_required(request, n) for n in ("studyUID", "seriesUID", "objectUID"))
    media = _content_type(request)
    user = current_user(request)
    row = await request.app[VIEWING].consultation_for(user, study)
    context = audit_context(request)
    context.touches(row["patient_id"], row["study_instance_uid"], row["id"])
    context.detail |= {"via": "wado-uri", "instance": sop, "content_type": media}
    if media == DICOM:
        return await _file(request, row["orthanc_study_id"], series, sop)
    return await _image(request, study, series, sop, IMAGES[media])


async def _file(
    request: web.Request, orthanc_study_id: str, series: str, sop: str
) -> web.StreamResponse:
    syntax = request.query.get("transferSyntax", EXPLICIT_LE)
    if syntax not in TRANSCODABLE:
        raise ApiError(406, "not_acceptable", f"teleread cannot send transfer syntax {syntax}")
    orthanc = request.app[ORTHANC]
    [instance] = await wado.stored_instances(orthanc, orthanc_study_id, series, sop)
    response = web.StreamResponse(
        headers={"Content-Type": DICOM, "Cache-Control": PRIVATE_NO_STORE}
    )
    if request.method == "HEAD":  # aiohttp would send a HEAD's body: the headers only
        await response.prepare(request)
        await response.write_eof()
        return response
    _, body = await wado.instance_file(orthanc, instance.orthanc_id, syntax)
    await record_before_streaming(request)
    async for chunk in body:
        if not response.prepared:
            await response.prepare(request)
        await response.write(chunk)
    if not response.prepared:
        await response.prepare(request)
    await response.write_eof()
    return response


async def _image(
    request: web.Request, study: str, series: str, sop: str, fmt: str
) -> web.StreamResponse:
    from viewer import RenderOptions, UndecodableFrame, parse_window

    _, entry = await request.app[VIEWING].instance(current_user(request), study, series, sop)
    frame = _number(request, "frameNumber", 1, 1, entry.frames)
    query = request.query
    window = None
    if query.get("windowCenter") and query.get("windowWidth"):
        try:
            window = parse_window(f"{query['windowCenter']},{query['windowWidth']}")
        except ValueError as exc:
            raise ApiError(400, "bad_window", f"windowCenter/windowWidth: {exc}") from exc
    rows = _number(request, "rows", 0, 1, 8192)
    columns = _number(request, "columns", 0, 1, 8192)
    viewport = (columns or rows, rows or columns) if rows or columns else None
    options = RenderOptions(
        window=window,
        format=fmt,
        quality=_number(request, "imageQuality", 90, 1, 100),
        viewport=viewport,
    )
    ref = FrameRef(entry.uid, entry.orthanc_id, frame - 1, entry.frames)
    try:
        body = await request.app[RENDER_WORKERS].render(ref, options)
    except UndecodableFrame as exc:
        raise ApiError(422, "undecodable_image", f"the image cannot be decoded: {exc}") from exc
    return web.Response(
        body=body, headers={"Content-Type": f"image/{fmt}", "Cache-Control": PRIVATE_NO_STORE}
    )
