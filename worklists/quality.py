"""QC scores per facility × exam item × month: the arithmetic, with no I/O and no clock.

An *exam item* is a modality and a body part, normalised as routing matches them (stripped,
upper case: ``("CT", "HEAD")``), the unit the consortium's recognition lists use. A study counts
in the month (UTC) it was received. From its rows this module derives:

- the image-quality shares: studies rated good / acceptable / poor (the reader's rating at the
  first signature), with the reasons given for "acceptable" and "poor";
- retakes: a study of the same patient and exam item from the same facility received within
  ``retake_window`` after an earlier one (the earlier study may lie in the previous month, so
  callers pass rows from ``window`` before the month too, marked outside it);
- the studies whose technical parameters a reader flagged;
- peer-review agreement stays ``None`` until peer review exists (issue 20 item 1).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo

RATINGS = ("good", "acceptable", "poor")
DEFAULT_RETAKE_WINDOW = timedelta(days=7)


def exam_item(modality: str | None, body_part: str | None) -> tuple[str, str]:
    """The exam item of a study, normalised as :mod:`worklists.routing` compares them."""
    return (modality or "").strip().upper(), (body_part or "").strip().upper()


def month_of(at: datetime) -> str:
    """The ``YYYY-MM`` month (UTC) of an aware time."""
    return at.astimezone(UTC).strftime("%Y-%m")


def month_bounds(month: str, zone: tzinfo = UTC) -> tuple[datetime, datetime]:
    """[start, end) of a ``YYYY-MM`` month in ``zone`` (a facility's month is its own: a study
    received at 07:00 Beijing time on the 1st belongs to that month, not the one before)."""
    year, number = int(month[:4]), int(month[5:7])
    start = datetime(year, number, 1, tzinfo=zone)
    end = datetime(year + number // 12, number % 12 + 1, 1, tzinfo=zone)
    return start, end


@dataclass(frozen=True)
class StudyRow:
    """What QC needs of one consultation (no names: the patient id only to find retakes)."""

    facility_id: int
    patient_id: str
    modality: str
    body_part: str
    received_at: datetime
    quality: str | None = None
    quality_reason: str = ""
    technical_flagged: bool = False


@dataclass
class QcScore:
    """The figures of one facility × exam item × month; shares are derived, counts stored."""

    facility_id: int
    modality: str
    body_part: str
    month: str
    studies: int = 0
    rated: int = 0
    good: int = 0
    acceptable: int = 0
    poor: int = 0
    retakes: int = 0
    flagged: int = 0
    reasons: dict[str, int] = field(default_factory=dict)
    peer_reviewed: int | None = None
    peer_agreement: float | None = None

    @property
    def key(self) -> tuple[int, str, str, str]:
        return self.facility_id, self.modality, self.body_part, self.month


def share(part: int, whole: int) -> float | None:
    """``part`` of ``whole`` in percent (one decimal), or None when there is nothing to share."""
    return round(100.0 * part / whole, 1) if whole else None


def retakes(rows: Iterable[StudyRow], window: timedelta = DEFAULT_RETAKE_WINDOW) -> set[int]:
    """Indexes (in the order given) of the rows that repeat an earlier study of the same
    patient, exam item and facility received at most ``window`` before. Rows without a patient
    id are never retakes: an empty id says nothing about who was imaged."""
    indexed = list(enumerate(rows))
    groups: dict[tuple, list[tuple[datetime, int]]] = defaultdict(list)
    for index, row in indexed:
        if row.patient_id.strip():
            key = (row.facility_id, row.patient_id, *exam_item(row.modality, row.body_part))
            groups[key].append((row.received_at, index))
    repeated: set[int] = set()
    for studies in groups.values():
        studies.sort()
        for (earlier, _), (later, index) in zip(studies, studies[1:], strict=False):
            if later - earlier <= window:
                repeated.add(index)
    return repeated


def monthly_scores(
    rows: list[StudyRow],
    month: str,
    window: timedelta = DEFAULT_RETAKE_WINDOW,
    zone: tzinfo = UTC,
) -> list[QcScore]:
    """The scores of ``month`` (in the facilities' ``zone``) from ``rows`` (which may include
    earlier rows, for retakes)."""
    repeated = retakes(rows, window)
    start, end = month_bounds(month, zone)
    scores: dict[tuple, QcScore] = {}
    reasons: dict[tuple, Counter[str]] = defaultdict(Counter)
    for index, row in enumerate(rows):
        if not start <= row.received_at < end:
            continue
        modality, body_part = exam_item(row.modality, row.body_part)
        key = (row.facility_id, modality, body_part)
        score = scores.get(key)
        if score is None:
            score = scores[key] = QcScore(row.facility_id, modality, body_part, month)
        score.studies += 1
        if row.quality in RATINGS:
            score.rated += 1
            setattr(score, row.quality, getattr(score, row.quality) + 1)
            if row.quality != "good" and row.quality_reason:
                reasons[key][row.quality_reason] += 1
        score.retakes += index in repeated
        score.flagged += bool(row.technical_flagged)
    for key, score in scores.items():
        score.reasons = dict(sorted(reasons[key].items(), key=lambda kv: (-kv[1], kv[0])))
    return sorted(scores.values(), key=lambda s: s.key)
