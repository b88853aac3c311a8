"""The Grafana dashboard (issue 9): valid dashboard JSON, over metrics the gateway really exports."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

import sarai_llm

DASHBOARD = Path(__file__).resolve().parent.parent / "dashboards" / "sarai-llm.json"
METRIC = re.compile(r"\bllm_gateway_[a-z_]+\b")
PANEL_TYPES = {"row", "stat", "timeseries", "table", "gauge", "bargauge"}


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return data


def panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in dashboard["panels"]:
        yield panel
        yield from panel.get("panels", [])  # panels inside collapsed rows


def queries(dashboard: dict[str, Any]) -> Iterator[str]:
    for panel in panels(dashboard):
        for target in panel.get("targets", []):
            yield target["expr"]
    for variable in dashboard["templating"]["list"]:
        query = variable.get("query")
        if variable["type"] == "query":
            yield query["query"] if isinstance(query, dict) else query


def test_dashboard_is_valid_grafana_json(dashboard: dict[str, Any]) -> None:
    assert isinstance(dashboard["title"], str) and dashboard["title"]
    assert re.fullmatch(r"[A-Za-z0-9_-]{1,40}", dashboard["uid"])
    assert isinstance(dashboard["schemaVersion"], int) and dashboard["schemaVersion"] >= 36
    assert dashboard["id"] is None  # importable into any Grafana
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"

    ids = [p["id"] for p in panels(dashboard)]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    for panel in panels(dashboard):
        assert panel["type"] in PANEL_TYPES, panel["type"]
        grid = panel["gridPos"]
        assert all(isinstance(grid[k], int) for k in ("x", "y", "w", "h"))
        assert 0 <= grid["x"] and grid["x"] + grid["w"] <= 24 and grid["h"] > 0
        if panel["type"] == "row":
            continue
        assert panel["title"]
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        assert panel["targets"], f"panel {panel['title']!r} has no query"
        refs = [t["refId"] for t in panel["targets"]]
        assert len(refs) == len(set(refs))
        for target in panel["targets"]:
            expr = target["expr"]
            assert isinstance(expr, str) and METRIC.search(expr), expr
            assert expr.count("(") == expr.count(")") and expr.count("{") == expr.count("}"), expr
            assert target["datasource"]["uid"] == "${datasource}"


def test_dashboard_covers_what_operators_need(dashboard: dict[str, Any]) -> None:
    exprs = "\n".join(queries(dashboard))
    for needed in (
        "llm_gateway_requests_total",  # requests per provider
        "llm_gateway_errors_total",  # errors per provider
        "llm_gateway_fallbacks_total",
        "histogram_quantile(0.5, sum by (le, provider) (rate(llm_gateway_latency_seconds_bucket",
        "histogram_quantile(0.95, sum by (le, provider) (rate(llm_gateway_latency_seconds_bucket",
        "llm_gateway_cache_hit_rate",
        "llm_gateway_cost_usd_total",
        "llm_gateway_saved_usd_total",
        "sum by (caller)",
    ):
        assert needed in exprs, needed


async def test_every_metric_the_dashboard_queries_is_exported(
    dashboard: dict[str, Any], upstream: Any, dead_url: str
) -> None:
    sarai_llm.get_gateway(
        {
            "primary_provider": "ollama",
            "fallback_providers": ["local"],
            "ollama_base_url": dead_url,
            "local_base_url": upstream.base_url,
            "local_model": "stub",
            "local_input_cost_per_token": 0.000001,
        }
    )
    message = [{"role": "user", "content": "dash"}]
    await sarai_llm.chat(message, caller="rag")  # a fallback: ollama is down
    await sarai_llm.chat(message, caller="rag")  # a hit
    assert "".join([p async for p in sarai_llm.stream_chat(message, provider="local", use_cache=False)])
    await sarai_llm.embed("dash", provider="local", caller="rag")

    exported = {
        sample.name for family in text_string_to_metric_families(sarai_llm.metrics_text()) for sample in family.samples
    }
    queried = {name for expr in queries(dashboard) for name in METRIC.findall(expr)}
    assert queried, "the dashboard queries no metric"
    assert sorted(queried - exported) == []
