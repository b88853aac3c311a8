"""Structured output: what ``response_format=`` makes of an answer's text (``result["parsed"]``).

* a pydantic model class: the validated instance (a fresh one on every hit);
* a JSON-schema dict (``{"type": "json_schema", ...}``) or ``{"type": "json_object"}``:
  the parsed JSON value; a schema's top-level ``required`` fields must be there
  (full JSON Schema validation is the provider's, in strict mode);
* anything else (or none): ``None``.

Text that does not parse or validate is a :class:`~sarai_llm.ProviderResponseError`
naming the field: that attempt failed, the chain falls back, nothing is cached.
A pydantic class enters the cache key as its qualified name and JSON schema, so
its answers are cached across processes like any request's.
"""

from __future__ import annotations

import json
from typing import Any

from .errors import ProviderResponseError

__all__ = ["key_form", "keyed", "parse"]

_forms: dict[type, dict[str, Any]] = {}


def _is_model(response_format: object) -> bool:
    return isinstance(response_format, type) and hasattr(response_format, "model_validate_json")


def key_form(response_format: Any) -> Any:
    """``response_format`` as the cache key holds it: a pydantic class by its qualified name and JSON schema."""
    if not _is_model(response_format):
        return response_format
    form = _forms.get(response_format)
    if form is None:
        name = f"{response_format.__module__}.{response_format.__qualname__}"
        form = _forms[response_format] = {"pydantic": name, "schema": response_format.model_json_schema()}
    return form


def keyed(kwargs: dict[str, Any]) -> dict[str, Any]:
    """A chat's keyword arguments as its cache key holds them: a pydantic ``response_format`` by its schema."""
    response_format = kwargs.get("response_format")
    return kwargs if response_format is None else {**kwargs, "response_format": key_form(response_format)}


def parse(response_format: Any, content: str, provider: str, tool_calls: Any = ()) -> Any:
    """The structured value of ``content`` for ``response_format``: ``None`` when it asks for none, or when
    the model called tools instead of answering (``tool_calls``).

    :raises ProviderResponseError: the text is not JSON, or does not validate (the message names the field).
    """
    if tool_calls:
        return None
    if _is_model(response_format):
        from pydantic import ValidationError

        try:
            return response_format.model_validate_json(content)
        except ValidationError as exc:
            first = exc.errors(include_url=False)[0]
            field = ".".join(str(part) for part in first["loc"]) or "(the answer)"
            raise ProviderResponseError(
                provider, f"the answer does not match {response_format.__qualname__}: {field}: {first['msg']}"
            ) from None
    kind = response_format.get("type") if isinstance(response_format, dict) else None
    if kind not in ("json_schema", "json_object"):
        return None
    try:
        value = json.loads(content)
    except json.JSONDecodeError as exc:
        raise ProviderResponseError(provider, f"the answer is not JSON ({exc.msg} at character {exc.pos})") from None
    schema = (response_format.get("json_schema") or {}).get("schema") or {}
    missing = [name for name in schema.get("required", ()) if not isinstance(value, dict) or name not in value]
    if missing:
        raise ProviderResponseError(provider, f"the answer lacks the required field {missing[0]!r}")
    return value
