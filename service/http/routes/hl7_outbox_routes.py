"""The HL7 results outbox for administrators: what went to each HIS, what waits, what failed and
why; and sending a failed message again (service/storage/hl7_outbox.py has the rules)."""

from __future__ import annotations

from typing import Literal

from aiohttp import web
from pydantic import BaseModel, Field

from ...clock import to_iso, utc_now
from ...storage import hl7_outbox as store
from ..access import allow
from ..auditing import audit_context, audited
from ..keys import DATABASE, REPORT_DELIVERY
from ..models import Strict
from ..requests import path_id, read_query
from .openapi import NO_BODY, documented

routes = web.RouteTableDef()


class OutboxQuery(Strict):
    status: Literal["pending", "sent", "failed"] | None = Field(
        None, description="Only messages in this state"
    )


class OutboxMessage(BaseModel):
    id: int
    consultation_id: int
    report_version_id: int
    version: int
    facility_id: int
    facility_name: str
    endpoint: str = Field(description="The HIS's MLLP address (host:port) at signing time")
    result_status: Literal["F", "C"] = Field(description="OBR-25: F first result, C correction")
    status: Literal["pending", "sent", "failed"]
    attempts: int
    next_attempt_at: str | None = Field(description="When a pending message is tried next")
    reason: str = Field(description="Why the last attempt failed: the ACK's text, or the error")
    ack_code: str = Field(description="MSA-1 of the last ACK (AA, AE, AR), empty without one")
    created_at: str
    last_attempt_at: str | None
    sent_at: str | None
    patient_id: str
    patient_name: str
    accession_number: str
    placer_order_number: str


class OutboxList(BaseModel):
    items: list[OutboxMessage] = Field(description="Newest first, at most 200")


@routes.get("/api/admin/hl7-outbox")
@allow("admin")
@audited("hl7.outbox_view", "hl7_message")
@documented(
    "HL7 results (ORU^R01) queued for, sent to or failed at the facilities' HIS, newest first",
    query=OutboxQuery,
    response=OutboxList,
)
async def list_outbox(request: web.Request) -> web.Response:
    query = read_query(request, OutboxQuery)
    rows = await request.app[DATABASE].read(store.list_messages, query.status)
    audit = audit_context(request)
    audit.detail.update(status=query.status or "", returned=len(rows))
    audit.detail["patients"] = sorted({row["patient_id"] for row in rows if row["patient_id"]})
    return web.json_response({"items": rows})


@routes.post("/api/admin/hl7-outbox/{id:\\d+}/retry")
@allow("admin")
@audited("hl7.retry", "hl7_message")
@documented(
    "Send a failed (or waiting) HL7 result again now, with a fresh count of attempts; refused"
    " for one already acknowledged or replaced at the HIS by a later result",
    body=NO_BODY,
    response=OutboxMessage,
)
async def retry(request: web.Request) -> web.Response:
    outbox_id = path_id(request)
    audit = audit_context(request)
    audit.resource_id = str(outbox_id)
    row = await request.app[DATABASE].write(store.retry_message, outbox_id, to_iso(utc_now()))
    audit.patient_id = row["patient_id"]
    audit.detail.update(consultation_id=row["consultation_id"], version=row["version"])
    request.app[REPORT_DELIVERY].kick()  # wakes the sender too (service/app.py)
    return web.json_response(row)
