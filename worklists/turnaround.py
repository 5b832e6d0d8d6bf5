"""Turnaround rules: milestones from events, stage durations, percentiles, SLA and breach stage.

Events are the truth (DESIGN.md): every figure here is computed from a consultation's events
alone. Pure code: no I/O, no clock reads; times are ISO 8601 UTC strings or datetimes passed in.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, fields
from datetime import UTC, datetime, timedelta
from typing import Any

MILESTONE_EVENTS = {
    "requested_at": ("requested",),
    "images_at": ("images_received",),
    "claimed_at": ("claimed",),
    "signed_at": ("signed",),
    "delivered_at": ("delivered",),
    "acknowledged_at": ("acknowledged",),
    "cancelled_at": ("cancelled",),
    "escalated_at": ("escalated",),
    "written_at": ("written",),
    "reviewed_at": ("reviewed",),
}
"""Milestone column -> the event types whose FIRST occurrence sets it."""


@dataclass(frozen=True)
class Stage:
    """A measured interval between two milestones of one consultation."""

    name: str
    start: str
    end: str


STAGES = (
    Stage("received_to_claimed", "received_at", "claimed_at"),
    Stage("claimed_to_signed", "claimed_at", "signed_at"),
    Stage("received_to_signed", "received_at", "signed_at"),
    Stage("signed_to_delivered", "signed_at", "delivered_at"),
    Stage("delivered_to_acknowledged", "delivered_at", "acknowledged_at"),
    Stage("end_to_end", "received_at", "delivered_at"),
)
"""``received`` is the first of request / images; ``end_to_end`` ends when the report reaches
the clinic (acknowledgement is the clinic's own time and has its own stage)."""
STAGE_NAMES = tuple(stage.name for stage in STAGES)

REVIEW_STAGES = (
    Stage("claimed_to_written", "claimed_at", "written_at"),
    Stage("written_to_reviewed", "written_at", "reviewed_at"),
)
"""Two-level sign-off (issue 19): the writer's reading (first claim to the signature for review)
and the wait for the reviewer (that signature to the review). Only reviewed reports have them;
``signed`` is then the issue of the reviewed version, so received -> signed includes review."""

BREACH_STAGES = (
    ("awaiting_images_or_request", "received_at", "queued_at"),
    ("waiting_in_queue", "queued_at", "claimed_at"),
    ("reading", "claimed_at", "signed_at"),
)
"""The parts of received -> signed a breach is blamed on: whichever took the longest."""


@dataclass(frozen=True)
class Milestones:
    """First time of each milestone of one consultation, plus who read it and how it looked."""

    requested_at: str | None = None
    images_at: str | None = None
    received_at: str | None = None
    queued_at: str | None = None
    claimed_at: str | None = None
    signed_at: str | None = None
    delivered_at: str | None = None
    acknowledged_at: str | None = None
    cancelled_at: str | None = None
    escalated_at: str | None = None
    written_at: str | None = None
    reviewed_at: str | None = None
    reader_id: int | None = None
    quality: str | None = None
    quality_reason: str = ""
    critical: bool = False

    def as_row(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)} | {
            "critical": int(self.critical)
        }


def parse(at: str) -> datetime:
    """An ISO 8601 UTC time (``Z`` or offset) as an aware datetime."""
    value = datetime.fromisoformat(at.replace("Z", "+00:00"))
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def milestones(events: Iterable[Mapping[str, Any]]) -> Milestones:
    """Milestones from events (``type``, ``at``, ``actor_user_id``, ``detail`` as a dict).

    The FIRST of each type counts (a corrected report, version > 1, does not move ``signed``);
    ``queued`` is when both the request and the images were there (the later of the two).
    """
    ordered = sorted(events, key=lambda e: parse(e["at"]))
    first: dict[str, Mapping[str, Any]] = {}
    for event in ordered:
        first.setdefault(event["type"], event)
    times = {
        column: first[types[0]]["at"] if types[0] in first else None
        for column, types in MILESTONE_EVENTS.items()
    }
    present = [t for t in (times["requested_at"], times["images_at"]) if t]
    signed = first.get("signed")
    detail = dict(signed.get("detail") or {}) if signed else {}
    return Milestones(
        **times,
        received_at=min(present, key=parse) if present else None,
        queued_at=max(present, key=parse) if len(present) == 2 else None,
        reader_id=signed.get("actor_user_id") if signed else None,
        quality=detail.get("quality"),
        quality_reason=detail.get("quality_reason") or "",
        critical=bool(detail.get("critical")),
    )


def seconds_between(start: str | None, end: str | None) -> float | None:
    """Seconds from ``start`` to ``end``; None unless both happened."""
    if start is None or end is None:
        return None
    return (parse(end) - parse(start)).total_seconds()


def stage_seconds(m: Milestones | Mapping[str, Any], stage: Stage) -> float | None:
    get = m.get if isinstance(m, Mapping) else lambda name: getattr(m, name)
    return seconds_between(get(stage.start), get(stage.end))


def percentile(values: Sequence[float], p: float) -> float | None:
    """Nearest-rank percentile of sorted ``values`` (a value that occurred; None when empty).

    Nearest rank rather than interpolation: "p90 = 4 h" then means one real consultation took
    4 h and 90 % took at most that, which is what a manager reads it as.
    """
    if not values:
        return None
    rank = max(1, math.ceil(p / 100 * len(values)))
    return float(values[rank - 1])


@dataclass(frozen=True)
class Summary:
    count: int
    p50: float | None
    p90: float | None
    p95: float | None
    mean: float | None


def mean_of_milliseconds(total_ms: int, count: int) -> float | None:
    """Mean in seconds of ``count`` durations summing to ``total_ms`` whole milliseconds.

    One correctly rounded division of exact integers: the same float whatever the order the
    durations were added in, so a mean from per-group totals equals one from the values.
    """
    return total_ms / (1000 * count) if count else None


def summarize(values: Iterable[float]) -> Summary:
    """Count and p50 / p90 / p95 / mean of durations in seconds (stored to the millisecond)."""
    ordered = sorted(values)
    return Summary(
        len(ordered),
        percentile(ordered, 50),
        percentile(ordered, 90),
        percentile(ordered, 95),
        mean_of_milliseconds(sum(round(v * 1000) for v in ordered), len(ordered)),
    )


PERIODS = ("day", "week", "month")


def period_of(at: str, period: str) -> str:
    """The UTC day (2026-03-05), ISO week's Monday (2026-03-02) or month (2026-03) of ``at``."""
    moment = parse(at).astimezone(UTC)
    if period == "day":
        return moment.date().isoformat()
    if period == "week":
        return (moment.date() - timedelta(days=moment.weekday())).isoformat()
    if period == "month":
        return moment.strftime("%Y-%m")
    raise ValueError(f"unknown period {period!r}")


def sla_met(signed_at: str | None, due_at: str, now: datetime) -> bool | None:
    """Met if first signed at or before ``due_at``; None while still undecided (not yet due)."""
    if signed_at is not None:
        return parse(signed_at) <= parse(due_at)
    return False if now > parse(due_at) else None


def breach_stage(m: Milestones | Mapping[str, Any], now: datetime) -> str:
    """The part of received -> signed where most of the time went (unfinished ones run to now).

    A stage not yet reached counts from its start to ``now``; stages never started count zero.
    """
    get = m.get if isinstance(m, Mapping) else lambda name: getattr(m, name)
    best, longest = BREACH_STAGES[0][0], -1.0
    for name, start, end in BREACH_STAGES:
        begin = get(start)
        if begin is None:
            continue
        finish = parse(get(end)) if get(end) else now
        spent = (finish - parse(begin)).total_seconds()
        if spent > longest:
            best, longest = name, spent
    return best
