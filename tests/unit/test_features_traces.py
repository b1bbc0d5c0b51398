"""Trace-structure and log-content features on hand-built spans and logs: exact self times, gaps,
error origins, edge windows, span-to-log patterns and log-key mixes (docs/features.md)."""

from __future__ import annotations

import math
from pathlib import Path

import duckdb
import numpy as np
import pyarrow.parquet as pq
import pytest

from features_factories import SEC, T0, span_id, trace_id, write_raw, write_table
from otlp_aiops.features.build import build_features
from otlp_aiops.features.config import FeaturesConfig
from otlp_aiops.features.logs import reference_windows
from otlp_aiops.features.store import load_cases, load_trace_services
from otlp_aiops.features.traces import exceedance_features

W = 10 * SEC
MS = 10**6


def _span(n, svc, t, dur_ms, *, kind=2, parent=None, tid=1, name="op", err=False):
    start = T0 + int(t * SEC)
    return {"trace_id": trace_id(tid), "span_id": span_id(n), "parent_span_id": None if parent is None else span_id(parent),
            "service_name": svc, "kind": kind, "name": name, "start_time": start, "end_time": start + int(dur_ms * MS),
            "duration_ns": int(dur_ms * MS), "status_code": 2 if err else 0}  # fmt: skip


def _log(svc, t, body, tid, sid, sev=9):
    return {"service_name": svc, "time": T0 + int(t * SEC), "body": body, "severity_number": sev,
            "trace_id": trace_id(tid), "span_id": span_id(sid)}  # fmt: skip


SPANS = [
    # trace 1 (window 0): a -> b; b fails on its own (its child is fine): an error origin
    _span(1, "a", 1, 100, name="GET /x"),
    _span(2, "a", 1, 60, kind=3, parent=1, name="HTTP GET"),
    _span(3, "b", 1, 50, parent=2, name="b.handle", err=True),
    _span(4, "b", 1, 20, kind=1, parent=3, name="db.query"),
    # trace 2 (window 0): a -> b -> c; c fails, b's client span and b's server span propagate it
    _span(5, "a", 2, 200, tid=2, name="GET /x"),
    _span(6, "a", 2, 150, kind=3, parent=5, tid=2, name="HTTP GET"),
    _span(7, "b", 2, 100, parent=6, tid=2, name="b.handle", err=True),
    _span(8, "b", 2, 40, kind=3, parent=7, tid=2, name="HTTP GET", err=True),
    _span(9, "c", 2, 30, parent=8, tid=2, name="c.handle", err=True),
    # trace 3 (window 3, the incident): b.handle returns early: no child span, one usual line missing
    _span(10, "a", 31, 100, tid=3, name="GET /x"),
    _span(11, "a", 31, 60, kind=3, parent=10, tid=3, name="HTTP GET"),
    _span(12, "b", 31, 50, parent=11, tid=3, name="b.handle"),
]
LOGS = [
    _log("b", 1, "start c.B#10", 1, 3), _log("b", 1, "done c.B#12", 1, 3),
    _log("b", 2, "start c.B#10", 2, 7), _log("b", 2, "done c.B#12", 2, 7),
    _log("b", 31, "start c.B#10", 3, 12), _log("b", 31, "boom c.B#99", 3, 12, sev=17),
]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("traces")
    interim, raw, out = tmp / "interim", tmp / "raw", tmp / "features" / "toy"
    write_table(interim, "spans", SPANS)
    write_table(interim, "logs", LOGS)
    write_table(interim, "metrics_number", [  # windows 0..4 have data
        {"service_name": "m", "metric_name": "cpu", "series_id": 1, "time": T0 + t * SEC, "value_double": 1.0}
        for t in (5, 15, 25, 35, 45)])  # fmt: skip
    write_raw(raw, [{"incident_id": "i1", "start_time": T0 + 30 * SEC, "end_time": T0 + 40 * SEC,
                     "root_cause_service": "b", "fault_type": "return"}])  # fmt: skip
    cfg = FeaturesConfig(window="10s", before="20s", after="20s", margin=0, reference="20s", min_reference=1)
    build_features(interim, raw, out, cfg)
    return out


@pytest.fixture(scope="module")
def sw(built: Path) -> dict:
    t = pq.read_table(built / "service_windows.parquet").to_pylist()
    return {(int((r["window_start"].timestamp() * SEC - T0) // W), r["service"]): r for r in t}


def test_self_time_and_error_origin_exact(sw: dict) -> None:
    a0, b0, c0 = sw[(0, "a")], sw[(0, "b")], sw[(0, "c")]
    # a: 100 - 60 (its client span) = 40 in trace 1, 200 - 150 = 50 in trace 2; the client spans add 0
    assert a0["span.self_time_mean"] == pytest.approx(45.0) and a0["span.self_time_p50"] == pytest.approx(45.0)
    # b: 50 - 20 + 20 (db.query) = 50 in trace 1; 100 - 40 = 60 in trace 2 (its client span adds 0)
    assert b0["span.self_time_mean"] == pytest.approx(55.0)
    assert c0["span.self_time_mean"] == pytest.approx(30.0)
    # origins: span 3 (its child did not fail) and span 9; spans 7 and 8 propagate
    assert b0["span.error_origins"] == 1 and b0["span.error_propagated"] == 2
    assert c0["span.error_origins"] == 1 and c0["span.error_propagated"] == 0
    assert a0["span.error_origins"] == 0


def test_gaps_exact(sw: dict, built: Path) -> None:
    b0, c0, a0 = sw[(0, "b")], sw[(0, "c")], sw[(0, "a")]
    # a -> b: 60 - 50 = 10 and 150 - 100 = 50; b -> c: 40 - 30 = 10
    assert b0["span.in_gap_mean"] == pytest.approx(30.0) and b0["span.in_gap_p50"] == pytest.approx(30.0)
    assert b0["span.in_gap_p90"] == pytest.approx(46.0)
    assert c0["span.in_gap_mean"] == pytest.approx(10.0)
    assert a0["span.out_gap_mean"] == pytest.approx(30.0) and b0["span.out_gap_mean"] == pytest.approx(10.0)
    assert b0["span.in_calls"] == 2 and a0["span.out_calls"] == 2 and b0["span.out_calls"] == 1
    ew = {(r["w"], r["caller"], r["callee"]): r for r in pq.read_table(built / "edge_windows.parquet").to_pylist()}
    ab = ew[(T0, "a", "b")]
    assert ab["calls"] == 2 and ab["errors"] == 2 and ab["gap_mean"] == pytest.approx(30.0)
    assert ab["server_latency_mean"] == pytest.approx(75.0) and ab["gap_p50"] == pytest.approx(30.0)
    bc = ew[(T0, "b", "c")]
    assert bc["calls"] == 1 and bc["errors"] == 1 and bc["gap_mean"] == pytest.approx(10.0)
    assert ew[(T0 + 3 * W, "a", "b")]["calls"] == 1 and ew[(T0 + 3 * W, "a", "b")]["errors"] == 0


def test_trace_services_and_operations(built: Path) -> None:
    ts = load_trace_services(built)
    names = list(ts["service_names"])
    assert names == ["a", "b", "c"]
    rows = sorted((int((ts["w"][i] - T0) // W), names[ts["service"][i]], float(ts["self_ms"][i]),
                   float(ts["duration_ms"][i]), bool(ts["error"][i])) for i in range(len(ts["w"])))
    assert rows == [(0, "a", 40.0, 100.0, False), (0, "a", 50.0, 200.0, False),  # one row per trace and service
                    (0, "b", 50.0, 50.0, True), (0, "b", 60.0, 100.0, True), (0, "c", 30.0, 30.0, True),
                    (3, "a", 40.0, 100.0, False), (3, "b", 50.0, 50.0, False)]
    ops = {(r["service"], r["operation"]): r for r in pq.read_table(built / "operation_windows.parquet").to_pylist()
           if r["w"] == T0}  # fmt: skip
    assert ops[("b", "b.handle")]["spans"] == 2 and ops[("b", "b.handle")]["errors"] == 2
    assert ops[("b", "b.handle")]["latency_mean"] == pytest.approx(75.0)
    # the error-level log line of trace 3 is joined to (trace 3, b)
    i = next(k for k in range(len(ts["w"])) if ts["w"][k] == T0 + 3 * W and names[ts["service"][k]] == "b")
    assert ts["log_errors"][i] == 1 and ts["log_unseen"][i] == 1


def test_pattern_and_mix_features_exact(sw: dict, built: Path) -> None:
    b3 = sw[(3, "b")]
    # reference (windows 0 and 1, fault-free): every b.handle span wrote c.B#10 and c.B#12 and started one
    # child (db.query or HTTP GET, half each). Window 3: one b.handle span, c.B#12 missing: E = 1, O = 0
    assert b3["log.pattern_drop"] == pytest.approx(1 / math.sqrt(2))
    assert b3["log.pattern_unseen"] == 1  # c.B#99 never followed b.handle in the reference
    assert b3["span.pattern_drop"] == pytest.approx(0.5 / math.sqrt(1.5))
    # each pair against its own largest drop in the reference windows (0 here: window 0 is exact)
    assert b3["log.pattern_drop_rel"] == pytest.approx(1 / math.sqrt(2))
    assert b3["span.pattern_drop_rel"] == pytest.approx(0.5 / math.sqrt(1.5))
    assert b3["log.pattern_rise"] == 0
    # the key mix of b: reference 1/2 c.B#10, 1/2 c.B#12; window 3: c.B#10 and the unseen error c.B#99
    assert b3["log.mix_drop"] == pytest.approx(1 / math.sqrt(2))
    assert b3["log.mix_unseen"] == 1 and b3["log.mix_unseen_error"] == 1
    assert b3["log.mix_shift"] == pytest.approx(0.5)
    b0 = sw[(0, "b")]  # the reference window itself: nothing moved
    assert b0["log.pattern_drop"] == 0 and b0["log.mix_drop"] == 0 and b0["log.mix_shift"] == pytest.approx(0.0)
    assert sw[(3, "a")]["span.pattern_drop"] == 0  # a still calls b


def test_content_reference_rule() -> None:
    ws = np.arange(6, dtype=np.int64) * 10
    ff = np.array([True, True, False, True, True, True])
    # a recording over windows 10..39: its fault-free windows 10 and 30
    assert reference_windows(ws, ff, 10, [(10, 40)], "recording")[0].tolist() == [10, 30]
    w, rule = reference_windows(ws, ff, 10, [(10, 40)], "auto", min_windows=3)  # too short: every fault-free window
    assert w.tolist() == [0, 10, 30, 40, 50] and rule.startswith("fault_free")
    w, rule = reference_windows(ws, ff, 10, [(10, 40)], "auto", min_windows=2)
    assert w.tolist() == [10, 30] and rule == "recording"
    assert reference_windows(ws, ff, 10, [], "auto")[0].tolist() == [0, 10, 30, 40, 50]


def test_exceedance_exact() -> None:
    con = duckdb.connect()
    con.sql("CREATE TEMP TABLE sw_long (w BIGINT, service VARCHAR, feature VARCHAR, value DOUBLE)")
    con.sql("""CREATE TEMP TABLE edge_calls_x AS SELECT * FROM (VALUES
        (0, 'a', 'b', 1.0), (0, 'a', 'b', 2.0), (0, 'a', 'b', 3.0), (0, 'a', 'b', 4.0),
        (10, 'a', 'b', 3.0), (10, 'a', 'b', 5.0), (10, 'a', 'b', 1.0)) AS t(w, caller, callee, gap_ms)""")
    con.sql("""CREATE TEMP TABLE trace_services AS SELECT * FROM (VALUES
        (0, 'b', 'op', 1.0), (0, 'b', 'op', 3.0), (10, 'b', 'op', 9.0)) AS t(w, service, operation, self_ms)""")
    exceedance_features(con, np.array([0]), q=0.5, min_reference_calls=2)
    got = {(w, s, f): v for w, s, f, v in con.sql("SELECT * FROM sw_long").fetchall()}
    # threshold 2.5; window 10: 2 of 3 beyond, expected 1.5: (2 - 1.5) / sqrt(2.5)
    assert got[(10, "b", "span.in_gap_excess")] == pytest.approx(0.5 / math.sqrt(2.5))
    assert got[(10, "a", "span.out_gap_excess")] == pytest.approx(0.5 / math.sqrt(2.5))
    assert got[(0, "b", "span.in_gap_excess")] == pytest.approx(0.0)  # 2 of 4 beyond the median, as expected
    assert got[(10, "b", "span.self_time_excess")] == pytest.approx((1 - 0.5) / math.sqrt(1.5))


def test_cases_expose_the_features_folder(built: Path) -> None:
    (case,) = load_cases(built)
    assert case.extra["features_dir"] == str(built)
    assert "log.pattern_drop" in case.features and "span.in_gap_mean" in case.features
