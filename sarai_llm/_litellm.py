"""The adapter to LiteLLM: the only module of sarai_llm that imports it.

Importing LiteLLM costs seconds and ~200 MB, so the gateway imports this
module on the first cache miss, never at ``import sarai_llm``.

What lives here:

* the call parameters of each (provider, model), built from
  :mod:`sarai_llm.mapping` (a provider's settings as a LiteLLM model string
  and ``api_base``, without LiteLLM) with the provider's timeout;
* one-request calls to ``litellm.acompletion`` and ``litellm.aembedding``;
* normalisation of LiteLLM's responses into plain Python values;
* :func:`cost_usd`, the price of an answer from LiteLLM's bundled price list
  (offline) or the prices per token set in the configuration;
* :func:`map_exception`, the one place where LiteLLM / openai / httpx errors
  become :class:`~sarai_llm.errors.ProviderError` subclasses.

No ``litellm.Router``: the gateway walks the fallback chain, keeps the
cooldowns and retries (:mod:`sarai_llm.retry`) and bounds each call, because
the chain depends on the call (``provider=`` reorders it), every attempt must
be counted exactly, and a stream may fail over only before its first chunk.
With all of that done here, the Router only added ~1 ms of CPU per call
(the README's design decision; bench/RESULTS.md).
"""

from __future__ import annotations

import email.utils
import inspect
import logging
import math
import os
import time
import warnings
from collections.abc import AsyncGenerator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ._log import log
from .config import ProviderConfig
from .errors import (
    ProviderAuthError,
    ProviderConnectionError,
    ProviderError,
    ProviderRateLimitError,
    ProviderResponseError,
    ProviderTimeoutError,
    redact,
)
from .mapping import api_base, litellm_params, model_string  # noqa: F401 - re-exported

# LiteLLM fetches its price map from the network at import unless told not to;
# offline that blocks for 5-10 s. Respect a value the user chose.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import litellm  # noqa: E402
from litellm import exceptions as llm_errors  # noqa: E402


def _quiet_litellm() -> None:
    """Make LiteLLM a quiet library: no banners, its logs routed under ours.

    LiteLLM prints a "Give Feedback / Get Help" banner on errors and attaches
    its own stderr handlers to its loggers. A library must be silent unless
    the user turns logging on, so the banner is switched off and LiteLLM's
    records are re-parented under ``sarai_llm.litellm`` (secrets redacted).
    This is the one place where ``litellm.*`` globals are changed.
    """
    # Pydantic warns about a TypedDict of LiteLLM's at the first stream; not the user's business.
    warnings.filterwarnings(
        "ignore", message=r"Items? .* (is|are) using the .ReadOnly. qualifier", category=UserWarning
    )
    litellm.suppress_debug_info = True
    # LiteLLM's OpenAI embedding path turns max_retries=0 into the SDK's
    # default of 2 (`max_retries or DEFAULT_MAX_RETRIES`): 3 requests per
    # attempt behind the gateway's back. Retries are the gateway's job.
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


# --- settings -> LiteLLM -----------------------------------------------------


# api_base, model_string and litellm_params live in sarai_llm.mapping (no LiteLLM import),
# shared with the LiteLLM Proxy export; re-exported here for existing imports.


# --- results -------------------------------------------------------------------


@dataclass
class Completion:
    """A complete chat answer, normalised from LiteLLM's ModelResponse."""

    content: str
    model: str
    usage: dict[str, int]
    finish_reason: str | None
    cost_usd: float = 0.0


@dataclass
class Embeddings:
    """The vectors of one embedding call (input order) and the usage the provider reported."""

    vectors: list[list[float]]
    usage: dict[str, int]
    cost_usd: float = 0.0


@dataclass
class StreamState:
    """What a stream reported besides its text, filled in as it goes."""

    model: str = ""
    finish_reason: str | None = None
    usage: dict[str, int] = field(default_factory=dict)


def _usage(raw: Any) -> dict[str, int]:
    if raw is None:
        return {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
    prompt = int(getattr(raw, "prompt_tokens", 0) or 0)
    completion = int(getattr(raw, "completion_tokens", 0) or 0)
    total = int(getattr(raw, "total_tokens", 0) or 0) or prompt + completion
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": total}


# --- cost ------------------------------------------------------------------------

# Providers whose models cost nothing unless the configuration prices them. LiteLLM
# is never asked about them: its Ollama pricing asks the Ollama server for model info.
_FREE_PROVIDERS = frozenset({"ollama", "local"})
_unpriced: set[str] = set()  # LiteLLM model strings its price list does not know


def cost_usd(
    provider: ProviderConfig, model: str, usage: Mapping[str, Any] | None, *, embedding: bool = False
) -> float:
    """What one answer cost, in US dollars; 0.0 when the price is unknown.

    The configuration's prices per token win (:attr:`ProviderConfig.priced`);
    otherwise ollama and local cost 0, and openai / anthropic models are priced
    by LiteLLM's price list shipped with the package (``LITELLM_LOCAL_MODEL_COST_MAP``
    is set, so it is never fetched). Never raises.
    """
    if not usage:
        return 0.0
    prompt = int(usage.get("prompt_tokens") or 0)
    completion = int(usage.get("completion_tokens") or 0)
    if provider.priced:
        return prompt * (provider.input_cost_per_token or 0.0) + completion * (provider.output_cost_per_token or 0.0)
    if provider.name in _FREE_PROVIDERS or not (prompt or completion):
        return 0.0
    name = model_string(provider, model, embedding=embedding)
    if name in _unpriced:
        return 0.0
    try:
        prompt_cost, completion_cost = litellm.cost_per_token(
            model=name,
            prompt_tokens=prompt,
            completion_tokens=completion,
            call_type="embedding" if embedding else "completion",
        )
        total = float(prompt_cost) + float(completion_cost)
    except Exception:  # not in the price list (a compatible server's own model name), or malformed
        _unpriced.add(name)
        return 0.0
    return total if math.isfinite(total) and total > 0.0 else 0.0


_LITELLM_PROVIDER = {"ollama": "ollama", "anthropic": "anthropic", "openai": "openai", "local": "openai"}


def _register_price(provider: ProviderConfig, name: str, embedding: bool) -> None:
    """Give LiteLLM a price for a model its price list lacks (a local model, usually).

    LiteLLM prices every answer it logs; for a model missing from its price
    list that is a failed search on every call (~0.3 ms of CPU; with a
    ``None`` price left by a ``litellm.Router`` deployment, ~1 ms twice:
    bench/RESULTS.md). The configured prices are used, else 0. sarai_llm
    computes costs itself (:func:`cost_usd`); this only keeps LiteLLM's own
    bookkeeping cheap.

    Ollama models are always registered: for an Ollama model missing from its
    price list, LiteLLM asks the Ollama server (a blocking ``POST /api/show``
    from inside the event loop) on every call.
    """
    if not provider.priced and provider.name != "ollama" and _listed(name):
        return
    litellm.register_model(
        {
            name: {
                "input_cost_per_token": provider.input_cost_per_token or 0.0,
                "output_cost_per_token": provider.output_cost_per_token or 0.0,
                "litellm_provider": _LITELLM_PROVIDER[provider.name],
                "mode": "embedding" if embedding else "chat",
            }
        }
    )


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


# --- the adapter ---------------------------------------------------------------


async def close_clients() -> None:
    """Close the HTTP clients LiteLLM opened on the running event loop, and forget them.

    LiteLLM keeps its clients in one process-wide cache, each under a key
    ending with its event loop's token; a client can only be closed on its own
    loop, so those of other loops are left alone. New clients open on demand.
    """
    cache = litellm.in_memory_llm_clients_cache
    this_loop = cache.update_cache_key_with_event_loop("")  # "-<token>"
    for key in [k for k in list(cache.cache_dict) if k.endswith(this_loop)]:
        client = cache.cache_dict.get(key)
        cache.delete_cache(key)
        await _close(client)
    # Ollama embeddings and Anthropic streams use a module-level client,
    # opened on the loop that first needed it (an application has one).
    await _close(vars(litellm).pop("module_level_aclient", None))


async def _close(client: Any) -> None:
    """Close one of LiteLLM's clients, whatever its kind; never raises."""
    close = getattr(client, "aclose", None) or getattr(client, "close", None)
    if close is None:
        return
    try:
        result = close()
        if inspect.isawaitable(result):
            await result
    except Exception:  # closing must never fail a shutdown
        log.debug("closing a LiteLLM client failed", exc_info=True)


class LiteLLMAdapter:
    """The calls of one gateway to ``litellm.acompletion`` / ``litellm.aembedding``.

    Each (provider, model) becomes one set of call parameters, made on first
    use: LiteLLM model string, ``api_base``, key, the provider's ``timeout``,
    and ``max_retries=0`` (retries are the gateway's: :mod:`sarai_llm.retry`).
    One call here is one request upstream.
    """

    def __init__(self) -> None:
        self._targets: dict[tuple[str, str, bool], dict[str, Any]] = {}

    def _target(self, provider: ProviderConfig, model: str, embedding: bool) -> dict[str, Any]:
        """LiteLLM's call parameters for ``model`` on ``provider`` (made once)."""
        key = (provider.name, model, embedding)
        target = self._targets.get(key)
        if target is None:
            target = litellm_params(provider, model, embedding=embedding)
            del target["stream_timeout"]  # a Router setting; a bare call's timeout covers streams
            target["max_retries"] = 0  # else the OpenAI SDK retries twice behind the gateway's back
            _register_price(provider, target["model"], embedding)
            self._targets[key] = target
        return target

    async def complete(
        self, provider: ProviderConfig, model: str, messages: Sequence[Mapping[str, Any]], params: dict[str, Any]
    ) -> Completion:
        """One chat attempt on one provider; raises :class:`ProviderError`."""
        target = self._target(provider, model, False)
        try:
            response = await litellm.acompletion(messages=list(messages), **{**target, **params})
            choice = response.choices[0]
            content = choice.message.content
            usage = _usage(getattr(response, "usage", None))
            answer = Completion(
                content=content if isinstance(content, str) else "",
                model=_served_model(response, model),
                usage=usage,
                finish_reason=choice.finish_reason,
            )
        except Exception as exc:
            raise map_exception(exc, provider.name) from exc
        answer.cost_usd = cost_usd(provider, model, usage)
        return answer

    @staticmethod
    def cost(
        provider: ProviderConfig, model: str, usage: Mapping[str, Any] | None, *, embedding: bool = False
    ) -> float:
        """:func:`cost_usd` of an answer of ``model`` on ``provider`` (streams)."""
        return cost_usd(provider, model, usage, embedding=embedding)

    async def open_stream(
        self,
        provider: ProviderConfig,
        model: str,
        messages: Sequence[Mapping[str, Any]],
        params: dict[str, Any],
    ) -> Any:
        """Open a stream on one provider; raises :class:`ProviderError`."""
        target = self._target(provider, model, False)
        extra: dict[str, Any] = {}
        if provider.name != "ollama":
            extra["stream_options"] = {"include_usage": True}
        try:
            return await litellm.acompletion(messages=list(messages), stream=True, **{**target, **extra, **params})
        except Exception as exc:
            raise map_exception(exc, provider.name) from exc

    @staticmethod
    async def iterate_stream(stream: Any, provider: str, state: StreamState) -> AsyncGenerator[str, None]:
        """Yield the text pieces of an open stream, recording model, usage and finish."""
        try:
            async for chunk in stream:
                if not state.model and getattr(chunk, "model", None):
                    state.model = str(chunk.model)
                choices = chunk.choices
                choice = choices[0] if choices else None
                if choice is None or choice.finish_reason:
                    # The closing chunks carry the finish reason and the usage. Only
                    # they are asked for usage: on LiteLLM's chunks a missing
                    # attribute costs ~2 us, more than the rest of a chunk's work.
                    usage = getattr(chunk, "usage", None)
                    if usage is not None and getattr(usage, "total_tokens", None):
                        state.usage = _usage(usage)
                    if choice is None:
                        continue
                    state.finish_reason = choice.finish_reason
                text = getattr(choice.delta, "content", None)
                if text:
                    yield text
        except Exception as exc:
            raise map_exception(exc, provider) from exc

    @staticmethod
    async def close_stream(stream: Any) -> None:
        """Close an upstream stream (its HTTP connection included); never raises."""
        aclose = getattr(stream, "aclose", None)
        if aclose is None:
            return
        try:
            await aclose()
        except Exception:  # closing a broken stream may fail again; nothing to do
            log.debug("closing an upstream stream failed", exc_info=True)

    async def embed(
        self, provider: ProviderConfig, model: str, texts: list[str], params: Mapping[str, Any] | None = None
    ) -> Embeddings:
        """Embed ``texts`` in one upstream call; vectors in input order, with usage and cost."""
        target = self._target(provider, model, True)
        try:
            response = await litellm.aembedding(input=texts, **{**target, **(params or {})})
            rows = sorted(response.data, key=lambda item: _field(item, "index"))
            vectors = [[float(x) for x in _field(item, "embedding")] for item in rows]
            usage = _usage(getattr(response, "usage", None))
        except Exception as exc:
            raise map_exception(exc, provider.name) from exc
        if len(vectors) != len(texts):
            raise ProviderResponseError(provider.name, f"asked for {len(texts)} embeddings, got {len(vectors)}")
        return Embeddings(vectors, usage, cost_usd(provider, model, usage, embedding=True))


def _field(item: Any, name: str) -> Any:
    return item[name] if isinstance(item, Mapping) else getattr(item, name)


# --- errors ----------------------------------------------------------------------

_CONNECTION_MARKERS = ("Connection error", "Connection refused", "connect", "Server disconnected")
# Exception class names, anywhere in the cause chain, that say what happened.
_TIMEOUTS = frozenset({"Timeout", "APITimeoutError", "ReadTimeout", "ConnectTimeout", "TimeoutError"})
_BAD_BODIES = frozenset({"JSONDecodeError"})
_BROKEN_CONNECTIONS = frozenset(
    {
        "APIConnectionError",
        "ConnectError",
        "ConnectionRefusedError",
        "ConnectionResetError",
        "RemoteProtocolError",
        "ReadError",
        "ClientPayloadError",
        "ServerDisconnectedError",
        "ClientConnectorError",
        "ClientOSError",
    }
)


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen and len(seen) < 10:
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen


def _message(exc: BaseException) -> str:
    text = str(getattr(exc, "message", None) or exc)
    # LiteLLM prefixes "litellm.XError: XError: OpenAIException - ..." and
    # appends help text; keep the first line, without the class prefixes.
    first = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
    for prefix in ("litellm.",):
        if first.startswith(prefix):
            first = first.split(": ", 1)[-1]
    return redact(first)


def map_exception(exc: BaseException, provider: str) -> ProviderError:
    """Translate any exception of one attempt into a :class:`ProviderError`.

    ``status_code`` is the provider's HTTP status when it sent one: LiteLLM
    also makes statuses up (500 for a refused connection, 408 for a timeout),
    and those are dropped.
    """
    if isinstance(exc, ProviderError):
        return exc
    names = {type(e).__name__ for e in _chain(exc)}
    message = _message(exc)
    if isinstance(exc, llm_errors.Timeout) or names & _TIMEOUTS:
        return ProviderTimeoutError(provider, message)
    if names & _BAD_BODIES:
        return ProviderResponseError(provider, message)
    # LiteLLM files some statuses under another class (an Anthropic 503 is its
    # InternalServerError, 500): the provider's own status wins.
    status = getattr(exc, "provider_status_code", None) or getattr(exc, "status_code", None)
    status = status if isinstance(status, int) else None
    if isinstance(exc, llm_errors.AuthenticationError | llm_errors.PermissionDeniedError) or status in (401, 403):
        return ProviderAuthError(provider, message, status_code=status)
    if isinstance(exc, llm_errors.RateLimitError) or status == 429:
        return ProviderRateLimitError(provider, message, status_code=status, retry_after=retry_after(exc))
    if names & _BROKEN_CONNECTIONS or (
        isinstance(exc, llm_errors.InternalServerError) and any(m in message for m in _CONNECTION_MARKERS)
    ):
        return ProviderConnectionError(provider, message)
    return ProviderResponseError(provider, message, status_code=status, retry_after=retry_after(exc))


def retry_after(exc: BaseException) -> float | None:
    """Seconds the provider asked to wait (``retry-after-ms``, or ``Retry-After`` as seconds or a date)."""
    for error in _chain(exc):
        headers = _headers(error)
        if headers is None:
            continue
        try:
            if (ms := headers.get("retry-after-ms")) is not None:
                seconds = float(ms) / 1000.0
            elif (value := headers.get("retry-after")) is not None:
                seconds = _seconds(str(value))
            else:
                continue
        except (TypeError, ValueError):
            return None
        return seconds if math.isfinite(seconds) and seconds >= 0 else None
    return None


def _headers(error: BaseException) -> Any:
    """The response headers an exception carries (LiteLLM and the SDKs keep them in different places)."""
    try:
        headers = getattr(error, "headers", None) or getattr(getattr(error, "response", None), "headers", None)
        headers = headers or getattr(error, "litellm_response_headers", None)
    except Exception:  # a property that raises without a response
        return None
    return headers if hasattr(headers, "get") else None


def _seconds(value: str) -> float:
    """A ``Retry-After`` value: delay-seconds, or an HTTP date."""
    try:
        return float(value)
    except ValueError:
        when = email.utils.parsedate_to_datetime(value)  # ValueError when it is not a date either
        return when.timestamp() - time.time()
