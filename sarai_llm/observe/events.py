"""The events of a gateway call (:class:`Observer`) and :class:`Events`, the observers they go to."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeAlias

__all__ = ["EVENTS", "Events", "Observer", "Usage"]

Usage: TypeAlias = Mapping[str, int] | None
"""Tokens a provider reported (``prompt_tokens``, ``completion_tokens``, ``total_tokens``, ``cached_tokens``,
``reasoning_tokens``), or ``None``."""


class Observer:
    """An observer of a gateway's calls: override the events wanted (quick, never raising); the others do nothing.

    * request: a call of chat / stream_chat / embed started (cache hits included); attempt: one is sent upstream.
    * failure / success: an attempt failed / answered completely after ``latency_ms`` milliseconds, having used
      ``usage`` tokens (``operation``: ``"chat"`` or ``"embeddings"``).
    * first_token: a stream delivered its first piece ``seconds`` after its attempt began.
    * fallback: a call was answered by ``to_provider`` instead of the head of its chain, ``from_provider``.
    * answered: a call returned an answer (from the cache when ``cached``) after ``latency_ms`` milliseconds;
      ``cost_usd``: US dollars spent upstream; ``saved_usd``: the cost of the answer a hit replayed.
    * call_failed: a call raised after ``request`` counted it.
    * coalesced_hit: a call was answered by an identical request already in flight.
    * dispatched / released: an attempt took / left a server of ``provider`` (``server``: its base URL as shown,
      without credentials) after waiting ``waited_s`` seconds for a free slot (``max_concurrent``).
    * overhead: an upstream answer spent ``seconds`` in sarai_llm and LiteLLM (the call's time but the upstream's
      wait; known on the direct path).
    * reloaded: the configuration files were read again (``error``: why they were not applied, else ``None``).
    """

    def request(self) -> None: ...
    def attempt(self, provider: str, model: str) -> None: ...
    def failure(
        self, provider: str, model: str, latency_ms: float, error: BaseException, *, operation: str = "chat"
    ) -> None: ...
    def success(
        self, provider: str, model: str, latency_ms: float, usage: Usage, *, operation: str = "chat"
    ) -> None: ...
    def first_token(self, provider: str, seconds: float) -> None: ...
    def fallback(self, from_provider: str, to_provider: str) -> None: ...
    def answered(self, provider: str, model: str, *, cached: bool, latency_ms: float, caller: str | None,
                 cost_usd: float = 0.0, saved_usd: float = 0.0) -> None: ...  # fmt: skip
    def call_failed(self, caller: str | None) -> None: ...
    def coalesced_hit(self) -> None: ...
    def dispatched(self, provider: str, server: str, waited_s: float) -> None: ...
    def released(self, provider: str, server: str, failed: bool) -> None: ...
    def overhead(self, provider: str, seconds: float) -> None: ...
    def reloaded(self, error: str | None) -> None: ...


EVENTS = tuple(name for name in vars(Observer) if not name.startswith("_"))


class Events(Observer):
    """Observers as a list: each event goes, in order, to the observers that override it. An event only one
    overrides is that observer's bound method (no extra call); :meth:`add` re-binds, safely while others emit."""

    def __init__(self, observers: Iterable[Observer] = ()) -> None:
        self.observers: tuple[Observer, ...] = ()
        for observer in observers:
            self.add(observer)

    def add(self, observer: Observer) -> None:
        """Send every later event to ``observer`` too, after the others."""
        self.observers = (*self.observers, observer)
        for name in EVENTS:
            noop = getattr(Observer, name)
            methods = [m for m in (getattr(o, name) for o in self.observers) if getattr(m, "__func__", 0) is not noop]
            setattr(self, name, methods[0] if len(methods) == 1 else _fan_out(methods))


def _fan_out(methods: list[Callable[..., None]]) -> Callable[..., None]:
    def emit(*args: Any, **kwargs: Any) -> None:
        for method in methods:
            method(*args, **kwargs)

    return emit
