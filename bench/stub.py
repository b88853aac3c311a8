"""A fast loopback OpenAI-compatible upstream for benchmarks (run in its own process).

    python bench/stub.py [--port 0]      # prints "PORT <n>" on stdout when ready

A raw asyncio HTTP/1.1 server with keep-alive: no framework, no thread per
request, canned bodies built once. It is meant to cost the client nothing, so
that a benchmark measures the client (sarai_llm, LiteLLM, the openai SDK).

* ``POST /v1/chat/completions``: a JSON answer, or with ``"stream": true`` an
  SSE stream (chunked transfer encoding) of ``max_tokens`` content chunks
  (default 5), a finish chunk, a usage chunk when
  ``stream_options.include_usage`` is set, and ``[DONE]``. A model name
  starting with ``slow`` waits 50 ms before answering (coalescing benchmark).
* ``POST /v1/embeddings``: one 8-dimension vector per input text.
* Ollama: ``POST /api/chat`` (JSON, or NDJSON lines when ``"stream"`` is not false: ``num_predict``
  content lines, default 5, then a ``done`` line with the token counts) and ``POST /api/embed``.
* Anthropic: ``POST /v1/messages`` (JSON, or with ``"stream": true`` an SSE stream of ``max_tokens``
  text deltas, 5 when it asks for more than 100, between ``message_start`` and ``message_stop``).
* ``GET /v1/models``; ``GET /_count`` returns ``{"chat": n, "embeddings": n, "errors": n}``
  (requests seen so far, requests it could not read or answer); ``POST /_reset`` zeroes the counters.

The benchmark client runs in another process: the stub never shares its
CPU time slice, GIL or event loop.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

import orjson

SLOW_DELAY = 0.05
COUNTS = {"chat": 0, "embeddings": 0}
ERRORS: list[str] = []

_JSON_HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"
_SSE_HEAD = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
    b"Transfer-Encoding: chunked\r\n\r\n"
)


def _json_response(body: object) -> bytes:
    data = orjson.dumps(body)
    return _JSON_HEAD % len(data) + data


_NOT_FOUND = b"HTTP/1.1 404 Not Found" + _json_response({"error": {"message": "not found"}})[15:]


_BAD_REQUEST = b"HTTP/1.1 400 Bad Request" + _json_response({"error": {"message": "bad request"}})[15:]
_SERVER_ERROR = b"HTTP/1.1 500 Internal Server Error" + _json_response({"error": {"message": "stub error"}})[15:]


def _chat_body(model: str) -> bytes:
    return _json_response(
        {
            "id": "chatcmpl-bench",
            "object": "chat.completion",
            "created": 1700000000,
            "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "pong"}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 9, "completion_tokens": 1, "total_tokens": 10},
        }
    )


def _chunk(data: bytes) -> bytes:
    event = b"data: " + data + b"\n\n"
    return b"%x\r\n%s\r\n" % (len(event), event)


def _stream_body(model: str, n: int, usage: bool) -> bytes:
    """All events of one stream, each in its own HTTP chunk, written in one go."""
    base = {"id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": 1700000000, "model": model}
    parts = [_SSE_HEAD]
    for i in range(n):
        delta: dict[str, str] = {"content": f"tok{i} "}
        if i == 0:
            delta["role"] = "assistant"
        parts.append(_chunk(orjson.dumps({**base, "choices": [{"index": 0, "delta": delta, "finish_reason": None}]})))
    parts.append(_chunk(orjson.dumps({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})))
    if usage:
        u = {"prompt_tokens": 9, "completion_tokens": n, "total_tokens": 9 + n}
        parts.append(_chunk(orjson.dumps({**base, "choices": [], "usage": u})))
    parts.append(_chunk(b"[DONE]"))
    parts.append(b"0\r\n\r\n")
    return b"".join(parts)


def _embeddings_body(model: str, texts: list[str]) -> bytes:
    data = [
        {"object": "embedding", "index": i, "embedding": [float((len(t) * 7 + d) % 13) / 13.0 for d in range(8)]}
        for i, t in enumerate(texts)
    ]
    return _json_response(
        {
            "object": "list",
            "data": data,
            "model": model,
            "usage": {"prompt_tokens": len(texts), "total_tokens": len(texts)},
        }
    )


_NDJSON_HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: application/x-ndjson\r\nTransfer-Encoding: chunked\r\n\r\n"


def _ollama_line(model: str, content: str, done: bool, n: int = 0) -> bytes:
    line: dict[str, object] = {"model": model, "created_at": "2026-01-01T00:00:00Z", "done": done}
    line["message"] = {"role": "assistant", "content": content}
    if done:
        line.update(done_reason="stop", prompt_eval_count=9, eval_count=n or 1)
    return orjson.dumps(line) + b"\n"


def _ollama_stream_body(model: str, n: int) -> bytes:
    lines = [_ollama_line(model, f"tok{i} ", False) for i in range(n)] + [_ollama_line(model, "", True, n)]
    return _NDJSON_HEAD + b"".join(b"%x\r\n%s\r\n" % (len(x), x) for x in lines) + b"0\r\n\r\n"


def _anthropic_body(model: str, n: int, stream: bool) -> bytes:
    usage = {"input_tokens": 9, "output_tokens": n}
    message = {"id": "msg_bench", "type": "message", "role": "assistant", "model": model, "stop_sequence": None}
    if not stream:
        text = [{"type": "text", "text": "pong"}]
        return _json_response(
            {**message, "content": text, "stop_reason": "end_turn", "usage": {**usage, "output_tokens": 1}}
        )
    events: list[dict[str, object]] = [
        {"type": "message_start", "message": {**message, "content": [], "stop_reason": None, "usage": usage}},
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
    ]
    events += [
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": f"tok{i} "}}
        for i in range(n)
    ]
    events.append({"type": "content_block_stop", "index": 0})
    events.append({"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": n}})
    events.append({"type": "message_stop"})
    chunks = []
    for event in events:
        data = b"event: " + str(event["type"]).encode() + b"\ndata: " + orjson.dumps(event) + b"\n\n"
        chunks.append(b"%x\r\n%s\r\n" % (len(data), data))
    return _SSE_HEAD + b"".join(chunks) + b"0\r\n\r\n"


_cache: dict[tuple[object, ...], bytes] = {}


def _cached(key: tuple[object, ...], build: object) -> bytes:
    body = _cache.get(key)
    if body is None:
        body = _cache[key] = build()  # type: ignore[operator]
    return body


class _Protocol(asyncio.Protocol):
    def __init__(self) -> None:
        self.buf = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while self.buf:
            try:
                request = self._parse()
            except Exception as exc:  # a request we cannot read: say so, drop the connection
                ERRORS.append(f"parse: {type(exc).__name__}: {exc}")
                sys.stderr.write(f"stub: cannot parse a request: {exc!r}\n")
                assert self.transport is not None
                self.transport.write(_BAD_REQUEST)
                self.transport.close()
                return
            if request is None:
                return
            method, path, body = request
            try:
                self.handle(method, path, body)
            except Exception as exc:
                ERRORS.append(f"handle: {type(exc).__name__}: {exc}")
                sys.stderr.write(f"stub: error answering {method!r} {path!r}: {exc!r}\n")
                assert self.transport is not None
                self.transport.write(_SERVER_ERROR)

    def _parse(self) -> tuple[bytes, bytes, bytes] | None:
        """One complete request off the buffer, or None if it has not all arrived."""
        end = self.buf.find(b"\r\n\r\n")
        if end < 0:
            return None
        head = self.buf[:end]
        lines = head.split(b"\r\n")
        method, path, _version = lines[0].split(b" ", 2)
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            headers[name.strip().lower()] = value.strip()
        start = end + 4
        if headers.get(b"transfer-encoding", b"").lower() == b"chunked":
            body: list[bytes] = []
            pos = start
            while True:
                eol = self.buf.find(b"\r\n", pos)
                if eol < 0:
                    return None
                size = int(self.buf[pos:eol].split(b";", 1)[0], 16)
                if len(self.buf) < eol + 2 + size + 2:
                    return None
                if size == 0:
                    trailer_end = self.buf.find(b"\r\n\r\n", eol)
                    if trailer_end < 0:
                        return None
                    self.buf = self.buf[trailer_end + 4 :]
                    return method, path, b"".join(body)
                body.append(self.buf[eol + 2 : eol + 2 + size])
                pos = eol + 2 + size + 2
        length = int(headers.get(b"content-length", b"0") or 0)
        if len(self.buf) < start + length:
            return None
        body_bytes = self.buf[start : start + length]
        self.buf = self.buf[start + length :]
        return method, path, body_bytes

    def handle(self, method: bytes, path: bytes, body: bytes) -> None:
        assert self.transport is not None
        path = path.split(b"?", 1)[0]
        if method == b"POST" and path.endswith(b"/chat/completions"):
            COUNTS["chat"] += 1
            req = orjson.loads(body)
            model = req.get("model") or "stub"
            if req.get("stream"):
                n = int(req.get("max_tokens") or req.get("max_completion_tokens") or 5)
                usage = bool((req.get("stream_options") or {}).get("include_usage"))
                out = _cached(("s", model, n, usage), lambda: _stream_body(model, n, usage))
            else:
                out = _cached(("c", model), lambda: _chat_body(model))
            if model.startswith("slow"):
                asyncio.get_running_loop().call_later(SLOW_DELAY, self._write, out)
            else:
                self.transport.write(out)
        elif method == b"POST" and path.endswith(b"/messages"):
            COUNTS["chat"] += 1
            req = orjson.loads(body)
            model, stream = req.get("model") or "stub", bool(req.get("stream"))
            n = int(req.get("max_tokens") or 5) if stream else 1
            n = n if n <= 100 else 5  # LiteLLM asks for thousands when the caller set none
            self.transport.write(_cached(("a", model, n, stream), lambda: _anthropic_body(model, n, stream)))
        elif method == b"POST" and path.endswith(b"/api/chat"):
            COUNTS["chat"] += 1
            req = orjson.loads(body)
            model = req.get("model") or "stub"
            if req.get("stream", True) is not False:
                n = int((req.get("options") or {}).get("num_predict") or 5)
                out = _cached(("os", model, n), lambda: _ollama_stream_body(model, n))
            else:
                out = _cached(("oc", model), lambda: _json_response(orjson.loads(_ollama_line(model, "pong", True))))
            self.transport.write(out)
        elif method == b"POST" and path.endswith(b"/api/embed"):
            COUNTS["embeddings"] += 1
            req = orjson.loads(body)
            texts = req["input"] if isinstance(req["input"], list) else [req["input"]]
            vectors = [[float((len(t) * 7 + d) % 13) / 13.0 for d in range(8)] for t in texts]
            answer = {"model": req.get("model"), "embeddings": vectors, "prompt_eval_count": len(texts)}
            self.transport.write(_json_response(answer))
        elif method == b"POST" and path.endswith(b"/embeddings"):
            COUNTS["embeddings"] += 1
            req = orjson.loads(body)
            texts = req["input"] if isinstance(req["input"], list) else [req["input"]]
            self.transport.write(_embeddings_body(req.get("model") or "stub", texts))
        elif method == b"GET" and path.endswith(b"/models"):
            self.transport.write(_json_response({"object": "list", "data": [{"id": "stub", "object": "model"}]}))
        elif method == b"GET" and path == b"/_count":
            self.transport.write(_json_response({**COUNTS, "errors": len(ERRORS), "last_errors": ERRORS[-3:]}))
        elif method == b"POST" and path == b"/_reset":
            COUNTS["chat"] = COUNTS["embeddings"] = 0
            self.transport.write(_json_response(COUNTS))
        else:
            self.transport.write(_NOT_FOUND)

    def _write(self, out: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(out)


async def _serve(port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(_Protocol, "127.0.0.1", port, backlog=1024, reuse_address=True)
    sys.stdout.write(f"PORT {server.sockets[0].getsockname()[1]}\n")
    sys.stdout.flush()
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    try:
        asyncio.run(_serve(args.port))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
