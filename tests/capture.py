"""A loopback HTTP server that records every request whole and answers with a scripted :class:`Reply`.

For the differential contract tests (tests/test_contract_direct.py): both of the adapter's paths send
a request to the same :class:`CaptureServer`, which keeps the method, path, headers and JSON body of
each, and answers each with ``reply``: any status, headers and body; a body in chunks (chunked
transfer encoding, as streaming servers send it), optionally cut (the connection closes before the
last chunk); or no answer at all (``hang``) until the client gives up or the server stops.
Binds 127.0.0.1 on a free port; :meth:`CaptureServer.stop` ends every handler and joins the thread.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["CaptureServer", "Captured", "Reply"]


@dataclass
class Captured:
    method: str
    path: str
    headers: dict[str, str]
    """Names lowercased."""
    body: Any
    """The JSON body, or its text when it is not JSON."""


@dataclass
class Reply:
    """What the server answers to every request."""

    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=lambda: {"Content-Type": "application/json"})
    chunks: list[bytes] | None = None
    """When set: the body, sent in these HTTP chunks."""
    cut: bool = False
    """With ``chunks``: close the connection after them, without the final empty chunk."""
    hang: bool = False
    """Read the request and never answer."""
    one_per_connection: bool = False
    """Answer one request per connection without saying so, and close the connection at the next one, unanswered
    (as a server that closes every connection after an answer, seen by a client that reused it first)."""

    @classmethod
    def json(cls, payload: object, status: int = 200, **headers: str) -> Reply:
        return cls(status, json.dumps(payload).encode(), {"Content-Type": "application/json", **headers})

    @classmethod
    def events(cls, events: list[str], content_type: str = "text/event-stream", cut: bool = False) -> Reply:
        return cls(200, b"", {"Content-Type": content_type}, [e.encode() for e in events], cut)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    wbufsize = 1 << 16  # an answer's head and body in one write (two: Nagle and delayed ACKs wait 40 ms)
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet
        pass

    def do_GET(self) -> None:  # noqa: N802
        self._answer(b"")

    def do_POST(self) -> None:  # noqa: N802
        self._answer(self.rfile.read(int(self.headers.get("Content-Length") or 0)))

    def _answer(self, raw: bytes) -> None:
        owner = self.server.owner
        try:
            body: Any = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode("utf-8", "replace")
        headers = {k.lower(): v for k, v in self.headers.items()}
        with owner.lock:
            owner.requests.append(Captured(self.command, self.path, headers, body))
        reply = owner.reply
        if reply.one_per_connection and getattr(self, "answered", False):
            self.close_connection = True
            return
        self.answered = True
        if reply.hang:
            owner.stopping.wait(30)
            self.close_connection = True
            return
        self.send_response(reply.status)
        for name, value in reply.headers.items():
            self.send_header(name, value)
        if reply.chunks is None:
            self.send_header("Content-Length", str(len(reply.body)))
            self.end_headers()
            self.wfile.write(reply.body)
            return
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("Connection", "close")  # said, as servers do: a client must not reuse it
        self.end_headers()
        for chunk in reply.chunks:
            self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            self.wfile.flush()
        if not reply.cut:
            self.wfile.write(b"0\r\n\r\n")
        self.close_connection = True


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    owner: CaptureServer


class CaptureServer:
    """A running server: ``base_url``; set ``reply``; read ``requests``; ``stop()`` at the end."""

    def __init__(self) -> None:
        self.reply = Reply()
        self.requests: list[Captured] = []
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.owner = self
        self._thread = threading.Thread(target=self._server.serve_forever, name="capture-server", daemon=True)
        self._thread.start()
        self.base_url = f"http://127.0.0.1:{self._server.server_address[1]}"

    def take(self) -> list[Captured]:
        """The requests received since the last call."""
        with self.lock:
            taken, self.requests = self.requests, []
        return taken

    def stop(self) -> None:
        self.stopping.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
