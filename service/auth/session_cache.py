"""Who a session token belongs to, remembered for a moment between two reads of the database.

A frame of the viewer, a thumbnail or a worklist refresh each resolve the caller's session; a
reader scrolling a CT stack sends dozens a second. The answer is kept for at most ``TTL`` seconds
and only while nothing has been committed to the database since it was read, by this process or
any other serving the same file (:meth:`Database.version`, SQLite's ``data_version``): logging
out, revoking a token, disabling a user or changing a role are all commits, so none of them is
ever answered from here, whichever process made it. Only GET and HEAD requests use it
(``service.http.middleware``); whatever changes state always reads the session afresh.
"""

from __future__ import annotations

import time
from collections import OrderedDict

from ..storage import Database
from .sessions import CurrentUser, token_hash

TTL = 2.0
SIZE = 4096


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
        self._entries[digest] = (user, version_before_read, time.monotonic() + self.ttl)
        self._entries.move_to_end(digest)
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)
