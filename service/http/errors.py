"""One error shape for the whole API: ``{"error": code, "detail": message}`` with a 4xx status.

Domain exceptions are mapped here; anything unexpected is a bug, logged with a request id and
answered with a 500 that reveals nothing of the internals.
"""

from __future__ import annotations

import logging
import secrets
from typing import Any

from aiohttp import web
from pydantic import ValidationError

from ..runtime.orthanc.client import OrthancError, OrthancUnavailable
from ..storage import Conflict, RecordNotFound

log = logging.getLogger(__name__)


class ApiError(Exception):
    """An error answer with a stable code, a human message and optional extra fields."""

    def __init__(self, status: int, code: str, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail
        self.extra = extra

    def response(self) -> web.Response:
        body = {"error": self.code, "detail": self.detail, **self.extra}
        response = web.json_response(body, status=self.status)
        if self.extra.get("retry_after") is not None:  # RFC 9110 10.2.3, on every 429 we send
            response.headers["Retry-After"] = str(int(self.extra["retry_after"]))
        return response


def too_many_wrong_passwords(retry_after: float) -> ApiError:
    """429 for a password re-entered to sign, co-sign or import a key while the account's wrong
    guesses have locked it (they count like failed logins)."""
    return ApiError(
        429,
        "too_many_attempts",
        "too many wrong passwords; wait a few minutes",
        retry_after=retry_after,
    )


def validation_error(exc: ValidationError) -> ApiError:
    problems = [
        {"field": ".".join(str(p) for p in e["loc"]), "message": e["msg"]} for e in exc.errors()
    ]
    detail = "; ".join(
        f"{p['field']}: {p['message']}" if p["field"] else p["message"] for p in problems
    )
    return ApiError(400, "invalid_request", detail, problems=problems)


_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "too_large",
    415: "unsupported_media_type",
}


@web.middleware
async def error_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as exc:
        return exc.response()
    except ValidationError as exc:
        return validation_error(exc).response()
    except RecordNotFound as exc:
        return ApiError(
            404, "not_found", f"{exc.args[0] if exc.args else 'resource'} not found"
        ).response()
    except Conflict as exc:
        return ApiError(409, exc.code, exc.detail).response()
    except OrthancUnavailable:
        log.warning("Orthanc unavailable during %s %s", request.method, request.path)
        return ApiError(
            503, "pacs_unavailable", "the image archive is not reachable; try again shortly"
        ).response()
    except web.HTTPException as exc:
        if exc.status < 400 or not _wants_json(request):
            raise
        code = _HTTP_CODES.get(exc.status, "http_error")
        return ApiError(exc.status, code, exc.reason).response()
    except Exception as exc:
        if isinstance(exc, OrthancError) and exc.status == 404:
            # An image listed a moment ago and gone since (e.g. moved to the quarantine).
            return ApiError(404, "not_found", "the image is not in the archive").response()
        request_id = secrets.token_hex(6)
        log.exception(
            "unhandled error in %s %s [request %s]", request.method, request.path, request_id
        )
        return web.json_response(
            {
                "error": "internal_error",
                "detail": f"an internal error occurred (request {request_id})",
            },
            status=500,
        )


def _wants_json(request: web.Request) -> bool:
    return request.path.startswith(("/api/", "/dicom-web/")) or "json" in request.headers.get(
        "Accept", ""
    )
