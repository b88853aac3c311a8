"""Coalescing: identical requests in flight make one upstream request, for chats, streams and embeddings."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

import sarai_llm

MESSAGES = [{"role": "user", "content": "tell me"}]


def use(upstream: Any) -> None:
    sarai_llm.get_gateway({"primary_provider": "local", "local_base_url": upstream.base_url})


async def collect(**kwargs: Any) -> list[str]:
    return [piece async for piece in sarai_llm.stream_chat(MESSAGES, **kwargs)]


async def test_identical_streams_share_one_upstream_stream(upstream: Any) -> None:
    use(upstream)
    upstream.behaviour.delay = 0.3

    results = await asyncio.gather(*(collect() for _ in range(5)))

    assert all(pieces == ["po", "ng", "!"] for pieces in results)
    assert upstream.count("/chat/completions") == 1
    stats = sarai_llm.get_stats()
    assert stats["total_requests"] == 5 and stats["providers"]["local"]["requests"] == 1
    assert (stats["cache"]["hits"], stats["cache"]["misses"], stats["cache"]["coalesced"]) == (4, 1, 4)


async def test_a_late_joiner_gets_every_piece_from_the_first(upstream: Any) -> None:
    use(upstream)
    upstream.behaviour.chunks = ["a", "b", "c", "d"]
    upstream.behaviour.chunk_delay = 0.15
    leader_pieces: list[str] = []
    two_arrived = asyncio.Event()

    async def leader() -> None:
        async for piece in sarai_llm.stream_chat(MESSAGES):
            leader_pieces.append(piece)
            if len(leader_pieces) == 2:
                two_arrived.set()

    task = asyncio.create_task(leader())
    await two_arrived.wait()
    late = await collect()  # joins after two pieces: gets them at once, then the rest as they come
    await task

    assert late == leader_pieces == ["a", "b", "c", "d"]
    assert upstream.count("/chat/completions") == 1


async def test_a_chat_joins_a_stream_in_flight(upstream: Any) -> None:
    use(upstream)
    upstream.behaviour.chunks = ["x", "y"]
    upstream.behaviour.delay = 0.3

    pieces, answer = await asyncio.gather(collect(), sarai_llm.chat(MESSAGES))

    assert pieces == ["x", "y"]
    assert answer["content"] == "xy" and answer["coalesced"] is True and answer["cached"] is True
    assert upstream.count("/chat/completions") == 1


async def test_a_stream_leader_that_fails_fails_its_followers(upstream: Any) -> None:
    use(upstream)
    upstream.behaviour.chunks = ["1", "2", "3", "4"]
    upstream.behaviour.cut_after = 2
    upstream.behaviour.chunk_delay = 0.1

    results = await asyncio.gather(collect(), collect(), return_exceptions=True)

    assert all(isinstance(r, sarai_llm.StreamInterruptedError) for r in results)
    assert all(r.chunks_delivered == 2 for r in results if isinstance(r, sarai_llm.StreamInterruptedError))
    assert upstream.count("/chat/completions") == 1


async def test_a_follower_asks_itself_when_the_leader_gives_up_before_any_piece(upstream: Any) -> None:
    use(upstream)
    upstream.behaviour.delay = 0.3

    leader = asyncio.create_task(collect())
    await asyncio.sleep(0.05)
    follower = asyncio.create_task(collect())
    await asyncio.sleep(0.05)
    leader.cancel()

    assert await follower == ["po", "ng", "!"]
    with pytest.raises(asyncio.CancelledError):
        await leader
    assert upstream.count("/chat/completions") == 2


async def test_embeddings_in_flight_are_shared_per_text(upstream: Any) -> None:
    use(upstream)
    upstream.behaviour.delay = 0.3

    first, second = await asyncio.gather(sarai_llm.embed(["a", "b"]), sarai_llm.embed(["b", "c"]))

    assert first[1] == second[0]  # "b" was asked for once
    inputs = sorted(body["input"] for path, body in upstream.requests if path.endswith("/embeddings"))
    assert inputs == [["a", "b"], ["c"]]
    stats = sarai_llm.get_stats()
    assert (stats["cache"]["hits"], stats["cache"]["misses"], stats["cache"]["coalesced"]) == (1, 3, 1)


async def test_a_failed_embedding_leader_fails_its_followers(upstream: Any) -> None:
    use(upstream)
    upstream.behaviour.delay = 0.3
    upstream.behaviour.status = 500

    results = await asyncio.gather(sarai_llm.embed("a"), sarai_llm.embed("a"), return_exceptions=True)

    assert all(isinstance(r, sarai_llm.AllProvidersFailedError) for r in results)
    assert upstream.count("/embeddings") == 1
