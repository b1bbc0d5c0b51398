"""The ``features`` stage: ingest tables (``data/interim/<ds>``) + ground truth (``data/raw/<ds>``) ->
``data/features/<ds>``: service_windows, log templates, edges, the dependency graph, cases and the
feature matrices (see docs/features.md for every file). All data work is DuckDB SQL
(:mod:`otlp_aiops.features.tables`); Python only handles the small results (window grid, incidents)."""

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
from otlp_aiops.features import logs as LG
from otlp_aiops.features import tables as T
from otlp_aiops.features import traces as TR
from otlp_aiops.features.config import FeaturesConfig
from otlp_aiops.features.drain import Drain
from otlp_aiops.features.kinds import feature_kind, zero_fill
from otlp_aiops.otlp import schema as S
from otlp_aiops.outputs import OutputError, claim_output, file_stem, write_npz

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
_INPUT_TABLES = ("spans", "logs", "metrics_number", "metrics_histogram", "metrics_exp_histogram",
                 "metrics_summary")  # fmt: skip
_SOURCE_ORDER = {"span": 0, "metric": 1, "log": 2}
TS = pa.timestamp("ns", tz="UTC")


class FeaturesError(ValueError):
    """Input the stage cannot use; the message names the file, the record and the reason."""


# ---------------------------------------------------------------------------------------------
# inputs
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Incidents:
    ids: np.ndarray  # (I,) object
    start: np.ndarray  # (I,) int64 ns
    end: np.ndarray  # (I,) int64 ns (end_time, or start + incident_length when null)
    ref_start: np.ndarray  # (I,) int64 ns, or -1
    ref_end: np.ndarray
    table: pa.Table


def read_incidents(path: Path, incident_length_s: float) -> Incidents:
    if not path.exists():
        raise FeaturesError(f"{path}: missing (every raw dataset has an incident list, maybe empty)")
    t = pq.read_table(path)
    need = ["incident_id", "start_time", "end_time", "root_cause_service"]
    missing = [c for c in need if c not in t.column_names]
    if missing:
        raise FeaturesError(f"{path}: missing column(s) {', '.join(missing)}")
    for c in ("root_cause_indicator", "fault_type"):
        if c not in t.column_names:
            t = t.append_column(c, pa.nulls(len(t), pa.string()))

    def ns(col: str) -> np.ndarray:
        a = t.column(col)
        if not pa.types.is_timestamp(a.type):
            raise FeaturesError(f"{path}: column {col} is {a.type}, expected a timestamp")
        return a.cast(pa.timestamp("ns", tz="UTC")).cast(pa.int64()).fill_null(-1).to_numpy()

    ids = np.array(t.column("incident_id").to_pylist(), dtype=object)
    start = ns("start_time")
    bad = np.flatnonzero(start < 0)
    if len(bad):
        raise FeaturesError(f"{path}: incident {ids[bad[0]]!r} (row {bad[0]}): start_time is null")
    dup = {i for i in ids if (ids == i).sum() > 1}
    if dup or any(i is None for i in ids):
        raise FeaturesError(f"{path}: incident_id must be unique and non-null (repeated: {sorted(map(str, dup))})")
    end = ns("end_time")
    end = np.where(end < 0, start + int(incident_length_s * 1e9), end)
    if (end < start).any():
        i = int(np.flatnonzero(end < start)[0])
        raise FeaturesError(f"{path}: incident {ids[i]!r}: end_time before start_time")
    has_ref = "reference_start" in t.column_names and "reference_end" in t.column_names
    rs = ns("reference_start") if has_ref else np.full(len(t), -1, np.int64)
    re_ = ns("reference_end") if has_ref else np.full(len(t), -1, np.int64)
    order = np.argsort(start, kind="stable")
    return Incidents(ids[order], start[order], end[order], rs[order], re_[order], t.take(order))


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
            con.sql(f"CREATE OR REPLACE VIEW {name} AS SELECT * FROM read_parquet('{glob}', union_by_name=true)")
        else:
            empty = S.TABLES[name].empty_table()
            con.register(f"_{name}_empty", empty)
            con.sql(f"CREATE OR REPLACE VIEW {name} AS SELECT * FROM _{name}_empty")
        rows[name] = int(con.sql(f"SELECT count(*) FROM {name}").fetchall()[0][0])
    return rows


# ---------------------------------------------------------------------------------------------
# windows and incidents (small arrays)
# ---------------------------------------------------------------------------------------------
def overlapping(grid: np.ndarray, w_ns: int, start: np.ndarray, end: np.ndarray) -> np.ndarray:
    """(N,) index of the first interval [start, end) overlapping each window [w, w + W), or -1."""
    hit = np.full(len(grid), -1, np.int64)
    for k in range(len(start) - 1, -1, -1):  # over intervals (few), earliest wins
        lo = np.searchsorted(grid, start[k] - w_ns, side="right")
        hi = np.searchsorted(grid, end[k] if end[k] > start[k] else start[k] + 1, side="left")
        hit[lo:hi] = k
    return hit


def make_grid(ws: np.ndarray, w_ns: int, segment_gap: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The windows of the matrices: the windows with data, small gaps (<= segment_gap empty windows)
    filled; returns (grid, segment id, has_data)."""
    if len(ws) == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, bool)
    breaks = np.flatnonzero(np.diff(ws) // w_ns - 1 > segment_gap)
    starts = np.concatenate([[ws[0]], ws[breaks + 1]])
    ends = np.concatenate([ws[breaks], [ws[-1]]])
    lengths = (ends - starts) // w_ns + 1
    seg = np.repeat(np.arange(len(starts)), lengths)
    offsets = np.arange(len(seg)) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    grid = starts[seg] + offsets * w_ns
    has = np.isin(grid, ws)
    return grid, seg.astype(np.int64), has


def symptom_service(meta: dict, topology: dict, services: list[str], edges: list[tuple[str, str]]) -> str | None:
    """Where the user-facing alarm fires: the dataset's declared symptom service, else the topology's
    entry service, else ``frontend``, else the only service nobody calls. A declared service that has
    no edge in the graph while the graph has edges (Nezha's ``ts-ui-dashboard`` has no traces; its calls
    go to ``ts-gateway-service``) cannot start a walk through the graph: the entry of the graph — the
    caller-less service reaching the most services — stands in for it."""
    callees = {b for _, b in edges}
    callers = {a for a, _ in edges}
    roots = sorted(callers - callees)
    for cand in (meta.get("symptom_service"), topology.get("entry_service")):
        if isinstance(cand, str) and cand in services:
            if edges and cand not in callers | callees and roots:
                return _widest_root(roots, edges)
            return cand
    if "frontend" in services:
        return "frontend"
    if len(roots) == 1:
        return roots[0]
    return _widest_root(roots, edges) if roots else None


def _widest_root(roots: list[str], edges: list[tuple[str, str]]) -> str:
    succ: dict[str, set[str]] = {}
    for a, b in edges:
        succ.setdefault(a, set()).add(b)

    def reach(r: str) -> int:
        seen, stack = {r}, [r]
        while stack:
            for n in succ.get(stack.pop(), ()):
                if n not in seen:
                    seen.add(n)
                    stack.append(n)
        return len(seen)

    return max(roots, key=lambda r: (reach(r), r))


# ---------------------------------------------------------------------------------------------
# the stage
# ---------------------------------------------------------------------------------------------
def _fit_templates(
    con: duckdb.DuckDBPyConnection, cfg: FeaturesConfig, w_ns: int, inc: Incidents
) -> tuple[pa.Table, str]:
    """Drain fitted on the masked bodies of fault-free windows (all windows when none is); returns the
    template table and registers ``log_template_map(masked, feature)``."""
    ws = np.array(sorted(r[0] for r in con.sql("SELECT DISTINCT w FROM log_agg").fetchall()), np.int64)
    margin = int(cfg.margin_s * 1e9)
    ff = overlapping(ws, w_ns, inc.start - margin, inc.end + margin) < 0
    con.register("_log_ff", pa.table({"w": pa.array(ws, pa.int64()), "ff": pa.array(ff)}))
    fit_on = "fault-free windows" if ff.any() else "all windows (no fault-free window)"
    where = "WHERE f.ff" if ff.any() else ""
    fit_rows = con.sql(f"""
        SELECT masked, sum(n) AS n, min(w) AS first FROM log_agg JOIN _log_ff AS f USING (w) {where}
        GROUP BY masked ORDER BY first, masked""").fetchall()
    drain = Drain(cfg.drain_depth, cfg.drain_similarity, cfg.drain_max_children)
    drain.fit((m, int(n)) for m, n, _ in fit_rows)
    # features: the most frequent templates (in the fit data), ranked; the rest "other"
    ranked = sorted(drain.groups, key=lambda g: (-g.count, g.id))
    feature_of = {g.id: f"log.template_{k + 1:03d}" for k, g in enumerate(ranked[: cfg.max_templates])}
    distinct = con.sql("SELECT masked, sum(n) FROM log_agg GROUP BY masked ORDER BY masked").fetchall()
    masked, feats, total = [], [], {}
    for m, n in distinct:  # distinct masked bodies (templates x few variants), not log records
        g = drain.match(m)
        f = "log.template_unseen" if g is None else feature_of.get(g.id, "log.template_other")
        masked.append(m)
        feats.append(f)
        if g is not None:
            total[g.id] = total.get(g.id, 0) + int(n)
    con.register("log_template_map", pa.table({"masked": masked, "feature": feats}))
    templates = pa.table({
        "template_id": [g.id for g in ranked],
        "template": [g.text for g in ranked],
        "feature": [feature_of.get(g.id, "log.template_other") for g in ranked],
        "fit_count": pa.array([g.count for g in ranked], pa.int64()),
        "count": pa.array([total.get(g.id, 0) for g in ranked], pa.int64()),
    })  # fmt: skip
    return templates, fit_on


def _content_features(con: duckdb.DuckDBPyConnection, cfg: FeaturesConfig, w_ns: int, inc: Incidents,
                      meta_in: dict) -> dict[str, Any]:
    """The log-key and span-name mix features (:mod:`otlp_aiops.features.logs`) against the reference
    windows that ``content_reference`` picks; returns how the reference was chosen."""
    LG.create_content_counts(con)
    n_keys = LG.log_content_counts(con, w_ns, Drain(cfg.drain_depth, cfg.drain_similarity, cfg.drain_max_children))
    TR.operation_counts(con)
    ws = np.array(sorted(r[0] for r in con.sql("SELECT DISTINCT w FROM content_counts").fetchall()), np.int64)
    margin = int(cfg.margin_s * 1e9)
    ff = overlapping(ws, w_ns, inc.start - margin, inc.end + margin) < 0
    ref, rule = LG.reference_windows(ws, ff, w_ns, LG.declared_recordings(meta_in), cfg.content_reference,
                                     cfg.min_reference)
    LG.content_reference(con, ref)
    LG.content_shift_features(con)
    LG.pattern_counts(con)
    LG.pattern_features(con, ref)
    TR.exceedance_features(con, ref)
    LG.trace_log_counts(con)
    return {"rule": rule, "windows": len(ref), "log_keys": n_keys}


def build_features(
    interim_dir: str | Path,
    raw_dir: str | Path,
    out_dir: str | Path,
    config: FeaturesConfig,
    dataset: str | None = None,
) -> dict[str, Any]:
    """Build every feature table of one dataset into ``out_dir`` (replaced atomically); returns the
    summary that the stage also writes as its metrics."""
    t_start = time.perf_counter()
    interim, raw, out = Path(interim_dir), Path(raw_dir), Path(out_dir)
    dataset = dataset or out.name
    if not interim.is_dir():
        raise FeaturesError(f"{interim}: no ingest output (run the ingest stage first)")
    cfg = config
    w_ns = round(cfg.window_s * 1e9)
    inc = read_incidents(raw / "incidents.parquet", cfg.incident_length_s)
    meta_in = _read_json(raw / "dataset.json")
    topology = _read_json(raw / "topology.json")
    declared_kinds = meta_in.get("metric_kinds") or {}
    topo_edges = _topology_edges(topology, raw / "topology.json")

    try:
        with claim_output(out, owner="features", inputs=[interim, raw], known_files=("summary.json",)) as tmp:
            # the steps are the lap() calls of _build (spans, traces, metrics, logs, edges, matrix, write, cases)
            with progress.task(f"features {dataset}", total=8, unit="steps"):
                summary = _build(interim, tmp, cfg, w_ns, inc, meta_in, topology, topo_edges, declared_kinds, dataset)
            shutil.copyfile(raw / "incidents.parquet", tmp / "incidents.parquet")
            # no timings in the output: the same inputs and config give the same bytes (DVC hashes it)
            kept = {k: v for k, v in summary.items() if k not in ("seconds", "timings")}
            (tmp / "summary.json").write_text(json.dumps(kept, indent=2, sort_keys=True) + "\n")
    except OutputError as e:
        raise FeaturesError(str(e)) from None
    summary["seconds"] = round(time.perf_counter() - t_start, 3)
    return summary


def _build(
    interim: Path, tmp: Path, cfg: FeaturesConfig, w_ns: int, inc: Incidents, meta_in: dict,
    topology: dict, topo_edges: list[tuple[str, str]], declared_kinds: dict, dataset: str,
) -> dict[str, Any]:  # fmt: skip
    timings: dict[str, float] = {}
    clock = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        timings[name] = round(now - clock, 3)
        clock = now
        progress.advance(1, note=f"{name} done")

    spill = tmp / "_duckdb"
    spill.mkdir()
    con = duckdb.connect(config={"memory_limit": cfg.memory_limit, "threads": cfg.threads,
                                 "temp_directory": str(spill), "preserve_insertion_order": False})  # fmt: skip
    try:
        rows_in = _open_tables(con, interim)
        T.create_macros(con)
        t0 = con.sql("""SELECT min(t) FROM (
            SELECT min(epoch_ns(time)) AS t FROM metrics_number UNION ALL
            SELECT min(epoch_ns(time)) FROM metrics_histogram UNION ALL
            SELECT min(epoch_ns(time)) FROM metrics_exp_histogram UNION ALL
            SELECT min(epoch_ns(start_time)) FROM spans)""").fetchall()[0][0]
        t0 = int(t0) if t0 is not None else 0
        con.sql("CREATE TEMP TABLE sw_long (w BIGINT, service VARCHAR, feature VARCHAR, value DOUBLE)")
        T.span_features(con, w_ns, cfg.quantiles)
        lap("spans")
        TR.trace_spans(con, w_ns)
        TR.trace_services(con)
        TR.edge_windows(con, w_ns, cfg.quantiles)
        TR.operation_windows(con, cfg.quantiles, cfg.max_operations)
        TR.trace_structure_features(con, w_ns, cfg.quantiles)
        lap("traces")
        T.metric_number_features(con, w_ns, t0)
        T.histogram_features(con, w_ns, t0, cfg.quantiles)
        T.summary_features(con, w_ns)
        lap("metrics")
        T.log_aggregate(con, w_ns)
        templates, fit_on = _fit_templates(con, cfg, w_ns, inc)
        T.log_features(con)
        content_ref = _content_features(con, cfg, w_ns, inc, meta_in)
        lap("logs")
        known = sorted(
            r[0] for r in con.sql("""
                SELECT DISTINCT service FROM sw_long UNION
                SELECT DISTINCT service_name FROM spans WHERE service_name IS NOT NULL""").fetchall()
        )
        con.register("known_services", pa.table({"service": pa.array(known, pa.string())}))
        T.edges_table(con, w_ns, cfg.quantiles)
        lap("edges")

        # ---- graph ----
        g_rows = con.sql("""
            SELECT caller, callee, sum(calls) AS calls, coalesce(sum(errors), 0) AS errors,
                   sum(latency_mean * calls ORDER BY w) / sum(calls) AS latency_mean
            FROM edges GROUP BY ALL ORDER BY caller, callee""").to_arrow_table()
        trace_edges = list(zip(g_rows.column("caller").to_pylist(), g_rows.column("callee").to_pylist(), strict=True))
        all_edges = sorted(set(trace_edges) | set(topo_edges))
        services = sorted(set(known) | {s for e in all_edges for s in e}
                          | {s.get("name") for s in topology.get("services") or [] if isinstance(s, dict)
                             and isinstance(s.get("name"), str)})  # fmt: skip
        graph_source = ("traces+topology" if trace_edges and topo_edges else "traces" if trace_edges
                        else "topology" if topo_edges else "none")  # fmt: skip
        symptom = symptom_service(meta_in, topology, services, all_edges)

        # ---- features: names, kinds ----
        feats = [r[0] for r in con.sql("SELECT DISTINCT feature FROM sw_long").fetchall()]
        feats.sort(key=lambda f: (_SOURCE_ORDER.get(f.split(".")[0], 9), f))
        metric_names: dict[str, str] = {}
        for r in con.sql("""SELECT DISTINCT metric_name FROM metrics_number UNION SELECT DISTINCT metric_name
                            FROM metrics_histogram UNION SELECT DISTINCT metric_name FROM metrics_exp_histogram
                            UNION SELECT DISTINCT metric_name FROM metrics_summary""").fetchall():
            metric_names.setdefault(T.metric_key(r[0]), r[0])
        src_metric = {
            f: metric_names.get(f.split(".")[1]) if f.startswith("metric.") else None for f in feats
        }
        try:
            kinds = [feature_kind(f, src_metric[f], declared_kinds) for f in feats]
        except ValueError as e:
            raise FeaturesError(f"dataset.json: {e}") from None

        # ---- dense (window x service x feature) matrix ----
        ws = np.array(sorted(r[0] for r in con.sql("SELECT DISTINCT w FROM sw_long").fetchall()), np.int64)
        grid, segment, has_data = make_grid(ws, w_ns, cfg.segment_gap)
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
        lap("matrix")

        # ---- window labels ----
        margin = int(cfg.margin_s * 1e9)
        hit = overlapping(grid, w_ns, inc.start, inc.end)
        ff = overlapping(grid, w_ns, inc.start - margin, inc.end + margin) < 0
        has_ref = inc.ref_start >= 0
        if has_ref.any():  # a case's own normal recording is fault-free by definition
            in_ref = overlapping(grid, w_ns, inc.ref_start[has_ref], inc.ref_end[has_ref] - w_ns + 1) >= 0
            ff |= in_ref & (hit < 0)

        # ---- write tables ----
        np.save(tmp / "matrix.npy", values)
        grid_ts = pa.array(grid, pa.int64()).cast(TS)
        pq.write_table(pa.table({
            "window_start": grid_ts, "segment": pa.array(segment), "has_data": pa.array(has_data),
            "label": pa.array((hit >= 0).astype(np.int8)),
            "incident_id": pa.array(np.where(hit >= 0, inc.ids[np.maximum(hit, 0)] if len(inc.ids) else "", ""),
                                    pa.string()),
            "fault_free": pa.array(ff),
        }), tmp / "windows.parquet")  # fmt: skip
        ti, si = np.nonzero(present.any(axis=2) | (has_data[:, None] & has_feature.any(axis=1)[None, :]))
        sw = {"window_start": grid_ts.take(pa.array(ti)), "service": pa.array(np.array(services, object)[si], pa.string())}
        for k, f in enumerate(feats):
            sw[f] = pa.array(values[ti, si, k])
        pq.write_table(pa.table(sw), tmp / "service_windows.parquet", compression="zstd")
        pq.write_table(pa.table({
            "feature": feats, "kind": kinds, "source": [f.split(".")[0] for f in feats],
            "metric_name": pa.array([src_metric[f] for f in feats], pa.string()),
            "zero_fill": pa.array(zf), "services": pa.array(has_feature.sum(axis=0).astype(np.int64)),
        }), tmp / "feature_index.parquet")  # fmt: skip
        pq.write_table(templates, tmp / "log_templates.parquet")
        edges_t = con.sql("SELECT * FROM edges ORDER BY w, caller, callee").to_arrow_table()
        edges_t = edges_t.set_column(0, "window_start", edges_t.column("w").cast(TS))
        pq.write_table(edges_t, tmp / "edges.parquet", compression="zstd")
        n_edge_windows = edges_t.num_rows
        del edges_t
        _write_graph(tmp, services, g_rows, topo_edges, graph_source)
        trace_rows = TR.write_trace_tables(con, tmp, TS)
        lap("write")

        # ---- cases ----
        case_rows = _write_cases(tmp, cfg, w_ns, inc, grid, values, ff, dataset)
        lap("cases")
    finally:
        con.close()
        shutil.rmtree(spill, ignore_errors=True)

    meta = {
        "format_version": FORMAT_VERSION,
        "dataset": dataset,
        "window_seconds": cfg.window_s,
        "services": services,
        "features": feats,
        "feature_kinds": kinds,
        "symptom_service": symptom,
        "symptom_service_declared": meta_in.get("symptom_service"),
        "graph_source": graph_source,
        "log_templates_fit_on": fit_on,
        "content_reference": content_ref,
        # threads and memory_limit change how fast, never what: left out so they cannot change the bytes
        "config": {k: v for k, v in config_to_dict(cfg).items() if k not in ("threads", "memory_limit")},
    }
    (tmp / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    return {
        "dataset": dataset,
        "window_seconds": cfg.window_s,
        "rows_in": rows_in,
        "services": len(services),
        "features": len(feats),
        "features_by_kind": {k: kinds.count(k) for k in sorted(set(kinds))},
        "windows": len(grid),
        "windows_with_data": int(has_data.sum()),
        "segments": int(segment.max() + 1) if len(segment) else 0,
        "fault_free_windows": int(ff.sum()),
        "labelled_windows": int((hit >= 0).sum()),
        "cells": int(present.sum()),
        "log_templates": templates.num_rows,
        "edge_windows": n_edge_windows,
        "trace_tables": trace_rows,
        "graph_edges": len(all_edges),
        "graph_source": graph_source,
        "symptom_service": symptom,
        "cases": len(case_rows),
        "cases_with_data": sum(1 for r in case_rows if r["n_windows"] > r["n_empty"]),
        "cases_without_reference": sum(1 for r in case_rows if r["n_reference"] == 0),
        "timings": timings,
    }


def _write_graph(tmp: Path, services: list[str], g: pa.Table, topo_edges: list[tuple[str, str]], source: str) -> None:
    calls = dict(zip(zip(g.column("caller").to_pylist(), g.column("callee").to_pylist(), strict=True),
                     zip(g.column("calls").to_pylist(), g.column("errors").to_pylist(),
                         g.column("latency_mean").to_pylist(), strict=True), strict=True))  # fmt: skip
    topo = set(topo_edges)
    pairs = sorted(set(calls) | topo)
    out_calls: dict[str, float] = {}
    for (a, _), (n, _, _) in calls.items():
        out_calls[a] = out_calls.get(a, 0.0) + n
    rows = []
    for a, b in pairs:
        n, e, lat = calls.get((a, b), (0.0, 0.0, None))
        src = "+".join(x for x, ok in (("traces", (a, b) in calls), ("topology", (a, b) in topo)) if ok)
        rows.append({"caller": a, "callee": b, "calls": float(n), "errors": float(e),
                     "latency_mean": lat, "weight": float(n) / out_calls[a] if out_calls.get(a) else 0.0,
                     "source": src})  # fmt: skip
    schema = pa.schema([("caller", pa.string()), ("callee", pa.string()), ("calls", pa.float64()),
                        ("errors", pa.float64()), ("latency_mean", pa.float64()), ("weight", pa.float64()),
                        ("source", pa.string())])  # fmt: skip
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), tmp / "graph_edges.parquet")
    pos = {s: i for i, s in enumerate(services)}
    edge_index = np.array([[pos[a] for a, _ in pairs], [pos[b] for _, b in pairs]], np.int64).reshape(2, -1)
    np.save(tmp / "edge_index.npy", edge_index)
    # networkx node-link form: nx.node_link_graph(json.load(f), edges="edges")
    doc = {"directed": True, "multigraph": False, "graph": {"source": source},
           "nodes": [{"id": s} for s in services], "edges": [{"source": r["caller"], "target": r["callee"],
           **{k: r[k] for k in ("calls", "errors", "latency_mean", "weight", "source_kind") if k in r},
           "origin": r["source"]} for r in rows]}  # fmt: skip
    (tmp / "graph.json").write_text(json.dumps(doc, indent=1) + "\n")


def case_window(start_ns: int, cfg: FeaturesConfig, w_ns: int) -> tuple[np.ndarray, int]:
    """The window starts a case covers and the onset index: the onset window is the one containing the
    (offset-shifted) start; ceil(before / W) windows before it, ceil(after / W) from it on."""
    s = start_ns + round(cfg.offset_s * 1e9)
    onset_w = (s // w_ns) * w_ns
    nb = int(np.ceil(cfg.before_s * 1e9 / w_ns - 1e-9))
    na = int(np.ceil(cfg.after_s * 1e9 / w_ns - 1e-9))
    return onset_w + (np.arange(nb + na, dtype=np.int64) - nb) * w_ns, nb


def case_arrays(k: int, inc: Incidents, cfg: FeaturesConfig, w_ns: int, grid: np.ndarray, values: np.ndarray,
                ff: np.ndarray) -> dict[str, Any]:
    """Incident ``k``'s case: its windows (a window overlapping another incident is masked to NaN: it
    stays in the array so that every case has the same shape and onset), the onset index, and its
    reference windows — the incident's own fault-free recording when it has one, else the latest
    fault-free windows before the start; when those are fewer than ``min_reference``, the fault-free
    windows of the dataset nearest in time (before or after) make up the reference."""
    n_ref = int(np.ceil(cfg.reference_s * 1e9 / w_ns - 1e-9))
    S_, F_ = values.shape[1:]
    times, onset = case_window(int(inc.start[k]), cfg, w_ns)
    pos = np.searchsorted(grid, times)
    found = (pos < len(grid)) & (grid[np.minimum(pos, len(grid) - 1)] == times) if len(grid) else np.zeros(len(times), bool)
    vals = np.full((len(times), S_, F_), np.nan)
    vals[found] = values[pos[found]]
    others = np.arange(len(inc.ids)) != k
    masked = overlapping(times, w_ns, inc.start[others], inc.end[others]) >= 0
    vals[masked] = np.nan
    if inc.ref_start[k] >= 0 and inc.ref_end[k] >= 0:
        ref_idx = np.flatnonzero((grid >= inc.ref_start[k]) & (grid + w_ns <= inc.ref_end[k]))
        ref_source = "recording"
    else:
        shifted = inc.start[k] + round(cfg.offset_s * 1e9)
        ref_idx = np.flatnonzero(ff & (grid + w_ns <= min(shifted, inc.start[k])))[-n_ref:] if n_ref else np.zeros(0, np.int64)
        ref_source = "before"
        if len(ref_idx) < min(cfg.min_reference, n_ref):
            cand = np.flatnonzero(ff)
            nearest = cand[np.argsort(np.abs(grid[cand] - inc.start[k]), kind="stable")[:n_ref]]
            ref_idx = np.sort(nearest)
            ref_source = "nearest"
    return {"times": times, "onset": onset, "values": vals, "masked": masked, "ref_idx": ref_idx,
            "ref_source": ref_source}


def _write_cases(
    tmp: Path, cfg: FeaturesConfig, w_ns: int, inc: Incidents, grid: np.ndarray, values: np.ndarray,
    ff: np.ndarray, dataset: str,
) -> list[dict[str, Any]]:  # fmt: skip
    """Per incident: :func:`case_arrays` written to ``cases/<id>.npz`` and a row of ``cases.parquet``."""
    (tmp / "cases").mkdir()
    rows = []
    t = inc.table
    for k, cid in enumerate(inc.ids):
        c = case_arrays(k, inc, cfg, w_ns, grid, values, ff)
        times, onset, vals, masked, ref_idx, ref_source = (c[x] for x in ("times", "onset", "values", "masked", "ref_idx", "ref_source"))
        # file_stem: ids `x/1` and `x_1` get two files; write_npz: no wall-clock zip timestamps
        file = f"cases/{file_stem(cid)}.npz"
        write_npz(tmp / file, times=times.view("datetime64[ns]"), values=vals,
                  reference_times=grid[ref_idx].view("datetime64[ns]"), reference=values[ref_idx])  # fmt: skip
        empty = np.isnan(vals).all(axis=(1, 2))
        rows.append({
            "case_id": cid, "file": file, "start_time": int(inc.start[k]),
            "first_window": int(times[0]), "onset_window": int(times[onset]), "onset": onset,
            "n_windows": len(times), "n_masked": int(masked.sum()), "n_empty": int(empty.sum()),
            "n_empty_after": int(empty[onset:].sum()), "n_reference": len(ref_idx), "reference_source": ref_source,
        })  # fmt: skip
    labels = {c: t.column(c) for c in ("root_cause_service", "root_cause_indicator", "fault_type")}
    table = pa.table({
        "case_id": pa.array([r["case_id"] for r in rows], pa.string()),
        "dataset": pa.array([dataset] * len(rows), pa.string()),
        "file": [r["file"] for r in rows],
        "start_time": pa.array([r["start_time"] for r in rows], pa.int64()).cast(TS),
        "first_window": pa.array([r["first_window"] for r in rows], pa.int64()).cast(TS),
        "onset_window": pa.array([r["onset_window"] for r in rows], pa.int64()).cast(TS),
        **{c: pa.array([r[c] for r in rows], pa.int64()) for c in ("onset", "n_windows", "n_masked", "n_empty",
                                                                   "n_empty_after", "n_reference")},
        "reference_source": pa.array([r["reference_source"] for r in rows], pa.string()),
        **{c: labels[c].cast(pa.string()) for c in labels},
    }) if rows else pa.table({"case_id": pa.array([], pa.string())})  # fmt: skip
    pq.write_table(table, tmp / "cases.parquet")
    return rows
