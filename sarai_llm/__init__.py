"""sarai_llm: one shared, configured way for every module to call LLMs.

>>> import sarai_llm
>>> r = await sarai_llm.chat([{"role": "user", "content": "hola"}])   # doctest: +SKIP
>>> r["content"], r["provider"], r["cached"]                         # doctest: +SKIP

Configuration comes from call arguments, the environment (``LLM_GATEWAY_*``),
``.env`` and ``config.yaml``, in that order. ``import sarai_llm`` is cheap:
pydantic is imported on the first call, LiteLLM on the first cache miss.
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from .errors import (
    AllProvidersFailedError,
    CacheError,
    ConfigError,
    InvalidRequestError,
    NoProvidersError,
    ProviderAuthError,
    ProviderConnectionError,
    ProviderError,
    ProviderRateLimitError,
    ProviderResponseError,
    ProviderTimeoutError,
    SaraiLLMError,
    StreamInterruptedError,
    UnsafeDependencyError,
)
from .sync import chat_sync, embed_sync, health_check_sync, stream_chat_sync

if TYPE_CHECKING:
    from .config import GatewayConfig
    from .gateway import Gateway
    from .metrics import MetricsServer

__version__ = "0.1.0"

__all__ = [
    "AllProvidersFailedError",
    "CacheError",
    "ConfigError",
    "Gateway",
    "GatewayConfig",
    "InvalidRequestError",
    "NoProvidersError",
    "ProviderAuthError",
    "ProviderConnectionError",
    "ProviderError",
    "ProviderRateLimitError",
    "ProviderResponseError",
    "ProviderTimeoutError",
    "SaraiLLMError",
    "StreamInterruptedError",
    "UnsafeDependencyError",
    "__version__",
    "aclose",
    "chat",
    "chat_sync",
    "clear_cache",
    "embed",
    "embed_sync",
    "get_gateway",
    "get_stats",
    "health_check",
    "health_check_sync",
    "metrics_text",
    "reset_gateway",
    "start_metrics_server",
    "stream_chat",
    "stream_chat_sync",
]


_gateway: Gateway | None = None
_lock = threading.Lock()


def get_gateway(config: GatewayConfig | Mapping[str, Any] | None = None) -> Gateway:
    """The process-wide gateway, created on first use.

    :param config: ``None`` returns the current gateway (built from the
        environment, ``.env`` and ``config.yaml`` the first time). A
        :class:`GatewayConfig`, or a mapping of settings that override every
        other source (``{"primary_provider": "local"}``), replaces the current
        gateway with a new one.
    :raises ConfigError: a configuration value is invalid.
    """
    global _gateway
    gateway = _gateway
    if gateway is not None and config is None:
        return gateway
    with _lock:
        if config is None and _gateway is not None:
            return _gateway
        from .config import GatewayConfig
        from .gateway import Gateway

        if config is None:
            settings = GatewayConfig.load()
        elif isinstance(config, GatewayConfig):
            settings = config
        elif isinstance(config, Mapping):
            settings = GatewayConfig.load(**config)
        else:
            raise ConfigError(f"config must be a GatewayConfig, a mapping or None, got {type(config).__name__}")
        old, _gateway = _gateway, Gateway(settings)
        if old is not None:
            old.close()
        return _gateway


def reset_gateway() -> None:
    """Drop the process-wide gateway; the next call re-reads the configuration."""
    global _gateway
    with _lock:
        old, _gateway = _gateway, None
    if old is not None:
        old.close()


async def aclose() -> None:
    """Close the process-wide gateway's network clients and cache, and drop it.

    For a clean shutdown from the event loop that made the calls; the next
    call builds a new gateway, as after :func:`reset_gateway`.
    """
    global _gateway
    with _lock:
        old, _gateway = _gateway, None
    if old is not None:
        await old.aclose()


async def chat(
    messages: Sequence[Mapping[str, Any]],
    model: str | None = None,
    provider: str | None = None,
    temperature: float = 0.7,
    max_tokens: int | None = None,
    use_cache: bool = True,
    **provider_kwargs: Any,
) -> dict[str, Any]:
    """Answer a chat through the configured providers.

    :param messages: ``[{"role": "user", "content": "..."}, ...]``, non-empty.
    :param model: model of the first attempt (default: that provider's model).
    :param provider: provider tried first (default: the configured primary),
        followed by the configured fallbacks.
    :param temperature: sampling temperature, 0 to 2 (default 0.7).
    :param max_tokens: upper bound of generated tokens (default: provider's).
    :param use_cache: read and write the response cache (default True).
    :param provider_kwargs: passed to LiteLLM untouched (``num_ctx``,
        ``top_k``, ``frequency_penalty``, ...); ``caller="rag"`` labels the
        call in the stats.
    :returns: a dict with ``content``, ``model``, ``provider``, ``usage``
        (``prompt_tokens``, ``completion_tokens``, ``total_tokens``),
        ``finish_reason``, ``cached``, ``coalesced`` and ``latency_ms`` (float).
    :raises InvalidRequestError: bad arguments (before any network call).
    :raises NoProvidersError: no usable provider is configured.
    :raises AllProvidersFailedError: every provider of the chain failed.
    """
    return await get_gateway().chat(messages, model, provider, temperature, max_tokens, use_cache, **provider_kwargs)


def stream_chat(
    messages: Sequence[Mapping[str, Any]],
    model: str | None = None,
    provider: str | None = None,
    temperature: float = 0.7,
    max_tokens: int | None = None,
    use_cache: bool = True,
    **provider_kwargs: Any,
) -> AsyncIterator[str]:
    """Stream a chat answer as text pieces: ``async for piece in stream_chat(...)``.

    Takes the arguments of :func:`chat`. Arguments are checked when this is
    called, before iteration. Providers are tried in order until one delivers
    its first piece; a failure after that raises
    :class:`StreamInterruptedError`. A completed stream is cached and replayed
    piece by piece.
    """
    return get_gateway().stream_chat(messages, model, provider, temperature, max_tokens, use_cache, **provider_kwargs)


async def embed(
    text: str | Sequence[str],
    model: str | None = None,
    provider: str | None = None,
    use_cache: bool = True,
    **kwargs: Any,
) -> list[float] | list[list[float]]:
    """Embed one text (``list[float]``) or a list of texts (``list[list[float]]``).

    Cached per text; only uncached texts go upstream, in one call. Providers
    that cannot embed (anthropic) are skipped.
    """
    return await get_gateway().embed(text, model, provider, use_cache, **kwargs)


async def health_check(provider: str | None = None, *, detailed: bool = False) -> dict[str, Any]:
    """``{"ollama": True, "local": False, ...}`` for the configured providers."""
    return await get_gateway().health_check(provider, detailed=detailed)


def get_stats() -> dict[str, Any]:
    """Requests, errors, fallbacks, per-provider and cache counters (see README)."""
    return get_gateway().get_stats()


def clear_cache() -> None:
    """Drop every cached answer."""
    get_gateway().clear_cache()


def metrics_text() -> str:
    """The gateway's Prometheus metrics in the text exposition format.

    ``llm_gateway_requests_total{provider,model}``,
    ``llm_gateway_latency_seconds{provider,cached}``, ``llm_gateway_cache_hit_rate``
    and the others listed in :mod:`sarai_llm.metrics`. With
    ``PROMETHEUS_MULTIPROC_DIR`` set, the sum over every process using that directory.
    """
    return get_gateway().metrics.text()


def start_metrics_server(port: int, host: str = "127.0.0.1") -> MetricsServer:
    """Serve :func:`metrics_text` at ``http://host:port/metrics`` from a daemon thread.

    The same server shows a status page at ``http://host:port/`` (providers'
    health and latency, cache, spend and savings, callers; refreshed every few
    seconds) and its data at ``/stats.json``.

    Each scrape reads the current process-wide gateway, so the endpoint keeps
    working across :func:`reset_gateway`. ``LLM_GATEWAY_METRICS_PORT`` starts
    one automatically when the gateway is created.

    :param port: TCP port; ``0`` picks a free one (read it from ``.port``).
    :param host: address to bind (default ``127.0.0.1``: this host only).
    :returns: the running server; call ``.stop()`` (or use ``with``) to stop it.
    :raises OSError: the address cannot be bound.
    :raises ConfigError: the configuration is invalid (the gateway is created first).
    """
    from .metrics import MetricsServer

    get_gateway()
    return MetricsServer(_current_metrics, port, host, status=_current_status)


def _current_metrics() -> Any:
    gateway = _gateway
    return gateway.metrics.exposed() if gateway is not None else None


def _current_status() -> Any:
    gateway = _gateway
    metrics = getattr(gateway, "metrics", None)
    return metrics.status_data() if metrics is not None else None


def __getattr__(name: str) -> Any:
    # Heavy names load on first use, so that ``import sarai_llm`` stays cheap.
    if name == "Gateway":
        from .gateway import Gateway

        return Gateway
    if name == "GatewayConfig":
        from .config import GatewayConfig

        return GatewayConfig
    raise AttributeError(f"module 'sarai_llm' has no attribute {name!r}")
