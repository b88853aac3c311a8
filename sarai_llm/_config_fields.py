"""The value types of the settings (:mod:`sarai_llm.config`): their validators and the error texts they give."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import AfterValidator, BeforeValidator, Field, SecretStr
from pydantic_core import PydanticCustomError

from ._config_sources import NAME, did_you_mean
from ._providers import PROVIDERS, litellm_prefixes

EXPECTED_PROVIDER = f"expected one of {', '.join(PROVIDERS)} or a provider defined under llm_gateway.providers"
_MODEL_FORM = "expected a LiteLLM model string like groq/llama-3.1-8b-instant"


def blank_is_none(value: Any) -> Any:
    if isinstance(value, SecretStr):
        value = value.get_secret_value()
    return (value.strip() or None) if isinstance(value, str) else value


def url(code: str, schemes: tuple[str, ...], form: str) -> AfterValidator:
    """Accepts a URL with one of ``schemes`` and a host (a path for ``unix``), text ones without trailing ``/``."""

    def check(value: Any) -> Any:  # errors never quote the URL: it may hold a password
        url = value.get_secret_value() if isinstance(value, SecretStr) else value.rstrip("/")
        try:
            parts = urlsplit(url)
            parts.port  # noqa: B018 - raises ValueError for a port that is not a number in range
        except ValueError:
            raise PydanticCustomError(code, form) from None
        scheme = parts.scheme.lower()
        if scheme not in schemes or not (parts.path if scheme == "unix" else parts.hostname):
            raise PydanticCustomError(code, form)
        return value if isinstance(value, SecretStr) else url

    return AfterValidator(lambda value: None if value is None else check(value))


def split_list(value: Any) -> Any:
    if not isinstance(value, str):
        return [] if value is None else value
    if not value.strip().startswith("["):
        return value.split(",")
    try:
        return json.loads(value)
    except ValueError:
        raise PydanticCustomError("json_list", "expected a comma list or a JSON list") from None


def provider_names(names: list[str]) -> list[str]:
    """``names`` normalised (case, spaces); one that cannot be a name is an error (unknown ones are found later)."""
    bad = ", ".join(repr(n.strip()) for n in names if not NAME.fullmatch(n.strip().lower()))
    if bad:
        raise PydanticCustomError("unknown_provider", f"unknown provider {bad}; {EXPECTED_PROVIDER}")
    return [n.strip().lower() for n in names]


def litellm_model(value: str | None) -> str | None:
    """A model string whose prefix LiteLLM routes (``groq/llama-3.1-8b-instant``)."""
    prefix, slash, model = (value or "").partition("/")
    if value is not None and not (slash and model):
        raise PydanticCustomError("model_string", _MODEL_FORM)
    if value is not None and prefix not in litellm_prefixes():
        known = did_you_mean(prefix, litellm_prefixes())
        raise PydanticCustomError("model_string", f"'{prefix}' is not a LiteLLM provider{known}; {_MODEL_FORM}")
    return value


def deployments(value: Any) -> Any:
    """A list of deployments; a URL alone (``LLM_GATEWAY_OLLAMA_DEPLOYMENTS=http://a:11434,http://b:11434``) is one."""
    return [{"base_url": v} if isinstance(v, str) else v for v in split_list(value)]


Seconds = Annotated[float, Field(gt=0, allow_inf_nan=False)]
Price = Annotated[float | None, Field(ge=0, allow_inf_nan=False)]  # US dollars per token
# Blank text (an empty environment variable, "" in YAML) means unset.
Text = Annotated[str | None, BeforeValidator(blank_is_none)]
Secret = Annotated[SecretStr | None, BeforeValidator(blank_is_none)]
HTTP_FORM = "expected an http:// or https:// URL with a host, like http://localhost:11434"
BaseURL = Annotated[Text, url("base_url", ("http", "https"), HTTP_FORM)]
REDIS_FORM = "expected a redis://, rediss:// or unix:// URL, like redis://localhost:6379/0"
RedisURL = Annotated[Secret, url("redis_url", ("redis", "rediss", "unix"), REDIS_FORM)]
lower = BeforeValidator(lambda v: v.strip().lower() if isinstance(v, str) else v)
UserPath = Annotated[Path | None, BeforeValidator(blank_is_none), AfterValidator(lambda p: p and p.expanduser())]
