"""MicroRank, TraceRCA and the multimodal ranker on hand-built trace tables and cases."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from model_factories import SERVICES, make_case
from otlp_aiops import registry
from otlp_aiops.features.data import CaseData
from otlp_aiops.rca.multimodal import MultimodalRanker
from otlp_aiops.rca.trace import TraceAnomalyConfig, bipartite_pagerank, case_traces

OPS = {"frontend": "GET /", "checkout": "PlaceOrder", "payment": "Charge", "cart": "GetCart", "currency": "Convert"}


def _trace_table(path: Path, case: CaseData, slow: str, seed: int = 0) -> None:
    """Reference windows: a third of the traces each frontend -> checkout -> payment, frontend ->
    checkout -> currency, frontend -> cart, ~100 ms per service. After the onset ``slow`` takes 400 ms more in each trace through it (its callers
    inherit the delay); the cart traces stay normal."""
    rng = np.random.default_rng(seed)
    rows = []
    tid = 0
    ref_w = case.reference_times.astype(np.int64)
    after_w = case.times[case.onset:].astype(np.int64)
    for w, faulty in [(w, False) for w in ref_w] + [(w, True) for w in after_w]:
        for k in range(12):
            tid += 1
            path_ = [("frontend", "cart"), ("frontend", "checkout", "payment"), ("frontend", "checkout", "currency")][k % 3]
            extra = 400.0 if faulty and slow in path_ else 0.0
            for depth, s in enumerate(path_):
                inherited = extra if slow in path_ and path_.index(slow) >= depth else 0.0
                rows.append({"w": int(w), "trace": tid, "service": s, "operation": OPS[s],
                             "duration_ms": 100.0 + rng.normal(0, 5) + inherited, "self_ms": 50.0,
                             "spans": 1, "error": False, "origin": False, "log_errors": 0, "log_unseen": 0})
    t = pa.Table.from_pylist(rows)
    t = t.set_column(1, "trace", t.column("trace").cast(pa.uint64()))
    path.mkdir(parents=True, exist_ok=True)
    pq.write_table(t, path / "trace_services.parquet")


@pytest.fixture(scope="module")
def traced_case(tmp_path_factory: pytest.TempPathFactory) -> CaseData:
    case = make_case("payment", "latency", seed=3)
    d = tmp_path_factory.mktemp("traced")
    _trace_table(d, case, slow="payment")
    return dataclasses.replace(case, extra={"features_dir": str(d)})


def test_pagerank_restarts_at_traces() -> None:
    # op 0 is in both traces, op 1 only in trace 1: op 0 collects more rank
    p = bipartite_pagerank(np.array([0, 0, 1]), np.array([0, 1, 1]), 2, 2, 0.85, 100)
    assert p[0] > p[1] > 0
    assert bipartite_pagerank(np.zeros(0, np.int64), np.zeros(0, np.int64), 3, 0, 0.85, 10).tolist() == [0, 0, 0]


def test_invocation_anomalies(traced_case: CaseData) -> None:
    ct = case_traces(traced_case, TraceAnomalyConfig())
    names = list(ct.service_names)
    svc = np.array([names[i] for i in ct.service])
    # every payment invocation after the onset is 400 ms slower (80 sigma): anomalous; cart never is
    assert ct.anomalous[svc == "payment"].all() and not ct.anomalous[svc == "cart"].any()
    assert ct.anomalous[svc == "frontend"].mean() == pytest.approx(4 / 12)  # the traces through payment


@pytest.mark.parametrize("name", ["microrank", "tracerca"])
def test_trace_rankers_find_the_slow_service(name: str, traced_case: CaseData) -> None:
    r = registry.create("ranker", name).fit(None)
    ranking = r.rank(traced_case)
    assert ranking.services[0] == "payment"
    assert sorted(ranking.services) == sorted(SERVICES)
    assert ranking.services[-1] == "redis"  # no trace reaches it: last


def test_microrank_spectrum_scores(traced_case: CaseData) -> None:
    ranking = registry.create("ranker", "microrank").fit(None).rank(traced_case)
    s = dict(zip(ranking.services, ranking.scores, strict=True))
    # payment: only in anomalous traces, in all of them: Ochiai = ef / sqrt(ef * ef) = 1
    assert s["payment"] == pytest.approx(1.0)
    assert 0 < s["checkout"] < 1 and 0 < s["frontend"] < s["checkout"] and s["cart"] == 0.0


def test_tracerca_support_confidence(traced_case: CaseData) -> None:
    ranking = registry.create("ranker", "tracerca").fit(None).rank(traced_case)
    s = dict(zip(ranking.services, ranking.scores, strict=True))
    # payment: anomalous in every anomalous trace and in every trace through it (J = 1); checkout: in
    # half of its traces (J = 4 / (4 + 8 - 4)); frontend: in a third
    assert s["payment"] == pytest.approx(1.0, abs=1e-6)
    assert s["checkout"] == pytest.approx(0.5, abs=1e-6) and s["frontend"] == pytest.approx(1 / 3, abs=1e-6)


def test_without_traces_the_trace_rankers_fall_back() -> None:
    case = make_case("currency", "cpu", seed=2)
    fb = MultimodalRanker().fit(None).rank(case)
    for name in ("microrank", "tracerca"):
        assert registry.create("ranker", name).fit(None).rank(case).services == fb.services
    assert fb.services[0] == "currency"


def test_multimodal_evidence_is_calibrated_against_the_baseline() -> None:
    """A statistic feature scores its post-onset peak over (1 + its baseline peak)."""
    case = make_case("cart", "latency", seed=1)
    feats = (*case.features, "log.pattern_drop")
    kinds = (*case.feature_kinds, "logs")
    S = len(case.services)
    add = np.zeros((len(case.values), S, 1))
    add[case.onset:, case.services.index("cart"), 0] = 6.0  # a vanished line in cart
    add[case.onset:, case.services.index("redis"), 0] = 6.0  # redis: as high, but it always is noisy
    ref_add = np.zeros((len(case.reference), S, 1))
    ref_add[::5, case.services.index("redis"), 0] = 5.0
    c = dataclasses.replace(case, features=feats, feature_kinds=kinds,
                            values=np.concatenate([case.values, add], axis=2),
                            reference=np.concatenate([case.reference, ref_add], axis=2))
    r = MultimodalRanker(MultimodalRanker.Config(resource_kinds=()))
    ev, _ = r.fit(None).evidence(c)
    j = feats.index("log.pattern_drop")
    assert ev[case.services.index("cart"), j] == pytest.approx(6.0)
    assert ev[case.services.index("redis"), j] == pytest.approx(1.0)
    ranking = r.rank(c)
    assert ranking.services[0] == "cart" and ranking.indicators[0][:2] == ("cart", "log.pattern_drop")


def test_multimodal_metrics_only_falls_back_to_every_metric() -> None:
    case = make_case("checkout", "latency", seed=4)  # no log / span-structure features at all
    ranking = MultimodalRanker().fit(None).rank(case)
    assert ranking.services[0] == "checkout"
    assert ranking.indicators[0][1] == "span.server_latency_p90"


def _flat_baseline_case(multi_signal: bool = True) -> tuple[CaseData, object]:
    """``cart``'s disk-operation rate reads 4.0 in every baseline window of the case and 5.0 after
    the onset; in the dataset's fault-free reference it alternates 4.0 / 6.0 (median 5, MAD 1).
    ``multi_signal``: a log-content feature (0 everywhere) is present too."""
    from model_factories import make_reference

    case = make_case("payment", "cpu", seed=5, magnitude=0.0)
    ref = make_reference(20, seed=5)
    new = [("metric.disk_ops.rate", "saturation")] + ([("log.pattern_drop", "logs")] if multi_signal else [])
    feats = (*case.features, *(f for f, _ in new))
    kinds = (*case.feature_kinds, *(k for _, k in new))
    S, c = len(case.services), case.services.index("cart")

    def extended(values: np.ndarray, cart: np.ndarray) -> np.ndarray:
        add = np.zeros((len(values), S, len(new)))
        add[:, c, 0] = cart
        return np.concatenate([values, add], axis=2)

    cart_case = np.where(np.arange(len(case.values)) < case.onset, 4.0, 5.0)
    case = dataclasses.replace(case, features=feats, feature_kinds=kinds,
                               values=extended(case.values, cart_case),
                               reference=extended(case.reference, np.full(len(case.reference), 4.0)))
    ref = dataclasses.replace(ref, features=feats, feature_kinds=kinds,
                              values=extended(ref.values, np.tile([4.0, 6.0], 10)))
    return case, ref


@pytest.mark.parametrize(("settings", "multi_signal", "expected"), [
    # the case baseline alone: spread 0, floor 1e-3 x |median 4| -> z = 1 / 0.004
    ({"reference_scale": False}, True, 250.0),
    # the reference's spread (1.4826 x MAD 1) scales the z of the constant baseline
    ({"reference_scale": True}, True, 1.0 / 1.4826),
    # ... and the reference windows' largest |z| (2 / 1.4826) is the normal extreme too
    ({"reference_scale": True, "reference_quantile": 1.0}, True, (1.0 / 1.4826) / (1.0 + 2.0 / 1.4826)),
    # metrics-only data is a robust n-sigma against the case's baseline: no reference extreme
    ({"reference_scale": True, "reference_quantile": 1.0}, False, 1.0 / 1.4826),
])
def test_multimodal_reference_settings_on_a_constant_baseline(settings: dict, multi_signal: bool,
                                                              expected: float) -> None:
    case, ref = _flat_baseline_case(multi_signal)
    kinds = ("saturation",) if multi_signal else ("saturation", "cpu")
    cfg = MultimodalRanker.Config(resource_kinds=("saturation",), fallback_kinds=kinds, **settings)
    ev, _ = MultimodalRanker(cfg).fit(ref).evidence(case)
    cart, j = case.services.index("cart"), case.features.index("metric.disk_ops.rate")
    assert ev[cart, j] == pytest.approx(expected)
    # without a reference (fit(None)) neither setting applies
    ev0, _ = MultimodalRanker(cfg).fit(None).evidence(case)
    assert ev0[cart, j] == pytest.approx(250.0)


def test_multimodal_reference_quantile_is_checked() -> None:
    from otlp_aiops.config import ConfigError

    with pytest.raises(ConfigError, match="reference_quantile"):
        MultimodalRanker.Config(reference_quantile=1.5)
