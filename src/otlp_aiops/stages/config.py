"""What the rca/detect stages read from ``params.yaml``, typed: the ``benchmark:`` protocol
(:class:`BenchmarkConfig`), the method's own section and where the seeds run (:class:`StageSettings`).
The parsed params dict is split here and nowhere else."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from otlp_aiops.config import ConfigError, config_from_dict, parse_duration
from otlp_aiops.executor import LOCAL, ExecutorConfig, executor_config

TASKS = ("rca", "detect")


def offset_seconds(value: Any) -> float:
    """A ``detection_offsets`` entry (``"60s"``, ``"1m"``, a number of seconds) in seconds."""
    return parse_duration(value, "detection_offsets")


@dataclasses.dataclass(frozen=True)
class BenchmarkConfig:
    """``params.yaml`` section ``benchmark`` (the parts the stages read)."""

    datasets: tuple[str, ...] = ("sim-boutique",)
    rca: tuple[str, ...] = ("random", "nsigma", "baro", "epsilon_diagnosis")
    detectors: tuple[str, ...] = ("nsigma", "iforest", "pca")
    seeds: tuple[int, ...] = (0, 1, 2, 3, 4)
    folds: int = 5  # k-fold over incidents for supervised rankers without a training dataset
    detection_offsets: tuple[str, ...] = ("0s", "60s")  # RCAEval's protocol knob; the first is primary
    train_fraction: float = 0.5  # detectors: fit on the earliest fault-free windows (this share of them)
    # dataset -> the dataset its supervised rankers are trained on
    supervised_train: dict[str, str] = dataclasses.field(default_factory=dict)
    transfer_from: str | None = None  # supervised rankers trained here are also applied as "<m>-transfer"

    def __post_init__(self) -> None:
        if not self.seeds:
            raise ValueError("seeds: at least one seed is required")
        if self.folds < 2:
            raise ValueError(f"folds: must be ≥ 2, got {self.folds}")
        if not 0.0 < self.train_fraction < 1.0:
            raise ValueError(f"train_fraction: must be in (0, 1), got {self.train_fraction}")
        if not self.detection_offsets:
            raise ValueError("detection_offsets: at least one offset is required")
        for v in self.detection_offsets:
            offset_seconds(v)

    def offsets_s(self) -> list[float]:
        """``detection_offsets`` in seconds, the primary one first."""
        return [offset_seconds(v) for v in self.detection_offsets]


def benchmark_config(params: Mapping[str, Any]) -> BenchmarkConfig:
    """The ``benchmark:`` section of a parsed params.yaml; an unknown key is a :class:`ConfigError`."""
    return config_from_dict(BenchmarkConfig, params.get("benchmark") or {}, where="params.yaml benchmark: ")


def method_config(params: Mapping[str, Any], task: str, method: str) -> dict[str, Any]:
    """The method's section of params.yaml (``rca.<method>`` / ``detect.<method>``), or {}."""
    return dict(((params.get(task) or {}).get(method)) or {})


@dataclasses.dataclass(frozen=True)
class StageSettings:
    """Everything an rca/detect stage takes from params.yaml: the benchmark protocol, the method's
    section (checked against the method's ``Config`` when the stage builds it) and the executor."""

    bench: BenchmarkConfig = dataclasses.field(default_factory=BenchmarkConfig)
    method_config: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    executor: ExecutorConfig = LOCAL


def stage_settings(
    params: Mapping[str, Any], task: str, method: str, *, executor: ExecutorConfig | None = None
) -> StageSettings:
    """Split a parsed params.yaml into the typed settings of the ``task`` stage of ``method``;
    ``executor`` overrides the params' ``executor:`` section (the CLI's ``--executor``)."""
    if task not in TASKS:
        raise ValueError(f"task must be one of {', '.join(TASKS)}, not {task!r}")
    return StageSettings(
        bench=benchmark_config(params),
        method_config=method_config(params, task, method),
        executor=executor or executor_config(params),
    )


def load_params(path: str | Path) -> dict[str, Any]:
    """A params.yaml file as a dict ({} for an empty file); unreadable YAML is a :class:`ConfigError`."""
    import yaml

    try:
        return yaml.safe_load(Path(path).read_text()) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: {e}") from None
