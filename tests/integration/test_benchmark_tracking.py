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
    from otlp_aiops.evaluate.benchmark import run_rca

    (tmp_path / "dvc.lock").write_text(
        "schema: '2.0'\nstages:\n  features@ds:\n    outs:\n    - path: data/features/ds\n      md5: abc123.dir\n")
    metrics = run_rca("ds", "baro", PARAMS, root=tmp_path, dvc_stage="rca@ds-baro")
    # baro is deterministic: one seed, not three
    assert metrics["seeds"] == 1
    assert metrics["ac_at_1"] == pytest.approx(1.0)  # the synthetic faults are unmistakable
    saved = json.loads((tmp_path / "metrics/rca/ds/baro.json").read_text())
    assert saved["ac_at_1"] == metrics["ac_at_1"] and saved["avg_at_5"] == metrics["avg_at_5"]
    assert "ds+offset15s/baro/ac_at_1" in saved

    client = _client(tmp_path)
    exp = client.get_experiment_by_name("otlp-aiops-rca")
    runs = client.search_runs([exp.experiment_id])
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(parents) == 1 and len(children) == 2  # one seed × two offsets
    p = parents[0]
    assert p.info.run_name == "rca/ds/baro"
    assert p.data.params["method"] == "baro"
    assert p.data.params["config.top_indicators"] == "3"
    assert p.data.tags["dataset"] == "ds" and p.data.tags["dvc_exp_name"] == "exp-test"
    assert p.data.tags["dvc_stage"] == "rca@ds-baro"
    assert p.data.tags["dvc.lock:data/features/ds"] == "abc123.dir"
    assert p.data.tags["git_commit"]
    assert p.data.metrics["ac_at_1"] == pytest.approx(metrics["ac_at_1"])
    assert {c.data.tags["mlflow.parentRunId"] for c in children} == {p.info.run_id}
    arts = {a.path for a in client.list_artifacts(p.info.run_id, "results")}
    assert "results/baro.parquet" in arts
    assert any(a.path.endswith(".png") for a in client.list_artifacts(p.info.run_id))
    # long form: one row per dataset × method × seed × case × metric, with the nested run id
    t = pq.read_table(tmp_path / "benchmarks/results/rca/ds/baro.parquet").to_pandas()
    assert set(t.columns) == {"dataset", "task", "method", "seed", "case_id", "fault_type", "metric", "value", "run_id"}
    assert set(t.dataset) == {"ds", "ds+offset15s"}
    ac1 = t[(t.metric == "ac_at_1") & (t.dataset == "ds")]
    assert len(ac1) == len(fake_store) and ac1.value.mean() == pytest.approx(metrics["ac_at_1"])
    assert set(t.run_id) == {c.info.run_id for c in children}


def test_stochastic_ranker_runs_every_seed(fake_store, tmp_path):
    from otlp_aiops.evaluate.benchmark import run_rca

    metrics = run_rca("ds", "random", PARAMS, root=tmp_path)
    assert metrics["seeds"] == 3
    assert 0.0 <= metrics["ac_at_1"] <= 1.0 and metrics["ac_at_1_std"] >= 0.0
    t = pq.read_table(tmp_path / "benchmarks/results/rca/ds/random.parquet").to_pandas()
    assert sorted(t.seed.unique()) == [0, 1, 2]
    assert (tmp_path / "models/ds/rca/random/seed-2/model.json").exists()


def test_detect_stage_logs_metrics(fake_store, tmp_path):
    from otlp_aiops.evaluate.benchmark import run_detect

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
    from otlp_aiops.evaluate.benchmark import run_rca

    with pytest.raises(ConfigError, match="bogus"):
        run_rca("ds", "baro", {"rca": {"baro": {"bogus": 1}}}, root=tmp_path, track=False)
