"""Peer-review figures per first reader, as each caller may see them: the regional centre's
managers every reader's (they run the review), everyone else only their own (a reader learns
how their reports fared, never a colleague's)."""

from __future__ import annotations

from typing import Any

from ..auth.access import REGIONAL
from ..auth.sessions import CurrentUser
from ..storage import peer_reviews as store
from ..storage.database import Database


def readers_visible_to(user: CurrentUser) -> tuple[int, ...] | None:
    """The first readers whose figures ``user`` sees (None: all)."""
    if user.role == "manager" and user.facility_kind == REGIONAL:
        return None
    return (user.id,)


async def reader_figures(database: Database, user: CurrentUser) -> list[dict[str, Any]]:
    """Reviewed, agreed, discrepancies (open, significant) and agreement in percent per reader."""
    rows = await database.read(store.reader_figures, readers_visible_to(user))
    for row in rows:
        reviewed = row["reviewed"]
        row["agreement"] = round(100 * row["agreed"] / reviewed, 1) if reviewed else None
    return rows
