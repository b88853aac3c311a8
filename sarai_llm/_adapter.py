"""The seam between the pipeline and whatever talks to providers.

:class:`Adapter` is what the gateway calls for one attempt on one provider:
:mod:`sarai_llm._litellm` implements it over LiteLLM, and
:mod:`sarai_llm.testing` with scripted answers. Results are plain dataclasses;
nothing here imports LiteLLM.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, TypedDict, cast

if TYPE_CHECKING:
    from .config import ProviderConfig

__all__ = [
    "USAGE_KEYS",
    "Adapter",
    "Attempt",
    "ChatResult",
    "Completion",
    "Embeddings",
    "StreamState",
    "ToolCall",
    "Usage",
    "no_usage",
]


class Usage(TypedDict):
    """Tokens of one answer, as the provider reported them (0 when it did not)."""

    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    cached_tokens: int
    """Prompt tokens the provider served from its own prompt cache."""
    reasoning_tokens: int
    """Completion tokens spent on reasoning."""


class ToolCall(TypedDict):
    """A tool call in OpenAI's shape: ``{"id", "type": "function", "function": {"name", "arguments"}}``.

    ``arguments`` is JSON text, as the model wrote it.
    """

    id: str
    type: str
    function: dict[str, str]


class ChatResult(TypedDict):
    """What ``chat`` returns (and a stream's ``.result``): a plain dict with these keys, hits included."""

    content: str
    model: str
    provider: str
    usage: Usage
    finish_reason: str | None
    """``"tool_calls"`` when the model called tools."""
    cached: bool
    coalesced: bool
    latency_ms: float
    cost_usd: float
    tool_calls: list[ToolCall]
    """Empty when the model called no tool."""
    reasoning_content: str | None
    """The model's reasoning text when the provider returns one."""
    parsed: Any
    """With ``response_format=``: a pydantic model class's validated instance, or a JSON schema's value."""


USAGE_KEYS = ("prompt_tokens", "completion_tokens", "total_tokens", "cached_tokens", "reasoning_tokens")


def no_usage() -> dict[str, int]:
    """Usage of an answer whose provider reported none."""
    return dict.fromkeys(USAGE_KEYS, 0)


def copy_tool_calls(tool_calls: list[dict[str, Any]]) -> list[ToolCall]:
    """Fresh tool-call dicts: changing a result never changes the cache."""
    return [cast("ToolCall", {**call, "function": {**call["function"]}}) for call in tool_calls]


@dataclass(slots=True)
class Completion:
    """A complete chat answer, as one attempt received it."""

    content: str
    model: str
    usage: dict[str, int]
    """The keys of :class:`Usage`."""
    finish_reason: str | None
    cost_usd: float = 0.0
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    """:class:`ToolCall` dicts, in the order the model made them."""
    reasoning_content: str | None = None
    upstream_s: float | None = None
    """Seconds this attempt waited for the upstream's answer, when the adapter knows it."""

    def entry(self, provider: str) -> dict[str, Any]:
        """The answer as the cache keeps it: what a hit replays (its cost too: a hit knows what it saved)."""
        return {
            "content": self.content,
            "model": self.model,
            "provider": provider,
            "usage": self.usage,
            "finish_reason": self.finish_reason,
            "cost_usd": self.cost_usd,
            "tool_calls": self.tool_calls,
            "reasoning_content": self.reasoning_content,
        }


@dataclass(slots=True)
class Embeddings:
    """The vectors of one embedding call (input order), the usage the provider reported and its cost."""

    vectors: list[list[float]]
    usage: dict[str, int]
    cost_usd: float = 0.0
    upstream_s: float | None = None
    """Seconds this attempt waited for the upstream's answer, when the adapter knows it."""


@dataclass(slots=True)
class StreamState:
    """What a stream reported besides its text, filled in as it goes; ``cost_usd`` once it ended."""

    model: str = ""
    finish_reason: str | None = None
    usage: dict[str, int] = field(default_factory=dict)
    """The keys of :class:`Usage`, once the provider reported them."""
    cost_usd: float = 0.0
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    """:class:`ToolCall` dicts assembled from the deltas (their ``arguments`` joined), by index."""
    reasoning_content: str | None = None
    """The reasoning deltas joined, when the provider sent any."""
    upstream_s: float | None = None
    """Seconds the stream waited for the upstream (its answer, then each piece), when the adapter knows it."""


@dataclass(slots=True)
class Attempt:
    """One request to one provider: what an adapter sends."""

    provider: ProviderConfig
    model: str
    params: Mapping[str, Any]
    """Provider keyword arguments untouched, plus ``temperature`` and ``max_tokens`` for a chat."""
    messages: Sequence[Mapping[str, Any]] = ()
    """A chat's messages."""
    texts: list[str] = field(default_factory=list)
    """An embedding's texts."""


class Adapter(Protocol):
    """One attempt on one provider; every failure is raised as a :class:`~sarai_llm.ProviderError`."""

    async def complete(self, attempt: Attempt) -> Completion:
        """One chat request."""
        ...

    def stream(self, attempt: Attempt, state: StreamState) -> AsyncGenerator[str, None]:
        """The text pieces of one streamed chat, opened on the first iteration and closed by ``aclose()``.

        A stream that ends with neither text nor a finish reason raises
        :class:`~sarai_llm.ProviderResponseError`: it is not an answer.
        """
        ...

    async def embed(self, attempt: Attempt) -> Embeddings:
        """Embed ``attempt.texts`` in one request."""
        ...

    async def close_connections(self) -> None:
        """Close the connections opened on the running event loop."""
        ...
