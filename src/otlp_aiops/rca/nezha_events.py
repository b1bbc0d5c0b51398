"""Nezha's event graphs, built from the ingest tables (``data/interim/<dataset>/``), vectorised.

Yu et al., "Nezha: Interpretable Fine-Grained Root Causes Analysis for Microservices on Multi-Modal
Observability Data", ESEC/FSE 2023, §3.1–3.2: every span contributes a *start* and an *end* event
(``<service> <operation> start|end``), every log record joined to a span by its span id an event (its
template), and a metric alarm of the span's service an event right after the span's start; inside a
span the events are ordered by time and chained; a child span hangs off its parent — off the
parent's first event when the parent runs in another instance, else off the parent's last event at
or before the child's start (when the parent has a later event). A *pattern* is an edge (event pair),
its *support* the number of times it occurs over the traces of a phase.

Here every event key carries its service (``<service> <template>``), so a pattern maps to a service
without a search through the fault-free graphs; the *depth* of an event (the tie-breaker of the
ranking) is the number of span starts above it: L for an event inside a span at level L (roots are
level 1), L - 1 for the span's own start event.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

# a code location such as "c.s.ContactsServiceImpl#31" (logback's %logger#%line): where present it is
# the log template, as Nezha reduces Train Ticket logs
_CODE_LOCATION = re.compile(r"(?:^|\s)([A-Za-z_$][\w$.]*#\d+)(?=\s|$)")
_MASK = re.compile(r"\S*\d\S*")
_ORDER_START, _ORDER_LOG, _ORDER_ALARM, _ORDER_END = 0, 1, 1, 2


def _files(folder: Path) -> list[Path]:
    return sorted(folder.rglob("*.parquet")) if folder.is_dir() else []


@dataclass
class Telemetry:
    """The spans and span-linked logs of a dataset, trace starts and log templates resolved.

    ``spans``: tid, sid, pid, svc, inst, op, t0, t1 (ns), trace_t0 (ns: the trace's first span start);
    ``logs``: tid, sid, t (ns), tmpl — only records with a span id whose span is in ``spans``.
    """

    spans: pl.DataFrame
    logs: pl.DataFrame

    @property
    def empty(self) -> bool:
        return self.spans.height == 0


def load_telemetry(
    interim: Path,
    reference_windows: np.ndarray,
    window_ns: int,
    *,
    code_location: bool = True,
    drain_similarity: float = 0.4,
) -> Telemetry:
    """Read spans and logs of the ingest folder ``interim``; log templates are Drain groups fitted on
    the logs of traces that start in ``reference_windows`` (window starts, ns), or a code location."""
    span_files = _files(interim / "spans")
    if not span_files:
        return Telemetry(_empty_spans(), _empty_logs())
    spans = (
        pl.scan_parquet(span_files)
        .select(
            tid=pl.col("trace_id"),
            sid=pl.col("span_id"),
            pid=pl.col("parent_span_id"),
            svc=pl.col("service_name").fill_null("unknown"),
            inst=pl.coalesce("k8s_pod_name", "service_instance_id", "service_name").fill_null("unknown"),
            op=pl.col("name"),
            t0=pl.col("start_time").dt.epoch("ns"),
            t1=pl.col("end_time").dt.epoch("ns"),
        )
        .filter(pl.col("tid").is_not_null() & pl.col("sid").is_not_null() & pl.col("t0").is_not_null())
        .with_columns(t1=pl.max_horizontal("t0", pl.col("t1").fill_null(pl.col("t0"))))
        .unique(subset=["tid", "sid"], keep="first", maintain_order=True)
        .with_columns(trace_t0=pl.col("t0").min().over("tid"))
        .collect()
    )
    log_files = _files(interim / "logs")
    if not log_files:
        return Telemetry(spans, _empty_logs())
    logs = (
        pl.scan_parquet(log_files)
        .select(
            tid=pl.col("trace_id"),
            sid=pl.col("span_id"),
            t=pl.col("time").dt.epoch("ns"),
            body=pl.col("body").fill_null(""),
        )
        .filter(pl.col("sid").is_not_null() & pl.col("t").is_not_null())
        .collect()
        .join(spans.select("tid", "sid", "trace_t0"), on=["tid", "sid"], how="inner")
    )
    logs = logs.with_columns(
        tmpl=_templates(logs, reference_windows, window_ns, code_location, drain_similarity)
    )
    return Telemetry(spans, logs.select("tid", "sid", "t", "tmpl"))


def _templates(
    logs: pl.DataFrame, ref_windows: np.ndarray, window_ns: int, code_location: bool, similarity: float
) -> pl.Series:
    from otlp_aiops.features.drain import Drain

    bodies = logs["body"].to_list()
    keys: list[str | None] = [None] * len(bodies)
    if code_location:
        for i, b in enumerate(bodies):
            m = _CODE_LOCATION.search(b)
            if m:
                keys[i] = m.group(1)
    rest = [i for i, k in enumerate(keys) if k is None]
    if rest:
        masked = [" ".join(_MASK.sub("<*>", bodies[i]).split())[:300] for i in rest]
        ref = set(int(w) for w in ref_windows)
        win = (logs["trace_t0"].to_numpy() // window_ns) * window_ns
        fit: dict[str, int] = {}
        for i, m in zip(rest, masked, strict=True):
            if int(win[i]) in ref:
                fit[m] = fit.get(m, 0) + 1
        drain = Drain(4, similarity, 100).fit(sorted(fit.items()))
        cache: dict[str, str] = {}
        for i, m in zip(rest, masked, strict=True):
            if m not in cache:
                g = drain.match(m)
                cache[m] = g.text if g is not None else m
            keys[i] = cache[m]
    return pl.Series("tmpl", keys, dtype=pl.String)


def _empty_spans() -> pl.DataFrame:
    return pl.DataFrame(
        schema={
            "tid": pl.Binary,
            "sid": pl.Binary,
            "pid": pl.Binary,
            "svc": pl.String,
            "inst": pl.String,
            "op": pl.String,
            "t0": pl.Int64,
            "t1": pl.Int64,
            "trace_t0": pl.Int64,
        }
    )


def _empty_logs() -> pl.DataFrame:
    return pl.DataFrame(schema={"tid": pl.Binary, "sid": pl.Binary, "t": pl.Int64, "tmpl": pl.String})


def traces_between(tel: Telemetry, lo_ns: int, hi_ns: int) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Spans and logs of the traces whose first span starts in ``[lo_ns, hi_ns)`` (whole traces)."""
    spans = tel.spans.filter((pl.col("trace_t0") >= lo_ns) & (pl.col("trace_t0") < hi_ns))
    tids = spans.select("tid").unique()
    logs = tel.logs.join(tids, on="tid", how="semi") if tel.logs.height else tel.logs
    return spans, logs


def alarm_event(service: str, metric: str) -> str:
    return f"{service} alarm {metric}"


def event_edges(
    spans: pl.DataFrame, logs: pl.DataFrame, alarms: Mapping[str, tuple[str, ...]] | None = None
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The event graphs of the given traces as one edge list and one event list.

    Returns ``edges`` (tid, a, b, a_svc): one row per edge occurrence, and ``events`` (ev, svc, depth,
    tid): one row per event occurrence. ``alarms`` maps a service to the metric alarms its spans carry.
    """
    if spans.height == 0:
        return (
            pl.DataFrame(schema={"tid": pl.Binary, "a": pl.String, "b": pl.String, "a_svc": pl.String}),
            pl.DataFrame(schema={"ev": pl.String, "svc": pl.String, "depth": pl.Int64, "tid": pl.Binary}),
        )
    spans = spans.with_columns(level=_levels(spans))
    base = spans.select("tid", "sid", "svc", "inst", "level")
    start = spans.select(
        "tid",
        "sid",
        ts=pl.col("t0"),
        order=pl.lit(_ORDER_START),
        ev=pl.concat_str("svc", pl.lit(" "), "op", pl.lit(" start")),
    )
    parts = [start]
    end_ts = pl.col("t1")
    if logs.height:
        lg = logs.join(base.select("tid", "sid", "svc"), on=["tid", "sid"], how="inner")
        parts.append(
            lg.select(
                "tid",
                "sid",
                ts=pl.col("t"),
                order=pl.lit(_ORDER_LOG),
                ev=pl.concat_str("svc", pl.lit(" "), "tmpl"),
            )
        )
        last_log = lg.group_by("tid", "sid").agg(last=pl.col("t").max())
        spans = spans.join(last_log, on=["tid", "sid"], how="left")
        # a log after the span's end moves the end event after it (Nezha: end = last log + 1)
        end_ts = (
            pl.when(pl.col("last").is_not_null() & (pl.col("last") > pl.col("t1")))
            .then(pl.col("last") + 1)
            .otherwise(pl.col("t1"))
        )
    if alarms:
        rows = [(svc, k, m) for svc, ms in alarms.items() for k, m in enumerate(ms)]
        al = pl.DataFrame(
            {"svc": [r[0] for r in rows], "k": [r[1] for r in rows], "metric": [r[2] for r in rows]},
            schema={"svc": pl.String, "k": pl.Int64, "metric": pl.String},
        )
        a = spans.join(al, on="svc", how="inner")
        if a.height:
            parts.append(
                a.select(
                    "tid",
                    "sid",
                    ts=pl.col("t0") + 1 + pl.col("k"),
                    order=pl.lit(_ORDER_ALARM),
                    ev=pl.concat_str("svc", pl.lit(" alarm "), "metric"),
                )
            )
    parts.append(
        spans.select(
            "tid",
            "sid",
            ts=end_ts,
            order=pl.lit(_ORDER_END),
            ev=pl.concat_str("svc", pl.lit(" "), "op", pl.lit(" end")),
        )
    )
    ev = (
        pl.concat([p.with_columns(pl.col("order").cast(pl.Int8), pl.col("ts").cast(pl.Int64)) for p in parts])
        .join(base, on=["tid", "sid"], how="left")
        .sort("tid", "sid", "ts", "order", "ev")
        .with_columns(k=pl.int_range(pl.len()).over("tid", "sid"))
    )
    ev = ev.with_columns(depth=pl.when(pl.col("k") == 0).then(pl.col("level") - 1).otherwise(pl.col("level")))
    # inside a span: consecutive events
    inner = (
        ev.with_columns(a=pl.col("ev").shift(1).over("tid", "sid"), a_svc=pl.col("svc"))
        .filter(pl.col("k") > 0)
        .select("tid", "a", b=pl.col("ev"), a_svc="a_svc")
    )
    # parent -> child
    first = ev.filter(pl.col("k") == 0).select("tid", "sid", ts0="ts", ev0="ev")
    kids = (
        spans.select("tid", "sid", "pid", "inst")
        .filter(pl.col("pid").is_not_null())
        .join(first, on=["tid", "sid"], how="inner")
        .join(spans.select("tid", pid="sid", pinst="inst"), on=["tid", "pid"], how="inner")
    )
    pfirst = first.select("tid", pid="sid", pev0="ev0")
    remote = kids.filter(pl.col("inst") != pl.col("pinst")).join(pfirst, on=["tid", "pid"], how="inner")
    cross = remote.join(base.select("tid", pid="sid", a_svc="svc"), on=["tid", "pid"], how="left").select(
        "tid", a="pev0", b="ev0", a_svc="a_svc"
    )
    local = kids.filter(pl.col("inst") == pl.col("pinst"))
    same = pl.DataFrame(schema={"tid": pl.Binary, "a": pl.String, "b": pl.String, "a_svc": pl.String})
    if local.height:
        pev = ev.select("tid", pid="sid", pts="ts", pk="k", pev="ev", psvc="svc")
        last_ts = pev.group_by("tid", "pid").agg(pmax=pl.col("pts").max())
        loc = local.join(last_ts, on=["tid", "pid"], how="inner").filter(pl.col("pmax") > pl.col("ts0"))
        # the parent's last event at or before the child's first one; its first event when none is
        cand = (
            loc.select("tid", "sid", "pid", "ts0", "ev0")
            .join(pev, on=["tid", "pid"], how="inner")
            .with_columns(ok=(pl.col("pts") <= pl.col("ts0")) | (pl.col("pk") == 0))
            .filter(pl.col("ok"))
            .with_columns(key=pl.when(pl.col("pts") <= pl.col("ts0")).then(pl.col("pk")).otherwise(-1))
            .sort("key")
            .group_by("tid", "sid", maintain_order=True)
            .last()
        )
        same = cand.select("tid", a="pev", b="ev0", a_svc="psvc")
    edges = pl.concat([inner, cross, same])
    return edges, ev.select("ev", "svc", "depth", "tid")


def _levels(spans: pl.DataFrame) -> pl.Series:
    """Depth of every span in its trace: 1 for a span whose parent is absent (a root), parent + 1."""
    keyed = spans.select("tid", "sid", "pid").with_row_index("i")
    parent = keyed.join(keyed.select("tid", pid="sid", j="i"), on=["tid", "pid"], how="left").sort("i")
    par = parent["j"].to_numpy()
    par = np.where(parent["j"].is_null().to_numpy(), -1, par).astype(np.int64)
    level = np.ones(len(par), np.int64)
    cur = par.copy()
    for _ in range(64):  # deeper traces than this are clipped (a cycle in bad data also stops here)
        has = cur >= 0
        if not has.any():
            break
        level[has] += 1
        cur = np.where(has, par[np.maximum(cur, 0)], -1)
    return pl.Series("level", level)


def pattern_counts(edges: pl.DataFrame) -> pl.DataFrame:
    """Support of every pattern: (a, b, a_svc, n)."""
    return edges.group_by("a", "b", "a_svc").agg(n=pl.len())
