"""Trace-structure features: DuckDB over the ``spans`` table, matched parent/child span by span.

What a fault changes in the *shape* of the traces rather than in their counts (docs/features.md,
"Trace structure"):

* exclusive (self) time: a span's duration minus its children's, summed per trace and service —
  the time a request spends inside the service itself, not waiting for its callees;
* the client–server gap of each call edge: the caller's CLIENT/PRODUCER span duration minus the
  duration of the callee's matching server span (where a network delay shows);
* error origin versus propagation: a failed span none of whose children failed is an origin;
* per operation (span name) counts, errors and latency, the ``max_operations`` most frequent names per
  service; and the operation mix of each service (see :mod:`otlp_aiops.features.logs`, which scores
  a count mix against the reference the same way for span names and log templates).

Every function takes a connection with the ``spans`` view (and the ``create_macros`` macros) and
creates temporary tables or inserts ``(w, service, feature, value)`` rows into ``sw_long``.
"""

from __future__ import annotations

import duckdb

from otlp_aiops.features.tables import _win, favg, qname, span_error_expr, span_side_expr

# the spans that have a row in ``tspans``
TSPANS_WHERE = (
    "service_name IS NOT NULL AND start_time IS NOT NULL AND trace_id IS NOT NULL "
    "AND span_id IS NOT NULL AND duration_ns IS NOT NULL"
)


def trace_spans(con: duckdb.DuckDBPyConnection, w_ns: int) -> None:
    """``tspans``: one row per span with its 64-bit keys (hash of trace id + span id, of trace id +
    parent span id), window, side, failure, and from its children: their summed duration, whether one
    failed, how many run in another service; ``self_ns`` (exclusive time) and ``origin`` (failed, no
    failed child).

    Exclusive time: ``duration - sum(children's durations)``, clipped at 0 (concurrent children can
    sum past the parent). A CLIENT/PRODUCER span whose child runs in another service contributes 0:
    its excess over the callee's span is the call's network gap, kept on the edge, not the service."""
    err = span_error_expr("side")
    con.sql(f"""
        CREATE OR REPLACE TEMP TABLE tspans AS
        WITH sp AS (
            SELECT hash(trace_id, span_id) AS k,
                   CASE WHEN parent_span_id IS NULL THEN NULL ELSE hash(trace_id, parent_span_id) END AS pk,
                   hash(trace_id) AS trace, service_name AS service, coalesce(name, '') AS operation,
                   kind, side, {_win("start_time", w_ns)} AS w, start_time, duration_ns, {err} AS err
            FROM (SELECT *, {span_side_expr()} AS side FROM spans)
            WHERE {TSPANS_WHERE}),
        ch AS (
            SELECT c.pk, sum(c.duration_ns) AS child_ns, bool_or(c.err) AS child_err,
                   count_if(c.service <> p.service) AS remote_children
            FROM sp AS c JOIN sp AS p ON p.k = c.pk
            GROUP BY c.pk)
        SELECT sp.*, coalesce(ch.child_ns, 0) AS child_ns, coalesce(ch.child_err, false) AS child_err,
               coalesce(ch.remote_children, 0) AS remote_children,
               CASE WHEN sp.kind IN (3, 4) AND coalesce(ch.remote_children, 0) > 0 THEN 0
                    ELSE greatest(sp.duration_ns - coalesce(ch.child_ns, 0), 0) END AS self_ns,
               sp.err AND NOT coalesce(ch.child_err, false) AS origin
        FROM sp LEFT JOIN ch ON ch.pk = sp.k""")


def trace_services(con: duckdb.DuckDBPyConnection) -> None:
    """``trace_services``: one row per (trace, service) — the window of the service's first span in
    the trace, its entry operation (the name of its first server-side span, else of its first span),
    the longest server-side span (ms), the exclusive time summed over its spans (ms), span count,
    whether one failed and whether it holds an error origin. What the trace rankers read."""
    con.sql("""
        CREATE OR REPLACE TEMP TABLE trace_services AS
        SELECT trace, service, min(w) AS w,
               coalesce(arg_min(operation, start_time) FILTER (WHERE side = 'server'),
                        arg_min(operation, start_time)) AS operation,
               coalesce(max(duration_ns) FILTER (WHERE side = 'server'), max(duration_ns)) / 1e6
                   AS duration_ms,
               sum(self_ns) / 1e6 AS self_ms, count(*)::INTEGER AS spans,
               bool_or(err) AS error, bool_or(origin) AS origin
        FROM tspans GROUP BY trace, service""")


def edge_windows(con: duckdb.DuckDBPyConnection, w_ns: int, quantiles: tuple[float, ...]) -> None:
    """``edge_calls_x`` (one row per matched call: a span whose child runs in another service) and
    ``edge_windows`` per (window, caller, callee): calls, errors, error rate, the callee's server-span
    latency and, where the caller's span is CLIENT/PRODUCER, the client–server gap (ms) — mean and
    quantiles. Window = the caller span's start."""
    qs = ", ".join(repr(q) for q in quantiles)
    con.sql("""
        CREATE OR REPLACE TEMP TABLE edge_calls_x AS
        SELECT p.w, p.trace, p.service AS caller, c.service AS callee, p.operation AS caller_operation,
               c.operation AS callee_operation, c.duration_ns / 1e6 AS server_ms,
               CASE WHEN p.kind IN (3, 4) THEN greatest(p.duration_ns - c.duration_ns, 0) / 1e6 END AS gap_ms,
               p.err OR c.err AS err
        FROM tspans AS c JOIN tspans AS p ON p.k = c.pk
        WHERE c.service <> p.service""")
    gq = ", ".join(f"gq[{i}] AS gap_{qname(q)}" for i, q in enumerate(quantiles, start=1))
    lq = ", ".join(f"lq[{i}] AS server_latency_{qname(q)}" for i, q in enumerate(quantiles, start=1))
    con.sql(f"""
        CREATE OR REPLACE TEMP TABLE edge_windows AS
        SELECT w, caller, callee, calls, errors, errors / calls AS error_rate, gap_calls, gap_mean, {gq},
               server_latency_mean, {lq}
        FROM (SELECT w, caller, callee, count(*)::DOUBLE AS calls, count_if(err)::DOUBLE AS errors,
                     count(gap_ms)::DOUBLE AS gap_calls, {favg("gap_ms")} AS gap_mean,
                     quantile_cont(gap_ms, [{qs}]) AS gq, {favg("server_ms")} AS server_latency_mean,
                     quantile_cont(server_ms, [{qs}]) AS lq
              FROM edge_calls_x GROUP BY ALL)""")


def operation_windows(
    con: duckdb.DuckDBPyConnection, quantiles: tuple[float, ...], max_operations: int
) -> None:
    """``operation_windows`` per (window, service, operation): spans, errors, error rate, latency
    mean and quantiles (ms), for the ``max_operations`` span names of each service with the most
    spans over the whole dataset (ties by name); the others are summed under ``<other>``."""
    con.sql(f"""
        CREATE OR REPLACE TEMP TABLE op_keep AS
        SELECT service, operation FROM (
            SELECT service, operation, row_number() OVER (PARTITION BY service ORDER BY count(*) DESC,
                   operation) AS r
            FROM tspans GROUP BY service, operation)
        WHERE r <= {int(max_operations)}""")
    operation_windows_of_kept(con, quantiles)


def operation_keep_of_spans(con: duckdb.DuckDBPyConnection, max_operations: int) -> None:
    """``op_keep`` as :func:`operation_windows` makes it from ``tspans``, straight from the ``spans``
    view (the same spans: those :func:`trace_spans` keeps): for a driver whose ``tspans`` are split
    into time partitions (:mod:`otlp_aiops.features.partitioned`)."""
    con.sql(f"""
        CREATE OR REPLACE TEMP TABLE op_keep AS
        SELECT service, operation FROM (
            SELECT service, operation, row_number() OVER (PARTITION BY service ORDER BY count(*) DESC,
                   operation) AS r
            FROM (SELECT service_name AS service, coalesce(name, '') AS operation FROM spans
                  WHERE {TSPANS_WHERE}) GROUP BY service, operation)
        WHERE r <= {int(max_operations)}""")


def operation_windows_of_kept(con: duckdb.DuckDBPyConnection, quantiles: tuple[float, ...]) -> None:
    """``operation_windows`` from ``tspans`` and the kept operations ``op_keep``."""
    qs = ", ".join(repr(q) for q in quantiles)
    qc = ", ".join(f"qv[{i}] AS latency_{qname(q)}" for i, q in enumerate(quantiles, start=1))
    con.sql(f"""
        CREATE OR REPLACE TEMP TABLE operation_windows AS
        SELECT w, service, operation, spans, errors, errors / spans AS error_rate, latency_mean, {qc}
        FROM (SELECT t.w, t.service, coalesce(k.operation, '<other>') AS operation, count(*)::DOUBLE AS spans,
                     count_if(t.err)::DOUBLE AS errors, avg(t.duration_ns) / 1e6 AS latency_mean,
                     quantile_cont(t.duration_ns / 1e6, [{qs}]) AS qv
              FROM tspans AS t LEFT JOIN op_keep AS k USING (service, operation)
              GROUP BY ALL)""")


def trace_structure_features(con: duckdb.DuckDBPyConnection, w_ns: int, quantiles: tuple[float, ...]) -> None:
    """Per service and window into ``sw_long`` (after :func:`trace_spans`, :func:`trace_services`,
    :func:`edge_windows`):

    * ``span.self_time_mean`` / ``span.self_time_<q>``: exclusive time per trace in the service (ms);
    * ``span.error_origins`` / ``span.error_propagated``: failed spans with no / with a failed child;
    * ``span.in_gap_mean`` / ``span.in_gap_<q>``: client–server gap of the calls *into* the service
      (ms; the callee side, where a delay on the callee's network shows);
    * ``span.out_gap_mean``: the gap of the calls the service makes;
    * ``span.in_calls`` / ``span.out_calls``: matched calls into / out of the service."""
    qs = ", ".join(repr(q) for q in quantiles)
    # floating-point means in a fixed order (tables.favg): the same bytes whatever DuckDB's threads
    parts = [f"SELECT w, service, 'span.self_time_mean', {favg('self_ms')} FROM trace_services GROUP BY ALL"]
    parts += [
        f"SELECT w, service, 'span.self_time_{qname(q)}', quantile_cont(self_ms, {q!r}) FROM trace_services "
        "GROUP BY ALL"
        for q in quantiles
    ]
    parts += [
        "SELECT w, service, 'span.error_origins', count_if(origin)::DOUBLE FROM tspans GROUP BY ALL",
        "SELECT w, service, 'span.error_propagated', count_if(err AND NOT origin)::DOUBLE FROM tspans "
        "GROUP BY ALL",
        "SELECT w, callee, 'span.in_calls', count(*)::DOUBLE FROM edge_calls_x GROUP BY ALL",
        "SELECT w, caller, 'span.out_calls', count(*)::DOUBLE FROM edge_calls_x GROUP BY ALL",
        f"SELECT w, callee, 'span.in_gap_mean', {favg('gap_ms')} FROM edge_calls_x "
        "WHERE gap_ms IS NOT NULL GROUP BY ALL",
        f"SELECT w, caller, 'span.out_gap_mean', {favg('gap_ms')} FROM edge_calls_x "
        "WHERE gap_ms IS NOT NULL GROUP BY ALL",
    ]
    con.sql("INSERT INTO sw_long " + " UNION ALL ".join(parts))
    gap_quantiles = " UNION ALL ".join(
        f"SELECT w, service, 'span.in_gap_{qname(q)}', qv[{i}] FROM g"
        for i, q in enumerate(quantiles, start=1)
    )
    con.sql(f"""
        INSERT INTO sw_long
        WITH g AS (SELECT w, callee AS service, quantile_cont(gap_ms, [{qs}]) AS qv FROM edge_calls_x
                   WHERE gap_ms IS NOT NULL GROUP BY ALL)
        {gap_quantiles}""")


def operation_counts(con: duckdb.DuckDBPyConnection) -> None:
    """``content_counts`` rows of source ``op``: per (window, service, span name) the number of spans —
    the operation mix that :func:`otlp_aiops.features.logs.content_shift_features` scores."""
    con.sql("""
        INSERT INTO content_counts
        SELECT w, service, 'op', operation, false, count(*)::DOUBLE FROM tspans GROUP BY ALL""")


def write_trace_tables(con: duckdb.DuckDBPyConnection, out, ts_type) -> dict[str, int]:
    """``edge_windows.parquet``, ``operation_windows.parquet``, ``trace_services.parquet`` and
    ``content_mix.parquet`` into ``out``; returns their row counts."""
    import pyarrow.parquet as pq

    queries = {
        "edge_windows": "SELECT * FROM edge_windows ORDER BY w, caller, callee",
        "operation_windows": "SELECT * FROM operation_windows ORDER BY w, service, operation",
        "trace_services": "SELECT * FROM trace_services ORDER BY w, trace, service",
        "content_mix": """SELECT c.w, c.service, c.source, c.key, c.is_error, c.n,
                                 f.ref_n / f.ref_total AS ref_share
                          FROM content_counts AS c LEFT JOIN content_ref AS f USING (service, source, key)
                          ORDER BY c.w, c.service, c.source, c.key""",
    }
    rows = {}
    for name, q in queries.items():
        t = con.sql(q).to_arrow_table()
        t = t.add_column(0, "window_start", t.column("w").cast(ts_type))  # keeps w (ns) for joins
        pq.write_table(t, out / f"{name}.parquet", compression="zstd")
        rows[name] = t.num_rows
    return rows


def exceedance_features(
    con: duckdb.DuckDBPyConnection, windows, q: float = 0.99, min_reference_calls: int = 5
) -> None:
    """Count-aware latency evidence into ``sw_long``, against the reference ``windows``: the ``q``
    quantile of the client–server gap of every call edge and of the exclusive time of every (service,
    entry operation) in the reference; per window, ``k`` of ``n`` calls (traces) beyond it, scored as a
    Poisson z ``(k − (1 − q)·n) / sqrt((1 − q)·n + 1)`` — about 0 in normal windows whatever the
    traffic, large when most calls of a busy edge slow down (a network delay on the callee, a CPU
    contention inside the service):

    * ``span.in_gap_excess``: calls *into* the service whose gap exceeds their edge's reference quantile;
    * ``span.out_gap_excess``: the same for the calls the service makes (a delay on a pod's network
      slows both directions: its callers' calls into it and its own calls out);
    * ``span.self_time_excess``: traces whose exclusive time in the service exceeds the reference
      quantile of its entry operation.

    Edges and operations with fewer than ``min_reference_calls`` reference calls are not scored."""
    import numpy as np
    import pyarrow as pa

    con.register("_exc_ref_w", pa.table({"w": pa.array(np.asarray(windows, np.int64), pa.int64())}))
    p = 1.0 - q

    def excess(x: str) -> str:  # the Poisson z of the calls beyond the reference threshold r.thr
        return f"(count_if({x} > r.thr) - {p} * count(*)) / sqrt({p} * count(*) + 1)"

    con.sql(f"""
        CREATE OR REPLACE TEMP TABLE exc_gap_ref AS
        SELECT caller, callee, quantile_cont(gap_ms, {q!r}) AS thr FROM edge_calls_x JOIN _exc_ref_w USING (w)
        WHERE gap_ms IS NOT NULL GROUP BY ALL HAVING count(*) >= {int(min_reference_calls)}""")
    con.sql(f"""
        CREATE OR REPLACE TEMP TABLE exc_self_ref AS
        SELECT service, operation, quantile_cont(self_ms, {q!r}) AS thr FROM trace_services
        JOIN _exc_ref_w USING (w) GROUP BY ALL HAVING count(*) >= {int(min_reference_calls)}""")
    con.sql(f"""
        INSERT INTO sw_long
        SELECT w, callee, 'span.in_gap_excess', {excess("e.gap_ms")}
        FROM edge_calls_x AS e JOIN exc_gap_ref AS r USING (caller, callee)
        WHERE e.gap_ms IS NOT NULL GROUP BY ALL
        UNION ALL
        SELECT w, caller, 'span.out_gap_excess', {excess("e.gap_ms")}
        FROM edge_calls_x AS e JOIN exc_gap_ref AS r USING (caller, callee)
        WHERE e.gap_ms IS NOT NULL GROUP BY ALL
        UNION ALL
        SELECT w, service, 'span.self_time_excess', {excess("t.self_ms")}
        FROM trace_services AS t JOIN exc_self_ref AS r USING (service, operation) GROUP BY ALL""")
