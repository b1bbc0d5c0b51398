"""What the rca and detect stages share: where a stage writes (:func:`stage_files`), the writers of
its tracked results, summary and git-ignored stage log (:func:`write_stage_outputs`), the mean ± std
over seeds, a model's training curves, and the tracking handle (:class:`Tracking`).

Tracked files hold no timings and no run ids (the same inputs give the same bytes); those go to MLflow
and to the stage log ``benchmarks/work/stage-logs/<task>/<dataset>/<method>.json``."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from otlp_aiops import registry
from otlp_aiops.config import config_from_dict
from otlp_aiops.evaluate.results import RESULT_SCHEMA
from otlp_aiops.executor import ExecutorConfig
from otlp_aiops.outputs import atomic_write_with
from otlp_aiops.stages.config import StageSettings, stage_settings

_KIND = {"rca": "ranker", "detect": "detector"}  # task -> registry kind

# --- tracking ------------------------------------------------------------------------------------


class NullRun:
    """Stands in for an MLflow run when tracking is off (unit tests, sweeps, the quick start)."""

    run_id = ""

    def __enter__(self) -> NullRun:
        return self

    def __exit__(self, *exc: object) -> bool:
        return False

    def seed_run(self, seed: int, params: Mapping[str, Any] | None = None, **names: Any) -> NullRun:
        return self

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        pass

    def log_curve(self, name: str, values: Sequence[float], start: int = 1) -> None:
        pass

    def log_dict(self, d: Mapping[str, Any], name: str) -> None:
        pass

    def log_table(self, df: Any, name: str) -> None:
        pass

    def log_artifact(self, path: Path, folder: str | None = None) -> None:
        pass


@dataclasses.dataclass(frozen=True)
class Tracking:
    """Whether and how a stage logs to MLflow (:mod:`otlp_aiops.tracking`): ``dvc_stage`` is the
    DVC stage name tagged on the parent run."""

    enabled: bool = True
    dvc_stage: str | None = None

    def stage_run(
        self,
        task: str,
        dataset: str,
        method: str,
        *,
        root: Path | None,
        params: Mapping[str, Any],
        inputs: Sequence[str] = (),
        offset: str = "",
    ) -> contextlib.AbstractContextManager[Any]:
        """The parent run of ``task`` × ``dataset`` × ``method`` (a :class:`NullRun` when disabled);
        the MLflow store is at ``root`` when given, else at the repository root."""
        if not self.enabled:
            return NullRun()
        from otlp_aiops import tracking

        return tracking.stage_run(
            task,
            dataset,
            method,
            params=params,
            dvc_stage=self.dvc_stage,
            inputs=list(inputs),
            root=root.resolve() if root is not None else None,
            offset=offset,
        )


NO_TRACKING = Tracking(enabled=False)


# --- the method and the entry from params.yaml ---------------------------------------------------


def stage_method(task: str, method: str, settings: StageSettings) -> tuple[type, Any, list[int]]:
    """The registered class of ``method``, its ``Config`` built from the method's section (an unknown
    key is an error naming ``params.yaml <task>.<method>``) and the seeds it runs: every seed of the
    benchmark for a stochastic method, the first one otherwise."""
    cls = registry.model_class(_KIND[task], method)
    cfg = config_from_dict(cls.Config, settings.method_config, where=f"params.yaml {task}.{method}: ")
    seeds = list(settings.bench.seeds) if cls.stochastic else list(settings.bench.seeds[:1])
    return cls, cfg, seeds


def run_from_params(
    stage: Callable[..., dict[str, Any]],
    task: str,
    dataset: str,
    method: str,
    params: Mapping[str, Any],
    *,
    root: Path | None = None,
    dvc_stage: str | None = None,
    track: bool = True,
    executor: ExecutorConfig | None = None,
) -> dict[str, Any]:
    """Run ``stage`` (``rca_stage`` / ``detect_stage``) with its settings split from a parsed
    params.yaml (``benchmark:``, ``<task>.<method>``, and ``executor:`` unless ``executor`` is given);
    ``track`` and ``dvc_stage`` make its :class:`Tracking`."""
    settings = stage_settings(params, task, method, executor=executor)
    return stage(dataset, method, settings, root=root, tracking=Tracking(track, dvc_stage))


# --- files ---------------------------------------------------------------------------------------


def stage_files(root: Path, task: str, dataset: str, method: str) -> dict[str, Path]:
    """Where one rca/detect stage writes: ``results`` (long form, tracked), ``summary`` (per-fault
    and protocol-variant breakdown, tracked, no timings) and ``log`` (timings and MLflow run ids,
    git-ignored under benchmarks/work/)."""
    base = root / "benchmarks" / "results" / task / dataset
    log = root / "benchmarks" / "work" / "stage-logs" / task / dataset / f"{method}.json"
    return {"results": base / f"{method}.parquet", "summary": base / f"{method}.json", "log": log}


def is_timing(key: str) -> bool:
    """A wall-clock value (``seconds``, ``fit_seconds``, ``<fault>/seconds``, ``…_std``): logged to
    MLflow and the git-ignored stage log, never to a tracked file (the same inputs must give the
    same bytes)."""
    last = key.rsplit("/", 1)[-1]
    last = last[:-4] if last.endswith("_std") else last
    return last.endswith("seconds")


def write_results(rows: list[dict], path: Path) -> None:
    """Long-form rows as Parquet, in the columns of :data:`otlp_aiops.evaluate.results.RESULT_SCHEMA`."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pa.schema([(name, getattr(pa, kind)()) for name, kind in RESULT_SCHEMA])
    table = pa.Table.from_pylist(rows, schema=schema)
    atomic_write_with(path, lambda p: pq.write_table(table, p))


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
    atomic_write_with(path, lambda p: p.write_text(text))


def _stage_log(metrics: Mapping[str, Any], rows: list[dict], parent_run_id: str) -> dict[str, Any]:
    runs = sorted({(r["dataset"], r["method"], int(r["seed"]), r.get("run_id") or "") for r in rows})
    keys = ("dataset", "method", "seed", "case_id", "metric", "value")
    return {
        "parent_run_id": parent_run_id,
        "timings": {k: v for k, v in metrics.items() if is_timing(k)},
        "runs": [{"dataset": d, "method": m, "seed": s, "run_id": i} for d, m, s, i in runs],
        "timing_rows": [{k: r[k] for k in keys} for r in rows if is_timing(r["metric"])],
    }


def write_stage_outputs(
    files: Mapping[str, Path], rows: list[dict], metrics: Mapping[str, Any], run_id: str
) -> None:
    """Write one stage's outputs (:func:`stage_files`): the long-form rows and the summary without
    timings or run ids (tracked), and the timings and run ids to the stage log. A row without a run
    id of its own gets ``run_id`` (the parent run)."""
    for r in rows:
        r["run_id"] = r.get("run_id") or run_id
    tracked = [{**r, "run_id": ""} for r in rows if not is_timing(r["metric"])]
    write_results(tracked, files["results"])
    write_metrics({k: v for k, v in metrics.items() if not is_timing(k)}, files["summary"])
    write_metrics(_stage_log(metrics, rows, run_id), files["log"])


# --- aggregation and curves ----------------------------------------------------------------------


def mean_std(per_seed: list[dict[str, float]]) -> dict[str, float]:
    """Per key: the mean over seeds of the finite values, and (with more than one seed) ``<key>_std``,
    their sample standard deviation (0 when only one value is finite)."""
    out: dict[str, float] = {}
    for k in per_seed[0]:
        vals = np.array([d.get(k, math.nan) for d in per_seed], dtype=float)
        vals = vals[np.isfinite(vals)]
        if len(vals):
            out[k] = float(vals.mean())
            if len(per_seed) > 1:
                out[f"{k}_std"] = float(vals.std(ddof=1)) if len(vals) > 1 else 0.0
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


def log_history(run: Any, history: Mapping[str, list[float]]) -> None:
    """Each curve of :func:`training_history` as a step metric of ``run``."""
    for name, values in history.items():
        run.log_curve(name, values)


def headline(metrics: Mapping[str, Any]) -> dict[str, Any]:
    """The headline keys of a stage's metrics (no ``<fault>/…`` or ``<label>/<variant>/…`` keys)."""
    return {k: v for k, v in metrics.items() if "/" not in k and "|" not in k}
