"""The viewer's HTTP side: manifest, DICOMweb metadata and rendered frames, thumbnails, values.

Every call is authorised (a consultation of the study in the caller's facility scope, else 404),
but only the opening of a study is audited: the manifest writes ``study.viewed``, and a frame or
metadata call writes it only if it is the session's first access to that study, in any of the
processes serving this database (``Viewing.first_access``). Rendered images
are immutable for a given (instance, frame, window, quality, viewport, format): they carry an ETag,
and a matching If-None-Match answers 304 without rendering. No frame, thumbnail, value array or
metadata is left in a browser's cache (``private, no-store``): after logout on a shared computer the
next user must not find another patient's images there. The viewer page keeps what it fetched in
its own bounded in-memory cache (viewer/static/frames.js) instead.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable
from typing import Any, TypeVar

from aiohttp import web

from ...audit import AuditEntry
from ...storage import RecordNotFound
from ...viewing.dicomweb_retrieve import with_bulk_uris
from ...viewing.rendering import FrameRef
from ...viewing.study_metadata import study_metadata
from ...viewing.viewing import InstanceEntry
from ..access import allow
from ..answers import ViewerManifest
from ..auditing import AuditContext, audit_context, audit_entry, audited, not_audited
from ..compression import compressed
from ..errors import ApiError
from ..keys import ORTHANC, PREFETCH, RENDER_WORKERS, VIEWING, current_user
from ..middleware import PRIVATE_NO_STORE
from ..requests import path_id, public_base_url
from .dicomweb_query_routes import dicom_json
from .openapi import documented
from .openapi_schemas import DICOM_JSON, datasets_schema
from .worklist_routes import WORKLIST_ROLES

routes = web.RouteTableDef()
T = TypeVar("T")

ONCE = "authorised on every call; audited once per session and study as study.viewed"
FORMATS = {"image/jpeg": "jpeg", "image/png": "png", "image/webp": "webp"}
CACHE_CONTROL = PRIVATE_NO_STORE
RENDER_VERSION = "1"
THUMBNAIL = (128, 128)
STUDY = "/dicom-web/studies/{study}"
SERIES = STUDY + "/series/{series}"
INSTANCE = SERIES + "/instances/{instance}"
FRAME = INSTANCE + r"/frames/{n:\d+}"
IMAGE_ERRORS = (404, 422)
"""Not in scope or not in the archive; pixels that cannot be decoded."""
RENDER_PARAMETERS = tuple(
    {"name": name, "in": "query", "required": False, "schema": {"type": "string"}, **more}
    for name, more in (
        ("window", {"description": "C,W[,FUNCTION]: window centre and width"}),
        ("quality", {"schema": {"type": "integer", "minimum": 1, "maximum": 100}}),
        ("viewport", {"description": "W,H in pixels, each 1 to 8192"}),
        ("overlays", {"schema": {"type": "boolean"}, "description": "Burn in the overlays"}),
    )
)


@routes.get(r"/api/consultations/{id:\d+}/viewer")
@allow(*WORKLIST_ROLES)
@audited("study.viewed", "consultation")
@documented(
    "The viewer's manifest of a consultation's study (docs/viewer.md)",
    response=ViewerManifest,
    errors=(404,),
)
async def manifest(request: web.Request) -> web.Response:
    user = current_user(request)
    body, index = await request.app[VIEWING].manifest(user, path_id(request))
    audit_context(request).touches(body["study"]["patient"]["id"], index.uid)
    request.app[PREFETCH].study_opened(index)
    return web.json_response(body)


async def _opened(request: web.Request, row: dict[str, Any]) -> None:
    """Audit the session's first access to this study (``study.viewed``), and only that, in
    whichever process serves it first (``Viewing.first_access``)."""

    def entry() -> AuditEntry:
        context = AuditContext(resource_type="consultation", detail={"via": request.path})
        context.touches(row["patient_id"], row["study_instance_uid"], row["id"])
        return audit_entry(request, "study.viewed", context, 200)

    await request.app[VIEWING].first_access(current_user(request), row["study_instance_uid"], entry)


async def _instance(request: web.Request) -> InstanceEntry:
    return (await _instance_of(request))[1]


async def _instance_of(request: web.Request) -> tuple[dict[str, Any], InstanceEntry]:
    """The consultation and the image a request names (404 unless both are in scope)."""
    info = request.match_info
    row, entry = await request.app[VIEWING].instance(
        current_user(request), info["study"], info["series"], info["instance"]
    )
    await _opened(request, row)
    return row, entry


def _frame_index(request: web.Request, entry: InstanceEntry) -> int:
    number = path_id(request, "n") if "n" in request.match_info else 1
    if not 1 <= number <= entry.frames:
        raise RecordNotFound(f"frame {number} of {entry.uid}")
    return number - 1


# --- metadata (proxied from Orthanc's DICOMweb plugin) ------------------------------------------

METADATA = {
    "response": datasets_schema(),
    "response_media_type": DICOM_JSON,
    "errors": (404,),
}


async def _metadata(
    request: web.Request,
    row: dict[str, Any],
    series: str | None = None,
    instance: str | None = None,
) -> web.Response:
    """The metadata of the consultation's own Orthanc study (never a look-up by UID alone:
    the same UID may name a second, quarantined study of another Patient ID), its bulk data
    URIs pointing at teleread (dicomweb_retrieve_routes), answered as application/dicom+json
    exactly."""
    data = await study_metadata(
        request.app[ORTHANC], row["orthanc_study_id"], row["study_instance_uid"], series, instance
    )
    base = f"{public_base_url(request)}/dicom-web"
    return dicom_json(with_bulk_uris(data, base))


@routes.get(STUDY + "/metadata")
@allow(*WORKLIST_ROLES)
@not_audited(ONCE)
@documented("WADO-RS metadata of a study (PS3.18 10.4.1.1.2)", **METADATA)
async def study_metadata_route(request: web.Request) -> web.Response:
    study = request.match_info["study"]
    row = await request.app[VIEWING].consultation_for(current_user(request), study)
    await _opened(request, row)
    return await _metadata(request, row)


@routes.get(SERIES + "/metadata")
@allow(*WORKLIST_ROLES)
@not_audited(ONCE)
@documented("WADO-RS metadata of a series", **METADATA)
async def series_metadata(request: web.Request) -> web.Response:
    study, series = request.match_info["study"], request.match_info["series"]
    viewing = request.app[VIEWING]
    row, index = await viewing.study(current_user(request), study)
    viewing.series(index, series)
    await _opened(request, row)
    return await _metadata(request, row, series)


@routes.get(INSTANCE + "/metadata")
@allow(*WORKLIST_ROLES)
@not_audited(ONCE)
@documented("WADO-RS metadata of an instance", **METADATA)
async def instance_metadata(request: web.Request) -> web.Response:
    row, _ = await _instance_of(request)
    info = request.match_info
    return await _metadata(request, row, info["series"], info["instance"])


# --- rendered frames and thumbnails -------------------------------------------------------------


def _format(request: web.Request) -> str:
    """The first of the client's accepted types we render (default JPEG)."""
    for part in request.headers.get("Accept", "").split(","):
        media = part.split(";")[0].strip().lower()
        if media in FORMATS:
            return FORMATS[media]
    return "jpeg"


def _number_pair(text: str, name: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.split(","))
    except ValueError as exc:
        raise ApiError(400, "bad_request", f"{name} must be W,H in pixels") from exc
    if not (0 < w <= 8192 and 0 < h <= 8192):
        raise ApiError(400, "bad_request", f"{name} must be between 1 and 8192 pixels")
    return w, h


def _options(request: web.Request, fmt: str) -> tuple[Any, str]:
    """RenderOptions from ``window``, ``quality`` and ``viewport``, and the render's ETag."""
    from viewer import RenderOptions, parse_window

    query = request.query
    window = None
    if query.get("window"):
        try:
            window = parse_window(query["window"])
        except ValueError as exc:
            raise ApiError(400, "bad_window", f"window must be C,W[,FUNCTION]: {exc}") from exc
    try:
        quality = int(query.get("quality", "90"))
    except ValueError as exc:
        raise ApiError(400, "bad_request", "quality must be a number from 1 to 100") from exc
    if not 1 <= quality <= 100:
        raise ApiError(400, "bad_request", "quality must be a number from 1 to 100")
    viewport = _number_pair(query["viewport"], "viewport") if query.get("viewport") else None
    overlays = query.get("overlays", "").lower()
    if overlays not in ("", "0", "1", "false", "true"):
        raise ApiError(400, "bad_request", "overlays must be true or false")
    burn_in = overlays in ("1", "true")
    options = RenderOptions(
        window=window, format=fmt, quality=quality, viewport=viewport, overlays=burn_in
    )
    return options, repr((RENDER_VERSION, window, fmt, quality, viewport, burn_in))


async def _rendered(
    request: web.Request, entry: InstanceEntry, index0: int, options: Any, variant: str
) -> web.StreamResponse:
    digest = hashlib.sha256(f"{entry.uid}|{index0}|{variant}".encode()).hexdigest()[:32]
    etag = f'"{digest}"'
    headers = {"ETag": etag, "Cache-Control": CACHE_CONTROL, "Vary": "Accept"}
    if etag in request.headers.get("If-None-Match", ""):
        return web.Response(status=304, headers=headers)
    ref = FrameRef(entry.uid, entry.orthanc_id, index0, entry.frames)
    body = await _decoded(request, entry, request.app[RENDER_WORKERS].render(ref, options))
    return web.Response(body=body, content_type=f"image/{options.format}", headers=headers)


async def _decoded(request: web.Request, entry: InstanceEntry, work: Awaitable[T]) -> T:
    """The pixel work's answer; an instance whose pixels cannot be decoded answers 422 with
    the decoder's reason (a client cannot fix it by asking again) and is logged once."""
    from viewer import UndecodableFrame

    try:
        return await work
    except UndecodableFrame as exc:
        request.app[RENDER_WORKERS].undecodable.report(entry.uid, exc)
        raise ApiError(
            422,
            "undecodable_image",
            f"the image's pixels cannot be decoded: {exc}",
            instance=entry.uid,
        ) from exc


@routes.get(FRAME + "/rendered")
@routes.get(INSTANCE + "/rendered")
@allow(*WORKLIST_ROLES)
@not_audited(ONCE)
@documented(
    "A rendered frame (PS3.18 10.4.1.1.3; the first frame without /frames/{n}) in the first of"
    " the Accept header's image types that we render (JPEG by default)",
    response_media_type=tuple(FORMATS),
    parameters=RENDER_PARAMETERS,
    success=(200, 304),
    errors=IMAGE_ERRORS,
)
async def rendered(request: web.Request) -> web.StreamResponse:
    entry = await _instance(request)
    index0 = _frame_index(request, entry)
    options, variant = _options(request, _format(request))
    return await _rendered(request, entry, index0, options, variant)


async def _thumbnail(
    request: web.Request, entry: InstanceEntry, index0: int = 0
) -> web.StreamResponse:
    from viewer import RenderOptions

    options = RenderOptions(window=None, format="jpeg", quality=80, viewport=THUMBNAIL)
    return await _rendered(request, entry, index0, options, repr(("thumbnail", RENDER_VERSION)))


@routes.get(FRAME + "/thumbnail")
@routes.get(INSTANCE + "/thumbnail")
@allow(*WORKLIST_ROLES)
@not_audited(ONCE)
@documented(
    "A thumbnail of an instance's first frame",
    response_media_type="image/jpeg",
    success=(200, 304),
    errors=IMAGE_ERRORS,
)
async def instance_thumbnail(request: web.Request) -> web.StreamResponse:
    entry = await _instance(request)
    return await _thumbnail(request, entry, _frame_index(request, entry))


async def _representative(request: web.Request) -> InstanceEntry:
    """The middle image of the series the path names (of the first series for a study)."""
    viewing = request.app[VIEWING]
    row, index = await viewing.study(current_user(request), request.match_info["study"])
    if "series" in request.match_info:
        series = viewing.series(index, request.match_info["series"])
    elif index.series:
        series = index.series[0]
    else:
        raise RecordNotFound("the study has no images")
    await _opened(request, row)
    return series.instances[len(series.instances) // 2]


@routes.get(SERIES + "/thumbnail")
@routes.get(STUDY + "/thumbnail")
@allow(*WORKLIST_ROLES)
@not_audited(ONCE)
@documented(
    "A thumbnail of the series' middle image (of the first series for a study)",
    response_media_type="image/jpeg",
    success=(200, 304),
    errors=IMAGE_ERRORS,
)
async def series_thumbnail(request: web.Request) -> web.StreamResponse:
    return await _thumbnail(request, await _representative(request))


@routes.get(SERIES + "/rendered")
@routes.get(STUDY + "/rendered")
@allow(*WORKLIST_ROLES)
@not_audited(ONCE)
@documented(
    "The series' (or the study's first series') middle image, rendered (PS3.18 10.4.1.1.3)",
    response_media_type=tuple(FORMATS),
    parameters=RENDER_PARAMETERS,
    success=(200, 304),
    errors=IMAGE_ERRORS,
)
async def series_rendered(request: web.Request) -> web.StreamResponse:
    """The series' (or the study's first series') middle image, rendered like an instance's:
    one image, as dicomweb-client reads it (docs/dicomweb.md)."""
    entry = await _representative(request)
    options, variant = _options(request, _format(request))
    return await _rendered(request, entry, 0, options, variant)


# --- modality values for client-side windowing --------------------------------------------------


@routes.get(
    r"/api/viewer/studies/{study}/series/{series}/instances/{instance}/frames/{n:\d+}/values"
)
@allow(*WORKLIST_ROLES)
@not_audited(ONCE)
@documented(
    "A frame's modality values (rescale applied) as raw little-endian numbers, for windowing in"
    " the page; X-Teleread-Dtype, -Rows and -Columns say how to read them; zstd or gzip as"
    " Accept-Encoding weighs them",
    response_media_type="application/octet-stream",
    errors=(*IMAGE_ERRORS, 409),
)
async def values(request: web.Request) -> web.Response:
    """Raw little-endian modality values (rescale applied) for instant windowing in the page."""
    entry = await _instance(request)
    index0 = _frame_index(request, entry)
    if entry.colour:
        raise ApiError(409, "colour_image", "colour images are shown from the rendered PNG")
    ref = FrameRef(entry.uid, entry.orthanc_id, index0, entry.frames)
    data, dtype = await _decoded(request, entry, request.app[RENDER_WORKERS].values(ref))
    body, encoding = await compressed(request, data)
    return web.Response(
        body=body,
        content_type="application/octet-stream",
        headers={
            "X-Teleread-Dtype": dtype,
            "X-Teleread-Rows": str(entry.rows),
            "X-Teleread-Columns": str(entry.columns),
            "X-Teleread-Photometric": entry.photometric,
            "Cache-Control": PRIVATE_NO_STORE,
            **encoding,
        },
    )


@routes.get(
    r"/api/viewer/studies/{study}/series/{series}/instances/{instance}/frames/{n:\d+}/overlay"
)
@allow(*WORKLIST_ROLES)
@not_audited(ONCE)
@documented(
    "A frame's DICOM overlays (60xx) as a PNG mask; 404 no_overlay when it has none",
    response_media_type="image/png",
    success=(200, 304),
    errors=IMAGE_ERRORS,
)
async def overlay(request: web.Request) -> web.StreamResponse:
    """The frame's DICOM overlays (60xx) as a lossless PNG mask (255 = burnt in), for the page
    to draw over the pixels it windows itself, as ``rendered?overlays=true`` does; 404
    ``no_overlay`` when the object has none (the manifest says which have)."""
    from viewer import RenderOptions

    entry = await _instance(request)
    index0 = _frame_index(request, entry)
    if not entry.overlays:
        raise ApiError(404, "no_overlay", "this image has no overlay planes (60xx,3000)")
    options = RenderOptions(format="png", overlay_mask=True)
    return await _rendered(request, entry, index0, options, repr(("overlay", RENDER_VERSION)))
