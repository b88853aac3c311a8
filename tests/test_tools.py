"""Tool calls, reasoning and token details through the whole pipeline: miss, hit, stream, stats, metrics.

The protocol side (each provider shape through LiteLLM) is tests/test_tools_adapter.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from shapes import ShapeUpstream, ndjson, sse

import sarai_llm

ASK = [{"role": "user", "content": "What is 2 + 3?"}]
TOOLS = [{"type": "function", "function": {"name": "add", "parameters": {"type": "object", "properties": {}}}}]
CALL = {"id": "call_a", "type": "function", "function": {"name": "add", "arguments": '{"a": 2, "b": 3}'}}
USAGE = {
    "prompt_tokens": 20,
    "completion_tokens": 9,
    "total_tokens": 29,
    "prompt_tokens_details": {"cached_tokens": 16},
    "completion_tokens_details": {"reasoning_tokens": 5},
}


def reply(message: dict[str, Any], finish: str) -> dict[str, Any]:
    choice = {"index": 0, "message": {"role": "assistant", **message}, "finish_reason": finish}
    return {"id": "x", "object": "chat.completion", "created": 0, "model": "m", "choices": [choice], "usage": USAGE}


def chunk(delta: dict[str, Any], finish: str | None = None) -> str:
    choice = {"index": 0, "delta": delta, "finish_reason": finish}
    return sse({"id": "c", "object": "chat.completion.chunk", "created": 0, "model": "m", "choices": [choice]})


@pytest.fixture
def up() -> Iterator[ShapeUpstream]:
    upstream = ShapeUpstream()
    sarai_llm.get_gateway({"primary_provider": "local", "local_base_url": upstream.base_url, "local_model": "m"})
    yield upstream
    upstream.stop()


async def test_a_tool_call_is_returned_cached_and_replayed(up: ShapeUpstream) -> None:
    up.reply = reply({"content": None, "tool_calls": [CALL], "reasoning_content": "I should add."}, "tool_calls")

    first = await sarai_llm.chat(ASK, tools=TOOLS, tool_choice="auto")
    again = await sarai_llm.chat(ASK, tools=TOOLS, tool_choice="auto")

    for r in (first, again):
        assert r["tool_calls"] == [CALL] and r["finish_reason"] == "tool_calls" and r["content"] == ""
        assert r["reasoning_content"] == "I should add."
        assert r["usage"] == {"prompt_tokens": 20, "completion_tokens": 9, "total_tokens": 29,
                              "cached_tokens": 16, "reasoning_tokens": 5}  # fmt: skip
    assert (first["cached"], again["cached"]) == (False, True) and len(up.requests) == 1
    again["tool_calls"][0]["function"]["name"] = "changed"  # a result is the caller's: the cache keeps its own
    assert (await sarai_llm.chat(ASK, tools=TOOLS, tool_choice="auto"))["tool_calls"] == [CALL]
    await sarai_llm.chat(ASK, tools=TOOLS, tool_choice="required")
    assert len(up.requests) == 2  # tool_choice is part of the key
    stats = sarai_llm.get_stats()["providers"]["local"]
    assert (stats["cached_tokens"], stats["reasoning_tokens"]) == (32, 10)
    metrics = sarai_llm.metrics_text()
    assert 'llm_gateway_tokens_total{model="m",provider="local",type="cached"} 32.0' in metrics
    assert 'llm_gateway_tokens_total{model="m",provider="local",type="reasoning"} 10.0' in metrics


async def test_a_tool_result_round_trip_reaches_the_provider(up: ShapeUpstream) -> None:
    up.reply = reply({"content": "5"}, "stop")
    conversation = [
        *ASK,
        {"role": "assistant", "content": None, "tool_calls": [CALL]},
        {"role": "tool", "tool_call_id": "call_a", "content": "5"},
    ]
    r = await sarai_llm.chat(conversation, tools=TOOLS)
    assert r["content"] == "5" and r["tool_calls"] == []
    sent = up.requests[-1][1]["messages"]
    assert sent[1]["tool_calls"][0]["id"] == "call_a" and sent[2] == conversation[2]


async def test_a_streamed_tool_call_yields_no_text_and_its_result_has_the_call(up: ShapeUpstream) -> None:
    first = {"index": 0, "id": "call_a", "type": "function", "function": {"name": "add", "arguments": '{"a": '}}
    up.events = [
        chunk({"role": "assistant", "reasoning_content": "I should "}),
        chunk({"reasoning_content": "add."}),
        chunk({"tool_calls": [first]}),
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": '2, "b": 3}'}}]}),
        chunk({}, "tool_calls"),
        "data: [DONE]\n\n",
    ]
    stream = sarai_llm.stream_chat(ASK, tools=TOOLS)
    assert [piece async for piece in stream] == []
    result = stream.result
    assert result is not None and result["tool_calls"] == [CALL] and result["finish_reason"] == "tool_calls"
    assert result["reasoning_content"] == "I should add." and result["cached"] is False
    replay = sarai_llm.stream_chat(ASK, tools=TOOLS)
    assert [piece async for piece in replay] == [] and replay.result["tool_calls"] == [CALL]
    assert replay.result["cached"] is True and len(up.requests) == 1


async def test_image_parts_pass_and_key_by_content(up: ShapeUpstream) -> None:
    up.reply = reply({"content": "a red dot"}, "stop")

    def ask(payload: str) -> list[dict[str, Any]]:
        url = f"data:image/png;base64,{payload}"
        parts = [{"type": "text", "text": "What is this?"}, {"type": "image_url", "image_url": {"url": url}}]
        return [{"role": "user", "content": parts}]

    assert (await sarai_llm.chat(ask("iVBORw0KGgo=")))["content"] == "a red dot"
    assert (await sarai_llm.chat(ask("iVBORw0KGgo=")))["cached"] is True
    assert (await sarai_llm.chat(ask("R0lGODlhAQ==")))["cached"] is False  # another image, another entry
    sent = up.requests[0][1]["messages"][0]["content"][1]
    assert sent == {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}


async def test_an_ollama_stream_counts_its_usage(up: ShapeUpstream) -> None:
    """LiteLLM reports Ollama's token counts on a stream only when asked for usage: the gateway asks."""

    def line(content: str, done: bool = False, **extra: Any) -> str:
        message = {"role": "assistant", "content": content}
        return ndjson({"model": "m", "created_at": "2026-01-01T00:00:00Z", "message": message, "done": done, **extra})

    sarai_llm.get_gateway({"primary_provider": "ollama", "ollama_base_url": up.base_url, "ollama_model": "m"})
    up.events = [line("po"), line("ng"), line("", True, done_reason="stop", prompt_eval_count=5, eval_count=2)]
    stream = sarai_llm.stream_chat(ASK)
    assert [piece async for piece in stream] == ["po", "ng"]
    assert stream.result is not None and stream.result["usage"]["completion_tokens"] == 2
    assert sarai_llm.get_stats()["providers"]["ollama"]["prompt_tokens"] == 5
    assert [path for path, _ in up.requests] == ["/api/chat"]  # and nothing else asked of the server
