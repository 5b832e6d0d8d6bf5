"""Withdrawing a request before it is reported: the HIS cancels an order (HL7 ORC-1 ``CA``, a
FHIR ServiceRequest revoked) or a clinic withdraws its own request.

A cancelled consultation leaves the worklists (its status is finished), its claim is released
and its modality worklist item goes; the event keeps who or what cancelled it and why, for the
timeline and the turnaround figures (``cancelled_at``). A signed or closed consultation is not
cancelled: its report stands and is corrected, never withdrawn.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlite_utils

from worklists.status import FINISHED_STATUSES, ConsultationStatus

from ..clock import to_iso
from ..storage import Conflict, RecordNotFound
from ..storage import consultations as store


def cancel_request(
    db: sqlite_utils.Database,
    consultation_id: int,
    *,
    user_id: int | None,
    reason: str,
    now: datetime,
    via: str = "web",
) -> dict[str, Any]:
    """Cancel an open consultation (inside the caller's write transaction); its row before."""
    row = db.execute("SELECT * FROM consultations WHERE id = ?", [consultation_id]).fetchone()
    if row is None:
        raise RecordNotFound(f"consultation {consultation_id}")
    before = dict(row)
    if before["status"] in FINISHED_STATUSES:
        raise Conflict("finished", f"consultation {consultation_id} is already {before['status']}")
    stamp = to_iso(now)
    store.update_consultation(
        db,
        consultation_id,
        {
            "status": ConsultationStatus.CANCELLED.value,
            "claimed_by": None,
            "claim_expires_at": None,
            "updated_at": stamp,
        },
    )
    detail: dict[str, Any] = {"reason": reason, "via": via}
    store.append_event(db, consultation_id, "cancelled", stamp, user_id, detail)
    return before
