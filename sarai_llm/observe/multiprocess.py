"""Prometheus multiprocess mode: every event into prometheus-client metrics backed by files in
``PROMETHEUS_MULTIPROC_DIR``, which any process's scrape sums. A few microseconds per event."""

from __future__ import annotations

import threading
from functools import cache
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

from .._log import log
from ._spec import BUCKETS, HELP, LABELS, SPECS, TOKEN_KINDS, error_type
from .events import Observer, Usage

if TYPE_CHECKING:
    from ..cache import ResponseCache

__all__ = ["ProcessMetrics"]


@cache
def _metrics() -> Any:
    # One set per process, not per gateway: gateways replacing each other add to the same series.
    from prometheus_client import Counter, Gauge, Histogram, values

    if getattr(values.ValueClass, "__name__", "") != "MmapedValue":
        log.warning(
            "PROMETHEUS_MULTIPROC_DIR was set after prometheus_client was imported: "
            "this process's metrics are not shared; set it before the process starts"
        )
    made: dict[str, Any] = {}
    for name, kind, _, _ in SPECS:
        if kind == "histogram":
            made[name[12:]] = Histogram(name, HELP[name], LABELS[name], buckets=BUCKETS[name], registry=None)
        elif kind == "counter":
            made[name[12:]] = Counter(name, HELP[name], LABELS[name], registry=None)
    # The one gauge an event moves (the others are read from the cache at scrape time): the live processes' sum.
    name = "llm_gateway_deployment_in_flight"
    made[name[12:]] = Gauge(name, HELP[name], LABELS[name], registry=None, multiprocess_mode="livesum")
    return SimpleNamespace(**made)


class ProcessMetrics(Observer):
    """Each event into this process's metrics, which outlive ``reset_gateway()``; ``cache`` (``None``:
    disabled): the gateway's, whose hit, miss and eviction counts each call's end exports."""

    def __init__(self, cache: ResponseCache | None) -> None:
        self.metrics = _metrics()
        self.cache = cache
        self._seen = [0, 0, 0]  # cache hits, misses, evictions already exported
        self._sync_lock = threading.Lock()

    def request(self) -> None:
        self.metrics.calls.inc()

    def attempt(self, provider: str, model: str) -> None:
        self.metrics.requests.labels(provider, model).inc()

    def failure(
        self, provider: str, model: str, latency_ms: float, error: BaseException, *, operation: str = "chat"
    ) -> None:
        self.metrics.errors.labels(provider, error_type(error)).inc()

    def success(self, provider: str, model: str, latency_ms: float, usage: Usage, *, operation: str = "chat") -> None:
        if usage:
            for kind in TOKEN_KINDS:
                self.metrics.tokens.labels(provider, model, kind).inc(usage.get(f"{kind}_tokens") or 0)

    def first_token(self, provider: str, seconds: float) -> None:
        self.metrics.time_to_first_token_seconds.labels(provider).observe(seconds)

    def overhead(self, provider: str, seconds: float) -> None:
        self.metrics.overhead_seconds.labels(provider).observe(seconds)

    def fallback(self, from_provider: str, to_provider: str) -> None:
        self.metrics.fallbacks.labels(from_provider, to_provider).inc()

    def answered(self, provider: str, model: str, *, cached: bool, latency_ms: float, caller: str | None,
                 cost_usd: float = 0.0, saved_usd: float = 0.0) -> None:  # fmt: skip
        metrics = self.metrics
        metrics.latency_seconds.labels(provider, "true" if cached else "false").observe(latency_ms / 1000.0)
        metrics.cost_usd.labels(provider, model, caller or "").inc(cost_usd)
        metrics.saved_usd.labels(provider, model, caller or "").inc(saved_usd)
        if caller is not None:
            metrics.caller_requests.labels(caller).inc()
            if cached:
                metrics.caller_cache_hits.labels(caller).inc()
        self.sync_cache()

    def call_failed(self, caller: str | None) -> None:
        if caller is not None:
            self.metrics.caller_requests.labels(caller).inc()
            self.metrics.caller_errors.labels(caller).inc()
        self.sync_cache()

    def dispatched(self, provider: str, server: str, waited_s: float) -> None:
        self.metrics.deployment_requests.labels(provider, server).inc()
        self.metrics.deployment_in_flight.labels(provider, server).inc()
        self.metrics.queue_wait_seconds.labels(provider, server).inc(waited_s)

    def released(self, provider: str, server: str, failed: bool) -> None:
        self.metrics.deployment_in_flight.labels(provider, server).dec()
        if failed:
            self.metrics.deployment_errors.labels(provider, server).inc()

    def reloaded(self, error: str | None) -> None:
        self.metrics.config_reloads.labels("error" if error else "ok").inc()

    def sync_cache(self) -> None:
        """Export the growth of the cache's counters since the last sync (every lookup ends in a call's end)."""
        if self.cache is None:
            return
        with self._sync_lock:
            counts = (self.cache.hits, self.cache.misses, self.cache.evictions)
            for i, (value, name) in enumerate(zip(counts, ("hits", "misses", "evictions"), strict=True)):
                if value > self._seen[i]:  # a coalesced follower turns a miss into a hit: never decrement
                    getattr(self.metrics, f"cache_{name}").inc(value - self._seen[i])
                    self._seen[i] = value
