"""MLflow tracking: the only module that imports mlflow.

One parent run per stage × dataset × method and a nested run per seed. The store is SQLite at the
repository root (``mlflow.db``, artifacts in ``mlartifacts/`` beside it), found through ``DVC_ROOT``
when DVC runs the stage, so ``dvc exp run --queue`` workers (which run in temporary copies of the
repository) log into the same store as the workspace. Tags: the git commit, ``DVC_EXP_NAME`` and
the ``dvc.lock`` hashes of the stage's inputs.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import subprocess
from collections.abc import Iterator, Mapping
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
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10)
        commit = out.stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=10).stdout.strip()
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


class StageRun:
    """A parent run for one stage × dataset × method; ``seed_run(seed)`` opens a nested run."""

    def __init__(self, mlflow: Any, run: Any) -> None:
        self._mlflow = mlflow
        self.run = run
        self.run_id: str = run.info.run_id
        self.experiment_id: str = run.info.experiment_id

    @contextlib.contextmanager
    def seed_run(self, seed: int, params: Mapping[str, Any] | None = None) -> Iterator[SeedRun]:
        with self._mlflow.start_run(run_name=f"seed={seed}", nested=True, experiment_id=self.experiment_id,
                                    tags={"mlflow.parentRunId": self.run_id, **self.run.data.tags}) as r:
            self._mlflow.log_param("seed", seed)
            if params:
                self._mlflow.log_params(_flat("", params))
            yield SeedRun(self._mlflow, r)

    def log_metrics(self, metrics: Mapping[str, float]) -> None:
        self._mlflow.log_metrics({k: float(v) for k, v in metrics.items() if v is not None})

    def log_artifact(self, path: Path, folder: str | None = None) -> None:
        self._mlflow.log_artifact(str(path), artifact_path=folder)

    def log_figure(self, fig: Any, name: str) -> None:
        self._mlflow.log_figure(fig, name)

    def log_table(self, df: Any, name: str) -> None:
        """A pandas DataFrame as a CSV artifact."""
        self._mlflow.log_text(df.to_csv(index=False), name)


class SeedRun(StageRun):
    pass


@contextlib.contextmanager
def stage_run(stage: str, dataset: str, method: str, *, params: Mapping[str, Any],
              dvc_stage: str | None = None, inputs: list[str] = (), root: Path | None = None,
              ) -> Iterator[StageRun]:
    """Open the parent run ``<stage>/<dataset>/<method>`` in the experiment ``otlp-aiops-<stage>``."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    import mlflow

    root = root or project_root()
    mlflow.set_tracking_uri(tracking_uri(root))
    name = f"otlp-aiops-{stage}"
    exp = mlflow.get_experiment_by_name(name)
    if exp is None:
        try:
            exp_id = mlflow.create_experiment(name, artifact_location=(root / "mlartifacts").as_uri())
        except Exception:  # another process created it in between
            exp = mlflow.get_experiment_by_name(name)
            if exp is None:
                raise
            exp_id = exp.experiment_id
    else:
        exp_id = exp.experiment_id
    tags = {
        "stage": stage,
        "dataset": dataset,
        "method": method,
        "git_commit": git_commit(root),
        "dvc_exp_name": os.environ.get("DVC_EXP_NAME", ""),
        "dvc_stage": dvc_stage or "",
    }
    for path, md5 in dvc_lock_hashes(root, list(inputs)).items():
        tags[f"dvc.lock:{path}"] = md5
    with mlflow.start_run(experiment_id=exp_id, run_name=f"{stage}/{dataset}/{method}", tags=tags) as run:
        mlflow.log_params(_flat("", params))
        yield StageRun(mlflow, run)
