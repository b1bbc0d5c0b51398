"""The entry point of the rca and detect stages, shared by ``pipelines/rca.py``,
``pipelines/detect.py`` and the CLI's ``rca`` / ``detect``: :func:`stage_parser` reads the command
line, :func:`stage_command` loads params.yaml, runs the stage and prints its headline."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from otlp_aiops.config import ConfigError
from otlp_aiops.executor import executor_config
from otlp_aiops.stages.common import Tracking, headline
from otlp_aiops.stages.config import TASKS, load_params, stage_settings

# rca_stage / detect_stage: (dataset, method, settings, *, root=None, tracking=None) -> metrics
StageFunction = Callable[..., dict[str, Any]]
_WHAT = {"rca": "root-cause ranker", "detect": "anomaly detector"}


def stage_parser(task: str) -> argparse.ArgumentParser:
    """``python pipelines/<task>.py DATASET METHOD [--params F] [--no-track] [--executor K]
    [--ray-address A]``: what the DVC stages ``rca@<dataset>-<method>`` and
    ``detect@<dataset>-<method>`` run."""
    ap = argparse.ArgumentParser(
        prog=f"pipelines/{task}.py",
        description=f"Evaluate one {_WHAT[task]} on one dataset over the seeds of params.yaml `benchmark`.",
    )
    ap.add_argument("dataset")
    ap.add_argument("method")
    ap.add_argument("--params", type=Path, default=Path("params.yaml"))
    ap.add_argument("--no-track", action="store_true", help="Do not log to MLflow.")
    ap.add_argument(
        "--executor", choices=("local", "ray"), help="Where the seeds run (default: params.yaml executor)."
    )
    ap.add_argument("--ray-address", help="The Ray cluster to join (auto, host:port, ray://host:port).")
    return ap


def stage_command(
    task: str,
    dataset: str,
    method: str,
    params_file: Path = Path("params.yaml"),
    *,
    stage: StageFunction,
    track: bool = True,
    executor: str | None = None,
    ray_address: str | None = None,
) -> int:
    """Run ``stage`` (the ``task`` stage: :func:`~otlp_aiops.stages.rca.rca_stage` or
    :func:`~otlp_aiops.stages.detect.detect_stage`) of ``method`` on ``dataset`` with the settings of
    ``params_file`` and print its headline metrics as JSON; returns the exit status (2: a bad name,
    1: a failed run, each with a one-line error on stderr). The caller names the stage function, so
    the rca stage's script imports nothing of the detect stage and the other way round."""
    from otlp_aiops.outputs import OutputError, check_name

    if task not in TASKS:
        raise ValueError(f"task must be one of {', '.join(TASKS)}, not {task!r}")
    try:  # both become path components (results, metrics, models)
        check_name(dataset)
        check_name(method, "method")
    except OutputError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    try:
        params = load_params(params_file)
        cluster = executor_config(params, kind=executor, address=ray_address)
        settings = stage_settings(params, task, method, executor=cluster)
        metrics = stage(dataset, method, settings, tracking=Tracking(track, f"{task}@{dataset}-{method}"))
    except (ConfigError, OSError, ValueError) as e:
        print(f"error: {task} {dataset} {method}: {e}", file=sys.stderr)
        return 1
    print(json.dumps(headline(metrics), indent=2, sort_keys=True, default=str))
    return 0
