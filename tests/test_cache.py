"""The response cache: keys, LRU + TTL with a fake clock, sharing, coalescing, failures."""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

import sarai_llm
from sarai_llm.cache import MemoryStore, ResponseCache, request_key

MESSAGES = [{"role": "user", "content": "hi"}]


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def answer(text: str) -> dict[str, Any]:
    return {"content": text, "model": "m", "provider": "local", "usage": {"total_tokens": 1}, "finish_reason": "stop"}


def write(cache: ResponseCache, clock: FakeClock, names: str, step: float = 1.0) -> None:
    """Write an answer for each of ``names`` (its messages: the name), ``step`` seconds apart on ``clock``."""
    for name in names:
        clock.now += step
        cache.set(name, answer(name), messages=[{"role": "user", "content": name}], model="m")


def use(upstream: Any, **settings: Any) -> sarai_llm.Gateway:
    return sarai_llm.get_gateway({"primary_provider": "local", "local_base_url": upstream.base_url, **settings})


# --- ResponseCache on its own ---------------------------------------------------------


def test_keys_ignore_dict_order_and_see_every_value() -> None:
    a = request_key(("chat", [{"role": "user", "content": "x"}], {"t": 0.1, "m": 5}))
    b = request_key(("chat", [{"content": "x", "role": "user"}], {"m": 5, "t": 0.1}))
    assert a == b
    assert a != request_key(("chat", [{"role": "user", "content": "y"}], {"t": 0.1, "m": 5}))
    assert request_key("x", "ns1") != request_key("x", "ns2")
    assert request_key(("chat", object())) is None  # not JSON-like: not cacheable


def test_ttl_with_a_moved_clock(tmp_path: Path) -> None:
    clock = FakeClock()
    cache = ResponseCache(tmp_path, ttl=1, clock=clock)
    cache.set("k", answer("a"), messages=MESSAGES, model="m")
    assert cache.get("k") is not None
    clock.now += 2
    assert cache.get("k") is None
    assert len(cache) == 0  # the expired entry is gone from the shared store too
    # A second process-like view (fresh front) does not resurrect it either.
    assert ResponseCache(tmp_path, ttl=1, clock=clock).get("k") is None


def test_lru_evicts_the_least_recently_used(tmp_path: Path) -> None:
    clock = FakeClock()
    cache = ResponseCache(tmp_path, max_size=3, clock=clock)
    write(cache, clock, "ABC")
    clock.now += 1
    assert cache.get("A") is not None  # A is now more recent than B
    clock.now += 1
    cache.set("D", answer("D"), messages=MESSAGES, model="m")
    assert cache.evictions == 1
    assert len(cache) == 3
    assert cache.get("B") is None
    assert all(cache.get(k) is not None for k in "ACD")
    assert cache.stats()["size"] == 3


def test_a_hit_reorders_its_entry_at_most_once_a_second(tmp_path: Path) -> None:
    """As memcached does: an entry a hit moved to the recent end less than REORDER_AFTER seconds ago stays
    where it is (it is among the most recent already); the hit saves the reordering and the store's touch."""
    from sarai_llm.cache._response import REORDER_AFTER

    clock = FakeClock()
    cache = ResponseCache(tmp_path, max_size=2, clock=clock)
    write(cache, clock, "AB", step=10)
    clock.now += 10
    assert cache.get("A") is not None  # A moves after B
    clock.now += 0.1
    assert cache.get("B") is not None  # B moves after A
    clock.now += REORDER_AFTER / 2
    assert cache.get("A") is not None  # A stays: it moved half a second ago
    clock.now += 1
    cache.set("C", answer("C"), messages=MESSAGES, model="m")
    assert [k for k in "ABC" if cache.get(k) is not None] == ["B", "C"]
    clock.now += REORDER_AFTER
    assert cache.get("B") is not None  # B moves after C again
    cache.set("D", answer("D"), messages=MESSAGES, model="m")
    assert [k for k in "BCD" if cache.get(k) is not None] == ["B", "D"]


def test_lru_order_is_shared_through_the_directory(tmp_path: Path) -> None:
    clock = FakeClock()
    writer = ResponseCache(tmp_path, max_size=2, clock=clock)
    clock.now += 1
    writer.set("A", answer("A"), messages=MESSAGES, model="m")
    clock.now += 1
    writer.set("B", answer("B"), messages=MESSAGES, model="m")
    reader = ResponseCache(tmp_path, max_size=2, clock=clock)
    clock.now += 1
    assert reader.get("A") is not None  # read through the shared store
    clock.now += 1
    reader.set("C", answer("C"), messages=MESSAGES, model="m")
    assert reader.get("B") is None and reader.get("A") is not None


def test_invalidate_drops_every_entry_of_messages_and_model(tmp_path: Path) -> None:
    cache = ResponseCache(tmp_path)
    other = [{"role": "user", "content": "other"}]
    cache.set("k1", answer("1"), messages=MESSAGES, model="m")
    cache.set("k2", answer("2"), messages=MESSAGES, model="m")  # other temperature, same messages
    cache.set("k3", answer("3"), messages=MESSAGES, model="n")
    cache.set("k4", answer("4"), messages=other, model="m")
    assert cache.invalidate(MESSAGES, "m") == 2
    assert cache.get("k1") is None and cache.get("k2") is None
    assert cache.get("k3") is not None and cache.get("k4") is not None
    assert cache.invalidate(MESSAGES) == 1  # model=None: every model
    assert cache.get("k3") is None and cache.get("k4") is not None


def test_clear_reaches_other_processes_fronts(tmp_path: Path) -> None:
    a = ResponseCache(tmp_path, sync_interval=0)
    b = ResponseCache(tmp_path, sync_interval=0)
    a.set("k", answer("x"), messages=MESSAGES, model="m")
    assert b.get("k") is not None  # now in b's in-process front
    a.clear()
    assert b.get("k") is None


def test_unwritable_directory_warns_once_and_misses(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with caplog.at_level(logging.WARNING, logger="sarai_llm"):
        cache = ResponseCache(blocker / "cache")
        cache.set("k", answer("x"), messages=MESSAGES, model="m")
        assert cache.get("k") is None
    assert not cache.available
    assert cache.stats()["errors"] == 1
    assert len([r for r in caplog.records if "cache disabled" in r.getMessage()]) == 1


def test_corrupt_database_warns_once_and_misses(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    (tmp_path / "responses").mkdir()
    (tmp_path / "responses" / "cache.db").write_bytes(b"this is not sqlite" * 100)
    with caplog.at_level(logging.WARNING, logger="sarai_llm"):
        cache = ResponseCache(tmp_path)
        assert cache.get("k") is None
    assert cache.stats()["errors"] == 1
    assert len([r for r in caplog.records if "cache disabled" in r.getMessage()]) == 1


def test_values_are_json_not_pickles(tmp_path: Path) -> None:
    cache = ResponseCache(tmp_path)
    cache.set("k", answer("x"), messages=MESSAGES, model="m")
    cache.close()
    import sqlite3

    con = sqlite3.connect(tmp_path / "responses" / "cache.db")
    (value,) = con.execute("SELECT value FROM Cache WHERE key = 'k'").fetchone()
    con.close()
    assert value.startswith(b"{")


def test_memory_store_behaves_as_a_store() -> None:
    clock = FakeClock()
    shared = MemoryStore()
    cache = ResponseCache(store=lambda: shared, max_size=2, clock=clock, sync_interval=0)
    other = ResponseCache(store=lambda: shared, max_size=2, clock=clock, sync_interval=0)  # another "process"
    write(cache, clock, "AB")
    clock.now += 1
    assert cache.get("A") is not None  # A is now more recent than B
    cache.set("C", answer("C"), messages=MESSAGES, model="m")
    assert (cache.evictions, len(cache), len(other)) == (1, 2, 2)
    assert cache.get("B") is None and other.get("A") == answer("A")  # read through the shared store
    assert cache.invalidate([{"role": "user", "content": "A"}]) == 1  # model=None: every model
    assert cache.get("A") is None and other.get("A") is None  # the epoch reached other's front
    cache.clear()
    assert len(other) == 0 and other.get("C") is None
    cache.set("D", answer("D"), messages=MESSAGES, model="m")
    clock.now += cache.ttl + 1
    assert cache.get("D") is None and len(cache) == 0  # expired by the cache's clock
    own = ResponseCache(store=MemoryStore)  # the class is a factory: a store of its own
    assert own.stats()["store"] == "memory" and len(own) == 0 and cache.stats()["errors"] == 0


# --- through the gateway ------------------------------------------------------------------


async def test_second_identical_chat_is_a_hit(upstream: Any) -> None:
    use(upstream)
    first = await sarai_llm.chat(MESSAGES, temperature=0.3, max_tokens=9, seed=1, top_p=0.5)
    second = await sarai_llm.chat([{"content": "hi", "role": "user"}], max_tokens=9, temperature=0.3, top_p=0.5, seed=1)
    assert first["cached"] is False and second["cached"] is True
    assert second["content"] == first["content"]
    assert second["latency_ms"] < 1
    assert upstream.count("/chat/completions") == 1
    cache = sarai_llm.get_stats()["cache"]
    assert (cache["hits"], cache["misses"], cache["size"]) == (1, 1, 1)


@pytest.mark.parametrize(
    "change",
    [
        {"model": "other"},
        {"temperature": 0.9},
        {"max_tokens": 3},
        {"messages": [{"role": "user", "content": "hello"}]},
        {"top_k": 3},
    ],
)
async def test_any_change_misses(upstream: Any, change: dict[str, Any]) -> None:
    use(upstream)
    await sarai_llm.chat(MESSAGES)
    call: dict[str, Any] = {"messages": MESSAGES, **change}
    r = await sarai_llm.chat(**call)
    assert r["cached"] is False
    assert upstream.count("/chat/completions") == 2


async def test_use_cache_false_skips_read_and_write(upstream: Any) -> None:
    use(upstream)
    await sarai_llm.chat(MESSAGES, use_cache=False)
    r = await sarai_llm.chat(MESSAGES)
    assert r["cached"] is False
    r = await sarai_llm.chat(MESSAGES, use_cache=False)
    assert r["cached"] is False
    assert upstream.count("/chat/completions") == 3


async def test_mutating_a_result_never_changes_the_cache(upstream: Any) -> None:
    use(upstream)
    r = await sarai_llm.chat(MESSAGES)
    r["content"] = "changed"
    r["usage"]["total_tokens"] = -1
    hit = await sarai_llm.chat(MESSAGES)
    hit["usage"]["total_tokens"] = -2
    again = await sarai_llm.chat(MESSAGES)
    assert again["content"] == "pong" and again["usage"]["total_tokens"] == 7


async def test_a_hit_does_not_import_litellm(upstream: Any, tmp_path: Path) -> None:
    use(upstream, cache_dir=tmp_path / "shared")
    await sarai_llm.chat(MESSAGES)
    code = textwrap.dedent(
        f"""
        import asyncio, sys, sarai_llm
        gw = sarai_llm.get_gateway({{"primary_provider": "local", "local_base_url": {upstream.base_url!r},
                                     "cache_dir": {str(tmp_path / "shared")!r}}})
        r = asyncio.run(sarai_llm.chat({MESSAGES!r}))
        assert r["cached"] is True, r
        assert "litellm" not in sys.modules
        """
    )
    subprocess.run([sys.executable, "-c", code], check=True, env={**os.environ})
    assert upstream.count("/chat/completions") == 1


async def test_errors_are_not_cached(upstream: Any) -> None:
    use(upstream)
    upstream.behaviour.status = 500
    with pytest.raises(sarai_llm.AllProvidersFailedError):
        await sarai_llm.chat(MESSAGES)
    upstream.behaviour.status = 200
    r = await sarai_llm.chat(MESSAGES)
    assert r["cached"] is False and r["content"] == "pong"


async def test_concurrent_identical_requests_are_coalesced(upstream: Any) -> None:
    use(upstream)
    upstream.behaviour.delay = 0.3
    results = await asyncio.gather(*(sarai_llm.chat(MESSAGES) for _ in range(50)))
    assert upstream.count("/chat/completions") == 1
    assert sum(not r["cached"] for r in results) == 1
    followers = [r for r in results if r["cached"]]
    assert len(followers) == 49 and all(r["coalesced"] for r in followers)
    stats = sarai_llm.get_stats()
    assert stats["total_requests"] == 50
    assert (stats["cache"]["hits"], stats["cache"]["misses"]) == (49, 1)


async def test_a_coalesced_error_reaches_every_waiter(upstream: Any) -> None:
    use(upstream)
    upstream.behaviour.delay = 0.2
    upstream.behaviour.status = 503
    results = await asyncio.gather(*(sarai_llm.chat(MESSAGES) for _ in range(5)), return_exceptions=True)
    assert all(isinstance(r, sarai_llm.AllProvidersFailedError) for r in results)
    assert upstream.count("/chat/completions") == 1
    assert sarai_llm.get_stats()["cache"]["size"] == 0


async def test_a_cancelled_leader_does_not_strand_followers(upstream: Any) -> None:
    use(upstream)
    upstream.behaviour.delay = 0.3
    leader = asyncio.create_task(sarai_llm.chat(MESSAGES))
    await asyncio.sleep(0.05)
    follower = asyncio.create_task(sarai_llm.chat(MESSAGES))
    await asyncio.sleep(0.05)
    leader.cancel()
    r = await follower
    assert r["content"] == "pong"
    with pytest.raises(asyncio.CancelledError):
        await leader


async def test_a_second_process_hits_what_the_first_wrote(upstream: Any, tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    code = textwrap.dedent(
        f"""
        import asyncio, sarai_llm
        sarai_llm.get_gateway({{"primary_provider": "local", "local_base_url": {upstream.base_url!r},
                               "cache_dir": {str(shared)!r}}})
        print(asyncio.run(sarai_llm.chat({MESSAGES!r}))["cached"])
        """
    )
    outputs = [
        subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
        for _ in range(2)
    ]
    assert [o.strip() for o in outputs] == ["False", "True"]
    assert upstream.count("/chat/completions") == 1


async def test_gateway_invalidate_and_clear(upstream: Any) -> None:
    gw = use(upstream, local_model="stub")
    await sarai_llm.chat(MESSAGES)
    await sarai_llm.chat(MESSAGES, temperature=0.1)
    assert gw.cache is not None
    assert gw.cache.invalidate(MESSAGES, "stub") == 2
    assert (await sarai_llm.chat(MESSAGES))["cached"] is False
    sarai_llm.clear_cache()
    assert sarai_llm.get_stats()["cache"]["size"] == 0


async def test_disabled_cache_has_no_stats_key(upstream: Any) -> None:
    use(upstream, cache_enabled=False)
    await sarai_llm.chat(MESSAGES)
    assert (await sarai_llm.chat(MESSAGES))["cached"] is False
    stats = sarai_llm.get_stats()
    assert "cache" not in stats and stats["config"]["cache_enabled"] is False


def test_namespaces_share_a_directory_without_seeing_each_other(tmp_path: Path) -> None:
    rag = ResponseCache(tmp_path, namespace="rag")
    bot = ResponseCache(tmp_path, namespace="bot")
    rag.set(request_key("q", "rag") or "", answer("r"), messages=MESSAGES, model="m")
    bot.set(request_key("q", "bot") or "", answer("b"), messages=MESSAGES, model="m")
    assert (len(rag), len(bot)) == (1, 1)
    rag.clear()
    assert (len(rag), len(bot)) == (0, 1)


def test_a_failed_store_is_opened_again_later(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from sarai_llm.cache import DiskStore

    attempts = []

    def flaky_store() -> DiskStore:
        attempts.append(1)
        if len(attempts) == 1:
            raise ConnectionError("store down")
        return DiskStore(tmp_path)

    with caplog.at_level(logging.WARNING, logger="sarai_llm"):
        cache = ResponseCache(store=flaky_store, retry_interval=0, sync_interval=0)
        assert not cache.available
        assert cache.get("k") is None  # this lookup reopens the store
    assert cache.available
    cache.set("k", answer("x"), messages=MESSAGES, model="m")
    assert cache.get("k") is not None
    assert cache.stats()["errors"] == 1
