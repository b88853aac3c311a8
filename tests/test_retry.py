"""Retries of one provider (``num_retries``): which failures, how long to wait, and the deadline.

The policy is sarai_llm's own (``sarai_llm/retry.py``); the upstreams are
:class:`faults.FaultyUpstream` in the three protocol shapes.
"""

from __future__ import annotations

import asyncio
import email.utils
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from faults import FaultyUpstream, Mode
from test_faults import SHAPES, _config, call

import sarai_llm
from sarai_llm import (
    AllProvidersFailedError,
    ProviderAuthError,
    ProviderConnectionError,
    ProviderRateLimitError,
    ProviderResponseError,
    ProviderTimeoutError,
)
from sarai_llm.retry import MAX_RETRY_AFTER, delay, retryable, with_retries

MESSAGES = [{"role": "user", "content": "hi"}]


@pytest.fixture(autouse=True)
def _litellm_imported() -> None:
    """Import LiteLLM before any timing: its first import takes seconds."""
    import sarai_llm._litellm  # noqa: F401


# --- the policy ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (ProviderConnectionError("p", "refused"), True),
        (ProviderTimeoutError("p", "slow"), True),
        (ProviderResponseError("p", "not JSON"), True),
        (ProviderResponseError("p", "busy", status_code=503), True),
        (ProviderResponseError("p", "conflict", status_code=409), True),
        (ProviderRateLimitError("p", "slow down", status_code=429), True),
        (ProviderResponseError("p", "bad request", status_code=400), False),
        (ProviderResponseError("p", "no such model", status_code=404), False),
        (ProviderResponseError("p", "unprocessable", status_code=422), False),
        (ProviderAuthError("p", "bad key", status_code=401), False),
        (ProviderAuthError("p", "no status"), False),
    ],
)
def test_what_is_retried(error: sarai_llm.ProviderError, expected: bool) -> None:
    assert retryable(error) is expected
    assert (delay(error, 0) is not None) is expected


def test_backoff_doubles_from_half_a_second_up_to_eight() -> None:
    error = ProviderResponseError("p", "busy", status_code=500)
    middle = [delay(error, n, jitter=lambda: 0.5) for n in range(7)]
    assert middle == [0.5, 1.0, 2.0, 4.0, 8.0, 8.0, 8.0]
    assert delay(error, 0, jitter=lambda: 0.0) == 0.375 and delay(error, 0, jitter=lambda: 1.0) == 0.625


def test_retry_after_is_waited_for_up_to_a_minute() -> None:
    asked = ProviderRateLimitError("p", "slow down", status_code=429, retry_after=1.5)
    assert delay(asked, 3) == 1.5  # the provider's word, not the backoff
    too_long = ProviderRateLimitError("p", "slow down", status_code=429, retry_after=MAX_RETRY_AFTER + 1)
    assert delay(too_long, 0) is None  # fall back now rather than stall a minute


async def test_with_retries_stops_before_the_deadline() -> None:
    calls = 0

    async def failing() -> None:
        nonlocal calls
        calls += 1
        raise ProviderResponseError("p", "busy", status_code=503, retry_after=0.5)

    with pytest.raises(ProviderResponseError):
        await with_retries(failing, 5, ends_at=time.monotonic() + 1.2)
    assert calls == 3  # at 0, 0.5 and 1.0 s; a fourth could not start before 1.2 s
    calls = 0
    with pytest.raises(ProviderResponseError):
        await with_retries(failing, 0)
    assert calls == 1


# --- Retry-After as LiteLLM and the SDKs carry it -------------------------------------------------


class _WithHeaders(Exception):
    def __init__(self, headers: dict[str, str]):
        super().__init__("failed")
        self.response = httpx.Response(429, headers=headers)


def _retry_after(headers: dict[str, str]) -> float | None:
    from sarai_llm.retry import retry_after

    return retry_after(_WithHeaders(headers))


def test_retry_after_headers_are_read() -> None:
    assert _retry_after({"Retry-After": "2"}) == 2.0
    assert _retry_after({"retry-after-ms": "250"}) == 0.25
    later = email.utils.formatdate(time.time() + 30, usegmt=True)
    assert 28 <= (_retry_after({"Retry-After": later}) or 0) <= 31
    assert _retry_after({"Retry-After": "soon"}) is None
    assert _retry_after({"Retry-After": "-3"}) is None
    assert _retry_after({}) is None
    wrapped = RuntimeError("wrapped")
    wrapped.__cause__ = _WithHeaders({"Retry-After": "4"})
    from sarai_llm.retry import retry_after

    assert retry_after(wrapped) == 4.0  # found on the cause, where LiteLLM leaves the SDK's error


# --- against an upstream, in each protocol shape --------------------------------------------------


def _chat_shapes() -> Iterator[Any]:
    for name in SHAPES:
        yield pytest.param(name, id=name)


async def _heal_after_first_request(up: FaultyUpstream) -> None:
    while up.count() == 0:
        await asyncio.sleep(0.01)
    up.mode = Mode.HEALTHY


@pytest.mark.parametrize("shape_name", list(_chat_shapes()))
async def test_a_429_is_retried_after_its_retry_after(shape_name: str) -> None:
    shape = SHAPES[shape_name]
    with FaultyUpstream(Mode.HTTP_429, retry_after=1) as up:
        gw = sarai_llm.get_gateway({**_config(shape, up.base_url, None), "num_retries": 1})
        healer = asyncio.create_task(_heal_after_first_request(up))
        started = time.monotonic()
        answer = await call("chat")
        elapsed = time.monotonic() - started
        await healer
        assert answer["content"] == "Hello world" and answer["provider"] == shape.provider
        assert 1.0 <= elapsed < 2.5, elapsed
        assert up.count(shape.path["chat"]) == 2
        stats = gw.get_stats()["providers"][shape.provider]
        assert (stats["requests"], stats["errors"]) == (1, 0)  # retries are inside one attempt
        await gw.aclose()


@pytest.mark.parametrize("shape_name", list(_chat_shapes()))
async def test_a_stream_is_retried_before_its_first_piece(shape_name: str) -> None:
    shape = SHAPES[shape_name]
    with FaultyUpstream(Mode.HTTP_503) as up:
        gw = sarai_llm.get_gateway({**_config(shape, up.base_url, None), "num_retries": 2})
        healer = asyncio.create_task(_heal_after_first_request(up))
        assert "".join(await call("stream")) == "Hello world"
        await healer
        assert up.count(shape.path["stream"]) == 2
        await gw.aclose()


async def test_a_long_retry_after_falls_back_at_once() -> None:
    shape = SHAPES["openai"]
    with FaultyUpstream(Mode.HTTP_429, retry_after=120) as up, FaultyUpstream() as healthy:
        gw = sarai_llm.get_gateway({**_config(shape, up.base_url, healthy.base_url), "num_retries": 3})
        started = time.monotonic()
        answer = await call("chat")
        assert answer["provider"] == shape.fallback and time.monotonic() - started < 1.0
        assert up.count("/chat/completions") == 1
        await gw.aclose()


async def test_no_retry_starts_after_the_deadline() -> None:
    """The provider's own error is reported, not a deadline, when the retry could not fit."""
    shape = SHAPES["openai"]
    with FaultyUpstream(Mode.HTTP_429, retry_after=1) as up:
        gw = sarai_llm.get_gateway({**_config(shape, up.base_url, None), "num_retries": 3})
        started = time.monotonic()
        with pytest.raises(AllProvidersFailedError) as info:
            await sarai_llm.chat(MESSAGES, deadline=0.8)
        assert time.monotonic() - started < 0.7
        assert isinstance(info.value.errors["local"], ProviderRateLimitError)
        assert info.value.errors["local"].retry_after == 1.0
        assert up.count("/chat/completions") == 1
        await gw.aclose()


async def test_errors_a_retry_cannot_fix_are_sent_once() -> None:
    shape = SHAPES["openai"]
    for mode in (Mode.HTTP_400, Mode.HTTP_401):
        with FaultyUpstream(mode) as up:
            gw = sarai_llm.get_gateway({**_config(shape, up.base_url, None), "num_retries": 3})
            with pytest.raises(AllProvidersFailedError):
                await call("embed")
            assert up.count("/embeddings") == 1
            await gw.aclose()
            sarai_llm.reset_gateway()
