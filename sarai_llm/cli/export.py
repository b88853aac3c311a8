"""The effective configuration as a LiteLLM Proxy ``config.yaml`` (``sarai-llm export litellm-proxy``):
the same providers (custom ones too), deployments (entries of one ``model_name``), models, prices, fallback
chains, retries and cache. Secrets are ``os.environ/NAME`` references (:func:`proxy_environment`); clients
reach the proxy as the ``local`` provider (docs/scaling.md)."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import SplitResult, unquote, urlsplit

import yaml

from .._providers import ENV_PREFIX, PROVIDERS, api_key_env, group_name, litellm_params, url_secrets
from ..config import GatewayConfig, ProviderConfig, ProviderSettings
from ..errors import ConfigError, NoProvidersError

__all__ = ["MASTER_KEY_ENV", "PROXY_CACHE_NAMESPACE"]
__all__ += ["export_litellm_proxy", "proxy_environment", "render_litellm_proxy_yaml"]

PROXY_CACHE_NAMESPACE = "sarai_llm_proxy"
"""Key namespace of the proxy's own Redis cache (LiteLLM's keys differ from the gateways')."""
MASTER_KEY_ENV = "LITELLM_MASTER_KEY"
"""The proxy's master key (a secret): clients send it as ``LLM_GATEWAY_LOCAL_API_KEY``."""
# The gateway's retry policy (sarai_llm.retry) in a Router's terms: retrying cannot fix these.
_RETRY_POLICY = {f"{e}ErrorRetries": 0 for e in ("Authentication", "BadRequest", "NotFound", "ContentPolicyViolation")}


def _exported_providers(config: GatewayConfig) -> list[ProviderConfig]:
    """The chain's usable providers, then every other usable one defined in configuration or set explicitly."""
    explicit = {field for field, source in config.explain().items() if source != "default"}
    fields = ProviderSettings.model_fields
    defined = [n for n in config.provider_names if n not in PROVIDERS or explicit & {f"{n}_{k}" for k in fields}]
    chosen = [p for p in map(config.provider, dict.fromkeys([*config.chain, *defined])) if p.configured]
    if not chosen:
        missing = "; ".join(f"{n}: set {' or '.join(config.provider(n).missing_settings)}" for n in config.chain)
        raise NoProvidersError(f"No providers initialized ({missing}): nothing to export")
    return chosen


def _model(p: ProviderConfig, embedding: bool) -> str:
    """The model ``p`` serves for chats or for embeddings; "" for none."""
    return ((p.embed_model if p.spec.can_embed else None) if embedding else p.model) or ""


def _servers(p: ProviderConfig) -> list[tuple[ProviderConfig, str | None, str | None]]:
    """Where ``p``'s calls go (itself, or each of its deployments), with the variables that hold its API key and its
    base URL on the proxy host: None for no key, for a URL without credentials (written as it is)."""
    servers = []
    for i, server in enumerate(p.deployments, 1) if p.deployments else [(0, p)]:
        prefix = f"{ENV_PREFIX}{p.name.upper()}_{f'DEPLOYMENT_{i}_' if i else ''}"
        key = None if server.api_key is None else api_key_env(p) if server.api_key == p.api_key else f"{prefix}API_KEY"
        servers.append((server, key, f"{prefix}BASE_URL" if url_secrets(server.base_url) else None))
    return servers


def _redis(config: GatewayConfig) -> tuple[SplitResult, dict[str, str | None]]:
    """The Redis URL's parts, and its variables: host and port with values, user and password (secrets) None."""
    assert config.redis_url is not None
    parts = urlsplit(config.redis_url.get_secret_value())
    env: dict[str, str | None] = {"REDIS_HOST": parts.hostname or "localhost", "REDIS_PORT": str(parts.port or 6379)}
    secrets = {"REDIS_USERNAME": bool(parts.username), "REDIS_PASSWORD": parts.password is not None}
    return parts, env | {name: None for name, present in secrets.items() if present}


def _cache_settings(config: GatewayConfig) -> dict[str, Any]:
    if not config.cache_enabled:
        return {"cache": False}
    params: dict[str, Any] = {"type": "local"}
    if config.cache_backend == "redis":
        parts, env = _redis(config)
        if parts.scheme.lower() not in ("redis", "rediss"):
            needs = "needs a redis:// or rediss:// URL (a host and port), not a unix socket"
            raise ConfigError(f"Invalid configuration: LLM_GATEWAY_REDIS_URL: the LiteLLM Proxy export {needs}")
        params = {"type": "redis", **{name.removeprefix("REDIS_").lower(): f"os.environ/{name}" for name in env}}
        params |= {"db": int(db)} if (db := parts.path.strip("/")) and db != "0" else {}
        params |= {"ssl": True} if parts.scheme.lower() == "rediss" else {}
        params["namespace"] = ":".join(filter(None, (PROXY_CACHE_NAMESPACE, config.cache_namespace)))
    return {"cache": True, "cache_params": {**params, "ttl": config.cache_ttl}}


def export_litellm_proxy(config: GatewayConfig) -> dict[str, Any]:
    """The LiteLLM Proxy configuration equivalent to ``config``, as a dict ready for YAML.

    :raises NoProvidersError: no provider of ``config`` is usable.
    :raises ConfigError: the Redis URL is a unix socket (the proxy's cache needs a host and port).
    """
    providers = _exported_providers(config)
    model_list: list[dict[str, Any]] = []
    fallbacks: list[dict[str, list[str]]] = []
    for embedding, mode in ((False, "chat"), (True, "embedding")):
        groups = {p.name: group_name(p, m, embedding=embedding) for p in providers if (m := _model(p, embedding))}
        for p in (p for p in providers if p.name in groups):
            for server, key_env, url_env in _servers(p):  # several deployments: entries of one model_name
                params = litellm_params(server, _model(server, embedding), embedding=embedding, key_as_reference=True)
                params |= {"api_key": f"os.environ/{key_env}"} if key_env else {}
                # A URL with credentials is a secret, as the key (the proxy then gets it as set: no /v1 added).
                params |= {"api_base": f"os.environ/{url_env}"} if url_env else {}
                if server.priced or server.spec.free:  # as the gateway prices; spares the proxy its price lookups
                    params |= {k: getattr(server, k) or 0.0 for k in ("input_cost_per_token", "output_cost_per_token")}
                params |= {"weight": server.weight} if p.deployments else {}
                params |= {"max_parallel_requests": server.max_concurrent} if server.max_concurrent else {}
                entry = {"model_name": groups[p.name], "litellm_params": params, "model_info": {"mode": mode}}
                model_list.append(entry)
        for head in groups:  # as the gateway walks: the provider asked for, then the chain's fallbacks
            rest = [groups[n] for n in config.chain[1:] if n != head and n in groups]
            fallbacks += [{groups[head]: rest}] if rest else []
    router_settings: dict[str, Any] = {
        "num_retries": config.num_retries,
        "timeout": config.deadline if config.deadline is not None else max(p.timeout for p in providers),
        "allowed_fails": config.allowed_fails,
        "cooldown_time": config.cooldown_time,
        "retry_policy": dict(_RETRY_POLICY),
        **({"fallbacks": fallbacks} if fallbacks else {}),
        # A deployment that fails: the others of its provider (by weight) before the next provider, as the gateway.
        **({"enable_weighted_failover": True} if any(p.deployments for p in providers) else {}),
    }
    exported = {
        "model_list": model_list,
        "router_settings": router_settings,
        "litellm_settings": _cache_settings(config),
        # The proxy refuses to start without a master key; clients send it as their API key.
        "general_settings": {"master_key": f"os.environ/{MASTER_KEY_ENV}"},
    }
    servers = [s for p in config.providers.values() for s in (p, *p.deployments)]
    secrets = [s.api_key.get_secret_value() for s in servers if s.api_key is not None]
    secrets += [secret for s in servers for secret in url_secrets(s.base_url)]
    if config.redis_url is not None and (password := _redis(config)[0].password):
        secrets += [password, unquote(password)]
    text = json.dumps(exported)
    if any(len(secret) >= 4 and secret in text for secret in secrets):  # a bug, never expected
        raise RuntimeError("refusing to export a secret value into the LiteLLM Proxy config")
    return exported


def proxy_environment(config: GatewayConfig) -> dict[str, str | None]:
    """The environment variables the exported config refers to: name -> value to set on the proxy
    host, or ``None`` for a secret (set it to the same value the gateways use)."""
    env: dict[str, str | None] = {MASTER_KEY_ENV: None}
    env.update((name, None) for p in _exported_providers(config) for s in _servers(p) for name in s[1:] if name)
    redis = config.cache_enabled and config.cache_backend == "redis" and config.redis_url is not None
    return env | _redis(config)[1] if redis else env


def render_litellm_proxy_yaml(config: GatewayConfig) -> str:
    """:func:`export_litellm_proxy` as YAML text, with a header naming the variables to set."""
    lines = [
        "# LiteLLM Proxy config exported by `sarai-llm export litellm-proxy`.",
        "# Run: litellm --config this-file.yaml --port 4000",
        "# Clients: LLM_GATEWAY_PRIMARY_PROVIDER=local LLM_GATEWAY_LOCAL_BASE_URL=http://<proxy-host>:4000",
        f"#          LLM_GATEWAY_LOCAL_MODEL=<a model_name below> LLM_GATEWAY_LOCAL_API_KEY=<{MASTER_KEY_ENV}>",
        "# Set on the proxy host (secrets: the values the gateways use; a *_BASE_URL as LiteLLM's whole api_base;",
        "# <P>_DEPLOYMENT_<i>_*: the i-th of provider P's deployments):",
    ]
    lines += [f"#   {n}={'<secret>' if v is None else v}" for n, v in proxy_environment(config).items()]
    body = yaml.safe_dump(export_litellm_proxy(config), sort_keys=False, default_flow_style=False, allow_unicode=True)
    return "\n".join(lines) + "\n" + body
