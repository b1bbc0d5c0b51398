"""MLflow tracking: the only module that imports mlflow.

One parent run per stage × dataset × method and a nested run per seed. The store is SQLite at the
repository root (``mlflow.db``, artifacts in ``mlartifacts/`` beside it), found through ``DVC_ROOT``
when DVC runs the stage, so ``dvc exp run --queue`` workers (which run in temporary copies of the
repository) log into the same store as the workspace. Tags: the git commit, ``DVC_EXP_NAME`` and
the ``dvc.lock`` hashes of the stage's inputs.

* Experiments are created with ``mlflow.experimentKind = custom_model_development`` (the
  model-training kind of the MLflow 3 UI; 3.17's UI also honours a global GenAI / model-training
  switch, ``?workflowType=machine_learning`` in the URL).
* Run names carry stage, dataset (label), method (variant), offset and ``DVC_EXP_NAME``
  (:func:`run_name`); metric names are those of the stage's JSON (:func:`metric_key`).
* MLflow stores absolute artifact URIs; :func:`relocate_store` re-points them at
  ``<root>/mlartifacts`` when the repository was moved or copied, before every stage run.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import subprocess
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


def project_root() -> Path:
    """The repository root: ``DVC_ROOT`` when DVC runs the stage, else the folder holding dvc.yaml
    above the working directory, else the working directory."""
    env = os.environ.get("OTLP_AIOPS_TRACKING_ROOT") or os.environ.get("DVC_ROOT")
    if env:
        root = Path(env).resolve()
        # `dvc exp run --queue` runs stages in <repo>/.dvc/tmp/exps/<...>/<tmp>: log to <repo>
        parts = root.parts
        for i in range(len(parts) - 2):
            if parts[i : i + 3] == (".dvc", "tmp", "exps"):
                return Path(*parts[:i])
        return root
    here = Path.cwd().resolve()
    for p in (here, *here.parents):
        if (p / "dvc.yaml").exists():
            return p
    return here


def tracking_uri(root: Path | None = None) -> str:
    root = root or project_root()
    return f"sqlite:///{root / 'mlflow.db'}"


def git_commit(root: Path) -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10
        )
        commit = out.stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
        return commit + ("-dirty" if dirty and commit else "") if commit else "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def dvc_lock_hashes(root: Path, paths: list[str]) -> dict[str, str]:
    """``{path: md5}`` for data paths that some stage in dvc.lock has as an output: the hashes of the
    inputs a run read (DVC records each stage's outputs as it finishes, before later stages run)."""
    import yaml

    lock = root / "dvc.lock"
    if not lock.exists():
        return {}
    try:
        stages = (yaml.safe_load(lock.read_text()) or {}).get("stages", {})
    except yaml.YAMLError:
        return {}
    wanted = {p.rstrip("/") for p in paths}
    out = {}
    for entry in stages.values():
        for o in (entry or {}).get("outs", []):
            path, md5 = str(o.get("path", "")).rstrip("/"), o.get("md5")
            if md5 and path in wanted:
                out[path] = md5
    return out


def _flat(prefix: str, d: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping):
            out.update(_flat(key + ".", v))
        elif isinstance(v, (list, tuple)):
            out[key] = json.dumps(list(v))
        else:
            out[key] = v
    return out


# MLflow 3.x opens an experiment on the view its kind names: "custom_model_development" is the
# model-training kind (the runs table first), "genai_development" the GenAI one (the Traces tab).
# The tag key and values are those of the 3.17 UI (its ExperimentKind enum); without the tag the UI
# infers a kind from the runs, and an experiment with no traces may still open on Traces.
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
EXPERIMENT_KIND = "custom_model_development"
ARTIFACTS_DIR = "mlartifacts"


def run_name(
    stage: str,
    dataset: str,
    method: str,
    *,
    offset: str = "",
    dvc_exp_name: str = "",
    seed: int | None = None,
) -> str:
    """``"rca · sim-boutique · pagerank · offset 0s · exp-1a2b3 · seed 0"``: what the runs table shows
    first. ``dvc_exp_name`` empty (a plain ``dvc repro`` or the CLI) reads "workspace"."""
    parts = [stage, dataset, method]
    if offset:
        parts.append(f"offset {offset}")
    parts.append(dvc_exp_name or "workspace")
    if seed is not None:
        parts.append(f"seed {seed}")
    return " · ".join(parts)


def relocate_store(root: Path) -> int:
    """Point the store's artifact locations at ``<root>/mlartifacts`` when the repository was moved or
    copied (MLflow stores absolute ``file://`` URIs, fixed when an experiment or run is created).

    Every location ending in ``/mlartifacts`` (or below it) that names another folder is rewritten in
    the SQLite store (experiments, runs, logged models). Returns the number of rows changed. A store
    that does not exist yet is left alone."""
    import sqlite3

    db = root / "mlflow.db"
    if not db.exists():
        return 0
    new = (root / ARTIFACTS_DIR).as_uri()
    marker = "/" + ARTIFACTS_DIR
    changed = 0
    con = sqlite3.connect(db, timeout=60)
    try:
        tables = {t for (t,) in con.execute("select name from sqlite_master where type='table'")}
        targets = [
            (t, c)
            for t, c in (
                ("experiments", "artifact_location"),
                ("runs", "artifact_uri"),
                ("logged_models", "artifact_location"),
            )
            if t in tables
        ]
        olds: set[str] = set()
        for t, c in targets:
            for (loc,) in con.execute(f"select distinct {c} from {t} where {c} like ?", (f"%{marker}%",)):
                i = (
                    loc.find(marker + "/")
                    if (marker + "/") in loc
                    else (len(loc) - len(marker) if loc.endswith(marker) else -1)
                )
                if i >= 0:
                    olds.add(loc[: i + len(marker)])
        olds.discard(new)
        if not olds:
            return 0
        with con:
            for old in sorted(olds):
                for t, c in targets:
                    cur = con.execute(
                        f"update {t} set {c} = ? || substr({c}, ?) where {c} = ? or {c} like ? escape '\\'",
                        (
                            new,
                            len(old) + 1,
                            old,
                            old.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "/%",
                        ),
                    )
                    changed += cur.rowcount
        log.info("tracking: moved artifact locations %s -> %s (%d rows)", sorted(olds), new, changed)
    finally:
        con.close()
    return changed


def _experiment(mlflow: Any, name: str, root: Path) -> str:
    """The id of experiment ``name``, created as a model-training experiment with its artifacts under
    ``<root>/mlartifacts``; an existing one gets the kind tag if it lacks it."""
    exp = mlflow.get_experiment_by_name(name)
    if exp is None:
        try:
            return mlflow.create_experiment(
                name,
                artifact_location=(root / ARTIFACTS_DIR).as_uri(),
                tags={EXPERIMENT_KIND_TAG: EXPERIMENT_KIND},
            )
        except Exception:  # another process created it in between
            exp = mlflow.get_experiment_by_name(name)
            if exp is None:
                raise
    if exp.tags.get(EXPERIMENT_KIND_TAG) != EXPERIMENT_KIND:
        mlflow.MlflowClient().set_experiment_tag(exp.experiment_id, EXPERIMENT_KIND_TAG, EXPERIMENT_KIND)
    return exp.experiment_id


class StageRun:
    """A parent run for one stage × dataset × method; ``seed_run(seed)`` opens a nested run."""

    def __init__(self, mlflow: Any, run: Any, names: Mapping[str, str] | None = None) -> None:
        self._mlflow = mlflow
        self.run = run
        self.run_id: str = run.info.run_id
        self.experiment_id: str = run.info.experiment_id
        self._names = dict(names or {})

    @contextlib.contextmanager
    def seed_run(
        self,
        seed: int,
        params: Mapping[str, Any] | None = None,
        *,
        dataset: str | None = None,
        method: str | None = None,
        offset: str | None = None,
    ) -> Iterator[SeedRun]:
        """A nested run for one seed (of one dataset label × method variant × offset, where given);
        its name carries them, its tags repeat the parent's and add ``seed`` / ``offset`` / ``variant``."""
        n = self._names
        name = run_name(
            n.get("stage", ""),
            dataset or n.get("dataset", ""),
            method or n.get("method", ""),
            offset=offset if offset is not None else n.get("offset", ""),
            dvc_exp_name=n.get("dvc_exp_name", ""),
            seed=seed,
        )
        tags = {k: v for k, v in self.run.data.tags.items() if not k.startswith("mlflow.")}
        tags.update({"mlflow.parentRunId": self.run_id, "seed": str(seed)})
        if dataset:
            tags["dataset_label"] = dataset
        if method:
            tags["variant"] = method
        if offset is not None:
            tags["offset"] = offset
        with self._mlflow.start_run(
            run_name=name, nested=True, experiment_id=self.experiment_id, tags=tags
        ) as r:
            self._mlflow.log_param("seed", seed)
            if params:
                self._mlflow.log_params(_flat("", params))
            yield SeedRun(self._mlflow, r, n)

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        vals = {
            metric_key(k): float(v)
            for k, v in metrics.items()
            if v is not None and isinstance(v, (int, float)) and math.isfinite(float(v))
        }
        if vals:
            self._mlflow.log_metrics(vals, step=step)

    def log_curve(self, name: str, values: Sequence[float], start: int = 1) -> None:
        """A per-epoch curve (loss, …) as steps of one metric: the chart the run page draws."""
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        ms = [
            Metric(metric_key(name), float(v), now, i)
            for i, v in enumerate(values, start=start)
            if v is not None and math.isfinite(float(v))
        ]
        for i in range(0, len(ms), 1000):
            self._mlflow.MlflowClient().log_batch(self.run_id, metrics=ms[i : i + 1000])

    def log_artifact(self, path: Path, folder: str | None = None) -> None:
        self._mlflow.log_artifact(str(path), artifact_path=folder)

    def log_figure(self, fig: Any, name: str) -> None:
        self._mlflow.log_figure(fig, name)

    def log_table(self, df: Any, name: str) -> None:
        """A pandas DataFrame as a CSV artifact."""
        self._mlflow.log_text(df.to_csv(index=False), name)

    def log_dict(self, d: Mapping[str, Any], name: str) -> None:
        self._mlflow.log_dict(dict(d), name)

    @contextlib.contextmanager
    def trial_run(self, name: str, params: Mapping[str, Any]) -> Iterator[SeedRun]:
        """A nested run for one trial of a sweep: its name, and the settings it tried as params."""
        tags = {k: v for k, v in self.run.data.tags.items() if not k.startswith("mlflow.")}
        tags.update({"mlflow.parentRunId": self.run_id, "trial": name})
        with self._mlflow.start_run(
            run_name=name, nested=True, experiment_id=self.experiment_id, tags=tags
        ) as r:
            self._mlflow.log_params(_flat("", params))
            yield SeedRun(self._mlflow, r, self._names)


class SeedRun(StageRun):
    pass


def metric_key(k: str) -> str:
    """A metric name MLflow accepts (letters, digits, ``_ - . space / :``), otherwise unchanged: the
    same spelling in the JSON, the parent and the nested runs."""
    return "".join(ch if ch.isalnum() or ch in "_-. /:" else "_" for ch in k)


@contextlib.contextmanager
def stage_run(
    stage: str,
    dataset: str,
    method: str,
    *,
    params: Mapping[str, Any],
    dvc_stage: str | None = None,
    inputs: list[str] = (),
    root: Path | None = None,
    offset: str = "",
) -> Iterator[StageRun]:
    """Open the parent run of ``stage`` × ``dataset`` × ``method`` in the experiment ``otlp-aiops-<stage>``
    (named by :func:`run_name`; ``offset``: the detection offset(s) it covers, for the name)."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    import mlflow

    root = root or project_root()
    relocate_store(root)
    mlflow.set_tracking_uri(tracking_uri(root))
    exp_id = _experiment(mlflow, f"otlp-aiops-{stage}", root)
    dvc_exp = os.environ.get("DVC_EXP_NAME", "")
    tags = {
        "stage": stage,
        "dataset": dataset,
        "method": method,
        "git_commit": git_commit(root),
        "dvc_exp_name": dvc_exp,
        "dvc_stage": dvc_stage or "",
    }
    if offset:
        tags["offset"] = offset
    for path, md5 in dvc_lock_hashes(root, list(inputs)).items():
        tags[f"dvc.lock:{path}"] = md5
    names = {"stage": stage, "dataset": dataset, "method": method, "offset": offset, "dvc_exp_name": dvc_exp}
    with mlflow.start_run(
        experiment_id=exp_id,
        run_name=run_name(stage, dataset, method, offset=offset, dvc_exp_name=dvc_exp),
        tags=tags,
    ) as run:
        mlflow.log_params(_flat("", params))
        yield StageRun(mlflow, run, names)
