"""A hyper-parameter sweep of one method on one dataset: a grid over keys of the method's config,
each trial a whole benchmark run (every seed and offset, the same protocol as the rca/detect stage),
run as Ray Tune trials on a Ray executor or one after the other locally; every trial is logged to
MLflow as a nested run of one parent run, and the table of trials is written to
``benchmarks/results/sweeps/<dataset>/<task>-<method>.json``.

Settings (``params.yaml`` ``sweep:``; the DVC stage ``sweep`` runs it, so ``dvc exp run -S
'sweep.grid.damping=[0.5,0.7,0.85]'`` drives it)::

    sweep: {task: rca, dataset: sim-boutique, method: pagerank, metric: avg_at_5, grid: {damping: [0.7, 0.85]}}

Trials are listed in a fixed order (the grid's keys sorted, values as given), so the table and the
best trial do not depend on where or in which order the trials ran. A trial writes its results and
models into a scratch folder of its own, never into the stage outputs of the rca/detect stages.
"""

from __future__ import annotations

import copy
import itertools
import json
import os
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from otlp_aiops.executor import LOCAL, ExecutorConfig, executor_config


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
        return [dict(zip(keys, combo, strict=True)) for combo in itertools.product(*(self.grid[k] for k in keys))]


def sweep_config(params: Mapping[str, Any]) -> SweepConfig:
    section = dict(params.get("sweep") or {})
    unknown = set(section) - {"task", "dataset", "method", "metric", "grid"}
    if unknown:
        raise SweepError(f"params.yaml sweep: unknown key(s) {', '.join(sorted(unknown))}")
    return SweepConfig(**section)


def trial_name(trial: Mapping[str, Any]) -> str:
    return ",".join(f"{k}={v}" for k, v in trial.items())


def _trial_params(params: Mapping[str, Any], cfg: SweepConfig, trial: Mapping[str, Any]) -> dict[str, Any]:
    p = copy.deepcopy(dict(params))
    section = p.setdefault(cfg.task, {}).setdefault(cfg.method, {}) or {}
    section.update(trial)
    p[cfg.task][cfg.method] = section
    return p


def run_trial(root: str, params: Mapping[str, Any], cfg: SweepConfig, trial: Mapping[str, Any]) -> dict[str, Any]:
    """One trial: the method's benchmark run with ``trial`` merged into its config, in a scratch root
    whose ``data`` is the real one; returns the run's metrics (headline keys)."""
    from otlp_aiops.evaluate.benchmark import run_detect, run_rca

    scratch = Path(tempfile.mkdtemp(prefix="otlp-aiops-trial-"))
    try:
        (scratch / "data").symlink_to(Path(root).resolve() / "data", target_is_directory=True)
        run = run_rca if cfg.task == "rca" else run_detect
        metrics = run(cfg.dataset, cfg.method, _trial_params(params, cfg, trial), root=scratch, track=False,
                      executor=LOCAL)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return {k: v for k, v in metrics.items() if "/" not in k and isinstance(v, (int, float))}


def _tune_trainable(config: dict[str, Any]) -> None:  # a Ray Tune function trainable
    from ray import tune

    tune.report(run_trial(config["root"], config["params"], config["cfg"], config["trial"]))


def _run_tune(root: Path, params: Mapping[str, Any], cfg: SweepConfig, trials: list[dict[str, Any]],
              executor: ExecutorConfig) -> list[dict[str, Any]]:
    from ray import tune

    from otlp_aiops.executor import _ray

    _ray(executor)
    storage = Path(tempfile.mkdtemp(prefix="otlp-aiops-tune-"))
    try:
        tuner = tune.Tuner(
            tune.with_resources(_tune_trainable, {"cpu": 1}),
            param_space={"root": str(root.resolve()), "params": dict(params), "cfg": cfg,
                         "trial": tune.grid_search(trials)},
            tune_config=tune.TuneConfig(metric=cfg.metric, mode="max"),
            run_config=tune.RunConfig(storage_path=str(storage), name="sweep", verbose=0),
        )
        grid = tuner.fit()
        by_name = {}
        for res in grid:
            if res.error:
                raise SweepError(f"trial {trial_name(res.config['trial'])} failed: {res.error}")
            by_name[trial_name(res.config["trial"])] = {k: v for k, v in res.metrics.items()
                                                        if isinstance(v, (int, float)) and k in _METRIC_KEYS}
        return [by_name[trial_name(t)] for t in trials]
    finally:
        shutil.rmtree(storage, ignore_errors=True)


_METRIC_KEYS = {"ac_at_1", "ac_at_3", "ac_at_5", "avg_at_5", "mrr", "ac_at_1_std", "avg_at_5_std", "mrr_std",
                "auc_pr", "vus_pr", "range_f1", "best_f1", "false_alarms_per_hour"}


def run_sweep(params: Mapping[str, Any], *, root: Path | None = None, executor: ExecutorConfig | None = None,
              track: bool = True) -> dict[str, Any]:
    """Run every trial of ``params['sweep']``; returns (and writes) the table of trials and the best."""
    from otlp_aiops import tracking
    from otlp_aiops.evaluate.benchmark import _NullRun, write_metrics

    cfg = sweep_config(params)
    root = Path(root) if root is not None else Path(".")
    executor = executor or executor_config(params)
    trials = cfg.trials()
    if executor.is_ray:
        outcomes = _run_tune(root, params, cfg, trials, executor)
    else:
        outcomes = [run_trial(str(root), params, cfg, t) for t in trials]
    rows = [{"trial": trial_name(t), "config": t, **{k: v for k, v in m.items() if k in _METRIC_KEYS}}
            for t, m in zip(trials, outcomes, strict=True)]
    if any(cfg.metric not in r for r in rows):
        raise SweepError(f"sweep.metric {cfg.metric!r} is not a metric of {cfg.task} {cfg.method}")
    best = max(rows, key=lambda r: (r[cfg.metric], -rows.index(r)))  # ties: the first listed
    out = {"task": cfg.task, "dataset": cfg.dataset, "method": cfg.method, "metric": cfg.metric,
           "trials": rows, "best": best["trial"], "best_config": best["config"], f"best_{cfg.metric}": best[cfg.metric]}
    with (tracking.stage_run("sweep", cfg.dataset, cfg.method, params={"grid": dict(cfg.grid), "metric": cfg.metric},
                             dvc_stage="sweep", root=root.resolve() if track else None)
          if track else _NullRun()) as run:
        for r in rows:
            if track:
                with run.trial_run(r["trial"], r["config"]) as tr:
                    tr.log_metrics({k: v for k, v in r.items() if k in _METRIC_KEYS})
        run.log_metrics({f"best_{cfg.metric}": best[cfg.metric]})
    dest = root / "benchmarks" / "results" / "sweeps" / cfg.dataset / f"{cfg.task}-{cfg.method}.json"
    dest.parent.mkdir(parents=True, exist_ok=True)
    write_metrics(out, dest)
    return out


def main(argv: list[str] | None = None) -> int:
    """``python pipelines/sweep.py [--params F] [--executor ray] [--ray-address A] [--no-track]``."""
    import argparse
    import sys

    import yaml

    from otlp_aiops.config import ConfigError

    ap = argparse.ArgumentParser(prog="pipelines/sweep.py", description="Run params.yaml `sweep`.")
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--executor", choices=("local", "ray"))
    ap.add_argument("--ray-address")
    ap.add_argument("--no-track", action="store_true")
    args = ap.parse_args(argv)
    try:
        params = yaml.safe_load(Path(args.params).read_text()) or {}
        executor = executor_config(params, kind=args.executor, address=args.ray_address)
        out = run_sweep(params, executor=executor, track=not args.no_track)
    except (ConfigError, OSError, ValueError, yaml.YAMLError) as e:
        print(f"error: sweep: {e}", file=sys.stderr)
        return 1
    print(json.dumps({k: v for k, v in out.items() if k != "trials"}, indent=2, sort_keys=True, default=str))
    for r in out["trials"]:
        print(f"  {r['trial']}: {out['metric']} = {r[out['metric']]:.4f}")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    raise SystemExit(main())
