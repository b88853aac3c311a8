"""Embeddings on the direct path (:mod:`._direct`): OpenAI's and Ollama's without ``aembedding``."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import litellm
from litellm.litellm_core_utils.llm_response_utils.convert_dict_to_response import convert_to_model_response_object
from litellm.litellm_core_utils.url_utils import ensure_api_route
from litellm.llms.ollama.completion import handler as ollama_embedding
from litellm.llms.openai.common_utils import OpenAIError
from litellm.main import _get_encoding
from litellm.types.utils import EmbeddingResponse

from ._direct import Plan, chat_config, sdk_headers

__all__ = ["embed"]


async def embed(target: Mapping[str, Any], prefix: str, params: Mapping[str, Any], texts: list[str]) -> Any:
    """An embedding as ``aembedding`` makes it, errors mapped as it maps them; None when aembedding must serve it
    (another provider, parameters, an OpenAI request without a key). Returns (LiteLLM's EmbeddingResponse,
    seconds waited for the upstream). Ollama's with LiteLLM's own embedding functions; OpenAI's as LiteLLM's
    OpenAI handler reads the openai SDK's answer (the SDK's part is one POST of ``{model, input}``)."""
    if params or not all(type(text) is str for text in texts) or prefix not in ("ollama", "openai"):
        return None
    model, api_key, api_base = str(target["model"]).split("/", 1)[1], target.get("api_key"), target.get("api_base")
    if prefix == "ollama":
        return await _embed_ollama(model, api_key, api_base or "http://localhost:11434", texts, target.get("timeout"))
    if not api_key or sdk_headers():  # without one the openai SDK refuses to start: aembedding says so
        return None
    url = f"{(api_base or 'https://api.openai.com/v1').rstrip('/')}/embeddings"  # as the SDK joins it
    headers = {"Authorization": f"Bearer {api_key}", "Content-Type": "application/json"}
    body = {"model": model, "input": texts}
    request = Plan("openai", model, chat_config("openai", model), url, headers, body, {}, {}, [], target.get("timeout"))
    request.embedding = True
    try:
        raw = await request.post()
        answer = request.json(raw)
        if not isinstance(answer, dict):  # the openai SDK hands it on as it is; LiteLLM's handler then fails so
            raise OpenAIError(500, f"{type(answer).__name__!r} object has no attribute 'model_dump'")
        answer.setdefault("data", None)  # the openai SDK's model of it has every field, None when missing
        response = convert_to_model_response_object(answer, EmbeddingResponse(), response_type="embedding")
    except Exception as exc:  # LiteLLM's exception, ``exc`` its cause
        raise request.litellm_error(exc)  # noqa: B904
    return response, request.upstream_s


async def _embed_ollama(model: str, api_key: Any, api_base: str, texts: list[str], timeout: Any) -> Any:
    data = ollama_embedding._prepare_ollama_embedding_payload(model, texts, {})
    headers = dict(ollama_embedding._ollama_embedding_headers(api_key, None))
    url, started = ensure_api_route(api_base, "api/embed"), time.perf_counter()
    try:  # on the client LiteLLM's functions use (its module-level one)
        raw = await litellm.module_level_aclient.post(url, json=data, headers=headers, timeout=timeout)
        upstream = time.perf_counter() - started
        response = ollama_embedding._process_ollama_embedding_response(
            raw.json(), texts, model, EmbeddingResponse(), None, _get_encoding()
        )
    except Exception as exc:  # as aembedding maps it (exception_type raises, mostly)
        raise litellm.exception_type(model=model, original_exception=exc, custom_llm_provider="ollama")  # noqa: B904
    return response, upstream
