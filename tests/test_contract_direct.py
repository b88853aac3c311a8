"""Differential contract tests of the direct path (sarai_llm/_litellm/_direct.py) against ``litellm.acompletion``.

Each case sends one attempt twice to the same loopback server (tests/capture.py): through the adapter
with the direct path on (LiteLLM's provider configs, our HTTP client) and with it off (``acompletion`` /
``aembedding``), and asserts that the upstream saw the same request (method, path, the headers that
matter, JSON body) and that the adapter returned the same result or raised the same error (class,
status, Retry-After, text, LiteLLM's exception class). Shapes the direct path does not serve must be
routed to ``acompletion`` (a result without ``upstream_s``). These tests are what makes an upgrade of
LiteLLM safe: they say what an upgrade changed in either path.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pydantic
import pytest
from capture import CaptureServer, Reply

from sarai_llm._adapter import Attempt, StreamState
from sarai_llm._litellm import LiteLLMAdapter
from sarai_llm.config import GatewayConfig, ProviderConfig
from sarai_llm.errors import ProviderError

HEADERS = (
    "authorization",
    "content-type",
    "x-api-key",
    "anthropic-version",
    "anthropic-beta",
    "openai-organization",
    "openai-project",
)
ASK = [{"role": "user", "content": "Weather in Paris?"}]
HISTORY = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Hi"},
    {"role": "assistant", "content": "Hello."},
    {"role": "user", "content": "Weather in Paris?"},
]
PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
IMAGE = [
    {
        "role": "user",
        "content": [
            {"type": "text", "text": "What is in the picture?"},
            {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
        ],
    }
]
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "The weather in a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
        },
    }
]
TOOL_ROUND = [
    *ASK,
    {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}
        ],
    },
    {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
]
SCHEMA = {"type": "object", "properties": {"answer": {"type": "string"}}, "required": ["answer"]}
JSON_SCHEMA = {"type": "json_schema", "json_schema": {"name": "answer", "schema": SCHEMA, "strict": True}}
SAMPLING = {"temperature": 0.2, "max_tokens": 7, "stop": ["\n\n"], "seed": 42, "top_p": 0.9}


def sse(payload: object) -> str:
    return f"data: {json.dumps(payload)}\n\n"


def ndjson(payload: object) -> str:
    return json.dumps(payload) + "\n"


# --- what each provider answers --------------------------------------------------------------------------

OPENAI_USAGE = {
    "prompt_tokens": 9,
    "completion_tokens": 3,
    "total_tokens": 12,
    "prompt_tokens_details": {"cached_tokens": 4},
    "completion_tokens_details": {"reasoning_tokens": 1},
}
CALL = {"id": "call_9", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}


def openai_reply(content: str | None = "Sunny.", calls: list[Any] | None = None, reasoning: str | None = None) -> Reply:
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if calls:
        message["tool_calls"] = calls
    if reasoning:
        message["reasoning_content"] = reasoning
    finish = "tool_calls" if calls else "stop"
    return Reply.json(
        {
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "created": 1,
            "model": "served-model",
            "choices": [{"index": 0, "message": message, "finish_reason": finish}],
            "usage": OPENAI_USAGE,
        }
    )


def openai_stream(pieces: list[str], usage: bool = True, calls: bool = False, cut: bool = False) -> Reply:
    base = {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "served-model"}
    events = [sse({**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]})]
    events += [sse({**base, "choices": [{"index": 0, "delta": {"content": p}, "finish_reason": None}]}) for p in pieces]
    if calls:
        first = {"index": 0, "id": "call_9", "type": "function", "function": {"name": "get_weather", "arguments": ""}}
        events.append(sse({**base, "choices": [{"index": 0, "delta": {"tool_calls": [first]}}]}))
        rest = {"index": 0, "function": {"arguments": '{"city": "Paris"}'}}
        events.append(sse({**base, "choices": [{"index": 0, "delta": {"tool_calls": [rest]}}]}))
    if cut:
        return Reply.events(events, cut=True)
    finish = "tool_calls" if calls else "stop"
    events.append(sse({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": finish}]}))
    if usage:
        events.append(sse({**base, "choices": [], "usage": OPENAI_USAGE}))
    return Reply.events([*events, "data: [DONE]\n\n"])


def ollama_reply(content: str = "Sunny.", calls: list[Any] | None = None, thinking: str | None = None) -> Reply:
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if calls:
        message["tool_calls"] = calls
    if thinking:
        message["thinking"] = thinking
    return Reply.json(
        {
            "model": "m",
            "created_at": "2026-01-01T00:00:00Z",
            "message": message,
            "done": True,
            "done_reason": "stop",
            "prompt_eval_count": 9,
            "eval_count": 3,
        }
    )


def ollama_stream(pieces: list[str], calls: bool = False, cut: bool = False) -> Reply:
    def line(content: str, **extra: Any) -> str:
        message = {"role": "assistant", "content": content, **extra}
        return ndjson({"model": "m", "created_at": "2026-01-01T00:00:00Z", "message": message, "done": False})

    events = [line(p) for p in pieces]
    if calls:
        events.append(line("", tool_calls=[{"function": {"name": "get_weather", "arguments": {"city": "Paris"}}}]))
    if cut:
        return Reply.events(events, "application/x-ndjson", cut=True)
    done = {"model": "m", "created_at": "2026-01-01T00:00:00Z", "message": {"role": "assistant", "content": ""}}
    events.append(ndjson({**done, "done": True, "done_reason": "stop", "prompt_eval_count": 9, "eval_count": 3}))
    return Reply.events(events, "application/x-ndjson")


def openai_embeddings(n: int) -> Reply:
    data = [{"object": "embedding", "index": i, "embedding": [0.5 + i, -1.25, 3.0e-5]} for i in reversed(range(n))]
    return Reply.json({"object": "list", "data": data, "model": "e", "usage": {"prompt_tokens": n, "total_tokens": n}})


def ollama_embeddings(n: int) -> Reply:
    vectors = [[0.5 + i, -1.25, 3.0e-5] for i in range(n)]
    return Reply.json({"model": "e", "embeddings": vectors, "prompt_eval_count": n})


# --- the harness ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def server() -> Iterator[CaptureServer]:
    s = CaptureServer()
    yield s
    s.stop()


@pytest.fixture
async def adapters() -> AsyncIterator[tuple[LiteLLMAdapter, LiteLLMAdapter]]:
    direct, baseline = LiteLLMAdapter(), LiteLLMAdapter(direct=False)
    yield direct, baseline
    await direct.close_connections()


def provider(name: str, server: CaptureServer, **settings: Any) -> ProviderConfig:
    extra = {f"{name}_api_key": "sk-test-secret"} if name in ("openai", "anthropic") else {}
    extra.update({f"{name}_{k}": v for k, v in settings.items()})
    config = {f"{name}_base_url": server.base_url, f"{name}_model": "m", **extra}
    if name != "anthropic":
        config[f"{name}_embed_model"] = "e"
    return GatewayConfig.defaults(**config).provider(name)


def request(c: Any) -> tuple[Any, ...]:
    return c.method, c.path, {h: c.headers[h] for h in HEADERS if h in c.headers}, c.body


def outcome(value: Any, text: bool = True) -> Any:
    """A result or error as compared: every field but the upstream wait time; generated tool-call ids masked.
    ``text=False``: an error's text left out (a transport's failure is worded by each HTTP client its own way)."""
    if isinstance(value, ProviderError):
        cause = value.__cause__
        return (
            type(value).__name__,
            value.status_code,
            value.retry_after,
            str(value) if text else "",
            type(cause).__name__,
        )
    fields = {k: v for k, v in dataclasses.asdict(value).items() if k != "upstream_s"}
    for call in fields.get("tool_calls", ()):
        call["id"] = call["id"] if call["id"] == "call_9" else "<generated>"
    return fields


async def attempt(adapter: LiteLLMAdapter, kind: str, a: Attempt, text: bool = True) -> tuple[Any, float | None]:
    try:
        if kind == "chat":
            result: Any = await adapter.complete(a)
        elif kind == "embed":
            result = await adapter.embed(a)
        else:
            result = StreamState()
            pieces = [p async for p in adapter.stream(a, result)]
            return (pieces, outcome(result)), result.upstream_s
        return outcome(result), result.upstream_s
    except ProviderError as exc:
        return outcome(exc, text), None


async def differential(
    server: CaptureServer,
    adapters: tuple[LiteLLMAdapter, LiteLLMAdapter],
    reply: Reply,
    kind: str,
    a: Attempt,
    text: bool = True,
) -> tuple[Any, float | None]:
    """Run ``a`` on both paths; assert the same requests and outcome; the direct path's outcome and wait."""
    seen = []
    for adapter in adapters:
        server.reply = reply
        server.take()
        result, upstream = await attempt(adapter, kind, a, text)
        seen.append((result, [request(c) for c in server.take()], upstream))
    (direct, direct_requests, upstream), (baseline, baseline_requests, _) = seen
    # As indented JSON: a difference shows as a line diff.
    assert dump(direct_requests) == dump(baseline_requests)
    assert dump(direct) == dump(baseline)
    return direct, upstream


def dump(value: Any) -> str:
    return json.dumps(value, indent=1, sort_keys=True, default=repr)


def chat(p: ProviderConfig, messages: list[dict[str, Any]] = ASK, **params: Any) -> Attempt:
    return Attempt(p, p.model, {"temperature": 0.7, **params}, messages)


# --- the cases ------------------------------------------------------------------------------------------

CHAT_SHAPES: dict[str, tuple[list[dict[str, Any]], dict[str, Any]]] = {
    "plain": (ASK, {}),
    "system+history": (HISTORY, {}),
    "sampling": (ASK, SAMPLING),
    "tools": (ASK, {"tools": TOOLS, "tool_choice": "auto"}),
    "tool round trip": (TOOL_ROUND, {"tools": TOOLS}),
    "json schema": (ASK, {"response_format": JSON_SCHEMA}),
    "json object": (ASK, {"response_format": {"type": "json_object"}}),
    "image": (IMAGE, {}),
}
PROVIDER_KWARGS = {"local": {"repeat_penalty": 1.1}, "openai": {"frequency_penalty": 0.5}, "ollama": {"num_ctx": 4096}}


@pytest.mark.parametrize("shape", list(CHAT_SHAPES))
@pytest.mark.parametrize("name", ["local", "openai", "ollama"])
async def test_chat_shapes(server: CaptureServer, adapters: Any, name: str, shape: str) -> None:
    messages, params = CHAT_SHAPES[shape]
    reply = ollama_reply() if name == "ollama" else openai_reply()
    _, upstream = await differential(server, adapters, reply, "chat", chat(provider(name, server), messages, **params))
    assert upstream is not None and upstream > 0  # served by the direct path


@pytest.mark.parametrize("name", ["local", "openai", "ollama"])
async def test_provider_kwargs(server: CaptureServer, adapters: Any, name: str) -> None:
    reply = ollama_reply() if name == "ollama" else openai_reply()
    a = chat(provider(name, server), **PROVIDER_KWARGS[name])
    _, upstream = await differential(server, adapters, reply, "chat", a)
    assert upstream is not None


@pytest.mark.parametrize("name", ["local", "ollama"])
async def test_answers_with_tool_calls_and_reasoning(server: CaptureServer, adapters: Any, name: str) -> None:
    p = provider(name, server)
    if name == "ollama":
        replies = [
            ollama_reply("", calls=[{"function": {"name": "get_weather", "arguments": {"city": "Paris"}}}]),
            ollama_reply("Sunny.", thinking="Look it up."),
            ollama_reply("<think>hmm</think>Sunny."),
        ]
    else:
        replies = [openai_reply(None, calls=[CALL]), openai_reply("Sunny.", reasoning="Look it up.")]
    for reply in replies:
        await differential(server, adapters, reply, "chat", chat(p, tools=TOOLS))


@pytest.mark.parametrize("name", ["local", "ollama"])
@pytest.mark.parametrize("variant", ["text", "tool calls", "no usage"])
async def test_streams(server: CaptureServer, adapters: Any, name: str, variant: str) -> None:
    pieces = ["Sun", "ny", "."]
    if name == "ollama":
        reply = ollama_stream(pieces, calls=variant == "tool calls")
    else:
        reply = openai_stream(pieces, usage=variant != "no usage", calls=variant == "tool calls")
    (got, state), upstream = await differential(server, adapters, reply, "stream", chat(provider(name, server)))
    assert got == pieces and upstream is not None
    assert state["usage"]["completion_tokens"] == 3 or variant == "no usage"


@pytest.mark.parametrize("name", ["local", "openai", "ollama"])
@pytest.mark.parametrize("texts", [["one text"], ["first", "second", "third"]])
async def test_embeddings(server: CaptureServer, adapters: Any, name: str, texts: list[str]) -> None:
    p = provider(name, server)
    reply = ollama_embeddings(len(texts)) if name == "ollama" else openai_embeddings(len(texts))
    result, upstream = await differential(server, adapters, reply, "embed", Attempt(p, "e", {}, texts=texts))
    assert len(result["vectors"]) == len(texts)
    assert upstream is not None


EMBEDDING_BODIES = {
    "no usage": {"object": "list", "data": [{"object": "embedding", "index": 0, "embedding": [1.0, 2.0]}]},
    "extra fields": {
        "id": "x",
        "data": [{"index": 0, "embedding": [1, -0.0, 1e-300], "extra": True}],
        "model": "served-name",
        "usage": {"prompt_tokens": 2, "total_tokens": 2, "prompt_tokens_details": None},
    },
    "too few vectors": {"data": [], "model": "e", "usage": {"prompt_tokens": 1, "total_tokens": 1}},
    "no data": {"model": "e"},
    "a list": b"[1, 2]",
    "an item without index": {"data": [{"embedding": [1.0]}]},
    "NaN": b'{"data": [{"index": 0, "embedding": [NaN, 1.0]}], "model": "e"}',
    "not JSON": b"no json",
    "cut": b'{"data": [{"index": 0, "embedding": [1.0,',
}


@pytest.mark.parametrize("body", list(EMBEDDING_BODIES))
async def test_openai_embedding_bodies(server: CaptureServer, adapters: Any, body: str) -> None:
    value = EMBEDDING_BODIES[body]
    reply = Reply(200, value, {"Content-Type": "application/json"}) if isinstance(value, bytes) else Reply.json(value)
    await differential(server, adapters, reply, "embed", embedding(provider("local", server)))


@pytest.mark.parametrize("variable", ["OPENAI_ORGANIZATION", "OPENAI_ORG_ID", "OPENAI_PROJECT_ID"])
@pytest.mark.parametrize("kind", ["chat", "stream", "embed"])
async def test_openai_organization_takes_acompletion(
    server: CaptureServer, adapters: Any, monkeypatch: pytest.MonkeyPatch, variable: str, kind: str
) -> None:
    """The openai SDK sends an organization or project from the environment: such requests stay with it."""
    monkeypatch.setenv(variable, "org-or-project-1")
    a = attempt_of(kind, provider("openai", server))
    _, upstream = await differential(server, adapters, plain_reply("openai", kind), kind, a)
    assert upstream is None
    await attempt(adapters[0], kind, a)
    header = "openai-project" if "PROJECT" in variable else "openai-organization"
    sent = None if (kind, variable) == ("embed", "OPENAI_ORGANIZATION") else "org-or-project-1"  # chats read it
    assert [c.headers.get(header) for c in server.take()] == [sent]


ERRORS = {
    "401": lambda: Reply.json({"error": {"message": "bad key", "type": "invalid_api_key"}}, 401),
    "403": lambda: Reply.json({"error": {"message": "forbidden"}}, 403),
    "404": lambda: Reply.json({"error": {"message": "no such model"}}, 404),
    "429": lambda: Reply.json({"error": {"message": "slow down"}}, 429, **{"Retry-After": "7"}),
    "500": lambda: Reply.json({"error": {"message": "boom"}}, 500),
    "503 text": lambda: Reply(503, b"upstream unavailable", {"Content-Type": "text/plain"}),
    "malformed": lambda: Reply(200, b'{"id": "x", "choices": [{"message": {"content": "trunc'),
}


def embedding(p: ProviderConfig) -> Attempt:
    return Attempt(p, "e", {}, texts=["one text"])


def plain_reply(name: str, kind: str) -> Reply:
    """A plain answer in the protocol of provider ``name`` to a call of ``kind`` (one text, one piece)."""
    if kind == "embed":
        return ollama_embeddings(1) if name == "ollama" else openai_embeddings(1)
    answer, stream = {"ollama": (ollama_reply, ollama_stream), "anthropic": (anthropic_reply, anthropic_stream)}.get(
        name, (openai_reply, openai_stream)
    )
    return stream(["Sun"]) if kind == "stream" else answer()


def attempt_of(kind: str, p: ProviderConfig) -> Attempt:
    return embedding(p) if kind == "embed" else chat(p)


CALLS = [
    ("local", "chat"),
    ("local", "stream"),
    ("local", "embed"),
    ("ollama", "chat"),
    ("ollama", "stream"),
    ("ollama", "embed"),
]


ANTHROPIC_CALLS = [("anthropic", "chat"), ("anthropic", "stream")]
OPENAI_AND_ANTHROPIC = [("openai", "chat"), ("openai", "stream"), ("openai", "embed"), *ANTHROPIC_CALLS]


@pytest.mark.parametrize("error", list(ERRORS))
@pytest.mark.parametrize(("name", "kind"), [*CALLS, *OPENAI_AND_ANTHROPIC])
async def test_errors(server: CaptureServer, adapters: Any, name: str, error: str, kind: str) -> None:
    result, _ = await differential(server, adapters, ERRORS[error](), kind, attempt_of(kind, provider(name, server)))
    assert result[0].startswith("Provider")


@pytest.mark.parametrize(("name", "kind"), [*CALLS, *ANTHROPIC_CALLS])
async def test_timeouts(server: CaptureServer, adapters: Any, name: str, kind: str) -> None:
    a = attempt_of(kind, provider(name, server, timeout=0.3))
    result, _ = await differential(server, adapters, Reply(hang=True), kind, a, text=False)
    assert result[0] == "ProviderTimeoutError"


@pytest.mark.parametrize(("name", "kind"), [*CALLS, *ANTHROPIC_CALLS])
async def test_refused_connections(server: CaptureServer, adapters: Any, dead_url: str, name: str, kind: str) -> None:
    config = {f"{name}_base_url": dead_url, f"{name}_model": "m"}
    config |= {f"{name}_api_key": "sk-test-secret"} if name == "anthropic" else {f"{name}_embed_model": "e"}
    p = GatewayConfig.defaults(**config).provider(name)
    result, _ = await differential(server, adapters, Reply(), kind, attempt_of(kind, p), text=False)
    assert result[0] == "ProviderConnectionError", result


@pytest.mark.parametrize("name", ["local", "ollama", "anthropic"])
@pytest.mark.parametrize("pieces", [[], ["Sun", "ny"]])
async def test_cut_streams(server: CaptureServer, adapters: Any, name: str, pieces: list[str]) -> None:
    streams = {"ollama": ollama_stream, "anthropic": anthropic_stream}
    reply = streams.get(name, openai_stream)(pieces, cut=True)
    await differential(server, adapters, reply, "stream", chat(provider(name, server)), text=False)
    ended = Reply(200, b"".join(reply.chunks or []), reply.headers)  # a clean end, with no finish reason
    await differential(server, adapters, ended, "stream", chat(provider(name, server)), text=False)


@pytest.mark.parametrize("name", ["local", "ollama", "anthropic"])
async def test_cut_and_malformed_bodies(server: CaptureServer, adapters: Any, name: str) -> None:
    whole = {"ollama": ollama_reply, "anthropic": anthropic_reply}.get(name, openai_reply)().body
    for reply, text in ((Reply(chunks=[whole[: len(whole) // 2]], cut=True), False), (Reply(200, b"no json"), True)):
        result, _ = await differential(server, adapters, reply, "chat", chat(provider(name, server)), text)
        assert result[0].startswith("Provider")
    bad_events = "{not json\n" if name == "ollama" else "data: {not json\n\n"
    await differential(server, adapters, Reply.events([bad_events]), "stream", chat(provider(name, server)))


class Answer(pydantic.BaseModel):
    answer: str


ROUTED = {
    "a pydantic response_format": {"response_format": Answer},
    "a LiteLLM option": {"extra_headers": {"X-Trace": "1"}},
    "reasoning_effort": {"reasoning_effort": "low"},
    "a structured provider kwarg": {"options": {"num_ctx": 4096}},
    "a timeout for the call": {"timeout": 5},
}


@pytest.mark.parametrize("shape", list(ROUTED))
async def test_shapes_not_covered_take_acompletion(server: CaptureServer, adapters: Any, shape: str) -> None:
    server.reply = openai_reply()
    result = await adapters[0].complete(chat(provider("local", server), **ROUTED[shape]))
    assert result.upstream_s is None


def anthropic_message() -> dict[str, Any]:
    content = [{"type": "text", "text": "Sunny."}]
    usage = {"input_tokens": 9, "output_tokens": 3}
    return {"id": "m", "type": "message", "role": "assistant", "model": "m", "content": content, "usage": usage}


def anthropic_reply() -> Reply:
    return Reply.json({**anthropic_message(), "stop_reason": "end_turn"})


def anthropic_stream(pieces: list[str], cut: bool = False) -> Reply:
    start = {"type": "message_start", "message": {**anthropic_message(), "content": [], "stop_reason": None}}
    events = [start, {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}]
    events += [{"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": p}} for p in pieces]
    if not cut:
        stop = {"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 3}}
        events += [{"type": "content_block_stop", "index": 0}, stop, {"type": "message_stop"}]
    return Reply.events([f"event: {e['type']}\n{sse(e)}" for e in events], cut=cut)


# Tools and JSON mode stay with acompletion, and so does a parameter Anthropic refuses (seed: the same error).
ANTHROPIC_SHAPES = {**CHAT_SHAPES, "sampling without seed": (ASK, {k: v for k, v in SAMPLING.items() if k != "seed"})}
ANTHROPIC_DIRECT = ("plain", "system+history", "sampling without seed", "image")


@pytest.mark.parametrize("shape", list(ANTHROPIC_SHAPES))
@pytest.mark.parametrize("kind", ["chat", "stream"])
async def test_anthropic(server: CaptureServer, adapters: Any, kind: str, shape: str) -> None:
    messages, params = ANTHROPIC_SHAPES[shape]
    reply = anthropic_stream(["Sun", "ny."]) if kind == "stream" else anthropic_reply()
    a, before = chat(provider("anthropic", server), messages, **params), json.dumps(messages)
    result, upstream = await differential(server, adapters, reply, kind, a)
    assert json.dumps(messages) == before  # the caller's messages (the cache key's too) are left as they were
    assert (upstream is not None) == (shape in ANTHROPIC_DIRECT)
    assert shape == "sampling" or "Provider" not in str(result)


VARIANTS = [
    {"temperature": 0.2},
    {"temperature": 0.9},
    {"temperature": 1},
    {"temperature": -0.0, "max_tokens": 3},
    {"temperature": 0.2, "stop": ["a"]},
    {"temperature": 0.2, "stop": ["b"]},
    {"stop": ["a"], "temperature": 0.2},
    {"temperature": 0.2, "tools": TOOLS},
]


@pytest.mark.parametrize("kind", ["chat", "stream"])
@pytest.mark.parametrize("name", ["local", "ollama"])
async def test_frames_made_once(server: CaptureServer, adapters: Any, name: str, kind: str) -> None:
    """What LiteLLM makes of the arguments other than the messages is made once per exact value
    (``_direct._frames``): every variant, asked twice (then from the cache) and with other messages, is sent
    as acompletion sends it, and each its own way; tools changed in place after a call make a new request."""
    from sarai_llm._litellm import _direct

    p, stream = provider(name, server), kind == "stream"
    reply = {"local": openai_stream(["a"]) if stream else openai_reply()}.get(name)
    reply = reply or (ollama_stream(["a"]) if stream else ollama_reply())
    tools = json.loads(json.dumps(TOOLS))
    bodies = set()
    for round_ in range(3):
        made = len(_direct._frames)
        for params in [*VARIANTS, {"tools": tools}]:
            for messages in (ASK, HISTORY):
                await differential(server, adapters, reply, kind, Attempt(p, p.model, params, messages))
            server.reply = reply
            await attempt(adapters[0], kind, Attempt(p, p.model, params, ASK))
            bodies.add(json.dumps(server.take()[0].body, sort_keys=True))
        if round_ == 1:
            assert len(_direct._frames) == made  # all from the cache
            tools[0]["function"]["description"] = "changed"  # in place: a new frame
    assert len(_direct._frames) == made + 1
    assert len(bodies) == len(VARIANTS) - 1 + 2  # each its own (the reordered stop: the same); tools twice


@pytest.mark.parametrize(("name", "kind"), [c for c in CALLS if c != ("ollama", "embed")])
async def test_a_pooled_connection_the_server_closed_is_sent_again(
    server: CaptureServer, adapters: Any, name: str, kind: str
) -> None:
    """A connection the server closed after its last answer, without saying so, and that the pool handed out
    before the close was seen: the request goes once more, on a new connection (Ollama's embeddings are sent by
    LiteLLM's own client, as aembedding sends them)."""
    server.reply = dataclasses.replace(plain_reply(name, kind), one_per_connection=True)
    a = attempt_of(kind, provider(name, server))
    server.take()
    for _ in range(3):
        result, upstream = await attempt(adapters[0], kind, a)
        assert upstream is not None, result
    # A stream's answer says "Connection: close" (tests/capture.py): never pooled. Else calls 2 and 3 went twice.
    assert len(server.take()) == (3 if kind == "stream" else 5)
