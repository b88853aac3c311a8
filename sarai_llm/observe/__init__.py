"""Observers of a gateway's calls (:class:`Stats`, :class:`ProcessMetrics`, :class:`GenAIMetrics`), held
in its :class:`Events`; :class:`GatewayMetrics` reads the Stats for Prometheus, :class:`MetricsServer` serves it."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from ._spec import FIRST_TOKEN_BUCKETS, LATENCY_BUCKETS, METRIC_NAMES, error_type, multiprocess_dir
from .events import Events, Observer, Usage
from .multiprocess import ProcessMetrics
from .otel import GenAIMetrics
from .prometheus import DEFAULT_METRICS_HOST, GatewayMetrics, MetricsServer
from .stats import Buckets, ProviderStats, Stats

if TYPE_CHECKING:
    from ..cache import ResponseCache
    from ..config import GatewayConfig

__all__ = ["DEFAULT_METRICS_HOST", "FIRST_TOKEN_BUCKETS", "LATENCY_BUCKETS", "METRIC_NAMES", "Buckets", "Events"]
__all__ += ["GatewayMetrics", "GenAIMetrics", "MetricsServer", "Observer", "ProcessMetrics", "ProviderStats", "Stats"]
__all__ += ["Usage", "error_type", "multiprocess_dir", "observers_for"]


def observers_for(config: GatewayConfig, cache: ResponseCache | None) -> tuple[Stats, *tuple[Observer, ...]]:
    """A new gateway's observers: its :class:`Stats`, then ``ProcessMetrics(cache)`` when the environment sets
    ``PROMETHEUS_MULTIPROC_DIR`` (``config``: for observers settings may add). :raises ConfigError: not a directory."""
    directory = multiprocess_dir()
    if not directory:
        return (Stats(),)
    if not os.path.isdir(directory):
        from ..errors import ConfigError

        raise ConfigError(
            f"PROMETHEUS_MULTIPROC_DIR={directory!r} is not a directory: create it (empty) before "
            "starting the processes, or unset it for single-process metrics"
        )
    return Stats(), ProcessMetrics(cache)
