"""Who a session token belongs to, remembered for a moment between two reads of the database.

A frame of the viewer, a thumbnail or a worklist refresh each resolve the caller's session; a
reader scrolling a CT stack sends dozens a second. The answer is kept for at most ``TTL`` seconds
and only while nothing has been committed to the database since it was read, by this process or
any other serving the same file (:meth:`Database.version`, SQLite's ``data_version``): logging
out, revoking a token, disabling a user or changing a role are all commits, so none of them is
ever answered from here, whichever process made it. Nor is a session answered from here past its
own expiry (the entry's deadline is capped at it). Only GET and HEAD requests use it
(``service.http.middleware``); whatever changes state always reads the session afresh.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict

from ..clock import from_iso, utc_now
from ..storage import Database
from .sessions import CurrentUser, token_hash

TTL = 2.0
SIZE = 4096


def _seconds_left(user: CurrentUser) -> float:
    """Until the session or token expires (a cached answer must never outlive it); no limit
    for a caller built without one (only tests do)."""
    if not user.expires_at:
        return math.inf
    try:
        ends = from_iso(user.expires_at)
    except ValueError:
        return 0.0
    return (ends - utc_now()).total_seconds()


class SessionCache:
    """Token digest -> (user, database version when read, monotonic deadline)."""

    def __init__(self, database: Database, ttl: float = TTL, size: int = SIZE) -> None:
        self.database, self.ttl, self.size = database, ttl, size
        self._entries: OrderedDict[str, tuple[CurrentUser, int, float]] = OrderedDict()

    def get(self, token: str) -> CurrentUser | None:
        digest = token_hash(token)
        entry = self._entries.get(digest)
        if entry is None:
            return None
        user, version, deadline = entry
        if version != self.database.version() or deadline < time.monotonic():
            del self._entries[digest]
            return None
        return user

    def put(self, token: str, user: CurrentUser, version_before_read: int) -> None:
        """Remember ``user``, read when the database was at ``version_before_read`` (taken
        before the read: a commit during it makes the entry stale at once)."""
        digest = token_hash(token)
        deadline = time.monotonic() + min(self.ttl, _seconds_left(user))
        self._entries[digest] = (user, version_before_read, deadline)
        self._entries.move_to_end(digest)
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)
