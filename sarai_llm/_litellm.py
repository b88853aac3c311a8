"""The adapter to LiteLLM: the only module of sarai_llm that imports it.

Importing LiteLLM costs seconds and ~200 MB, so the gateway imports this
module on the first cache miss, never at ``import sarai_llm``.

What lives here:

* the Router deployments built from :mod:`sarai_llm.mapping` (a provider's
  settings as a LiteLLM model string and ``api_base``, without LiteLLM);
* one ``litellm.Router`` per gateway, holding one deployment per
  (provider, model) with the provider's timeout and the configured retries;
* normalisation of LiteLLM's responses into plain Python values;
* :func:`cost_usd`, the price of an answer from LiteLLM's bundled price list
  (offline) or the prices per token set in the configuration;
* :func:`map_exception`, the one place where LiteLLM / openai / httpx errors
  become :class:`~sarai_llm.errors.ProviderError` subclasses.

The fallback chain is walked by the gateway, not by the Router: the chain
depends on the call (``provider=`` reorders it), every attempt must be counted
exactly, and a stream may fail over only before its first chunk. The Router
keeps what it is good at: deployments, timeouts and retries with backoff.
"""

from __future__ import annotations

import logging
import math
import os
import warnings
from collections.abc import AsyncGenerator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ._log import log
from .config import GatewayConfig, ProviderConfig
from .errors import (
    ProviderAuthError,
    ProviderConnectionError,
    ProviderError,
    ProviderRateLimitError,
    ProviderResponseError,
    ProviderTimeoutError,
    redact,
)
from .mapping import api_base, group_name, litellm_params, model_string  # noqa: F401 - re-exported

# LiteLLM fetches its price map from the network at import unless told not to;
# offline that blocks for 5-10 s. Respect a value the user chose.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import litellm  # noqa: E402
from litellm import exceptions as llm_errors  # noqa: E402
from litellm.router import Router  # noqa: E402
from litellm.types.router import Deployment, LiteLLM_Params, RetryPolicy  # noqa: E402


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
    # attempt behind the Router's back. Retries are the Router's job.
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

    Without one, adding the deployment leaves an entry of ``None`` prices in
    ``litellm.model_cost`` that LiteLLM walks twice on every later call of
    that model (~1 ms each; bench/RESULTS.md). The configured prices are used,
    else 0. sarai_llm computes costs itself (:func:`cost_usd`); this only
    keeps LiteLLM's own bookkeeping cheap.
    """
    if not provider.priced and _listed(name):
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


class LiteLLMAdapter:
    """One ``litellm.Router`` for one gateway, and the calls made through it."""

    def __init__(self, config: GatewayConfig):
        self._config = config
        self._groups: dict[tuple[str, str, bool], str] = {}
        self.router = Router(
            model_list=[],
            num_retries=config.num_retries,
            # Retrying cannot fix a bad key, a bad request or a missing model;
            # other errors get num_retries, honouring Retry-After up to 60 s.
            retry_policy=RetryPolicy(
                AuthenticationErrorRetries=0,
                BadRequestErrorRetries=0,
                NotFoundErrorRetries=0,
                ContentPolicyViolationErrorRetries=0,
            ),
            # The gateway's own breaker skips failing providers; the Router's
            # cooldown never applies to one-deployment groups anyway.
            disable_cooldowns=True,
        )

    async def aclose(self) -> None:
        """Close the HTTP clients LiteLLM cached, and forget them (new ones open on demand)."""
        from litellm.llms.custom_httpx.async_client_cleanup import close_litellm_async_clients

        try:
            await close_litellm_async_clients()  # type: ignore[no-untyped-call]
            # Ollama embeddings and Anthropic streams use a module-level client
            # that the cache flush below would orphan; close it too.
            client = vars(litellm).pop("module_level_aclient", None)
            if client is not None:
                await client.close()
        finally:
            litellm.in_memory_llm_clients_cache.flush_cache()  # type: ignore[no-untyped-call]

    def _group(self, provider: ProviderConfig, model: str, embedding: bool) -> str:
        """The Router model group for (provider, model), added on first use."""
        key = (provider.name, model, embedding)
        group = self._groups.get(key)
        if group is None:
            group = group_name(provider, model, embedding=embedding)
            params = litellm_params(provider, model, embedding=embedding)
            _register_price(provider, params["model"], embedding)
            self.router.add_deployment(Deployment(model_name=group, litellm_params=LiteLLM_Params(**params)))
            self._groups[key] = group
        return group

    async def complete(
        self, provider: ProviderConfig, model: str, messages: Sequence[Mapping[str, Any]], params: dict[str, Any]
    ) -> Completion:
        """One chat attempt on one provider; raises :class:`ProviderError`."""
        group = self._group(provider, model, False)
        try:
            response = await self.router.acompletion(model=group, messages=list(messages), **params)
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
        group = self._group(provider, model, False)
        extra: dict[str, Any] = {}
        if provider.name != "ollama":
            extra["stream_options"] = {"include_usage": True}
        try:
            return await self.router.acompletion(model=group, messages=list(messages), stream=True, **extra, **params)
        except Exception as exc:
            raise map_exception(exc, provider.name) from exc

    @staticmethod
    async def iterate_stream(stream: Any, provider: str, state: StreamState) -> AsyncGenerator[str, None]:
        """Yield the text pieces of an open stream, recording model, usage and finish."""
        try:
            async for chunk in stream:
                usage = getattr(chunk, "usage", None)
                if usage is not None and getattr(usage, "total_tokens", None):
                    state.usage = _usage(usage)
                if not state.model and getattr(chunk, "model", None):
                    state.model = str(chunk.model)
                if not chunk.choices:
                    continue
                choice = chunk.choices[0]
                if choice.finish_reason:
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
        group = self._group(provider, model, True)
        try:
            response = await self.router.aembedding(model=group, input=texts, **(params or {}))
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
        return ProviderRateLimitError(provider, message, status_code=status)
    if names & _BROKEN_CONNECTIONS or (
        isinstance(exc, llm_errors.InternalServerError) and any(m in message for m in _CONNECTION_MARKERS)
    ):
        return ProviderConnectionError(provider, message)
    return ProviderResponseError(provider, message, status_code=status)
