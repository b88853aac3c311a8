"""The gateway: validate -> cache -> LiteLLM (lazily imported) -> stats.

Everything before the cache-miss path is sarai_llm's own code and must stay
cheap; LiteLLM is imported by :meth:`Gateway._adapter` on the first miss.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar

from ._log import log
from .cache import KeyMaker, ResponseCache, default_cache_dir
from .config import PROVIDERS, GatewayConfig, ProviderConfig
from .errors import (
    AllProvidersFailedError,
    InvalidRequestError,
    NoProvidersError,
    ProviderError,
    ProviderResponseError,
    ProviderTimeoutError,
    StreamInterruptedError,
)
from .redis_store import store_factory
from .retry import with_retries
from .stats import Stats
from .supply_chain import check_litellm

if TYPE_CHECKING:
    from ._litellm import LiteLLMAdapter

__all__ = ["Gateway"]

T = TypeVar("T")

_ROLES = frozenset({"system", "user", "assistant", "tool", "function", "developer"})
# Arguments the gateway sets itself; passing them as provider kwargs is a mistake.
_RESERVED = frozenset({"messages", "stream", "input", "api_key", "api_base", "base_url"})
_CANNOT_EMBED = frozenset({"anthropic"})
_perf = time.perf_counter


# --- validation --------------------------------------------------------------------


def _check_messages(messages: object) -> list[dict[str, Any]]:
    """The messages as a list, or :class:`InvalidRequestError` saying what is wrong.

    Checks the shape (cheap, on every call). :func:`_check_sendable` checks
    the values on the way upstream.
    """
    if not isinstance(messages, list | tuple) or not messages:
        raise InvalidRequestError(
            f"messages must be a non-empty list of {{'role': ..., 'content': ...}} dicts, got {type(messages).__name__}"
        )
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            raise InvalidRequestError(f"messages[{i}] must be a dict, got {type(message).__name__}")
        role = message.get("role")
        if not isinstance(role, str) or role not in _ROLES:
            raise InvalidRequestError(f"messages[{i}]['role'] must be one of {sorted(_ROLES)}, got {role!r}")
        content = message.get("content")
        if isinstance(content, str):
            if len(message) > 2:
                _check_extras(i, message)
            continue
        if content is None and (message.get("tool_calls") or message.get("function_call")):
            _check_extras(i, message)
            continue
        if not isinstance(content, list) or not all(
            isinstance(part, dict) and isinstance(part.get("type"), str) for part in content
        ):
            raise InvalidRequestError(
                f"messages[{i}]['content'] must be a string or a list of content parts "
                f"({{'type': 'text', ...}}), got {_describe(content)}"
            )
        _check_extras(i, message)
    return messages if isinstance(messages, list) else list(messages)


def _describe(value: object) -> str:
    if isinstance(value, list):
        return "a list with an item that is not a {'type': str, ...} dict"
    return type(value).__name__


def _check_extras(i: int, message: dict[str, Any]) -> None:
    """The optional keys of a message, when present."""
    tool_calls = message.get("tool_calls")
    if tool_calls is not None and not (
        isinstance(tool_calls, list) and all(isinstance(call, dict) for call in tool_calls)
    ):
        raise InvalidRequestError(f"messages[{i}]['tool_calls'] must be a list of dicts")
    name = message.get("name")
    if name is not None and not isinstance(name, str):
        raise InvalidRequestError(f"messages[{i}]['name'] must be a string")


def _check_sendable(messages: list[dict[str, Any]]) -> None:
    """Messages must be strict JSON in UTF-8: no NaN, no lone surrogates, no foreign objects.

    Runs on the way upstream only (a miss), where it costs microseconds
    against milliseconds, so a caller's mistake is never counted as a
    provider's failure.
    """
    try:
        json.dumps(messages, allow_nan=False, ensure_ascii=False).encode("utf-8")
    except (TypeError, ValueError) as exc:  # UnicodeEncodeError is a ValueError
        raise InvalidRequestError(f"messages cannot be sent as JSON: {exc}") from None


def _check_params(
    temperature: object, max_tokens: object, model: object, use_cache: object, kwargs: Mapping[str, Any]
) -> None:
    if temperature.__class__ is float and max_tokens is None and model is None and use_cache is True and not kwargs:
        if 0.0 <= temperature <= 2.0:
            return  # the common call, checked in one step
    if isinstance(temperature, bool) or not isinstance(temperature, int | float):
        raise InvalidRequestError(f"temperature must be a number, got {type(temperature).__name__}")
    if not 0.0 <= temperature <= 2.0:
        raise InvalidRequestError(f"temperature must be between 0 and 2, got {temperature}")
    if max_tokens is not None and (isinstance(max_tokens, bool) or not isinstance(max_tokens, int)):
        raise InvalidRequestError(f"max_tokens must be a positive integer or None, got {type(max_tokens).__name__}")
    if isinstance(max_tokens, int) and max_tokens < 1:
        raise InvalidRequestError(f"max_tokens must be a positive integer, got {max_tokens}")
    _check_shared(model, use_cache, kwargs)


def _check_shared(model: object, use_cache: object, kwargs: Mapping[str, Any]) -> None:
    """The arguments ``chat``, ``stream_chat`` and ``embed`` have in common."""
    if model is not None and (not isinstance(model, str) or not model.strip()):
        raise InvalidRequestError(f"model must be a non-empty string or None, got {model!r}")
    if not isinstance(use_cache, bool):
        raise InvalidRequestError(f"use_cache must be True or False, got {type(use_cache).__name__}")
    reserved = _RESERVED.intersection(kwargs)
    if reserved:
        raise InvalidRequestError(f"these arguments are set by sarai_llm and cannot be passed: {sorted(reserved)}")


def _check_call_options(caller: object, deadline: object) -> None:
    if caller is not None and (not isinstance(caller, str) or not caller):
        raise InvalidRequestError(f"caller must be a non-empty string or None, got {caller!r}")
    if deadline is not None and (
        isinstance(deadline, bool) or not isinstance(deadline, int | float) or not 0 < deadline < float("inf")
    ):
        raise InvalidRequestError(f"deadline must be a positive number of seconds or None, got {deadline!r}")


def _check_texts(text: object) -> tuple[list[str], bool]:
    """The texts to embed, and whether one text (not a list) was given."""
    single = isinstance(text, str)
    texts = [text] if single else text
    if not isinstance(texts, list | tuple) or not texts or not all(isinstance(t, str) for t in texts):
        raise InvalidRequestError(f"text must be a string or a non-empty list of strings, got {type(text).__name__}")
    for t in texts:
        try:
            t.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise InvalidRequestError(f"text cannot be sent: {exc}") from None
    return list(texts), single


async def _within(
    pieces: AsyncGenerator[str, None], ends_at: float, deadline: float, provider: str
) -> AsyncGenerator[str, None]:
    """The pieces of a stream until ``ends_at`` (``time.monotonic()``), then :class:`ProviderTimeoutError`.

    Each wait for the provider is bounded by the time left. The caller's own
    time between pieces counts against the deadline but is never interrupted.
    """
    while True:
        try:
            async with asyncio.timeout(ends_at - time.monotonic()):
                piece = await anext(pieces, None)
        except TimeoutError:
            raise ProviderTimeoutError(provider, f"the call's deadline of {deadline:g} s passed") from None
        if piece is None:
            return
        yield piece


# --- provider chain and breaker ---------------------------------------------------


class _Breaker:
    """Skips a provider for ``cooldown`` seconds after ``allowed_fails`` failures in a row."""

    def __init__(self, allowed_fails: int, cooldown: float):
        self.allowed_fails = allowed_fails
        self.cooldown = cooldown
        self._fails: dict[str, int] = {}
        self._until: dict[str, float] = {}

    def cooling(self, name: str) -> bool:
        until = self._until.get(name)
        return until is not None and time.monotonic() < until

    def failure(self, name: str) -> None:
        fails = self._fails.get(name, 0) + 1
        self._fails[name] = fails
        if self.allowed_fails and fails >= self.allowed_fails and self.cooldown > 0:
            self._until[name] = time.monotonic() + self.cooldown

    def success(self, name: str) -> None:
        self._fails.pop(name, None)
        self._until.pop(name, None)


@dataclass(slots=True)
class _Request:
    """A validated chat request on its way upstream (built only on a cache miss)."""

    chain: list[ProviderConfig]
    messages: list[dict[str, Any]]
    model: str | None
    temperature: float
    max_tokens: int | None
    kwargs: dict[str, Any]
    caller: str | None
    key: str | None
    deadline: float | None

    def params(self) -> dict[str, Any]:
        """The keyword arguments for LiteLLM: provider kwargs untouched, plus ours."""
        params = dict(self.kwargs)
        params["temperature"] = self.temperature
        if self.max_tokens is not None:
            params["max_tokens"] = self.max_tokens
        return params


class Gateway:
    """One configured gateway: providers, cache, stats, and the calls to LiteLLM.

    Use :func:`sarai_llm.get_gateway` for the process-wide instance. Results
    are plain dicts; LiteLLM is imported on the first cache miss.
    """

    def __init__(self, config: GatewayConfig | None = None, *, cache_clock: Callable[[], float] | None = None):
        from .metrics import GatewayMetrics, new_stats  # cheap: prometheus-client is imported when used

        check_litellm()  # refuse a compromised LiteLLM before anything can import it
        self.config = config if config is not None else GatewayConfig.load()
        self.stats: Stats = new_stats()  # MultiprocessStats when PROMETHEUS_MULTIPROC_DIR is set
        self._adapter_instance: LiteLLMAdapter | None = None
        self._breaker = _Breaker(self.config.allowed_fails, self.config.cooldown_time)
        self._chains: dict[str | None, list[ProviderConfig]] = {}
        self._keymakers: dict[tuple[str, str | None], KeyMaker] = {}
        self._inflight: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self.last_health: dict[str, dict[str, Any]] = {}
        """The latest :meth:`health_check` result per provider, with ``checked_at`` (epoch seconds)."""
        self.cache: ResponseCache | None = None
        settings = self.config.cache_settings
        if settings.enabled:
            store = store_factory(self.config)  # None: the default diskcache store
            self.cache = ResponseCache(
                None if store is not None else settings.dir or default_cache_dir(),
                ttl=settings.ttl,
                max_size=settings.max_size,
                namespace=settings.namespace,
                clock=cache_clock or time.time,
                store=store,
            )
        # Prometheus: a collector on a registry this gateway owns; serves
        # LLM_GATEWAY_METRICS_PORT when set, with the status page. Released by close().
        self.metrics = GatewayMetrics.for_config(self.config, self.stats, self.cache, status=self.status)

    def __repr__(self) -> str:
        chain = [self.config.primary_provider, *self.config.fallback_providers]
        return f"Gateway(chain={chain}, cache={'on' if self.cache is not None else 'off'})"

    # -- LiteLLM ---------------------------------------------------------------------

    def _adapter(self) -> LiteLLMAdapter:
        adapter = self._adapter_instance
        if adapter is None:
            from ._litellm import LiteLLMAdapter  # the first miss pays for importing LiteLLM

            adapter = self._adapter_instance = LiteLLMAdapter()
        return adapter

    # -- chains ----------------------------------------------------------------------

    def chain(self, provider: str | None = None) -> list[ProviderConfig]:
        """The providers tried, in order, for a call with ``provider=``.

        ``None`` means the configured primary then the fallbacks; a name puts
        that provider first, followed by the configured fallbacks other than it.
        Providers without the settings they need are left out; when none is
        left, :class:`NoProvidersError` says which settings to set.
        """
        if provider is not None and not isinstance(provider, str):
            raise InvalidRequestError(f"provider must be one of {list(PROVIDERS)} or None, got {provider!r}")
        cached = self._chains.get(provider)
        if cached is not None:
            return cached
        config = self.config
        if provider is not None:
            if not isinstance(provider, str) or provider.strip().lower() not in PROVIDERS:
                raise InvalidRequestError(f"provider must be one of {list(PROVIDERS)} or None, got {provider!r}")
            head = config.provider(provider.strip().lower())
            if not head.configured:
                raise NoProvidersError(
                    f"No providers initialized for {head.name!r}: set {' or '.join(head.missing_settings)}"
                )
            names = [head.name, *(n for n in config.fallback_providers if n != head.name)]
        else:
            names = [config.primary_provider, *config.fallback_providers]
        chain = [p for p in (config.provider(n) for n in names) if p.configured]
        if not chain:
            missing = "; ".join(f"{n}: set {' or '.join(config.provider(n).missing_settings)}" for n in names)
            raise NoProvidersError(f"No providers initialized ({missing})")
        self._chains[provider] = chain
        return chain

    def _embed_chain(self, provider: str | None) -> list[ProviderConfig]:
        chain = [p for p in self.chain(provider) if p.name not in _CANNOT_EMBED and p.embed_model]
        if not chain:
            names = ", ".join(p.name for p in self.chain(provider))
            raise NoProvidersError(
                f"No providers initialized for embeddings: none of [{names}] can embed; "
                "add ollama, openai or local to LLM_GATEWAY_PRIMARY_PROVIDER / "
                "LLM_GATEWAY_FALLBACK_PROVIDERS, or set LLM_GATEWAY_<PROVIDER>_EMBED_MODEL"
            )
        return chain

    async def _walk(
        self,
        chain: Sequence[ProviderConfig],
        model: str | None,
        attempt: Callable[[ProviderConfig, str], Awaitable[T]],
        *,
        embedding: bool = False,
        deadline: float | None = None,
    ) -> tuple[ProviderConfig, T]:
        """Try the chain in order; count every attempt; raise when all fail.

        ``attempt(provider, model)`` makes one attempt, retried on the same
        provider up to ``num_retries`` times (:mod:`sarai_llm.retry`); ``model``
        overrides the head's model only. Providers cooling down after repeated
        failures are skipped (not an attempt) unless every provider of the chain is.
        ``deadline`` bounds the whole walk, in seconds.
        """
        breaker, stats, head, retries = self._breaker, self.stats, chain[0], self.config.num_retries
        candidates = [p for p in chain if not breaker.cooling(p.name)] or list(chain)
        errors: dict[str, ProviderError] = {}
        if deadline is None:
            deadline = self.config.deadline
        ends_at = None if deadline is None else time.monotonic() + deadline
        for provider in candidates:
            name = provider.name
            default = provider.embed_model if embedding else provider.model
            chosen = (model if provider is head and model else default) or ""
            remaining = None if ends_at is None else ends_at - time.monotonic()
            if remaining is not None and remaining <= 0:
                errors[name] = ProviderTimeoutError(name, f"not tried: the call's deadline of {deadline:g} s passed")
                continue  # named in the error, not counted as an attempt
            stats.attempt(name, chosen)
            started = _perf()
            try:
                async with asyncio.timeout(remaining):
                    result = await with_retries(partial(attempt, provider, chosen), retries, ends_at)
            except (ProviderError, TimeoutError) as exc:
                error = (
                    exc
                    if isinstance(exc, ProviderError)
                    else ProviderTimeoutError(name, f"the call's deadline of {deadline:g} s passed")
                )
                stats.failure(
                    name, chosen, (_perf() - started) * 1000.0, error, operation="embeddings" if embedding else "chat"
                )
                breaker.failure(name)
                errors[name] = error
                log.warning("provider %s failed: %s: %s", name, type(error).__name__, error)
                continue
            breaker.success(name)
            if provider is not head:
                stats.fallback(head.name, name)
            return provider, result
        raise AllProvidersFailedError(errors)

    # -- chat ------------------------------------------------------------------------

    async def chat(
        self,
        messages: Sequence[Mapping[str, Any]],
        model: str | None = None,
        provider: str | None = None,
        temperature: float = 0.7,
        max_tokens: int | None = None,
        use_cache: bool = True,
        *,
        caller: str | None = None,
        deadline: float | None = None,
        **provider_kwargs: Any,
    ) -> dict[str, Any]:
        """Answer a chat; see :func:`sarai_llm.chat`."""
        started = _perf()
        _check_call_options(caller, deadline)
        chain = self.chain(provider)
        key = None
        cache = self.cache
        if use_cache is True and cache is not None:
            # Look up before checking the arguments: only a valid request can
            # have been cached, so a hit needs no further check (the hot path).
            key = self._keymaker("chat", provider, chain).key(
                (model, messages, temperature, max_tokens, provider_kwargs)
            )
            if key is not None:
                hit = cache.get(key, count_miss=False)
                if hit is not None:
                    self.stats.request()
                    return self._answered(hit, True, False, started, caller)
        msgs = _check_messages(messages)
        _check_params(temperature, max_tokens, model, use_cache, provider_kwargs)
        self.stats.request()
        if key is not None:
            cache.count_miss()  # type: ignore[union-attr]
        request = _Request(chain, msgs, model, temperature, max_tokens, provider_kwargs, caller, key, deadline)
        try:
            return await self._lead_or_follow(request, started)
        except BaseException:
            self.stats.call_failed(caller)
            raise

    def _keymaker(self, kind: str, provider: str | None, chain: Sequence[ProviderConfig]) -> KeyMaker:
        """Keys for requests of ``kind`` routed through ``chain`` (made once per route)."""
        maker = self._keymakers.get((kind, provider))
        if maker is None:
            assert self.cache is not None
            if kind == "embed":
                route: list[Any] = [kind, [(p.name, p.base_url, p.embed_model) for p in chain]]
            else:
                route = [kind, [(p.name, p.base_url, p.model) for p in chain]]
            maker = self._keymakers[(kind, provider)] = KeyMaker(route, self.cache.namespace)
        return maker

    def _answered(
        self, answer: Mapping[str, Any], cached: bool, coalesced: bool, started: float, caller: str | None
    ) -> dict[str, Any]:
        """A fresh result dict (mutating it never changes the cache), counted.

        ``cost_usd`` is what this call spent upstream: the answer's cost, 0.0
        for a hit, whose replayed answer's cost is counted as saved instead.
        """
        latency_ms = (_perf() - started) * 1000.0
        cost = answer.get("cost_usd") or 0.0  # entries cached before costs were recorded have none
        spent, saved = (0.0, cost) if cached else (cost, 0.0)
        result = {
            "content": answer["content"],
            "model": answer["model"],
            "provider": answer["provider"],
            "usage": dict(answer["usage"]),
            "finish_reason": answer["finish_reason"],
            "cached": cached,
            "coalesced": coalesced,
            "latency_ms": latency_ms,
            "cost_usd": spent,
        }
        self.stats.answered(
            answer["provider"],
            answer["model"],
            cached=cached,
            latency_ms=latency_ms,
            caller=caller,
            cost_usd=spent,
            saved_usd=saved,
        )
        return result

    async def _lead_or_follow(self, request: _Request, started: float) -> dict[str, Any]:
        """Make the upstream call, or wait for an identical one already in flight."""
        key = request.key
        while key is not None and (leader := self._inflight.get(key)) is not None:
            if leader.get_loop() is not asyncio.get_running_loop():
                break  # in flight on another event loop (a sync call from a notebook): ask on our own
            try:
                answer = await asyncio.shield(leader)
            except asyncio.CancelledError:
                if not leader.cancelled():
                    raise  # this caller was cancelled
                continue  # the leader was cancelled; this caller still wants an answer
            # A follower is a hit: the lookup that found the leader counted a miss.
            assert self.cache is not None
            self.cache.count_shared_hit(instead_of_miss=True)
            self.stats.coalesced_hit()
            return self._answered(answer, True, True, started, request.caller)
        return await self._lead(request, started)

    async def _lead(self, request: _Request, started: float) -> dict[str, Any]:
        key = request.key
        future: asyncio.Future[dict[str, Any]] | None = None
        if key is not None and key not in self._inflight:
            future = asyncio.get_running_loop().create_future()
            self._inflight[key] = future
        try:
            answer = await self._complete(request)
        except BaseException as exc:
            if future is not None:
                self._release(key, future)
                if isinstance(exc, asyncio.CancelledError):
                    future.cancel()
                else:
                    future.set_exception(exc)
                    future.exception()  # mark retrieved: no warning when nobody followed
            raise
        if key is not None:
            assert self.cache is not None
            self.cache.set(key, answer, messages=request.messages, model=request.model or request.chain[0].model)
        if future is not None:
            self._release(key, future)
            future.set_result(answer)
        return self._answered(answer, False, False, started, request.caller)

    def _release(self, key: str | None, future: asyncio.Future[dict[str, Any]]) -> None:
        """Stop offering ``future`` to followers (only if it is still the one registered)."""
        if key is not None and self._inflight.get(key) is future:
            del self._inflight[key]

    async def _complete(self, request: _Request) -> dict[str, Any]:
        _check_sendable(request.messages)
        adapter = self._adapter()
        params = request.params()
        msgs = request.messages

        async def attempt(provider: ProviderConfig, model: str) -> Any:
            started = _perf()
            completion = await adapter.complete(provider, model, msgs, params)
            self.stats.success(provider.name, model, (_perf() - started) * 1000.0, completion.usage)
            return completion

        answered_by, completion = await self._walk(request.chain, request.model, attempt, deadline=request.deadline)
        return {
            "content": completion.content,
            "model": completion.model,
            "provider": answered_by.name,
            "usage": completion.usage,
            "finish_reason": completion.finish_reason,
            "cost_usd": completion.cost_usd,  # cached with the answer: a hit knows what it saved
        }

    # -- streaming -------------------------------------------------------------------

    def stream_chat(
        self,
        messages: Sequence[Mapping[str, Any]],
        model: str | None = None,
        provider: str | None = None,
        temperature: float = 0.7,
        max_tokens: int | None = None,
        use_cache: bool = True,
        *,
        caller: str | None = None,
        deadline: float | None = None,
        **provider_kwargs: Any,
    ) -> AsyncIterator[str]:
        """Stream a chat answer as text pieces; see :func:`sarai_llm.stream_chat`.

        Arguments are validated and providers resolved here, at the call site,
        before the iterator is returned.
        """
        msgs = _check_messages(messages)
        _check_params(temperature, max_tokens, model, use_cache, provider_kwargs)
        _check_call_options(caller, deadline)
        _check_sendable(msgs)  # streams are not the microsecond path: check all at the call site
        chain = self.chain(provider)
        key = None
        if use_cache and self.cache is not None:
            key = self._keymaker("chat", provider, chain).key((model, msgs, temperature, max_tokens, provider_kwargs))
        request = _Request(chain, msgs, model, temperature, max_tokens, dict(provider_kwargs), caller, key, deadline)
        return self._stream(request)

    async def _stream(self, request: _Request) -> AsyncGenerator[str, None]:
        started = _perf()
        self.stats.request()
        if request.key is not None:
            assert self.cache is not None
            hit = self.cache.get(request.key)
            if hit is not None:
                # A stream's entry replays its chunks; a chat's entry is one chunk.
                for piece in hit.get("chunks") or ([hit["content"]] if hit["content"] else []):
                    yield piece
                self._answered(hit, True, False, started, request.caller)
                return
        upstream = self._stream_upstream(request, started)
        try:
            async for piece in upstream:
                yield piece
        except Exception:
            self.stats.call_failed(request.caller)
            raise
        finally:
            # Close the upstream stream now, not when the collector finds it,
            # also when the consumer stops early or is cancelled.
            await upstream.aclose()

    async def _stream_upstream(self, request: _Request, started: float) -> AsyncGenerator[str, None]:
        adapter = self._adapter()
        from ._litellm import StreamState

        params = request.params()
        state = StreamState()
        opened_at = 0.0

        async def attempt(provider: ProviderConfig, model: str) -> tuple[Any, str, AsyncGenerator[str, None]]:
            # The attempt succeeds when the stream delivers its first piece (or
            # ends cleanly without text): until then, failing over is safe.
            nonlocal opened_at
            opened_at = _perf()
            stream = await adapter.open_stream(provider, model, request.messages, params)
            pieces = adapter.iterate_stream(stream, provider.name, state)
            try:
                first = await anext(pieces, "")
                # LiteLLM adds a closing chunk with finish_reason "stop" of its
                # own; the stream's received_finish_reason says what came.
                if not first and getattr(stream, "received_finish_reason", "") is None:
                    # Ended with neither text nor a finish_reason: nothing usable
                    # was parsed. Not an answer: fail over, cache nothing.
                    raise ProviderResponseError(provider.name, "the stream ended with no text and no finish_reason")
            except BaseException:
                await adapter.close_stream(stream)
                raise
            self.stats.first_token(provider.name, _perf() - opened_at)
            return stream, first, pieces

        deadline = request.deadline if request.deadline is not None else self.config.deadline
        ends_at = None if deadline is None else time.monotonic() + deadline
        answered_by, (stream, first, pieces) = await self._walk(
            request.chain, request.model, attempt, deadline=deadline
        )
        name = answered_by.name
        model = (request.model if answered_by is request.chain[0] and request.model else answered_by.model) or ""
        rest = pieces if ends_at is None else _within(pieces, ends_at, deadline or 0.0, name)
        chunks: list[str] = []
        complete = False
        try:
            if first:
                chunks.append(first)
                yield first
            try:
                async for piece in rest:
                    chunks.append(piece)
                    yield piece
            except ProviderError as exc:
                self.stats.failure(name, model, (_perf() - opened_at) * 1000.0, exc)
                raise StreamInterruptedError(name, len(chunks), exc) from exc
            complete = True
        finally:
            if not complete:  # failed, or abandoned by the consumer: close upstream, cache nothing
                await rest.aclose()
                await pieces.aclose()
                await adapter.close_stream(stream)
        await adapter.close_stream(stream)
        self.stats.success(name, model, (_perf() - opened_at) * 1000.0, state.usage)
        answer = {
            "content": "".join(chunks),
            "model": state.model or model,
            "provider": name,
            "usage": state.usage or {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
            "finish_reason": state.finish_reason,
            "chunks": chunks,
            "cost_usd": adapter.cost(answered_by, model, state.usage),
        }
        if request.key is not None and self.cache is not None:
            self.cache.set(
                request.key, answer, messages=request.messages, model=request.model or request.chain[0].model
            )
        self._answered(answer, False, False, started, request.caller)

    # -- embeddings ------------------------------------------------------------------

    async def embed(
        self,
        text: str | Sequence[str],
        model: str | None = None,
        provider: str | None = None,
        use_cache: bool = True,
        *,
        caller: str | None = None,
        deadline: float | None = None,
        **provider_kwargs: Any,
    ) -> list[float] | list[list[float]]:
        """Embed one text (``list[float]``) or a list (``list[list[float]]``, input order).

        ``provider_kwargs`` (``dimensions=256``, ...) pass to LiteLLM untouched.
        """
        started = _perf()
        texts, single = _check_texts(text)
        _check_shared(model, use_cache, provider_kwargs)
        _check_call_options(caller, deadline)
        chain = self._embed_chain(provider)
        self.stats.request()
        try:
            maker = self._keymaker("embed", provider, chain) if use_cache and self.cache is not None else None
            vectors, answered_by, chosen, spent, saved = await self._embed(
                texts, chain, model, maker, deadline, provider_kwargs
            )
        except BaseException:
            self.stats.call_failed(caller)
            raise
        latency_ms = (_perf() - started) * 1000.0
        self.stats.answered(
            answered_by,
            chosen,
            cached=answered_by == "cache",
            latency_ms=latency_ms,
            caller=caller,
            cost_usd=spent,
            saved_usd=saved,
        )
        return vectors[0] if single else vectors

    async def _embed(
        self,
        texts: list[str],
        chain: list[ProviderConfig],
        model: str | None,
        maker: KeyMaker | None,
        deadline: float | None,
        kwargs: dict[str, Any],
    ) -> tuple[list[list[float]], str, str, float, float]:
        """Vectors in input order; only uncached texts go upstream, in one call.

        Also returns what the call spent upstream and what the cache saved it:
        each cached vector holds its share of its call's cost (the cost split
        evenly over the texts sent), and a hit or a repeated text saves that share.
        """
        cache = self.cache if maker is not None else None
        found: dict[str, list[float]] = {}
        costs: dict[str, float] = {}
        keys: dict[str, str | None] = {}
        repeated: list[str] = []
        for t in texts:
            if t in keys:  # a repeated text is served by its first occurrence
                if cache is not None:
                    cache.count_shared_hit()
                    repeated.append(t)
                continue
            keys[t] = k = maker.key((model, t, kwargs)) if maker is not None else None
            hit = cache.get(k) if cache is not None and k is not None else None
            if hit is not None:
                found[t] = hit["vector"]
                costs[t] = hit.get("cost_usd") or 0.0
        saved = sum(costs.values())
        todo = [t for t in keys if t not in found]
        answered_by, chosen, spent = "cache", model or chain[0].embed_model or "", 0.0
        if todo:
            adapter = self._adapter()

            async def attempt(p: ProviderConfig, m: str) -> Any:
                started = _perf()
                result = await adapter.embed(p, m, todo, kwargs)
                self.stats.success(p.name, m, (_perf() - started) * 1000.0, result.usage, operation="embeddings")
                return result

            provider, fresh = await self._walk(chain, model, attempt, embedding=True, deadline=deadline)
            answered_by, spent = provider.name, fresh.cost_usd
            share = spent / len(todo)
            for t, vector in zip(todo, fresh.vectors, strict=True):
                found[t], costs[t] = vector, share
                k = keys[t]
                if cache is not None and k is not None:
                    entry = {"vector": vector, "cost_usd": share}
                    cache.set(k, entry, messages=t, model=model or chain[0].embed_model)
        saved += sum(costs[t] for t in repeated)
        return [list(found[t]) for t in texts], answered_by, chosen, spent, saved

    # -- health, stats, cache ----------------------------------------------------------

    async def health_check(self, provider: str | None = None, *, detailed: bool = False) -> dict[str, Any]:
        """Check providers concurrently with their cheapest request (a model listing).

        Each check is bounded by ``health_timeout`` seconds (default 5).
        Returns ``{name: bool}``; with ``detailed=True``,
        ``{name: {"ok": bool, "latency_ms": float, "error": str | None}}``.
        """
        from .health import check_providers

        if provider is None:
            names = [self.config.primary_provider, *self.config.fallback_providers]
            providers = [self.config.provider(n) for n in names]
        else:
            providers = self.chain(provider)[:1]
        results = await check_providers(providers, self.config.health_timeout)
        checked_at = time.time()
        for name, result in results.items():  # what the status page shows as "last known"
            self.last_health[name] = {**result, "checked_at": checked_at}
        if detailed:
            return results
        return {name: bool(r["ok"]) for name, r in results.items()}

    def get_stats(self) -> dict[str, Any]:
        """Counters as described in CONTRACT.md; never holds secrets."""
        snapshot = self.stats.snapshot()
        if self.cache is not None:
            cache = self.cache.stats()
            cache["coalesced"] = self.stats.coalesced
            snapshot["cache"] = cache
        snapshot["config"] = {
            "primary_provider": self.config.primary_provider,
            "fallback_providers": list(self.config.fallback_providers),
            "cache_enabled": self.cache is not None,
        }
        return snapshot

    def status(self) -> dict[str, Any]:
        """What the status page shows: :meth:`get_stats`, the chain and each provider's last known health.

        See :func:`sarai_llm.status.snapshot`; served as ``/stats.json`` by the metrics server.
        """
        from .status import snapshot

        return snapshot(self)

    def cooling(self, provider: str) -> bool:
        """Whether ``provider`` is skipped for now after repeated failures (``allowed_fails``, ``cooldown_time``)."""
        return self._breaker.cooling(provider)

    def clear_cache(self) -> None:
        """Drop every cached answer (in this process and the shared directory)."""
        if self.cache is not None:
            self.cache.clear()

    async def close_connections(self) -> None:
        """Close the HTTP connections LiteLLM opened on the running event loop.

        The gateway stays usable: new connections open on demand. Call it
        before an event loop that made calls ends (a script running
        ``asyncio.run`` per step, a CLI command), since those connections
        cannot outlive their loop. LiteLLM's clients are shared by every
        gateway of the process, so this closes theirs too.
        """
        adapter = sys.modules.get("sarai_llm._litellm")
        if adapter is not None:  # else LiteLLM was never imported: no connection to close
            await adapter.close_clients()

    async def aclose(self) -> None:
        """:meth:`close_connections`, then :meth:`close`.

        Call it at shutdown from the event loop that made the calls (e.g. an
        ASGI lifespan handler), so no connection is left for the collector.
        """
        await self.close_connections()
        self.close()

    def close(self) -> None:
        """Release the cache files and the metrics endpoint; the gateway must not be used afterwards."""
        self.metrics.close()
        if self.cache is not None:
            self.cache.close()
