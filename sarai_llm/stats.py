"""Counters behind ``get_stats()``: plain integers, cheap to bump.

Every count the gateway keeps flows through the event methods of
:class:`Stats` (``request``, ``attempt``, ``failure``, ``success``,
``fallback``, ``answered``, ``call_failed``, ``first_token``), so an exporter
(Prometheus) has one place to hook.

Counting (see CONTRACT.md): ``total_requests`` counts every call of ``chat``,
``stream_chat`` and ``embed``, cache hits included; a provider's
``requests`` counts the upstream attempts sent to it; ``total_errors`` is the
sum of the providers' ``errors``; ``total_fallbacks`` counts calls answered
by a provider other than the head of their chain.
"""

from __future__ import annotations

from collections import deque
from typing import Any

__all__ = ["ProviderStats", "Stats"]

_LATENCY_WINDOW = 1000  # recent attempts kept per provider for p50/p95


def _percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return 0.0
    index = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return sorted_values[index]


class ProviderStats:
    """Attempts, errors, latency and tokens of one provider."""

    __slots__ = ("completion_tokens", "errors", "latencies_ms", "prompt_tokens", "requests")

    def __init__(self) -> None:
        self.requests = 0
        self.errors = 0
        self.prompt_tokens = 0
        self.completion_tokens = 0
        self.latencies_ms: deque[float] = deque(maxlen=_LATENCY_WINDOW)

    def snapshot(self) -> dict[str, Any]:
        ordered = sorted(self.latencies_ms)
        return {
            "requests": self.requests,
            "errors": self.errors,
            "error_rate": self.errors / self.requests if self.requests else 0.0,
            "latency_p50_ms": _percentile(ordered, 0.50),
            "latency_p95_ms": _percentile(ordered, 0.95),
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.prompt_tokens + self.completion_tokens,
        }


class Stats:
    """Every counter of one gateway."""

    def __init__(self) -> None:
        self.total_requests = 0
        self.total_fallbacks = 0
        self.coalesced = 0
        self.providers: dict[str, ProviderStats] = {}
        self.callers: dict[str, dict[str, int]] = {}

    def provider(self, name: str) -> ProviderStats:
        stats = self.providers.get(name)
        if stats is None:
            stats = self.providers[name] = ProviderStats()
        return stats

    # -- events, in the order a call meets them ----------------------------------

    def request(self) -> None:
        """A call of chat / stream_chat / embed started (hits included)."""
        self.total_requests += 1

    def attempt(self, provider: str, model: str) -> None:
        """An upstream attempt is sent to ``provider``."""
        self.provider(provider).requests += 1

    def failure(self, provider: str, model: str, latency_ms: float, error: BaseException) -> None:
        """An attempt failed (before or, for streams, after its first chunk)."""
        stats = self.provider(provider)
        stats.errors += 1
        stats.latencies_ms.append(latency_ms)

    def success(self, provider: str, model: str, latency_ms: float, usage: dict[str, int] | None) -> None:
        """An attempt answered completely."""
        stats = self.provider(provider)
        stats.latencies_ms.append(latency_ms)
        if usage:
            stats.prompt_tokens += usage.get("prompt_tokens", 0)
            stats.completion_tokens += usage.get("completion_tokens", 0)

    def first_token(self, provider: str, seconds: float) -> None:
        """A stream delivered its first piece ``seconds`` after the attempt began."""

    def fallback(self, from_provider: str, to_provider: str) -> None:
        """A call was answered by ``to_provider`` instead of its chain's head."""
        self.total_fallbacks += 1

    def answered(self, provider: str, model: str, *, cached: bool, latency_ms: float, caller: str | None) -> None:
        """A call returned an answer (from the cache when ``cached``)."""
        if caller is not None:
            self._caller(caller, cached=cached, error=False)

    def call_failed(self, caller: str | None) -> None:
        """A call raised after it was counted by :meth:`request`."""
        if caller is not None:
            self._caller(caller, cached=False, error=True)

    def coalesced_hit(self) -> None:
        """A call was answered by an identical request already in flight."""
        self.coalesced += 1

    # -- reading ------------------------------------------------------------------

    def _caller(self, caller: str, *, cached: bool, error: bool) -> None:
        row = self.callers.get(caller)
        if row is None:
            row = self.callers[caller] = {"requests": 0, "cache_hits": 0, "errors": 0}
        row["requests"] += 1
        row["cache_hits"] += cached
        row["errors"] += error

    def snapshot(self) -> dict[str, Any]:
        """The counters in the shape of ``get_stats()`` (without cache and config)."""
        providers = {name: stats.snapshot() for name, stats in self.providers.items()}
        attempts = sum(p["requests"] for p in providers.values())
        errors = sum(p["errors"] for p in providers.values())
        return {
            "total_requests": self.total_requests,
            "total_errors": errors,
            "total_fallbacks": self.total_fallbacks,
            "error_rate": errors / attempts if attempts else 0.0,
            "providers": providers,
            "callers": {name: dict(row) for name, row in self.callers.items()},
        }
