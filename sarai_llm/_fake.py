"""The fake gateway of :mod:`sarai_llm.testing`: the real pipeline with a scripted provider behind it."""

from __future__ import annotations

import hashlib
import inspect
import itertools
import json
import math
import re
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterable, Iterator, Mapping, Sequence
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from ._adapter import Attempt, ChatResult, Completion, Embeddings, StreamState, no_usage
from ._gateway import Gateway
from ._script import FakeCall, Reply, all_providers_failed
from ._validate import check_call, check_messages, check_shared, check_texts
from .cache import MemoryStore
from .config import GatewayConfig, ProviderConfig
from .errors import AllProvidersFailedError, InvalidRequestError, ProviderError, StreamInterruptedError

if TYPE_CHECKING:
    from ._streams import ChatStream

__all__ = ["FakeGateway"]

# The call being answered: set around each step of a call, read by the scripted provider.
_CALL: ContextVar[FakeCall | None] = ContextVar("sarai_llm_fake_call", default=None)
_REPLY_KEYS = frozenset(
    {"content", "model", "usage", "finish_reason", "cost_usd", "chunks", "error", "tool_calls", "reasoning_content"}
)
_SIGNATURES = {name: inspect.signature(getattr(Gateway, name)) for name in ("chat", "stream_chat", "embed")}
_Messages = Sequence[Mapping[str, Any]]
_UNRECORDED, _OPTIONS = ("self", "provider_kwargs"), ("caller", "deadline")  # options recorded when given


class FakeGateway(Gateway):
    """A real :class:`~sarai_llm.Gateway` whose one provider answers what the test scripted; records every call.

    :param replies: chat answers given in order (see :data:`~sarai_llm.testing.Reply`), or one function
        of the :class:`~sarai_llm.testing.FakeCall` answering every chat.
    :param default: the answer once the queue is empty (default ``"fake response"``); ``None``: ``AssertionError``.
    :param embedding: ``text -> vector``, or an exception every ``embed`` attempt raises (default: a
        deterministic unit vector of ``dimensions`` floats, default 8).
    :param health: what :meth:`health_check` reports (default ``{"fake": True}``).
    :param provider: the provider's name (default ``"fake"``), unless a call names one with ``provider=``.
    :param model: the model of answers when the call names none (default ``"fake-model"``).
    :param cache: put the real response cache in front, in memory (default ``False``).
    """

    def __init__(
        self,
        replies: Iterable[Reply] | Callable[[FakeCall], Any] | None = None,
        *,
        default: Reply | None = "fake response",
        embedding: Callable[[str], Sequence[float]] | BaseException | None = None,
        dimensions: int = 8,
        health: Mapping[str, bool] | None = None,
        provider: str = "fake",
        model: str = "fake-model",
        cache: bool = False,
    ) -> None:
        config = GatewayConfig.defaults(cache_enabled=cache, primary_provider="local")
        super().__init__(config, adapter=_ScriptedProvider(self), store=MemoryStore if cache else None)
        self._responder: Callable[[FakeCall], Any] | None = replies if callable(replies) else None
        self._queue: deque[Reply] = deque(() if replies is None or callable(replies) else replies)
        self.default, self.embedding, self.dimensions = default, embedding, dimensions
        self.health = dict(health) if health is not None else {"fake": True}
        self.provider, self.model = provider, model
        self.calls: list[FakeCall] = []
        self.closed = False
        self._call_ids = itertools.count(1)  # scripted tool calls without an id: call_1, call_2, ...

    def __repr__(self) -> str:
        return f"FakeGateway(calls={len(self.calls)}, queued={len(self._queue)})"

    def queue(self, *replies: Reply) -> FakeGateway:
        """Append chat answers (or errors) to the queue; returns the fake for chaining."""
        self._queue.extend(replies)
        return self

    def fail(self, error: BaseException | None = None) -> FakeGateway:
        """Make the next chat fail with ``error`` (default: :func:`~sarai_llm.testing.all_providers_failed`)."""
        self._queue.append(error if error is not None else all_providers_failed())
        return self

    def respond_with(self, responder: Callable[[FakeCall], Any]) -> FakeGateway:
        """Answer every chat with ``responder(call)`` once the queue is empty."""
        self._responder = responder
        return self

    @property
    def pending(self) -> int:
        """Scripted replies not consumed yet."""
        return len(self._queue)

    @property
    def last_call(self) -> FakeCall:
        """The most recent call; ``AssertionError`` when there was none."""
        if not self.calls:
            raise AssertionError("the fake gateway received no call")
        return self.calls[-1]

    def calls_to(self, method: str) -> list[FakeCall]:
        """The calls of one method (``"chat"``, ``"embed"``, ...), in order."""
        return [c for c in self.calls if c.method == method]

    @property
    def prompts(self) -> list[str | None]:
        """The last message's content of every chat and stream_chat call, in order."""
        return [c.prompt for c in self.calls if c.method in ("chat", "stream_chat")]

    def reset(self) -> None:
        """Forget the recorded calls and the queued replies; tool call ids start again at ``call_1``."""
        self.calls.clear()
        self._queue.clear()
        self._call_ids = itertools.count(1)

    if not TYPE_CHECKING:  # type checkers see the gateway's own signatures (embed's overloads among them)

        async def chat(self, *args: Any, **kwargs: Any) -> ChatResult:
            """:meth:`Gateway.chat`, recorded."""
            token = _CALL.set(self._record("chat", args, kwargs))
            try:
                return await super().chat(*args, **kwargs)
            finally:
                _CALL.reset(token)

        def stream_chat(self, *args: Any, **kwargs: Any) -> ChatStream:
            """:meth:`Gateway.stream_chat`, recorded; the stream's other attributes (``.result``) are the real one's."""
            call = self._record("stream_chat", args, kwargs)
            return _Answering(call, super().stream_chat(*args, **kwargs))  # a ChatStream by duck typing

        async def embed(self, *args: Any, **kwargs: Any) -> list[float] | list[list[float]]:
            """:meth:`Gateway.embed`, recorded."""
            token = _CALL.set(self._record("embed", args, kwargs))
            try:
                return await super().embed(*args, **kwargs)
            finally:
                _CALL.reset(token)

    async def health_check(self, provider: str | None = None, *, detailed: bool = False) -> dict[str, Any]:
        """Record the call and report :attr:`health` (one provider when ``provider`` is given)."""
        self.calls.append(FakeCall("health_check", None, {"provider": provider, "detailed": detailed}))
        health = self.health if provider is None else {provider: self.health.get(provider, False)}
        if not detailed:
            return dict(health)
        return {
            n: {"ok": ok, "latency_ms": 0.0, "error": None if ok else "down (scripted)"} for n, ok in health.items()
        }

    def clear_cache(self) -> None:
        """:meth:`Gateway.clear_cache`, recorded."""
        self.calls.append(FakeCall("clear_cache"))
        super().clear_cache()

    def close(self) -> None:
        """Called by :func:`sarai_llm.reset_gateway`; the fake stays usable (uncached)."""
        self.closed = True
        super().close()

    def _resolve(self, provider: str | None, *, embedding: bool = False) -> list[ProviderConfig]:
        if provider is not None and (not isinstance(provider, str) or not provider.strip()):
            raise InvalidRequestError(f"provider must be a provider name or None, got {provider!r}")
        name = provider.strip().lower() if provider is not None else self.provider
        return [ProviderConfig(name=name, model=self.model, embed_model=self.model)]

    def _record(self, method: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> FakeCall:
        """The call's arguments by name, checked as the gateway checks them, recorded."""
        bound = _SIGNATURES[method].bind(self, *args, **kwargs)
        bound.apply_defaults()
        named = {**bound.arguments, **bound.arguments.get("provider_kwargs", {})}
        named = {k: v for k, v in named.items() if k not in _UNRECORDED and (v is not None or k not in _OPTIONS)}
        if method == "embed":
            check_texts(named["text"])
            check_shared(named["model"], named["use_cache"], {})
            call = FakeCall(method, None, named)
        else:
            messages = check_messages(named.pop("messages"))
            check_call(named["temperature"], named["max_tokens"], named["model"], named["use_cache"], {})
            call = FakeCall(method, [dict(m) for m in messages], named)
        self.calls.append(call)
        return call

    def _script(self, call: FakeCall | None) -> dict[str, Any]:
        """The next scripted answer for ``call`` as a mapping; raises a scripted error."""
        fallback = self._responder if self._responder is not None else self.default
        if not self._queue and fallback is None:
            raise AssertionError(
                f"the fake gateway has no scripted reply for call #{len(self.calls)} "
                f"(prompt {call.prompt if call else None!r}); queue one with fake.queue(...)"
            )
        reply: Any = self._queue.popleft() if self._queue else fallback
        if callable(reply) and not isinstance(reply, type):
            reply = reply(call)
        if isinstance(reply, type) and issubclass(reply, BaseException):
            reply = _instantiate(reply)
        if isinstance(reply, BaseException):
            raise reply
        if isinstance(reply, str):
            return {"content": reply}
        if not isinstance(reply, Mapping):
            raise TypeError(f"a scripted reply must be a str, a mapping or an exception, got {type(reply).__name__}")
        if unknown := set(reply) - _REPLY_KEYS:
            raise TypeError(
                f"scripted reply keys {sorted(unknown)} are not what a provider answers; use {sorted(_REPLY_KEYS)} "
                "(cached and coalesced come from the real cache: FakeGateway(cache=True))"
            )
        return dict(reply)


class _ScriptedProvider:
    """The :class:`~sarai_llm._adapter.Adapter` of a :class:`FakeGateway`: its scripted answers."""

    def __init__(self, fake: FakeGateway):
        self.fake = fake

    def _answer(self, model: str, messages: _Messages) -> tuple[dict[str, Any], Completion]:
        reply = self.fake._script(_CALL.get())
        content = str(reply.get("content", "".join(reply.get("chunks") or ())))
        scripted = reply.get("usage")
        usage = {**no_usage(), **(scripted or _words(messages, content))}  # the two details 0 unless scripted
        if not scripted or "total_tokens" not in scripted:
            usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        tool_calls = [_tool_call(c, self.fake._call_ids) for c in reply.get("tool_calls") or ()]
        finish = reply.get("finish_reason", "tool_calls" if tool_calls else "stop")
        cost, reasoning = float(reply.get("cost_usd") or 0.0), reply.get("reasoning_content")
        return reply, Completion(content, reply.get("model") or model, usage, finish, cost, tool_calls, reasoning)

    async def complete(self, attempt: Attempt) -> Completion:
        reply, completion = self._answer(attempt.model, attempt.messages)
        if reply.get("error") is not None:
            raise reply["error"]
        return completion

    async def stream(self, attempt: Attempt, state: StreamState) -> AsyncGenerator[str, None]:
        reply, completion = self._answer(attempt.model, attempt.messages)
        chunks = reply.get("chunks")
        chunks = re.findall(r"\S+\s*|\s+", completion.content) if chunks is None else chunks
        state.model, state.usage, state.cost_usd = completion.model, completion.usage, completion.cost_usd
        state.reasoning_content = completion.reasoning_content  # reasoning comes first, then the text
        for piece in chunks:
            yield piece
        if reply.get("error") is not None:
            raise reply["error"]
        state.tool_calls, state.finish_reason = completion.tool_calls, completion.finish_reason

    async def embed(self, attempt: Attempt) -> Embeddings:
        texts, make = attempt.texts, self.fake.embedding
        if isinstance(make, BaseException):
            raise make
        vectors = [[float(x) for x in (make(t) if make else _vector(t, self.fake.dimensions))] for t in texts]
        words = sum(len(t.split()) for t in texts)
        return Embeddings(vectors, {**no_usage(), "prompt_tokens": words, "total_tokens": words})

    async def close_connections(self) -> None:
        """Nothing to close."""


class _Answering(AsyncIterator[str]):
    """``stream``, with ``call`` as the call being answered at each step (each may run in its own task).

    Any other attribute (``.result``, ``aclose``) is the stream's own.
    """

    def __init__(self, call: FakeCall, stream: AsyncIterator[str]) -> None:
        self._call, self._stream = call, stream

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)

    async def __anext__(self) -> str:
        token = _CALL.set(self._call)
        try:
            return await anext(self._stream)
        finally:
            _CALL.reset(token)


def _words(messages: _Messages, content: str) -> dict[str, int]:
    """Usage counted in words: the messages' text (of text parts too), and the answer."""
    parts = [[m.get("content")] if not isinstance(m.get("content"), list) else m["content"] for m in messages]
    texts = (p.get("text") if isinstance(p, Mapping) else p for each in parts for p in each)
    prompt = sum(len(str(t or "").split()) for t in texts)
    return {"prompt_tokens": prompt, "completion_tokens": len(content.split())}


def _tool_call(call: Mapping[str, Any], ids: Iterator[int]) -> dict[str, Any]:
    """A scripted tool call in OpenAI's shape: the next ``call_<n>`` as ``id`` when omitted, dict arguments as JSON."""
    function = dict(call.get("function") or {})
    if not isinstance(function.get("name"), str):
        raise TypeError(f"a scripted tool call needs function.name: {{'function': {{'name': ..., ...}}}}, got {call!r}")
    arguments = function.get("arguments", "{}")
    function["arguments"] = arguments if isinstance(arguments, str) else json.dumps(arguments)
    call_id, kind = call.get("id") or f"call_{next(ids)}", call.get("type", "function")
    return {**call, "id": call_id, "type": kind, "function": function}


def _instantiate(error: type[BaseException]) -> BaseException:
    """An instance of a scripted error class, with the arguments its constructor needs."""
    if issubclass(error, AllProvidersFailedError):
        return error(all_providers_failed(reason="scripted error").errors)
    if issubclass(error, ProviderError):
        return error("fake", "scripted error")
    if issubclass(error, StreamInterruptedError):
        return error("fake", 0, ConnectionError("scripted error"))
    return error("scripted error")


def _vector(text: str, dimensions: int) -> list[float]:
    """A deterministic unit vector derived from the text (same text, same vector)."""
    digest = hashlib.sha256(text.encode()).digest()
    raw = [digest[i % len(digest)] / 255.0 - 0.5 for i in range(dimensions)]
    norm = math.sqrt(sum(x * x for x in raw)) or 1.0
    return [x / norm for x in raw]
