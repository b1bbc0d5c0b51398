"""Nezha on hand-built traces: the event graph edge by edge, a vanished code-path pattern found at
service and indicator level, the alarm path, the metrics-only fallback and save -> load."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from otlp_aiops.evaluate.rca import rca_case_result
from otlp_aiops.features.data import CaseData, ReferenceData, ServiceGraph
from otlp_aiops.rca.nezha import NezhaConfig, NezhaRanker, _metric_name, _score_bound
from otlp_aiops.rca.nezha_events import event_edges
from otlp_aiops.registry import load_model

S = 1_000_000_000
MIN = 60 * S
T0 = 1_700_000_000 * S // MIN * MIN  # a minute boundary
SERVICES = ("back", "front", "other")


def _tid(k: int) -> bytes:
    return k.to_bytes(16, "big")


def _sid(k: int) -> bytes:
    return k.to_bytes(8, "big")


# --- the event graph ------------------------------------------------------------------------------


def _spans(rows):
    return pl.DataFrame(
        [{"tid": _tid(t), "sid": _sid(s), "pid": None if p is None else _sid(p), "svc": svc, "inst": inst,
          "op": op, "t0": a, "t1": b, "trace_t0": 0} for t, s, p, svc, inst, op, a, b in rows],
        schema={"tid": pl.Binary, "sid": pl.Binary, "pid": pl.Binary, "svc": pl.String, "inst": pl.String,
                "op": pl.String, "t0": pl.Int64, "t1": pl.Int64, "trace_t0": pl.Int64})  # fmt: skip


def _logs(rows):
    return pl.DataFrame([{"tid": _tid(t), "sid": _sid(s), "t": ts, "tmpl": tm} for t, s, ts, tm in rows],
                        schema={"tid": pl.Binary, "sid": pl.Binary, "t": pl.Int64, "tmpl": pl.String})


def test_event_graph_of_one_trace():
    # A (front-1) calls B in another instance and C in its own; A logs at 55 before C starts at 60
    spans = _spans([(1, 1, None, "front", "front-1", "GET /", 0, 100),
                    (1, 2, 1, "back", "back-1", "Get", 10, 50),
                    (1, 3, 1, "front", "front-1", "internal", 60, 70)])  # fmt: skip
    logs = _logs([(1, 1, 55, "L <*> items"), (1, 2, 20, "c.s.X#31"), (1, 2, 30, "c.s.X#34")])
    edges, events = event_edges(spans, logs)
    got = sorted(zip(edges["a"].to_list(), edges["b"].to_list(), strict=True))
    assert got == sorted([
        ("front GET / start", "front L <*> items"), ("front L <*> items", "front GET / end"),  # inside A
        ("back Get start", "back c.s.X#31"), ("back c.s.X#31", "back c.s.X#34"), ("back c.s.X#34", "back Get end"),
        ("front internal start", "front internal end"),
        ("front GET / start", "back Get start"),  # another instance: off the parent's first event
        ("front L <*> items", "front internal start"),  # same instance: the parent's last event before
    ])  # fmt: skip
    depth = dict(zip(events["ev"].to_list(), events["depth"].to_list(), strict=True))
    assert depth["front GET / start"] == 0 and depth["front L <*> items"] == 1
    assert depth["back Get start"] == 1 and depth["back c.s.X#34"] == 2
    assert set(edges["a_svc"].to_list()) == {"front", "back"}


def test_alarm_events_follow_the_span_start():
    spans = _spans([(1, 1, None, "back", "back-1", "Get", 0, 50)])
    edges, _ = event_edges(spans, _logs([]), {"back": ("cpu",)})
    got = list(zip(edges["a"].to_list(), edges["b"].to_list(), strict=True))
    assert sorted(got) == sorted([("back Get start", "back alarm cpu"), ("back alarm cpu", "back Get end")])


def test_a_log_after_the_span_end_moves_the_end_event():
    spans = _spans([(1, 1, None, "back", "back-1", "Get", 0, 50)])
    edges, _ = event_edges(spans, _logs([(1, 1, 80, "late")]))
    got = list(zip(edges["a"].to_list(), edges["b"].to_list(), strict=True))
    assert sorted(got) == [("back Get start", "back late"), ("back late", "back Get end")]


# --- the ranker on an ingest folder ---------------------------------------------------------------


def _write_interim(root: Path, traces: list[tuple[int, int, str]]) -> Path:
    """One trace per (trace number, start ns, back's second log line): front GET / -> back Get with
    two log lines; other's span only on odd traces."""
    span_rows, log_rows = [], []
    for k, t, second in traces:
        tid = _tid(k)
        span_rows += [
            (tid, _sid(3 * k), None, "front", "front-1", "GET /", t, t + 100 * 10**6),
            (tid, _sid(3 * k + 1), _sid(3 * k), "back", "back-1", "Get", t + 10 * 10**6, t + 50 * 10**6),
        ]
        if k % 2:
            span_rows.append((tid, _sid(3 * k + 2), _sid(3 * k), "other", "other-1", "Put", t + 60 * 10**6,
                              t + 70 * 10**6))
        log_rows += [(tid, _sid(3 * k + 1), t + 20 * 10**6, f"12:00:00 INFO c.s.X#31 TraceID: {k} start"),
                     (tid, _sid(3 * k + 1), t + 30 * 10**6, f"12:00:00 INFO {second} TraceID: {k} done")]
    d = root / "interim" / "toy"
    (d / "spans").mkdir(parents=True)
    (d / "logs").mkdir(parents=True)
    ts = pa.timestamp("ns", tz="UTC")
    cols = list(zip(*span_rows, strict=True))
    pq.write_table(pa.table({
        "trace_id": pa.array(cols[0], pa.binary(16)), "span_id": pa.array(cols[1], pa.binary(8)),
        "parent_span_id": pa.array(cols[2], pa.binary(8)), "service_name": pa.array(cols[3]),
        "k8s_pod_name": pa.array(cols[4]), "service_instance_id": pa.array(cols[4]), "name": pa.array(cols[5]),
        "start_time": pa.array(cols[6], pa.int64()).cast(ts), "end_time": pa.array(cols[7], pa.int64()).cast(ts),
    }), d / "spans" / "part-0.parquet")  # fmt: skip
    cols = list(zip(*log_rows, strict=True))
    pq.write_table(pa.table({
        "trace_id": pa.array(cols[0], pa.binary(16)), "span_id": pa.array(cols[1], pa.binary(8)),
        "time": pa.array(cols[2], pa.int64()).cast(ts), "body": pa.array(cols[3]),
    }), d / "logs" / "part-0.parquet")  # fmt: skip
    return d


def _toy(root: Path, *, faulty_second: str = "c.s.X#40", cpu_spike: float = 0.0):
    """10 fault-free minutes (10 traces each) and a case whose fault minute (the one after the onset
    window) has 10 traces where back's second log line is ``faulty_second``."""
    traces, k = [], 0
    for m in range(10):
        for j in range(10):
            traces.append((k, T0 + m * MIN + j * 5 * S, "c.s.X#34"))
            k += 1
    onset = T0 + 15 * MIN
    for j in range(10):
        traces.append((k, onset + MIN + j * 5 * S, faulty_second))
        k += 1
    _write_interim(root, traces)
    feats = ("metric.cpu_usage.mean",)
    rng = np.random.default_rng(0)
    ref_vals = 1.0 + 0.01 * rng.standard_normal((10, 3, 1))
    ref = ReferenceData(dataset="toy", services=SERVICES, features=feats, feature_kinds=("cpu",),
                        times=(T0 + np.arange(10) * MIN).astype("datetime64[ns]"), values=ref_vals,
                        graph=ServiceGraph(SERVICES, (("front", "back"), ("front", "other"))))
    times = (T0 + np.arange(10, 20) * MIN).astype("datetime64[ns]")
    vals = 1.0 + 0.01 * rng.standard_normal((10, 3, 1))
    if cpu_spike:
        vals[6:, SERVICES.index("other"), 0] = cpu_spike
    case = CaseData(case_id="c1", dataset="toy", services=SERVICES, features=feats, feature_kinds=("cpu",),
                    times=times, values=vals, onset=5, reference_times=ref.times, reference=ref_vals,
                    graph=ref.graph, root_cause_service="back", root_cause_indicator="c.s.X#31_c.s.X#34",
                    fault_type="return", extra={"features_dir": str(root / "features" / "toy")})
    return ref, case


def test_a_vanished_code_path_names_the_service_and_the_log_pair(tmp_path):
    ref, case = _toy(tmp_path)
    r = NezhaRanker().fit(ref)
    assert r.interim_dir_ == ""  # found at the first rank, beside the features folder
    ranking = r.rank(case)
    assert r.interim_dir_ == str((tmp_path / "interim" / "toy").resolve())
    assert ranking.services[0] == "back"
    svc, indicator, _ = ranking.indicators[0]
    assert svc == "back" and indicator == "back c.s.X#31 -> back c.s.X#34"
    # 10 expected (10 per fault-free minute, 10 traces in the fault minute), 0 seen
    assert ranking.scores[0] == pytest.approx(2.0 + _score_bound(10.0, 0.0), abs=1e-5)
    res = rca_case_result("c1", ranking, "back", root_cause_indicator=case.root_cause_indicator)
    assert res.rank == 1 and res.indicator_rank == 1 and res.indicator_position == 1
    # the ranking does not read the labels
    bare = dataclasses.replace(case, root_cause_service=None, root_cause_indicator=None, fault_type=None)
    assert r.rank(bare).services == ranking.services
    # save -> load: the same ranking (the ingest tables are read again, lazily)
    r.save(tmp_path / "m")
    again = load_model(tmp_path / "m", "ranker").rank(case)
    assert again.services == ranking.services and again.indicators == ranking.indicators


def test_no_change_no_pattern(tmp_path):
    ref, case = _toy(tmp_path, faulty_second="c.s.X#34")
    ranking = NezhaRanker().fit(ref).rank(case)
    assert all(score < 2.0 for score in ranking.scores)  # no service reaches the pattern tier


def test_a_cpu_alarm_breaks_the_service_patterns(tmp_path):
    ref, case = _toy(tmp_path, faulty_second="c.s.X#34", cpu_spike=50.0)
    ranking = NezhaRanker().fit(ref).rank(case)
    assert ranking.services[0] == "other"
    svc, indicator, _ = ranking.indicators[0]
    assert svc == "other" and indicator == "other Put start -> other Put end [alarm cpu_usage]"
    res = rca_case_result("c1", ranking, "other", root_cause_indicator="cpu.usage")
    assert res.indicator_rank == 1


def test_metrics_only_data_falls_back_to_alarms(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no data/interim/toy here
    ref, case = _toy(tmp_path / "elsewhere", cpu_spike=50.0)
    case = dataclasses.replace(case, extra={})
    r = NezhaRanker(NezhaConfig(interim_root=str(tmp_path / "none"))).fit(ref)
    ranking = r.rank(case)
    assert r.interim_dir_ == "" and r.ref_counts_.height == 0
    assert ranking.services[0] == "other"
    assert ranking.indicators[0][:2] == ("other", "metric.cpu_usage.mean")
    assert 1.0 <= ranking.scores[0] < 2.0  # the alarm tier


def test_config_is_checked():
    with pytest.raises(ValueError, match="order"):
        NezhaConfig(order="fastest")
    with pytest.raises(ValueError, match="alarm_kinds"):
        NezhaConfig(alarm_kinds=("cpu", "gpu"))
    with pytest.raises(ValueError, match="min_presence"):
        NezhaConfig(min_presence=1.5)


def test_helpers():
    assert _metric_name("metric.pod_cpu_utilization.mean") == "pod_cpu_utilization"
    assert _metric_name("metric.x") == "x"
    # chi2.ppf(0.9, 2) / 2 = -ln(0.1) = 2.302585: the 90 % upper limit of a Poisson mean after 0 events
    assert _score_bound(10.0, 0.0) == pytest.approx(10.0 / (10.0 + 2.302585), abs=1e-6)
    assert _score_bound(0.0, 0.0) == 0.0


def test_rankers_without_indicators_show_a_dash_in_the_tables():
    import math

    import pandas as pd

    from otlp_aiops.report import stats, tables

    assert "ais_at_1" in stats.TABLE_METRICS["rca"] and stats.spec("ais_at_1").label == "AIS@1"
    summ = pd.DataFrame([
        ("d", "rca", "all", "nezha", "ac_at_1", 0.9, math.nan, 1, 28, 0.8, 1.0),
        ("d", "rca", "all", "nezha", "ais_at_1", 0.8, math.nan, 1, 28, 0.7, 0.9),
        ("d", "rca", "all", "pagerank", "ac_at_1", 0.4, math.nan, 1, 28, 0.3, 0.5),
    ], columns=[*stats.GROUP, "mean", "std", "n_seeds", "n_cases", "ci_low", "ci_high"])  # fmt: skip
    header, rows = tables.build_table(summ, pd.DataFrame(), dataset="d", task="rca", metrics=["ac_at_1", "ais_at_1"])
    md = tables.to_markdown(header, rows)
    assert "| method | AC@1 | AIS@1 |" in md
    assert f"| pagerank | 0.40 [0.30, 0.50] | {tables.MISSING} |" in md


def test_the_network_alarm_reads_a_trace_feature_by_name(tmp_path, monkeypatch):
    """``alarm_features``: the paper's NetworkP90 alarm on the calls into a service. The same spike
    in ``span.in_gap_p90`` (a latency-kind feature, not an alarm kind) is only a fallback z without
    it and an alarm with it."""
    monkeypatch.chdir(tmp_path)
    ref, case = _toy(tmp_path / "elsewhere", cpu_spike=50.0)
    feats, kinds = ("span.in_gap_p90",), ("latency",)
    ref = dataclasses.replace(ref, features=feats, feature_kinds=kinds)
    case = dataclasses.replace(case, features=feats, feature_kinds=kinds, extra={})
    plain = NezhaRanker(NezhaConfig(interim_root=str(tmp_path / "none"))).fit(ref).rank(case)
    assert plain.services[0] == "other" and plain.scores[0] < 1.0  # the fallback tier
    cfg = NezhaConfig(interim_root=str(tmp_path / "none"), alarm_features=("span.in_gap_p90",))
    ranking = NezhaRanker(cfg).fit(ref).rank(case)
    assert ranking.services[0] == "other" and 1.0 <= ranking.scores[0] < 2.0  # the alarm tier
    assert ranking.indicators[0][:2] == ("other", "span.in_gap_p90")
    assert all(s < 1.0 for s in ranking.scores[1:])  # the other services: no alarm


@pytest.mark.parametrize(("sparse_rule", "alarms"), [(False, True), (True, False)])
def test_a_sparse_count_alarms_only_above_its_fault_free_maximum(tmp_path, monkeypatch, sparse_rule, alarms):
    """``alarm_sparse_new_high``: a GC count that is 0 in 9 of 10 fault-free minutes and 0.07 in one
    reaching 0.07 again is no new high. Without the rule it alarms once the bars are low enough (here
    3 sigma, z = (0.07 - 0.007) / 0.021 = 3.0, and 1x the 99th percentile, 0.0637)."""
    monkeypatch.chdir(tmp_path)
    ref, case = _toy(tmp_path / "elsewhere")
    feats, kinds = ("metric.gc_collections.rate",), ("memory",)
    ref_vals = np.zeros((10, 3, 1))
    ref_vals[4, SERVICES.index("other"), 0] = 0.07
    vals = np.zeros((10, 3, 1))
    vals[6:, SERVICES.index("other"), 0] = 0.07
    ref = dataclasses.replace(ref, features=feats, feature_kinds=kinds, values=ref_vals)
    case = dataclasses.replace(case, features=feats, feature_kinds=kinds, values=vals, reference=ref_vals,
                               extra={})
    cfg = NezhaConfig(interim_root=str(tmp_path / "none"), alarm_min_change=0.0, alarm_sigma=2.9,
                      alarm_sparse_new_high=sparse_rule)
    ranking = NezhaRanker(cfg).fit(ref).rank(case)
    assert ranking.services[0] == "other"
    assert (1.0 <= ranking.scores[0] < 2.0) == alarms  # the alarm tier, or the fallback's
