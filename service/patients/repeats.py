"""Before a repeat scan: the same exam item for the same person within the item's window.

The person is the patient at every facility linked to them in the patient index (never the same
Patient ID at another facility alone: storage/patients.recent_exams follows links only). The
window per item is the worklist rules' ``[repeat_exams]`` (worklists/repeat_exams.py). What a
requester is shown is kept with the alert, as it was shown: the prior exam's facility, when,
the signed report's impression and whether that facility is on the recognition list for the
item. Synchronous functions, run inside the caller's transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

import sqlite_utils

from worklists.repeat_exams import RepeatWindows

from ..clock import from_iso, to_iso
from ..storage import Conflict, RecordNotFound
from ..storage import patients as patient_store
from ..storage import repeat_alerts as store

SOURCES = ("web", "api", "hl7", "fhir", "ingest")


@dataclass(frozen=True)
class ExamItem:
    """Whose exam of what, asked by which facility."""

    facility_id: int
    patient_id: str
    modality: str
    body_part: str


@dataclass(frozen=True)
class PriorExams:
    """The item's window (days) and the same-item exams of the person in it, newest first."""

    days: int
    matches: list[dict[str, Any]]


def prior_exams(
    db: sqlite_utils.Database,
    windows: RepeatWindows,
    item: ExamItem,
    now: datetime,
    exclude: int | None = None,
) -> PriorExams:
    """Exams of the item within its window before ``now`` (none when the item has no window,
    or the patient or the item is not known); cancelled requests are no exam."""
    days = windows.days(item.modality, item.body_part)
    since = windows.since(item.modality, item.body_part, now)
    if since is None or not item.patient_id:
        return PriorExams(days, [])
    rows = patient_store.recent_exams(
        db,
        item.facility_id,
        item.patient_id,
        item.modality.upper(),
        item.body_part.upper(),
        to_iso(since),
        exclude,
    )
    return PriorExams(days, [_match(r) for r in rows if r["status"] != "cancelled"])


def _match(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "consultation_id": row["consultation_id"],
        "facility_id": row["facility_id"],
        "facility_name": row["facility_name"],
        "modality": row["modality"],
        "body_part": row["body_part"],
        "performed_at": row["performed_at"],
        "done": row["received_at"] is not None,
        "impression": row["impression"] or "",
        "recognised": row["recognition"] == "listed",
    }


def record_alert(
    db: sqlite_utils.Database,
    item: ExamItem,
    prior: PriorExams,
    *,
    source: str,
    decision: str,
    now: datetime,
    user_id: int | None = None,
    reason: str = "",
    consultation_id: int | None = None,
) -> int:
    """Store an alert; ``decision`` pending (asked, unanswered) or already taken."""
    stamp = to_iso(now)
    return store.insert_alert(
        db,
        {
            "facility_id": item.facility_id,
            "patient_id": item.patient_id,
            "modality": item.modality.upper(),
            "body_part": item.body_part.upper(),
            "window_days": prior.days,
            "matches": prior.matches,
            "source": source if source in SOURCES else "api",
            "decision": decision,
            "reason": reason,
            "user_id": user_id,
            "created_at": stamp,
            "decided_at": None if decision == "pending" else stamp,
            "consultation_id": consultation_id,
        },
    )


def pending_alert(db: sqlite_utils.Database, alert_id: int, facility_id: int) -> dict[str, Any]:
    """A pending alert of the caller's facility (RecordNotFound for another facility's, so
    its existence is not disclosed; Conflict once it was answered)."""
    alert = store.get_alert(db, alert_id)
    if alert["facility_id"] != facility_id:
        raise RecordNotFound(f"repeat alert {alert_id}")
    if alert["decision"] != "pending":
        raise Conflict("alert_decided", f"repeat alert {alert_id} was already answered")
    return alert


def answerable(db: sqlite_utils.Database, alert_id: int, item: ExamItem | None) -> None:
    """The pending alert a request proceeds from is its facility's and about the same patient
    and exam item (a reason given to one alert does not cover another exam)."""
    if item is None:
        raise Conflict("alert_mismatch", f"repeat alert {alert_id} is about another exam")
    alert = pending_alert(db, alert_id, item.facility_id)
    about = (alert["patient_id"], alert["modality"], alert["body_part"])
    if about != (item.patient_id, item.modality.upper(), item.body_part.upper()):
        raise Conflict("alert_mismatch", f"repeat alert {alert_id} is about another exam")


def withdraw(
    db: sqlite_utils.Database, alert_id: int, *, facility_id: int, user_id: int, now: datetime
) -> dict[str, Any]:
    """The requester withdraws: nothing is filed, the repeat is counted as avoided."""
    alert = pending_alert(db, alert_id, facility_id)
    store.decide(db, alert_id, "withdrawn", reason="", user_id=user_id, now=to_iso(now))
    return alert | {"decision": "withdrawn"}


def zone_of(facility: dict[str, Any] | None) -> tzinfo:
    try:
        return ZoneInfo(facility["timezone"]) if facility and facility["timezone"] else UTC
    except (KeyError, ValueError):
        return UTC


def local_time(at: str, zone: tzinfo) -> str:
    """``2026-12-01 18:00`` in the zone (the requester's facility's)."""
    return from_iso(at).astimezone(zone).strftime("%Y-%m-%d %H:%M")


def with_local_times(matches: list[dict[str, Any]], zone: tzinfo) -> list[dict[str, Any]]:
    return [m | {"performed_at_local": local_time(m["performed_at"], zone)} for m in matches]


def note(matches: list[dict[str, Any]], zone: tzinfo) -> str:
    """The alert as one line for a hospital system (HL7 ACK, FHIR OperationOutcome): English,
    as the other texts they receive; times in the ordering facility's zone."""
    parts = []
    for m in matches:
        recognised = "recognised" if m["recognised"] else "not on the recognition list"
        impression = f"; impression: {m['impression']}" if m["impression"] else "; not reported"
        done = "done" if m.get("done", True) else "requested (no images yet)"
        parts.append(
            f"{m['modality']} {m['body_part']} {done} at {m['facility_name']} on"
            f" {local_time(m['performed_at'], zone)} ({recognised}){impression}"
        )
    return "Repeat exam: " + " | ".join(parts)
