"""Hot reload: edits of config.yaml and .env reach a running gateway (README, "Hot reload").

Real files in the test's working directory, loopback upstreams (tests/upstream.py) counting
the requests each receives. The gateway looks at its files at most every ``_reload_every``
seconds; the tests set 0 and give each edit an mtime a second in the past, after the previous one's.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from upstream import Upstream

import sarai_llm
from sarai_llm import cli
from sarai_llm.config import GatewayConfig
from sarai_llm.testing import FakeGateway

MESSAGES = [{"role": "user", "content": "hi"}]


@pytest.fixture
def other() -> Iterator[Upstream]:
    """A second loopback upstream, where the edited configuration sends calls."""
    up = Upstream()
    yield up
    up.stop()


def yaml(a: Upstream, b: Upstream, primary: str = "local", extra: str = "") -> str:
    """local answers from ``a``, openai from ``b``."""
    return (
        "llm_gateway:\n"
        f"  primary_provider: {primary}\n"
        f"  local: {{base_url: '{a.base_url}', default_model: stub-a}}\n"
        f"  openai: {{base_url: '{b.base_url}', default_model: stub-b, api_key: 'sk-test-reload'}}\n"
        f"{extra}"
    )


def edit(path: Path, text: str) -> None:
    """Write ``text`` as a finished edit: its mtime a second in the past (a file written just now is left to
    settle), and after the previous one's (no two edits share a stamp)."""
    before = path.stat().st_mtime_ns if path.exists() else 0
    path.write_text(text, encoding="utf-8")
    settled = max(before + 1000, time.time_ns() - 10**9)
    os.utime(path, ns=(settled, settled))


def watching() -> sarai_llm.Gateway:
    """The process-wide gateway, looking at its files on every call."""
    gw = sarai_llm.get_gateway()
    gw._reload_every = gw._reload_at = 0.0
    return gw


async def ask(gw: sarai_llm.Gateway, **options: Any) -> str:
    return (await gw.chat(MESSAGES, use_cache=options.pop("use_cache", False), **options))["provider"]


async def test_an_edit_switches_the_primary(upstream: Upstream, other: Upstream) -> None:
    config = Path("config.yaml")
    edit(config, yaml(upstream, other))
    gw = watching()
    assert await ask(gw) == "local"
    edit(config, yaml(upstream, other, primary="openai"))
    assert await ask(gw) == "openai"
    assert await ask(gw) == "openai"
    assert (upstream.count("/chat/completions"), other.count("/chat/completions")) == (1, 2)
    stats = gw.get_stats()["config"]
    assert stats["primary_provider"] == "openai"
    assert (stats["reloads"], stats["reload_errors"], stats["last_reload_error"]) == (1, 0, None)
    assert 'llm_gateway_config_reloads_total{result="ok"} 1.0' in gw.metrics.text()


async def test_a_broken_edit_keeps_the_old_settings_until_fixed(
    upstream: Upstream, other: Upstream, caplog: pytest.LogCaptureFixture
) -> None:
    config = Path("config.yaml")
    edit(config, yaml(upstream, other))
    gw = watching()
    edit(config, yaml(upstream, other, primary="openai", extra="  cache: {ttl: -5}\n"))
    with caplog.at_level(logging.INFO, logger="sarai_llm"):
        assert [await ask(gw) for _ in range(3)] == ["local"] * 3
        errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
        assert len(errors) == 1  # once, not per call
        assert "config.yaml" in errors[0] and "cache.ttl" in errors[0]
        stats = gw.get_stats()["config"]
        assert (stats["reloads"], stats["reload_errors"]) == (0, 1)
        assert "config.yaml" in stats["last_reload_error"] and "cache.ttl" in stats["last_reload_error"]
        assert 'llm_gateway_config_reloads_total{result="error"} 1.0' in gw.metrics.text()

        edit(config, yaml(upstream, other, primary="openai", extra="  primary_providr: local\n"))  # a typo
        assert await ask(gw) == "local"
        assert "primary_providr" in gw.get_stats()["config"]["last_reload_error"]

        edit(config, yaml(upstream, other, primary="openai"))
        assert await ask(gw) == "openai"
    stats = gw.get_stats()["config"]
    assert (stats["reloads"], stats["reload_errors"], stats["last_reload_error"]) == (1, 2, None)
    assert upstream.count("/chat/completions") == 4 and other.count("/chat/completions") == 1
    assert any(r.levelno == logging.INFO and "reloaded" in r.getMessage() for r in caplog.records)


async def test_a_removed_file_keeps_the_previous_settings_until_it_is_back(
    upstream: Upstream, other: Upstream, caplog: pytest.LogCaptureFixture
) -> None:
    config, env = Path("config.yaml"), Path(".env")
    edit(config, yaml(upstream, other, primary="openai"))
    edit(env, "LLM_GATEWAY_NUM_RETRIES=1\n")
    gw = watching()
    config.unlink()  # a deploy writing it anew, or a slip: not a switch to the defaults (Ollama)
    with caplog.at_level(logging.ERROR, logger="sarai_llm"):
        assert await ask(gw) == "openai"
    assert gw._chain.retries == 1
    error = gw.get_stats()["config"]["last_reload_error"]
    assert error is not None and f"{config.resolve()} was removed" in error and "restart" in error
    assert [r.getMessage() for r in caplog.records] == [
        f"configuration not reloaded, the previous settings stay: {error}"
    ]
    edit(config, yaml(upstream, other))
    assert await ask(gw) == "local"
    env.unlink()
    assert await ask(gw) == "local" and gw._chain.retries == 1  # .env likewise
    assert "/.env was removed" in gw.get_stats()["config"]["last_reload_error"]
    stats = gw.get_stats()["config"]
    assert (stats["reloads"], stats["reload_errors"]) == (1, 2)


async def test_a_file_being_written_is_applied_once_it_settled(upstream: Upstream, other: Upstream) -> None:
    config = Path("config.yaml")
    edit(config, yaml(upstream, other))
    gw = watching()
    config.write_text(yaml(upstream, other, primary="openai"), encoding="utf-8")  # its mtime: now
    assert await ask(gw) == "local"  # it may still be being written (an editor, a checkout): not read yet
    await asyncio.sleep(0.3)
    assert await ask(gw) == "openai"
    assert gw.get_stats()["config"]["reloads"] == 1


async def test_an_unset_variable_is_an_error_naming_it(
    upstream: Upstream, other: Upstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = Path("config.yaml")
    edit(config, yaml(upstream, other))
    gw = watching()
    monkeypatch.delenv("RELOAD_TEST_KEY", raising=False)
    edit(config, yaml(upstream, other).replace("sk-test-reload", "${RELOAD_TEST_KEY}"))
    assert await ask(gw) == "local"
    assert "RELOAD_TEST_KEY" in gw.get_stats()["config"]["last_reload_error"]


async def test_an_env_file_edit_applies(upstream: Upstream, other: Upstream) -> None:
    edit(Path("config.yaml"), yaml(upstream, other))
    env = Path(".env")
    edit(env, "LLM_GATEWAY_NUM_RETRIES=0\n")
    gw = watching()
    assert await ask(gw) == "local"
    edit(env, "LLM_GATEWAY_PRIMARY_PROVIDER=openai\nLLM_GATEWAY_NUM_RETRIES=2\n")
    assert await ask(gw) == "openai"
    assert gw._chain.retries == 2  # the chain's settings follow too
    assert gw.config.explain()["primary_provider"] == ".env"


async def test_a_config_yaml_created_later_is_read(upstream: Upstream, other: Upstream) -> None:
    gw = sarai_llm.get_gateway({"local_base_url": upstream.base_url, "primary_provider": "local"})
    gw._reload_every = gw._reload_at = 0.0
    assert await ask(gw) == "local"
    edit(Path("config.yaml"), yaml(upstream, other, primary="openai"))
    assert await ask(gw) == "local"  # arguments still win over the file: the reload keeps them
    assert gw.get_stats()["config"]["reloads"] == 1
    assert gw.config.openai_base_url == other.base_url


@pytest.mark.parametrize("off", ["yaml", "environment"])
async def test_watch_config_false_turns_it_off(
    upstream: Upstream, other: Upstream, monkeypatch: pytest.MonkeyPatch, off: str
) -> None:
    config = Path("config.yaml")
    if off == "environment":
        monkeypatch.setenv("LLM_GATEWAY_WATCH_CONFIG", "false")
    edit(config, yaml(upstream, other, extra="  watch_config: false\n" if off == "yaml" else ""))
    gw = sarai_llm.get_gateway()
    assert gw._reload_at == math.inf
    gw._reload_every = 0.0
    edit(config, yaml(upstream, other, primary="openai"))
    assert await ask(gw) == "local"
    assert gw.get_stats()["config"]["reloads"] == 0


async def test_turning_watch_config_off_by_an_edit_stops_watching(upstream: Upstream, other: Upstream) -> None:
    config = Path("config.yaml")
    edit(config, yaml(upstream, other))
    gw = watching()
    edit(config, yaml(upstream, other, extra="  watch_config: false\n"))
    assert await ask(gw) == "local"
    edit(config, yaml(upstream, other, primary="openai"))
    assert await ask(gw) == "local"
    assert gw.get_stats()["config"]["reloads"] == 1


async def test_cached_answers_of_unchanged_routes_keep_hitting(
    upstream: Upstream, other: Upstream, caplog: pytest.LogCaptureFixture
) -> None:
    config = Path("config.yaml")
    edit(config, yaml(upstream, other))
    gw = watching()
    assert (await gw.chat(MESSAGES))["cached"] is False
    edit(config, yaml(upstream, other, extra="  num_retries: 1\n  cache: {ttl: 120, max_size: 50, namespace: other}\n"))
    with caplog.at_level(logging.WARNING, logger="sarai_llm"):
        hit = await gw.chat(MESSAGES)
    assert hit["cached"] is True and hit["provider"] == "local"
    assert (gw.cache.ttl, gw.cache.max_size) == (120, 50)  # type: ignore[union-attr]
    assert gw.get_stats()["cache"]["ttl"] == 120
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "cache_namespace" in warnings[0] and "restart" in warnings[0]
    assert gw.cache.namespace == ""  # type: ignore[union-attr]  # the live cache keeps its store and keys

    edit(config, yaml(upstream, other, primary="openai"))
    assert (await gw.chat(MESSAGES))["provider"] == "openai"  # a new route: a miss
    again = await gw.chat(MESSAGES, provider="local")  # the same route as the old default: still cached
    assert again["cached"] is True and again["provider"] == "local"
    assert upstream.count("/chat/completions") == 1 and other.count("/chat/completions") == 1
    assert gw.get_stats()["cache"]["hits"] == 2


async def test_a_call_in_flight_finishes_on_the_old_provider(upstream: Upstream, other: Upstream) -> None:
    config = Path("config.yaml")
    edit(config, yaml(upstream, other))
    gw = watching()
    upstream.behaviour.delay = 0.5
    slow = asyncio.create_task(gw.chat(MESSAGES, use_cache=False))
    while not upstream.count("/chat/completions"):
        await asyncio.sleep(0.01)
    edit(config, yaml(upstream, other, primary="openai"))
    assert await ask(gw) == "openai"  # applied while the first call waits
    assert (await slow)["provider"] == "local"
    assert (upstream.count("/chat/completions"), other.count("/chat/completions")) == (1, 1)


async def test_one_thread_reloads_the_others_go_on(upstream: Upstream, other: Upstream) -> None:
    config = Path("config.yaml")
    edit(config, yaml(upstream, other))
    gw = watching()
    edit(config, yaml(upstream, other, primary="openai"))
    with gw._watcher.lock:  # another thread is reloading: this call does not wait for it
        assert await ask(gw) == "local"
    assert await ask(gw) == "openai"


def test_threads_of_the_sync_api_see_one_reload(upstream: Upstream, other: Upstream) -> None:
    config = Path("config.yaml")
    edit(config, yaml(upstream, other))
    gw = watching()
    assert sarai_llm.chat_sync(MESSAGES, use_cache=False)["provider"] == "local"
    edit(config, yaml(upstream, other, primary="openai"))
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _: sarai_llm.chat_sync(MESSAGES, use_cache=False)["provider"], range(16)))
    assert answers == ["openai"] * 16
    assert gw.get_stats()["config"]["reloads"] == 1 and other.count("/chat/completions") == 16


async def test_streams_and_embeddings_look_too(upstream: Upstream, other: Upstream) -> None:
    config = Path("config.yaml")
    edit(config, yaml(upstream, other))
    gw = watching()
    edit(config, yaml(upstream, other, primary="openai"))
    assert "".join([piece async for piece in gw.stream_chat(MESSAGES, use_cache=False)]) == "pong!"
    assert other.count("/chat/completions") == 1
    edit(config, yaml(upstream, other))
    await gw.embed("text", use_cache=False)
    assert upstream.count("/embeddings") == 1 and gw.config.primary_provider == "local"


def test_configs_that_read_no_file_do_not_watch() -> None:
    Path("config.yaml").write_text("llm_gateway: {primary_provider: local}\n", encoding="utf-8")
    assert GatewayConfig.defaults().watched_files == ()
    assert FakeGateway()._reload_at == math.inf
    assert GatewayConfig.load().watched_files == (Path("config.yaml").resolve(), Path(".env").resolve())


def test_config_check(upstream: Upstream, other: Upstream, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["config", "--check"]) == cli.EXIT_USAGE
    assert "config.yaml not found" in capsys.readouterr().err
    edit(Path("config.yaml"), yaml(upstream, other))
    assert cli.main(["config", "--check"]) == cli.EXIT_OK
    assert "config.yaml: OK" in capsys.readouterr().out
    bad = Path("bad.yaml")
    bad.write_text(yaml(upstream, other, extra="  cache: {max_size: zero}\n"), encoding="utf-8")
    assert cli.main(["config", "--check", str(bad)]) == cli.EXIT_USAGE
    captured = capsys.readouterr()
    assert captured.out == "" and "bad.yaml" in captured.err and "cache.max_size" in captured.err
    assert cli.main(["config", "--check", "missing.yaml"]) == cli.EXIT_USAGE
    assert "missing.yaml" in capsys.readouterr().err
