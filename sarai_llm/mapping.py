"""The mapping of sarai_llm's provider settings onto LiteLLM's conventions, without LiteLLM.

Pure functions shared by the LiteLLM adapter (:mod:`sarai_llm._litellm`,
which makes its call parameters from them) and by the LiteLLM Proxy export
(:mod:`sarai_llm.proxy_export`, which writes them into a proxy
``config.yaml``). Importing this module never imports LiteLLM.

* :func:`api_base`: a provider's base URL as LiteLLM's ``api_base`` wants it;
* :func:`model_string`: the LiteLLM model string (``ollama_chat/llama3.2``);
* :func:`group_name`: the proxy's model group of a (provider, model);
* :func:`litellm_params`: the deployment parameters, with the API key as its
  value (for the gateway's calls) or as an ``os.environ/NAME`` reference
  (for a config file).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from .config import ENV_PREFIX, ProviderConfig

__all__ = ["NO_KEY", "api_base", "api_key_env", "group_name", "litellm_params", "model_string"]

# A placeholder key for OpenAI-compatible servers that need none: the openai
# SDK refuses to send a request without one.
NO_KEY = "sk-no-key-required"


def _with_v1(url: str) -> str:
    """An OpenAI-compatible base without a path gets ``/v1``."""
    return url + "/v1" if urlsplit(url).path in ("", "/") else url


def _strip_suffix(url: str, suffix: str) -> str:
    return url[: -len(suffix)] if url.endswith(suffix) else url


def api_base(provider: ProviderConfig) -> str | None:
    """The ``api_base`` LiteLLM needs for a provider's configured base URL.

    Users give the server's URL; each protocol has its own convention:
    OpenAI-compatible bases end in ``/v1``; LiteLLM appends ``/v1/messages``
    to an Anthropic base and ``/api/...`` to an Ollama base, so those get the
    server root.
    """
    url = provider.base_url.rstrip("/") if provider.base_url else None
    if url is None:
        return None
    if provider.name == "ollama":
        return _strip_suffix(url, "/api")
    if provider.name == "anthropic":
        return _strip_suffix(url, "/v1")
    return _with_v1(url)


def model_string(provider: ProviderConfig, model: str, *, embedding: bool = False) -> str:
    """The LiteLLM model string for ``model`` served by ``provider``."""
    if provider.name == "ollama":
        return f"ollama/{model}" if embedding else f"ollama_chat/{model}"
    if provider.name == "anthropic":
        return f"anthropic/{model}"
    return f"openai/{model}"  # openai and every OpenAI-compatible local server


def group_name(provider: ProviderConfig, model: str, *, embedding: bool = False) -> str:
    """The proxy Router's model group of ``model`` on ``provider``: ``local/m``, ``ollama/embed/nomic-embed-text``."""
    return f"{provider.name}{'/embed' if embedding else ''}/{model}"


def api_key_env(provider: ProviderConfig) -> str:
    """The environment variable that holds the provider's API key: ``LLM_GATEWAY_OPENAI_API_KEY``."""
    return f"{ENV_PREFIX}{provider.name.upper()}_API_KEY"


def litellm_params(
    provider: ProviderConfig, model: str, *, embedding: bool = False, key_as_reference: bool = False
) -> dict[str, Any]:
    """Router deployment parameters for one (provider, model).

    :param key_as_reference: write a set API key as ``os.environ/LLM_GATEWAY_<P>_API_KEY``
        (what a LiteLLM Proxy config file wants) instead of its value.
    """
    params: dict[str, Any] = {
        "model": model_string(provider, model, embedding=embedding),
        "timeout": provider.timeout,
        "stream_timeout": provider.timeout,
    }
    base = api_base(provider)
    if base is not None:
        params["api_base"] = base
    key = provider.api_key.get_secret_value() if provider.api_key else None
    if key:
        params["api_key"] = f"os.environ/{api_key_env(provider)}" if key_as_reference else key
    elif provider.name != "ollama" and base is not None:
        params["api_key"] = NO_KEY
    return params
