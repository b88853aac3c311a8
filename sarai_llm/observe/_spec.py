"""What the observers share: metric names, help and labels, buckets, error labels. Imports nothing heavy."""

from __future__ import annotations

import os

FIRST_TOKEN_BUCKETS: tuple[float, ...] = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
"""Upper bounds, in seconds, of the time-to-first-token histogram (``+Inf`` implied)."""
TOKEN_KINDS = ("prompt", "completion", "cached", "reasoning")
"""The ``type`` label of ``llm_gateway_tokens``; ``usage[f"{kind}_tokens"]``. Cached tokens are prompt tokens the
provider served from its prompt cache; reasoning tokens are completion tokens spent reasoning."""
OVERHEAD_BUCKETS: tuple[float, ...] = (0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1)
"""Upper bounds, in seconds, of the overhead histogram (``+Inf`` implied)."""
LATENCY_BUCKETS: tuple[float, ...] = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, *FIRST_TOKEN_BUCKETS, 120.0, 300.0)
"""Upper bounds, in seconds, of the call-latency histogram (``+Inf`` implied): a hit's 100 us to a 300 s timeout."""

# name after llm_gateway_ (counters get _total in the text format), type, labels ("-": none), help
_TABLE = """\
calls counter - Calls of chat, stream_chat and embed, cache hits included.
requests counter provider,model Upstream attempts sent to a provider.
errors counter provider,error_type Failed upstream attempts, by error type.
fallbacks counter from_provider,to_provider Calls answered by a provider other than the head of their chain.
latency_seconds histogram provider,cached Seconds from call to answer; cached=true for cache hits.
time_to_first_token_seconds histogram provider Seconds from a stream's attempt to its first piece.
tokens counter provider,model,type Tokens reported by providers (type: prompt, completion, cached, reasoning).
cache_hits counter - Cache lookups that hit.
cache_misses counter - Cache lookups that missed.
cache_evictions counter - Entries evicted from the cache (LRU).
cache_hit_rate gauge - Cache hits / (hits + misses); 0 before any lookup.
cache_size gauge - Entries held in the cache directory.
cache_memory_bytes gauge - Bytes of cache entries this process holds in memory (at most cache.memory_mb).
caller_requests counter caller Calls made with caller=...
caller_cache_hits counter caller Calls made with caller=... answered from the cache.
caller_errors counter caller Calls made with caller=... that raised.
cost_usd counter provider,model,caller US dollars spent upstream (caller empty for calls made without caller=).
saved_usd counter provider,model,caller US dollars saved by cache hits: the cost of the answers they replayed.
overhead_seconds histogram provider Seconds a call spent in sarai_llm and LiteLLM, the upstream's wait excluded.
deployment_requests counter provider,deployment Upstream attempts sent to each server of a provider.
deployment_errors counter provider,deployment Failed upstream attempts, by server.
deployment_in_flight gauge provider,deployment Attempts under way, by server.
queue_wait_seconds counter provider,deployment Seconds attempts waited for a free slot of a server (max_concurrent).
config_reloads counter result Reads of changed configuration files: result ok (applied) or error (kept the old).
"""
SPECS = [(f"llm_gateway_{name}", *rest) for name, *rest in (line.split(" ", 3) for line in _TABLE.splitlines())]
METRIC_NAMES: tuple[str, ...] = tuple(name for name, _, _, _ in SPECS)
"""Family names of every metric (counters get ``_total`` in the text format)."""
KINDS = {name: kind for name, kind, _, _ in SPECS}
LABELS = {name: tuple(labels.split(",")) if labels != "-" else () for name, _, labels, _ in SPECS}
HELP = {name: help_text for name, _, _, help_text in SPECS}
BUCKETS = {
    "llm_gateway_latency_seconds": LATENCY_BUCKETS,
    "llm_gateway_time_to_first_token_seconds": FIRST_TOKEN_BUCKETS,
    "llm_gateway_overhead_seconds": OVERHEAD_BUCKETS,
}
_error_types: dict[type, str] = {}


def multiprocess_dir() -> str | None:
    """The directory of prometheus-client's multiprocess mode, or ``None`` when it is off."""
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or os.environ.get("prometheus_multiproc_dir") or None


def error_type(error: BaseException) -> str:
    """A short label for the class of a failed attempt, never its message: ``ProviderRateLimitError`` ->
    ``"rate_limit"``, ``ProviderError`` -> ``"provider"``, ``ValueError`` -> ``"value"``."""
    label = _error_types.get(cls := type(error))
    if label is None:
        core = (name := cls.__name__).removeprefix("Provider").removesuffix("Error") or name.removesuffix("Error")
        label = _error_types[cls] = "".join(f"_{c.lower()}" if c.isupper() else c for c in core or name).lstrip("_")
    return label
