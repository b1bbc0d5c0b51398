"""The benchmark stages log to a real MLflow store: run a stage, then read the runs back through the
MLflow client and check params, metrics, tags and artifacts. Feature loading is replaced by the
synthetic cases of tests/model_factories.py, so this test checks the stage and tracking logic alone
(tests/integration/test_pipeline_e2e.py runs it on real feature tables)."""

from __future__ import annotations

import json
import types

import numpy as np
import pyarrow.parquet as pq
import pytest

from model_factories import make_cases, make_detection, make_reference

mlflow = pytest.importorskip("mlflow")


@pytest.fixture
def fake_store(monkeypatch):
    import dataclasses

    cases = make_cases(10, seed=4)
    train_cases = make_cases(12, seed=9)
    ref = make_reference(100, seed=4)

    def load_cases(path, detection_offset=None):
        src = train_cases if path.name == "train-ds" else cases
        if detection_offset:  # a later onset: one window less before it
            return [dataclasses.replace(c, onset=c.onset + 1) for c in src]
        return src

    mod = types.SimpleNamespace(
        load_cases=load_cases,
        load_reference=lambda path: ref,
        load_detection=lambda path: make_detection(),
    )
    import otlp_aiops.features as features_pkg

    monkeypatch.setitem(__import__("sys").modules, "otlp_aiops.features.store", mod)
    monkeypatch.setattr(features_pkg, "store", mod, raising=False)
    monkeypatch.setenv("DVC_EXP_NAME", "exp-test")
    return cases


PARAMS = {
    "benchmark": {"seeds": [0, 1, 2], "detection_offsets": ["0s", "15s"], "folds": 3},
    "rca": {"baro": {"top_indicators": 3}},
}


def _client(root):
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=f"sqlite:///{root / 'mlflow.db'}")


def test_rca_stage_logs_parent_and_seed_runs(fake_store, tmp_path):
    from otlp_aiops.stages.common import Tracking
    from otlp_aiops.stages.config import stage_settings
    from otlp_aiops.stages.rca import rca_stage

    (tmp_path / "dvc.lock").write_text("schema: '2.0'\nstages:\n  features@ds:\n    outs:\n"
                                       "    - path: data/features/ds\n      md5: abc123.dir\n")
    settings = stage_settings(PARAMS, "rca", "baro")
    assert settings.method_config == {"top_indicators": 3} and settings.bench.folds == 3
    metrics = rca_stage("ds", "baro", settings, root=tmp_path, tracking=Tracking(dvc_stage="rca@ds-baro"))
    # baro is deterministic: one seed, not three
    assert metrics["seeds"] == 1
    assert metrics["ac_at_1"] == pytest.approx(1.0)  # the synthetic faults are unmistakable
    saved = json.loads((tmp_path / "benchmarks/results/rca/ds/baro.json").read_text())
    assert saved["ac_at_1"] == metrics["ac_at_1"] and saved["avg_at_5"] == metrics["avg_at_5"]
    assert "ds+offset15s/baro/ac_at_1" in saved
    # tracked files hold no wall-clock values; the stage log (git-ignored) and MLflow do
    assert "seconds" in metrics and "fit_seconds" in metrics
    assert not [k for k in saved if k.endswith("seconds")]
    stage_log = json.loads((tmp_path / "benchmarks/work/stage-logs/rca/ds/baro.json").read_text())
    assert stage_log["timings"]["seconds"] == pytest.approx(metrics["seconds"])
    assert not (tmp_path / "metrics").exists()

    client = _client(tmp_path)
    exp = client.get_experiment_by_name("otlp-aiops-rca")
    assert exp.tags["mlflow.experimentKind"] == "custom_model_development"  # opens on the runs table
    assert exp.artifact_location == (tmp_path / "mlartifacts").as_uri()
    runs = client.search_runs([exp.experiment_id])
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(parents) == 1 and len(children) == 2  # one seed × two offsets
    p = parents[0]
    assert p.info.run_name == "rca · ds · baro · offset 0s,15s · exp-test"
    assert sorted(c.info.run_name for c in children) == [
        "rca · ds · baro · offset 0s · exp-test · seed 0",
        "rca · ds+offset15s · baro · offset 15s · exp-test · seed 0"]
    assert p.data.params["method"] == "baro"
    assert p.data.params["config.top_indicators"] == "3"
    assert p.data.tags["dataset"] == "ds" and p.data.tags["dvc_exp_name"] == "exp-test"
    assert p.data.tags["dvc_stage"] == "rca@ds-baro"
    assert p.data.tags["dvc.lock:data/features/ds"] == "abc123.dir"
    assert p.data.tags["git_commit"]
    assert p.data.metrics["ac_at_1"] == pytest.approx(metrics["ac_at_1"])
    # one spelling: the parent holds the headline, each nested run its own label × variant × seed,
    # under the JSON's names (no per-fault or prefixed keys)
    assert {"ac_at_1", "ac_at_3", "avg_at_5", "mrr"} <= set(p.data.metrics)
    assert not [k for k in p.data.metrics if "/" in k or "|" in k]
    by_offset = {c.data.tags["offset"]: c for c in children}
    assert by_offset["0s"].data.metrics["ac_at_1"] == pytest.approx(metrics["ac_at_1"])
    assert by_offset["15s"].data.metrics["avg_at_5"] == pytest.approx(saved["ds+offset15s/baro/avg_at_5"])
    assert set(by_offset["0s"].data.metrics) == set(by_offset["15s"].data.metrics)
    assert {c.data.tags["mlflow.parentRunId"] for c in children} == {p.info.run_id}
    arts = {a.path for a in client.list_artifacts(p.info.run_id, "results")}
    assert "results/baro.parquet" in arts
    assert any(a.path.endswith(".png") for a in client.list_artifacts(p.info.run_id))
    # long form: one row per dataset × method × seed × case × metric, with the nested run id
    t = pq.read_table(tmp_path / "benchmarks/results/rca/ds/baro.parquet").to_pandas()
    assert list(t.columns) == ["dataset", "task", "method", "seed", "case_id", "fault_type", "metric", "value",
                               "run_id"]
    assert set(t.dataset) == {"ds", "ds+offset15s"}
    ac1 = t[(t.metric == "ac_at_1") & (t.dataset == "ds")]
    assert len(ac1) == len(fake_store) and ac1.value.mean() == pytest.approx(metrics["ac_at_1"])
    assert set(t.run_id) == {""} and "seconds" not in set(t.metric)  # deterministic bytes
    assert {r["run_id"] for r in stage_log["runs"]} == {c.info.run_id for c in children}


def test_stochastic_ranker_runs_every_seed(fake_store, tmp_path):
    from otlp_aiops.stages.rca import run_rca

    metrics = run_rca("ds", "random", PARAMS, root=tmp_path)
    assert metrics["seeds"] == 3
    assert 0.0 <= metrics["ac_at_1"] <= 1.0 and metrics["ac_at_1_std"] >= 0.0
    t = pq.read_table(tmp_path / "benchmarks/results/rca/ds/random.parquet").to_pandas()
    assert sorted(t.seed.unique()) == [0, 1, 2]
    assert (tmp_path / "models/ds/rca/random/seed-2/model.json").exists()


def test_detect_stage_logs_metrics(fake_store, tmp_path):
    from otlp_aiops.stages.detect import run_detect

    metrics = run_detect("ds", "nsigma", {"benchmark": {"seeds": [0, 1]}}, root=tmp_path)
    assert metrics["seeds"] == 1 and metrics["auc_pr"] > 0.9
    client = _client(tmp_path)
    exp = client.get_experiment_by_name("otlp-aiops-detect")
    runs = client.search_runs([exp.experiment_id])
    parent = next(r for r in runs if "mlflow.parentRunId" not in r.data.tags)
    assert parent.data.metrics["vus_pr"] == pytest.approx(metrics["vus_pr"])
    assert int(parent.data.params["test_incidents"]) == 2
    t = pq.read_table(tmp_path / "benchmarks/results/detect/ds/nsigma.parquet").to_pandas()
    det = t[t.metric == "detected"]
    assert sorted(det.case_id) == ["inc-0", "inc-1"] and np.all(det.value == 1.0)


def test_unknown_method_setting_is_an_error(fake_store, tmp_path):
    from otlp_aiops.config import ConfigError
    from otlp_aiops.stages.rca import run_rca

    with pytest.raises(ConfigError, match="bogus"):
        run_rca("ds", "baro", {"rca": {"baro": {"bogus": 1}}}, root=tmp_path, track=False)


def test_deep_detector_logs_its_training_curve_as_steps(fake_store, tmp_path):
    from otlp_aiops.stages.detect import run_detect

    params = {"benchmark": {"seeds": [0]},
              "detect": {"lstm_ae": {"epochs": 4, "patience": 10, "window": 5, "hidden_size": 8,
                                     "latent_size": 4, "val_fraction": 0.2}}}
    metrics = run_detect("ds", "lstm_ae", params, root=tmp_path)
    client = _client(tmp_path)
    exp = client.get_experiment_by_name("otlp-aiops-detect")
    runs = client.search_runs([exp.experiment_id])
    child = next(r for r in runs if "mlflow.parentRunId" in r.data.tags)
    parent = next(r for r in runs if "mlflow.parentRunId" not in r.data.tags)
    assert parent.info.run_name == "detect · ds · lstm_ae · exp-test"
    assert child.info.run_name == "detect · ds · lstm_ae · exp-test · seed 0"
    train = client.get_metric_history(child.info.run_id, "train_loss")
    val = client.get_metric_history(child.info.run_id, "val_loss")
    assert [m.step for m in train] == [1, 2, 3, 4] and len(val) == 4  # one point per epoch
    assert all(np.isfinite(m.value) and m.value > 0 for m in train)
    # the parent carries the headline under the same names as the stage summary
    saved = json.loads((tmp_path / "benchmarks/results/detect/ds/lstm_ae.json").read_text())
    for k in ("vus_pr", "range_f1", "false_alarms_per_hour"):
        assert parent.data.metrics[k] == pytest.approx(saved[k]) == pytest.approx(metrics[k])
    assert "fit_seconds" in parent.data.metrics and "fit_seconds" not in saved
    assert "scores_lstm_ae.png" in {a.path for a in client.list_artifacts(child.info.run_id)}


def test_a_moved_repository_writes_artifacts_under_its_new_path(tmp_path):
    import shutil

    from otlp_aiops import tracking

    old, new = tmp_path / "old", tmp_path / "new_repo"  # "_" is a LIKE wildcard: must be escaped
    old.mkdir()
    for root in (old, None):
        if root is None:  # a copied clone, store and artifacts included; the old one is gone
            shutil.copytree(old, new)
            shutil.rmtree(old)
            root = new
        with tracking.stage_run("rca", "ds", "m", params={"a": 1}, root=root) as run:
            run.log_dict({"x": 1}, "x.json")
            with run.seed_run(0) as sr:
                sr.log_dict({"y": 1}, "y.json")
    assert tracking.relocate_store(new) == 0  # done by stage_run already; idempotent
    client = _client(new)
    exp = client.get_experiment_by_name("otlp-aiops-rca")
    assert exp.artifact_location == (new / "mlartifacts").as_uri()
    runs = client.search_runs([exp.experiment_id])
    assert len(runs) == 4
    assert all(r.info.artifact_uri.startswith((new / "mlartifacts").as_uri() + "/") for r in runs)
    assert not old.exists()  # nothing was written into the old path
    for r in runs:  # the first runs' artifacts are read from the new place
        assert {a.path for a in client.list_artifacts(r.info.run_id)} & {"x.json", "y.json"}
