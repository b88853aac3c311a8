"""Embeddings through the pipeline: each text looked up, coalesced and stored on its own.

The texts nobody has (not cached, not in flight) go upstream in one request;
``embed`` of a list counts a hit or a miss per text, and a repeated text in
one call is served by its first occurrence (a hit).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from ._adapter import Attempt
from ._chain import Route

if TYPE_CHECKING:
    from ._gateway import Gateway
    from .config import ProviderConfig

__all__ = ["embed_texts"]

_perf = time.perf_counter


async def embed_texts(
    gw: Gateway,
    texts: list[str],
    route: Route,
    model: str | None,
    use_cache: bool,
    deadline: float | None,
    kwargs: dict[str, Any],
) -> tuple[list[list[float]], str, float, float, float | None]:
    """Vectors in input order; what the call spent upstream and what the cache saved it; the seconds it waited
    for the upstream, when the adapter knows them (None: not known, or no request was sent).

    Each text is looked up, coalesced and stored on its own; the texts no
    one has go upstream in one request. A cached vector holds its share of
    its request's cost, which a hit or a repeated text saves.
    """
    cache = gw.cache if use_cache and route.keys is not None else None
    keys: dict[str, str | None] = {}
    found: dict[str, dict[str, Any]] = {}
    repeated: list[str] = []
    for t in texts:
        if t in keys:  # a repeated text is served by its first occurrence
            if cache is not None:
                cache.count_shared_hit()
                repeated.append(t)
            continue
        keys[t] = k = route.keys.key((model, t, kwargs)) if cache is not None else None  # type: ignore[union-attr]
        hit = cache.get(k) if cache is not None and k is not None else None
        if hit is not None:
            found[t] = hit
    saved = sum(entry.get("cost_usd") or 0.0 for entry in found.values())
    answered_by, spent, waited = "cache", 0.0, None
    pending = [t for t in keys if t not in found]
    while pending:
        followed = {t: f for t in pending if (f := gw._flights.joinable(keys[t])) is not None}
        todo = [t for t in pending if t not in followed]
        if todo:
            answered_by, spent, waited = await _upstream(gw, todo, keys, found, route, model, deadline, kwargs)
        pending = []
        for t, flight in followed.items():
            entry = await flight.follow()
            if entry is None:
                pending.append(t)  # its leader gave up: ask for it ourselves
                continue
            found[t] = entry
            saved += entry.get("cost_usd") or 0.0
            gw._coalesced()
    saved += sum(found[t].get("cost_usd") or 0.0 for t in repeated)
    return [list(found[t]["vector"]) for t in texts], answered_by, spent, saved, waited


async def _upstream(
    gw: Gateway,
    todo: list[str],
    keys: dict[str, str | None],
    found: dict[str, dict[str, Any]],
    route: Route,
    model: str | None,
    deadline: float | None,
    kwargs: dict[str, Any],
) -> tuple[str, float, float | None]:
    """Embed ``todo`` in one request into ``found`` (cached, followers told); ``(provider, cost, seconds waited
    for the upstream)`` (:meth:`ProviderChain.walk`'s, as a chat's)."""
    adapter, events = gw._adapter_for_miss(), gw.events
    flights = {t: gw._flights.lead(keys[t]) for t in todo}

    async def attempt(provider: ProviderConfig, chosen: str) -> Any:
        started = _perf()
        result = await adapter.embed(Attempt(provider, chosen, kwargs, texts=todo))
        events.success(provider.name, chosen, (_perf() - started) * 1000.0, result.usage, operation="embeddings")
        return result

    try:
        provider, _, fresh, waited = await gw._chain.walk(
            route.chain, model, attempt, embedding=True, deadline=deadline
        )
    except BaseException as exc:
        for t, flight in flights.items():
            gw._flights.land(keys[t], flight, error=exc)
        raise
    share = fresh.cost_usd / len(todo)
    for t, vector in zip(todo, fresh.vectors, strict=True):
        found[t] = entry = {"vector": vector, "cost_usd": share}
        k = keys[t]
        if k is not None:
            gw.cache.set(k, entry, messages=t, model=model or route.chain[0].embed_model)  # type: ignore[union-attr]
        gw._flights.land(k, flights[t], entry)
    return provider.name, fresh.cost_usd, waited
