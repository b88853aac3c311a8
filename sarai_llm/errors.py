"""The exception tree of sarai_llm: every error a user can see is a :class:`SaraiLLMError`.

Errors of LiteLLM, httpx or diskcache are translated in one place (for providers,
:func:`sarai_llm._litellm.map_exception`) and raised with the original as ``__cause__``.
Texts never contain API keys: :func:`redact` scrubs every secret the configuration knows.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping

__all__ = ["SaraiLLMError", "ConfigError", "NoProvidersError", "UnsafeDependencyError", "InvalidRequestError"]
__all__ += ["CacheError", "ProviderError", "ProviderConnectionError", "ProviderTimeoutError", "ProviderAuthError"]
__all__ += ["ProviderRateLimitError", "ProviderResponseError", "AllProvidersFailedError", "StreamInterruptedError"]
__all__ += ["redact", "register_secrets"]


class SaraiLLMError(Exception):
    """Base class of every error raised by sarai_llm."""


class ConfigError(SaraiLLMError, ValueError):
    """A configuration value is invalid; the message names the field and its source (variable, file, YAML path)."""


class NoProvidersError(SaraiLLMError):
    """No usable provider is configured: ``No providers initialized``, and the settings that would make one usable."""


class UnsafeDependencyError(SaraiLLMError):
    """An installed dependency is a known compromised release; the gateway refuses to start."""


class InvalidRequestError(SaraiLLMError, ValueError):
    """The arguments of a call are invalid; raised before any network call."""


class CacheError(SaraiLLMError):
    """The response cache cannot be used; raised only by explicit cache operations (calls answer uncached)."""


class ProviderError(SaraiLLMError):
    """One provider failed one attempt; ``status_code`` (HTTP) and ``retry_after`` (seconds) when known."""

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
    """``All providers failed``, with each provider's error class and message; ``errors``: name -> error, in order."""

    def __init__(self, errors: Mapping[str, BaseException]):
        self.errors: dict[str, BaseException] = dict(errors)
        parts = [f"{name}: {type(err).__name__}: {_cause_text(err)}" for name, err in self.errors.items()]
        super().__init__("All providers failed: " + "; ".join(parts))


class StreamInterruptedError(SaraiLLMError):
    """A stream from ``provider`` failed after ``chunks_delivered`` chunks: the caller decides what to do with them.

    No second model's text is ever spliced onto a cut stream.
    """

    def __init__(self, provider: str, chunks_delivered: int, cause: BaseException):
        self.provider = provider
        self.chunks_delivered = chunks_delivered
        super().__init__(
            f"Stream from {provider} interrupted after {chunks_delivered} chunk(s): "
            f"{type(cause).__name__}: {_cause_text(cause)}"
        )


def _cause_text(err: BaseException) -> str:
    if isinstance(err, ProviderError):  # its text already starts with "<provider>: "
        return str(err).removeprefix(f"{err.provider}: ")
    return redact(str(err))


# Replaced, never changed in place: redact() may run in another thread (the status page's)
# while a configuration registers its secrets.
_secrets: tuple[str, ...] = ()  # longest first: a URL is masked whole before the password inside it
_secrets_lock = threading.Lock()


def register_secrets(values: Iterable[str | None]) -> None:
    """Remember secret values for :func:`redact`; values under 4 characters would mangle text and are ignored."""
    global _secrets
    new = {v for v in values if v and len(v) >= 4}
    with _secrets_lock:
        _secrets = tuple(sorted(new.union(_secrets), key=len, reverse=True))


def redact(text: str) -> str:
    """Return ``text`` with every registered secret replaced by ``***``."""
    for secret in _secrets:
        text = text.replace(secret, "***")
    return text
