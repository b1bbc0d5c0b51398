"""The whole pipeline on a small simulated dataset, through the same functions the DVC stages call:
simulate -> ingest -> features -> rca / detect (tracked in a real MLflow store) -> report. Quality
floors, not exact numbers: the simulator's faults must be findable."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("mlflow")

CONFIG = {
    "duration": "50m",
    "warmup": "10m",
    "incidents": 12,
    "disturbances": 1,
    "incident_duration": ["90s", "120s"],
    "min_gap": "60s",
    "seed": 11,
    "request_rate": 8,
    "trace_sample_ratio": 0.2,
    "severity": [0.6, 1.0],
}

PARAMS = {
    "benchmark": {"datasets": ["toy"], "seeds": [0, 1], "detection_offsets": ["0s", "30s"], "folds": 3,
                  "train_fraction": 0.5, "rca": ["random", "baro", "pagerank"], "detectors": ["nsigma", "pca"]},
    "rca": {},
    "detect": {},
}


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from otlp_aiops.datasets.simulator import SimulatorConfig, simulate
    from otlp_aiops.features.build import build_features
    from otlp_aiops.features.config import resolve_config
    from otlp_aiops.otlp.ingest import ingest_paths

    root = tmp_path_factory.mktemp("e2e")
    raw, interim, feats = root / "data/raw/toy", root / "data/interim/toy", root / "data/features/toy"
    simulate(SimulatorConfig.from_dict(CONFIG), raw)
    report = ingest_paths([raw / "otlp"], interim, workers=1)
    assert report["totals"]["records_quarantined"] == 0
    build_features(interim, raw, feats, resolve_config({"window": "15s", "before": "4m", "after": "3m"}, "toy"),
                   dataset="toy")
    return root


def test_stages_run_end_to_end_and_report(root: Path) -> None:
    import pandas as pd
    from mlflow.tracking import MlflowClient

    from otlp_aiops.features.store import load_cases
    from otlp_aiops.report.build import build_report
    from otlp_aiops.stages.detect import run_detect
    from otlp_aiops.stages.rca import run_rca

    cases = load_cases(root / "data/features/toy")
    assert len(cases) == 12 and all(c.after().size for c in cases)
    results = {m: run_rca("toy", m, PARAMS, root=root, dvc_stage=f"rca@toy-{m}") for m in ("random", "baro", "pagerank")}
    # the simulator's faults are findable: the simple baselines beat a random ranking clearly
    assert results["baro"]["avg_at_5"] >= 0.5
    assert results["pagerank"]["avg_at_5"] >= 0.5
    assert results["baro"]["avg_at_5"] > results["random"]["avg_at_5"] + 0.15
    det = {m: run_detect("toy", m, PARAMS, root=root) for m in ("nsigma", "pca")}
    assert det["nsigma"]["auc_pr"] > 0.5 and det["nsigma"]["n_incidents"] >= 3

    paths = sorted((root / "benchmarks/results").glob("*/toy/*.parquet"))
    assert len(paths) == 5
    summary = build_report(paths, root / "tables", root / "figures", seed=0, n_resamples=200)
    assert summary["datasets"] == ["toy", "toy+offset30s"]
    md = (root / "tables/toy_rca.md").read_text()
    assert "| baro |" in md and "Avg@5" in md
    assert (root / "tables/toy_detect.tex").exists() and (root / "figures/toy_rca_ac_at_k.png").exists()
    rows = pd.read_parquet(paths[0])
    # tracked results hold no run id and no timing (the same bytes run after run); the stage log does
    assert set(rows.run_id) == {""} and "seconds" not in set(rows.metric)
    import json

    log = json.loads((root / "benchmarks/work/stage-logs/detect/toy/nsigma.json").read_text())
    assert all(len(r["run_id"]) == 32 for r in log["runs"]) and log["timings"]["fit_seconds"] >= 0

    client = MlflowClient(tracking_uri=f"sqlite:///{root / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("otlp-aiops-rca").experiment_id])
    parents = {r.data.tags["method"]: r for r in runs if "mlflow.parentRunId" not in r.data.tags}
    assert set(parents) == {"random", "baro", "pagerank"}
    assert parents["baro"].data.metrics["avg_at_5"] == pytest.approx(results["baro"]["avg_at_5"])
    assert parents["baro"].data.tags["dvc_stage"] == "rca@toy-baro"
    # random is stochastic: a nested run per seed and offset; baro is deterministic: one seed
    kids = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parents["random"].info.run_id]
    assert sorted(r.data.params["seed"] for r in kids) == ["0", "0", "1", "1"]
