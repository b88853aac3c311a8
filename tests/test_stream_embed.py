"""Streaming (fallback before the first chunk, replay, interruption) and embeddings."""

from __future__ import annotations

import gc
import warnings
from typing import Any

import pytest

import sarai_llm
from sarai_llm import StreamInterruptedError

MESSAGES = [{"role": "user", "content": "tell me"}]


def use(upstream: Any, **settings: Any) -> sarai_llm.Gateway:
    return sarai_llm.get_gateway({"primary_provider": "local", "local_base_url": upstream.base_url, **settings})


async def collect(**kwargs: Any) -> list[str]:
    return [piece async for piece in sarai_llm.stream_chat(MESSAGES, **kwargs)]


async def test_stream_yields_pieces_and_replays_them_from_cache(upstream: Any) -> None:
    use(upstream)
    upstream.behaviour.chunks = ["a", "b", "c", "d"]
    assert await collect() == ["a", "b", "c", "d"]
    assert await collect() == ["a", "b", "c", "d"]
    assert upstream.count("/chat/completions") == 1
    stats = sarai_llm.get_stats()
    assert stats["total_requests"] == 2
    assert (stats["cache"]["hits"], stats["cache"]["misses"]) == (1, 1)
    assert stats["providers"]["local"]["requests"] == 1
    assert stats["providers"]["local"]["total_tokens"] == 9  # usage sent with stream_options


async def test_stream_and_chat_share_entries(upstream: Any) -> None:
    use(upstream)
    upstream.behaviour.chunks = ["x", "y"]
    await collect()
    r = await sarai_llm.chat(MESSAGES)
    assert r["cached"] is True and r["content"] == "xy"
    sarai_llm.clear_cache()
    await sarai_llm.chat(MESSAGES)  # reply "pong"
    assert await collect() == ["pong"]  # a chat answer serves a stream as one piece


async def test_stream_fails_over_before_the_first_chunk(upstream: Any, dead_url: str) -> None:
    sarai_llm.get_gateway(
        {
            "primary_provider": "ollama",
            "ollama_base_url": dead_url,
            "fallback_providers": ["local"],
            "local_base_url": upstream.base_url,
        }
    )
    assert "".join(await collect()) == "pong!"
    stats = sarai_llm.get_stats()
    assert stats["total_fallbacks"] == 1 and stats["providers"]["ollama"]["errors"] == 1


async def test_stream_cut_after_three_chunks_is_interrupted_not_spliced(upstream: Any) -> None:
    use(upstream, fallback_providers=["openai"], openai_base_url=upstream.base_url)
    upstream.behaviour.chunks = ["1", "2", "3", "4", "5"]
    upstream.behaviour.cut_after = 3
    received: list[str] = []
    with pytest.raises(StreamInterruptedError) as info:
        async for piece in sarai_llm.stream_chat(MESSAGES):
            received.append(piece)
    assert received == ["1", "2", "3"]
    assert info.value.chunks_delivered == 3 and info.value.provider == "local"
    assert upstream.count("/chat/completions") == 1  # the fallback was not asked to continue
    upstream.behaviour.cut_after = None
    assert await collect() == ["1", "2", "3", "4", "5"]  # nothing was cached
    assert sarai_llm.get_stats()["providers"]["local"]["errors"] == 1


async def test_abandoned_stream_is_not_cached_and_is_closed(upstream: Any) -> None:
    use(upstream)
    upstream.behaviour.chunks = ["a", "b", "c"]
    with warnings.catch_warnings():
        warnings.simplefilter("error", ResourceWarning)
        stream = sarai_llm.stream_chat(MESSAGES)
        async for _ in stream:
            break
        await stream.aclose()  # type: ignore[attr-defined]
        gc.collect()
    assert sarai_llm.get_stats()["cache"]["size"] == 0
    assert await collect() == ["a", "b", "c"]
    assert upstream.count("/chat/completions") == 2


async def test_stream_use_cache_false(upstream: Any) -> None:
    use(upstream)
    await collect(use_cache=False)
    await collect(use_cache=False)
    assert upstream.count("/chat/completions") == 2
    assert sarai_llm.get_stats()["cache"]["size"] == 0


async def test_all_streams_failing_raise_before_any_piece(dead_url: str) -> None:
    sarai_llm.get_gateway({"primary_provider": "local", "local_base_url": dead_url})
    with pytest.raises(sarai_llm.AllProvidersFailedError):
        await collect()


# --- embeddings -----------------------------------------------------------------------------


async def test_embed_one_text_and_a_list_with_per_text_cache(upstream: Any) -> None:
    use(upstream)
    vector = await sarai_llm.embed("hola")
    assert isinstance(vector, list) and len(vector) == 4 and all(isinstance(x, float) for x in vector)
    vectors = await sarai_llm.embed(["a", "b", "a", "hola"])
    assert len(vectors) == 4
    assert vectors[0] == vectors[2] and vectors[3] == vector
    sent = [body["input"] for path, body in upstream.requests if path.endswith("/embeddings")]
    assert sent == [["hola"], ["a", "b"]]  # cached texts are not sent again, duplicates once
    cache = sarai_llm.get_stats()["cache"]
    assert (cache["hits"], cache["misses"]) == (2, 3)  # per text: the repeated "a" is a hit


async def test_embed_skips_providers_that_cannot_embed(upstream: Any, dead_url: str) -> None:
    sarai_llm.get_gateway(
        {
            "primary_provider": "anthropic",
            "anthropic_base_url": dead_url,
            "fallback_providers": ["local"],
            "local_base_url": upstream.base_url,
        }
    )
    assert len(await sarai_llm.embed("x")) == 4
    assert "anthropic" not in sarai_llm.get_stats()["providers"]


async def test_embed_with_no_embedding_provider_says_which_settings(dead_url: str) -> None:
    sarai_llm.get_gateway({"primary_provider": "anthropic", "anthropic_base_url": dead_url})
    with pytest.raises(sarai_llm.NoProvidersError, match="embed"):
        await sarai_llm.embed("x")


async def test_embed_use_cache_false(upstream: Any) -> None:
    use(upstream)
    await sarai_llm.embed("x", use_cache=False)
    await sarai_llm.embed("x", use_cache=False)
    assert upstream.count("/embeddings") == 2
