"""A loopback upstream that answers with scripted provider payloads, for the tool-call and reasoning tests.

:class:`ShapeUpstream` is a small HTTP server (a thread of its own, 127.0.0.1,
a free port) that records every request's JSON body and answers each ``POST``
with ``reply`` (a JSON body) or, when the request asks for a stream, with
``events`` (raw SSE or NDJSON text, sent as they are, then the connection
closes). A stream is asked for with ``"stream": true``, and on Ollama's
``/api/chat`` unless ``"stream"`` is false. The payloads are the test's: the
stub speaks whatever shape they are in (OpenAI, Ollama, Anthropic).
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["ShapeUpstream", "ndjson", "sse"]


def sse(payload: object, event: str | None = None) -> str:
    """One server-sent event carrying ``payload`` as JSON (``event:`` line when named, as Anthropic sends)."""
    prefix = f"event: {event}\n" if event else ""
    return f"{prefix}data: {json.dumps(payload)}\n\n"


def ndjson(payload: object) -> str:
    """One line of Ollama's NDJSON stream."""
    return json.dumps(payload) + "\n"


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet
        pass

    def do_POST(self) -> None:  # noqa: N802
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length) or b"{}")
        up = self.server.owner
        with up.lock:
            up.requests.append((self.path, body))
        ollama = self.path.rstrip("/").endswith("/api/chat")
        if body.get("stream", ollama):
            self.send_response(200)
            self.send_header("Content-Type", "application/x-ndjson" if ollama else "text/event-stream")
            self.send_header("Connection", "close")
            self.end_headers()
            for event in up.events:
                self.wfile.write(event.encode())
                self.wfile.flush()
            self.close_connection = True
            return
        data = json.dumps(up.reply).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    owner: ShapeUpstream


class ShapeUpstream:
    """A running stub: ``base_url``; set ``reply`` / ``events``; read ``requests`` (path, JSON body) or ``body()``."""

    def __init__(self) -> None:
        self.reply: Any = {}
        self.events: list[str] = []
        self.requests: list[tuple[str, Any]] = []
        self.lock = threading.Lock()
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.owner = self
        self._thread = threading.Thread(target=self._server.serve_forever, name="shape-upstream", daemon=True)
        self._thread.start()
        self.base_url = f"http://127.0.0.1:{self._server.server_address[1]}"

    def body(self) -> dict[str, Any]:
        """The JSON body of the last request."""
        with self.lock:
            path, body = self.requests[-1]
        assert isinstance(body, dict), path
        return body

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
