"""LiteLLM's errors as sarai_llm's: the one place where LiteLLM / openai / httpx exceptions become
:class:`~sarai_llm.errors.ProviderError` subclasses, saying where and what to check next."""

from __future__ import annotations

from typing import TYPE_CHECKING

from litellm import exceptions as llm_errors

from .._providers import api_base, api_key_env, public_url
from ..errors import (
    ProviderAuthError,
    ProviderConnectionError,
    ProviderError,
    ProviderRateLimitError,
    ProviderResponseError,
    ProviderTimeoutError,
    redact,
)
from ..retry import causes, retry_after

if TYPE_CHECKING:
    from ..config import ProviderConfig

__all__ = ["map_exception", "mapped"]


_CONNECTION_MARKERS = ("Connection error", "Connection refused", "connect", "Server disconnected")
# Exception class names, anywhere in the cause chain, that say what happened.
_TIMEOUTS = frozenset({"Timeout", "APITimeoutError", "ReadTimeout", "ConnectTimeout", "TimeoutError"})
_BAD_BODIES = frozenset({"JSONDecodeError"})
_REFUSED = frozenset({"ConnectError", "ConnectionRefusedError", "ClientConnectorError"})
_BROKEN_CONNECTIONS = frozenset(
    "APIConnectionError ConnectError ConnectionRefusedError ConnectionResetError RemoteProtocolError ReadError "
    "ClientPayloadError ServerDisconnectedError ClientConnectorError ClientOSError".split()
)


def _message(exc: BaseException) -> str:
    text = str(getattr(exc, "message", None) or exc)
    # LiteLLM prefixes "litellm.XError: XError: OpenAIException - ..." and appends help text;
    # keep the first line, without the class prefixes.
    first = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
    if first.startswith("litellm."):
        first = first.split(": ", 1)[-1]
    return redact(first)


def map_exception(
    exc: BaseException, provider: ProviderConfig, model: str | None = None, *, embedding: bool = False
) -> ProviderError:
    """Translate any exception of one attempt on ``provider`` into a :class:`ProviderError`.

    A connection that could not be made, a rejected key and a model the server does not have say
    where and what to check next; LiteLLM's own text stays in the ``__cause__``. ``status_code`` is
    the provider's HTTP status when it sent one (LiteLLM's made-up 500s and 408s are dropped).
    """
    if isinstance(exc, ProviderError):
        return exc
    names = {type(e).__name__ for e in causes(exc)}
    message = _message(exc)
    name = provider.name
    if isinstance(exc, llm_errors.Timeout) or names & _TIMEOUTS:
        return ProviderTimeoutError(name, message)
    if names & _BAD_BODIES:
        return ProviderResponseError(name, message)
    # LiteLLM files some statuses under another class (an Anthropic 503 is its
    # InternalServerError, 500): the provider's own status wins.
    status = getattr(exc, "provider_status_code", None) or getattr(exc, "status_code", None)
    status = status if isinstance(status, int) else None
    if isinstance(exc, llm_errors.AuthenticationError | llm_errors.PermissionDeniedError) or status in (401, 403):
        return ProviderAuthError(name, f"{message} (the key is {api_key_env(provider)})", status_code=status)
    if isinstance(exc, llm_errors.RateLimitError) or status == 429:
        return ProviderRateLimitError(name, message, status_code=status, retry_after=retry_after(exc))
    if names & _BROKEN_CONNECTIONS or (
        isinstance(exc, llm_errors.InternalServerError) and any(m in message for m in _CONNECTION_MARKERS)
    ):
        if names & _REFUSED or "Cannot connect" in message:
            hint = "is the server running? (`sarai-llm health` checks every provider)"
            return ProviderConnectionError(name, f"cannot connect to {_where(provider)}: {hint}")
        return ProviderConnectionError(name, f"the connection to {_where(provider)} broke: {message}")
    if status == 404 and model:
        setting = api_key_env(provider).removesuffix("API_KEY") + ("EMBED_MODEL" if embedding else "MODEL")
        hint = f" (is the model {model!r} served at {_where(provider)}? {setting} sets it)"
        return ProviderResponseError(name, message + hint, status_code=status)
    return ProviderResponseError(name, message, status_code=status, retry_after=retry_after(exc))


def _where(provider: ProviderConfig) -> str:
    """The server a provider's requests go to, as shown to people (credentials masked)."""
    return public_url(api_base(provider) or provider.spec.public_base_url or provider.name)


def mapped(exc: BaseException, provider: ProviderConfig, model: str, *, embedding: bool = False) -> ProviderError:
    """:func:`map_exception`; LiteLLM's error becomes the cause unless its text would show a secret."""
    error = map_exception(exc, provider, model, embedding=embedding)
    error.__cause__ = error.__cause__ if error is exc or any(redact(str(e)) != str(e) for e in causes(exc)) else exc
    return error
