"""How long applied control IDs are remembered for the duplicate check.

An MLLP sender that missed an ACK sends the same message again within seconds or minutes (an
interface engine's retry queue, a restart); a month covers the longest outage either side
sensibly waits out. Without a limit ``hl7_received`` grows by one row per ADT update for ever.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from ..clock import to_iso, utc_now
from ..storage import Database, hl7_received

REMEMBER = timedelta(days=30)
#: How often the primary forgets what is older than :data:`REMEMBER`.
PRUNE_EVERY_SECONDS = 3600.0


async def forget_old_control_ids(database: Database, now: datetime | None = None) -> int:
    """One round: control IDs received more than :data:`REMEMBER` ago are dropped."""
    cutoff = to_iso((now or utc_now()) - REMEMBER)
    return await database.write(hl7_received.forget_before, cutoff)
