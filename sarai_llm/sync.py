"""Blocking versions of the API (``sarai_llm.chat_sync(messages)``), for scripts and notebooks.

They work in a plain script and inside a running event loop (a Jupyter cell), where ``asyncio.run``
fails. Every sync call runs on **one** background event loop, in a daemon thread started on first
use, while the caller waits. Deliberately: loops are never nested (no ``nest_asyncio``); the
gateway's asyncio state and LiteLLM's HTTP clients stay bound to one long-lived loop, never to one
``asyncio.run`` has closed; sync and async callers share the process-wide gateway.

In a notebook ``await sarai_llm.chat(...)`` is better: a sync call blocks the notebook's loop
meanwhile. Ctrl-C while waiting cancels the request; a sync call from a coroutine on the
background loop would wait for itself and raises :class:`RuntimeError` instead.
"""

from __future__ import annotations

import atexit
import os
import threading
from collections.abc import AsyncIterator, Callable, Coroutine, Generator, Iterator
from functools import wraps
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

from . import _api, _global

if TYPE_CHECKING:
    import asyncio  # imported where used: it costs more than ``import sarai_llm``

__all__ = ["chat_sync", "embed_sync", "health_check_sync", "stream_chat_sync"]

T = TypeVar("T")
P = ParamSpec("P")


class _BackgroundLoop:
    """One event loop running forever in a daemon thread, started on first use."""

    def __init__(self) -> None:
        self.forget()

    def forget(self) -> None:
        """Start afresh: after ``fork()`` the loop's thread does not exist in the child."""
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        thread, loop = self._thread, self._loop
        return thread is not None and thread.is_alive() and loop is not None and not loop.is_closed()

    def on_loop_thread(self) -> bool:
        return self._thread is not None and threading.current_thread() is self._thread

    def _ensure(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is not None and self.running:
                return self._loop
            import asyncio

            loop = asyncio.new_event_loop()
            ready = threading.Event()
            thread = threading.Thread(target=self._serve, args=(loop, ready), name="sarai_llm-sync-loop", daemon=True)
            thread.start()
            ready.wait()
            self._loop, self._thread = loop, thread
            return loop

    @staticmethod
    def _serve(loop: asyncio.AbstractEventLoop, ready: threading.Event) -> None:
        import asyncio

        asyncio.set_event_loop(loop)
        loop.call_soon(ready.set)
        try:
            loop.run_forever()
        finally:
            # As asyncio.run does: cancel what is left (LiteLLM's logging worker), finish generators, close.
            try:
                pending = asyncio.all_tasks(loop)
                for task in pending:
                    task.cancel()
                loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
                loop.run_until_complete(loop.shutdown_asyncgens())
                loop.run_until_complete(asyncio.sleep(0))  # let closing transports finish closing
            finally:
                loop.close()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        """Run ``coro`` on the loop and return its result; ``timeout`` in seconds (default: none)."""
        if self.on_loop_thread():
            coro.close()
            raise RuntimeError(
                "a sarai_llm *_sync function was called from a coroutine running on its own "
                "background loop; use the async API (await sarai_llm.chat(...)) there"
            )
        import asyncio

        future = asyncio.run_coroutine_threadsafe(coro, self._ensure())
        try:
            return future.result(timeout)
        except BaseException:  # KeyboardInterrupt in the waiting thread: cancel the request too
            future.cancel()
            raise

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the loop and wait for its thread (a later call starts a new one)."""
        with self._lock:
            loop, thread, self._loop, self._thread = self._loop, self._thread, None, None
        if loop is not None and thread is not None and not loop.is_closed():
            loop.call_soon_threadsafe(loop.stop)
            if thread is not threading.current_thread():
                thread.join(timeout)


_runner = _BackgroundLoop()


def _shutdown() -> None:
    """At exit: close the gateway (HTTP clients, cache) on the loop that opened its clients, then stop the loop."""
    if _runner.running and _global.current() is not None:
        try:
            _runner.run(_global.aclose(), timeout=5.0)
        except Exception:  # never fail the interpreter's exit over a close
            pass
    _runner.stop()


atexit.register(_shutdown)  # before daemon threads are frozen mid-request
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_runner.forget)


def _blocking(call: Callable[P, Coroutine[Any, Any, T]]) -> Callable[P, T]:
    @wraps(call)
    def blocking(*args: P.args, **kwargs: P.kwargs) -> T:
        return _runner.run(call(*args, **kwargs))

    blocking.__name__ = blocking.__qualname__ = f"{call.__name__}_sync"
    blocking.__doc__ = f"Blocking :func:`sarai_llm.{call.__name__}`: same arguments, result and errors."
    return blocking


chat_sync = _blocking(_api.chat)
embed_sync = _blocking(_api.embed)
health_check_sync = _blocking(_api.health_check)


def stream_chat_sync(*args: Any, **kwargs: Any) -> BlockingStream:
    """Blocking :func:`sarai_llm.stream_chat`: ``for piece in stream_chat_sync(...)``; ``.result`` once it ended.

    Arguments are checked before iteration. Breaking out of the loop (or closing the iterator)
    closes the upstream stream; nothing is cached then.
    """
    return BlockingStream(_api.stream_chat(*args, **kwargs))


stream_chat_sync.__wrapped__ = _api.stream_chat  # type: ignore[attr-defined]  # its signature, for help()


class BlockingStream:
    """The pieces of a stream, each waited for; :attr:`result` as the async stream's once it ended."""

    def __init__(self, stream: AsyncIterator[str]):
        self._stream = stream
        self._pieces = _iterate(stream)

    def __iter__(self) -> Iterator[str]:
        return self

    def __next__(self) -> str:
        return next(self._pieces)

    def close(self) -> None:
        """Stop the stream and close its upstream connection."""
        self._pieces.close()

    @property
    def result(self) -> Any:
        """The dict ``chat`` returns, once the iteration has ended; ``None`` before."""
        return getattr(self._stream, "result", None)


def _iterate(stream: AsyncIterator[str]) -> Generator[str, None, None]:
    pieces = aiter(stream)

    async def step() -> str | None:
        try:
            return await anext(pieces)
        except StopAsyncIteration:
            return None

    finished = False
    try:
        while (piece := _runner.run(step())) is not None:
            yield piece
        finished = True
    finally:
        aclose = getattr(stream, "aclose", None)
        if not finished and aclose is not None:
            if _runner.on_loop_thread():  # collected on the loop's own thread: cannot wait
                import asyncio

                asyncio.ensure_future(aclose())
            else:
                _runner.run(aclose())
