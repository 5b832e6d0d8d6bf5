"""Routing consultations to subspecialty queues (neuro, chest, MSK, abdomen, paediatrics...).

A queue rule matches by modality, body part (DICOM (0018,0015) *Body Part Examined*, upper case)
and optionally the patient's age; the first matching queue wins and anything unmatched goes to
the ``general`` queue. Rules are usually loaded from TOML by :mod:`worklists.rules`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date

GENERAL_QUEUE = "general"


@dataclass(frozen=True)
class QueueRule:
    """One queue and what goes on it; an empty criterion matches anything."""

    name: str
    modalities: frozenset[str] = frozenset()
    body_parts: frozenset[str] = frozenset()
    max_age_years: int | None = None

    def __post_init__(self) -> None:
        for name in ("modalities", "body_parts"):
            values = frozenset(v.strip().upper() for v in getattr(self, name))
            object.__setattr__(self, name, values)

    def matches(self, modality: str, body_part: str, patient_age_years: int | None) -> bool:
        if self.modalities and modality.strip().upper() not in self.modalities:
            return False
        if self.body_parts and body_part.strip().upper() not in self.body_parts:
            return False
        if self.max_age_years is not None:
            return patient_age_years is not None and patient_age_years <= self.max_age_years
        return True


@dataclass(frozen=True)
class RoutingPolicy:
    """Ordered queue rules; the first match wins, otherwise the default queue."""

    queues: tuple[QueueRule, ...] = ()
    default_queue: str = GENERAL_QUEUE

    @property
    def queue_names(self) -> tuple[str, ...]:
        """Every queue a consultation can land on, default last, without repeats."""
        names = dict.fromkeys([q.name for q in self.queues] + [self.default_queue])
        return tuple(names)

    def queue_for(
        self, modality: str | None, body_part: str | None, patient_age_years: int | None = None
    ) -> str:
        for rule in self.queues:
            if rule.matches(modality or "", body_part or "", patient_age_years):
                return rule.name
        return self.default_queue


def age_in_years(birth_date: str, on: date) -> int | None:
    """Whole years between a DICOM DA birth date (``YYYYMMDD``) and ``on``; ``None`` if unknown."""
    text = (birth_date or "").strip()
    if len(text) != 8 or not text.isdigit():
        return None
    try:
        born = date(int(text[:4]), int(text[4:6]), int(text[6:]))
    except ValueError:
        return None
    years = on.year - born.year - ((on.month, on.day) < (born.month, born.day))
    return years if years >= 0 else None


def subspecialties(text: str | None) -> list[str]:
    """A reader's subspecialties from the comma-separated ``users.subspecialties`` column."""
    return [s.strip().lower() for s in (text or "").split(",") if s.strip()]


def queues_first(own_queues: Iterable[str], queue: str) -> int:
    """Sort key putting a reader's own queues before the rest (0 before 1)."""
    return 0 if queue in set(own_queues) else 1
