"""The response cache, LRU + TTL in two tiers, and the :class:`Store` protocol of its shared tier."""

from __future__ import annotations

import functools
import os
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol, TypeVar

import orjson

from .._log import log
from ._keys import entry_tag
from .disk import DiskStore

_T = TypeVar("_T")
_DISABLED = "sarai_llm response cache disabled (%s %s: %s: %s); answering uncached"


class Store(Protocol):
    """The entries a :class:`ResponseCache` shares, in one namespace: string keys, opaque bytes.

    ``describe()`` names the store without credentials; ``put``'s ``ttl`` (seconds) is a hint for
    reclaiming space; ``touch`` records the last use of existing keys (seconds on the cache's clock);
    ``least_recent(n)`` lists keys oldest first; ``drop_tag`` deletes the entries tagged ``tag``
    (``prefix``: whose tag starts with it) and returns how many; ``epoch()`` changes whenever any
    process calls ``bump_epoch()``. Any method may raise: the cache then warns once and misses.
    """

    def describe(self) -> str: ...
    def get(self, key: str) -> bytes | None: ...
    def put(self, key: str, data: bytes, *, tag: str, ttl: float) -> None: ...
    def delete(self, key: str) -> bool: ...
    def touch(self, times: dict[str, float]) -> None: ...
    def count(self) -> int: ...
    def least_recent(self, n: int) -> list[str]: ...
    def drop_tag(self, tag: str, *, prefix: bool = False) -> int: ...
    def clear(self) -> None: ...
    def epoch(self) -> object: ...
    def bump_epoch(self) -> None: ...
    def close(self) -> None: ...


class _Entry:
    __slots__ = ("expires_at", "tag", "value")

    def __init__(self, value: dict[str, Any], expires_at: float, tag: str):
        self.value, self.expires_at, self.tag = value, expires_at, tag  # expires_at: on the cache's clock


class ResponseCache:
    """LRU + TTL cache of complete answers, shared by every process that uses the same store.

    A front in this process serves a hit in about a microsecond and only notes the key and time;
    the next write (a miss, slow anyway) sends the times to the :class:`Store`, the truth for
    size, LRU order and eviction. Values are JSON, never pickles.

    :param directory: where the default :class:`~sarai_llm.cache.DiskStore` lives (created if missing).
    :param ttl: seconds an entry lives after it was written (default 3600).
    :param max_size: entries held before the least recently used is evicted (a count; default 1000).
    :param namespace: prefix of every key: users of one store never see each other's entries (default ``""``).
    :param clock: the current time in seconds (default ``time.time``; tests inject another).
    :param sync_interval: seconds between checks of the store's epoch, which clear and invalidate
        change so that every process drops its front (default 1).
    :param store: opens the shared store, again after a failure (default: a ``DiskStore`` in ``directory``).
    :param retry_interval: seconds before a failed store is opened again (default 30); meanwhile the
        cache misses. Each failure counts in ``stats()["errors"]``; the first one logs a warning.
    """

    def __init__(
        self,
        directory: str | os.PathLike[str] | None = None,
        *,
        ttl: float = 3600,
        max_size: int = 1000,
        namespace: str = "",
        clock: Callable[[], float] = time.time,
        sync_interval: float = 1.0,
        store: Callable[[], Store] | None = None,
        retry_interval: float = 30.0,
    ):
        if store is None:
            if directory is None:
                raise ValueError("ResponseCache needs a directory or a store")
            store = functools.partial(DiskStore, Path(directory), namespace)
        self.directory = Path(directory) if directory is not None else None
        self.ttl, self.max_size, self.namespace, self.clock = ttl, max_size, namespace, clock
        self.sync_interval, self.retry_interval = sync_interval, retry_interval
        self.hits = self.misses = self.evictions = self.errors = 0
        self._open_store = store
        self._store: Store | None = None
        self._where = str(directory) if directory is not None else "the shared store"
        self._front: OrderedDict[str, _Entry] = OrderedDict()
        self._touched: dict[str, float] = {}  # key -> last hit, for the store's LRU order
        self._warned = False
        self._epoch: object = None
        self._retry_at = 0.0  # on time.monotonic(), like _next_sync
        self._sync()

    def _try(self, what: str, op: Callable[[Store], _T], default: _T, *, bump: bool = False) -> _T:
        """``op(store)`` (then, with ``bump``, a new epoch); ``default`` when there is no store or it fails."""
        store = self._store
        if store is None:
            return default
        try:
            result = op(store)
            if bump:
                store.bump_epoch()
                self._epoch = store.epoch()
            return result
        except Exception as exc:
            self._fail(what, exc)
            return default

    def _fail(self, what: str, exc: BaseException) -> None:
        self.errors += 1
        if not self._warned:
            self._warned = True
            log.warning(_DISABLED, what, self._where, type(exc).__name__, exc)
        self._front.clear()
        self._touched.clear()
        self._retry_at = time.monotonic() + self.retry_interval
        self._release()

    def _release(self) -> None:
        store, self._store = self._store, None
        if store is not None:
            try:
                store.close()
            except Exception:  # broken already, or nothing left to write: nothing to lose
                log.debug("closing the cache store failed", exc_info=True)

    @property
    def available(self) -> bool:
        """False while the shared store is failing; the cache then only misses."""
        return self._store is not None

    def _sync(self) -> None:
        """Drop the front when another process cleared or invalidated; (re)open the store when due."""
        now = time.monotonic()
        self._next_sync = now + self.sync_interval
        if self._store is not None:
            epoch = self._try("cannot read the epoch of", lambda s: s.epoch(), self._epoch)
            if epoch != self._epoch:
                self._epoch = epoch
                self._front.clear()
        elif now >= self._retry_at:
            try:
                self._store = store = self._open_store()
                self._where = store.describe()
                self._epoch = store.epoch()
            except Exception as exc:  # unwritable directory, corrupt database, server down, ...
                self._fail("cannot open", exc)

    def get(self, key: str, *, count_miss: bool = True) -> dict[str, Any] | None:
        """The value for ``key`` (the cache's own object: copy it before handing it out), or ``None``.

        Counts a hit or, unless ``count_miss=False`` (the caller calls :meth:`count_miss` later), a miss.
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
            entry = self._load(key, now)
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

    def count_shared_hit(self, *, instead_of_miss: bool = False) -> None:
        """Count a hit served without a lookup (a coalesced follower, a repeated text), ``instead_of_miss``."""
        self.hits += 1
        if instead_of_miss:
            self.misses -= 1

    def _load(self, key: str, now: float) -> _Entry | None:
        raw = self._try("cannot read", lambda s: s.get(key), None)
        if raw is None:
            return None
        try:
            record = orjson.loads(raw)
            entry = _Entry(record["v"], float(record["e"]), str(record["t"]))
            if entry.expires_at > now:
                return entry
        except (KeyError, TypeError, ValueError):  # an entry we cannot read is one we do not have
            pass
        self._drop(key)
        return None

    def _remember(self, key: str, entry: _Entry) -> None:
        self._front[key] = entry
        self._front.move_to_end(key)
        if len(self._front) > self.max_size:
            self._front.popitem(last=False)

    def _drop(self, key: str) -> None:
        self._front.pop(key, None)
        self._touched.pop(key, None)
        self._try("cannot delete", lambda s: s.delete(key), False)

    def set(self, key: str, value: dict[str, Any], *, messages: object, model: str | None) -> None:
        """Store a complete answer under ``key``; ``messages`` and ``model`` tag it for :meth:`invalidate`."""
        if self._store is None:
            return
        now = self.clock()
        entry = _Entry(value, now + self.ttl, entry_tag(messages, model))
        try:
            data = orjson.dumps({"v": value, "e": entry.expires_at, "t": entry.tag})
        except TypeError:
            return  # not JSON-like: not cacheable
        self._try("cannot write", lambda s: self._write(s, key, data, entry, now), None)

    def _write(self, store: Store, key: str, data: bytes, entry: _Entry, now: float) -> None:
        store.put(key, data, tag=entry.tag, ttl=self.ttl)
        self._remember(key, entry)
        # A miss is slow anyway (an upstream call): send the hits since the last one
        # with it, so that LRU order in the store is current for every process.
        self._touched[key] = now
        touched, self._touched = self._touched, {}
        store.touch(touched)
        excess = store.count() - self.max_size
        for old in store.least_recent(excess) if excess > 0 else ():
            self.evictions += store.delete(old)
            self._front.pop(old, None)

    def invalidate(self, messages: Sequence[Mapping[str, Any]], model: str | None = None) -> int:
        """Drop the entries of ``messages`` and ``model`` (``None``: any), whatever their parameters; how many."""
        tag = entry_tag(list(messages), model)
        any_model = model is None
        for key, entry in list(self._front.items()):
            if entry.tag == tag or (any_model and entry.tag.startswith(tag)):
                del self._front[key]
        return self._try("cannot invalidate", lambda s: s.drop_tag(tag, prefix=any_model), 0, bump=True)

    def clear(self) -> None:
        """Drop every entry of this namespace, in this process and in the shared store."""
        self._front.clear()
        self._touched.clear()
        self._try("cannot clear", lambda s: s.clear(), None, bump=True)

    def __len__(self) -> int:
        return self._try("cannot count", lambda s: s.count(), 0)

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
        if self._touched:
            touched, self._touched = self._touched, {}
            self._try("cannot close", lambda s: s.touch(touched), None)
        self._release()

    def __repr__(self) -> str:
        return f"ResponseCache(store={self._where!r}, ttl={self.ttl}, max_size={self.max_size})"
