"""The Redis store, for many hosts (``pip install 'sarai_llm[redis]'``; caveats in docs/scaling.md).

Keys live under ``P = sarai_llm:{<namespace>}:`` (percent-encoded: no prefix extends
another or holds a glob character; the braces make it a Redis Cluster hash tag):

===============  ==================================================================
``P e:<key>``    the entry (JSON), with ``PEXPIRE`` ttl + 60 s, which only reclaims space
``P lru``        sorted set, key -> last use on the cache's clock (``ZCARD`` = count)
``P exp``        sorted set, key -> when Redis drops the entry; before each count, a
                 Lua script removes the keys whose entry is gone from ``lru`` and ``exp``
``P tag:<tag>``  set of the keys written with that tag (found by ``SCAN`` for a prefix)
``P epoch``      counter bumped by clear and invalidate, polled by every process
===============  ==================================================================
"""

from __future__ import annotations

import functools
import importlib.util
import itertools
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

from ..errors import CacheError, ConfigError, redact
from .disk import RECLAIM_MARGIN

if TYPE_CHECKING:
    from ..config import GatewayConfig
    from ._response import Store

CONNECT_TIMEOUT = 0.5  # seconds to open a connection before the store counts as down
COMMAND_TIMEOUT = 1.0  # seconds a command may take (after one immediate retry) before it counts as down
_PRUNE_BATCH = 1000  # expired members removed per count()
_DELETE_BATCH = 500  # keys per UNLINK in clear()
_GLOB_SPECIAL = str.maketrans({c: "\\" + c for c in "*?[]\\^"})

# Atomic. KEYS: lru, exp; ARGV: now (wall clock), entry key prefix, batch size.
_PRUNE = """
for _, m in ipairs(redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[3]))) do
  if redis.call('EXISTS', ARGV[2] .. m) == 0 then
    redis.call('ZREM', KEYS[1], m); redis.call('ZREM', KEYS[2], m)
  end
end
"""
# Delete the entries of a tag set, then the set; how many existed. KEYS: tag set, lru, exp; ARGV: entry prefix.
_DROP_TAG = """
local dropped = 0
for _, m in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  dropped = dropped + redis.call('DEL', ARGV[1] .. m)
  redis.call('ZREM', KEYS[2], m); redis.call('ZREM', KEYS[3], m)
end
redis.call('DEL', KEYS[1])
return dropped
"""


def key_prefix(namespace: str) -> str:
    """The prefix of every key of ``namespace``: ``sarai_llm:{rag}:`` (the namespace percent-encoded)."""
    return f"sarai_llm:{{{quote(namespace, safe='')}}}:"


class RedisStore:
    """A :class:`~sarai_llm.cache.Store` under :func:`key_prefix` of ``namespace`` in ``client``, a synchronous
    ``redis.Redis`` returning bytes (:meth:`from_url` makes one); ``where`` names the server, without credentials.
    Raises ``redis.RedisError`` if the server does not answer a ``PING``."""

    def __init__(self, client: Any, namespace: str = "", *, where: str = "redis"):
        self._r: Any = client  # Any: redis-py annotates its methods as sync-or-async unions
        self.namespace, self.prefix, self._where = namespace, key_prefix(namespace), where
        self._entry, self._lru, self._exp, self._tag = (self.prefix + s for s in ("e:", "lru", "exp", "tag:"))
        self._epoch_key = (self.prefix + "epoch").encode()
        self._prune = client.register_script(_PRUNE)
        self._drop_tag = client.register_script(_DROP_TAG)
        self._r.ping()

    @classmethod
    def from_url(cls, url: str, namespace: str = "") -> RedisStore:
        """Connect to ``url`` (``redis://``, ``rediss://``, ``unix://``) with short timeouts and one retry. Raises
        :class:`CacheError` naming the server, without credentials, if it cannot be reached or refuses us."""
        import redis
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        parts = urlsplit(url)
        where = f"{parts.scheme.lower()}://{parts.netloc.rpartition('@')[2]}{parts.path}"  # no credentials
        timeouts = {"socket_connect_timeout": CONNECT_TIMEOUT, "socket_timeout": COMMAND_TIMEOUT}
        try:  # one immediate retry: a connection a NAT or Redis dropped
            client = redis.Redis.from_url(url, client_name="sarai_llm", retry=Retry(NoBackoff(), 1), **timeouts)
        except ValueError as exc:  # a malformed URL; its text may quote the URL
            raise CacheError(f"Redis at {where}: invalid URL ({type(exc).__name__})") from None
        try:
            return cls(client, namespace, where=f"{where} (keys {key_prefix(namespace)}*)")
        except BaseException as exc:
            client.close()
            if isinstance(exc, redis.RedisError):  # the cache's warning names this error only: name the server
                raise CacheError(f"Redis at {where}: {type(exc).__name__}: {redact(str(exc))}") from exc
            raise

    def describe(self) -> str:
        return self._where

    def get(self, key: str) -> bytes | None:
        value = self._r.get(self._entry + key)
        return value if isinstance(value, bytes) else None

    def put(self, key: str, data: bytes, *, tag: str, ttl: float) -> None:
        life, now = ttl + RECLAIM_MARGIN, time.time()
        ms = max(1, int(life * 1000))
        pipe = self._r.pipeline(transaction=True).set(self._entry + key, data, px=ms)
        pipe.zadd(self._lru, {key: now}).zadd(self._exp, {key: now + life})  # touch() follows, on the cache's clock
        pipe.sadd(self._tag + tag, key).pexpire(self._tag + tag, ms).execute()

    def delete(self, key: str) -> bool:
        pipe = self._r.pipeline(transaction=True).delete(self._entry + key)
        return bool(pipe.zrem(self._lru, key).zrem(self._exp, key).execute()[0])

    def touch(self, times: dict[str, float]) -> None:
        if times:
            self._r.zadd(self._lru, times, xx=True)  # XX: never resurrect a deleted key

    def count(self) -> int:
        self._prune(keys=[self._lru, self._exp], args=[time.time(), self._entry, _PRUNE_BATCH])
        return int(self._r.zcard(self._lru))

    def least_recent(self, n: int) -> list[str]:
        members: list[bytes] = self._r.zrange(self._lru, 0, n - 1) if n > 0 else []
        return [m.decode() for m in members]

    def _scan(self, prefix: str) -> Iterable[bytes]:
        return self._r.scan_iter(match=prefix.translate(_GLOB_SPECIAL) + "*", count=1000)  # type: ignore[no-any-return]

    def drop_tag(self, tag: str, *, prefix: bool = False) -> int:
        tag_keys = list(self._scan(self._tag + tag)) if prefix else [self._tag + tag]
        return sum(int(self._drop_tag(keys=[k, self._lru, self._exp], args=[self._entry])) for k in tag_keys)

    def clear(self) -> None:
        """Delete this namespace's keys (``SCAN`` + ``UNLINK``) but the epoch counter, which must keep rising."""
        keys = (key for key in self._scan(self.prefix) if key != self._epoch_key)
        while batch := list(itertools.islice(keys, _DELETE_BATCH)):
            self._r.unlink(*batch)

    def epoch(self) -> object:
        return self._r.get(self._epoch_key)

    def bump_epoch(self) -> None:
        self._r.incr(self._epoch_key)

    def close(self) -> None:
        self._r.close()


def store_factory(config: GatewayConfig) -> Callable[[], Store] | None:
    """The ``store=`` of a :class:`~sarai_llm.cache.ResponseCache` for ``config.cache_settings``: ``None`` (the
    disk default) or, for ``backend="redis"``, :meth:`RedisStore.from_url` of ``redis_url`` and the namespace.
    Raises :class:`ConfigError` for the redis backend without a URL or without the ``redis`` package."""
    settings = config.cache_settings
    if settings.backend != "redis":
        return None
    if settings.redis_url is None:
        raise ConfigError("Invalid configuration: the redis cache backend needs LLM_GATEWAY_REDIS_URL")
    if importlib.util.find_spec("redis") is None:
        package = "the redis package: pip install 'sarai_llm[redis]'"
        raise ConfigError(f"Invalid configuration: LLM_GATEWAY_CACHE_BACKEND=redis needs {package}")
    return functools.partial(RedisStore.from_url, settings.redis_url.get_secret_value(), settings.namespace)
