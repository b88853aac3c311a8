"""Streams through the pipeline: replay, coalescing, fail-over before the first piece, deadline after it.

A stream may fail over to the next provider only until its first piece
arrives; a failure after that raises :class:`~sarai_llm.StreamInterruptedError`
(nothing is spliced, nothing cached). A completed stream is cached with its
pieces and replayed piece by piece; a chat's entry replays as one piece.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator
from contextlib import aclosing
from typing import TYPE_CHECKING, Any

from ._adapter import Attempt, Completion, StreamState, no_usage
from ._chain import Request, within
from ._coalesce import Flight
from .errors import ProviderConnectionError, ProviderError, StreamInterruptedError

if TYPE_CHECKING:
    from ._gateway import Gateway
    from .config import ProviderConfig

__all__ = ["stream"]

_perf = time.perf_counter


async def stream(gw: Gateway, request: Request) -> AsyncGenerator[str, None]:
    """The pieces of ``request``: replayed from the cache, followed from a flight, or led upstream."""
    started, key = _perf(), request.key
    if key is not None:
        hit = gw.cache.get(key)  # type: ignore[union-attr]
        if hit is not None:  # a stream's entry replays its pieces; a chat's entry is one piece
            for piece in hit.get("chunks") or ([hit["content"]] if hit["content"] else []):
                yield piece
            gw._answered(hit, True, False, started, request.caller)
            return
    delivered = 0
    try:
        while (flight := gw._flights.joinable(key)) is not None:
            try:
                async with aclosing(flight.replay()) as pieces:
                    async for piece in pieces:
                        delivered += 1
                        yield piece
            except asyncio.CancelledError:
                if not flight.gave_up():
                    raise
                if delivered:  # the caller that opened the stream stopped after pieces this one has
                    cause = ProviderConnectionError(flight.provider, "the stream was closed by the call that opened it")
                    raise StreamInterruptedError(flight.provider, delivered, cause) from None
                continue  # nothing received yet: ask upstream ourselves
            gw._coalesced()
            gw._answered(flight.answer.result(), True, True, started, request.caller)
            return
        flight = gw._flights.lead(key, streaming=True)
        out: list[dict[str, Any]] = []
        try:
            async with aclosing(_upstream(gw, request, flight, out)) as pieces:
                async for piece in pieces:
                    yield piece
        except BaseException as exc:
            gw._flights.land(key, flight, error=exc)
            raise
        gw._store(request, out[0])
        gw._flights.land(key, flight, out[0])
    except Exception:
        gw.events.call_failed(request.caller)
        raise
    gw._answered(out[0], False, False, started, request.caller)


async def _upstream(
    gw: Gateway, request: Request, flight: Flight | None, out: list[dict[str, Any]]
) -> AsyncGenerator[str, None]:
    """The pieces of the first provider that delivers one; then the answer is appended to ``out``."""
    adapter, state, events = gw._adapter_for_miss(), StreamState(), gw.events
    opened_at = 0.0

    async def attempt(provider: ProviderConfig, model: str) -> tuple[str, AsyncGenerator[str, None]]:
        # Succeeds when the stream delivers its first piece (or ends cleanly
        # without text): until then, failing over is safe.
        nonlocal opened_at
        opened_at = _perf()
        pieces = adapter.stream(Attempt(provider, model, request.params, request.messages), state)
        try:
            first = await anext(pieces, "")
        except BaseException:
            await pieces.aclose()
            raise
        events.first_token(provider.name, _perf() - opened_at)
        return first, pieces

    deadline = request.deadline if request.deadline is not None else gw.config.deadline
    ends_at = None if deadline is None else time.monotonic() + deadline
    provider, model, (first, pieces) = await gw._chain.walk(request.chain, request.model, attempt, deadline=deadline)
    name = provider.name
    if flight is not None:
        flight.provider = name
    rest = pieces if ends_at is None or deadline is None else within(pieces, ends_at, deadline, name)
    chunks: list[str] = []

    def take(piece: str) -> str:  # kept for the cache, and shown to the followers
        chunks.append(piece)
        if flight is not None:
            flight.add(piece)
        return piece

    try:
        if first:
            yield take(first)
        async for piece in rest:
            yield take(piece)
    except ProviderError as exc:
        events.failure(name, model, (_perf() - opened_at) * 1000.0, exc)
        raise StreamInterruptedError(name, len(chunks), exc) from exc
    finally:  # also when the consumer stops early: close upstream now, not at collection
        await rest.aclose()
        await pieces.aclose()
    events.success(name, model, (_perf() - opened_at) * 1000.0, state.usage)
    answer = Completion(
        "".join(chunks), state.model or model, state.usage or no_usage(), state.finish_reason, state.cost_usd
    ).entry(name)
    answer["chunks"] = chunks
    out.append(answer)
