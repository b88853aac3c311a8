"""The response cache: LRU + TTL, shared by every process on a host.

Two tiers:

* a per-process front, an ``OrderedDict`` of decoded entries, which serves
  the hot path in about a microsecond;
* a diskcache ``Cache`` in one directory, which holds the entries every
  process on the host shares and is the truth for size, LRU order and
  eviction.

diskcache's own LRU policy turns every read into a write (80-90 us, ms at
p99), so the cache keeps LRU order itself: reads record the key and the time
in memory, and the times are written to diskcache's ``access_time`` column
in one batch before each eviction decision. Eviction removes the least
recently used entries once more than ``max_size`` are held. Entries expire
``ttl`` seconds after they were written, by the cache's clock (injectable
for tests).

Values are stored as JSON bytes (orjson), never pickles, so a shared cache
directory cannot carry code. ``clear()`` and ``invalidate()`` also bump an
epoch file in the directory; every process drops its front when it sees the
epoch change (checked at most once per ``sync_interval`` seconds).

A cache that cannot work (unwritable directory, corrupt database) logs one
warning, counts the failure in ``stats()["errors"]`` and reports misses: the
gateway then answers uncached.
"""

from __future__ import annotations

import hashlib
import logging
import os
import sqlite3
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import orjson

log = logging.getLogger("sarai_llm")

__all__ = ["KeyMaker", "ResponseCache", "default_cache_dir", "request_key"]

Clock = Callable[[], float]


def default_cache_dir() -> Path:
    """The per-user cache directory: ``$XDG_CACHE_HOME/sarai_llm`` or ``~/.cache/sarai_llm``."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "sarai_llm"


def _digest(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def request_key(payload: object, namespace: str = "") -> str | None:
    """A stable key for a request: independent of dict and keyword order.

    Returns ``None`` when the payload cannot be serialised canonically (an
    argument that is not JSON-like); such a request is not cached.
    """
    try:
        data = orjson.dumps(payload, option=_KEY_OPTIONS)
    except TypeError:
        return None
    digest = _digest(data)
    return f"{namespace}:{digest}" if namespace else digest


_KEY_OPTIONS = orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS


class KeyMaker:
    """Request keys for one route, with the route hashed once.

    ``KeyMaker(route).key(request)`` equals ``request_key((route, request))``
    in meaning (both are stable across processes) at the cost of hashing the
    request alone: the hot path of a cache hit.
    """

    __slots__ = ("_hasher", "_prefix")

    def __init__(self, route: object, namespace: str = ""):
        self._hasher = hashlib.blake2b(orjson.dumps(route, option=_KEY_OPTIONS), digest_size=16)
        self._prefix = f"{namespace}:" if namespace else ""

    def key(self, request: object) -> str | None:
        """The key of ``request`` on this route, or ``None`` if it is not JSON-like."""
        try:
            data = orjson.dumps(request, option=_KEY_OPTIONS)
        except TypeError:
            return None
        hasher = self._hasher.copy()
        hasher.update(data)
        return self._prefix + hasher.hexdigest()


def _tag(messages: object, model: str | None) -> str:
    """The invalidation tag of an entry: its messages and its model."""
    base = _digest(orjson.dumps(messages, option=orjson.OPT_SORT_KEYS))
    return f"{base}:{model}" if model is not None else f"{base}:"


class _Entry:
    __slots__ = ("expires_at", "tag", "value")

    def __init__(self, value: dict[str, Any], expires_at: float, tag: str):
        self.value = value
        self.expires_at = expires_at
        self.tag = tag


class ResponseCache:
    """LRU + TTL cache of complete answers, shared through a directory.

    :param directory: where the shared diskcache lives (created if missing).
    :param ttl: seconds an entry lives after it was written (default 3600).
    :param max_size: entries held before the least recently used is evicted
        (a count, not bytes; default 1000).
    :param namespace: prefix of every key, so that unrelated users of one
        directory never see each other's entries (default ``""``).
    :param clock: returns the current time in seconds; ``time.time`` unless
        a test injects another.
    :param sync_interval: seconds between checks of the shared epoch (default 1).
    """

    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        ttl: float = 3600,
        max_size: int = 1000,
        namespace: str = "",
        clock: Clock = time.time,
        sync_interval: float = 1.0,
    ):
        self.directory = Path(directory)
        self.ttl = ttl
        self.max_size = max_size
        self.namespace = namespace
        self.clock = clock
        self.sync_interval = sync_interval
        self.hits = 0
        self.misses = 0
        self.evictions = 0
        self.errors = 0
        self._front: OrderedDict[str, _Entry] = OrderedDict()
        self._touched: dict[str, float] = {}
        self._warned = False
        self._epoch_path = self.directory / "epoch"
        self._epoch: tuple[int, int] | None = None
        self._next_sync = 0.0
        self._disk: Any = None
        self._open()

    # -- setup and failure ------------------------------------------------------

    def _open(self) -> None:
        try:
            import diskcache

            self.directory.mkdir(parents=True, exist_ok=True)
            self._disk = diskcache.Cache(
                str(self.directory / "responses"),
                eviction_policy="none",  # LRU by count is ours, see the module docstring
                size_limit=2**62,
                statistics=False,
                tag_index=True,
            )
            self._epoch = self._read_epoch()
        except Exception as exc:  # unwritable directory, corrupt database, ...
            self._disk = None
            self._fail("cannot open", exc)

    def _fail(self, what: str, exc: BaseException) -> None:
        """Count a cache failure; warn the first time; keep answering uncached."""
        self.errors += 1
        if not self._warned:
            self._warned = True
            log.warning(
                "sarai_llm response cache disabled (%s %s: %s: %s); answering uncached",
                what,
                self.directory,
                type(exc).__name__,
                exc,
            )
        self._front.clear()
        self._touched.clear()
        if self._disk is not None:
            try:
                self._disk.close()
            except Exception:  # already broken
                pass
            self._disk = None

    @property
    def available(self) -> bool:
        """False once the shared store has failed; the cache then only misses."""
        return self._disk is not None

    # -- epoch: cross-process clear / invalidate -----------------------------------

    def _read_epoch(self) -> tuple[int, int] | None:
        try:
            st = os.stat(self._epoch_path)
        except FileNotFoundError:
            return None
        return (st.st_ino, st.st_mtime_ns)

    def _bump_epoch(self) -> None:
        tmp = self._epoch_path.with_name(f"epoch.{os.getpid()}.tmp")
        tmp.write_bytes(str(time.time_ns()).encode())
        os.replace(tmp, self._epoch_path)
        self._epoch = self._read_epoch()

    def _sync(self) -> None:
        self._next_sync = time.monotonic() + self.sync_interval
        epoch = self._read_epoch()
        if epoch != self._epoch:
            self._epoch = epoch
            self._front.clear()

    # -- the hot path ------------------------------------------------------------

    def get(self, key: str) -> dict[str, Any] | None:
        """The stored value for ``key``, or ``None``; counts a hit or a miss.

        The value is the cache's own object: callers copy before handing it out.
        """
        if time.monotonic() >= self._next_sync and self._disk is not None:
            self._sync()
        entry = self._front.get(key)
        now = self.clock()
        if entry is not None:
            if entry.expires_at > now:
                self._front.move_to_end(key)
                self._touched[key] = now
                self.hits += 1
                return entry.value
            self._drop(key)
        elif self._disk is not None:
            entry = self._load(key, now)
            if entry is not None:
                self._remember(key, entry)
                self._touched[key] = now
                self.hits += 1
                return entry.value
        self.misses += 1
        return None

    def _load(self, key: str, now: float) -> _Entry | None:
        try:
            raw = self._disk.get(key)
            if raw is None:
                return None
            record = orjson.loads(raw)
            entry = _Entry(record["v"], float(record["e"]), str(record["t"]))
        except (KeyError, TypeError, ValueError, orjson.JSONDecodeError):
            self._drop(key)  # an entry we cannot read is an entry we do not have
            return None
        except Exception as exc:
            self._fail("cannot read", exc)
            return None
        if entry.expires_at <= now:
            self._drop(key)
            return None
        return entry

    def _remember(self, key: str, entry: _Entry) -> None:
        front = self._front
        front[key] = entry
        front.move_to_end(key)
        if len(front) > self.max_size:
            front.popitem(last=False)

    def count_shared_hit(self, *, instead_of_miss: bool = False) -> None:
        """Count a hit served without a lookup: a coalesced follower, a repeated text.

        ``instead_of_miss`` turns the miss its failed lookup counted into the hit.
        """
        self.hits += 1
        if instead_of_miss:
            self.misses -= 1

    # -- writes (on the miss path) ---------------------------------------------

    def set(self, key: str, value: dict[str, Any], *, messages: object, model: str | None) -> None:
        """Store a complete answer under ``key``.

        ``messages`` and ``model`` form the entry's tag for :meth:`invalidate`.
        """
        if self._disk is None:
            return
        now = self.clock()
        entry = _Entry(value, now + self.ttl, _tag(messages, model))
        try:
            data = orjson.dumps({"v": value, "e": entry.expires_at, "t": entry.tag})
        except TypeError:
            return  # not JSON-like: not cacheable
        try:
            # diskcache's own expiry (real time) only reclaims space; the
            # cache's clock decides what is expired.
            self._disk.set(key, data, expire=self.ttl + 60, tag=entry.tag)
            self._remember(key, entry)
            # Misses are rare and slow (an upstream call): write the recency
            # of every read since the last miss, with this entry's, so that
            # LRU order on disk is current for every process.
            self._touched[key] = now
            self._flush_touches()
            if len(self._disk) > self.max_size:
                self._evict()
        except Exception as exc:
            self._fail("cannot write", exc)

    def _flush_touches(self) -> None:
        if not self._touched:
            return
        rows = [(t, k) for k, t in self._touched.items()]
        self._touched.clear()
        with self._disk.transact():
            self._con().executemany("UPDATE Cache SET access_time = ? WHERE key = ? AND raw = 1", rows)

    def _con(self) -> sqlite3.Connection:
        """diskcache's SQLite connection, for the two queries it has no API for."""
        con: sqlite3.Connection = self._disk._con  # noqa: SLF001
        return con

    def _evict(self) -> None:
        """Remove the least recently used entries above ``max_size``."""
        excess = len(self._disk) - self.max_size
        if excess <= 0:
            return
        victims = [
            row[0]
            for row in self._con().execute(
                "SELECT key FROM Cache WHERE raw = 1 ORDER BY access_time ASC, rowid ASC LIMIT ?", (excess,)
            )
        ]
        for key in victims:
            if self._disk.delete(key):
                self.evictions += 1
            self._front.pop(key, None)

    def _drop(self, key: str) -> None:
        self._front.pop(key, None)
        self._touched.pop(key, None)
        if self._disk is not None:
            try:
                self._disk.delete(key)
            except Exception as exc:
                self._fail("cannot delete", exc)

    # -- management ------------------------------------------------------------------

    def invalidate(self, messages: Sequence[Mapping[str, Any]], model: str | None = None) -> int:
        """Drop every entry for ``messages`` and ``model``, whatever its other parameters.

        ``model=None`` drops the entries of every model. Returns how many
        entries were dropped (in the shared store).
        """
        tag = _tag(list(messages), model)
        dropped = 0
        for key, entry in list(self._front.items()):
            if entry.tag == tag or (model is None and entry.tag.startswith(tag)):
                del self._front[key]
        if self._disk is None:
            return 0
        try:
            if model is not None:
                dropped = int(self._disk.evict(tag))
            else:
                keys = [
                    row[0]
                    for row in self._con().execute(
                        "SELECT key FROM Cache WHERE raw = 1 AND tag >= ? AND tag < ?", (tag, tag + "\uffff")
                    )
                ]
                dropped = sum(1 for key in keys if self._disk.delete(key))
            self._bump_epoch()
        except Exception as exc:
            self._fail("cannot invalidate", exc)
        return dropped

    def clear(self) -> None:
        """Drop every entry, in this process and in the shared directory."""
        self._front.clear()
        self._touched.clear()
        if self._disk is None:
            return
        try:
            self._disk.clear()
            self._bump_epoch()
        except Exception as exc:
            self._fail("cannot clear", exc)

    def __len__(self) -> int:
        if self._disk is None:
            return 0
        try:
            return int(len(self._disk))
        except Exception as exc:
            self._fail("cannot count", exc)
            return 0

    def stats(self) -> dict[str, Any]:
        """Counters for ``get_stats()["cache"]`` (hits and misses of this process)."""
        lookups = self.hits + self.misses
        return {
            "size": len(self),
            "max_size": self.max_size,
            "hits": self.hits,
            "misses": self.misses,
            "hit_rate": self.hits / lookups if lookups else 0.0,
            "evictions": self.evictions,
            "ttl": int(self.ttl) if float(self.ttl).is_integer() else self.ttl,
            "errors": self.errors,
            "directory": str(self.directory),
        }

    def close(self) -> None:
        """Write pending LRU times and close the shared store."""
        if self._disk is None:
            return
        try:
            self._flush_touches()
            self._disk.close()
        except Exception as exc:
            self._fail("cannot close", exc)
        self._disk = None

    def __repr__(self) -> str:
        return f"ResponseCache(directory={str(self.directory)!r}, ttl={self.ttl}, max_size={self.max_size})"
