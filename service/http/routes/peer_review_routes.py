"""Peer review of issued reports over HTTP (issue 20 item 1): the reviewers' queue, claiming and
scoring a review RADPEER-style, a manager's pick, and the discrepancy a score opens (answered
by the first reader, closed by a manager).

Blind: what a reviewer is served (queue, review) never names the report's first reader nor its
signer; the report text is served without the signed PDF, which carries the signer's name.
"""

from __future__ import annotations

from typing import Any, Literal

from aiohttp import web
from pydantic import BaseModel, Field

from worklists.peer_review import ScoreError, radpeer_score

from ...auth.access import consultation_scope
from ...clock import utc_now
from ...peer_review import reviewing, sampling
from ...peer_review.figures import reader_figures
from ...peer_review.reviewing import PeerRefused
from ...quality import recompute as qc
from ...storage import peer_reviews as store
from ..access import allow, at_centre
from ..auditing import audit_context, audited, not_audited
from ..errors import ApiError
from ..keys import DATABASE, EFFECTS, PEER_REVIEW, RECOGNITION_RULES, SETTINGS, current_user
from ..models import Strict
from ..requests import path_id, read_model
from .openapi import NO_BODY, documented

routes = web.RouteTableDef()

REVIEWERS = ("specialist", "manager")
ERRORS = (400, 403, 404, 409)


class Items(BaseModel):
    """A list of peer reviews or figures (no names of first readers in a reviewer's list)."""

    items: list[dict[str, Any]]


class Review(BaseModel):
    """One peer review as the reviewer sees it: report text, exam, claim; no names."""

    review: dict[str, Any]


class Claimed(BaseModel):
    id: int
    claimed_by_me: bool
    claim_expires_at: str


class Picked(BaseModel):
    id: int | None = Field(description="The review; null when the report already was on the queue")
    report_version_id: int
    already: bool


class ScoreBody(Strict):
    score: int = Field(ge=1, le=4, description="RADPEER: 1 agree; 2, 3, 4 discrepancy levels")
    significance: Literal["a", "b"] | None = Field(
        default=None, description="For 2–4: a unlikely, b likely clinically significant"
    )
    comment: str = Field(default="", max_length=4000, description="Required for 2–4")


class Scored(BaseModel):
    id: int
    score: str
    discrepancy: bool


class AnswerBody(Strict):
    answer: str = Field(min_length=1, max_length=4000, description="The first reader's answer")


class CloseBody(Strict):
    outcome: str = Field(min_length=1, max_length=4000, description="What the manager decided")


class Discrepancy(BaseModel):
    discrepancy: dict[str, Any]


@routes.get("/api/peer-reviews")
@allow(*REVIEWERS)
@audited("peer_review.queue", "peer_review")
@documented(
    "The peer-review queue: issued reports drawn (or picked) for a blind RADPEER review that the"
    " caller may take (never their own, nor one they co-signed), oldest first",
    response=Items,
)
async def get_queue(request: web.Request) -> web.Response:
    user = current_user(request)
    database = request.app[DATABASE]
    await database.write(sampling.catch_up, request.app[PEER_REVIEW], utc_now())
    rows = await database.read(store.queue, user.id, consultation_scope(user))
    return web.json_response({"items": [reviewing.for_caller(r, user.id) for r in rows]})


@routes.get(r"/api/peer-reviews/{id:\d+}")
@allow(*REVIEWERS)
@audited("peer_review.view", "peer_review")
@documented(
    "One peer review as its reviewer sees it: the issued report's text and the exam, without"
    " the first reader's or signer's name",
    response=Review,
    errors=(403, 404),
)
async def get_review(request: web.Request) -> web.Response:
    user = current_user(request)
    row = await _call(request.app[DATABASE].read, reviewing.view, path_id(request), user)
    audit_context(request).detail["consultation_id"] = row["consultation_id"]
    return web.json_response({"review": reviewing.for_caller(row, user.id)})


async def _call(run: Any, fn: Any, *args: Any) -> Any:
    try:
        return await run(fn, *args)
    except PeerRefused as exc:
        raise ApiError(403, exc.code, exc.detail) from exc
    except ScoreError as exc:
        raise ApiError(400, exc.code, str(exc)) from exc


@routes.post(r"/api/peer-reviews/{id:\d+}/claim")
@allow(*REVIEWERS)
@audited("peer_review.claim", "peer_review")
@documented(
    "Claim (or renew) a peer review: a lease like a reading claim; 403 for a report the caller"
    " signed or co-signed, 409 while another reviewer holds it",
    body=NO_BODY,
    response=Claimed,
    errors=ERRORS,
)
async def post_claim(request: web.Request) -> web.Response:
    answer = await _call(
        request.app[DATABASE].write,
        reviewing.claim,
        path_id(request),
        current_user(request),
        utc_now(),
        request.app[SETTINGS].claim_lease_minutes,
    )
    return web.json_response(answer)


@routes.post(r"/api/peer-reviews/{id:\d+}/release")
@allow(*REVIEWERS)
@audited("peer_review.release", "peer_review")
@documented(
    "Give a claimed peer review back to the queue", body=NO_BODY, errors=ERRORS, success=(204,)
)
async def post_release(request: web.Request) -> web.Response:
    await _call(
        request.app[DATABASE].write, reviewing.release, path_id(request), current_user(request)
    )
    return web.Response(status=204)


@routes.post(r"/api/peer-reviews/{id:\d+}/score")
@allow(*REVIEWERS)
@audited("peer_review.score", "peer_review")
@documented(
    "Score the claimed peer review RADPEER-style (1; 2a–4b with a comment); 3–4 and any b open"
    " a discrepancy and tell the first reader",
    body=ScoreBody,
    response=Scored,
    errors=ERRORS,
    success=(201,),
)
async def post_score(request: web.Request) -> web.Response:
    body = await read_model(request, ScoreBody)
    try:
        radpeer = radpeer_score(body.score, body.significance, body.comment)
    except ScoreError as exc:
        raise ApiError(400, exc.code, str(exc)) from exc
    scored = await _call(
        request.app[DATABASE].write,
        reviewing.score,
        path_id(request),
        current_user(request),
        radpeer,
        utc_now(),
    )
    audit_context(request).detail |= {
        "consultation_id": scored.consultation_id,
        "score": scored.code,
        "discrepancy": scored.discrepancy,
    }
    await request.app[EFFECTS].apply(scored.effects)
    if scored.code.endswith("b"):
        await _judge_the_list(request)
    answer = Scored(id=scored.review_id, score=scored.code, discrepancy=scored.discrepancy)
    return web.json_response(answer.model_dump(), status=201)


@routes.post(r"/api/consultations/{id:\d+}/peer-review")
@allow(at_centre("manager"))
@audited("peer_review.pick", "consultation")
@documented(
    "A manager of the regional centre puts the consultation's issued report on the"
    " peer-review queue",
    body=NO_BODY,
    response=Picked,
    errors=(403, 404, 409),
    success=(201, 200),
)
async def post_pick(request: web.Request) -> web.Response:
    user = current_user(request)
    review_id, version_id = await request.app[DATABASE].write(
        sampling.pick, path_id(request), user, utc_now()
    )
    audit_context(request).detail |= {"peer_review_id": review_id, "version_id": version_id}
    answer = Picked(id=review_id, report_version_id=version_id, already=review_id is None)
    return web.json_response(answer.model_dump(), status=200 if review_id is None else 201)


@routes.get("/api/peer-reviews/discrepancies")
@allow(*REVIEWERS)
@audited("peer_review.discrepancies", "peer_review")
@documented(
    "Discrepancies opened by peer reviews: a manager sees those within reach, a reader their"
    " own; open ones first",
    response=Items,
)
async def get_discrepancies(request: web.Request) -> web.Response:
    user = current_user(request)
    reader = None if user.role == "manager" else user.id
    await request.app[DATABASE].write(sampling.catch_up, request.app[PEER_REVIEW], utc_now())
    rows = await request.app[DATABASE].read(store.discrepancies, consultation_scope(user), reader)
    return web.json_response({"items": [reviewing.for_caller(r, user.id) for r in rows]})


@routes.get(r"/api/peer-reviews/{id:\d+}/discrepancy")
@allow(*REVIEWERS)
@audited("peer_review.discrepancy_view", "peer_review")
@documented(
    "A discrepancy: the score and comment, the first reader's answer, the outcome, the"
    " correcting version; for the first reader and managers",
    response=Discrepancy,
    errors=(404,),
)
async def get_discrepancy(request: web.Request) -> web.Response:
    user = current_user(request)
    row = await request.app[DATABASE].read(reviewing.discrepancy, path_id(request), user)
    return web.json_response({"discrepancy": reviewing.for_caller(row, user.id)})


@routes.post(r"/api/peer-reviews/{id:\d+}/answer")
@allow(*REVIEWERS)
@audited("peer_review.answer", "peer_review")
@documented(
    "The first reader answers the discrepancy a peer review opened on their report",
    body=AnswerBody,
    response=Discrepancy,
    errors=ERRORS,
)
async def post_answer(request: web.Request) -> web.Response:
    body = await read_model(request, AnswerBody)
    user = current_user(request)
    database = request.app[DATABASE]
    await _call(database.write, reviewing.answer, path_id(request), user, body.answer, utc_now())
    row = await database.read(reviewing.discrepancy, path_id(request), user)
    return web.json_response({"discrepancy": reviewing.for_caller(row, user.id)})


@routes.post(r"/api/peer-reviews/{id:\d+}/close")
@allow(at_centre("manager"))
@audited("peer_review.close", "peer_review")
@documented(
    "A manager closes the discrepancy with an outcome (a correction signed since is linked)",
    body=CloseBody,
    response=Discrepancy,
    errors=ERRORS,
)
async def post_close(request: web.Request) -> web.Response:
    body = await read_model(request, CloseBody)
    user = current_user(request)
    database = request.app[DATABASE]
    await _call(database.write, reviewing.close, path_id(request), user, body.outcome, utc_now())
    row = await database.read(reviewing.discrepancy, path_id(request), user)
    audit_context(request).detail["correction_version_id"] = row["correction_version_id"]
    if row["significance"] == "b":
        await _judge_the_list(request)
    return web.json_response({"discrepancy": reviewing.for_caller(row, user.id)})


async def _judge_the_list(request: web.Request) -> None:
    """A clinically significant discrepancy opened or closed: the recognition list is judged
    now (service/quality/recompute.py), not at the month's end, so the facility × exam item
    is suspended (or restored) with its reason while it matters."""
    changes = await qc.evaluate_list(
        request.app[DATABASE], request.app[RECOGNITION_RULES], utc_now(), current_user(request).id
    )
    audit_context(request).detail["recognition_changes"] = len(changes)


@routes.get("/api/peer-reviews/figures")
@allow(*REVIEWERS)
@not_audited("peer-review counts per reader; no patient data")
@documented(
    "Peer-review figures per first reader (reviewed, agreeing, discrepancies): managers see"
    " every reader's, everyone else only their own (agreement in percent)",
    response=Items,
)
async def get_figures(request: web.Request) -> web.Response:
    rows = await reader_figures(request.app[DATABASE], current_user(request))
    return web.json_response({"items": rows})
