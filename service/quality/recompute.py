"""Recompute QC scores and the recognition list: monthly in the background, on demand.

A month's scores are recomputed from that month's studies plus the retake window before it,
and replace the stored month in one write (the read and the arithmetic run on a reader thread
first, so the writer is held only for the insert). "Incrementally where cheap": the monthly
round recomputes only the month just closed and the current one (late signatures still change
the month just closed); ``all_months`` recomputes everything (CLI ``--all``).

The list is evaluated over the rules' window of *complete* months before ``now``'s month, so
the background round and a manager's on-demand run on the same day agree.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import sqlite_utils

from worklists.quality import month_bounds, monthly_scores
from worklists.recognition import Change, RecognitionRules, evaluate, sum_totals

from ..clock import to_iso
from ..peer_review.qc_feed import with_agreement, with_open_discrepancies
from ..storage import quality as scores_store
from ..storage import recognition as list_store
from ..storage.database import Database

STATE_KEY = "qc.closed_month"
"""``ingest_state`` key: the last month whose closing the monthly round has done."""


def shift(month: str, months: int) -> str:
    index = int(month[:4]) * 12 + int(month[5:7]) - 1 + months
    return f"{index // 12:04d}-{index % 12 + 1:02d}"


def _zone(name: str) -> tzinfo:
    """A facility's zone (validated when it was set); UTC for a name this system lacks."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return UTC


def compute_month(db: sqlite_utils.Database, month: str, rules: RecognitionRules) -> list:
    """Read ``month``'s rows (and the retake window before it) and compute its scores: each
    facility's month is a month of its own time zone, so one read per zone in use."""
    scores = []
    for zone_name, facility_ids in scores_store.facility_zones(db).items():
        zone = _zone(zone_name)
        start, end = month_bounds(month, zone)
        rows = scores_store.study_rows(
            db, to_iso(start - rules.retake_window), to_iso(end), facility_ids
        )
        zone_scores = monthly_scores(rows, month, rules.retake_window, zone)
        scores += with_agreement(db, month, zone_scores, zone, facility_ids)
    return sorted(scores, key=lambda s: s.key)


async def recompute_months(
    database: Database, months: list[str], rules: RecognitionRules, now: datetime
) -> dict[str, int]:
    """Recompute and store each month's scores; rows stored per month."""
    stored: dict[str, int] = {}
    for month in months:
        scores = await database.read(compute_month, month, rules)
        stored[month] = await database.write(scores_store.replace_month, month, scores, to_iso(now))
    return stored


def window_months(rules: RecognitionRules, now: datetime) -> list[str]:
    """The complete months the list is judged on: the ``rules.months`` before ``now``'s."""
    current = now.astimezone(UTC).strftime("%Y-%m")
    return [shift(current, -n) for n in range(rules.months, 0, -1)]


def _evaluate_and_apply(
    db: sqlite_utils.Database,
    rules: RecognitionRules,
    months: list[str],
    at: str,
    by_user: int | None,
) -> list[Change]:
    totals = sum_totals(scores_store.window_scores(db, months[0], months[-1]))
    totals = with_open_discrepancies(db, totals)
    changes = evaluate(rules, list_store.statuses(db), totals)
    list_store.apply_changes(db, changes, at, by_user, rules.as_dict(), months)
    return changes


async def evaluate_list(
    database: Database, rules: RecognitionRules, now: datetime, by_user: int | None = None
) -> list[Change]:
    """Judge every facility × exam item against the rules and record the changes (one write:
    the statuses read and the changes written cannot interleave with another evaluation)."""
    months = window_months(rules, now)
    return await database.write(_evaluate_and_apply, rules, months, to_iso(now), by_user)


@dataclass(frozen=True)
class Outcome:
    months: dict[str, int]
    changes: list[Change]

    def as_dict(self) -> dict:
        return {
            "months": self.months,
            "changes": [
                {"facility_id": c.key[0], "modality": c.key[1], "body_part": c.key[2],
                 "change": c.change, "reasons": [r.code for r in c.reasons]}
                for c in self.changes
            ],
        }  # fmt: skip


async def recompute(
    database: Database,
    rules: RecognitionRules,
    now: datetime,
    months: list[str] | None = None,
    by_user: int | None = None,
) -> Outcome:
    """On demand: the given months (default the month just closed and the current one), then
    the list."""
    current = now.astimezone(UTC).strftime("%Y-%m")
    months = months or [shift(current, -1), current]
    stored = await recompute_months(database, months, rules, now)
    return Outcome(stored, await evaluate_list(database, rules, now, by_user))


async def all_months(database: Database) -> list[str]:
    return await database.read(scores_store.received_months)


async def monthly_round(
    database: Database, rules: RecognitionRules, now: datetime
) -> Outcome | None:
    """The background task's round: once a month has closed (and not yet been done), recompute
    it and the current month, then the list. Every other round does nothing (one read)."""
    closed = shift(now.astimezone(UTC).strftime("%Y-%m"), -1)
    if await database.read(scores_store.closed_month, STATE_KEY) == closed:
        return None
    outcome = await recompute(database, rules, now)
    await database.write(scores_store.set_closed_month, STATE_KEY, closed)
    return outcome
