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
    :ivar kwargs: every other argument by name (``model``, ``temperature``, ..., provider keyword
        arguments, ``caller`` and ``deadline`` when given; ``text`` for ``embed``).
    """

    method: str
    messages: list[dict[str, Any]] | None = None
    kwargs: dict[str, Any] = field(default_factory=dict)

    @property
    def prompt(self) -> str | None:
        """The content of the last message (the user's prompt, usually)."""
        content = self.messages[-1].get("content") if self.messages else None
        return content if isinstance(content, str) else None


Reply = str | Mapping[str, Any] | BaseException | type[BaseException] | Callable[[FakeCall], Any]
"""A scripted chat answer: the ``content`` as a ``str``; a mapping of what the provider answers
(``content``, ``model``, ``usage``, ``finish_reason``, ``cost_usd``, ``reasoning_content``;
``tool_calls`` in OpenAI's shape, ids ``call_1``, ``call_2``, ... when omitted, ``arguments`` as JSON
text or a dict, ``finish_reason`` ``"tool_calls"`` unless scripted; ``"chunks": [...]``, the pieces
``stream_chat`` yields, and ``"error"``, an exception raised after them: a cut stream); an exception
(instance or class) the attempt raises; or a function of the :class:`FakeCall` returning one of these.
Usage not scripted is counted in words; ``cached_tokens`` and ``reasoning_tokens`` are 0 unless scripted.
"""


def all_providers_failed(provider: str = "fake", reason: str = "connection refused") -> AllProvidersFailedError:
    """The gateway's error when every provider failed, for scripting: ``fake.queue(all_providers_failed())``."""
    return AllProvidersFailedError({provider: ProviderConnectionError(provider, reason)})
