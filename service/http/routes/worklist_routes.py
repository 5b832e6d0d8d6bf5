"""The reading worklist and single consultations."""

from __future__ import annotations

from datetime import datetime

from aiohttp import web

from worklists.claims import ClaimState, claim_state
from worklists.ordering import WorklistKey

from ...auth.access import consultation_scope
from ...clock import from_iso, to_iso, utc_now
from ...storage import consultations as store
from ...storage.linked_priors import prior_counts
from ...worklist.conversation import preliminary_of
from ..access import allow
from ..answers import ConsultationDetail
from ..auditing import audit_context, audited
from ..errors import ApiError
from ..keys import DATABASE, current_user
from ..models import WorklistCounts, WorklistItem, WorklistQuery, WorklistResponse
from ..requests import path_id, read_query
from .openapi import documented

routes = web.RouteTableDef()

WORKLIST_ROLES = ("radiographer", "clinician", "requester", "specialist", "manager")


def worklist_item(row: dict, now: datetime | None = None) -> WorklistItem:
    """One row as the API shows it. Rows come from our own query, so they are not validated
    again field by field (``model_construct``): 50 validations were a third of a request."""
    return WorklistItem.model_construct(
        id=row["id"],
        study_instance_uid=row["study_instance_uid"],
        facility=row["facility_name"],
        facility_id=row["facility_id"],
        patient_name=row["patient_name"],
        patient_id=row["patient_id"],
        accession_number=row["accession_number"],
        modality=row["modality"],
        body_part=row["body_part"],
        priority=row["priority"],
        status=row["status"],
        instances=row["instances"],
        received_at=row["received_at"],
        requested_at=row["requested_at"],
        due_at=row["due_at"],
        clinical_question=row["clinical_question"],
        queue=row["queue"],
        escalation=row.get("escalation"),
        prior_count=row.get("prior_count", 0),
        **claim_fields(row, now or utc_now()),
    )


def claim_fields(row: dict, now: datetime) -> dict:
    """Who holds the item, unless the lease ran out (then it shows as free)."""
    expires = row.get("claim_expires_at")
    state = claim_state(row.get("claimed_by"), from_iso(expires) if expires else None, now)
    if state is not ClaimState.HELD:
        return {}
    return {
        "claimed_by": row.get("claimed_by_name"),
        "claimed_by_id": row["claimed_by"],
        "claim_expires_at": expires,
    }


@routes.get("/api/worklist")
@allow(*WORKLIST_ROLES)
@audited("worklist.query", "worklist")
@documented(
    "The worklist, ordered by due time then priority, paged by keyset cursor",
    query=WorklistQuery,
    response=WorklistResponse,
)
async def get_worklist(request: web.Request) -> web.Response:
    query = read_query(request, WorklistQuery)
    user = current_user(request)
    mine_first = query.order == "mine_first"
    after, after_mine = decode_cursor(query.cursor, mine_first) if query.cursor else (None, None)
    filters = store.WorklistFilter(
        statuses=query.status,
        priorities=query.priority,
        modalities=[m.upper() for m in query.modality],
        facility_ids=query.facility,
        body_parts=[b.upper() for b in query.body_part],
        queues=[q.strip().lower() for q in query.queue],
        claimed_by=user.id if query.assigned == "me" else None,
        now=to_iso(utc_now()),
    )
    scope = consultation_scope(user)
    page = await request.app[DATABASE].read(
        store.worklist,
        scope,
        filters,
        query.limit,
        after,
        own_queues_of=user.id if mine_first else None,
        after_mine=after_mine,
    )
    audit_context(request).detail |= {
        "filters": query.model_dump(exclude_defaults=True),
        "consultations": [row["id"] for row in page.items],
        "patients": sorted({row["patient_id"] for row in page.items if row["patient_id"]}),
    }
    now = utc_now()
    answer = WorklistResponse.model_construct(
        items=[worklist_item(row, now) for row in page.items],
        counts=WorklistCounts.model_validate(page.counts),
        next=encode_cursor(page.next, page.next_mine) if page.next else None,
    )
    return web.Response(text=answer.model_dump_json(), content_type="application/json")


def encode_cursor(key: WorklistKey, mine: int | None) -> str:
    """The keyset cursor; ``mine_first`` pages prefix the last row's not-mine flag (m0./m1.)."""
    return key.encode() if mine is None else f"m{mine}.{key.encode()}"


def decode_cursor(cursor: str, mine_first: bool) -> tuple[WorklistKey, int | None]:
    """A cursor back to its key; one made for the other ordering is refused."""
    mine: int | None = None
    text = cursor
    if cursor[:3] in ("m0.", "m1."):
        mine, text = int(cursor[1]), cursor[3:]
    try:
        if (mine is not None) != mine_first:
            raise ValueError("cursor made for another order")
        return WorklistKey.decode(text), mine
    except ValueError as exc:
        raise ApiError(400, "invalid_cursor", "the cursor is not one this API gave") from exc


def _without_review_comment(event: dict) -> dict:
    """A reviewer's comment to the writer is the reading room's own (two-level sign-off): the
    clinic sees that the report was returned, not what was said."""
    if event["type"] != "returned" or not isinstance(event["detail"], dict):
        return event
    return event | {"detail": {k: v for k, v in event["detail"].items() if k != "comment"}}


@routes.get("/api/consultations/{id:\\d+}")
@allow(*WORKLIST_ROLES)
@audited("consultation.view", "consultation")
@documented("One consultation with its timeline", response=ConsultationDetail)
async def get_consultation(request: web.Request) -> web.Response:
    consultation_id = path_id(request)
    scope = consultation_scope(current_user(request))
    database = request.app[DATABASE]
    row = await database.read(store.get_consultation, scope, consultation_id)
    audit_context(request).touches(row["patient_id"], row["study_instance_uid"])
    priors = await database.read(prior_counts, scope, [consultation_id])
    row["prior_count"] = priors.get(consultation_id, 0)
    events = await database.read(store.events_of, consultation_id)
    if current_user(request).role not in ("specialist", "manager"):
        events = [_without_review_comment(e) for e in events]
    item = worklist_item(row).model_dump()
    item |= {
        "clinical_history": row["clinical_history"],
        "callback_phone": row["callback_phone"],
        "facility_timezone": row["facility_timezone"],
        "preliminary": preliminary_of(events),
        "events": [
            {
                "type": e["type"],
                "at": e["at"],
                "actor_user_id": e["actor_user_id"],
                "actor": e["actor"],
                "detail": e["detail"],
            }
            for e in events
        ],
    }
    return web.json_response(item)
