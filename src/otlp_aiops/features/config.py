"""Settings of the ``features`` stage: one frozen dataclass, read from ``params.yaml`` section
``features`` (defaults) merged with ``features.overrides.<dataset>``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from otlp_aiops.config import ConfigError, config_from_dict, parse_duration


@dataclass(frozen=True)
class FeaturesConfig:
    """Window size, case lengths and the knobs of the feature builders (see docs/features.md).

    Durations are numbers of seconds or strings like ``15s``, ``5m``.
    """

    window: float | str = "15s"  # window length; windows are aligned to the Unix epoch
    before: float | str = "5m"  # case: how much a method sees before the (shifted) start
    after: float | str = "5m"  # case: how much after
    detection_offset: float | str = "0s"  # shifts each case's start (RCAEval's detection delay)
    reference: float | str | None = None  # per-case fault-free reference length (None: = before)
    min_reference: int = 10  # fewer fault-free windows before a case: use the dataset's nearest ones
    margin: float | str = "15s"  # windows this close to an incident are not fault-free
    incident_length: float | str = "5m"  # assumed length of an incident whose end_time is null
    segment_gap: int = 5  # a gap of more than this many empty windows starts a new segment
    quantiles: tuple[float, ...] = (0.5, 0.9, 0.99)
    drain_depth: int = 4  # Drain prefix-tree depth (He et al. 2017); >= 3
    drain_similarity: float = 0.4  # Drain similarity threshold st
    drain_max_children: int = 100
    max_templates: int = 50  # log templates kept as features (most frequent in the fit data)
    max_operations: int = 20  # span names per service kept in operation_windows (most frequent)
    # reference of the log / operation mix features: "recording" = the dataset's declared fault-free
    # recording (dataset.json fault_free), "fault_free" = every fault-free window, "auto" = the
    # recording when it holds >= min_reference fault-free windows with data, else every fault-free window
    content_reference: str = "auto"
    memory_limit: str = "2GB"  # DuckDB memory limit (it spills to a temp folder beyond it)
    threads: int = 2

    def __post_init__(self) -> None:
        for name in ("window", "before", "after", "detection_offset", "margin", "incident_length"):
            parse_duration(getattr(self, name), name)
        if self.reference is not None:
            parse_duration(self.reference, "reference")
        if self.window_s <= 0:
            raise ConfigError("window: must be positive")
        if self.before_s <= 0 or self.after_s <= 0:
            raise ConfigError("before/after: must be positive")
        if self.drain_depth < 3:
            raise ConfigError(f"drain_depth: must be >= 3, got {self.drain_depth}")
        if not 0 < self.drain_similarity <= 1:
            raise ConfigError(f"drain_similarity: must be in (0, 1], got {self.drain_similarity}")
        if self.min_reference < 0:
            raise ConfigError(f"min_reference: must be >= 0, got {self.min_reference}")
        if self.drain_max_children < 1 or self.max_templates < 0 or self.threads < 1 or self.segment_gap < 0:
            raise ConfigError("drain_max_children, threads must be >= 1; max_templates, segment_gap >= 0")
        if self.max_operations < 1:
            raise ConfigError(f"max_operations: must be >= 1, got {self.max_operations}")
        if self.content_reference not in ("auto", "recording", "fault_free"):
            raise ConfigError(
                f"content_reference: expected auto, recording or fault_free, got {self.content_reference!r}"
            )
        if not self.quantiles or any(not 0 < q < 1 for q in self.quantiles):
            raise ConfigError(f"quantiles: each must be in (0, 1), got {self.quantiles}")

    @property
    def window_s(self) -> float:
        return parse_duration(self.window, "window")

    @property
    def before_s(self) -> float:
        return parse_duration(self.before, "before")

    @property
    def after_s(self) -> float:
        return parse_duration(self.after, "after")

    @property
    def offset_s(self) -> float:
        return parse_duration(self.detection_offset, "detection_offset")

    @property
    def reference_s(self) -> float:
        return self.before_s if self.reference is None else parse_duration(self.reference, "reference")

    @property
    def margin_s(self) -> float:
        return parse_duration(self.margin, "margin")

    @property
    def incident_length_s(self) -> float:
        return parse_duration(self.incident_length, "incident_length")


def resolve_config(section: Mapping[str, Any] | None, dataset: str, where: str = "") -> FeaturesConfig:
    """The config of ``dataset``: the section's defaults updated with ``overrides[dataset]``."""
    values = dict(section or {})
    overrides = values.pop("overrides", None) or {}
    if not isinstance(overrides, Mapping):
        raise ConfigError(f"{where}overrides: expected a mapping dataset -> settings")
    own = overrides.get(dataset) or {}
    if not isinstance(own, Mapping):
        raise ConfigError(f"{where}overrides.{dataset}: expected a mapping of settings")
    return config_from_dict(FeaturesConfig, {**values, **own}, where=where)
