"""docker-compose.yml: the seed's stack, checked without a Docker engine."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from sarai_llm.config import ENV_PREFIX, GatewayConfig

COMPOSE = Path(__file__).resolve().parent.parent / "docker-compose.yml"
_SUBSTITUTION = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?P<op>:?-)?(?P<default>[^}]*)\}")


def _document() -> dict[str, Any]:
    document = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))  # resolves the << merge keys
    assert isinstance(document, dict)
    return document


def _environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):  # the "- NAME=value" form
        env = dict(item.split("=", 1) for item in env)
    return {str(k): "" if v is None else str(v) for k, v in env.items()}


def _modules(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: svc for name, svc in document["services"].items() if name != "ollama"}


def test_one_shared_ollama_service() -> None:
    services = _document()["services"]
    ollamas = [name for name, svc in services.items() if str(svc.get("image", "")).startswith("ollama/ollama")]
    assert ollamas == ["ollama"]
    ollama = services["ollama"]
    assert "11434:11434" in ollama["ports"]
    assert any(str(v).endswith(":/root/.ollama") for v in ollama["volumes"])
    assert ollama["deploy"]["resources"]["limits"]["memory"] == "8G"
    assert ollama["healthcheck"]["test"]


def test_the_seeds_modules_use_the_gateway_through_ollama() -> None:
    document = _document()
    modules = _modules(document)
    assert {"sarai-core", "hlcs", "sarai-rag", "saul"} <= set(modules)
    for name, service in modules.items():
        assert "ollama" in service["depends_on"], name
        env = _environment(service)
        assert env[f"{ENV_PREFIX}PRIMARY_PROVIDER"] == "ollama", name
        assert urlsplit(env[f"{ENV_PREFIX}OLLAMA_BASE_URL"]).hostname == "ollama", name
        assert set(service["networks"]) <= set(document["networks"]), name
        for volume in service.get("volumes", []):
            assert str(volume).split(":")[0] in document["volumes"], (name, volume)
    assert _environment(modules["hlcs"])[f"{ENV_PREFIX}FALLBACK_PROVIDERS"] == "openai"


def test_every_llm_gateway_name_is_a_real_setting() -> None:
    fields = set(GatewayConfig.setting_names())
    names = set(re.findall(r"\b" + ENV_PREFIX + r"[A-Z0-9_]+", COMPOSE.read_text(encoding="utf-8")))
    assert names, "the compose file configures nothing through LLM_GATEWAY_*"
    unknown = sorted(n for n in names if n[len(ENV_PREFIX) :].lower() not in fields)
    assert not unknown, f"not settings of GatewayConfig: {unknown}"


def test_every_module_environment_is_a_valid_configuration(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, service in _modules(_document()).items():
        env = _environment(service)
        for key in list(env):
            # What compose does with ${VAR:-default} when VAR is unset on the host.
            env[key] = _SUBSTITUTION.sub(lambda m: m.group("default") if m.group("op") else "", env[key])
        with monkeypatch.context() as patch:
            for key, value in env.items():
                patch.setenv(key, value)
            config = GatewayConfig.load(_env_file=None)  # raises ConfigError when a value is invalid
        assert config.primary_provider == "ollama", name
        assert config.cache_enabled, name


def test_host_variables_have_defaults() -> None:
    """`${VAR}` without a default makes compose warn when VAR is unset; keys are optional here."""
    text = COMPOSE.read_text(encoding="utf-8")
    for match in _SUBSTITUTION.finditer(text):
        assert match.group("op"), f"${{{match.group('name')}}} needs a default, like ${{{match.group('name')}:-}}"


def _compose_command() -> list[str] | None:
    candidates = []
    if shutil.which("docker"):
        candidates.append(["docker", "compose"])
    if shutil.which("docker-compose"):
        candidates.append(["docker-compose"])
    for command in candidates:
        try:
            probe = subprocess.run([*command, "version"], capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            continue
        if probe.returncode == 0:
            return command
    return None


def test_docker_compose_config_accepts_the_file(tmp_path: Path) -> None:
    command = _compose_command()
    if command is None:
        pytest.skip("no working `docker compose` (or docker-compose) on this machine; the YAML checks above still ran")
    result = subprocess.run(
        [*command, "-f", str(COMPOSE), "config", "--quiet"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,  # no stray .env
    )
    assert result.returncode == 0, result.stderr
    assert "WARN" not in result.stderr, result.stderr
