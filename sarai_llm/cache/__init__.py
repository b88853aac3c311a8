"""The response cache (LRU + TTL) over a :class:`DiskStore` (one host), :class:`RedisStore` or :class:`MemoryStore`."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from ._response import KeyMaker, MemoryStore, ResponseCache, Store, request_key
from .disk import DiskStore, default_cache_dir
from .redis import RedisStore, store_factory

__all__ = ["DiskStore", "KeyMaker", "MemoryStore", "RedisStore", "ResponseCache", "Store"]
__all__ += ["default_cache_dir", "open_cache", "request_key", "store_factory"]

if TYPE_CHECKING:
    from ..config import GatewayConfig


def open_cache(
    config: GatewayConfig, store: Callable[[], Store] | None = None, clock: Callable[[], float] | None = None
) -> ResponseCache | None:
    """The cache ``config`` asks for (``None``: disabled) on ``store`` (default: its backend's) and ``clock``."""
    settings = config.cache_settings
    if not settings.enabled:
        return None
    store = store or store_factory(config)  # None: the default diskcache store
    return ResponseCache(
        None if store is not None else settings.dir or default_cache_dir(),
        ttl=settings.ttl,
        max_size=settings.max_size,
        memory_mb=settings.memory_mb,
        namespace=settings.namespace,
        clock=clock or time.time,
        store=store,
    )
