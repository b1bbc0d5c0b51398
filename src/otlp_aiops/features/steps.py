"""The per-window steps of the ``features`` stage that the local path
(:func:`otlp_aiops.features.build._window_tables`) and the time-partitioned one
(:mod:`otlp_aiops.features.partitioned`) share: the metric, log and content features on the whole
dataset, the trace tables, and the known services. Each step is DuckDB SQL on one connection."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa

from otlp_aiops.features import logs, tables, traces
from otlp_aiops.features.cases import Incidents, fault_free
from otlp_aiops.features.config import FeaturesConfig
from otlp_aiops.features.drain import Drain


@dataclass(frozen=True)
class StageInputs:
    """What every step reads: the settings and the small inputs of the raw dataset."""

    dataset: str
    interim: Path  # the ingest tables
    cfg: FeaturesConfig
    w_ns: int  # window length in ns
    incidents: Incidents
    meta: dict[str, Any]  # raw dataset.json
    topology: dict[str, Any]  # raw topology.json
    topology_edges: list[tuple[str, str]]

    @property
    def declared_kinds(self) -> dict[str, str]:
        return self.meta.get("metric_kinds") or {}


def distinct_windows(con: duckdb.DuckDBPyConnection, table: str) -> np.ndarray:
    """The sorted distinct window starts ``w`` of a table."""
    return np.array(sorted(r[0] for r in con.sql(f"SELECT DISTINCT w FROM {table}").fetchall()), np.int64)


def trace_tables(con: duckdb.DuckDBPyConnection, inputs: StageInputs) -> None:
    """Per-trace tables (trace services, call edges, operations) and the trace-structure features."""
    quantiles = inputs.cfg.quantiles
    traces.trace_spans(con, inputs.w_ns)
    traces.trace_services(con)
    traces.edge_windows(con, inputs.w_ns, quantiles)
    traces.operation_windows(con, quantiles, inputs.cfg.max_operations)
    traces.trace_structure_features(con, inputs.w_ns, quantiles)


def metric_features(con: duckdb.DuckDBPyConnection, inputs: StageInputs) -> None:
    # cumulative metrics are differenced from the first sample of the dataset on
    t0 = con.sql("""SELECT min(t) FROM (
        SELECT min(epoch_ns(time)) AS t FROM metrics_number UNION ALL
        SELECT min(epoch_ns(time)) FROM metrics_histogram UNION ALL
        SELECT min(epoch_ns(time)) FROM metrics_exp_histogram UNION ALL
        SELECT min(epoch_ns(start_time)) FROM spans)""").fetchall()[0][0]
    t0 = int(t0) if t0 is not None else 0
    tables.metric_number_features(con, inputs.w_ns, t0)
    tables.histogram_features(con, inputs.w_ns, t0, inputs.cfg.quantiles)
    tables.summary_features(con, inputs.w_ns)


def log_features(con: duckdb.DuckDBPyConnection, inputs: StageInputs) -> tuple[pa.Table, str, dict[str, Any]]:
    """Severity and template counts, then the log-key and span-name mix features; returns the template
    table, what Drain was fitted on, and how the content reference was chosen."""
    tables.log_aggregate(con, inputs.w_ns)
    templates, fit_on = fit_templates(con, inputs)
    tables.log_features(con)
    content_ref = content_features(con, inputs)
    return templates, fit_on, content_ref


def new_drain(cfg: FeaturesConfig) -> Drain:
    return Drain(cfg.drain_depth, cfg.drain_similarity, cfg.drain_max_children)


def fit_templates(con: duckdb.DuckDBPyConnection, inputs: StageInputs) -> tuple[pa.Table, str]:
    """Drain fitted on the masked bodies of fault-free windows (all windows when none is); returns the
    template table and registers ``log_template_map(masked, feature)``."""
    cfg = inputs.cfg
    ws = distinct_windows(con, "log_agg")
    ff = fault_free(ws, inputs.w_ns, inputs.incidents, cfg.margin_s)
    con.register("_log_ff", pa.table({"w": pa.array(ws, pa.int64()), "ff": pa.array(ff)}))
    fit_on = "fault-free windows" if ff.any() else "all windows (no fault-free window)"
    where = "WHERE f.ff" if ff.any() else ""
    fit_rows = con.sql(f"""
        SELECT masked, sum(n) AS n, min(w) AS first FROM log_agg JOIN _log_ff AS f USING (w) {where}
        GROUP BY masked ORDER BY first, masked""").fetchall()
    drain = new_drain(cfg)
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
    templates = pa.table(
        {
            "template_id": [g.id for g in ranked],
            "template": [g.text for g in ranked],
            "feature": [feature_of.get(g.id, "log.template_other") for g in ranked],
            "fit_count": pa.array([g.count for g in ranked], pa.int64()),
            "count": pa.array([total.get(g.id, 0) for g in ranked], pa.int64()),
        }
    )
    return templates, fit_on


def content_features(con: duckdb.DuckDBPyConnection, inputs: StageInputs) -> dict[str, Any]:
    """The log-key and span-name mix features (:mod:`otlp_aiops.features.logs`) against the reference
    windows that ``content_reference`` picks; returns how the reference was chosen."""
    logs.create_content_counts(con)
    n_keys = logs.log_content_counts(con, inputs.w_ns, new_drain(inputs.cfg))
    traces.operation_counts(con)
    logs.pattern_counts(con)
    return content_scores(con, inputs, n_keys)


def content_scores(con: duckdb.DuckDBPyConnection, inputs: StageInputs, n_keys: int) -> dict[str, Any]:
    """From ``content_counts``, ``pattern_counts``/``pattern_parents``, ``edge_calls_x`` and
    ``trace_services``: the reference windows, then every feature scored against them."""
    cfg = inputs.cfg
    ws = distinct_windows(con, "content_counts")
    ff = fault_free(ws, inputs.w_ns, inputs.incidents, cfg.margin_s)
    recordings = logs.declared_recordings(inputs.meta)
    ref, rule = logs.reference_windows(
        ws, ff, inputs.w_ns, recordings, cfg.content_reference, cfg.min_reference
    )
    logs.content_reference(con, ref)
    logs.content_shift_features(con)
    logs.pattern_features(con, ref)
    traces.exceedance_features(con, ref)
    logs.trace_log_counts(con)
    return {"rule": rule, "windows": len(ref), "log_keys": n_keys}


def known_services(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Every service with a feature or a span; registered as ``known_services`` for the edges."""
    known = sorted(
        r[0]
        for r in con.sql("""
            SELECT DISTINCT service FROM sw_long UNION
            SELECT DISTINCT service_name FROM spans WHERE service_name IS NOT NULL""").fetchall()
    )
    con.register("known_services", pa.table({"service": pa.array(known, pa.string())}))
    return known
