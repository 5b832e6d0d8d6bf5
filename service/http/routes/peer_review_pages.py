"""Peer-review pages (issue 20 item 1): the reviewers' queue with the discrepancies and the
readers' figures, one review (blind: report text and exam, no reader's name), one discrepancy.
Server-rendered from the same domain calls as the API; /static/peer_review.js posts the forms
to the API and reloads."""

from __future__ import annotations

from aiohttp import web

from ...auth.access import REGIONAL, consultation_scope
from ...clock import utc_now
from ...peer_review import reviewing, sampling
from ...peer_review.reviewing import PeerRefused
from ...quality.labels import exam_item_label
from ...storage import peer_reviews as store
from ..access import allow
from ..auditing import audited
from ..errors import ApiError
from ..keys import DATABASE, PEER_REVIEW, current_user
from ..requests import path_id
from .openapi import page
from .pages import page_locale, render

routes = web.RouteTableDef()

REVIEWERS = ("specialist", "manager")


def _with_exam(rows: list[dict], locale: str, user_id: int) -> list[dict]:
    return [
        {
            **reviewing.for_caller(r, user_id),
            "exam": exam_item_label(r["modality"], r["body_part"], locale),
        }
        for r in rows
    ]


@routes.get("/peer-reviews")
@allow(*REVIEWERS)
@audited("peer_review.queue", "peer_review")
@page("Peer review: the reports to review, the discrepancies and the readers' figures")
async def queue_page(request: web.Request) -> web.Response:
    user = current_user(request)
    database, locale = request.app[DATABASE], page_locale(request)
    await database.write(sampling.catch_up, request.app[PEER_REVIEW], utc_now())
    scope = consultation_scope(user)
    queue = await database.read(store.queue, user.id, scope)
    manager = user.role == "manager"
    discrepancies = await database.read(store.discrepancies, scope, None if manager else user.id)
    everyone = manager and user.facility_kind == REGIONAL
    figures = await database.read(store.reader_figures, None if everyone else (user.id,))
    for row in figures:
        row["agreement"] = (
            round(100 * row["agreed"] / row["reviewed"], 1) if row["reviewed"] else None
        )
    return render(
        request,
        "peer_reviews.html",
        queue=_with_exam(queue, locale, user.id),
        discrepancies=_with_exam(discrepancies, locale, user.id),
        figures=figures,
        user_id=user.id,
    )


@routes.get(r"/peer-reviews/{id:\d+}")
@allow(*REVIEWERS)
@audited("peer_review.view", "peer_review")
@page("One peer review: the issued report's text and exam, without the first reader's name")
async def review_page(request: web.Request) -> web.Response:
    user = current_user(request)
    try:
        row = await request.app[DATABASE].read(reviewing.view, path_id(request), user)
    except PeerRefused as exc:
        raise ApiError(403, exc.code, exc.detail) from exc
    [review] = _with_exam([row], page_locale(request), user.id)
    return render(request, "peer_review.html", review=review, user_id=user.id)


@routes.get(r"/peer-reviews/{id:\d+}/discrepancy")
@allow(*REVIEWERS)
@audited("peer_review.discrepancy_view", "peer_review")
@page("A discrepancy a peer review opened: its answer by the first reader, its closing")
async def discrepancy_page(request: web.Request) -> web.Response:
    user = current_user(request)
    row = await request.app[DATABASE].read(reviewing.discrepancy, path_id(request), user)
    [item] = _with_exam([row], page_locale(request), user.id)
    closer = (
        user.role == "manager" and user.facility_kind == REGIONAL and row["reader_id"] != user.id
    )
    return render(
        request,
        "peer_discrepancy.html",
        item=item,
        is_reader=row["reader_id"] == user.id,
        may_close=closer,
    )
