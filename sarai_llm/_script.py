"""What a test scripts and what the fake gateway records (cheap to import: no pydantic, no LiteLLM)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .errors import AllProvidersFailedError, ProviderConnectionError

__all__ = ["FakeCall", "Reply", "all_providers_failed"]


@dataclass
class FakeCall:
    """One call the fake gateway received (recorded once its arguments passed the checks).

    :ivar method: ``"chat"``, ``"stream_chat"``, ``"embed"``, ``"health_check"`` or ``"clear_cache"``.
    :ivar messages: the chat messages (``None`` for other methods).
    :ivar kwargs: every other argument by name: ``model``, ``provider``,
        ``temperature``, ``max_tokens``, ``use_cache``, provider keyword
        arguments (``caller`` and ``deadline`` when given); for ``embed`` ``text``.
    """

    method: str
    messages: list[dict[str, Any]] | None = None
    kwargs: dict[str, Any] = field(default_factory=dict)

    @property
    def prompt(self) -> str | None:
        """The content of the last message (the user's prompt, usually)."""
        if not self.messages:
            return None
        content = self.messages[-1].get("content")
        return content if isinstance(content, str) else None


Reply = str | Mapping[str, Any] | BaseException | type[BaseException] | Callable[[FakeCall], Any]
"""What a scripted chat answer may be.

* a ``str``: the answer's ``content``;
* a mapping of what the provider answers: ``content``, ``model``, ``usage``,
  ``finish_reason``, ``cost_usd``; ``"chunks": [...]`` sets the pieces
  ``stream_chat`` yields, and ``"error"`` an exception raised after those
  pieces (a cut stream);
* an exception instance (or class): raised by the attempt;
* a function of the :class:`FakeCall`: returns one of the above.
"""


def all_providers_failed(provider: str = "fake", reason: str = "connection refused") -> AllProvidersFailedError:
    """The error the gateway raises when every provider failed, for scripting.

    >>> fake.queue(all_providers_failed("ollama"))   # doctest: +SKIP
    """
    return AllProvidersFailedError({provider: ProviderConnectionError(provider, reason)})
