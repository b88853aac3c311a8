"""Providers defined in configuration (YAML `providers:`, the environment alone, `${VAR}`) and deployments:
several servers of one provider sharing its calls, each with its own breaker and `max_concurrent` slots."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import Any

import pytest

import sarai_llm
from sarai_llm import AllProvidersFailedError, ConfigError, ProviderTimeoutError
from sarai_llm.config import GatewayConfig

MESSAGES = [{"role": "user", "content": "hi"}]
KEY = "sk-custom-DISTINCTIVE-7c1e93"


def write_yaml(text: str) -> Path:
    path = Path("config.yaml")
    path.write_text(text)
    return path.resolve()


async def chat(text: str = "hi", **kwargs: Any) -> dict[str, Any]:
    return dict(await sarai_llm.chat([{"role": "user", "content": text}], use_cache=False, **kwargs))


# --- defining providers ---------------------------------------------------------------------------


async def test_a_yaml_provider_of_any_kind_answers(upstream: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VLLM_KEY", KEY)
    write_yaml(f"""
llm_gateway:
  primary_provider: vllm_big
  providers:
    vllm_big:
      model: "openai/stub"
      base_url: "{upstream.base_url}"
      api_key: "${{VLLM_KEY}}"
      timeout: 20
""")
    result = await chat()
    assert (result["content"], result["provider"], result["model"]) == ("pong", "vllm_big", "stub")
    config = sarai_llm.get_gateway().config
    provider = config.provider("vllm_big")
    assert (provider.timeout, provider.spec.chat_prefix, provider.configured) == (20.0, "openai", True)
    assert config.explain()["vllm_big_api_key"].endswith("config.yaml")
    for shown in (repr(config), repr(provider), str(config.public_dict()), str(sarai_llm.get_stats())):
        assert KEY not in shown
    assert provider.api_key is not None and provider.api_key.get_secret_value() == KEY
    assert sarai_llm.get_stats()["providers"]["vllm_big"]["requests"] == 1


async def test_a_provider_defined_by_the_environment_alone(upstream: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLM_GATEWAY_FALLBACK_PROVIDERS", "mine_2")
    monkeypatch.setenv("LLM_GATEWAY_MINE_2_MODEL", "openai/stub")
    monkeypatch.setenv("LLM_GATEWAY_MINE_2_BASE_URL", upstream.base_url)
    monkeypatch.setenv("LLM_GATEWAY_STRAY_TIMEOUT", "3")  # no model, not in the chain: defines nothing
    monkeypatch.setenv("LLM_GATEWAY_DEFAULT_MODEL", "llama3")  # not in the chain: not read (nor refused)
    result = await chat(provider="mine_2")  # provider= takes any configured name
    assert (result["provider"], result["content"]) == ("mine_2", "pong")
    config = sarai_llm.get_gateway().config
    assert list(config.custom_providers) == ["mine_2"]
    assert config.explain()["mine_2_model"] == "environment"
    assert config.mine_2_base_url == upstream.base_url


def test_precedence_argument_environment_yaml(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GROQ_KEY", KEY)
    path = write_yaml("""
llm_gateway:
  providers:
    groq: {model: "groq/llama-3.1-8b-instant", api_key: "${GROQ_KEY}", timeout: 60}
""")
    monkeypatch.setenv("LLM_GATEWAY_GROQ_TIMEOUT", "30")
    config = GatewayConfig.load(groq_model="groq/llama-3.3-70b-versatile")
    groq = config.provider("groq")
    assert (groq.model, groq.timeout, groq.api_key.get_secret_value()) == ("llama-3.3-70b-versatile", 30.0, KEY)
    assert {k: v for k, v in config.explain().items() if k.startswith("groq_")} == {
        "groq_model": "argument", "groq_timeout": "environment", "groq_api_key": str(path),
    } | {k: "default" for k in config.explain() if k.startswith("groq_") and k not in (
        "groq_model", "groq_timeout", "groq_api_key")}  # fmt: skip


@pytest.mark.parametrize(
    ("yaml_text", "expected"),
    [
        ("providers: {groq: {model: 'groq/x', api_key: '${NOT_SET_ANYWHERE}'}}",
         "llm_gateway.providers.groq.api_key: environment variable NOT_SET_ANYWHERE is not set"),
        ("providers: {groq: {model: 'grok/x'}}",
         "llm_gateway.providers.groq.model: 'grok' is not a LiteLLM provider (did you mean 'groq'?)"),
        ("providers: {groq: {model: 'llama3'}}",
         "llm_gateway.providers.groq.model: expected a LiteLLM model string like groq/llama-3.1-8b-instant"),
        ("providers: {groq: {model: 'groq/x', modle: 'y'}}",
         "llm_gateway.providers.groq.modle: unknown key (did you mean 'model'?)"),
        ("providers: {Big-Box: {model: 'openai/x'}}",
         "llm_gateway.providers.Big-Box: not a name for a new provider (lowercase letters, digits, _)"),
        ("providers: {ollama: {model: 'openai/x'}}",
         "llm_gateway.providers.ollama: not a name for a new provider (a built-in provider or a setting)"),
        ("providers: {groq: {model: 'groq/x', deployments: [{url: 'http://a:1'}]}}",
         "llm_gateway.providers.groq.deployments[0].base_url: Field required"),
        ("providers: {groq: {model: 'groq/x', deployments: [{base_url: 'http://a:1'}, "
         "{base_url: 'http://b:1', wieght: 2}]}}",
         "llm_gateway.providers.groq.deployments[1].wieght: unknown key"),
        ("ollama: {deployments: [{base_url: 'http://a:1', weight: -1}]}",
         "llm_gateway.ollama.deployments[0].weight: Input should be greater than 0 (got -1)"),
    ],
)  # fmt: skip
def test_bad_custom_providers_are_named(yaml_text: str, expected: str) -> None:
    path = write_yaml("llm_gateway:\n  " + yaml_text + "\n")
    with pytest.raises(ConfigError) as info:
        GatewayConfig.load()
    assert f"{path}: {expected}" in str(info.value)


def test_a_deployments_error_names_its_place_and_never_echoes_a_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLM_GATEWAY_OLLAMA_DEPLOYMENTS", '[{"base_url": "http://a:1", "api_key": 31337}]')
    with pytest.raises(ConfigError) as info:
        GatewayConfig.load()
    message = str(info.value)
    assert "LLM_GATEWAY_OLLAMA_DEPLOYMENTS (environment), at [0].api_key: Input should be a valid string" in message
    assert "31337" not in message and info.value.__cause__ is None  # pydantic's own text would quote it


def test_an_undefined_provider_in_the_chain_says_how_to_define_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLM_GATEWAY_PRIMARY_PROVIDER", "groq")
    monkeypatch.setenv("LLM_GATEWAY_GROQ_API_KEY", KEY)  # a key but no model: still undefined
    with pytest.raises(ConfigError) as info:
        GatewayConfig.load()
    message = str(info.value)
    assert "LLM_GATEWAY_PRIMARY_PROVIDER (environment): unknown provider 'groq'" in message
    assert "set LLM_GATEWAY_GROQ_MODEL or llm_gateway.providers.groq.model" in message
    assert KEY not in message


def test_prefixes_are_litellms() -> None:
    """The list `config.yaml` is checked against without importing LiteLLM is the locked LiteLLM's own."""
    from sarai_llm._providers import litellm_prefixes

    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    import litellm

    assert litellm_prefixes() == {getattr(p, "value", p) for p in litellm.provider_list}


async def test_health_of_a_provider_without_a_url_to_probe(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLM_GATEWAY_PRIMARY_PROVIDER", "groq")
    monkeypatch.setenv("LLM_GATEWAY_GROQ_MODEL", "groq/llama-3.1-8b-instant")
    result = (await sarai_llm.health_check(detailed=True))["groq"]
    assert result["ok"] is None and result["error"].startswith("not checked: no base URL to probe")


@pytest.mark.integration
async def test_a_custom_provider_on_the_real_local_model(local_model: Any) -> None:
    model, base_url = f"openai/{local_model.model}", local_model.openai_base
    sarai_llm.get_gateway({"primary_provider": "smol", "smol_model": model, "smol_base_url": base_url})
    result = await chat("Say hi", max_tokens=8, temperature=0)
    assert result["provider"] == "smol" and result["content"].strip()
    assert result["usage"]["completion_tokens"] > 0


# --- deployments ----------------------------------------------------------------------------------


@pytest.fixture
def second_upstream() -> Any:
    from upstream import Upstream

    up = Upstream()
    yield up
    up.stop()


async def test_two_deployments_share_the_calls(upstream: Any, second_upstream: Any) -> None:
    sarai_llm.get_gateway({"local_model": "stub", "primary_provider": "local",
                           "local_deployments": [upstream.base_url, second_upstream.base_url]})  # fmt: skip
    await asyncio.gather(*(chat(f"q{i}") for i in range(6)))  # at once: least busy first
    for i in range(6):  # one after another: in turn
        await chat(f"r{i}")
    counts = upstream.count("/chat/completions"), second_upstream.count("/chat/completions")
    assert counts == (6, 6)
    servers = sarai_llm.get_stats()["providers"]["local"]["deployments"]
    assert {url: row["requests"] for url, row in servers.items()} == {upstream.base_url: 6, second_upstream.base_url: 6}
    assert all(row["in_flight"] == 0 and row["errors"] == 0 for row in servers.values())


async def test_weights_are_respected(upstream: Any, second_upstream: Any) -> None:
    deployments = [{"base_url": upstream.base_url, "weight": 3}, {"base_url": second_upstream.base_url}]
    sarai_llm.get_gateway({"local_model": "stub", "primary_provider": "local", "local_deployments": deployments})
    for i in range(8):
        await chat(f"w{i}")
    assert (upstream.count("/chat/completions"), second_upstream.count("/chat/completions")) == (6, 2)


async def test_a_down_deployment_hands_over_to_the_other_not_to_the_next_provider(
    upstream: Any, second_upstream: Any, dead_url: str
) -> None:
    sarai_llm.get_gateway({
        "primary_provider": "local", "fallback_providers": ["backup"], "local_model": "stub",
        "local_deployments": [dead_url, upstream.base_url],
        "backup_model": "openai/stub", "backup_base_url": second_upstream.base_url,
        "allowed_fails": 2, "cooldown_time": 60,
    })  # fmt: skip
    results = [await chat(f"d{i}") for i in range(6)]
    assert {r["provider"] for r in results} == {"local"}
    assert second_upstream.count() == 0  # the next provider was never needed
    servers = sarai_llm.get_stats()["providers"]["local"]["deployments"]
    assert servers[dead_url]["errors"] == 2 == servers[dead_url]["requests"]  # then it cooled down on its own
    assert servers[upstream.base_url]["requests"] == 6
    assert not sarai_llm.get_gateway().cooling("local")  # the provider is not cooling: one server still serves


async def test_max_concurrent_queues_calls_in_order(upstream: Any) -> None:
    upstream.behaviour.delay = 0.2
    sarai_llm.get_gateway({"primary_provider": "local", "local_base_url": upstream.base_url,
                           "local_model": "stub", "local_max_concurrent": 1})  # fmt: skip
    started = time.monotonic()
    await asyncio.gather(*(chat(f"c{i}") for i in range(3)))
    assert time.monotonic() - started >= 0.55  # one at a time
    row = sarai_llm.get_stats()["providers"]["local"]["deployments"][upstream.base_url]
    assert row["requests"] == 3 and row["in_flight"] == 0
    assert row["queue_wait_s"] >= 0.55  # 0.2 + 0.4 waited by the second and third
    text = sarai_llm.get_gateway().metrics.text()
    assert f'llm_gateway_queue_wait_seconds_total{{deployment="{upstream.base_url}",provider="local"}}' in text


async def test_a_waiting_call_takes_the_first_server_to_free_a_slot(upstream: Any, second_upstream: Any) -> None:
    upstream.behaviour.delay, second_upstream.behaviour.delay = 1.0, 0.05  # a slow server and a quick one
    sarai_llm.get_gateway({"primary_provider": "local", "local_model": "stub", "local_max_concurrent": 1,
                           "local_deployments": [upstream.base_url, second_upstream.base_url]})  # fmt: skip
    results = await asyncio.gather(*(chat(f"w{i}") for i in range(4)))
    assert [r["content"] for r in results] == ["pong"] * 4
    # One call on the slow server; the two that waited went to the quick one as it freed, not behind the slow one.
    assert (upstream.count("/chat/completions"), second_upstream.count("/chat/completions")) == (1, 3)
    rows = sarai_llm.get_stats()["providers"]["local"]["deployments"]
    assert rows[second_upstream.base_url]["queue_wait_s"] > 0 and rows[upstream.base_url]["queue_wait_s"] < 0.01
    assert all(row["in_flight"] == 0 for row in rows.values())


async def test_a_wait_for_a_slot_ends_at_the_deadline(upstream: Any) -> None:
    upstream.behaviour.delay = 0.5
    sarai_llm.get_gateway({"primary_provider": "local", "local_base_url": upstream.base_url,
                           "local_model": "stub", "local_max_concurrent": 1})  # fmt: skip
    first = asyncio.ensure_future(chat("slow"))
    await asyncio.sleep(0.05)
    with pytest.raises(AllProvidersFailedError) as info:
        await chat("waits", deadline=0.2)
    assert isinstance(info.value.errors["local"], ProviderTimeoutError)
    assert (await first)["content"] == "pong"
    assert upstream.count("/chat/completions") == 1  # the one that waited never went out
    row = sarai_llm.get_stats()["providers"]["local"]["deployments"][upstream.base_url]
    assert row["in_flight"] == 0 and row["requests"] == 1


async def test_a_stream_holds_its_slot_until_it_ends(upstream: Any) -> None:
    upstream.behaviour.chunk_delay = 0.1
    sarai_llm.get_gateway({"primary_provider": "local", "local_base_url": upstream.base_url,
                           "local_model": "stub", "local_max_concurrent": 1})  # fmt: skip
    stream = sarai_llm.stream_chat(MESSAGES, use_cache=False)
    first = await anext(aiter(stream))
    row = sarai_llm.get_stats()["providers"]["local"]["deployments"][upstream.base_url]
    assert first and row["in_flight"] == 1
    assert "".join([first, *[p async for p in stream]]) == "pong!"
    assert sarai_llm.get_stats()["providers"]["local"]["deployments"][upstream.base_url]["in_flight"] == 0


async def test_streams_and_embeddings_of_a_custom_provider_over_deployments(
    upstream: Any, second_upstream: Any
) -> None:
    sarai_llm.get_gateway({"primary_provider": "pair", "pair_model": "openai/stub", "pair_embed_model": "openai/emb",
                           "pair_deployments": [upstream.base_url, second_upstream.base_url]})  # fmt: skip
    pieces = [p async for p in sarai_llm.stream_chat(MESSAGES, use_cache=False)]
    again = [p async for p in sarai_llm.stream_chat([{"role": "user", "content": "again"}], use_cache=False)]
    assert "".join(pieces) == "".join(again) == "pong!"
    vectors = [await sarai_llm.embed(f"text {i}") for i in range(4)]
    assert all(len(v) == 4 for v in vectors)
    assert upstream.count("/chat/completions") == second_upstream.count("/chat/completions") == 1
    assert upstream.count("/embeddings") == second_upstream.count("/embeddings") == 2
    assert [body["model"] for path, body in upstream.requests if path.endswith("/embeddings")] == ["emb", "emb"]
    cached = await sarai_llm.embed("text 0")  # a hit, whichever server answered it
    assert cached == vectors[0] and upstream.count("/embeddings") + second_upstream.count("/embeddings") == 4


def test_the_cli_shows_an_unprobed_provider_as_unchecked(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], upstream: Any
) -> None:
    from sarai_llm import cli

    monkeypatch.setenv("LLM_GATEWAY_PRIMARY_PROVIDER", "groq")
    monkeypatch.setenv("LLM_GATEWAY_GROQ_MODEL", "groq/llama-3.1-8b-instant")
    monkeypatch.setenv("LLM_GATEWAY_FALLBACK_PROVIDERS", "local")
    monkeypatch.setenv("LLM_GATEWAY_LOCAL_BASE_URL", upstream.base_url)
    assert cli.main(["health"]) == 0  # the probed one is up; the unprobed one does not fail the check
    rows = {line.split()[0]: line.split()[2] for line in capsys.readouterr().out.splitlines()[1:]}
    assert rows == {"groq": "unchecked", "local": "up"}
