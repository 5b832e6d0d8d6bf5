"""Consultation priorities and their order on the worklist."""

from __future__ import annotations

from enum import StrEnum


class Priority(StrEnum):
    """How urgent a reading is: ``stat`` (county emergencies), ``urgent``, ``routine``."""

    STAT = "stat"
    URGENT = "urgent"
    ROUTINE = "routine"

    @property
    def rank(self) -> int:
        """Sort key: lower is more urgent (stat 0, urgent 1, routine 2)."""
        return _RANKS[self]


_RANKS = {Priority.STAT: 0, Priority.URGENT: 1, Priority.ROUTINE: 2}
