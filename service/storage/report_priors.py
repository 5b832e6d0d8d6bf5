"""The report editor's priors: the latest signed report of every other consultation of the
same person the caller may see, at any linked facility (issue 21 item 2).

Facility scope is part of the query (service/storage/scope.py). Candidates come from the master
patient index's linked local identities (service/storage/linked_priors.py), never from a Patient
ID alone: two patients sharing a clinic's ID are kept apart by their birth date or name, and the
same ID issued by an unlinked facility is another numbering.
"""

from __future__ import annotations

from typing import Any

import sqlite_utils

from .linked_priors import current_consultation, linked_consultations
from .scope import Scope


def consultation_patient(
    db: sqlite_utils.Database, consultation_id: int, scope: Scope
) -> dict[str, Any]:
    """The consultation's patient (``id``, ID, name, birth date, sex), if the caller may see it."""
    row = current_consultation(db, consultation_id, scope)
    return row | {"id": row["consultation_id"]}


def signed_priors(
    db: sqlite_utils.Database, consultation_id: int, scope: Scope, limit: int = 20
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The consultation's patient, and the latest signed version of each other consultation of
    the same person the caller may see (any linked facility), newest signature first, with its
    facility and whether that facility is recognised for the exam item."""
    current = consultation_patient(db, consultation_id, scope)
    rows = linked_consultations(db, current, scope, signed=True)
    rows.sort(key=lambda row: (row["signed_at"] or "", row["consultation_id"]), reverse=True)
    return current, rows[:limit]
