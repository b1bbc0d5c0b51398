"""The label-free rankers of issue 13 on the converted Nezha Train Ticket day (../shared/datasets/
nezha-tt, 28 faults: return, exception, cpu_contention): quality floors below the measured figures
(docs/rca-methods.md; benchmarks/real/trace_rankers.py), and the content reference the features use."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytestmark = [pytest.mark.external, pytest.mark.slow]


@pytest.fixture(scope="module")
def nezha_features(real_dataset) -> Path:
    return real_dataset("nezha-tt") / "data" / "features" / "nezha-tt"


def _ranks(folder: Path, method: str) -> tuple[np.ndarray, np.ndarray]:
    from otlp_aiops import registry
    from otlp_aiops.features.store import load_cases, load_reference

    cases = [c for c in load_cases(folder) if c.root_cause_service]
    r = registry.create("ranker", method).fit(load_reference(folder))
    ranks = np.array([r.rank(c).rank_of(c.root_cause_service) for c in cases], dtype=float)
    return ranks, np.array([c.fault_type for c in cases])


def test_content_reference_is_the_fault_free_minutes(nezha_features: Path) -> None:
    meta = json.loads((nezha_features / "meta.json").read_text())
    ref = meta["content_reference"]
    # construct_data holds 2 fault-free minutes with logs: fewer than min_reference, so every
    # fault-free minute with logs is the reference
    assert ref["rule"].startswith("fault_free") and ref["windows"] >= 10
    for f in ("log.pattern_drop", "log.mix_drop", "span.in_gap_excess", "span.self_time_mean"):
        assert f in meta["features"], f


def test_multimodal_quality_floor(nezha_features: Path) -> None:
    ranks, ft = _ranks(nezha_features, "multimodal")
    assert len(ranks) == 28
    ac1, ac3 = (ranks <= 1).mean(), (ranks <= 3).mean()
    assert ac1 >= 0.6 and ac3 >= 0.85, (ac1, ac3, ranks.tolist())  # measured 0.71 / 0.93
    assert (ranks[ft == "cpu_contention"] == 1).all()
    assert (ranks[ft == "return"] <= 3).mean() >= 0.8


def test_multimodal_beats_the_metric_baseline(nezha_features: Path) -> None:
    mm, _ = _ranks(nezha_features, "multimodal")
    baro, _ = _ranks(nezha_features, "baro")
    assert np.mean(1 / mm) > np.mean(1 / baro) + 0.3


@pytest.mark.parametrize(("method", "floor"), [("tracerca", 0.3), ("microrank", 0.25)])
def test_trace_rankers_beat_random(nezha_features: Path, method: str, floor: float) -> None:
    ranks, _ = _ranks(nezha_features, method)
    avg5 = np.mean([(ranks <= k).mean() for k in range(1, 6)])
    assert avg5 >= floor, (method, avg5)  # random: ~0.06 on 46 services


def test_label_free_ensemble_meets_the_issue_target(nezha_features: Path) -> None:
    """The issue's label-free target: AC@1 >= 0.90 on this day (Nezha's own code: 0.893)."""
    from otlp_aiops import registry
    from otlp_aiops.features.store import load_cases, load_reference
    from otlp_aiops.stages.config import load_params, method_config

    cfg = method_config(load_params(Path(__file__).parents[2] / "params.yaml"), "rca", "ensemble")
    cases = [c for c in load_cases(nezha_features) if c.root_cause_service]
    r = registry.create("ranker", "ensemble", cfg).fit(load_reference(nezha_features))
    ranks = np.array([r.rank(c).rank_of(c.root_cause_service) for c in cases], dtype=float)
    assert (ranks <= 1).mean() >= 0.90, ranks.tolist()  # measured 26/28 = 0.929


def test_stacked_five_fold_meets_the_supervised_target(nezha_features: Path) -> None:
    """The issue's supervised target: AC@1 >= 0.93 under 5-fold (fold seed 0), with params.yaml's
    settings (measured 27/28 = 0.964)."""
    from otlp_aiops import registry
    from otlp_aiops.evaluate.protocol import incident_folds
    from otlp_aiops.features.store import load_cases, load_reference
    from otlp_aiops.stages.config import load_params, method_config

    cfg = method_config(load_params(Path(__file__).parents[2] / "params.yaml"), "rca", "stacked")
    cases = [c for c in load_cases(nezha_features) if c.root_cause_service]
    ref = load_reference(nezha_features)
    ranks = np.zeros(len(cases))
    for train, test in incident_folds([c.case_id for c in cases], 5, 0):
        r = registry.create("ranker", "stacked", cfg, seed=0).fit(ref, [cases[i] for i in train])
        for i in test:
            ranks[i] = r.rank(cases[i]).rank_of(cases[i].root_cause_service)
    assert (ranks <= 1).mean() >= 0.93, ranks.tolist()
    assert (ranks <= 3).all()
