"""OpenTelemetry GenAI client metrics (issue 9), read back with the SDK's in-memory reader.

Needs ``opentelemetry-api`` and ``opentelemetry-sdk`` (the dev extra); the
upstream is the loopback stub (5 prompt and 2 completion tokens per chat).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import sarai_llm

metrics_api = pytest.importorskip("opentelemetry.metrics", reason="opentelemetry-api is not installed")
sdk_metrics = pytest.importorskip("opentelemetry.sdk.metrics", reason="opentelemetry-sdk is not installed")
from opentelemetry.sdk.metrics.export import InMemoryMetricReader  # noqa: E402

from sarai_llm.observe import otel  # noqa: E402
from sarai_llm.observe.otel import OPERATION_DURATION, TOKEN_USAGE, GenAIMetrics, detect  # noqa: E402


def msg(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


@pytest.fixture
def reader(monkeypatch: pytest.MonkeyPatch) -> InMemoryMetricReader:
    """An SDK meter provider with an in-memory reader, as the application's global provider."""
    reader = InMemoryMetricReader()
    provider = sdk_metrics.MeterProvider(metric_readers=[reader])
    # The API lets a process set its global provider once; tests stand in for it.
    monkeypatch.setattr(metrics_api, "get_meter_provider", lambda: provider)
    return reader


def points(reader: InMemoryMetricReader) -> dict[str, list[tuple[dict[str, Any], Any]]]:
    """``{instrument name: [(attributes, data point), ...]}`` with the unit checked by the caller."""
    found: dict[str, list[tuple[dict[str, Any], Any]]] = {}
    data = reader.get_metrics_data()
    for resource_metrics in data.resource_metrics if data else []:
        for scope in resource_metrics.scope_metrics:
            for metric in scope.metrics:
                for point in metric.data.data_points:
                    found.setdefault(metric.name, []).append((dict(point.attributes), point, metric.unit))
    return found


def configure(up: Any, dead_url: str) -> sarai_llm.Gateway:
    return sarai_llm.get_gateway(
        {
            "primary_provider": "ollama",
            "fallback_providers": ["local"],
            "ollama_base_url": dead_url,
            "local_base_url": up.base_url,
            "local_model": "stub",
        }
    )


async def test_genai_instruments_with_the_semantic_convention_attributes(
    reader: InMemoryMetricReader, upstream: Any, dead_url: str
) -> None:
    configure(upstream, dead_url)
    await sarai_llm.chat(msg("one"))  # ollama fails (connection), local answers
    await sarai_llm.chat(msg("one"))  # a cache hit: no GenAI operation
    await sarai_llm.embed("hola", provider="local")
    found = points(reader)

    chat = {"gen_ai.operation.name": "chat", "gen_ai.provider.name": "local", "gen_ai.request.model": "stub"}
    tokens = {frozenset(attrs.items()): (point, unit) for attrs, point, unit in found[TOKEN_USAGE]}
    input_point, unit = tokens[frozenset({**chat, "gen_ai.token.type": "input"}.items())]
    assert unit == "{token}"
    assert (input_point.count, input_point.sum) == (1, 5)
    output_point, _ = tokens[frozenset({**chat, "gen_ai.token.type": "output"}.items())]
    assert (output_point.count, output_point.sum) == (1, 2)
    embeddings = {**chat, "gen_ai.operation.name": "embeddings", "gen_ai.request.model": "stub"}
    embed_point, _ = tokens[frozenset({**embeddings, "gen_ai.token.type": "input"}.items())]
    assert (embed_point.count, embed_point.sum) == (1, 1)  # the stub reports 1 token per text
    assert frozenset({**embeddings, "gen_ai.token.type": "output"}.items()) not in tokens
    assert list(input_point.explicit_bounds)[:3] == [1, 4, 16]  # the conventions' advised buckets

    durations = {frozenset(attrs.items()): (point, unit) for attrs, point, unit in found[OPERATION_DURATION]}
    ok_point, unit = durations[frozenset(chat.items())]
    assert unit == "s" and ok_point.count == 1 and 0 < ok_point.sum < 10
    failed = {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "ollama",
        "gen_ai.request.model": "llama3.2:latest",
        "error.type": "connection",
    }
    failed_point, _ = durations[frozenset(failed.items())]
    assert failed_point.count == 1
    assert durations[frozenset(embeddings.items())][0].count == 1
    assert sum(point.count for point, _ in durations.values()) == 3  # the hit recorded nothing


async def test_streams_record_their_whole_duration_and_usage(reader: InMemoryMetricReader, upstream: Any) -> None:
    sarai_llm.get_gateway({"primary_provider": "local", "local_base_url": upstream.base_url, "local_model": "stub"})
    assert "".join([p async for p in sarai_llm.stream_chat(msg("s"), use_cache=False)]) == "pong!"
    found = points(reader)
    by_type = {attrs.get("gen_ai.token.type"): point.sum for attrs, point, _ in found[TOKEN_USAGE]}
    assert by_type == {"input": 5, "output": 3}
    assert [point.count for _, point, _ in found[OPERATION_DURATION]] == [1]


async def test_nothing_is_recorded_without_a_configured_meter_provider(
    upstream: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The API's default (a proxy until the application sets one) means "not configured".
    assert type(metrics_api.get_meter_provider()).__name__ in ("_ProxyMeterProvider", "NoOpMeterProvider")
    assert detect() is None
    found: list[GenAIMetrics | None] = []
    monkeypatch.setattr(otel, "detect", lambda: found.append(detect()) or found[-1])
    gateway = sarai_llm.get_gateway(
        {"primary_provider": "local", "local_base_url": upstream.base_url, "local_model": "stub"}
    )
    await sarai_llm.chat(msg("x"))
    await sarai_llm.chat(msg("y"))
    assert found == [None]  # looked for once, at the first upstream attempt
    assert not [o for o in gateway.events.observers if isinstance(o, GenAIMetrics)]


async def test_an_explicit_recorder(upstream: Any) -> None:
    reader = InMemoryMetricReader()
    gateway = sarai_llm.get_gateway(
        {"primary_provider": "local", "local_base_url": upstream.base_url, "local_model": "stub"}
    )
    gateway.observe(GenAIMetrics(sdk_metrics.MeterProvider(metric_readers=[reader])))
    await sarai_llm.chat(msg("x"))
    assert {TOKEN_USAGE, OPERATION_DURATION} <= set(points(reader))


def test_import_and_gateway_creation_never_import_opentelemetry(tmp_path: Path) -> None:
    code = (
        "import sys, sarai_llm; sarai_llm.get_gateway(); sarai_llm.get_stats(); "
        "assert not [m for m in sys.modules if m.startswith('opentelemetry')], 'imported'"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("LLM_GATEWAY_")}
    subprocess.run([sys.executable, "-c", code], env=env, cwd=tmp_path, check=True, timeout=60)


def test_detect_finds_a_global_sdk_provider(tmp_path: Path) -> None:
    # The real global path, in a fresh process (a process sets its provider once).
    code = (
        "from opentelemetry import metrics\n"
        "from opentelemetry.sdk.metrics import MeterProvider\n"
        "from sarai_llm.observe.otel import detect, GenAIMetrics\n"
        "assert detect() is None\n"
        "metrics.set_meter_provider(MeterProvider())\n"
        "assert isinstance(detect(), GenAIMetrics)\n"
    )
    subprocess.run([sys.executable, "-c", code], cwd=tmp_path, check=True, timeout=60)
