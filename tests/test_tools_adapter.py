"""Everything the model returns (issue 15), through :class:`LiteLLMAdapter` against loopback upstreams.

For each provider shape LiteLLM speaks for us (OpenAI-compatible ``local`` and ``openai`` with a base
URL, Ollama's ``/api/chat``, Anthropic's ``/v1/messages``): tool calls, whole and streamed in pieces;
reasoning text; usage details (cached prompt tokens, reasoning tokens); and what the upstream REQUEST
carries for tools, ``tool_choice``, a ``response_format`` JSON schema, a tool-call round trip and an
image. The upstream (tests/shapes.py) answers with the payloads written here and records each body.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from shapes import ShapeUpstream, ndjson, sse

from sarai_llm._adapter import USAGE_KEYS, Attempt, StreamState
from sarai_llm._litellm import LiteLLMAdapter, cost_usd
from sarai_llm.config import GatewayConfig, ProviderConfig

ASK = [{"role": "user", "content": "Weather in Paris?"}]
TOOLS: list[dict[str, Any]] = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "The weather in a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
        },
    }
]
SCHEMA = {"type": "object", "properties": {"answer": {"type": "string"}}, "required": ["answer"]}
RESPONSE_FORMAT = {"type": "json_schema", "json_schema": {"name": "answer", "schema": SCHEMA, "strict": True}}
PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
ROUND_TRIP: list[dict[str, Any]] = [
    {"role": "system", "content": "Be brief."},
    {
        "role": "user",
        "content": [
            {"type": "text", "text": "What is in the picture, and the weather in Paris?"},
            {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
        ],
    },
    {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}
        ],
    },
    {"role": "tool", "tool_call_id": "call_1", "content": "sunny, 21 C"},
]
PARIS: dict[str, Any] = {
    "id": "call_1",
    "type": "function",
    "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
}
OPENAI_SHAPED = ["local", "openai"]


@pytest.fixture
def up() -> Iterator[ShapeUpstream]:
    upstream = ShapeUpstream()
    yield upstream
    upstream.stop()


@pytest.fixture
async def adapter() -> AsyncIterator[LiteLLMAdapter]:
    a = LiteLLMAdapter()
    yield a
    await a.close_connections()


def provider(name: str, up: ShapeUpstream) -> ProviderConfig:
    return GatewayConfig.defaults(**{f"{name}_base_url": up.base_url, f"{name}_model": "m"}).provider(name)


async def complete(adapter: LiteLLMAdapter, p: ProviderConfig, messages: Any = ASK, **params: Any) -> Any:
    return await adapter.complete(Attempt(p, "m", params, messages))


async def stream(adapter: LiteLLMAdapter, p: ProviderConfig, **params: Any) -> tuple[list[str], StreamState]:
    state = StreamState()
    pieces = [piece async for piece in adapter.stream(Attempt(p, "m", params, ASK), state)]
    return pieces, state


def usage(prompt: int, completion: int, cached: int = 0, reasoning: int = 0) -> dict[str, int]:
    values = (prompt, completion, prompt + completion, cached, reasoning)
    return dict(zip(USAGE_KEYS, values, strict=True))


# --- OpenAI-compatible (llama.cpp, vLLM, DeepSeek, OpenAI) --------------------------------------------


def oa_reply(message: dict[str, Any], finish: str, **extra: Any) -> dict[str, Any]:
    choice = {"index": 0, "message": {"role": "assistant", **message}, "finish_reason": finish}
    return {"id": "chatcmpl-1", "object": "chat.completion", "created": 0, "model": "m", "choices": [choice], **extra}


def oa_chunk(delta: dict[str, Any], finish: str | None = None) -> str:
    choice = {"index": 0, "delta": delta, "finish_reason": finish}
    return sse({"id": "c", "object": "chat.completion.chunk", "created": 0, "model": "m", "choices": [choice]})


OA_USAGE = {
    "prompt_tokens": 20,
    "completion_tokens": 9,
    "total_tokens": 29,
    "prompt_tokens_details": {"cached_tokens": 16},
    "completion_tokens_details": {"reasoning_tokens": 5},
}


@pytest.mark.parametrize("name", OPENAI_SHAPED)
async def test_openai_shaped_tool_call_answer(up: ShapeUpstream, adapter: LiteLLMAdapter, name: str) -> None:
    message = {"content": None, "reasoning_content": "The user wants weather.", "tool_calls": [PARIS]}
    up.reply = oa_reply(message, "tool_calls", usage=OA_USAGE)
    c = await complete(adapter, provider(name, up), tools=TOOLS)
    assert c.tool_calls == [PARIS]
    assert (c.content, c.finish_reason, c.reasoning_content) == ("", "tool_calls", "The user wants weather.")
    assert c.usage == usage(20, 9, cached=16, reasoning=5)
    assert json.loads(c.tool_calls[0]["function"]["arguments"]) == {"city": "Paris"}


@pytest.mark.parametrize("name", OPENAI_SHAPED)
async def test_openai_shaped_streamed_tool_calls_are_assembled_not_yielded(
    up: ShapeUpstream, adapter: LiteLLMAdapter, name: str
) -> None:
    first = {"index": 0, "id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": ""}}
    second = {"index": 1, "id": "call_2", "type": "function", "function": {"name": "get_time", "arguments": "{}"}}
    up.events = [
        oa_chunk({"role": "assistant", "content": None, "reasoning_content": "Two tools: "}),
        oa_chunk({"reasoning_content": "weather, time."}),
        oa_chunk({"tool_calls": [first]}),
        oa_chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"ci'}}]}),
        oa_chunk({"tool_calls": [{"index": 0, "function": {"arguments": 'ty": "Pa'}}]}),
        oa_chunk({"tool_calls": [second]}),
        oa_chunk({"tool_calls": [{"index": 0, "function": {"arguments": 'ris"}'}}]}),
        oa_chunk({}, "tool_calls"),
        sse(
            {"id": "c", "object": "chat.completion.chunk", "created": 0, "model": "m", "choices": [], "usage": OA_USAGE}
        ),
        "data: [DONE]\n\n",
    ]
    pieces, state = await stream(adapter, provider(name, up), tools=TOOLS)
    assert pieces == []  # an answer with tool calls and no text is an answer, not a failure
    time_call = {"id": "call_2", "type": "function", "function": {"name": "get_time", "arguments": "{}"}}
    assert state.tool_calls == [PARIS, time_call]
    assert (state.finish_reason, state.reasoning_content) == ("tool_calls", "Two tools: weather, time.")
    assert state.usage == usage(20, 9, cached=16, reasoning=5)
    assert up.body()["stream_options"] == {"include_usage": True}


@pytest.mark.parametrize("field", ["reasoning_content", "reasoning"])  # llama.cpp and DeepSeek; vLLM and Groq
async def test_openai_shaped_reasoning_is_kept_apart_from_the_text(
    up: ShapeUpstream, adapter: LiteLLMAdapter, field: str
) -> None:
    p = provider("local", up)
    up.reply = oa_reply({"content": "Sunny.", field: "Look it up."}, "stop")
    c = await complete(adapter, p)
    assert (c.content, c.reasoning_content, c.tool_calls) == ("Sunny.", "Look it up.", [])
    up.events = [oa_chunk({field: "Look "}), oa_chunk({field: "it up."}), oa_chunk({"content": "Sunny."})]
    up.events += [oa_chunk({}, "stop"), "data: [DONE]\n\n"]
    pieces, state = await stream(adapter, p)
    assert pieces == ["Sunny."]
    assert (state.reasoning_content, state.tool_calls, state.finish_reason) == ("Look it up.", [], "stop")


async def test_no_reasoning_and_no_details_are_none_and_zeros(up: ShapeUpstream, adapter: LiteLLMAdapter) -> None:
    up.reply = oa_reply({"content": "Hi."}, "stop", usage={"prompt_tokens": 3, "completion_tokens": 1})
    c = await complete(adapter, provider("local", up))
    assert (c.content, c.reasoning_content, c.tool_calls, c.usage) == ("Hi.", None, [], usage(3, 1))


async def test_tool_calls_under_a_stop_finish_reason_say_tool_calls(up: ShapeUpstream, adapter: LiteLLMAdapter) -> None:
    p = provider("local", up)
    up.reply = oa_reply({"content": None, "tool_calls": [PARIS]}, "stop")  # some servers say "stop"
    c = await complete(adapter, p, tools=TOOLS)
    assert (c.tool_calls, c.finish_reason) == ([PARIS], "tool_calls")
    up.events = [oa_chunk({"tool_calls": [{"index": 0, **PARIS}]}), oa_chunk({}, "stop"), "data: [DONE]\n\n"]
    pieces, state = await stream(adapter, p, tools=TOOLS)
    assert (pieces, state.tool_calls, state.finish_reason) == ([], [PARIS], "tool_calls")


@pytest.mark.parametrize("name", OPENAI_SHAPED)
async def test_openai_shaped_request_carries_tools_schema_round_trip_and_image(
    up: ShapeUpstream, adapter: LiteLLMAdapter, name: str
) -> None:
    p = provider(name, up)
    up.reply = oa_reply({"content": '{"answer": "sunny"}'}, "stop")
    choice = {"type": "function", "function": {"name": "get_weather"}}
    await complete(adapter, p, ROUND_TRIP, tools=TOOLS, tool_choice=choice)
    body = up.body()
    assert up.requests[-1][0] == "/v1/chat/completions"
    assert (body["tools"], body["tool_choice"]) == (TOOLS, choice)
    system, user, assistant, tool = body["messages"]
    assert system == {"role": "system", "content": "Be brief."}
    assert user == ROUND_TRIP[1]  # the image part as it was, a data URL
    # LiteLLM drops the None content of an assistant turn with tool calls (the API allows it absent).
    assert {**assistant, "content": assistant.get("content")} == ROUND_TRIP[2]
    assert tool == {"role": "tool", "tool_call_id": "call_1", "content": "sunny, 21 C"}
    c = await complete(adapter, p, ASK, response_format=RESPONSE_FORMAT)
    assert up.body()["response_format"] == RESPONSE_FORMAT
    assert json.loads(c.content) == {"answer": "sunny"}


# --- Anthropic (/v1/messages) --------------------------------------------------------------------


def anthropic_reply(content: list[dict[str, Any]], stop: str, **usage_extra: int) -> dict[str, Any]:
    return {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "m",
        "content": content,
        "stop_reason": stop,
        "stop_sequence": None,
        "usage": {"input_tokens": 10, "output_tokens": 6, **usage_extra},
    }


def event(kind: str, **fields: Any) -> str:
    return sse({"type": kind, **fields}, kind)


def block(index: int, content_block: dict[str, Any], *deltas: dict[str, Any]) -> list[str]:
    events = [event("content_block_start", index=index, content_block=content_block)]
    events += [event("content_block_delta", index=index, delta=d) for d in deltas]
    return [*events, event("content_block_stop", index=index)]


async def test_anthropic_tool_use_thinking_and_cache_reads(up: ShapeUpstream, adapter: LiteLLMAdapter) -> None:
    content: list[dict[str, Any]] = [
        {"type": "thinking", "thinking": "The user wants weather.", "signature": "sig"},
        {"type": "text", "text": "Checking."},
        {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}},
    ]
    up.reply = anthropic_reply(content, "tool_use", cache_read_input_tokens=7)
    c = await complete(adapter, provider("anthropic", up), tools=TOOLS)
    assert c.tool_calls == [{**PARIS, "id": "toolu_1"}]
    assert (c.content, c.finish_reason, c.reasoning_content) == ("Checking.", "tool_calls", "The user wants weather.")
    # LiteLLM counts cache reads into prompt_tokens (OpenAI's meaning) and files them as cached_tokens;
    # Anthropic reports no reasoning tokens: LiteLLM counts the thinking text's tokens itself.
    assert c.usage["prompt_tokens"] == 17 and c.usage["cached_tokens"] == 7
    assert c.usage["completion_tokens"] == 6 and c.usage["reasoning_tokens"] > 0


async def test_anthropic_streamed_tool_use_input_json_deltas(up: ShapeUpstream, adapter: LiteLLMAdapter) -> None:
    start: dict[str, Any] = {"id": "msg_1", "type": "message", "role": "assistant", "content": [], "model": "m"}
    start |= {"stop_reason": None, "stop_sequence": None}
    start["usage"] = {"input_tokens": 10, "output_tokens": 1, "cache_read_input_tokens": 7}
    up.events = [
        event("message_start", message=start),
        *block(
            0,
            {"type": "thinking", "thinking": ""},
            {"type": "thinking_delta", "thinking": "Two tools: "},
            {"type": "thinking_delta", "thinking": "weather, time."},
            {"type": "signature_delta", "signature": "sig"},
        ),
        *block(
            1,
            {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {}},
            {"type": "input_json_delta", "partial_json": ""},
            {"type": "input_json_delta", "partial_json": '{"ci'},
            {"type": "input_json_delta", "partial_json": 'ty": "Pa'},
            {"type": "input_json_delta", "partial_json": 'ris"}'},
        ),
        *block(2, {"type": "tool_use", "id": "toolu_2", "name": "get_time", "input": {}}),
        event("message_delta", delta={"stop_reason": "tool_use", "stop_sequence": None}, usage={"output_tokens": 9}),
        event("message_stop"),
    ]
    pieces, state = await stream(adapter, provider("anthropic", up), tools=TOOLS)
    assert pieces == []
    time_call = {"id": "toolu_2", "type": "function", "function": {"name": "get_time", "arguments": "{}"}}
    assert state.tool_calls == [{**PARIS, "id": "toolu_1"}, time_call]
    assert (state.finish_reason, state.reasoning_content) == ("tool_calls", "Two tools: weather, time.")
    assert state.usage["prompt_tokens"] == 17 and state.usage["cached_tokens"] == 7
    assert state.usage["completion_tokens"] == 9


async def test_anthropic_request_translates_tools_round_trip_image_and_schema(
    up: ShapeUpstream, adapter: LiteLLMAdapter
) -> None:
    p = provider("anthropic", up)
    up.reply = anthropic_reply([{"type": "text", "text": "Sunny."}], "end_turn")
    await complete(
        adapter, p, ROUND_TRIP, tools=TOOLS, tool_choice={"type": "function", "function": {"name": "get_weather"}}
    )
    body = up.body()
    assert up.requests[-1][0] == "/v1/messages"
    function = TOOLS[0]["function"]
    assert [{k: t[k] for k in ("name", "description", "input_schema")} for t in body["tools"]] == [
        {"name": "get_weather", "description": function["description"], "input_schema": function["parameters"]}
    ]
    assert body["tool_choice"] == {"type": "tool", "name": "get_weather"}
    assert body["system"] == [{"type": "text", "text": "Be brief."}]
    user, assistant, tool = body["messages"]
    assert user["content"][1] == {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}}
    assert assistant == {
        "role": "assistant",
        "content": [{"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {"city": "Paris"}}],
    }
    assert tool == {
        "role": "user",
        "content": [{"type": "tool_result", "tool_use_id": "call_1", "content": "sunny, 21 C"}],
    }
    # A JSON schema answer: LiteLLM forces a tool of its own whose input is the schema, and turns
    # the tool_use that comes back into the answer's text (not a tool call).
    up.reply = anthropic_reply(
        [{"type": "tool_use", "id": "toolu_9", "name": "json_tool_call", "input": {"answer": "sunny"}}], "tool_use"
    )
    c = await complete(adapter, p, ASK, response_format=RESPONSE_FORMAT)
    body = up.body()
    assert body["tool_choice"] == {"type": "tool", "name": "json_tool_call"}
    assert [(t["name"], t["input_schema"]) for t in body["tools"]] == [("json_tool_call", SCHEMA)]
    assert json.loads(c.content) == {"answer": "sunny"}
    assert (c.tool_calls, c.finish_reason) == ([], "stop")


# --- Ollama (/api/chat, LiteLLM's ollama_chat/) -------------------------------------------------------


def ollama_line(message: dict[str, Any], done: bool = False) -> dict[str, Any]:
    line: dict[str, Any] = {"model": "m", "created_at": "2026-01-01T00:00:00Z", "done": done}
    line["message"] = {"role": "assistant", "content": "", **message}
    if done:
        line |= {"done_reason": "stop", "prompt_eval_count": 12, "eval_count": 4}
    return line


async def test_ollama_tool_call_and_thinking(up: ShapeUpstream, adapter: LiteLLMAdapter) -> None:
    calls = [{"function": {"name": "get_weather", "arguments": {"city": "Paris"}}}]  # Ollama: an object
    up.reply = ollama_line({"thinking": "The user wants weather.", "tool_calls": calls}, done=True)
    c = await complete(adapter, provider("ollama", up), tools=TOOLS)
    assert len(c.tool_calls) == 1 and c.tool_calls[0]["id"]  # Ollama sends no id: LiteLLM makes one
    assert c.tool_calls[0] == {**PARIS, "id": c.tool_calls[0]["id"]}
    assert (c.content, c.finish_reason, c.reasoning_content) == ("", "tool_calls", "The user wants weather.")
    assert c.usage == usage(12, 4)  # Ollama reports no cached nor reasoning tokens


async def test_ollama_streamed_tool_calls_come_whole(up: ShapeUpstream, adapter: LiteLLMAdapter) -> None:
    # Ollama streams each tool call whole, arguments as an object: there is nothing to join.
    weather = [{"function": {"name": "get_weather", "arguments": {"city": "Paris"}}}]
    clock = [{"function": {"name": "get_time", "arguments": {}}}]
    up.events = [
        ndjson(ollama_line({"thinking": "Two tools: "})),
        ndjson(ollama_line({"thinking": "weather, time."})),
        ndjson(ollama_line({"tool_calls": weather})),
        ndjson(ollama_line({"tool_calls": clock})),
        ndjson(ollama_line({}, done=True)),
    ]
    pieces, state = await stream(adapter, provider("ollama", up), tools=TOOLS)
    assert pieces == []
    assert [c["function"] for c in state.tool_calls] == [PARIS["function"], {"name": "get_time", "arguments": "{}"}]
    ids = [c["id"] for c in state.tool_calls]
    assert all(ids) and len(set(ids)) == 2
    assert (state.finish_reason, state.reasoning_content) == ("tool_calls", "Two tools: weather, time.")


async def test_ollama_request_translates_tools_round_trip_image_and_schema(
    up: ShapeUpstream, adapter: LiteLLMAdapter
) -> None:
    p = provider("ollama", up)
    up.reply = ollama_line({"content": '{"answer": "sunny"}'}, done=True)
    await complete(adapter, p, ROUND_TRIP, tools=TOOLS, tool_choice="required")
    body = up.body()
    assert up.requests[-1][0] == "/api/chat"
    assert body["tools"] == TOOLS
    assert "tool_choice" not in body  # Ollama's API has none; LiteLLM drops it without a word
    system, user, assistant, tool = body["messages"]
    assert (system["role"], system["content"]) == ("system", "Be brief.")
    assert user["content"] == ROUND_TRIP[1]["content"][0]["text"] and user["images"] == [PNG]
    assert assistant["content"] == ""
    assert assistant["tool_calls"] == [
        {"id": "call_1", "function": {"name": "get_weather", "arguments": {"city": "Paris"}}}
    ]
    assert {k: tool[k] for k in ("role", "tool_call_id", "content")} == {
        "role": "tool",
        "tool_call_id": "call_1",
        "content": "sunny, 21 C",
    }
    c = await complete(adapter, p, ASK, response_format=RESPONSE_FORMAT)
    assert up.body()["format"] == SCHEMA  # Ollama's structured outputs take the bare schema
    assert json.loads(c.content) == {"answer": "sunny"}


# --- cost -------------------------------------------------------------------------------------------


def test_cached_prompt_tokens_cost_the_listed_cache_read_price() -> None:
    import litellm

    config = GatewayConfig.defaults(openai_api_key="sk-test", anthropic_api_key="sk-ant-test")
    # Models no other test registers a price for (LiteLLM's price map is process-wide).
    for name, model in (("openai", "gpt-4.1-mini"), ("anthropic", "claude-sonnet-4-5")):
        p, listed = config.provider(name), litellm.model_cost[model]
        full, cached = cost_usd(p, model, usage(1000, 100)), cost_usd(p, model, usage(1000, 100, cached=800))
        saving = 800 * (listed["input_cost_per_token"] - listed["cache_read_input_token_cost"])
        assert 0 < cached < full and full - cached == pytest.approx(saving)
    # Configured prices have no cache-read price: cached prompt tokens cost the input price.
    priced = GatewayConfig.defaults(local_input_cost_per_token=1e-6, local_output_cost_per_token=2e-6)
    assert cost_usd(priced.provider("local"), "m", usage(1000, 100, cached=800)) == pytest.approx(1000e-6 + 200e-6)


@pytest.mark.parametrize(
    "model",
    ["ollama_chat/smollm2", "ollama/llama2", "OLLAMA_CHAT/Llama2", "ollama_chat/no-such-model-anywhere", "llama2"],
)
def test_the_static_ollama_lookup_answers_as_litellms_own(model: str) -> None:
    """The adapter replaces LiteLLM's per-call scan of the whole price list by a set lookup: same answers."""
    import litellm
    from litellm.llms.ollama.common_utils import OllamaModelInfo

    fast = OllamaModelInfo._is_static_ollama_model
    assert fast(model) == fast.original(model)  # type: ignore[attr-defined]
    litellm.register_model({f"ollama_chat/{model}-x": {"litellm_provider": "ollama", "mode": "chat"}})
    assert fast(f"ollama_chat/{model}-x") is True  # a newly registered model is seen at once
