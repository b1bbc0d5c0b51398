"""The evaluation protocol's splits, and params.yaml as the single, complete source of settings."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from otlp_aiops import registry
from otlp_aiops.config import ConfigError, config_from_dict, config_to_dict
from otlp_aiops.evaluate.protocol import fault_free_split, incident_folds, subset_segments
from otlp_aiops.stages.config import benchmark_config

PARAMS = yaml.safe_load((Path(__file__).parents[2] / "params.yaml").read_text())


def test_incident_folds_put_every_case_in_exactly_one_test_fold():
    ids = [f"c{i}" for i in range(11)]
    folds = incident_folds(ids, 5, seed=3)
    assert len(folds) == 5
    tests = sorted(i for _, test in folds for i in test)
    assert tests == list(range(11))
    for train, test in folds:
        assert not set(train) & set(test) and sorted(train + test) == list(range(11))
        assert len(test) in (2, 3)
    assert incident_folds(ids, 5, seed=3) == folds  # seeded
    assert incident_folds(ids, 5, seed=4) != folds
    assert len(incident_folds(ids[:3], 5, seed=0)) == 3  # k > n: leave one out
    with pytest.raises(ValueError):
        incident_folds(ids[:1], 5, seed=0)


def test_subset_segments_break_at_skipped_rows_and_own_segments():
    segment = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    keep = np.array([True, True, False, True, True, True, False, True])
    # rows 0,1 | 3 | 4,5 (own segment changes at 4) | 7
    assert subset_segments(keep, segment).tolist() == [0, 0, 1, 2, 2, 3]
    assert subset_segments(np.array([2, 3, 4]), segment).tolist() == [0, 0, 1]
    assert subset_segments(np.zeros(8, bool), segment).tolist() == []


def test_params_yaml_names_a_complete_valid_config_for_every_benchmarked_method():
    bench = benchmark_config(PARAMS)
    assert set(bench.datasets) <= set(PARAMS["datasets"])
    for section, kind, methods in (("rca", "ranker", bench.rca), ("detect", "detector", bench.detectors)):
        for m in methods:
            cls = registry.model_class(kind, m)
            given = PARAMS[section][m]
            cfg = config_from_dict(cls.Config, given)
            # every field is spelled out, so `dvc exp show` and MLflow list the whole config
            assert set(given) == set(config_to_dict(cfg)), m
    for ds, train in bench.supervised_train.items():
        assert train in PARAMS["datasets"] and ds in PARAMS["datasets"]


def test_benchmark_section_is_strict():
    with pytest.raises(ConfigError, match="seedz"):
        benchmark_config({"benchmark": {"seedz": [1]}})
    with pytest.raises(ConfigError, match="folds"):
        benchmark_config({"benchmark": {"folds": 1}})


def test_fault_free_split_trains_on_the_earliest_fault_free_windows():
    t = np.datetime64("2026-01-01T00:00:00", "ns") + np.arange(10) * np.timedelta64(15, "s")
    ff = np.array([1, 1, 0, 0, 1, 1, 0, 1, 1, 1], dtype=bool)  # 7 fault-free windows
    train = fault_free_split(t, ff, 0.5)
    assert np.flatnonzero(train).tolist() == [0, 1, 4]  # floor(7 / 2) = 3 earliest
    assert not (train & ~ff).any()
    # order is by time, not by position
    rev = fault_free_split(t[::-1], ff[::-1], 0.5)
    assert np.flatnonzero(rev).tolist() == [5, 8, 9]
