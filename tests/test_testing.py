"""sarai_llm.testing: the fake gateway, its installation, and the pytest plugin."""

from __future__ import annotations

import subprocess
import sys

import pytest
from pydantic import BaseModel

import sarai_llm
from sarai_llm.testing import FakeGateway, all_providers_failed, install_fake_gateway

USER = [{"role": "user", "content": "hola"}]
NO_DETAILS = {"cached_tokens": 0, "reasoning_tokens": 0}


async def test_default_reply_and_result_shape(fake_llm: FakeGateway) -> None:
    result = await sarai_llm.chat(USER)

    assert result["content"] == "fake response"
    assert set(result) >= {"content", "model", "provider", "usage", "finish_reason", "cached", "latency_ms"}
    assert result["provider"] == "fake" and result["model"] == "fake-model" and result["cached"] is False
    assert result["usage"] == {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3, **NO_DETAILS}
    assert (result["tool_calls"], result["reasoning_content"], result["parsed"]) == ([], None, None)
    assert result["finish_reason"] == "stop"


async def test_queue_is_consumed_in_order_then_default(fake_llm: FakeGateway) -> None:
    usage = {"prompt_tokens": 5, "completion_tokens": 7, "total_tokens": 12}
    fake_llm.queue("one", {"content": "two", "model": "m2", "usage": usage, "finish_reason": "length"})

    first, second, third = [await sarai_llm.chat(USER) for _ in range(3)]

    assert (first["content"], second["content"], third["content"]) == ("one", "two", "fake response")
    assert second["model"] == "m2" and second["finish_reason"] == "length"
    assert second["usage"] == {**usage, **NO_DETAILS}  # the details a provider did not report are 0
    assert all(r["cached"] is False for r in (first, second, third))  # no cache unless asked for
    assert fake_llm.pending == 0


async def test_reply_keys_are_what_a_provider_answers(fake_llm: FakeGateway) -> None:
    fake_llm.queue({"content": "x", "cached": True})
    with pytest.raises(TypeError, match="cached"):
        await sarai_llm.chat(USER)


ADD = {"function": {"name": "add", "arguments": {"a": 2, "b": 3}}}  # arguments as a dict: sent as JSON text
LOOKUP = {"id": "call_x", "type": "function", "function": {"name": "lookup", "arguments": '{"city": "Lima"}'}}
CALLS = [
    {"id": "call_1", "type": "function", "function": {"name": "add", "arguments": '{"a": 2, "b": 3}'}},
    LOOKUP,
]


async def test_scripted_tool_calls_and_reasoning(fake_llm: FakeGateway) -> None:
    usage = {"prompt_tokens": 4, "completion_tokens": 9, "reasoning_tokens": 6, "cached_tokens": 2}
    fake_llm.queue({"tool_calls": [ADD, LOOKUP], "reasoning_content": "two tools", "usage": usage})
    fake_llm.queue({"content": "5", "tool_calls": [ADD], "finish_reason": "stop"})

    called = await sarai_llm.chat(USER, tools=[{"type": "function", "function": {"name": "add"}}])

    assert called["tool_calls"] == CALLS and called["finish_reason"] == "tool_calls"
    assert (called["content"], called["reasoning_content"]) == ("", "two tools")
    assert called["usage"] == {**usage, "total_tokens": 13}
    assert fake_llm.last_call.kwargs["tools"][0]["function"]["name"] == "add"  # recorded like any argument
    scripted = await sarai_llm.chat(USER)
    assert scripted["finish_reason"] == "stop"  # a scripted reason wins
    assert scripted["tool_calls"][0]["id"] == "call_2"  # ids run on across replies, as a conversation needs
    fake_llm.queue({"tool_calls": [{"function": {}}]})
    with pytest.raises(TypeError, match=r"function\.name"):
        await sarai_llm.chat(USER)


async def test_a_stream_yields_text_only_and_keeps_the_rest_in_its_result(fake_llm: FakeGateway) -> None:
    fake_llm.queue({"content": "let me check", "tool_calls": [ADD, LOOKUP], "reasoning_content": "hmm"})

    stream = sarai_llm.stream_chat(USER)
    assert [p async for p in stream] == ["let ", "me ", "check"]  # no tool-call text

    result = stream.result  # type: ignore[attr-defined]
    assert result["content"] == "let me check" and result["tool_calls"] == CALLS
    assert result["finish_reason"] == "tool_calls" and result["reasoning_content"] == "hmm"
    assert result["usage"] == {"prompt_tokens": 1, "completion_tokens": 3, "total_tokens": 4, **NO_DETAILS}
    fake_llm.queue({"tool_calls": [ADD]})  # a stream of tool calls only: no piece at all
    only_calls = sarai_llm.stream_chat(USER)
    assert [p async for p in only_calls] == []
    assert only_calls.result["tool_calls"][0]["function"]["name"] == "add"  # type: ignore[attr-defined]


async def test_a_cache_hit_replays_tool_calls_and_reasoning() -> None:
    with install_fake_gateway(FakeGateway([{"tool_calls": [ADD], "reasoning_content": "r"}], cache=True)):
        first, hit = await sarai_llm.chat(USER), await sarai_llm.chat(USER)

    assert hit["cached"] is True and (hit["tool_calls"], hit["reasoning_content"]) == (CALLS[:1], "r")
    assert hit["usage"] == first["usage"] and hit["finish_reason"] == "tool_calls"


class Answer(BaseModel):
    answer: str


async def test_structured_answers_are_parsed_by_the_pipeline(fake_llm: FakeGateway) -> None:
    fake_llm.queue({"content": '{"answer": "x"}'}, '{"answer": "y"}', "plain")
    schema = {"type": "json_schema", "json_schema": {"name": "a", "schema": {"type": "object"}}}

    assert (await sarai_llm.chat(USER, response_format=Answer))["parsed"] == Answer(answer="x")
    assert (await sarai_llm.chat(USER, response_format=schema))["parsed"] == {"answer": "y"}
    assert (await sarai_llm.chat(USER))["parsed"] is None


async def test_the_real_cache_in_front_when_asked() -> None:
    with install_fake_gateway(FakeGateway(["first", "second"], cache=True)) as fake:
        one, again = await sarai_llm.chat(USER), await sarai_llm.chat(USER)
        other = await sarai_llm.chat([{"role": "user", "content": "other"}])

        assert (one["content"], one["cached"]) == ("first", False)
        assert (again["content"], again["cached"]) == ("first", True)
        assert other["content"] == "second"
        stats = sarai_llm.get_stats()
        assert (stats["cache"]["hits"], stats["cache"]["misses"]) == (1, 2)
        assert stats["providers"]["fake"]["requests"] == 2 and len(fake.calls_to("chat")) == 3


async def test_scripted_errors_are_raised(fake_llm: FakeGateway) -> None:
    fake_llm.fail().queue(sarai_llm.NoProvidersError("No providers initialized"), sarai_llm.ProviderTimeoutError)

    with pytest.raises(sarai_llm.AllProvidersFailedError, match="^All providers failed"):
        await sarai_llm.chat(USER)
    with pytest.raises(sarai_llm.NoProvidersError):
        await sarai_llm.chat(USER)
    # A class is instantiated; a provider's error is a failed attempt, as in production.
    with pytest.raises(
        sarai_llm.AllProvidersFailedError, match="^All providers failed: fake: ProviderTimeoutError: scripted error"
    ) as info:
        await sarai_llm.chat(USER)
    assert isinstance(info.value.errors["fake"], sarai_llm.ProviderTimeoutError)
    fake_llm.queue(sarai_llm.AllProvidersFailedError, sarai_llm.StreamInterruptedError)
    with pytest.raises(sarai_llm.AllProvidersFailedError, match="^All providers failed: fake"):
        await sarai_llm.chat(USER)
    with pytest.raises(sarai_llm.StreamInterruptedError):
        await sarai_llm.chat(USER)
    assert len(fake_llm.calls_to("chat")) == 5


async def test_responder_function_sees_the_call(fake_llm: FakeGateway) -> None:
    fake_llm.respond_with(lambda call: call.prompt.upper() if call.prompt else "")

    result = await sarai_llm.chat(USER, model="m1", provider="local", num_ctx=4096)

    assert result["content"] == "HOLA"
    assert result["model"] == "m1" and result["provider"] == "local"
    assert fake_llm.last_call.kwargs == {
        "model": "m1",
        "provider": "local",
        "temperature": 0.7,
        "max_tokens": None,
        "use_cache": True,
        "num_ctx": 4096,
    }


async def test_strict_fake_refuses_unscripted_calls() -> None:
    with install_fake_gateway(FakeGateway(["only one"], default=None)):
        assert (await sarai_llm.chat(USER))["content"] == "only one"
        with pytest.raises(AssertionError, match="no scripted reply"):
            await sarai_llm.chat(USER)


async def test_arguments_are_validated_like_the_real_gateway(fake_llm: FakeGateway) -> None:
    with pytest.raises(sarai_llm.InvalidRequestError):
        await sarai_llm.chat("hola")  # type: ignore[arg-type]
    with pytest.raises(sarai_llm.InvalidRequestError):
        await sarai_llm.chat(USER, temperature=3)
    with pytest.raises(sarai_llm.InvalidRequestError):
        sarai_llm.stream_chat([])  # raised at the call site, before iteration
    with pytest.raises(sarai_llm.InvalidRequestError):
        await sarai_llm.embed([])


async def test_stream_pieces_and_interrupted_stream(fake_llm: FakeGateway) -> None:
    cut = sarai_llm.StreamInterruptedError("fake", 2, ConnectionError("reset"))
    fake_llm.queue("one two three", {"chunks": ["a", "b"], "error": cut}, all_providers_failed())

    assert [p async for p in sarai_llm.stream_chat(USER)] == ["one ", "two ", "three"]
    received: list[str] = []
    with pytest.raises(sarai_llm.StreamInterruptedError):
        async for piece in sarai_llm.stream_chat(USER):
            received.append(piece)
    assert received == ["a", "b"]
    with pytest.raises(sarai_llm.AllProvidersFailedError):
        async for _ in sarai_llm.stream_chat(USER):
            pass
    assert [c.method for c in fake_llm.calls] == ["stream_chat"] * 3


async def test_embed_is_deterministic_and_scriptable(fake_llm: FakeGateway) -> None:
    one = await sarai_llm.embed("a")
    many = await sarai_llm.embed(["a", "b"])

    assert isinstance(one, list) and len(one) == 8 and all(isinstance(x, float) for x in one)
    assert many[0] == one and many[1] != one
    assert fake_llm.last_call.kwargs["text"] == ["a", "b"]

    fake_llm.embedding = lambda text: [float(len(text)), 1.0]
    assert await sarai_llm.embed("abc") == [3.0, 1.0]
    fake_llm.embedding = all_providers_failed("ollama")
    with pytest.raises(sarai_llm.AllProvidersFailedError):
        await sarai_llm.embed("abc")


async def test_health_stats_and_cache() -> None:
    with install_fake_gateway(FakeGateway(cache=True)) as fake_llm:
        fake_llm.health = {"ollama": True, "openai": False}

        assert await sarai_llm.health_check() == {"ollama": True, "openai": False}
        assert await sarai_llm.health_check("openai") == {"openai": False}
        detailed = await sarai_llm.health_check(detailed=True)
        assert detailed["openai"]["ok"] is False and detailed["openai"]["error"]

        await sarai_llm.chat(USER)
        await sarai_llm.embed("x")
        stats = sarai_llm.get_stats()  # the real counters
        assert stats["total_requests"] == 2 and stats["providers"]["fake"]["requests"] == 2
        assert set(stats) >= {"callers", "cost", "cache", "config"}
        assert stats["providers"]["fake"]["latency_p50_ms"] >= 0.0
        assert sarai_llm.get_gateway().cache.invalidate(USER, "fake-model") == 1  # the real cache held the chat
        await sarai_llm.chat(USER)
        sarai_llm.clear_cache()
        assert len(fake_llm.cache) == 0 and fake_llm.calls[-1].method == "clear_cache"


def test_install_restores_the_previous_gateway() -> None:
    real = sarai_llm.get_gateway()
    fake = FakeGateway()
    with install_fake_gateway(fake) as installed:
        assert installed is fake
        assert sarai_llm.get_gateway() is fake
    assert sarai_llm.get_gateway() is real

    with pytest.raises(RuntimeError), install_fake_gateway():
        raise RuntimeError("boom")
    assert sarai_llm.get_gateway() is real


async def test_reset_or_aclose_inside_the_block_close_the_fake_without_breaking_it() -> None:
    with install_fake_gateway() as fake:
        sarai_llm.reset_gateway()
        assert fake.closed
    with install_fake_gateway() as fake:
        await sarai_llm.aclose()
        assert fake.closed
        assert (await fake.chat(USER))["content"] == "fake response"


def test_importing_the_plugin_is_cheap() -> None:
    """pytest loads sarai_llm.testing in every run: it must not import LiteLLM or pydantic."""
    code = (
        "import sys, sarai_llm.testing\n"
        "top = {m.split('.')[0] for m in sys.modules}\n"
        "heavy = sorted(top & {'litellm', 'pydantic', 'pydantic_settings', 'httpx'})\n"
        "print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "[]"


def test_plugin_is_registered_by_entry_point(pytestconfig: pytest.Config) -> None:
    plugin = pytestconfig.pluginmanager.get_plugin("sarai_llm")
    assert plugin is not None and plugin.__name__ == "sarai_llm.testing"
