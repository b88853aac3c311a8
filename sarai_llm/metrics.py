"""Prometheus metrics of a gateway: as text, over HTTP, and across processes.

Every gateway owns a :class:`GatewayMetrics`, a prometheus-client collector
that reads the gateway's :class:`~sarai_llm.stats.Stats` and response cache
when it is scraped. Nothing is recorded through prometheus-client while calls
run, so the cache-hit path pays no lock and no metric object; and
``import sarai_llm`` or creating a gateway never imports prometheus-client.

Metrics (counters get the ``_total`` suffix in the text format); labels in
braces:

* ``llm_gateway_calls_total``: calls of chat / stream_chat / embed, cache hits
  included (``get_stats()["total_requests"]``).
* ``llm_gateway_requests_total{provider,model}``: upstream attempts
  (``get_stats()["providers"][p]["requests"]``); cache hits never reach a provider.
* ``llm_gateway_errors_total{provider,error_type}``: failed attempts, those a
  fallback recovered included; ``error_type`` is ``connection``, ``timeout``,
  ``auth``, ``rate_limit``, ``response`` or ``provider``.
* ``llm_gateway_fallbacks_total{from_provider,to_provider}``: calls answered by
  ``to_provider`` instead of the head of their chain.
* ``llm_gateway_latency_seconds{provider,cached}``: histogram of answered
  calls; ``cached="true"`` for cache hits, ``provider`` the one that answered
  (``"cache"`` for an ``embed`` answered wholly from the cache).
* ``llm_gateway_time_to_first_token_seconds{provider}``: histogram of the time
  from a stream's attempt to its first piece.
* ``llm_gateway_tokens_total{provider,model,type}``: tokens reported by the
  providers; ``type`` is ``prompt`` or ``completion``.
* ``llm_gateway_cache_hits_total``, ``llm_gateway_cache_misses_total``,
  ``llm_gateway_cache_evictions_total``: cache lookups and LRU evictions.
* ``llm_gateway_cache_hit_rate`` (gauge): hits / (hits + misses), 0 before any lookup.
* ``llm_gateway_cache_size`` (gauge): entries in the cache directory.
* ``llm_gateway_caller_requests_total{caller}``,
  ``llm_gateway_caller_cache_hits_total{caller}``,
  ``llm_gateway_caller_errors_total{caller}``: per-module attribution of the
  calls made with ``caller="..."`` (as ``get_stats()["callers"]``).
* ``llm_gateway_cost_usd_total{provider,model,caller}``: US dollars the calls
  spent upstream (``get_stats()["cost"]``; 0 for local models unless the
  configuration prices them).
* ``llm_gateway_saved_usd_total{provider,model,caller}``: US dollars cache hits
  saved (the cost of the answers they replayed). In both, ``caller`` is ``""``
  (no label, in PromQL) for calls made without ``caller=``.

The endpoint also serves a status page for people at ``/`` and its data at
``/stats.json`` (see :mod:`sarai_llm.status`).

Latency buckets: :data:`~sarai_llm.stats.LATENCY_BUCKETS` (100 us to 300 s)
and :data:`~sarai_llm.stats.FIRST_TOKEN_BUCKETS` (10 ms to 60 s).

Where the metrics go:

* By default, a :class:`~prometheus_client.CollectorRegistry` the gateway
  owns (:attr:`GatewayMetrics.registry`). ``sarai_llm.metrics_text()`` renders
  it; ``sarai_llm.start_metrics_server(port)`` serves it at ``/metrics``; a
  gateway created with ``LLM_GATEWAY_METRICS_PORT`` set serves it on that port
  (host ``LLM_GATEWAY_METRICS_HOST``, default ``127.0.0.1``) until it is closed.
  ``reset_gateway()`` drops the registry with the gateway: the next gateway's
  counters start from zero, like a restarted process.
* ``LLM_GATEWAY_METRICS_GLOBAL=true`` (or ``GatewayMetrics(..., registry=REGISTRY)``)
  registers the collector in prometheus-client's global ``REGISTRY`` instead,
  for applications that already expose it. The newest gateway takes the place
  of the previous one, and closing a gateway unregisters it, so reset cycles
  never raise "Duplicated timeseries".
* Several processes on one host: set ``PROMETHEUS_MULTIPROC_DIR`` to an empty
  directory shared by the processes before they start (before anything imports
  prometheus-client). Each process then records into real prometheus-client
  metric objects backed by files in that directory (a few microseconds per
  event, cache hits included), and any process's ``metrics_text()`` or
  ``/metrics`` serves the sum over all of them. ``llm_gateway_cache_hit_rate``
  is then computed from the summed hits and misses, and
  ``llm_gateway_cache_size`` read from the shared cache directory. Counters are
  per process lifetime in this mode (they outlive ``reset_gateway()``), and
  the global-registry option is ignored. Clear the directory when the
  processes restart, as prometheus-client's documentation asks.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

from ._log import log
from .stats import FIRST_TOKEN_BUCKETS, LATENCY_BUCKETS, Buckets, Stats, error_type

if TYPE_CHECKING:
    from prometheus_client.metrics_core import Metric
    from prometheus_client.registry import Collector, CollectorRegistry

    from .cache import ResponseCache
    from .config import GatewayConfig

__all__ = [
    "DEFAULT_METRICS_HOST",
    "METRIC_NAMES",
    "GatewayMetrics",
    "MetricsServer",
    "MultiprocessStats",
    "multiprocess_dir",
    "new_stats",
]


DEFAULT_METRICS_HOST = "127.0.0.1"
"""Address the metrics endpoint binds to unless configured (loopback only)."""

_MULTIPROC_ENVS = ("PROMETHEUS_MULTIPROC_DIR", "prometheus_multiproc_dir")

# (name without the _total suffix, type, help, label names)
_SPECS: tuple[tuple[str, str, str, tuple[str, ...]], ...] = (
    ("llm_gateway_calls", "counter", "Calls of chat, stream_chat and embed, cache hits included.", ()),
    ("llm_gateway_requests", "counter", "Upstream attempts sent to a provider.", ("provider", "model")),
    ("llm_gateway_errors", "counter", "Failed upstream attempts, by error type.", ("provider", "error_type")),
    (
        "llm_gateway_fallbacks",
        "counter",
        "Calls answered by a provider other than the head of their chain.",
        ("from_provider", "to_provider"),
    ),
    (
        "llm_gateway_latency_seconds",
        "histogram",
        "Seconds from call to answer; cached=true for cache hits.",
        ("provider", "cached"),
    ),
    (
        "llm_gateway_time_to_first_token_seconds",
        "histogram",
        "Seconds from a stream's attempt to its first piece.",
        ("provider",),
    ),
    (
        "llm_gateway_tokens",
        "counter",
        "Tokens reported by providers (type: prompt or completion).",
        ("provider", "model", "type"),
    ),
    ("llm_gateway_cache_hits", "counter", "Cache lookups that hit.", ()),
    ("llm_gateway_cache_misses", "counter", "Cache lookups that missed.", ()),
    ("llm_gateway_cache_evictions", "counter", "Entries evicted from the cache (LRU).", ()),
    ("llm_gateway_cache_hit_rate", "gauge", "Cache hits / (hits + misses); 0 before any lookup.", ()),
    ("llm_gateway_cache_size", "gauge", "Entries held in the cache directory.", ()),
    ("llm_gateway_caller_requests", "counter", "Calls made with caller=...", ("caller",)),
    ("llm_gateway_caller_cache_hits", "counter", "Calls made with caller=... answered from the cache.", ("caller",)),
    ("llm_gateway_caller_errors", "counter", "Calls made with caller=... that raised.", ("caller",)),
    (
        "llm_gateway_cost_usd",
        "counter",
        "US dollars spent upstream (caller empty for calls made without caller=).",
        ("provider", "model", "caller"),
    ),
    (
        "llm_gateway_saved_usd",
        "counter",
        "US dollars saved by cache hits: the cost of the answers they replayed.",
        ("provider", "model", "caller"),
    ),
)

METRIC_NAMES: tuple[str, ...] = tuple(name for name, _, _, _ in _SPECS)
"""Family names of every metric (counters get ``_total`` in the text format)."""

_HELP = {name: help_text for name, _, help_text, _ in _SPECS}
_LABELS = {name: labels for name, _, _, labels in _SPECS}


def multiprocess_dir() -> str | None:
    """The directory of prometheus-client's multiprocess mode, or ``None`` when it is off."""
    for name in _MULTIPROC_ENVS:
        value = os.environ.get(name)
        if value:
            return value
    return None


# --- families (built at scrape time) ---------------------------------------------------------


def _counter(name: str) -> Any:
    from prometheus_client.core import CounterMetricFamily

    return CounterMetricFamily(name, _HELP[name], labels=_LABELS[name])


def _gauge(name: str, value: float) -> Any:
    from prometheus_client.core import GaugeMetricFamily

    return GaugeMetricFamily(name, _HELP[name], value=value)


def _histogram(name: str, rows: Iterable[tuple[tuple[str, ...], Buckets]]) -> Any:
    from prometheus_client.core import HistogramMetricFamily

    family = HistogramMetricFamily(name, _HELP[name], labels=_LABELS[name])
    for labels, buckets in rows:
        cumulative, total = buckets.cumulative()
        family.add_metric(list(labels), [(_le(bound), float(count)) for bound, count in cumulative], sum_value=total)
    return family


def _le(bound: float) -> str:
    """A bucket bound as Prometheus writes it (``+Inf``, ``0.0001``, ``300.0``)."""
    return "+Inf" if bound == float("inf") else repr(float(bound))


def _counter_of(name: str, rows: Iterable[tuple[tuple[str, ...], float]]) -> Any:
    family = _counter(name)
    for labels, value in rows:
        family.add_metric(list(labels), value)
    return family


def _described() -> list[Metric]:
    """Empty families, one per metric: what a registry checks for duplicates."""
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

    kinds = {"counter": CounterMetricFamily, "gauge": GaugeMetricFamily, "histogram": HistogramMetricFamily}
    return [kinds[kind](name, help_text, labels=labels) for name, kind, help_text, labels in _SPECS]


# --- multiprocess mode: real prometheus-client metrics ------------------------------------


class _ProcessMetrics:
    """prometheus-client metric objects, one set per process, for multiprocess mode.

    Created without a registry: the values live in ``PROMETHEUS_MULTIPROC_DIR``
    and are read back by a ``MultiProcessCollector``. One set per process (not
    per gateway) so that gateways replacing each other keep adding to the same
    series instead of creating duplicates.
    """

    _instance: _ProcessMetrics | None = None
    _lock = threading.Lock()

    def __init__(self) -> None:
        from prometheus_client import Counter, Histogram, values

        if getattr(values.ValueClass, "__name__", "") != "MmapedValue":
            log.warning(
                "PROMETHEUS_MULTIPROC_DIR was set after prometheus_client was imported: "
                "this process's metrics are not shared; set it before the process starts"
            )

        def counter(name: str) -> Any:
            return Counter(name, _HELP[name], _LABELS[name], registry=None)

        self.calls = counter("llm_gateway_calls")
        self.requests = counter("llm_gateway_requests")
        self.errors = counter("llm_gateway_errors")
        self.fallbacks = counter("llm_gateway_fallbacks")
        self.tokens = counter("llm_gateway_tokens")
        self.cache_hits = counter("llm_gateway_cache_hits")
        self.cache_misses = counter("llm_gateway_cache_misses")
        self.cache_evictions = counter("llm_gateway_cache_evictions")
        self.caller_requests = counter("llm_gateway_caller_requests")
        self.caller_cache_hits = counter("llm_gateway_caller_cache_hits")
        self.caller_errors = counter("llm_gateway_caller_errors")
        self.cost = counter("llm_gateway_cost_usd")
        self.saved = counter("llm_gateway_saved_usd")
        name = "llm_gateway_latency_seconds"
        self.latency = Histogram(name, _HELP[name], _LABELS[name], buckets=LATENCY_BUCKETS, registry=None)
        name = "llm_gateway_time_to_first_token_seconds"
        self.first_token = Histogram(name, _HELP[name], _LABELS[name], buckets=FIRST_TOKEN_BUCKETS, registry=None)

    @classmethod
    def get(cls) -> _ProcessMetrics:
        with cls._lock:
            if cls._instance is None:
                cls._instance = cls()
            return cls._instance


class MultiprocessStats(Stats):
    """:class:`Stats` that also records every event into prometheus-client metrics.

    Used when ``PROMETHEUS_MULTIPROC_DIR`` is set (see :func:`new_stats`), so
    that the processes sharing that directory can be scraped as one. Costs a
    few microseconds per event, cache hits included.
    """

    def __init__(self) -> None:
        super().__init__()
        self.metrics = _ProcessMetrics.get()
        self.cache: ResponseCache | None = None
        self._seen = [0, 0, 0]  # cache hits, misses, evictions already exported
        self._sync_lock = threading.Lock()  # a scrape may sync from the server's thread

    def request(self) -> None:
        super().request()
        self.metrics.calls.inc()

    def attempt(self, provider: str, model: str) -> None:
        super().attempt(provider, model)
        self.metrics.requests.labels(provider, model).inc()

    def failure(
        self, provider: str, model: str, latency_ms: float, error: BaseException, *, operation: str = "chat"
    ) -> None:
        super().failure(provider, model, latency_ms, error, operation=operation)
        self.metrics.errors.labels(provider, error_type(error)).inc()

    def success(
        self, provider: str, model: str, latency_ms: float, usage: dict[str, int] | None, *, operation: str = "chat"
    ) -> None:
        super().success(provider, model, latency_ms, usage, operation=operation)
        if usage:
            tokens = self.metrics.tokens
            tokens.labels(provider, model, "prompt").inc(usage.get("prompt_tokens") or 0)
            tokens.labels(provider, model, "completion").inc(usage.get("completion_tokens") or 0)

    def first_token(self, provider: str, seconds: float) -> None:
        super().first_token(provider, seconds)
        self.metrics.first_token.labels(provider).observe(seconds)

    def fallback(self, from_provider: str, to_provider: str) -> None:
        super().fallback(from_provider, to_provider)
        self.metrics.fallbacks.labels(from_provider, to_provider).inc()

    def answered(
        self,
        provider: str,
        model: str,
        *,
        cached: bool,
        latency_ms: float,
        caller: str | None,
        cost_usd: float = 0.0,
        saved_usd: float = 0.0,
    ) -> None:
        super().answered(
            provider,
            model,
            cached=cached,
            latency_ms=latency_ms,
            caller=caller,
            cost_usd=cost_usd,
            saved_usd=saved_usd,
        )
        metrics = self.metrics
        metrics.latency.labels(provider, "true" if cached else "false").observe(latency_ms / 1000.0)
        metrics.cost.labels(provider, model, caller or "").inc(cost_usd)
        metrics.saved.labels(provider, model, caller or "").inc(saved_usd)
        if caller is not None:
            metrics.caller_requests.labels(caller).inc()
            if cached:
                metrics.caller_cache_hits.labels(caller).inc()
        self.sync_cache()

    def call_failed(self, caller: str | None) -> None:
        super().call_failed(caller)
        if caller is not None:
            self.metrics.caller_requests.labels(caller).inc()
            self.metrics.caller_errors.labels(caller).inc()
        self.sync_cache()

    def sync_cache(self) -> None:
        """Export the cache counters' growth since the last call.

        Every lookup belongs to a call that ends in :meth:`answered` or
        :meth:`call_failed`, so syncing there exports every lookup.
        """
        cache = self.cache
        if cache is None:
            return
        targets = (self.metrics.cache_hits, self.metrics.cache_misses, self.metrics.cache_evictions)
        with self._sync_lock:
            now = (cache.hits, cache.misses, cache.evictions)
            seen = self._seen
            for i, (value, target) in enumerate(zip(now, targets, strict=True)):
                if value > seen[i]:  # a coalesced follower turns a miss into a hit: never decrement
                    target.inc(value - seen[i])
                    seen[i] = value


def new_stats() -> Stats:
    """The counters for a new gateway: :class:`MultiprocessStats` in multiprocess mode, else :class:`Stats`.

    :raises ConfigError: ``PROMETHEUS_MULTIPROC_DIR`` is set but is not a directory.
    """
    directory = multiprocess_dir()
    if not directory:
        return Stats()
    if not os.path.isdir(directory):
        from .errors import ConfigError

        raise ConfigError(
            f"PROMETHEUS_MULTIPROC_DIR={directory!r} is not a directory: create it (empty) before "
            "starting the processes, or unset it for single-process metrics"
        )
    return MultiprocessStats()


# --- the collector -------------------------------------------------------------------------


# Registries shared by several gateways (the global one, or one the user passed):
# which gateway's collector each one holds. The newest gateway takes the place.
_shared_owner: dict[int, GatewayMetrics] = {}
_shared_lock = threading.Lock()


class GatewayMetrics:
    """The Prometheus view of one gateway; a prometheus-client collector.

    :param stats: the gateway's counters.
    :param cache: the gateway's response cache, ``None`` when disabled (the
        cache metrics then read 0).
    :param registry: where to register the collector. ``None`` (default): a
        private :class:`~prometheus_client.CollectorRegistry`, created on first
        use. Any registry passed (``prometheus_client.REGISTRY``) is shared:
        a later gateway registering there replaces this one. Ignored in
        multiprocess mode.
    :param port: serve the metrics on this port while the gateway lives
        (default ``None``: not served). A port already serving another
        gateway's metrics in this process is taken over.
    :param host: address to bind (default ``127.0.0.1``).
    :param status: returns the status page's data (:func:`sarai_llm.status.snapshot`);
        ``None``: the endpoint serves no status page.
    """

    def __init__(
        self,
        stats: Stats,
        cache: ResponseCache | None = None,
        *,
        registry: CollectorRegistry | None = None,
        port: int | None = None,
        host: str = DEFAULT_METRICS_HOST,
        status: Callable[[], dict[str, Any]] | None = None,
    ):
        self.stats = stats
        self.cache = cache
        self._status = status
        self.multiprocess = isinstance(stats, MultiprocessStats)
        if isinstance(stats, MultiprocessStats):
            stats.cache = cache
        self._registry: CollectorRegistry | None = None
        self._shared = False
        self._server: MetricsServer | None = None
        self._closed = False
        if registry is not None and not self.multiprocess:
            self._register_shared(registry)
        if port is not None:
            self._serve(port, host)

    @classmethod
    def for_config(
        cls,
        config: GatewayConfig,
        stats: Stats,
        cache: ResponseCache | None,
        *,
        status: Callable[[], dict[str, Any]] | None = None,
    ) -> GatewayMetrics:
        """The metrics of a gateway built from ``config``.

        Reads ``metrics_port``, ``metrics_host`` and ``metrics_global``
        (``LLM_GATEWAY_METRICS_PORT`` / ``_HOST`` / ``_GLOBAL``).
        """
        registry = None
        if config.metrics_global:
            from prometheus_client import REGISTRY

            registry = REGISTRY
        return cls(stats, cache, registry=registry, port=config.metrics_port, host=config.metrics_host, status=status)

    def __repr__(self) -> str:
        mode = "multiprocess" if self.multiprocess else "shared registry" if self._shared else "own registry"
        served = f", serving {self._server.url}" if self._server is not None else ""
        return f"GatewayMetrics({mode}{served})"

    # -- registry -------------------------------------------------------------------------

    @property
    def registry(self) -> CollectorRegistry:
        """The registry holding this collector (created on first use)."""
        registry = self._registry
        if registry is None:
            from prometheus_client import CollectorRegistry

            registry = CollectorRegistry()
            registry.register(self)
            self._registry = registry
        return registry

    def _register_shared(self, registry: CollectorRegistry) -> None:
        with _shared_lock:
            previous = _shared_owner.get(id(registry))
            if previous is not None and previous is not self:
                previous._unregister_shared()
            registry.register(self)
            _shared_owner[id(registry)] = self
            self._registry, self._shared = registry, True

    def _unregister_shared(self) -> None:
        # Caller holds _shared_lock.
        registry = self._registry
        if registry is not None and self._shared:
            if _shared_owner.get(id(registry)) is self:
                del _shared_owner[id(registry)]
            try:
                registry.unregister(self)
            except KeyError:
                pass  # already removed by someone else
        self._shared = False

    # -- prometheus-client collector protocol --------------------------------------------

    def describe(self) -> list[Metric]:
        """The metric families this collector yields (without samples)."""
        return _described()

    def collect(self) -> Iterator[Metric]:
        """The metric families with their current values (called at scrape time)."""
        if self.multiprocess:
            yield from self._collect_multiprocess()
            return
        stats, cache = self.stats, self.cache
        family = _counter("llm_gateway_calls")
        family.add_metric([], stats.total_requests)
        yield family
        yield _counter_of("llm_gateway_requests", list(stats.attempts.items()))
        yield _counter_of("llm_gateway_errors", list(stats.error_types.items()))
        yield _counter_of("llm_gateway_fallbacks", list(stats.fallbacks.items()))
        latency = [((p, "false"), b) for p, b in list(stats.call_latency.items())]
        latency += [((p, "true"), b) for p, b in list(stats.hit_latency.items())]
        yield _histogram("llm_gateway_latency_seconds", latency)
        yield _histogram(
            "llm_gateway_time_to_first_token_seconds", [((p,), b) for p, b in list(stats.first_token_latency.items())]
        )
        tokens: list[tuple[tuple[str, ...], float]] = []
        for (provider, model), (prompt, completion) in list(stats.tokens.items()):
            tokens += [((provider, model, "prompt"), prompt), ((provider, model, "completion"), completion)]
        yield _counter_of("llm_gateway_tokens", tokens)
        hits = cache.hits if cache is not None else 0
        misses = cache.misses if cache is not None else 0
        for name, value in (
            ("llm_gateway_cache_hits", hits),
            ("llm_gateway_cache_misses", misses),
            ("llm_gateway_cache_evictions", cache.evictions if cache is not None else 0),
        ):
            family = _counter(name)
            family.add_metric([], value)
            yield family
        yield from self._cache_gauges(hits, misses)
        callers = list(stats.callers.items())
        for name, column in (
            ("llm_gateway_caller_requests", "requests"),
            ("llm_gateway_caller_cache_hits", "cache_hits"),
            ("llm_gateway_caller_errors", "errors"),
        ):
            yield _counter_of(name, [((caller,), row[column]) for caller, row in callers])
        costs = list(stats.costs.items())
        yield _counter_of("llm_gateway_cost_usd", [(key, row[0]) for key, row in costs])
        yield _counter_of("llm_gateway_saved_usd", [(key, row[1]) for key, row in costs])

    def _cache_gauges(self, hits: float, misses: float) -> Iterator[Metric]:
        lookups = hits + misses
        yield _gauge("llm_gateway_cache_hit_rate", hits / lookups if lookups else 0.0)
        yield _gauge("llm_gateway_cache_size", len(self.cache) if self.cache is not None else 0)

    def _collect_multiprocess(self) -> Iterator[Metric]:
        from prometheus_client.multiprocess import MultiProcessCollector

        if isinstance(self.stats, MultiprocessStats):
            self.stats.sync_cache()
        totals: dict[str, float] = {}
        collector: Any = MultiProcessCollector(None, path=multiprocess_dir())  # type: ignore[no-untyped-call]
        for family in collector.collect():
            for sample in family.samples:
                totals[sample.name] = totals.get(sample.name, 0.0) + sample.value
            yield family
        yield from self._cache_gauges(
            totals.get("llm_gateway_cache_hits_total", 0.0), totals.get("llm_gateway_cache_misses_total", 0.0)
        )

    # -- output ---------------------------------------------------------------------------

    def text(self) -> str:
        """The metrics in Prometheus' text format (what ``/metrics`` serves)."""
        from prometheus_client import generate_latest

        return generate_latest(self.registry).decode()

    def exposed(self) -> CollectorRegistry | None:
        """What a metrics endpoint serves for this gateway (``None`` once closed)."""
        return None if self._closed else self.registry

    def status_data(self) -> dict[str, Any] | None:
        """The status page's data for this gateway (``None`` once closed, or without a status source)."""
        status = self._status
        return None if self._closed or status is None else status()

    def _serve(self, port: int, host: str) -> None:
        with _servers_lock:
            server = _servers.get((host, port))
            if server is None:
                try:
                    server = MetricsServer(self.exposed, port, host, status=self.status_data)
                except OSError as exc:
                    # Another process may already serve this port (in multiprocess
                    # mode it serves every process's metrics): not fatal for calls.
                    log.warning("metrics endpoint not started on %s:%s: %s", host, port, exc)
                    return
                _servers[(host, port)] = server
            else:
                server.source = self.exposed  # the newest gateway takes the port over
                server.status = self.status_data
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
        with _servers_lock:
            server = self._server
            if server is not None and server.source == self.exposed:
                server.stop()
                _servers.pop((server.host, server.requested_port), None)
            self._server = None
        with _shared_lock:
            self._unregister_shared()
        if isinstance(self.stats, MultiprocessStats):
            self.stats.sync_cache()


# --- HTTP endpoint -----------------------------------------------------------------------------

# Endpoints started for gateways (LLM_GATEWAY_METRICS_PORT), by (host, requested port).
_servers: dict[tuple[str, int], MetricsServer] = {}
_servers_lock = threading.Lock()


class _Delegate:
    """A collector that yields whatever its server's source currently exposes."""

    def __init__(self, server: MetricsServer):
        self._server = server

    def describe(self) -> list[Metric]:
        return _described()

    def collect(self) -> Iterable[Metric]:
        source = self._server.source()
        return source.collect() if source is not None else ()


class MetricsServer:
    """A running Prometheus endpoint: ``GET http://host:port/metrics``.

    Served by a threading WSGI server in a daemon thread (prometheus-client's
    WSGI app for the metrics). With ``status``, it also serves the status page
    at ``/`` and its data at ``/stats.json`` (:mod:`sarai_llm.status`); every
    other path serves the metrics. Stop it with :meth:`stop`, or use it as a
    context manager.

    :param source: called at each scrape; returns the collector or registry
        to serve, or ``None`` to serve nothing.
    :param port: TCP port; ``0`` picks a free one (see :attr:`port`).
    :param host: address to bind (default ``127.0.0.1``, this host only).
    :param status: called for each page view or ``/stats.json``; returns
        :func:`sarai_llm.status.snapshot`, or ``None`` (404: no gateway).
    :raises OSError: the address cannot be bound (port in use).
    """

    def __init__(
        self,
        source: Callable[[], Collector | None],
        port: int,
        host: str = DEFAULT_METRICS_HOST,
        *,
        status: Callable[[], dict[str, Any] | None] | None = None,
    ):
        from prometheus_client import CollectorRegistry, make_wsgi_app

        self.source = source
        self.status = status
        registry = CollectorRegistry()
        registry.register(_Delegate(self))
        self._metrics_app = make_wsgi_app(registry)
        self._httpd, self._thread = _start_server(host, port, self._app)
        self.host = host
        self.requested_port = port
        self.port: int = self._httpd.server_port
        """The bound port (the free one chosen when ``port`` was 0)."""
        self._stopped = False

    @property
    def url(self) -> str:
        """``http://host:port/metrics``."""
        return f"{self.base_url}/metrics"

    @property
    def base_url(self) -> str:
        """``http://host:port``; the status page is at ``base_url + "/"``."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def _app(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        """Route: ``/`` the status page, ``/stats.json`` its data, anything else the metrics."""
        path = environ.get("PATH_INFO") or "/"
        status = self.status
        if status is None or path not in ("/", "/index.html", "/stats.json"):
            return self._metrics_app(environ, start_response)  # type: ignore[no-any-return]
        from .status import content_security_policy, render_page, to_json

        try:
            data = status()
        except Exception:
            log.exception("the status page's data failed")
            return _respond(start_response, "500 Internal Server Error", "text/plain", b"status unavailable\n")
        if data is None:
            return _respond(start_response, "404 Not Found", "text/plain", b"no gateway\n")
        if path == "/stats.json":
            return _respond(start_response, "200 OK", "application/json", to_json(data).encode())
        html, nonce = render_page(data)
        extra = [("Content-Security-Policy", content_security_policy(nonce))]
        return _respond(start_response, "200 OK", "text/html; charset=utf-8", html.encode(), extra)

    def stop(self) -> None:
        """Stop serving and release the port (idempotent)."""
        if self._stopped:
            return
        self._stopped = True
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> MetricsServer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"MetricsServer({self.url}{', stopped' if self._stopped else ''})"


def _respond(
    start_response: Callable[..., Any],
    status: str,
    content_type: str,
    body: bytes,
    extra: list[tuple[str, str]] | None = None,
) -> list[bytes]:
    headers = [
        ("Content-Type", content_type),
        ("Content-Length", str(len(body))),
        ("Cache-Control", "no-store"),
        ("X-Content-Type-Options", "nosniff"),
        *(extra or []),
    ]
    start_response(status, headers)
    return [body]


def _start_server(host: str, port: int, app: Callable[..., Iterable[bytes]]) -> tuple[Any, threading.Thread]:
    """A threading WSGI server on (host, port), serving ``app`` from a daemon thread.

    What prometheus-client's ``start_wsgi_server`` does (IPv4 or IPv6 as the
    host resolves, requests not logged), with our own application.
    """
    import socket
    from socketserver import ThreadingMixIn
    from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

    family, _, _, _, sockaddr = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]

    class Server(ThreadingMixIn, WSGIServer):
        daemon_threads = True
        address_family = family

    class Handler(WSGIRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet, as prometheus-client's
            pass

    httpd = make_server(str(sockaddr[0]), port, app, Server, handler_class=Handler)
    thread = threading.Thread(target=httpd.serve_forever, name="sarai_llm-metrics", daemon=True)
    thread.start()
    return httpd, thread
