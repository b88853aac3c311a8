"""Export the effective configuration as a LiteLLM Proxy ``config.yaml``.

For deployments that outgrow an in-process gateway: the same providers,
models, fallbacks, retries and cache, served by LiteLLM's own proxy server
(``litellm --config proxy.yaml``). ``sarai-llm export litellm-proxy -o proxy.yaml``
writes it; :func:`export_litellm_proxy` returns it as a dict.

What goes in:

* ``model_list``: one deployment per exported provider and model, with the same
  LiteLLM model string, ``api_base`` normalisation and timeouts as the
  gateway's own calls (:mod:`sarai_llm.mapping`). Model group names are the
  gateway's: ``<provider>/<model>`` for chat, ``<provider>/embed/<model>`` for
  embeddings. Exported providers: the chain (primary and fallbacks), plus any
  other provider with a setting given explicitly, when usable.
* ``router_settings``: ``fallbacks`` for each model group, as the gateway
  walks its chain (a provider asked for by name first, then the configured
  fallbacks in order), ``num_retries``, ``timeout``, ``allowed_fails``,
  ``cooldown_time`` and the gateway's retry policy (:mod:`sarai_llm.retry`:
  no retries of auth, bad request, not found or content policy errors).
* ``litellm_settings``: the response cache. With ``cache_backend=redis``, a
  ``redis`` cache on the same server (its own key namespace,
  ``sarai_llm_proxy``, apart from the gateways' ``sarai_llm:{...}:`` keys); with
  the disk backend, LiteLLM's in-memory cache (a disk directory cannot be
  shared across hosts); ``cache: false`` when caching is off.
* ``general_settings``: ``master_key`` from ``LITELLM_MASTER_KEY`` (the proxy
  refuses to start without one); clients send it as their API key.

Secrets are never written: API keys become ``os.environ/LLM_GATEWAY_<P>_API_KEY``
references, the master key ``os.environ/LITELLM_MASTER_KEY``, and the Redis
host, port, user and password ``os.environ/REDIS_HOST`` (``REDIS_PORT``,
``REDIS_USERNAME``, ``REDIS_PASSWORD``) references, which the proxy resolves
from its environment at start. :func:`proxy_environment` lists
those variables (with the values that are not secret).

Clients then point at the proxy as an OpenAI-compatible server, with the
``local`` provider: ``LLM_GATEWAY_PRIMARY_PROVIDER=local``,
``LLM_GATEWAY_LOCAL_BASE_URL=http://proxy-host:4000``,
``LLM_GATEWAY_LOCAL_MODEL=<a model group>``, ``LLM_GATEWAY_LOCAL_API_KEY=<the master
key>`` (see ``docs/scaling.md``).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote, urlsplit

from .config import PROVIDERS, GatewayConfig, ProviderConfig
from .errors import ConfigError, NoProvidersError
from .mapping import api_key_env, group_name, litellm_params

__all__ = [
    "MASTER_KEY_ENV",
    "PROXY_CACHE_NAMESPACE",
    "export_litellm_proxy",
    "proxy_environment",
    "render_litellm_proxy_yaml",
]

PROXY_CACHE_NAMESPACE = "sarai_llm_proxy"
"""Key namespace of the proxy's own Redis cache (LiteLLM's keys differ from the gateways')."""

MASTER_KEY_ENV = "LITELLM_MASTER_KEY"
"""The proxy's master key (a secret): clients send it as ``LLM_GATEWAY_LOCAL_API_KEY``."""

_CANNOT_EMBED = frozenset({"anthropic"})
# The gateway's retry policy (sarai_llm.retry) in a Router's terms: retrying cannot fix these.
_RETRY_POLICY = {
    "AuthenticationErrorRetries": 0,
    "BadRequestErrorRetries": 0,
    "NotFoundErrorRetries": 0,
    "ContentPolicyViolationErrorRetries": 0,
}


def _exported_providers(config: GatewayConfig) -> list[ProviderConfig]:
    """The chain's usable providers, then every other usable provider set explicitly."""
    explained = config.explain()
    names = list(config.chain)
    for name in PROVIDERS:
        if name not in names and any(
            field.startswith(f"{name}_") and source != "default" for field, source in explained.items()
        ):
            names.append(name)
    chosen = [p for p in (config.provider(n) for n in names) if p.configured]
    if not chosen:
        missing = "; ".join(f"{n}: set {' or '.join(config.provider(n).missing_settings)}" for n in config.chain)
        raise NoProvidersError(f"No providers initialized ({missing}): nothing to export")
    return chosen


def _can_embed(provider: ProviderConfig) -> bool:
    return provider.name not in _CANNOT_EMBED and bool(provider.embed_model)


def _fallbacks(
    config: GatewayConfig, providers: list[ProviderConfig], *, embedding: bool
) -> list[dict[str, list[str]]]:
    """One ``{group: [fallback groups]}`` per model group, in the gateway's chain order."""
    usable = {p.name: p for p in providers if not embedding or _can_embed(p)}

    def group(p: ProviderConfig) -> str:
        model = p.embed_model if embedding else p.model
        assert model is not None
        return group_name(p, model, embedding=embedding)

    result: list[dict[str, list[str]]] = []
    for head in usable.values():
        rest = [usable[n] for n in config.fallback_providers if n != head.name and n in usable]
        if rest:
            result.append({group(head): [group(p) for p in rest]})
    return result


def _redis_cache_params(config: GatewayConfig) -> dict[str, Any]:
    assert config.redis_url is not None
    parts = urlsplit(config.redis_url.get_secret_value())
    if parts.scheme.lower() not in ("redis", "rediss"):
        raise ConfigError(
            "Invalid configuration: LLM_GATEWAY_REDIS_URL: the LiteLLM Proxy export needs a redis:// or "
            "rediss:// URL (a host and port), not a unix socket"
        )
    params: dict[str, Any] = {
        "type": "redis",
        "host": "os.environ/REDIS_HOST",
        "port": "os.environ/REDIS_PORT",
    }
    if parts.username:
        params["username"] = "os.environ/REDIS_USERNAME"
    if parts.password is not None:
        params["password"] = "os.environ/REDIS_PASSWORD"
    db = parts.path.strip("/")
    if db and db != "0":
        params["db"] = int(db)
    if parts.scheme.lower() == "rediss":
        params["ssl"] = True
    return params


def _cache_settings(config: GatewayConfig) -> dict[str, Any]:
    if not config.cache_enabled:
        return {"cache": False}
    if config.cache_backend == "redis":
        params = _redis_cache_params(config)
        namespace = f"{PROXY_CACHE_NAMESPACE}:{config.cache_namespace}" if config.cache_namespace else None
        params["namespace"] = namespace or PROXY_CACHE_NAMESPACE
    else:
        params = {"type": "local"}
    params["ttl"] = config.cache_ttl
    return {"cache": True, "cache_params": params}


def export_litellm_proxy(config: GatewayConfig) -> dict[str, Any]:
    """The LiteLLM Proxy configuration equivalent to ``config``, as a dict ready for YAML.

    :raises NoProvidersError: no provider of ``config`` is usable.
    :raises ConfigError: the Redis URL is a unix socket (the proxy's cache needs a host and port).
    """
    providers = _exported_providers(config)
    model_list: list[dict[str, Any]] = []
    for p in providers:
        assert p.model is not None
        model_list.append(
            {
                "model_name": group_name(p, p.model),
                "litellm_params": litellm_params(p, p.model, key_as_reference=True),
                "model_info": {"mode": "chat"},
            }
        )
    for p in providers:
        if _can_embed(p):
            assert p.embed_model is not None
            model_list.append(
                {
                    "model_name": group_name(p, p.embed_model, embedding=True),
                    "litellm_params": litellm_params(p, p.embed_model, embedding=True, key_as_reference=True),
                    "model_info": {"mode": "embedding"},
                }
            )
    router_settings: dict[str, Any] = {
        "num_retries": config.num_retries,
        "timeout": config.deadline if config.deadline is not None else max(p.timeout for p in providers),
        "allowed_fails": config.allowed_fails,
        "cooldown_time": config.cooldown_time,
        "retry_policy": dict(_RETRY_POLICY),
    }
    fallbacks = _fallbacks(config, providers, embedding=False) + _fallbacks(config, providers, embedding=True)
    if fallbacks:
        router_settings["fallbacks"] = fallbacks
    exported = {
        "model_list": model_list,
        "router_settings": router_settings,
        "litellm_settings": _cache_settings(config),
        # The proxy refuses to start without a master key; clients send it as their API key.
        "general_settings": {"master_key": f"os.environ/{MASTER_KEY_ENV}"},
    }
    _check_no_secret(config, exported)
    return exported


def _secret_values(config: GatewayConfig) -> list[str]:
    values = [p.api_key.get_secret_value() for p in config.providers.values() if p.api_key is not None]
    if config.redis_url is not None:
        parts = urlsplit(config.redis_url.get_secret_value())
        if parts.password:
            values += [parts.password, unquote(parts.password)]
    return [v for v in values if len(v) >= 4]


def _check_no_secret(config: GatewayConfig, exported: dict[str, Any]) -> None:
    import json

    text = json.dumps(exported)
    if any(secret in text for secret in _secret_values(config)):  # a bug, never expected
        raise RuntimeError("refusing to export a secret value into the LiteLLM Proxy config")


def proxy_environment(config: GatewayConfig) -> dict[str, str | None]:
    """The environment variables the exported config refers to.

    :returns: name -> value to set on the proxy host, or ``None`` for a secret
        (set it to the same value the gateways use).
    """
    env: dict[str, str | None] = {MASTER_KEY_ENV: None}
    for p in _exported_providers(config):
        if p.api_key is not None:
            env[api_key_env(p)] = None
    if config.cache_enabled and config.cache_backend == "redis" and config.redis_url is not None:
        parts = urlsplit(config.redis_url.get_secret_value())
        env["REDIS_HOST"] = parts.hostname or "localhost"
        env["REDIS_PORT"] = str(parts.port or 6379)
        if parts.username:
            env["REDIS_USERNAME"] = None
        if parts.password is not None:
            env["REDIS_PASSWORD"] = None
    return env


def render_litellm_proxy_yaml(config: GatewayConfig) -> str:
    """:func:`export_litellm_proxy` as YAML text, with a header naming the variables to set."""
    import yaml

    exported = export_litellm_proxy(config)
    lines = [
        "# LiteLLM Proxy config exported by `sarai-llm export litellm-proxy`.",
        "# Run: litellm --config this-file.yaml --port 4000",
        "# Clients: LLM_GATEWAY_PRIMARY_PROVIDER=local LLM_GATEWAY_LOCAL_BASE_URL=http://<proxy-host>:4000",
        f"#          LLM_GATEWAY_LOCAL_MODEL=<a model_name below> LLM_GATEWAY_LOCAL_API_KEY=<{MASTER_KEY_ENV}>",
    ]
    env = proxy_environment(config)
    if env:
        lines.append("# Set on the proxy host (secrets: the same values the gateways use):")
        for name, value in env.items():
            lines.append(f"#   {name}={value if value is not None else '<secret>'}")
    body = yaml.safe_dump(exported, sort_keys=False, default_flow_style=False, allow_unicode=True)
    return "\n".join(lines) + "\n" + body
