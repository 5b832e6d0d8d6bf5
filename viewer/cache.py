"""A least-recently-used cache of decoded frames, bounded by the memory they hold.

Each render worker process has one; its size is its share of ``TELEREAD_FRAME_CACHE_MB``.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

from .frames import Frame


class FrameCache:
    """Decoded frames by key, the least recently used dropped first once over ``megabytes``.

    A frame bigger than the whole cache is not kept (it would only evict everything else).
    """

    def __init__(self, megabytes: float) -> None:
        self.limit = int(megabytes * 1024 * 1024)
        self.used = 0
        self.hits = 0
        self.misses = 0
        self.evictions = 0
        self._frames: OrderedDict[str, Frame] = OrderedDict()

    def get(self, key: str) -> Frame | None:
        frame = self._frames.get(key)
        if frame is None:
            self.misses += 1
            return None
        self.hits += 1
        self._frames.move_to_end(key)
        return frame

    def put(self, key: str, frame: Frame) -> None:
        old = self._frames.pop(key, None)
        if old is not None:
            self.used -= old.nbytes
        if frame.nbytes > self.limit:
            return
        self._frames[key] = frame
        self.used += frame.nbytes
        while self.used > self.limit:
            _, dropped = self._frames.popitem(last=False)
            self.used -= dropped.nbytes
            self.evictions += 1

    def __contains__(self, key: str) -> bool:
        return key in self._frames

    def __len__(self) -> int:
        return len(self._frames)

    def stats(self) -> dict[str, Any]:
        return {
            "frames": len(self._frames),
            "bytes": self.used,
            "limit": self.limit,
            "hits": self.hits,
            "misses": self.misses,
            "evictions": self.evictions,
        }
