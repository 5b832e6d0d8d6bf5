"""The mutual-recognition list: its rules (TOML), the decisions they make, and its history.

A facility's results for an exam item are recognised across the consortium while its QC
scores say they can be trusted. The rules are the ``[recognition]`` table of the worklist rules
file (docs/worklists.md); every value has a default, so a file without the table still works:

    [recognition]
    months = 3                 # complete months looked back on
    min_studies = 30           # at least this many studies in those months
    max_poor_percent = 10.0    # poor image quality below or at this share of rated studies
    max_retake_percent = 100.0 # retakes/repeats at most this share (100: not a condition)
    max_flagged_percent = 100.0
    retake_window_days = 7     # a study repeats another within this many days
    no_open_significant_discrepancy = true  # nothing to check until peer review exists

Each evaluation compares every (facility, exam item) with scores in the window, and every one on
the list, against the rules: one that passes and is not listed is *added* (first time) or
*restored* (it was suspended); one listed that fails is *suspended*. Each change carries its
reasons as codes with figures (translated where shown) and the totals behind it. Pure: no I/O,
no clock (the time is a parameter).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import timedelta
from typing import Any

from .quality import share
from .rules import RulesError, top_table

_KEYS = {
    "months", "min_studies", "max_poor_percent", "max_retake_percent", "max_flagged_percent",
    "retake_window_days", "no_open_significant_discrepancy",
}  # fmt: skip

LISTED, SUSPENDED = "listed", "suspended"
ADDED, RESTORED = "added", "restored"
CHANGES = (ADDED, SUSPENDED, RESTORED)
REASONS = (
    "meets_rules", "too_few_studies", "no_ratings", "poor_share_above", "retake_share_above",
    "flagged_share_above", "open_significant_discrepancy",
)  # fmt: skip

SUMMED = ("studies", "rated", "poor", "retakes", "flagged")
ExamKey = tuple[int, str, str]
"""(facility id, modality, body part)."""


@dataclass(frozen=True)
class RecognitionRules:
    months: int = 3
    min_studies: int = 30
    max_poor_percent: float = 10.0
    max_retake_percent: float = 100.0
    max_flagged_percent: float = 100.0
    retake_window_days: int = 7
    no_open_significant_discrepancy: bool = True

    @property
    def retake_window(self) -> timedelta:
        return timedelta(days=self.retake_window_days)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def parse_recognition(text: str, source: str = "rules") -> RecognitionRules:
    """The ``[recognition]`` table of a rules document (defaults where absent); a
    :class:`~worklists.rules.RulesError` naming the key when a value cannot be used."""
    table = top_table(text, "recognition", source, _KEYS)
    where = f"{source} [recognition]"
    values: dict[str, Any] = {}
    for key in ("months", "min_studies", "retake_window_days"):
        if key in table:
            values[key] = _whole(table[key], key, where, minimum=1 if key != "min_studies" else 0)
    for key in ("max_poor_percent", "max_retake_percent", "max_flagged_percent"):
        if key in table:
            values[key] = _percent(table[key], key, where)
    if "no_open_significant_discrepancy" in table:
        flag = table["no_open_significant_discrepancy"]
        if not isinstance(flag, bool):
            raise RulesError(f"{where}: no_open_significant_discrepancy must be true or false")
        values["no_open_significant_discrepancy"] = flag
    if values.get("months", 3) > 24:
        raise RulesError(f"{where}: months must be at most 24, got {values['months']}")
    return RecognitionRules(**values)


def _whole(value: Any, key: str, where: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise RulesError(f"{where}: {key} must be a whole number >= {minimum}, got {value!r}")
    return value


def _percent(value: Any, key: str, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 100:
        raise RulesError(f"{where}: {key} must be a percentage from 0 to 100, got {value!r}")
    return float(value)


@dataclass(frozen=True)
class Totals:
    """A (facility, exam item)'s scores summed over the rules' window of months."""

    studies: int = 0
    rated: int = 0
    poor: int = 0
    retakes: int = 0
    flagged: int = 0
    open_significant_discrepancies: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "poor_percent": share(self.poor, self.rated),
            "retake_percent": share(self.retakes, self.studies),
            "flagged_percent": share(self.flagged, self.studies),
        }


@dataclass(frozen=True)
class Reason:
    code: str
    figure: float | int | None = None
    limit: float | int | None = None


@dataclass(frozen=True)
class Change:
    key: ExamKey
    change: str
    reasons: tuple[Reason, ...]
    totals: Totals


def failures(rules: RecognitionRules, totals: Totals) -> list[Reason]:
    """The rules ``totals`` break (empty: it meets them all)."""
    found: list[Reason] = []
    if totals.studies < rules.min_studies:
        found.append(Reason("too_few_studies", totals.studies, rules.min_studies))
    elif totals.studies and not totals.rated:  # quality unknown is not quality shown
        found.append(Reason("no_ratings"))
    checks = (
        ("poor_share_above", totals.poor, totals.rated, rules.max_poor_percent),
        ("retake_share_above", totals.retakes, totals.studies, rules.max_retake_percent),
        ("flagged_share_above", totals.flagged, totals.studies, rules.max_flagged_percent),
    )
    for code, part, whole, limit in checks:
        figure = share(part, whole)
        if figure is not None and figure > limit:
            found.append(Reason(code, figure, limit))
    if rules.no_open_significant_discrepancy and totals.open_significant_discrepancies:
        found.append(Reason("open_significant_discrepancy", totals.open_significant_discrepancies))
    return found


def evaluate(
    rules: RecognitionRules,
    statuses: Mapping[ExamKey, str],
    totals: Mapping[ExamKey, Totals],
) -> list[Change]:
    """The changes the rules make to the list (``statuses``: listed or suspended per key)."""
    changes: list[Change] = []
    for key in sorted(set(statuses) | set(totals)):
        figures = totals.get(key, Totals())
        broken = failures(rules, figures)
        status = statuses.get(key)
        if status == LISTED and broken:
            changes.append(Change(key, SUSPENDED, tuple(broken), figures))
        elif status != LISTED and not broken:
            kind = RESTORED if status == SUSPENDED else ADDED
            changes.append(Change(key, kind, (Reason("meets_rules"),), figures))
    return changes


@dataclass(frozen=True)
class HistoryEntry:
    key: ExamKey
    change: str
    at: str
    """UTC ISO 8601, as stored."""


def was_recognised(history: Iterable[HistoryEntry], key: ExamKey, at: str) -> bool:
    """Whether ``key`` was on the list at ``at`` (UTC ISO 8601): its last change at or before
    then added or restored it. What a signed report's mark asks at its signing time."""
    last: HistoryEntry | None = None
    for entry in history:
        if entry.key == key and entry.at <= at and (last is None or entry.at >= last.at):
            last = entry
    return last is not None and last.change in (ADDED, RESTORED)


def status_after(change: str) -> str:
    return SUSPENDED if change == SUSPENDED else LISTED


def sum_totals(rows: Sequence[Mapping[str, Any]]) -> dict[ExamKey, Totals]:
    """Sum score rows (``qc_scores`` columns) per (facility, exam item)."""
    sums: dict[ExamKey, dict[str, int]] = {}
    for row in rows:
        key = (row["facility_id"], row["modality"], row["body_part"])
        entry = sums.setdefault(key, dict.fromkeys(SUMMED, 0))
        for name in entry:
            entry[name] += row[name]
    return {key: Totals(**values) for key, values in sums.items()}


__all__ = [
    "CHANGES", "REASONS", "Change", "HistoryEntry", "RecognitionRules", "Reason", "Totals",
    "evaluate", "failures", "parse_recognition", "status_after", "sum_totals", "was_recognised",
]  # fmt: skip
