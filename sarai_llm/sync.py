"""Blocking versions of the API, for scripts and notebooks.

>>> import sarai_llm
>>> r = sarai_llm.chat_sync([{"role": "user", "content": "hola"}])   # doctest: +SKIP
>>> r["content"]                                                      # doctest: +SKIP

They work in a plain script and in code that already runs inside an event
loop (a Jupyter cell, a function called synchronously from ``asyncio.run``),
where ``asyncio.run`` itself would fail with "cannot be called from a running
event loop".

How: every sync call runs on **one** background event loop, in a daemon
thread owned by this module and started on first use. The calling thread
waits for the result. This design is deliberate:

* it never nests loops (no ``nest_asyncio`` patching of the user's loop);
* the gateway keeps asyncio state (in-flight requests) and LiteLLM keeps
  HTTP clients bound to the loop that created them; one long-lived loop means
  those clients are never left attached to a loop that ``asyncio.run`` has
  already closed;
* the calls go through the process-wide gateway (:func:`sarai_llm.get_gateway`),
  so sync and async callers share one configuration, cache and stats.

Inside a notebook, ``await sarai_llm.chat(...)`` in a cell is still the better
choice: a sync call blocks the notebook's own loop until it returns (that is
what "sync" means), so tasks scheduled on that loop wait meanwhile.

Ctrl-C while waiting cancels the request. A sync call made from a coroutine
that is itself running on the background loop would wait for itself; it
raises :class:`RuntimeError` instead.
"""

from __future__ import annotations

import atexit
import os
import threading
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from functools import wraps
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

from . import _api, _global

if TYPE_CHECKING:
    import asyncio

__all__ = ["chat_sync", "embed_sync", "health_check_sync", "stream_chat_sync"]

T = TypeVar("T")
P = ParamSpec("P")


class _BackgroundLoop:
    """One event loop running forever in a daemon thread, started on first use."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    def _ensure(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            loop, thread = self._loop, self._thread
            if loop is not None and thread is not None and thread.is_alive() and not loop.is_closed():
                return loop
            import asyncio  # deferred: ``import sarai_llm`` stays cheap

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
            # As asyncio.run does: cancel what is left (LiteLLM keeps a logging
            # worker task), finish async generators, then close.
            try:
                pending = asyncio.all_tasks(loop)
                for task in pending:
                    task.cancel()
                loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
                loop.run_until_complete(loop.shutdown_asyncgens())
                loop.run_until_complete(asyncio.sleep(0))  # let closing transports finish closing
            finally:
                loop.close()

    def on_loop_thread(self) -> bool:
        return self._thread is not None and threading.current_thread() is self._thread

    @property
    def running(self) -> bool:
        """Whether the background loop has been started and still runs."""
        thread, loop = self._thread, self._loop
        return thread is not None and thread.is_alive() and loop is not None and not loop.is_closed()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        """Run ``coro`` on the background loop and return its result (or raise its error).

        :param timeout: seconds to wait (default: no limit; the providers' own
            timeouts bound a request).
        """
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
        except BaseException:
            # KeyboardInterrupt in the waiting thread: cancel the request too.
            future.cancel()
            raise

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the loop and wait for its thread (a later call starts a new one)."""
        with self._lock:
            loop, thread = self._loop, self._thread
            self._loop = self._thread = None
        if loop is None or thread is None or loop.is_closed():
            return
        loop.call_soon_threadsafe(loop.stop)
        if thread is not threading.current_thread():
            thread.join(timeout)

    def forget(self) -> None:
        """After ``fork()`` the thread no longer exists in the child: start afresh there."""
        self._lock = threading.Lock()
        self._loop = self._thread = None


_runner = _BackgroundLoop()


def _shutdown() -> None:
    """At exit: close the gateway from the background loop, then stop the loop.

    LiteLLM's HTTP clients belong to the loop that opened them, so they can only
    be closed there; :func:`sarai_llm.aclose` does it, and closes the cache
    (writing its pending LRU times). Nobody uses the gateway any more.
    """
    if _runner.running and _global.current() is not None:
        try:
            _runner.run(_global.aclose(), timeout=5.0)
        except Exception:  # never fail the interpreter's exit over a close
            pass
    _runner.stop()


# Before daemon threads are frozen mid-request.
atexit.register(_shutdown)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_runner.forget)


def _blocking(call: Callable[P, Coroutine[Any, Any, T]]) -> Callable[P, T]:
    """The blocking form of an API coroutine function: same signature, result and errors."""

    @wraps(call)
    def blocking(*args: P.args, **kwargs: P.kwargs) -> T:
        return _runner.run(call(*args, **kwargs))

    blocking.__name__ = blocking.__qualname__ = f"{call.__name__}_sync"
    blocking.__doc__ = (
        f"Blocking :func:`sarai_llm.{call.__name__}`: same arguments, same result, same errors.\n\n"
        "Safe in a plain script and inside a running event loop (a notebook cell)."
    )
    return blocking


chat_sync = _blocking(_api.chat)
embed_sync = _blocking(_api.embed)
health_check_sync = _blocking(_api.health_check)


def stream_chat_sync(*args: Any, **kwargs: Any) -> Iterator[str]:
    """Blocking :func:`sarai_llm.stream_chat`: ``for piece in stream_chat_sync(...)``.

    Arguments are checked when this is called, before iteration. Breaking out
    of the loop (or closing the iterator) closes the upstream stream; nothing
    is cached then.
    """
    return _iterate(_api.stream_chat(*args, **kwargs))


stream_chat_sync.__wrapped__ = _api.stream_chat  # type: ignore[attr-defined]  # its signature, for help()


def _iterate(stream: AsyncIterator[str]) -> Iterator[str]:
    async def step() -> tuple[bool, str]:
        try:
            return True, await anext(stream)
        except StopAsyncIteration:
            return False, ""

    finished = False
    try:
        while True:
            more, piece = _runner.run(step())
            if not more:
                finished = True
                return
            yield piece
    finally:
        aclose = getattr(stream, "aclose", None)
        if not finished and aclose is not None:
            if _runner.on_loop_thread():  # collected on the loop's own thread: cannot wait
                import asyncio

                asyncio.ensure_future(aclose())
            else:
                _runner.run(aclose())
