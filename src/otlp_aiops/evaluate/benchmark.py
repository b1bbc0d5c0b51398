"""The benchmark stages: run one method on one dataset over the seeds, score it, and record it.

``run_rca`` and ``run_detect`` are what the DVC stages ``rca@<dataset>-<method>`` and
``detect@<dataset>-<method>`` call (through ``pipelines/rca.py`` / ``pipelines/detect.py``). Each
writes the long-form results (one row per dataset × method × seed × case × metric, with the MLflow
run id), the stage's DVC metrics JSON and the fitted models, and logs one MLflow parent run with a
nested run per seed. The metrics dictionary is built once and sent to both MLflow and DVC.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from otlp_aiops import registry
from otlp_aiops.config import config_from_dict, config_to_dict
from otlp_aiops.evaluate.protocol import fault_free_split, incident_folds, subset_segments

log = logging.getLogger(__name__)


def _duration_s(value: Any) -> float:
    from otlp_aiops.features.config import parse_duration

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


# --- writing -------------------------------------------------------------------------------------


def _atomic_write(path: Path, write) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_results(rows: list[dict], path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pa.schema([("dataset", pa.string()), ("task", pa.string()), ("method", pa.string()),
                        ("seed", pa.int64()), ("case_id", pa.string()), ("fault_type", pa.string()),
                        ("metric", pa.string()), ("value", pa.float64()), ("run_id", pa.string())])
    table = pa.Table.from_pylist(rows, schema=schema)
    _atomic_write(path, lambda p: pq.write_table(table, p))


def write_metrics(metrics: Mapping[str, Any], path: Path) -> None:
    def clean(v: Any) -> Any:
        if isinstance(v, float) and not math.isfinite(v):
            return None
        if isinstance(v, Mapping):
            return {k: clean(x) for k, x in v.items()}
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
            dvc_stage: str | None = None, track: bool = True) -> dict[str, Any]:
    """Run ranker ``method`` on every labelled case of ``dataset`` over the seeds; returns the
    metrics dictionary (also written to ``metrics/rca/<dataset>/<method>.json``).

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

    with (tracking.stage_run("rca", dataset, method, params=run_params, dvc_stage=dvc_stage, inputs=inputs, root=track_root)
          if track else _NullRun()) as run:
        for oi, offset in enumerate(offsets):
            label = dataset_label(dataset, offset, oi == 0)
            cases = [c for c in load_cases(fdir, detection_offset=offset) if c.root_cause_service]
            if not cases:
                raise ValueError(f"{fdir}: no labelled cases to evaluate")
            for variant, train_on in variants:
                per_seed: list[dict[str, float]] = []
                for seed in seeds:
                    with run.seed_run(seed, {"variant": variant, "dataset_label": label}) as sr:
                        ranked, fit_s = _run_ranker_seed(cls, cfg, seed, reference, cases, train_on, train_sets,
                                                         bench, models_dir if oi == 0 else None, variant)
                        results = [rca_case_result(c.case_id, r, c.root_cause_service, fault_type=c.fault_type,
                                                   seconds=s) for c, r, s in ranked]
                        summary = aggregate_rca(results).flat()
                        summary["fit_seconds"] = fit_s
                        per_seed.append(summary)
                        prefix = "" if (oi == 0 and variant == method) else f"{label}|{variant}|"
                        sr.log_metrics({_mlflow_key(prefix + k): v for k, v in summary.items()})
                        sr.log_table(_case_table(ranked), f"cases/{label}/{variant}.csv")
                        rows.extend(rca_long_rows(results, dataset=label, method=variant, seed=seed,
                                                  run_id=sr.run_id))
                agg = _mean_std(per_seed)
                key = "" if (oi == 0 and variant == method) else f"{label}/{variant}/"
                for k, v in agg.items():
                    metrics[f"{key}{k}"] = v
        run.log_metrics({_mlflow_key(k): v for k, v in metrics.items() if isinstance(v, float) and math.isfinite(v)})
        results_path = root / "benchmarks" / "results" / "rca" / dataset / f"{method}.parquet"
        for r in rows:
            r.setdefault("run_id", run.run_id)
        write_results(rows, results_path)
        if track:
            run.log_artifact(results_path, "results")
            _log_ac_curve(run, rows, method)
    write_metrics(metrics, root / "metrics" / "rca" / dataset / f"{method}.json")
    return metrics


def _mlflow_key(k: str) -> str:
    # MLflow allows letters, digits, _ - . space / : only
    return "".join(ch if ch.isalnum() or ch in "_-. /:" else "_" for ch in k)


def _run_ranker_seed(cls, cfg, seed, reference, cases, train_on, train_sets, bench, models_dir, variant):
    t0 = time.perf_counter()
    if not cls.supervised:
        ranker = cls(cfg, seed=seed).fit(reference)
        fit_s = time.perf_counter() - t0
        ranked = _rank_all(ranker, cases)
        if models_dir is not None:
            ranker.save(models_dir / f"seed-{seed}")
        return ranked, fit_s
    if train_on:
        tref, tcases = train_sets[train_on]
        ranker = cls(cfg, seed=seed).fit(tref, tcases)
        fit_s = time.perf_counter() - t0
        if models_dir is not None:
            ranker.save(models_dir / f"{variant}-seed-{seed}")
        return _rank_all(ranker, cases), fit_s
    ranked_by_id: dict[str, tuple[Any, Any, float]] = {}
    fit_s = 0.0
    for f, (train_idx, test_idx) in enumerate(incident_folds([c.case_id for c in cases], bench.folds, seed)):
        t1 = time.perf_counter()
        ranker = cls(cfg, seed=seed).fit(reference, [cases[i] for i in train_idx])
        fit_s += time.perf_counter() - t1
        for item in _rank_all(ranker, [cases[i] for i in test_idx]):
            ranked_by_id[item[0].case_id] = item
        if models_dir is not None:
            ranker.save(models_dir / f"seed-{seed}-fold-{f}")
    return [ranked_by_id[c.case_id] for c in cases], fit_s


def _log_ac_curve(run: Any, rows: list[dict], method: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd

    df = pd.DataFrame(rows)
    ranks = df[df.metric == "rank"]
    if ranks.empty:
        return
    fig, ax = plt.subplots(figsize=(5, 3.2))
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
    plt.close(fig)


class _NullRun:
    """Stands in for an MLflow run when tracking is off (unit tests of the stage logic)."""

    run_id = ""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def seed_run(self, seed, params=None):
        return self

    def log_metrics(self, metrics):
        pass

    def log_table(self, df, name):
        pass

    def log_artifact(self, path, folder=None):
        pass


# --- anomaly detection ---------------------------------------------------------------------------


def run_detect(dataset: str, method: str, params: Mapping[str, Any], *, root: Path | None = None,
               dvc_stage: str | None = None, track: bool = True) -> dict[str, Any]:
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
    fault_types = _incident_fault_types(root / "data" / "raw" / dataset)
    rows: list[dict] = []
    per_seed: list[dict[str, float]] = []
    run_params = {"method": method, "config": config_to_dict(cfg), "seeds": seeds,
                  "train_fraction": bench.train_fraction, "train_windows": int(train.sum()),
                  "test_windows": int(test.sum()), "test_incidents": len(incident_ids)}
    with (tracking.stage_run("detect", dataset, method, params=run_params, dvc_stage=dvc_stage,
                             inputs=[f"data/features/{dataset}"], root=track_root) if track else _NullRun()) as run:
        for seed in seeds:
            with run.seed_run(seed) as sr:
                t0 = time.perf_counter()
                det = cls(cfg, seed=seed).fit(data.X[train], subset_segments(train, data.segment))
                fit_s = time.perf_counter() - t0
                t1 = time.perf_counter()
                scores = det.score(data.X[test], subset_segments(test, data.segment))
                score_s = time.perf_counter() - t1
                res = evaluate_detection(scores, data.label[test], data.incident[test], data.times[test],
                                         det.threshold_, fault_free=data.fault_free[test],
                                         window_seconds=data.window_seconds)
                m = {**res.metrics, "fit_seconds": fit_s, "score_seconds": score_s}
                per_seed.append(m)
                sr.log_metrics({k: v for k, v in m.items() if math.isfinite(v)})
                rows.extend(detection_long_rows(res, dataset=dataset, method=method, seed=seed, run_id=sr.run_id,
                                                fault_types=fault_types))
                det.save(root / "models" / dataset / "detect" / method / f"seed-{seed}")
                if track and seed == seeds[0]:
                    _log_score_figure(sr, data, test, scores, det.threshold_, method)
        metrics: dict[str, Any] = {"dataset": dataset, "method": method, "seeds": len(seeds), **_mean_std(per_seed)}
        run.log_metrics({k: v for k, v in metrics.items() if isinstance(v, float) and math.isfinite(v)})
        results_path = root / "benchmarks" / "results" / "detect" / dataset / f"{method}.parquet"
        write_results(rows, results_path)
        if track:
            run.log_artifact(results_path, "results")
    write_metrics(metrics, root / "metrics" / "detect" / dataset / f"{method}.json")
    return metrics


def _incident_fault_types(raw_dir: Path) -> dict[str, str]:
    path = raw_dir / "incidents.parquet"
    if not path.exists():
        return {}
    import pyarrow.parquet as pq

    t = pq.read_table(path, columns=["incident_id", "fault_type"]).to_pylist()
    return {r["incident_id"]: r["fault_type"] or "unknown" for r in t}


def _log_score_figure(run: Any, data: Any, test: np.ndarray, scores: np.ndarray, threshold: float, method: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = data.times[test]
    fig, ax = plt.subplots(figsize=(8, 2.8))
    ax.plot(t, scores, lw=0.8, label=f"{method} score")
    ax.axhline(threshold, color="k", ls="--", lw=0.8, label="threshold")
    lab = data.label[test].astype(bool)
    ymax = np.nanmax(scores) if np.isfinite(scores).any() else 1.0
    ax.fill_between(t, 0, ymax, where=lab, color="tab:red", alpha=0.2, step="post", label="incident")
    ax.legend(fontsize=7, loc="upper right")
    fig.autofmt_xdate()
    fig.tight_layout()
    run.log_figure(fig, f"scores_{method}.png")
    plt.close(fig)


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
    args = ap.parse_args(argv)
    run = run_rca if task == "rca" else run_detect
    try:
        params = yaml.safe_load(Path(args.params).read_text()) or {}
        metrics = run(args.dataset, args.method, params, dvc_stage=f"{task}@{args.dataset}-{args.method}",
                      track=not args.no_track)
    except (ConfigError, OSError, ValueError, yaml.YAMLError) as e:
        print(f"error: {task} {args.dataset} {args.method}: {e}", file=sys.stderr)
        return 1
    headline = {k: v for k, v in metrics.items() if "/" not in k and "|" not in k}
    print(json.dumps(headline, indent=2, sort_keys=True, default=str))
    return 0
