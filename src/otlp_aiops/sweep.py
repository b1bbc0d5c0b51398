"""A hyper-parameter sweep of one method on one dataset: a grid over keys of the method's config,
each trial a whole benchmark run (every seed and offset, the same protocol as the rca/detect stage),
run as Ray Tune trials on a Ray executor or one after the other locally; every trial is logged to
MLflow as a nested run of one parent run, and the table of trials is written to
``benchmarks/results/sweeps/<dataset>/<task>-<method>.json``.

Settings (``params.yaml`` ``sweep:``; the DVC stage ``sweep`` runs it, so ``dvc exp run -S
'sweep.grid.damping=[0.5,0.7,0.85]'`` drives it)::

    sweep: {task: rca, dataset: sim-boutique, method: pagerank, metric: avg_at_5,
            grid: {damping: [0.7, 0.85]}}

Trials are listed in a fixed order (the grid's keys sorted, values as given), so the table and the
best trial do not depend on where or in which order the trials ran. A trial writes its results and
models into a scratch folder of its own, never into the stage outputs of the rca/detect stages.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import shutil
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from otlp_aiops.config import ConfigError
from otlp_aiops.executor import LOCAL, ExecutorConfig, executor_config
from otlp_aiops.stages.common import NO_TRACKING, Tracking, write_metrics
from otlp_aiops.stages.config import StageSettings, load_params, stage_settings


class SweepError(ValueError):
    """A sweep setting that cannot be run."""


@dataclass(frozen=True)
class SweepConfig:
    task: str = "rca"
    dataset: str = "sim-boutique"
    method: str = "pagerank"
    metric: str = "avg_at_5"
    grid: Mapping[str, Sequence[Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.task not in ("rca", "detect"):
            raise SweepError(f"sweep.task must be rca or detect, not {self.task!r}")
        if not self.grid:
            raise SweepError("sweep.grid is empty: give at least one key and its values")
        for k, vs in self.grid.items():
            if not isinstance(vs, (list, tuple)) or not vs:
                raise SweepError(f"sweep.grid.{k}: a non-empty list of values, not {vs!r}")

    def trials(self) -> list[dict[str, Any]]:
        keys = sorted(self.grid)
        combos = itertools.product(*(self.grid[k] for k in keys))
        return [dict(zip(keys, combo, strict=True)) for combo in combos]


def sweep_config(params: Mapping[str, Any]) -> SweepConfig:
    section = dict(params.get("sweep") or {})
    unknown = set(section) - {"task", "dataset", "method", "metric", "grid"}
    if unknown:
        raise SweepError(f"params.yaml sweep: unknown key(s) {', '.join(sorted(unknown))}")
    return SweepConfig(**section)


def trial_name(trial: Mapping[str, Any]) -> str:
    return ",".join(f"{k}={v}" for k, v in trial.items())


def run_trial(
    root: str, settings: StageSettings, cfg: SweepConfig, trial: Mapping[str, Any]
) -> dict[str, Any]:
    """One trial: the method's benchmark run (locally, untracked) with ``trial`` merged into its
    config, in a scratch root whose ``data`` is the real one; returns the run's metrics (headline keys)."""
    from otlp_aiops.stages.detect import detect_stage
    from otlp_aiops.stages.rca import rca_stage

    settings = dataclasses.replace(
        settings, method_config={**settings.method_config, **trial}, executor=LOCAL
    )
    scratch = Path(tempfile.mkdtemp(prefix="otlp-aiops-trial-"))
    try:
        (scratch / "data").symlink_to(Path(root).resolve() / "data", target_is_directory=True)
        stage = rca_stage if cfg.task == "rca" else detect_stage
        metrics = stage(cfg.dataset, cfg.method, settings, root=scratch, tracking=NO_TRACKING)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return {k: v for k, v in metrics.items() if "/" not in k and isinstance(v, (int, float))}


def _tune_trainable(config: dict[str, Any]) -> None:  # a Ray Tune function trainable
    from ray import tune

    tune.report(run_trial(config["root"], config["settings"], config["cfg"], config["trial"]))


def _run_tune(
    root: Path,
    settings: StageSettings,
    cfg: SweepConfig,
    trials: list[dict[str, Any]],
    executor: ExecutorConfig,
) -> list[dict[str, Any]]:
    from ray import tune

    from otlp_aiops.executor import _ray

    _ray(executor)
    storage = Path(tempfile.mkdtemp(prefix="otlp-aiops-tune-"))
    try:
        tuner = tune.Tuner(
            tune.with_resources(_tune_trainable, {"cpu": 1}),
            param_space={
                "root": str(root.resolve()),
                "settings": settings,
                "cfg": cfg,
                "trial": tune.grid_search(trials),
            },
            tune_config=tune.TuneConfig(metric=cfg.metric, mode="max"),
            run_config=tune.RunConfig(storage_path=str(storage), name="sweep", verbose=0),
        )
        grid = tuner.fit()
        by_name = {}
        for res in grid:
            if res.error:
                raise SweepError(f"trial {trial_name(res.config['trial'])} failed: {res.error}")
            by_name[trial_name(res.config["trial"])] = {
                k: v for k, v in res.metrics.items() if isinstance(v, (int, float)) and k in _METRIC_KEYS
            }
        return [by_name[trial_name(t)] for t in trials]
    finally:
        shutil.rmtree(storage, ignore_errors=True)


_METRIC_KEYS = {
    "ac_at_1",
    "ac_at_3",
    "ac_at_5",
    "avg_at_5",
    "mrr",
    "ac_at_1_std",
    "avg_at_5_std",
    "mrr_std",
    "auc_pr",
    "vus_pr",
    "range_f1",
    "best_f1",
    "false_alarms_per_hour",
}


def run_sweep(
    params: Mapping[str, Any],
    *,
    root: Path | None = None,
    executor: ExecutorConfig | None = None,
    track: bool = True,
) -> dict[str, Any]:
    """Run every trial of ``params['sweep']`` (the method's settings and the benchmark protocol from
    the same params); returns (and writes) the table of trials and the best."""
    cfg = sweep_config(params)
    settings = stage_settings(params, cfg.task, cfg.method, executor=executor)
    return sweep_stage(cfg, settings, root=root, tracking=Tracking(track, "sweep"))


def sweep_stage(
    cfg: SweepConfig, settings: StageSettings, *, root: Path | None = None, tracking: Tracking = NO_TRACKING
) -> dict[str, Any]:
    """Run every trial of ``cfg`` on ``settings`` (the method's section is the base each trial's grid
    point is merged into; ``settings.executor`` says where the trials run); returns (and writes
    ``benchmarks/results/sweeps/<dataset>/<task>-<method>.json``) the table of trials and the best."""
    root = Path(root) if root is not None else Path(".")
    trials = cfg.trials()
    if settings.executor.is_ray:
        outcomes = _run_tune(root, settings, cfg, trials, settings.executor)
    else:
        outcomes = [run_trial(str(root), settings, cfg, t) for t in trials]
    rows = [
        {"trial": trial_name(t), "config": t, **{k: v for k, v in m.items() if k in _METRIC_KEYS}}
        for t, m in zip(trials, outcomes, strict=True)
    ]
    if any(cfg.metric not in r for r in rows):
        raise SweepError(f"sweep.metric {cfg.metric!r} is not a metric of {cfg.task} {cfg.method}")
    best = max(rows, key=lambda r: (r[cfg.metric], -rows.index(r)))  # ties: the first listed
    out = {
        "task": cfg.task,
        "dataset": cfg.dataset,
        "method": cfg.method,
        "metric": cfg.metric,
        "trials": rows,
        "best": best["trial"],
        "best_config": best["config"],
        f"best_{cfg.metric}": best[cfg.metric],
    }
    with tracking.stage_run(
        "sweep", cfg.dataset, cfg.method, root=root, params={"grid": dict(cfg.grid), "metric": cfg.metric}
    ) as run:
        for r in rows:
            if tracking.enabled:
                with run.trial_run(r["trial"], r["config"]) as tr:
                    tr.log_metrics({k: v for k, v in r.items() if k in _METRIC_KEYS})
        run.log_metrics({f"best_{cfg.metric}": best[cfg.metric]})
    dest = root / "benchmarks" / "results" / "sweeps" / cfg.dataset / f"{cfg.task}-{cfg.method}.json"
    dest.parent.mkdir(parents=True, exist_ok=True)
    write_metrics(out, dest)
    return out


def sweep_parser() -> argparse.ArgumentParser:
    """``python pipelines/sweep.py [--params F] [--executor ray] [--ray-address A] [--no-track]``."""
    ap = argparse.ArgumentParser(prog="pipelines/sweep.py", description="Run params.yaml `sweep`.")
    ap.add_argument("--params", type=Path, default=Path("params.yaml"))
    ap.add_argument("--executor", choices=("local", "ray"))
    ap.add_argument("--ray-address")
    ap.add_argument("--no-track", action="store_true")
    return ap


def sweep_command(
    params_file: Path = Path("params.yaml"),
    *,
    track: bool = True,
    executor: str | None = None,
    ray_address: str | None = None,
) -> int:
    """Run the sweep of ``params_file`` and print the best trial and the table; returns the exit
    status (1 with a one-line error on stderr when it fails)."""
    try:
        params = load_params(params_file)
        cluster = executor_config(params, kind=executor, address=ray_address)
        out = run_sweep(params, executor=cluster, track=track)
    except (ConfigError, OSError, ValueError) as e:
        print(f"error: sweep: {e}", file=sys.stderr)
        return 1
    print(json.dumps({k: v for k, v in out.items() if k != "trials"}, indent=2, sort_keys=True, default=str))
    for r in out["trials"]:
        print(f"  {r['trial']}: {out['metric']} = {r[out['metric']]:.4f}")
    return 0
