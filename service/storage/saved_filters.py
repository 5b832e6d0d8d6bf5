"""Saved worklist filters: named filter sets, each user's own.

Another user's filter is simply not found (``RecordNotFound``), like one that does not exist.
"""

from __future__ import annotations

import json
from typing import Any

import sqlite_utils

from .database import Conflict, RecordNotFound

#: Enough for every shift's habits; a runaway client cannot fill the table.
MAX_FILTERS_PER_USER = 50


def filters_of(db: sqlite_utils.Database, user_id: int) -> list[dict[str, Any]]:
    """The user's saved filters, by name."""
    return [
        _item(row)
        for row in db.execute(
            "SELECT id, name, filters, created_at FROM saved_filters WHERE user_id = ?"
            " ORDER BY name, id",
            [user_id],
        )
    ]


def add_filter(
    db: sqlite_utils.Database, user_id: int, name: str, filters: dict[str, Any], created_at: str
) -> dict[str, Any]:
    """Save a named filter set; ``Conflict`` on a name the user already uses or at the cap."""
    taken = db.execute(
        "SELECT COUNT(*), SUM(name = ?) FROM saved_filters WHERE user_id = ?", [name, user_id]
    ).fetchone()
    if taken[1]:
        raise Conflict("duplicate_name", f"you already have a saved filter named {name!r}")
    if taken[0] >= MAX_FILTERS_PER_USER:
        raise Conflict("too_many_filters", f"at most {MAX_FILTERS_PER_USER} saved filters")
    cursor = db.execute(
        "INSERT INTO saved_filters (user_id, name, filters, created_at) VALUES (?, ?, ?, ?)",
        [user_id, name, json.dumps(filters, sort_keys=True), created_at],
    )
    return {"id": int(cursor.lastrowid), "name": name, "filters": filters, "created_at": created_at}


def delete_filter(db: sqlite_utils.Database, user_id: int, filter_id: int) -> None:
    """Only one's own: another user's filter is not found."""
    deleted = db.execute(
        "DELETE FROM saved_filters WHERE id = ? AND user_id = ?", [filter_id, user_id]
    ).rowcount
    if deleted == 0:
        raise RecordNotFound(f"saved filter {filter_id}")


def _item(row: Any) -> dict[str, Any]:
    return {
        "id": row["id"],
        "name": row["name"],
        "filters": json.loads(row["filters"]),
        "created_at": row["created_at"],
    }
