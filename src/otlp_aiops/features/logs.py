"""Log-content features and the count-mix shift they share with span operations.

A ``return`` or ``exception`` fault changes *which* log lines a service writes (a line that always
followed another one vanishes, an exception's lines appear) more than how many. Per service and
window, the mix of log keys is scored against the mix in the reference (fault-free) windows:

* a log key is the code location a line names (``Class#line``, the pattern of Java/Python logging
  layouts such as logback's ``%logger#%line``), else the line's Drain template (He et al., ICWS 2017;
  numbers masked first, Drain fitted on every distinct masked body of the dataset);
* ``content_counts(w, service, source, key, is_error, n)`` holds the counts (``source`` = ``log`` or
  ``op``, the span names of :func:`otlp_aiops.features.traces.operation_counts`);
* :func:`content_shift_features` compares each window with the reference: expected count of key k in
  window w of service s ``E = p_ref(k | s) · N(w, s)`` (the key's share of the service's reference
  count, times the service's count in the window — so a change of load alone shifts nothing), and
  Poisson z-scores of the observed count O against E.

Logs that carry a ``trace_id`` are also joined to the traces (:func:`trace_log_counts`): per
(trace, service) the error-level lines and the lines with keys unseen in the reference.
"""

from __future__ import annotations

import duckdb
import numpy as np
import pyarrow as pa

from otlp_aiops.features.drain import Drain
from otlp_aiops.features.tables import MASK_REGEX, SEVERITY_EXPR, _win, fsum

# a code location: dotted identifier, '#', line number (logback %logger{n}#%line, python module#lineno)
CODE_LOCATION_REGEX = r"[A-Za-z_$][A-Za-z0-9_$]*(\.[A-Za-z_$][A-Za-z0-9_$]*)*#[0-9]+"
MIX_SOURCES = {"log": "log.mix", "op": "span.op_mix"}


def create_content_counts(con: duckdb.DuckDBPyConnection) -> None:
    con.sql("""CREATE OR REPLACE TEMP TABLE content_counts
               (w BIGINT, service VARCHAR, source VARCHAR, key VARCHAR, is_error BOOLEAN, n DOUBLE)""")


def log_content_counts(con: duckdb.DuckDBPyConnection, w_ns: int, drain: Drain) -> int:
    """Log keys per (window, service) into ``content_counts`` (source ``log``), and ``log_keys_map``
    (trace hash, service, key, is_error) rows for the trace join. Returns the number of keys."""
    con.sql(f"""
        CREATE OR REPLACE TEMP TABLE log_lines AS
        SELECT {_win("coalesce(time, observed_time)", w_ns)} AS w, service_name AS service,
               CASE WHEN trace_id IS NULL THEN NULL ELSE hash(trace_id) END AS trace,
               CASE WHEN trace_id IS NULL OR span_id IS NULL THEN NULL ELSE hash(trace_id, span_id) END AS sk,
               {SEVERITY_EXPR} IN ('error', 'fatal') AS is_error,
               regexp_extract(coalesce(body, ''), '{CODE_LOCATION_REGEX}', 0) AS loc,
               regexp_replace(coalesce(body, ''), '{MASK_REGEX}', '<*>', 'g') AS masked
        FROM logs WHERE coalesce(time, observed_time) IS NOT NULL AND service_name IS NOT NULL""")
    rows = con.sql(
        "SELECT masked, count(*) FROM log_lines WHERE loc = '' GROUP BY masked ORDER BY masked"
    ).fetchall()
    drain.fit((m, int(n)) for m, n in rows)
    keys = []
    for m, _ in rows:
        g = drain.match(m)
        keys.append(f"tpl{g.id}" if g is not None else "tpl?")
    con.register(
        "_log_tpl",
        pa.table({"masked": pa.array([m for m, _ in rows], pa.string()), "tpl": pa.array(keys, pa.string())}),
    )
    con.sql("""
        CREATE OR REPLACE TEMP TABLE log_keyed AS
        SELECT l.w, l.service, l.trace, l.sk, l.is_error,
               CASE WHEN l.loc <> '' THEN l.loc ELSE t.tpl END AS key
        FROM log_lines AS l LEFT JOIN _log_tpl AS t ON l.loc = '' AND t.masked = l.masked""")
    con.sql("""
        INSERT INTO content_counts
        SELECT w, service, 'log', key, bool_or(is_error), count(*)::DOUBLE FROM log_keyed
        GROUP BY w, service, key""")
    return int(con.sql("SELECT count(DISTINCT (service, key)) FROM log_keyed").fetchall()[0][0])


def content_reference(con: duckdb.DuckDBPyConnection, windows: np.ndarray) -> None:
    """``content_ref``: per (service, source, key) the reference count ``ref_n`` and the service's total
    ``ref_total`` over the reference ``windows`` (window starts, ns)."""
    con.register("_content_ref_w", pa.table({"w": pa.array(np.asarray(windows, np.int64), pa.int64())}))
    con.sql("""
        CREATE OR REPLACE TEMP TABLE content_ref AS
        WITH r AS (SELECT service, source, key, sum(n) AS ref_n FROM content_counts
                   JOIN _content_ref_w USING (w) GROUP BY ALL)
        SELECT *, sum(ref_n) OVER (PARTITION BY service, source) AS ref_total FROM r""")


def content_shift_features(con: duckdb.DuckDBPyConnection) -> None:
    """Per (window, service) and source (``log.mix_*`` for log keys, ``span.op_mix_*`` for span names)
    into ``sw_long``, with ``E = p_ref · N`` and ``z = (O - E) / sqrt(E + 1)`` per key:

    * ``_drop``: max over the reference keys of ``-z`` (≥ 0) — a usual line (call) that vanished;
    * ``_rise``: max over the reference keys of ``z`` (≥ 0);
    * ``_unseen``: count of lines (spans) whose key the reference never had, ``log.mix_unseen_error``
      of those at error level;
    * ``_shift``: total-variation distance ``½ Σ_k |O/N − p_ref|`` between the window's mix and the
      reference's (0 = same mix, 1 = disjoint).

    A service without reference counts of a source gets no ``_drop``/``_rise``/``_shift`` of it (its
    lines are all ``_unseen``)."""
    tv = fsum('abs(o / "N" - p)')  # a fixed summation order: the same bytes whatever the threads
    con.sql(f"""
        CREATE OR REPLACE TEMP TABLE content_scored AS
        WITH tot AS (SELECT w, service, source, sum(n) AS "N" FROM content_counts GROUP BY ALL),
        grid AS (  -- every reference key in every window with data of that service & source
            SELECT t.w, t.service, t.source, f.key, t."N", f.ref_n / f.ref_total AS p
            FROM tot AS t JOIN content_ref AS f USING (service, source)),
        o AS (SELECT g.*, coalesce(c.n, 0) AS o FROM grid AS g
              LEFT JOIN content_counts AS c USING (w, service, source, key))
        SELECT w, service, source, max(-(o - p * "N") / sqrt(p * "N" + 1)) AS drop_z,
               max((o - p * "N") / sqrt(p * "N" + 1)) AS rise_z,
               {tv} AS tv_known
        FROM o GROUP BY ALL""")
    parts = []
    for src, prefix in MIX_SOURCES.items():
        parts += [
            f"SELECT w, service, '{prefix}_drop', greatest(drop_z, 0) FROM content_scored "
            f"WHERE source = '{src}'",
            f"SELECT w, service, '{prefix}_rise', greatest(rise_z, 0) FROM content_scored "
            f"WHERE source = '{src}'",
        ]
    con.sql("INSERT INTO sw_long " + " UNION ALL ".join(parts))
    # unseen counts and the total variation distance (known part + the unseen share)
    con.sql("""
        INSERT INTO sw_long
        WITH u AS (
            SELECT c.w, c.service, c.source, sum(c.n) AS "N",
                   sum(c.n) FILTER (WHERE f.key IS NULL) AS unseen,
                   sum(c.n) FILTER (WHERE f.key IS NULL AND c.is_error) AS unseen_err,
                   bool_or(f.key IS NOT NULL) OR any_value(hr.service) IS NOT NULL AS has_ref
            FROM content_counts AS c LEFT JOIN content_ref AS f USING (service, source, key)
            LEFT JOIN (SELECT DISTINCT service, source FROM content_ref) AS hr USING (service, source)
            GROUP BY ALL),
        names AS (SELECT 'log' AS source, 'log.mix' AS prefix UNION ALL SELECT 'op', 'span.op_mix')
        SELECT u.w, u.service, n.prefix || '_unseen', coalesce(u.unseen, 0)
        FROM u JOIN names AS n USING (source)
        UNION ALL
        SELECT w, service, 'log.mix_unseen_error', coalesce(unseen_err, 0) FROM u WHERE source = 'log'
        UNION ALL
        SELECT u.w, u.service, n.prefix || '_shift', 0.5 * (s.tv_known + coalesce(u.unseen, 0) / u."N")
        FROM u JOIN names AS n USING (source) JOIN content_scored AS s USING (w, service, source)""")


def trace_log_counts(con: duckdb.DuckDBPyConnection) -> None:
    """Adds ``log_errors`` and ``log_unseen`` to ``trace_services``: per (trace, service), the
    service's error-level log lines in that trace and its lines with keys unseen in the reference
    (logs joined to spans through the hash of ``trace_id``)."""
    con.sql("""
        CREATE OR REPLACE TEMP TABLE _trace_logs AS
        SELECT l.trace, l.service, count_if(l.is_error)::INTEGER AS log_errors,
               count_if(f.key IS NULL)::INTEGER AS log_unseen
        FROM log_keyed AS l LEFT JOIN (SELECT service, key FROM content_ref WHERE source = 'log') AS f
             USING (service, key)
        WHERE l.trace IS NOT NULL GROUP BY ALL""")
    con.sql("""
        CREATE OR REPLACE TEMP TABLE trace_services AS
        SELECT t.*, coalesce(l.log_errors, 0) AS log_errors, coalesce(l.log_unseen, 0) AS log_unseen
        FROM trace_services AS t LEFT JOIN _trace_logs AS l USING (trace, service)""")


def reference_windows(
    ws: np.ndarray,
    fault_free: np.ndarray,
    w_ns: int,
    recordings: list[tuple[int, int]],
    choice: str,
    min_windows: int = 1,
) -> tuple[np.ndarray, str]:
    """The reference windows of the content features among the windows ``ws`` with content: the
    fault-free ones (``fault_free`` mask over ``ws``: no incident within the margin) inside a declared
    fault-free recording ([start, end) in ns) when ``choice`` is ``recording``, or ``auto`` and the
    recordings hold at least ``min_windows`` such windows (a recording of a minute or two does not show
    every request type of a service); else every fault-free window. A recording's windows must also be
    fault-free: a border window can hold an incident's data (Nezha's minute files overlap). Returns the
    windows and the rule that chose them."""
    if choice in ("auto", "recording") and recordings:
        inside = np.zeros(len(ws), bool)
        for a, b in recordings:
            inside |= (ws >= (a // w_ns) * w_ns) & (ws < b)
        inside &= fault_free
        if inside.sum() >= (min_windows if choice == "auto" else 1):
            return ws[inside], "recording"
        if choice == "recording":
            return ws[:0], "recording (no fault-free window with data)"
        n_inside = int(inside.sum())
        return ws[fault_free], f"fault_free (the recording holds {n_inside} fault-free window(s) with data)"
    return ws[fault_free], "fault_free"


def declared_recordings(meta: dict) -> list[tuple[int, int]]:
    """``dataset.json`` ``fault_free``: [{start, end}, ...] (ISO-8601 UTC) as ns intervals."""
    out = []
    for r in meta.get("fault_free") or []:
        if isinstance(r, dict) and isinstance(r.get("start"), str) and isinstance(r.get("end"), str):
            a = np.datetime64(r["start"].rstrip("Z"), "ns").astype(np.int64)
            b = np.datetime64(r["end"].rstrip("Z"), "ns").astype(np.int64)
            out.append((int(a), int(b)))
    return out


def pattern_counts(con: duckdb.DuckDBPyConnection) -> None:
    """``pattern_counts(w, service, operation, kind, item, n)`` and ``pattern_parents(w, service,
    operation, n)``: within each span of an operation, which log keys it wrote (``kind`` = ``log``, the
    log joined to its span by trace and span id) and which child spans it started (``kind`` = ``span``,
    item ``<service>:<operation>`` of the child, in the same or another service) — the span-to-event
    pairs that Nezha (Yu et al., FSE 2023) mines as patterns. Window = the span's start."""
    con.sql("""
        CREATE OR REPLACE TEMP TABLE pattern_parents AS
        SELECT w, service, operation, count(*)::DOUBLE AS n FROM tspans GROUP BY ALL""")
    con.sql("""
        CREATE OR REPLACE TEMP TABLE pattern_counts AS
        SELECT s.w, s.service, s.operation, 'log' AS kind, l.key AS item, count(*)::DOUBLE AS n
        FROM log_keyed AS l JOIN tspans AS s ON s.k = l.sk AND s.service = l.service
        WHERE l.sk IS NOT NULL GROUP BY ALL
        UNION ALL
        SELECT p.w, p.service, p.operation, 'span', c.service || ':' || c.operation, count(*)::DOUBLE
        FROM tspans AS c JOIN tspans AS p ON p.k = c.pk GROUP BY ALL""")


def pattern_features(con: duckdb.DuckDBPyConnection, windows: np.ndarray) -> None:
    """Per (window, service) into ``sw_long``, for the span-to-log-key (``log.pattern_*``) and
    span-to-child-span (``span.pattern_*``) pairs of :func:`pattern_counts`, against the reference
    ``windows``: the rate of item i per span of operation o, ``rate = Σ_ref n(o, i) / Σ_ref n(o)``;
    in window w, ``E = n_w(o) · rate`` and ``z = (O − E) / sqrt(E + 1)``:

    * ``_drop``: max over the reference pairs of ``-z`` (≥ 0) — a line or call that every span of an
      operation used to produce and no longer does (a ``return`` fault, an exception cutting a
      handler short);
    * ``_rise``: max of ``z`` (≥ 0);
    * ``_unseen``: count of pairs the reference never had for a known operation.

    Unlike the mix features, a change of the request mix does not move these: the expectation follows
    the count of each operation."""
    con.register("_pattern_ref_w", pa.table({"w": pa.array(np.asarray(windows, np.int64), pa.int64())}))
    con.sql("""
        CREATE OR REPLACE TEMP TABLE pattern_ref AS
        WITH par AS (SELECT service, operation, sum(n) AS n_op FROM pattern_parents
                     JOIN _pattern_ref_w USING (w) GROUP BY ALL),
        it AS (SELECT service, operation, kind, item, sum(n) AS n_it FROM pattern_counts
               JOIN _pattern_ref_w USING (w) GROUP BY ALL)
        SELECT it.service, it.operation, it.kind, it.item, it.n_it / par.n_op AS rate
        FROM it JOIN par USING (service, operation)""")
    con.sql("""
        CREATE OR REPLACE TEMP TABLE pattern_scored AS
        WITH e AS (
            SELECT p.w, p.service, r.kind, r.operation, r.item, p.n * r.rate AS e
            FROM pattern_parents AS p JOIN pattern_ref AS r USING (service, operation)),
        o AS (SELECT e.*, coalesce(c.n, 0) AS o, (e - coalesce(c.n, 0)) / sqrt(e + 1) AS dz FROM e
              LEFT JOIN pattern_counts AS c USING (w, service, operation, kind, item)),
        -- each pair's own normal extreme: its largest drop z over the reference windows
        pk AS (SELECT service, operation, kind, item, greatest(max(dz), 0) AS ref_peak
               FROM o JOIN _pattern_ref_w USING (w) GROUP BY ALL)
        SELECT w, service, kind, greatest(max(dz), 0) AS drop_z,
               greatest(max(-dz), 0) AS rise_z,
               greatest(max(dz / (1 + coalesce(pk.ref_peak, 0))), 0) AS drop_rel
        FROM o LEFT JOIN pk USING (service, operation, kind, item) GROUP BY ALL""")
    con.sql("""
        INSERT INTO sw_long
        SELECT w, service, kind || '.pattern_drop', drop_z FROM pattern_scored
        UNION ALL SELECT w, service, kind || '.pattern_drop_rel', drop_rel FROM pattern_scored
        UNION ALL SELECT w, service, kind || '.pattern_rise', rise_z FROM pattern_scored
        UNION ALL
        SELECT c.w, c.service, c.kind || '.pattern_unseen', sum(c.n)
        FROM pattern_counts AS c
        JOIN (SELECT DISTINCT service, operation FROM pattern_ref) AS k USING (service, operation)
        LEFT JOIN pattern_ref AS r USING (service, operation, kind, item)
        WHERE r.item IS NULL GROUP BY ALL""")
