"""Request keys and invalidation tags: BLAKE2b digests of canonical JSON, stable across processes."""

from __future__ import annotations

import hashlib

import orjson

_KEY_OPTIONS = orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS


def request_key(payload: object, namespace: str = "") -> str | None:
    """The key of ``payload`` (32 hex digits after ``"<namespace>:"``, if any), or ``None`` if not JSON-like."""
    try:
        data = orjson.dumps(payload, option=_KEY_OPTIONS)
    except TypeError:
        return None
    digest = hashlib.blake2b(data, digest_size=16).hexdigest()
    return f"{namespace}:{digest}" if namespace else digest


class KeyMaker:
    """The keys of requests on one ``route`` (in ``namespace``, default ``""``), the route hashed once."""

    __slots__ = ("_hasher", "_prefix")

    def __init__(self, route: object, namespace: str = ""):
        self._hasher = hashlib.blake2b(orjson.dumps(route, option=_KEY_OPTIONS), digest_size=16)
        self._prefix = f"{namespace}:" if namespace else ""

    def key(self, request: object) -> str | None:
        """The key of ``request`` on this route, or ``None`` if it is not JSON-like."""
        try:
            data = orjson.dumps(request, option=_KEY_OPTIONS)
        except TypeError:
            return None
        hasher = self._hasher.copy()
        hasher.update(data)
        return self._prefix + hasher.hexdigest()


def entry_tag(messages: object, model: str | None) -> str:
    """The invalidation tag ``"<digest of messages>:<model>"``; without a model, a prefix of every model's tag."""
    data = orjson.dumps(messages, option=orjson.OPT_SORT_KEYS)
    return f"{hashlib.blake2b(data, digest_size=16).hexdigest()}:{model if model is not None else ''}"
