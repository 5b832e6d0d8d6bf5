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

from ..caching import LruCache
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
    """Token digest -> (user, database version when read), for at most ``ttl`` seconds."""

    def __init__(self, database: Database, ttl: float = TTL, size: int = SIZE) -> None:
        self.database, self.ttl, self.size = database, ttl, size
        self._entries: LruCache[str, tuple[CurrentUser, int]] = LruCache(size, ttl=ttl)

    def get(self, token: str) -> CurrentUser | None:
        digest = token_hash(token)
        entry = self._entries.get(digest)
        if entry is None:
            return None
        user, version = entry
        if version != self.database.version():
            self._entries.pop(digest)
            return None
        return user

    def put(self, token: str, user: CurrentUser, version_before_read: int) -> None:
        """Remember ``user``, read when the database was at ``version_before_read`` (taken
        before the read: a commit during it makes the entry stale at once)."""
        ttl = min(self.ttl, _seconds_left(user))
        self._entries.put(token_hash(token), (user, version_before_read), ttl=ttl)
