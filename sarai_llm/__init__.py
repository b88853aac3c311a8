"""sarai_llm: one shared, configured way for every module to call LLMs.

>>> r = await sarai_llm.chat([{"role": "user", "content": "hola"}])   # doctest: +SKIP
>>> r["content"], r["provider"], r["cached"]                         # doctest: +SKIP

Configuration comes from call arguments, the environment (``LLM_GATEWAY_*``), ``.env`` and ``config.yaml``,
in that order. ``import sarai_llm`` is cheap: pydantic loads on the first call, LiteLLM on the first cache miss.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._api import chat, clear_cache, embed, get_stats, health_check, metrics_text, start_metrics_server, stream_chat
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

__all__ = ["__version__", "Gateway", "GatewayConfig", "aclose", "get_gateway", "reset_gateway"]
__all__ += ["chat", "stream_chat", "embed", "health_check", "get_stats", "clear_cache"]
__all__ += ["metrics_text", "start_metrics_server", "chat_sync", "stream_chat_sync", "embed_sync", "health_check_sync"]
__all__ += ["SaraiLLMError", "ConfigError", "NoProvidersError", "UnsafeDependencyError", "InvalidRequestError"]
__all__ += ["CacheError", "ProviderError", "ProviderConnectionError", "ProviderTimeoutError", "ProviderAuthError"]
__all__ += ["ProviderRateLimitError", "ProviderResponseError", "AllProvidersFailedError", "StreamInterruptedError"]

# Heavy names, loaded on first use so that ``import sarai_llm`` stays cheap.
_LAZY = {"Gateway": "._gateway", "GatewayConfig": ".config"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module 'sarai_llm' has no attribute {name!r}")
