"""The detect stage: fit one anomaly detector on the earliest fault-free windows of one dataset, score
every other window and evaluate it against the labelled incidents, over the seeds when it is
stochastic.

:func:`detect_stage` takes typed settings; :func:`run_detect` splits a parsed params.yaml into them.
Outputs and tracking as in :mod:`otlp_aiops.stages.rca`: long-form results, a summary JSON, the fitted
models, one MLflow parent run with a nested run per seed."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from otlp_aiops import progress
from otlp_aiops.config import config_to_dict
from otlp_aiops.evaluate.protocol import fault_free_split, subset_segments
from otlp_aiops.executor import run_tasks
from otlp_aiops.stages import common
from otlp_aiops.stages.common import Tracking
from otlp_aiops.stages.config import StageSettings


@dataclasses.dataclass(frozen=True)
class DetectorJob:
    """One seed of a detector: a task of the executor."""

    cls: type  # the registered detector class
    cfg: Any  # its Config
    seed: int
    data: Any  # the dataset's detection table (:func:`otlp_aiops.features.store.load_detection`)
    train: np.ndarray  # boolean mask of the training windows
    test: np.ndarray  # boolean mask of the scored windows
    models_dir: Path


def run_detector_seed(job: DetectorJob) -> tuple[Any, np.ndarray, float, float]:
    """Fit on the ``train`` windows, score the ``test`` ones, save; returns the fitted detector, the
    scores, and the fit and score seconds."""
    data = job.data
    t0 = time.perf_counter()
    det = job.cls(job.cfg, seed=job.seed).fit(data.X[job.train], subset_segments(job.train, data.segment))
    fit_s = time.perf_counter() - t0
    t1 = time.perf_counter()
    scores = det.score(data.X[job.test], subset_segments(job.test, data.segment))
    score_s = time.perf_counter() - t1
    det.save(job.models_dir / f"seed-{job.seed}")
    return det, scores, fit_s, score_s


def incident_fault_types(raw_dir: Path) -> dict[str, str]:
    """incident id -> fault type, from ``<raw_dir>/incidents.parquet`` ({} when there is none)."""
    path = raw_dir / "incidents.parquet"
    if not path.exists():
        return {}
    import pyarrow.parquet as pq

    t = pq.read_table(path, columns=["incident_id", "fault_type"]).to_pylist()
    return {r["incident_id"]: r["fault_type"] or "unknown" for r in t}


def detect_stage(
    dataset: str,
    method: str,
    settings: StageSettings,
    *,
    root: Path | None = None,
    tracking: Tracking | None = None,
) -> dict[str, Any]:
    """Fit detector ``method`` on the earliest ``train_fraction`` of the fault-free windows, score every
    other window, and evaluate against the labelled incidents (over the seeds when it is stochastic);
    returns the metrics dictionary. Paths and the MLflow store as in
    :func:`otlp_aiops.stages.rca.rca_stage`."""
    from otlp_aiops.evaluate.detection import detection_long_rows, evaluate_detection
    from otlp_aiops.features.store import load_detection

    tracking = tracking or Tracking()
    track_root, root = root, (root if root is not None else Path("."))
    bench, executor = settings.bench, settings.executor
    cls, cfg, seeds = common.stage_method("detect", method, settings)
    fdir = root / "data" / "features" / dataset
    data = load_detection(fdir)
    train = fault_free_split(data.times, data.fault_free, bench.train_fraction)
    test = ~train
    if train.sum() < 2 or test.sum() < 1:
        raise ValueError(
            f"{fdir}: too few windows to split ({int(train.sum())} training, {int(test.sum())} test)"
        )
    incident_ids = sorted({i for i in data.incident[test] if i})
    fault_types = incident_fault_types(root / "data" / "raw" / dataset)
    rows: list[dict] = []
    per_seed: list[dict[str, float]] = []
    run_params = {
        "method": method,
        "config": config_to_dict(cfg),
        "seeds": seeds,
        "train_fraction": bench.train_fraction,
        "train_windows": int(train.sum()),
        "test_windows": int(test.sum()),
        "test_incidents": len(incident_ids),
    }
    with (
        tracking.stage_run(
            "detect", dataset, method, root=track_root, params=run_params, inputs=[f"data/features/{dataset}"]
        ) as run,
        progress.task(f"detect {dataset} {method}", total=len(seeds), unit="seeds") as bar,
    ):
        models_dir = root / "models" / dataset / "detect" / method
        jobs = [
            (
                DetectorJob(
                    cls=cls,
                    cfg=cfg,
                    seed=seed,
                    data=data,
                    train=train,
                    test=test,
                    models_dir=models_dir.resolve() if executor.is_ray else models_dir,
                ),
            )
            for seed in seeds
        ]
        outcomes = run_tasks(
            run_detector_seed, jobs, executor, on_done=lambda i, _r: bar.advance(1, note=f"seed {seeds[i]}")
        )
        for seed, (det, scores, fit_s, score_s) in zip(seeds, outcomes, strict=True):
            with run.seed_run(seed, dataset=dataset, method=method) as sr:
                res = evaluate_detection(
                    scores,
                    data.label[test],
                    data.incident[test],
                    data.times[test],
                    det.threshold_,
                    fault_free=data.fault_free[test],
                    window_seconds=data.window_seconds,
                )
                m = {**res.metrics, "fit_seconds": fit_s, "score_seconds": score_s}
                per_seed.append(m)
                sr.log_metrics(m)
                common.log_history(sr, common.training_history(det))
                rows.extend(
                    detection_long_rows(
                        res,
                        dataset=dataset,
                        method=method,
                        seed=seed,
                        run_id=sr.run_id,
                        fault_types=fault_types,
                    )
                )
                if tracking.enabled and seed == seeds[0]:
                    _log_score_figure(sr, data, test, scores, det.threshold_, method)
        metrics: dict[str, Any] = {
            "dataset": dataset,
            "method": method,
            "seeds": len(seeds),
            **common.mean_std(per_seed),
        }
        run.log_metrics({k: v for k, v in metrics.items() if isinstance(v, float)})
        files = common.stage_files(root, "detect", dataset, method)
        common.write_stage_outputs(files, rows, metrics, run.run_id)
        if tracking.enabled:
            run.log_artifact(files["results"], "results")
    return metrics


def run_detect(dataset: str, method: str, params: Mapping[str, Any], **options: Any) -> dict[str, Any]:
    """:func:`detect_stage` from a parsed params.yaml; ``options``: ``root``, ``dvc_stage``, ``track``,
    ``executor`` (:func:`~otlp_aiops.stages.common.run_from_params`)."""
    return common.run_from_params(detect_stage, "detect", dataset, method, params, **options)


def _log_score_figure(
    run: Any, data: Any, test: np.ndarray, scores: np.ndarray, threshold: float, method: str
) -> None:
    """The test windows' scores, the threshold and the incident windows, as a figure of ``run``."""
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
