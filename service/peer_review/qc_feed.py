"""What peer review adds to QC (issue 20 items 2–3): the agreement of the centre's readers per
facility × exam item × month, and the open clinically significant discrepancies that keep a
facility × exam item off the recognition list.

Agreement is counted on the month the study was received (like every QC figure), over the
reviews scored so far: ``peer_reviewed`` reviews, ``peer_agreement`` the percentage scored 1
(one decimal, like the other shares; NULL when none was reviewed).
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, tzinfo

import sqlite_utils

from worklists.quality import QcScore, exam_item, month_bounds, share
from worklists.recognition import ExamKey, Totals

from ..clock import to_iso
from ..storage import peer_reviews as store


def with_agreement(
    db: sqlite_utils.Database,
    month: str,
    scores: list[QcScore],
    zone: tzinfo = UTC,
    facility_ids: Sequence[int] | None = None,
) -> list[QcScore]:
    """``scores`` with their peer-review columns filled from the month's scored reviews (the
    month of ``zone``, for the ``facility_ids`` in it)."""
    start, end = month_bounds(month, zone)
    reviewed: Counter[ExamKey] = Counter()
    agreed: Counter[ExamKey] = Counter()
    for (facility, modality, body_part), (n, a) in store.month_agreement(
        db, to_iso(start), to_iso(end), facility_ids
    ).items():
        key = (facility, *exam_item(modality, body_part))
        reviewed[key] += n
        agreed[key] += a
    for score in scores:
        key = (score.facility_id, score.modality, score.body_part)
        score.peer_reviewed = reviewed[key]
        score.peer_agreement = share(agreed[key], reviewed[key])
    return scores


def with_open_discrepancies(
    db: sqlite_utils.Database, totals: dict[ExamKey, Totals]
) -> dict[ExamKey, Totals]:
    """``totals`` with each facility × exam item's open clinically significant discrepancies."""
    found: Counter[ExamKey] = Counter()
    for (facility, modality, body_part), n in store.open_significant(db).items():
        found[(facility, *exam_item(modality, body_part))] += n
    merged = dict(totals)
    for key, n in found.items():
        merged[key] = dataclasses.replace(
            merged.get(key, Totals()), open_significant_discrepancies=n
        )
    return merged
