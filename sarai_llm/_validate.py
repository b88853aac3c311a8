"""Argument checks: every mistake is an :class:`InvalidRequestError` raised before any network call.

Shapes are checked on every call (cheap); :func:`check_sendable` checks the
values (strict JSON in UTF-8) on the way upstream only, where it costs
microseconds against milliseconds, so a caller's mistake is never counted as
a provider's failure.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from .errors import InvalidRequestError

__all__ = ["check_call", "check_messages", "check_options", "check_sendable", "check_texts"]

_ROLES = frozenset({"system", "user", "assistant", "tool", "function", "developer"})
# Arguments the gateway sets itself; passing them as provider kwargs is a mistake.
_RESERVED = frozenset({"messages", "stream", "input", "api_key", "api_base", "base_url"})


def check_messages(messages: object) -> list[dict[str, Any]]:
    """The messages as a list, or :class:`InvalidRequestError` saying what is wrong."""
    if not isinstance(messages, list | tuple) or not messages:
        raise InvalidRequestError(
            f"messages must be a non-empty list of {{'role': ..., 'content': ...}} dicts, got {type(messages).__name__}"
        )
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            raise InvalidRequestError(f"messages[{i}] must be a dict, got {type(message).__name__}")
        role = message.get("role")
        if not isinstance(role, str) or role not in _ROLES:
            raise InvalidRequestError(f"messages[{i}]['role'] must be one of {sorted(_ROLES)}, got {role!r}")
        content = message.get("content")
        if isinstance(content, str) and len(message) == 2:
            continue
        if not (
            isinstance(content, str)
            or (content is None and (message.get("tool_calls") or message.get("function_call")))
            or (
                isinstance(content, list)
                and all(isinstance(p, dict) and isinstance(p.get("type"), str) for p in content)
            )
        ):
            got = (
                "a list with an item that is not a {'type': str, ...} dict"
                if isinstance(content, list)
                else (type(content).__name__)
            )
            raise InvalidRequestError(
                f"messages[{i}]['content'] must be a string or a list of content parts "
                f"({{'type': 'text', ...}}), got {got}"
            )
        tool_calls = message.get("tool_calls")
        if tool_calls is not None and not (
            isinstance(tool_calls, list) and all(isinstance(c, dict) for c in tool_calls)
        ):
            raise InvalidRequestError(f"messages[{i}]['tool_calls'] must be a list of dicts")
        if message.get("name") is not None and not isinstance(message["name"], str):
            raise InvalidRequestError(f"messages[{i}]['name'] must be a string")
    return messages if isinstance(messages, list) else list(messages)


def check_sendable(messages: list[dict[str, Any]]) -> None:
    """Messages must be strict JSON in UTF-8: no NaN, no lone surrogates, no foreign objects."""
    try:
        json.dumps(messages, allow_nan=False, ensure_ascii=False).encode("utf-8")
    except (TypeError, ValueError) as exc:  # UnicodeEncodeError is a ValueError
        raise InvalidRequestError(f"messages cannot be sent as JSON: {exc}") from None


def check_call(
    temperature: object, max_tokens: object, model: object, use_cache: object, kwargs: Mapping[str, Any]
) -> None:
    """The arguments of ``chat`` and ``stream_chat`` besides the messages."""
    if temperature.__class__ is float and max_tokens is None and model is None and use_cache is True and not kwargs:
        if 0.0 <= temperature <= 2.0:
            return  # the common call, checked in one step
    if isinstance(temperature, bool) or not isinstance(temperature, int | float):
        raise InvalidRequestError(f"temperature must be a number, got {type(temperature).__name__}")
    if not 0.0 <= temperature <= 2.0:
        raise InvalidRequestError(f"temperature must be between 0 and 2, got {temperature}")
    if max_tokens is not None and (isinstance(max_tokens, bool) or not isinstance(max_tokens, int)):
        raise InvalidRequestError(f"max_tokens must be a positive integer or None, got {type(max_tokens).__name__}")
    if isinstance(max_tokens, int) and max_tokens < 1:
        raise InvalidRequestError(f"max_tokens must be a positive integer, got {max_tokens}")
    check_shared(model, use_cache, kwargs)


def check_shared(model: object, use_cache: object, kwargs: Mapping[str, Any]) -> None:
    """The arguments ``chat``, ``stream_chat`` and ``embed`` have in common."""
    if model is not None and (not isinstance(model, str) or not model.strip()):
        raise InvalidRequestError(f"model must be a non-empty string or None, got {model!r}")
    if not isinstance(use_cache, bool):
        raise InvalidRequestError(f"use_cache must be True or False, got {type(use_cache).__name__}")
    reserved = _RESERVED.intersection(kwargs)
    if reserved:
        raise InvalidRequestError(f"these arguments are set by sarai_llm and cannot be passed: {sorted(reserved)}")


def check_options(caller: object, deadline: object) -> None:
    """The keyword-only options every call takes: ``caller=`` and ``deadline=``."""
    if caller is not None and (not isinstance(caller, str) or not caller):
        raise InvalidRequestError(f"caller must be a non-empty string or None, got {caller!r}")
    if deadline is not None and (
        isinstance(deadline, bool) or not isinstance(deadline, int | float) or not 0 < deadline < float("inf")
    ):
        raise InvalidRequestError(f"deadline must be a positive number of seconds or None, got {deadline!r}")


def check_texts(text: object) -> tuple[list[str], bool]:
    """The texts to embed, and whether one text (not a list) was given."""
    single = isinstance(text, str)
    texts = [text] if single else text
    if not isinstance(texts, list | tuple) or not texts or not all(isinstance(t, str) for t in texts):
        raise InvalidRequestError(f"text must be a string or a non-empty list of strings, got {type(text).__name__}")
    for t in texts:
        try:
            t.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise InvalidRequestError(f"text cannot be sent: {exc}") from None
    return list(texts), single
