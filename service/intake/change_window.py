"""Which changes of Orthanc's feed are new, and how far the durable cursor may go.

With one Orthanc on SQLite, ``/changes`` seqs come in order and without holes. With Orthancs
sharing a PostgreSQL index they do not have to: a seq is taken from a sequence when a transaction
inserts its change, transactions commit in their own order (a reader that saw 102 could see 101
later), and a transaction rolled back (plugin 4.0 retries one that collided with another
writer's) leaves its seqs unused for ever. Measured with two Orthancs on one index
(bench/orthanc_change_order.py, docs/scaling.md): seqs that never came, and no change arriving
late; the window guards against both anyway, since the first is certain and the second allowed.

:class:`ChangeWindow` is the follower's memory of the feed: the highest seq read (``head``), the
seqs skipped below it (*gaps*, re-read until they fill or are given up), and the
changes done above the durable cursor. The cursor (``low``) never passes an open gap, so a
restart re-reads from the oldest change that could still come; changes read again are replays,
which ingest makes harmless (design rule 5). Pure: no I/O, time is a parameter.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from ..runtime.orthanc.client import Change

log = logging.getLogger(__name__)

#: A jump wider than this is not a gap to wait for (a change log cleared, a cursor from another
#: archive): at most a few transactions per Orthanc are ever in flight at once.
WIDEST_GAP = 1000
#: Gaps this close are asked for again in one request (two Orthancs on one index skipped about
#: one seq in a hundred, measured: each alone would cost a request every poll).
JOIN_GAPS_WITHIN = 100


class ChangeWindow:
    """The feed above the durable cursor: what was read, what is missing, what is done."""

    def __init__(self, cursor: int) -> None:
        self.low = cursor
        """Every change up to here is done (or given up): the cursor ingest may store."""
        self.head = cursor
        """The highest seq read."""
        self._missing: dict[int, float] = {}  # seq -> when it was first skipped
        self._done: set[int] = set()  # done above ``low``
        self._taken: set[int] = set()  # read, not done yet
        self.late = 0
        """Changes that came after a higher seq had been read (for the log and the tests)."""

    def take(self, changes: Iterable[Change], now: float) -> list[Change]:
        """The changes not read before, in seq order; seqs skipped below them become gaps."""
        fresh: list[Change] = []
        for change in sorted(changes, key=lambda c: c.seq):
            seq = change.seq
            if seq <= self.low or seq in self._done or seq in self._taken:
                continue
            if seq > self.head:
                if seq - self.head - 1 <= WIDEST_GAP:
                    for skipped in range(self.head + 1, seq):
                        self._missing[skipped] = now
                else:
                    log.warning("change feed jumped from %d to %d", self.head, seq)
                    self._done.update(range(self.head + 1, seq))
                self.head = seq
            elif self._missing.pop(seq, None) is not None:
                self.late += 1
                log.info("change %d came after change %d", seq, self.head)
            else:
                continue  # below the head and never missing: a jump's seq, given up
            self._taken.add(seq)
            fresh.append(change)
        return fresh

    def done(self, seq: int) -> None:
        """``seq`` is processed: the cursor moves up to the next change not done or missing."""
        self._taken.discard(seq)
        self._done.add(seq)
        self._advance()

    def cursor_after(self, seq: int) -> int:
        """What ``low`` becomes once ``seq`` is done: the cursor to store with its work."""
        low = self.low
        while low + 1 == seq or low + 1 in self._done:
            low += 1
        return low

    def gaps(self, join_within: int = JOIN_GAPS_WITHIN) -> list[tuple[int, int]]:
        """The open gaps as ranges ``(first, last)`` of seqs to ask for again, oldest first;
        gaps fewer than ``join_within`` seqs apart share a range (one request: the changes
        between them come again and are not taken twice)."""
        ranges: list[tuple[int, int]] = []
        for seq in sorted(self._missing):
            if ranges and seq - ranges[-1][1] <= join_within:
                ranges[-1] = (ranges[-1][0], seq)
            else:
                ranges.append((seq, seq))
        return ranges

    def give_up(self, now: float, patience: float) -> list[int]:
        """Gaps open for ``patience`` seconds are seqs no transaction will commit (rolled
        back): stop waiting for them; returns them."""
        expired = [seq for seq, since in self._missing.items() if now - since >= patience]
        for seq in expired:
            del self._missing[seq]
            self._done.add(seq)
        if expired:
            self._advance()
        return expired

    def _advance(self) -> None:
        while self.low + 1 in self._done:
            self.low += 1
            self._done.discard(self.low)
