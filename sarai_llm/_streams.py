"""Streams through the pipeline: replay, coalescing, fail-over before the first piece, deadline after it.

A stream may fail over to the next provider only until its first piece
arrives; a failure after that raises :class:`~sarai_llm.StreamInterruptedError`
(nothing is spliced, nothing cached). A completed stream is cached with its
pieces and replayed piece by piece; a chat's entry replays as one piece.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, Awaitable
from contextlib import aclosing
from typing import TYPE_CHECKING, Any

from ._adapter import Attempt, Completion, StreamState, no_usage
from ._chain import Request, within
from ._coalesce import Flight
from ._structured import parse
from .errors import ProviderConnectionError, ProviderError, ProviderResponseError, StreamInterruptedError

if TYPE_CHECKING:
    from ._adapter import ChatResult
    from ._gateway import Gateway
    from .config import ProviderConfig

__all__ = ["ChatStream"]

_perf = time.perf_counter


class ChatStream:
    """What ``stream_chat`` returns: ``async for piece in it`` gives the text pieces (tool-call deltas never).

    Once the iteration has ended, :attr:`result` is the dict ``chat`` returns
    (the text joined, ``tool_calls`` assembled, usage, ``cached``, ...); a
    replayed stream's is the cached one. ``aclose()`` stops it early (nothing
    is cached then).
    """

    __slots__ = ("_pieces", "result")

    def __init__(self, gw: Gateway, request: Request):
        self.result: ChatResult | None = None
        """``None`` until the stream ended."""
        self._pieces = _stream(gw, request, self)

    def __aiter__(self) -> AsyncGenerator[str, None]:
        return self._pieces  # ``async for`` runs the generator itself: nothing added per piece

    def __anext__(self) -> Awaitable[str]:
        return self._pieces.__anext__()

    def aclose(self) -> Awaitable[None]:
        """Stop the stream and close its upstream connection."""
        return self._pieces.aclose()


async def _stream(gw: Gateway, request: Request, out: ChatStream) -> AsyncGenerator[str, None]:
    """The pieces of ``request``: replayed from the cache, followed from a flight, or led upstream."""
    started, key, response_format = _perf(), request.key, request.response_format
    if key is not None:
        hit = gw.cache.get(key)  # type: ignore[union-attr]
        if hit is not None:  # a stream's entry replays its pieces; a chat's entry is one piece
            for piece in hit.get("chunks") or ([hit["content"]] if hit["content"] else []):
                yield piece
            out.result = gw._answered(hit, True, False, started, request.caller, response_format)
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
            out.result = gw._answered(flight.answer.result(), True, True, started, request.caller, response_format)
            return
        flight = gw._flights.lead(key, streaming=True)
        answers: list[dict[str, Any]] = []
        try:
            async with aclosing(_upstream(gw, request, flight, answers)) as pieces:
                async for piece in pieces:
                    yield piece
        except BaseException as exc:
            gw._flights.land(key, flight, error=exc)
            raise
        gw._store(request, answers[0])
        gw._flights.land(key, flight, answers[0])
    except Exception:
        gw.events.call_failed(request.caller)
        raise
    out.result = gw._answered(answers[0], False, False, started, request.caller, response_format)


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
    server, model, (first, pieces), _ = await gw._chain.walk(
        request.chain, request.model, attempt, deadline=deadline, keep=True
    )
    name, failed = server.name, True
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
        failed = False
    except ProviderError as exc:
        events.failure(name, model, (_perf() - opened_at) * 1000.0, exc)
        raise StreamInterruptedError(name, len(chunks), exc) from exc
    finally:  # also when the consumer stops early: close upstream now, not at collection
        gw._chain.servers.release(server, failed)
        await rest.aclose()
        await pieces.aclose()
    content, tool_calls = "".join(chunks), state.tool_calls
    if request.response_format is not None:
        try:
            parse(request.response_format, content, name, tool_calls)
        except ProviderResponseError as exc:  # after its pieces, a stream cannot fall back: nothing is cached
            events.failure(name, model, (_perf() - opened_at) * 1000.0, exc)
            raise StreamInterruptedError(name, len(chunks), exc) from exc
    events.success(name, model, (_perf() - opened_at) * 1000.0, state.usage)
    usage, finish = {**no_usage(), **state.usage}, state.finish_reason
    answer = Completion(
        content, state.model or model, usage, finish, state.cost_usd, tool_calls, state.reasoning_content
    )
    entry = answer.entry(name)
    entry["chunks"] = chunks
    out.append(entry)
