"""Administration of patient merges (HL7 ADT^A40): the list, and an administrator's reversal.

The merge itself arrives from a hospital system (service/hl7, through the MLLP listener) and is
audited there (``patient.merged``); here an administrator sees every merge and reverses one
(``patient.merge_reversed``). The rules live in :mod:`service.intake.patient_merges`.
"""

from __future__ import annotations

from aiohttp import web
from pydantic import BaseModel, Field

from ...clock import utc_now
from ...intake.patient_merges import RESOURCE_TYPE, reverse_merge
from ...storage import patient_merges as store
from ...worklist.live_feed import publish_changes
from ..access import allow
from ..auditing import audit_context, audited
from ..keys import DATABASE, EFFECTS, current_user
from ..models import RecordId, Strict
from ..requests import path_id, read_query
from .openapi import NO_BODY, documented

routes = web.RouteTableDef()


class MergeQuery(Strict):
    facility: RecordId | None = Field(default=None, description="Only this facility's merges")


class PatientMerge(BaseModel):
    id: int
    facility_id: int
    facility_name: str
    facility_aet: str
    surviving_patient_id: str
    surviving_authority: str
    surviving_name: str
    surviving_birth_date: str
    surviving_sex: str
    prior_patient_id: str
    prior_authority: str
    source: str = Field(
        description="Who ordered it, e.g. HL7 ADT^A40 with the sender and control ID"
    )
    merged_at: str
    merged_by: int | None
    consultations_changed: int = Field(description="0: recorded, but nothing was filed under it")
    consultation_ids: list[int]
    reversed_at: str | None
    reversed_by: int | None
    reversed_by_name: str | None


class PatientMergeList(BaseModel):
    items: list[PatientMerge]


class MergeReversed(BaseModel):
    id: int
    consultations_restored: list[int]
    kept: dict[str, list[str]] = Field(
        description="Per consultation, the fields changed since the merge, which keep their"
        " newer value"
    )


@routes.get("/api/admin/patient-merges")
@allow("admin")
@audited("patient_merge.list", RESOURCE_TYPE)
@documented(
    "Patient merges hospital systems ordered (HL7 ADT^A40), newest first, with the"
    " consultations each changed and whether it was reversed",
    query=MergeQuery,
    response=PatientMergeList,
)
async def list_patient_merges(request: web.Request) -> web.Response:
    query = read_query(request, MergeQuery)
    rows = await request.app[DATABASE].read(store.list_merges, facility_id=query.facility)
    patients = {p for row in rows for p in (row["surviving_patient_id"], row["prior_patient_id"])}
    audit_context(request).detail["patients"] = sorted(patients)
    return web.json_response({"items": rows})


@routes.post("/api/admin/patient-merges/{id:\\d+}/reverse")
@allow("admin")
@audited("patient.merge_reversed", RESOURCE_TYPE)
@documented(
    "Reverse a patient merge: each consultation it changed gets back the values it had, field"
    " by field where it still holds the merged value; refused (409) when already reversed",
    body=NO_BODY,
    response=MergeReversed,
)
async def reverse_patient_merge(request: web.Request) -> web.Response:
    merge_id = path_id(request)
    database = request.app[DATABASE]
    reversal = await database.write(
        reverse_merge, merge_id, actor_user_id=current_user(request).id, now=utc_now()
    )
    await publish_changes(database, request.app[EFFECTS], reversal.consultation_ids)
    audit = audit_context(request)
    audit.touches(f"{reversal.surviving_patient_id},{reversal.prior_patient_id}", None, merge_id)
    audit.detail.update(
        facility_id=reversal.facility_id,
        consultations=reversal.consultation_ids,
        kept={str(k): v for k, v in reversal.kept.items()},
    )
    answer = MergeReversed(
        id=merge_id,
        consultations_restored=sorted(reversal.restored),
        kept={str(k): v for k, v in reversal.kept.items()},
    )
    return web.json_response(answer.model_dump())
