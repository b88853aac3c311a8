"""Prometheus metrics of a gateway: a collector reading :class:`Stats` and the cache when scraped,
so calls never touch prometheus-client; in multiprocess mode, what every process wrote."""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from contextlib import suppress
from typing import TYPE_CHECKING, Any

from .._log import log
from ._spec import HELP, KINDS, LABELS, METRIC_NAMES, multiprocess_dir
from .server import DEFAULT_METRICS_HOST, MetricsServer, StatusSource

if TYPE_CHECKING:
    from prometheus_client.metrics_core import Metric
    from prometheus_client.registry import CollectorRegistry

    from ..cache import ResponseCache
    from ..config import GatewayConfig
    from .stats import Stats

__all__ = ["METRIC_NAMES", "GatewayMetrics"]

_TOKENS = ("prompt", "completion")
_lock = threading.Lock()  # guards both:
_shared_owner: dict[int, GatewayMetrics] = {}  # id(shared registry) -> the collector registered there
_servers: dict[tuple[str, int], MetricsServer] = {}  # endpoints of LLM_GATEWAY_METRICS_PORT, by (host, port)


def family(name: str, rows: Iterable[tuple[tuple[str, ...], Any]] = ()) -> Metric:
    """The family ``name`` with a sample per ``(label values, value)`` row (histograms: ``Buckets``)."""
    from prometheus_client import core

    made = getattr(core, f"{KINDS[name].title()}MetricFamily")(name, HELP[name], labels=LABELS[name])
    for labels, value in rows:
        if KINDS[name] == "histogram":
            cumulative, total = value.cumulative()
            buckets = [("+Inf" if bound == float("inf") else repr(float(bound)), float(n)) for bound, n in cumulative]
            made.add_metric(list(labels), buckets, sum_value=total)
        else:
            made.add_metric(list(labels), value)
    return made  # type: ignore[no-any-return]


class GatewayMetrics:
    """The Prometheus view of one gateway (``stats``, and ``cache``: ``None`` reads 0): a prometheus-client collector.

    :param registry: default a private one, made on first use; one passed (``prometheus_client.REGISTRY``)
        is shared: the next gateway registered there replaces this one. Ignored in multiprocess mode.
    :param port: serve the metrics there (``host``, default ``127.0.0.1``) until :meth:`close`, taking the
        port over from another gateway of this process; ``status``: the status page's data source.
    """

    def __init__(self, stats: Stats, cache: ResponseCache | None = None, *, registry: CollectorRegistry | None = None,
                 port: int | None = None, host: str = DEFAULT_METRICS_HOST, status: StatusSource = None):  # fmt: skip
        self.stats, self.cache, self._status = stats, cache, status
        self.multiprocess = multiprocess_dir() is not None
        self._registry: CollectorRegistry | None = None
        self._shared = self._closed = False
        self._server: MetricsServer | None = None
        if registry is not None and not self.multiprocess:
            with _lock:
                previous = _shared_owner.get(id(registry))
                if previous is not None and previous is not self:
                    previous._unregister_shared()
                registry.register(self)
                _shared_owner[id(registry)] = self
                self._registry, self._shared = registry, True
        if port is not None:
            self._serve(port, host)

    @classmethod
    def for_config(
        cls, config: GatewayConfig, stats: Stats, cache: ResponseCache | None, *, status: StatusSource = None
    ) -> GatewayMetrics:
        """The metrics of a gateway built from ``config`` (``metrics_port``, ``metrics_host``, ``metrics_global``)."""
        registry: CollectorRegistry | None = None
        if config.metrics_global:
            from prometheus_client import REGISTRY

            registry = REGISTRY
        return cls(stats, cache, registry=registry, port=config.metrics_port, host=config.metrics_host, status=status)

    def __repr__(self) -> str:
        mode = "multiprocess" if self.multiprocess else "shared registry" if self._shared else "own registry"
        return f"GatewayMetrics({mode}{f', serving {self._server.url}' if self._server is not None else ''})"

    @property
    def registry(self) -> CollectorRegistry:
        """The registry holding this collector (made on first use)."""
        if self._registry is None:
            from prometheus_client import CollectorRegistry

            self._registry = CollectorRegistry()
            self._registry.register(self)
        return self._registry

    def _unregister_shared(self) -> None:  # the caller holds _lock
        registry = self._registry
        if registry is not None and self._shared:
            if _shared_owner.get(id(registry)) is self:
                del _shared_owner[id(registry)]
            with suppress(KeyError):  # already removed by someone else
                registry.unregister(self)
        self._shared = False

    def describe(self) -> list[Metric]:
        """The metric families this collector yields, without samples."""
        return [family(name) for name in METRIC_NAMES]

    def collect(self) -> Iterator[Metric]:
        """The metric families with their current values (at scrape time, from any thread)."""
        if self.multiprocess:
            yield from self._collect_multiprocess()
            return
        stats, cache = self.stats, self.cache
        yield family("llm_gateway_calls", [((), stats.total_requests)])
        yield family("llm_gateway_requests", list(stats.attempts.items()))
        yield family("llm_gateway_errors", list(stats.error_types.items()))
        yield family("llm_gateway_fallbacks", list(stats.fallbacks.items()))
        latency = [((p, "false"), b) for p, b in list(stats.call_latency.items())]
        latency += [((p, "true"), b) for p, b in list(stats.hit_latency.items())]
        yield family("llm_gateway_latency_seconds", latency)
        first = [((p,), b) for p, b in list(stats.first_token_latency.items())]
        yield family("llm_gateway_time_to_first_token_seconds", first)
        tokens = [
            ((*key, kind), n) for key, row in list(stats.tokens.items()) for kind, n in zip(_TOKENS, row, strict=True)
        ]
        yield family("llm_gateway_tokens", tokens)
        counts = (cache.hits, cache.misses, cache.evictions) if cache is not None else (0, 0, 0)
        for name, count in zip(("hits", "misses", "evictions"), counts, strict=True):
            yield family(f"llm_gateway_cache_{name}", [((), count)])
        yield from self._cache_gauges(counts[0], counts[1])
        callers = list(stats.callers.items())
        for column in ("requests", "cache_hits", "errors"):
            yield family(f"llm_gateway_caller_{column}", [((caller,), row[column]) for caller, row in callers])
        costs = list(stats.costs.items())
        yield family("llm_gateway_cost_usd", [(key, row[0]) for key, row in costs])
        yield family("llm_gateway_saved_usd", [(key, row[1]) for key, row in costs])

    def _cache_gauges(self, hits: float, misses: float) -> Iterator[Metric]:
        yield family("llm_gateway_cache_hit_rate", [((), hits / (hits + misses) if hits + misses else 0.0)])
        yield family("llm_gateway_cache_size", [((), len(self.cache) if self.cache is not None else 0)])

    def _collect_multiprocess(self) -> Iterator[Metric]:
        from prometheus_client.multiprocess import MultiProcessCollector

        totals: dict[str, float] = {}
        collector: Any = MultiProcessCollector(None, path=multiprocess_dir())  # type: ignore[no-untyped-call]
        for found in collector.collect():
            for sample in found.samples:
                totals[sample.name] = totals.get(sample.name, 0.0) + sample.value
            yield found
        hits, misses = totals.get("llm_gateway_cache_hits_total", 0), totals.get("llm_gateway_cache_misses_total", 0)
        yield from self._cache_gauges(hits, misses)

    def text(self) -> str:
        """The metrics in Prometheus' text format (what ``/metrics`` serves)."""
        from prometheus_client import generate_latest

        return generate_latest(self.registry).decode()

    def exposed(self) -> CollectorRegistry | None:
        """What a metrics endpoint serves for this gateway (``None`` once closed)."""
        return None if self._closed else self.registry

    def status_data(self) -> dict[str, Any] | None:
        """The status page's data for this gateway (``None`` once closed, or without a status source)."""
        return None if self._closed or self._status is None else self._status()

    def _serve(self, port: int, host: str) -> None:
        with _lock:
            server = _servers.get((host, port))
            if server is None:
                try:
                    server = _servers[host, port] = MetricsServer(self.exposed, port, host, status=self.status_data)
                except OSError as exc:  # another process may serve it (in multiprocess mode: everyone's metrics)
                    log.warning("metrics endpoint not started on %s:%s: %s", host, port, exc)
                    return
            else:  # the newest gateway takes the port over
                server.source, server.status = self.exposed, self.status_data
            self._server = server

    @property
    def server(self) -> MetricsServer | None:
        """The endpoint started for ``LLM_GATEWAY_METRICS_PORT``, if this gateway serves it."""
        server = self._server
        return server if server is not None and server.source == self.exposed else None

    def close(self) -> None:
        """Stop serving and leave any shared registry; the counters stay readable."""
        if self._closed:
            return
        self._closed = True
        with _lock:
            server, self._server = self._server, None
            if server is not None and server.source == self.exposed:
                server.stop()
                _servers.pop((server.host, server.requested_port), None)
            self._unregister_shared()
