"""The ``features`` stage: ingest tables (``data/interim/<ds>``) + ground truth (``data/raw/<ds>``) ->
``data/features/<ds>``: service_windows, log templates, edges, the dependency graph, cases and the
feature matrices (see docs/features.md for every file).

:func:`build_features` runs the named steps of :func:`_build` in order on one DuckDB connection. All
data work is DuckDB SQL (:mod:`~otlp_aiops.features.tables`, :mod:`~otlp_aiops.features.traces`,
:mod:`~otlp_aiops.features.logs`); Python only handles the small results: the window grid, the
graph, and the incidents and cases of :mod:`~otlp_aiops.features.cases`."""

from __future__ import annotations

import json
import logging
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from otlp_aiops import progress
from otlp_aiops.config import config_to_dict
from otlp_aiops.executor import LOCAL, ExecutorConfig
from otlp_aiops.features import tables, traces
from otlp_aiops.features.cases import (
    TS,
    FeaturesError,
    Incidents,
    WindowLabels,
    label_windows,
    make_grid,
    read_incidents,
    symptom_service,
    write_cases,
)
from otlp_aiops.features.config import FeaturesConfig
from otlp_aiops.features.kinds import feature_kind, zero_fill
from otlp_aiops.features.steps import (
    StageInputs,
    distinct_windows,
    known_services,
    log_features,
    metric_features,
    trace_tables,
)
from otlp_aiops.otlp import schema as otlp_schema
from otlp_aiops.outputs import OutputError, claim_output

__all__ = ["FORMAT_VERSION", "FeaturesError", "build_features"]

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
_INPUT_TABLES = (
    "spans",
    "logs",
    "metrics_number",
    "metrics_histogram",
    "metrics_exp_histogram",
    "metrics_summary",
)
_SOURCE_ORDER = {"span": 0, "metric": 1, "log": 2}
_STEPS = ("spans", "traces", "metrics", "logs", "edges", "matrix", "write", "cases")  # one lap each


# ---------------------------------------------------------------------------------------------
# inputs
# ---------------------------------------------------------------------------------------------
def _read_inputs(interim: Path, raw: Path, cfg: FeaturesConfig, dataset: str) -> StageInputs:
    incidents = read_incidents(raw / "incidents.parquet", cfg.incident_length_s)
    meta = _read_json(raw / "dataset.json")
    topology = _read_json(raw / "topology.json")
    return StageInputs(
        dataset=dataset,
        interim=interim,
        cfg=cfg,
        w_ns=round(cfg.window_s * 1e9),
        incidents=incidents,
        meta=meta,
        topology=topology,
        topology_edges=_topology_edges(topology, raw / "topology.json"),
    )


def _read_json(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {}
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise FeaturesError(f"{path}: not valid JSON ({e})") from None


def _topology_edges(topology: dict[str, Any], path: Path) -> list[tuple[str, str]]:
    out = []
    for k, e in enumerate(topology.get("edges") or []):
        if isinstance(e, dict):
            a, b = e.get("caller", e.get("source")), e.get("callee", e.get("target"))
        elif isinstance(e, list | tuple) and len(e) == 2:
            a, b = e
        else:
            a = b = None
        if not isinstance(a, str) or not isinstance(b, str):
            raise FeaturesError(f"{path}: edges[{k}] is not a caller/callee pair: {e!r}")
        out.append((a, b))
    return out


def _open_tables(con: duckdb.DuckDBPyConnection, interim: Path) -> dict[str, int]:
    """Views over the ingest tables (an absent or empty table is an empty view with its schema)."""
    rows = {}
    for name in _INPUT_TABLES:
        files = sorted((interim / name).glob("**/*.parquet")) if (interim / name).is_dir() else []
        if files:
            glob = str(interim / name / "**" / "*.parquet").replace("'", "''")
            source = f"read_parquet('{glob}', union_by_name=true)"
            con.sql(f"CREATE OR REPLACE VIEW {name} AS SELECT * FROM {source}")
        else:
            empty = otlp_schema.TABLES[name].empty_table()
            con.register(f"_{name}_empty", empty)
            con.sql(f"CREATE OR REPLACE VIEW {name} AS SELECT * FROM _{name}_empty")
        rows[name] = int(con.sql(f"SELECT count(*) FROM {name}").fetchall()[0][0])
    return rows


# ---------------------------------------------------------------------------------------------
# the entry point
# ---------------------------------------------------------------------------------------------
def build_features(
    interim_dir: str | Path,
    raw_dir: str | Path,
    out_dir: str | Path,
    config: FeaturesConfig,
    dataset: str | None = None,
    *,
    executor: ExecutorConfig = LOCAL,
    partition_s: float = 3600.0,
) -> dict[str, Any]:
    """Build every feature table of one dataset into ``out_dir`` (replaced atomically); returns the
    summary that the stage also writes as its metrics.

    ``executor`` ``ray``: the per-window tables of the spans are computed per time partition of
    ``partition_s`` seconds (rounded to whole windows) as Ray tasks
    (:mod:`otlp_aiops.features.partitioned`); the output is the same as with ``local``."""
    t_start = time.perf_counter()
    interim, raw, out = Path(interim_dir), Path(raw_dir), Path(out_dir)
    dataset = dataset or out.name
    if not interim.is_dir():
        raise FeaturesError(f"{interim}: no ingest output (run the ingest stage first)")
    inputs = _read_inputs(interim, raw, config, dataset)

    try:
        owned = claim_output(out, owner="features", inputs=[interim, raw], known_files=("summary.json",))
        with owned as tmp:
            with progress.task(f"features {dataset}", total=len(_STEPS), unit="steps"):
                summary = _build(inputs, tmp, executor, partition_s)
            shutil.copyfile(raw / "incidents.parquet", tmp / "incidents.parquet")
            # no timings in the output: the same inputs and config give the same bytes (DVC hashes it)
            kept = {k: v for k, v in summary.items() if k not in ("seconds", "timings")}
            (tmp / "summary.json").write_text(json.dumps(kept, indent=2, sort_keys=True) + "\n")
    except OutputError as e:
        raise FeaturesError(str(e)) from None
    summary["seconds"] = round(time.perf_counter() - t_start, 3)
    return summary


class _Laps:
    """Seconds per step (the summary's ``timings``), one progress step each."""

    def __init__(self) -> None:
        self.timings: dict[str, float] = {}
        self._clock = time.perf_counter()

    def __call__(self, name: str) -> None:
        now = time.perf_counter()
        self.timings[name] = round(now - self._clock, 3)
        self._clock = now
        progress.advance(1, note=f"{name} done")


def _build(
    inputs: StageInputs, tmp: Path, executor: ExecutorConfig = LOCAL, partition_s: float = 3600.0
) -> dict[str, Any]:
    """The steps of the stage, in order, into the output folder ``tmp``; returns the summary."""
    cfg = inputs.cfg
    lap = _Laps()
    spill = tmp / "_duckdb"
    spill.mkdir()
    con = duckdb.connect(
        config={
            "memory_limit": cfg.memory_limit,
            "threads": cfg.threads,
            "temp_directory": str(spill),
            "preserve_insertion_order": False,
        }
    )
    try:
        rows_in = _open_tables(con, inputs.interim)
        tables.create_macros(con)
        con.sql("CREATE TEMP TABLE sw_long (w BIGINT, service VARCHAR, feature VARCHAR, value DOUBLE)")
        if executor.is_ray:
            from otlp_aiops.features import partitioned

            templates, fit_on, content_ref, known = partitioned.window_tables(
                con, inputs, tmp, executor, partition_s, lap
            )
        else:
            templates, fit_on, content_ref, known = _window_tables(con, inputs, lap)
        graph = _service_graph(con, inputs, known)
        feats = _feature_index(con, inputs)
        matrix = _dense_matrix(con, inputs, graph.services, feats.names)
        lap("matrix")
        labels = label_windows(matrix.grid, inputs.w_ns, inputs.incidents, cfg)
        written = _write_tables(con, tmp, inputs, graph, feats, matrix, labels, templates)
        lap("write")
        grid, values, inc = matrix.grid, matrix.values, inputs.incidents
        case_rows = write_cases(tmp, cfg, inputs.w_ns, inc, grid, values, labels.fault_free, inputs.dataset)
        lap("cases")
    finally:
        con.close()
        shutil.rmtree(spill, ignore_errors=True)

    _write_meta(tmp, inputs, graph, feats, fit_on, content_ref)
    return {
        "dataset": inputs.dataset,
        "window_seconds": cfg.window_s,
        "rows_in": rows_in,
        "services": len(graph.services),
        "features": len(feats.names),
        "features_by_kind": {k: feats.kinds.count(k) for k in sorted(set(feats.kinds))},
        "windows": len(matrix.grid),
        "windows_with_data": int(matrix.has_data.sum()),
        "segments": int(matrix.segment.max() + 1) if len(matrix.segment) else 0,
        "fault_free_windows": int(labels.fault_free.sum()),
        "labelled_windows": int((labels.hit >= 0).sum()),
        "cells": int(matrix.present.sum()),
        "log_templates": templates.num_rows,
        "edge_windows": written["edge_windows"],
        "trace_tables": written["trace_tables"],
        "graph_edges": len(graph.all_edges),
        "graph_source": graph.source,
        "symptom_service": graph.symptom,
        "cases": len(case_rows),
        "cases_with_data": sum(1 for r in case_rows if r["n_windows"] > r["n_empty"]),
        "cases_without_reference": sum(1 for r in case_rows if r["n_reference"] == 0),
        "timings": lap.timings,
    }


# ---------------------------------------------------------------------------------------------
# the steps: long feature rows into sw_long
# ---------------------------------------------------------------------------------------------
def _window_tables(
    con: duckdb.DuckDBPyConnection, inputs: StageInputs, lap: _Laps
) -> tuple[pa.Table, str, dict[str, Any], list[str]]:
    """Every per-window table on this connection (the local executor): ``sw_long`` and the trace,
    edge and content tables; returns the template table, what Drain was fitted on, how the content
    reference was chosen and the known services."""
    tables.span_features(con, inputs.w_ns, inputs.cfg.quantiles)
    lap("spans")
    trace_tables(con, inputs)
    lap("traces")
    metric_features(con, inputs)
    lap("metrics")
    templates, fit_on, content_ref = log_features(con, inputs)
    lap("logs")
    known = known_services(con)
    tables.edges_table(con, inputs.w_ns, inputs.cfg.quantiles)
    lap("edges")
    return templates, fit_on, content_ref, known


# ---------------------------------------------------------------------------------------------
# the steps: graph, feature index, matrix
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Graph:
    calls: pa.Table  # per traced (caller, callee): calls, errors, latency_mean
    all_edges: list[tuple[str, str]]  # traced and declared edges, sorted
    services: list[str]  # the node order of every array
    source: str  # traces, topology, traces+topology or none
    symptom: str | None


def _service_graph(con: duckdb.DuckDBPyConnection, inputs: StageInputs, known: list[str]) -> _Graph:
    """The dependency graph: the call edges of the traces and the topology's declared ones."""
    calls = con.sql("""
        SELECT caller, callee, sum(calls) AS calls, coalesce(sum(errors), 0) AS errors,
               sum(latency_mean * calls ORDER BY w) / sum(calls) AS latency_mean
        FROM edges GROUP BY ALL ORDER BY caller, callee""").to_arrow_table()
    callers, callees = calls.column("caller").to_pylist(), calls.column("callee").to_pylist()
    trace_edges = list(zip(callers, callees, strict=True))
    topo_edges = inputs.topology_edges
    all_edges = sorted(set(trace_edges) | set(topo_edges))
    declared = {
        s.get("name")
        for s in inputs.topology.get("services") or []
        if isinstance(s, dict) and isinstance(s.get("name"), str)
    }
    services = sorted(set(known) | {s for e in all_edges for s in e} | declared)
    if trace_edges and topo_edges:
        source = "traces+topology"
    else:
        source = "traces" if trace_edges else "topology" if topo_edges else "none"
    symptom = symptom_service(inputs.meta, inputs.topology, services, all_edges)
    return _Graph(calls, all_edges, services, source, symptom)


@dataclass(frozen=True)
class _FeatureIndex:
    names: list[str]  # span, metric, log features, each sorted by name
    kinds: list[str]  # one of FEATURE_KINDS per feature
    metric_name: dict[str, str | None]  # the source metric of a metric feature


def _feature_index(con: duckdb.DuckDBPyConnection, inputs: StageInputs) -> _FeatureIndex:
    """The feature names, their source metric and their kind."""
    feats = [r[0] for r in con.sql("SELECT DISTINCT feature FROM sw_long").fetchall()]
    feats.sort(key=lambda f: (_SOURCE_ORDER.get(f.split(".")[0], 9), f))
    metric_names: dict[str, str] = {}
    for r in con.sql("""
        SELECT DISTINCT metric_name FROM metrics_number
        UNION SELECT DISTINCT metric_name FROM metrics_histogram
        UNION SELECT DISTINCT metric_name FROM metrics_exp_histogram
        UNION SELECT DISTINCT metric_name FROM metrics_summary""").fetchall():
        metric_names.setdefault(tables.metric_key(r[0]), r[0])
    src_metric = {f: metric_names.get(f.split(".")[1]) if f.startswith("metric.") else None for f in feats}
    try:
        kinds = [feature_kind(f, src_metric[f], inputs.declared_kinds) for f in feats]
    except ValueError as e:
        raise FeaturesError(f"dataset.json: {e}") from None
    return _FeatureIndex(feats, kinds, src_metric)


@dataclass(frozen=True)
class _Matrix:
    grid: np.ndarray  # (N,) int64 window starts
    segment: np.ndarray  # (N,) segment id
    has_data: np.ndarray  # (N,) bool
    values: np.ndarray  # (N, S, F) float64, NaN where missing
    present: np.ndarray  # (N, S, F) bool: a value before zero-filling
    has_feature: np.ndarray  # (S, F) bool: the service has the feature in some window
    zero_filled: np.ndarray  # (F,) bool: a count feature, 0 in a window with data but no row


def _dense_matrix(
    con: duckdb.DuckDBPyConnection, inputs: StageInputs, services: list[str], feats: list[str]
) -> _Matrix:
    """``sw_long`` pivoted to the dense (window x service x feature) matrix on the window grid."""
    ws = distinct_windows(con, "sw_long")
    grid, segment, has_data = make_grid(ws, inputs.w_ns, inputs.cfg.segment_gap)
    con.register("_grid", pa.table({"w": grid, "i": np.arange(len(grid), dtype=np.int64)}))
    con.register("_svc", pa.table({"service": services, "i": np.arange(len(services), dtype=np.int64)}))
    con.register("_feat", pa.table({"feature": feats, "i": np.arange(len(feats), dtype=np.int64)}))
    cells = con.sql("""
        SELECT g.i AS t, s.i AS s, f.i AS f, l.value FROM sw_long AS l
        JOIN _grid AS g USING (w) JOIN _svc AS s USING (service) JOIN _feat AS f USING (feature)
        WHERE l.value IS NOT NULL AND isfinite(l.value)""").fetchnumpy()
    values = np.full((len(grid), len(services), len(feats)), np.nan)
    values[cells["t"], cells["s"], cells["f"]] = cells["value"]
    del cells
    present = ~np.isnan(values)
    has_feature = present.any(axis=0)  # (S, F)
    zf = np.array([zero_fill(f) for f in feats], bool)
    fill = has_data[:, None, None] & (has_feature & zf[None, :])[None, :, :] & ~present
    values[fill] = 0.0
    return _Matrix(grid, segment, has_data, values, present, has_feature, zf)


# ---------------------------------------------------------------------------------------------
# the steps: output files
# ---------------------------------------------------------------------------------------------
def _write_tables(
    con: duckdb.DuckDBPyConnection,
    tmp: Path,
    inputs: StageInputs,
    graph: _Graph,
    feats: _FeatureIndex,
    matrix: _Matrix,
    labels: WindowLabels,
    templates: pa.Table,
) -> dict[str, Any]:
    """Every table but the cases; returns the row counts of the edge and trace tables."""
    np.save(tmp / "matrix.npy", matrix.values)
    grid_ts = pa.array(matrix.grid, pa.int64()).cast(TS)
    _write_windows(tmp, inputs.incidents, matrix, labels, grid_ts)
    _write_service_windows(tmp, graph.services, feats.names, matrix, grid_ts)
    _write_feature_index(tmp, feats, matrix)
    pq.write_table(templates, tmp / "log_templates.parquet")
    edges_t = con.sql("SELECT * FROM edges ORDER BY w, caller, callee").to_arrow_table()
    edges_t = edges_t.set_column(0, "window_start", edges_t.column("w").cast(TS))
    pq.write_table(edges_t, tmp / "edges.parquet", compression="zstd")
    n_edge_windows = edges_t.num_rows
    del edges_t
    _write_graph(tmp, graph, inputs.topology_edges)
    trace_rows = traces.write_trace_tables(con, tmp, TS)
    return {"edge_windows": n_edge_windows, "trace_tables": trace_rows}


def _write_windows(
    tmp: Path, inc: Incidents, matrix: _Matrix, labels: WindowLabels, grid_ts: pa.Array
) -> None:
    hit = labels.hit
    ids = np.where(hit >= 0, inc.ids[np.maximum(hit, 0)] if len(inc.ids) else "", "")
    windows = pa.table(
        {
            "window_start": grid_ts,
            "segment": pa.array(matrix.segment),
            "has_data": pa.array(matrix.has_data),
            "label": pa.array((hit >= 0).astype(np.int8)),
            "incident_id": pa.array(ids, pa.string()),
            "fault_free": pa.array(labels.fault_free),
        }
    )
    pq.write_table(windows, tmp / "windows.parquet")


def _write_service_windows(
    tmp: Path, services: list[str], feats: list[str], matrix: _Matrix, grid_ts: pa.Array
) -> None:
    """One row per (window, service) with a value, or with data in a window where it has features."""
    has_any = matrix.has_data[:, None] & matrix.has_feature.any(axis=1)[None, :]
    ti, si = np.nonzero(matrix.present.any(axis=2) | has_any)
    columns = {
        "window_start": grid_ts.take(pa.array(ti)),
        "service": pa.array(np.array(services, object)[si], pa.string()),
    }
    for k, f in enumerate(feats):
        columns[f] = pa.array(matrix.values[ti, si, k])
    pq.write_table(pa.table(columns), tmp / "service_windows.parquet", compression="zstd")


def _write_feature_index(tmp: Path, feats: _FeatureIndex, matrix: _Matrix) -> None:
    index = pa.table(
        {
            "feature": feats.names,
            "kind": feats.kinds,
            "source": [f.split(".")[0] for f in feats.names],
            "metric_name": pa.array([feats.metric_name[f] for f in feats.names], pa.string()),
            "zero_fill": pa.array(matrix.zero_filled),
            "services": pa.array(matrix.has_feature.sum(axis=0).astype(np.int64)),
        }
    )
    pq.write_table(index, tmp / "feature_index.parquet")


_GRAPH_SCHEMA = pa.schema(
    [
        ("caller", pa.string()),
        ("callee", pa.string()),
        ("calls", pa.float64()),
        ("errors", pa.float64()),
        ("latency_mean", pa.float64()),
        ("weight", pa.float64()),
        ("source", pa.string()),
    ]
)


def _write_graph(tmp: Path, graph: _Graph, topo_edges: list[tuple[str, str]]) -> None:
    """``graph_edges.parquet``, ``edge_index.npy`` and ``graph.json`` (networkx node-link form)."""
    g = graph.calls
    pairs_traced = zip(g.column("caller").to_pylist(), g.column("callee").to_pylist(), strict=True)
    stats = zip(
        g.column("calls").to_pylist(),
        g.column("errors").to_pylist(),
        g.column("latency_mean").to_pylist(),
        strict=True,
    )
    calls = dict(zip(pairs_traced, stats, strict=True))
    topo = set(topo_edges)
    pairs = sorted(set(calls) | topo)
    out_calls: dict[str, float] = {}
    for (a, _), (n, _, _) in calls.items():
        out_calls[a] = out_calls.get(a, 0.0) + n
    rows = []
    for a, b in pairs:
        n, e, lat = calls.get((a, b), (0.0, 0.0, None))
        origins = (("traces", (a, b) in calls), ("topology", (a, b) in topo))
        rows.append(
            {
                "caller": a,
                "callee": b,
                "calls": float(n),
                "errors": float(e),
                "latency_mean": lat,
                "weight": float(n) / out_calls[a] if out_calls.get(a) else 0.0,
                "source": "+".join(x for x, ok in origins if ok),
            }
        )
    pq.write_table(pa.Table.from_pylist(rows, schema=_GRAPH_SCHEMA), tmp / "graph_edges.parquet")
    pos = {s: i for i, s in enumerate(graph.services)}
    edge_index = np.array([[pos[a] for a, _ in pairs], [pos[b] for _, b in pairs]], np.int64).reshape(2, -1)
    np.save(tmp / "edge_index.npy", edge_index)
    # networkx node-link form: nx.node_link_graph(json.load(f), edges="edges")
    attrs = ("calls", "errors", "latency_mean", "weight", "source_kind")
    doc = {
        "directed": True,
        "multigraph": False,
        "graph": {"source": graph.source},
        "nodes": [{"id": s} for s in graph.services],
        "edges": [
            {
                "source": r["caller"],
                "target": r["callee"],
                **{k: r[k] for k in attrs if k in r},
                "origin": r["source"],
            }
            for r in rows
        ],
    }
    (tmp / "graph.json").write_text(json.dumps(doc, indent=1) + "\n")


def _write_meta(
    tmp: Path,
    inputs: StageInputs,
    graph: _Graph,
    feats: _FeatureIndex,
    fit_on: str,
    content_ref: dict[str, Any],
) -> None:
    cfg = inputs.cfg
    meta = {
        "format_version": FORMAT_VERSION,
        "dataset": inputs.dataset,
        "window_seconds": cfg.window_s,
        "services": graph.services,
        "features": feats.names,
        "feature_kinds": feats.kinds,
        "symptom_service": graph.symptom,
        "symptom_service_declared": inputs.meta.get("symptom_service"),
        "graph_source": graph.source,
        "log_templates_fit_on": fit_on,
        "content_reference": content_ref,
        # threads and memory_limit change how fast, never what: left out so they cannot change the bytes
        "config": {k: v for k, v in config_to_dict(cfg).items() if k not in ("threads", "memory_limit")},
    }
    (tmp / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
