"""Counters behind ``get_stats()`` (CONTRACT.md "Stats") and Prometheus. No lock: a cache hit stays under a
microsecond, and readers in other threads copy each dict with ``list(d.items())``, atomic under the GIL."""

from __future__ import annotations

from bisect import bisect_left
from collections import deque
from itertools import accumulate
from typing import Any

from ._spec import FIRST_TOKEN_BUCKETS, LATENCY_BUCKETS, OVERHEAD_BUCKETS, TOKEN_KINDS, error_type
from .events import Observer, Usage

__all__ = ["Buckets", "ProviderStats", "Stats"]


class Buckets:
    """A histogram as plain numbers: a count per bucket (``bounds``: sorted upper bounds in seconds, then
    ``+Inf``), and the sum; ``per_second``: units of the observed values per second (1000.0: milliseconds)."""

    __slots__ = ("bounds", "counts", "per_second", "scaled", "sum")

    def __init__(self, bounds: tuple[float, ...], per_second: float = 1.0):
        self.bounds, self.per_second = bounds, per_second
        self.scaled = tuple(bound * per_second for bound in bounds)  # in the observed unit, as the sum
        self.counts, self.sum = [0] * (len(bounds) + 1), 0.0

    def observe(self, value: float) -> None:
        """Count one value, in the observed unit."""
        self.counts[bisect_left(self.scaled, value)] += 1
        self.sum += value

    def cumulative(self) -> tuple[list[tuple[float, int]], float]:
        """``([(upper bound, values <= it), ..., (inf, all values)], sum)``, in seconds."""
        counts, total = list(self.counts), self.sum
        return list(zip((*self.bounds, float("inf")), accumulate(counts), strict=True)), total / self.per_second


SERVER_COLUMNS = ("requests", "errors", "in_flight", "queue_wait_s")  # get_stats()'s per deployment
_BOUNDS_MS = Buckets(LATENCY_BUCKETS, 1000.0).scaled  # a hit observes milliseconds: no division per call


class ProviderStats:
    """Attempts, errors, latencies (milliseconds, the last 1000) and tokens of one provider."""

    __slots__ = ("errors", "latencies_ms", "overheads_ms", "requests", "tokens")

    def __init__(self) -> None:
        self.requests = self.errors = 0
        self.tokens = [0, 0, 0, 0]  # TOKEN_KINDS: prompt, completion, cached, reasoning
        self.latencies_ms: deque[float] = deque(maxlen=1000)
        self.overheads_ms: deque[float] = deque(maxlen=1000)

    def snapshot(self) -> dict[str, Any]:
        """``get_stats()["providers"][name]``."""
        ordered, requests, errors = sorted(self.latencies_ms), self.requests, self.errors
        overheads = sorted(self.overheads_ms)
        return {
            "requests": requests,
            "errors": errors,
            "error_rate": errors / requests if requests else 0.0,
            "latency_p50_ms": _percentile(ordered, 0.50),
            "latency_p95_ms": _percentile(ordered, 0.95),
            "prompt_tokens": self.tokens[0],
            "completion_tokens": self.tokens[1],
            "total_tokens": self.tokens[0] + self.tokens[1],
            "cached_tokens": self.tokens[2],
            "reasoning_tokens": self.tokens[3],
            "overhead_p50_ms": _percentile(overheads, 0.50) if overheads else None,  # None: not measured
            "overhead_p95_ms": _percentile(overheads, 0.95) if overheads else None,
        }


def _percentile(ordered: list[float], q: float) -> float:
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))] if ordered else 0.0


class Stats(Observer):
    """Every counter of one gateway; the events are :class:`Observer`'s."""

    def __init__(self) -> None:
        self.total_requests = self.total_fallbacks = self.coalesced = 0
        self.providers: dict[str, ProviderStats] = {}
        self.callers: dict[str, dict[str, int]] = {}  # caller -> {"requests", "cache_hits", "errors"}
        # For the Prometheus collector: labels the get_stats() shape has no room for.
        self.attempts: dict[tuple[str, str], int] = {}  # (provider, model) -> attempts
        self.error_types: dict[tuple[str, str], int] = {}  # (provider, error_type(exc)) -> failures
        self.fallbacks: dict[tuple[str, str], int] = {}  # (head, answering provider) -> calls
        self.tokens: dict[tuple[str, str], list[int]] = {}  # (provider, model) -> counts by TOKEN_KINDS
        self.call_latency: dict[str, Buckets] = {}  # answering provider -> ms (upstream answers)
        self.hit_latency: dict[str, Buckets] = {}  # provider of the cached answer -> ms (cache hits)
        self.first_token_latency: dict[str, Buckets] = {}  # provider -> seconds to a stream's first piece
        self.overheads: dict[str, Buckets] = {}  # provider -> seconds in sarai_llm and LiteLLM
        self.costs: dict[tuple[str, str, str], list[float]] = {}  # (provider, model, caller or "") -> [spent, saved]
        self.servers: dict[tuple[str, str], list[float]] = {}  # (provider, server) -> SERVER_COLUMNS
        self.reloads = {"ok": 0, "error": 0}
        self.last_reload_error: str | None = None

    def provider(self, name: str) -> ProviderStats:
        """The counters of provider ``name`` (created on first use)."""
        return self.providers.get(name) or self.providers.setdefault(name, ProviderStats())

    def request(self) -> None:
        self.total_requests += 1

    def attempt(self, provider: str, model: str) -> None:
        self.provider(provider).requests += 1
        self.attempts[provider, model] = self.attempts.get((provider, model), 0) + 1

    def failure(
        self, provider: str, model: str, latency_ms: float, error: BaseException, *, operation: str = "chat"
    ) -> None:
        stats = self.provider(provider)
        stats.errors += 1
        stats.latencies_ms.append(latency_ms)
        key = (provider, error_type(error))
        self.error_types[key] = self.error_types.get(key, 0) + 1

    def success(self, provider: str, model: str, latency_ms: float, usage: Usage, *, operation: str = "chat") -> None:
        stats = self.provider(provider)
        stats.latencies_ms.append(latency_ms)
        if usage:
            totals, row = stats.tokens, self.tokens.setdefault((provider, model), [0, 0, 0, 0])
            for i, kind in enumerate(TOKEN_KINDS):
                count = usage.get(f"{kind}_tokens") or 0
                totals[i] += count
                row[i] += count

    def first_token(self, provider: str, seconds: float) -> None:
        table = self.first_token_latency
        (table.get(provider) or table.setdefault(provider, Buckets(FIRST_TOKEN_BUCKETS))).observe(seconds)

    def overhead(self, provider: str, seconds: float) -> None:
        self.provider(provider).overheads_ms.append(seconds * 1000.0)
        table = self.overheads
        (table.get(provider) or table.setdefault(provider, Buckets(OVERHEAD_BUCKETS))).observe(seconds)

    def fallback(self, from_provider: str, to_provider: str) -> None:
        self.total_fallbacks += 1
        self.fallbacks[from_provider, to_provider] = self.fallbacks.get((from_provider, to_provider), 0) + 1

    def answered(self, provider: str, model: str, *, cached: bool, latency_ms: float, caller: str | None,
                 cost_usd: float = 0.0, saved_usd: float = 0.0) -> None:  # fmt: skip
        # Every cache hit runs this: a few dict and list operations.
        key = (provider, model, caller or "")
        row = self.costs.get(key) or self.costs.setdefault(key, [0.0, 0.0])
        row[0] += cost_usd
        row[1] += saved_usd
        table = self.hit_latency if cached else self.call_latency
        buckets = table.get(provider) or table.setdefault(provider, Buckets(LATENCY_BUCKETS, 1000.0))
        # Buckets.observe, inlined: a hit nearly always lands in the first bucket.
        buckets.counts[0 if latency_ms <= _BOUNDS_MS[0] else bisect_left(_BOUNDS_MS, latency_ms)] += 1
        buckets.sum += latency_ms
        if caller is not None:
            self._caller(caller, cached, False)

    def call_failed(self, caller: str | None) -> None:
        if caller is not None:
            self._caller(caller, False, True)

    def coalesced_hit(self) -> None:
        self.coalesced += 1

    def dispatched(self, provider: str, server: str, waited_s: float) -> None:
        row = self.servers.get((provider, server)) or self.servers.setdefault((provider, server), [0, 0, 0, 0.0])
        row[0] += 1
        row[2] += 1
        row[3] += waited_s

    def released(self, provider: str, server: str, failed: bool) -> None:
        row = self.servers[provider, server]
        row[1] += failed
        row[2] -= 1

    def reloaded(self, error: str | None) -> None:
        self.reloads["error" if error else "ok"] += 1
        self.last_reload_error = error

    def _caller(self, caller: str, cached: bool, error: bool) -> None:
        row = self.callers.get(caller) or self.callers.setdefault(caller, {"requests": 0, "cache_hits": 0, "errors": 0})
        row["requests"] += 1
        row["cache_hits"] += cached
        row["errors"] += error

    def snapshot(self) -> dict[str, Any]:
        """The counters in the shape of ``get_stats()``, without ``cache`` and ``config``; from any thread."""
        providers = {name: stats.snapshot() for name, stats in list(self.providers.items())}
        for (name, server), row in list(self.servers.items()):
            entry = providers.get(name) or providers.setdefault(name, ProviderStats().snapshot())
            entry.setdefault("deployments", {})[server] = dict(zip(SERVER_COLUMNS, row, strict=True))
        attempts = sum(p["requests"] for p in providers.values())
        errors = sum(p["errors"] for p in providers.values())
        return {
            "total_requests": self.total_requests,
            "total_errors": errors,
            "total_fallbacks": self.total_fallbacks,
            "error_rate": errors / attempts if attempts else 0.0,
            "providers": providers,
            "callers": {name: dict(row) for name, row in list(self.callers.items())},
            "cost": self.cost_snapshot(),
        }

    def cost_snapshot(self) -> dict[str, Any]:
        """``get_stats()["cost"]``, in US dollars spent upstream and saved by cache hits: ``{"spent_usd",
        "saved_usd", "providers": {p: {..., "models": {m: {...}}}}, "callers": {c: {...}}}``."""
        total: dict[str, Any] = {"spent_usd": 0.0, "saved_usd": 0.0, "providers": {}, "callers": {}}
        for (provider, model, caller), (spent, saved) in list(self.costs.items()):
            entry = total["providers"].setdefault(provider, {"spent_usd": 0.0, "saved_usd": 0.0, "models": {}})
            rows = [total, entry, entry["models"].setdefault(model, {"spent_usd": 0.0, "saved_usd": 0.0})]
            if caller:
                rows.append(total["callers"].setdefault(caller, {"spent_usd": 0.0, "saved_usd": 0.0}))
            for row in rows:
                row["spent_usd"] += spent
                row["saved_usd"] += saved
        return total
