"""The DICOM data dictionary (PS3.6 keywords) for the viewer's tag browser.

DICOM JSON (PS3.18 F.2) carries tags, not names; the page fetches this once and names every
standard attribute. Private and repeating-group tags stay unnamed.
"""

from __future__ import annotations

from functools import cache

import pydicom
from aiohttp import web
from pydicom.datadict import DicomDictionary

from ..access import allow
from ..answers import DICTIONARY
from ..auditing import not_audited
from .openapi import documented
from .worklist_routes import WORKLIST_ROLES

routes = web.RouteTableDef()


@cache
def dictionary_json() -> bytes:
    """``{"00080005": "SpecificCharacterSet", ...}`` for every keyword pydicom knows."""
    import json

    names = {f"{tag:08X}": entry[4] for tag, entry in DicomDictionary.items() if entry[4]}
    return json.dumps(names, separators=(",", ":"), sort_keys=True).encode()


@routes.get("/api/dicom/dictionary")
@allow(*WORKLIST_ROLES)
@not_audited("the public DICOM data dictionary: no patient data")
@documented(
    "PS3.6 keywords by tag (8 upper-case hex digits), for naming DICOM JSON attributes",
    response=DICTIONARY,
    success=(200, 304),
)
async def dictionary(request: web.Request) -> web.Response:
    etag = f'"pydicom-{pydicom.__version__}"'
    headers = {"ETag": etag, "Cache-Control": "private, max-age=86400"}
    if request.headers.get("If-None-Match") == etag:
        return web.Response(status=304, headers=headers)
    response = web.Response(
        body=dictionary_json(), content_type="application/json", headers=headers
    )
    response.enable_compression()
    return response
