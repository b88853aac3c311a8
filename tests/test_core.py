"""The public API, the error tree, input validation and the mapping to LiteLLM.

Upstreams here are the loopback stub (tests/upstream.py) and closed ports;
the real model is exercised in test_integration.py.
"""

from __future__ import annotations

import subprocess
import sys
import time
from typing import Any

import pytest

import sarai_llm
from sarai_llm import (
    AllProvidersFailedError,
    InvalidRequestError,
    NoProvidersError,
    ProviderConnectionError,
    SaraiLLMError,
)
from sarai_llm.config import GatewayConfig

MESSAGES = [{"role": "user", "content": "hi"}]
KEY = "sk-test-DISTINCTIVE-4f9a2c71e0b3"


def use(**settings: Any) -> sarai_llm.Gateway:
    return sarai_llm.get_gateway(settings)


# --- the public surface --------------------------------------------------------


def test_public_names_are_pinned() -> None:
    assert sorted(sarai_llm.__all__) == sorted(PUBLIC_NAMES)
    for name in sarai_llm.__all__:
        assert getattr(sarai_llm, name) is not None


PUBLIC_NAMES = [
    "AllProvidersFailedError",
    "CacheError",
    "ConfigError",
    "Gateway",
    "GatewayConfig",
    "InvalidRequestError",
    "NoProvidersError",
    "ProviderAuthError",
    "ProviderConnectionError",
    "ProviderError",
    "ProviderRateLimitError",
    "ProviderResponseError",
    "ProviderTimeoutError",
    "SaraiLLMError",
    "StreamInterruptedError",
    "UnsafeDependencyError",
    "__version__",
    "aclose",
    "chat",
    "chat_sync",
    "clear_cache",
    "embed",
    "embed_sync",
    "get_gateway",
    "get_stats",
    "health_check",
    "health_check_sync",
    "metrics_text",
    "reset_gateway",
    "start_metrics_server",
    "stream_chat",
    "stream_chat_sync",
]


def test_import_does_not_import_litellm_or_open_connections() -> None:
    code = (
        "import socket, sys\n"
        "def refuse(*a, **k): raise AssertionError('network use at import')\n"
        "socket.socket.connect = refuse\n"
        "socket.create_connection = refuse\n"
        "import sarai_llm\n"
        "assert 'litellm' not in sys.modules, 'litellm imported'\n"
        "assert 'pydantic' not in sys.modules, 'pydantic imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_singleton_and_reset() -> None:
    first = sarai_llm.get_gateway()
    assert sarai_llm.get_gateway() is first
    sarai_llm.reset_gateway()
    assert sarai_llm.get_gateway() is not first


def test_get_gateway_with_config_replaces_the_singleton() -> None:
    gw = use(primary_provider="local", local_model="m1")
    assert sarai_llm.get_gateway() is gw
    assert gw.config.local_model == "m1"
    config = GatewayConfig.load(primary_provider="openai", openai_api_key=KEY)
    assert sarai_llm.get_gateway(config).config is config


def test_errors_share_one_base() -> None:
    for name in sarai_llm.__all__:
        obj = getattr(sarai_llm, name)
        if isinstance(obj, type) and issubclass(obj, Exception):
            assert issubclass(obj, SaraiLLMError), name


# --- validation: before any network call ------------------------------------------

BAD_CALLS: list[tuple[dict[str, Any], str]] = [
    ({"messages": []}, "non-empty list"),
    ({"messages": "hola"}, "non-empty list"),
    ({"messages": [{"content": "x"}]}, "role"),
    ({"messages": [{"role": "wizard", "content": "x"}]}, "role"),
    ({"messages": [{"role": "user", "content": 3}]}, "content"),
    ({"messages": ["hola"]}, "dict"),
    ({"temperature": "hot"}, "temperature"),
    ({"temperature": 7}, "between 0 and 2"),
    ({"max_tokens": -1}, "max_tokens"),
    ({"max_tokens": 2.5}, "max_tokens"),
    ({"provider": "cohere"}, "provider"),
    ({"model": ""}, "model"),
    ({"use_cache": "yes"}, "use_cache"),
    ({"stream": True}, "set by sarai_llm"),
]


@pytest.mark.parametrize(("override", "needle"), BAD_CALLS)
async def test_bad_arguments_fail_before_the_network(upstream: Any, override: dict[str, Any], needle: str) -> None:
    use(primary_provider="local", local_base_url=upstream.base_url)
    call: dict[str, Any] = {"messages": MESSAGES, **override}
    with pytest.raises(InvalidRequestError, match=needle):
        await sarai_llm.chat(**call)
    with pytest.raises(InvalidRequestError, match=needle):
        sarai_llm.stream_chat(**call)  # raises at the call site, not on iteration
    assert upstream.requests == []


async def test_bad_embed_arguments(upstream: Any) -> None:
    use(primary_provider="local", local_base_url=upstream.base_url)
    for bad in ([], [1, 2], 3, None, ["ok", None]):
        with pytest.raises(InvalidRequestError):
            await sarai_llm.embed(bad)  # type: ignore[arg-type]
    assert upstream.requests == []


# --- providers and chains -------------------------------------------------------------


async def test_chat_returns_the_contract_dict(upstream: Any) -> None:
    use(primary_provider="local", local_base_url=upstream.base_url, local_model="stub")
    r = await sarai_llm.chat(MESSAGES, temperature=0.2, max_tokens=5, use_cache=False)
    assert r["content"] == "pong"
    assert r["provider"] == "local"
    assert r["model"] == "stub"
    assert r["usage"] == {
        "prompt_tokens": 5,
        "completion_tokens": 2,
        "total_tokens": 7,
        "cached_tokens": 0,
        "reasoning_tokens": 0,
    }
    assert r["finish_reason"] == "stop"
    assert r["cached"] is False
    assert isinstance(r["latency_ms"], float)
    body = upstream.requests[-1][1]
    assert body["temperature"] == 0.2 and body["max_tokens"] == 5 and body["model"] == "stub"


async def test_provider_kwargs_pass_through_untouched(upstream: Any) -> None:
    use(primary_provider="local", local_base_url=upstream.base_url)
    await sarai_llm.chat(MESSAGES, use_cache=False, frequency_penalty=0.5, seed=7)
    body = upstream.requests[-1][1]
    assert body["frequency_penalty"] == 0.5 and body["seed"] == 7


async def test_model_overrides_only_the_first_attempt(upstream: Any, dead_url: str) -> None:
    use(
        primary_provider="ollama",
        ollama_base_url=dead_url,
        fallback_providers=["local"],
        local_base_url=upstream.base_url,
        local_model="fallback-model",
    )
    r = await sarai_llm.chat(MESSAGES, model="custom", use_cache=False)
    assert r["provider"] == "local"
    assert upstream.requests[-1][1]["model"] == "fallback-model"
    await sarai_llm.chat(MESSAGES, model="custom", provider="local", use_cache=False)
    assert upstream.requests[-1][1]["model"] == "custom"


async def test_fallback_from_a_closed_port(upstream: Any, dead_url: str) -> None:
    use(
        primary_provider="ollama",
        ollama_base_url=dead_url,
        fallback_providers=["local"],
        local_base_url=upstream.base_url,
    )
    r = await sarai_llm.chat(MESSAGES)
    assert r["provider"] == "local"
    stats = sarai_llm.get_stats()
    assert stats["total_fallbacks"] == 1
    assert stats["providers"]["ollama"]["errors"] == 1
    assert stats["providers"]["local"]["requests"] == 1


async def test_provider_argument_puts_that_provider_first(upstream: Any, dead_url: str) -> None:
    gw = use(
        primary_provider="ollama",
        fallback_providers=["openai", "local"],
        openai_base_url=dead_url,
        local_base_url=upstream.base_url,
    )
    assert [p.name for p in gw.chain()] == ["ollama", "openai", "local"]
    assert [p.name for p in gw.chain("local")] == ["local", "openai"]
    assert [p.name for p in gw.chain("openai")] == ["openai", "local"]


async def test_all_providers_failed_names_each_cause(dead_url: str) -> None:
    use(
        primary_provider="local",
        local_base_url=dead_url,
        fallback_providers=["openai"],
        openai_base_url=dead_url + "/v1",
        openai_api_key=KEY,
    )
    with pytest.raises(AllProvidersFailedError) as info:
        await sarai_llm.chat(MESSAGES)
    err = info.value
    assert str(err).startswith("All providers failed")
    assert "local: ProviderConnectionError" in str(err)
    assert "openai: ProviderConnectionError" in str(err)
    assert list(err.errors) == ["local", "openai"]
    assert all(isinstance(e, ProviderConnectionError) for e in err.errors.values())
    assert err.__cause__ is None or isinstance(err.__cause__, Exception)
    assert sarai_llm.get_stats()["total_errors"] == 2


@pytest.mark.parametrize("provider", ["ollama", "local", "openai"])
async def test_an_unreachable_server_is_named_with_the_next_step(dead_url: str, provider: str) -> None:
    use(primary_provider=provider, **{f"{provider}_base_url": dead_url})
    with pytest.raises(AllProvidersFailedError) as info:
        await sarai_llm.chat(MESSAGES)
    error = info.value.errors[provider]
    assert isinstance(error, ProviderConnectionError)
    assert f"cannot connect to {dead_url}" in str(error) and "is the server running?" in str(error)
    assert "sarai-llm health" in str(error)
    assert error.__cause__ is not None  # LiteLLM's own text, for whoever digs
    assert "ssl" not in str(error) and "0x" not in str(error)


HINTS = [(401, "(the key is LLM_GATEWAY_LOCAL_API_KEY)"), (404, "LLM_GATEWAY_LOCAL_MODEL sets it)")]


@pytest.mark.parametrize(("status", "hint"), HINTS)
async def test_a_rejected_key_or_an_unknown_model_names_the_setting(upstream: Any, status: int, hint: str) -> None:
    use(primary_provider="local", local_base_url=upstream.base_url, local_model="no-such-model")
    upstream.behaviour.status = status
    with pytest.raises(AllProvidersFailedError) as info:
        await sarai_llm.chat(MESSAGES)
    assert hint in str(info.value.errors["local"]) and info.value.errors["local"].status_code == status


async def test_no_providers_initialized_names_the_settings() -> None:
    use(primary_provider="openai")
    with pytest.raises(NoProvidersError) as info:
        await sarai_llm.chat(MESSAGES)
    message = str(info.value)
    assert message.startswith("No providers initialized")
    assert "LLM_GATEWAY_OPENAI_API_KEY" in message


async def test_asking_for_an_unconfigured_provider(upstream: Any) -> None:
    use(primary_provider="local", local_base_url=upstream.base_url)
    with pytest.raises(NoProvidersError, match="LLM_GATEWAY_ANTHROPIC_API_KEY"):
        await sarai_llm.chat(MESSAGES, provider="anthropic")


async def test_upstream_error_status_is_mapped(upstream: Any) -> None:
    use(primary_provider="local", local_base_url=upstream.base_url)
    upstream.behaviour.status = 401
    with pytest.raises(AllProvidersFailedError) as info:
        await sarai_llm.chat(MESSAGES)
    cause = info.value.errors["local"]
    assert isinstance(cause, sarai_llm.ProviderAuthError)
    assert cause.status_code == 401
    assert cause.__cause__ is not None  # LiteLLM's exception stays attached


async def test_library_is_silent_on_errors(capfd: pytest.CaptureFixture[str], dead_url: str) -> None:
    use(primary_provider="local", local_base_url=dead_url)
    with pytest.raises(AllProvidersFailedError):
        await sarai_llm.chat(MESSAGES)
    out, err = capfd.readouterr()
    assert out == "" and err == ""


# --- mapping to LiteLLM -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("provider", "base", "expected"),
    [
        ("local", "http://h:8080", "http://h:8080/v1"),
        ("local", "http://h:8080/", "http://h:8080/v1"),
        ("local", "http://h:8080/v1", "http://h:8080/v1"),
        ("local", "http://h:8080/proxy/v1", "http://h:8080/proxy/v1"),
        ("openai", "http://h:9000", "http://h:9000/v1"),
        ("anthropic", "http://h:8080/v1", "http://h:8080"),
        ("anthropic", "http://h:8080", "http://h:8080"),
        ("ollama", "http://h:11434/api", "http://h:11434"),
        ("ollama", "http://h:11434", "http://h:11434"),
    ],
)
def test_base_urls_are_normalised(provider: str, base: str, expected: str) -> None:
    from sarai_llm._providers import api_base

    config = GatewayConfig.load(**{f"{provider}_base_url": base})
    assert api_base(config.provider(provider)) == expected


def test_model_strings() -> None:
    from sarai_llm._providers import litellm_params

    config = GatewayConfig.load(openai_api_key=KEY, anthropic_api_key=KEY)
    assert litellm_params(config.provider("ollama"), "llama3.2:latest")["model"] == "ollama_chat/llama3.2:latest"
    assert litellm_params(config.provider("ollama"), "nomic", embedding=True)["model"] == "ollama/nomic"
    assert litellm_params(config.provider("openai"), "gpt-4o")["model"] == "openai/gpt-4o"
    assert litellm_params(config.provider("anthropic"), "claude")["model"] == "anthropic/claude"
    local = litellm_params(config.provider("local"), "m")
    assert local["model"] == "openai/m" and local["api_base"] == "http://localhost:8080/v1"
    assert local["timeout"] == 300


# --- secrets ---------------------------------------------------------------------------


async def test_api_keys_never_appear(dead_url: str) -> None:
    gw = use(
        primary_provider="openai",
        openai_api_key=KEY,
        openai_base_url=dead_url,
        fallback_providers=["anthropic"],
        anthropic_api_key=KEY + "-a",
        anthropic_base_url=dead_url,
    )
    with pytest.raises(AllProvidersFailedError) as info:
        await sarai_llm.chat(MESSAGES)
    texts = [
        str(gw),
        repr(gw),
        str(gw.config),
        repr(gw.config),
        str(sarai_llm.get_stats()),
        str(info.value),
        repr(info.value),
    ]
    cause: BaseException | None = info.value
    for err in info.value.errors.values():
        cause = err
        while cause is not None:
            texts += [str(cause), repr(cause)]
            cause = cause.__cause__
    for text in texts:
        assert KEY not in text


# --- deadlines, retries, supply chain -----------------------------------------------------


async def test_a_call_deadline_bounds_the_whole_chain(upstream: Any) -> None:
    use(
        primary_provider="local",
        local_base_url=upstream.base_url,
        fallback_providers=["openai"],
        openai_base_url=upstream.base_url,
    )
    upstream.behaviour.delay = 3
    started = time.monotonic()
    with pytest.raises(AllProvidersFailedError) as info:
        await sarai_llm.chat(MESSAGES, deadline=0.5)
    assert time.monotonic() - started < 1.5
    assert isinstance(info.value.errors["local"], sarai_llm.ProviderTimeoutError)
    assert "deadline" in str(info.value)
    assert sarai_llm.get_stats()["providers"]["local"]["errors"] == 1
    with pytest.raises(InvalidRequestError, match="deadline"):
        await sarai_llm.chat(MESSAGES, deadline=-1)


@pytest.mark.parametrize(("status", "sent"), [(401, 1), (400, 1), (500, 3)])
async def test_retries_skip_errors_a_retry_cannot_fix(upstream: Any, status: int, sent: int) -> None:
    use(primary_provider="local", local_base_url=upstream.base_url, num_retries=2)
    upstream.behaviour.status = status
    with pytest.raises(AllProvidersFailedError):
        await sarai_llm.chat(MESSAGES)
    assert upstream.count("/chat/completions") == sent
    assert sarai_llm.get_stats()["providers"]["local"]["requests"] == 1  # retries are inside one attempt


async def test_a_timeout_given_to_the_call_replaces_the_providers(upstream: Any) -> None:
    use(primary_provider="local", local_base_url=upstream.base_url, local_timeout=30)
    upstream.behaviour.delay = 2
    started = time.monotonic()
    with pytest.raises(AllProvidersFailedError) as info:
        await sarai_llm.chat(MESSAGES, timeout=0.3)  # a provider kwarg, passed to LiteLLM
    assert time.monotonic() - started < 1.5
    assert isinstance(info.value.errors["local"], sarai_llm.ProviderTimeoutError)
    assert upstream.count("/chat/completions") == 1  # the OpenAI SDK did not retry behind our back


def test_a_compromised_litellm_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    from sarai_llm import supply_chain

    monkeypatch.setattr(supply_chain, "installed_litellm_version", lambda: "1.82.7")
    with pytest.raises(sarai_llm.UnsafeDependencyError, match="1.82.7 is a compromised release"):
        supply_chain.check_litellm(force=True)
    for version, bad in [("1.107.3", True), ("1.82.8", True), ("1.110.2", False), ("1.82.70", False)]:
        assert supply_chain.is_compromised(version) is bad


def test_a_planted_pth_file_is_reported(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any, caplog: pytest.LogCaptureFixture
) -> None:
    from sarai_llm import supply_chain

    (tmp_path / "litellm_init.pth").write_text("import os")
    monkeypatch.setattr(supply_chain, "_site_dirs", lambda: [tmp_path])
    with caplog.at_level("WARNING", logger="sarai_llm"):
        supply_chain.check_litellm(force=True)
    assert "litellm_init.pth" in caplog.text and "rotate" in caplog.text


async def test_unlisted_models_get_a_price_so_litellm_stays_cheap(upstream: Any) -> None:
    # Without a registered price, LiteLLM searches its price list on every
    # call of the model, and asks an Ollama server (bench/RESULTS.md).
    for _ in range(2):
        use(primary_provider="local", local_base_url=upstream.base_url, local_model="unlisted-model")
        await sarai_llm.chat(MESSAGES, use_cache=False)
        sarai_llm.reset_gateway()
    import litellm

    entry = litellm.model_cost["openai/unlisted-model"]
    assert entry["input_cost_per_token"] == 0.0 and entry["output_cost_per_token"] == 0.0
    assert "gpt-4o-mini" in litellm.model_cost  # listed models keep LiteLLM's own price
