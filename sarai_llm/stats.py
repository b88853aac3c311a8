"""Counters behind ``get_stats()``: plain integers, cheap to bump.

Every count the gateway keeps flows through the event methods of
:class:`Stats` (``request``, ``attempt``, ``failure``, ``success``,
``fallback``, ``answered``, ``call_failed``, ``first_token``), so an exporter
(Prometheus) has one place to hook.

Besides the numbers of ``get_stats()``, :class:`Stats` keeps what the
Prometheus collector (:mod:`sarai_llm.metrics`) reads at scrape time: attempts
and tokens per (provider, model), errors per (provider, error type), fallbacks
per (from, to), and latency histograms as plain bucket counts. Recording is a
few dict and list operations, with no lock and no prometheus-client call: the
cache-hit path (``request`` and ``answered``) stays in the sub-microsecond range.

Cost: :meth:`Stats.answered` takes what the call spent upstream
(``cost_usd``) and what a cache hit saved (``saved_usd``: the cost of the
answer it replayed), summed per (provider, model, caller) for
``get_stats()["cost"]`` and ``llm_gateway_cost_usd_total`` /
``llm_gateway_saved_usd_total``. Upstream attempts (``success`` and
``failure``) are also handed to the OpenTelemetry GenAI instruments
(:mod:`sarai_llm.otel`) when a meter provider is configured; that is
detected once, at the gateway's first upstream attempt.

Counting (see CONTRACT.md): ``total_requests`` counts every call of ``chat``,
``stream_chat`` and ``embed``, cache hits included; a provider's
``requests`` counts the upstream attempts sent to it; ``total_errors`` is the
sum of the providers' ``errors``; ``total_fallbacks`` counts calls answered
by a provider other than the head of their chain.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import deque
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .otel import GenAIMetrics

__all__ = [
    "FIRST_TOKEN_BUCKETS",
    "LATENCY_BUCKETS",
    "Buckets",
    "ProviderStats",
    "Stats",
    "error_type",
]

_LATENCY_WINDOW = 1000  # recent attempts kept per provider for p50/p95

LATENCY_BUCKETS: tuple[float, ...] = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
    0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
)  # fmt: skip
"""Upper bounds, in seconds, of the call-latency histogram (``+Inf`` is implied).

From 100 us (a cache hit takes a few microseconds) to 300 s (the default
provider timeout).
"""

FIRST_TOKEN_BUCKETS: tuple[float, ...] = (
    0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
)  # fmt: skip
"""Upper bounds, in seconds, of the time-to-first-token histogram (``+Inf`` is implied)."""

_error_types: dict[type, str] = {}


def error_type(error: BaseException) -> str:
    """A short label for the class of a failed attempt.

    ``ProviderConnectionError`` -> ``"connection"``, ``ProviderTimeoutError`` ->
    ``"timeout"``, ``ProviderAuthError`` -> ``"auth"``, ``ProviderRateLimitError``
    -> ``"rate_limit"``, ``ProviderResponseError`` -> ``"response"``,
    ``ProviderError`` -> ``"provider"``; any other class: its name in snake
    case. Never the message, so a label cannot carry a secret or grow unbounded.
    """
    cls = type(error)
    label = _error_types.get(cls)
    if label is None:
        name = cls.__name__
        core = name.removeprefix("Provider").removesuffix("Error") or name.removesuffix("Error") or name
        label = "".join(f"_{c.lower()}" if c.isupper() else c for c in core).lstrip("_")
        _error_types[cls] = label
    return label


class Buckets:
    """A histogram kept as plain numbers: a count per bucket and the sum.

    :param bounds: sorted upper bounds in seconds (inclusive, Prometheus'
        ``le``); one more bucket counts the values above the last (``+Inf``).
    :param per_second: units of the observed values per second (1000.0 when
        milliseconds are observed); :attr:`scaled` holds the bounds in that unit.
    """

    __slots__ = ("bounds", "counts", "per_second", "scaled", "sum")

    def __init__(self, bounds: tuple[float, ...], per_second: float = 1.0):
        self.bounds = bounds
        self.per_second = per_second
        self.scaled = tuple(bound * per_second for bound in bounds)
        self.counts = [0] * (len(bounds) + 1)
        self.sum = 0.0  # in the observed unit

    def observe(self, value: float) -> None:
        """Count one value, in the observed unit."""
        self.counts[bisect_left(self.scaled, value)] += 1
        self.sum += value

    def cumulative(self) -> tuple[list[tuple[float, int]], float]:
        """``([(upper bound, values <= it), ..., (inf, all values)], sum)``, in seconds."""
        counts, total = list(self.counts), self.sum  # copies: a scrape may run in another thread
        running, rows = 0, []
        for bound, count in zip((*self.bounds, float("inf")), counts, strict=True):
            running += count
            rows.append((bound, running))
        return rows, total / self.per_second


def _percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return 0.0
    index = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return sorted_values[index]


# The hit path observes milliseconds against these bounds (no division per call).
_LATENCY_BOUNDS_MS = Buckets(LATENCY_BUCKETS, 1000.0).scaled
_FIRST_BOUND_MS = _LATENCY_BOUNDS_MS[0]


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
        # For the Prometheus collector (labels the get_stats() shape has no room for).
        self.attempts: dict[tuple[str, str], int] = {}  # (provider, model) -> attempts
        self.error_types: dict[tuple[str, str], int] = {}  # (provider, error_type(exc)) -> failures
        self.fallbacks: dict[tuple[str, str], int] = {}  # (head, answering provider) -> calls
        self.tokens: dict[tuple[str, str], list[int]] = {}  # (provider, model) -> [prompt, completion]
        self.call_latency: dict[str, Buckets] = {}  # answering provider -> ms (upstream answers)
        self.hit_latency: dict[str, Buckets] = {}  # provider of the cached answer -> ms (cache hits)
        self.first_token_latency: dict[str, Buckets] = {}  # provider -> seconds to a stream's first piece
        # (provider, model, caller or "") -> [US dollars spent upstream, US dollars saved by cache hits]
        self.costs: dict[tuple[str, str, str], list[float]] = {}
        self.otel: GenAIMetrics | None = None
        """The OpenTelemetry GenAI instruments, when a meter provider is configured."""
        self.otel_detected = False
        """Whether :attr:`otel` was looked for (at the first upstream attempt); see :meth:`use_otel`."""

    def use_otel(self, recorder: GenAIMetrics | None) -> None:
        """Record upstream attempts into ``recorder`` (``None``: not at all) instead of detecting it."""
        self.otel, self.otel_detected = recorder, True

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
        key = (provider, model)
        self.attempts[key] = self.attempts.get(key, 0) + 1
        if not self.otel_detected:
            from .otel import detect

            self.use_otel(detect())

    def failure(
        self, provider: str, model: str, latency_ms: float, error: BaseException, *, operation: str = "chat"
    ) -> None:
        """An attempt failed (before or, for streams, after its first chunk).

        ``operation`` is ``"chat"`` or ``"embeddings"`` (OpenTelemetry's ``gen_ai.operation.name``).
        """
        stats = self.provider(provider)
        stats.errors += 1
        stats.latencies_ms.append(latency_ms)
        key = (provider, error_type(error))
        self.error_types[key] = self.error_types.get(key, 0) + 1
        if self.otel is not None:
            self.otel.failed(operation, provider, model, latency_ms, error)

    def success(
        self, provider: str, model: str, latency_ms: float, usage: dict[str, int] | None, *, operation: str = "chat"
    ) -> None:
        """An attempt answered completely (``operation``: ``"chat"`` or ``"embeddings"``)."""
        if self.otel is not None:
            self.otel.succeeded(operation, provider, model, latency_ms, usage)
        stats = self.provider(provider)
        stats.latencies_ms.append(latency_ms)
        if usage:
            prompt = usage.get("prompt_tokens") or 0
            completion = usage.get("completion_tokens") or 0
            stats.prompt_tokens += prompt
            stats.completion_tokens += completion
            row = self.tokens.get((provider, model))
            if row is None:
                row = self.tokens[(provider, model)] = [0, 0]
            row[0] += prompt
            row[1] += completion

    def first_token(self, provider: str, seconds: float) -> None:
        """A stream delivered its first piece ``seconds`` after the attempt began."""
        buckets = self.first_token_latency.get(provider)
        if buckets is None:
            buckets = self.first_token_latency[provider] = Buckets(FIRST_TOKEN_BUCKETS)
        buckets.observe(seconds)

    def fallback(self, from_provider: str, to_provider: str) -> None:
        """A call was answered by ``to_provider`` instead of its chain's head."""
        self.total_fallbacks += 1
        key = (from_provider, to_provider)
        self.fallbacks[key] = self.fallbacks.get(key, 0) + 1

    def answered(
        self,
        provider: str,
        model: str,
        *,
        cached: bool,
        latency_ms: float,
        caller: str | None,
        cost_usd: float = 0.0,
        saved_usd: float = 0.0,
    ) -> None:
        """A call returned an answer (from the cache when ``cached``).

        ``cost_usd`` is what the call spent upstream; ``saved_usd`` what the
        cache saved it (the cost of the answers it replayed). This runs on
        every cache hit: keep it to a few dict and list operations.
        """
        key = (provider, model, caller or "")
        row = self.costs.get(key)
        if row is None:
            row = self.costs[key] = [0.0, 0.0]
        row[0] += cost_usd
        row[1] += saved_usd
        table = self.hit_latency if cached else self.call_latency
        buckets = table.get(provider)
        if buckets is None:
            buckets = table[provider] = Buckets(LATENCY_BUCKETS, 1000.0)
        # Buckets.observe, inlined; a hit nearly always lands in the first bucket.
        first = latency_ms <= _FIRST_BOUND_MS
        buckets.counts[0 if first else bisect_left(_LATENCY_BOUNDS_MS, latency_ms)] += 1
        buckets.sum += latency_ms
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
            "cost": self.cost_snapshot(),
        }

    def cost_snapshot(self) -> dict[str, Any]:
        """``get_stats()["cost"]``: US dollars spent upstream and saved by the cache.

        ``{"spent_usd", "saved_usd", "providers": {p: {"spent_usd", "saved_usd",
        "models": {m: {...}}}}, "callers": {c: {"spent_usd", "saved_usd"}}}``;
        ``callers`` lists the calls made with ``caller=...`` (as ``get_stats()["callers"]``).
        """
        spent = saved = 0.0
        providers: dict[str, dict[str, Any]] = {}
        callers: dict[str, dict[str, float]] = {}
        for (provider, model, caller), (row_spent, row_saved) in list(self.costs.items()):
            spent += row_spent
            saved += row_saved
            entry = providers.get(provider)
            if entry is None:
                entry = providers[provider] = {"spent_usd": 0.0, "saved_usd": 0.0, "models": {}}
            entry["spent_usd"] += row_spent
            entry["saved_usd"] += row_saved
            per_model = entry["models"].setdefault(model, {"spent_usd": 0.0, "saved_usd": 0.0})
            per_model["spent_usd"] += row_spent
            per_model["saved_usd"] += row_saved
            if caller:
                per_caller = callers.setdefault(caller, {"spent_usd": 0.0, "saved_usd": 0.0})
                per_caller["spent_usd"] += row_spent
                per_caller["saved_usd"] += row_saved
        return {"spent_usd": spent, "saved_usd": saved, "providers": providers, "callers": callers}
