"""OpenTelemetry GenAI client metrics, when the application uses OpenTelemetry.

With the optional ``opentelemetry-api`` package installed (``pip install
'sarai_llm[otel]'``) and a meter provider configured by the application
(``opentelemetry.metrics.set_meter_provider(...)``, or the
``opentelemetry-instrument`` agent), every upstream attempt of a gateway is
recorded into the two instruments of the OpenTelemetry semantic conventions
for generative AI clients:

* ``gen_ai.client.operation.duration`` (histogram, ``s``): the seconds of
  each attempt, with ``error.type`` when it failed;
* ``gen_ai.client.token.usage`` (histogram, ``{token}``): the tokens the
  provider reported, one record per ``gen_ai.token.type`` (``input``,
  ``output``; embeddings report input tokens only). Nothing is recorded when a
  provider reports no usage.

Attributes: ``gen_ai.operation.name`` (``chat`` or ``embeddings``),
``gen_ai.provider.name`` (the gateway's provider name: ``ollama``,
``openai``, ``anthropic``, ``local``), ``gen_ai.request.model`` (the model
asked of that provider) and, on failures, ``error.type`` (the short error
class of :func:`sarai_llm.stats.error_type`: ``connection``, ``timeout``,
``auth``, ``rate_limit``, ``response``...). Cache hits never reach a model,
so they are not GenAI operations and are not recorded here (the Prometheus
metrics count them).

Cost: nothing when ``opentelemetry-api`` is absent or no meter provider is
configured. ``import sarai_llm`` never imports OpenTelemetry; each gateway
looks for a meter provider once, at its first upstream attempt (after the
LiteLLM import that attempt pays for anyway), so a provider configured during
application start-up is found. A gateway's :meth:`Stats.use_otel
<sarai_llm.stats.Stats.use_otel>` sets the recorder explicitly
(``gateway.stats.use_otel(GenAIMetrics(meter_provider))``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ._log import log
from .stats import error_type

__all__ = [
    "DURATION_BUCKETS",
    "OPERATION_DURATION",
    "TOKEN_BUCKETS",
    "TOKEN_USAGE",
    "GenAIMetrics",
    "detect",
]


TOKEN_USAGE = "gen_ai.client.token.usage"
"""Name of the token histogram of the GenAI semantic conventions."""
OPERATION_DURATION = "gen_ai.client.operation.duration"
"""Name of the duration histogram of the GenAI semantic conventions."""

TOKEN_BUCKETS: tuple[float, ...] = (
    1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864,
)  # fmt: skip
"""Bucket boundaries the conventions advise for ``gen_ai.client.token.usage``."""
DURATION_BUCKETS: tuple[float, ...] = (
    0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92,
)  # fmt: skip
"""Bucket boundaries the conventions advise for ``gen_ai.client.operation.duration``."""

_UNCONFIGURED = frozenset({"_ProxyMeterProvider", "NoOpMeterProvider"})


def detect() -> GenAIMetrics | None:
    """The GenAI instruments on the application's global meter provider.

    ``None`` when ``opentelemetry-api`` is not installed or no meter provider
    was configured (the API's default proxy or no-op provider). Never raises.
    """
    try:
        from opentelemetry import metrics
    except ImportError:
        return None
    try:
        provider = metrics.get_meter_provider()
        if type(provider).__name__ in _UNCONFIGURED:
            return None
        return GenAIMetrics(provider)
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


class GenAIMetrics:
    """The two GenAI client instruments on one meter provider, and how attempts are recorded.

    :param meter_provider: an OpenTelemetry ``MeterProvider`` (the SDK's, in an application).
    """

    def __init__(self, meter_provider: Any):
        from . import __version__

        meter = meter_provider.get_meter("sarai_llm", __version__)
        self.token_usage = _histogram(
            meter, TOKEN_USAGE, "{token}", "Measures number of input and output tokens used", TOKEN_BUCKETS
        )
        self.operation_duration = _histogram(
            meter, OPERATION_DURATION, "s", "GenAI operation duration", DURATION_BUCKETS
        )
        self._attributes: dict[tuple[str, str, str], dict[str, str]] = {}

    def _base(self, operation: str, provider: str, model: str) -> dict[str, str]:
        key = (operation, provider, model)
        attributes = self._attributes.get(key)
        if attributes is None:
            attributes = self._attributes[key] = {
                "gen_ai.operation.name": operation,
                "gen_ai.provider.name": provider,
                "gen_ai.request.model": model,
            }
        return attributes

    def succeeded(
        self, operation: str, provider: str, model: str, latency_ms: float, usage: Mapping[str, Any] | None
    ) -> None:
        """One attempt answered: its duration, and its tokens when the provider reported them."""
        try:
            attributes = self._base(operation, provider, model)
            self.operation_duration.record(latency_ms / 1000.0, attributes)
            if usage and (usage.get("total_tokens") or usage.get("prompt_tokens") or usage.get("completion_tokens")):
                self.token_usage.record(
                    int(usage.get("prompt_tokens") or 0), {**attributes, "gen_ai.token.type": "input"}
                )
                if operation != "embeddings":
                    self.token_usage.record(
                        int(usage.get("completion_tokens") or 0), {**attributes, "gen_ai.token.type": "output"}
                    )
        except Exception:  # an exporter's failure must never break a call
            log.debug("recording OpenTelemetry GenAI metrics failed", exc_info=True)

    def failed(self, operation: str, provider: str, model: str, latency_ms: float, error: BaseException) -> None:
        """One attempt failed: its duration, with ``error.type``."""
        try:
            attributes = {**self._base(operation, provider, model), "error.type": error_type(error)}
            self.operation_duration.record(latency_ms / 1000.0, attributes)
        except Exception:
            log.debug("recording OpenTelemetry GenAI metrics failed", exc_info=True)

    def __repr__(self) -> str:
        return "GenAIMetrics(gen_ai.client.token.usage, gen_ai.client.operation.duration)"
