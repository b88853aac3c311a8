"""The ``sarai-llm`` command line: commands, output, exit codes, and what it must not import."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from sarai_llm import cli

SECRET = "sk-test-SECRET-0123456789"
VENV_BIN = Path(sys.executable).parent


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def stub(upstream: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    upstream.behaviour.reply = "hola, mundo"
    monkeypatch.setenv("LLM_GATEWAY_PRIMARY_PROVIDER", "local")
    monkeypatch.setenv("LLM_GATEWAY_LOCAL_BASE_URL", upstream.base_url)
    monkeypatch.setenv("LLM_GATEWAY_LOCAL_MODEL", "stub")
    return upstream


def _stdin(monkeypatch: pytest.MonkeyPatch, text: str) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO(text))


# --- chat -----------------------------------------------------------------------------


def test_chat_prints_the_answer(stub: Any, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, "chat", "hola") == (0, "hola, mundo\n", "")
    _, body = stub.requests[-1]
    assert body["messages"] == [{"role": "user", "content": "hola"}]
    assert body["temperature"] == 0.7


def test_chat_json_prints_the_result_dict(stub: Any, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "chat", "--json", "hola")
    assert code == 0 and err == ""
    result = json.loads(out)
    assert result["content"] == "hola, mundo"
    assert result["provider"] == "local" and result["model"] == "stub"
    usage = {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7, "cached_tokens": 0, "reasoning_tokens": 0}
    assert result["usage"] == usage
    assert result["cached"] is False and isinstance(result["latency_ms"], float)
    assert (result["tool_calls"], result["reasoning_content"], result["parsed"]) == ([], None, None)
    assert stub.requests[-1][1].get("stream") is not True  # --json waits for the whole result


def test_chat_json_writes_a_pydantic_instance_as_its_fields(capsys: pytest.CaptureFixture[str]) -> None:
    from pydantic import BaseModel

    from sarai_llm.cli import _commands

    class Answer(BaseModel):
        city: str
        population: int

    _commands._print(True, {"parsed": Answer(city="Lima", population=10), "content": "..."}, str)
    assert json.loads(capsys.readouterr().out) == {"parsed": {"city": "Lima", "population": 10}, "content": "..."}


def test_chat_options_reach_the_request(stub: Any, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, _ = run(
        capsys, "chat", "--system", "be brief", "--temperature", "0", "--max-tokens", "12",
        "--model", "other", "--provider", "local", "--no-cache", "hola",
    )  # fmt: skip
    assert code == 0
    _, body = stub.requests[-1]
    assert body["messages"][0] == {"role": "system", "content": "be brief"}
    assert (body["temperature"], body["max_tokens"], body["model"]) == (0, 12, "other")
    run(capsys, "chat", "--no-cache", "hola")
    assert stub.count("/chat/completions") == 2  # --no-cache: not served from the cache


def test_chat_reads_stdin(stub: Any, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    _stdin(monkeypatch, "from a pipe\n")
    assert run(capsys, "chat")[0] == 0
    _stdin(monkeypatch, "dash\n")
    assert run(capsys, "chat", "-")[0] == 0
    assert [body["messages"][-1]["content"] for _, body in stub.requests] == ["from a pipe", "dash"]


def test_chat_stream(stub: Any, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, "chat", "--stream", "hola") == (0, "pong!\n", "")


def test_chat_streams_on_a_terminal_unless_told_not_to(
    stub: Any, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert run(capsys, "chat", "--no-cache", "hola") == (0, "hola, mundo\n", "")  # piped: the whole answer
    assert stub.requests[-1][1].get("stream") is not True
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    assert run(capsys, "chat", "--no-cache", "hola") == (0, "pong!\n", "")  # a terminal: piece by piece
    assert stub.requests[-1][1]["stream"] is True
    assert run(capsys, "chat", "--no-cache", "--no-stream", "hola") == (0, "hola, mundo\n", "")
    assert json.loads(run(capsys, "chat", "--no-cache", "--json", "hola")[1])["content"] == "hola, mundo"
    assert [body.get("stream") is True for _, body in stub.requests] == [False, True, False, False]


def test_chat_stream_interrupted_exits_3(stub: Any, capsys: pytest.CaptureFixture[str]) -> None:
    stub.behaviour.cut_after = 1
    code, out, err = run(capsys, "chat", "--stream", "hola")
    assert code == 3
    assert out == "po"
    assert err.startswith("sarai-llm: error: Stream from local interrupted") and err.count("\n") == 1


# --- embed ----------------------------------------------------------------------------


def test_embed_prints_the_vector(stub: Any, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "embed", "hola")
    assert code == 0 and err == ""
    vector = json.loads(out)
    assert len(vector) == 4 and all(isinstance(x, float) for x in vector)

    code, out, _ = run(capsys, "embed", "--json", "hola")
    assert json.loads(out) == {"text": "hola", "dimensions": 4, "embedding": vector}


# --- health ---------------------------------------------------------------------------


def test_health_all_up_exits_0(stub: Any, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "health")
    assert code == 0
    header, row = out.splitlines()
    assert header.split() == ["PROVIDER", "ROLE", "STATUS", "LATENCY", "DETAIL"]
    assert row.split()[:3] == ["local", "primary", "up"]


def test_health_exits_1_when_a_provider_is_down(
    stub: Any, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, dead_url: str
) -> None:
    monkeypatch.setenv("LLM_GATEWAY_FALLBACK_PROVIDERS", "ollama")
    monkeypatch.setenv("LLM_GATEWAY_OLLAMA_BASE_URL", dead_url)
    code, out, _ = run(capsys, "health")
    assert code == 1
    rows = {line.split()[0]: line.split() for line in out.splitlines()[1:]}
    assert rows["local"][2] == "up" and rows["ollama"][1:3] == ["fallback", "down"]
    assert dead_url in out  # the detail says where it looked

    code, out, _ = run(capsys, "health", "--json")
    assert code == 1
    assert json.loads(out)["ollama"]["ok"] is False
    assert run(capsys, "health", "--provider", "local")[0] == 0


# --- stats, cache ---------------------------------------------------------------------


def test_stats_is_json_in_the_contract_shape(stub: Any, capsys: pytest.CaptureFixture[str]) -> None:
    run(capsys, "chat", "hola")
    code, out, _ = run(capsys, "stats")
    assert code == 0
    stats = json.loads(out)
    assert {"total_requests", "total_errors", "total_fallbacks", "error_rate", "providers", "config"} <= set(stats)
    assert stats["cache"]["size"] == 1  # the shared cache holds the answer of the chat above
    assert stats["config"]["primary_provider"] == "local"


def test_cache_info_and_clear(stub: Any, capsys: pytest.CaptureFixture[str]) -> None:
    run(capsys, "chat", "hola")
    run(capsys, "embed", "hola")
    code, out, _ = run(capsys, "cache", "info", "--json")
    info = json.loads(out)
    assert code == 0 and info["enabled"] is True and info["size"] == 2 and info["max_size"] == 1000
    assert os.environ["LLM_GATEWAY_CACHE_DIR"] in info["store"]
    code, out, _ = run(capsys, "cache", "info")
    assert "entries    2 of 1000" in out

    code, out, _ = run(capsys, "cache", "clear")
    assert code == 0 and out.startswith("cleared 2 entries from ")
    code, out, _ = run(capsys, "cache", "info", "--json")
    assert json.loads(out)["size"] == 0


def test_cache_disabled(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLM_GATEWAY_CACHE_ENABLED", "false")
    assert run(capsys, "cache", "info", "--json")[1] == '{\n  "enabled": false\n}\n'
    code, out, _ = run(capsys, "cache", "clear")
    assert code == 0 and "disabled" in out


# --- config ---------------------------------------------------------------------------


def _rows(out: str) -> dict[str, list[str]]:
    return {line.split()[0]: line.split()[1:] for line in out.splitlines() if line.startswith("LLM_GATEWAY_")}


def test_config_explain_names_each_source_and_masks_keys(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    Path("config.yaml").write_text(
        "llm_gateway:\n  primary_provider: local\n  cache: {ttl: 60}\n  openai: {api_key: yaml-" + SECRET + "}\n"
    )
    Path(".env").write_text(f"LLM_GATEWAY_LOCAL_MODEL=from-dotenv\nLLM_GATEWAY_ANTHROPIC_API_KEY=dotenv-{SECRET}\n")
    monkeypatch.setenv("LLM_GATEWAY_CACHE_MAX_SIZE", "7")
    monkeypatch.setenv("LLM_GATEWAY_OPENAI_API_KEY", SECRET)

    code, out, err = run(capsys, "config", "--explain")

    assert code == 0 and err == ""
    yaml_path = str(Path("config.yaml").resolve())
    rows = _rows(out)
    assert rows["LLM_GATEWAY_PRIMARY_PROVIDER"] == ["local", yaml_path]
    assert rows["LLM_GATEWAY_CACHE_TTL"] == ["60", yaml_path]
    assert rows["LLM_GATEWAY_LOCAL_MODEL"] == ["from-dotenv", ".env"]
    assert rows["LLM_GATEWAY_CACHE_MAX_SIZE"] == ["7", "environment"]
    assert rows["LLM_GATEWAY_OPENAI_API_KEY"] == ["***", "environment"]
    assert rows["LLM_GATEWAY_ANTHROPIC_API_KEY"] == ["***", ".env"]
    assert rows["LLM_GATEWAY_OLLAMA_MODEL"] == ["llama3.2:latest", "default"]
    assert f"config file: {yaml_path}" in out
    for argv in (("config",), ("config", "--json"), ("config", "--explain", "--json")):
        code, out, err = run(capsys, *argv)
        assert code == 0 and SECRET not in out + err

    explained = json.loads(run(capsys, "config", "--explain", "--json")[1])
    assert explained["cache_ttl"] == {"value": 60.0, "source": yaml_path}
    assert explained["openai_api_key"] == {"value": "***", "source": "environment"}


def test_config_shows_every_setting_once(capsys: pytest.CaptureFixture[str]) -> None:
    from sarai_llm.config import GatewayConfig

    code, out, _ = run(capsys, "config")
    assert code == 0
    assert set(_rows(out)) == {f"LLM_GATEWAY_{name.upper()}" for name in GatewayConfig.setting_names()}
    assert "config file: none" in out


def test_invalid_configuration_exits_2_naming_the_source(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LLM_GATEWAY_CACHE_TTL", "soon")
    monkeypatch.setenv("LLM_GATEWAY_OPENAI_API_KEY", SECRET)
    for argv in (("config",), ("chat", "hola"), ("stats",)):
        code, out, err = run(capsys, *argv)
        assert code == 2 and out == ""
        assert err.startswith("sarai-llm: error: Invalid configuration: LLM_GATEWAY_CACHE_TTL (environment)")
        assert err.count("\n") == 1 and SECRET not in err


# --- exit codes and error lines ----------------------------------------------------------


def test_bad_usage_exits_2(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    assert run(capsys, "chat", "--temperature", "hot", "x")[0] == 2  # argparse
    assert run(capsys, "nonsense")[0] == 2
    assert run(capsys)[0] == 2
    assert run(capsys, "cache")[0] == 2
    code, _, err = run(capsys, "chat", "--stream", "--json", "x")
    assert code == 2 and err == "sarai-llm: error: --stream and --json cannot be combined\n"
    code, _, err = run(capsys, "chat", "--stream", "--no-stream", "x")
    assert code == 2 and "not allowed with argument --stream" in err
    _stdin(monkeypatch, "  \n")
    assert run(capsys, "chat") == (2, "", "sarai-llm: error: empty prompt on standard input\n")


def test_invalid_request_exits_2(stub: Any, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "chat", "--temperature", "5", "hola")
    assert code == 2 and err == "sarai-llm: error: temperature must be between 0 and 2, got 5.0\n"
    code, _, err = run(capsys, "chat", "--provider", "nope", "hola")
    assert code == 2 and "provider must be one of" in err
    assert stub.count("/chat/completions") == 0


def test_no_providers_exits_2(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLM_GATEWAY_PRIMARY_PROVIDER", "openai")
    code, _, err = run(capsys, "chat", "hola")
    assert code == 2
    assert err.startswith("sarai-llm: error: No providers initialized") and "LLM_GATEWAY_OPENAI_API_KEY" in err


def test_all_providers_failed_exits_3_with_one_line(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, dead_url: str
) -> None:
    monkeypatch.setenv("LLM_GATEWAY_PRIMARY_PROVIDER", "local")
    monkeypatch.setenv("LLM_GATEWAY_LOCAL_BASE_URL", dead_url)
    code, out, err = run(capsys, "chat", "hola")
    assert code == 3 and out == ""
    assert err.startswith("sarai-llm: error: All providers failed: local: ProviderConnectionError")
    assert err.count("\n") == 1 and "Traceback" not in err

    code, _, err = run(capsys, "--debug", "chat", "hola")
    assert code == 3 and "Traceback (most recent call last)" in err
    code, _, err = run(capsys, "chat", "--debug", "hola")  # --debug after the command works too
    assert code == 3 and "Traceback (most recent call last)" in err


def test_exit_code_mapping() -> None:
    import sarai_llm as s

    assert cli.exit_code_for(s.ConfigError("x")) == cli.EXIT_USAGE
    assert cli.exit_code_for(s.InvalidRequestError("x")) == cli.EXIT_USAGE
    assert cli.exit_code_for(s.NoProvidersError("x")) == cli.EXIT_USAGE
    assert cli.exit_code_for(s.AllProvidersFailedError({})) == cli.EXIT_REQUEST_FAILED
    assert cli.exit_code_for(s.StreamInterruptedError("p", 1, OSError())) == cli.EXIT_REQUEST_FAILED
    assert cli.exit_code_for(s.CacheError("x")) == cli.EXIT_REQUEST_FAILED


@pytest.mark.parametrize("command", ["chat", "embed"])
def test_provider_help_lists_every_provider(capsys: pytest.CaptureFixture[str], command: str) -> None:
    from sarai_llm._providers import PROVIDERS

    code, out, _ = run(capsys, command, "--help")
    assert code == 0
    assert f"provider tried first ({', '.join(PROVIDERS)})" in " ".join(out.split())  # argparse wraps lines


# --- processes: entry points and imports ---------------------------------------------------


def _python(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, timeout=120, env=env or dict(os.environ)
    )


_NO_LITELLM = (
    "import sys\n"
    "from sarai_llm.cli import main\n"
    "code = main(sys.argv[1:])\n"
    "loaded = sorted(m for m in sys.modules if m.split('.')[0] == 'litellm')\n"
    "print('LITELLM-LOADED', loaded[:3], file=sys.stderr) if loaded else None\n"
    "sys.exit(code)\n"
)


@pytest.mark.parametrize("argv", [["--help"], ["config"], ["config", "--explain"], ["chat", "--help"]])
def test_help_and_config_do_not_import_litellm(argv: list[str]) -> None:
    result = _python("-c", _NO_LITELLM, *argv)
    assert result.returncode == 0, result.stderr
    assert "LITELLM-LOADED" not in result.stderr


def test_importtime_of_the_cli_shows_no_litellm() -> None:
    result = _python("-X", "importtime", "-c", "import sarai_llm.cli")
    assert result.returncode == 0
    assert "sarai_llm.cli" in result.stderr  # the import-time report is there...
    assert "litellm" not in result.stderr  # ...and names no LiteLLM module


def test_console_script_and_python_m(stub: Any) -> None:
    script = VENV_BIN / "sarai-llm"
    if script.exists():
        result = subprocess.run([str(script), "--version"], capture_output=True, text=True, timeout=60)
        assert result.returncode == 0 and result.stdout.startswith("sarai-llm ")
    # One process (LiteLLM's import costs seconds): `python -m sarai_llm`, prompt piped on stdin.
    result = subprocess.run(
        [sys.executable, "-m", "sarai_llm", "chat"], input="hola\n", capture_output=True, text=True, timeout=120
    )
    assert (result.returncode, result.stdout, result.stderr) == (0, "hola, mundo\n", "")
    assert stub.requests[-1][1]["messages"] == [{"role": "user", "content": "hola"}]


# --- against the real local model ----------------------------------------------------------


@pytest.mark.integration
def test_cli_against_the_real_local_model(local_model: Any, tmp_path: Path, dead_url: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LLM_GATEWAY_")}
    env.update(
        LLM_GATEWAY_PRIMARY_PROVIDER="local",
        LLM_GATEWAY_LOCAL_BASE_URL=local_model.server_root,
        LLM_GATEWAY_LOCAL_MODEL=local_model.model,
        LLM_GATEWAY_FALLBACK_PROVIDERS="ollama",
        LLM_GATEWAY_OLLAMA_BASE_URL=local_model.ollama_base,
        LLM_GATEWAY_OLLAMA_MODEL=local_model.model,
        LLM_GATEWAY_CACHE_DIR=str(tmp_path / "cache"),
    )

    def sarai(*argv: str, **extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "sarai_llm", *argv],
            env={**env, **extra},
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=300,
        )

    plain = sarai("chat", "--max-tokens", "16", "--temperature", "0", "hola")
    assert plain.returncode == 0 and plain.stderr == ""
    assert plain.stdout.strip()

    as_json = sarai("chat", "--json", "--max-tokens", "16", "--temperature", "0", "hola")
    assert as_json.returncode == 0
    result = json.loads(as_json.stdout)
    assert result["content"] == plain.stdout[:-1]  # the same request: a cache hit across processes
    assert result["cached"] is True and result["provider"] == "local" and result["model"] == local_model.model

    health = sarai("health")
    assert health.returncode == 0, health.stdout
    assert [line.split()[2] for line in health.stdout.splitlines()[1:]] == ["up", "up"]
    down = sarai("health", LLM_GATEWAY_OLLAMA_BASE_URL=dead_url)
    assert down.returncode == 1 and "down" in down.stdout
