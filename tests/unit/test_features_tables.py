"""The features stage on hand-built spans, metrics and logs: exact values of every table."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from features_factories import SEC, T0, span_id, trace_id, write_raw, write_table
from otlp_aiops.features.build import build_features
from otlp_aiops.features.config import FeaturesConfig
from otlp_aiops.features.store import load_cases, load_detection, load_graph, load_reference

W = 10 * SEC
MS = 10**6


def _span(n, svc, t, dur_ms, kind=2, parent=None, tid=1, **kw):
    return {"trace_id": trace_id(tid), "span_id": span_id(n), "parent_span_id": None if parent is None else span_id(parent),
            "service_name": svc, "kind": kind, "start_time": T0 + int(t * SEC), "end_time": T0 + int(t * SEC) + dur_ms * MS,
            "duration_ns": int(dur_ms * MS), **kw}  # fmt: skip


def _build(tmp: Path) -> Path:
    interim, raw, out = tmp / "interim", tmp / "raw", tmp / "features" / "toy"
    write_table(interim, "spans", [
        _span(1, "a", 1, 10),
        _span(2, "a", 1, 8, kind=3, parent=1),
        _span(3, "b", 1, 5, parent=2, http_response_status_code=503),  # server 5xx, status unset: error
        _span(4, "a", 2, 20, tid=2, status_code=2),
        _span(5, "a", 3, 30, tid=3, http_response_status_code=404),  # server 4xx: not an error
        _span(6, "a", 4, 40, tid=4),
        _span(7, "a", 2, 3, kind=3, parent=4, tid=2, peer_service="db", http_response_status_code=404),
        _span(8, "a", 12, 100, tid=5),
    ])  # fmt: skip
    before = T0 - 100 * SEC
    write_table(interim, "metrics_number", [
        *[{"service_name": "m", "metric_name": "req", "metric_type": "sum", "aggregation_temporality": 2,
           "is_monotonic": True, "series_id": 1, "start_time": before, "time": T0 + t * SEC, "value_double": v}
          for t, v in ((5, 10.0), (15, 15.0), (25, 25.0), (35, 5.0), (45, 8.0))],
        {"service_name": "m", "metric_name": "container.cpu.usage", "series_id": 2, "time": T0 + 1 * SEC, "value_double": 1.0},
        {"service_name": "m", "metric_name": "container.cpu.usage", "series_id": 2, "time": T0 + 6 * SEC, "value_int": 3, "value_double": 3.0},
        *[{"service_name": "m", "metric_name": "reqd", "metric_type": "sum", "aggregation_temporality": 1,
           "is_monotonic": True, "series_id": 4, "time": T0 + t * SEC, "value_int": v, "value_double": float(v)}
          for t, v in ((2, 2), (7, 3))],
    ])  # fmt: skip
    bounds = [float(b) for b in range(1, 11)]
    write_table(interim, "metrics_histogram", [
        {"service_name": "m", "metric_name": "lat", "aggregation_temporality": 2, "series_id": 3, "start_time": before,
         "time": T0 + 5 * SEC, "count": 0, "sum": 0.0, "bucket_counts": [0] * 11, "explicit_bounds": bounds},
        {"service_name": "m", "metric_name": "lat", "aggregation_temporality": 2, "series_id": 3, "start_time": before,
         "time": T0 + 15 * SEC, "count": 10000, "sum": 50000.0, "bucket_counts": [1000] * 10 + [0],
         "explicit_bounds": bounds},
    ])  # fmt: skip
    write_table(interim, "metrics_exp_histogram", [
        {"service_name": "m", "metric_name": "elat", "aggregation_temporality": 1, "series_id": 5,
         "time": T0 + 5 * SEC, "count": 40, "sum": 120.0, "scale": 0, "positive_offset": 0,
         "positive_bucket_counts": [10, 20, 10]},
    ])  # fmt: skip
    logs = [("user 12 logged in", 9, 1), ("user 345 logged in", 9, 2), ("disk full on /dev/sda1", 17, 3),
            ("user 7 logged in", 9, 11), ("user 8 logged in", 9, 12), ("disk full on /dev/sdb2", 17, 13),
            ("connection refused by peer", 17, 31)]  # fmt: skip
    write_table(interim, "logs", [{"service_name": "a", "body": b, "severity_number": s, "time": T0 + t * SEC}
                                  for b, s, t in logs])  # fmt: skip
    write_raw(raw, [
        {"incident_id": "i1", "start_time": T0 + 30 * SEC, "end_time": T0 + 41 * SEC, "root_cause_service": "m",
         "fault_type": "cpu_hog"},
        {"incident_id": "i2", "start_time": T0 + 60 * SEC, "end_time": T0 + 65 * SEC, "root_cause_service": "a"},
    ], topology={"edges": [{"caller": "a", "callee": "c"}]})  # fmt: skip
    cfg = FeaturesConfig(window="10s", before="20s", after="20s", margin=0, reference="20s", segment_gap=5)
    build_features(interim, raw, out, cfg)
    return out


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _build(tmp_path_factory.mktemp("features"))


@pytest.fixture(scope="module")
def sw(built: Path) -> dict:
    t = pq.read_table(built / "service_windows.parquet").to_pylist()
    return {(int((r["window_start"].timestamp() * SEC - T0) // W), r["service"]): r for r in t}


def test_span_features_exact(sw: dict) -> None:
    a0 = sw[(0, "a")]
    assert a0["span.server_count"] == 4 and a0["span.server_rate"] == 0.4
    assert a0["span.server_errors"] == 1 and a0["span.server_error_rate"] == 0.25
    assert a0["span.server_latency_mean"] == pytest.approx(25.0)
    assert a0["span.server_latency_p50"] == pytest.approx(25.0)  # linear between order statistics
    assert a0["span.server_latency_p90"] == pytest.approx(37.0)
    assert a0["span.server_latency_p99"] == pytest.approx(39.7)
    assert a0["span.client_count"] == 2 and a0["span.client_errors"] == 1  # client 404 is an error
    assert a0["span.client_latency_p50"] == pytest.approx(5.5)
    b0 = sw[(0, "b")]
    assert b0["span.server_count"] == 1 and b0["span.server_error_rate"] == 1.0
    assert sw[(1, "a")]["span.server_latency_p99"] == pytest.approx(100.0)
    # a window with data but no spans of a: counts are 0, latencies unknown
    assert sw[(2, "a")]["span.server_count"] == 0 and np.isnan(sw[(2, "a")]["span.server_latency_p50"])


def test_metric_features_exact(sw: dict) -> None:
    inc = [sw[(k, "m")]["metric.req.increase"] for k in range(5)]
    assert np.isnan(inc[0])  # first point of a series that started before the data: unknown
    assert inc[1:] == [5.0, 10.0, 5.0, 3.0]  # 25 -> 5 is a reset: the increase is 5
    assert sw[(1, "m")]["metric.req.rate"] == 0.5
    assert sw[(0, "m")]["metric.container_cpu_usage.mean"] == 2.0
    assert sw[(0, "m")]["metric.container_cpu_usage.max"] == 3.0
    assert sw[(0, "m")]["metric.reqd.increase"] == 5.0  # delta temporality: summed
    m1 = sw[(1, "m")]  # uniform on (0, 10]: interpolation inside buckets is exact
    assert m1["metric.lat.count"] == 10000 and m1["metric.lat.mean"] == 5.0
    assert m1["metric.lat.p50"] == pytest.approx(5.0)
    assert m1["metric.lat.p90"] == pytest.approx(9.0)
    assert m1["metric.lat.p99"] == pytest.approx(9.9)
    assert np.isnan(sw[(0, "m")]["metric.lat.p50"])  # the baseline point adds nothing
    m0 = sw[(0, "m")]  # exponential, scale 0: buckets (1,2], (2,4], (4,8] with 10, 20, 10
    assert m0["metric.elat.count"] == 40 and m0["metric.elat.mean"] == 3.0
    assert m0["metric.elat.p50"] == pytest.approx(3.0)
    assert m0["metric.elat.p90"] == pytest.approx(6.4)


def test_log_features_and_templates(built: Path, sw: dict) -> None:
    tpl = pq.read_table(built / "log_templates.parquet").to_pylist()
    assert [(t["template"], t["feature"], t["fit_count"], t["count"]) for t in tpl] == [
        ("user <*> logged in", "log.template_001", 4, 4),
        ("disk full on <*>", "log.template_002", 2, 2),
    ]
    a0 = sw[(0, "a")]
    assert (a0["log.count"], a0["log.severity_info"], a0["log.severity_error"]) == (3, 2, 1)
    assert (a0["log.template_001"], a0["log.template_002"], a0["log.template_unseen"]) == (2, 1, 0)
    assert sw[(3, "a")]["log.template_unseen"] == 1  # a message only seen during the incident


def test_edges_and_graph(built: Path) -> None:
    e = pq.read_table(built / "edges.parquet").to_pylist()
    got = {(r["caller"], r["callee"]): (r["calls"], r["errors"], r["latency_p50"]) for r in e}
    assert got == {("a", "b"): (1, 1, 8.0), ("a", "db"): (1, 1, 3.0)}  # latency seen by the caller
    g = load_graph(built)
    assert g.services == ("a", "b", "c", "db", "m")
    assert g.edges == (("a", "b"), ("a", "c"), ("a", "db")) and g.source == "traces+topology"
    assert g.edge_index().tolist() == [[0, 0, 0], [1, 2, 3]]
    assert np.load(built / "edge_index.npy").tolist() == [[0, 0, 0], [1, 2, 3]]
    import networkx as nx

    nxg = nx.node_link_graph(json.loads((built / "graph.json").read_text()), edges="edges")
    assert sorted(nxg.edges) == [("a", "b"), ("a", "c"), ("a", "db")]
    assert nxg.edges["a", "b"]["calls"] == 1 and nxg.edges["a", "c"]["origin"] == "topology"


def test_cases_reference_and_edge_of_data(built: Path) -> None:
    c1, c2 = load_cases(built)
    assert c1.case_id == "i1" and c1.root_cause_service == "m" and c1.fault_type == "cpu_hog"
    assert c1.onset == 2 and c1.values.shape == (4, 5, len(c1.features))
    assert ((c1.times - np.datetime64(T0, "ns")) // np.timedelta64(1, "s")).tolist() == [10, 20, 30, 40]
    assert ((c1.reference_times - np.datetime64(T0, "ns")) // np.timedelta64(1, "s")).tolist() == [10, 20]
    f = c1.features.index("metric.req.increase")
    assert c1.values[:, 4, f].tolist() == [5.0, 10.0, 5.0, 3.0] and c1.extra["n_masked"] == 0
    # the only service with no caller is the symptom service
    # i2 starts after the data: its window 40 s overlaps i1 (masked) and 50-70 s have no data
    assert c2.onset == 2 and c2.extra["n_masked"] == 1 and c2.extra["n_empty"] == 4
    assert np.isnan(c2.values).all()
    assert c1.symptom_service == "a" and c1.graph.edges == load_graph(built).edges


def test_reference_and_detection(built: Path) -> None:
    ref = load_reference(built)
    assert ((ref.times - np.datetime64(T0, "ns")) // np.timedelta64(1, "s")).tolist() == [0, 10, 20]
    assert ref.segment.tolist() == [0, 0, 0] and ref.values.shape[1:] == (5, len(ref.features))
    det = load_detection(built)
    assert det.label.tolist() == [0, 0, 0, 1, 1] and det.incident.tolist() == ["", "", "", "i1", "i1"]
    assert det.fault_free.tolist() == [True, True, True, False, False]
    assert "m|metric.req.increase" in det.columns and "b|metric.req.increase" not in det.columns
    assert det.X.shape == (5, len(det.columns))
    summary = json.loads((built / "summary.json").read_text())
    assert summary["cases"] == 2 and summary["cases_with_data"] == 1 and summary["windows"] == 5


def test_cases_rebuilt_for_another_detection_offset(built: Path) -> None:
    import pyarrow.parquet as pq

    from otlp_aiops.features import store

    stored = load_cases(built)
    # the rebuild path with the stage's own offset reproduces the stored cases exactly
    meta = json.loads((built / "meta.json").read_text())
    same = store._rebuilt_cases(built, meta, pq.read_table(built / "cases.parquet"), 0.0, None)
    for a, b in zip(stored, same, strict=True):
        assert a.case_id == b.case_id and a.onset == b.onset
        np.testing.assert_array_equal(a.times, b.times)
        np.testing.assert_array_equal(a.values, b.values)
        np.testing.assert_array_equal(a.reference_times, b.reference_times)
        np.testing.assert_array_equal(a.reference, b.reference)
    # a 10 s detection offset moves i1's onset window from 30 s to 40 s; the reference stays before the start
    c1 = load_cases(built, ["i1"], detection_offset=10.0)[0]
    assert ((c1.times - np.datetime64(T0, "ns")) // np.timedelta64(1, "s")).tolist() == [20, 30, 40, 50]
    assert c1.onset == 2 and c1.extra["detection_offset_s"] == 10.0
    f = c1.features.index("metric.req.increase")
    assert c1.values[:3, 4, f].tolist() == [10.0, 5.0, 3.0]
    assert ((c1.reference_times - np.datetime64(T0, "ns")) // np.timedelta64(1, "s")).tolist() == [10, 20]


def test_short_reference_falls_back_to_the_nearest_fault_free_windows(tmp_path: Path) -> None:
    interim, raw, out = tmp_path / "interim", tmp_path / "raw", tmp_path / "features" / "toy"
    write_table(interim, "spans", [_span(i, "a", 10 * i + 1, 10 + i, tid=i) for i in range(1, 9)])
    write_table(interim, "metrics_number", [])
    write_table(interim, "logs", [])
    # the incident starts 20 s into the data: one fault-free window before it, the rest after
    write_raw(raw, [{"incident_id": "i1", "start_time": T0 + 20 * SEC, "end_time": T0 + 30 * SEC,
                     "root_cause_service": "a"}])
    cfg = FeaturesConfig(window="10s", before="20s", after="10s", margin=0, reference="30s", min_reference=3)
    build_features(interim, raw, out, cfg)
    (c,) = load_cases(out)
    assert c.extra["reference_source"] == "nearest"
    # the three fault-free windows nearest the start (the incident holds only the 20 s window): 10, 30, 40 s
    assert ((c.reference_times - np.datetime64(T0, "ns")) // np.timedelta64(1, "s")).tolist() == [10, 30, 40]


def test_symptom_service_falls_back_to_the_graph_entry() -> None:
    from otlp_aiops.features.cases import symptom_service

    edges = [("gateway", "a"), ("gateway", "b"), ("b", "c"), ("cron", "c")]
    services = ["a", "b", "c", "cron", "gateway", "ui"]
    # declared and in the graph: kept
    assert symptom_service({"symptom_service": "b"}, {}, services, edges) == "b"
    # declared but without a single edge (no traces): the caller-less service reaching the most
    assert symptom_service({"symptom_service": "ui"}, {}, services, edges) == "gateway"
    # nothing declared, no frontend, two roots: the wider one
    assert symptom_service({}, {}, services, edges) == "gateway"
    # no graph at all: the declared service stands
    assert symptom_service({"symptom_service": "ui"}, {}, services, []) == "ui"
