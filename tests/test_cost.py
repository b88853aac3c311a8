"""Cost (issue 9): what each call spent upstream, what the cache saved, per provider, model and caller.

Prices come from the configuration (``<provider>_input_cost_per_token`` /
``_output_cost_per_token``) or LiteLLM's bundled price list; the upstream is
the loopback stub (tests/upstream.py), which reports 5 prompt and 2
completion tokens per chat answer.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

import sarai_llm
from sarai_llm.config import GatewayConfig

IN, OUT = 0.000001, 0.000002  # US dollars per prompt / completion token
CHAT_COST = 5 * IN + 2 * OUT  # the stub's usage at those prices


def msg(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


def priced_local(up: Any, **extra: Any) -> sarai_llm.Gateway:
    settings: dict[str, Any] = {
        "primary_provider": "local",
        "local_base_url": up.base_url,
        "local_model": "stub",
        "local_input_cost_per_token": IN,
        "local_output_cost_per_token": OUT,
    }
    settings.update(extra)
    return sarai_llm.get_gateway(settings)


def samples() -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(sarai_llm.metrics_text())
        for s in family.samples
    }


# --- settings -----------------------------------------------------------------------------------


def test_prices_come_from_env_and_yaml_and_must_be_non_negative(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config_file = tmp_path / "config.yaml"
    config_file.write_text(
        "llm_gateway:\n  local: {input_cost_per_token: 0.000001}\n  openai: {output_cost_per_token: 0.00002}\n"
    )
    monkeypatch.setenv("LLM_GATEWAY_OLLAMA_OUTPUT_COST_PER_TOKEN", "3e-7")
    config = GatewayConfig.load(config=config_file)
    local, openai, ollama = config.provider("local"), config.provider("openai"), config.provider("ollama")
    assert (local.input_cost_per_token, local.output_cost_per_token, local.priced) == (IN, None, True)
    assert (openai.input_cost_per_token, openai.output_cost_per_token) == (None, 0.00002)
    assert (ollama.output_cost_per_token, ollama.priced) == (3e-7, True)
    assert config.provider("anthropic").priced is False
    assert config.explain()["local_input_cost_per_token"] == str(config_file.resolve())
    for bad in ("-1", "nan", "cheap"):
        monkeypatch.setenv("LLM_GATEWAY_LOCAL_INPUT_COST_PER_TOKEN", bad)
        with pytest.raises(sarai_llm.ConfigError, match="LLM_GATEWAY_LOCAL_INPUT_COST_PER_TOKEN"):
            GatewayConfig.load()


# --- chat ---------------------------------------------------------------------------------------


async def test_spend_then_savings_equal_the_replayed_answers_cost(upstream: Any) -> None:
    priced_local(upstream)
    first = await sarai_llm.chat(msg("one"), caller="rag")
    assert first["cached"] is False
    assert first["cost_usd"] == pytest.approx(CHAT_COST)
    paid = first["cost_usd"]

    hits = [await sarai_llm.chat(msg("one"), caller="rag") for _ in range(3)]
    assert all(h["cached"] and h["cost_usd"] == 0.0 for h in hits)  # a hit pays nothing upstream
    other = await sarai_llm.chat(msg("two"), caller="chatbot")
    unattributed = await sarai_llm.chat(msg("three"))

    saved = 0.0
    for _ in hits:
        saved += paid  # what each hit replayed, exactly
    spent = paid + other["cost_usd"] + unattributed["cost_usd"]
    cost = sarai_llm.get_stats()["cost"]
    assert cost["saved_usd"] == saved
    assert cost["spent_usd"] == pytest.approx(spent)
    assert cost["spent_usd"] == pytest.approx(3 * CHAT_COST)
    assert cost["callers"] == {
        "rag": {"spent_usd": paid, "saved_usd": saved},
        "chatbot": {"spent_usd": other["cost_usd"], "saved_usd": 0.0},
    }
    local = cost["providers"]["local"]
    assert local["saved_usd"] == saved and local["spent_usd"] == pytest.approx(spent)
    assert set(local["models"]) == {"stub"}
    assert local["models"]["stub"]["saved_usd"] == saved

    # Prometheus: the same numbers, per provider, model and caller ("" for no caller).
    got = samples()
    labels = {("provider", "local"), ("model", "stub")}
    assert got[("llm_gateway_cost_usd_total", frozenset({*labels, ("caller", "rag")}))] == paid
    assert got[("llm_gateway_saved_usd_total", frozenset({*labels, ("caller", "rag")}))] == saved
    assert got[("llm_gateway_cost_usd_total", frozenset({*labels, ("caller", "")}))] == unattributed["cost_usd"]
    assert got[("llm_gateway_saved_usd_total", frozenset({*labels, ("caller", "chatbot")}))] == 0.0
    assert upstream.count("/chat/completions") == 3


async def test_the_cost_is_stored_with_the_cached_answer(upstream: Any, tmp_path: Path) -> None:
    priced_local(upstream, cache_dir=str(tmp_path / "shared"))
    paid = (await sarai_llm.chat(msg("kept")))["cost_usd"]
    # A new gateway (another process, or after a reset) finds the entry on disk and its cost.
    sarai_llm.reset_gateway()
    priced_local(upstream, cache_dir=str(tmp_path / "shared"), local_input_cost_per_token=1.0)
    hit = await sarai_llm.chat(msg("kept"))
    assert hit["cached"] is True and hit["cost_usd"] == 0.0
    assert sarai_llm.get_stats()["cost"]["saved_usd"] == paid  # what was paid then, not today's price
    assert upstream.count("/chat/completions") == 1


async def test_coalesced_followers_save_the_leaders_cost(upstream: Any) -> None:
    priced_local(upstream)
    upstream.behaviour.delay = 0.3
    results = await asyncio.gather(*(sarai_llm.chat(msg("same")) for _ in range(3)))
    leaders = [r for r in results if not r["coalesced"]]
    assert len(leaders) == 1 and upstream.count("/chat/completions") == 1
    cost = sarai_llm.get_stats()["cost"]
    assert cost["spent_usd"] == leaders[0]["cost_usd"] == pytest.approx(CHAT_COST)
    assert cost["saved_usd"] == leaders[0]["cost_usd"] * 2
    assert all(r["cost_usd"] == 0.0 for r in results if r["coalesced"])


async def test_unpriced_local_models_cost_nothing(upstream: Any) -> None:
    sarai_llm.get_gateway({"primary_provider": "local", "local_base_url": upstream.base_url, "local_model": "stub"})
    first = await sarai_llm.chat(msg("free"))
    again = await sarai_llm.chat(msg("free"))
    assert (first["cost_usd"], again["cost_usd"]) == (0.0, 0.0)
    cost = sarai_llm.get_stats()["cost"]
    assert (cost["spent_usd"], cost["saved_usd"]) == (0.0, 0.0)
    assert cost["providers"]["local"]["models"]["stub"] == {"spent_usd": 0.0, "saved_usd": 0.0}


async def test_litellm_price_list_prices_known_models_offline(upstream: Any) -> None:
    # An OpenAI-compatible server answering as gpt-4o-mini: priced from LiteLLM's bundled list.
    sarai_llm.get_gateway(
        {
            "primary_provider": "openai",
            "openai_base_url": upstream.base_url,
            "openai_model": "gpt-4o-mini",
        }
    )
    known = await sarai_llm.chat(msg("priced"))
    import litellm

    prompt, completion = litellm.cost_per_token(model="openai/gpt-4o-mini", prompt_tokens=5, completion_tokens=2)
    assert known["cost_usd"] == pytest.approx(prompt + completion)
    assert known["cost_usd"] > 0
    # A model the price list does not know costs 0.0: never an exception.
    unknown = await sarai_llm.chat(msg("unknown"), model="not-a-real-model-xyz")
    assert unknown["cost_usd"] == 0.0
    assert os.environ.get("LITELLM_LOCAL_MODEL_COST_MAP") == "True"  # the list is never fetched


async def test_configured_prices_win_over_litellms(upstream: Any) -> None:
    sarai_llm.get_gateway(
        {
            "primary_provider": "openai",
            "openai_base_url": upstream.base_url,
            "openai_model": "gpt-4o-mini",
            "openai_output_cost_per_token": OUT,  # the input price is then 0
        }
    )
    result = await sarai_llm.chat(msg("negotiated"))
    assert result["cost_usd"] == 2 * OUT


def test_pricing_never_asks_an_ollama_server(upstream: Any) -> None:
    # LiteLLM's own Ollama pricing asks the server for model info; ours never calls LiteLLM for ollama.
    from sarai_llm._litellm import cost_usd

    config = GatewayConfig.load(ollama_base_url=upstream.base_url, _env_file=None)
    usage = {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}
    assert cost_usd(config.provider("ollama"), "llama3.2:latest", usage) == 0.0
    assert cost_usd(config.provider("local"), "x", usage, embedding=True) == 0.0
    assert cost_usd(config.provider("openai"), "gpt-4o-mini", None) == 0.0
    assert upstream.requests == []


# --- streams and embeddings ---------------------------------------------------------------------


async def test_streams_cost_and_save_like_chats(upstream: Any) -> None:
    priced_local(upstream)
    pieces = [p async for p in sarai_llm.stream_chat(msg("flow"), caller="bot")]
    assert "".join(pieces) == "pong!"
    stream_cost = 5 * IN + 3 * OUT  # the stub streams 3 chunks and reports them as completion tokens
    cost = sarai_llm.get_stats()["cost"]
    assert cost["spent_usd"] == pytest.approx(stream_cost)
    replay = [p async for p in sarai_llm.stream_chat(msg("flow"), caller="bot")]
    assert replay == pieces and upstream.count("/chat/completions") == 1
    cost = sarai_llm.get_stats()["cost"]
    assert cost["saved_usd"] == cost["spent_usd"]
    assert cost["callers"]["bot"]["saved_usd"] == cost["spent_usd"]


async def test_embeddings_cost_and_per_text_savings(upstream: Any) -> None:
    priced_local(upstream)
    await sarai_llm.embed(["a", "b"], caller="rag")  # the stub reports 1 prompt token per text
    cost = sarai_llm.get_stats()["cost"]
    assert cost["spent_usd"] == pytest.approx(2 * IN)
    share = cost["spent_usd"] / 2
    await sarai_llm.embed("a", caller="rag")  # a hit saves its text's share
    assert sarai_llm.get_stats()["cost"]["saved_usd"] == share
    await sarai_llm.embed(["b", "c", "c"], caller="rag")  # b: a hit; c: sent once, repeated once
    cost = sarai_llm.get_stats()["cost"]
    assert cost["spent_usd"] == pytest.approx(3 * IN)
    assert cost["saved_usd"] == pytest.approx(share * 2 + IN)
    assert cost["callers"]["rag"]["spent_usd"] == cost["spent_usd"]
    assert upstream.count("/embeddings") == 2


async def test_a_failed_call_costs_nothing(upstream: Any) -> None:
    priced_local(upstream)
    upstream.behaviour.status = 500
    with pytest.raises(sarai_llm.AllProvidersFailedError):
        await sarai_llm.chat(msg("broken"), caller="rag")
    cost = sarai_llm.get_stats()["cost"]
    assert (cost["spent_usd"], cost["saved_usd"], cost["callers"]) == (0.0, 0.0, {})
