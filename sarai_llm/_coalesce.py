"""Coalescing: identical requests in flight at once make one upstream request.

The first caller of a key leads a :class:`Flight`; later callers of that key
follow it: a chat follower gets the leader's answer, a stream follower every
piece received so far at once and then each new one (a late joiner misses
nothing), an embedding follower the leader's vector for that text. When the
leader fails its followers raise the same error; when it gives up (cancelled,
or a stream's consumer stopped), a follower with nothing received yet asks
upstream itself, and a stream follower with pieces raises
:class:`~sarai_llm.StreamInterruptedError`. Flights are bound to their event
loop: a call on another loop (the sync API's) never waits for one.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from typing import Any

__all__ = ["Flight", "Flights"]


class Flight:
    """One upstream request in flight: its answer and, for a stream, the pieces received so far."""

    __slots__ = ("_more", "answer", "loop", "pieces", "provider")

    def __init__(self, streaming: bool = False):
        self.loop = asyncio.get_running_loop()
        self.provider = "the provider"  # the stream's, once it delivered
        self.answer: asyncio.Future[dict[str, Any]] = self.loop.create_future()
        self.pieces: list[str] | None = [] if streaming else None
        self._more = asyncio.Event() if streaming else None

    def add(self, piece: str) -> None:
        """A stream's leader received ``piece``."""
        assert self.pieces is not None
        self.pieces.append(piece)
        self._wake()

    def finish(self, answer: dict[str, Any]) -> None:
        """The leader has the complete answer."""
        if not self.answer.done():
            self.answer.set_result(answer)
        self._wake()

    def fail(self, error: BaseException) -> None:
        """The leader failed (``CancelledError``: it was cancelled or abandoned)."""
        if not self.answer.done():
            if isinstance(error, asyncio.CancelledError | GeneratorExit):
                self.answer.cancel()
            else:
                self.answer.set_exception(error)
                self.answer.exception()  # retrieved: no warning when nobody followed
        self._wake()

    def _wake(self) -> None:
        more = self._more
        if more is not None:
            self._more = asyncio.Event()
            more.set()

    def gave_up(self) -> bool:
        """Whether a ``CancelledError`` met while following is the leader's giving up, not the follower's own."""
        task = asyncio.current_task()
        return self.answer.cancelled() and (task is None or not task.cancelling())

    async def follow(self) -> dict[str, Any] | None:
        """The leader's answer (raises its error); ``None`` when it gave up: the follower then asks itself."""
        try:
            return await asyncio.shield(self.answer)
        except asyncio.CancelledError:
            if not self.gave_up():
                raise
            return None

    async def replay(self) -> AsyncGenerator[str, None]:
        """The pieces of the flight from the first, as they arrive; then raises the leader's error, if any."""
        sent = 0
        while True:
            pieces = self.pieces
            if pieces is None:  # a chat in flight: its answer is one piece
                answer = await asyncio.shield(self.answer)
                if answer["content"]:
                    yield answer["content"]
                return
            while sent < len(pieces):
                sent += 1
                yield pieces[sent - 1]
            if self.answer.done():
                self.answer.result()  # raises the leader's error or CancelledError
                return
            assert self._more is not None
            await self._more.wait()


class Flights:
    """The flights of one gateway, by request key."""

    def __init__(self) -> None:
        self._flights: dict[str, Flight] = {}

    def joinable(self, key: str | None) -> Flight | None:
        """The flight of ``key`` on the running loop, if one is in flight."""
        flight = self._flights.get(key) if key is not None else None
        if flight is None or flight.answer.done() or flight.loop is not asyncio.get_running_loop():
            return None
        return flight

    def lead(self, key: str | None, *, streaming: bool = False) -> Flight | None:
        """Start the flight of ``key`` (``None``: the request is not shared, or one is already led)."""
        if key is None or self.joinable(key) is not None:
            return None
        flight = self._flights[key] = Flight(streaming)
        return flight

    def land(
        self,
        key: str | None,
        flight: Flight | None,
        answer: dict[str, Any] | None = None,
        error: BaseException | None = None,
    ) -> None:
        """End ``flight``: with its answer, or its error; followers are told either way."""
        if flight is None:
            return
        if self._flights.get(key) is flight:  # type: ignore[arg-type]
            del self._flights[key]  # type: ignore[arg-type]
        if answer is not None:
            flight.finish(answer)
        else:
            flight.fail(error if error is not None else asyncio.CancelledError())
