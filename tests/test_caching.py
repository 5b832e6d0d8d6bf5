"""The one bounded cache (service/caching.py): least recently used dropped first, entries
expiring, bounds in entries or in any weight, safe to share between threads."""

from __future__ import annotations

import threading

from service.caching import LruCache


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class TestLruCache:
    def test_the_least_recently_used_entry_goes_first(self):
        """Reading an entry makes it recent: the other one is dropped."""
        cache: LruCache[str, int] = LruCache(2)
        cache.put("a", 1)
        cache.put("b", 2)
        assert cache.get("a") == 1
        cache.put("c", 3)
        assert (cache.get("a"), cache.get("b"), cache.get("c")) == (1, None, 3)
        assert len(cache) == 2

    def test_entries_expire_after_the_ttl(self):
        clock = Clock()
        cache: LruCache[str, int] = LruCache(10, ttl=2.0, clock=clock)
        cache.put("a", 1)
        clock.now += 2.0
        assert cache.get("a") == 1 and "a" in cache
        clock.now += 0.01
        assert cache.get("a") is None and "a" not in cache
        assert len(cache) == 0

    def test_one_entry_may_be_given_a_shorter_life(self):
        """A session cached for at most its own remaining life, never the cache's longer TTL."""
        clock = Clock()
        cache: LruCache[str, int] = LruCache(10, ttl=60.0, clock=clock)
        cache.put("short", 1, ttl=1.0)
        cache.put("long", 2, ttl=600.0)  # never longer than the cache's own TTL
        clock.now += 30.0
        assert cache.get("short") is None
        clock.now += 31.0
        assert cache.get("long") is None

    def test_without_a_ttl_nothing_expires(self):
        clock = Clock()
        cache: LruCache[str, int] = LruCache(1, clock=clock)
        cache.put("a", 1)
        clock.now += 1e9
        assert cache.get("a") == 1

    def test_a_weighed_cache_is_bounded_by_weight(self):
        """Kept files: bounded in bytes; a file larger than the whole cache is not kept."""
        cache: LruCache[str, bytes] = LruCache(10, weigh=len)
        cache.put("a", b"12345")
        cache.put("b", b"1234")
        assert cache.weight == 9
        cache.put("c", b"123")
        assert cache.get("a") is None and cache.weight == 7
        cache.put("huge", b"x" * 11)
        assert cache.get("huge") is None and cache.weight == 7

    def test_replacing_an_entry_replaces_its_weight(self):
        cache: LruCache[str, bytes] = LruCache(10, weigh=len)
        cache.put("a", b"12345")
        cache.put("a", b"12")
        assert cache.weight == 2 and cache.get("a") == b"12"

    def test_pop_removes_and_returns(self):
        cache: LruCache[str, int] = LruCache(3)
        cache.put("a", 1)
        assert cache.pop("a") == 1
        assert cache.pop("a") is None and len(cache) == 0

    def test_threads_sharing_it_keep_it_within_its_bound(self):
        """Eight reader threads putting and getting at once: never over capacity, no error."""
        cache: LruCache[int, int] = LruCache(50)
        errors: list[BaseException] = []

        def work(offset: int) -> None:
            try:
                for n in range(2000):
                    cache.put(offset * 10_000 + n, n)
                    cache.get(offset * 10_000 + n - 3)
            except BaseException as exc:  # pragma: no cover - the failure being tested for
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
        assert len(cache) == 50 and cache.weight == 50
