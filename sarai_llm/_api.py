"""The module-level API: each function calls the process-wide gateway (:mod:`sarai_llm._global`).

Re-exported by :mod:`sarai_llm`; :mod:`sarai_llm.sync` wraps these in blocking forms.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ._global import current, get_gateway

if TYPE_CHECKING:
    from ._adapter import ChatResult
    from .observe import MetricsServer

__all__ = ["chat", "clear_cache", "embed", "get_stats", "health_check", "metrics_text", "start_metrics_server",
           "stream_chat"]  # fmt: skip


async def chat(
    messages: Sequence[Mapping[str, Any]],
    model: str | None = None,
    provider: str | None = None,
    temperature: float = 0.7,
    max_tokens: int | None = None,
    use_cache: bool = True,
    **provider_kwargs: Any,
) -> ChatResult:
    """Answer a chat through the configured providers.

    :param messages: ``[{"role": "user", "content": "..."}, ...]``, non-empty.
    :param model: model of the first attempt (default: that provider's model).
    :param provider: provider tried first (default: the configured primary),
        followed by the configured fallbacks.
    :param temperature: sampling temperature, 0 to 2 (default 0.7).
    :param max_tokens: upper bound of generated tokens (default: provider's).
    :param use_cache: read and write the response cache (default True).
    :param provider_kwargs: passed to LiteLLM untouched (``num_ctx``,
        ``top_k``, ``frequency_penalty``, ...); keyword-only extras:
        ``caller="rag"`` labels the call in the stats, ``deadline=10`` bounds
        the whole call across every provider (seconds).
    :returns: a dict with ``content``, ``model``, ``provider``, ``usage``
        (``prompt_tokens``, ``completion_tokens``, ``total_tokens``),
        ``finish_reason``, ``cached``, ``coalesced``, ``latency_ms`` (float)
        and ``cost_usd``.
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

    Takes the arguments of :func:`chat`, checked when this is called, before
    iteration. Providers are tried in order until one delivers its first
    piece; a failure after that raises :class:`StreamInterruptedError`. A
    completed stream is cached and replayed piece by piece.
    """
    return get_gateway().stream_chat(messages, model, provider, temperature, max_tokens, use_cache, **provider_kwargs)


async def embed(
    text: str | Sequence[str],
    model: str | None = None,
    provider: str | None = None,
    use_cache: bool = True,
    **kwargs: Any,
) -> list[float] | list[list[float]]:
    """Embed one text (``list[float]``) or a list of texts (``list[list[float]]``, input order).

    Cached per text; only uncached texts go upstream, in one call. Providers
    that cannot embed (anthropic) are skipped.
    """
    return await get_gateway().embed(text, model, provider, use_cache, **kwargs)


async def health_check(provider: str | None = None, *, detailed: bool = False) -> dict[str, Any]:
    """``{"ollama": True, "local": False, ...}`` for the configured providers (a model listing each)."""
    return await get_gateway().health_check(provider, detailed=detailed)


def get_stats() -> dict[str, Any]:
    """Requests, errors, fallbacks, per-provider and cache counters (see README, "Stats")."""
    return get_gateway().get_stats()


def clear_cache() -> None:
    """Drop every cached answer."""
    get_gateway().clear_cache()


def metrics_text() -> str:
    """The gateway's Prometheus metrics in the text exposition format (see :mod:`sarai_llm.observe`).

    With ``PROMETHEUS_MULTIPROC_DIR`` set, the sum over every process using that directory.
    """
    return get_gateway().metrics.text()


def start_metrics_server(port: int, host: str = "127.0.0.1") -> MetricsServer:
    """Serve :func:`metrics_text` at ``http://host:port/metrics`` from a daemon thread.

    The same server shows a status page at ``/`` (providers' health and
    latency, cache, spend and savings, callers) and its data at ``/stats.json``.
    Each scrape reads the current process-wide gateway, so the endpoint keeps
    working across :func:`reset_gateway`.

    :param port: TCP port; ``0`` picks a free one (read it from ``.port``).
    :param host: address to bind (default ``127.0.0.1``: this host only).
    :returns: the running server; call ``.stop()`` (or use ``with``) to stop it.
    :raises OSError: the address cannot be bound.
    :raises ConfigError: the configuration is invalid (the gateway is created first).
    """
    from .observe import MetricsServer

    get_gateway()
    return MetricsServer(_current_metrics, port, host, status=_current_status)


def _current_metrics() -> Any:
    gateway = current()
    return gateway.metrics.exposed() if gateway is not None else None


def _current_status() -> Any:
    gateway = current()
    metrics = getattr(gateway, "metrics", None)
    return metrics.status_data() if metrics is not None else None
