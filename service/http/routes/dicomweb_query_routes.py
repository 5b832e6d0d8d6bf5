"""QIDO-RS under ``/dicom-web`` (PS3.18 10.6): the caller's studies, series and instances.

A caller finds exactly the studies the worklist would show them (their role's and facility's
scope, in SQL); a study outside it is a 404 when named in the path, and absent from every list.
Each query writes one ``study.query`` audit record naming the patients and studies it answered.
The answer is ``application/dicom+json`` exactly (dicomweb-client matches the type without
parameters), 200 with a possibly empty array.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from ...auth.access import consultation_scope
from ...viewing import dicomweb_query as qido
from ..access import allow
from ..auditing import audit_context, audited
from ..errors import ApiError
from ..keys import DATABASE, ORTHANC, VIEWING, current_user
from ..middleware import PRIVATE_NO_STORE
from ..requests import public_base_url
from .openapi import documented
from .openapi_schemas import DICOM_JSON, QIDO
from .worklist_routes import WORKLIST_ROLES

routes = web.RouteTableDef()

STUDY = "/dicom-web/studies/{study}"


def dicom_json(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    """A DICOM JSON answer with the media type exactly as PS3.18 names it (no charset)."""
    body = json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode()
    return web.Response(
        body=body,
        status=status,
        headers={"Content-Type": DICOM_JSON, "Cache-Control": PRIVATE_NO_STORE, **(headers or {})},
    )


JSON_TYPES = (DICOM_JSON, "application/json", "application/*", "*/*")


def _query(request: web.Request) -> qido.Query:
    """The parsed query; 406 unless the client takes DICOM JSON (the XML form is not served)."""
    accept = request.headers.get("Accept", "*/*")
    if not any(part.split(";")[0].strip().lower() in JSON_TYPES for part in accept.split(",")):
        raise ApiError(406, "not_acceptable", "QIDO-RS answers application/dicom+json only")
    try:
        return qido.parse_query(request.query.items())
    except qido.BadQuery as exc:
        raise ApiError(400, "bad_query", str(exc)) from exc


def _answer(request: web.Request, answer: qido.Answer) -> web.Response:
    """The matches, with the audit record's patients and a Warning for what was not done."""
    audit_context(request).detail |= {
        "query": dict(request.query),
        "patients": sorted(answer.patients),
        "studies": sorted(answer.studies),
        "results": len(answer.items),
    }
    warnings = []
    if answer.ignored:
        names = ", ".join(sorted(answer.ignored))
        warnings.append(f'299 teleread "matching on {names} is not supported; ignored"')
    if answer.more:
        warnings.append('299 teleread "there are more matches: ask again with offset"')
    return dicom_json(answer.items, headers={"Warning": ", ".join(warnings)} if warnings else None)


def _base(request: web.Request) -> str:
    return f"{public_base_url(request)}/dicom-web"


async def _study(request: web.Request) -> dict[str, Any]:
    """The in-scope study the path names (404 otherwise, as for a study that does not exist)."""
    return await request.app[VIEWING].consultation_for(
        current_user(request), request.match_info["study"]
    )


@routes.get("/dicom-web/studies")
@allow(*WORKLIST_ROLES)
@audited("study.query", "study")
@documented(
    "QIDO-RS: search the caller's studies (PS3.18 10.6; docs/dicomweb.md)",
    errors=(400, 406),
    **QIDO,
)
async def search_studies(request: web.Request) -> web.Response:
    app = request.app
    answer = await qido.search_studies(
        app[DATABASE],
        app[ORTHANC],
        consultation_scope(current_user(request)),
        _query(request),
        _base(request),
    )
    return _answer(request, answer)


@routes.get("/dicom-web/series")
@routes.get(STUDY + "/series")
@allow(*WORKLIST_ROLES)
@audited("study.query", "study")
@documented(
    "QIDO-RS: search the series of the caller's studies (PS3.18 10.6)",
    errors=(400, 406),
    **QIDO,
)
async def search_series(request: web.Request) -> web.Response:
    query = _query(request)
    study = await _study(request) if "study" in request.match_info else None
    app = request.app
    answer = await qido.search_series(
        app[DATABASE],
        app[ORTHANC],
        consultation_scope(current_user(request)),
        query,
        _base(request),
        study,
    )
    return _answer(request, answer)


@routes.get("/dicom-web/instances")
@routes.get(STUDY + "/instances")
@routes.get(STUDY + "/series/{series}/instances")
@allow(*WORKLIST_ROLES)
@audited("study.query", "study")
@documented(
    "QIDO-RS: search the instances of the caller's studies (PS3.18 10.6)",
    errors=(400, 406),
    **QIDO,
)
async def search_instances(request: web.Request) -> web.Response:
    query = _query(request)
    study = await _study(request) if "study" in request.match_info else None
    app = request.app
    answer = await qido.search_instances(
        app[DATABASE],
        app[ORTHANC],
        consultation_scope(current_user(request)),
        query,
        _base(request),
        study,
        request.match_info.get("series"),
    )
    return _answer(request, answer)
