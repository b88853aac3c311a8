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


GROQ_KEY = "gsk-groq-TOPSECRET-1122334455"
DEPLOYMENT_KEY = "sk-dep-TOPSECRET-5566778899"
URL_PASSWORD = "pw-TOPSECRET-url"
# Custom providers, deployments (their own keys, a URL with credentials), prices, a concurrency limit.
DEPLOYED_YAML = f"""
llm_gateway:
  primary_provider: groq
  fallback_providers: [ollama, vllm_big]
  ollama:
    deployments: ["http://ollama-a:11434", {{base_url: "http://ollama-b:11434/api", weight: 2, max_concurrent: 3}}]
  providers:
    groq:
      model: "groq/llama-3.1-8b-instant"
      api_key: "${{GROQ_KEY_FOR_TEST}}"
      input_cost_per_token: 0.000001
      output_cost_per_token: 0.000002
    vllm_big:
      model: "openai/Qwen2.5-72B"
      embed_model: "openai/bge-m3"
      api_key: "{OPENAI_KEY}"
      deployments:
        - base_url: "http://gpu-1:8000"
        - {{base_url: "http://gpu-2:8000", api_key: "{DEPLOYMENT_KEY}", model: "openai/Qwen2.5-72B-AWQ"}}
        - base_url: "http://proxyuser:{URL_PASSWORD}@gpu-3:8000/v1"
"""


def load(**settings: Any) -> GatewayConfig:
    return GatewayConfig.load(_env_file=None, **settings)


def load_deployed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> GatewayConfig:
    monkeypatch.setenv("GROQ_KEY_FOR_TEST", GROQ_KEY)
    (tmp_path / "deployed.yaml").write_text(DEPLOYED_YAML)
    return load(config=tmp_path / "deployed.yaml")


def entries(exported: dict[str, Any], model_name: str) -> list[dict[str, Any]]:
    return [e["litellm_params"] for e in exported["model_list"] if e["model_name"] == model_name]


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


@pytest.mark.parametrize("deployed", [False, True], ids=["built-in", "custom+deployments"])
def test_export_passes_litellm_proxy_config_types(
    deployed: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    from litellm import router_api
    from litellm.caching.caching import Cache
    from litellm.proxy._types import ConfigGeneralSettings, ConfigYAML, ModelInfo
    from litellm.router import Router
    from litellm.router_strategy import simple_shuffle
    from litellm.router_utils import client_initalization_utils
    from litellm.types.caching import LiteLLMCacheType
    from litellm.types.router import Deployment, LiteLLM_Params, RetryPolicy, UpdateRouterConfig
    from redis import Redis

    # Not declared by LiteLLM_Params (it allows extra keys) but read by the Router from each deployment.
    router_reads = {"weight": simple_shuffle, "max_parallel_requests": client_initalization_utils}
    for key, module in router_reads.items():
        assert f'"{key}"' in inspect.getsource(module), key
    exported = export_litellm_proxy(load_deployed(tmp_path, monkeypatch) if deployed else load(**FULL))
    ConfigYAML.model_validate(copy.deepcopy(exported))  # the proxy's own model of config.yaml (it mutates)
    assert set(exported) <= set(ConfigYAML.model_fields)
    assert set(exported["general_settings"]) <= set(ConfigGeneralSettings.model_fields)
    assert exported["general_settings"] == {"master_key": "os.environ/LITELLM_MASTER_KEY"}

    for entry in exported["model_list"]:
        # LiteLLM's models accept unknown keys silently: check every key is one they know.
        assert set(entry) <= set(Deployment.model_fields), entry
        assert set(entry["litellm_params"]) <= set(LiteLLM_Params.model_fields) | set(router_reads), entry
        assert set(entry["model_info"]) <= set(ModelInfo.model_fields), entry
        deployment = Deployment(
            model_name=entry["model_name"],
            litellm_params=LiteLLM_Params(**entry["litellm_params"]),
            model_info=dict(entry["model_info"]),
        )
        assert deployment.litellm_params.model == entry["litellm_params"]["model"]

    router_settings = exported["router_settings"]
    # A Router argument the proxy passes on from router_settings (litellm.router_api), not in UpdateRouterConfig.
    assert "enable_weighted_failover" in inspect.signature(Router.__init__).parameters
    assert "enable_weighted_failover" in inspect.getsource(router_api)
    assert router_settings.get("enable_weighted_failover", deployed) is deployed
    assert set(router_settings) <= set(UpdateRouterConfig.model_fields) | {"enable_weighted_failover"}
    UpdateRouterConfig(**router_settings)
    assert set(router_settings["retry_policy"]) <= set(RetryPolicy.model_fields)

    settings = exported["litellm_settings"]
    assert settings["cache"] is True
    if deployed:
        return  # the cache settings are FULL's
    params = settings["cache_params"]
    assert params["type"] in {t.value for t in LiteLLMCacheType}
    known = set(inspect.signature(Cache.__init__).parameters) | set(inspect.signature(Redis.__init__).parameters)
    assert set(params) <= known, set(params) - known


@pytest.mark.parametrize("deployed", [False, True], ids=["built-in", "custom+deployments"])
def test_export_builds_a_litellm_router(deployed: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    from litellm.router import Router

    config = load_deployed(tmp_path, monkeypatch) if deployed else load(**FULL)
    exported = export_litellm_proxy(config)
    for name in proxy_environment(config):
        monkeypatch.setenv(name, "placeholder-value")
    router = Router(model_list=exported["model_list"], **exported["router_settings"])
    try:
        names = {entry["model_name"] for entry in exported["model_list"]}
        assert sorted(d["model_name"] for d in router.registry().all()) == sorted(
            e["model_name"] for e in exported["model_list"]
        )  # one Router deployment per entry: a provider's deployments share their model_name
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
        prices = {k: got.pop(k) for k in ("input_cost_per_token", "output_cost_per_token") if k in got}
        assert prices == ({"input_cost_per_token": 0.0, "output_cost_per_token": 0.0} if p.spec.free else {})
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


def test_configured_prices_are_exported_as_the_proxy_reads_them() -> None:
    priced = load(primary_provider="openai", openai_api_key=OPENAI_KEY, openai_input_cost_per_token=2e-6)
    (params,) = entries(export_litellm_proxy(priced), "openai/gpt-4o-mini")
    assert (params["input_cost_per_token"], params["output_cost_per_token"]) == (2e-6, 0.0)
    (params,) = entries(
        export_litellm_proxy(load(primary_provider="openai", openai_api_key=OPENAI_KEY)), "openai/gpt-4o-mini"
    )
    assert "input_cost_per_token" not in params  # LiteLLM's price list, as the gateway


def test_custom_providers_and_deployments(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = load_deployed(tmp_path, monkeypatch)
    exported = export_litellm_proxy(config)
    (groq,) = entries(exported, "groq/llama-3.1-8b-instant")
    assert groq["model"] == "groq/llama-3.1-8b-instant"
    assert groq["api_key"] == "os.environ/LLM_GATEWAY_GROQ_API_KEY"
    assert (groq["input_cost_per_token"], groq["output_cost_per_token"]) == (1e-6, 2e-6)
    assert "weight" not in groq and "api_base" not in groq  # one server, LiteLLM's default URL

    ollama = entries(exported, "ollama/llama3.2:latest")
    assert [(e["api_base"], e["weight"], e.get("max_parallel_requests")) for e in ollama] == [
        ("http://ollama-a:11434", 1.0, None),
        ("http://ollama-b:11434", 2.0, 3),
    ]
    assert [e["api_base"] for e in entries(exported, "ollama/embed/nomic-embed-text")] == [
        "http://ollama-a:11434",
        "http://ollama-b:11434",
    ]
    vllm = entries(exported, "vllm_big/Qwen2.5-72B")
    assert [e["model"] for e in vllm] == ["openai/Qwen2.5-72B", "openai/Qwen2.5-72B-AWQ", "openai/Qwen2.5-72B"]
    assert [e["api_key"] for e in vllm] == [
        "os.environ/LLM_GATEWAY_VLLM_BIG_API_KEY",  # the provider's key, which the deployment takes
        "os.environ/LLM_GATEWAY_VLLM_BIG_DEPLOYMENT_2_API_KEY",  # its own
        "os.environ/LLM_GATEWAY_VLLM_BIG_API_KEY",
    ]
    assert [e["api_base"] for e in vllm] == [
        "http://gpu-1:8000/v1",
        "http://gpu-2:8000/v1",
        "os.environ/LLM_GATEWAY_VLLM_BIG_DEPLOYMENT_3_BASE_URL",  # credentials in the URL: a secret
    ]
    assert len(entries(exported, "vllm_big/embed/bge-m3")) == 3
    fallbacks = {k: v for f in exported["router_settings"]["fallbacks"] for k, v in f.items()}
    assert fallbacks["groq/llama-3.1-8b-instant"] == ["ollama/llama3.2:latest", "vllm_big/Qwen2.5-72B"]

    assert proxy_environment(config) == {
        "LITELLM_MASTER_KEY": None,
        "LLM_GATEWAY_GROQ_API_KEY": None,
        "LLM_GATEWAY_VLLM_BIG_API_KEY": None,
        "LLM_GATEWAY_VLLM_BIG_DEPLOYMENT_2_API_KEY": None,
        "LLM_GATEWAY_VLLM_BIG_DEPLOYMENT_3_BASE_URL": None,
    }
    text = render_litellm_proxy_yaml(config)
    for secret in (GROQ_KEY, OPENAI_KEY, DEPLOYMENT_KEY, URL_PASSWORD, "proxyuser"):
        assert secret not in text
    assert "#   LLM_GATEWAY_VLLM_BIG_DEPLOYMENT_3_BASE_URL=<secret>" in text


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
