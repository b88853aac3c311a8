"""The embedded shared store of the response cache: diskcache in one directory.

Every process on a host that uses the same directory shares its entries.
diskcache's own LRU policy turns every read into a write (80-90 us, ms at
p99), so the store runs with ``eviction_policy="none"`` and the cache keeps
LRU order itself in diskcache's ``access_time`` column: two SQL statements
(a batch ``UPDATE`` of access times, an ``ORDER BY access_time`` selection)
that diskcache has no API for, run on its own connection.

Clear and invalidate bump an epoch file in the directory, which every process
polls (a ``stat``) to drop its in-process front.
"""

from __future__ import annotations

import os
import sqlite3
import time
from pathlib import Path

__all__ = ["DiskStore"]


class DiskStore:
    """A :class:`~sarai_llm.cache.Store` over a diskcache directory.

    :param directory: created if missing; the database lives in ``responses/``.
    :param namespace: key prefix (``"ns:"``) whose keys this store counts,
        evicts and clears; ``""`` means every key of the directory.
    """

    def __init__(self, directory: str | os.PathLike[str], namespace: str = ""):
        import diskcache

        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self._prefix = f"{namespace}:" if namespace else ""
        self._epoch_path = self.directory / "epoch"
        self._cache = diskcache.Cache(
            str(self.directory / "responses"),
            eviction_policy="none",
            size_limit=2**62,
            statistics=False,
            tag_index=True,
        )
        # Touch the database now, so that a corrupt file fails here, not mid-call.
        self._con().execute("SELECT count(*) FROM Cache").fetchone()

    def describe(self) -> str:
        return str(self.directory)

    def _con(self) -> sqlite3.Connection:
        con: sqlite3.Connection = self._cache._con  # noqa: SLF001 - diskcache's connection
        return con

    def _range(self) -> tuple[str, tuple[str, ...]]:
        """SQL condition (and arguments) selecting this namespace's keys."""
        if not self._prefix:
            return "raw = 1", ()
        return "raw = 1 AND key >= ? AND key < ?", (self._prefix, self._prefix + "\uffff")

    # -- entries ---------------------------------------------------------------

    def get(self, key: str) -> bytes | None:
        value = self._cache.get(key)
        return value if isinstance(value, bytes) else None

    def put(self, key: str, data: bytes, *, tag: str, ttl: float) -> None:
        # diskcache's expiry (real time, with a margin) only reclaims space;
        # the cache's own clock decides what has expired.
        self._cache.set(key, data, expire=ttl + 60, tag=tag)

    def delete(self, key: str) -> bool:
        return bool(self._cache.delete(key))

    # -- LRU --------------------------------------------------------------------

    def touch(self, times: dict[str, float]) -> None:
        rows = [(t, k) for k, t in times.items()]
        with self._cache.transact():
            self._con().executemany("UPDATE Cache SET access_time = ? WHERE key = ? AND raw = 1", rows)

    def count(self) -> int:
        where, args = self._range()
        if not args:
            return int(len(self._cache))
        (n,) = self._con().execute(f"SELECT count(*) FROM Cache WHERE {where}", args).fetchone()
        return int(n)

    def least_recent(self, n: int) -> list[str]:
        where, args = self._range()
        rows = self._con().execute(
            f"SELECT key FROM Cache WHERE {where} ORDER BY access_time ASC, rowid ASC LIMIT ?", (*args, n)
        )
        return [row[0] for row in rows]

    # -- invalidation ----------------------------------------------------------

    def drop_tag(self, tag: str, *, prefix: bool = False) -> int:
        if not prefix:
            return int(self._cache.evict(tag))
        rows = self._con().execute(
            "SELECT key FROM Cache WHERE raw = 1 AND tag >= ? AND tag < ?", (tag, tag + "\uffff")
        )
        return sum(1 for (key,) in list(rows) if self._cache.delete(key))

    def clear(self) -> None:
        if not self._prefix:
            self._cache.clear()
            return
        where, args = self._range()
        keys = [row[0] for row in self._con().execute(f"SELECT key FROM Cache WHERE {where}", args)]
        for key in keys:
            self._cache.delete(key)

    def epoch(self) -> object:
        try:
            st = os.stat(self._epoch_path)
        except FileNotFoundError:
            return None
        return (st.st_ino, st.st_mtime_ns)

    def bump_epoch(self) -> None:
        tmp = self._epoch_path.with_name(f"epoch.{os.getpid()}.tmp")
        tmp.write_bytes(str(time.time_ns()).encode())
        os.replace(tmp, self._epoch_path)

    def close(self) -> None:
        self._cache.close()
