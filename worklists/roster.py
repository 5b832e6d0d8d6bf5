"""The duty roster: who is on duty at a moment, and whom a stat consultation calls first.

Entries are half-open intervals ``[starts_at, ends_at)``; time is a parameter, never read here.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

READER = "reader"
MANAGER = "manager"
DUTY_ROLES = (READER, MANAGER)


@dataclass(frozen=True)
class RosterEntry:
    """One person's shift; ``subspecialties`` are the queue names they read (lower case)."""

    user_id: int
    starts_at: datetime
    ends_at: datetime
    role_on_duty: str = READER
    subspecialties: tuple[str, ...] = ()

    def covers(self, now: datetime) -> bool:
        return self.starts_at <= now < self.ends_at


def on_duty(entries: Iterable[RosterEntry], now: datetime) -> list[RosterEntry]:
    """The entries covering ``now`` (one per user and duty role, first entry wins)."""
    seen: set[tuple[int, str]] = set()
    found: list[RosterEntry] = []
    for entry in entries:
        key = (entry.user_id, entry.role_on_duty)
        if entry.covers(now) and key not in seen:
            seen.add(key)
            found.append(entry)
    return found


def readers_for_queue(duty: Sequence[RosterEntry], queue: str) -> list[int]:
    """On-duty readers of the queue's subspecialty; when none, the whole on-duty reading team."""
    readers = [e for e in duty if e.role_on_duty == READER]
    matching = [e.user_id for e in readers if queue.lower() in e.subspecialties]
    return matching or [e.user_id for e in readers]


def duty_managers(duty: Sequence[RosterEntry]) -> list[int]:
    """The on-duty managers (escalations go to them)."""
    return [e.user_id for e in duty if e.role_on_duty == MANAGER]
