"""The SQL of the feature tables: one function per table, each a DuckDB query over the ingest tables.

Every function takes a connection on which the ingest tables are views (``spans``, ``logs``,
``metrics_number``, ``metrics_histogram``, ``metrics_exp_histogram``, ``metrics_summary``) and
returns rows or creates a temporary table; windows are ``w`` = window start in ns since the epoch,
``(epoch_ns(t) // W) * W``. Long feature rows are ``(w, service, feature, value)``.
"""

from __future__ import annotations

import re

import duckdb

# Number-masking before Drain: a whitespace-separated token that contains a digit is a variable (ids,
# numbers, durations, addresses) — the masking Drain's paper applies before the tree search.
MASK_REGEX = r"\S*\d\S*"

# gRPC status codes that are server errors (OpenTelemetry semantic conventions, "gRPC" spans:
# UNKNOWN, DEADLINE_EXCEEDED, UNIMPLEMENTED, INTERNAL, UNAVAILABLE, DATA_LOSS); on client spans every
# non-zero code is an error; HTTP: >= 500 on server spans, >= 400 on client spans (semconv "HTTP spans").
_GRPC_SERVER_ERRORS = "(2, 4, 12, 13, 14, 15)"


def fsum(x: str) -> str:
    """``sum(x)`` over DOUBLEs in a fixed order (the values sorted). Floating-point addition is not
    associative, so a plain parallel ``sum``/``avg`` differs in the last bits from run to run and
    with the thread count — which changed the features' bytes, hence ``dvc.lock``, at every
    ``dvc repro``. Sums of integers (counts, ``duration_ns``) are exact and need no order."""
    return f"sum({x} ORDER BY {x})"


def favg(x: str) -> str:
    """``avg(x)`` over DOUBLEs in a fixed order; see :func:`fsum`."""
    return f"avg({x} ORDER BY {x})"


def qname(q: float) -> str:
    """``0.5`` -> ``p50``, ``0.999`` -> ``p99_9``."""
    return "p" + format(q * 100, "g").replace(".", "_")


def metric_key(name: str) -> str:
    """A metric name as a feature-name part: ``container.cpu.usage`` -> ``container_cpu_usage``."""
    return re.sub(r"[^0-9A-Za-z_]+", "_", name).strip("_") or "unnamed"


def create_macros(con: duckdb.DuckDBPyConnection) -> None:
    """``mk(name)``: :func:`metric_key` in SQL; ``pname(q)``: :func:`qname` in SQL."""
    con.sql(r"""CREATE OR REPLACE TEMP MACRO mk(x) AS
                coalesce(nullif(trim(regexp_replace(x, '[^0-9A-Za-z_]+', '_', 'g'), '_'), ''), 'unnamed')""")
    con.sql(r"""CREATE OR REPLACE TEMP MACRO pname(q) AS
                'p' || replace(regexp_replace(printf('%.6f', q * 100), '\.?0+$', ''), '.', '_')""")


def _win(col: str, w_ns: int) -> str:
    return f"((epoch_ns({col}) // {w_ns}) * {w_ns})"


def span_side_expr() -> str:
    return (
        "CASE WHEN kind IN (2, 5) OR parent_span_id IS NULL THEN 'server' "
        "WHEN kind IN (3, 4) THEN 'client' END"
    )


def span_error_expr(side: str) -> str:
    """Whether a span failed: status ERROR, or (status unset) an HTTP / gRPC error code."""
    return (
        f"coalesce(status_code = 2 OR (status_code = 0 AND ("
        f"({side} = 'server' AND (http_response_status_code >= 500 "
        f"OR rpc_grpc_status_code IN {_GRPC_SERVER_ERRORS})) OR "
        f"({side} = 'client' AND (http_response_status_code >= 400 "
        f"OR coalesce(rpc_grpc_status_code, 0) <> 0)))), false)"
    )


# ---------------------------------------------------------------------------------------------
# service_windows: spans
# ---------------------------------------------------------------------------------------------
def span_features(con: duckdb.DuckDBPyConnection, w_ns: int, quantiles: tuple[float, ...]) -> None:
    """Per service, window and side (server = SERVER/CONSUMER/root spans, client = CLIENT/PRODUCER):
    count, rate (/s), errors, error rate, latency mean and quantiles (ms; exact, linear
    interpolation between order statistics as ``quantile_cont``). Into ``sw_long``."""
    qs = ", ".join(repr(q) for q in quantiles)
    con.sql(f"""
        CREATE OR REPLACE TEMP TABLE span_agg AS
        WITH s AS (
            SELECT service_name AS service, {_win("start_time", w_ns)} AS w, {span_side_expr()} AS side,
                   duration_ns, duration_ns / 1e6 AS ms, kind, status_code, http_response_status_code,
                   rpc_grpc_status_code
            FROM spans WHERE start_time IS NOT NULL AND service_name IS NOT NULL)
        SELECT w, service, side, count(*) AS n, count_if({span_error_expr("side")}) AS e,
               avg(duration_ns) / 1e6 AS mean, quantile_cont(ms, [{qs}]) AS qv
        FROM s WHERE side IS NOT NULL GROUP BY ALL""")
    secs = w_ns / 1e9
    parts = [
        "SELECT w, service, 'span.' || side || '_count', n::DOUBLE FROM span_agg",
        f"SELECT w, service, 'span.' || side || '_rate', n / {secs} FROM span_agg",
        "SELECT w, service, 'span.' || side || '_errors', e::DOUBLE FROM span_agg",
        "SELECT w, service, 'span.' || side || '_error_rate', e / n FROM span_agg",
        "SELECT w, service, 'span.' || side || '_latency_mean', mean FROM span_agg WHERE mean IS NOT NULL",
    ]
    for i, q in enumerate(quantiles, start=1):
        parts.append(
            f"SELECT w, service, 'span.' || side || '_latency_{qname(q)}', qv[{i}] FROM span_agg "
            f"WHERE qv[{i}] IS NOT NULL"
        )
    con.sql("INSERT INTO sw_long " + " UNION ALL ".join(parts))


# ---------------------------------------------------------------------------------------------
# service_windows: metrics
# ---------------------------------------------------------------------------------------------
def _first_is_new(t0_ns: int) -> str:
    """A series' first point counts as an increase from zero only if the series started inside the
    recording (its start_time is after the first timestamp of the data); otherwise its earlier
    history is unknown and the first point gives no increase."""
    return f"(start_time IS NOT NULL AND epoch_ns(start_time) > {t0_ns})"


def metric_number_features(con: duckdb.DuckDBPyConnection, w_ns: int, t0_ns: int) -> None:
    """Gauges (and cumulative non-monotonic sums, whose value is a level): window mean and max over
    the service's series. Delta sums: the sum of the deltas in the window. Cumulative monotonic sums:
    per-point increase (previous point of the same series subtracted; a value drop or a new
    start_time is a counter reset, and then the value itself is the increase), summed per window;
    ``rate`` = increase / window seconds."""
    secs = w_ns / 1e9
    con.sql("""
        CREATE OR REPLACE TEMP TABLE num_points AS
        SELECT service_name AS service, metric_name, series_id, time, start_time,
               coalesce(value_double, value_int::DOUBLE) AS v,
               CASE WHEN metric_type = 'gauge'
                         OR (metric_type = 'sum' AND NOT coalesce(is_monotonic, false)
                             AND coalesce(aggregation_temporality, 2) = 2) THEN 'gauge'
                    WHEN metric_type = 'sum' AND aggregation_temporality = 1 THEN 'delta'
                    WHEN metric_type = 'sum' THEN 'cumulative' END AS sem
        FROM metrics_number
        WHERE time IS NOT NULL AND service_name IS NOT NULL AND NOT no_recorded_value
              AND coalesce(value_double, value_int) IS NOT NULL""")
    con.sql(f"""
        INSERT INTO sw_long
        WITH g AS (
            SELECT {_win("time", w_ns)} AS w, service, metric_name, {favg("v")} AS mean, max(v) AS mx
            FROM num_points WHERE sem = 'gauge' GROUP BY ALL),
        inc AS (
            SELECT {_win("time", w_ns)} AS w, service, metric_name, v AS d
            FROM num_points WHERE sem = 'delta'
            UNION ALL
            SELECT w, service, metric_name, d FROM (
                SELECT {_win("time", w_ns)} AS w, service, metric_name,
                       CASE WHEN pv IS NULL THEN (CASE WHEN {_first_is_new(t0_ns)} THEN v END)
                            WHEN v < pv OR (start_time IS NOT NULL AND pst IS NOT NULL
                                            AND start_time <> pst) THEN v
                            ELSE v - pv END AS d
                FROM (SELECT *, lag(v) OVER s AS pv, lag(start_time) OVER s AS pst
                      FROM num_points WHERE sem = 'cumulative'
                      WINDOW s AS (PARTITION BY series_id ORDER BY time)))
            WHERE d IS NOT NULL),
        i AS (SELECT w, service, metric_name, {fsum("d")} AS inc FROM inc GROUP BY ALL)
        SELECT w, service, 'metric.' || mk(metric_name) || '.mean', mean FROM g
        UNION ALL SELECT w, service, 'metric.' || mk(metric_name) || '.max', mx FROM g
        UNION ALL SELECT w, service, 'metric.' || mk(metric_name) || '.increase', inc FROM i
        UNION ALL SELECT w, service, 'metric.' || mk(metric_name) || '.rate', inc / {secs} FROM i""")


def histogram_features(
    con: duckdb.DuckDBPyConnection, w_ns: int, t0_ns: int, quantiles: tuple[float, ...]
) -> None:
    """Histograms and exponential histograms: per-window bucket increases (cumulative points: the
    previous point of the series subtracted bucket by bucket; a count drop, a new start_time, changed
    bounds or a changed scale is a reset), merged over the service's series by bucket bounds, then
    ``count`` (increase), ``mean`` (sum increase / count increase) and quantiles estimated from the
    buckets by linear interpolation inside the bucket holding the rank — the rule of Prometheus'
    ``histogram_quantile``: the first explicit bucket (-inf, b0] is taken as [0, b0] when b0 > 0, and
    a rank in the overflow bucket (bN, +inf) returns bN. Exponential buckets (OTLP): index i at scale s
    covers (base^i, base^(i+1)] with base = 2^(2^-s); the zero bucket is [0, zero_threshold]."""
    # points of both shapes, with a per-series sequence number and a reset flag
    con.sql(f"""
        CREATE OR REPLACE TEMP TABLE hist_points AS
        WITH p AS (
            SELECT service_name AS service, metric_name, series_id, time, start_time,
                   aggregation_temporality AS tmp, count::DOUBLE AS c, sum AS s,
                   'e' || array_to_string(explicit_bounds, ',') AS layout,
                   bucket_counts AS pos, explicit_bounds AS eb, NULL::INT AS scale, NULL::INT AS poff,
                   NULL::UBIGINT[] AS neg, NULL::INT AS noff, NULL::DOUBLE AS zc, NULL::DOUBLE AS zt
            FROM metrics_histogram WHERE time IS NOT NULL AND service_name IS NOT NULL
                                     AND NOT no_recorded_value
            UNION ALL
            SELECT service_name, metric_name, series_id, time, start_time, aggregation_temporality,
                   count::DOUBLE, sum, 's' || scale::VARCHAR, positive_bucket_counts, NULL, scale,
                   positive_offset, negative_bucket_counts, negative_offset, zero_count::DOUBLE,
                   zero_threshold
            FROM metrics_exp_histogram WHERE time IS NOT NULL AND service_name IS NOT NULL
                                         AND NOT no_recorded_value)
        SELECT *, {_win("time", w_ns)} AS w,
               row_number() OVER ser AS rn,
               CASE WHEN coalesce(tmp, 2) = 1 THEN true
                    WHEN lag(c) OVER ser IS NULL THEN {_first_is_new(t0_ns)}
                    WHEN c < lag(c) OVER ser OR layout <> lag(layout) OVER ser
                         OR (start_time IS NOT NULL AND lag(start_time) OVER ser IS NOT NULL
                             AND start_time <> lag(start_time) OVER ser) THEN true
                    ELSE false END AS reset,
               lag(c) OVER ser IS NULL AND coalesce(tmp, 2) <> 1 AND NOT {_first_is_new(t0_ns)} AS skip,
               c - coalesce(lag(c) OVER ser, 0) AS dc_raw, s - coalesce(lag(s) OVER ser, 0) AS ds_raw
        FROM p WINDOW ser AS (PARTITION BY series_id ORDER BY time)""")
    # one row per point and bucket: (lb, ub] bounds and the cumulative count in that bucket
    con.sql("""
        CREATE OR REPLACE TEMP TABLE hist_buckets AS
        WITH e AS (
            SELECT series_id, rn, reset, skip, w, service, metric_name, eb,
                   unnest(pos) AS cnt, generate_subscripts(pos, 1) AS i
            FROM hist_points WHERE scale IS NULL),
        x AS (
            SELECT series_id, rn, reset, skip, w, service, metric_name, scale,
                   unnest(pos) AS cnt, generate_subscripts(pos, 1) - 1 + poff AS idx, 1 AS sign
            FROM hist_points WHERE scale IS NOT NULL
            UNION ALL
            SELECT series_id, rn, reset, skip, w, service, metric_name, scale,
                   unnest(neg), generate_subscripts(neg, 1) - 1 + noff, -1
            FROM hist_points WHERE scale IS NOT NULL AND len(neg) > 0)
        SELECT series_id, rn, reset, skip, w, service, metric_name,
               CASE WHEN i = 1 THEN least(0.0, eb[1]) ELSE eb[i - 1] END AS lb,
               CASE WHEN i <= len(eb) THEN eb[i] ELSE 'inf'::DOUBLE END AS ub, cnt::DOUBLE AS cnt
        FROM e
        UNION ALL
        SELECT series_id, rn, reset, skip, w, service, metric_name,
               CASE WHEN sign = 1 THEN power(2.0, idx * power(2.0, -scale))
                    ELSE -power(2.0, (idx + 1) * power(2.0, -scale)) END,
               CASE WHEN sign = 1 THEN power(2.0, (idx + 1) * power(2.0, -scale))
                    ELSE -power(2.0, idx * power(2.0, -scale)) END,
               cnt::DOUBLE
        FROM x
        UNION ALL
        SELECT series_id, rn, reset, skip, w, service, metric_name, 0.0, zt, zc
        FROM hist_points WHERE scale IS NOT NULL AND zc > 0""")
    qcols = ",\n".join(
        f"max(CASE WHEN pc < {q} * tot AND cum >= {q} * tot THEN "
        f"(CASE WHEN isinf(ub) THEN lb ELSE lb + (ub - lb) * ({q} * tot - pc) / d END) END) AS q{i}"
        for i, q in enumerate(quantiles)
    )
    con.sql(f"""
        CREATE OR REPLACE TEMP TABLE hist_agg AS
        WITH d AS (
            SELECT w, service, metric_name, lb, ub,
                   CASE WHEN reset THEN cnt
                        WHEN lag(rn) OVER b = rn - 1 THEN cnt - lag(cnt) OVER b
                        ELSE cnt END AS d, skip
            FROM hist_buckets WINDOW b AS (PARTITION BY series_id, lb, ub ORDER BY rn)),
        m AS (SELECT w, service, metric_name, lb, ub, sum(d) AS d FROM d WHERE NOT skip GROUP BY ALL),
        c AS (SELECT *, sum(d) OVER o AS cum, sum(d) OVER o - d AS pc,
                     sum(d) OVER (PARTITION BY w, service, metric_name) AS tot
              FROM m WINDOW o AS (PARTITION BY w, service, metric_name ORDER BY ub, lb
                                  ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW))
        SELECT w, service, metric_name, {qcols}
        FROM c WHERE tot > 0 GROUP BY ALL""")
    parts = [
        "SELECT w, service, 'metric.' || mk(metric_name) || '.count', cnt FROM tot",
        "SELECT w, service, 'metric.' || mk(metric_name) || '.mean', s / cnt FROM tot "
        "WHERE cnt > 0 AND s IS NOT NULL",
    ] + [
        f"SELECT w, service, 'metric.' || mk(metric_name) || '.{qname(q)}', q{i} FROM hist_agg "
        f"WHERE q{i} IS NOT NULL"
        for i, q in enumerate(quantiles)
    ]
    con.sql(f"""
        INSERT INTO sw_long
        WITH tot AS (
            SELECT w, service, metric_name,
                   sum(CASE WHEN reset THEN c ELSE dc_raw END) AS cnt,
                   {fsum("CASE WHEN reset THEN s ELSE ds_raw END")} AS s
            FROM hist_points WHERE NOT skip GROUP BY ALL)
        {" UNION ALL ".join(parts)}""")


def summary_features(con: duckdb.DuckDBPyConnection, w_ns: int) -> None:
    """Summaries: each reported quantile's window mean (``p50`` ...), the sum's window mean is not
    kept (it is cumulative); the count's increase is kept as ``count`` (resets handled as for sums)."""
    con.sql(f"""
        INSERT INTO sw_long
        WITH q AS (
            SELECT {_win("time", w_ns)} AS w, service_name AS service, metric_name,
                   unnest(quantiles) AS q, unnest(quantile_values) AS v
            FROM metrics_summary WHERE time IS NOT NULL AND service_name IS NOT NULL),
        c AS (
            SELECT {_win("time", w_ns)} AS w, service_name AS service, metric_name, count::DOUBLE AS v,
                   lag(count::DOUBLE) OVER s AS pv, start_time, lag(start_time) OVER s AS pst
            FROM metrics_summary WHERE time IS NOT NULL AND service_name IS NOT NULL
            WINDOW s AS (PARTITION BY series_id ORDER BY time))
        SELECT w, service, 'metric.' || mk(metric_name) || '.' || pname(q), {favg("v")} FROM q
        WHERE v IS NOT NULL GROUP BY ALL
        UNION ALL
        SELECT w, service, 'metric.' || mk(metric_name) || '.count',
               {fsum("CASE WHEN v < pv OR start_time <> pst THEN v ELSE v - pv END")}
        FROM c WHERE pv IS NOT NULL GROUP BY ALL""")


# ---------------------------------------------------------------------------------------------
# service_windows: logs
# ---------------------------------------------------------------------------------------------
SEVERITY_EXPR = """CASE
    WHEN severity_number BETWEEN 1 AND 4 THEN 'trace' WHEN severity_number BETWEEN 5 AND 8 THEN 'debug'
    WHEN severity_number BETWEEN 9 AND 12 THEN 'info' WHEN severity_number BETWEEN 13 AND 16 THEN 'warn'
    WHEN severity_number BETWEEN 17 AND 20 THEN 'error' WHEN severity_number BETWEEN 21 AND 24 THEN 'fatal'
    WHEN upper(severity_text) LIKE 'TRACE%' THEN 'trace' WHEN upper(severity_text) LIKE 'DEBUG%' THEN 'debug'
    WHEN upper(severity_text) LIKE 'INFO%' THEN 'info' WHEN upper(severity_text) LIKE 'WARN%' THEN 'warn'
    WHEN upper(severity_text) LIKE 'ERR%' THEN 'error'
    WHEN upper(severity_text) LIKE 'FATAL%' OR upper(severity_text) LIKE 'CRIT%' THEN 'fatal'
    ELSE 'unspecified' END"""


def log_aggregate(con: duckdb.DuckDBPyConnection, w_ns: int) -> None:
    """One pass over the logs: counts per (window, service, severity level, masked body) into
    ``log_agg``; Drain then runs over the distinct masked bodies only."""
    con.sql(f"""
        CREATE OR REPLACE TEMP TABLE log_agg AS
        SELECT {_win("coalesce(time, observed_time)", w_ns)} AS w, service_name AS service,
               {SEVERITY_EXPR} AS sev,
               regexp_replace(coalesce(body, ''), '{MASK_REGEX}', '<*>', 'g') AS masked,
               count(*)::DOUBLE AS n
        FROM logs WHERE coalesce(time, observed_time) IS NOT NULL AND service_name IS NOT NULL
        GROUP BY ALL""")


def log_features(con: duckdb.DuckDBPyConnection) -> None:
    """From ``log_agg`` and the template map ``log_template_map(masked, feature)``: ``log.count``,
    ``log.severity_<level>`` and ``log.template_<id>`` / ``log.template_other`` /
    ``log.template_unseen`` counts."""
    con.sql("""
        INSERT INTO sw_long
        SELECT w, service, 'log.count', sum(n) FROM log_agg GROUP BY ALL
        UNION ALL
        SELECT w, service, 'log.severity_' || sev, sum(n) FROM log_agg GROUP BY ALL
        UNION ALL
        SELECT a.w, a.service, m.feature, sum(a.n)
        FROM log_agg a JOIN log_template_map m USING (masked) GROUP BY ALL""")


# ---------------------------------------------------------------------------------------------
# edges
# ---------------------------------------------------------------------------------------------
def edges_table(con: duckdb.DuckDBPyConnection, w_ns: int, quantiles: tuple[float, ...]) -> None:
    """Caller -> callee calls per window into ``edges``: (1) a span whose parent span belongs to another
    service (the call seen from both sides; latency from the parent when it is a CLIENT/PRODUCER span,
    else from the child; failed if either side failed); (2) a CLIENT/PRODUCER span with no child in
    another service (an uninstrumented callee) whose ``peer.service`` — or ``server.address`` when
    that names a known service — says where it went. Window = the caller span's start."""
    qs = ", ".join(repr(q) for q in quantiles)
    err = span_error_expr("side")
    # one LEFT JOIN of every span to its children in other services: a match is a call of kind (1);
    # a CLIENT/PRODUCER span without a match and with a named peer is a call of kind (2). The join key
    # is a 64-bit hash of (trace id, span id) — a quarter of the bytes of the ids, so the hash table of
    # 10 M spans stays in memory; a false match needs a hash collision between a span and another
    # span's parent in another service (about n^2 / 2^64: ~5e-6 for 10 M spans).
    con.sql(f"""
        CREATE OR REPLACE TEMP TABLE edge_calls AS
        WITH sp AS (
            SELECT hash(trace_id, span_id) AS k, hash(trace_id, parent_span_id) AS pk,
                   parent_span_id IS NOT NULL AS has_parent, service_name, kind, start_time, duration_ns,
                   peer_service, server_address, {err} AS err
            FROM (SELECT *, {span_side_expr()} AS side FROM spans)
            WHERE service_name IS NOT NULL AND start_time IS NOT NULL),
        ch AS (SELECT pk, service_name, duration_ns, err FROM sp WHERE has_parent)
        SELECT caller, callee, w, ms, err FROM (
            SELECT p.service_name AS caller,
                   coalesce(c.service_name, p.peer_service, k.service) AS callee,
                   {_win("p.start_time", w_ns)} AS w,
                   CASE WHEN p.kind IN (3, 4) OR c.service_name IS NULL THEN p.duration_ns
                        ELSE c.duration_ns END / 1e6 AS ms,
                   (p.err OR coalesce(c.err, false)) AS err,
                   c.service_name IS NOT NULL OR p.kind IN (3, 4) AS is_call
            FROM sp AS p
            LEFT JOIN ch AS c ON c.pk = p.k AND c.service_name <> p.service_name
            LEFT JOIN known_services AS k ON k.service = p.server_address)
        WHERE is_call AND callee IS NOT NULL AND callee <> caller""")
    qcols = ", ".join(f"qv[{i}] AS latency_{qname(q)}" for i, q in enumerate(quantiles, start=1))
    con.sql(f"""
        CREATE OR REPLACE TEMP TABLE edges AS
        SELECT w, caller, callee, calls, errors, errors / calls AS error_rate, latency_mean, {qcols}
        FROM (SELECT w, caller, callee, count(*)::DOUBLE AS calls, count_if(err)::DOUBLE AS errors,
                     {favg("ms")} AS latency_mean, quantile_cont(ms, [{qs}]) AS qv
              FROM edge_calls GROUP BY ALL)""")
