"""One bounded in-memory cache: least recently used dropped first, entries optionally expiring.

Sessions, the viewer's scope checks and study indexes, kept raw files, dashboard blocks and
the log of undecodable instances each remember a little for a moment. They share this class so
that bounding, expiry and thread safety are written (and tested) once. Bounds are counted in
entries, or in any unit ``weigh`` gives (bytes of a kept file). Reader threads share some of
these caches, so every operation takes a lock; it is held for dictionary work only, never while
a value is computed.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class LruCache(Generic[K, V]):
    """At most ``capacity`` (entries, or units of ``weigh``); with ``ttl``, an entry is gone
    ``ttl`` seconds after it was put (:meth:`put` may give one entry a shorter life)."""

    def __init__(
        self,
        capacity: float,
        *,
        ttl: float | None = None,
        weigh: Callable[[V], float] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.capacity, self.ttl = capacity, ttl
        self._weigh, self._clock = weigh, clock
        self._entries: OrderedDict[K, tuple[V, float, float]] = OrderedDict()
        self._lock = threading.Lock()
        self.weight = 0.0
        """What the entries weigh now (their count without ``weigh``)."""

    def get(self, key: K) -> V | None:
        """The value, or None when absent or expired (an expired entry is dropped)."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            value, deadline, _ = entry
            if deadline < self._clock():
                self._drop(key)
                return None
            self._entries.move_to_end(key)
            return value

    def put(self, key: K, value: V, *, ttl: float | None = None) -> None:
        """Keep ``value`` (replacing any), then drop the least recently used beyond capacity.
        A value heavier than the whole capacity is not kept."""
        life = min(t for t in (ttl, self.ttl, float("inf")) if t is not None)
        weight = self._weigh(value) if self._weigh else 1.0
        with self._lock:
            if key in self._entries:
                self._drop(key)
            if weight > self.capacity:
                return
            self._entries[key] = (value, self._clock() + life, weight)
            self.weight += weight
            while self.weight > self.capacity:
                self._drop(next(iter(self._entries)))

    def pop(self, key: K) -> V | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                self._drop(key)
            return entry[0] if entry else None

    def __contains__(self, key: object) -> bool:
        """Present and not expired (does not count as a use)."""
        with self._lock:
            entry = self._entries.get(key)  # type: ignore[call-overload]
            return entry is not None and entry[1] >= self._clock()

    def __len__(self) -> int:
        return len(self._entries)

    def _drop(self, key: K) -> None:
        _, _, weight = self._entries.pop(key)
        self.weight -= weight
