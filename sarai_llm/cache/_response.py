"""The response cache (LRU + TTL in two tiers), the :class:`Store` protocol of its shared tier, its records, and
its keys and invalidation tags: BLAKE2b digests of canonical JSON, stable across processes."""

from __future__ import annotations

import functools
import hashlib
import heapq
import math
import os
import sys
import time
from array import array
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol, TypeVar

import orjson

from .._log import log
from .disk import DiskStore

_T = TypeVar("_T")
_KEY_OPTIONS = orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS
_DISABLED = "sarai_llm response cache disabled (%s %s: %s: %s); answering uncached"
_monotonic = time.monotonic
REORDER_AFTER = 1.0
"""Seconds after which a hit moves its entry to the recent end of the LRU order again (and tells the store)."""
_BIG_ENDIAN = sys.byteorder == "big"  # records hold vectors as little-endian float64
# What an entry costs the front besides its value: its key, its _Entry, its place in the OrderedDict (measured).
_ENTRY_OVERHEAD = 240


def request_key(payload: object, namespace: str = "") -> str | None:
    """The key of ``payload`` (32 hex digits after ``"<namespace>:"``, if any), or ``None`` if not JSON-like."""
    try:
        digest = hashlib.blake2b(orjson.dumps(payload, option=_KEY_OPTIONS), digest_size=16).hexdigest()
    except TypeError:
        return None
    return f"{namespace}:{digest}" if namespace else digest


class KeyMaker:
    """The keys of requests on one ``route`` (in ``namespace``, default ``""``), the route hashed once."""

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


def entry_tag(messages: object, model: str | None) -> str:
    """The invalidation tag ``"<digest of messages>:<model>"``; without a model, a prefix of every model's tag."""
    data = orjson.dumps(messages, option=orjson.OPT_SORT_KEYS)
    return f"{hashlib.blake2b(data, digest_size=16).hexdigest()}:{model if model is not None else ''}"


class Store(Protocol):
    """The entries a :class:`ResponseCache` shares, in one namespace: string keys, opaque bytes. ``describe()``
    names the store without credentials; ``put``'s ``ttl`` (seconds) only hints when to reclaim space; ``touch`` sets
    the last use of existing keys (on the cache's clock); ``least_recent(n)`` is oldest first; ``drop_tag`` deletes
    and counts the entries tagged ``tag`` (``prefix``: whose tag starts with it); ``epoch()`` changes whenever any
    process calls ``bump_epoch()``. Any method may raise: the cache then warns once and misses."""

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


class MemoryStore:
    """A :class:`Store` in this process's memory: ``ResponseCache(store=MemoryStore)`` gives a cache one of its own,
    ``store=lambda: shared`` lets caches share one (:meth:`close` keeps the entries). The ``ttl`` hint is unused."""

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


def footprint(value: object) -> int:
    """Bytes ``value`` holds: ``sys.getsizeof`` of it and of the values it contains (dict keys are shared)."""
    size = sys.getsizeof(value)
    if isinstance(value, dict):
        return size + sum(map(footprint, value.values()))
    if isinstance(value, list | tuple):
        return size + sum(map(footprint, value))
    return size


def _packed(value: dict[str, Any]) -> dict[str, Any]:
    """``value`` with its ``vector`` of floats as an ``array("d")``: 8 bytes a float, exact (float64)."""
    vector = value.get("vector")
    if type(vector) is list:
        try:
            return {**value, "vector": array("d", vector)}
        except TypeError:  # not all numbers: kept as it is
            pass
    return value


def encode(value: dict[str, Any], expires_at: float, tag: str) -> bytes:
    """The store's record: JSON ``{"v": value, "e": expires_at, "t": tag}``; a packed ``vector`` follows it, after
    a newline (compact JSON has none), as little-endian float64, and is ``null`` in the JSON.
    Raises ``TypeError`` for a value that is not JSON-like."""
    vector = value.get("vector")
    if not isinstance(vector, array):
        return orjson.dumps({"v": value, "e": expires_at, "t": tag})
    head = orjson.dumps({"v": {**value, "vector": None}, "e": expires_at, "t": tag})
    if _BIG_ENDIAN:
        vector = array("d", vector)
        vector.byteswap()
    return head + b"\n" + vector.tobytes()


def decode(record: bytes) -> tuple[dict[str, Any], float]:
    """The value (its ``vector`` packed) and expiry of a record of :func:`encode`.
    Raises ``KeyError``, ``TypeError`` or ``ValueError`` for one it cannot read."""
    head, _, packed = record.partition(b"\n")
    fields = orjson.loads(head)
    value = fields["v"]
    if not isinstance(value, dict):
        raise TypeError("not an entry")
    if packed:
        value["vector"] = vector = array("d")
        vector.frombytes(packed)
        if _BIG_ENDIAN:
            vector.byteswap()
    return _packed(value), float(fields["e"])


class _Entry:
    __slots__ = ("expires_at", "size", "used", "value")

    def __init__(self, value: dict[str, Any], expires_at: float):
        self.value, self.expires_at = value, expires_at  # expires_at: on the cache's clock
        self.size = footprint(value) + _ENTRY_OVERHEAD
        self.used = -math.inf  # when it was last put at the recent end: written, read from the store, or hit


class _Front(OrderedDict[str, _Entry]):
    """The in-process tier, least recently used first, held to ``max_entries`` and ``max_bytes`` (``nbytes``: their
    sizes, by :func:`footprint`); the entries it drops stay in the store."""

    def __init__(self, max_entries: int, max_bytes: int):
        super().__init__()
        self.max_entries, self.max_bytes, self.nbytes = max_entries, max_bytes, 0

    def put(self, key: str, entry: _Entry) -> None:
        self.discard(key)
        self[key] = entry
        self.nbytes += entry.size
        self.trim()

    def trim(self) -> None:
        """Drop the least recently used entries until the bounds hold."""
        while self.nbytes > self.max_bytes or len(self) > self.max_entries:
            self.nbytes -= self.popitem(last=False)[1].size

    def discard(self, key: str) -> None:
        if (entry := self.pop(key, None)) is not None:
            self.nbytes -= entry.size

    def clear(self) -> None:
        super().clear()
        self.nbytes = 0


class ResponseCache:
    """LRU + TTL cache of complete answers (JSON, never pickles), shared by every process using the same store.

    A front in this process serves a hit in about a microsecond and only notes the key and time; the next write
    (a miss, slow anyway) sends the times to the :class:`Store`, the truth for size, LRU order and eviction.
    The front holds the most recently used entries that fit in ``memory_mb`` (MB of 2**20 bytes, default 64),
    embedding vectors packed as float64; the others are read from the store. ``ttl``, ``sync_interval`` (between
    checks of the store's epoch, which clear and invalidate change) and ``retry_interval`` (before a failed store
    is opened again; meanwhile the cache misses) are in seconds;
    ``max_size`` counts entries; ``namespace`` prefixes every key; ``clock`` gives the time in seconds;
    ``store`` opens the shared store (default: a :class:`DiskStore` in ``directory``, created if missing).
    Each store failure counts in ``stats()["errors"]``; the first one logs a warning.
    """

    def __init__(
        self,
        directory: str | os.PathLike[str] | None = None,
        *,
        ttl: float = 3600,
        max_size: int = 1000,
        memory_mb: float = 64,
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
        self._front = _Front(max_size, int(memory_mb * 2**20))
        self._touched: dict[str, float] = {}  # key -> last hit, for the store's LRU order
        self._warned = False
        self._epoch: object = None
        self._retry_at = 0.0  # on time.monotonic(), like _next_sync
        self._sync()

    def _try(self, what: str, op: Callable[[Store], _T], default: _T, *, bump: bool = False) -> _T:
        """``op(store)`` (then, with ``bump``, a new epoch); ``default`` when there is no store or it fails."""
        if (store := self._store) is None:
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
        self.close()  # nothing left to write: only releases the store

    @property
    def memory_bytes(self) -> int:
        """Bytes of entries this process holds in memory: at most ``memory_mb`` MB."""
        return self._front.nbytes

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
        """The value for ``key`` (the cache's own: copy it before handing it out; a ``vector`` is an
        ``array("d")``), or ``None``; counts a hit or, unless ``count_miss=False`` (then the caller calls
        :meth:`count_miss`), a miss."""
        if _monotonic() >= self._next_sync:
            self._sync()
        front, now = self._front, self.clock()
        if (entry := front.get(key)) is not None:
            if entry.expires_at > now:
                if now - entry.used >= REORDER_AFTER:  # else it is among the most recent already (memcached's rule)
                    entry.used = now
                    front.move_to_end(key)
                    self._touched[key] = now
                self.hits += 1
                return entry.value
            self._drop(key)
        elif self._store is not None and (entry := self._load(key, now)) is not None:
            entry.used = self._touched[key] = now  # at the recent end now
            self.hits += 1
            return entry.value
        if count_miss:
            self.misses += 1
        return None

    def resize(self, ttl: float, max_size: int) -> None:
        """Apply a new ``ttl`` (to entries written from now on) and ``max_size`` (the front now, the store at its
        next write)."""
        self.ttl = ttl
        self.max_size = self._front.max_entries = max_size
        self._front.trim()

    def count_miss(self) -> None:
        """Count a miss that :meth:`get` was told not to count."""
        self.misses += 1

    def count_shared_hit(self, *, instead_of_miss: bool = False) -> None:
        """Count a hit served without a lookup (a coalesced follower, a repeated text), ``instead_of_miss``."""
        self.hits += 1
        if instead_of_miss:
            self.misses -= 1

    def _load(self, key: str, now: float) -> _Entry | None:
        """The store's live entry for ``key``, now in the front; an expired or unreadable one is dropped."""
        if (raw := self._try("cannot read", lambda s: s.get(key), None)) is None:
            return None
        try:
            entry = _Entry(*decode(raw))
            if entry.expires_at > now:
                self._front.put(key, entry)
                return entry
        except (KeyError, TypeError, ValueError):  # an entry we cannot read is one we do not have
            pass
        self._drop(key)
        return None

    def _drop(self, key: str) -> None:
        self._front.discard(key)
        self._touched.pop(key, None)
        self._try("cannot delete", lambda s: s.delete(key), False)

    def set(self, key: str, value: dict[str, Any], *, messages: object, model: str | None) -> None:
        """Store a complete answer under ``key``; ``messages`` and ``model`` tag it for :meth:`invalidate`."""
        if self._store is None:
            return
        now, tag, value = self.clock(), entry_tag(messages, model), _packed(value)
        entry = _Entry(value, now + self.ttl)
        try:
            data = encode(value, entry.expires_at, tag)
        except TypeError:
            return  # not JSON-like: not cacheable
        self._try("cannot write", lambda s: self._write(s, key, data, tag, entry, now), None)

    def _write(self, store: Store, key: str, data: bytes, tag: str, entry: _Entry, now: float) -> None:
        store.put(key, data, tag=tag, ttl=self.ttl)
        self._front.put(key, entry)
        # A miss is slow anyway: send the hits since the last one with it, for every process's LRU order.
        entry.used = self._touched[key] = now  # at the recent end now
        touched, self._touched = self._touched, {}
        store.touch(touched)
        excess = store.count() - self.max_size
        for old in store.least_recent(excess) if excess > 0 else ():
            self.evictions += store.delete(old)
            self._front.discard(old)

    def invalidate(self, messages: Sequence[Mapping[str, Any]], model: str | None = None) -> int:
        """Drop the entries of ``messages`` and ``model`` (``None``: any), whatever their parameters; how many."""
        tag, any_model = entry_tag(list(messages), model), model is None
        self._front.clear()  # as every other process's front, on the new epoch
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
        figures: dict[str, Any] = {"size": len(self), "max_size": self.max_size, "hits": self.hits}
        figures |= {"misses": self.misses, "hit_rate": self.hits / lookups if lookups else 0.0}
        figures |= {"memory_bytes": self.memory_bytes, "memory_max_bytes": self._front.max_bytes}
        ttl = int(self.ttl) if float(self.ttl).is_integer() else self.ttl
        return figures | {"evictions": self.evictions, "ttl": ttl, "errors": self.errors, "store": self._where}

    def close(self) -> None:
        """Write pending LRU times and close the shared store."""
        if self._touched:
            touched, self._touched = self._touched, {}
            self._try("cannot close", lambda s: s.touch(touched), None)
        store, self._store = self._store, None
        if store is not None:
            try:
                store.close()
            except Exception:  # broken already, or nothing left to write: nothing to lose
                log.debug("closing the cache store failed", exc_info=True)

    def __repr__(self) -> str:
        return f"ResponseCache(store={self._where!r}, ttl={self.ttl}, max_size={self.max_size})"
