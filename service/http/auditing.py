"""Every call to a route that reads patient data or changes anything leaves an audit record.

Routes declare their audited action with :func:`audited` (or say why not with
:func:`not_audited`); the middleware records the outcome after the handler ran, including
refusals, so denied attempts are traced too. Handlers add what they touched (patient, study,
resource) to ``request[AUDIT_KEY]``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from pydantic import ValidationError

from ..audit import AuditEntry
from ..auth.sessions import CurrentUser
from ..clock import to_iso, utc_now
from ..runtime.orthanc.client import OrthancError, OrthancUnavailable
from ..storage import Conflict, RecordNotFound
from .errors import ApiError
from .keys import DATABASE, USER_KEY
from .requests import client_ip

AUDIT_ATTRIBUTE = "__teleread_audit__"
EXEMPT_ATTRIBUTE = "__teleread_audit_exempt__"


@dataclass
class AuditContext:
    """Filled by the handler: what the call touched."""

    resource_type: str = ""
    resource_id: str = ""
    patient_id: str = ""
    study_instance_uid: str = ""
    detail: dict[str, Any] = field(default_factory=dict)
    actor: CurrentUser | None = None
    """Who acted, when not the caller's session (a login acts as the user it logs in)."""
    anonymous: bool = False
    """Record no user even if the request carries a session (a login attempt)."""
    recorded: bool = False
    """Already committed by :func:`record_before_streaming`; the middleware writes no other."""

    def touches(
        self, patient_id: str, study_instance_uid: str | None, resource_id: object = None
    ) -> None:
        """Name the patient and study (and optionally the resource) the call touched."""
        self.patient_id = patient_id
        self.study_instance_uid = study_instance_uid or ""
        if resource_id is not None:
            self.resource_id = str(resource_id)


AUDIT_KEY = web.RequestKey("audit", AuditContext)


def audited(action: str, resource_type: str = "") -> Callable[[Any], Any]:
    """Declare the audit action a handler performs (e.g. ``consultation.view``)."""

    def mark(handler: Any) -> Any:
        setattr(handler, AUDIT_ATTRIBUTE, (action, resource_type))
        return handler

    return mark


def not_audited(reason: str) -> Callable[[Any], Any]:
    """Declare, with the reason, that a handler touches no patient data and changes nothing."""

    def mark(handler: Any) -> Any:
        setattr(handler, EXEMPT_ATTRIBUTE, reason)
        return handler

    return mark


def audit_declaration(handler: Any) -> tuple[str, str] | str | None:
    return getattr(handler, AUDIT_ATTRIBUTE, None) or getattr(handler, EXEMPT_ATTRIBUTE, None)


def _status_of(exc: BaseException) -> int:
    if isinstance(exc, ApiError | web.HTTPException):
        return exc.status
    if isinstance(exc, RecordNotFound):
        return 404
    if isinstance(exc, Conflict):
        return 409
    if isinstance(exc, ValidationError):
        return 400
    if isinstance(exc, OrthancUnavailable):
        return 503
    if isinstance(exc, OrthancError) and exc.status == 404:
        return 404
    return 500


def _outcome(status: int) -> str:
    if status < 400:
        return "success"
    return "denied" if status in (401, 403, 404, 429) else "failed"


@web.middleware
async def audit_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    declaration = getattr(request.match_info.handler, AUDIT_ATTRIBUTE, None)
    if declaration is None or request.match_info.http_exception is not None:
        return await handler(request)
    action, resource_type = declaration
    context = AuditContext(
        resource_type=resource_type, resource_id=request.match_info.get("id", "")
    )
    request[AUDIT_KEY] = context
    try:
        response = await handler(request)
    except BaseException as exc:
        if not context.recorded:
            await record(request, action, context, _status_of(exc))
        raise
    if not context.recorded:
        await record(request, action, context, response.status)
    return response


async def record_before_streaming(request: web.Request) -> None:
    """Commit the call's audit record now, as a success, before a streamed answer sends data
    (a WADO-RS study): otherwise the middleware would write it after the data had left, and a
    failure to write it could no longer fail the call."""
    declaration = getattr(request.match_info.handler, AUDIT_ATTRIBUTE, None)
    context = request.get(AUDIT_KEY)
    if declaration is None or context is None or context.recorded:
        return
    await record(request, declaration[0], context, 200)
    context.recorded = True


async def record(request: web.Request, action: str, context: AuditContext, status: int) -> None:
    """Append the audit record of ``action`` as ``context`` describes it (the middleware's
    record; also for a handler that audits only some of its calls). Returns once the record is
    committed, in a transaction shared with the records of other requests in flight (group
    commit, :meth:`Database.append_audit`); raises if it could not be, so the call fails
    instead of answering without its record."""
    await request.app[DATABASE].append_audit(audit_entry(request, action, context, status))


def audit_entry(
    request: web.Request, action: str, context: AuditContext, status: int
) -> AuditEntry:
    """The record :func:`record` would append, for a caller that appends it in a transaction
    of its own (only if a condition holds there, e.g. a study's first opening)."""
    user = context.actor or (None if context.anonymous else request.get(USER_KEY))
    detail = dict(context.detail)
    if status >= 400:
        detail["status"] = status
    return AuditEntry(
        at=to_iso(utc_now()),
        action=action,
        outcome=_outcome(status),
        user_id=user.id if user else None,
        username=user.username if user else "",
        role=user.role if user else "",
        facility_id=user.facility_id if user else None,
        resource_type=context.resource_type,
        resource_id=context.resource_id,
        patient_id=context.patient_id,
        study_instance_uid=context.study_instance_uid,
        client_ip=client_ip(request) or "",
        detail=detail,
    )


def audit_context(request: web.Request) -> AuditContext:
    """The record the current call will leave (a throwaway one on unaudited routes)."""
    return request.get(AUDIT_KEY) or AuditContext()
