"""Test support for modules that use sarai_llm: a fake gateway and a pytest fixture.

A module's tests need no LLM, no server and no network::

    # your_module/reasoner.py
    import sarai_llm

    async def reason(task: str) -> str:
        r = await sarai_llm.chat([{"role": "user", "content": task}], temperature=0.2)
        return r["content"]

    # tests/test_reasoner.py  (no import of sarai_llm.testing needed)
    async def test_reason(fake_llm):
        fake_llm.queue("42")
        assert await reason("6 x 7?") == "42"
        assert fake_llm.last_call.messages[-1]["content"] == "6 x 7?"
        assert fake_llm.last_call.kwargs["temperature"] == 0.2

The ``fake_llm`` fixture comes with the package: sarai_llm registers this
module as a pytest plugin (entry point ``pytest11``), so any project that has
sarai_llm installed can use it. Outside pytest, use
:func:`install_fake_gateway` as a context manager.

While installed, the fake is the process-wide gateway: ``sarai_llm.chat``,
``stream_chat``, ``embed``, ``health_check``, ``get_stats``, ``clear_cache``,
``get_gateway()`` and the ``*_sync`` functions all use it. A module that kept
a gateway from ``get_gateway()`` *before* the fake was installed keeps the
real one: create your module's objects inside the test.

Importing this module is cheap (no LiteLLM, no pydantic): pytest loads it at
start-up in every project where sarai_llm is installed.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

from .errors import AllProvidersFailedError, ProviderConnectionError

if TYPE_CHECKING:
    from .gateway import Gateway

__all__ = [
    "FakeCache",
    "FakeCall",
    "FakeGateway",
    "Reply",
    "all_providers_failed",
    "install_fake_gateway",
]


@dataclass
class FakeCall:
    """One call the fake gateway received.

    :ivar method: ``"chat"``, ``"stream_chat"``, ``"embed"``, ``"health_check"``,
        ``"get_stats"`` or ``"clear_cache"``.
    :ivar messages: the chat messages (``None`` for other methods).
    :ivar kwargs: every other argument by name: ``model``, ``provider``,
        ``temperature``, ``max_tokens``, ``use_cache``, provider keyword
        arguments; for ``embed`` also ``text``.
    """

    method: str
    messages: list[dict[str, Any]] | None = None
    kwargs: dict[str, Any] = field(default_factory=dict)

    @property
    def prompt(self) -> str | None:
        """The content of the last message (the user's prompt, usually)."""
        if not self.messages:
            return None
        content = self.messages[-1].get("content")
        return content if isinstance(content, str) else None


Reply = str | Mapping[str, Any] | BaseException | type[BaseException] | Callable[[FakeCall], Any]
"""What a scripted chat answer may be.

* a ``str``: the answer's ``content``;
* a mapping: keys of the result dict to set (``{"content": "hi", "cached": True}``);
  ``"chunks": [...]`` sets the pieces ``stream_chat`` yields, and ``"error"``
  an exception raised by ``stream_chat`` after those pieces (a cut stream);
* an exception instance (or class): raised by the call;
* a function of the :class:`FakeCall`: returns one of the above.
"""


def all_providers_failed(provider: str = "fake", reason: str = "connection refused") -> AllProvidersFailedError:
    """The error the real gateway raises when every provider failed, for scripting.

    >>> fake.queue(all_providers_failed("ollama"))   # doctest: +SKIP
    """
    return AllProvidersFailedError({provider: ProviderConnectionError(provider, reason)})


class FakeCache:
    """Stands in for :class:`sarai_llm.cache.ResponseCache`: records invalidations, holds nothing."""

    def __init__(self) -> None:
        self.invalidated: list[tuple[list[dict[str, Any]], str | None]] = []
        self.clears = 0

    def invalidate(self, messages: Sequence[Mapping[str, Any]], model: str | None = None) -> int:
        """Record the call; returns 0 (the fake caches nothing)."""
        self.invalidated.append(([dict(m) for m in messages], model))
        return 0

    def clear(self) -> None:
        """Record the call."""
        self.clears += 1

    def __len__(self) -> int:
        return 0

    def close(self) -> None:
        """Nothing to release."""


def _instantiate(error: type[BaseException]) -> BaseException:
    """An instance of a scripted error class, with the arguments its constructor needs."""
    from .errors import ProviderError, StreamInterruptedError

    if issubclass(error, AllProvidersFailedError):
        return error({"fake": ProviderConnectionError("fake", "scripted error")})
    if issubclass(error, ProviderError):
        return error("fake", "scripted error")
    if issubclass(error, StreamInterruptedError):
        return error("fake", 0, ConnectionError("scripted error"))
    return error("scripted error")


def _words(text: str) -> int:
    return len(text.split())


def _default_vector(text: str, dimensions: int) -> list[float]:
    """A deterministic unit vector derived from the text (same text, same vector)."""
    digest = hashlib.sha256(text.encode()).digest()
    raw = [digest[i % len(digest)] / 255.0 - 0.5 for i in range(dimensions)]
    norm = math.sqrt(sum(x * x for x in raw)) or 1.0
    return [x / norm for x in raw]


class FakeGateway:
    """A scripted stand-in for :class:`sarai_llm.Gateway` that records every call.

    :param replies: chat answers given in order (see :data:`Reply`), or one
        function of the :class:`FakeCall` called for every chat. When the
        queue is empty, ``default`` answers.
    :param default: the answer when no scripted reply is left (default
        ``"fake response"``); ``None`` makes an unscripted call fail with
        ``AssertionError``, for tests that want every call scripted.
    :param embedding: ``text -> vector`` for :meth:`embed`, or an exception
        every ``embed`` raises (default: a deterministic unit vector of
        ``dimensions`` floats per text).
    :param dimensions: length of the default vectors (default 8).
    :param health: what :meth:`health_check` reports (default ``{"fake": True}``).
    :param provider: the ``provider`` of answers (default ``"fake"``).
    :param model: the ``model`` of answers when the call names none (default ``"fake-model"``).
    :param validate: check arguments like the real gateway does, raising
        :class:`~sarai_llm.InvalidRequestError` (default ``True``).
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
        validate: bool = True,
    ) -> None:
        self._responder: Callable[[FakeCall], Any] | None = None
        self._queue: deque[Reply] = deque()
        if callable(replies):
            self._responder = replies
        elif replies is not None:
            self._queue.extend(replies)
        self.default = default
        self.embedding = embedding
        self.dimensions = dimensions
        self.health = dict(health) if health is not None else {"fake": True}
        self.provider = provider
        self.model = model
        self.validate = validate
        self.calls: list[FakeCall] = []
        self.cache = FakeCache()
        self.closed = False

    def __repr__(self) -> str:
        return f"FakeGateway(calls={len(self.calls)}, queued={len(self._queue)})"

    # -- scripting -----------------------------------------------------------------

    def queue(self, *replies: Reply) -> FakeGateway:
        """Append chat answers (or errors) to the queue; returns the fake for chaining."""
        self._queue.extend(replies)
        return self

    def fail(self, error: BaseException | None = None) -> FakeGateway:
        """Make the next chat fail with ``error`` (default: :func:`all_providers_failed`)."""
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

    # -- inspection ----------------------------------------------------------------

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
        """Forget the recorded calls and the queued replies."""
        self.calls.clear()
        self._queue.clear()

    # -- the gateway's API -----------------------------------------------------------

    async def chat(
        self,
        messages: Sequence[Mapping[str, Any]],
        model: str | None = None,
        provider: str | None = None,
        temperature: float = 0.7,
        max_tokens: int | None = None,
        use_cache: bool = True,
        **provider_kwargs: Any,
    ) -> dict[str, Any]:
        """Record the call and return the next scripted answer as a result dict."""
        call = self._record("chat", messages, model, provider, temperature, max_tokens, use_cache, provider_kwargs)
        answer = self._answer(call)
        error = answer.pop("error", None)
        answer.pop("chunks", None)
        if error is not None:
            raise error
        return answer

    def stream_chat(
        self,
        messages: Sequence[Mapping[str, Any]],
        model: str | None = None,
        provider: str | None = None,
        temperature: float = 0.7,
        max_tokens: int | None = None,
        use_cache: bool = True,
        **provider_kwargs: Any,
    ) -> AsyncIterator[str]:
        """Record the call (arguments checked now) and stream the next scripted answer.

        The pieces are the answer's ``"chunks"``, or its content split after
        each word. A scripted error is raised on the first iteration, or after
        the chunks when the answer gives both (an interrupted stream).
        """
        call = self._record(
            "stream_chat", messages, model, provider, temperature, max_tokens, use_cache, provider_kwargs
        )
        return self._stream(call)

    async def _stream(self, call: FakeCall) -> AsyncIterator[str]:
        answer = self._answer(call)
        error = answer.get("error")
        chunks = answer.get("chunks")
        if chunks is None:
            chunks = [] if error is not None else re.findall(r"\S+\s*|\s+", answer["content"])
        for piece in chunks:
            yield piece
        if error is not None:
            raise error

    async def embed(
        self,
        text: str | Sequence[str],
        model: str | None = None,
        provider: str | None = None,
        use_cache: bool = True,
        **kwargs: Any,
    ) -> list[float] | list[list[float]]:
        """Record the call and return one vector per text (``list[float]`` for one text)."""
        if self.validate and not (
            isinstance(text, str) or (isinstance(text, list | tuple) and text and all(isinstance(t, str) for t in text))
        ):
            from .errors import InvalidRequestError

            raise InvalidRequestError(
                f"text must be a string or a non-empty list of strings, got {type(text).__name__}"
            )
        self.calls.append(
            FakeCall(
                "embed", None, {"text": text, "model": model, "provider": provider, "use_cache": use_cache, **kwargs}
            )
        )
        if isinstance(self.embedding, BaseException):
            raise self.embedding
        texts = [text] if isinstance(text, str) else list(text)
        make = self.embedding or (lambda t: _default_vector(t, self.dimensions))
        vectors = [[float(x) for x in make(t)] for t in texts]
        return vectors[0] if isinstance(text, str) else vectors

    async def health_check(self, provider: str | None = None, *, detailed: bool = False) -> dict[str, Any]:
        """Record the call and report :attr:`health` (one provider when ``provider`` is given)."""
        self.calls.append(FakeCall("health_check", None, {"provider": provider, "detailed": detailed}))
        health = self.health if provider is None else {provider: self.health.get(provider, False)}
        if detailed:
            return {
                name: {"ok": ok, "latency_ms": 0.0, "error": None if ok else "down (scripted)"}
                for name, ok in health.items()
            }
        return dict(health)

    def get_stats(self) -> dict[str, Any]:
        """Counters in the shape of the real ``get_stats()``, computed from the recorded calls."""
        requests = sum(1 for c in self.calls if c.method in ("chat", "stream_chat", "embed"))
        return {
            "total_requests": requests,
            "total_errors": 0,
            "total_fallbacks": 0,
            "error_rate": 0.0,
            "providers": {self.provider: {"requests": requests, "errors": 0, "error_rate": 0.0}},
            "config": {"primary_provider": self.provider, "fallback_providers": [], "cache_enabled": False},
            "cost": {"spent_usd": 0.0, "saved_usd": 0.0, "providers": {}, "callers": {}},
        }

    def clear_cache(self) -> None:
        """Record the call."""
        self.calls.append(FakeCall("clear_cache"))
        self.cache.clear()

    def close(self) -> None:
        """Called by :func:`sarai_llm.reset_gateway`; the fake stays usable."""
        self.closed = True

    async def aclose(self) -> None:
        """Called by :func:`sarai_llm.aclose`; the fake stays usable."""
        self.close()

    # -- internals -------------------------------------------------------------------

    def _record(
        self,
        method: str,
        messages: Sequence[Mapping[str, Any]],
        model: str | None,
        provider: str | None,
        temperature: float,
        max_tokens: int | None,
        use_cache: bool,
        provider_kwargs: Mapping[str, Any],
    ) -> FakeCall:
        if self.validate:
            # The real gateway's checks, so that a module's bad call fails here too.
            from .gateway import _check_messages, _check_params

            _check_messages(messages)
            _check_params(temperature, max_tokens, model, use_cache, provider_kwargs)
        call = FakeCall(
            method,
            [dict(m) for m in messages] if isinstance(messages, list | tuple) else cast(Any, messages),
            {
                "model": model,
                "provider": provider,
                "temperature": temperature,
                "max_tokens": max_tokens,
                "use_cache": use_cache,
                **provider_kwargs,
            },
        )
        self.calls.append(call)
        return call

    def _next_reply(self, call: FakeCall) -> Any:
        if self._queue:
            return self._queue.popleft()
        if self._responder is not None:
            return self._responder
        if self.default is None:
            raise AssertionError(
                f"the fake gateway has no scripted reply for {call.method} call #{len(self.calls)} "
                f"(prompt {call.prompt!r}); queue one with fake.queue(...)"
            )
        return self.default

    def _answer(self, call: FakeCall) -> dict[str, Any]:
        reply = self._next_reply(call)
        if callable(reply) and not isinstance(reply, type):
            reply = reply(call)
        if isinstance(reply, type) and issubclass(reply, BaseException):
            reply = _instantiate(reply)
        if isinstance(reply, BaseException):
            raise reply
        content = reply if isinstance(reply, str) else ""
        prompt_text = " ".join(str(m.get("content", "")) for m in call.messages or [])
        result: dict[str, Any] = {
            "content": content,
            "model": call.kwargs.get("model") or self.model,
            "provider": call.kwargs.get("provider") or self.provider,
            "usage": {},
            "finish_reason": "stop",
            "cached": False,
            "coalesced": False,
            "latency_ms": 0.0,
            "cost_usd": 0.0,
        }
        if isinstance(reply, Mapping):
            result.update(reply)
        elif not isinstance(reply, str):
            raise TypeError(f"a scripted reply must be a str, a mapping or an exception, got {type(reply).__name__}")
        if not result["usage"]:
            prompt_tokens, completion_tokens = _words(prompt_text), _words(str(result["content"]))
            result["usage"] = {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            }
        return result


@contextmanager
def install_fake_gateway(fake: FakeGateway | None = None) -> Iterator[FakeGateway]:
    """Make ``fake`` the process-wide gateway for the ``with`` block, then restore the previous one.

    ``sarai_llm.chat`` and the rest of the module-level API use it while
    installed. The previous gateway is neither closed nor reset; it is back
    in place afterwards, even when the block raises.

    :param fake: the fake to install (default: a new :class:`FakeGateway`).
    """
    import sarai_llm

    fake = fake if fake is not None else FakeGateway()
    with sarai_llm._lock:
        previous = sarai_llm._gateway
        sarai_llm._gateway = cast("Gateway", fake)
    try:
        yield fake
    finally:
        with sarai_llm._lock:
            sarai_llm._gateway = previous


try:
    import pytest
except ImportError:  # pytest is optional: the fake works without it
    pass
else:

    @pytest.fixture
    def fake_llm() -> Iterator[FakeGateway]:
        """A :class:`FakeGateway` installed as sarai_llm's gateway for one test.

        Every ``sarai_llm.chat`` answers ``"fake response"`` unless the test
        scripts otherwise (``fake_llm.queue("yes", SomeError(...))``); the
        calls are in ``fake_llm.calls``. No server, no network, no LiteLLM.
        """
        with install_fake_gateway(FakeGateway()) as fake:
            yield fake
