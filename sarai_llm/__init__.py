"""sarai_llm: one shared, configured way for every module to call LLMs.

>>> import sarai_llm
>>> r = await sarai_llm.chat([{"role": "user", "content": "hola"}])   # doctest: +SKIP
>>> r["content"], r["provider"], r["cached"]                         # doctest: +SKIP

Configuration comes from call arguments, the environment (``LLM_GATEWAY_*``),
``.env`` and ``config.yaml``, in that order. ``import sarai_llm`` is cheap:
pydantic is imported on the first call, LiteLLM on the first cache miss.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._api import (
    chat,
    clear_cache,
    embed,
    get_stats,
    health_check,
    metrics_text,
    start_metrics_server,
    stream_chat,
)
from ._global import aclose, get_gateway, reset_gateway
from ._version import __version__
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
    from ._gateway import Gateway
    from .config import GatewayConfig

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


def __getattr__(name: str) -> Any:
    # Heavy names load on first use, so that ``import sarai_llm`` stays cheap.
    if name == "Gateway":
        from ._gateway import Gateway

        return Gateway
    if name == "GatewayConfig":
        from .config import GatewayConfig

        return GatewayConfig
    raise AttributeError(f"module 'sarai_llm' has no attribute {name!r}")
