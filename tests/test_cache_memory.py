"""The cache's front held in bytes: the bound, vectors packed exactly, hits from the store, the stats, the setting."""

from __future__ import annotations

import random
import sys
from array import array
from pathlib import Path
from typing import Any

import orjson
import pytest

import sarai_llm
from sarai_llm.cache import MemoryStore, ResponseCache
from sarai_llm.config import GatewayConfig
from sarai_llm.errors import ConfigError

MB = 2**20
EDGES = [0.0, -0.0, 5e-324, 2.2250738585072014e-308, 1 / 3, -1.7976931348623157e308, 0.1 + 0.2]


def vector(seed: int, dims: int = 768) -> list[float]:
    rng = random.Random(seed)
    return [*EDGES, *(rng.gauss(0.0, 0.05) for _ in range(dims - len(EDGES)))]


def same_floats(got: Any, want: list[float]) -> bool:
    """Bit for bit (``-0.0`` is not ``0.0``), and a plain list of floats."""
    return (
        type(got) is list
        and all(type(x) is float for x in got)
        and array("d", got) == array("d", want)
        and (array("d", got).tobytes() == array("d", want).tobytes())
    )


def embed_entry(seed: int) -> dict[str, Any]:
    return {"vector": vector(seed), "cost_usd": 0.0}


def chat_entry(i: int) -> dict[str, Any]:
    usage = {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}
    return {"content": f"answer {i}", "model": "m", "provider": "local", "usage": usage, "finish_reason": "stop"}


def fill(cache: ResponseCache, n: int, entry: Any = embed_entry) -> None:
    for i in range(n):
        cache.set(f"k{i}", entry(i), messages=[{"role": "user", "content": f"text {i}"}], model="m")


@pytest.mark.parametrize("entry", [embed_entry, chat_entry])
def test_the_front_stays_under_its_bound_and_the_store_keeps_every_entry(entry: Any) -> None:
    cache = ResponseCache(store=MemoryStore, memory_mb=0.1, max_size=1000)
    fill(cache, 300, entry)
    stats = cache.stats()
    assert 0 < stats["memory_bytes"] <= stats["memory_max_bytes"] == int(0.1 * MB)
    assert stats["size"] == 300 and stats["evictions"] == 0  # the store keeps max_size entries
    held = len(cache._front)  # noqa: SLF001
    assert held < 300 and "k299" in cache._front  # noqa: SLF001 - the most recent ones
    for i in range(300):  # every entry hits, the older ones from the store
        assert cache.get(f"k{i}") is not None
        assert cache.stats()["memory_bytes"] <= int(0.1 * MB)
    assert cache.hits == 300 and cache.misses == 0


def test_resize_shrinks_the_front_now_and_the_store_at_its_next_write() -> None:
    cache = ResponseCache(store=MemoryStore, max_size=100, ttl=60)
    fill(cache, 20, chat_entry)
    cache.resize(120, 5)
    assert (cache.ttl, cache.max_size, len(cache._front)) == (120, 5, 5)  # noqa: SLF001
    assert "k19" in cache._front and cache.stats()["memory_bytes"] > 0  # noqa: SLF001 - the most recent ones
    fill(cache, 1, chat_entry)  # a write: the store drops its least recent entries
    assert len(cache) == 5


def test_accounted_bytes_cover_what_the_front_holds() -> None:
    """An entry's size is at least what its value holds: a vector as 8 bytes a float, a chat answer in full."""
    cache = ResponseCache(store=MemoryStore)
    fill(cache, 1)
    size = cache.stats()["memory_bytes"]
    assert 768 * 8 < size < 768 * 8 + 1024  # packed, not 768 float objects (~25 KB)
    cache.clear()
    assert cache.stats()["memory_bytes"] == 0
    fill(cache, 1, chat_entry)
    assert cache.stats()["memory_bytes"] > sys.getsizeof(chat_entry(0)) + sys.getsizeof("answer 0")


def test_vectors_come_back_exact_as_lists_from_the_front_and_from_the_store(tmp_path: Path) -> None:
    cache = ResponseCache(tmp_path, memory_mb=0.05)  # ~7 vectors
    fill(cache, 20)
    packed = cache.get("k19")
    assert packed is not None and isinstance(packed["vector"], array)  # from the front: packed
    assert same_floats(list(packed["vector"]), vector(19))
    for i in range(20):  # k0..k12 from the store
        hit = cache.get(f"k{i}")
        assert hit is not None and same_floats(list(hit["vector"]), vector(i))
    other = ResponseCache(tmp_path)  # another process: everything from the store
    assert all(same_floats(list(other.get(f"k{i}")["vector"]), vector(i)) for i in range(20))  # type: ignore[index]
    cache.close()
    other.close()


def test_the_store_keeps_vectors_packed_and_reads_earlier_json_records() -> None:
    store = MemoryStore()
    cache = ResponseCache(store=lambda: store)
    fill(cache, 1)
    record = store.get("k0")
    assert record is not None and len(record) < 768 * 8 + 200  # JSON would take ~15 KB
    # A record written before vectors were packed: plain JSON.
    store.put("old", orjson.dumps({"v": embed_entry(7), "e": 2e9, "t": "x"}), tag="x", ttl=60)
    hit = cache.get("old")
    assert hit is not None and isinstance(hit["vector"], array) and same_floats(list(hit["vector"]), vector(7))
    # Records it cannot read are misses (and dropped): not an entry, a cut vector.
    store.put("list", b'{"v": [1], "e": 2e9, "t": "x"}', tag="x", ttl=60)
    store.put("cut", record[:-3], tag="x", ttl=60)
    assert cache.get("list") is None and cache.get("cut") is None and store.get("cut") is None


def test_a_vector_that_is_not_all_numbers_is_kept_as_it_is() -> None:
    cache = ResponseCache(store=MemoryStore)
    cache.set("k", {"vector": [1.5, "x"]}, messages="t", model="m")
    assert cache.get("k") == {"vector": [1.5, "x"]}


def test_an_entry_larger_than_the_bound_is_served_from_the_store() -> None:
    cache = ResponseCache(store=MemoryStore, memory_mb=0.001)  # 1 KB: less than one vector
    fill(cache, 2)
    assert cache.stats()["memory_bytes"] == 0 and len(cache._front) == 0  # noqa: SLF001
    hit = cache.get("k1")
    assert hit is not None and same_floats(list(hit["vector"]), vector(1))


def test_invalidate_empties_the_front_and_the_rest_still_hits() -> None:
    cache = ResponseCache(store=MemoryStore)
    fill(cache, 3)
    assert cache.invalidate([{"role": "user", "content": "text 1"}], "m") == 1
    assert cache.stats()["memory_bytes"] == 0
    assert cache.get("k1") is None and cache.get("k0") is not None and cache.get("k2") is not None


async def test_embed_hits_from_front_and_store_are_lists_and_stats_show_bytes(upstream: Any) -> None:
    upstream.behaviour.dims = 768
    gw = sarai_llm.get_gateway(
        {"primary_provider": "local", "local_base_url": upstream.base_url, "cache_memory_mb": 0.05}
    )
    texts = [f"chunk {i}" for i in range(20)]
    first = await sarai_llm.embed(texts)
    again = await sarai_llm.embed(texts)  # the older ones from the store, the recent ones from the front
    assert again == first and all(type(v) is list and type(v[0]) is float for v in again)
    assert upstream.count("/embeddings") == 1
    stats = sarai_llm.get_stats()["cache"]
    assert stats["hits"] == 20 and stats["memory_max_bytes"] == int(0.05 * MB)
    assert 0 < stats["memory_bytes"] <= stats["memory_max_bytes"]
    assert gw.cache is not None and len(gw.cache._front) < 20  # noqa: SLF001


def test_memory_mb_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    assert GatewayConfig.load().cache.memory_mb == 64
    monkeypatch.setenv("LLM_GATEWAY_CACHE_MEMORY_MB", "8")
    gw = sarai_llm.get_gateway()
    assert gw.get_stats()["cache"]["memory_max_bytes"] == 8 * MB


@pytest.mark.parametrize("bad", ["0", "-1", "inf", "nan", "lots"])
def test_an_invalid_memory_mb_is_a_config_error(monkeypatch: pytest.MonkeyPatch, bad: str) -> None:
    monkeypatch.setenv("LLM_GATEWAY_CACHE_MEMORY_MB", bad)
    with pytest.raises(ConfigError, match="memory_mb|MEMORY_MB"):
        GatewayConfig.load()
