"""Tests of sarai_llm.config: sources, precedence, YAML, validation, errors and secrets."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr, ValidationError

from sarai_llm.config import (
    ENV_PREFIX,
    PROVIDERS,
    CacheConfig,
    GatewayConfig,
    ProviderConfig,
)
from sarai_llm.errors import ConfigError, redact

SEED_YAML = """\
# config/default_settings.yaml
llm_gateway:
  primary_provider: "ollama"
  fallback_providers: ["local"]

  ollama:
    base_url: "http://localhost:11434"
    default_model: "llama3.2:latest"
    timeout: 300

  cache:
    enabled: true
    ttl: 3600
    max_size: 1000
"""

SECRET = "sk-proj-TOPSECRET-0123456789"

# Every setting's flat name, in display order: LLM_GATEWAY_<NAME>, explain() and public_dict() keys.
SETTING_NAMES = (
    "primary_provider", "fallback_providers",
    "ollama_base_url", "ollama_model", "ollama_embed_model", "ollama_timeout", "ollama_api_key",
    "ollama_input_cost_per_token", "ollama_output_cost_per_token", "ollama_max_concurrent", "ollama_deployments",
    "openai_api_key", "openai_base_url", "openai_model", "openai_embed_model", "openai_timeout",
    "openai_input_cost_per_token", "openai_output_cost_per_token", "openai_max_concurrent", "openai_deployments",
    "anthropic_api_key", "anthropic_base_url", "anthropic_model", "anthropic_timeout",
    "anthropic_input_cost_per_token", "anthropic_output_cost_per_token",
    "anthropic_max_concurrent", "anthropic_deployments",
    "local_base_url", "local_model", "local_embed_model", "local_timeout", "local_api_key",
    "local_input_cost_per_token", "local_output_cost_per_token", "local_max_concurrent", "local_deployments",
    "cache_enabled", "cache_ttl", "cache_max_size", "cache_memory_mb", "cache_dir", "cache_namespace", "cache_backend",
    "redis_url",
    "num_retries", "allowed_fails", "cooldown_time", "health_timeout", "deadline",
    "metrics_port", "metrics_host", "metrics_global", "config", "watch_config",
)  # fmt: skip


@pytest.fixture(autouse=True)
def isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """Run every test in an empty directory with no LLM_GATEWAY_* variable set."""
    for name in list(os.environ):
        if name.upper().startswith(ENV_PREFIX):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def yaml_file(tmp_path: Path, body: str, name: str = "config.yaml") -> Path:
    """Write a YAML file whose ``llm_gateway`` mapping is ``body`` (indented by the caller)."""
    return write(tmp_path / name, "llm_gateway:\n" + body)


def dotenv(tmp_path: Path, *lines: str) -> Path:
    return write(tmp_path / ".env", "\n".join(lines) + "\n")


def load_error(**overrides: Any) -> str:
    with pytest.raises(ConfigError) as info:
        GatewayConfig.load(**overrides)
    assert not isinstance(info.value, ValidationError)
    return str(info.value)


# --- defaults -------------------------------------------------------------------


def test_defaults_follow_the_contract() -> None:
    config = GatewayConfig.load()
    assert config.primary_provider == "ollama"
    assert config.fallback_providers == []
    assert config.ollama_base_url == "http://localhost:11434"
    assert config.ollama_model == "llama3.2:latest"
    assert config.ollama_embed_model == "nomic-embed-text"
    assert config.local_base_url == "http://localhost:8080"
    assert config.openai_base_url is None and config.anthropic_base_url is None
    assert all(config.provider(p).timeout == 300 for p in PROVIDERS)
    assert (config.cache_enabled, config.cache_ttl, config.cache_max_size) == (True, 3600, 1000)
    assert (config.num_retries, config.allowed_fails, config.cooldown_time) == (0, 3, 30)
    assert config.health_timeout == 5 and config.metrics_port is None
    assert config.config is None and config.config_file is None
    assert set(config.explain().values()) == {"default"}


# --- precedence, one test per pair ----------------------------------------------


def test_precedence_argument_over_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLM_GATEWAY_OLLAMA_MODEL", "from-env")
    config = GatewayConfig.load(ollama_model="from-argument")
    assert config.ollama_model == "from-argument"
    assert config.explain()["ollama_model"] == "argument"


def test_precedence_env_over_dotenv(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    dotenv(tmp_path, "LLM_GATEWAY_CACHE_TTL=10")
    monkeypatch.setenv("LLM_GATEWAY_CACHE_TTL", "20")
    config = GatewayConfig.load()
    assert config.cache_ttl == 20
    assert config.explain()["cache_ttl"] == "environment"


def test_precedence_dotenv_over_yaml(tmp_path: Path) -> None:
    yaml_file(tmp_path, "  cache: {ttl: 10}\n")
    dotenv(tmp_path, "LLM_GATEWAY_CACHE_TTL=20")
    config = GatewayConfig.load()
    assert config.cache_ttl == 20
    assert config.explain()["cache_ttl"] == ".env"


def test_precedence_yaml_over_default(tmp_path: Path) -> None:
    path = yaml_file(tmp_path, "  cache: {ttl: 10}\n")
    config = GatewayConfig.load()
    assert config.cache_ttl == 10
    assert config.explain()["cache_ttl"] == str(path)
    assert config.explain()["cache_max_size"] == "default"


def test_precedence_argument_over_yaml(tmp_path: Path) -> None:
    yaml_file(tmp_path, "  primary_provider: local\n")
    config = GatewayConfig.load(primary_provider="openai")
    assert config.primary_provider == "openai"
    assert config.explain()["primary_provider"] == "argument"


def test_precedence_env_over_yaml(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    yaml_file(tmp_path, "  ollama: {base_url: 'http://yaml-host:11434'}\n")
    monkeypatch.setenv("LLM_GATEWAY_OLLAMA_BASE_URL", "http://env-host:11434")
    config = GatewayConfig.load()
    assert config.ollama_base_url == "http://env-host:11434"
    assert config.explain()["ollama_base_url"] == "environment"


def test_precedence_argument_over_dotenv(tmp_path: Path) -> None:
    dotenv(tmp_path, "LLM_GATEWAY_LOCAL_MODEL=from-dotenv")
    assert GatewayConfig.load(local_model="from-argument").local_model == "from-argument"


def test_plain_constructor_reads_the_same_sources(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLM_GATEWAY_CACHE_TTL", "42")
    assert GatewayConfig().cache_ttl == 42
    monkeypatch.setenv("LLM_GATEWAY_CACHE_TTL", "abc")
    with pytest.raises(ConfigError):
        GatewayConfig()


# --- every environment name --------------------------------------------------------

ENV_CASES = [
    # (name without prefix, value, field, expected value)
    ("PRIMARY_PROVIDER", "openai", "primary_provider", "openai"),
    ("FALLBACK_PROVIDERS", "openai,local", "fallback_providers", ["openai", "local"]),
    ("OLLAMA_BASE_URL", "http://gpu-box:11434", "ollama_base_url", "http://gpu-box:11434"),
    ("OLLAMA_MODEL", "qwen2.5:7b", "ollama_model", "qwen2.5:7b"),
    ("OLLAMA_EMBED_MODEL", "mxbai-embed-large", "ollama_embed_model", "mxbai-embed-large"),
    ("OLLAMA_TIMEOUT", "12.5", "ollama_timeout", 12.5),
    ("OLLAMA_API_KEY", "ollama-key-1234", "ollama_api_key", "ollama-key-1234"),
    ("OPENAI_API_KEY", "sk-proj-abcd1234", "openai_api_key", "sk-proj-abcd1234"),
    ("OPENAI_BASE_URL", "http://127.0.0.1:18080/v1", "openai_base_url", "http://127.0.0.1:18080/v1"),
    ("OPENAI_MODEL", "gpt-4", "openai_model", "gpt-4"),
    ("OPENAI_EMBED_MODEL", "text-embedding-3-large", "openai_embed_model", "text-embedding-3-large"),
    ("OPENAI_TIMEOUT", "60", "openai_timeout", 60.0),
    ("ANTHROPIC_API_KEY", "sk-ant-abcd1234", "anthropic_api_key", "sk-ant-abcd1234"),
    ("ANTHROPIC_BASE_URL", "https://proxy.example.com", "anthropic_base_url", "https://proxy.example.com"),
    ("ANTHROPIC_MODEL", "claude-3-opus-20240229", "anthropic_model", "claude-3-opus-20240229"),
    ("ANTHROPIC_TIMEOUT", "90", "anthropic_timeout", 90.0),
    ("LOCAL_BASE_URL", "http://localhost:8081", "local_base_url", "http://localhost:8081"),
    ("LOCAL_MODEL", "mistral-7b", "local_model", "mistral-7b"),
    ("LOCAL_EMBED_MODEL", "bge-small", "local_embed_model", "bge-small"),
    ("LOCAL_TIMEOUT", "30", "local_timeout", 30.0),
    ("LOCAL_API_KEY", "local-key-1234", "local_api_key", "local-key-1234"),
    ("CACHE_ENABLED", "false", "cache_enabled", False),
    ("CACHE_TTL", "60", "cache_ttl", 60.0),
    ("CACHE_MAX_SIZE", "10", "cache_max_size", 10),
    ("CACHE_DIR", "/var/cache/sarai", "cache_dir", Path("/var/cache/sarai")),
    ("CACHE_NAMESPACE", "rag", "cache_namespace", "rag"),
    ("NUM_RETRIES", "2", "num_retries", 2),
    ("ALLOWED_FAILS", "5", "allowed_fails", 5),
    ("COOLDOWN_TIME", "0", "cooldown_time", 0.0),
    ("HEALTH_TIMEOUT", "1.5", "health_timeout", 1.5),
    ("METRICS_PORT", "9100", "metrics_port", 9100),
]


@pytest.mark.parametrize(("name", "raw", "field", "expected"), ENV_CASES, ids=[c[0] for c in ENV_CASES])
def test_each_environment_name(
    monkeypatch: pytest.MonkeyPatch, name: str, raw: str, field: str, expected: object
) -> None:
    monkeypatch.setenv(ENV_PREFIX + name, raw)
    config = GatewayConfig.load()
    value = getattr(config, field)
    if isinstance(value, SecretStr):
        value = value.get_secret_value()
    assert value == expected
    assert config.explain()[field] == "environment"


def test_environment_names_are_case_insensitive(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("llm_gateway_cache_ttl", "7")
    assert GatewayConfig.load().cache_ttl == 7


def test_empty_values_count_as_unset(tmp_path: Path) -> None:
    dotenv(tmp_path, "LLM_GATEWAY_OPENAI_API_KEY=", "LLM_GATEWAY_OPENAI_BASE_URL=", "LLM_GATEWAY_CACHE_TTL=")
    config = GatewayConfig.load()
    assert config.openai_api_key is None and config.openai_base_url is None
    assert config.cache_ttl == 3600


def test_dotenv_ignores_lines_of_other_programs(tmp_path: Path) -> None:
    dotenv(tmp_path, f"OPENAI_API_KEY={SECRET}", "PRIMARY_PROVIDER=openai", "LLM_GATEWAY_UNKNOWN=1")
    config = GatewayConfig.load()
    assert config.primary_provider == "ollama"
    assert config.openai_api_key is None


def test_env_file_argument_names_another_dotenv(tmp_path: Path) -> None:
    dotenv(tmp_path, "LLM_GATEWAY_LOCAL_MODEL=from-default-dotenv")
    write(tmp_path / "prod.env", "LLM_GATEWAY_LOCAL_MODEL=from-prod\n")
    assert GatewayConfig.load(_env_file="prod.env").local_model == "from-prod"
    assert GatewayConfig.load(_env_file=None).local_model == "local-model"


# --- YAML -------------------------------------------------------------------------


def test_seed_yaml_example_is_read(tmp_path: Path) -> None:
    path = write(tmp_path / "config.yaml", SEED_YAML)
    config = GatewayConfig.load()
    assert config.config_file == path.resolve()
    assert config.primary_provider == "ollama"
    assert config.fallback_providers == ["local"]
    assert config.ollama_base_url == "http://localhost:11434"
    assert config.ollama_model == "llama3.2:latest"
    assert config.ollama_timeout == 300
    assert config.cache_settings == CacheConfig(enabled=True, ttl=3600, max_size=1000, dir=None, namespace="")
    explained = config.explain()
    assert explained["ollama_model"] == str(path.resolve())
    assert explained["openai_model"] == "default"


def test_yaml_every_key(tmp_path: Path) -> None:
    yaml_file(
        tmp_path,
        "  primary_provider: openai\n"
        "  fallback_providers: 'anthropic, local'\n"
        "  num_retries: 1\n  allowed_fails: 2\n  cooldown_time: 5\n  health_timeout: 2\n  metrics_port: 9100\n"
        "  openai: {base_url: 'http://127.0.0.1:18080/', model: smollm2, embed_model: smollm2,"
        " timeout: 20, api_key: none-needed}\n"
        "  anthropic: {base_url: 'http://127.0.0.1:18080', default_model: smollm2, timeout: 21}\n"
        "  local: {base_url: 'http://127.0.0.1:18080/v1', default_model: smollm2, timeout: 22}\n"
        "  ollama: {embed_model: null}\n"
        "  cache: {enabled: false, ttl: 60, max_size: 5, dir: /tmp/sarai-cache, namespace: rag}\n",
    )
    config = GatewayConfig.load()
    assert config.chain == ["openai", "anthropic", "local"]
    assert (config.num_retries, config.allowed_fails, config.cooldown_time) == (1, 2, 5)
    assert (config.health_timeout, config.metrics_port) == (2, 9100)
    openai = config.provider("openai")
    assert openai.base_url == "http://127.0.0.1:18080"
    assert (openai.model, openai.embed_model, openai.timeout) == ("smollm2", "smollm2", 20)
    assert openai.api_key is not None and openai.api_key.get_secret_value() == "none-needed"
    assert config.provider("anthropic").model == "smollm2"
    assert config.provider("local").base_url == "http://127.0.0.1:18080/v1"
    assert config.provider("ollama").embed_model is None
    assert config.cache_settings == CacheConfig(
        enabled=False, ttl=60, max_size=5, dir=Path("/tmp/sarai-cache"), namespace="rag"
    )


@pytest.mark.parametrize("where", ["argument", "environment", ".env"])
def test_config_names_another_yaml_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, where: str) -> None:
    yaml_file(tmp_path, "  ollama: {default_model: from-default-file}\n")
    (tmp_path / "elsewhere").mkdir()
    other = yaml_file(tmp_path / "elsewhere", "  ollama: {default_model: other}\n", "o.yaml")
    overrides: dict[str, Any] = {}
    if where == "argument":
        overrides["config"] = other
    elif where == "environment":
        monkeypatch.setenv("LLM_GATEWAY_CONFIG", str(other))
    else:
        dotenv(tmp_path, "LLM_GATEWAY_CONFIG=elsewhere/o.yaml")
    config = GatewayConfig.load(**overrides)
    assert config.ollama_model == "other"
    assert config.config_file == other.resolve()
    assert config.explain()["config"] == where
    assert config.explain()["ollama_model"] == str(other.resolve())


def test_missing_default_yaml_file_is_fine() -> None:
    assert GatewayConfig.load().config_file is None


@pytest.mark.parametrize(
    ("where", "named_as"),
    [("argument", "argument config"), ("environment", "LLM_GATEWAY_CONFIG (environment)")],
)
def test_missing_named_yaml_file_is_an_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, where: str, named_as: str
) -> None:
    overrides: dict[str, Any] = {}
    if where == "argument":
        overrides["config"] = "missing.yaml"
    else:
        monkeypatch.setenv("LLM_GATEWAY_CONFIG", "missing.yaml")
    message = load_error(**overrides)
    assert named_as in message
    assert str(tmp_path / "missing.yaml") in message
    assert "not found" in message


def test_empty_yaml_files_are_fine(tmp_path: Path) -> None:
    write(tmp_path / "config.yaml", "")
    assert GatewayConfig.load().primary_provider == "ollama"
    write(tmp_path / "config.yaml", "llm_gateway:\n")
    assert GatewayConfig.load().primary_provider == "ollama"


def test_yaml_without_llm_gateway_key_is_an_error(tmp_path: Path) -> None:
    path = write(tmp_path / "config.yaml", "primary_provider: openai\n")
    message = load_error()
    assert str(path) in message and "llm_gateway" in message


@pytest.mark.parametrize(
    ("body", "where", "suggestion"),
    [
        ("  ollama: {defualt_model: x}\n", "llm_gateway.ollama.defualt_model", "default_model"),
        ("  primary: openai\n", "llm_gateway.primary", "primary_provider"),
        ("  cache: {tll: 5}\n", "llm_gateway.cache.tll", "ttl"),
        ("  anthropic: {embed_model: x}\n", "llm_gateway.anthropic.embed_model", None),
        ("  cache_ttl: 5\n", "llm_gateway.cache_ttl", None),
    ],
)
def test_unknown_yaml_key_names_file_and_path(tmp_path: Path, body: str, where: str, suggestion: str | None) -> None:
    path = yaml_file(tmp_path, body)
    message = load_error()
    assert f"{path}: {where}: unknown key" in message
    if suggestion:
        assert f"did you mean '{suggestion}'" in message


def test_yaml_model_and_default_model_together_is_an_error(tmp_path: Path) -> None:
    yaml_file(tmp_path, "  ollama: {model: a, default_model: b}\n")
    assert "llm_gateway.ollama" in load_error()


def test_yaml_section_must_be_a_mapping(tmp_path: Path) -> None:
    path = yaml_file(tmp_path, "  cache: 5\n")
    assert f"{path}: llm_gateway.cache: expected a mapping" in load_error()


def test_invalid_yaml_syntax_names_the_file_without_quoting_it(tmp_path: Path) -> None:
    path = yaml_file(tmp_path, f"  openai: {{api_key: {SECRET}: x\n")
    message = load_error()
    assert str(path) in message and "invalid YAML" in message and "line 2" in message
    assert SECRET not in message


# --- comma lists -------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        "openai,local",
        " OpenAI , LOCAL ",
        '["openai", "local"]',
        "openai,,local,openai",
        "ollama,openai,local",  # the primary is dropped
    ],
)
def test_fallback_list_forms(monkeypatch: pytest.MonkeyPatch, raw: str) -> None:
    monkeypatch.setenv("LLM_GATEWAY_FALLBACK_PROVIDERS", raw)
    config = GatewayConfig.load()
    assert config.fallback_providers == ["openai", "local"]
    assert config.chain == ["ollama", "openai", "local"]


@pytest.mark.parametrize("value", ["[]", "[ ]"])
def test_fallback_empty_json_list(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("LLM_GATEWAY_FALLBACK_PROVIDERS", value)
    assert GatewayConfig.load().fallback_providers == []


@pytest.mark.parametrize("value", ["local,openai", ["local", "openai"], ("local", "openai")])
def test_fallback_list_as_argument(value: object) -> None:
    assert GatewayConfig.load(fallback_providers=value).fallback_providers == ["local", "openai"]


def test_fallback_list_drops_primary_set_elsewhere(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLM_GATEWAY_FALLBACK_PROVIDERS", "openai,local")
    assert GatewayConfig.load(primary_provider="OpenAI").chain == ["openai", "local"]


# --- error messages name source and field --------------------------------------------


def test_error_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLM_GATEWAY_CACHE_TTL", "abc")
    assert load_error() == (
        "Invalid configuration: LLM_GATEWAY_CACHE_TTL (environment): "
        "Input should be a valid number, unable to parse string as a number (got 'abc')"
    )


def test_error_from_dotenv(tmp_path: Path) -> None:
    dotenv(tmp_path, "LLM_GATEWAY_CACHE_TTL=abc")
    message = load_error()
    assert f"LLM_GATEWAY_CACHE_TTL (.env file {(tmp_path / '.env').resolve()}): " in message
    assert "(got 'abc')" in message


def test_error_from_yaml(tmp_path: Path) -> None:
    path = yaml_file(tmp_path, "  cache: {ttl: abc}\n  ollama: {model: ''}\n")
    message = load_error()
    assert f"{path.resolve()}: llm_gateway.cache.ttl: Input should be a valid number" in message
    assert f"{path.resolve()}: llm_gateway.ollama.model: " in message


def test_error_from_argument() -> None:
    message = load_error(cache_ttl="abc")
    assert message.startswith("Invalid configuration: argument cache_ttl: Input should be a valid number")


def test_error_lists_every_failing_field(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLM_GATEWAY_CACHE_TTL", "abc")
    message = load_error(cache_max_size=0)
    assert "LLM_GATEWAY_CACHE_TTL (environment)" in message
    assert "argument cache_max_size" in message


def test_unknown_argument_is_an_error() -> None:
    message = load_error(cache_tll=5)
    assert "argument cache_tll: unknown setting" in message and "cache_ttl" in message


# --- validation ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("ollama_timeout", 0),
        ("openai_timeout", -1),
        ("anthropic_timeout", "nan"),
        ("local_timeout", 0),
        ("health_timeout", 0),
        ("cache_ttl", 0),
        ("cache_max_size", 0),
        ("num_retries", -1),
        ("allowed_fails", -1),
        ("cooldown_time", -0.5),
        ("metrics_port", 70000),
        ("ollama_base_url", "localhost:11434"),
        ("local_base_url", "ftp://localhost:8080"),
        ("openai_base_url", "http://"),
        ("anthropic_base_url", "https://host:notaport"),
        ("local_model", ""),
    ],
)
def test_invalid_values_are_rejected(field: str, value: object) -> None:
    assert f"argument {field}: " in load_error(**{field: value})


@pytest.mark.parametrize(("field", "raw"), [("primary_provider", "gpt4"), ("fallback_providers", "openai,gpt4")])
def test_invalid_provider_name(monkeypatch: pytest.MonkeyPatch, field: str, raw: str) -> None:
    monkeypatch.setenv(ENV_PREFIX + field.upper(), raw)
    message = load_error()
    assert f"LLM_GATEWAY_{field.upper()} (environment): unknown provider" in message
    assert "'gpt4'" in message and "ollama, openai, anthropic, local" in message


def test_provider_names_are_normalised() -> None:
    config = GatewayConfig.load(primary_provider="  Local ")
    assert config.primary_provider == "local"
    assert config.provider(" OpenAI ").name == "openai"


def test_zero_is_accepted_where_allowed() -> None:
    config = GatewayConfig.load(num_retries=0, allowed_fails=0, cooldown_time=0)
    assert (config.num_retries, config.allowed_fails, config.cooldown_time) == (0, 0, 0)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("http://host:8080/", "http://host:8080"),
        ("http://host:8080/v1/", "http://host:8080/v1"),
        ("https://api.example.com", "https://api.example.com"),
        ("  http://host:11434/api  ", "http://host:11434/api"),
    ],
)
def test_base_url_trailing_slash_is_stripped(raw: str, expected: str) -> None:
    assert GatewayConfig.load(local_base_url=raw).local_base_url == expected


def test_config_is_read_only() -> None:
    config = GatewayConfig.load()
    with pytest.raises(ValidationError):
        config.cache_ttl = 1  # type: ignore[attr-defined]  # a flat name: read-only by design
    with pytest.raises(ValidationError):
        config.cache.ttl = 1  # the nested sections too


# --- views ---------------------------------------------------------------------------


def test_provider_views() -> None:
    config = GatewayConfig.load(local_model="smollm2")
    assert list(config.providers) == list(PROVIDERS)
    assert all(isinstance(p, ProviderConfig) for p in config.providers.values())
    assert config.provider("local").embed_model == "smollm2"  # defaults to the chat model
    assert config.provider("anthropic").embed_model is None
    assert config.provider("ollama").embed_model == "nomic-embed-text"
    with pytest.raises(ConfigError, match="Unknown provider 'gemini'"):
        config.provider("gemini")


def test_configured_and_missing_settings() -> None:
    config = GatewayConfig.load()
    assert config.provider("ollama").configured and config.provider("local").configured
    openai = config.provider("openai")
    assert not openai.configured
    assert openai.missing_settings == ["LLM_GATEWAY_OPENAI_API_KEY", "LLM_GATEWAY_OPENAI_BASE_URL"]
    assert config.provider("anthropic").missing_settings == [
        "LLM_GATEWAY_ANTHROPIC_API_KEY",
        "LLM_GATEWAY_ANTHROPIC_BASE_URL",
    ]
    config = GatewayConfig.load(openai_base_url="http://127.0.0.1:18080", anthropic_api_key="sk-ant-x1234")
    assert config.provider("openai").configured and config.provider("openai").missing_settings == []
    assert config.provider("anthropic").configured


def test_explain_names_each_source(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    path = yaml_file(tmp_path, "  local: {default_model: y}\n")
    dotenv(tmp_path, "LLM_GATEWAY_OPENAI_MODEL=d")
    monkeypatch.setenv("LLM_GATEWAY_OLLAMA_MODEL", "e")
    explained = GatewayConfig.load(anthropic_model="a").explain()
    assert GatewayConfig.setting_names() == SETTING_NAMES
    assert list(explained) == list(SETTING_NAMES)
    assert explained["anthropic_model"] == "argument"
    assert explained["ollama_model"] == "environment"
    assert explained["openai_model"] == ".env"
    assert explained["local_model"] == str(path.resolve())
    assert explained["cache_ttl"] == "default"


def test_public_dict_is_json_and_complete() -> None:
    config = GatewayConfig.load(cache_dir="/tmp/c", openai_api_key=SECRET)
    public = config.public_dict()
    assert list(public) == list(SETTING_NAMES)
    assert json.loads(json.dumps(public)) == public
    assert public["openai_api_key"] == "***"
    assert public["anthropic_api_key"] is None
    assert public["cache_dir"] == "/tmp/c"


# --- secrets -----------------------------------------------------------------------


def test_secrets_never_shown(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLM_GATEWAY_ANTHROPIC_API_KEY", SECRET)
    config = GatewayConfig.load(openai_api_key=SECRET + "-2")
    texts = [
        repr(config),
        str(config),
        json.dumps(config.public_dict()),
        json.dumps(config.explain()),
        repr(config.providers),
        str(config.provider("anthropic")),
        repr(config.cache_settings),
    ]
    for text in texts:
        assert SECRET not in text
    assert redact(f"key={SECRET}") == "key=***"  # registered for the rest of the package


def test_secret_never_in_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLM_GATEWAY_OPENAI_API_KEY", SECRET)
    monkeypatch.setenv("LLM_GATEWAY_OPENAI_BASE_URL", SECRET)  # a key typed into the wrong place
    message = load_error()
    assert "LLM_GATEWAY_OPENAI_BASE_URL (environment)" in message
    assert SECRET not in message


def test_invalid_secret_value_is_not_echoed(tmp_path: Path) -> None:
    yaml_file(tmp_path, "  openai: {api_key: 987654321}\n")
    with pytest.raises(ConfigError) as info:
        GatewayConfig.load()
    message = str(info.value)
    assert "llm_gateway.openai.api_key: Input should be a valid string" in message
    assert "987654321" not in message
    # pydantic's own error would quote the value: it must not ride along as the cause.
    assert info.value.__cause__ is None and info.value.__suppress_context__


# --- import cost -------------------------------------------------------------------


def test_import_does_not_load_litellm() -> None:
    code = "import sys, sarai_llm.config; print('litellm' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_model_copy_keeps_provenance_honest(tmp_path: Path) -> None:
    dotenv(tmp_path, "LLM_GATEWAY_CACHE_TTL=10")
    config = GatewayConfig.load()
    copy = config.model_copy(update={"cache_ttl": 5.0})
    assert (copy.cache_ttl, copy.explain()["cache_ttl"]) == (5.0, "argument")
    assert config.explain()["cache_ttl"] == ".env"


# --- cache backend and Redis URL ------------------------------------------------------------

REDIS_PASSWORD = "r3dis-TOPSECRET-pw"
REDIS_URL = f"redis://:{REDIS_PASSWORD}@cache.internal:6379/0"


def test_cache_backend_defaults_to_disk() -> None:
    config = GatewayConfig.load()
    assert (config.cache_backend, config.redis_url) == ("disk", None)
    settings = config.cache_settings
    assert isinstance(settings, CacheConfig)
    assert (settings.backend, settings.redis_url) == ("disk", None)


def test_redis_backend_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLM_GATEWAY_CACHE_BACKEND", " Redis ")
    monkeypatch.setenv("LLM_GATEWAY_REDIS_URL", REDIS_URL)
    config = GatewayConfig.load()
    settings = config.cache_settings
    assert settings.backend == "redis"
    assert settings.redis_url is not None and settings.redis_url.get_secret_value() == REDIS_URL
    assert config.explain()["cache_backend"] == config.explain()["redis_url"] == "environment"


def test_redis_backend_from_yaml(tmp_path: Path) -> None:
    path = yaml_file(tmp_path, f'  cache: {{backend: redis, redis_url: "{REDIS_URL}", namespace: rag}}\n')
    config = GatewayConfig.load()
    assert (config.cache_backend, config.cache_namespace) == ("redis", "rag")
    assert config.redis_url is not None and config.redis_url.get_secret_value() == REDIS_URL
    assert config.explain()["redis_url"] == str(path)


@pytest.mark.parametrize("url", ["redis://localhost", "rediss://u:p@h:6380/2", "unix:///run/redis.sock?db=1"])
def test_redis_url_schemes(url: str) -> None:
    config = GatewayConfig.load(cache_backend="redis", redis_url=url)
    assert config.redis_url is not None and config.redis_url.get_secret_value() == url


def test_redis_backend_without_url_names_the_setting(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("LLM_GATEWAY_CACHE_BACKEND", "redis")
    message = load_error()
    assert "LLM_GATEWAY_CACHE_BACKEND (environment)" in message and "LLM_GATEWAY_REDIS_URL" in message
    monkeypatch.delenv("LLM_GATEWAY_CACHE_BACKEND")
    path = yaml_file(tmp_path, "  cache: {backend: redis}\n")
    message = load_error()
    assert f"{path}: llm_gateway.cache.backend" in message and "LLM_GATEWAY_REDIS_URL" in message


def test_unknown_cache_backend_is_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLM_GATEWAY_CACHE_BACKEND", "memcached")
    message = load_error()
    assert "LLM_GATEWAY_CACHE_BACKEND (environment)" in message and "'disk' or 'redis'" in message


@pytest.mark.parametrize("url", [f"http://:{REDIS_PASSWORD}@h:6379", f"redis://:{REDIS_PASSWORD}@h:99999", "localhost"])
def test_invalid_redis_url_is_rejected_without_echoing_it(monkeypatch: pytest.MonkeyPatch, url: str) -> None:
    monkeypatch.setenv("LLM_GATEWAY_REDIS_URL", url)
    with pytest.raises(ConfigError) as info:
        GatewayConfig.load()
    message = str(info.value)
    assert "LLM_GATEWAY_REDIS_URL (environment)" in message and "redis://" in message
    assert REDIS_PASSWORD not in message and url not in message
    assert info.value.__cause__ is None


def test_redis_url_is_a_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLM_GATEWAY_REDIS_URL", REDIS_URL)
    config = GatewayConfig.load(cache_backend="redis")
    texts = [
        repr(config),
        str(config),
        json.dumps(config.public_dict()),
        json.dumps(config.explain()),
        repr(config.cache_settings),
        str(config.cache_settings),
    ]
    for text in texts:
        assert REDIS_PASSWORD not in text
    assert config.public_dict()["redis_url"] == "***"
    # Registered for redaction: the URL and its password, wherever they turn up.
    assert REDIS_PASSWORD not in redact(f"connecting to {REDIS_URL}")
    assert redact(f"AUTH {REDIS_PASSWORD}") == "AUTH ***"
    # A URL without credentials is not a secret: it is not scrubbed from messages.
    GatewayConfig.load(cache_backend="redis", redis_url="redis://plain-host:6379/0")
    assert redact("redis://plain-host:6379/0") == "redis://plain-host:6379/0"


def test_redis_url_password_in_query_is_scrubbed() -> None:
    GatewayConfig.load(redis_url="unix:///run/redis.sock?db=0&password=q-TOPSECRET-9")
    assert redact("password q-TOPSECRET-9") == "password ***"


# --- defaults only, and the provider table ------------------------------------------------


def test_defaults_read_no_environment_dotenv_or_yaml(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("LLM_GATEWAY_CACHE_TTL", "5")
    dotenv(tmp_path, "LLM_GATEWAY_OLLAMA_MODEL=from-dotenv")
    yaml_file(tmp_path, "  primary_provider: local\n")
    config = GatewayConfig.defaults(openai_model="m")
    assert (config.cache_ttl, config.ollama_model, config.primary_provider) == (3600, "llama3.2:latest", "ollama")
    assert config.openai_model == "m" and config.config_file is None
    assert config.explain()["openai_model"] == "argument" and config.explain()["cache_ttl"] == "default"
    assert "argument cache_ttl" in str(pytest.raises(ConfigError, GatewayConfig.defaults, cache_ttl="abc").value)


def test_provider_views_carry_their_table_row() -> None:
    from sarai_llm._providers import SPECS

    config = GatewayConfig.defaults()
    assert tuple(SPECS) == PROVIDERS
    for name in PROVIDERS:
        provider = config.provider(name)
        assert provider.spec is SPECS[name]
        assert provider.model == SPECS[name].default_model
        assert provider.base_url == SPECS[name].default_base_url
