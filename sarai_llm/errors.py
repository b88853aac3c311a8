"""The exception tree of sarai_llm.

Every error a user of the package can see is a :class:`SaraiLLMError`.
Errors raised by LiteLLM, httpx or diskcache are translated in one place
(:func:`sarai_llm._litellm.map_exception` for providers) and re-raised with
the original exception attached as ``__cause__``.

Texts never contain API keys: :func:`redact` scrubs every secret the
configuration knows about before a message is built.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping

__all__ = [
    "AllProvidersFailedError",
    "CacheError",
    "ConfigError",
    "InvalidRequestError",
    "NoProvidersError",
    "ProviderAuthError",
    "ProviderConnectionError",
    "ProviderError",
    "ProviderRateLimitError",
    "ProviderResponseError",
    "ProviderTimeoutError",
    "SaraiLLMError",
    "StreamInterruptedError",
    "UnsafeDependencyError",
    "redact",
    "register_secrets",
]


class SaraiLLMError(Exception):
    """Base class of every error raised by sarai_llm."""


class ConfigError(SaraiLLMError, ValueError):
    """A configuration value is invalid.

    The message names the source (an environment variable, the ``.env`` file,
    or a YAML file and the path inside it) and the field.
    """


class NoProvidersError(SaraiLLMError):
    """No usable provider is configured for the request.

    The message starts with ``No providers initialized`` and names the
    settings that would make a provider usable.
    """


class UnsafeDependencyError(SaraiLLMError):
    """An installed dependency is a known compromised release; the gateway refuses to start."""


class InvalidRequestError(SaraiLLMError, ValueError):
    """The arguments of a call are invalid; raised before any network call."""


class CacheError(SaraiLLMError):
    """The response cache cannot be used (unwritable directory, corrupt file).

    The gateway never lets it escape from a call: it warns once and answers
    uncached. It is raised only by explicit cache operations.
    """


class ProviderError(SaraiLLMError):
    """One provider failed to answer one attempt.

    :ivar provider: name of the provider (``"ollama"``, ``"openai"``, ...).
    :ivar status_code: HTTP status of the failure when there was one.
    :ivar retry_after: seconds the provider asked to wait before trying again
        (its ``Retry-After`` header), when it said.
    """

    def __init__(
        self, provider: str, message: str, *, status_code: int | None = None, retry_after: float | None = None
    ):
        super().__init__(f"{provider}: {message}")
        self.provider = provider
        self.status_code = status_code
        self.retry_after = retry_after


class ProviderConnectionError(ProviderError):
    """The provider could not be reached (refused, reset, DNS, closed stream)."""


class ProviderTimeoutError(ProviderError):
    """The provider did not answer within its ``timeout``."""


class ProviderAuthError(ProviderError):
    """The provider rejected the credentials (HTTP 401/403)."""


class ProviderRateLimitError(ProviderError):
    """The provider refused the request for rate limiting (HTTP 429)."""


class ProviderResponseError(ProviderError):
    """The provider answered with an error status or an unusable body."""


class AllProvidersFailedError(SaraiLLMError):
    """Every provider of the chain failed.

    The message starts with ``All providers failed`` and names each provider
    with its error class and message.

    :ivar errors: provider name -> the :class:`ProviderError` of its attempt,
        in the order the providers were tried.
    """

    def __init__(self, errors: Mapping[str, BaseException]):
        self.errors: dict[str, BaseException] = dict(errors)
        parts = [f"{name}: {type(err).__name__}: {_cause_text(err)}" for name, err in self.errors.items()]
        super().__init__("All providers failed: " + "; ".join(parts))


class StreamInterruptedError(SaraiLLMError):
    """A stream failed after it had delivered text.

    sarai_llm never splices a second model's text onto a cut stream, so the
    caller decides what to do with the partial answer.

    :ivar provider: the provider whose stream broke.
    :ivar chunks_delivered: how many chunks the caller had received.
    """

    def __init__(self, provider: str, chunks_delivered: int, cause: BaseException):
        self.provider = provider
        self.chunks_delivered = chunks_delivered
        super().__init__(
            f"Stream from {provider} interrupted after {chunks_delivered} chunk(s): "
            f"{type(cause).__name__}: {_cause_text(cause)}"
        )


def _cause_text(err: BaseException) -> str:
    if isinstance(err, ProviderError):
        # ProviderError's text already starts with "<provider>: ".
        text = str(err)
        prefix = f"{err.provider}: "
        return text[len(prefix) :] if text.startswith(prefix) else text
    return redact(str(err))


# --- secret redaction ---------------------------------------------------------

_secrets: set[str] = set()
_secrets_lock = threading.Lock()
_MASK = "***"


def register_secrets(values: Iterable[str | None]) -> None:
    """Remember secret values so that :func:`redact` removes them from texts.

    Values shorter than 4 characters are ignored: scrubbing them would mangle
    ordinary text and they protect nothing.
    """
    with _secrets_lock:
        _secrets.update(v for v in values if v and len(v) >= 4)


def redact(text: str) -> str:
    """Return ``text`` with every registered secret replaced by ``***``."""
    for secret in _secrets:
        if secret in text:
            text = text.replace(secret, _MASK)
    return text
