"""Detection metrics on hand-built series with hand-computed values; VUS and range-based P/R are
also checked against TSB-AD's implementation when it is importable (it is not installed in the
project venv: ``pip install tsb-ad`` would downgrade numpy/pandas)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from otlp_aiops.evaluate.detection import (
    detection_long_rows,
    evaluate_detection,
    flagged_runs,
    prepare,
    range_precision_recall,
)
from otlp_aiops.evaluate.vus import label_ranges, vus

T0 = np.datetime64("2025-01-01T00:00:00", "ns")
MIN = np.timedelta64(60, "s")


def _series():
    """20 one-minute windows; incident A = windows 3..6, incident B = 12..14.
    Flagged (score > 0.5): 5, 6, 7 (one run, starts inside A), 10 and 17..18 (false alarms); B missed."""
    n = 20
    times = T0 + np.arange(n) * MIN
    inc = np.array([""] * n, dtype=object)
    inc[3:7] = "A"
    inc[12:15] = "B"
    labels = (inc != "").astype(np.int8)
    scores = np.full(n, 0.1)
    scores[[5, 6, 7, 10, 17, 18]] = 0.9
    scores[12:15] = 0.3  # B: above the background, below the threshold
    return scores, labels, inc, times


def test_event_metrics_on_two_incidents():
    scores, labels, inc, times = _series()
    r = evaluate_detection(scores, labels, inc, times, threshold=0.5)
    m = r.metrics
    # recall (α = 1): A detected, B missed → 1/2.
    # precision: runs 5-7 (2 of 3 windows in A), 10 (0), 17-18 (0) → (2/3)/3 = 2/9
    assert m["range_recall"] == 0.5
    assert m["range_precision"] == pytest.approx(2 / 9, abs=1e-15)
    assert m["range_f1"] == pytest.approx(4 / 13, abs=1e-15)  # 2·(2/9)·(1/2) / (2/9 + 1/2)
    assert r.per_incident == {"A": {"detected": 1, "detection_delay_s": 120.0},
                              "B": {"detected": 0, "detection_delay_s": None}}
    assert m["detection_delay_s"] == 120.0 and m["n_incidents"] == 2 and m["n_detected"] == 1
    # runs starting in fault-free windows: 10 and 17 (the run at 5 starts in A); 13 fault-free minutes
    assert m["false_alarms_per_hour"] == pytest.approx(2 / (13 / 60), abs=1e-12)
    # point-adjusted: A's 4 windows + FP 7, 10, 17, 18; B's 3 windows missed → 2·4/(2·4+4+3)
    assert m["pa_f1"] == pytest.approx(8 / 15, abs=1e-15)
    from sklearn.metrics import average_precision_score

    assert m["auc_pr"] == average_precision_score(labels, scores)


def test_explicit_fault_free_starts_and_alpha():
    scores, labels, inc, times = _series()
    ff = labels == 0
    ff[[7, 15]] = False  # margins after the incidents are not fault-free
    start_a = T0 + 3 * MIN + np.timedelta64(30, "s")
    r = evaluate_detection(scores, labels, inc, times, threshold=0.5, fault_free=ff,
                           incident_starts={"A": start_a}, range_alpha=0.0)
    assert r.metrics["false_alarms_per_hour"] == pytest.approx(2 / (11 / 60), abs=1e-12)
    assert r.per_incident["A"]["detection_delay_s"] == 90.0
    # α = 0: recall is the overlap only: A 2/4, B 0 → 0.25
    assert r.metrics["range_recall"] == 0.25


def test_cardinality_and_gaps():
    # one predicted run (3..5) touching two incidents (2-3 and 5-6): γ = 1/2 on its overlap 2/3
    events = {"A": np.array([2, 3]), "B": np.array([5, 6])}
    p, r = range_precision_recall(events, [(3, 5)], alpha=0.0)
    assert p == pytest.approx(1 / 3, abs=1e-15)
    assert r == 0.5  # each incident: one run, half covered
    assert range_precision_recall(events, [], alpha=1.0) == (0.0, 0.0)
    # a gap in the recording splits a run of flagged windows
    times = T0 + np.array([0, 1, 2, 5, 6]) * MIN
    runs = flagged_runs(np.array([1, 1, 1, 1, 0], dtype=bool), times, int(60e9))
    assert runs == [(0, 2), (3, 3)]


def test_bad_input_is_named():
    scores, labels, inc, times = _series()
    bad = inc.copy()
    bad[0] = "X"
    with pytest.raises(ValueError, match="label and the incident id disagree; first: window 0"):
        prepare(scores, labels, bad, times, 0.5)
    with pytest.raises(ValueError, match="strictly increasing; window 2"):
        prepare(scores, labels, inc, times[[0, 1, 1, *range(3, 20)]], 0.5)
    s = scores.copy()
    s[4] = np.nan
    with pytest.raises(ValueError, match="first at window 4"):
        prepare(s, labels, inc, times, 0.5)


def test_long_rows():
    scores, labels, inc, times = _series()
    r = evaluate_detection(scores, labels, inc, times, threshold=0.5)
    rows = detection_long_rows(r, dataset="d", method="iforest", seed=0, fault_types={"A": "cpu"})
    series = {x["metric"]: x["value"] for x in rows if x["case_id"] == ""}
    assert series["range_f1"] == pytest.approx(4 / 13) and "detected" not in series
    per = {(x["case_id"], x["metric"]): (x["fault_type"], x["value"]) for x in rows if x["case_id"]}
    assert per[("A", "detected")] == ("cpu", 1.0) and per[("B", "detected")] == ("unknown", 0.0)
    assert math.isnan(per[("B", "detection_delay_s")][1])


def test_auc_pr_hand_value():
    from otlp_aiops.evaluate.detection import auc_pr

    # ranks: 0.9 (pos) P=1, 0.8 (neg), 0.7 (pos) P=2/3 → AP = 1/2·1 + 1/2·2/3
    assert auc_pr(np.array([1, 0, 1, 0]), np.array([0.9, 0.8, 0.7, 0.1])) == pytest.approx(5 / 6, abs=1e-15)
    assert math.isnan(auc_pr(np.zeros(3), np.ones(3)))


def test_vus_pr_hand_value():
    """labels 0 1 1 0, scores .8 .9 .2 .5, L = 2, 4 thresholds (.9, .8, .5, .2).
    ℓ = 0 and 1 (no border): TPR .5 .5 .5 1, precision 1 1/2 1/3 1/2 → AP = .5 + .5·.5 = .75.
    ℓ = 2: border weight r = √(1/2) at 0 and 3, one existence segment (0..3):
    τ=.9 TP 1, P' 2; τ=.8 TP 1+r, P' 2+r/2; τ=.5 TP 1+2r, P' 2+r; τ=.2 TP 2+2r, P' 2+r (recall capped)."""
    r = math.sqrt(0.5)
    tpr = [0.5, (1 + r) / (2 + r / 2), (1 + 2 * r) / (2 + r), 1.0]
    prec = [1.0, (1 + r) / 2, (1 + 2 * r) / 3, (2 + 2 * r) / 4]
    ap2 = sum((t - tp) * p for t, tp, p in zip(tpr, [0.0, *tpr[:-1]], prec, strict=True))
    got = vus(np.array([0, 1, 1, 0]), np.array([0.8, 0.9, 0.2, 0.5]), max_buffer=2, n_thresholds=4)
    assert got["vus_pr"] == pytest.approx((0.75 + 0.75 + ap2) / 3, abs=1e-12)
    assert math.isnan(vus(np.zeros(5), np.arange(5.0))["vus_pr"])
    assert label_ranges(np.array([1, 1, 0, 1])) == [(0, 1), (3, 3)]


def _random_cases(seed: int, n_cases: int):
    rng = np.random.default_rng(seed)
    for trial in range(n_cases):
        n = int(rng.integers(20, 300))
        y = np.zeros(n, dtype=int)
        for _ in range(int(rng.integers(1, 5))):
            a = int(rng.integers(0, n))
            y[a : a + int(rng.integers(1, 15))] = 1
        s = rng.normal(size=n) + 1.5 * y * rng.random()
        if trial % 3 == 0:
            s = np.round(s, 1)  # ties
        yield y, s, int(rng.integers(0, 12))


def test_vus_matches_tsb_ad():
    bm = pytest.importorskip("TSB_AD.evaluation.basic_metrics")
    for y, s, L in _random_cases(0, 12):
        *_, vus_roc, vus_pr_ref = bm.generate_curve(y, s, L)
        got = vus(y, s, max_buffer=L)
        assert got["vus_pr"] == pytest.approx(vus_pr_ref, abs=1e-6)
        assert got["vus_roc"] == pytest.approx(vus_roc, abs=1e-6)


def test_range_pr_matches_tsb_ad():
    bm = pytest.importorskip("TSB_AD.evaluation.basic_metrics")
    g = bm.basic_metricor()
    rng = np.random.default_rng(1)
    times = T0 + np.arange(300) * MIN
    for y, _, _ in _random_cases(2, 30):
        n = len(y)
        p = np.zeros(n, dtype=int)
        for _ in range(int(rng.integers(1, 6))):
            a = int(rng.integers(0, n))
            p[a : a + int(rng.integers(1, 8))] = 1
        events = {f"i{k}": np.arange(a, b + 1) for k, (a, b) in enumerate(label_ranges(y))}
        runs = flagged_runs(p.astype(bool), times[:n], int(60e9))
        prec, rec = range_precision_recall(events, runs, alpha=0.2)
        assert rec == pytest.approx(g.range_recall_new(y, p, 0.2)[0], abs=1e-12)
        assert prec == pytest.approx(g.range_recall_new(p, y, 0)[0], abs=1e-12)
