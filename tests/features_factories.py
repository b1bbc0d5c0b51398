"""Tiny hand-built ingest tables (the schema of otlp_aiops.otlp.schema) for the features tests."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from otlp_aiops.otlp import schema as S

T0 = 1_767_225_600 * 10**9  # 2026-01-01T00:00:00Z, a multiple of every window used here
SEC = 10**9

# a 20-minute simulation with 4 incidents, small enough for a test to build raw -> features
SMALL_SIMULATION: dict[str, Any] = {
    "duration": "20m",
    "warmup": "2m",
    "incidents": 4,
    "disturbances": 0,
    "incident_duration": ["90s", "120s"],
    "min_gap": "60s",
    "seed": 3,
    "request_rate": 8,
    "trace_sample_ratio": 0.5,
}

_DEFAULTS: dict[str, Any] = {
    "flags": 0, "kind": 2, "status_code": 0, "dropped_attributes_count": 0, "event_count": 0,
    "dropped_events_count": 0, "link_count": 0, "dropped_links_count": 0, "resource_id": 1, "scope_id": 1,
    "_source_file": "test", "_record_index": 0, "severity_number": 9, "no_recorded_value": False,
    "exemplar_count": 0, "name": "op", "bucket_counts": [], "explicit_bounds": [], "count": 0,
    "scale": 0, "zero_count": 0, "zero_threshold": 0.0, "positive_offset": 0, "positive_bucket_counts": [],
    "negative_offset": 0, "negative_bucket_counts": [], "series_id": 1,
}  # fmt: skip


def span_id(n: int) -> bytes:
    return n.to_bytes(8, "big")


def trace_id(n: int) -> bytes:
    return n.to_bytes(16, "big")


def write_table(interim: Path, table: str, rows: list[dict[str, Any]]) -> None:
    schema = S.TABLES[table]
    full = []
    for r in rows:
        row = {f.name: r.get(f.name, _DEFAULTS.get(f.name) if not f.nullable else None) for f in schema}
        for k in ("time", "start_time", "end_time", "observed_time"):
            if isinstance(row.get(k), int):
                row[k] = pa.scalar(row[k], pa.int64()).cast(S.TIME)
        if table.startswith("metrics") and row.get("metric_type") is None:
            row["metric_type"] = {"metrics_histogram": "histogram", "metrics_exp_histogram": "exponential_histogram",
                                  "metrics_summary": "summary"}.get(table, "gauge")  # fmt: skip
        full.append(row)
    (interim / table).mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(full, schema=schema), interim / table / "part-00000.parquet")


def write_raw(raw: Path, incidents: list[dict[str, Any]], topology: dict | None = None,
              dataset: dict | None = None, reference: bool = False) -> None:  # fmt: skip
    raw.mkdir(parents=True, exist_ok=True)
    ts = pa.timestamp("ns", tz="UTC")
    cols = {
        "incident_id": pa.array([i["incident_id"] for i in incidents], pa.string()),
        "start_time": pa.array([i["start_time"] for i in incidents], pa.int64()).cast(ts),
        "end_time": pa.array([i.get("end_time") for i in incidents], pa.int64()).cast(ts),
        "root_cause_service": pa.array([i.get("root_cause_service") for i in incidents], pa.string()),
        "root_cause_indicator": pa.array([i.get("root_cause_indicator") for i in incidents], pa.string()),
        "fault_type": pa.array([i.get("fault_type") for i in incidents], pa.string()),
    }
    if reference:
        for c in ("reference_start", "reference_end"):
            cols[c] = pa.array([i.get(c) for i in incidents], pa.int64()).cast(ts)
    pq.write_table(pa.table(cols), raw / "incidents.parquet")
    (raw / "dataset.json").write_text(json.dumps(dataset or {"name": raw.name}))
    if topology is not None:
        (raw / "topology.json").write_text(json.dumps(topology))
