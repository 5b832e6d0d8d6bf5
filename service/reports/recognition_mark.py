"""Whether a report carries the mutual-recognition mark (issue 20 item 3).

A signed report says "recognised within the consortium for CT head" when its facility and exam
item (modality + body part) were on the recognition list at the moment it was signed. The list's
history is append-only (service/storage/recognition.py), so the answer for a signed version
never changes: the PDF made at signing and the DICOM objects made later agree.
"""

from __future__ import annotations

import sqlite_utils

from worklists.quality import exam_item
from worklists.recognition import was_recognised

from ..storage import recognition as recognition_store


def recognised_at(
    db: sqlite_utils.Database,
    facility_id: int | None,
    modality: str | None,
    body_part: str | None,
    at: str,
) -> bool:
    """Was (facility, exam item) on the list at ``at`` (UTC ISO 8601)?"""
    return recognised_at_each(db, facility_id, modality, body_part, [at])[0]


def recognised_at_each(
    db: sqlite_utils.Database,
    facility_id: int | None,
    modality: str | None,
    body_part: str | None,
    times: list[str],
) -> list[bool]:
    """:func:`recognised_at` for each of ``times`` (a report's versions), the history read once."""
    modality_, body_part_ = exam_item(modality, body_part)
    if facility_id is None or not (modality_ and body_part_):
        return [False for _ in times]
    key = (facility_id, modality_, body_part_)
    history = recognition_store.history_of(db, key)
    return [was_recognised(history, key, at) for at in times]
