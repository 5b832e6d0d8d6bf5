"""Service-level deadlines: when a consultation's answer is due.

The clock starts when a consultation becomes readable: both the images and the request are there.
Until then it starts from whichever arrived, so an item never has an undefined place on the list.
A fuller rule set (facility kind, modality, body part, TOML-configured) builds on ``SlaPolicy``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from .priorities import Priority

DEFAULT_TARGETS = {
    Priority.STAT: timedelta(minutes=30),
    Priority.URGENT: timedelta(hours=2),
    Priority.ROUTINE: timedelta(hours=24),
}


@dataclass(frozen=True)
class SlaPolicy:
    """Target reading time per priority."""

    targets: dict[Priority, timedelta] = field(default_factory=lambda: dict(DEFAULT_TARGETS))

    def clock_start(self, received_at: datetime | None, requested_at: datetime | None) -> datetime:
        """The moment the SLA clock starts: the later of images and request, when both exist."""
        moments = [m for m in (received_at, requested_at) if m is not None]
        if not moments:
            raise ValueError("a consultation needs images or a request to have a deadline")
        return max(moments)

    def due_at(
        self, priority: Priority, received_at: datetime | None, requested_at: datetime | None
    ) -> datetime:
        """When the signed answer is due."""
        return self.clock_start(received_at, requested_at) + self.targets[priority]


def time_left(due_at: datetime, now: datetime) -> timedelta:
    """Negative when overdue; computed, never stored."""
    return due_at - now
