"""The Redis cache backend against a real redis-server (started here on 127.0.0.1, persistence off).

The same semantics as the disk store (TTL, LRU, invalidate, namespace-only
clear), hits shared by two gateway processes, and a Redis killed mid-run.
redis-server comes from `make test-deps` (scripts/install-redis.sh; `make test` runs it); when it is
missing these tests fail, they never skip.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from redis_server import RedisServer, free_port, running_redis

import sarai_llm
from sarai_llm.cache import RedisStore, ResponseCache, request_key, store_factory
from sarai_llm.cache.redis import key_prefix
from sarai_llm.config import GatewayConfig
from sarai_llm.errors import ConfigError

MESSAGES = [{"role": "user", "content": "hi"}]


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def answer(text: str) -> dict[str, Any]:
    return {"content": text, "model": "m", "provider": "local", "usage": {"total_tokens": 1}, "finish_reason": "stop"}


def warnings_of(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "cache disabled" in r.getMessage()]


# --- the server -------------------------------------------------------------------------


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """One redis-server for the session (tests keep apart by namespace)."""
    with running_redis() as server:
        yield server


@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    """A redis-server of this test's own, which the test may kill and restart."""
    with running_redis() as server:
        yield server


@pytest.fixture
def raw(redis_server: RedisServer) -> Iterator[Any]:
    client = redis.Redis.from_url(redis_server.url)
    yield client
    client.close()


@pytest.fixture
def ns() -> str:
    """A namespace of this test's own in the shared server."""
    return f"t{uuid.uuid4().hex[:10]}"


def redis_cache(url: str, namespace: str, **kwargs: Any) -> ResponseCache:
    def open_store() -> RedisStore:
        return RedisStore.from_url(url, namespace)

    return ResponseCache(store=open_store, namespace=namespace, **kwargs)


def key(namespace: str, name: str) -> str:
    """A key as the gateway makes it: prefixed with the namespace."""
    return f"{namespace}:{name}"


# --- the Store semantics, through ResponseCache --------------------------------------------


def test_ttl_with_a_moved_clock(redis_server: RedisServer, ns: str) -> None:
    clock = FakeClock()
    cache = redis_cache(redis_server.url, ns, ttl=1, clock=clock)
    cache.set(key(ns, "k"), answer("a"), messages=MESSAGES, model="m")
    assert cache.get(key(ns, "k")) is not None
    clock.now += 2
    assert cache.get(key(ns, "k")) is None
    assert len(cache) == 0  # the expired entry is gone from Redis too
    # Another process's view (a fresh front) does not resurrect it either.
    assert redis_cache(redis_server.url, ns, ttl=1, clock=clock).get(key(ns, "k")) is None


def test_redis_expiry_reclaims_entries_and_their_count(
    redis_server: RedisServer, ns: str, raw: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sarai_llm.cache.redis as redis_module

    monkeypatch.setattr(redis_module, "RECLAIM_MARGIN", 0.0)
    store = RedisStore.from_url(redis_server.url, ns)
    store.put("gone", b"{}", tag="t", ttl=0.05)
    store.put("kept", b"{}", tag="t", ttl=60)
    assert store.count() == 2
    ttl_ms = raw.pttl(f"{key_prefix(ns)}e:kept")
    assert 0 < ttl_ms <= 60_000  # the ttl is a reclaim hint: Redis drops the value itself
    time.sleep(0.2)
    assert store.count() == 1  # the expired member left the LRU index
    assert store.least_recent(5) == ["kept"]
    assert raw.zcard(f"{key_prefix(ns)}exp") == 1
    store.close()


def test_lru_evicts_the_least_recently_used(redis_server: RedisServer, ns: str) -> None:
    clock = FakeClock()
    cache = redis_cache(redis_server.url, ns, max_size=3, clock=clock)
    for name in "ABC":
        clock.now += 1
        cache.set(key(ns, name), answer(name), messages=[{"role": "user", "content": name}], model="m")
    clock.now += 1
    assert cache.get(key(ns, "A")) is not None  # A is now more recent than B
    clock.now += 1
    cache.set(key(ns, "D"), answer("D"), messages=MESSAGES, model="m")
    assert cache.evictions == 1
    assert len(cache) == 3
    assert cache.get(key(ns, "B")) is None
    assert all(cache.get(key(ns, k)) is not None for k in "ACD")
    assert cache.stats()["size"] == 3


def test_lru_order_is_shared_through_redis(redis_server: RedisServer, ns: str) -> None:
    clock = FakeClock()
    writer = redis_cache(redis_server.url, ns, max_size=2, clock=clock)
    clock.now += 1
    writer.set(key(ns, "A"), answer("A"), messages=MESSAGES, model="m")
    clock.now += 1
    writer.set(key(ns, "B"), answer("B"), messages=MESSAGES, model="m")
    reader = redis_cache(redis_server.url, ns, max_size=2, clock=clock)
    clock.now += 1
    assert reader.get(key(ns, "A")) is not None  # read through Redis
    clock.now += 1
    reader.set(key(ns, "C"), answer("C"), messages=MESSAGES, model="m")
    assert reader.get(key(ns, "B")) is None and reader.get(key(ns, "A")) is not None


def test_invalidate_drops_every_entry_of_messages_and_model(redis_server: RedisServer, ns: str) -> None:
    cache = redis_cache(redis_server.url, ns)
    other = [{"role": "user", "content": "other"}]
    cache.set(key(ns, "k1"), answer("1"), messages=MESSAGES, model="m")
    cache.set(key(ns, "k2"), answer("2"), messages=MESSAGES, model="m")  # other temperature, same messages
    cache.set(key(ns, "k3"), answer("3"), messages=MESSAGES, model="n")
    cache.set(key(ns, "k4"), answer("4"), messages=other, model="m")
    assert cache.invalidate(MESSAGES, "m") == 2
    assert cache.get(key(ns, "k1")) is None and cache.get(key(ns, "k2")) is None
    assert cache.get(key(ns, "k3")) is not None and cache.get(key(ns, "k4")) is not None
    assert cache.invalidate(MESSAGES) == 1  # model=None: every model (a prefix match on the tag)
    assert cache.get(key(ns, "k3")) is None and cache.get(key(ns, "k4")) is not None
    assert len(cache) == 1


def test_invalidate_and_clear_reach_other_processes_fronts(redis_server: RedisServer, ns: str) -> None:
    a = redis_cache(redis_server.url, ns, sync_interval=0)
    b = redis_cache(redis_server.url, ns, sync_interval=0)
    a.set(key(ns, "k"), answer("x"), messages=MESSAGES, model="m")
    assert b.get(key(ns, "k")) is not None  # now in b's in-process front
    a.invalidate(MESSAGES, "m")
    assert b.get(key(ns, "k")) is None
    a.set(key(ns, "k"), answer("x"), messages=MESSAGES, model="m")
    assert b.get(key(ns, "k")) is not None
    a.clear()
    assert b.get(key(ns, "k")) is None
    a.set(key(ns, "k"), answer("x"), messages=MESSAGES, model="m")
    assert b.get(key(ns, "k")) is not None
    a.clear()  # a second clear must change the epoch again
    assert b.get(key(ns, "k")) is None


def test_clear_deletes_only_this_namespace(redis_server: RedisServer, ns: str, raw: Any) -> None:
    # Foreign keys of other applications, and namespaces whose names extend or contain this one.
    raw.set("foreign:key", b"keep")
    raw.set(f"{ns}:not-ours", b"keep")
    raw.set("sarai_llm:unrelated", b"keep")
    raw.zadd("foreign:zset", {"m": 1})
    rag = redis_cache(redis_server.url, ns)
    longer = redis_cache(redis_server.url, ns + "*")  # a glob character in a namespace
    nested = redis_cache(redis_server.url, ns + ":sub")
    for cache in (rag, longer, nested):
        cache.set(request_key("q", cache.namespace) or "", answer("r"), messages=MESSAGES, model="m")
    assert (len(rag), len(longer), len(nested)) == (1, 1, 1)
    dbsize = raw.dbsize()
    rag.clear()
    assert (len(rag), len(longer), len(nested)) == (0, 1, 1)
    assert raw.get("foreign:key") == b"keep" and raw.get(f"{ns}:not-ours") == b"keep"
    assert raw.get("sarai_llm:unrelated") == b"keep" and raw.zcard("foreign:zset") == 1
    assert all(not k.startswith(key_prefix(ns).encode()) or k.endswith(b":epoch") for k in raw.keys("*"))
    assert raw.dbsize() < dbsize
    raw.delete("foreign:key", f"{ns}:not-ours", "sarai_llm:unrelated", "foreign:zset")


def test_values_are_json_under_the_namespace_prefix(redis_server: RedisServer, ns: str, raw: Any) -> None:
    cache = redis_cache(redis_server.url, ns)
    cache.set(key(ns, "k"), answer("x"), messages=MESSAGES, model="m")
    value = raw.get(f"{key_prefix(ns)}e:{key(ns, 'k')}")
    assert value is not None and value.startswith(b"{")
    assert all(k.startswith(f"sarai_llm:{{{ns}}}:".encode()) for k in raw.scan_iter(match=f"*{ns}*"))


def test_stats_describe_the_server_without_the_password(redis_server: RedisServer, ns: str, raw: Any) -> None:
    password = "s3cret-" + uuid.uuid4().hex
    raw.acl_setuser("sarai_test", enabled=True, passwords=[f"+{password}"], keys=["*"], commands=["+@all"])
    try:
        url = f"redis://sarai_test:{password}@127.0.0.1:{redis_server.port}/0"
        cache = redis_cache(url, ns)
        cache.set(key(ns, "k"), answer("x"), messages=MESSAGES, model="m")
        assert cache.get(key(ns, "k")) is not None and cache.available
        where = cache.stats()["store"]
        assert where.startswith(f"redis://127.0.0.1:{redis_server.port}/0") and password not in where
        assert "sarai_test" not in where and password not in repr(cache)
    finally:
        raw.acl_deluser("sarai_test")


def test_a_wrong_password_warns_without_it(
    redis_server: RedisServer, ns: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="sarai_llm"):
        cache = redis_cache(f"redis://nobody:wrong-pass-123@127.0.0.1:{redis_server.port}/0", ns)
        assert cache.get(key(ns, "k")) is None
    assert not cache.available and cache.stats()["errors"] == 1
    (warning,) = warnings_of(caplog)
    assert "wrong-pass-123" not in warning and f"127.0.0.1:{redis_server.port}" in warning


# --- configuration ------------------------------------------------------------------------


def test_store_factory_follows_the_backend(redis_server: RedisServer, ns: str) -> None:
    assert store_factory(GatewayConfig.load(_env_file=None)) is None  # disk: the cache's default
    config = GatewayConfig.load(cache_backend="redis", redis_url=redis_server.url, cache_namespace=ns, _env_file=None)
    factory = store_factory(config)
    assert factory is not None
    store = factory()
    assert isinstance(store, RedisStore) and store.prefix == key_prefix(ns)
    store.close()
    unvalidated = GatewayConfig.load(_env_file=None).model_copy(update={"cache_backend": "redis"})
    with pytest.raises(ConfigError, match="LLM_GATEWAY_REDIS_URL"):
        store_factory(unvalidated)


def test_store_factory_names_the_missing_package(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "redis" else real(name, *a))
    config = GatewayConfig.load(cache_backend="redis", redis_url="redis://127.0.0.1:1/0", _env_file=None)
    with pytest.raises(ConfigError, match=r"sarai_llm\[redis\]"):
        store_factory(config)


# --- failures -------------------------------------------------------------------------------


def test_redis_down_at_start_warns_once_and_misses(caplog: pytest.LogCaptureFixture, ns: str) -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"
    started = time.perf_counter()
    with caplog.at_level(logging.WARNING, logger="sarai_llm"):
        cache = redis_cache(url, ns, retry_interval=60)
        cache.set(key(ns, "k"), answer("x"), messages=MESSAGES, model="m")
        assert cache.get(key(ns, "k")) is None
        cache.clear()
        assert cache.invalidate(MESSAGES) == 0
    assert time.perf_counter() - started < 2  # fails fast
    assert not cache.available and cache.stats()["errors"] == 1 and cache.stats()["size"] == 0
    assert len(warnings_of(caplog)) == 1


def test_redis_killed_mid_run_then_restarted(own_redis: RedisServer, ns: str, caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock()
    cache = redis_cache(own_redis.url, ns, clock=clock, sync_interval=0, retry_interval=0.2)
    cache.set(key(ns, "a"), answer("a"), messages=MESSAGES, model="m")
    assert cache.get(key(ns, "a")) is not None
    with caplog.at_level(logging.WARNING, logger="sarai_llm"):
        own_redis.kill()
        started = time.perf_counter()
        for i in range(5):  # every lookup and write keeps working, uncached
            assert cache.get(key(ns, f"b{i}")) is None
            cache.set(key(ns, f"b{i}"), answer("b"), messages=MESSAGES, model="m")
        assert time.perf_counter() - started < 3
        assert not cache.available
        assert cache.stats()["errors"] >= 1
        assert len(warnings_of(caplog)) == 1
        own_redis.start()
        time.sleep(0.3)  # past retry_interval: the next lookup reconnects
        assert cache.get(key(ns, "c")) is None
        assert cache.available
        cache.set(key(ns, "c"), answer("c"), messages=MESSAGES, model="m")
        assert redis_cache(own_redis.url, ns, clock=clock).get(key(ns, "c")) is not None
    assert len(warnings_of(caplog)) == 1  # one warning for the whole outage


# --- through the gateway ---------------------------------------------------------------------


def _redis_env(monkeypatch: pytest.MonkeyPatch, url: str, namespace: str, upstream: Any) -> None:
    monkeypatch.setenv("LLM_GATEWAY_CACHE_BACKEND", "redis")
    monkeypatch.setenv("LLM_GATEWAY_REDIS_URL", url)
    monkeypatch.setenv("LLM_GATEWAY_CACHE_NAMESPACE", namespace)
    monkeypatch.setenv("LLM_GATEWAY_PRIMARY_PROVIDER", "local")
    monkeypatch.setenv("LLM_GATEWAY_LOCAL_BASE_URL", upstream.base_url)


def test_two_gateway_processes_share_hits_through_redis(
    redis_server: RedisServer, ns: str, upstream: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    _redis_env(monkeypatch, redis_server.url, ns, upstream)
    code = textwrap.dedent(
        f"""
        import asyncio, json, sarai_llm
        r = asyncio.run(sarai_llm.chat({MESSAGES!r}))
        cache = sarai_llm.get_stats()["cache"]
        print(json.dumps({{"cached": r["cached"], "content": r["content"], "store": cache["store"]}}))
        """
    )
    import json

    outputs = []
    for i in range(2):  # separate processes, separate cache directories: only Redis is shared
        env = {**os.environ, "LLM_GATEWAY_CACHE_DIR": str(tmp_path / f"dir{i}")}
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)
        assert done.returncode == 0, done.stderr
        outputs.append(json.loads(done.stdout.strip().splitlines()[-1]))
    assert [o["cached"] for o in outputs] == [False, True]
    assert outputs[0]["content"] == outputs[1]["content"] == "pong"
    assert all(o["store"].startswith(redis_server.url) for o in outputs)
    assert upstream.count("/chat/completions") == 1


async def test_gateway_keeps_answering_when_redis_dies(
    own_redis: RedisServer,
    ns: str,
    upstream: Any,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    _redis_env(monkeypatch, own_redis.url, ns, upstream)
    gw = sarai_llm.get_gateway()
    assert gw.cache is not None and gw.cache.stats()["store"].startswith(own_redis.url)
    gw.cache.sync_interval = 0
    assert (await sarai_llm.chat(MESSAGES))["cached"] is False
    assert (await sarai_llm.chat(MESSAGES, temperature=0.1))["cached"] is False
    gw.cache._front.clear()  # noqa: SLF001 - as in another process: the next lookups go to Redis
    with caplog.at_level(logging.WARNING, logger="sarai_llm"):
        own_redis.kill()
        results = [await sarai_llm.chat(MESSAGES) for _ in range(3)]
        results.append(await sarai_llm.chat(MESSAGES, temperature=0.2))
    assert [r["content"] for r in results] == ["pong"] * 4
    assert all(r["cached"] is False for r in results)  # answered upstream, uncached
    assert upstream.count("/chat/completions") == 2 + 4
    stats = sarai_llm.get_stats()
    assert stats["cache"]["errors"] > 0
    assert stats["total_errors"] == 0  # a cache failure is not a provider failure
    assert len(warnings_of(caplog)) == 1


def test_no_redis_client_is_imported_for_the_disk_backend() -> None:
    code = (
        "import sys, sarai_llm; gw = sarai_llm.get_gateway({'primary_provider': 'local'}); "
        "from sarai_llm.cache import store_factory; from sarai_llm.config import GatewayConfig; "
        "assert store_factory(GatewayConfig.load()) is None; assert 'redis' not in sys.modules, 'redis imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_a_dropped_idle_connection_is_not_an_outage(
    own_redis: RedisServer, ns: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Redis's `timeout`, a NAT or a load balancer may close an idle connection: reconnect, don't fail."""
    cache = redis_cache(own_redis.url, ns, sync_interval=0)
    cache.set(key(ns, "k"), answer("x"), messages=MESSAGES, model="m")
    raw = redis.Redis.from_url(own_redis.url)
    with caplog.at_level(logging.WARNING, logger="sarai_llm"):
        for _ in range(3):
            assert raw.client_kill_filter(skipme=True) >= 1  # drops the cache's pooled connection
            cache._front.clear()  # noqa: SLF001 - make the next lookup go to Redis
            assert cache.get(key(ns, "k")) is not None
            cache.set(key(ns, "k2"), answer("y"), messages=MESSAGES, model="m")
    raw.close()
    assert cache.available and cache.stats()["errors"] == 0
    assert warnings_of(caplog) == []


def test_a_hung_redis_costs_one_timeout_then_answers_uncached(
    own_redis: RedisServer, ns: str, caplog: pytest.LogCaptureFixture
) -> None:
    import signal

    cache = redis_cache(own_redis.url, ns, sync_interval=0, retry_interval=60)
    cache.set(key(ns, "k"), answer("x"), messages=MESSAGES, model="m")
    assert own_redis.proc is not None
    own_redis.proc.send_signal(signal.SIGSTOP)  # accepts connections, never answers
    try:
        with caplog.at_level(logging.WARNING, logger="sarai_llm"):
            started = time.perf_counter()
            assert cache.get(key(ns, "other")) is None
            first = time.perf_counter() - started
            started = time.perf_counter()
            for i in range(20):
                assert cache.get(key(ns, f"o{i}")) is None
                cache.set(key(ns, f"o{i}"), answer("y"), messages=MESSAGES, model="m")
            rest = time.perf_counter() - started
    finally:
        own_redis.proc.send_signal(signal.SIGCONT)
    assert first < 3.0  # 1 s per command, one retry
    assert rest < 0.5  # then the store is off until retry_interval: no more waiting
    assert cache.stats()["errors"] == 1 and len(warnings_of(caplog)) == 1
