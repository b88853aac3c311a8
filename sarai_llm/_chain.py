"""The provider chain: which providers a call tries, in what order, and how each attempt is bounded.

* :func:`resolve`: the chain of a call (``provider=`` puts that provider first);
* :class:`Breaker`: a server (a provider, or one of its deployments) that
  failed ``allowed_fails`` times in a row is skipped for ``cooldown_time``
  seconds (skipped is not an attempt);
* :class:`Servers`: which deployment of a provider takes an attempt (the least
  busy for its weight, ties in turn), and, with ``max_concurrent``, how many
  may be under way at once (the others wait in one queue per provider, in
  order, each for the first of its servers to free a slot);
* :meth:`ProviderChain.walk`: one attempt per provider in order (a failed
  deployment hands over to the provider's next one), each retried by
  :func:`~sarai_llm.retry.with_retries`, the whole walk bounded by the call's
  deadline; every attempt, failure and fallback is reported to the gateway's
  observers;
* :func:`within`: the deadline of a stream after its first piece.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar

from ._log import log
from ._providers import server_name
from .errors import AllProvidersFailedError, InvalidRequestError, NoProvidersError, ProviderError, ProviderTimeoutError
from .retry import with_retries

if TYPE_CHECKING:
    from .cache import KeyMaker
    from .config import GatewayConfig, ProviderConfig

    # Attempts waiting for a slot, in order, each with the servers it may take (by key, its own settings of them).
    Waiting = deque[tuple[asyncio.Future[ProviderConfig], dict[tuple[str, str], ProviderConfig]]]

__all__ = ["Breaker", "ProviderChain", "Request", "Route", "Servers", "breaker_key", "resolve", "within"]

T = TypeVar("T")
_perf = time.perf_counter


@dataclass(slots=True)
class Route:
    """The providers a kind of call tries, in order, and the key maker of that route (``None``: no cache)."""

    chain: list[ProviderConfig]
    keys: KeyMaker | None


@dataclass(slots=True)
class Request:
    """A validated chat request on its way upstream (built only on a cache miss)."""

    chain: list[ProviderConfig]
    messages: list[dict[str, Any]]
    model: str | None
    params: dict[str, Any]
    caller: str | None
    key: str | None
    deadline: float | None
    waited_s: float | None = None  # of the walk, time not spent in sarai_llm or LiteLLM (None: unknown)

    @property
    def response_format(self) -> Any:
        """What the answer's text must parse as (``result["parsed"]``), or ``None``."""
        return self.params.get("response_format")


def resolve(config: GatewayConfig, provider: str | None, *, embedding: bool = False) -> list[ProviderConfig]:
    """The providers a call tries, in order; only usable ones, and for ``embedding`` only those that embed.

    :raises InvalidRequestError: ``provider`` is not a provider name.
    :raises NoProvidersError: no usable provider is left; the message names the settings to set.
    """
    names = config.chain
    if provider is not None:
        known = list(config.provider_names)
        name = provider.strip().lower() if isinstance(provider, str) else None
        if name not in known:
            raise InvalidRequestError(f"provider must be one of {known} or None, got {provider!r}")
        head = config.provider(name)
        if not head.configured:
            raise NoProvidersError(f"No providers initialized for {name!r}: set {' or '.join(head.missing_settings)}")
        names = [name, *(n for n in config.fallback_providers if n != name)]
    providers = [config.provider(n) for n in names]
    chain = [p for p in providers if p.configured]
    if not chain:
        missing = "; ".join(f"{p.name}: set {' or '.join(p.missing_settings)}" for p in providers)
        raise NoProvidersError(f"No providers initialized ({missing})")
    if embedding:
        chain = [p for p in chain if p.embed_model]
        if not chain:
            raise NoProvidersError(
                f"No providers initialized for embeddings: none of [{', '.join(names)}] can embed; "
                "add ollama, openai or local to LLM_GATEWAY_PRIMARY_PROVIDER / "
                "LLM_GATEWAY_FALLBACK_PROVIDERS, or set LLM_GATEWAY_<PROVIDER>_EMBED_MODEL"
            )
    return chain


class Breaker:
    """Skips a provider for ``cooldown`` seconds after ``allowed_fails`` failures in a row."""

    def __init__(self, allowed_fails: int, cooldown: float):
        self.allowed_fails = allowed_fails
        self.cooldown = cooldown
        self._fails: dict[str, int] = {}
        self._until: dict[str, float] = {}

    def cooling(self, name: str) -> bool:
        """Whether ``name`` is skipped now."""
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


class Servers:
    """The servers of the providers (their deployments, or themselves): which takes an attempt, and the slots of
    those with ``max_concurrent``: when every candidate is full, an attempt waits in its provider's one queue, in
    order, and takes the first of its candidates to free a slot."""

    def __init__(self, events: Any) -> None:
        self.events = events
        self.busy: dict[tuple[str, str], int] = {}  # (provider, server) -> attempts under way
        self.sent: dict[tuple[str, str], int] = {}  # attempts taken, for turns
        self.queues: dict[str, Waiting] = {}  # provider -> the attempts waiting for a slot
        self.lock = threading.Lock()  # a gateway's calls may run on several event loops (the sync API's, the user's)

    def order(self, provider: ProviderConfig, breaker: Breaker) -> list[ProviderConfig]:
        """The servers to try in turn: the least busy for its weight first, then the one least used so far."""
        servers = provider.targets
        if len(servers) == 1:
            return list(servers)
        ready = [s for s in servers if not breaker.cooling(breaker_key(provider, s))] or list(servers)
        busy, sent = self.busy, self.sent
        return sorted(ready, key=lambda s: (busy.get(k := (s.name, server_name(s)), 0) / s.weight,
                                            sent.get(k, 0) / s.weight))  # fmt: skip

    async def acquire(self, candidates: Sequence[ProviderConfig]) -> ProviderConfig:
        """A slot on the first of ``candidates`` (one provider's servers, in order) with one free, else on the
        first of them to free one; the server taken."""
        started, busy = _perf(), self.busy
        waiter: asyncio.Future[ProviderConfig] | None = None
        with self.lock:
            for server in candidates:
                key = (server.name, server_name(server))
                if server.max_concurrent is None or busy.get(key, 0) < server.max_concurrent:
                    busy[key] = busy.get(key, 0) + 1
                    break
            else:
                waiter = asyncio.get_running_loop().create_future()
                allowed = {(s.name, server_name(s)): s for s in candidates}
                self.queues.setdefault(candidates[0].name, deque()).append((waiter, allowed))
        if waiter is not None:
            try:
                server = await waiter  # _free() handed it a slot
            except BaseException:
                if waiter.done() and not waiter.cancelled():
                    self._free(waiter.result())  # handed a slot while giving up: pass it on
                raise
            key = (server.name, server_name(server))
        self.sent[key] = self.sent.get(key, 0) + 1
        self.events.dispatched(*key, _perf() - started)
        return server

    def release(self, server: ProviderConfig, failed: bool) -> None:
        self.events.released(server.name, server_name(server), failed)
        self._free(server)

    def _free(self, server: ProviderConfig) -> None:
        """The slot passes to the first attempt still waiting that may take ``server`` (on its own loop)."""
        key = (server.name, server_name(server))
        with self.lock:
            queue = self.queues.get(server.name)
            if queue:
                for entry in queue:
                    waiter, allowed = entry
                    if not waiter.done() and key in allowed:
                        queue.remove(entry)  # its own settings of the server (a reload may have changed them)
                        waiter.get_loop().call_soon_threadsafe(self._hand, allowed[key], waiter)
                        return
                self.queues[server.name] = deque(entry for entry in queue if not entry[0].done())  # gave up: gone
            self.busy[key] -= 1

    def _hand(self, server: ProviderConfig, waiter: asyncio.Future[ProviderConfig]) -> None:
        if waiter.done():
            self._free(server)
        else:
            waiter.set_result(server)


def breaker_key(provider: ProviderConfig, server: ProviderConfig) -> str:
    """What the breaker counts: a provider by its name, each of its deployments by name and server."""
    return provider.name if server is provider else f"{provider.name} {server_name(server)}"


class ProviderChain:
    """Walks a chain of providers for one call, reporting to ``events`` (the gateway's observers)."""

    def __init__(self, config: GatewayConfig, events: Any):
        self.breaker = Breaker(config.allowed_fails, config.cooldown_time)
        self.servers = Servers(events)
        self.events = events
        self.configure(config)

    def configure(self, config: GatewayConfig) -> None:
        """Apply retries, breaker and deadline settings of ``config`` to later calls; state carries over."""
        self.retries, self.deadline = config.num_retries, config.deadline
        self.breaker.allowed_fails, self.breaker.cooldown = config.allowed_fails, config.cooldown_time

    def cooling(self, provider: ProviderConfig) -> bool:
        """Whether every server of ``provider`` is skipped now."""
        return all(self.breaker.cooling(breaker_key(provider, s)) for s in provider.targets)

    async def walk(
        self,
        chain: Sequence[ProviderConfig],
        model: str | None,
        attempt: Callable[[ProviderConfig, str], Awaitable[T]],
        *,
        embedding: bool = False,
        deadline: float | None = None,
        keep: bool = False,
    ) -> tuple[ProviderConfig, str, T, float | None]:
        """Try the chain in order until an attempt succeeds: ``(server, model, result, waited)``; ``server`` is
        the provider, or the deployment of it, that answered; ``waited`` the seconds of the walk not spent in
        sarai_llm or LiteLLM (its time but the answering attempt's own, which is that attempt's time but its
        result's ``upstream_s``), None when the result does not say its upstream's time.

        ``model`` overrides the head's model only. Providers cooling down are
        skipped unless every provider of the chain is. ``deadline`` (seconds,
        default the configured one) bounds the whole walk, waits for a free
        server included. ``keep``: the answering server stays taken until the
        caller's ``servers.release(server, failed)`` (a stream, until its end).

        :raises AllProvidersFailedError: every provider failed (or was left untried by the deadline).
        """
        breaker, events, head, servers = self.breaker, self.events, chain[0], self.servers

        def choose(server: ProviderConfig) -> str:
            default = server.embed_model if embedding else server.model
            return (model if server.name == head.name and model else default) or ""

        own: float | None = None  # the answering attempt's own time: its time but its upstream's

        async def timed(server: ProviderConfig, chosen: str) -> T:
            nonlocal own
            started = _perf()
            result = await attempt(server, chosen)
            upstream = getattr(result, "upstream_s", None)
            own = None if upstream is None else _perf() - started - upstream
            return result

        walked = _perf()

        operation = "embeddings" if embedding else "chat"
        candidates = [p for p in chain if not self.cooling(p)] or list(chain)
        errors: dict[str, ProviderError] = {}
        deadline = self.deadline if deadline is None else deadline
        ends_at = None if deadline is None else time.monotonic() + deadline
        for provider in candidates:
            name = provider.name
            untried = servers.order(provider, breaker)
            while untried:
                server = untried[0]  # the one planned: a wait for a slot may end on another of them
                chosen = choose(server)
                remaining = None if ends_at is None else ends_at - time.monotonic()
                if remaining is not None and remaining <= 0:
                    errors[name] = ProviderTimeoutError(
                        name, f"not tried: the call's deadline of {deadline:g} s passed"
                    )
                    break  # named in the error, not counted as an attempt
                events.attempt(name, chosen)
                started, failed = _perf(), True
                try:
                    async with asyncio.timeout(remaining):
                        if (server := await servers.acquire(untried)) is not untried[0]:
                            chosen = choose(server)  # its own model (the attempt counted the planned one's)
                        untried.remove(server)
                        try:
                            result = await with_retries(partial(timed, server, chosen), self.retries, ends_at)
                            failed = False
                        finally:
                            if failed or not keep:
                                servers.release(server, failed)
                except (ProviderError, TimeoutError) as exc:
                    error = (
                        exc
                        if isinstance(exc, ProviderError)
                        else ProviderTimeoutError(name, f"the call's deadline of {deadline:g} s passed")
                    )
                    events.failure(name, chosen, (_perf() - started) * 1000.0, error, operation=operation)
                    breaker.failure(breaker_key(provider, server))
                    errors[name] = error
                    log.warning("provider %s failed: %s: %s", name, type(error).__name__, error)
                    if server in untried:  # the deadline passed while it waited for a slot
                        untried.remove(server)
                    continue
                breaker.success(breaker_key(provider, server))
                if provider is not head:
                    events.fallback(head.name, name)
                return server, chosen, result, None if own is None else _perf() - walked - own
        raise AllProvidersFailedError(errors)


async def within(
    pieces: AsyncGenerator[str, None], ends_at: float, deadline: float, provider: str
) -> AsyncGenerator[str, None]:
    """The pieces of a stream until ``ends_at`` (``time.monotonic()``), then :class:`ProviderTimeoutError`.

    Each wait for the provider is bounded by the time left; the caller's own
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
