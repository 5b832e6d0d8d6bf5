"""Service-level deadlines: when a consultation's answer is due.

The clock starts when a consultation becomes readable: both the images and the request are there.
Until then it starts from whichever arrived, so an item never has an undefined place on the list.

The target is the priority's default (stat 30 min, urgent 2 h, routine 24 h) unless an
:class:`SlaRule` matches the consultation's priority, facility kind, modality and body part: the
first matching rule wins (e.g. the stroke protocol: stat head CT from a county hospital, 20 min).
Rules are usually loaded from TOML by :mod:`worklists.rules`. Time left and overdue are computed
from ``due_at`` and a given ``now``, never stored.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from .priorities import Priority

DEFAULT_TARGETS = {
    Priority.STAT: timedelta(minutes=30),
    Priority.URGENT: timedelta(hours=2),
    Priority.ROUTINE: timedelta(hours=24),
}

DEFAULT_RULE = "default"
"""The rule name reported when no rule matched and the priority's target applied."""


def _upper(values: Iterable[str]) -> frozenset[str]:
    return frozenset(v.strip().upper() for v in values)


def _matches(allowed: frozenset[str], value: str) -> bool:
    """An empty set of allowed values matches anything (the key was omitted)."""
    return not allowed or value.strip().upper() in allowed


@dataclass(frozen=True)
class SlaRule:
    """A target that overrides the priority's default for the consultations it matches.

    Each criterion is a set of upper-case values; an empty set matches anything.
    """

    name: str
    target: timedelta
    priorities: frozenset[str] = frozenset()
    facility_kinds: frozenset[str] = frozenset()
    modalities: frozenset[str] = frozenset()
    body_parts: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        for name in ("priorities", "facility_kinds", "modalities", "body_parts"):
            object.__setattr__(self, name, _upper(getattr(self, name)))

    def matches(
        self, priority: Priority, facility_kind: str, modality: str, body_part: str
    ) -> bool:
        return (
            _matches(self.priorities, priority.value)
            and _matches(self.facility_kinds, facility_kind)
            and _matches(self.modalities, modality)
            and _matches(self.body_parts, body_part)
        )


@dataclass(frozen=True)
class SlaPolicy:
    """Target reading time per priority, refined by rules (first match wins)."""

    targets: Mapping[Priority, timedelta] = field(default_factory=lambda: dict(DEFAULT_TARGETS))
    rules: tuple[SlaRule, ...] = ()

    def clock_start(self, received_at: datetime | None, requested_at: datetime | None) -> datetime:
        """The moment the SLA clock starts: the later of images and request, when both exist."""
        moments = [m for m in (received_at, requested_at) if m is not None]
        if not moments:
            raise ValueError("a consultation needs images or a request to have a deadline")
        return max(moments)

    def matching_rule(
        self,
        priority: Priority,
        *,
        facility_kind: str = "",
        modality: str = "",
        body_part: str = "",
    ) -> SlaRule | None:
        """The first rule that applies, or ``None`` when the priority's default target does."""
        for rule in self.rules:
            if rule.matches(priority, facility_kind or "", modality or "", body_part or ""):
                return rule
        return None

    def target(
        self,
        priority: Priority,
        *,
        facility_kind: str = "",
        modality: str = "",
        body_part: str = "",
    ) -> tuple[timedelta, str]:
        """The reading time allowed and the name of the rule that set it (``"default"``)."""
        rule = self.matching_rule(
            priority, facility_kind=facility_kind, modality=modality, body_part=body_part
        )
        if rule is None:
            return self.targets[priority], DEFAULT_RULE
        return rule.target, rule.name

    def due_at(
        self,
        priority: Priority,
        received_at: datetime | None,
        requested_at: datetime | None,
        *,
        facility_kind: str = "",
        modality: str = "",
        body_part: str = "",
    ) -> datetime:
        """When the signed answer is due."""
        target, _ = self.target(
            priority, facility_kind=facility_kind, modality=modality, body_part=body_part
        )
        return self.clock_start(received_at, requested_at) + target


def time_left(due_at: datetime, now: datetime) -> timedelta:
    """Negative when overdue; computed, never stored."""
    return due_at - now


def is_overdue(due_at: datetime, now: datetime) -> bool:
    """Past the deadline; computed, never stored."""
    return now > due_at
