"""The response cache: LRU + TTL, shared by every process that uses the same store.

Two tiers:

* a per-process front, an ``OrderedDict`` of decoded entries, which serves
  the hot path in about a microsecond;
* a shared :class:`Store` (diskcache in a directory by default; Redis for
  several hosts), which holds the entries every process shares and is the
  truth for size, LRU order and eviction.

Reads record the key and the time in memory; the times are written to the
store in one batch with each write (a miss, already slow), so the hot path
never writes. Eviction removes the least recently used entries once more than
``max_size`` are held. Entries expire ``ttl`` seconds after they were
written, by the cache's clock (injectable for tests).

Values are stored as JSON bytes (orjson), never pickles, so a shared store
cannot carry code. ``clear()`` and ``invalidate()`` bump the store's epoch;
every process drops its front when it sees the epoch change (checked at most
once per ``sync_interval`` seconds).

A store that fails (unwritable directory, corrupt database, Redis down) logs
one warning, counts the failure in ``stats()["errors"]`` and the cache
reports misses: the gateway answers uncached. The store is opened again
after ``retry_interval`` seconds.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import orjson

from ._log import log

__all__ = ["KeyMaker", "ResponseCache", "Store", "default_cache_dir", "request_key"]

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


class Store(Protocol):
    """Where a :class:`ResponseCache` keeps the entries its processes share.

    Keys are strings, values opaque bytes. Every method may raise on an I/O
    failure; the cache turns that into a warning and a miss.
    """

    def describe(self) -> str:
        """Where the store is, for messages (no credentials)."""
        ...

    def get(self, key: str) -> bytes | None: ...

    def put(self, key: str, data: bytes, *, tag: str, ttl: float) -> None:
        """Store ``data``; ``ttl`` seconds is a hint for reclaiming space."""
        ...

    def delete(self, key: str) -> bool: ...

    def touch(self, times: dict[str, float]) -> None:
        """Record the last use of keys (key -> time on the cache's clock)."""
        ...

    def count(self) -> int:
        """Entries held (of this cache's namespace)."""
        ...

    def least_recent(self, n: int) -> list[str]:
        """The ``n`` least recently used keys, oldest first."""
        ...

    def drop_tag(self, tag: str, *, prefix: bool = False) -> int:
        """Delete the entries whose tag is ``tag`` (or starts with it); return how many."""
        ...

    def clear(self) -> None:
        """Delete every entry of this cache's namespace, and nothing else."""
        ...

    def epoch(self) -> object:
        """A value that changes whenever any process clears or invalidates."""
        ...

    def bump_epoch(self) -> None: ...

    def close(self) -> None: ...


class ResponseCache:
    """LRU + TTL cache of complete answers, shared through a :class:`Store`.

    :param directory: directory of the default diskcache store (created if
        missing); ignored when ``store`` is given.
    :param ttl: seconds an entry lives after it was written (default 3600).
    :param max_size: entries held before the least recently used is evicted
        (a count, not bytes; default 1000).
    :param namespace: prefix of every key, so that unrelated users of one
        store never see each other's entries (default ``""``).
    :param clock: returns the current time in seconds; ``time.time`` unless
        a test injects another.
    :param sync_interval: seconds between checks of the shared epoch (default 1).
    :param store: a factory of the shared store; default: a
        :class:`~sarai_llm.disk_store.DiskStore` in ``directory``.
    :param retry_interval: seconds before a failed store is opened again
        (default 30).
    """

    def __init__(
        self,
        directory: str | os.PathLike[str] | None = None,
        *,
        ttl: float = 3600,
        max_size: int = 1000,
        namespace: str = "",
        clock: Clock = time.time,
        sync_interval: float = 1.0,
        store: Callable[[], Store] | None = None,
        retry_interval: float = 30.0,
    ):
        if store is None:
            if directory is None:
                raise ValueError("ResponseCache needs a directory or a store")
            path = Path(directory)

            def store() -> Store:
                from .disk_store import DiskStore

                return DiskStore(path, namespace)

        self.directory = Path(directory) if directory is not None else None
        self.ttl = ttl
        self.max_size = max_size
        self.namespace = namespace
        self.clock = clock
        self.sync_interval = sync_interval
        self.retry_interval = retry_interval
        self.hits = 0
        self.misses = 0
        self.evictions = 0
        self.errors = 0
        self._open_store = store
        self._store: Store | None = None
        self._where = str(directory) if directory is not None else "the shared store"
        self._front: OrderedDict[str, _Entry] = OrderedDict()
        self._touched: dict[str, float] = {}
        self._warned = False
        self._epoch: object = None
        self._next_sync = 0.0
        self._retry_at = 0.0
        self._open()

    # -- setup and failure ------------------------------------------------------

    def _open(self) -> None:
        try:
            store = self._open_store()
            self._where = store.describe()
            self._epoch = store.epoch()
            self._store = store
        except Exception as exc:  # unwritable directory, corrupt database, server down, ...
            self._fail("cannot open", exc)

    def _fail(self, what: str, exc: BaseException) -> None:
        """Count a store failure; warn the first time; answer uncached until it reopens."""
        self.errors += 1
        if not self._warned:
            self._warned = True
            log.warning(
                "sarai_llm response cache disabled (%s %s: %s: %s); answering uncached",
                what,
                self._where,
                type(exc).__name__,
                exc,
            )
        self._front.clear()
        self._touched.clear()
        store, self._store = self._store, None
        self._retry_at = time.monotonic() + self.retry_interval
        if store is not None:
            try:
                store.close()
            except Exception:  # already broken
                pass

    @property
    def available(self) -> bool:
        """False while the shared store is failing; the cache then only misses."""
        return self._store is not None

    def _sync(self) -> None:
        """Drop the front when another process cleared or invalidated; reopen a failed store."""
        now = time.monotonic()
        self._next_sync = now + self.sync_interval
        store = self._store
        if store is None:
            if now >= self._retry_at:
                self._open()
            return
        try:
            epoch = store.epoch()
        except Exception as exc:
            self._fail("cannot read the epoch of", exc)
            return
        if epoch != self._epoch:
            self._epoch = epoch
            self._front.clear()

    # -- the hot path ------------------------------------------------------------

    def get(self, key: str, *, count_miss: bool = True) -> dict[str, Any] | None:
        """The stored value for ``key``, or ``None``; counts a hit or a miss.

        The value is the cache's own object: callers copy before handing it out.
        ``count_miss=False`` leaves a miss for the caller to count (with
        :meth:`count_miss`) once it knows the request is a real one.
        """
        if time.monotonic() >= self._next_sync:
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
        elif self._store is not None:
            entry = self._load(self._store, key, now)
            if entry is not None:
                self._remember(key, entry)
                self._touched[key] = now
                self.hits += 1
                return entry.value
        if count_miss:
            self.misses += 1
        return None

    def count_miss(self) -> None:
        """Count a miss that :meth:`get` was told not to count."""
        self.misses += 1

    def _load(self, store: Store, key: str, now: float) -> _Entry | None:
        try:
            raw = store.get(key)
        except Exception as exc:
            self._fail("cannot read", exc)
            return None
        if raw is None:
            return None
        try:
            record = orjson.loads(raw)
            entry = _Entry(record["v"], float(record["e"]), str(record["t"]))
        except (KeyError, TypeError, ValueError, orjson.JSONDecodeError):
            self._drop(key)  # an entry we cannot read is an entry we do not have
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
        store = self._store
        if store is None:
            return
        now = self.clock()
        entry = _Entry(value, now + self.ttl, _tag(messages, model))
        try:
            data = orjson.dumps({"v": value, "e": entry.expires_at, "t": entry.tag})
        except TypeError:
            return  # not JSON-like: not cacheable
        try:
            store.put(key, data, tag=entry.tag, ttl=self.ttl)
            self._remember(key, entry)
            # Misses are rare and slow (an upstream call): write the recency
            # of every read since the last miss, with this entry's, so that
            # LRU order in the store is current for every process.
            self._touched[key] = now
            touched, self._touched = self._touched, {}
            store.touch(touched)
            excess = store.count() - self.max_size
            if excess > 0:
                self._evict(store, excess)
        except Exception as exc:
            self._fail("cannot write", exc)

    def _evict(self, store: Store, excess: int) -> None:
        """Remove the ``excess`` least recently used entries."""
        for key in store.least_recent(excess):
            if store.delete(key):
                self.evictions += 1
            self._front.pop(key, None)

    def _drop(self, key: str) -> None:
        self._front.pop(key, None)
        self._touched.pop(key, None)
        if self._store is not None:
            try:
                self._store.delete(key)
            except Exception as exc:
                self._fail("cannot delete", exc)

    # -- management ------------------------------------------------------------------

    def invalidate(self, messages: Sequence[Mapping[str, Any]], model: str | None = None) -> int:
        """Drop every entry for ``messages`` and ``model``, whatever its other parameters.

        ``model=None`` drops the entries of every model. Returns how many
        entries were dropped from the shared store.
        """
        tag = _tag(list(messages), model)
        for key, entry in list(self._front.items()):
            if entry.tag == tag or (model is None and entry.tag.startswith(tag)):
                del self._front[key]
        store = self._store
        if store is None:
            return 0
        try:
            dropped = store.drop_tag(tag, prefix=model is None)
            store.bump_epoch()
            self._epoch = store.epoch()
        except Exception as exc:
            self._fail("cannot invalidate", exc)
            return 0
        return dropped

    def clear(self) -> None:
        """Drop every entry of this namespace, in this process and in the shared store."""
        self._front.clear()
        self._touched.clear()
        store = self._store
        if store is None:
            return
        try:
            store.clear()
            store.bump_epoch()
            self._epoch = store.epoch()
        except Exception as exc:
            self._fail("cannot clear", exc)

    def __len__(self) -> int:
        store = self._store
        if store is None:
            return 0
        try:
            return store.count()
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
            "store": self._where,
        }

    def close(self) -> None:
        """Write pending LRU times and close the shared store."""
        store = self._store
        if store is None:
            return
        try:
            if self._touched:
                store.touch(self._touched)
                self._touched = {}
        except Exception as exc:
            self._fail("cannot close", exc)  # closes the store too
            return
        self._store = None
        try:
            store.close()
        except Exception:  # closing a store that has written everything: nothing left to lose
            log.debug("closing the cache store failed", exc_info=True)

    def __repr__(self) -> str:
        return f"ResponseCache(store={self._where!r}, ttl={self.ttl}, max_size={self.max_size})"
