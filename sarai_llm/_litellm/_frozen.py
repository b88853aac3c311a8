"""Request arguments as exact keys (:data:`._direct._frames`): what LiteLLM could tell apart stays apart."""

from __future__ import annotations

from typing import Any

__all__ = ["frozen", "thawed"]


def frozen(value: Any) -> Any:
    """``value`` as a key that tells apart whatever LiteLLM could (type, order, -0.0); TypeError for a value
    of another type."""
    kind = type(value)
    if kind is float:
        return kind, repr(value)
    if kind in (str, int, bool) or value is None:
        return kind, value
    if kind in (list, tuple):
        return kind, tuple(map(frozen, value))
    if kind is dict:
        return kind, tuple((frozen(k), frozen(v)) for k, v in value.items())
    raise TypeError(kind)


def thawed(key: Any) -> Any:
    """The value ``key`` was made from (a new object)."""
    kind, value = key
    if kind is float:
        return float(value)
    if kind in (list, tuple):
        return kind(map(thawed, value))
    return {thawed(k): thawed(v) for k, v in value} if kind is dict else value
