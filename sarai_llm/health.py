"""Provider health checks: the cheapest real request each provider offers.

A model listing spends no tokens: Ollama's ``GET /api/tags``, and
``GET /v1/models`` for OpenAI, Anthropic and OpenAI-compatible servers.
Every provider is checked concurrently, each bounded by a timeout. This is a
GET, not a provider protocol: it needs no LiteLLM, so a health check never
pays for importing it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any

from .config import ProviderConfig
from .errors import redact
from .mapping import api_base

__all__ = ["check_providers", "probe_request"]

# Where the providers live when no base URL is configured (LiteLLM's defaults).
_DEFAULT_BASES = {"openai": "https://api.openai.com/v1", "anthropic": "https://api.anthropic.com"}


def probe_request(provider: ProviderConfig) -> tuple[str, dict[str, str]]:
    """The URL and headers of the health probe for ``provider``.

    The base URL is normalised exactly as for LiteLLM (:func:`~sarai_llm.mapping.api_base`).
    """
    base = api_base(provider) or _DEFAULT_BASES.get(provider.name, "")
    key = provider.api_key.get_secret_value() if provider.api_key else None
    headers: dict[str, str] = {}
    if provider.name == "ollama":
        return f"{base}/api/tags", headers
    if provider.name == "anthropic":
        headers["anthropic-version"] = "2023-06-01"
        if key:
            headers["x-api-key"] = key
        return f"{base}/v1/models", headers
    if key:
        headers["Authorization"] = f"Bearer {key}"
    return f"{base}/models", headers


async def _check(client: Any, provider: ProviderConfig, timeout: float) -> dict[str, Any]:
    url, headers = probe_request(provider)
    started = time.perf_counter()
    error: str | None = None
    try:
        response = await asyncio.wait_for(client.get(url, headers=headers), timeout)
        if response.status_code >= 400:
            error = f"HTTP {response.status_code} from {url}"
    except TimeoutError:
        error = f"no answer from {url} within {timeout:g} s"
    except Exception as exc:  # any transport failure means "down"
        error = f"{type(exc).__name__}: {redact(str(exc)) or 'failed'} ({url})"
    return {"ok": error is None, "latency_ms": (time.perf_counter() - started) * 1000.0, "error": error}


async def check_providers(providers: Sequence[ProviderConfig], timeout: float) -> dict[str, dict[str, Any]]:
    """Check each provider concurrently, each within ``timeout`` seconds."""
    import httpx

    unique = list({p.name: p for p in providers}.values())
    async with httpx.AsyncClient(timeout=timeout, trust_env=False) as client:
        results = await asyncio.gather(*(_check(client, p, timeout) for p in unique))
    return {p.name: r for p, r in zip(unique, results, strict=True)}
