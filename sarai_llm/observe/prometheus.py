"""Prometheus metrics of a gateway: a collector reading :class:`Stats` and the cache when scraped, so calls
never touch prometheus-client (in multiprocess mode: what every process wrote); and :class:`MetricsServer`,
the HTTP endpoint: ``/metrics`` for Prometheus, ``/`` the status page, ``/stats.json`` its data."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import suppress
from typing import TYPE_CHECKING, Any, TypeAlias

from .._log import log
from ._spec import HELP, KINDS, LABELS, METRIC_NAMES, TOKEN_KINDS, multiprocess_dir

if TYPE_CHECKING:
    from prometheus_client.metrics_core import Metric
    from prometheus_client.registry import Collector, CollectorRegistry

    from ..cache import ResponseCache
    from ..config import GatewayConfig
    from .stats import Stats

__all__ = ["DEFAULT_METRICS_HOST", "METRIC_NAMES", "GatewayMetrics", "MetricsServer", "StatusSource"]

StatusSource: TypeAlias = "Callable[[], dict[str, Any] | None] | None"
"""Returns the status page's data (:func:`~sarai_llm.observe.status.snapshot`), or ``None`` (no page)."""
DEFAULT_METRICS_HOST = "127.0.0.1"
"""Address the metrics endpoint binds to unless configured (loopback only)."""

_TOKENS = tuple(enumerate(TOKEN_KINDS))
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
        self._registry = None if self.multiprocess else registry
        self._shared, self._closed = self._registry is not None, False
        self._server: MetricsServer | None = None
        with _lock:
            if self._registry is not None:  # the newest gateway takes a shared registry over
                previous = _shared_owner.get(id(self._registry))
                if previous is not None:
                    previous._unregister_shared()
                self._registry.register(self)
                _shared_owner[id(self._registry)] = self
            if port is not None:  # and the port
                server = _servers.get((host, port))
                if server is None:
                    try:
                        server = _servers[host, port] = MetricsServer(self.exposed, port, host, status=self.status_data)
                    except OSError as exc:  # another process may serve it (in multiprocess mode: everyone's metrics)
                        log.warning("metrics endpoint not started on %s:%s: %s", host, port, exc)
                        return
                server.source, server.status = self.exposed, self.status_data
                self._server = server

    @classmethod
    def for_config(
        cls, config: GatewayConfig, stats: Stats, cache: ResponseCache | None, *, status: StatusSource = None
    ) -> GatewayMetrics:
        """The metrics of a gateway built from ``config`` (``metrics_port``, ``metrics_host``, ``metrics_global``)."""
        registry: CollectorRegistry | None = None
        if config.metrics_global:
            from prometheus_client import REGISTRY as registry
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
        if self._shared and self._registry is not None:
            if _shared_owner.get(id(self._registry)) is self:
                del _shared_owner[id(self._registry)]
            with suppress(KeyError):  # already removed by someone else
                self._registry.unregister(self)
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
        yield family("llm_gateway_overhead_seconds", [((p,), b) for p, b in list(stats.overheads.items())])
        tokens = list(stats.tokens.items())
        yield family("llm_gateway_tokens", [((*key, kind), row[i]) for key, row in tokens for i, kind in _TOKENS])
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
        servers = list(self.stats.servers.items())
        for i, name in enumerate(("requests", "errors", "in_flight")):
            yield family(f"llm_gateway_deployment_{name}", [(key, row[i]) for key, row in servers])
        yield family("llm_gateway_queue_wait_seconds", [(key, row[3]) for key, row in servers])
        yield family("llm_gateway_config_reloads", list(((k,), n) for k, n in self.stats.reloads.items()))

    def _cache_gauges(self, hits: float, misses: float) -> Iterator[Metric]:
        yield family("llm_gateway_cache_hit_rate", [((), hits / (hits + misses) if hits + misses else 0.0)])
        yield family("llm_gateway_cache_size", [((), len(self.cache) if self.cache is not None else 0)])
        yield family("llm_gateway_cache_memory_bytes", [((), self.cache.memory_bytes if self.cache is not None else 0)])

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

    @property
    def server(self) -> MetricsServer | None:
        """The endpoint started for ``LLM_GATEWAY_METRICS_PORT``, if this gateway serves it."""
        server = self._server
        return server if server is not None and server.source == self.exposed else None

    def close(self) -> None:
        """Stop serving and leave any shared registry; the counters stay readable."""
        with _lock:
            if self._closed:
                return
            self._closed = True
            if (server := self.server) is not None:
                server.stop()
                _servers.pop((server.host, server.requested_port), None)
            self._server = None
            self._unregister_shared()


class MetricsServer:
    """An endpoint served from a daemon thread until :meth:`stop` (or a ``with`` block ends): with ``status``,
    ``/`` the status page and ``/stats.json`` its data (``None``: 404); any other path the metrics of ``source``
    (called at each scrape). ``port`` 0 picks a free one (:attr:`port`); ``host`` default ``127.0.0.1``.

    :raises OSError: the address cannot be bound (port in use).
    """

    def __init__(self, source: Callable[[], Collector | None], port: int, host: str = DEFAULT_METRICS_HOST, *,
                 status: StatusSource = None):  # fmt: skip
        import socket
        from socketserver import ThreadingMixIn
        from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

        from prometheus_client import CollectorRegistry, make_wsgi_app

        self.source, self.status = source, status
        registry = CollectorRegistry()
        registry.register(self)  # collect(): whatever ``source`` exposes at each scrape
        self._metrics_app = make_wsgi_app(registry)
        # As prometheus-client's start_wsgi_server, with our app: IPv4 or IPv6 as the host resolves, quiet.
        family, _, _, _, sockaddr = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]

        class Server(ThreadingMixIn, WSGIServer):
            daemon_threads, address_family = True, family

        class Handler(WSGIRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass

        self._httpd = make_server(str(sockaddr[0]), port, self._app, Server, handler_class=Handler)
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="sarai_llm-metrics", daemon=True)
        self._thread.start()
        self.host, self.requested_port = host, port
        self.port: int = self._httpd.server_port
        """The bound port (the free one chosen when ``port`` was 0)."""
        self._stopped = False

    def collect(self) -> Iterable[Metric]:
        """What ``source`` exposes now (prometheus-client's collector protocol)."""
        source = self.source()
        return source.collect() if source is not None else ()

    @property
    def url(self) -> str:
        """``http://host:port/metrics``."""
        return f"{self.base_url}/metrics"

    @property
    def base_url(self) -> str:
        """``http://host:port``; the status page is at ``base_url + "/"``."""
        return f"http://{f'[{self.host}]' if ':' in self.host else self.host}:{self.port}"

    def _app(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path, status = environ.get("PATH_INFO") or "/", self.status
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
        csp = ("Content-Security-Policy", content_security_policy(nonce))
        return _respond(start_response, "200 OK", "text/html; charset=utf-8", html.encode(), csp)

    def stop(self) -> None:
        """Stop serving and release the port (idempotent)."""
        if not self._stopped:
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


def _respond(respond: Callable[..., Any], status: str, kind: str, body: bytes, *extra: tuple[str, str]) -> list[bytes]:
    fixed = [("Content-Type", kind), ("Content-Length", str(len(body))), ("Cache-Control", "no-store")]
    respond(status, [*fixed, ("X-Content-Type-Options", "nosniff"), *extra])
    return [body]
