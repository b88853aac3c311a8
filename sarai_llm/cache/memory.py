"""An in-process store: a dict, for the fake gateway and for tests."""

from __future__ import annotations

import heapq
import time


class MemoryStore:
    """A :class:`~sarai_llm.cache.Store` in this process's memory.

    ``ResponseCache(store=MemoryStore)`` gives a cache a store of its own; ``store=lambda: shared``
    lets caches share one (:meth:`close` keeps the entries). The ``ttl`` hint is unused: the
    cache drops what its clock finds expired, eviction bounds the rest.
    """

    def __init__(self) -> None:
        self._entries: dict[str, tuple[bytes, str]] = {}  # key -> (data, tag)
        self._used: dict[str, float] = {}  # key -> last use; ties go to the older entry
        self._epoch = 0

    def describe(self) -> str:
        return "memory"

    def get(self, key: str) -> bytes | None:
        return self._entries[key][0] if key in self._entries else None

    def put(self, key: str, data: bytes, *, tag: str, ttl: float) -> None:
        self._entries[key] = (data, tag)
        self._used[key] = time.time()

    def delete(self, key: str) -> bool:
        self._used.pop(key, None)
        return self._entries.pop(key, None) is not None

    def touch(self, times: dict[str, float]) -> None:
        self._used.update((key, t) for key, t in times.items() if key in self._used)

    def count(self) -> int:
        return len(self._entries)

    def least_recent(self, n: int) -> list[str]:
        return heapq.nsmallest(n, self._used, key=self._used.__getitem__)

    def drop_tag(self, tag: str, *, prefix: bool = False) -> int:
        keys = [k for k, (_, t) in self._entries.items() if t == tag or (prefix and t.startswith(tag))]
        return sum(self.delete(key) for key in keys)

    def clear(self) -> None:
        self._entries.clear()
        self._used.clear()

    def epoch(self) -> object:
        return self._epoch

    def bump_epoch(self) -> None:
        self._epoch += 1

    def close(self) -> None:
        """Nothing to release: the entries stay for the next cache that opens this store."""
