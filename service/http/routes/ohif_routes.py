"""OHIF v3 at ``/ohif/``, on teleread's origin (service/viewing/ohif.py; docs/viewer.md#ohif).

Only logged-in users with a worklist get the viewer (a browser without a session is sent to the
login page, which brings it back); what it shows comes from ``/dicom-web``, scoped and audited
there, with the same session cookie. The viewer's own files carry no patient data and are not
audited. A path that is no file is one of OHIF's client routes (``/ohif/viewer?…``): it gets
index.html, unless it looks like a file (a name with a dot) or is under ``consultations/``
(the redirect's own path, with an id that is no number): those are a plain 404.
"""

from __future__ import annotations

import asyncio
import mimetypes
import re
from urllib.parse import urlencode

from aiohttp import web

from ...auth.access import consultation_scope
from ...storage import consultations as store
from ...viewing.ohif import PREFIX, OhifFiles, OhifNotInstalled, app_config
from ..access import allow
from ..auditing import audit_context, audited, not_audited
from ..compression import accepts_gzip
from ..errors import ApiError
from ..keys import DATABASE, OHIF, RENDERER, current_user
from ..requests import path_id
from .openapi import HTML, TEXT, documented, page
from .pages import page_locale, render
from .worklist_routes import WORKLIST_ROLES

routes = web.RouteTableDef()

FILES = "the OHIF viewer's own files: no patient data (its DICOMweb calls are audited)"
CONTENT_TYPES = {".js": "text/javascript", ".css": "text/css", ".html": "text/html"}
# Webpack names what it emits by content (app.bundle.0f6159c501addfe9.js, 0ddf…eda.wasm): such a
# file never changes under its name. Everything else is revalidated (index.html is not cached).
HASHED_NAME = re.compile(r"(^|\.)[0-9a-f]{16}\.[a-z0-9]+$")
IMMUTABLE = "private, max-age=31536000, immutable"
REVALIDATE = "private, no-cache"
NOT_INSTALLED = {503: {HTML: TEXT}}
"""The page saying OHIF is not installed (``make ohif``)."""


def _missing(relative: str) -> ApiError:
    return ApiError(404, "not_found", f"no file {relative} in the OHIF viewer")


def _not_installed(request: web.Request) -> web.Response:
    _ = request.app[RENDERER].gettext(page_locale(request))
    message = _(
        "The OHIF viewer is not installed on this server. An administrator installs it with"
        " “make ohif” (see the viewer documentation)."
    )
    return render(request, "error.html", status=503, message=message)


async def _index(request: web.Request, files: OhifFiles) -> web.Response:
    body = await asyncio.to_thread(files.read, "index.html")
    return web.Response(body=body, content_type="text/html")


@routes.get("/ohif")
@routes.get(PREFIX)
@allow(*WORKLIST_ROLES)
@not_audited(FILES)
@page("The OHIF viewer's page (docs/viewer.md#ohif)", answers=NOT_INSTALLED)
async def ohif_page(request: web.Request) -> web.Response:
    files = request.app[OHIF]
    if not files.installed():
        return _not_installed(request)
    return await _index(request, files)


@routes.get(PREFIX + "app-config.js")
@allow(*WORKLIST_ROLES)
@not_audited(FILES)
@documented(
    "The OHIF viewer's configuration: teleread's DICOMweb on this origin",
    response_media_type="text/javascript",
    redirects=(303,),
)
async def ohif_config(request: web.Request) -> web.Response:
    return web.Response(text=app_config(), content_type="text/javascript")


@routes.get(PREFIX + r"consultations/{id:\d+}")
@allow(*WORKLIST_ROLES)
@audited("consultation.view", "consultation")
@documented("Open a consultation's study in OHIF (a redirect)", success=(303,), errors=(404,))
async def open_consultation(request: web.Request) -> web.Response:
    """The "Open in OHIF" links: the pages know the consultation, OHIF wants the study UID."""
    consultation_id = path_id(request)
    scope = consultation_scope(current_user(request))
    row = await request.app[DATABASE].read(store.get_consultation, scope, consultation_id)
    context = audit_context(request)
    context.touches(row["patient_id"], row["study_instance_uid"], consultation_id)
    context.detail["via"] = request.path  # told apart from the consultation page's own view
    query = urlencode({"StudyInstanceUIDs": row["study_instance_uid"]})
    # No body (HTTPSeeOther would send a text/plain one the OpenAPI document does not declare).
    return web.Response(status=303, headers={"Location": f"{PREFIX}viewer?{query}"})


@routes.get(PREFIX + "{path:.+}")
@allow(*WORKLIST_ROLES)
@not_audited(FILES)
@documented(
    "The OHIF viewer's files, and its pages",
    response_media_type="*/*",
    redirects=(303,),
    answers=NOT_INSTALLED,
)
async def ohif_file(request: web.Request) -> web.StreamResponse:
    files = request.app[OHIF]
    if not files.installed():
        return _not_installed(request)
    relative = request.match_info["path"]
    path = files.path(relative)
    if path is None:
        # A name with a dot is a missing file; consultations/… not a number is no consultation.
        if "." in relative.rsplit("/", 1)[-1] or relative.startswith("consultations/"):
            raise _missing(relative)
        return await _index(request, files)
    name = relative.rsplit("/", 1)[-1]
    cache = IMMUTABLE if HASHED_NAME.search(name) else REVALIDATE
    try:
        if accepts_gzip(request) and (gz := await asyncio.to_thread(files.gzipped, relative)):
            response = web.Response(body=gz, content_type=_content_type(name))
            response.headers.update({"Content-Encoding": "gzip", "Vary": "Accept-Encoding"})
        elif (body := await asyncio.to_thread(files.read, relative)) is not None:
            response = web.Response(body=body, content_type=_content_type(name))
        else:
            return web.FileResponse(path, headers={"Cache-Control": cache})
    except OhifNotInstalled as exc:  # removed in between
        raise _missing(relative) from exc
    response.headers["Cache-Control"] = cache
    return response


def _content_type(name: str) -> str:
    suffix = "." + name.rsplit(".", 1)[-1]
    return CONTENT_TYPES.get(suffix) or mimetypes.guess_type(name)[0] or "application/octet-stream"
