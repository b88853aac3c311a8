"""A loopback OpenAI-compatible upstream we control, for counting and faults.

It answers ``/v1/chat/completions`` (JSON or SSE), ``/v1/embeddings`` and
``/v1/models``, counts every request, and can be told to misbehave:
answer slowly, return an HTTP error, or cut a stream after k chunks.
Real-model behaviour is tested against llama.cpp's server instead.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Behaviour:
    """What the upstream does; tests change it between calls."""

    reply: str = "pong"
    chunks: list[str] = field(default_factory=lambda: ["po", "ng", "!"])
    delay: float = 0.0  # seconds before the answer
    status: int = 200  # an error status answers {"error": ...} with it
    cut_after: int | None = None  # stream: close the connection after k chunks
    chunk_delay: float = 0.0  # stream: seconds before each chunk
    dims: int = 4


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet
        pass

    def _json(self, status: int, body: object) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:  # noqa: N802
        self.server.record(self.path, None)
        if self.path.rstrip("/").endswith("/models"):
            self._json(200, {"object": "list", "data": [{"id": "stub", "object": "model"}]})
        else:
            self._json(404, {"error": {"message": "not found"}})

    def do_POST(self) -> None:  # noqa: N802
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length) or b"{}")
        self.server.record(self.path, body)
        b = self.server.behaviour
        if b.delay:
            time.sleep(b.delay)
        if b.status != 200:
            self._json(b.status, {"error": {"message": f"stub error {b.status}", "type": "stub"}})
            return
        if self.path.endswith("/embeddings"):
            texts = body["input"] if isinstance(body["input"], list) else [body["input"]]
            data = [
                {
                    "object": "embedding",
                    "index": i,
                    "embedding": [float((sum(map(ord, t)) + d) % 101) for d in range(b.dims)],
                }
                for i, t in enumerate(texts)
            ]
            self._json(
                200,
                {
                    "object": "list",
                    "data": data,
                    "model": body.get("model"),
                    "usage": {"prompt_tokens": len(texts), "total_tokens": len(texts)},
                },
            )
        elif body.get("stream"):
            self._stream(body, b)
        else:
            self._json(
                200,
                {
                    "id": "chatcmpl-stub",
                    "object": "chat.completion",
                    "created": 0,
                    "model": body.get("model"),
                    "choices": [
                        {"index": 0, "message": {"role": "assistant", "content": b.reply}, "finish_reason": "stop"}
                    ],
                    "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7},
                },
            )

    def _stream(self, body: dict[str, Any], b: Behaviour) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Connection", "close")
        self.end_headers()
        model = body.get("model")

        def event(payload: object) -> None:
            self.wfile.write(f"data: {json.dumps(payload)}\n\n".encode())
            self.wfile.flush()

        for i, piece in enumerate(b.chunks):
            time.sleep(b.chunk_delay)
            if b.cut_after is not None and i >= b.cut_after:
                self.close_connection = True
                return  # the connection closes with no finish_reason and no [DONE]
            event(
                {
                    "id": "s",
                    "object": "chat.completion.chunk",
                    "created": 0,
                    "model": model,
                    "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}],
                }
            )
        event(
            {
                "id": "s",
                "object": "chat.completion.chunk",
                "created": 0,
                "model": model,
                "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
            }
        )
        if (body.get("stream_options") or {}).get("include_usage"):
            event(
                {
                    "id": "s",
                    "object": "chat.completion.chunk",
                    "created": 0,
                    "model": model,
                    "choices": [],
                    "usage": {
                        "prompt_tokens": 5,
                        "completion_tokens": len(b.chunks),
                        "total_tokens": 5 + len(b.chunks),
                    },
                }
            )
        self.wfile.write(b"data: [DONE]\n\n")
        self.wfile.flush()
        self.close_connection = True


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.behaviour = Behaviour()
        self.requests: list[tuple[str, Any]] = []
        self._lock = threading.Lock()

    def record(self, path: str, body: Any) -> None:
        with self._lock:
            self.requests.append((path, body))


class Upstream:
    """A running stub: ``base_url``, ``behaviour``, and the ``requests`` it saw."""

    def __init__(self) -> None:
        self._server = _Server()
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        host, port = self._server.server_address[:2]
        self.base_url = f"http://{host}:{port}"

    @property
    def behaviour(self) -> Behaviour:
        return self._server.behaviour

    @property
    def requests(self) -> list[tuple[str, Any]]:
        return self._server.requests

    def count(self, suffix: str = "") -> int:
        return sum(1 for path, _ in self.requests if path.endswith(suffix))

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
