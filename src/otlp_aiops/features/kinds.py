"""Which of :data:`~otlp_aiops.features.data.FEATURE_KINDS` a feature is: span and log features by
their name, metrics by the dataset's ``metric_kinds`` (dataset.json) or else by name patterns."""

from __future__ import annotations

import re
from collections.abc import Mapping

from otlp_aiops.features.data import FEATURE_KINDS

# first match wins: errors before traffic ("app.server.error.count"), cpu before saturation
# ("process.cpu.utilization")
_METRIC_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("errors", re.compile(r"error|fail|exception|5xx|4xx")),
    ("cpu", re.compile(r"cpu")),
    ("memory", re.compile(r"mem|heap|rss|\bgc\b|[._]gc[._]|oom|swap")),
    ("latency", re.compile(r"latenc|duration|delay|response_?time|\brt\b|elapsed")),
    ("traffic", re.compile(r"request|qps|rps|throughput|calls|traffic|commands|transactions|messages")),
    (
        "saturation",
        re.compile(
            r"thread|goroutine|connect|queue|disk|[._]io[._]|fs|restart|satur|util|"
            r"pool|socket|net|load|fd|file|clients"
        ),
    ),
)


def metric_kind(metric_name: str, declared: Mapping[str, str] | None = None) -> str:
    if declared and metric_name in declared:
        kind = declared[metric_name]
        if kind not in FEATURE_KINDS:
            raise ValueError(
                f"dataset.json metric_kinds[{metric_name!r}] = {kind!r} is not one of {FEATURE_KINDS}"
            )
        return kind
    name = metric_name.lower()
    for kind, pattern in _METRIC_PATTERNS:
        if pattern.search(name):
            return kind
    return "other"


def feature_kind(
    feature: str, metric_name: str | None = None, declared: Mapping[str, str] | None = None
) -> str:
    source, _, rest = feature.partition(".")
    if source == "span":
        if "latency" in rest or "self_time" in rest or "gap" in rest:
            return "latency"
        if "error" in rest:
            return "errors"
        return "traffic"
    if source == "log":
        return "logs"
    if source == "metric":
        return metric_kind(metric_name or rest, declared)
    return "other"


_SPAN_EVENT_COUNTS = ("error_origins", "error_propagated", "in_calls", "out_calls", "op_mix_unseen")


def zero_fill(feature: str) -> bool:
    """Counts of events: a window without events of a service that has the feature is 0, not NaN."""
    source, _, rest = feature.partition(".")
    if source == "log":
        return True
    if source == "span" and rest in _SPAN_EVENT_COUNTS:
        return True
    return source == "span" and rest.endswith(("_count", "_rate", "_errors")) and "error_rate" not in rest
