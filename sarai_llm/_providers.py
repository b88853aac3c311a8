"""The providers sarai_llm knows, as data: one :class:`ProviderSpec` row each in :data:`SPECS`, so adding a
provider is one row. Standard library only: the command line imports this module for ``--help``."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import cache, lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from .errors import redact

if TYPE_CHECKING:
    from .config import ProviderConfig
ENV_PREFIX = "LLM_GATEWAY_"  # of every environment variable (and .env entry) sarai_llm reads
NO_KEY = "sk-no-key-required"  # the API key sent where ProviderSpec.placeholder_key says so


@dataclass(frozen=True)
class ProviderSpec:
    """The facts about one provider that code needs; one row of :data:`SPECS`."""

    name: str  # as users write it: ollama
    chat_prefix: str  # LiteLLM model prefix for chat: ollama_chat makes ollama_chat/llama3.2
    embed_prefix: str | None  # LiteLLM model prefix for embeddings; None: the provider cannot embed
    default_model: str  # chat model used when none is configured
    default_embed_model: str | None  # None with can_embed: embeds with the chat model
    litellm_provider: str  # LiteLLM provider name under which configured prices are registered
    default_base_url: str | None = None  # None: LiteLLM's default
    public_base_url: str | None = None  # what the health probe uses when no base URL is set
    key_makes_usable: bool = False  # an API key alone makes it usable (else it needs a server: a base URL)
    placeholder_key: bool = True  # send NO_KEY with a base URL and no key (the openai SDK requires a key)
    free: bool = False  # tokens cost 0 unless prices are configured (a model on your own hardware)
    strip_suffix: str = ""  # dropped from a base URL, which LiteLLM extends itself (anthropic /v1, ollama /api)
    bare_host_path: str = "/v1"  # appended to a base URL without a path (OpenAI-compatible servers use /v1)
    probe_path: str = "/models"  # health probe, after the normalised base: a request that spends no tokens
    # Headers of the probe; {key} is the API key, and a header holding it is sent only when one is set.
    probe_headers: tuple[tuple[str, str], ...] = (("Authorization", "Bearer {key}"),)

    @property
    def can_embed(self) -> bool:
        return self.embed_prefix is not None


# fmt: off
SPECS: dict[str, ProviderSpec] = {spec.name: spec for spec in (
    ProviderSpec(name="ollama", chat_prefix="ollama_chat", embed_prefix="ollama", default_model="llama3.2:latest",
                 default_embed_model="nomic-embed-text", litellm_provider="ollama",
                 default_base_url="http://localhost:11434", placeholder_key=False, free=True,
                 strip_suffix="/api", bare_host_path="", probe_path="/api/tags", probe_headers=()),
    ProviderSpec(name="openai", chat_prefix="openai", embed_prefix="openai", default_model="gpt-4o-mini",
                 default_embed_model="text-embedding-3-small", litellm_provider="openai",
                 public_base_url="https://api.openai.com/v1", key_makes_usable=True),
    ProviderSpec(name="anthropic", chat_prefix="anthropic", embed_prefix=None,
                 default_model="claude-3-5-sonnet-20241022", default_embed_model=None, litellm_provider="anthropic",
                 public_base_url="https://api.anthropic.com", key_makes_usable=True, strip_suffix="/v1",
                 bare_host_path="", probe_path="/v1/models",
                 probe_headers=(("anthropic-version", "2023-06-01"), ("x-api-key", "{key}"))),
    # Any OpenAI-compatible server: llama.cpp, LocalAI, vLLM. Embeds with its chat model unless told otherwise.
    ProviderSpec(name="local", chat_prefix="openai", embed_prefix="openai", default_model="local-model",
                 default_embed_model=None, litellm_provider="openai", default_base_url="http://localhost:8080",
                 free=True),
)}
# fmt: on
PROVIDERS: tuple[str, ...] = tuple(SPECS)  # names of the built-in providers, in table order
_TEMPLATES = {"ollama_chat": SPECS["ollama"], "ollama": SPECS["ollama"], "anthropic": SPECS["anthropic"]}
_GENERIC = ProviderSpec("", "", None, "", None, "", placeholder_key=False, bare_host_path="")


@cache
def litellm_prefixes() -> frozenset[str]:
    """The model-string prefixes LiteLLM routes (``groq``, ``ollama_chat``, ...), from the list kept in step with it."""
    lines = Path(__file__).with_name("litellm_providers.txt").read_text(encoding="utf-8").splitlines()
    return frozenset(line for line in lines if line and not line.startswith("#"))


def custom_spec(name: str, model: str, embed_model: str | None, base_url: str | None) -> ProviderSpec:
    """The row of a provider defined in configuration by LiteLLM model strings (``groq/llama-3.1-8b-instant``):
    the built-in row of the same protocol where there is one (``openai/...`` with a base URL behaves as ``local``,
    without one as ``openai``), else a generic one. Its models are the strings without their prefix."""
    prefix, _, bare = model.partition("/")
    embed_prefix, _, embed_bare = (embed_model or "").partition("/")
    template = SPECS["local" if base_url else "openai"] if prefix == "openai" else _TEMPLATES.get(prefix, _GENERIC)
    return replace(
        template,
        name=name,
        chat_prefix=prefix,
        embed_prefix=embed_prefix or None,
        default_model=bare,
        default_embed_model=embed_bare or None,
        litellm_provider=template.litellm_provider or prefix,
        default_base_url=None,
        free=template.free and base_url is not None,
    )


def api_base(provider: ProviderConfig) -> str | None:
    """LiteLLM's ``api_base`` for the provider's base URL (see ``ProviderSpec.strip_suffix``); ``None``: its default."""
    if not provider.base_url:
        return None
    spec = provider.spec
    url = provider.base_url.rstrip("/").removesuffix(spec.strip_suffix)
    return url + spec.bare_host_path if urlsplit(url).path in ("", "/") else url


def url_secrets(url: str | None) -> list[str]:
    """What :func:`~sarai_llm.errors.redact` must scrub of a URL with credentials (user info, a ``password=`` or
    ``token=`` query value): the whole URL, its ``user:password@``, the password, raw and decoded; else nothing."""
    parts = urlsplit(url or "")
    query = dict(item.partition("=")[::2] for item in parts.query.split("&"))
    found = [p for p in (parts.password, query.get("password"), query.get("token")) if p]
    found += [parts.netloc.rpartition("@")[0] + "@"] if parts.username is not None else []
    return [url, *found, *map(unquote, found)] if url and found else []


def public_url(url: str) -> str:
    """``url`` as shown to people: its user info as ``***`` (``http://***@host:8080/v1``), other secrets redacted."""
    parts = urlsplit(url)
    if "@" in parts.netloc:
        url = parts._replace(netloc="***@" + parts.netloc.rpartition("@")[2]).geturl()
    return redact(url)


def server_name(server: ProviderConfig) -> str:
    """A server (a provider, or one of its deployments) as health, stats and metrics name it: its base URL without
    credentials."""
    return _shown(server.base_url or server.spec.public_base_url or f"{server.spec.chat_prefix} (LiteLLM's URL)")


_shown = lru_cache(maxsize=256)(public_url)  # a few microseconds each, three times an attempt


def model_string(provider: ProviderConfig, model: str, *, embedding: bool = False) -> str:
    """The LiteLLM model string for ``model`` served by ``provider``: ``ollama_chat/llama3.2``."""
    spec = provider.spec
    return f"{spec.embed_prefix if embedding and spec.embed_prefix else spec.chat_prefix}/{model}"


def group_name(provider: ProviderConfig, model: str, *, embedding: bool = False) -> str:
    """The proxy Router's model group of ``model`` on ``provider``: ``local/m``, ``ollama/embed/nomic-embed-text``."""
    return f"{provider.name}{'/embed' if embedding else ''}/{model}"


def api_key_env(provider: ProviderConfig) -> str:
    """The environment variable that holds the provider's API key: ``LLM_GATEWAY_OPENAI_API_KEY``."""
    return f"{ENV_PREFIX}{provider.name.upper()}_API_KEY"


def litellm_params(
    provider: ProviderConfig, model: str, *, embedding: bool = False, key_as_reference: bool = False
) -> dict[str, Any]:
    """Router deployment parameters; ``key_as_reference``: a set key as ``os.environ/LLM_GATEWAY_<P>_API_KEY``."""
    name = model_string(provider, model, embedding=embedding)
    params: dict[str, Any] = {"model": name, "timeout": provider.timeout, "stream_timeout": provider.timeout}
    base = api_base(provider)
    if base is not None:
        params["api_base"] = base
    key = provider.api_key.get_secret_value() if provider.api_key else None
    if key:
        params["api_key"] = f"os.environ/{api_key_env(provider)}" if key_as_reference else key
    elif provider.spec.placeholder_key and base is not None:
        params["api_key"] = NO_KEY
    return params


def probe_request(provider: ProviderConfig) -> tuple[str | None, dict[str, str]]:
    """The URL (``None``: none known) and headers of the health probe for ``provider`` (base URL normalised as by
    :func:`api_base`)."""
    spec = provider.spec
    key = provider.api_key.get_secret_value() if provider.api_key else ""
    headers = {name: value.format(key=key) for name, value in spec.probe_headers if key or "{key}" not in value}
    base = api_base(provider) or spec.public_base_url
    return (base + spec.probe_path if base else None), headers


async def check_providers(providers: Sequence[ProviderConfig], timeout: float) -> dict[str, dict[str, Any]]:
    """Probe each provider concurrently within ``timeout`` seconds: name -> ``{"ok", "latency_ms", "error"}``
    (``ok`` ``None``: no URL to probe is known); a provider with deployments is up when one of them is, and
    its ``"deployments"`` hold each one's result by server."""
    import httpx  # deferred: only health checks pay for it

    async def check(client: httpx.AsyncClient, provider: ProviderConfig) -> dict[str, Any]:
        if not provider.deployments:
            return await probe(client, provider)
        found = await asyncio.gather(*(probe(client, d) for d in provider.deployments))
        servers = {server_name(d): r for d, r in zip(provider.deployments, found, strict=True)}
        up = [r for r in found if r["ok"]]
        error = None if up else "; ".join(f"{s}: {r['error']}" for s, r in servers.items())
        return {"ok": bool(up), "latency_ms": min(r["latency_ms"] for r in up or found), "error": error,
                "deployments": servers}  # fmt: skip

    async def probe(client: httpx.AsyncClient, provider: ProviderConfig) -> dict[str, Any]:
        url, headers = probe_request(provider)
        if url is None:
            why = f"not checked: no base URL to probe ({provider.spec.chat_prefix} uses LiteLLM's)"
            return {"ok": None, "latency_ms": 0.0, "error": why}
        shown = public_url(url)  # the exception's text is redacted: the config registered the URL's credentials
        started = time.perf_counter()
        error: str | None = None
        try:
            response = await asyncio.wait_for(client.get(url, headers=headers), timeout)
            if response.status_code >= 400:
                error = f"HTTP {response.status_code} from {shown}"
        except TimeoutError:
            error = f"no answer from {shown} within {timeout:g} s"
        except Exception as exc:  # any transport failure means "down"
            error = f"{type(exc).__name__}: {redact(str(exc)) or 'failed'} ({shown})"
        return {"ok": error is None, "latency_ms": (time.perf_counter() - started) * 1000.0, "error": error}

    unique = list({p.name: p for p in providers}.values())
    async with httpx.AsyncClient(timeout=timeout, trust_env=False) as client:
        results = await asyncio.gather(*(check(client, p) for p in unique))
    return {p.name: r for p, r in zip(unique, results, strict=True)}
