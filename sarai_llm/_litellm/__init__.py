"""The adapter to LiteLLM: the only module of sarai_llm that imports it (seconds and ~200 MB: the
gateway imports it on the first cache miss). One request per attempt to ``litellm.acompletion`` /
``litellm.aembedding`` (retries, fallbacks and cooldowns are the gateway's: README, "Design decision"),
with each (provider, model)'s parameters from :mod:`sarai_llm._providers`; LiteLLM's answers as plain
values (text, tool calls, reasoning, usage); :func:`cost_usd`; and :func:`map_exception`, where
LiteLLM / openai / httpx errors become :class:`~sarai_llm.errors.ProviderError` subclasses.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import math
import os
import uuid
import warnings
from collections.abc import AsyncGenerator, Mapping
from typing import TYPE_CHECKING, Any

from .._adapter import Attempt, Completion, Embeddings, StreamState, no_usage
from .._log import log
from .._providers import litellm_params, model_string
from ..errors import ProviderResponseError, redact

if TYPE_CHECKING:
    from ..config import ProviderConfig

# LiteLLM fetches its price map at import unless told not to (offline: 5-10 s). A user's value wins.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import litellm  # noqa: E402
from litellm.litellm_core_utils.logging_worker import GLOBAL_LOGGING_WORKER  # noqa: E402

from . import _direct, _embed  # noqa: E402
from ._errors import map_exception, mapped  # noqa: E402

__all__ = ["LiteLLMAdapter", "close_clients", "cost_usd", "map_exception"]


def _quiet_litellm() -> None:
    """Silence LiteLLM (no banner, no stderr handlers; records go to ``sarai_llm.litellm``, redacted).
    The one place where ``litellm.*`` globals change."""
    # Pydantic warns about a TypedDict of LiteLLM's at the first stream; not the user's business.
    warnings.filterwarnings(
        "ignore", message=r"Items? .* (is|are) using the .ReadOnly. qualifier", category=UserWarning
    )
    litellm.suppress_debug_info = True
    # LiteLLM's OpenAI embedding path turns max_retries=0 into the SDK's default of 2
    # (`max_retries or DEFAULT_MAX_RETRIES`): 3 requests per attempt behind the gateway's back.
    litellm.DEFAULT_MAX_RETRIES = 0  # type: ignore[attr-defined]
    litellm.set_verbose = False  # type: ignore[attr-defined]
    target = logging.getLogger("sarai_llm.litellm")
    for name in ("LiteLLM", "LiteLLM Router", "LiteLLM Proxy"):
        lg = logging.getLogger(name)
        for handler in list(lg.handlers):
            lg.removeHandler(handler)
        lg.addHandler(_Forward(target))
        lg.propagate = False


class _Forward(logging.Handler):
    """Hands LiteLLM's log records to a sarai_llm logger, with secrets redacted."""

    def __init__(self, target: logging.Logger):
        super().__init__()
        self.target = target

    def emit(self, record: logging.LogRecord) -> None:
        if not self.target.isEnabledFor(record.levelno):
            return
        try:
            message = redact(record.getMessage())
        except Exception:  # a malformed LiteLLM record must never break a call
            return
        self.target.log(record.levelno, "%s", message)


_quiet_litellm()


def _static_ollama_lookup() -> None:
    """Make LiteLLM's "is this Ollama model in the price list?" a set lookup.

    LiteLLM 1.110's ``OllamaModelInfo._is_static_ollama_model`` lowercases all ~4,900 price-list keys on
    every call (~1.4 ms), several times per Ollama call once the model is registered (and unregistered,
    LiteLLM instead asks the server with a blocking ``/api/show`` per call). Same answer, with the
    lowercase keys kept until the price list changes size. The original is kept for the contract test.
    """
    from litellm.llms.ollama.common_utils import OllamaModelInfo

    original, keys = OllamaModelInfo._is_static_ollama_model, (-1, frozenset[str]())

    def is_static(model: str) -> bool:
        nonlocal keys
        if keys[0] != len(litellm.model_cost):
            keys = (len(litellm.model_cost), frozenset(key.lower() for key in litellm.model_cost))
        bare = OllamaModelInfo._strip_ollama_model_prefix(model)
        return any(name.lower() in keys[1] for name in (model, bare, f"ollama/{bare}", f"ollama_chat/{bare}"))

    is_static.original = original  # type: ignore[attr-defined]
    OllamaModelInfo._is_static_ollama_model = staticmethod(is_static)  # type: ignore[method-assign]


_static_ollama_lookup()


def _usage(raw: Any) -> dict[str, int]:
    """LiteLLM's usage as the five keys of :class:`~sarai_llm._adapter.Usage` (LiteLLM files
    Anthropic's ``cache_read_input_tokens`` under ``prompt_tokens_details.cached_tokens``)."""
    if raw is None:
        return no_usage()
    prompt, completion = _count(raw, "prompt_tokens"), _count(raw, "completion_tokens")
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": _count(raw, "total_tokens") or prompt + completion,
        "cached_tokens": _count(getattr(raw, "prompt_tokens_details", None), "cached_tokens"),
        "reasoning_tokens": _count(getattr(raw, "completion_tokens_details", None), "reasoning_tokens"),
    }


def _count(raw: Any, name: str) -> int:
    return int(_field(raw, name) or 0)


def _fold_tool_calls(calls: list[dict[str, Any]], slots: dict[int, dict[str, Any]] | None, deltas: Any) -> None:
    """Fold tool-call deltas into ``calls`` (OpenAI's shape) by index (``slots``): ``arguments`` joined,
    id and name from the first delta with them; a new id at a known index starts a new call.
    ``slots=None``: each is a whole call (a message's; an Ollama chunk's, which LiteLLM numbers from 0)."""
    for delta in deltas:
        function, call_id, index = _field(delta, "function"), _field(delta, "id"), _field(delta, "index") or 0
        name, arguments = _field(function, "name"), _field(function, "arguments")
        call = slots.get(index) if slots is not None else None
        if call is None or (call_id and call["id"] and call_id != call["id"]):
            call = {"id": "", "type": "function", "function": {"name": "", "arguments": ""}}
            calls.append(call)
            if slots is not None:
                slots[index] = call
        call["id"] = call["id"] or str(call_id or "")
        call["function"]["name"] = call["function"]["name"] or str(name or "")
        if arguments:
            call["function"]["arguments"] += arguments if isinstance(arguments, str) else json.dumps(arguments)


def _settle(calls: list[dict[str, Any]], reason: str | None) -> str | None:
    """Complete the tool calls (an id, ``"{}"`` for no arguments); the finish reason, ``"tool_calls"``
    when the model called tools and the provider said only "stop" (or nothing)."""
    for call in calls:  # LiteLLM gives an Ollama call without arguments no id
        call["id"] = call["id"] or f"call_{uuid.uuid4().hex[:24]}"
        call["function"]["arguments"] = call["function"]["arguments"] or "{}"
    return "tool_calls" if calls and reason in (None, "stop") else reason


_unpriced: set[str] = set()  # LiteLLM model strings its price list does not know


def cost_usd(
    provider: ProviderConfig, model: str, usage: Mapping[str, Any] | None, *, embedding: bool = False
) -> float:
    """What one answer cost, in US dollars; 0.0 when the price is unknown. Never raises.

    The configuration's prices per token win (:attr:`ProviderConfig.priced`; cached prompt tokens at
    the input price); otherwise free providers (ollama, local) cost 0, and the others are priced by
    LiteLLM's bundled price list (never fetched), cached prompt tokens at its cache-read price.
    """
    if not usage:
        return 0.0
    prompt = int(usage.get("prompt_tokens") or 0)
    completion = int(usage.get("completion_tokens") or 0)
    if provider.priced:
        return prompt * (provider.input_cost_per_token or 0.0) + completion * (provider.output_cost_per_token or 0.0)
    if provider.spec.free or not (prompt or completion):
        return 0.0
    name = model_string(provider, model, embedding=embedding)
    if name in _unpriced:
        return 0.0
    cached = int(usage.get("cached_tokens") or 0)  # priced at the cache-read price (prompt_tokens include them)
    try:
        prompt_cost, completion_cost = litellm.cost_per_token(
            model=name,
            prompt_tokens=prompt,
            completion_tokens=completion,
            call_type="embedding" if embedding else "completion",
            usage_object=litellm.Usage(prompt, completion, prompt_tokens_details={"cached_tokens": cached})
            if cached
            else None,
        )
        total = float(prompt_cost) + float(completion_cost)
    except Exception:  # not in the price list (a compatible server's own model name), or malformed
        _unpriced.add(name)
        return 0.0
    return total if math.isfinite(total) and total > 0.0 else 0.0


def _register_price(provider: ProviderConfig, name: str, embedding: bool) -> None:
    """Give LiteLLM a price for a model its price list lacks (a local model, usually).

    LiteLLM prices every answer it logs: a failed search per call (~0.3 ms) for an unlisted model, and
    for an unlisted Ollama model a blocking ``POST /api/show`` from inside the event loop, so Ollama
    models are always registered. sarai_llm's own costs are :func:`cost_usd`'s.
    """
    if not provider.priced and provider.name != "ollama" and _listed(name):
        return
    prices = {"input_cost_per_token": provider.input_cost_per_token or 0.0}
    prices["output_cost_per_token"] = provider.output_cost_per_token or 0.0
    mode = "embedding" if embedding else "chat"
    litellm.register_model({name: {**prices, "litellm_provider": provider.spec.litellm_provider, "mode": mode}})
    if not provider.priced:  # priced at 0 now: cost_usd need not ask LiteLLM (~0.2 ms a call)
        _unpriced.add(name)


def _listed(name: str) -> bool:
    """Whether LiteLLM's price list prices ``name`` (``openai/gpt-4o-mini`` is listed as ``gpt-4o-mini``)."""
    try:
        info = litellm.get_model_info(name)
    except Exception:  # LiteLLM raises for a model it does not know
        return False
    return info.get("input_cost_per_token") is not None


def _served_model(response: Any, fallback: str) -> str:
    hidden = getattr(response, "_hidden_params", None) or {}
    return str(hidden.get("provider_response_model") or getattr(response, "model", None) or fallback)


async def close_clients() -> None:
    """Close the HTTP clients LiteLLM opened on the running event loop, and forget them.

    LiteLLM's process-wide client cache keys each client by its event loop's token; a client can only
    be closed on its own loop, so those of other loops are left alone. New clients open on demand.
    """
    cache = litellm.in_memory_llm_clients_cache
    this_loop = cache.update_cache_key_with_event_loop("")  # "-<token>"
    for key in [k for k in list(cache.cache_dict) if k.endswith(this_loop)]:
        client = cache.cache_dict.get(key)
        cache.delete_cache(key)
        await _close(client)
    # Ollama embeddings and Anthropic streams use a module-level client, on the loop that first needed it.
    await _close(vars(litellm).pop("module_level_aclient", None))
    await _direct.close_clients()


async def _close(client: Any) -> None:
    """Close one of LiteLLM's clients or streams, whatever its kind; never raises."""
    close = getattr(client, "aclose", None) or getattr(client, "close", None)
    if close is None:
        return
    try:
        result = close()
        if inspect.isawaitable(result):
            await result
    except Exception:  # closing must never fail a shutdown, nor a broken stream's end
        log.debug("closing a LiteLLM client failed", exc_info=True)


_orphans: set[asyncio.Task[Any]] = set()


def _release_logging_worker() -> None:
    """Cancel LiteLLM's logging task on its own loop before a call from another loop replaces it.

    LiteLLM runs one logging task on the loop that first called it; a call from another loop (the
    sync API's, after a notebook cell's) starts a new one and drops the old task, which the collector
    then destroys while pending ("Task was destroyed but it is pending!"). tests/test_notebook.py.
    """
    task = getattr(GLOBAL_LOGGING_WORKER, "_worker_task", None)
    if not isinstance(task, asyncio.Task) or task.done() or task.get_loop() is asyncio.get_running_loop():
        return
    _orphans.add(task)
    task.add_done_callback(_orphans.discard)
    if not task.get_loop().is_closed():
        task.get_loop().call_soon_threadsafe(task.cancel)


class LiteLLMAdapter:
    """The :class:`~sarai_llm._adapter.Adapter` over ``litellm.acompletion`` / ``litellm.aembedding``.

    Each (provider, model)'s call parameters are made on first use: LiteLLM model string, ``api_base``,
    key, the provider's ``timeout``, ``max_retries=0`` (retries are the gateway's).
    """

    def __init__(self, direct: bool = True) -> None:
        self._targets: dict[tuple[int, str, bool], tuple[ProviderConfig, dict[str, Any]]] = {}
        self._direct = direct
        """Whether requests the direct path serves take it (:mod:`._direct`); False: all go to acompletion."""

    def _target(self, provider: ProviderConfig, model: str, embedding: bool) -> dict[str, Any]:
        _release_logging_worker()
        key = (id(provider), model, embedding)  # a deployment, or a reloaded provider, is another object
        found = self._targets.get(key)
        if found is None or found[0] is not provider:
            target = litellm_params(provider, model, embedding=embedding)
            del target["stream_timeout"]  # a Router setting; a bare call's timeout covers streams
            target["max_retries"] = 0  # else the OpenAI SDK retries twice behind the gateway's back
            _register_price(provider, target["model"], embedding)
            found = self._targets[key] = (provider, target)
        return found[1]

    async def complete(self, attempt: Attempt) -> Completion:
        """One chat request."""
        provider, model = attempt.provider, attempt.model
        target, failure = self._target(provider, model, False), None
        direct = self._direct and await _direct.plan(
            target, provider.spec.chat_prefix, attempt.params, attempt.messages
        )
        try:
            if direct:
                response = direct.response(await direct.post())
            else:
                response = await litellm.acompletion(messages=list(attempt.messages), **{**target, **attempt.params})
            choice = response.choices[0]
            message = choice.message
            calls: list[dict[str, Any]] = []
            _fold_tool_calls(calls, None, getattr(message, "tool_calls", None) or ())
            usage = _usage(getattr(response, "usage", None))
            served = _served_model(response, model)
        except Exception as exc:
            failure = mapped(direct.litellm_error(exc) if direct else exc, provider, model)
        if failure is not None:  # raised out here: no implicit context with LiteLLM's text
            raise failure
        # LiteLLM deletes reasoning_content when None: getattr would then cost ~1.6 us, vars() a dict read.
        text, reasoning = message.content, vars(message).get("reasoning_content")
        finish, cost = _settle(calls, choice.finish_reason), cost_usd(provider, model, usage)
        thought = reasoning if isinstance(reasoning, str) and reasoning else None
        upstream = direct.upstream_s if direct else None
        return Completion(text if isinstance(text, str) else "", served, usage, finish, cost, calls, thought, upstream)

    async def stream(self, attempt: Attempt, state: StreamState) -> AsyncGenerator[str, None]:
        """The text pieces of one streamed chat, recording model, usage and finish reason in ``state``."""
        provider, model = attempt.provider, attempt.model
        target = self._target(provider, model, False)
        # Usage on every stream: without it LiteLLM reports none for Ollama (its cost was the price-list
        # scan _static_ollama_lookup removed: +0.7 ms a stream now, against a loopback stub).
        usage_on = {"stream_options": {"include_usage": True}}
        stream: Any = None
        text, failure = False, None
        slots: dict[int, dict[str, Any]] | None = None if provider.name == "ollama" else {}  # tool calls by index
        params = {**usage_on, **attempt.params}
        direct = self._direct and await _direct.plan(
            target, provider.spec.chat_prefix, params, attempt.messages, stream=True
        )
        try:
            if direct:
                stream = direct.chunks(await direct.post(stream=True))
            else:
                stream = await litellm.acompletion(messages=list(attempt.messages), stream=True, **{**target, **params})
            async for chunk in stream:
                if not state.model and getattr(chunk, "model", None):
                    state.model = str(chunk.model)
                choices = chunk.choices
                choice = choices[0] if choices else None
                if choice is None or choice.finish_reason:
                    # The closing chunks carry the finish reason and the usage. Only they are asked for
                    # usage: on LiteLLM's chunks a missing attribute costs ~2 us, more than a chunk's work.
                    usage = getattr(chunk, "usage", None)
                    if usage is not None and getattr(usage, "total_tokens", None):
                        state.usage = _usage(usage)
                    if choice is None:
                        continue
                    state.finish_reason = choice.finish_reason
                # One dict read each: LiteLLM keeps content and tool_calls as pydantic extras, and
                # reasoning_content as a field it deletes when None (getattr of it then costs ~1.6 us).
                delta = choice.delta
                extra = delta.model_extra or {}
                calls, thought = extra.get("tool_calls"), vars(delta).get("reasoning_content")
                if calls:
                    _fold_tool_calls(state.tool_calls, slots, calls)
                if thought:
                    state.reasoning_content = (state.reasoning_content or "") + thought
                piece = extra.get("content")
                if piece:
                    text = True
                    yield piece
        except Exception as exc:
            failure = mapped(direct.litellm_error(exc) if direct else exc, provider, model)
        finally:  # also when the consumer stops early: the connection is released now
            await _close(stream)
            state.upstream_s = direct.upstream_s if direct else None
        if failure is not None:
            raise failure
        # LiteLLM adds a closing "stop" chunk of its own; received_finish_reason is the provider's.
        finished = direct.finish if direct else getattr(stream, "received_finish_reason", "")
        if not text and not state.tool_calls and finished is None:
            raise ProviderResponseError(provider.name, "the stream ended with no text and no finish_reason")
        if direct and not state.usage:  # LiteLLM's stream wrapper counts the tokens then
            state.usage = _usage(direct.counted_usage()) if direct.received else {}
        state.finish_reason = _settle(state.tool_calls, state.finish_reason)
        state.cost_usd = cost_usd(provider, model, state.usage)

    async def embed(self, attempt: Attempt) -> Embeddings:
        """Embed ``attempt.texts`` in one request; vectors in input order, with usage and cost."""
        provider, model, texts = attempt.provider, attempt.model, attempt.texts
        target, failure, upstream = self._target(provider, model, True), None, None
        prefix = provider.spec.embed_prefix or ""
        try:
            if self._direct and (served := await _embed.embed(target, prefix, attempt.params, texts)):
                response, upstream = served
            else:
                response = await litellm.aembedding(input=texts, **{**target, **attempt.params})
            rows = sorted(response.data, key=lambda item: _field(item, "index"))
            vectors = [[float(x) for x in _field(item, "embedding")] for item in rows]
            usage = _usage(getattr(response, "usage", None))
        except Exception as exc:
            failure = mapped(exc, provider, model, embedding=True)
        if failure is not None:
            raise failure
        if len(vectors) != len(texts):
            raise ProviderResponseError(provider.name, f"asked for {len(texts)} embeddings, got {len(vectors)}")
        return Embeddings(vectors, usage, cost_usd(provider, model, usage, embedding=True), upstream)

    async def close_connections(self) -> None:
        """Close LiteLLM's connections of the running event loop (:func:`close_clients`)."""
        await close_clients()


def _field(item: Any, name: str) -> Any:
    """``item[name]`` or ``item.name``; None when missing."""
    return item.get(name) if isinstance(item, dict) else getattr(item, name, None)  # not Mapping: ~0.3 us
