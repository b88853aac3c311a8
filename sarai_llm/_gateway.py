"""The gateway: one pipeline that ``chat``, ``stream_chat`` and ``embed`` all run through.

    validate -> key -> cache -> coalesce -> provider chain -> record -> store

* validate: :mod:`sarai_llm._validate` (a chat hit is looked up first: only a
  valid request can have been cached);
* key and cache: :mod:`sarai_llm.cache` (keys per route, hashed once);
* coalesce: :mod:`sarai_llm._coalesce` (identical requests in flight);
* provider chain: :mod:`sarai_llm._chain` (order, breaker, retries, deadline);
* the attempt itself: an :class:`~sarai_llm._adapter.Adapter`, LiteLLM's
  (:mod:`sarai_llm._litellm`, imported on the first miss) or the test fake's;
* record: the gateway's observers (:mod:`sarai_llm.observe`).
What differs between the three is only what their protocols make differ: a
chat answer arrives whole, a stream piece by piece (it may fail over only
before its first piece), and an embedding call carries many texts, each
cached and coalesced on its own.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, overload

from ._adapter import Attempt, copy_tool_calls, no_usage
from ._chain import ProviderChain, Request, Route, resolve
from ._coalesce import Flights
from ._embeddings import embed_texts
from ._reload import Watcher
from ._streams import ChatStream
from ._structured import keyed, parse
from ._validate import check_call, check_messages, check_options, check_sendable, check_shared, check_texts
from .cache import KeyMaker, Store, open_cache
from .config import GatewayConfig
from .errors import redact
from .observe import Events, GatewayMetrics, Observer, observers_for
from .supply_chain import check_litellm

if TYPE_CHECKING:
    from ._adapter import Adapter, ChatResult, Completion
    from .config import ProviderConfig

__all__ = ["Gateway"]

_perf = time.perf_counter
_NO_USAGE = no_usage()
_CHAT = ("chat", None)  # the route of a chat with provider=None


class Gateway:
    """One configured gateway: providers, cache, observers, and the pipeline every call runs through.

    Use :func:`sarai_llm.get_gateway` for the process-wide instance. Results are plain dicts. Edits
    of the files its settings came from reach its next calls (:mod:`sarai_llm._reload`).

    :param config: the settings (default: :meth:`GatewayConfig.load`).
    :param adapter: what makes one attempt on one provider (default: LiteLLM,
        imported on the first cache miss); :mod:`sarai_llm.testing` passes a scripted one.
    :param store: where the cache keeps its entries (default: the configured
        backend, diskcache in ``cache.dir`` or Redis).
    :param cache_clock: the cache's clock, seconds (default ``time.time``; tests inject one).
    """

    def __init__(
        self,
        config: GatewayConfig | None = None,
        *,
        adapter: Adapter | None = None,
        store: Callable[[], Store] | None = None,
        cache_clock: Callable[[], float] | None = None,
    ):
        check_litellm()  # refuse a compromised LiteLLM before anything can import it
        self.config = config = config if config is not None else GatewayConfig.load()
        self.cache = open_cache(config, store, cache_clock)
        observers = observers_for(config, self.cache)
        self.stats = observers[0]
        self.events = Events(observers)
        self.metrics = GatewayMetrics.for_config(config, self.stats, self.cache, status=self.status)
        self._adapter = adapter
        self._detect_otel = True  # at the first upstream attempt: a meter provider set up at start-up is found
        self._chain = ProviderChain(config, self.events)
        self._routes: dict[tuple[str, str | None], Route] = {}
        self._flights = Flights()
        self._reload_every = 1.0  # seconds between looks at the watched files (tests set 0)
        self._watcher = Watcher(self)
        self._reload_at = self._watcher.next_look()  # the hot path's one comparison: _perf() >= _reload_at
        self.last_health: dict[str, dict[str, Any]] = {}
        """The latest :meth:`health_check` result per provider, with ``checked_at`` (epoch seconds)."""

    def __repr__(self) -> str:
        return f"Gateway(chain={self.config.chain}, cache={'on' if self.cache is not None else 'off'})"

    def observe(self, observer: Observer) -> None:
        """Report every event of this gateway's calls to ``observer`` too.

        An OpenTelemetry :class:`~sarai_llm.observe.otel.GenAIMetrics` given here
        replaces the one the gateway would otherwise detect.
        """
        from .observe.otel import GenAIMetrics

        if isinstance(observer, GenAIMetrics):
            self._detect_otel = False
        self.events.add(observer)

    def chain(self, provider: str | None = None) -> list[ProviderConfig]:
        """The providers a chat with ``provider=`` tries, in order (see :func:`sarai_llm._chain.resolve`)."""
        return self._route("chat", provider).chain

    def _route(self, kind: str, provider: str | None) -> Route:
        routes = self._routes  # a reload replaces the dict: a route resolved meanwhile lands in the old one
        route = routes.get((kind, provider)) if provider is None or isinstance(provider, str) else None
        if route is None:
            chain = self._resolve(provider, embedding=kind == "embed")
            keys = None
            if self.cache is not None:
                models = [(p.name, p.base_url, p.embed_model if kind == "embed" else p.model) for p in chain]
                keys = KeyMaker([kind, models], self.cache.namespace)
            route = routes[(kind, provider)] = Route(chain, keys)
        return route

    def _resolve(self, provider: str | None, *, embedding: bool = False) -> list[ProviderConfig]:
        return resolve(self.config, provider, embedding=embedding)  # the fake's differs

    def _adapter_for_miss(self) -> Adapter:
        """The adapter, made on the first miss (which pays for importing LiteLLM)."""
        if self._detect_otel:
            from .observe.otel import detect

            self._detect_otel = False
            recorder = detect()
            if recorder is not None:
                self.events.add(recorder)
        adapter = self._adapter
        if adapter is None:
            from ._litellm import LiteLLMAdapter

            adapter = self._adapter = LiteLLMAdapter()
        return adapter

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
    ) -> ChatResult:
        """Answer a chat; see :func:`sarai_llm.chat`."""
        started = _perf()
        if started >= self._reload_at:
            self._watcher.look(started)
        if caller is not None or deadline is not None:
            check_options(caller, deadline)
        route = self._routes.get(_CHAT) if provider is None else None
        if route is None:
            route = self._route("chat", provider)
        key = None
        if use_cache is True and route.keys is not None:
            shape = provider_kwargs.get("response_format") if provider_kwargs else None
            kwargs = provider_kwargs if shape is None else keyed(provider_kwargs)
            key = route.keys.key((model, messages, temperature, max_tokens, kwargs))
            hit = self.cache.get(key, count_miss=False) if key is not None else None  # type: ignore[union-attr]
            if hit is not None:  # the hot path: a valid request was cached, so no check is needed
                self.events.request()
                return self._answered(hit, True, False, started, caller, shape)
        request = self._request(
            route, messages, model, temperature, max_tokens, use_cache, caller, deadline, provider_kwargs, key
        )
        if key is not None:
            self.cache.count_miss()  # type: ignore[union-attr]
        try:
            while (flight := self._flights.joinable(key)) is not None:
                answer = await flight.follow()  # None: its leader gave up, so lead
                if answer is not None:
                    self._coalesced()
                    return self._answered(answer, True, True, started, caller, request.response_format)
            flight = self._flights.lead(key)
            try:
                check_sendable(request.messages)
                answer = await self._complete(request)
            except BaseException as exc:
                self._flights.land(key, flight, error=exc)
                raise
            self._store(request, answer)
            self._flights.land(key, flight, answer)
            result = self._answered(answer, False, False, started, caller, request.response_format)
            if request.waited_s is not None:  # the call's time minus the upstream's: sarai_llm's and LiteLLM's
                self.events.overhead(answer["provider"], result["latency_ms"] / 1000.0 - request.waited_s)
            return result
        except BaseException:
            self.events.call_failed(caller)
            raise

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
    ) -> ChatStream:
        """Stream a chat answer as text pieces; see :func:`sarai_llm.stream_chat`.

        Everything is checked here, at the call site, before the iterator is returned.
        """
        if (now := _perf()) >= self._reload_at:
            self._watcher.look(now)
        check_options(caller, deadline)
        route = self._route("chat", provider)
        key = None
        if use_cache is True and route.keys is not None:
            key = route.keys.key((model, messages, temperature, max_tokens, keyed(provider_kwargs)))
        request = self._request(
            route, messages, model, temperature, max_tokens, use_cache, caller, deadline, provider_kwargs, key
        )
        check_sendable(request.messages)  # streams are not the microsecond path
        return ChatStream(self, request)

    def _request(
        self,
        route: Route,
        messages: Sequence[Mapping[str, Any]],
        model: str | None,
        temperature: float,
        max_tokens: int | None,
        use_cache: bool,
        caller: str | None,
        deadline: float | None,
        kwargs: dict[str, Any],
        key: str | None,
    ) -> Request:
        """Check a chat's arguments and count the call."""
        msgs = check_messages(messages)
        check_call(temperature, max_tokens, model, use_cache, kwargs)
        self.events.request()
        params = {**kwargs, "temperature": temperature} | ({} if max_tokens is None else {"max_tokens": max_tokens})
        return Request(route.chain, msgs, model, params, caller, key, deadline)

    async def _complete(self, request: Request) -> dict[str, Any]:
        adapter = self._adapter_for_miss()

        async def attempt(provider: ProviderConfig, model: str) -> Completion:
            started = _perf()
            completion = await adapter.complete(Attempt(provider, model, request.params, request.messages))
            if request.response_format is not None:  # invalid: this attempt failed
                parse(request.response_format, completion.content, provider.name, completion.tool_calls)
            self.events.success(provider.name, model, (_perf() - started) * 1000.0, completion.usage)
            return completion

        provider, _, completion, request.waited_s = await self._chain.walk(
            request.chain, request.model, attempt, deadline=request.deadline
        )
        return completion.entry(provider.name)

    @overload
    async def embed(
        self,
        text: str,
        model: str | None = None,
        provider: str | None = None,
        use_cache: bool = True,
        *,
        caller: str | None = None,
        deadline: float | None = None,
        **provider_kwargs: Any,
    ) -> list[float]: ...
    @overload
    async def embed(
        self,
        text: list[str] | tuple[str, ...],
        model: str | None = None,
        provider: str | None = None,
        use_cache: bool = True,
        *,
        caller: str | None = None,
        deadline: float | None = None,
        **provider_kwargs: Any,
    ) -> list[list[float]]: ...
    async def embed(
        self,
        text: str | list[str] | tuple[str, ...],
        model: str | None = None,
        provider: str | None = None,
        use_cache: bool = True,
        *,
        caller: str | None = None,
        deadline: float | None = None,
        **provider_kwargs: Any,
    ) -> list[float] | list[list[float]]:
        """Embed one text (``list[float]``) or a list (``list[list[float]]``); see :func:`sarai_llm.embed`."""
        started = _perf()
        if started >= self._reload_at:
            self._watcher.look(started)
        texts, single = check_texts(text)
        check_shared(model, use_cache, provider_kwargs)
        check_options(caller, deadline)
        route = self._route("embed", provider)
        self.events.request()
        try:
            vectors, by, spent, saved, waited = await embed_texts(
                self, texts, route, model, use_cache, deadline, provider_kwargs
            )
        except BaseException:
            self.events.call_failed(caller)
            raise
        model, ms = model or route.chain[0].embed_model or "", (_perf() - started) * 1000.0
        self.events.answered(
            by, model, cached=by == "cache", latency_ms=ms, caller=caller, cost_usd=spent, saved_usd=saved
        )
        if waited is not None:  # as a chat's: the call's time but the upstream's
            self.events.overhead(by, ms / 1000.0 - waited)
        return vectors[0] if single else vectors

    def _store(self, request: Request, answer: dict[str, Any]) -> None:
        if request.key is not None:
            model = request.model or request.chain[0].model
            self.cache.set(request.key, answer, messages=request.messages, model=model)  # type: ignore[union-attr]

    def _coalesced(self) -> None:
        """A follower was answered by a flight: a hit, where its lookup counted a miss."""
        if self.cache is not None:
            self.cache.count_shared_hit(instead_of_miss=True)
        self.events.coalesced_hit()

    def _answered(
        self,
        answer: Mapping[str, Any],
        cached: bool,
        coalesced: bool,
        started: float,
        caller: str | None,
        response_format: Any = None,
    ) -> ChatResult:
        """A fresh result dict (mutating it never changes the cache), counted.

        ``cost_usd`` is what this call spent upstream: the answer's cost, 0.0
        for a hit, whose replayed answer's cost is counted as saved instead.
        """
        latency_ms = (_perf() - started) * 1000.0
        cost = answer.get("cost_usd") or 0.0
        spent, saved = (0.0, cost) if cached else (cost, 0.0)
        provider, model, content = answer["provider"], answer["model"], answer["content"]
        # Entries cached before tool calls and token details were kept lack them: the defaults fill in.
        tool_calls, usage = answer.get("tool_calls"), answer["usage"]
        result: ChatResult = {
            "content": content,
            "model": model,
            "provider": provider,
            "usage": usage.copy() if len(usage) == len(_NO_USAGE) else {**_NO_USAGE, **usage},  # type: ignore[typeddict-item]
            "finish_reason": answer["finish_reason"],
            "cached": cached,
            "coalesced": coalesced,
            "latency_ms": latency_ms,
            "cost_usd": spent,
            "tool_calls": copy_tool_calls(tool_calls) if tool_calls else [],
            "reasoning_content": answer.get("reasoning_content"),
            "parsed": None if response_format is None else parse(response_format, content, provider, tool_calls),
        }
        self.events.answered(
            provider, model, cached=cached, latency_ms=latency_ms, caller=caller, cost_usd=spent, saved_usd=saved
        )
        return result

    async def health_check(self, provider: str | None = None, *, detailed: bool = False) -> dict[str, Any]:
        """Check providers concurrently with their cheapest request (a model listing), each within ``health_timeout``
        seconds (default 5): ``{name: bool}``; with ``detailed=True``,
        ``{name: {"ok": bool | None, "latency_ms": float, "error": str | None}}`` (``None``: nothing to probe)."""
        from ._providers import check_providers

        config = self.config
        providers = [config.provider(n) for n in config.chain] if provider is None else self.chain(provider)[:1]
        results = await check_providers(providers, config.health_timeout)
        checked_at = time.time()
        for name, result in results.items():  # what the status page shows as "last known"
            self.last_health[name] = {**result, "checked_at": checked_at}
        return results if detailed else {name: bool(r["ok"]) for name, r in results.items()}

    def get_stats(self) -> dict[str, Any]:
        """Counters as described in CONTRACT.md; never holds secrets."""
        snapshot = self.stats.snapshot()
        if self.cache is not None:
            snapshot["cache"] = {**self.cache.stats(), "coalesced": self.stats.coalesced}
        error = self.stats.last_reload_error
        snapshot["config"] = {
            "primary_provider": self.config.primary_provider,
            "fallback_providers": list(self.config.fallback_providers),
            "cache_enabled": self.cache is not None,
            "reloads": self.stats.reloads["ok"],
            "reload_errors": self.stats.reloads["error"],
            "last_reload_error": None if error is None else redact(error),
        }
        return snapshot

    def status(self) -> dict[str, Any]:
        """What the status page shows (:func:`sarai_llm.observe.status.snapshot`), served as ``/stats.json``."""
        from .observe.status import snapshot

        return snapshot(self)

    def cooling(self, provider: str) -> bool:
        """Whether ``provider`` is skipped for now after repeated failures (``allowed_fails``, ``cooldown_time``)."""
        return provider in self.config.provider_names and self._chain.cooling(self.config.provider(provider))

    def clear_cache(self) -> None:
        """Drop every cached answer (in this process and the shared store)."""
        if self.cache is not None:
            self.cache.clear()

    async def close_connections(self) -> None:
        """Close the HTTP connections opened on the running event loop; the gateway stays usable.

        Call it before an event loop that made calls ends (a script running
        ``asyncio.run`` per step, a CLI command): connections cannot outlive
        their loop. LiteLLM's clients are shared by every gateway of the
        process, so this closes theirs too.
        """
        if self._adapter is not None:
            await self._adapter.close_connections()
        elif (module := sys.modules.get("sarai_llm._litellm")) is not None:
            await module.close_clients()  # opened by an earlier gateway of this process

    async def aclose(self) -> None:
        """:meth:`close_connections`, then :meth:`close`: at shutdown, from the loop that made the calls."""
        await self.close_connections()
        self.close()

    def close(self) -> None:
        """Release the cache files and the metrics endpoint; the gateway must not be used afterwards."""
        self.metrics.close()
        if self.cache is not None:
            self.cache.close()
