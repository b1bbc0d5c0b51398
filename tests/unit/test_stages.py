"""The stage runners' room (:mod:`otlp_aiops.stages`): the typed settings split from params.yaml,
the ranker job of one seed (the k-fold protocol never trains on a test incident), the shared
writers, and ``evaluate/`` left as metrics only."""

from __future__ import annotations

import ast
import json
from pathlib import Path
from types import SimpleNamespace
from typing import ClassVar

import pyarrow.parquet as pq
import pytest

from otlp_aiops.config import ConfigError
from otlp_aiops.evaluate.results import RESULT_COLUMNS, RESULT_SCHEMA
from otlp_aiops.executor import LOCAL, ExecutorConfig
from otlp_aiops.stages.common import (
    NO_TRACKING,
    NullRun,
    Tracking,
    is_timing,
    mean_std,
    stage_files,
    write_stage_outputs,
)
from otlp_aiops.stages.config import BenchmarkConfig, benchmark_config, load_params, stage_settings
from otlp_aiops.stages.rca import RankerJob, dataset_label, run_ranker_seed

SRC = Path(__file__).resolve().parents[2] / "src" / "otlp_aiops"


# --------------------------------------------------------------------------------------------------
# settings
# --------------------------------------------------------------------------------------------------


def test_benchmark_config_reads_every_key_of_a_hand_written_section() -> None:
    params = {
        "benchmark": {
            "datasets": ["a", "b"],
            "rca": ["baro"],
            "detectors": ["pca", "nsigma"],
            "seeds": [3, 1],
            "folds": 4,
            "detection_offsets": ["0s", "1m30s"],
            "train_fraction": 0.25,
            "supervised_train": {"a": "a-train"},
            "transfer_from": "a-train",
        }
    }
    bench = benchmark_config(params)
    assert bench == BenchmarkConfig(
        datasets=("a", "b"),
        rca=("baro",),
        detectors=("pca", "nsigma"),
        seeds=(3, 1),
        folds=4,
        detection_offsets=("0s", "1m30s"),
        train_fraction=0.25,
        supervised_train={"a": "a-train"},
        transfer_from="a-train",
    )
    assert bench.offsets_s() == [0.0, 90.0]
    assert benchmark_config({}) == BenchmarkConfig()  # no section: the defaults
    assert BenchmarkConfig().seeds == (0, 1, 2, 3, 4) and BenchmarkConfig().folds == 5


def test_benchmark_config_rejects_an_unknown_key_naming_params_yaml() -> None:
    with pytest.raises(ConfigError, match=r"^params\.yaml benchmark: unknown setting\(s\) seed for"):
        benchmark_config({"benchmark": {"seed": [0]}})
    with pytest.raises(ConfigError, match=r"params\.yaml benchmark: .*train_fraction"):
        benchmark_config({"benchmark": {"train_fraction": 1.0}})
    with pytest.raises(ConfigError, match="detection_offsets"):
        benchmark_config({"benchmark": {"detection_offsets": ["soon"]}})


def test_stage_settings_split_the_params_into_typed_parts() -> None:
    params = {
        "benchmark": {"seeds": [7]},
        "rca": {"baro": {"top_indicators": 2}, "random": None},
        "executor": {"kind": "local", "num_cpus": 3},
    }
    s = stage_settings(params, "rca", "baro")
    assert s.bench.seeds == (7,) and s.method_config == {"top_indicators": 2}
    assert s.executor == ExecutorConfig(kind="local", num_cpus=3)
    assert stage_settings(params, "rca", "random").method_config == {}  # an empty section
    assert stage_settings(params, "detect", "baro").method_config == {}  # another task's section
    assert stage_settings(params, "rca", "baro", executor=LOCAL).executor is LOCAL
    with pytest.raises(ValueError, match="task must be one of rca, detect"):
        stage_settings(params, "report", "baro")


def test_load_params_names_the_file_of_bad_yaml(tmp_path: Path) -> None:
    (tmp_path / "p.yaml").write_text("benchmark: {seeds: [1, 2]}\n")
    assert load_params(tmp_path / "p.yaml") == {"benchmark": {"seeds": [1, 2]}}
    (tmp_path / "empty.yaml").write_text("")
    assert load_params(tmp_path / "empty.yaml") == {}
    (tmp_path / "bad.yaml").write_text("benchmark: [1,\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml"):
        load_params(tmp_path / "bad.yaml")


# --------------------------------------------------------------------------------------------------
# one seed of a ranker
# --------------------------------------------------------------------------------------------------


class _Ranking:
    def __init__(self, case_id: str) -> None:
        self.case_id = case_id


class _Supervised:
    """A supervised ranker that records what it learned from."""

    supervised = True
    stochastic = False
    fits: ClassVar[list[tuple[int, list[str]]]] = []
    saved: ClassVar[list[str]] = []

    def __init__(self, cfg: object, seed: int) -> None:
        self.seed = seed

    def fit(self, reference: object, cases: list) -> _Supervised:
        self.trained_on = [c.case_id for c in cases]
        _Supervised.fits.append((self.seed, self.trained_on))
        return self

    def rank(self, case: SimpleNamespace) -> _Ranking:
        assert case.case_id not in self.trained_on  # never ranks a case it learned from
        return _Ranking(case.case_id)

    def save(self, path: Path) -> None:
        _Supervised.saved.append(path.name)


def test_ranker_job_k_folds_never_train_on_a_test_incident(tmp_path: Path) -> None:
    _Supervised.fits, _Supervised.saved = [], []
    cases = [SimpleNamespace(case_id=f"c{i}") for i in range(7)]
    job = RankerJob(cls=_Supervised, cfg=None, seed=1, reference=None, cases=cases, train_on=None,
                    train_sets={}, folds=3, models_dir=tmp_path, variant="m")
    ranked, fit_s, history = run_ranker_seed(job)
    assert [c.case_id for c, _, _ in ranked] == [c.case_id for c in cases]  # case order kept
    assert all(r.case_id == c.case_id for c, r, _ in ranked)
    assert len(_Supervised.fits) == 3 and history == {} and fit_s >= 0.0
    for _, trained in _Supervised.fits:  # each fold trains on the other folds: 4 or 5 of 7 cases
        assert len(trained) in (4, 5)
    assert _Supervised.saved == ["seed-1-fold-0", "seed-1-fold-1", "seed-1-fold-2"]

    # a training dataset instead of folds: one fit on it, saved under the variant's name
    _Supervised.fits, _Supervised.saved = [], []
    train = [SimpleNamespace(case_id=f"t{i}") for i in range(3)]
    job = RankerJob(cls=_Supervised, cfg=None, seed=2, reference=None, cases=cases, train_on="other",
                    train_sets={"other": (None, train)}, folds=3, models_dir=tmp_path, variant="m-transfer")
    ranked, _, _ = run_ranker_seed(job)
    assert _Supervised.fits == [(2, ["t0", "t1", "t2"])] and len(ranked) == 7
    assert _Supervised.saved == ["m-transfer-seed-2"]


def test_dataset_label_marks_the_later_offsets() -> None:
    assert dataset_label("ds", 0.0, True) == "ds"
    assert dataset_label("ds", 60.0, False) == "ds+offset60s"
    assert dataset_label("ds", 7.5, False) == "ds+offset7.5s"


# --------------------------------------------------------------------------------------------------
# writers
# --------------------------------------------------------------------------------------------------


def test_write_stage_outputs_keeps_timings_and_run_ids_out_of_tracked_files(tmp_path: Path) -> None:
    def row(metric: str, value: float, run_id: str = "") -> dict:
        return {"dataset": "ds", "task": "rca", "method": "m", "seed": 0, "case_id": "c1",
                "fault_type": "cpu", "metric": metric, "value": value, "run_id": run_id}

    rows = [row("ac_at_1", 1.0, "child-1"), row("seconds", 0.5, "child-1"), row("rank", 2.0)]
    metrics = {"dataset": "ds", "ac_at_1": 1.0, "seconds": 0.5, "seconds_std": 0.1, "cpu/fit_seconds": 2.0}
    files = stage_files(tmp_path, "rca", "ds", "m")
    assert files["results"] == tmp_path / "benchmarks/results/rca/ds/m.parquet"
    assert files["log"] == tmp_path / "benchmarks/work/stage-logs/rca/ds/m.json"
    write_stage_outputs(files, rows, metrics, "parent-9")

    t = pq.read_table(files["results"])
    assert t.schema.names == list(RESULT_COLUMNS)
    assert [(f.name, str(f.type)) for f in t.schema] == [
        (n, "double" if k == "float64" else k) for n, k in RESULT_SCHEMA
    ]
    assert t.to_pylist() == [{**row("ac_at_1", 1.0)}, {**row("rank", 2.0)}]  # no timing row, no run id
    assert json.loads(files["summary"].read_text()) == {"dataset": "ds", "ac_at_1": 1.0}
    log = json.loads(files["log"].read_text())
    assert log["parent_run_id"] == "parent-9"
    assert log["timings"] == {"seconds": 0.5, "seconds_std": 0.1, "cpu/fit_seconds": 2.0}
    assert log["runs"] == [{"dataset": "ds", "method": "m", "seed": 0, "run_id": "child-1"},
                           {"dataset": "ds", "method": "m", "seed": 0, "run_id": "parent-9"}]
    assert log["timing_rows"] == [{"dataset": "ds", "method": "m", "seed": 0, "case_id": "c1",
                                   "metric": "seconds", "value": 0.5}]


def test_is_timing_and_mean_std() -> None:
    assert [is_timing(k) for k in ("seconds", "fit_seconds_std", "cpu/seconds", "ac_at_1", "seconds/x")] == [
        True, True, True, False, False]
    out = mean_std([{"a": 1.0, "b": float("nan")}, {"a": 3.0, "b": 2.0}])
    assert out == {"a": 2.0, "a_std": pytest.approx(2**0.5), "b": 2.0, "b_std": 0.0}
    assert mean_std([{"a": 1.0}]) == {"a": 1.0}  # one seed: no std


def test_tracking_off_is_a_null_run() -> None:
    run = NO_TRACKING.stage_run("rca", "ds", "m", root=None, params={})
    assert isinstance(run, NullRun) and run.run_id == ""
    with run as r, r.seed_run(0, dataset="ds") as sr:
        sr.log_metrics({"a": 1.0})
    assert Tracking().enabled and Tracking(False, "rca@ds-m").dvc_stage == "rca@ds-m"


# --------------------------------------------------------------------------------------------------
# layering
# --------------------------------------------------------------------------------------------------


def test_the_result_columns_are_defined_once() -> None:
    from otlp_aiops.report import stats

    assert stats.RESULT_COLUMNS is RESULT_COLUMNS
    assert RESULT_COLUMNS == ("dataset", "task", "method", "seed", "case_id", "fault_type", "metric", "value",
                              "run_id")


def _imported(path: Path) -> set[str]:
    found = set()
    for n in ast.walk(ast.parse(path.read_text())):
        if isinstance(n, ast.Import):
            found.update(a.name for a in n.names)
        elif isinstance(n, ast.ImportFrom) and n.module:
            found.add(n.module)
    return found


def test_evaluate_is_metrics_only() -> None:
    # evaluate/ may use the ranking type of rca/base.py, but no model, tracking, figure or command line
    forbidden = ("mlflow", "matplotlib", "argparse", "otlp_aiops.tracking", "otlp_aiops.registry",
                 "otlp_aiops.stages", "otlp_aiops.detect", "otlp_aiops.rca", "otlp_aiops.features")
    bad = {}
    for path in sorted((SRC / "evaluate").glob("*.py")):
        hits = sorted(m for m in _imported(path) - {"otlp_aiops.rca.base"}
                      if any(m == f or m.startswith(f + ".") for f in forbidden))
        if hits:
            bad[path.name] = hits
    assert bad == {}
    assert not (SRC / "evaluate" / "benchmark.py").exists()
