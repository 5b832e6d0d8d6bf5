"""What the report editor shows of a report's review (two-level sign-off, issue 19): the text
awaiting review, the reviewer's comment when it came back, and every text signed for review with
who wrote it and what the reviewer decided (the writer's text stays visible after an edit)."""

from __future__ import annotations

from typing import Any

import sqlite_utils

from ..storage import report_reviews as review_store


def review_view(db: sqlite_utils.Database, report_id: int) -> dict[str, Any] | None:
    """None for a report that never went to review."""
    history = review_store.history(db, report_id)
    if not history:
        return None
    for item in history:
        item["critical"] = bool(item["critical"])
        item["refer"] = bool(item["refer"])
    latest = history[-1]
    return {
        "awaiting": latest if latest["state"] == "awaiting" else None,
        "returned": latest if latest["state"] == "returned" else None,
        "history": history,
    }
