"""Key images of a report (issue 19, 图文报告): the draft's marks and a signed version's figures.

A mark belongs to the consultation (its report's working copy), so a correction starts from the
key images of the version it corrects. A signed version's figures are written once, in the
signing transaction, and never change (triggers, schema m034).
"""

from __future__ import annotations

import json
from typing import Any

import sqlite_utils

from .database import RecordNotFound

_MARK_COLUMNS = (
    "k.id, k.consultation_id, k.series_instance_uid, k.sop_instance_uid, k.frame, k.view,"
    " k.caption, k.marked_by, k.marked_at"
)


def _mark(row: Any) -> dict[str, Any]:
    mark = dict(row)
    mark["view"] = json.loads(mark["view"])
    return mark


def marks_of(db: sqlite_utils.Database, consultation_id: int) -> list[dict[str, Any]]:
    """The consultation's key images in the order they were marked."""
    rows = db.execute(
        f"SELECT {_MARK_COLUMNS} FROM report_key_images k WHERE k.consultation_id = ?"
        " ORDER BY k.id",
        [consultation_id],
    )
    return [_mark(r) for r in rows]


def count_marks(db: sqlite_utils.Database, consultation_id: int) -> int:
    return db.execute(
        "SELECT COUNT(*) FROM report_key_images WHERE consultation_id = ?", [consultation_id]
    ).fetchone()[0]


def add_mark(db: sqlite_utils.Database, consultation_id: int, values: dict[str, Any]) -> int:
    """Insert one mark (``view`` a JSON-able dict); its id."""
    cursor = db.execute(
        "INSERT INTO report_key_images (consultation_id, series_instance_uid, sop_instance_uid,"
        " frame, view, caption, marked_by, marked_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [
            consultation_id,
            values["series_instance_uid"],
            values["sop_instance_uid"],
            values["frame"],
            json.dumps(values["view"], sort_keys=True, separators=(",", ":")),
            values["caption"],
            values["marked_by"],
            values["marked_at"],
        ],
    )
    return int(cursor.lastrowid)


def get_mark(db: sqlite_utils.Database, consultation_id: int, mark_id: int) -> dict[str, Any]:
    row = db.execute(
        f"SELECT {_MARK_COLUMNS} FROM report_key_images k WHERE k.id = ? AND k.consultation_id = ?",
        [mark_id, consultation_id],
    ).fetchone()
    if row is None:
        raise RecordNotFound(f"key image {mark_id} of consultation {consultation_id}")
    return _mark(row)


def remove_mark(db: sqlite_utils.Database, consultation_id: int, mark_id: int) -> None:
    get_mark(db, consultation_id, mark_id)
    db.execute(
        "DELETE FROM report_key_images WHERE id = ? AND consultation_id = ?",
        [mark_id, consultation_id],
    )


# --- a signed version's figures ----------------------------------------------------------------

_FIGURE_COLUMNS = "position, series_instance_uid, sop_instance_uid, frame, caption, label, sha256"


def save_figures(db: sqlite_utils.Database, version_id: int, figures: list[dict[str, Any]]) -> None:
    """The figures of a version being signed (same transaction as the version)."""
    _insert_figures(db, "report_figures", "report_version_id", version_id, figures)


def save_review_figures(
    db: sqlite_utils.Database, review_id: int, figures: list[dict[str, Any]]
) -> None:
    """The figures of a text signed for review (same transaction as the review)."""
    _insert_figures(db, "report_review_figures", "review_id", review_id, figures)


_FIGURE_KEYS = (
    "series_instance_uid",
    "sop_instance_uid",
    "frame",
    "caption",
    "label",
    "sha256",
    "png",
)


def _insert_figures(
    db: sqlite_utils.Database, table: str, owner: str, owner_id: int, figures: list[dict[str, Any]]
) -> None:
    """Figures in order (position 1, 2...) for their owner: a signed version or a review."""
    for position, figure in enumerate(figures, start=1):
        db.execute(
            f"INSERT INTO {table} ({owner}, position, {', '.join(_FIGURE_KEYS)})"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [owner_id, position, *(figure[k] for k in _FIGURE_KEYS)],
        )


def review_figures(db: sqlite_utils.Database, review_id: int) -> list[dict[str, Any]]:
    """What the writer signed for review, in order, with the PNGs."""
    rows = db.execute(
        f"SELECT {_FIGURE_COLUMNS}, png FROM report_review_figures WHERE review_id = ?"
        " ORDER BY position",
        [review_id],
    )
    return [dict(r) for r in rows]


def figures_of(
    db: sqlite_utils.Database, version_id: int, with_png: bool = True
) -> list[dict[str, Any]]:
    columns = _FIGURE_COLUMNS + (", png" if with_png else "")
    rows = db.execute(
        f"SELECT {columns} FROM report_figures WHERE report_version_id = ? ORDER BY position",
        [version_id],
    )
    return [dict(r) for r in rows]


def figure_png(db: sqlite_utils.Database, version_id: int, position: int) -> bytes:
    row = db.execute(
        "SELECT png FROM report_figures WHERE report_version_id = ? AND position = ?",
        [version_id, position],
    ).fetchone()
    if row is None:
        raise RecordNotFound(f"figure {position} of report version {version_id}")
    return bytes(row[0])


def set_kos_uid(db: sqlite_utils.Database, version_id: int, sop_instance_uid: str) -> None:
    db.execute(
        "UPDATE report_versions SET kos_sop_instance_uid = ? WHERE id = ?",
        [sop_instance_uid, version_id],
    )


def kos_uid(db: sqlite_utils.Database, version_id: int) -> str | None:
    row = db.execute(
        "SELECT kos_sop_instance_uid FROM report_versions WHERE id = ?", [version_id]
    ).fetchone()
    return row[0] if row else None
