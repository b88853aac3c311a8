"""A loopback upstream that misbehaves on purpose, for the fault-injection tests.

:class:`FaultyUpstream` is a small HTTP/1.1 server (asyncio, in a thread of its
own, bound to 127.0.0.1 on a free port) that speaks the shapes sarai_llm's
providers use:

* OpenAI-compatible: ``POST .../chat/completions`` (JSON, or SSE when
  ``"stream": true``), ``POST .../embeddings``, ``GET .../models``;
* Ollama: ``POST /api/chat`` (JSON, or NDJSON when ``"stream"`` is not false),
  ``POST /api/embed``, ``POST /api/embeddings`` (the old shape), ``GET /api/tags``;
* Anthropic: ``POST /v1/messages`` (JSON, or an SSE event stream).

Its :class:`Mode` says how it misbehaves; :data:`MODES` lists them all.
Every request is recorded (``requests``, ``count()``) before the fault is
applied, so a test can check how many attempts reached the upstream. The
server tracks its open connections (``open_connections``) and closes every
one of them on :meth:`FaultyUpstream.stop`.

``Mode.REFUSED`` starts no server: ``base_url`` names a loopback port where
nothing listens (it was bound and released), so a connection is refused.

Streams use chunked transfer encoding (as llama.cpp's server and Ollama do),
so a cut stream is a truncated body; ``cut_style="eof"`` instead ends a
close-delimited body cleanly at the cut, which only the absence of the
protocol's end marker (``[DONE]``, ``"done": true``, ``message_stop``) reveals.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

__all__ = ["MODES", "FaultyUpstream", "Mode", "forget_litellm_clients", "free_port", "running"]


class Mode(enum.StrEnum):
    """How the upstream behaves for every request (``GET`` listings included)."""

    HEALTHY = "healthy"
    REFUSED = "refused"  # nothing listens on the port
    HANG = "hang"  # reads the request, never answers (until stopped)
    HTTP_500 = "http500"
    HTTP_503 = "http503"
    HTTP_429 = "http429"  # with a Retry-After header
    HTTP_401 = "http401"
    HTTP_400 = "http400"  # the request was refused as malformed (a caller's mistake, not the provider's)
    MALFORMED = "malformed"  # 200 with a body that is not valid JSON (or bad stream events)
    CUT = "cut"  # streams: cut after ``cut_after`` chunks; JSON: half a body, then close
    SLOW = "slow"  # the first byte comes after ``delay`` seconds, then a healthy answer


MODES: tuple[Mode, ...] = tuple(m for m in Mode if m is not Mode.HEALTHY)
"""Every fault mode."""


def free_port() -> int:
    """A loopback port that was free a moment ago (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: Any


@dataclass
class Settings:
    """What the upstream does; a test may change it between calls."""

    mode: Mode = Mode.HEALTHY
    chunks: list[str] = field(default_factory=lambda: ["Hel", "lo", " wor", "ld"])
    reply: str = "Hello world"
    cut_after: int = 2  # stream chunks delivered before a CUT
    cut_style: str = "truncate"  # "truncate": a broken chunked body; "eof": a clean close
    delay: float = 0.3  # SLOW: seconds before the first byte
    first_chunk_delay: float = 0.0  # streams, any mode: seconds between the headers and the first event
    stall_after: int | None = None  # streams, any mode: after k chunks, send nothing more (until stopped)
    retry_after: int = 1  # HTTP_429: the Retry-After header
    dims: int = 4


class FaultyUpstream:
    """A running fault-injecting upstream: ``base_url``, ``settings``, ``requests``.

    >>> up = FaultyUpstream(Mode.HTTP_503)      # doctest: +SKIP
    >>> up.base_url, up.count("/chat/completions")
    >>> up.stop()                                # closes every connection
    """

    def __init__(self, mode: Mode | str = Mode.HEALTHY, **settings: Any) -> None:
        self.settings = Settings(mode=Mode(mode), **settings)
        self.requests: list[Request] = []
        self.connections_seen = 0
        self._lock = threading.Lock()
        self._writers: set[asyncio.StreamWriter] = set()
        self._handlers: set[asyncio.Task[None]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.Server | None = None
        self._thread: threading.Thread | None = None
        self._stopping: asyncio.Event | None = None
        if self.settings.mode is Mode.REFUSED:
            self.port = free_port()
        else:
            self._start()
        self.base_url = f"http://127.0.0.1:{self.port}"

    # -- public -------------------------------------------------------------------------

    @property
    def mode(self) -> Mode:
        return self.settings.mode

    @mode.setter
    def mode(self, mode: Mode | str) -> None:
        if Mode(mode) is Mode.REFUSED or self.settings.mode is Mode.REFUSED:
            raise ValueError("REFUSED is chosen at construction (no server runs)")
        self.settings.mode = Mode(mode)

    def count(self, suffix: str = "") -> int:
        """How many requests whose path ends with ``suffix`` were received."""
        with self._lock:
            return sum(1 for r in self.requests if r.path.split("?")[0].endswith(suffix))

    @property
    def open_connections(self) -> int:
        """Connections accepted and not yet closed (by either side)."""
        with self._lock:
            return len(self._writers)

    def wait_closed_by_client(self, timeout: float = 2.0) -> int:
        """Wait until the client has closed every connection; return how many remain open."""
        end = time.monotonic() + timeout
        while self.open_connections and time.monotonic() < end:
            time.sleep(0.01)
        return self.open_connections

    def stop(self) -> None:
        """Close every connection and the listening socket; join the thread. Idempotent."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        self._loop = None
        if loop.is_running():
            with contextlib.suppress(Exception):
                asyncio.run_coroutine_threadsafe(self._shutdown(), loop).result(5)
            loop.call_soon_threadsafe(loop.stop)
        thread.join(5)

    def __enter__(self) -> FaultyUpstream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"FaultyUpstream({self.settings.mode.value}, {self.base_url})"

    # -- server thread ----------------------------------------------------------------------

    def _start(self) -> None:
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            try:
                self._stopping = asyncio.Event()
                self._server = loop.run_until_complete(
                    asyncio.start_server(self._serve, "127.0.0.1", 0, reuse_address=True)
                )
                self.port = self._server.sockets[0].getsockname()[1]
            except BaseException as exc:  # pragma: no cover - reported to the constructor
                failure.append(exc)
                ready.set()
                loop.close()
                return
            ready.set()
            try:
                loop.run_forever()
            finally:
                loop.run_until_complete(loop.shutdown_asyncgens())
                loop.close()

        self._thread = threading.Thread(target=run, name="faulty-upstream", daemon=True)
        self._thread.start()
        ready.wait(5)
        if failure:
            raise failure[0]

    async def _shutdown(self) -> None:
        assert self._stopping is not None
        self._stopping.set()
        if self._server is not None:
            self._server.close()
        for writer in list(self._writers):
            writer.close()
        for task in list(self._handlers):
            task.cancel()
        if self._handlers:
            await asyncio.wait(list(self._handlers), timeout=2)
        if self._server is not None:
            await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        with self._lock:
            self._writers.add(writer)
            self.connections_seen += 1
        self._handlers.add(task)
        try:
            while True:
                request = await self._read_request(reader)
                if request is None:
                    break
                with self._lock:
                    self.requests.append(request)
                keep_open = await self._respond(request, reader, writer)
                if not keep_open:
                    break
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            pass
        finally:
            with self._lock:
                self._writers.discard(writer)
            self._handlers.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer.wait_closed(), 1)

    @staticmethod
    async def _read_request(reader: asyncio.StreamReader) -> Request | None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError:
            return None
        lines = head.decode("latin-1").split("\r\n")
        method, path, _ = lines[0].split(" ", 2)
        headers = {}
        for line in lines[1:]:
            if ":" in line:
                name, value = line.split(":", 1)
                headers[name.strip().lower()] = value.strip()
        raw = b""
        if "content-length" in headers:
            raw = await reader.readexactly(int(headers["content-length"]))
        elif headers.get("transfer-encoding", "").lower() == "chunked":
            while True:
                size = int((await reader.readuntil(b"\r\n")).strip().split(b";")[0], 16)
                data = await reader.readexactly(size + 2)
                if size == 0:
                    break
                raw += data[:-2]
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode("utf-8", "replace")
        return Request(method, path, headers, body)

    # -- answers --------------------------------------------------------------------------------

    async def _silence(self, reader: asyncio.StreamReader) -> None:
        """Send nothing until the client closes the connection (EOF) or the upstream stops."""
        assert self._stopping is not None
        stop = asyncio.ensure_future(self._stopping.wait())
        eof = asyncio.ensure_future(reader.read(1))
        try:
            await asyncio.wait({stop, eof}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.cancel()
            eof.cancel()

    async def _respond(self, req: Request, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        """Answer one request; False when the connection must close afterwards."""
        s = self.settings
        mode = s.mode
        shape = _shape(req.path)
        if mode is Mode.HANG:
            await self._silence(reader)
            return False
        if mode is Mode.SLOW:
            await asyncio.sleep(s.delay)
        status = _STATUS.get(mode)
        if status is not None:
            extra = {"Retry-After": str(s.retry_after)} if status == 429 else {}
            await _send_json(writer, status, _error_body(shape, status), extra)
            return True
        if req.method == "GET":
            if mode is Mode.MALFORMED:
                await _send_raw(writer, 200, b'{"data": [', "application/json")
                return True
            await _send_json(writer, *_listing(req.path))
            return True
        body = req.body if isinstance(req.body, dict) else {}
        if shape == "unknown":
            await _send_json(writer, 404, {"error": {"message": f"no route {req.path}"}})
            return True
        if _wants_stream(shape, req.path, body):
            await self._stream(shape, body, reader, writer)
            return False
        answer = _answer(shape, req.path, body, s)
        if mode is Mode.MALFORMED:
            await _send_raw(writer, 200, b'{"id": "x", "choices": [{"message": {"content": "trunc', "application/json")
            return True
        if mode is Mode.CUT:
            data = json.dumps(answer).encode()
            head = f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n"
            writer.write(head.encode() + data[: len(data) // 2])
            await writer.drain()
            return False  # close with half the promised body sent
        await _send_json(writer, 200, answer)
        return True

    async def _stream(
        self, shape: str, body: dict[str, Any], reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        s = self.settings
        model = str(body.get("model") or "fault-model")
        chunked = s.cut_style != "eof" or s.mode is not Mode.CUT
        content_type = "application/x-ndjson" if shape == "ollama_chat" else "text/event-stream"
        head = f"HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\nCache-Control: no-cache\r\n"
        head += "Transfer-Encoding: chunked\r\n" if chunked else "Connection: close\r\n"
        writer.write((head + "\r\n").encode())

        async def send(data: str) -> None:
            raw = data.encode()
            writer.write(b"%x\r\n%s\r\n" % (len(raw), raw) if chunked else raw)
            await writer.drain()

        events = _stream_events(shape, model, s.chunks, body)
        if s.mode is Mode.MALFORMED:
            events = _malformed_events(shape)
        await writer.drain()
        if s.first_chunk_delay:
            await asyncio.sleep(s.first_chunk_delay)
        sent = 0
        for kind, data in events:
            if s.mode is Mode.CUT and kind == "piece" and sent >= s.cut_after:
                return  # the connection closes: truncated (chunked) or a clean EOF
            if s.stall_after is not None and kind == "piece" and sent >= s.stall_after:
                await self._silence(reader)
                return
            await send(data)
            if kind == "piece":
                sent += 1
        if chunked:
            writer.write(b"0\r\n\r\n")
            await writer.drain()


_STATUS = {Mode.HTTP_500: 500, Mode.HTTP_503: 503, Mode.HTTP_429: 429, Mode.HTTP_401: 401, Mode.HTTP_400: 400}
_REASONS = {
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    404: "Not Found",
    429: "Too Many Requests",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


# --- shapes ------------------------------------------------------------------------------------


def _shape(path: str) -> str:
    p = path.split("?")[0].rstrip("/")
    if p.endswith("/chat/completions"):
        return "openai_chat"
    if p.endswith("/embeddings") and not p.endswith("/api/embeddings"):
        return "openai_embed"
    if p.endswith("/api/chat"):
        return "ollama_chat"
    if p.endswith("/api/embed") or p.endswith("/api/embeddings"):
        return "ollama_embed"
    if p.endswith("/v1/messages"):
        return "anthropic"
    if p.endswith("/models") or p.endswith("/api/tags"):
        return "listing"
    return "unknown"


def _wants_stream(shape: str, path: str, body: dict[str, Any]) -> bool:
    if shape == "ollama_chat":
        return body.get("stream", True) is not False  # Ollama streams unless told not to
    if shape in ("openai_chat", "anthropic"):
        return bool(body.get("stream"))
    return False


def _error_body(shape: str, status: int) -> dict[str, Any]:
    message = f"injected fault: HTTP {status}"
    if shape == "anthropic":
        kind = {400: "invalid_request_error", 401: "authentication_error", 429: "rate_limit_error"}.get(
            status, "overloaded_error" if status == 529 else "api_error"
        )
        return {"type": "error", "error": {"type": kind, "message": message}}
    if shape.startswith("ollama"):
        return {"error": message}
    kinds = {400: "invalid_request_error", 401: "invalid_api_key", 429: "rate_limit_exceeded"}
    kind = kinds.get(status, "server_error")
    return {"error": {"message": message, "type": kind, "param": None, "code": kind}}


def _listing(path: str) -> tuple[int, dict[str, Any]]:
    if path.split("?")[0].rstrip("/").endswith("/api/tags"):
        return 200, {"models": [{"name": "fault-model", "model": "fault-model"}]}
    return 200, {"object": "list", "data": [{"id": "fault-model", "object": "model"}]}


def _vector(text: str, dims: int) -> list[float]:
    return [float((sum(map(ord, text)) + d) % 101) for d in range(dims)]


def _answer(shape: str, path: str, body: dict[str, Any], s: Settings) -> dict[str, Any]:
    model = str(body.get("model") or "fault-model")
    if shape == "openai_embed":
        texts = body.get("input")
        texts = texts if isinstance(texts, list) else [texts]
        return {
            "object": "list",
            "data": [
                {"object": "embedding", "index": i, "embedding": _vector(str(t), s.dims)} for i, t in enumerate(texts)
            ],
            "model": model,
            "usage": {"prompt_tokens": len(texts), "total_tokens": len(texts)},
        }
    if shape == "ollama_embed":
        if path.rstrip("/").endswith("/api/embeddings"):  # the old one-text shape
            return {"embedding": _vector(str(body.get("prompt")), s.dims)}
        texts = body.get("input")
        texts = texts if isinstance(texts, list) else [texts]
        return {"model": model, "embeddings": [_vector(str(t), s.dims) for t in texts], "prompt_eval_count": len(texts)}
    if shape == "ollama_chat":
        return {
            "model": model,
            "created_at": "2026-01-01T00:00:00Z",
            "message": {"role": "assistant", "content": s.reply},
            "done": True,
            "done_reason": "stop",
            "prompt_eval_count": 5,
            "eval_count": 2,
        }
    if shape == "anthropic":
        return {
            "id": "msg_fault",
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": [{"type": "text", "text": s.reply}],
            "stop_reason": "end_turn",
            "stop_sequence": None,
            "usage": {"input_tokens": 5, "output_tokens": 2},
        }
    return {
        "id": "chatcmpl-fault",
        "object": "chat.completion",
        "created": 0,
        "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": s.reply}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7},
    }


def _sse(payload: object, event: str | None = None) -> str:
    prefix = f"event: {event}\n" if event else ""
    return f"{prefix}data: {json.dumps(payload)}\n\n"


def _stream_events(shape: str, model: str, chunks: list[str], body: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """``(kind, text)`` pairs: kind ``"piece"`` carries one chunk of the answer's text."""
    n = len(chunks)
    if shape == "ollama_chat":
        for piece in chunks:
            line = {
                "model": model,
                "created_at": "2026-01-01T00:00:00Z",
                "message": {"role": "assistant", "content": piece},
                "done": False,
            }
            yield "piece", json.dumps(line) + "\n"
        done = {
            "model": model,
            "created_at": "2026-01-01T00:00:00Z",
            "message": {"role": "assistant", "content": ""},
            "done": True,
            "done_reason": "stop",
            "prompt_eval_count": 5,
            "eval_count": n,
        }
        yield "end", json.dumps(done) + "\n"
        return
    if shape == "anthropic":
        start = {
            "type": "message_start",
            "message": {
                "id": "msg_fault",
                "type": "message",
                "role": "assistant",
                "content": [],
                "model": model,
                "stop_reason": None,
                "stop_sequence": None,
                "usage": {"input_tokens": 5, "output_tokens": 1},
            },
        }
        yield "meta", _sse(start, "message_start")
        yield (
            "meta",
            _sse(
                {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
                "content_block_start",
            ),
        )
        yield "meta", _sse({"type": "ping"}, "ping")
        for piece in chunks:
            delta = {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": piece}}
            yield "piece", _sse(delta, "content_block_delta")
        yield "end", _sse({"type": "content_block_stop", "index": 0}, "content_block_stop")
        yield (
            "end",
            _sse(
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                    "usage": {"output_tokens": n},
                },
                "message_delta",
            ),
        )
        yield "end", _sse({"type": "message_stop"}, "message_stop")
        return
    base = {"id": "chatcmpl-fault", "object": "chat.completion.chunk", "created": 0, "model": model}
    for piece in chunks:
        yield "piece", _sse({**base, "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}]})
    yield "end", _sse({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    if (body.get("stream_options") or {}).get("include_usage"):
        usage = {"prompt_tokens": 5, "completion_tokens": n, "total_tokens": 5 + n}
        yield "end", _sse({**base, "choices": [], "usage": usage})
    yield "end", "data: [DONE]\n\n"


def _malformed_events(shape: str) -> Iterator[tuple[str, str]]:
    if shape == "ollama_chat":
        yield "bad", '{"model": "fault-model", "message": {"content": "x"\n'
        return
    if shape == "anthropic":
        yield "bad", 'event: message_start\ndata: {"type": "message_start", "message": {\n\n'
        return
    yield "bad", 'data: {"id": "x", "choices": [{"delta": {"content": \n\n'


async def _send_raw(
    writer: asyncio.StreamWriter, status: int, data: bytes, content_type: str, extra: dict[str, str] | None = None
) -> None:
    head = f"HTTP/1.1 {status} {_REASONS.get(status, 'Error')}\r\nContent-Type: {content_type}\r\n"
    head += f"Content-Length: {len(data)}\r\n"
    for name, value in (extra or {}).items():
        head += f"{name}: {value}\r\n"
    writer.write(head.encode() + b"\r\n" + data)
    await writer.drain()


async def _send_json(
    writer: asyncio.StreamWriter, status: int, body: object, extra: dict[str, str] | None = None
) -> None:
    await _send_raw(writer, status, json.dumps(body).encode(), "application/json", extra)


@contextlib.contextmanager
def running(mode: Mode | str = Mode.HEALTHY, **settings: Any) -> Iterator[FaultyUpstream]:
    """``with running(Mode.HANG) as up: ...``: an upstream stopped on exit."""
    up = FaultyUpstream(mode, **settings)
    try:
        yield up
    finally:
        up.stop()


# --- LiteLLM's process-wide HTTP clients -----------------------------------------------------------


async def _drop_litellm_clients() -> None:
    import litellm
    from litellm.llms.custom_httpx.async_client_cleanup import close_litellm_async_clients

    await close_litellm_async_clients()
    litellm.in_memory_llm_clients_cache.flush_cache()
    client = vars(litellm).pop("module_level_aclient", None)  # LiteLLM re-creates it on first use
    if client is not None:
        await client.close()


def forget_litellm_clients() -> list[str]:
    """Close and drop every HTTP client LiteLLM keeps process-wide; collect them; return the leaks.

    Each pytest-asyncio test runs its own event loop, and the suite's gateways
    are reset with ``close()``, not ``aclose()``: their LiteLLM clients stay in
    LiteLLM's process-wide cache, bound to loops that are gone. The first
    ``Gateway.aclose()`` of a later test flushes that cache, and those clients'
    sockets are then reported, as unclosed, in whatever test the collector
    happens to run. A module that calls ``aclose()`` calls this first (and
    ignores the result: the leftovers are not its own), and at its end (where
    the result is its own leaks). Must be called with no event loop running.
    """
    import gc
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        asyncio.run(_drop_litellm_clients())
        gc.collect()
    return [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)]
