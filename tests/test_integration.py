"""Against a real model: llama.cpp's server with SmolLM2-135M, and the Ollama translator.

The model is tiny: these tests assert structure, not wording.
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from pydantic import BaseModel

import sarai_llm

pytestmark = pytest.mark.integration

MESSAGES = [{"role": "user", "content": "Say hello in one word."}]


def check_answer(r: dict[str, Any], provider: str) -> None:
    assert r["provider"] == provider
    assert isinstance(r["content"], str) and r["content"].strip()
    assert isinstance(r["model"], str) and r["model"]
    assert all(isinstance(r["usage"][k], int) for k in ("prompt_tokens", "completion_tokens", "total_tokens"))
    assert r["usage"]["completion_tokens"] > 0
    assert isinstance(r["latency_ms"], float)
    assert r["cached"] is False


PROVIDER_SETTINGS = {
    "local": lambda lm: {"local_base_url": lm.server_root, "local_model": lm.model},
    "openai": lambda lm: {"openai_base_url": lm.openai_base, "openai_model": lm.model},
    "anthropic": lambda lm: {"anthropic_base_url": lm.openai_base, "anthropic_model": lm.model},
    "ollama": lambda lm: {"ollama_base_url": lm.ollama_base, "ollama_model": lm.model},
}


@pytest.mark.parametrize("provider", list(PROVIDER_SETTINGS))
async def test_chat_through_each_provider(local_model: Any, provider: str) -> None:
    sarai_llm.get_gateway({"primary_provider": provider, **PROVIDER_SETTINGS[provider](local_model)})
    r = await sarai_llm.chat(MESSAGES, max_tokens=12, temperature=0.0)
    check_answer(r, provider)
    again = await sarai_llm.chat(MESSAGES, max_tokens=12, temperature=0.0)
    assert again["cached"] is True and again["content"] == r["content"]


async def test_fallback_from_a_closed_port_to_the_real_model(local_model: Any, dead_url: str) -> None:
    sarai_llm.get_gateway(
        {
            "primary_provider": "ollama",
            "ollama_base_url": dead_url,
            "fallback_providers": ["local"],
            **PROVIDER_SETTINGS["local"](local_model),
        }
    )
    r = await sarai_llm.chat(MESSAGES, max_tokens=12)
    check_answer(r, "local")
    stats = sarai_llm.get_stats()
    assert stats["total_fallbacks"] == 1
    assert stats["providers"]["ollama"] == {**stats["providers"]["ollama"], "requests": 1, "errors": 1}


async def test_all_providers_dead(dead_url: str) -> None:
    sarai_llm.get_gateway(
        {
            "primary_provider": "ollama",
            "ollama_base_url": dead_url,
            "fallback_providers": ["local"],
            "local_base_url": dead_url,
        }
    )
    started = time.monotonic()
    with pytest.raises(sarai_llm.AllProvidersFailedError, match="^All providers failed: ollama: .*; local: "):
        await sarai_llm.chat(MESSAGES)
    assert time.monotonic() - started < 10


@pytest.mark.parametrize("provider", ["local", "openai", "anthropic", "ollama"])
async def test_stream_through_each_provider(local_model: Any, provider: str) -> None:
    sarai_llm.get_gateway({"primary_provider": provider, **PROVIDER_SETTINGS[provider](local_model)})
    pieces = [p async for p in sarai_llm.stream_chat(MESSAGES, max_tokens=12, temperature=0.0)]
    assert pieces and all(isinstance(p, str) for p in pieces)
    assert "".join(pieces).strip()
    replay = [p async for p in sarai_llm.stream_chat(MESSAGES, max_tokens=12, temperature=0.0)]
    assert replay == pieces
    stats = sarai_llm.get_stats()
    assert stats["providers"][provider]["requests"] == 1
    assert stats["cache"]["hits"] == 1


async def test_stream_fails_over_to_the_real_model(local_model: Any, dead_url: str) -> None:
    sarai_llm.get_gateway(
        {
            "primary_provider": "ollama",
            "ollama_base_url": dead_url,
            "fallback_providers": ["local"],
            **PROVIDER_SETTINGS["local"](local_model),
        }
    )
    pieces = [p async for p in sarai_llm.stream_chat(MESSAGES, max_tokens=8)]
    assert "".join(pieces).strip()
    assert sarai_llm.get_stats()["total_fallbacks"] == 1


@pytest.mark.parametrize("provider", ["local", "ollama"])
async def test_embeddings_of_the_real_model(local_model: Any, provider: str) -> None:
    settings = PROVIDER_SETTINGS[provider](local_model)
    settings[f"{provider}_embed_model"] = local_model.model
    sarai_llm.get_gateway({"primary_provider": provider, **settings})
    vector = await sarai_llm.embed("hola")
    assert isinstance(vector, list) and len(vector) == 576 and all(isinstance(x, float) for x in vector)
    a, b, a2 = await sarai_llm.embed(["a", "b", "a"])
    assert a == a2 and a != b and len(b) == 576


async def test_health_check_live_and_dead(local_model: Any, dead_url: str) -> None:
    sarai_llm.get_gateway(
        {
            "primary_provider": "local",
            **PROVIDER_SETTINGS["local"](local_model),
            "fallback_providers": ["ollama"],
            "ollama_base_url": dead_url,
            "health_timeout": 2,
        }
    )
    started = time.monotonic()
    assert await sarai_llm.health_check() == {"local": True, "ollama": False}
    assert time.monotonic() - started < 3
    detailed = await sarai_llm.health_check(detailed=True)
    assert detailed["ollama"]["error"] and detailed["local"]["error"] is None


async def test_json_schema_answer_of_the_real_model(local_model: Any) -> None:
    # llama-server turns the schema into a grammar: even a 135M model answers with matching JSON.
    sarai_llm.get_gateway({"primary_provider": "local", **PROVIDER_SETTINGS["local"](local_model)})
    schema = {"type": "object", "properties": {"answer": {"type": "string"}}, "required": ["answer"]}
    response_format = {"type": "json_schema", "json_schema": {"name": "answer", "schema": schema, "strict": True}}
    r = await sarai_llm.chat(MESSAGES, max_tokens=40, temperature=0.0, response_format=response_format)
    check_answer(r, "local")
    value = json.loads(r["content"])
    assert isinstance(value, dict) and isinstance(value["answer"], str)
    assert r["parsed"] == value  # the pipeline's own parse of the same text
    again = await sarai_llm.chat(MESSAGES, max_tokens=40, temperature=0.0, response_format=response_format)
    assert again["cached"] is True and again["parsed"] == value


async def test_a_pydantic_class_as_response_format_on_the_real_model(local_model: Any) -> None:
    class Greeting(BaseModel):
        answer: str

    sarai_llm.get_gateway({"primary_provider": "local", **PROVIDER_SETTINGS["local"](local_model)})
    r = await sarai_llm.chat(MESSAGES, max_tokens=40, temperature=0.0, response_format=Greeting)
    assert isinstance(r["parsed"], Greeting) and isinstance(r["parsed"].answer, str)
    again = await sarai_llm.chat(MESSAGES, max_tokens=40, temperature=0.0, response_format=Greeting)
    assert again["cached"] is True and again["parsed"] == r["parsed"] and again["parsed"] is not r["parsed"]
