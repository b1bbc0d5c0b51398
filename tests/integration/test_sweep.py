"""The sweep entry point (:mod:`otlp_aiops.sweep`) on a small simulated dataset: every trial is a
whole benchmark run, the table equals separate runs with the same settings, the stage outputs of the
rca stage are not touched, and every trial is a nested MLflow run of one parent."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("mlflow")

from otlp_aiops.sweep import SweepConfig, SweepError, sweep_config, trial_name

CONFIG = {"duration": "30m", "warmup": "5m", "incidents": 6, "disturbances": 0, "incident_duration": ["90s", "120s"],
          "min_gap": "60s", "seed": 8, "request_rate": 8, "trace_sample_ratio": 0.2}
BENCH = {"datasets": ["toy"], "seeds": [0], "detection_offsets": ["0s"], "folds": 3, "train_fraction": 0.5,
         "rca": ["pagerank"], "detectors": []}


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from otlp_aiops.datasets.simulator import SimulatorConfig, simulate
    from otlp_aiops.features.build import build_features
    from otlp_aiops.features.config import resolve_config
    from otlp_aiops.otlp.ingest import ingest_paths

    root = tmp_path_factory.mktemp("sweep")
    raw, interim, feats = root / "data/raw/toy", root / "data/interim/toy", root / "data/features/toy"
    simulate(SimulatorConfig.from_dict(CONFIG), raw)
    ingest_paths([raw / "otlp"], interim, workers=1)
    build_features(interim, raw, feats, resolve_config({"window": "15s", "before": "4m", "after": "3m"}, "toy"),
                   dataset="toy")
    return root


def test_trials_are_the_sorted_grid_and_settings_are_checked() -> None:
    cfg = SweepConfig(grid={"rho": [0.1, 0.2], "anomaly_weight": [0.5]}, method="random_walk")
    assert [trial_name(t) for t in cfg.trials()] == ["anomaly_weight=0.5,rho=0.1", "anomaly_weight=0.5,rho=0.2"]
    with pytest.raises(SweepError, match="grid is empty"):
        SweepConfig()
    with pytest.raises(SweepError, match="non-empty list"):
        SweepConfig(grid={"damping": 0.5})
    with pytest.raises(SweepError, match="unknown key"):
        sweep_config({"sweep": {"grid": {"damping": [0.5]}, "budget": 3}})


def test_local_sweep_equals_separate_runs_and_logs_nested_trials(root: Path) -> None:
    from mlflow.tracking import MlflowClient

    from otlp_aiops.stages.rca import run_rca
    from otlp_aiops.sweep import run_sweep

    params = {"benchmark": BENCH, "rca": {}, "detect": {},
              "sweep": {"task": "rca", "dataset": "toy", "method": "pagerank", "metric": "avg_at_5",
                        "grid": {"damping": [0.5, 0.85]}}}
    out = run_sweep(params, root=root)
    assert [r["trial"] for r in out["trials"]] == ["damping=0.5", "damping=0.85"]
    (root / "alone").mkdir(exist_ok=True)  # separate runs, with the same data, written elsewhere
    (root / "alone" / "data").symlink_to(root / "data")
    for r in out["trials"]:
        alone = run_rca("toy", "pagerank", {**params, "rca": {"pagerank": {"damping": r["config"]["damping"]}}},
                        root=root / "alone", track=False)
        assert r["avg_at_5"] == pytest.approx(alone["avg_at_5"], abs=1e-12)
        assert r["ac_at_1"] == pytest.approx(alone["ac_at_1"], abs=1e-12)
    best = max(out["trials"], key=lambda r: r["avg_at_5"])
    assert out["best_avg_at_5"] == best["avg_at_5"]
    assert (root / "benchmarks/results/sweeps/toy/rca-pagerank.json").exists()
    assert not (root / "benchmarks/results/rca").exists()  # the rca stage's outputs are not touched
    client = MlflowClient(tracking_uri=f"sqlite:///{root / 'mlflow.db'}")
    exp = client.get_experiment_by_name("otlp-aiops-sweep")
    runs = client.search_runs([exp.experiment_id])
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parents[0].info.run_id]
    assert len(parents) == 1 and sorted(r.data.tags["trial"] for r in children) == ["damping=0.5", "damping=0.85"]
    assert {r.data.params["damping"] for r in children} == {"0.5", "0.85"}
    assert all("avg_at_5" in r.data.metrics for r in children)
