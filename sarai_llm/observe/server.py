"""The HTTP endpoint: ``/metrics`` for Prometheus, ``/`` the status page, ``/stats.json`` its data."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, TypeAlias

from .._log import log

if TYPE_CHECKING:
    from prometheus_client.metrics_core import Metric
    from prometheus_client.registry import Collector

__all__ = ["DEFAULT_METRICS_HOST", "MetricsServer", "StatusSource"]

StatusSource: TypeAlias = "Callable[[], dict[str, Any] | None] | None"
"""Returns the status page's data (:func:`~sarai_llm.observe.status.snapshot`), or ``None`` (no page)."""
DEFAULT_METRICS_HOST = "127.0.0.1"
"""Address the metrics endpoint binds to unless configured (loopback only)."""


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
