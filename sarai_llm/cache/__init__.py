"""The response cache (LRU + TTL) over a :class:`DiskStore` (one host), :class:`RedisStore` or :class:`MemoryStore`."""

from ._response import KeyMaker, MemoryStore, ResponseCache, Store, request_key
from .disk import DiskStore, default_cache_dir
from .redis import RedisStore, store_factory

__all__ = ["DiskStore", "KeyMaker", "MemoryStore", "RedisStore", "ResponseCache", "Store"]
__all__ += ["default_cache_dir", "request_key", "store_factory"]
