"""The default store: diskcache in one directory, shared by the processes of one host. diskcache's LRU policy
turns every read into a write (80-90 us, ms at p99): the store keeps LRU order in ``access_time`` itself."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
from pathlib import Path

RECLAIM_MARGIN = 60.0  # seconds an entry outlives its ttl in diskcache or Redis: their expiry only reclaims space


def default_cache_dir() -> Path:
    """The per-user cache directory: ``$XDG_CACHE_HOME/sarai_llm``, else ``~/.cache/sarai_llm``."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "sarai_llm"


class DiskStore:
    """A :class:`~sarai_llm.cache.Store` over a diskcache database in ``directory/responses`` (created if missing),
    counting, evicting and clearing only the keys of ``namespace`` (``""``: every key of the directory).

    :raises sqlite3.DatabaseError: the database is corrupt.
    """

    def __init__(self, directory: str | os.PathLike[str], namespace: str = ""):
        import diskcache

        self.directory = Path(directory)
        self._epoch_path = self.directory / "epoch"  # replaced by clear and invalidate; every process stats it
        path = self.directory / "responses"  # reads never write: no LRU policy, no statistics
        # It holds every module's prompts and answers: a directory created here is private (0700; missing parents
        # get the default mode), and so is the database (0600, set right after opening, when only diskcache's
        # settings are in it; sqlite's -wal/-shm files take the database's mode; value files diskcache may write
        # follow the umask, inside the private directory). Modes are given, not a umask set: os.umask is
        # process-wide. An existing directory is left as it is, its files too (a team may share one on purpose).
        fresh = not self.directory.is_dir()
        for new in (self.directory, path) if fresh else ():
            new.mkdir(mode=0o700, parents=True, exist_ok=True)
        # No memory map and a 4 MB page cache (diskcache's defaults: 64 MB and 32 MB, both counted in the process's
        # RSS as the store grows): the kernel's page cache keeps reads as fast (~10 us for a 6 KB entry).
        low_memory = {"sqlite_mmap_size": 0, "sqlite_cache_size": 1024}
        self._cache = diskcache.Cache(
            path, eviction_policy="none", size_limit=2**62, statistics=False, tag_index=True, **low_memory
        )
        for file in path.glob("cache.db*") if fresh else ():
            file.chmod(0o600)
        prefix = f"{namespace}:"
        self._args: tuple[str, ...] = (prefix, prefix + "\uffff") if namespace else ()
        self._where = "raw = 1 AND key >= ? AND key < ?" if namespace else "raw = 1"  # this namespace's keys
        self._con().execute("SELECT count(*) FROM Cache").fetchone()  # a corrupt file fails here, not mid-call

    def _con(self) -> sqlite3.Connection:
        con: sqlite3.Connection = self._cache._con  # noqa: SLF001 - per thread and process: read it each time
        return con

    def _keys(self, where: str, args: tuple[object, ...]) -> list[str]:
        return [row[0] for row in self._con().execute(f"SELECT key FROM Cache WHERE {where}", args)]

    def describe(self) -> str:
        return str(self.directory)

    def get(self, key: str) -> bytes | None:
        value = self._cache.get(key)
        return value if isinstance(value, bytes) else None

    def put(self, key: str, data: bytes, *, tag: str, ttl: float) -> None:
        self._cache.set(key, data, expire=ttl + RECLAIM_MARGIN, tag=tag)

    def delete(self, key: str) -> bool:
        return bool(self._cache.delete(key))

    def touch(self, times: dict[str, float]) -> None:
        with self._cache.transact():
            sql = "UPDATE Cache SET access_time = ? WHERE key = ? AND raw = 1"
            self._con().executemany(sql, [(t, k) for k, t in times.items()])

    def count(self) -> int:
        if not self._args:
            return int(len(self._cache))
        return int(self._con().execute(f"SELECT count(*) FROM Cache WHERE {self._where}", self._args).fetchone()[0])

    def least_recent(self, n: int) -> list[str]:
        return self._keys(f"{self._where} ORDER BY access_time ASC, rowid ASC LIMIT ?", (*self._args, n))

    def drop_tag(self, tag: str, *, prefix: bool = False) -> int:
        if not prefix:
            return int(self._cache.evict(tag))
        keys = self._keys("raw = 1 AND tag >= ? AND tag < ?", (tag, tag + "\uffff"))
        return sum(1 for key in keys if self._cache.delete(key))

    def clear(self) -> None:
        if not self._args:
            self._cache.clear()
            return
        for key in self._keys(self._where, self._args):
            self._cache.delete(key)

    def epoch(self) -> object:
        with contextlib.suppress(FileNotFoundError):
            st = os.stat(self._epoch_path)
            return (st.st_ino, st.st_mtime_ns)
        return None

    def bump_epoch(self) -> None:
        tmp = self._epoch_path.with_name(f"epoch.{os.getpid()}.tmp")
        tmp.write_bytes(str(time.time_ns()).encode())
        os.replace(tmp, self._epoch_path)

    def close(self) -> None:
        self._cache.close()
