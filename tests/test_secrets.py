"""The secret sweep: API keys never appear anywhere a user or an operator can see.

Two distinctive keys (openai, anthropic) are configured; a representative
subset of the fault matrix runs with every logger at DEBUG (LiteLLM's
included, which sarai_llm re-parents under ``sarai_llm.litellm``); then the
sweep searches for the keys in:

* the captured log records (messages, arguments, formatted tracebacks) and
  whatever reached stdout / stderr;
* ``get_stats()``, ``health_check(detailed=True)``, ``metrics_text()``;
* ``str`` / ``repr`` of the gateway, its config, the config's dumps;
* every exception: ``str``, ``repr``, the formatted traceback, and the same for
  every chained cause and context, recursively (``.errors`` included);
* the output of the command line (``config``, ``config --explain --json``,
  ``stats``, ``health --json``, and a failing ``--debug chat``) run with the
  keys in the environment;
* every file of the cache directory.

The keys must reach the upstream (checked), or the sweep would prove nothing.
Then the same for a password inside each provider's base URL (``http://user:password@host``),
the status page and the LiteLLM Proxy export included.
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import os
import subprocess
import sys
import traceback
import urllib.parse
import urllib.request
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest
from faults import FaultyUpstream, Mode, forget_litellm_clients

import sarai_llm

OPENAI_KEY = "sk-SWEEP-openai-7f3a9c"
ANTHROPIC_KEY = "sk-ant-SWEEP-anthropic-4e1b8d"
KEYS = (OPENAI_KEY, ANTHROPIC_KEY)
MESSAGES = [{"role": "user", "content": "sweep"}]
LOGGERS = (
    "",
    "sarai_llm",
    "sarai_llm.litellm",
    "LiteLLM",
    "LiteLLM Router",
    "LiteLLM Proxy",
    "httpx",
    "httpcore",
    "openai",
    "anthropic",
    "aiohttp",
    "asyncio",
)


@pytest.fixture(scope="module", autouse=True)
def _litellm_clients() -> Iterator[None]:
    """Earlier modules' LiteLLM clients are not this module's (see faults.forget_litellm_clients)."""
    forget_litellm_clients()
    yield
    leaks = forget_litellm_clients()
    assert leaks == [], f"left open by this module: {leaks}"


def needles(key: str) -> list[str]:
    """The forms a leaked key could take: whole, without its ``sk-`` prefix, its tail, encoded."""
    return [
        key,
        key[3:],  # a mask that only hides the prefix
        key[-12:],  # a mask that keeps a long tail
        urllib.parse.quote(key, safe=""),
        base64.b64encode(key.encode()).decode(),
    ]


NEEDLES = [n for key in KEYS for n in needles(key)]


def find_leaks(where: str, text: str | bytes) -> list[str]:
    data = text if isinstance(text, str) else text.decode("utf-8", "replace")
    return [f"{where}: {needle!r}" for needle in NEEDLES if needle in data]


def exception_texts(exc: BaseException, seen: set[int] | None = None) -> Iterator[tuple[str, str]]:
    """str, repr and traceback of ``exc`` and, recursively, of its causes, contexts and ``.errors``."""
    seen = set() if seen is None else seen
    if id(exc) in seen:
        return
    seen.add(id(exc))
    name = type(exc).__name__
    yield f"str({name})", str(exc)
    yield f"repr({name})", repr(exc)
    yield f"args({name})", repr(exc.args)
    yield f"traceback({name})", "".join(traceback.format_exception(exc))
    for attr in ("message", "litellm_debug_info", "body", "llm_provider", "model"):
        value = getattr(exc, attr, None)
        if value is not None:
            yield f"{name}.{attr}", repr(value)
    for related in (exc.__cause__, exc.__context__):
        if related is not None:
            yield from exception_texts(related, seen)
    errors = getattr(exc, "errors", None)
    for inner in errors.values() if isinstance(errors, dict) else ():
        if isinstance(inner, BaseException):
            yield from exception_texts(inner, seen)


async def run_op(op: str) -> BaseException | None:
    try:
        if op == "chat":
            await sarai_llm.chat(MESSAGES)
        elif op == "stream":
            async for _ in sarai_llm.stream_chat(MESSAGES):
                pass
        else:
            await sarai_llm.embed("sweep")
    except Exception as exc:
        return exc
    return None


def _gateway_settings(openai_url: str, anthropic_url: str, cache_dir: Path) -> dict[str, Any]:
    return {
        "primary_provider": "openai",
        "openai_api_key": OPENAI_KEY,
        "openai_base_url": openai_url,
        "openai_timeout": 0.5,
        "fallback_providers": ["anthropic"],
        "anthropic_api_key": ANTHROPIC_KEY,
        "anthropic_base_url": anthropic_url,
        "anthropic_timeout": 0.5,
        "num_retries": 0,
        "health_timeout": 1,
        "cache_dir": str(cache_dir),
    }


def _keys_reached(*ups: FaultyUpstream) -> set[str]:
    found = set()
    for up in ups:
        for request in up.requests:
            for value in request.headers.values():
                for key in KEYS:
                    if key in value:
                        found.add(key)
    return found


MODES = [
    Mode.HEALTHY,
    Mode.HTTP_401,
    Mode.HTTP_500,
    Mode.HTTP_429,
    Mode.MALFORMED,
    Mode.CUT,
    Mode.HANG,
    Mode.REFUSED,
]


@pytest.mark.parametrize("mode", MODES, ids=[m.value for m in MODES])
async def test_no_key_anywhere_after_faults(
    mode: Mode, tmp_path: Path, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    cache_dir = tmp_path / "sweep-cache"
    for name in LOGGERS:
        caplog.set_level(logging.DEBUG, logger=name)
    texts: list[tuple[str, str]] = []
    with FaultyUpstream(mode) as openai_up, FaultyUpstream(mode) as anthropic_up:
        gw = sarai_llm.get_gateway(_gateway_settings(openai_up.base_url, anthropic_up.base_url, cache_dir))
        for op in ("chat", "stream", "embed"):
            error = await run_op(op)
            if mode is Mode.HEALTHY:
                assert error is None, repr(error)
            elif error is not None:
                texts += list(exception_texts(error))
        health = await gw.health_check(detailed=True)
        texts.append(("health_check", json.dumps(health, default=str)))
        if mode is not Mode.REFUSED:
            assert _keys_reached(openai_up, anthropic_up) == set(KEYS), "the keys never reached the upstream"
        texts += [
            ("get_stats", json.dumps(sarai_llm.get_stats(), default=str)),
            ("metrics_text", sarai_llm.metrics_text()),
            ("str(gateway)", str(gw)),
            ("repr(gateway)", repr(gw)),
            ("str(config)", str(gw.config)),
            ("repr(config)", repr(gw.config)),
            ("config.model_dump", repr(gw.config.model_dump())),
            ("config.model_dump_json", gw.config.model_dump_json()),
            ("repr(cache)", repr(gw.cache)),
        ]
        texts += [(f"provider {p.name}", repr(p)) for p in gw.chain()]
        await gw.aclose()
        sarai_llm.reset_gateway()
    texts += process_texts(caplog, capfd, cache_dir)
    litellm_debug = [r for r in caplog.records if r.name == "sarai_llm.litellm" and r.levelno == logging.DEBUG]
    assert litellm_debug, "LiteLLM's DEBUG records were not captured: the sweep would prove nothing"
    leaks = [leak for where, text in texts for leak in find_leaks(where, text)]
    assert leaks == []


def cache_files(directory: Path) -> list[tuple[str, str]]:
    found = []
    for path in sorted(directory.rglob("*")) if directory.exists() else []:
        if path.is_file():
            found.append((f"cache file {path.relative_to(directory)}", path.read_bytes().decode("latin-1")))
    return found


async def test_the_cache_directory_holds_answers_but_no_key(tmp_path: Path) -> None:
    """A healthy run fills the cache (so the file sweep above searched real entries)."""
    cache_dir = tmp_path / "sweep-cache"
    with FaultyUpstream() as up:
        gw = sarai_llm.get_gateway(_gateway_settings(up.base_url, up.base_url, cache_dir))
        await sarai_llm.chat(MESSAGES)
        await sarai_llm.embed("sweep")
        assert gw.get_stats()["cache"]["size"] == 2
        await gw.aclose()
        sarai_llm.reset_gateway()
    files = cache_files(cache_dir)
    assert files, "the cache directory is empty"
    assert [leak for where, text in files for leak in find_leaks(where, text)] == []


# --- the command line -------------------------------------------------------------------------------


def _cli(args: Iterable[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sarai_llm", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.skipif(
    __import__("importlib").util.find_spec("sarai_llm.cli") is None, reason="sarai_llm.cli does not exist"
)
def test_no_key_in_command_line_output(tmp_path: Path) -> None:
    cwd = tmp_path / "cli"
    cwd.mkdir()
    cache_dir = tmp_path / "cli-cache"
    with FaultyUpstream(Mode.HTTP_401) as openai_up, FaultyUpstream(Mode.HTTP_500) as anthropic_up:
        env = {k: v for k, v in os.environ.items() if not k.startswith("LLM_GATEWAY_")}
        env.update(
            {
                "LLM_GATEWAY_PRIMARY_PROVIDER": "openai",
                "LLM_GATEWAY_FALLBACK_PROVIDERS": "anthropic",
                "LLM_GATEWAY_OPENAI_API_KEY": OPENAI_KEY,
                "LLM_GATEWAY_OPENAI_BASE_URL": openai_up.base_url,
                "LLM_GATEWAY_ANTHROPIC_API_KEY": ANTHROPIC_KEY,
                "LLM_GATEWAY_ANTHROPIC_BASE_URL": anthropic_up.base_url,
                "LLM_GATEWAY_OPENAI_TIMEOUT": "2",
                "LLM_GATEWAY_ANTHROPIC_TIMEOUT": "2",
                "LLM_GATEWAY_CACHE_DIR": str(cache_dir),
            }
        )
        runs = {
            "config": _cli(["config"], env, cwd),
            "config --explain --json": _cli(["config", "--explain", "--json"], env, cwd),
            "stats": _cli(["stats"], env, cwd),
            "health --json": _cli(["health", "--json"], env, cwd),
            "--debug chat": _cli(["--debug", "chat", "hello"], env, cwd),
            "--debug chat --stream": _cli(["--debug", "chat", "--stream", "hello"], env, cwd),
        }
        reached = _keys_reached(openai_up, anthropic_up)
    assert runs["config"].returncode == 0, runs["config"].stderr
    assert runs["stats"].returncode == 0, runs["stats"].stderr
    assert runs["health --json"].returncode == 1  # both providers are down
    assert runs["--debug chat"].returncode == 3  # all providers failed
    assert "All providers failed" in runs["--debug chat"].stderr
    assert reached == set(KEYS), "the keys never reached the upstream"
    leaks = []
    for name, run in runs.items():
        leaks += find_leaks(f"`{name}` stdout", run.stdout)
        leaks += find_leaks(f"`{name}` stderr", run.stderr)
    for where, text in cache_files(cache_dir):
        leaks += find_leaks(where, text)
    assert leaks == []


def test_the_sweep_finds_a_planted_key() -> None:
    """The search itself: a key hidden in a chained cause, or encoded, is found."""
    try:
        try:
            raise RuntimeError(f"upstream said: Authorization: Bearer {OPENAI_KEY}")
        except RuntimeError as inner:
            raise ValueError("wrapped") from inner
    except ValueError as outer:
        found = [leak for where, text in exception_texts(outer) for leak in find_leaks(where, text)]
    assert found
    assert find_leaks("x", base64.b64encode(ANTHROPIC_KEY.encode()).decode())
    assert find_leaks("x", "key=" + urllib.parse.quote(OPENAI_KEY, safe=""))
    assert find_leaks("x", "sk-***" + ANTHROPIC_KEY[-12:])


# --- credentials inside a base URL ------------------------------------------------------------------
# http://user:password@host/ in a base URL is a secret like a key. Each provider gets its own password (with an
# "@", so the URL holds it percent-encoded and the sweep looks for both forms) and the fault upstream serves them all.

URL_USER = "sweeper"
URL_PASSWORDS = {p: f"pw-SWEEP@{p}-5c8e1a" for p in ("ollama", "openai", "anthropic", "local")}


def url_with_password(base_url: str, provider: str) -> str:
    password = urllib.parse.quote(URL_PASSWORDS[provider], safe="")
    return base_url.replace("http://", f"http://{URL_USER}:{password}@")


def url_needles(password: str) -> list[str]:
    encoded = urllib.parse.quote(password, safe="")
    basic = base64.b64encode(f"{URL_USER}:{password}".encode()).decode()
    return [password, encoded, encoded.lower(), basic, base64.b64encode(password.encode()).decode()]


URL_NEEDLES = [n for password in URL_PASSWORDS.values() for n in url_needles(password)]


def find_url_leaks(where: str, text: str | bytes) -> list[str]:
    data = text if isinstance(text, str) else text.decode("utf-8", "replace")
    return [f"{where}: {needle!r}" for needle in URL_NEEDLES if needle in data]


def _passwords_reached(up: FaultyUpstream) -> set[str]:
    """The providers whose password the upstream received (as HTTP Basic credentials)."""
    sent = {r.headers.get("authorization", "") for r in up.requests}
    return {p for p, pw in URL_PASSWORDS.items() if f"Basic {url_needles(pw)[3]}" in sent}


def _url_settings(base_url: str, cache_dir: Path) -> dict[str, Any]:
    settings: dict[str, Any] = {"primary_provider": "ollama", "fallback_providers": ["openai", "anthropic", "local"]}
    for p in URL_PASSWORDS:
        settings |= {f"{p}_base_url": url_with_password(base_url, p), f"{p}_timeout": 0.5}
    return settings | {"num_retries": 0, "health_timeout": 1, "cache_dir": str(cache_dir)}


URL_MODES = [Mode.HEALTHY, Mode.HTTP_401, Mode.HTTP_500, Mode.REFUSED]


@pytest.fixture(params=["aiohttp", "httpx"])
def transport(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """LiteLLM's HTTP transport. Its default, aiohttp, refuses a URL with credentials ("Cannot combine
    AUTHORIZATION header with ... credentials encoded in URL"): calls fail there, and answer over httpx."""
    import litellm

    monkeypatch.setattr(litellm, "disable_aiohttp_transport", request.param == "httpx")
    forget_litellm_clients()  # LiteLLM's clients are made for one transport and kept process-wide
    yield request.param
    assert forget_litellm_clients() == []


@pytest.mark.parametrize("mode", URL_MODES, ids=[m.value for m in URL_MODES])
async def test_no_base_url_password_anywhere(
    mode: Mode, transport: str, tmp_path: Path, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    from sarai_llm.cli.export import proxy_environment, render_litellm_proxy_yaml

    cache_dir = tmp_path / "sweep-cache"
    for name in LOGGERS:
        caplog.set_level(logging.DEBUG, logger=name)
    texts: list[tuple[str, str]] = []
    chained: list[tuple[str, str]] = []  # every text of the errors' chains, LiteLLM's and httpx's included
    with FaultyUpstream(mode) as up:
        gw = sarai_llm.get_gateway(_url_settings(up.base_url, cache_dir))
        for op in ("chat", "stream", "embed"):
            error = await run_op(op)
            # The direct path sends over httpx whatever LiteLLM's transport: with aiohttp, Ollama's embedding
            # (on LiteLLM's client, as aembedding sends it) fails, and OpenAI's answers it.
            assert (error is None) == (mode is Mode.HEALTHY), repr(error)
            texts += own_texts(error) if error is not None else []
            chained += list(exception_texts(error)) if error is not None else []
        for p in URL_PASSWORDS:  # each provider's own attempt (the chain's head answers or fails for all)
            with contextlib.suppress(sarai_llm.SaraiLLMError):
                await sarai_llm.chat([{"role": "user", "content": p}], provider=p)
        health = await gw.health_check(detailed=True)
        assert all(r["ok"] is (mode is Mode.HEALTHY) for r in health.values()), health
        texts.append(("health_check", json.dumps(health, default=str)))
        with sarai_llm.start_metrics_server(0) as server:
            texts += [(f"status page {path}", _http_get(server.base_url + path)) for path in ("/", "/stats.json")]
        if mode is not Mode.REFUSED:
            assert _passwords_reached(up) == set(URL_PASSWORDS), "the passwords never reached the upstream"
        config = gw.config
        texts += [
            ("get_stats", json.dumps(sarai_llm.get_stats(), default=str)),
            ("metrics_text", sarai_llm.metrics_text()),
            ("str(gateway)", str(gw)),
            ("repr(gateway)", repr(gw)),
            ("str(config)", str(config)),
            ("repr(config)", repr(config)),
            ("public_dict", json.dumps(config.public_dict(), default=str)),
            ("explain", json.dumps(config.explain())),
            ("repr(cache)", repr(gw.cache)),
            ("export", render_litellm_proxy_yaml(config)),
            ("proxy_environment", repr(proxy_environment(config))),
        ]
        texts += [(f"provider {p.name}", f"{p!r} {p}") for p in config.providers.values()]
        await gw.aclose()
        sarai_llm.reset_gateway()
    texts += process_texts(caplog, capfd, cache_dir)
    assert [leak for where, text in texts for leak in find_url_leaks(where, text)] == []
    assert [leak for where, text in chained for leak in find_url_leaks(where, text)] == []  # causes too


def process_texts(caplog: Any, capfd: Any, cache_dir: Path) -> list[tuple[str, str]]:
    """What the process said and kept: the log (records and their arguments), stdout, stderr, the cache files."""
    texts = [("caplog.text", caplog.text)]
    for record in caplog.records:
        texts += [(f"record {record.name}", record.getMessage()), (f"record args {record.name}", repr(record.args))]
    out, err = capfd.readouterr()
    return [*texts, ("stdout", out), ("stderr", err), *cache_files(cache_dir)]


def own_texts(exc: BaseException) -> list[tuple[str, str]]:
    """str, repr and traceback (without its causes) of each of sarai_llm's own errors in ``exc``'s chain."""
    found: list[tuple[str, str]] = []
    todo, seen = [exc], set()
    while todo:
        err = todo.pop()
        if id(err) in seen:
            continue
        seen.add(id(err))
        if isinstance(err, sarai_llm.SaraiLLMError):
            text = "".join(traceback.format_exception(err, chain=False))
            found.append((type(err).__name__, f"{err} {err!r} {err.args!r} {text}"))
        errors = getattr(err, "errors", None)
        todo += [e for e in (err.__cause__, err.__context__, *(errors or {}).values()) if isinstance(e, BaseException)]
    return found


def _http_get(url: str) -> str:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never through a proxy
    with opener.open(url, timeout=5) as response:
        return str(response.read().decode())


def test_a_base_url_with_credentials_is_shown_masked_and_used_as_is() -> None:
    from sarai_llm._providers import litellm_params

    url = url_with_password("http://127.0.0.1:8000", "local")
    config = sarai_llm.GatewayConfig.defaults(local_base_url=url + "/v1")
    assert config.public_dict()["local_base_url"] == "http://***@127.0.0.1:8000/v1"
    assert "base_url='http://***@127.0.0.1:8000/v1'" in repr(config.provider("local"))
    assert litellm_params(config.provider("local"), "m")["api_base"] == url + "/v1"  # what LiteLLM gets
    for text in (f"GET {url}/v1/models", f"GET {url.replace('8000', '9')}", f"user {URL_PASSWORDS['local']}"):
        assert find_url_leaks("redact", sarai_llm.errors.redact(text)) == [], text  # what redact scrubs


def test_an_invalid_base_url_with_credentials_is_not_quoted() -> None:
    url = url_with_password("http://host:99999", "openai")  # port out of range
    with pytest.raises(sarai_llm.ConfigError) as caught:
        sarai_llm.GatewayConfig.defaults(openai_base_url=url)
    assert "argument openai_base_url: expected an http:// or https:// URL" in str(caught.value)
    assert [leak for where, text in exception_texts(caught.value) for leak in find_url_leaks(where, text)] == []


def test_the_export_refers_to_a_base_url_with_credentials() -> None:
    from sarai_llm.cli.export import export_litellm_proxy, proxy_environment

    url = url_with_password("http://127.0.0.1:8000", "local")
    config = sarai_llm.GatewayConfig.defaults(primary_provider="local", local_base_url=url)
    [deployment] = export_litellm_proxy(config)["model_list"][:1]
    assert deployment["litellm_params"]["api_base"] == "os.environ/LLM_GATEWAY_LOCAL_BASE_URL"
    assert proxy_environment(config)["LLM_GATEWAY_LOCAL_BASE_URL"] is None  # a secret: the gateways' value


def test_no_base_url_password_in_command_line_output(tmp_path: Path) -> None:
    cwd = tmp_path / "cli"
    cwd.mkdir()
    cache_dir = tmp_path / "cli-cache"
    with FaultyUpstream(Mode.HTTP_500) as up:
        env = {k: v for k, v in os.environ.items() if not k.startswith("LLM_GATEWAY_")}
        env |= {f"LLM_GATEWAY_{k.upper()}": str(v) for k, v in _url_settings(up.base_url, cache_dir).items()}
        env["LLM_GATEWAY_FALLBACK_PROVIDERS"] = "openai,anthropic,local"
        runs = {
            "config": _cli(["config"], env, cwd),
            "config --explain --json": _cli(["config", "--explain", "--json"], env, cwd),
            "health": _cli(["health"], env, cwd),
            "health --json": _cli(["health", "--json"], env, cwd),
            "--debug chat": _cli(["--debug", "chat", "hello"], env, cwd),
            "export litellm-proxy": _cli(["export", "litellm-proxy"], env, cwd),
        }
        reached = _passwords_reached(up)
    assert runs["config"].returncode == 0, runs["config"].stderr
    assert runs["health --json"].returncode == 1  # every provider answers 500
    assert "HTTP 500 from http://***@127.0.0.1:" in runs["health"].stdout + runs["health"].stderr
    assert runs["--debug chat"].returncode == 3 and "All providers failed" in runs["--debug chat"].stderr
    assert runs["export litellm-proxy"].returncode == 0, runs["export litellm-proxy"].stderr
    assert reached == set(URL_PASSWORDS), "the passwords never reached the upstream"
    leaks = []
    for name, run in runs.items():
        leaks += find_url_leaks(f"`{name}` stdout", run.stdout) + find_url_leaks(f"`{name}` stderr", run.stderr)
    assert leaks == []
