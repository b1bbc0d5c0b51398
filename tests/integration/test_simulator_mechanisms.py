"""The simulator's mechanisms, end to end: a small simulated run is ingested and its Parquet tables
queried with DuckDB. Faults must show where the mechanism puts them (the root pod's metrics and
latency, its callers' client spans) and nowhere else, and the labels must line up with the data."""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest

from otlp_aiops.datasets.simulator import SimulatorConfig, simulate
from otlp_aiops.datasets.simulator.topology import _reachable

CONFIG = {
    "duration": "60m",
    "warmup": "10m",
    "incidents": 14,  # two of each fault type
    "disturbances": 2,
    "incident_duration": ["90s", "120s"],
    "min_gap": "60s",
    "instances": 1,  # one pod per service: a fault on the service is a fault on all its traffic
    "seed": 7,
    "trace_sample_ratio": 0.2,
    "severity": [0.5, 1.0],
}


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> dict:
    from otlp_aiops.otlp.ingest import ingest_paths

    root = tmp_path_factory.mktemp("sim")
    cfg = SimulatorConfig.from_dict(CONFIG)
    summary = simulate(cfg, root / "raw")
    report = ingest_paths([root / "raw" / "otlp"], root / "interim", workers=1)
    con = duckdb.connect()
    for table in ("spans", "logs", "metrics_number", "metrics_histogram", "resources"):
        con.sql(f"CREATE VIEW {table} AS SELECT * FROM read_parquet('{root / 'interim' / table}/*.parquet')")
    incidents = pq.read_table(root / "raw" / "incidents.parquet").to_pylist()
    topology = json.loads((root / "raw" / "topology.json").read_text())
    dataset = json.loads((root / "raw" / "dataset.json").read_text())
    return {
        "root": root,
        "cfg": cfg,
        "summary": summary,
        "report": report,
        "con": con,
        "incidents": incidents,
        "topology": topology,
        "dataset": dataset,
    }


def _t(ts: datetime) -> str:
    return f"TIMESTAMPTZ '{ts.isoformat()}'"


def _callers(topology: dict, service: str) -> set[str]:
    """The transitive callers of ``service`` in topology.json's edges."""
    return _reachable(topology["edges"], service, "callee", "caller")


def _normal(run: dict) -> tuple[str, str]:
    """The warm-up after its first minute: fault- and disturbance-free."""
    start = datetime.fromisoformat(run["dataset"]["time_range"]["start"].replace("Z", "+00:00"))
    return _t(start + timedelta(seconds=60)), _t(start + timedelta(seconds=run["cfg"].warmup))


def _incidents(run: dict, fault_type: str) -> list[dict]:
    got = [i for i in run["incidents"] if i["fault_type"] == fault_type]
    assert got, f"the test run has no {fault_type} incident; change CONFIG"
    return got


def _cpu(con: duckdb.DuckDBPyConnection, service: str, a: str, b: str) -> list[float]:
    rows = con.sql(
        f"SELECT value_double FROM metrics_number WHERE metric_name = 'container.cpu.usage' "
        f"AND service_name = '{service}' AND time > {a} AND time <= {b} ORDER BY time"
    ).fetchall()
    return [r[0] for r in rows]


def _server_p50(con: duckdb.DuckDBPyConnection, service: str, a: str, b: str) -> tuple[float | None, int]:
    row = con.sql(
        f"SELECT median(duration_ns) / 1e6, count(*) FROM spans WHERE kind = 2 AND service_name = '{service}' "
        f"AND start_time >= {a} AND start_time < {b}"
    ).fetchall()[0]
    return row[0], row[1]


def _per_minute_p50(con: duckdb.DuckDBPyConnection, service: str, a: str, b: str) -> list[float]:
    rows = con.sql(
        f"SELECT median(duration_ns) / 1e6 FROM spans WHERE kind = 2 AND service_name = '{service}' "
        f"AND start_time >= {a} AND start_time < {b} GROUP BY time_bucket(INTERVAL 1 minute, start_time)"
    ).fetchall()
    return [r[0] for r in rows]


# ------------------------------------------------------------------------------------------------


def test_ingest_reads_everything_with_nothing_quarantined(run: dict) -> None:
    totals = run["report"]["totals"]
    assert totals["records_quarantined"] == 0
    assert totals["messages_quarantined"] == 0
    assert totals["records_read"] == totals["records_written"]
    rows = totals["rows_written"]
    s = run["summary"]
    assert rows["spans"] == s.spans > 10_000
    assert rows["logs"] == s.logs > 1_000
    assert rows["metrics_number"] + rows["metrics_histogram"] == s.metric_points
    assert run["dataset"]["counts"]["spans"] == s.spans


def test_trace_structure_parents_and_semantic_conventions(run: dict) -> None:
    con = run["con"]
    # every parent id points at a span of the same trace (whole traces are exported)
    orphans = con.sql(
        "SELECT count(*) FROM spans c LEFT JOIN spans p ON c.trace_id = p.trace_id AND c.parent_span_id = p.span_id "
        "WHERE c.parent_span_id IS NOT NULL AND p.span_id IS NULL"
    ).fetchall()[0][0]
    assert orphans == 0
    # one root per trace, a server span of the entry service
    roots = con.sql(
        "SELECT count(*), count(DISTINCT trace_id), min(service_name), max(service_name), min(kind), max(kind) "
        "FROM spans WHERE parent_span_id IS NULL"
    ).fetchall()[0]
    assert roots[0] == roots[1] and roots[2] == roots[3] == "frontend" and roots[4] == roots[5] == 2
    # a server span's parent is a client span in another service naming it as peer
    bad = con.sql(
        "SELECT count(*) FROM spans s JOIN spans c ON s.trace_id = c.trace_id AND s.parent_span_id = c.span_id "
        "WHERE s.kind = 2 AND (c.kind <> 3 OR c.peer_service <> s.service_name OR c.service_name = s.service_name)"
    ).fetchall()[0][0]
    assert bad == 0
    # client spans cover their server span unless the client gave up (timeout) first
    inside = con.sql(
        "SELECT avg(CASE WHEN c.start_time <= s.start_time AND s.end_time <= c.end_time THEN 1 ELSE 0 END) "
        "FROM spans s JOIN spans c ON s.trace_id = c.trace_id AND s.parent_span_id = c.span_id "
        "WHERE c.status_code <> 2"
    ).fetchall()[0][0]
    assert inside == 1.0
    conv = con.sql(
        "SELECT count(*) FILTER (WHERE kind = 3 AND peer_service IS NULL), "
        "count(*) FILTER (WHERE rpc_system = 'grpc' AND (rpc_service IS NULL OR rpc_method IS NULL)), "
        "count(*) FILTER (WHERE service_name = 'frontend' AND kind = 2 AND "
        "(http_request_method IS NULL OR http_route IS NULL OR http_response_status_code IS NULL)), "
        "count(*) FILTER (WHERE status_code = 2 AND error_type IS NULL) FROM spans"
    ).fetchall()[0]
    assert conv == (0, 0, 0, 0)
    # retries are separate client spans; redis is seen through client spans only
    assert con.sql("SELECT count(*) FROM spans WHERE service_name = 'redis-cart'").fetchall()[0][0] == 0
    assert (
        con.sql(
            "SELECT count(*) FROM spans WHERE peer_service = 'redis-cart' AND db_system = 'redis'"
        ).fetchall()[0][0]
        > 100
    )


def test_logs_carry_trace_context_and_follow_templates(run: dict) -> None:
    con = run["con"]
    sev = dict(con.sql("SELECT severity_text, count(*) FROM logs GROUP BY ALL").fetchall())
    assert sev["INFO"] > 1000 and sev["ERROR"] > 10 and sev["WARN"] > 10
    # INFO request logs point at exported spans
    linked = con.sql(
        "SELECT avg(CASE WHEN s.span_id IS NULL THEN 0 ELSE 1 END) FROM logs l LEFT JOIN spans s "
        "ON l.trace_id = s.trace_id AND l.span_id = s.span_id WHERE l.severity_text = 'INFO' AND l.trace_id IS NOT NULL"
    ).fetchall()[0][0]
    assert linked == 1.0
    # exceptions show as ERROR logs with the exception type, and as error spans with an exception event
    exc = con.sql(
        "SELECT count(*) FROM logs WHERE severity_text = 'ERROR' AND exception_type IS NOT NULL"
    ).fetchall()[0][0]
    assert exc > 0
    templates = con.sql(
        "SELECT count(DISTINCT regexp_replace(body, '\\S*[0-9]\\S*|[A-Z]{2,}\\S*', '<*>', 'g')) FROM logs"
    ).fetchall()[0][0]
    n_logs = con.sql("SELECT count(*) FROM logs").fetchall()[0][0]
    assert 15 <= templates <= min(400, n_logs // 100)  # templated: not free text, and not a single line


def _around(run: dict, inc: dict) -> list[tuple[str, str]]:
    """The normal windows for an incident: the warm-up and the fault-free gaps just before and after it
    (min_gap long, so no other event lies in them)."""
    gap = int(run["cfg"].min_gap)
    a, b = _t(inc["start_time"]), _t(inc["end_time"])
    return [_normal(run), (f"{a} - INTERVAL {gap} second", a), (b, f"{b} + INTERVAL {gap} second")]


def test_cpu_hog_raises_root_cpu_and_latency_but_not_an_unrelated_service(run: dict) -> None:
    con, topo = run["con"], run["topology"]
    instrumented = [s["name"] for s in topo["services"] if s["instrumented"]]
    for inc in _incidents(run, "cpu_hog"):
        svc = inc["root_cause_service"]
        a, b = _t(inc["start_time"]), _t(inc["end_time"])
        normal = _around(run, inc)
        normal_cpu = [v for w in normal for v in _cpu(con, svc, *w)]
        during = _cpu(con, svc, f"{a} + INTERVAL 15 second", b)
        assert min(during) > max(normal_cpu), (inc, normal_cpu, during)
        if svc in instrumented:
            p50, n = _server_p50(con, svc, a, b)
            normal_p50 = max(v for w in normal for v in _per_minute_p50(con, svc, *w))
            assert n >= 10 and p50 > 1.5 * normal_p50, inc
        # an unrelated service (neither the root nor one of its callers) stays in its normal range
        unrelated = [s for s in instrumented if s != svc and s not in _callers(topo, svc)]
        assert unrelated
        for u in unrelated:
            u_normal, u_during = [v for w in normal for v in _cpu(con, u, *w)], _cpu(con, u, a, b)
            assert sum(u_during) / len(u_during) <= max(u_normal), (inc, u)
            p50, n = _server_p50(con, u, a, b)
            if n >= 30:
                assert p50 <= 1.2 * max(v for w in normal for v in _per_minute_p50(con, u, *w)), (inc, u)


def test_callers_see_the_fault_through_their_calls(run: dict) -> None:
    """Latency faults raise the callers' client-span latency; failing faults raise their error rate."""
    con, _topo = run["con"], run["topology"]
    na, nb = _normal(run)
    checked = 0
    for inc in run["incidents"]:
        ft, svc = inc["fault_type"], inc["root_cause_service"]
        if ft not in ("cpu_hog", "network_delay", "packet_loss", "pod_kill", "code_exception"):
            continue
        a, b = _t(inc["start_time"]), _t(inc["end_time"])
        q = (
            "SELECT avg(duration_ns) / 1e6, avg(CASE WHEN status_code = 2 THEN 1 ELSE 0 END), count(*) FROM spans "
            "WHERE kind = 3 AND peer_service = '{svc}' AND start_time >= {a} AND start_time < {b}"
        )
        if ft == "code_exception":
            q += f" AND name = '{inc['root_cause_operation']}'"
        before = con.sql(q.format(svc=svc, a=na, b=nb)).fetchall()[0]
        during = con.sql(q.format(svc=svc, a=a, b=b)).fetchall()[0]
        if during[2] < 10:
            continue
        if ft in ("cpu_hog", "network_delay"):
            assert during[0] > 1.5 * before[0], (inc, before, during)
        elif ft == "packet_loss":
            assert during[0] > 1.5 * before[0] or during[1] > before[1] + 0.02, (inc, before, during)
        else:
            assert during[1] > before[1] + 0.05, (inc, before, during)
        checked += 1
    assert checked >= 7


def _fails_entry(topology: dict, failing: str) -> bool:
    """Whether a failure of operation ``failing`` (a span name) reaches an entry operation through
    non-optional calls (optional ones, like ads or the confirmation e-mail, absorb it)."""
    down = {failing}
    changed = True
    while changed:
        changed = False
        for op in topology["operations"]:
            if op["span_name"] not in down and any(
                c["operation"] in down and not c["optional"] for c in op["calls"]
            ):
                down.add(op["span_name"])
                changed = True
    entry = topology["entry_service"]
    return any(op["service"] == entry and op["span_name"] in down for op in topology["operations"])


def test_errors_propagate_to_the_entry_service_unless_absorbed(run: dict) -> None:
    con, topo = run["con"], run["topology"]
    na, nb = _normal(run)
    q = (
        "SELECT avg(CASE WHEN status_code = 2 THEN 1 ELSE 0 END) FROM spans WHERE service_name = 'frontend' "
        "AND kind = 2 AND start_time >= {a} AND start_time < {b}"
    )
    base = con.sql(q.format(a=na, b=nb)).fetchall()[0][0]
    seen = set()
    for inc in _incidents(run, "code_exception"):
        during = con.sql(q.format(a=_t(inc["start_time"]), b=_t(inc["end_time"]))).fetchall()[0][0]
        reaches = _fails_entry(topo, inc["root_cause_operation"])
        seen.add(reaches)
        if reaches:
            assert during > base + 0.01, inc
        else:
            assert during < base + 0.01, inc
    assert True in seen


def test_labels_line_up_with_the_data(run: dict) -> None:
    con = run["con"]
    pods = {r[0] for r in con.sql("SELECT DISTINCT k8s_pod_name FROM resources").fetchall()}
    t_min, t_max = con.sql("SELECT min(start_time), max(end_time) FROM spans").fetchall()[0]
    for inc in run["incidents"]:
        assert inc["root_cause_pod"] in pods
        assert t_min < inc["start_time"] < inc["end_time"] < t_max
    # code faults: the bug's exception shows in the labelled operation of the labelled service, and
    # only while a code fault on that operation is on
    windows: dict[tuple[str, str], list[tuple]] = {}
    for inc in _incidents(run, "code_exception"):
        windows.setdefault((inc["root_cause_service"], inc["root_cause_operation"]), []).append(
            (inc["start_time"], inc["end_time"])
        )
    for (svc, op), spans in windows.items():
        exc_type = con.sql(
            f"SELECT error_type FROM spans WHERE service_name = '{svc}' AND name = '{op}' AND kind = 2 "
            f"AND status_code = 2 AND ({' OR '.join(f'start_time BETWEEN {_t(a)} AND {_t(b)}' for a, b in spans)}) "
            "GROUP BY ALL ORDER BY count(*) DESC LIMIT 1"
        ).fetchall()[0][0]
        times = [
            r[0]
            for r in con.sql(
                f"SELECT start_time FROM spans WHERE service_name = '{svc}' AND name = '{op}' AND kind = 2 "
                f"AND error_type = '{exc_type}'"
            ).fetchall()
        ]
        assert len(times) > 10
        # a request sees the pod state of the second it entered the system, so a call deep inside a
        # request that entered just before the end may run a little after it (at most its deadline)
        late = timedelta(seconds=5)
        assert all(any(a <= t < b + late for a, b in spans) for t in times), (svc, op)
    # CPU hogs: the root's CPU is above its normal range in every export interval that lies inside the
    # fault, and back in it in the intervals just before and after
    na, nb = _normal(run)
    interval, gap = int(run["cfg"].metric_interval), int(run["cfg"].min_gap)
    for inc in _incidents(run, "cpu_hog"):
        svc = inc["root_cause_service"]
        top = max(_cpu(con, svc, na, nb))
        a, b = _t(inc["start_time"]), _t(inc["end_time"])
        rows = con.sql(
            f"SELECT time, value_double FROM metrics_number WHERE metric_name = 'container.cpu.usage' "
            f"AND service_name = '{svc}' AND time > {a} - INTERVAL {gap} second "
            f"AND time < {b} + INTERVAL {gap} second ORDER BY time"
        ).fetchall()
        inside = [
            v for t, v in rows if (t - inc["start_time"]).total_seconds() >= interval and t <= inc["end_time"]
        ]
        outside = [
            v for t, v in rows if t <= inc["start_time"] or (t - inc["end_time"]).total_seconds() >= interval
        ]
        assert inside and outside
        assert min(inside) > max(top, max(outside)), inc
    # pod kills: the container restarts inside the window and its counters start again
    for inc in _incidents(run, "pod_kill"):
        rows = con.sql(
            f"SELECT DISTINCT start_time FROM metrics_number WHERE metric_name = 'app.server.request.count' "
            f"AND k8s_pod_name = '{inc['root_cause_pod']}' AND start_time >= {_t(inc['start_time'])} "
            f"AND start_time < {_t(inc['end_time'])}"
        ).fetchall()
        if inc["root_cause_service"] in [s["name"] for s in run["topology"]["services"] if s["instrumented"]]:
            assert len(rows) == 1, inc
        restarts = con.sql(
            f"SELECT max(value_int) - min(value_int) FROM metrics_number WHERE metric_name = 'k8s.container.restarts' "
            f"AND k8s_pod_name = '{inc['root_cause_pod']}' AND time BETWEEN {_t(inc['start_time'])} - INTERVAL 1 minute "
            f"AND {_t(inc['end_time'])}"
        ).fetchall()[0][0]
        assert restarts == 1, inc


def test_memory_leak_grows_memory_until_released_or_oom(run: dict) -> None:
    con = run["con"]
    na, nb = _normal(run)
    limits = {s["name"]: s["memory_limit_bytes"] for s in run["topology"]["services"]}
    for inc in _incidents(run, "memory_leak"):
        q = (
            "SELECT max(value_int) FROM metrics_number WHERE metric_name = 'container.memory.usage' "
            "AND service_name = '{s}' AND time > {a} AND time <= {b}"
        )
        normal = con.sql(q.format(s=inc["root_cause_service"], a=na, b=nb)).fetchall()[0][0]
        during = con.sql(
            q.format(s=inc["root_cause_service"], a=_t(inc["start_time"]), b=_t(inc["end_time"]))
        ).fetchall()[0][0]
        # the leak eats at least half of the headroom to the limit (or hits it: OOM kill)
        assert during > normal + 0.5 * (limits[inc["root_cause_service"]] - normal), inc


def test_disturbances_are_benign_and_apart_from_incidents(run: dict) -> None:
    dist = pq.read_table(Path(run["root"]) / "raw" / "disturbances.parquet").to_pylist()
    assert len(dist) == 2
    gap = run["cfg"].min_gap
    for d in dist:
        for inc in run["incidents"]:
            apart = min(
                abs((d["start_time"] - inc["end_time"]).total_seconds()),
                abs((inc["start_time"] - d["end_time"]).total_seconds()),
            )
            assert d["end_time"] <= inc["start_time"] or inc["end_time"] <= d["start_time"]
            assert apart >= gap


@pytest.mark.parametrize("framing", ["jsonl", "proto-zstd"])
def test_every_framing_ingests_without_quarantine(tmp_path: Path, framing: str) -> None:
    from otlp_aiops.otlp.ingest import ingest_paths

    cfg = SimulatorConfig.from_dict(
        {"duration": "5m", "incidents": 1, "framing": framing, "request_rate": 5.0, "system": "train-ticket"}
    )
    summary = simulate(cfg, tmp_path / "raw")
    report = ingest_paths([tmp_path / "raw" / "otlp"], tmp_path / "interim", workers=1)
    totals = report["totals"]
    assert totals["records_quarantined"] == 0 and totals["messages_quarantined"] == 0
    assert totals["rows_written"]["spans"] == summary.spans > 1000
    assert totals["rows_written"]["logs"] == summary.logs
    assert totals["rows_written"]["metrics_number"] + totals["rows_written"]["metrics_histogram"] == (
        summary.metric_points
    )


# ------------------------------------------------------------------------------------------------
# code_return: a wrong result, no error

RETURN_CONFIG = {
    "duration": "40m",
    "warmup": "5m",
    "incidents": 8,
    "disturbances": 0,
    "fault_types": ["code_return"],
    "incident_duration": ["120s", "120s"],
    "min_gap": "60s",
    "instances": 1,
    "seed": 0,
    "trace_sample_ratio": 0.5,
    "severity": [0.6, 1.0],
}


@pytest.fixture(scope="module")
def ret_run(tmp_path_factory: pytest.TempPathFactory) -> dict:
    from otlp_aiops.otlp.ingest import ingest_paths

    root = tmp_path_factory.mktemp("sim_return")
    cfg = SimulatorConfig.from_dict(RETURN_CONFIG)
    simulate(cfg, root / "raw")
    ingest_paths([root / "raw" / "otlp"], root / "interim", workers=1)
    con = duckdb.connect()
    for table in ("spans", "logs"):
        con.sql(f"CREATE VIEW {table} AS SELECT * FROM read_parquet('{root / 'interim' / table}/*.parquet')")
    # server spans with their number of child (client) spans
    con.sql(
        "CREATE TABLE servers AS SELECT s.trace_id, s.span_id, s.service_name, s.name, s.start_time, s.status_code, "
        "count(c.span_id) AS children FROM spans s LEFT JOIN spans c ON c.trace_id = s.trace_id "
        "AND c.parent_span_id = s.span_id WHERE s.kind = 2 GROUP BY ALL"
    )
    dataset = json.loads((root / "raw" / "dataset.json").read_text())
    return {
        "cfg": cfg,
        "con": con,
        "incidents": pq.read_table(root / "raw" / "incidents.parquet").to_pylist(),
        "dataset": dataset,
    }


def test_code_return_skips_the_calls_and_logs_another_line_without_any_error(ret_run: dict) -> None:
    con = ret_run["con"]
    start = datetime.fromisoformat(ret_run["dataset"]["time_range"]["start"].replace("Z", "+00:00"))
    normal = (_t(start + timedelta(seconds=60)), _t(start + timedelta(seconds=ret_run["cfg"].warmup)))
    with_calls = 0
    for inc in ret_run["incidents"]:
        assert inc["fault_type"] == "code_return" and inc["root_cause_indicator"] == inc["root_cause_operation"]
        params = json.loads(inc["parameters"])
        p = params["wrong_path_probability"]
        svc, op = inc["root_cause_service"], inc["root_cause_operation"]
        fault = (_t(inc["start_time"]), _t(inc["end_time"]))
        where = f"service_name = '{svc}' AND name = '{op}'"

        def stats(a: str, b: str, where: str = where) -> tuple[int, float, int]:
            return con.sql(
                f"SELECT count(*), avg(CASE WHEN children > 0 THEN 1 ELSE 0 END), "
                f"sum(CASE WHEN status_code = 2 THEN 1 ELSE 0 END) FROM servers "
                f"WHERE {where} AND start_time >= {a} AND start_time < {b}"
            ).fetchall()[0]

        n_norm, calls_norm, err_norm = stats(*normal)
        n_fault, calls_fault, err_fault = stats(*fault)
        assert n_norm > 20 and n_fault > 20, (inc, n_norm, n_fault)
        # no error status from the fault: only the background exceptions of the operation and its callees
        # (0.02 % per call), before and during the fault alike
        assert err_norm <= 0.01 * n_norm and err_fault <= 0.01 * n_fault, (inc, err_norm, err_fault)
        if params["skipped_calls"]:
            with_calls += 1
            # the wrong code path returns before its calls: the share of spans with children drops
            # by the wrong-path probability (binomial noise: 4 sd at n >= 20 is < 0.45)
            assert calls_norm > 0.9
            sd = (p * (1 - p) / n_fault) ** 0.5
            assert abs(calls_fault - calls_norm * (1 - p)) < 4 * sd + 0.02, (inc, calls_norm, calls_fault, p)
        else:
            assert params["skipped_calls"] == [] and calls_norm == calls_fault == 0
        # the wrong path writes its own INFO line (the ground truth's template), only during the fault,
        # on spans that made no call
        pattern = "^" + re.escape(params["log_template"]).replace(re.escape("<*>"), "[A-Z0-9]+") + "$"
        lines = con.sql(
            f"SELECT l.time, l.severity_text, s.children, s.status_code, l.body FROM logs l JOIN servers s "
            f"ON l.trace_id = s.trace_id AND l.span_id = s.span_id WHERE l.service_name = '{svc}' "
            f"AND regexp_matches(l.body, '{pattern}')"
        ).fetchall()
        assert lines, inc
        same_op = [i for i in ret_run["incidents"] if (i["root_cause_service"], i["root_cause_operation"]) == (svc, op)]
        assert all(any(i["start_time"] <= t < i["end_time"] + timedelta(seconds=5) for i in same_op)
                   for t, *_ in lines)
        assert {(sev, kids, code) for _, sev, kids, code, _ in lines} == {("INFO", 0, 0)}
        # about p of the sampled requests of the operation take the wrong path
        during = [t for t, *_ in lines if inc["start_time"] <= t < inc["end_time"] + timedelta(seconds=5)]
        share = len(during) / n_fault
        assert abs(share - p) < 4 * (p * (1 - p) / n_fault) ** 0.5 + 0.02, (inc, share, p)
    assert with_calls >= 2, "the test run has too few code_return faults on operations with calls; change RETURN_CONFIG"
    # nothing in the whole run failed beyond the background exception rate
    errors, total = con.sql("SELECT sum(CASE WHEN status_code = 2 THEN 1 ELSE 0 END), count(*) FROM spans").fetchall()[0]
    assert errors / total < 0.001
