"""Retries of one provider before the chain falls back: the policy a ``litellm.Router`` would apply (README,
"Design decision": the gateway calls LiteLLM without one).

* **retried**: broken connections, timeouts, unusable bodies, HTTP 408, 409, 429 and 5xx (as the OpenAI SDK);
  never other 4xx (400, 401, 403, 404, 422...), which a retry cannot fix;
* **the wait**: the provider's ``Retry-After`` up to 60 s (a longer one falls back at once), else
  exponential backoff, 0.5 s doubling up to 8 s, with jitter;
* **the deadline**: a retry that could not start before it is not made; the provider's error is reported.

Retries happen inside one attempt: ``get_stats()`` counts one request and at most one error per provider and call.
"""

from __future__ import annotations

import asyncio
import email.utils
import math
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from ._log import log
from .errors import ProviderAuthError, ProviderError

__all__ = ["MAX_RETRY_AFTER", "causes", "delay", "retry_after", "retryable", "with_retries"]

T = TypeVar("T")

MAX_RETRY_AFTER = 60.0
"""The longest ``Retry-After`` (seconds) worth waiting for; a longer one falls back at once."""

_FIRST_DELAY = 0.5
_MAX_DELAY = 8.0
_RETRIED_STATUSES = frozenset({408, 409, 429})


def retryable(error: ProviderError) -> bool:
    """Whether trying the same provider again could succeed."""
    if isinstance(error, ProviderAuthError):
        return False
    status = error.status_code
    return status is None or status in _RETRIED_STATUSES or status >= 500


def delay(error: ProviderError, retry: int, *, jitter: Callable[[], float] = random.random) -> float | None:
    """Seconds to wait before retry number ``retry`` (0 for the first), or ``None``: do not retry."""
    if not retryable(error):
        return None
    asked = error.retry_after
    if asked is not None:
        return asked if asked <= MAX_RETRY_AFTER else None
    backoff = min(_FIRST_DELAY * 2.0**retry, _MAX_DELAY)
    return backoff * (0.75 + 0.5 * jitter())  # spread the retries of many callers


async def with_retries(call: Callable[[], Awaitable[T]], retries: int, ends_at: float | None = None) -> T:
    """``await call()``, retried up to ``retries`` times on a :class:`ProviderError` worth retrying.

    :param ends_at: the call's deadline (``time.monotonic()`` clock): no retry is made that could not start before it.
    """
    retry = 0
    while True:
        try:
            return await call()
        except ProviderError as error:
            wait = delay(error, retry) if retry < retries else None
            if wait is None or (ends_at is not None and time.monotonic() + wait >= ends_at):
                raise
            retry += 1
            log.info("%s; retry %d of %d in %.2f s", error, retry, retries, wait)
            await asyncio.sleep(wait)


def causes(exc: BaseException) -> list[BaseException]:
    """``exc`` and its causes (``__cause__``, else ``__context__``), at most 10."""
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen and len(seen) < 10:
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen


def retry_after(exc: BaseException) -> float | None:
    """Seconds the provider asked to wait (``retry-after-ms``, or ``Retry-After`` as seconds or a date)."""
    for error in causes(exc):
        headers = _headers(error)
        try:
            if (ms := headers.get("retry-after-ms")) is not None:
                seconds = float(ms) / 1000.0
            elif (value := headers.get("retry-after")) is not None:
                seconds = _seconds(str(value))
            else:
                continue
        except (TypeError, ValueError):
            return None
        return seconds if math.isfinite(seconds) and seconds >= 0 else None
    return None


def _headers(error: BaseException) -> Any:
    """The response headers an exception carries, or ``{}`` (LiteLLM and the SDKs keep them in different places)."""
    try:
        headers = getattr(error, "headers", None) or getattr(getattr(error, "response", None), "headers", None)
        headers = headers or getattr(error, "litellm_response_headers", None)
    except Exception:  # a property that raises without a response
        return {}
    return headers if hasattr(headers, "get") else {}


def _seconds(value: str) -> float:
    try:
        return float(value)
    except ValueError:  # an HTTP date, else ValueError again
        return email.utils.parsedate_to_datetime(value).timestamp() - time.time()
