"""Worklist order and keyset cursors.

The list is ordered by due time, then priority, then arrival (creation), then id: a total order,
so a keyset cursor (the last row's key) pages without skipping or repeating rows even while new
items arrive.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass


@dataclass(frozen=True)
class WorklistKey:
    due_at: str
    priority_rank: int
    created_at: str
    id: int

    def encode(self) -> str:
        """Opaque cursor text for the ``next`` field."""
        raw = json.dumps([self.due_at, self.priority_rank, self.created_at, self.id])
        return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")

    @classmethod
    def decode(cls, cursor: str) -> WorklistKey:
        """Parse a cursor; raises ``ValueError`` for anything not made by :meth:`encode`."""
        try:
            padded = cursor + "=" * (-len(cursor) % 4)
            due_at, rank, created_at, ident = json.loads(base64.urlsafe_b64decode(padded))
        except (ValueError, TypeError) as exc:
            raise ValueError("invalid cursor") from exc
        if not (
            isinstance(due_at, str)
            and isinstance(rank, int)
            and isinstance(created_at, str)
            and isinstance(ident, int)
            # Both are bound as SQLite INTEGER (signed 64-bit) parameters.
            and all(-(2**63) <= number < 2**63 for number in (rank, ident))
        ):
            raise ValueError("invalid cursor")
        return cls(due_at, rank, created_at, ident)
