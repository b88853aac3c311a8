"""The module-level API, re-exported by :mod:`sarai_llm`: each function calls the process-wide gateway."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._global import current, get_gateway

if TYPE_CHECKING:
    from ._gateway import Gateway
    from .observe import MetricsServer


_CHAT_DOC = """``chat(messages, model=None, provider=None, temperature=0.7, max_tokens=None, use_cache=True,
*, caller=None, deadline=None, **provider_kwargs)``: answer a chat through the configured providers.

:param messages: ``[{"role": "user", "content": "..."}, ...]``, non-empty.
:param model: model of the first attempt (default: that provider's model).
:param provider: provider tried first (default: the configured primary), then the configured fallbacks.
:param temperature: 0 to 2 (default 0.7); ``max_tokens``: upper bound (default: the provider's).
:param use_cache: read and write the response cache (default True).
:param caller: a label for the stats (``"rag"``); ``deadline``: seconds for the whole call, every provider.
:param provider_kwargs: passed to LiteLLM untouched (``num_ctx``, ``top_k``, ``frequency_penalty``, ...).
:returns: a dict: ``content``, ``model``, ``provider``, ``usage`` (``prompt_tokens``, ``completion_tokens``,
    ``total_tokens``), ``finish_reason``, ``cached``, ``coalesced``, ``latency_ms`` (float), ``cost_usd``.
:raises InvalidRequestError: bad arguments (before any network call).
:raises NoProvidersError: no usable provider is configured.
:raises AllProvidersFailedError: every provider of the chain failed.
"""
_STREAM_DOC = """``stream_chat(messages, ...)``, the arguments of :func:`chat`: ``async for piece in stream_chat(...)``.

Arguments are checked when this is called, before iteration. Providers are tried in order until one
delivers its first piece; a failure after that raises :class:`StreamInterruptedError`. A completed
stream is cached and replayed piece by piece.
"""
_EMBED_DOC = """``embed(text, model=None, provider=None, use_cache=True, *, caller=None, deadline=None, **kwargs)``.

One text gives ``list[float]``, a list of texts ``list[list[float]]`` (input order). Cached per text;
uncached texts go upstream in one call. Providers that cannot embed (anthropic) are skipped.
"""

if TYPE_CHECKING:  # type checkers see the gateway's own signatures, written once there
    _gateway = Gateway()
    chat = _gateway.chat
    stream_chat = _gateway.stream_chat
    embed = _gateway.embed
else:

    async def chat(messages, *args, **kwargs):
        return await get_gateway().chat(messages, *args, **kwargs)

    def stream_chat(messages, *args, **kwargs):
        return get_gateway().stream_chat(messages, *args, **kwargs)

    async def embed(text, *args, **kwargs):
        return await get_gateway().embed(text, *args, **kwargs)

    chat.__doc__ = _CHAT_DOC
    stream_chat.__doc__ = _STREAM_DOC
    embed.__doc__ = _EMBED_DOC


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
    """The Prometheus metrics in text format; with ``PROMETHEUS_MULTIPROC_DIR``, summed over its processes."""
    return get_gateway().metrics.text()


def start_metrics_server(port: int, host: str = "127.0.0.1") -> MetricsServer:
    """Serve :func:`metrics_text` at ``http://host:port/metrics`` from a daemon thread.

    Also a status page at ``/`` and its data at ``/stats.json``. Each scrape reads the current gateway, so
    it survives :func:`reset_gateway`. ``port`` 0 picks a free one (``.port``); ``host`` defaults to this host only.

    :returns: the running server; ``.stop()`` (or ``with``) stops it.
    :raises OSError: the address cannot be bound; :class:`ConfigError`: the configuration is invalid.
    """
    from .observe import MetricsServer

    get_gateway()
    return MetricsServer(_current_metrics, port, host, status=_current_status)


def _current_metrics() -> Any:
    metrics = getattr(current(), "metrics", None)
    return metrics.exposed() if metrics is not None else None


def _current_status() -> Any:
    metrics = getattr(current(), "metrics", None)
    return metrics.status_data() if metrics is not None else None
