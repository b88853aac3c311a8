"""The process-wide gateway: ``sync``, ``cli`` and ``testing`` use these functions, never a private attribute."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from .errors import ConfigError

if TYPE_CHECKING:
    from ._gateway import Gateway
    from .config import GatewayConfig

__all__ = ["aclose", "current", "get_gateway", "reset_gateway", "swapped"]

_gateway: Gateway | None = None
_lock = threading.Lock()


def current() -> Gateway | None:
    """The process-wide gateway if one exists; never creates one."""
    return _gateway


def get_gateway(config: GatewayConfig | Mapping[str, Any] | None = None) -> Gateway:
    """The process-wide gateway, created on first use from the environment, ``.env`` and ``config.yaml``.

    :param config: a :class:`~sarai_llm.GatewayConfig`, or a mapping of settings that override every other
        source (``{"primary_provider": "local"}``), replaces the gateway with a new one.
    :raises ConfigError: a configuration value is invalid.
    """
    global _gateway
    if config is None and (gateway := _gateway) is not None:
        return gateway
    with _lock:
        if config is None and _gateway is not None:
            return _gateway
        from ._gateway import Gateway
        from .config import GatewayConfig

        if isinstance(config, GatewayConfig):
            settings = config
        elif config is None or isinstance(config, Mapping):
            settings = GatewayConfig.load(**(config or {}))
        else:
            raise ConfigError(f"config must be a GatewayConfig, a mapping or None, got {type(config).__name__}")
        old, _gateway = _gateway, Gateway(settings)
    if old is not None:
        old.close()
    return _gateway


def _take() -> Gateway | None:
    global _gateway
    with _lock:
        old, _gateway = _gateway, None
    return old


def reset_gateway() -> None:
    """Drop the process-wide gateway; the next call re-reads the configuration."""
    if (old := _take()) is not None:
        old.close()


async def aclose() -> None:
    """Close the process-wide gateway's connections and cache, and drop it (from the loop that made the calls)."""
    if (old := _take()) is not None:
        await old.aclose()


@contextmanager
def swapped(gateway: Gateway) -> Iterator[Gateway]:
    """Make ``gateway`` the process-wide one for a ``with`` block, then put the previous one back."""
    global _gateway
    with _lock:
        previous, _gateway = _gateway, gateway
    try:
        yield gateway
    finally:
        with _lock:
            _gateway = previous
