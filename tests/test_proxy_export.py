"""`sarai-llm export litellm-proxy`: a LiteLLM Proxy config checked against LiteLLM's own types.

The export must pass LiteLLM's proxy config models (ConfigYAML, Deployment,
LiteLLM_Params, UpdateRouterConfig, RetryPolicy, Cache), build a working
litellm.Router, reach the same Redis through litellm.Cache, mirror the
gateway's model strings and fallback chains, and never contain a secret value.
"""

from __future__ import annotations

import copy
import inspect
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from redis_server import RedisServer, running_redis

from sarai_llm import cli
from sarai_llm._providers import group_name, litellm_params
from sarai_llm.cli.export import (
    PROXY_CACHE_NAMESPACE,
    export_litellm_proxy,
    proxy_environment,
    render_litellm_proxy_yaml,
)
from sarai_llm.config import GatewayConfig
from sarai_llm.errors import ConfigError, NoProvidersError

# Pydantic's note on LiteLLM's TypedDicts (the plural form, not covered by pyproject's filter).


OPENAI_KEY = "sk-openai-TOPSECRET-1234567890"
ANTHROPIC_KEY = "sk-ant-TOPSECRET-0987654321"
REDIS_PASSWORD = "redis-TOPSECRET-pw"

FULL: dict[str, Any] = {
    "primary_provider": "ollama",
    "fallback_providers": "local,openai,anthropic",
    "ollama_base_url": "http://ollama-host:11434/api",
    "local_base_url": "http://llama-host:8080",
    "openai_api_key": OPENAI_KEY,
    "anthropic_api_key": ANTHROPIC_KEY,
    "anthropic_base_url": "https://anthropic.example/v1",
    "cache_backend": "redis",
    "redis_url": f"redis://:{REDIS_PASSWORD}@cache.internal:6380/2",
    "cache_namespace": "rag",
    "cache_ttl": 600,
    "num_retries": 2,
    "deadline": 90,
}


def load(**settings: Any) -> GatewayConfig:
    return GatewayConfig.load(_env_file=None, **settings)


def resolve(value: Any, env: dict[str, str]) -> Any:
    """Replace ``os.environ/NAME`` references as the proxy does at start."""
    if isinstance(value, str) and value.startswith("os.environ/"):
        return env[value.removeprefix("os.environ/")]
    if isinstance(value, dict):
        return {k: resolve(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [resolve(v, env) for v in value]
    return value


# --- LiteLLM's own types -----------------------------------------------------------------


def test_export_passes_litellm_proxy_config_types() -> None:
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    from litellm.caching.caching import Cache
    from litellm.proxy._types import ConfigGeneralSettings, ConfigYAML, ModelInfo
    from litellm.types.caching import LiteLLMCacheType
    from litellm.types.router import Deployment, LiteLLM_Params, RetryPolicy, UpdateRouterConfig
    from redis import Redis

    exported = export_litellm_proxy(load(**FULL))
    ConfigYAML.model_validate(copy.deepcopy(exported))  # the proxy's own model of config.yaml (it mutates)
    assert set(exported) <= set(ConfigYAML.model_fields)
    assert set(exported["general_settings"]) <= set(ConfigGeneralSettings.model_fields)
    assert exported["general_settings"] == {"master_key": "os.environ/LITELLM_MASTER_KEY"}

    for entry in exported["model_list"]:
        # LiteLLM's models accept unknown keys silently: check every key is one they know.
        assert set(entry) <= set(Deployment.model_fields), entry
        assert set(entry["litellm_params"]) <= set(LiteLLM_Params.model_fields), entry
        assert set(entry["model_info"]) <= set(ModelInfo.model_fields), entry
        deployment = Deployment(
            model_name=entry["model_name"],
            litellm_params=LiteLLM_Params(**entry["litellm_params"]),
            model_info=dict(entry["model_info"]),
        )
        assert deployment.litellm_params.model == entry["litellm_params"]["model"]

    router_settings = exported["router_settings"]
    assert set(router_settings) <= set(UpdateRouterConfig.model_fields)
    UpdateRouterConfig(**router_settings)
    assert set(router_settings["retry_policy"]) <= set(RetryPolicy.model_fields)

    settings = exported["litellm_settings"]
    assert settings["cache"] is True
    params = settings["cache_params"]
    assert params["type"] in {t.value for t in LiteLLMCacheType}
    known = set(inspect.signature(Cache.__init__).parameters) | set(inspect.signature(Redis.__init__).parameters)
    assert set(params) <= known, set(params) - known


def test_export_builds_a_litellm_router(monkeypatch: pytest.MonkeyPatch) -> None:
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    from litellm.router import Router

    config = load(**FULL)
    exported = export_litellm_proxy(config)
    for name in proxy_environment(config):
        monkeypatch.setenv(name, "placeholder-value")
    router = Router(model_list=exported["model_list"], **exported["router_settings"])
    try:
        names = {entry["model_name"] for entry in exported["model_list"]}
        assert {d["model_name"] for d in router.registry().all()} == names
        assert router.settings().fallbacks == exported["router_settings"]["fallbacks"]
        for group in names:  # every fallback names a group that exists
            for fallback in router.settings().fallbacks:
                if group in fallback:
                    assert set(fallback[group]) <= names
    finally:
        router.reset()


# --- what the export says ------------------------------------------------------------------


def test_model_strings_and_bases_are_the_gateways() -> None:
    from sarai_llm import _litellm

    config = load(**FULL)
    exported = {e["model_name"]: e for e in export_litellm_proxy(config)["model_list"]}
    assert _litellm.litellm_params is litellm_params  # one mapping for the Router and the export
    for name in ("ollama", "local", "openai", "anthropic"):
        p = config.provider(name)
        assert p.model is not None
        entry = exported[group_name(p, p.model)]
        expected = litellm_params(p, p.model)
        expected.pop("api_key", None)
        got = dict(entry["litellm_params"])
        key = got.pop("api_key", None)
        assert got == expected
        if p.api_key is not None:
            assert key == f"os.environ/LLM_GATEWAY_{name.upper()}_API_KEY"
    assert exported["ollama/llama3.2:latest"]["litellm_params"]["api_base"] == "http://ollama-host:11434"
    assert exported["local/local-model"]["litellm_params"]["api_base"] == "http://llama-host:8080/v1"
    assert exported["anthropic/claude-3-5-sonnet-20241022"]["litellm_params"]["api_base"] == "https://anthropic.example"
    assert exported["ollama/embed/nomic-embed-text"]["litellm_params"]["model"] == "ollama/nomic-embed-text"
    assert exported["ollama/embed/nomic-embed-text"]["model_info"] == {"mode": "embedding"}
    assert not any(n.startswith("anthropic/embed/") for n in exported)  # Anthropic has no embeddings


def test_fallbacks_follow_the_gateway_chains() -> None:
    from sarai_llm import Gateway

    config = load(**{**FULL, "cache_backend": "disk", "redis_url": None})
    fallbacks = {
        k: v for entry in export_litellm_proxy(config)["router_settings"]["fallbacks"] for k, v in entry.items()
    }
    gateway = Gateway(config)
    try:
        for name in config.chain:
            chain = gateway.chain(name)  # the provider asked for by name, then the configured fallbacks
            groups = [group_name(p, p.model or "") for p in chain]
            assert fallbacks[groups[0]] == groups[1:]
    finally:
        gateway.close()
    assert fallbacks["ollama/embed/nomic-embed-text"] == [
        "local/embed/local-model",
        "openai/embed/text-embedding-3-small",
    ]


def test_router_settings_carry_retries_and_timeout() -> None:
    settings = export_litellm_proxy(load(**FULL))["router_settings"]
    assert (settings["num_retries"], settings["timeout"]) == (2, 90)
    assert (settings["allowed_fails"], settings["cooldown_time"]) == (3, 30)
    no_deadline = export_litellm_proxy(load(primary_provider="local", local_timeout=42))["router_settings"]
    assert no_deadline["timeout"] == 42 and "fallbacks" not in no_deadline


def test_only_usable_and_chosen_providers_are_exported() -> None:
    names = {e["model_name"] for e in export_litellm_proxy(load(primary_provider="local"))["model_list"]}
    assert names == {"local/local-model", "local/embed/local-model"}
    with_key = load(primary_provider="local", openai_api_key=OPENAI_KEY)  # set explicitly: exported too
    names = {e["model_name"] for e in export_litellm_proxy(with_key)["model_list"]}
    assert "openai/gpt-4o-mini" in names
    with pytest.raises(NoProvidersError, match="LLM_GATEWAY_OPENAI_API_KEY"):
        export_litellm_proxy(load(primary_provider="openai"))


def test_cache_settings_follow_the_backend() -> None:
    redis_cache = export_litellm_proxy(load(**FULL))["litellm_settings"]["cache_params"]
    assert redis_cache == {
        "type": "redis",
        "host": "os.environ/REDIS_HOST",
        "port": "os.environ/REDIS_PORT",
        "password": "os.environ/REDIS_PASSWORD",
        "db": 2,
        "namespace": f"{PROXY_CACHE_NAMESPACE}:rag",
        "ttl": 600,
    }
    tls = export_litellm_proxy(load(**{**FULL, "redis_url": "rediss://user:pw12345@h:6379/0"}))
    assert tls["litellm_settings"]["cache_params"]["ssl"] is True
    assert tls["litellm_settings"]["cache_params"]["username"] == "os.environ/REDIS_USERNAME"
    assert export_litellm_proxy(load(primary_provider="local"))["litellm_settings"] == {
        "cache": True,
        "cache_params": {"type": "local", "ttl": 3600},
    }
    off = export_litellm_proxy(load(primary_provider="local", cache_enabled=False))
    assert off["litellm_settings"] == {"cache": False}
    with pytest.raises(ConfigError, match="unix socket"):
        export_litellm_proxy(load(primary_provider="local", cache_backend="redis", redis_url="unix:///run/r.sock"))


def test_no_secret_value_is_ever_written() -> None:
    config = load(**FULL)
    text = render_litellm_proxy_yaml(config)
    for secret in (OPENAI_KEY, ANTHROPIC_KEY, REDIS_PASSWORD):
        assert secret not in text
    assert "os.environ/LLM_GATEWAY_OPENAI_API_KEY" in text and "os.environ/LLM_GATEWAY_ANTHROPIC_API_KEY" in text
    assert yaml.safe_load(text) == json.loads(json.dumps(export_litellm_proxy(config)))
    env = proxy_environment(config)
    assert env == {
        "LITELLM_MASTER_KEY": None,
        "LLM_GATEWAY_OPENAI_API_KEY": None,
        "LLM_GATEWAY_ANTHROPIC_API_KEY": None,
        "REDIS_HOST": "cache.internal",
        "REDIS_PORT": "6380",
        "REDIS_PASSWORD": None,
    }
    assert "#   REDIS_PASSWORD=<secret>" in text and "#   REDIS_HOST=cache.internal" in text


def test_the_export_module_does_not_import_litellm() -> None:
    code = (
        "import sys; from sarai_llm.config import GatewayConfig; from sarai_llm.cli.export import "
        "render_litellm_proxy_yaml; render_litellm_proxy_yaml(GatewayConfig.load()); "
        "assert 'litellm' not in sys.modules and 'redis' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


# --- the same Redis ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def redis_server() -> Iterator[RedisServer]:
    with running_redis() as server:
        yield server


def test_the_proxy_cache_reaches_the_same_redis_apart_from_the_gateways(redis_server: RedisServer) -> None:
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    import redis
    from litellm.caching.caching import Cache

    from sarai_llm.cache import RedisStore, ResponseCache

    raw = redis.Redis.from_url(redis_server.url)
    raw.acl_setuser("proxy", enabled=True, passwords=[f"+{REDIS_PASSWORD}"], keys=["*"], commands=["+@all"])
    url = f"redis://proxy:{REDIS_PASSWORD}@127.0.0.1:{redis_server.port}/0"
    config = load(primary_provider="local", cache_backend="redis", redis_url=url, cache_namespace="rag")
    env = {name: value or "" for name, value in proxy_environment(config).items()}
    env["REDIS_USERNAME"], env["REDIS_PASSWORD"] = "proxy", REDIS_PASSWORD  # the secrets, set on the proxy host
    params = resolve(export_litellm_proxy(config)["litellm_settings"]["cache_params"], env)
    proxy_cache = Cache(**params)
    proxy_cache.cache.set_cache("probe", {"answer": 42})
    assert proxy_cache.cache.get_cache("probe") == {"answer": 42}
    assert raw.exists(f"{PROXY_CACHE_NAMESPACE}:rag:probe")

    # A gateway's clear() of the same namespace leaves the proxy's keys alone.
    gateway_cache = ResponseCache(store=lambda: RedisStore.from_url(url, "rag"), namespace="rag")
    gateway_cache.set("rag:k", {"content": "x"}, messages=[{"role": "user", "content": "x"}], model="m")
    gateway_cache.clear()
    assert len(gateway_cache) == 0
    assert raw.exists(f"{PROXY_CACHE_NAMESPACE}:rag:probe")
    gateway_cache.close()
    raw.acl_deluser("proxy")
    raw.close()


# --- the command line -------------------------------------------------------------------------


def test_cli_writes_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("LLM_GATEWAY_OPENAI_API_KEY", OPENAI_KEY)
    monkeypatch.setenv("LLM_GATEWAY_FALLBACK_PROVIDERS", "openai")
    out = tmp_path / "proxy.yaml"
    assert cli.main(["export", "litellm-proxy", "-o", str(out)]) == 0
    text = out.read_text()
    assert OPENAI_KEY not in text and "os.environ/LLM_GATEWAY_OPENAI_API_KEY" in text
    assert yaml.safe_load(text) == json.loads(json.dumps(export_litellm_proxy(GatewayConfig.load())))
    captured = capsys.readouterr()
    assert captured.out == "" and f"wrote {out}" in captured.err
    assert cli.main(["export", "litellm-proxy"]) == 0
    assert capsys.readouterr().out == text


def test_cli_reports_configuration_errors(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("LLM_GATEWAY_CACHE_BACKEND", "redis")
    assert cli.main(["export", "litellm-proxy"]) == cli.EXIT_USAGE
    assert "LLM_GATEWAY_REDIS_URL" in capsys.readouterr().err
    monkeypatch.delenv("LLM_GATEWAY_CACHE_BACKEND")
    assert cli.main(["export", "litellm-proxy", "-o", "/nonexistent-dir/x.yaml"]) == cli.EXIT_USAGE
    assert cli.main(["export"]) == cli.EXIT_USAGE
