"""The escalation sweep: every few seconds, find items nobody took in time and tell a manager.

An open consultation unclaimed after ``TELEREAD_ESCALATION_SHARE`` of its SLA, or past its
deadline, gets an ``escalated`` event (detail: reason, managers told) once per reason; the
on-duty managers (else every manager of the regional centre) are notified in-app and through the
webhook, and the worklist hears ``WorklistChange(kind="escalated")``.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime
from typing import Any

import sqlite_utils

from worklists.escalation import escalation_due

from ..clock import from_iso, to_iso, utc_now
from ..storage import Database
from ..storage.consultations import append_event, escalation_candidates
from .effects import AfterCommit, Effects
from .live import WorklistChange
from .notifications import Notice, notice_facts
from .roster import managers_to_tell

log = logging.getLogger(__name__)


def _reason(row: dict[str, Any], now: datetime, share: float) -> str | None:
    starts = [from_iso(t) for t in (row["received_at"], row["requested_at"]) if t]
    start = max(starts) if starts else from_iso(row["created_at"])
    expires = row["claim_expires_at"]
    claimed = row["claimed_by"] is not None and expires is not None and from_iso(expires) > now
    reason = escalation_due(start, from_iso(row["due_at"]), claimed, now, share)
    done = {json.loads(d).get("reason") for d in (row["escalations"] or "").split("\x1f") if d}
    return None if reason is None or reason in done else reason


def escalate_due(db: sqlite_utils.Database, now: datetime, share: float) -> Effects:
    """Record one ``escalated`` event per new reason (one transaction: never twice); the
    worklists hear ``escalated`` and the managers are told, once it is committed."""
    found: list[Effects] = []
    managers: list[int] | None = None
    for row in escalation_candidates(db):
        reason = _reason(row, now, share)
        if reason is None:
            continue
        if managers is None:
            managers = managers_to_tell(db, now)
        append_event(
            db, row["id"], "escalated", to_iso(now), None, {"reason": reason, "managers": managers}
        )
        notice = Notice(
            kind="escalation",
            user_ids=tuple(managers),
            consultation_id=row["id"],
            title=f"Escalation: #{row['id']} {row['priority']} {reason}",
            body=f"{row['facility_name']}, queue {row['queue']}, due {row['due_at']}",
            facts=notice_facts(row, reason=reason),
            message="escalation",
            params={
                "reason": reason,
                "priority": row["priority"],
                "facility": row["facility_name"],
                "queue": row["queue"],
                "due_at": row["due_at"],
            },
        )
        change = WorklistChange.of(row, "escalated", {"reason": reason})
        found.append(Effects(changes=(change,), notices=(notice,)))
    return Effects.merged(found)


async def sweep_once(
    database: Database, effects: AfterCommit, share: float, now: datetime | None = None
) -> Effects:
    """One sweep: record what is due, then publish and notify it."""
    return await effects.write(database, escalate_due, now or utc_now(), share)
