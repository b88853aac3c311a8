"""The response cache (LRU + TTL) over a :class:`DiskStore` (one host), :class:`RedisStore` or :class:`MemoryStore`."""

from ._keys import KeyMaker, request_key
from ._response import ResponseCache, Store
from .disk import DiskStore, default_cache_dir
from .memory import MemoryStore
from .redis import RedisStore, store_factory

__all__ = [
    "DiskStore",
    "KeyMaker",
    "MemoryStore",
    "RedisStore",
    "ResponseCache",
    "Store",
    "default_cache_dir",
    "request_key",
    "store_factory",
]
