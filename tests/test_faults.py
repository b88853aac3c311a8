"""The fault-injection matrix: every fault x chat / stream_chat / embed, with and without a fallback.

Each cell points one provider at a :class:`faults.FaultyUpstream` in one
fault mode, with a 1 s timeout and no retries, then asserts:

* the outcome: the healthy fallback answered (``provider`` is the fallback),
  or ``AllProvidersFailedError`` with the right ``ProviderError`` subclass in
  ``.errors``, or ``StreamInterruptedError`` for a stream cut after chunks;
* how many requests reached the faulty upstream (one attempt = one request);
* the stats: per-provider requests / errors, total errors, total fallbacks,
  and the error class in the Prometheus error counter;
* that nothing failed was cached (cache size, and a repeat call that is not a hit);
* that the call ended within its timeout + 1 s;
* that nothing is left open: no ResourceWarning, no pending task but
  LiteLLM's long-lived logging worker, the client closed every connection it
  gave up on (a timeout, a cut), and after ``await gateway.aclose()`` no
  connection to either upstream is open.

After the matrix: clean-EOF cuts, stalls after the first chunks, the first
chunk later than the timeout, the reported HTTP status, ``aclose()`` across
gateways, and the per-call ``deadline=``.

Cells that fail because of a core bug carry ``xfail(strict=True)`` with the
bug in the reason: fixing the bug makes the cell fail until the marker goes.

Shapes: OpenAI-compatible (provider ``local``, fallback ``openai``), Ollama
(provider ``ollama``, fallback ``local``), Anthropic (provider ``anthropic``,
fallback ``local``; chat and stream: anthropic cannot embed). The healthy
fallback is a second FaultyUpstream in healthy mode (it answers "pong").
"""

from __future__ import annotations

import asyncio
import gc
import re
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from faults import FaultyUpstream, Mode, forget_litellm_clients

import sarai_llm
from sarai_llm import (
    AllProvidersFailedError,
    ProviderAuthError,
    ProviderConnectionError,
    ProviderError,
    ProviderRateLimitError,
    ProviderResponseError,
    ProviderTimeoutError,
    StreamInterruptedError,
)

MESSAGES = [{"role": "user", "content": "fault matrix"}]
TIMEOUT = 1.0  # the faulty provider's timeout, seconds
SLACK = 1.0  # a call must end within TIMEOUT + SLACK
OPENAI_KEY = "sk-FAULTS-openai-2b8d1e"
ANTHROPIC_KEY = "sk-ant-FAULTS-anthropic-6c0f4a"


# --- the cells ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Shape:
    """A provider protocol: the provider that speaks it and the healthy fallback used with it."""

    name: str
    provider: str
    fallback: str
    ops: tuple[str, ...]
    path: dict[str, str]  # op -> suffix of the upstream path the op uses


SHAPES = {
    "openai": Shape(
        "openai",
        "local",
        "openai",
        ("chat", "stream", "embed"),
        {"chat": "/chat/completions", "stream": "/chat/completions", "embed": "/embeddings"},
    ),
    "ollama": Shape(
        "ollama",
        "ollama",
        "local",
        ("chat", "stream", "embed"),
        {"chat": "/api/chat", "stream": "/api/chat", "embed": "/api/embed"},
    ),
    "anthropic": Shape(
        "anthropic",
        "anthropic",
        "local",
        ("chat", "stream"),
        {"chat": "/v1/messages", "stream": "/v1/messages"},
    ),
}


@dataclass(frozen=True)
class Fault:
    mode: Mode
    settings: tuple[tuple[str, Any], ...] = ()
    ops: tuple[str, ...] = ("chat", "stream", "embed")


FAULTS: dict[str, Fault] = {
    "refused": Fault(Mode.REFUSED),
    "hang": Fault(Mode.HANG),
    "http500": Fault(Mode.HTTP_500),
    "http503": Fault(Mode.HTTP_503),
    "http429": Fault(Mode.HTTP_429, (("retry_after", 1),)),
    "http401": Fault(Mode.HTTP_401),
    "malformed": Fault(Mode.MALFORMED),
    "cut": Fault(Mode.CUT, (("cut_after", 2),)),  # streams: after 2 chunks; JSON: half a body
    "cut0": Fault(Mode.CUT, (("cut_after", 0),), ops=("stream",)),  # a stream cut before its first chunk
    "slow": Fault(Mode.SLOW, (("delay", 0.3),)),  # first byte late, within the timeout
    "slow>timeout": Fault(Mode.SLOW, (("delay", TIMEOUT + 0.6),)),  # first byte after the timeout
}

# fault -> the ProviderError subclass of the failed attempt (None: the primary answers).
EXPECTED: dict[str, type[ProviderError] | None] = {
    "refused": ProviderConnectionError,
    "hang": ProviderTimeoutError,
    "http500": ProviderResponseError,
    "http503": ProviderResponseError,
    "http429": ProviderRateLimitError,
    "http401": ProviderAuthError,
    "malformed": ProviderResponseError,  # "an unusable body" (errors.py)
    "cut": ProviderConnectionError,  # "a closed stream" (errors.py)
    "cut0": ProviderConnectionError,
    "slow": None,
    "slow>timeout": ProviderTimeoutError,
}
ERROR_LABEL = {
    ProviderConnectionError: "connection",
    ProviderTimeoutError: "timeout",
    ProviderAuthError: "auth",
    ProviderRateLimitError: "rate_limit",
    ProviderResponseError: "response",
}


# Cells that fail because of a core bug (see the report of issue 7). strict: the
# marker must go when the bug is fixed.
def _cells() -> Iterator[Any]:
    for shape in SHAPES.values():
        for name, fault in FAULTS.items():
            for op in shape.ops:
                if op not in fault.ops:
                    continue
                for fallback in (False, True):
                    ident = f"{shape.name}-{name}-{op}-{'fallback' if fallback else 'alone'}"
                    yield pytest.param(shape.name, name, op, fallback, id=ident)


# --- helpers ----------------------------------------------------------------------------------


@pytest.fixture(scope="module", autouse=True)
def _warm_litellm() -> Iterator[None]:
    """Import LiteLLM and each provider's code path once, so that no cell's timing pays for it.

    Then freeze what exists: a full ``gc.collect()`` over LiteLLM's ~200 MB of
    objects takes ~0.5 s, and each cell collects to find leaked sockets.

    Before that, the clients earlier test modules left in LiteLLM's process-wide
    cache (their gateways were closed with ``close()``, not ``aclose()``, on
    event loops that are gone) are dropped and collected here, so that their
    sockets are not blamed on a cell. After the module, everything it froze is
    collected: an unclosed socket then is this module's leak.
    """
    import sarai_llm._litellm  # noqa: F401

    forget_litellm_clients()  # earlier modules' leftovers (see there)

    async def warm() -> None:
        with FaultyUpstream() as up:
            for shape in SHAPES.values():
                gw = sarai_llm.get_gateway({**_config(shape, up.base_url, None), "cache_enabled": False})
                await sarai_llm.chat(MESSAGES, use_cache=False)
                await collect(use_cache=False)
                if "embed" in shape.ops:
                    await sarai_llm.embed("warm", use_cache=False)
                await gw.aclose()
        sarai_llm.reset_gateway()

    asyncio.run(warm())
    gc.collect()
    gc.freeze()
    yield
    gc.unfreeze()
    leaks = forget_litellm_clients()
    assert leaks == [], f"left open by this module: {leaks}"


@pytest.fixture
def healthy() -> Iterator[FaultyUpstream]:
    """The healthy fallback: answers "pong" (stream: "po", "ng", "!")."""
    with FaultyUpstream(Mode.HEALTHY, reply="pong", chunks=["po", "ng", "!"]) as up:
        yield up


def _config(shape: Shape, base_url: str, fallback_url: str | None) -> dict[str, Any]:
    config: dict[str, Any] = {
        "primary_provider": shape.provider,
        f"{shape.provider}_base_url": base_url,
        f"{shape.provider}_timeout": TIMEOUT,
        "fallback_providers": [],
        "num_retries": 0,
        "openai_api_key": OPENAI_KEY,
        "anthropic_api_key": ANTHROPIC_KEY,
    }
    if fallback_url is not None:
        config["fallback_providers"] = [shape.fallback]
        config[f"{shape.fallback}_base_url"] = fallback_url
        config[f"{shape.fallback}_timeout"] = 5
    return config


async def collect(**kwargs: Any) -> list[str]:
    return [piece async for piece in sarai_llm.stream_chat(MESSAGES, **kwargs)]


async def call(op: str) -> Any:
    """One call of ``op``; for a stream, the pieces received before any error are kept on it."""
    if op == "chat":
        return await sarai_llm.chat(MESSAGES)
    if op == "embed":
        return await sarai_llm.embed("fault matrix")
    pieces: list[str] = []
    try:
        async for piece in sarai_llm.stream_chat(MESSAGES):
            pieces.append(piece)
    except Exception as exc:
        exc.pieces = pieces  # type: ignore[attr-defined]
        raise
    return pieces


def _own_task_names() -> list[str]:
    current = asyncio.current_task()
    names = []
    for task in asyncio.all_tasks():
        if task is current or task.done():
            continue
        names.append(getattr(task.get_coro(), "__qualname__", repr(task)))
    return names


# LiteLLM keeps one logging worker task per event loop for its callbacks: process-wide
# infrastructure, not something a call left behind.
_LITELLM_WORKERS = {"LoggingWorker._worker_loop"}


async def assert_no_pending_tasks() -> None:
    deadline = time.monotonic() + 1.0
    leftover = _own_task_names()
    while any(n not in _LITELLM_WORKERS for n in leftover) and time.monotonic() < deadline:
        await asyncio.sleep(0.02)  # a callback task finishing is not a leak
        leftover = _own_task_names()
    assert [n for n in leftover if n not in _LITELLM_WORKERS] == []


def error_counter(provider: str) -> dict[str, float]:
    """``llm_gateway_errors_total`` for ``provider``: error_type -> count."""
    found: dict[str, float] = {}
    pattern = re.compile(r"^llm_gateway_errors_total\{([^}]*)\}\s+(\S+)$")
    for line in sarai_llm.metrics_text().splitlines():
        match = pattern.match(line)
        if not match:
            continue
        labels = dict(re.findall(r'(\w+)="([^"]*)"', match.group(1)))
        if labels.get("provider") == provider:
            found[labels.get("error_type", "")] = float(match.group(2))
    return found


# --- the matrix ---------------------------------------------------------------------------------


@dataclass
class Cell:
    """One cell of the matrix while it runs: what was asked, and what came back."""

    shape: Shape
    fault_name: str
    op: str
    with_fallback: bool
    up: FaultyUpstream
    healthy: FaultyUpstream
    result: Any = None
    error: BaseException | None = None

    @property
    def expected(self) -> type[ProviderError] | None:
        return EXPECTED[self.fault_name]

    @property
    def interrupted(self) -> bool:
        return self.op == "stream" and self.fault_name == "cut"  # cut after 2 chunks

    @property
    def answered_by_primary(self) -> bool:
        return self.expected is None

    @property
    def failed(self) -> bool:
        """No answer: every provider failed, or the stream broke after chunks."""
        return self.interrupted or (self.expected is not None and not self.with_fallback)

    @property
    def attempts_upstream(self) -> int:
        return 0 if FAULTS[self.fault_name].mode is Mode.REFUSED else 1

    def check_answer(self, primary_answered: bool) -> None:
        """A healthy answer from the primary ("Hello world") or the fallback ("pong")."""
        assert self.error is None, repr(self.error)
        if self.op == "chat":
            assert self.result["cached"] is False
            if primary_answered:
                assert (self.result["provider"], self.result["content"]) == (self.shape.provider, "Hello world")
            else:
                assert (self.result["provider"], self.result["content"]) == (self.shape.fallback, "pong")
        elif self.op == "stream":
            assert self.result == (["Hel", "lo", " wor", "ld"] if primary_answered else ["po", "ng", "!"])
        else:
            assert isinstance(self.result, list) and len(self.result) == 4

    def check_outcome(self, stats: dict[str, Any]) -> None:
        primary, fallback, expected = self.shape.provider, self.shape.fallback, self.expected
        providers = stats["providers"]
        counts = {name: (p["requests"], p["errors"]) for name, p in providers.items()}
        assert stats["total_requests"] == 1
        if expected is None:  # slow but within the timeout: the primary answers
            self.check_answer(primary_answered=True)
            assert counts == {primary: (1, 0)}
            assert (stats["total_errors"], stats["total_fallbacks"], stats["cache"]["size"]) == (0, 0, 1)
        elif self.interrupted:
            error = self.error
            assert isinstance(error, StreamInterruptedError), repr(error)
            assert error.pieces == ["Hel", "lo"]  # type: ignore[attr-defined]
            assert error.provider == primary and error.chunks_delivered == 2
            assert isinstance(error.__cause__, expected), repr(error.__cause__)
            assert counts.get(primary) == (1, 1)
            assert counts.get(fallback, (0, 0)) == (0, 0) and self.healthy.requests == []  # never spliced
            assert (stats["total_errors"], stats["total_fallbacks"], stats["cache"]["size"]) == (1, 0, 0)
        elif self.with_fallback:
            self.check_answer(primary_answered=False)
            assert counts == {primary: (1, 1), fallback: (1, 0)}
            assert (stats["total_errors"], stats["total_fallbacks"]) == (1, 1)
            assert error_counter(primary) == {ERROR_LABEL[expected]: 1.0}
            assert stats["cache"]["size"] == 1  # the fallback's complete answer, nothing else
        else:
            error = self.error
            assert isinstance(error, AllProvidersFailedError), repr(error)
            assert str(error).startswith("All providers failed")
            assert list(error.errors) == [primary]
            cause = error.errors[primary]
            assert isinstance(cause, expected), repr(cause)
            assert cause.provider == primary
            assert f"{primary}: {expected.__name__}" in str(error)
            if self.op == "stream":
                assert error.pieces == []  # type: ignore[attr-defined]
            assert counts == {primary: (1, 1)}
            assert (stats["total_errors"], stats["total_fallbacks"], stats["error_rate"]) == (1, 0, 1.0)
            assert stats["cache"]["size"] == 0

    async def check_repeat(self, gw: sarai_llm.Gateway) -> None:
        """A failure was not cached (a repeat is not a hit); an answer was (a repeat asks no one)."""
        if self.failed:
            if FAULTS[self.fault_name].mode is Mode.REFUSED:
                with pytest.raises((AllProvidersFailedError, StreamInterruptedError)):
                    await call(self.op)
                return
            self.up.mode = Mode.HEALTHY
            self.result, self.error = await call(self.op), None
            self.check_answer(primary_answered=True)
            assert self.up.count(self.shape.path[self.op]) == self.attempts_upstream + 1
            assert gw.get_stats()["cache"]["size"] == 1
            return
        before = (self.up.count(), self.healthy.count())
        again = await call(self.op)
        if self.op == "chat":
            assert again["cached"] is True
            assert again["provider"] == (self.shape.provider if self.answered_by_primary else self.shape.fallback)
        elif self.op == "stream":
            assert again == self.result
        assert (self.up.count(), self.healthy.count()) == before
        assert gw.get_stats()["cache"]["hits"] == 1


@pytest.mark.parametrize(("shape_name", "fault_name", "op", "with_fallback"), list(_cells()))
async def test_fault_matrix(
    healthy: FaultyUpstream, shape_name: str, fault_name: str, op: str, with_fallback: bool
) -> None:
    shape, fault = SHAPES[shape_name], FAULTS[fault_name]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        with FaultyUpstream(fault.mode, **dict(fault.settings)) as up:
            cell = Cell(shape, fault_name, op, with_fallback, up, healthy)
            gw = sarai_llm.get_gateway(_config(shape, up.base_url, healthy.base_url if with_fallback else None))

            # -- the call, within its timeout + 1 s ---------------------------------------------
            started = time.perf_counter()
            try:
                cell.result = await call(op)
            except Exception as exc:
                cell.error = exc
            elapsed = time.perf_counter() - started
            assert elapsed < TIMEOUT + SLACK, f"the call took {elapsed:.2f}s"

            # -- the outcome and the stats; one attempt is one request ---------------------------
            assert up.count(shape.path[op]) == cell.attempts_upstream, f"requests: {up.requests}"
            assert up.count() == up.count(shape.path[op]), f"requests besides the call's: {up.requests}"
            cell.check_outcome(gw.get_stats())

            # -- nothing left open ------------------------------------------------------------
            await assert_no_pending_tasks()
            if fault.mode in (Mode.HANG, Mode.CUT) or fault_name == "slow>timeout":
                # The client gave up on (or lost) these connections: it must close them.
                assert up.wait_closed_by_client(1.0) == 0, "a connection the client gave up on is still open"

            # -- nothing failed was cached ----------------------------------------------------------
            await cell.check_repeat(gw)

            # -- shutdown: the documented aclose() leaves no connection open ---------------------
            await gw.aclose()
            if (shape_name, op) not in _MODULE_CLIENT_PATHS:  # see test_aclose_closes_every_connection
                assert up.wait_closed_by_client(1.0) == 0, "a connection to the faulty upstream is still open"
            assert healthy.wait_closed_by_client(1.0) == 0, "a connection to the fallback is still open"
            await assert_no_pending_tasks()
            sarai_llm.reset_gateway()
        gc.collect()
    leaks = [w for w in caught if issubclass(w.category, ResourceWarning)]
    assert leaks == [], [str(w.message) for w in leaks]


# --- faults the matrix does not cover ------------------------------------------------------------

# LiteLLM sends these through its process-wide ``litellm.module_level_aclient``.
_MODULE_CLIENT_PATHS = {("ollama", "embed"), ("anthropic", "stream")}


def _aclose_cells() -> Iterator[Any]:
    for shape in SHAPES.values():
        for op in shape.ops:
            yield pytest.param(shape.name, op, id=f"{shape.name}-{op}")


@pytest.mark.parametrize(("shape_name", "op"), list(_aclose_cells()))
async def test_aclose_closes_every_connection(shape_name: str, op: str) -> None:
    """Two gateways in turn, each ending with ``await gateway.aclose()``: no connection stays open.

    The error status (500) keeps the connection alive on the server's side,
    as an error answer does in real life; only the client can close it.
    """
    shape = SHAPES[shape_name]
    for round_ in range(2):
        with FaultyUpstream(Mode.HTTP_500) as up:
            gw = sarai_llm.get_gateway(_config(shape, up.base_url, None))
            with pytest.raises(AllProvidersFailedError):
                await call(op)
            await gw.aclose()
            sarai_llm.reset_gateway()
            assert up.wait_closed_by_client(1.0) == 0, f"round {round_}: a connection is still open after aclose()"


def _eof_cells() -> Iterator[Any]:
    for shape_name in SHAPES:
        for with_fallback in (False, True):
            yield pytest.param(shape_name, with_fallback, id=f"{shape_name}-{'fallback' if with_fallback else 'alone'}")


@pytest.mark.parametrize(("shape_name", "with_fallback"), list(_eof_cells()))
async def test_stream_ending_cleanly_before_any_text_is_not_an_answer(
    healthy: FaultyUpstream, shape_name: str, with_fallback: bool
) -> None:
    """A close-delimited stream that ends (clean EOF) before any event is a failed attempt.

    Nothing reveals the cut but the missing end marker ([DONE], ``done: true``,
    ``message_stop``): the gateway must not take it for an empty answer.
    """
    shape = SHAPES[shape_name]
    with FaultyUpstream(Mode.CUT, cut_after=0, cut_style="eof") as up:
        gw = sarai_llm.get_gateway(_config(shape, up.base_url, healthy.base_url if with_fallback else None))
        if with_fallback:
            assert await collect() == ["po", "ng", "!"]
            assert gw.get_stats()["total_fallbacks"] == 1
        else:
            with pytest.raises(AllProvidersFailedError) as info:
                await collect()
            assert isinstance(info.value.errors[shape.provider], ProviderConnectionError | ProviderResponseError)
            assert gw.get_stats()["cache"]["size"] == 0


@pytest.mark.parametrize("shape_name", list(SHAPES))
async def test_stream_ending_cleanly_after_chunks_is_interrupted(shape_name: str) -> None:
    """A close-delimited stream cut after 2 chunks: StreamInterruptedError, nothing cached."""
    shape = SHAPES[shape_name]
    with FaultyUpstream(Mode.CUT, cut_after=2, cut_style="eof") as up:
        gw = sarai_llm.get_gateway(_config(shape, up.base_url, None))
        received: list[str] = []
        with pytest.raises(StreamInterruptedError) as info:
            async for piece in sarai_llm.stream_chat(MESSAGES):
                received.append(piece)
        assert received == ["Hel", "lo"] and info.value.chunks_delivered == 2
        assert gw.get_stats()["cache"]["size"] == 0


@pytest.mark.parametrize("shape_name", list(SHAPES))
async def test_first_chunk_slower_than_the_timeout(shape_name: str) -> None:
    """Headers come at once, the first event never in time: a timeout, within timeout + 1 s."""
    shape = SHAPES[shape_name]
    with FaultyUpstream(Mode.HEALTHY, first_chunk_delay=TIMEOUT + 0.6) as up:
        gw = sarai_llm.get_gateway(_config(shape, up.base_url, None))
        started = time.perf_counter()
        with pytest.raises(AllProvidersFailedError) as info:
            await collect()
        assert time.perf_counter() - started < TIMEOUT + SLACK
        assert isinstance(info.value.errors[shape.provider], ProviderTimeoutError)
        assert gw.get_stats()["cache"]["size"] == 0


@pytest.mark.parametrize(
    ("mode", "status"),
    [(Mode.HTTP_500, 500), (Mode.HTTP_503, 503), (Mode.HTTP_429, 429), (Mode.HTTP_401, 401)],
)
@pytest.mark.parametrize("shape_name", list(SHAPES))
async def test_error_status_is_reported(shape_name: str, mode: Mode, status: int) -> None:
    shape = SHAPES[shape_name]
    with FaultyUpstream(mode) as up:
        sarai_llm.get_gateway(_config(shape, up.base_url, None))
        with pytest.raises(AllProvidersFailedError) as info:
            await sarai_llm.chat(MESSAGES)
        assert info.value.errors[shape.provider].status_code == status  # type: ignore[attr-defined]


@pytest.mark.parametrize("fault_name", ["refused", "hang", "cut", "malformed"])
async def test_no_status_code_without_an_http_status(fault_name: str) -> None:
    fault = FAULTS[fault_name]
    with FaultyUpstream(fault.mode, **dict(fault.settings)) as up:
        sarai_llm.get_gateway(_config(SHAPES["openai"], up.base_url, None))
        with pytest.raises(AllProvidersFailedError) as info:
            await sarai_llm.chat(MESSAGES)
        status = info.value.errors["local"].status_code  # type: ignore[attr-defined]
        assert status is None or (fault_name == "malformed" and status == 200)


async def test_faulty_upstream_closes_every_connection_on_stop() -> None:
    """The fixture itself: a hung request's connection is closed by stop()."""
    import socket

    up = FaultyUpstream(Mode.HANG)
    sock = socket.create_connection(("127.0.0.1", up.port))
    try:
        sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}")
        deadline = time.monotonic() + 2
        while up.count() == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert up.count("/chat/completions") == 1 and up.open_connections == 1
        up.stop()
        sock.settimeout(2)
        assert sock.recv(1) == b""  # closed by the server
        assert up.open_connections == 0
    finally:
        sock.close()
        up.stop()


# --- timeouts inside a stream, and the per-call deadline ------------------------------------------


@pytest.mark.parametrize("shape_name", list(SHAPES))
async def test_stream_stalling_after_chunks_times_out(shape_name: str) -> None:
    """Two chunks, then silence: interrupted by the provider's timeout, nothing cached."""
    shape = SHAPES[shape_name]
    with FaultyUpstream(Mode.HEALTHY, stall_after=2) as up:
        gw = sarai_llm.get_gateway(_config(shape, up.base_url, None))
        received: list[str] = []
        started = time.perf_counter()
        with pytest.raises(StreamInterruptedError) as info:
            async for piece in sarai_llm.stream_chat(MESSAGES):
                received.append(piece)
        assert time.perf_counter() - started < TIMEOUT + SLACK
        assert received == ["Hel", "lo"] and info.value.chunks_delivered == 2
        assert isinstance(info.value.__cause__, ProviderTimeoutError)
        assert gw.get_stats()["cache"]["size"] == 0
        await gw.aclose()
        assert up.wait_closed_by_client(1.0) == 0, "the stalled stream's connection is still open"


@pytest.mark.parametrize("op", ["chat", "stream", "embed"])
async def test_deadline_bounds_a_hanging_call(op: str) -> None:
    """deadline=0.5 against a 5 s provider timeout: the call ends at the deadline."""
    with FaultyUpstream(Mode.HANG) as up:
        gw = sarai_llm.get_gateway({**_config(SHAPES["openai"], up.base_url, None), "local_timeout": 5})
        started = time.perf_counter()
        with pytest.raises(AllProvidersFailedError) as info:
            if op == "chat":
                await sarai_llm.chat(MESSAGES, deadline=0.5)
            elif op == "stream":
                await collect(deadline=0.5)
            else:
                await sarai_llm.embed("x", deadline=0.5)
        assert time.perf_counter() - started < 0.5 + SLACK
        assert isinstance(info.value.errors["local"], ProviderTimeoutError)
        assert gw.get_stats()["cache"]["size"] == 0
        await gw.aclose()


async def test_deadline_names_the_providers_it_left_untried(healthy: FaultyUpstream) -> None:
    with FaultyUpstream(Mode.HANG) as up:
        gw = sarai_llm.get_gateway({**_config(SHAPES["openai"], up.base_url, healthy.base_url), "local_timeout": 5})
        with pytest.raises(AllProvidersFailedError) as info:
            await sarai_llm.chat(MESSAGES, deadline=0.5)
        stats = gw.get_stats()
        await gw.aclose()
    assert "openai" not in stats["providers"] or stats["providers"]["openai"]["requests"] == 0  # not an attempt
    assert healthy.requests == []
    assert list(info.value.errors) == ["local", "openai"], str(info.value)
    assert isinstance(info.value.errors["openai"], ProviderTimeoutError)


@pytest.mark.parametrize("shape_name", list(SHAPES))
async def test_deadline_bounds_a_stream_after_its_first_chunk(shape_name: str) -> None:
    shape = SHAPES[shape_name]
    with FaultyUpstream(Mode.HEALTHY, stall_after=2) as up:
        gw = sarai_llm.get_gateway({**_config(shape, up.base_url, None), f"{shape.provider}_timeout": 4})
        received: list[str] = []
        started = time.perf_counter()
        with pytest.raises(StreamInterruptedError) as info:
            async for piece in sarai_llm.stream_chat(MESSAGES, deadline=0.5):
                received.append(piece)
        elapsed = time.perf_counter() - started
        stats = gw.get_stats()
        await asyncio.sleep(0.1)  # a closed transport lets go of its socket on the loop's next turn
        assert up.wait_closed_by_client(1.0) == 0, "the interrupted stream's connection is still open"
        await gw.aclose()
    assert received == ["Hel", "lo"] and info.value.chunks_delivered == 2
    assert elapsed < 0.5 + SLACK, f"the stream ran {elapsed:.2f}s past a 0.5 s deadline"
    assert isinstance(info.value.__cause__, ProviderTimeoutError) and "deadline of 0.5 s" in str(info.value)
    assert stats["cache"]["size"] == 0 and stats["providers"][shape.provider]["errors"] == 1
