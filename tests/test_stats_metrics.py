"""Observability (issue 5): get_stats() numbers, Prometheus text and endpoint,
health checks, reset cycles, multiprocess mode, secrets, per-caller attribution.

Upstreams are the loopback stub (tests/upstream.py) and closed loopback ports.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import REGISTRY, generate_latest
from prometheus_client.parser import text_string_to_metric_families

import sarai_llm
from sarai_llm.observe import LATENCY_BUCKETS, Buckets, Stats, error_type

KEY = "sk-metrics-DISTINCTIVE-8c41e7f09b2d"


@pytest.fixture(autouse=True)
def _single_process_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    # A developer's PROMETHEUS_MULTIPROC_DIR would switch every gateway here to multiprocess mode.
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    monkeypatch.delenv("prometheus_multiproc_dir", raising=False)


def msg(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


def configure(up: Any, dead_url: str, **extra: Any) -> sarai_llm.Gateway:
    """ollama (a closed port) first, then local (the stub)."""
    settings: dict[str, Any] = {
        "primary_provider": "ollama",
        "fallback_providers": ["local"],
        "ollama_base_url": dead_url,
        "local_base_url": up.base_url,
        "local_model": "stub",
    }
    settings.update(extra)
    return sarai_llm.get_gateway(settings)


async def run_script(up: Any) -> None:
    """2 misses, 1 hit, 1 fallback, 1 all-fail."""
    first = await sarai_llm.chat(msg("one"), provider="local", caller="rag")  # miss: local
    assert (first["cached"], first["provider"]) == (False, "local")
    await sarai_llm.chat(msg("two"), provider="local")  # miss: local
    hit = await sarai_llm.chat(msg("one"), provider="local", caller="rag")  # hit
    assert hit["cached"] is True
    rescued = await sarai_llm.chat(msg("three"))  # miss: ollama fails, local answers
    assert (rescued["cached"], rescued["provider"]) == (False, "local")
    up.behaviour.status = 500
    with pytest.raises(sarai_llm.AllProvidersFailedError):  # miss: ollama fails, local fails
        await sarai_llm.chat(msg("four"), caller="rag")
    up.behaviour.status = 200


def numbers(tree: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], float]]:
    """Every numeric leaf of a nested dict, with its path."""
    if isinstance(tree, dict):
        for key, value in tree.items():
            yield from numbers(value, (*path, str(key)))
    elif isinstance(tree, int | float) and not isinstance(tree, bool):
        yield path, tree


def parse(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """``{(sample name, labels): value}`` of a Prometheus text exposition."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str) -> float:
    return samples[(name, frozenset(labels.items()))]


def http_get(url: str) -> tuple[int, str, str]:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never through a proxy
    with opener.open(url, timeout=5) as response:
        return response.status, response.headers.get("Content-Type", ""), response.read().decode()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def refused(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(2)
        return s.connect_ex(("127.0.0.1", port)) != 0


# --- get_stats(): every number ----------------------------------------------------------------


async def test_scripted_sequence_every_number(upstream: Any, dead_url: str) -> None:
    configure(upstream, dead_url)
    await run_script(upstream)
    stats = sarai_llm.get_stats()

    expected = {
        ("total_requests",): 5,  # every call, the hit included
        ("total_errors",): 3,  # ollama twice (once rescued by the fallback), local once
        ("total_fallbacks",): 1,
        ("error_rate",): 0.5,  # 3 errors / 6 attempts
        ("providers", "local", "requests"): 4,  # the hit never reached a provider
        ("providers", "local", "errors"): 1,
        ("providers", "local", "error_rate"): 0.25,
        ("providers", "local", "prompt_tokens"): 15,  # the stub reports 5 + 2 per answer
        ("providers", "local", "completion_tokens"): 6,
        ("providers", "local", "total_tokens"): 21,
        ("providers", "local", "cached_tokens"): 0,  # the stub reports no token details
        ("providers", "local", "reasoning_tokens"): 0,
        ("providers", "ollama", "requests"): 2,
        ("providers", "ollama", "errors"): 2,
        ("providers", "ollama", "error_rate"): 1.0,
        ("providers", "ollama", "prompt_tokens"): 0,
        ("providers", "ollama", "completion_tokens"): 0,
        ("providers", "ollama", "total_tokens"): 0,
        ("providers", "ollama", "cached_tokens"): 0,
        ("providers", "ollama", "reasoning_tokens"): 0,
        ("callers", "rag", "requests"): 3,
        ("callers", "rag", "cache_hits"): 1,
        ("callers", "rag", "errors"): 1,
        ("cache", "size"): 3,  # one, two, three (errors are never cached)
        ("cache", "max_size"): 1000,
        ("cache", "hits"): 1,
        ("cache", "misses"): 4,
        ("cache", "hit_rate"): 0.2,
        ("cache", "evictions"): 0,
        ("cache", "ttl"): 3600,
        ("cache", "errors"): 0,
        ("cache", "coalesced"): 0,
        ("cache", "memory_max_bytes"): 64 * 2**20,  # cache.memory_mb's default
        # A local model without a configured price costs nothing (tests/test_cost.py prices one).
        ("cost", "spent_usd"): 0.0,
        ("cost", "saved_usd"): 0.0,
        ("cost", "providers", "local", "spent_usd"): 0.0,
        ("cost", "providers", "local", "saved_usd"): 0.0,
        ("cost", "providers", "local", "models", "stub", "spent_usd"): 0.0,
        ("cost", "providers", "local", "models", "stub", "saved_usd"): 0.0,
        ("cost", "callers", "rag", "spent_usd"): 0.0,
        ("cost", "callers", "rag", "saved_usd"): 0.0,
        ("config", "reloads"): 0,  # no configuration file changed
        ("config", "reload_errors"): 0,
    }
    # Per server (each provider has one here, named by its base URL): attempts, failures, none left under way.
    for name, url, requests, errors in (("local", upstream.base_url, 4, 1), ("ollama", dead_url, 2, 2)):
        row = {"requests": requests, "errors": errors, "in_flight": 0}
        expected |= {("providers", name, "deployments", url, key): n for key, n in row.items()}
    # Latencies and waits are measured, not scripted: positive and ordered; no wait without max_concurrent.
    latencies = {("providers", p, f"latency_{q}_ms") for p in ("local", "ollama") for q in ("p50", "p95")}
    waits = {("providers", p, "deployments", u, "queue_wait_s") for p, u in (("local", upstream.base_url),
                                                                            ("ollama", dead_url))}  # fmt: skip
    # The direct path knows the upstream's wait: what the answered calls spent here is measured, and small.
    overheads = {("providers", "local", f"overhead_{q}_ms") for q in ("p50", "p95")}
    seen = dict(numbers(stats))
    assert all(0 <= seen[path] < 0.05 for path in waits)
    assert 0 < seen["cache", "memory_bytes"] < 10_000  # three short answers, measured
    assert 0 < seen[min(overheads)] <= seen[max(overheads)]  # p95: the first miss, which imported LiteLLM
    assert stats["providers"]["ollama"]["overhead_p50_ms"] is None  # it never answered
    unexpected = set(seen) - set(expected) - latencies - waits - overheads - {("cache", "memory_bytes")}
    assert not unexpected, f"numbers this test does not check yet: {sorted(unexpected)}"
    assert {path: seen.get(path) for path in expected} == expected
    for provider in ("local", "ollama"):
        row = stats["providers"][provider]
        assert 0 < row["latency_p50_ms"] <= row["latency_p95_ms"]
    assert stats["config"] == {
        "primary_provider": "ollama", "fallback_providers": ["local"], "cache_enabled": True,
        "reloads": 0, "reload_errors": 0, "last_reload_error": None,
    }  # fmt: skip
    # The counts match what reached the wire: 4 attempts at local.
    assert upstream.count("/chat/completions") == 4


async def test_embeddings_publish_the_gateways_overhead(upstream: Any, dead_url: str) -> None:
    """An embedding on the direct path knows the upstream's wait as a chat does: the rest is the overhead, in
    stats and metrics; hits and repeated texts add no sample (nothing went upstream)."""
    configure(upstream, dead_url, primary_provider="local", fallback_providers=[], local_embed_model="stub")
    for texts in (["one"], ["two", "three"], ["one", "two"]):  # the last: hits only
        await sarai_llm.embed(texts)
    samples = parse(sarai_llm.metrics_text())
    assert value(samples, "llm_gateway_overhead_seconds_count", provider="local") == 2
    assert 0 < value(samples, "llm_gateway_overhead_seconds_sum", provider="local") < 5
    row = sarai_llm.get_stats()["providers"]["local"]
    assert 0 < row["overhead_p50_ms"] <= row["overhead_p95_ms"]


async def test_stats_without_cache_have_no_cache_key(upstream: Any, dead_url: str) -> None:
    configure(upstream, dead_url, cache_enabled=False)
    await sarai_llm.chat(msg("one"), provider="local")
    await sarai_llm.chat(msg("one"), provider="local")
    stats = sarai_llm.get_stats()
    assert "cache" not in stats
    assert (stats["total_requests"], stats["providers"]["local"]["requests"]) == (2, 2)
    samples = parse(sarai_llm.metrics_text())
    assert value(samples, "llm_gateway_cache_hits_total") == 0
    assert value(samples, "llm_gateway_cache_size") == 0


# --- Prometheus text ---------------------------------------------------------------------------

LABELS = {
    "llm_gateway_requests": ("counter", {"provider", "model"}),
    "llm_gateway_errors": ("counter", {"provider", "error_type"}),
    "llm_gateway_fallbacks": ("counter", {"from_provider", "to_provider"}),
    "llm_gateway_latency_seconds": ("histogram", {"provider", "cached"}),
    "llm_gateway_time_to_first_token_seconds": ("histogram", {"provider"}),
    "llm_gateway_tokens": ("counter", {"provider", "model", "type"}),
    "llm_gateway_cache_hits": ("counter", set()),
    "llm_gateway_cache_misses": ("counter", set()),
    "llm_gateway_cache_hit_rate": ("gauge", set()),
    "llm_gateway_cache_size": ("gauge", set()),
    "llm_gateway_cache_memory_bytes": ("gauge", set()),
    "llm_gateway_caller_requests": ("counter", {"caller"}),
    "llm_gateway_calls": ("counter", set()),
    "llm_gateway_cost_usd": ("counter", {"provider", "model", "caller"}),
    "llm_gateway_saved_usd": ("counter", {"provider", "model", "caller"}),
}


async def test_metrics_text_parses_with_every_name_and_label(upstream: Any, dead_url: str) -> None:
    configure(upstream, dead_url)
    await run_script(upstream)
    pieces = [p async for p in sarai_llm.stream_chat(msg("stream"), provider="local", use_cache=False)]
    assert "".join(pieces) == "pong!"
    text = sarai_llm.metrics_text()

    families = {family.name: family for family in text_string_to_metric_families(text)}
    for name, (kind, labels) in LABELS.items():
        family = families[name]
        assert family.type == kind, name
        assert family.samples, f"{name} has no samples"
        for sample in family.samples:
            assert set(sample.labels) - {"le"} == labels, (name, sample.labels)

    samples = parse(text)
    assert value(samples, "llm_gateway_calls_total") == 6
    assert value(samples, "llm_gateway_requests_total", provider="local", model="stub") == 5
    assert value(samples, "llm_gateway_requests_total", provider="ollama", model="llama3.2:latest") == 2
    assert value(samples, "llm_gateway_errors_total", provider="ollama", error_type="connection") == 2
    assert value(samples, "llm_gateway_errors_total", provider="local", error_type="response") == 1
    assert value(samples, "llm_gateway_fallbacks_total", from_provider="ollama", to_provider="local") == 1
    assert value(samples, "llm_gateway_latency_seconds_count", provider="local", cached="false") == 4
    assert value(samples, "llm_gateway_latency_seconds_count", provider="local", cached="true") == 1
    hit_le = value(samples, "llm_gateway_latency_seconds_bucket", provider="local", cached="true", le="0.01")
    assert hit_le == 1  # a hit takes microseconds
    assert value(samples, "llm_gateway_time_to_first_token_seconds_count", provider="local") == 1
    assert value(samples, "llm_gateway_tokens_total", provider="local", model="stub", type="prompt") >= 15
    assert value(samples, "llm_gateway_tokens_total", provider="local", model="stub", type="completion") >= 6
    assert value(samples, "llm_gateway_cache_hits_total") == 1
    assert value(samples, "llm_gateway_cache_misses_total") == 4  # the stream bypassed the cache
    assert value(samples, "llm_gateway_cache_hit_rate") == pytest.approx(0.2)
    assert value(samples, "llm_gateway_cache_size") == 3
    assert value(samples, "llm_gateway_cache_memory_bytes") == sarai_llm.get_stats()["cache"]["memory_bytes"] > 0
    assert value(samples, "llm_gateway_caller_requests_total", caller="rag") == 3
    # The same numbers as get_stats(): one set of counters behind both.
    stats = sarai_llm.get_stats()
    assert stats["total_requests"] == 6
    assert stats["providers"]["local"]["requests"] == 5


def test_latency_buckets_are_cumulative_and_inclusive() -> None:
    buckets = Buckets((0.001, 0.01), 1000.0)  # observed in ms
    for ms in (0.5, 1.0, 5.0, 20.0):
        buckets.observe(ms)
    rows, total = buckets.cumulative()
    assert rows == [(0.001, 2), (0.01, 3), (float("inf"), 4)]  # le is inclusive: 1 ms is in le=0.001
    assert total == pytest.approx(0.0265)
    stats = Stats()
    stats.answered("local", "m", cached=True, latency_ms=LATENCY_BUCKETS[0] * 1000, caller=None)
    stats.answered("local", "m", cached=True, latency_ms=1e9, caller=None)
    rows, _ = stats.hit_latency["local"].cumulative()
    assert rows[0] == (LATENCY_BUCKETS[0], 1) and rows[-1] == (float("inf"), 2)


def test_error_type_labels() -> None:
    assert error_type(sarai_llm.ProviderConnectionError("ollama", "x")) == "connection"
    assert error_type(sarai_llm.ProviderTimeoutError("ollama", "x")) == "timeout"
    assert error_type(sarai_llm.ProviderRateLimitError("ollama", "x")) == "rate_limit"
    assert error_type(sarai_llm.ProviderAuthError("ollama", "x")) == "auth"
    assert error_type(sarai_llm.ProviderResponseError("ollama", "x")) == "response"
    assert error_type(sarai_llm.ProviderError("ollama", "x")) == "provider"
    assert error_type(TimeoutError("secret text")) == "timeout"


# --- HTTP endpoint -----------------------------------------------------------------------------


async def test_http_endpoint_serves_the_metrics(upstream: Any, dead_url: str) -> None:
    configure(upstream, dead_url)
    await sarai_llm.chat(msg("one"), provider="local")
    with sarai_llm.start_metrics_server(0) as server:
        assert server.host == "127.0.0.1"
        assert server.url == f"http://127.0.0.1:{server.port}/metrics"
        status, content_type, body = http_get(server.url)
        assert status == 200 and content_type.startswith("text/plain")
        assert value(parse(body), "llm_gateway_requests_total", provider="local", model="stub") == 1
        assert body == sarai_llm.metrics_text()
        # The endpoint follows the process-wide gateway across a reset.
        sarai_llm.reset_gateway()
        configure(upstream, dead_url)
        await sarai_llm.chat(msg("one"), provider="local")  # a hit in the new gateway
        samples = parse(http_get(server.url)[2])
        assert value(samples, "llm_gateway_cache_hits_total") == 1
        assert ("llm_gateway_requests_total", frozenset({("provider", "local"), ("model", "stub")})) not in samples
    assert refused(server.port)


async def test_metrics_port_setting_serves_while_the_gateway_lives(
    upstream: Any, dead_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    port = free_port()
    monkeypatch.setenv("LLM_GATEWAY_METRICS_PORT", str(port))
    gateway = configure(upstream, dead_url)
    assert gateway.metrics.server is not None and gateway.metrics.server.host == "127.0.0.1"
    await sarai_llm.chat(msg("one"), provider="local")
    url = f"http://127.0.0.1:{port}/metrics"
    assert value(parse(http_get(url)[2]), "llm_gateway_calls_total") == 1
    # A new gateway takes the port over (the old one is closed after the new one exists).
    configure(upstream, dead_url, cache_ttl=60)
    assert value(parse(http_get(url)[2]), "llm_gateway_calls_total") == 0
    sarai_llm.reset_gateway()
    assert refused(port)
    with pytest.raises(urllib.error.URLError):
        http_get(url)


# --- health checks -----------------------------------------------------------------------------


async def test_health_check_live_and_dead_within_the_timeout(upstream: Any, dead_url: str) -> None:
    configure(upstream, dead_url, health_timeout=2)
    started = time.monotonic()
    assert await sarai_llm.health_check() == {"ollama": False, "local": True}
    assert time.monotonic() - started < 2 + 1
    detailed = await sarai_llm.health_check(detailed=True)
    assert detailed["local"]["ok"] is True and detailed["local"]["error"] is None
    assert detailed["ollama"]["ok"] is False
    assert isinstance(detailed["ollama"]["error"], str) and detailed["ollama"]["error"]
    for row in detailed.values():
        assert isinstance(row["latency_ms"], float) and row["latency_ms"] >= 0


async def test_health_check_of_a_silent_server_is_bounded(upstream: Any) -> None:
    with socket.socket() as silent:  # accepts connections (backlog) and never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        host, port = silent.getsockname()
        sarai_llm.get_gateway(
            {
                "primary_provider": "local",
                "fallback_providers": ["openai"],
                "local_base_url": upstream.base_url,
                "openai_base_url": f"http://{host}:{port}",
                "openai_api_key": KEY,
                "health_timeout": 1,
            }
        )
        started = time.monotonic()
        detailed = await sarai_llm.health_check(detailed=True)
        elapsed = time.monotonic() - started
    assert elapsed < 1 + 1
    assert {name: row["ok"] for name, row in detailed.items()} == {"local": True, "openai": False}
    assert "1 s" in detailed["openai"]["error"] and KEY not in json.dumps(detailed)


# --- reset cycles ------------------------------------------------------------------------------


async def _one_cycle(up: Any, dead_url: str) -> tuple[dict[str, Any], dict[Any, float]]:
    configure(up, dead_url)
    sarai_llm.clear_cache()  # the cache directory outlives the gateway
    await sarai_llm.chat(msg("one"), provider="local", caller="rag")
    await sarai_llm.chat(msg("one"), provider="local", caller="rag")
    return sarai_llm.get_stats(), parse(sarai_llm.metrics_text())


async def test_two_reset_cycles_do_not_double_count(upstream: Any, dead_url: str) -> None:
    results = []
    for _ in range(2):
        results.append(await _one_cycle(upstream, dead_url))
        sarai_llm.reset_gateway()
    (stats1, samples1), (stats2, samples2) = results
    assert stats1 == {**stats2, "providers": stats1["providers"]}  # latencies differ, nothing else
    assert (stats2["total_requests"], stats2["cache"]["hits"], stats2["callers"]["rag"]["requests"]) == (2, 1, 2)
    assert value(samples2, "llm_gateway_calls_total") == 2
    assert value(samples2, "llm_gateway_requests_total", provider="local", model="stub") == 1
    assert value(samples2, "llm_gateway_caller_requests_total", caller="rag") == 2
    assert {k for k in samples1 if "latency" not in k[0]} == {k for k in samples2 if "latency" not in k[0]}


async def test_global_registry_only_when_asked_and_reset_safe(
    upstream: Any, dead_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    def in_global() -> str:
        return generate_latest(REGISTRY).decode()

    configure(upstream, dead_url)
    assert "llm_gateway_calls_total" not in in_global()  # own registry by default
    sarai_llm.reset_gateway()

    monkeypatch.setenv("LLM_GATEWAY_METRICS_GLOBAL", "true")
    for _ in range(2):
        await _one_cycle(upstream, dead_url)
        configure(upstream, dead_url, cache_ttl=60)  # replaced while alive: no "Duplicated timeseries"
        await sarai_llm.chat(msg("one"), provider="local")
        text = in_global()
        assert text.count("\nllm_gateway_calls_total ") == 1
        assert value(parse(text), "llm_gateway_calls_total") == 1
        sarai_llm.reset_gateway()
        assert "llm_gateway_" not in in_global()


# --- several processes -------------------------------------------------------------------------

WORKER = textwrap.dedent(
    """
    import asyncio, sys
    import sarai_llm

    async def main() -> None:
        text = [{"role": "user", "content": sys.argv[1]}]
        await sarai_llm.chat(text, caller="worker")   # miss
        await sarai_llm.chat(text, caller="worker")   # hit

    async def busy() -> None:  # a scrape while this process's call is under way
        call = asyncio.create_task(sarai_llm.chat([{"role": "user", "content": "slow"}], use_cache=False))
        await asyncio.sleep(0.6)
        print(sarai_llm.metrics_text())
        await call

    if sys.argv[1] == "scrape":
        print(sarai_llm.metrics_text())
    else:
        asyncio.run(busy() if sys.argv[1] == "busy" else main())
    """
)


def multiprocess_env(upstream: Any, tmp_path: Path) -> dict[str, str]:
    metrics_dir = tmp_path / "prom"
    metrics_dir.mkdir()
    (tmp_path / "worker.py").write_text(WORKER)
    env = {k: v for k, v in os.environ.items() if not k.startswith("LLM_GATEWAY_")}
    return env | {
        "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
        "LLM_GATEWAY_PRIMARY_PROVIDER": "local",
        "LLM_GATEWAY_LOCAL_BASE_URL": upstream.base_url,
        "LLM_GATEWAY_LOCAL_MODEL": "stub",
        "LLM_GATEWAY_CACHE_DIR": str(tmp_path / "shared-cache"),
    }


def worker(tmp_path: Path, env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [sys.executable, str(tmp_path / "worker.py"), *args], env=env, cwd=tmp_path, capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_multiprocess_mode_counts_attempts_in_flight(upstream: Any, tmp_path: Path) -> None:
    """``llm_gateway_deployment_in_flight`` in multiprocess mode: the live processes' attempts under way."""
    env = multiprocess_env(upstream, tmp_path)
    upstream.behaviour.delay = 1.5
    during = parse(worker(tmp_path, env, "busy"))
    upstream.behaviour.delay = 0.0
    after = parse(worker(tmp_path, env, "scrape"))
    labels = {"provider": "local", "deployment": upstream.base_url}
    assert value(during, "llm_gateway_deployment_in_flight", **labels) == 1
    assert value(after, "llm_gateway_deployment_in_flight", **labels) == 0
    assert value(after, "llm_gateway_deployment_requests_total", **labels) == 1


def test_multiprocess_mode_sums_two_processes(upstream: Any, tmp_path: Path) -> None:
    env = multiprocess_env(upstream, tmp_path)
    env |= {"LLM_GATEWAY_LOCAL_INPUT_COST_PER_TOKEN": "0.000001", "LLM_GATEWAY_LOCAL_OUTPUT_COST_PER_TOKEN": "0.000002"}

    def run(*args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [sys.executable, str(tmp_path / "worker.py"), *args],
            env=env,
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    workers = [run("alpha"), run("beta")]  # concurrently
    for worker in workers:
        out, err = worker.communicate(timeout=120)
        assert worker.returncode == 0, err
    scraper = run("scrape")  # a third process makes no call and reads everyone's numbers
    out, err = scraper.communicate(timeout=120)
    assert scraper.returncode == 0, err
    assert "not shared" not in err

    samples = parse(out)
    assert value(samples, "llm_gateway_calls_total") == 4
    assert value(samples, "llm_gateway_requests_total", provider="local", model="stub") == 2
    assert value(samples, "llm_gateway_cache_hits_total") == 2
    assert value(samples, "llm_gateway_cache_misses_total") == 2
    assert value(samples, "llm_gateway_cache_hit_rate") == pytest.approx(0.5)
    assert value(samples, "llm_gateway_cache_size") == 2  # the shared cache directory
    assert value(samples, "llm_gateway_latency_seconds_count", provider="local", cached="true") == 2
    assert value(samples, "llm_gateway_latency_seconds_count", provider="local", cached="false") == 2
    assert value(samples, "llm_gateway_tokens_total", provider="local", model="stub", type="prompt") == 10
    assert value(samples, "llm_gateway_caller_requests_total", caller="worker") == 4
    assert value(samples, "llm_gateway_caller_cache_hits_total", caller="worker") == 2
    # Each answer costs 5 prompt + 2 completion tokens at the configured prices; each hit saves that.
    each = 5 * 0.000001 + 2 * 0.000002
    assert value(samples, "llm_gateway_cost_usd_total", provider="local", model="stub", caller="worker") == (
        pytest.approx(2 * each)
    )
    assert value(samples, "llm_gateway_saved_usd_total", provider="local", model="stub", caller="worker") == (
        pytest.approx(2 * each)
    )
    assert upstream.count("/chat/completions") == 2


def test_multiprocess_dir_that_is_not_a_directory_is_a_config_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path / "missing"))
    with pytest.raises(sarai_llm.ConfigError, match="PROMETHEUS_MULTIPROC_DIR"):
        sarai_llm.get_gateway()


# --- secrets -----------------------------------------------------------------------------------


async def test_no_api_key_in_stats_or_metrics(upstream: Any, dead_url: str) -> None:
    gateway = sarai_llm.get_gateway(
        {
            "primary_provider": "openai",
            "fallback_providers": ["local"],
            "openai_api_key": KEY,
            "openai_base_url": dead_url,
            "local_base_url": upstream.base_url,
            "local_model": "stub",
        }
    )
    answer = await sarai_llm.chat(msg("one"))  # openai fails, local answers
    assert answer["provider"] == "local"
    stats = sarai_llm.get_stats()
    assert stats["providers"]["openai"]["errors"] == 1
    text = sarai_llm.metrics_text()
    assert value(parse(text), "llm_gateway_errors_total", provider="openai", error_type="connection") == 1
    for shown in (json.dumps(stats), repr(stats), json.dumps(stats["config"]), text, repr(gateway.metrics)):
        assert KEY not in shown
        assert KEY[-12:] not in shown


# --- per-caller attribution --------------------------------------------------------------------


async def test_per_caller_attribution(upstream: Any, dead_url: str) -> None:
    configure(upstream, dead_url)
    await sarai_llm.chat(msg("one"), provider="local", caller="rag")
    await sarai_llm.chat(msg("one"), provider="local", caller="rag")
    await sarai_llm.embed("hola", provider="local", caller="rag")
    await sarai_llm.chat(msg("two"), provider="local", caller="chatbot")
    async for _ in sarai_llm.stream_chat(msg("three"), provider="local", caller="chatbot"):
        pass
    upstream.behaviour.status = 500
    with pytest.raises(sarai_llm.AllProvidersFailedError):
        await sarai_llm.chat(msg("four"), provider="local", caller="reasoner")
    upstream.behaviour.status = 200
    await sarai_llm.chat(msg("five"), provider="local")  # unattributed

    assert sarai_llm.get_stats()["callers"] == {
        "rag": {"requests": 3, "cache_hits": 1, "errors": 0},
        "chatbot": {"requests": 2, "cache_hits": 0, "errors": 0},
        "reasoner": {"requests": 1, "cache_hits": 0, "errors": 1},
    }
    samples = parse(sarai_llm.metrics_text())
    for caller, (requests, hits, errors) in {"rag": (3, 1, 0), "chatbot": (2, 0, 0), "reasoner": (1, 0, 1)}.items():
        assert value(samples, "llm_gateway_caller_requests_total", caller=caller) == requests
        assert value(samples, "llm_gateway_caller_cache_hits_total", caller=caller) == hits
        assert value(samples, "llm_gateway_caller_errors_total", caller=caller) == errors
    assert value(samples, "llm_gateway_calls_total") == 7


# --- cost --------------------------------------------------------------------------------------


def test_creating_a_gateway_does_not_import_prometheus_client(tmp_path: Path) -> None:
    code = "import sys, sarai_llm; sarai_llm.get_gateway(); assert 'prometheus_client' not in sys.modules"
    env = {k: v for k, v in os.environ.items() if "multiproc" not in k.lower()}
    subprocess.run([sys.executable, "-c", code], env=env, cwd=tmp_path, check=True, timeout=60)
