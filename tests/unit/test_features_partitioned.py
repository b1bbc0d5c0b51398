"""The features stage on the Ray executor (:mod:`otlp_aiops.features.partitioned`): the per-window span
tables computed per time partition as Ray tasks give the local executor's files byte for byte, also
when traces cross the partition borders; the partition length and the margin on hand-built rows."""

from __future__ import annotations

import hashlib
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from features_factories import SMALL_SIMULATION, T0, span_id, trace_id, write_table
from otlp_aiops.features.partitioned import _longest_trace_ns, partition_ns, partition_task

CONFIG = SMALL_SIMULATION
SEC = 10**9


def _digests(d: Path) -> dict[str, str]:
    return {
        str(p.relative_to(d)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(d.rglob("*"))
        if p.is_file() and p.name != ".otlp-aiops-owner.json"
    }


def test_partition_length_is_a_whole_number_of_windows() -> None:
    w = 15 * SEC
    assert partition_ns(3600, w) == 3600 * SEC
    assert partition_ns(50, w) == 45 * SEC  # 3.33 windows -> 3
    assert partition_ns(1, w) == 15 * SEC  # at least one window
    assert partition_ns(23, w) == 30 * SEC  # 1.53 windows -> 2


def test_the_margin_is_the_longest_trace() -> None:
    ts = pa.timestamp("ns", tz="UTC")
    spans = pa.table(
        {
            "trace_id": pa.array([b"a", b"a", b"a", b"b", b"b", None, None], pa.binary()),
            "start_time": pa.array(
                [10 * SEC, 12 * SEC, 11 * SEC, 100 * SEC, 130 * SEC, 5 * SEC, 9 * SEC], ts
            ),
        }
    )
    con = duckdb.connect()
    con.register("spans", spans)
    # trace a: 2 s, trace b: 30 s, the spans without a trace id (joined together): 4 s
    assert _longest_trace_ns(con) == 30 * SEC
    con.unregister("spans")
    con.register("spans", spans.slice(0, 0))
    assert _longest_trace_ns(con) == 0


def test_ray_partitions_give_the_local_features_byte_for_byte(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("ray")
    # a private Ray 2.60 otherwise writes ~/.ray/auth_token, which later `ray start` clusters trip over
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    monkeypatch.setenv("RAY_USAGE_STATS_ENABLED", "0")
    import ray

    from otlp_aiops.datasets.simulator import SimulatorConfig, simulate
    from otlp_aiops.executor import ExecutorConfig
    from otlp_aiops.features.build import build_features
    from otlp_aiops.features.config import resolve_config
    from otlp_aiops.otlp.ingest import ingest_paths

    raw, interim = tmp_path / "raw", tmp_path / "interim"
    simulate(SimulatorConfig.from_dict(CONFIG), raw)
    ingest_paths([raw / "otlp"], interim, workers=1)
    # one-minute partitions of 15 s windows: 20+ partitions, and traces that cross their borders
    con = duckdb.connect()
    crossing = con.sql(f"""
        SELECT count(*) FROM (
            SELECT min(epoch_ns(start_time) // {60 * SEC}) AS a, max(epoch_ns(start_time) // {60 * SEC}) AS b
            FROM read_parquet('{interim}/spans/**/*.parquet') GROUP BY trace_id) WHERE a <> b""").fetchall()
    assert crossing[0][0] > 0
    cfg = resolve_config({"window": "15s", "before": "3m", "after": "2m"}, "toy")
    local = build_features(interim, raw, tmp_path / "local", cfg, dataset="toy")
    try:
        on_ray = build_features(
            interim, raw, tmp_path / "ray", cfg, dataset="toy",
            executor=ExecutorConfig(kind="ray", num_cpus=2), partition_s=60,
        )  # fmt: skip
    finally:
        ray.shutdown()
    a, b = _digests(tmp_path / "local"), _digests(tmp_path / "ray")
    assert len(a) > 10 and "edge_windows.parquet" in a and "trace_services.parquet" in a
    assert sorted(k for k in a.keys() | b.keys() if a.get(k) != b.get(k)) == []
    drop = ("seconds", "timings")
    assert {k: v for k, v in local.items() if k not in drop} == {
        k: v for k, v in on_ray.items() if k not in drop
    }
    assert not (tmp_path / "ray" / "_parts").exists()


def _border_trace(interim: Path) -> None:
    """One trace across the border at T0 + 60 s: a's root and client span in the window at 45 s, the
    callee b's server span (and its child) 15 s later, in the window at 75 s of the next partition."""
    ms = 10**6

    def span(n, svc, t_ms, dur_ms, kind, parent=None):
        start = T0 + t_ms * ms
        return {"trace_id": trace_id(1), "span_id": span_id(n), "service_name": svc, "kind": kind,
                "parent_span_id": None if parent is None else span_id(parent), "name": f"op{n}",
                "start_time": start, "end_time": start + dur_ms * ms, "duration_ns": dur_ms * ms}  # fmt: skip

    write_table(interim, "spans", [
        span(1, "a", 59_950, 16_000, 2),  # a SERVER, 16 s
        span(2, "a", 59_960, 15_100, 3, parent=1),  # a CLIENT -> b, 15.1 s
        span(3, "b", 75_050, 50, 2, parent=2),  # b SERVER, 50 ms: the next partition
        span(4, "b", 75_060, 20, 1, parent=3),  # b INTERNAL, 20 ms
    ])  # fmt: skip


@pytest.mark.parametrize("margin_s", [None, 0])
def test_a_call_across_the_border_is_computed_once_and_exactly(tmp_path: Path, margin_s: int | None) -> None:
    interim, parts = tmp_path / "interim", tmp_path / "parts"
    _border_trace(interim)
    parts.mkdir()
    empty = pa.table({"sk": pa.array([], pa.uint64()), "service": pa.array([], pa.string()),
                      "key": pa.array([], pa.string())})  # fmt: skip
    pq.write_table(empty, parts / "log_keyed.parquet")
    con = duckdb.connect()
    con.sql(f"CREATE VIEW spans AS SELECT * FROM read_parquet('{interim}/spans/*.parquet')")
    margin = _longest_trace_ns(con) if margin_s is None else margin_s * SEC
    assert _longest_trace_ns(con) == 15_110 * 10**6
    w, p_ns = 15 * SEC, 60 * SEC
    settings = {"w_ns": w, "p_ns": p_ns, "margin": margin, "quantiles": [0.5], "memory_limit": "1GB",
                "known": ["a", "b"], "keep": [{"service": s, "operation": f"op{n}"} for s, n in
                                             [("a", 1), ("a", 2), ("b", 3), ("b", 4)]]}  # fmt: skip
    p0 = T0 // p_ns
    partition_task(str(interim), str(parts), p0, settings)
    partition_task(str(interim), str(parts), p0 + 1, settings)

    def rows(table: str, p: int, cols: str) -> list[tuple]:
        return con.sql(
            f"SELECT {cols} FROM read_parquet('{parts}/{table}/p{p}.parquet') ORDER BY ALL"
        ).fetchall()

    w45, w75 = T0 + 45 * SEC, T0 + 75 * SEC
    assert rows("edges", p0 + 1, "w") == []
    # trace_services: a's row in partition 0, b's in partition 1, each exactly once
    ts0 = rows("trace_services", p0, "w, service, self_ms")
    assert rows("trace_services", p0 + 1, "w, service, self_ms") == [(w75, "b", 50.0)]  # (50 - 20) + 20 ms
    if margin_s is None:
        # the call a -> b: once, in the caller's window (partition 0), with the callee's span from
        # partition 1; a's exclusive time: 16 - 15.1 s on its server span, 0 on the client span
        assert rows("edges", p0, "w, caller, callee, calls") == [(w45, "a", "b", 1.0)]
        assert ts0 == [(w45, "a", 900.0)]
        assert rows("edge_windows", p0, "w, caller, callee, calls, gap_mean") == [
            (w45, "a", "b", 1.0, 15_050.0)
        ]
    else:  # without the margin partition 0 cannot see b's span: a's exclusive time is wrong, the call lost
        assert ts0 == [(w45, "a", 16_000.0)]
        assert rows("edges", p0, "w") == []
        assert rows("edge_windows", p0, "w") == []
