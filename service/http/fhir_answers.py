"""FHIR's HTTP conventions under ``/fhir``: JSON only, and every error an OperationOutcome.

The middleware sits between the error middleware and the audit middleware, so refusals are still
audited (the audit middleware sees the exception first) and the API's ``{"error", "detail"}``
shape never reaches a FHIR client: 401 and 403 from the access middleware, 404 and 405 from the
router, validation errors (with the ``fhir.resources`` message in ``diagnostics``) and conflicts
all answer ``application/fhir+json``. XML, asked by ``Accept`` or ``_format``, is 406.
"""

from __future__ import annotations

import json
import logging
import secrets
from typing import Any

from aiohttp import web
from pydantic import ValidationError

from ..fhir.bundles import operation_outcome
from ..fhir.capability import FHIR_JSON
from ..fhir.orders import InvalidOrder
from ..fhir.search import InvalidSearch
from ..runtime.orthanc.client import OrthancError, OrthancUnavailable
from ..storage import Conflict, RecordNotFound
from .errors import ApiError

log = logging.getLogger(__name__)

PREFIX = "/fhir"
JSON_FORMATS = {"json", "application/json", "application/fhir+json"}
JSON_ACCEPTS = {FHIR_JSON, "application/json", "application/*", "*/*", "application/json+fhir"}
BODY_TYPES = {FHIR_JSON, "application/json", "application/json+fhir"}
MAX_BODY_BYTES = 256 * 1024


def fhir_json(data: dict[str, Any], status: int = 200, **headers: str) -> web.Response:
    body = json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode()
    response = web.Response(body=body, status=status, headers=headers)
    response.content_type = FHIR_JSON
    response.charset = "utf-8"
    return response


def outcome(status: int, diagnostics: str, code: str = "", **kwargs: Any) -> web.Response:
    response = fhir_json(operation_outcome(status, diagnostics, code, **kwargs), status)
    if status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="teleread"'
    return response


def _check_format(request: web.Request) -> None:
    """406 unless the client takes JSON (``_format`` wins over ``Accept``, as FHIR says)."""
    wanted = request.query.get("_format")
    if wanted is not None:
        if wanted.split(";")[0].strip().lower() not in JSON_FORMATS:
            raise ApiError(406, "not_acceptable", "this server answers FHIR JSON only")
        return
    accept = request.headers.get("Accept", "*/*")
    types = {part.split(";")[0].strip().lower() for part in accept.split(",")}
    if not types & JSON_ACCEPTS:
        raise ApiError(406, "not_acceptable", "this server answers application/fhir+json only")


async def read_resource(request: web.Request) -> Any:
    """The request's JSON body (FHIR JSON or plain JSON), or a 400/413/415 with the reason."""
    if request.content_type not in BODY_TYPES:
        raise ApiError(415, "unsupported_media_type", f"send the body as {FHIR_JSON}")
    raw = await request.content.read(MAX_BODY_BYTES + 1)
    if len(raw) > MAX_BODY_BYTES:
        raise ApiError(413, "too_large", f"resources are limited to {MAX_BODY_BYTES} bytes")
    try:
        return json.loads(raw or b"null")
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ApiError(400, "invalid_json", f"the body is not valid JSON: {exc}") from exc


def _is_fhir(request: web.Request) -> bool:
    return request.path == PREFIX or request.path.startswith(PREFIX + "/")


@web.middleware
async def fhir_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    if not _is_fhir(request):
        return await handler(request)
    try:
        _check_format(request)
        return await handler(request)
    except ApiError as exc:
        return outcome(exc.status, exc.detail, exc.code)
    except ValidationError as exc:
        return outcome(400, str(exc), "invalid_resource")
    except InvalidOrder as exc:
        return outcome(400, str(exc), "invalid_order", expression=[exc.expression])
    except InvalidSearch as exc:
        return outcome(400, str(exc), "invalid_search")
    except RecordNotFound as exc:
        return outcome(404, f"{exc.args[0] if exc.args else 'resource'} not found", "not_found")
    except Conflict as exc:
        return outcome(409, exc.detail, exc.code)
    except OrthancUnavailable:
        return outcome(503, "the image archive is not reachable; try again shortly")
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return outcome(exc.status, exc.reason)
    except Exception as exc:
        if isinstance(exc, OrthancError) and exc.status == 404:
            return outcome(404, "the study is not in the archive", "not_found")
        request_id = secrets.token_hex(6)
        log.exception(
            "unhandled error in %s %s [request %s]", request.method, request.path, request_id
        )
        return outcome(500, f"an internal error occurred (request {request_id})")
