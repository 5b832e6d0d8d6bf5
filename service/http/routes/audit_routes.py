"""The audit trail for managers and admins: search, CSV export, ATNA export (all audited)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any, Literal
from urllib.parse import urlsplit

from aiohttp import web
from pydantic import AwareDatetime, BaseModel, Field, create_model, model_validator

from ...audit.atna import AuditSource
from ...audit.export import (
    ANCHOR_HEADER,
    atna_messages,
    csv_header,
    csv_rows,
    default_source_id,
    encode,
)
from ...clock import to_iso, utc_now
from ...storage.audit import audit_head
from ...storage.audit_anchor import Anchor
from ...storage.audit_search import (
    AuditFilter,
    AuditScope,
    audit_batch,
    names_for,
    search_audit,
)
from ..access import allow
from ..auditing import audit_context, audited
from ..errors import ApiError
from ..keys import DATABASE, SETTINGS, current_user
from ..models import RecordId, Strict
from ..requests import read_query
from .openapi import documented

routes = web.RouteTableDef()

AUDIT_ROLES = ("manager", "admin")
EXPORT_BATCH = 1000
#: Several XML documents are not one XML document: the ATNA export is lines of text.
ATNA_CONTENT_TYPE = "text/plain; charset=utf-8"

Outcome = Literal["success", "denied", "failed"]


class _AuditFilters(Strict):
    patient_id: str | None = Field(
        default=None,
        max_length=64,
        description="Records about this patient, including worklist queries that listed them",
    )
    user: str | None = Field(default=None, max_length=64, description="Username of the actor")
    facility: RecordId | None = Field(default=None, description="The actor's facility id")
    action: str | None = Field(default=None, max_length=64, description="e.g. consultation.view")
    outcome: Outcome | None = None
    to: AwareDatetime | None = Field(
        default=None, description="ISO 8601 with a zone (Z or +08:00); exclusive"
    )

    @model_validator(mode="before")
    @classmethod
    def empty_means_absent(cls, data: Any) -> Any:
        """A form's empty fields send ``user=``: treat them as not given."""
        if isinstance(data, dict):
            return {k: v for k, v in data.items() if v != ""}
        return data

    @model_validator(mode="after")
    def from_before_to(self) -> _AuditFilters:
        since = getattr(self, "from", None)
        if since is not None and self.to is not None and since >= self.to:
            raise ValueError("'from' must be earlier than 'to'")
        return self

    def audit_filter(self) -> AuditFilter:
        since: datetime | None = getattr(self, "from")
        return AuditFilter(
            patient_id=self.patient_id,
            username=self.user,
            facility_id=self.facility,
            action=self.action,
            outcome=self.outcome,
            since=to_iso(since) if since else None,
            until=to_iso(self.to) if self.to else None,
        )

    def described(self) -> dict[str, Any]:
        """The filters as given, for the audit record of the search itself."""
        return self.model_dump(mode="json", exclude_none=True, exclude={"limit", "cursor"})


# ``from`` is a Python keyword, so the field is declared by name (read_query matches names).
AuditExportQuery = create_model(
    "AuditExportQuery",
    __base__=_AuditFilters,
    **{
        "from": (
            AwareDatetime | None,
            Field(default=None, description="ISO 8601 with a zone (Z or +08:00); inclusive"),
        )
    },
)


class AuditQuery(AuditExportQuery):  # type: ignore[misc,valid-type]
    limit: int = Field(default=100, ge=1, le=1000)
    cursor: str | None = Field(default=None, description="The previous answer's 'next'")


class AuditItem(BaseModel):
    id: int
    at: str
    username: str
    role: str
    facility_id: int | None
    action: str
    resource_type: str
    resource_id: str
    patient_id: str
    study_instance_uid: str
    client_ip: str
    outcome: Outcome
    detail: dict[str, Any]


class AuditPage(BaseModel):
    items: list[AuditItem]
    next: str | None = Field(description="Cursor for the next (older) page; null at the end")


def caller_scope(request: web.Request) -> AuditScope:
    user = current_user(request)
    return AuditScope.for_caller(user.role, user.facility_kind, user.facility_id)


def _before_id(cursor: str | None) -> int | None:
    if cursor is None:
        return None
    if not re.fullmatch(r"[0-9]{1,18}", cursor) or int(cursor) == 0:
        raise ApiError(400, "invalid_cursor", "the cursor is not one this API gave")
    return int(cursor)


@routes.get("/api/audit")
@allow(*AUDIT_ROLES)
@audited("audit.search", "audit")
@documented(
    "Search the audit trail, newest first, paged by cursor (managers: own facility's users)",
    query=AuditQuery,
    response=AuditPage,
)
async def search(request: web.Request) -> web.Response:
    query = read_query(request, AuditQuery)
    audit = audit_context(request)
    audit.detail["filters"] = query.described()
    audit.patient_id = query.patient_id or ""
    before_id = _before_id(query.cursor)
    page = await request.app[DATABASE].read(
        search_audit, query.audit_filter(), caller_scope(request), query.limit, before_id
    )
    audit.detail["returned"] = len(page.items)
    next_cursor = str(page.next_before) if page.next_before is not None else None
    answer = AuditPage(items=page.items, next=next_cursor)
    return web.json_response(answer.model_dump())


async def _batches(
    request: web.Request, flt: AuditFilter, scope: AuditScope
) -> AsyncIterator[list[dict]]:
    """Matching records in chain order, a batch at a time (never all in memory)."""
    database, after_id = request.app[DATABASE], 0
    while rows := await database.read(audit_batch, flt, scope, after_id, EXPORT_BATCH):
        yield rows
        after_id = rows[-1]["id"]


async def _export_anchor(request: web.Request) -> Anchor | None:
    """The chain's head as the export starts: a kept export can show a later cut."""
    head = await request.app[DATABASE].read(audit_head)
    return Anchor(head[0], head[0], head[1], to_iso(utc_now())) if head else None


async def _start_download(
    request: web.Request, content_type: str, extension: str, anchor: Anchor | None
) -> web.StreamResponse:
    stamp = utc_now().strftime("%Y%m%dT%H%M%SZ")
    headers = {
        "Content-Type": content_type,
        "Content-Disposition": f'attachment; filename="teleread-audit-{stamp}.{extension}"',
    }
    if anchor is not None:
        headers[ANCHOR_HEADER] = anchor.to_json()
    response = web.StreamResponse(headers=headers)
    await response.prepare(request)
    return response


async def _headers_only(response: web.StreamResponse) -> web.StreamResponse:
    """End a HEAD answer after its headers: aiohttp sends whatever a handler writes to a
    prepared stream, HEAD or not, and the client would read it as the next answer."""
    await response.write_eof()
    return response


@routes.get("/api/audit.csv")
@allow(*AUDIT_ROLES)
@audited("audit.export", "audit")
@documented(
    "The matching audit records as CSV (UTF-8 with BOM), oldest first, with the hash chain",
    query=AuditExportQuery,
    response_media_type="text/csv",
)
async def export_csv(request: web.Request) -> web.StreamResponse:
    query = read_query(request, AuditExportQuery)
    flt = _export_audit(request, query, "csv")
    anchor = await _export_anchor(request)
    response = await _start_download(request, "text/csv; charset=utf-8", "csv", anchor)
    if request.method == "HEAD":
        return await _headers_only(response)
    await response.write(encode(csv_header()))
    count = 0
    async for rows in _batches(request, flt, caller_scope(request)):
        await response.write(encode(csv_rows(rows)))
        count += len(rows)
    audit_context(request).detail["exported"] = count
    await response.write_eof()
    return response


@routes.get("/api/audit/atna")
@allow(*AUDIT_ROLES)
@audited("audit.export", "audit")
@documented(
    "The matching audit records as DICOM audit messages (PS3.15 A.5.1), oldest first: "
    "text, one line per record, each line a whole <AuditMessage> XML document",
    query=AuditExportQuery,
    response_media_type="application/xml",
)
async def export_atna(request: web.Request) -> web.StreamResponse:
    query = read_query(request, AuditExportQuery)
    flt = _export_audit(request, query, "atna")
    source = AuditSource(
        default_source_id(urlsplit(request.app[SETTINGS].public_url or "").hostname)
    )
    database = request.app[DATABASE]
    anchor = await _export_anchor(request)
    response = await _start_download(request, ATNA_CONTENT_TYPE, "atna.txt", anchor)
    if request.method == "HEAD":
        return await _headers_only(response)
    count = 0
    scope = caller_scope(request)
    async for rows in _batches(request, flt, scope):
        names = await database.read(names_for, rows, scope)
        await response.write(encode(atna_messages(rows, source, names)))
        count += len(rows)
    audit_context(request).detail["exported"] = count
    await response.write_eof()
    return response


def _export_audit(request: web.Request, query: Any, export_format: str) -> AuditFilter:
    """What the export's own audit record says; the filter to export with."""
    audit = audit_context(request)
    audit.detail |= {"filters": query.described(), "format": export_format}
    audit.patient_id = query.patient_id or ""
    return query.audit_filter()
