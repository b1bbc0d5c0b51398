"""The benchmark stages: run one method on one dataset over the seeds, score it, and record it.

``run_rca`` and ``run_detect`` are what the DVC stages ``rca@<dataset>-<method>`` and
``detect@<dataset>-<method>`` call (through ``pipelines/rca.py`` / ``pipelines/detect.py``). Each
writes the long-form results (one row per dataset × method × seed × case × metric), a summary JSON
beside them (per fault type, per protocol variant) and the fitted models, and logs one MLflow parent
run (the headline) with a nested run per seed × offset × variant. The metrics dictionary is built once
and sent to MLflow and the JSON under the same names. Tracked files hold no timings and no run ids
(the same inputs give the same bytes); those go to MLflow and to the git-ignored stage log
``benchmarks/work/stage-logs/<task>/<dataset>/<method>.json``. The headline of every dataset ×
method is gathered by the report stage into ``metrics/leaderboard/<dataset>.json``, the pipeline's DVC metrics.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from otlp_aiops import progress, registry
from otlp_aiops.config import config_from_dict, config_to_dict
from otlp_aiops.evaluate.protocol import fault_free_split, incident_folds, subset_segments
from otlp_aiops.executor import ExecutorConfig, executor_config, run_tasks

log = logging.getLogger(__name__)


def _duration_s(value: Any) -> float:
    from otlp_aiops.config import parse_duration

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
    supervised_train: dict[str, str] = dataclasses.field(default_factory=dict)  # dataset -> training dataset
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
            _duration_s(v)


def benchmark_config(params: Mapping[str, Any]) -> BenchmarkConfig:
    return config_from_dict(BenchmarkConfig, params.get("benchmark") or {}, where="params.yaml benchmark: ")


def method_config(params: Mapping[str, Any], task: str, method: str) -> dict[str, Any]:
    """The method's section of params.yaml (``rca.<method>`` / ``detect.<method>``), or {}."""
    return dict(((params.get(task) or {}).get(method)) or {})


def dataset_label(dataset: str, offset_s: float, primary: bool) -> str:
    return dataset if primary else f"{dataset}+offset{offset_s:g}s"


def is_timing(key: str) -> bool:
    """A wall-clock value (``seconds``, ``fit_seconds``, ``<fault>/seconds``, ``…_std``): logged to
    MLflow and the git-ignored stage log, never to a tracked file (the same inputs must give the
    same bytes)."""
    last = key.rsplit("/", 1)[-1]
    last = last[:-4] if last.endswith("_std") else last
    return last.endswith("seconds")


def stage_files(root: Path, task: str, dataset: str, method: str) -> dict[str, Path]:
    """Where one rca/detect stage writes: ``results`` (long form, tracked), ``summary`` (per-fault
    and protocol-variant breakdown, tracked, no timings) and ``log`` (timings and MLflow run ids,
    git-ignored under benchmarks/work/)."""
    base = root / "benchmarks" / "results" / task / dataset
    return {"results": base / f"{method}.parquet", "summary": base / f"{method}.json",
            "log": root / "benchmarks" / "work" / "stage-logs" / task / dataset / f"{method}.json"}


def _split_rows(rows: list[dict]) -> tuple[list[dict], list[dict]]:
    """Long-form rows -> (tracked rows without timings and with no run id, timing rows with it)."""
    tracked, timing = [], []
    for r in rows:
        (timing if is_timing(r["metric"]) else tracked).append(r)
    return [{**r, "run_id": ""} for r in tracked], timing


def _write_stage_log(path: Path, metrics: Mapping[str, Any], rows: list[dict], parent_run_id: str) -> None:
    runs = sorted({(r["dataset"], r["method"], int(r["seed"]), r.get("run_id") or "") for r in rows})
    log_doc = {"parent_run_id": parent_run_id,
               "timings": {k: v for k, v in metrics.items() if is_timing(k)},
               "runs": [{"dataset": d, "method": m, "seed": s, "run_id": i} for d, m, s, i in runs],
               "timing_rows": [{k: r[k] for k in ("dataset", "method", "seed", "case_id", "metric", "value")}
                               for r in rows if is_timing(r["metric"])]}
    write_metrics(log_doc, path)


# --- writing -------------------------------------------------------------------------------------


def _atomic_write(path: Path, write) -> None:
    from otlp_aiops.outputs import atomic_write_with

    atomic_write_with(path, write)


def write_results(rows: list[dict], path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pa.schema([("dataset", pa.string()), ("task", pa.string()), ("method", pa.string()),
                        ("seed", pa.int64()), ("case_id", pa.string()), ("fault_type", pa.string()),
                        ("metric", pa.string()), ("value", pa.float64()), ("run_id", pa.string())])
    table = pa.Table.from_pylist(rows, schema=schema)
    _atomic_write(path, lambda p: pq.write_table(table, p))


def write_metrics(metrics: Mapping[str, Any], path: Path) -> None:
    """A JSON document, keys sorted, non-finite floats as null, written atomically."""
    def clean(v: Any) -> Any:
        if isinstance(v, float) and not math.isfinite(v):
            return None
        if isinstance(v, Mapping):
            return {k: clean(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [clean(x) for x in v]
        return v

    text = json.dumps(clean(dict(metrics)), indent=2, sort_keys=True) + "\n"
    _atomic_write(path, lambda p: p.write_text(text))


def _mean_std(per_seed: list[dict[str, float]]) -> dict[str, float]:
    out: dict[str, float] = {}
    for k in per_seed[0]:
        vals = np.array([d.get(k, math.nan) for d in per_seed], dtype=float)
        vals = vals[np.isfinite(vals)]
        if len(vals):
            out[k] = float(vals.mean())
            if len(per_seed) > 1:
                out[f"{k}_std"] = float(vals.std(ddof=1)) if len(vals) > 1 else 0.0
    return out


# --- RCA -----------------------------------------------------------------------------------------


def _rank_all(ranker: Any, cases: Sequence[Any]) -> list[tuple[Any, Any, float]]:
    out = []
    for c in cases:
        t0 = time.perf_counter()
        ranking = ranker.rank(c)
        out.append((c, ranking, time.perf_counter() - t0))
        progress.advance(1, note=str(c.case_id))
    return out


def _case_table(ranked: list[tuple[Any, Any, float]]) -> Any:
    import pandas as pd

    return pd.DataFrame([{
        "case_id": c.case_id, "fault_type": c.fault_type, "root_cause_service": c.root_cause_service,
        "rank": r.rank_of(c.root_cause_service) if c.root_cause_service else None,
        "top5": ", ".join(r.top(5)), "top_indicators": ", ".join(f"{s}:{f}" for s, f, _ in r.indicators[:3]),
        "seconds": secs,
    } for c, r, secs in ranked])


def run_rca(dataset: str, method: str, params: Mapping[str, Any], *, root: Path | None = None,
            dvc_stage: str | None = None, track: bool = True,
            executor: ExecutorConfig | None = None) -> dict[str, Any]:
    """Run ranker ``method`` on every labelled case of ``dataset`` over the seeds; returns the
    metrics dictionary: headline keys (``ac_at_1``, …), ``<fault>/<metric>`` and
    ``<dataset label>/<variant>/<metric>`` for the other offsets and transfer variants. Written, less
    its timings, to ``benchmarks/results/rca/<dataset>/<method>.json`` (:func:`stage_files`).

    Paths are relative to ``root`` (default: the working directory, where DVC runs stages); the
    MLflow store is at ``root`` when given, else at the repository root (:mod:`otlp_aiops.tracking`)."""
    track_root = root.resolve() if root is not None else None
    root = root if root is not None else Path(".")
    from otlp_aiops import tracking
    from otlp_aiops.evaluate.rca import aggregate_rca, rca_case_result, rca_long_rows
    from otlp_aiops.features.store import load_cases, load_reference

    bench = benchmark_config(params)
    cfg_dict = method_config(params, "rca", method)
    cls = registry.model_class("ranker", method)
    cfg = config_from_dict(cls.Config, cfg_dict, where=f"params.yaml rca.{method}: ")
    seeds = list(bench.seeds) if cls.stochastic else list(bench.seeds[:1])
    fdir = root / "data" / "features" / dataset
    reference = load_reference(fdir)
    offsets = [_duration_s(v) for v in bench.detection_offsets]

    # supervised rankers: where they learn (never from a test incident)
    train_ds = bench.supervised_train.get(dataset) if cls.supervised else None
    transfer_ds = bench.transfer_from if cls.supervised and bench.transfer_from not in (None, dataset, train_ds) else None
    train_sets: dict[str, tuple[Any, list[Any]]] = {}
    for ds in {d for d in (train_ds, transfer_ds) if d}:
        tdir = root / "data" / "features" / ds
        train_sets[ds] = (load_reference(tdir), [c for c in load_cases(tdir) if c.root_cause_service])

    variants = [(method, train_ds)] + ([(f"{method}-transfer", transfer_ds)] if transfer_ds else [])
    rows: list[dict] = []
    metrics: dict[str, Any] = {"dataset": dataset, "method": method, "seeds": len(seeds)}
    inputs = [f"data/features/{dataset}", *(f"data/features/{d}" for d in train_sets)]
    run_params = {"method": method, "config": config_to_dict(cfg), "seeds": seeds,
                  "detection_offsets": list(bench.detection_offsets),
                  "protocol": ("unsupervised" if not cls.supervised else
                               f"trained on {train_ds}" if train_ds else f"{bench.folds}-fold over incidents"),
                  **({"transfer_from": transfer_ds} if transfer_ds else {})}
    models_dir = root / "models" / dataset / "rca" / method
    executor = executor or executor_config(params)
    task_models_dir = models_dir.resolve() if executor.is_ray else models_dir  # Ray workers: another cwd

    with (tracking.stage_run("rca", dataset, method, params=run_params, dvc_stage=dvc_stage, inputs=inputs,
                             root=track_root, offset=",".join(bench.detection_offsets))
          if track else _NullRun()) as run, progress.task(f"rca {dataset} {method}", unit="cases") as bar:
        for oi, offset in enumerate(offsets):
            label = dataset_label(dataset, offset, oi == 0)
            cases = [c for c in load_cases(fdir, detection_offset=offset) if c.root_cause_service]
            if not cases:
                raise ValueError(f"{fdir}: no labelled cases to evaluate")
            if oi == 0:  # progress: every case once per offset × variant × seed
                bar.set_total(len(offsets) * len(variants) * len(seeds) * len(cases))
            for variant, train_on in variants:
                per_seed: list[dict[str, float]] = []
                # the seeds as tasks (:mod:`otlp_aiops.executor`); logged below in seed order
                tasks = [(cls, cfg, seed, reference, cases, train_on, train_sets, bench,
                          task_models_dir if oi == 0 else None, variant) for seed in seeds]
                n_cases = len(cases)
                outcomes = run_tasks(_run_ranker_seed, tasks, executor,
                                     on_done=(lambda _i, _r, n=n_cases: bar.advance(n)) if executor.is_ray else None)
                for seed, (ranked, fit_s, history) in zip(seeds, outcomes, strict=True):
                    with run.seed_run(seed, dataset=label, method=variant,
                                      offset=str(bench.detection_offsets[oi])) as sr:
                        results = [rca_case_result(c.case_id, r, c.root_cause_service, fault_type=c.fault_type,
                                                   seconds=s, root_cause_indicator=c.root_cause_indicator)
                                   for c, r, s in ranked]
                        summary = aggregate_rca(results).flat()
                        summary["fit_seconds"] = fit_s
                        per_seed.append(summary)
                        # the nested run is one label × variant × seed: the same names as the JSON
                        sr.log_metrics({k: v for k, v in summary.items() if "/" not in k})
                        sr.log_dict(_by_fault(summary), f"by_fault/{label}/{variant}.json")
                        _log_history(sr, history)
                        sr.log_table(_case_table(ranked), f"cases/{label}/{variant}.csv")
                        rows.extend(rca_long_rows(results, dataset=label, method=variant, seed=seed,
                                                  run_id=sr.run_id))
                agg = _mean_std(per_seed)
                key = "" if (oi == 0 and variant == method) else f"{label}/{variant}/"
                for k, v in agg.items():
                    metrics[f"{key}{k}"] = v
        # the parent: the headline (primary offset, the method itself), under the JSON's names
        run.log_metrics({k: v for k, v in metrics.items() if "/" not in k and isinstance(v, float)})
        files = stage_files(root, "rca", dataset, method)
        for r in rows:
            r["run_id"] = r.get("run_id") or run.run_id
        tracked, _ = _split_rows(rows)
        write_results(tracked, files["results"])
        write_metrics({k: v for k, v in metrics.items() if not is_timing(k)}, files["summary"])
        _write_stage_log(files["log"], metrics, rows, run.run_id)
        if track:
            run.log_artifact(files["results"], "results")
            run.log_artifact(files["summary"], "results")
            _log_ac_curve(run, rows, method)
    return metrics


def _by_fault(summary: Mapping[str, float]) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for k, v in summary.items():
        if "/" in k:
            ft, m = k.rsplit("/", 1)
            out.setdefault(ft, {})[m] = v
    return out


def training_history(model: Any) -> dict[str, list[float]]:
    """Per-epoch losses a fitted model exposes: ``train_loss_`` / ``val_loss_`` (deep detectors) or
    ``train_info_["history"]`` (``[[train, val], …]``, the GNN / MLP rankers); {} for the others."""
    out: dict[str, list[float]] = {}
    if isinstance(getattr(model, "train_loss_", None), (list, tuple)):
        out["train_loss"] = [float(v) for v in model.train_loss_]
        if isinstance(getattr(model, "val_loss_", None), (list, tuple)) and len(model.val_loss_):
            out["val_loss"] = [float(v) for v in model.val_loss_]
        return out
    info = getattr(model, "train_info_", None)
    hist = info.get("history") if isinstance(info, Mapping) else None
    if hist:
        out["train_loss"] = [float(h[0]) for h in hist]
        if any(len(h) > 1 and math.isfinite(float(h[1])) for h in hist):
            out["val_loss"] = [float(h[1]) for h in hist]
    return out


def _log_history(run: Any, history: Mapping[str, list[float]]) -> None:
    for name, values in history.items():
        run.log_curve(name, values)


def _run_ranker_seed(cls, cfg, seed, reference, cases, train_on, train_sets, bench, models_dir, variant):
    t0 = time.perf_counter()
    if not cls.supervised:
        ranker = cls(cfg, seed=seed).fit(reference)
        fit_s = time.perf_counter() - t0
        ranked = _rank_all(ranker, cases)
        if models_dir is not None:
            ranker.save(models_dir / f"seed-{seed}")
        return ranked, fit_s, training_history(ranker)
    if train_on:
        tref, tcases = train_sets[train_on]
        ranker = cls(cfg, seed=seed).fit(tref, tcases)
        fit_s = time.perf_counter() - t0
        if models_dir is not None:
            ranker.save(models_dir / f"{variant}-seed-{seed}")
        return _rank_all(ranker, cases), fit_s, training_history(ranker)
    ranked_by_id: dict[str, tuple[Any, Any, float]] = {}
    fit_s = 0.0
    history: dict[str, list[float]] = {}  # the first fold's curve
    for f, (train_idx, test_idx) in enumerate(incident_folds([c.case_id for c in cases], bench.folds, seed)):
        t1 = time.perf_counter()
        ranker = cls(cfg, seed=seed).fit(reference, [cases[i] for i in train_idx])
        fit_s += time.perf_counter() - t1
        history = history or training_history(ranker)
        for item in _rank_all(ranker, [cases[i] for i in test_idx]):
            ranked_by_id[item[0].case_id] = item
        if models_dir is not None:
            ranker.save(models_dir / f"seed-{seed}-fold-{f}")
    return [ranked_by_id[c.case_id] for c in cases], fit_s, history


def _log_ac_curve(run: Any, rows: list[dict], method: str) -> None:
    import pandas as pd
    from matplotlib.figure import Figure

    df = pd.DataFrame(rows)
    ranks = df[df.metric == "rank"]
    if ranks.empty:
        return
    fig = Figure(figsize=(5, 3.2))
    ax = fig.subplots()
    kmax = int(df[df.metric == "n_services"].value.max())
    ks = np.arange(1, kmax + 1)
    for (label, variant), g in ranks.groupby(["dataset", "method"]):
        r = g.value.to_numpy()
        ax.plot(ks, [(np.nan_to_num(r, nan=np.inf) <= k).mean() for k in ks], marker=".", label=f"{variant} · {label}")
    ax.set_xlabel("k")
    ax.set_ylabel("AC@k")
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    run.log_figure(fig, f"ac_at_k_{method}.png")


class _NullRun:
    """Stands in for an MLflow run when tracking is off (unit tests of the stage logic)."""

    run_id = ""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def seed_run(self, seed, params=None, **names):
        return self

    def log_metrics(self, metrics, step=None):
        pass

    def log_curve(self, name, values, start=1):
        pass

    def log_dict(self, d, name):
        pass

    def log_table(self, df, name):
        pass

    def log_artifact(self, path, folder=None):
        pass


# --- anomaly detection ---------------------------------------------------------------------------


def run_detect(dataset: str, method: str, params: Mapping[str, Any], *, root: Path | None = None,
               dvc_stage: str | None = None, track: bool = True,
               executor: ExecutorConfig | None = None) -> dict[str, Any]:
    """Fit detector ``method`` on the earliest ``train_fraction`` of the fault-free windows, score every
    other window, and evaluate against the labelled incidents (over the seeds when it is stochastic).
    Paths and the MLflow store as in :func:`run_rca`."""
    track_root = root.resolve() if root is not None else None
    root = root if root is not None else Path(".")
    from otlp_aiops import tracking
    from otlp_aiops.evaluate.detection import detection_long_rows, evaluate_detection
    from otlp_aiops.features.store import load_detection

    bench = benchmark_config(params)
    cls = registry.model_class("detector", method)
    cfg = config_from_dict(cls.Config, method_config(params, "detect", method), where=f"params.yaml detect.{method}: ")
    seeds = list(bench.seeds) if cls.stochastic else list(bench.seeds[:1])
    fdir = root / "data" / "features" / dataset
    data = load_detection(fdir)
    train = fault_free_split(data.times, data.fault_free, bench.train_fraction)
    test = ~train
    if train.sum() < 2 or test.sum() < 1:
        raise ValueError(f"{fdir}: too few windows to split ({int(train.sum())} training, {int(test.sum())} test)")
    incident_ids = sorted({i for i in data.incident[test] if i})
    executor = executor or executor_config(params)
    fault_types = _incident_fault_types(root / "data" / "raw" / dataset)
    rows: list[dict] = []
    per_seed: list[dict[str, float]] = []
    run_params = {"method": method, "config": config_to_dict(cfg), "seeds": seeds,
                  "train_fraction": bench.train_fraction, "train_windows": int(train.sum()),
                  "test_windows": int(test.sum()), "test_incidents": len(incident_ids)}
    with (tracking.stage_run("detect", dataset, method, params=run_params, dvc_stage=dvc_stage,
                             inputs=[f"data/features/{dataset}"], root=track_root) if track else _NullRun()) as run, \
            progress.task(f"detect {dataset} {method}", total=len(seeds), unit="seeds") as bar:
        models_dir = root / "models" / dataset / "detect" / method
        tasks = [(cls, cfg, seed, data, train, test, models_dir.resolve() if executor.is_ray else models_dir)
                 for seed in seeds]
        outcomes = run_tasks(_run_detector_seed, tasks, executor,
                             on_done=lambda i, _r: bar.advance(1, note=f"seed {seeds[i]}"))
        for seed, (det, scores, fit_s, score_s) in zip(seeds, outcomes, strict=True):
            with run.seed_run(seed, dataset=dataset, method=method) as sr:
                res = evaluate_detection(scores, data.label[test], data.incident[test], data.times[test],
                                         det.threshold_, fault_free=data.fault_free[test],
                                         window_seconds=data.window_seconds)
                m = {**res.metrics, "fit_seconds": fit_s, "score_seconds": score_s}
                per_seed.append(m)
                sr.log_metrics(m)
                _log_history(sr, training_history(det))
                rows.extend(detection_long_rows(res, dataset=dataset, method=method, seed=seed, run_id=sr.run_id,
                                                fault_types=fault_types))
                if track and seed == seeds[0]:
                    _log_score_figure(sr, data, test, scores, det.threshold_, method)
        metrics: dict[str, Any] = {"dataset": dataset, "method": method, "seeds": len(seeds), **_mean_std(per_seed)}
        run.log_metrics({k: v for k, v in metrics.items() if isinstance(v, float)})
        files = stage_files(root, "detect", dataset, method)
        for r in rows:
            r["run_id"] = r.get("run_id") or run.run_id
        tracked, _ = _split_rows(rows)
        write_results(tracked, files["results"])
        write_metrics({k: v for k, v in metrics.items() if not is_timing(k)}, files["summary"])
        _write_stage_log(files["log"], metrics, rows, run.run_id)
        if track:
            run.log_artifact(files["results"], "results")
    return metrics


def _run_detector_seed(cls, cfg, seed, data, train, test, models_dir):
    """One seed of a detector: fit on ``train`` windows, score ``test``, save; a task of the executor."""
    t0 = time.perf_counter()
    det = cls(cfg, seed=seed).fit(data.X[train], subset_segments(train, data.segment))
    fit_s = time.perf_counter() - t0
    t1 = time.perf_counter()
    scores = det.score(data.X[test], subset_segments(test, data.segment))
    score_s = time.perf_counter() - t1
    det.save(models_dir / f"seed-{seed}")
    return det, scores, fit_s, score_s


def _incident_fault_types(raw_dir: Path) -> dict[str, str]:
    path = raw_dir / "incidents.parquet"
    if not path.exists():
        return {}
    import pyarrow.parquet as pq

    t = pq.read_table(path, columns=["incident_id", "fault_type"]).to_pylist()
    return {r["incident_id"]: r["fault_type"] or "unknown" for r in t}


def _log_score_figure(run: Any, data: Any, test: np.ndarray, scores: np.ndarray, threshold: float, method: str) -> None:
    from matplotlib.figure import Figure

    t = data.times[test]
    fig = Figure(figsize=(8, 2.8))
    ax = fig.subplots()
    ax.plot(t, scores, lw=0.8, label=f"{method} score")
    ax.axhline(threshold, color="k", ls="--", lw=0.8, label="threshold")
    lab = data.label[test].astype(bool)
    ymax = np.nanmax(scores) if np.isfinite(scores).any() else 1.0
    ax.fill_between(t, 0, ymax, where=lab, color="tab:red", alpha=0.2, step="post", label="incident")
    ax.legend(fontsize=7, loc="upper right")
    fig.autofmt_xdate()
    fig.tight_layout()
    run.log_figure(fig, f"scores_{method}.png")


# --- the stage entry points ----------------------------------------------------------------------


def stage_main(task: str, argv: list[str] | None = None) -> int:
    """``python pipelines/<task>.py DATASET METHOD [--params F] [--no-track]``: what the DVC stages
    ``rca@<dataset>-<method>`` and ``detect@<dataset>-<method>`` run."""
    import argparse
    import sys

    import yaml

    from otlp_aiops.config import ConfigError

    ap = argparse.ArgumentParser(prog=f"pipelines/{task}.py",
                                 description=f"Evaluate one {'root-cause ranker' if task == 'rca' else 'anomaly detector'} "
                                             "on one dataset over the seeds of params.yaml `benchmark`.")
    ap.add_argument("dataset")
    ap.add_argument("method")
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--no-track", action="store_true", help="Do not log to MLflow.")
    ap.add_argument("--executor", choices=("local", "ray"), help="Where the seeds run (default: params.yaml executor).")
    ap.add_argument("--ray-address", help="The Ray cluster to join (auto, host:port, ray://host:port).")
    args = ap.parse_args(argv)
    from otlp_aiops.outputs import OutputError, check_name

    try:  # both become path components (results, metrics, models)
        check_name(args.dataset)
        check_name(args.method, "method")
    except OutputError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    run = run_rca if task == "rca" else run_detect
    try:
        params = yaml.safe_load(Path(args.params).read_text()) or {}
        executor = executor_config(params, kind=args.executor, address=args.ray_address)
        metrics = run(args.dataset, args.method, params, dvc_stage=f"{task}@{args.dataset}-{args.method}",
                      track=not args.no_track, executor=executor)
    except (ConfigError, OSError, ValueError, yaml.YAMLError) as e:
        print(f"error: {task} {args.dataset} {args.method}: {e}", file=sys.stderr)
        return 1
    headline = {k: v for k, v in metrics.items() if "/" not in k and "|" not in k}
    print(json.dumps(headline, indent=2, sort_keys=True, default=str))
    return 0
