"""The Redis store of the response cache: cached answers shared by many hosts.

Selected with ``LLM_GATEWAY_CACHE_BACKEND=redis`` and
``LLM_GATEWAY_REDIS_URL=redis://[:password@]host:6379/0`` (YAML:
``cache: {backend: redis, redis_url: ...}``); needs the ``redis`` package
(``pip install 'sarai_llm[redis]'``). It keeps the semantics of the default
:class:`~sarai_llm.disk_store.DiskStore`: the :class:`~sarai_llm.cache.ResponseCache`
in each process decides expiry (by its clock) and the entry limit, and asks
the store for counts, LRU order and deletions.

Keys, all under one prefix per namespace, ``P = sarai_llm:{<namespace>}:``
(the namespace percent-encoded, so that no namespace's prefix is a prefix of
another's and none holds a glob character; the braces make ``P`` a Redis
Cluster hash tag, so one namespace's keys share a slot):

============================ ===============================================================
``P e:<key>``                the entry (JSON bytes), with ``PEXPIRE`` = ttl + 60 s: Redis
                             reclaims the space; expiry itself is judged by the cache's clock
``P lru``                    sorted set, member = key, score = last use on the cache's
                             clock: ``count()`` is its ``ZCARD``, ``least_recent(n)`` its
                             ``n`` lowest members
``P exp``                    sorted set, member = key, score = the wall-clock time at which
                             Redis drops the entry: members whose entry expired are removed
                             from ``lru`` and ``exp`` (a Lua script, atomic) before each count
``P tag:<tag>``              set of the keys written with that invalidation tag, expiring with
                             its newest entry; ``drop_tag(prefix=True)`` finds the tag sets
                             with ``SCAN MATCH "P tag:<tag>*"``
``P epoch``                  counter (``INCR``) bumped by ``clear()`` and ``invalidate()``;
                             every process polls it to drop its in-process front
============================ ===============================================================

How the entry limit and LRU map onto Redis: each process's cache writes the
times of its reads in one ``ZADD XX`` batch on its next miss (reads never
write), and after each write asks ``count()``; when more than ``max_size``
entries are held, it deletes the ``excess`` lowest-scored members of
``P lru``. Redis's own ``maxmemory`` eviction is not used: the limit is an
entry count, per namespace, like the disk store's.

Caveats (the limit and the order are approximate across processes):

* two processes writing at once may both see the same excess and evict twice
  (the set briefly holds fewer than ``max_size`` entries), or both see none
  (briefly a few more);
* LRU order is as current as each process's last miss: reads served from a
  process's in-memory front reach Redis with its next write;
* the scores are the processes' clocks: hosts with skewed clocks skew the
  order (not the expiry, which every process judges from the entry's own
  deadline);
* ``clear()`` (``SCAN`` + ``UNLINK`` of this namespace's keys, never
  ``FLUSHDB``/``FLUSHALL``) and prefix invalidation walk the whole keyspace
  incrementally: fine for management operations, not for a hot path; an
  entry written during a ``clear()`` may survive it;
* run Redis with ``maxmemory-policy noeviction`` or a ``volatile-*`` policy:
  the entries and tag sets carry an expiry, the ``lru``/``exp`` sorted sets and
  the epoch do not, so ``volatile-*`` never evicts the bookkeeping. An entry
  Redis evicts by itself stays counted until its ``exp`` time.

Failures: the client uses short timeouts (0.5 s to connect, 1 s per command)
and one immediate retry on a new connection (for a connection that Redis's
``timeout``, a NAT or a load balancer dropped), so a dead Redis fails within
milliseconds (refused) or about 2 s (unreachable); the cache then warns once,
counts ``stats()["errors"]``, answers uncached, and reconnects after its
``retry_interval``.
"""

from __future__ import annotations

import importlib.util
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

from .errors import CacheError, ConfigError, redact

if TYPE_CHECKING:
    from .cache import Store
    from .config import GatewayConfig

__all__ = ["KEY_ROOT", "RedisStore", "key_prefix", "public_url", "store_factory"]

KEY_ROOT = "sarai_llm"
"""First component of every key the store writes."""

CONNECT_TIMEOUT = 0.5
"""Seconds to open a connection to Redis before the store counts as down."""
COMMAND_TIMEOUT = 1.0
"""Seconds one command may take before the store counts as down."""

_MARGIN = 60.0  # seconds an entry outlives its ttl in Redis, like the disk store's reclaim margin
_PRUNE_BATCH = 1000  # expired members removed per count()
_DELETE_BATCH = 500  # keys per UNLINK in clear()
_GLOB_SPECIAL = str.maketrans({c: "\\" + c for c in "*?[]\\^"})

# Remove from lru and exp the keys whose entry Redis has expired (atomic).
# KEYS: lru, exp; ARGV: now (wall clock), entry key prefix, batch size.
_PRUNE = """
local expired = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[3]))
local gone = 0
for _, member in ipairs(expired) do
  if redis.call('EXISTS', ARGV[2] .. member) == 0 then
    redis.call('ZREM', KEYS[1], member)
    redis.call('ZREM', KEYS[2], member)
    gone = gone + 1
  end
end
return gone
"""

# Delete the entries of one tag set, then the set (atomic); return how many entries existed.
# KEYS: the tag set, lru, exp; ARGV: entry key prefix.
_DROP_TAG = """
local members = redis.call('SMEMBERS', KEYS[1])
local dropped = 0
for _, member in ipairs(members) do
  dropped = dropped + redis.call('DEL', ARGV[1] .. member)
  redis.call('ZREM', KEYS[2], member)
  redis.call('ZREM', KEYS[3], member)
end
redis.call('DEL', KEYS[1])
return dropped
"""


def key_prefix(namespace: str) -> str:
    """The prefix of every key of ``namespace``: ``sarai_llm:{rag}:`` (the namespace percent-encoded)."""
    return f"{KEY_ROOT}:{{{quote(namespace, safe='')}}}:"


def _glob_escape(text: str) -> str:
    return text.translate(_GLOB_SPECIAL)


def public_url(url: str) -> str:
    """``url`` without its credentials or query: what messages may show."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme == "unix":
        return f"unix://{parts.path}"
    host = parts.hostname or "localhost"
    if ":" in host:
        host = f"[{host}]"
    port = f":{parts.port}" if parts.port else ""
    return f"{scheme}://{host}{port}{parts.path}"


class RedisStore:
    """A :class:`~sarai_llm.cache.Store` in Redis, under one namespace's key prefix.

    :param client: a synchronous ``redis.Redis`` client returning bytes
        (``decode_responses=False``); see :meth:`from_url` for the one the
        gateway builds.
    :param namespace: the cache's namespace; every key of the store lives
        under :func:`key_prefix` of it, and :meth:`clear` deletes only those.
    :param where: how :meth:`describe` names the server (no credentials).

    The constructor sends a ``PING``, so a server that is down fails here.
    """

    def __init__(self, client: Any, namespace: str = "", *, where: str = "redis"):
        # Typed Any: redis-py's method annotations are sync-or-async unions.
        self._r: Any = client
        self.namespace = namespace
        self.prefix = key_prefix(namespace)
        self._where = where
        self._entry = self.prefix + "e:"
        self._lru = self.prefix + "lru"
        self._exp = self.prefix + "exp"
        self._tag = self.prefix + "tag:"
        self._epoch_key = (self.prefix + "epoch").encode()
        self._prune = client.register_script(_PRUNE)
        self._drop_tag = client.register_script(_DROP_TAG)
        self._r.ping()

    @classmethod
    def from_url(
        cls,
        url: str,
        namespace: str = "",
        *,
        connect_timeout: float = CONNECT_TIMEOUT,
        timeout: float = COMMAND_TIMEOUT,
    ) -> RedisStore:
        """Connect to ``url`` (``redis://``, ``rediss://`` or ``unix://``) with short timeouts and one retry.

        :raises CacheError: the server cannot be reached or refuses us; the
            message names the server (without credentials) and the cause.
        """
        import redis
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        where = public_url(url)
        try:
            client = redis.Redis.from_url(
                url,
                socket_connect_timeout=connect_timeout,
                socket_timeout=timeout,
                retry=Retry(NoBackoff(), 1),  # one immediate retry: a connection a NAT or Redis dropped
                client_name="sarai_llm",
            )
        except ValueError as exc:  # a malformed URL; its text may quote the URL
            raise CacheError(f"Redis at {where}: invalid URL ({type(exc).__name__})") from None
        try:
            return cls(client, namespace, where=f"{where} (keys {key_prefix(namespace)}*)")
        except redis.RedisError as exc:
            client.close()
            # The cache's warning names this exception only: say which server failed.
            raise CacheError(f"Redis at {where}: {type(exc).__name__}: {redact(str(exc))}") from exc
        except BaseException:
            client.close()
            raise

    def describe(self) -> str:
        return self._where

    # -- entries ---------------------------------------------------------------

    def get(self, key: str) -> bytes | None:
        value = self._r.get(self._entry + key)
        return value if isinstance(value, bytes) else None

    def put(self, key: str, data: bytes, *, tag: str, ttl: float) -> None:
        # Redis's expiry (wall clock, with a margin) only reclaims space;
        # the cache's own clock decides what has expired.
        life = ttl + _MARGIN
        now = time.time()
        tag_key = self._tag + tag
        pipe = self._r.pipeline(transaction=True)
        pipe.set(self._entry + key, data, px=max(1, int(life * 1000)))
        pipe.zadd(self._lru, {key: now})  # the cache's touch() follows with its clock's time
        pipe.zadd(self._exp, {key: now + life})
        pipe.sadd(tag_key, key)
        pipe.pexpire(tag_key, max(1, int(life * 1000)))
        pipe.execute()

    def delete(self, key: str) -> bool:
        pipe = self._r.pipeline(transaction=True)
        pipe.delete(self._entry + key)
        pipe.zrem(self._lru, key)
        pipe.zrem(self._exp, key)
        deleted = pipe.execute()[0]
        return bool(deleted)

    # -- LRU --------------------------------------------------------------------

    def touch(self, times: dict[str, float]) -> None:
        if times:
            self._r.zadd(self._lru, times, xx=True)  # XX: never resurrect a deleted key

    def count(self) -> int:
        self._prune(keys=[self._lru, self._exp], args=[time.time(), self._entry, _PRUNE_BATCH])
        return int(self._r.zcard(self._lru))

    def least_recent(self, n: int) -> list[str]:
        if n <= 0:
            return []
        members: list[bytes] = self._r.zrange(self._lru, 0, n - 1)
        return [m.decode() for m in members]

    # -- invalidation ----------------------------------------------------------

    def _drop_tag_keys(self, tag_keys: Iterable[bytes | str]) -> int:
        return sum(int(self._drop_tag(keys=[k, self._lru, self._exp], args=[self._entry])) for k in tag_keys)

    def drop_tag(self, tag: str, *, prefix: bool = False) -> int:
        if not prefix:
            return self._drop_tag_keys([self._tag + tag])
        pattern = _glob_escape(self._tag + tag) + "*"
        return self._drop_tag_keys(list(self._r.scan_iter(match=pattern, count=1000)))

    def clear(self) -> None:
        """Delete this namespace's keys (``SCAN`` + ``UNLINK``), keeping the epoch counter."""
        batch: list[bytes] = []
        for key in self._r.scan_iter(match=_glob_escape(self.prefix) + "*", count=1000):
            if key == self._epoch_key:
                continue  # the cache bumps it next: it must keep counting up
            batch.append(key)
            if len(batch) >= _DELETE_BATCH:
                self._r.unlink(*batch)
                batch = []
        if batch:
            self._r.unlink(*batch)

    def epoch(self) -> object:
        value: object = self._r.get(self._epoch_key)
        return value

    def bump_epoch(self) -> None:
        self._r.incr(self._epoch_key)

    def close(self) -> None:
        self._r.close()


def store_factory(config: GatewayConfig) -> Callable[[], Store] | None:
    """The ``store=`` argument of :class:`~sarai_llm.cache.ResponseCache` for ``config``.

    ``None`` for the disk backend (the cache's default, diskcache in
    ``cache_dir``); for ``cache_backend=redis``, a factory that connects a
    :class:`RedisStore` to ``redis_url`` under the cache's namespace. The
    factory connects when called (by the cache, again after a failure).

    :raises ConfigError: the redis backend without a URL, or without the ``redis`` package.
    """
    settings = config.cache_settings
    if settings.backend != "redis":
        return None
    if settings.redis_url is None:
        raise ConfigError("Invalid configuration: the redis cache backend needs LLM_GATEWAY_REDIS_URL")
    if importlib.util.find_spec("redis") is None:
        raise ConfigError(
            "Invalid configuration: LLM_GATEWAY_CACHE_BACKEND=redis needs the redis package: "
            "pip install 'sarai_llm[redis]'"
        )
    url = settings.redis_url.get_secret_value()
    namespace = settings.namespace

    def open_store() -> Store:
        return RedisStore.from_url(url, namespace)

    return open_store
