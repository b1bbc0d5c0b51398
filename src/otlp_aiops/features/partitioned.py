"""The per-window tables of the ``features`` stage computed per time partition, as tasks of the
executor (:mod:`otlp_aiops.executor`, ``kind: ray``); the output is the local executor's.

What is split and how it stays exact:

* **Partitions are sets of whole windows.** Partition ``p`` owns the windows ``w`` with
  ``w // P == p`` (``P``: ``partition_s`` rounded to a whole number of windows), so a window belongs to
  exactly one partition and is never split. Every table a task writes keeps only the rows of the
  windows it owns (``w`` = the window of the span, of the caller's span for a call, of the first span
  of a service in a trace for ``trace_services``).
* **Joins across a border are read, not guessed.** A task reads the spans of its windows plus a margin
  on both sides equal to the longest trace of the dataset (the largest spread of ``start_time`` among
  the spans of one trace id, measured on the driver before the tasks start). Every span a row of an
  owned window depends on — a parent's children, a call's callee span, all spans of a service in a
  trace — belongs to the same trace, hence starts within the margin: the row is computed from the same
  spans as on one machine. A row of a window outside the partition, computed from an incomplete margin,
  is dropped.
* **Global pieces stay on the driver**, on the whole dataset: the metric features (a cumulative series
  is differenced from its previous point, however far back), the log tables and both Drain fits, the
  kept operations of ``operation_windows`` (the most frequent span names per service over the dataset),
  the known services, then, from the merged partition tables, the reference windows and every feature
  scored against them (content mix, patterns, exceedances), the graph, the matrix and the cases.

The tasks write their tables as Parquet files of their own into ``<out>/_parts/<table>/`` (a retried
task overwrites its files whole); the driver reads them back into the same DuckDB tables the local
path builds and writes the outputs with the same code, so the files are byte-identical
(``tests/unit/test_features_partitioned.py`` compares every file). The one difference is a 64-bit hash
collision between two span ids of different traces more than a margin apart, which the local build
would join and a partition cannot see (probability about n² / 2⁶⁴).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from otlp_aiops.executor import ExecutorConfig, run_tasks
from otlp_aiops.features import logs, steps, tables, traces
from otlp_aiops.features.cases import FeaturesError
from otlp_aiops.otlp import schema as otlp_schema

PARTS = "_parts"
# the tables a partition task writes (rows of its own windows only), and the columns kept
_PART_TABLES = {
    "sw_long": "*",
    "edges": "*",
    "edge_windows": "*",
    "operation_windows": "*",
    "trace_services": "*",
    "edge_calls_x": "w, caller, callee, gap_ms",  # what the exceedance features read
    "content_counts": "*",
    "pattern_parents": "*",
    "pattern_counts": "*",
}


def partition_ns(partition_s: float, w_ns: int) -> int:
    """The partition length: ``partition_s`` rounded to a whole number (≥ 1) of windows, in ns."""
    return max(1, round(partition_s * 1e9 / w_ns)) * w_ns


def window_tables(
    con: duckdb.DuckDBPyConnection,
    inputs: steps.StageInputs,
    tmp: Path,
    executor: ExecutorConfig,
    partition_s: float,
    lap: Any,
) -> tuple[pa.Table, str, dict[str, Any], list[str]]:
    """What :func:`otlp_aiops.features.build._window_tables` builds, with the span work split into time
    partitions run by ``executor``; the same tables on ``con``, the same return value. The steps on the
    whole dataset (metrics, logs, content scores) are :mod:`otlp_aiops.features.steps`' own."""
    cfg, w_ns = inputs.cfg, inputs.w_ns
    parts = (tmp / PARTS).resolve()
    parts.mkdir()
    try:
        # driver, whole dataset: metrics, logs, Drain, the known services and kept operations
        steps.metric_features(con, inputs)
        lap("metrics")
        tables.log_aggregate(con, w_ns)
        templates, fit_on = steps.fit_templates(con, inputs)
        tables.log_features(con)
        logs.create_content_counts(con)
        n_keys = logs.log_content_counts(con, w_ns, steps.new_drain(cfg))
        log_keys = con.sql("SELECT sk, service, key FROM log_keyed WHERE sk IS NOT NULL").to_arrow_table()
        pq.write_table(log_keys, parts / "log_keyed.parquet")
        del log_keys
        lap("logs")
        known = steps.known_services(con)
        traces.operation_keep_of_spans(con, cfg.max_operations)
        keep = con.sql("SELECT service, operation FROM op_keep").to_arrow_table().to_pylist()
        margin = _longest_trace_ns(con)
        p_ns = partition_ns(partition_s, w_ns)
        ids = [
            r[0]
            for r in con.sql(f"""
                SELECT DISTINCT ((epoch_ns(start_time) // {w_ns}) * {w_ns}) // {p_ns} AS p FROM spans
                WHERE start_time IS NOT NULL ORDER BY p""").fetchall()
        ] or [0]  # no span: one task, for the tables' schemas
        # the tasks: largest first is unknown without a count; in time order
        settings = {"w_ns": w_ns, "p_ns": p_ns, "margin": margin, "quantiles": list(cfg.quantiles),
                    "memory_limit": cfg.memory_limit, "known": known, "keep": keep}  # fmt: skip
        interim = str(inputs.interim.resolve())
        run_tasks(partition_task, [(interim, str(parts), int(p), settings) for p in ids], executor)
        lap("spans")
        # driver: the partitions' rows into the tables of the local path
        _read_parts(con, parts)
        lap("traces")
        content_ref = steps.content_scores(con, inputs, n_keys)
        if steps.known_services(con) != known:  # what the edges' tasks were given: it cannot change
            raise FeaturesError("partitioned features: the known services changed after the partitions")
        lap("edges")
    finally:
        shutil.rmtree(parts, ignore_errors=True)
    return templates, fit_on, content_ref, known


def _longest_trace_ns(con: duckdb.DuckDBPyConnection) -> int:
    """The largest spread of ``start_time`` among the spans of one trace id (spans without a trace id
    count as one trace: the joins match them too)."""
    r = con.sql("""
        SELECT max(hi - lo) FROM (
            SELECT max(epoch_ns(start_time)) AS hi, min(epoch_ns(start_time)) AS lo FROM spans
            WHERE start_time IS NOT NULL GROUP BY trace_id)""").fetchall()[0][0]
    return int(r or 0)


def _read_parts(con: duckdb.DuckDBPyConnection, parts: Path) -> None:
    for name in _PART_TABLES:
        src = f"read_parquet('{_sql_path(parts / name)}/*.parquet')"
        if name in ("sw_long", "content_counts"):  # created on the driver, with rows already
            con.sql(f"INSERT INTO {name} SELECT * FROM {src}")
        else:
            con.sql(f"CREATE OR REPLACE TEMP TABLE {name} AS SELECT * FROM {src}")


def _sql_path(p: Path) -> str:
    return str(p).replace("'", "''")


# ---------------------------------------------------------------------------------------------
# the task
# ---------------------------------------------------------------------------------------------
def partition_task(interim: str, parts: str, p: int, s: dict[str, Any]) -> dict[str, int]:
    """The per-window span tables of partition ``p`` (the windows ``w`` with ``w // p_ns == p``), from
    the spans of those windows and ``margin`` ns on either side; writes the rows of its own windows
    to ``<parts>/<table>/p<p>.parquet`` and returns their counts. A pure function of its arguments
    and the input files: a retry rewrites the same files."""
    w_ns, p_ns, margin, quantiles = s["w_ns"], s["p_ns"], s["margin"], tuple(s["quantiles"])
    out = Path(parts)
    spill = out / "_duckdb" / f"p{p}"
    shutil.rmtree(spill, ignore_errors=True)
    spill.mkdir(parents=True)
    con = duckdb.connect(
        config={
            "memory_limit": s["memory_limit"],
            "threads": 1,  # one CPU per task
            "temp_directory": str(spill),
            "preserve_insertion_order": False,
        }
    )
    try:
        lo, hi = p * p_ns - margin - w_ns, (p + 1) * p_ns + margin + w_ns
        files = sorted((Path(interim) / "spans").glob("**/*.parquet"))
        if files:
            glob = _sql_path(Path(interim) / "spans" / "**" / "*.parquet")
            con.sql(f"""CREATE VIEW spans AS SELECT * FROM read_parquet('{glob}', union_by_name=true)
                        WHERE start_time IS NOT NULL AND epoch_ns(start_time) BETWEEN {lo} AND {hi}""")
        else:
            con.register("_spans_empty", otlp_schema.TABLES["spans"].empty_table())
            con.sql("CREATE VIEW spans AS SELECT * FROM _spans_empty")
        con.sql(
            f"CREATE VIEW log_keyed AS SELECT * FROM read_parquet('{_sql_path(out / 'log_keyed.parquet')}')"
        )
        con.register("known_services", pa.table({"service": pa.array(s["known"], pa.string())}))
        keep = s["keep"]
        con.register("_op_keep", pa.table({"service": pa.array([k["service"] for k in keep], pa.string()),
                                           "operation": pa.array([k["operation"] for k in keep], pa.string())}))  # fmt: skip
        con.sql("CREATE TEMP TABLE op_keep AS SELECT * FROM _op_keep")
        tables.create_macros(con)
        con.sql("CREATE TEMP TABLE sw_long (w BIGINT, service VARCHAR, feature VARCHAR, value DOUBLE)")
        tables.span_features(con, w_ns, quantiles)
        traces.trace_spans(con, w_ns)
        traces.trace_services(con)
        traces.edge_windows(con, w_ns, quantiles)
        traces.operation_windows_of_kept(con, quantiles)
        traces.trace_structure_features(con, w_ns, quantiles)
        tables.edges_table(con, w_ns, quantiles)
        logs.create_content_counts(con)
        traces.operation_counts(con)
        logs.pattern_counts(con)
        rows = {}
        for name, cols in _PART_TABLES.items():
            folder = out / name
            folder.mkdir(exist_ok=True)
            dest = folder / f"p{p}.parquet"
            part = folder / f".p{p}.parquet.tmp"
            only = " AND gap_ms IS NOT NULL" if name == "edge_calls_x" else ""
            con.sql(f"""COPY (SELECT {cols} FROM {name} WHERE w // {p_ns} = {p}{only})
                        TO '{_sql_path(part)}' (FORMAT parquet)""")
            os.replace(part, dest)  # whole or not at all
            rows[name] = int(pq.read_metadata(dest).num_rows)
        return rows
    finally:
        con.close()
        shutil.rmtree(spill, ignore_errors=True)
