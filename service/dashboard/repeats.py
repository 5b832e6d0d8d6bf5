"""Repeat exams on the dashboard: per facility and exam item, the requests filed, the repeats
done anyway (proceeded with a reason, or recorded from an order or an arriving study), the
repeat rate and the repeats avoided (withdrawn on the request form), over whole months in the
caller's facility zone (storage/repeat_alerts.figures counts; the rate is computed here)."""

from __future__ import annotations

from datetime import datetime, tzinfo
from typing import Any

from ..clock import to_iso
from ..storage import Database
from ..storage import repeat_alerts as store
from ..storage.scope import Scope

MONTHS = 12


def months_back(now: datetime, zone: tzinfo, months: int = MONTHS) -> datetime:
    """The start of the month ``months - 1`` months before ``now``'s, in ``zone``."""
    local = now.astimezone(zone)
    index = local.year * 12 + local.month - 1 - (months - 1)
    return local.replace(
        year=index // 12, month=index % 12 + 1, day=1, hour=0, minute=0, second=0, microsecond=0
    )


def rate(repeats: int, requests: int) -> float | None:
    """Repeats per request filed, in percent (one decimal); None without a request."""
    return round(100.0 * repeats / requests, 1) if requests else None


async def repeat_figures(
    database: Database, scope: Scope, now: datetime, zone: tzinfo
) -> list[dict[str, Any]]:
    """Rows of facility, exam item, requests, repeats, rate (percent) and avoided, for the
    facilities in ``scope``, over the last :data:`MONTHS` months (this one included)."""
    if scope.nothing:
        return []
    since = to_iso(months_back(now, zone))
    rows = await database.read(store.figures, scope.facility_ids, since, to_iso(now))
    return [r | {"rate": rate(r["repeats"], r["requests"])} for r in rows]
