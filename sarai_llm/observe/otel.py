"""OpenTelemetry GenAI client metrics (semantic conventions) of each upstream attempt, when the application
configures a meter provider: ``gen_ai.client.operation.duration`` (s) and ``gen_ai.client.token.usage``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .._log import log
from .._version import __version__
from ._spec import error_type
from .events import Observer, Usage

__all__ = ["DURATION_BUCKETS", "OPERATION_DURATION", "TOKEN_BUCKETS", "TOKEN_USAGE", "GenAIMetrics", "detect"]

TOKEN_USAGE = "gen_ai.client.token.usage"  # the histograms' names in the GenAI semantic conventions
OPERATION_DURATION = "gen_ai.client.operation.duration"
TOKEN_BUCKETS: tuple[float, ...] = tuple(4**i for i in range(14))
"""Bucket boundaries, in tokens (1 to 4**13), the conventions advise for ``gen_ai.client.token.usage``."""
DURATION_BUCKETS: tuple[float, ...] = tuple(0.01 * 2**i for i in range(14))
"""Bucket boundaries, in seconds (0.01 to 81.92), the conventions advise for ``gen_ai.client.operation.duration``."""

_ATTRIBUTES = ("gen_ai.operation.name", "gen_ai.provider.name", "gen_ai.request.model")
_UNCONFIGURED = frozenset({"_ProxyMeterProvider", "NoOpMeterProvider"})


def detect() -> GenAIMetrics | None:
    """The recorder on the application's global meter provider; ``None`` without one (or the API). Never raises."""
    try:
        from opentelemetry import metrics
    except ImportError:
        return None
    try:
        provider = metrics.get_meter_provider()
        return None if type(provider).__name__ in _UNCONFIGURED else GenAIMetrics(provider)
    except Exception:  # a broken OpenTelemetry set-up must never break a call
        log.warning("OpenTelemetry GenAI metrics disabled: the meter provider failed", exc_info=True)
        return None


def _histogram(meter: Any, name: str, unit: str, description: str, buckets: Sequence[float]) -> Any:
    try:
        return meter.create_histogram(
            name, unit=unit, description=description, explicit_bucket_boundaries_advisory=list(buckets)
        )
    except TypeError:  # opentelemetry-api < 1.23 takes no advice
        return meter.create_histogram(name, unit=unit, description=description)


class GenAIMetrics(Observer):
    """The observer recording upstream attempts into the two instruments, on ``meter_provider`` (the SDK's)."""

    def __init__(self, meter_provider: Any):
        meter = meter_provider.get_meter("sarai_llm", __version__)
        tokens, duration = "Measures number of input and output tokens used", "GenAI operation duration"
        self.token_usage = _histogram(meter, TOKEN_USAGE, "{token}", tokens, TOKEN_BUCKETS)
        self.operation_duration = _histogram(meter, OPERATION_DURATION, "s", duration, DURATION_BUCKETS)
        self._attributes: dict[tuple[str, str, str], dict[str, str]] = {}

    def _base(self, operation: str, provider: str, model: str) -> dict[str, str]:
        key = (operation, provider, model)
        return self._attributes.get(key) or self._attributes.setdefault(key, dict(zip(_ATTRIBUTES, key, strict=True)))

    def success(self, provider: str, model: str, latency_ms: float, usage: Usage, *, operation: str = "chat") -> None:
        """Record the attempt's duration, and its tokens when the provider reported them."""
        try:
            attributes = self._base(operation, provider, model)
            self.operation_duration.record(latency_ms / 1000.0, attributes)
            if usage and (usage.get("total_tokens") or usage.get("prompt_tokens") or usage.get("completion_tokens")):
                input_tokens = int(usage.get("prompt_tokens") or 0)
                self.token_usage.record(input_tokens, {**attributes, "gen_ai.token.type": "input"})
                if operation != "embeddings":
                    output_tokens = int(usage.get("completion_tokens") or 0)
                    self.token_usage.record(output_tokens, {**attributes, "gen_ai.token.type": "output"})
        except Exception:  # an exporter's failure must never break a call
            log.debug("recording OpenTelemetry GenAI metrics failed", exc_info=True)

    def failure(
        self, provider: str, model: str, latency_ms: float, error: BaseException, *, operation: str = "chat"
    ) -> None:
        """Record the attempt's duration, with ``error.type``."""
        try:
            attributes = {**self._base(operation, provider, model), "error.type": error_type(error)}
            self.operation_duration.record(latency_ms / 1000.0, attributes)
        except Exception:
            log.debug("recording OpenTelemetry GenAI metrics failed", exc_info=True)
