"""The Nezha layout (IntelligentDDS/Nezha: Train Ticket and Online Boutique days) -> raw OTLP dataset.

Source folder: ``rca_data/<date>/{trace,log,metric}/`` with ``<date>-fault_list.json``, optionally
``construct_data/<date>/`` (fault-free telemetry of the same system) and
``construct_data/root_cause_ts.json`` or, for Online Boutique, ``root_cause_hipster.json``
(fine-grained root-cause indicators).

Trace CSVs become spans (service = pod name without its two hash suffixes), log CSVs become log
records (the container JSON line unwrapped, trace and span ids kept), pod metric CSVs and
``front_service.csv`` become gauges. Minute files overlap in time (a span can sit in two files), so
exact duplicate rows are dropped once and counted.
"""

from __future__ import annotations

import json
import logging
import re
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa
from opentelemetry.proto.logs.v1 import logs_pb2
from opentelemetry.proto.trace.v1 import trace_pb2

from otlp_aiops.datasets.adapters.common import (
    SEVERITY,
    AdapterError,
    GaugeSeries,
    ImportSummary,
    RawDatasetWriter,
    Rejects,
    SourceCounts,
    gauge_message,
    incidents_table,
    infer_span_kinds,
    metric_kind,
    ns_to_iso,
    read_csv_text,
    resource_pb,
    scope_pb,
    service_from_pod,
    time_overlaps,
)

log = logging.getLogger(__name__)

SOURCE = {
    "repository": "https://github.com/IntelligentDDS/Nezha",
    "commit": "d8140101",
    "paper": "Yu et al., Nezha: Interpretable Fine-Grained Root Causes Analysis for Microservices on "
    "Multi-modal Observability Data, ESEC/FSE 2023",
    "licence": "MIT",
}
SPANS_PER_MESSAGE = 20_000
LOGS_PER_MESSAGE = 20_000

# column -> (OTLP metric name, unit, kind). Units as the Nezha collector writes them in the header.
POD_METRICS: dict[str, tuple[str, str, str]] = {
    "CpuUsage(m)": ("pod.cpu.usage", "m{cpu}", "cpu"),
    "CpuUsageRate(%)": ("pod.cpu.utilization", "%", "cpu"),
    "MemoryUsage(Mi)": ("pod.memory.usage", "MiBy", "memory"),
    "MemoryUsageRate(%)": ("pod.memory.utilization", "%", "memory"),
    "SyscallRead": ("pod.syscall.read", "{call}", "other"),
    "SyscallWrite": ("pod.syscall.write", "{call}", "other"),
    "NetworkReceiveBytes": ("pod.network.receive", "By", "traffic"),
    "NetworkTransmitBytes": ("pod.network.transmit", "By", "traffic"),
    "PodClientLatencyP90(s)": ("pod.client.latency.p90", "s", "latency"),
    "PodServerLatencyP90(s)": ("pod.server.latency.p90", "s", "latency"),
    "PodClientLatencyP95(s)": ("pod.client.latency.p95", "s", "latency"),
    "PodServerLatencyP95(s)": ("pod.server.latency.p95", "s", "latency"),
    "PodClientLatencyP99(s)": ("pod.client.latency.p99", "s", "latency"),
    "PodServerLatencyP99(s)": ("pod.server.latency.p99", "s", "latency"),
    "PodWorkload(Ops)": ("pod.workload", "{op}", "traffic"),
    "PodSuccessRate(%)": ("pod.success.rate", "%", "errors"),
    "NodeCpuUsageRate(%)": ("node.cpu.utilization", "%", "cpu"),
    "NodeMemoryUsageRate(%)": ("node.memory.utilization", "%", "memory"),
    "NodeNetworkReceiveBytes": ("node.network.receive", "By", "traffic"),
}
FRONT_METRICS: dict[str, tuple[str, str, str]] = {
    "SuccessRate(%)": ("frontend.success.rate", "%", "errors"),
    "LatencyP50(s)": ("frontend.latency.p50", "s", "latency"),
    "LatencyP90(s)": ("frontend.latency.p90", "s", "latency"),
    "LatencyP95(s)": ("frontend.latency.p95", "s", "latency"),
    "LatencyP99(s)": ("frontend.latency.p99", "s", "latency"),
}
# The service whose SLO front_service.csv describes: for Train Ticket its latency percentiles equal
# ts-ui-dashboard's PodServerLatency columns row for row (checked on 2023-01-29); Online Boutique's
# entry is `frontend`.
FRONTEND = {"train-ticket": "ts-ui-dashboard", "online-boutique": "frontend"}
_TIME_COLS = ("Time", "TimeStamp", "PodName", "ServiceName")
_HEX32 = r"^[0-9a-fA-F]{32}$"
_HEX16 = r"^[0-9a-fA-F]{16}$"


def _generic_metric(col: str, prefix: str) -> tuple[str, str, str]:
    m = re.match(r"^(.*?)\((.*)\)$", col)
    base, unit = (m.group(1), m.group(2)) if m else (col, "")
    snake = re.sub(r"(?<!^)(?=[A-Z])", "_", base).lower().replace("pod_", "")
    name = f"{prefix}.{snake}"
    return (
        name,
        {"%": "%", "s": "s", "ms": "ms", "Mi": "MiBy", "m": "m{cpu}"}.get(unit, unit),
        metric_kind(name),
    )


class _Pods:
    """The resource of every pod (the same attributes on its spans, logs and metrics)."""

    def __init__(self, namespace: str) -> None:
        self.namespace = namespace
        self.cache: dict[str, Any] = {}

    def attrs(self, pod: str) -> dict[str, Any]:
        return {
            "service.name": service_from_pod(pod),
            "service.namespace": self.namespace,
            "service.instance.id": pod,
            "k8s.pod.name": pod,
        }

    def pb(self, pod: str) -> Any:
        got = self.cache.get(pod)
        if got is None:
            got = self.cache[pod] = resource_pb(self.attrs(pod))
        return got


def _files(folder: Path, pattern: str) -> list[Path]:
    return sorted(folder.glob(pattern)) if folder.is_dir() else []


def _read_many(paths: list[Path], rejects: Rejects, source: str) -> tuple[pl.DataFrame | None, int, int]:
    """All files stacked with ``_file`` / ``_line`` / ``_source``; (frame, rows read, ragged rejects)."""
    frames, read, ragged = [], 0, 0
    for p in paths:
        df, bad = read_csv_text(p, rejects)
        read += df.height + bad
        ragged += bad
        frames.append(df.with_columns(_file=pl.lit(str(p)), _source=pl.lit(source)))
    if not frames:
        return None, 0, 0
    return pl.concat(frames, how="diagonal"), read, ragged


def _reject_frame(df: pl.DataFrame, rejects: Rejects) -> None:
    for f, line, why in df.select("_file", "_line", "_why").iter_rows():
        rejects.add(f, line, why)


def _set_aside(df: pl.DataFrame, why: pl.Expr, rejects: Rejects, counts: SourceCounts) -> pl.DataFrame:
    """Reject the rows for which ``why`` (a reason, or null) is set, count them, return the rest."""
    df = df.with_columns(_why=why)
    bad = df.filter(pl.col("_why").is_not_null())
    _reject_frame(bad, rejects)
    counts.rejected += bad.height
    return df.filter(pl.col("_why").is_null())


def _require(df: pl.DataFrame, cols: list[str], what: str) -> None:
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise AdapterError(f"{what}: missing columns {missing} (is this the Nezha layout?)")


# --------------------------------------------------------------------------------------------------
# traces
# --------------------------------------------------------------------------------------------------


def _convert_traces(
    paths: list[tuple[Path, str]], w: RawDatasetWriter, pods: _Pods, rejects: Rejects
) -> tuple[SourceCounts, dict[str, Any]]:
    counts = SourceCounts(files=len(paths))
    df, read, ragged = _read_many([p for p, s in paths if s == "rca"], rejects, "rca")
    df2, read2, ragged2 = _read_many([p for p, s in paths if s == "construct"], rejects, "construct")
    frames = [d for d in (df, df2) if d is not None]
    counts.read, counts.rejected = read + read2, ragged + ragged2
    info: dict[str, Any] = {}
    if not frames:
        return counts, info
    df = pl.concat(frames, how="diagonal")
    cols = [
        "TraceID",
        "SpanID",
        "ParentID",
        "PodName",
        "OperationName",
        "StartTimeUnixNano",
        "EndTimeUnixNano",
    ]
    _require(df, cols, "trace CSV")
    df = df.with_columns(
        _start=pl.col("StartTimeUnixNano").cast(pl.Int64, strict=False),
        _end=pl.col("EndTimeUnixNano").cast(pl.Int64, strict=False),
    )
    why = (
        pl.when(~pl.col("TraceID").str.contains(_HEX32))
        .then(pl.lit("bad TraceID: not 32 hex digits"))
        .when(~pl.col("SpanID").str.contains(_HEX16))
        .then(pl.lit("bad SpanID: not 16 hex digits"))
        .when((pl.col("ParentID") != "root") & ~pl.col("ParentID").str.contains(_HEX16))
        .then(pl.lit("bad ParentID: neither 'root' nor 16 hex digits"))
        .when(pl.col("_start").is_null() | pl.col("_end").is_null())
        .then(pl.lit("bad time: StartTimeUnixNano/EndTimeUnixNano not an integer"))
        .when(pl.col("_end") < pl.col("_start"))
        .then(pl.lit("bad time: EndTimeUnixNano before StartTimeUnixNano"))
        .when(pl.col("PodName") == "")
        .then(pl.lit("empty PodName"))
        .otherwise(None)
    )
    df = _set_aside(df, why, rejects, counts)
    info["construct_spans"] = [ns_to_iso(v) for v in _range(df.filter(pl.col("_source") == "construct"))]
    n = df.height
    df = df.unique(subset=cols, keep="first", maintain_order=True)
    counts.duplicates = n - df.height
    # the same span id twice with different content: keep the first, reject the others
    dup = df.with_columns(_k=pl.int_range(pl.len()).over("TraceID", "SpanID")).filter(pl.col("_k") > 0)
    if dup.height:
        _reject_frame(
            dup.with_columns(_why=pl.lit("conflicting duplicate: span id seen with other content")), rejects
        )
        counts.rejected += dup.height
        df = df.with_columns(_k=pl.int_range(pl.len()).over("TraceID", "SpanID")).filter(pl.col("_k") == 0)
    # Nezha's traces carry no span kind: infer it from the structure (a span whose parent runs in
    # another pod, or a root, is a SERVER span; a span with a child in another pod is a CLIENT span)
    df, kind = infer_span_kinds(
        df, trace="TraceID", span="SpanID", parent="ParentID", owner="PodName", root="root"
    )
    orphan = (pl.col("ParentID") != "root") & pl.col("_powner").is_null()
    df = df.with_columns(
        _kind=kind,
        _tid=pl.col("TraceID").str.to_lowercase().str.decode("hex"),
        _sid=pl.col("SpanID").str.to_lowercase().str.decode("hex"),
        _pid=pl.when(pl.col("ParentID") == "root")
        .then(None)
        .otherwise(pl.col("ParentID"))
        .str.to_lowercase()
        .str.decode("hex"),
    ).sort("PodName", "_start")
    info["orphan_spans"] = int(df.select(orphan.sum()).item())
    # sorted by key: value_counts comes in hash order, and dataset.json must not change run to run
    info["span_kinds"] = dict(sorted((str(k), v) for k, v in df["_kind"].value_counts().iter_rows()))
    info["by_source"] = dict(sorted((str(k), v) for k, v in df["_source"].value_counts().iter_rows()))
    info["time_range"] = [ns_to_iso(df["_start"].min()), ns_to_iso(df["_end"].max())]
    scope = scope_pb()
    for off in range(0, df.height, SPANS_PER_MESSAGE):
        chunk = df.slice(off, SPANS_PER_MESSAGE)
        td = trace_pb2.TracesData()
        cur = None
        spans = None
        for pod, tid, sid, pid, name, kind, start, end in zip(
            *(
                chunk[c].to_list()
                for c in ("PodName", "_tid", "_sid", "_pid", "OperationName", "_kind", "_start", "_end")
            ),
            strict=True,
        ):
            if pod != cur:
                cur = pod
                rs = td.resource_spans.add()
                rs.resource.CopyFrom(pods.pb(pod))
                ss = rs.scope_spans.add()
                ss.scope.CopyFrom(scope)
                spans = ss.spans
            spans.add(
                trace_id=tid,
                span_id=sid,
                parent_span_id=pid or b"",
                name=name,
                kind=kind,
                start_time_unix_nano=start,
                end_time_unix_nano=end,
            )
        w.add("traces", td, chunk.height)
    counts.converted = df.height
    return counts, info


def _range(df: pl.DataFrame) -> tuple[int | None, int | None]:
    if df.height == 0:
        return None, None
    return df["_start"].min(), df["_end"].max()


# --------------------------------------------------------------------------------------------------
# logs
# --------------------------------------------------------------------------------------------------


def _convert_logs(
    paths: list[tuple[Path, str]], w: RawDatasetWriter, pods: _Pods, rejects: Rejects
) -> tuple[SourceCounts, dict[str, Any]]:
    counts = SourceCounts(files=len(paths))
    frames, info = [], {}
    for source in ("rca", "construct"):
        df, read, ragged = _read_many([p for p, s in paths if s == source], rejects, source)
        counts.read += read
        counts.rejected += ragged
        if df is not None:
            frames.append(df)
    if not frames:
        return counts, info
    df = pl.concat(frames, how="diagonal")
    cols = ["TimeUnixNano", "PodName", "Container", "TraceID", "SpanID", "Log"]
    _require(df, cols, "log CSV")
    t_ns = pl.col("TimeUnixNano").cast(pl.Int64, strict=False)
    t_text = (
        pl.col("Timestamp")
        .str.strip_suffix("Z")
        .str.to_datetime("%Y-%m-%dT%H:%M:%S%.f", time_unit="ns", strict=False)
        if "Timestamp" in df.columns
        else pl.lit(None, dtype=pl.Datetime("ns"))
    )
    # some ERROR records carry Go's zero time (-6795364578871345152) in TimeUnixNano but a valid
    # Timestamp text (UTC, millisecond precision): take the time from the text for those
    df = df.with_columns(_fix=t_ns.is_null() | (t_ns <= 0)).with_columns(
        _t=pl.when(pl.col("_fix")).then(t_text.dt.epoch("ns")).otherwise(t_ns),
        _body=pl.col("Log").str.json_path_match("$.log"),
        _stream=pl.col("Log").str.json_path_match("$.stream"),
    )
    ids_ok = (pl.col("TraceID") == "") | pl.col("TraceID").str.contains(_HEX32)
    sids_ok = (pl.col("SpanID") == "") | pl.col("SpanID").str.contains(_HEX16)
    why = (
        pl.when(pl.col("_t").is_null())
        .then(pl.lit("bad time: TimeUnixNano not a positive integer and Timestamp not a time"))
        .when(pl.col("_body").is_null())
        .then(pl.lit("bad Log: not a container JSON line with a 'log' field"))
        .when(~ids_ok | ~sids_ok)
        .then(pl.lit("bad TraceID/SpanID: not hex"))
        .when(pl.col("PodName") == "")
        .then(pl.lit("empty PodName"))
        .otherwise(None)
    )
    df = _set_aside(df, why, rejects, counts)
    n = df.height
    keep = [c for c in df.columns if not c.startswith("_")]
    df = df.unique(subset=keep, keep="first", maintain_order=True)
    counts.duplicates = n - df.height
    info["time_from_timestamp_text"] = int(df["_fix"].sum())
    # Online Boutique's services log a JSON object ({"message": …, "severity": "info", …}): its message
    # is the body and its severity the level; Train Ticket's logback lines ("16:42:22.382 INFO …") give
    # the level as their second word
    body = pl.col("_body").str.strip_chars_end("\n")
    is_object = body.str.starts_with("{")
    message = pl.when(is_object).then(body.str.json_path_match("$.message"))
    severity = pl.when(is_object).then(
        pl.coalesce(body.str.json_path_match("$.severity"), body.str.json_path_match("$.level"))
    )
    level = pl.coalesce(severity.str.to_uppercase(), pl.col("_body").str.extract(r"^\S+\s+([A-Z]+)\b", 1))
    df = df.with_columns(
        _body=pl.coalesce(message, body),
        _level=level.fill_null(""),
        _sev=level.replace_strict(SEVERITY, default=0, return_dtype=pl.Int32),
        _tid=pl.when(pl.col("TraceID") == "")
        .then(None)
        .otherwise(pl.col("TraceID"))
        .str.to_lowercase()
        .str.decode("hex"),
        _sid=pl.when(pl.col("SpanID") == "")
        .then(None)
        .otherwise(pl.col("SpanID"))
        .str.to_lowercase()
        .str.decode("hex"),
        _node=pl.col("Node") if "Node" in df.columns else pl.lit(""),
    ).sort("PodName", "_t")
    info["severity"] = dict(sorted((str(k), v) for k, v in df["_level"].value_counts().iter_rows()))
    scope = scope_pb()
    for off in range(0, df.height, LOGS_PER_MESSAGE):
        chunk = df.slice(off, LOGS_PER_MESSAGE)
        ld = logs_pb2.LogsData()
        cur = None
        records = None
        for pod, t, body, lvl, sev, tid, sid, stream, container, node in zip(
            *(
                chunk[c].to_list()
                for c in (
                    "PodName",
                    "_t",
                    "_body",
                    "_level",
                    "_sev",
                    "_tid",
                    "_sid",
                    "_stream",
                    "Container",
                    "_node",
                )
            ),
            strict=True,
        ):
            if pod != cur:
                cur = pod
                rl = ld.resource_logs.add()
                rl.resource.CopyFrom(pods.pb(pod))
                sl = rl.scope_logs.add()
                sl.scope.CopyFrom(scope)
                records = sl.log_records
            r = records.add(
                time_unix_nano=t, observed_time_unix_nano=t, severity_number=sev, severity_text=lvl
            )
            r.body.string_value = body
            if tid:
                r.trace_id = tid
            if sid:
                r.span_id = sid
            attrs = r.attributes
            if stream:
                attrs.add(key="log.iostream").value.string_value = stream
            if container:
                attrs.add(key="k8s.container.name").value.string_value = container
            if node:
                attrs.add(key="k8s.node.ip").value.string_value = node
        w.add("logs", ld, chunk.height)
    counts.converted = df.height
    return counts, info


# --------------------------------------------------------------------------------------------------
# metrics
# --------------------------------------------------------------------------------------------------


# a `Time` cell as the metric exporter writes it: Go's time.String() in UTC,
# "2022-08-22 03:51:19.607158889 +0000 UTC m=+0.113112869"
_GO_UTC_TIME = r"^(\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2})(?:\.\d+)? \+0000 UTC"
TIME_TOLERANCE_S = 120


def _trust_time_text(df: pl.DataFrame, path: Path, info: dict[str, Any]) -> pl.DataFrame:
    """Where a row's ``TimeStamp`` (epoch seconds) and its ``Time`` text (UTC) disagree by more than
    :data:`TIME_TOLERANCE_S`, take the second from ``Time``. Nezha's 2022-08-22 adservice file has every
    ``TimeStamp`` 2·10⁸ s (six years) ahead of its ``Time``; every other file agrees within a second.
    Rows whose ``Time`` is not such a text keep their ``TimeStamp``. The count goes to the dataset
    card (``timestamps_from_time``) and the log, naming the file."""
    if "Time" not in df.columns:
        return df
    text_s = (
        pl.col("Time")
        .str.extract(_GO_UTC_TIME, 1)
        .str.strptime(pl.Datetime("us", "UTC"), "%Y-%m-%d %H:%M:%S", strict=False)
        .dt.epoch("s")
    )
    df = df.with_columns(_text_s=text_s)
    off = (pl.col("_ts") - pl.col("_text_s")).abs() > TIME_TOLERANCE_S
    wrong = df.select((off & pl.col("_text_s").is_not_null()).fill_null(False).sum()).item()
    if wrong:
        log.warning(
            "%s: %d rows have a TimeStamp more than %d s from their Time text; the Time text is used",
            path,
            wrong,
            TIME_TOLERANCE_S,
        )
        info["timestamps_from_time"] += wrong
        df = df.with_columns(
            _ts=pl.when(off & pl.col("_text_s").is_not_null())
            .then(pl.col("_text_s"))
            .otherwise(pl.col("_ts"))
        )
    return df.drop("_text_s")


def _convert_metrics(
    paths: list[tuple[Path, str]],
    w: RawDatasetWriter,
    pods: _Pods,
    rejects: Rejects,
    frontend: str,
    kinds: dict[str, str],
) -> tuple[SourceCounts, dict[str, Any]]:
    counts = SourceCounts(files=len(paths))
    info: dict[str, Any] = {
        "points": 0,
        "cells_without_value": 0,
        "cells_rejected": 0,
        "timestamps_from_time": 0,
    }
    by_name: dict[str, list[Path]] = {}
    for p, _ in paths:
        by_name.setdefault(p.name, []).append(p)
    for fname in sorted(by_name):
        frames = []
        for p in by_name[fname]:
            df, bad = read_csv_text(p, rejects)
            counts.read += df.height + bad
            counts.rejected += bad
            frames.append(df.with_columns(_file=pl.lit(str(p))))
        df = pl.concat(frames, how="diagonal")
        _require(df, ["TimeStamp"], f"{by_name[fname][0]}")
        front = fname == "front_service.csv"
        table = FRONT_METRICS if front else POD_METRICS
        value_cols = [c for c in df.columns if not c.startswith("_") and c not in _TIME_COLS]
        df = df.with_columns(_ts=pl.col("TimeStamp").cast(pl.Int64, strict=False))
        df = _trust_time_text(df, by_name[fname][0], info)
        df = _set_aside(
            df,
            pl.when(pl.col("_ts").is_null()).then(pl.lit("bad TimeStamp: not an integer")),
            rejects,
            counts,
        )
        n = df.height
        df = df.unique(subset=["TimeStamp", *value_cols], keep="first", maintain_order=True)
        counts.duplicates += n - df.height
        clash = df.with_columns(_k=pl.int_range(pl.len()).over("_ts")).filter(pl.col("_k") > 0)
        if clash.height:
            _reject_frame(
                clash.with_columns(_why=pl.lit("conflicting duplicate: same TimeStamp, other values")),
                rejects,
            )
            counts.rejected += clash.height
            df = df.with_columns(_k=pl.int_range(pl.len()).over("_ts")).filter(pl.col("_k") == 0)
        df = df.sort("_ts")
        if front:
            res = {"service.name": frontend, "service.namespace": pods.namespace}
        else:
            res = pods.attrs(
                fname[: -len("_metric.csv")] if fname.endswith("_metric.csv") else Path(fname).stem
            )
        series = []
        for c in value_cols:
            name, unit, kind = table.get(c) or _generic_metric(c, "frontend" if front else "pod")
            kinds[name] = kind
            raw = df[c]
            vals = raw.cast(pl.Float64, strict=False)
            unparsed = df.filter(vals.is_null() & (raw != "") & raw.is_not_null())
            for f, line in unparsed.select("_file", "_line").iter_rows():
                rejects.add(f, line, f"bad value: column {c!r} is not a number (cell skipped)")
            info["cells_rejected"] += unparsed.height
            series.append(GaugeSeries(name, unit, vals.fill_null(float("nan")).to_numpy()))
        msg, written, skipped = gauge_message(res, df["_ts"].to_numpy() * 1_000_000_000, series)
        info["points"] += written
        info["cells_without_value"] += skipped
        w.add("metrics", msg, written)
        counts.converted += df.height
    info["cells_without_value"] -= info["cells_rejected"]
    return counts, info


# --------------------------------------------------------------------------------------------------
# labels
# --------------------------------------------------------------------------------------------------


def _minute_files(folder: Path, suffix: str) -> dict[str, Path]:
    return {p.name[:5]: p for p in _files(folder, f"*_{suffix}.csv")}


def _incidents(
    src: Path, dates: list[str], rejects: Rejects, indicators: dict[str, dict[str, str]]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    rows, checks = [], []
    col_to_metric = {k: v[0] for k, v in POD_METRICS.items()}
    for date in dates:
        path = src / "rca_data" / date / f"{date}-fault_list.json"
        if not path.exists():
            raise AdapterError(f"{path}: no fault list (expected rca_data/<date>/<date>-fault_list.json)")
        faults = json.loads(path.read_text())
        trace_files = _minute_files(src / "rca_data" / date / "trace", "trace")
        for hour in sorted(faults):
            for k, f in enumerate(faults[hour]):
                where = f"{path.name} [{hour!r}][{k}]"
                try:
                    start = datetime.strptime(f["inject_time"], "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)
                    pod, ftype = f["inject_pod"], f["inject_type"]
                except (KeyError, ValueError, TypeError) as e:
                    rejects.add(path, None, f"bad fault entry {where}: {e}")
                    continue
                start_ns = int(start.timestamp()) * 1_000_000_000
                svc = service_from_pod(pod)
                src_ind = indicators.get(svc, {}).get(ftype)
                minute = start.strftime("%H_%M")
                data = _fault_data_range(trace_files, start)
                raw_ts = f.get("inject_timestamp")
                checks.append(
                    {
                        "inject_time": f["inject_time"],
                        "inject_pod": pod,
                        "trace_file": trace_files[minute].name if minute in trace_files else None,
                        "data_start": ns_to_iso(data[0]),
                        "data_end": ns_to_iso(data[1]),
                        "inject_after_data_start_s": None if data[0] is None else (start_ns - data[0]) / 1e9,
                        "inject_before_data_end_s": None if data[1] is None else (data[1] - start_ns) / 1e9,
                        "inside_data": data[0] is not None and data[0] <= start_ns <= data[1],
                        "inject_timestamp_minus_inject_time_s": (
                            int(raw_ts) - start_ns // 1_000_000_000 if str(raw_ts or "").isdigit() else None
                        ),
                    }
                )
                rows.append(
                    {
                        "start_time": start_ns,
                        "end_time": None,
                        "root_cause_service": svc,
                        "root_cause_indicator": col_to_metric.get(src_ind, src_ind),
                        "fault_type": ftype,
                        "root_cause_pod": pod,
                        "root_cause_indicator_source": src_ind,
                        "inject_timestamp_raw": int(raw_ts) if str(raw_ts or "").isdigit() else None,
                        "data_end": data[1],
                    }
                )
    rows.sort(key=lambda r: r["start_time"])
    for i, r in enumerate(rows, 1):
        r["incident_id"] = f"nezha-{ns_to_iso(r['start_time'])[:10]}-{i:02d}"
    return rows, checks


def _fault_data_range(trace_files: dict[str, Path], start: datetime) -> tuple[int | None, int | None]:
    """Span time range of the minute files that belong to a fault (its minute and the two after)."""
    lo = hi = None
    base = start.replace(second=0)
    for d in range(3):
        t = datetime.fromtimestamp(base.timestamp() + 60 * d, UTC)
        p = trace_files.get(t.strftime("%H_%M"))
        if p is None:
            continue
        df = pl.read_csv(p, columns=["StartTimeUnixNano", "EndTimeUnixNano"], infer_schema=False).select(
            pl.col("StartTimeUnixNano").cast(pl.Int64, strict=False).min(),
            pl.col("EndTimeUnixNano").cast(pl.Int64, strict=False).max(),
        )
        a, b = df.row(0)
        lo = a if lo is None or (a is not None and a < lo) else lo
        hi = b if hi is None or (b is not None and b > hi) else hi
    return lo, hi


# --------------------------------------------------------------------------------------------------
# entry
# --------------------------------------------------------------------------------------------------


def convert(src: Path, out: Path, *, name: str = "nezha-tt", include_construct: bool = True) -> ImportSummary:
    """Convert a Nezha folder (``rca_data/<date>/…``) into the raw dataset layout under ``out``."""
    t0 = time.perf_counter()
    src = Path(src)
    rca = src / "rca_data"
    if not rca.is_dir():
        raise AdapterError(f"{src}: no rca_data/ folder (expected the Nezha layout rca_data/<date>/...)")
    dates = sorted(p.name for p in rca.iterdir() if p.is_dir() and re.match(r"^\d{4}-\d{2}-\d{2}$", p.name))
    if not dates:
        raise AdapterError(f"{rca}: no <YYYY-MM-DD> day folders")
    rejects = Rejects(src)
    some_pod = next((p.name for d in dates for p in _files(rca / d / "metric", "*_metric.csv")), "")
    system = "train-ticket" if some_pod.startswith("ts-") else "online-boutique"
    pods = _Pods(system)
    # inner-service labels: root_cause_ts.json (Train Ticket), root_cause_hipster.json (Online Boutique)
    ind_path = (
        src
        / "construct_data"
        / ("root_cause_ts.json" if system == "train-ticket" else "root_cause_hipster.json")
    )
    indicators = json.loads(ind_path.read_text()) if ind_path.exists() else {}

    def files(kind: str, pattern: str) -> list[tuple[Path, str]]:
        out_ = [(p, "rca") for d in dates for p in _files(rca / d / kind, pattern)]
        if include_construct:
            out_ += [
                (p, "construct") for d in dates for p in _files(src / "construct_data" / d / kind, pattern)
            ]
        return out_

    w = RawDatasetWriter(out)
    try:
        kinds: dict[str, str] = {}
        t1 = time.perf_counter()
        traces, tinfo = _convert_traces(files("trace", "*_trace.csv"), w, pods, rejects)
        t2 = time.perf_counter()
        logs, linfo = _convert_logs(files("log", "*_log.csv"), w, pods, rejects)
        t3 = time.perf_counter()
        # pod series (<pod>_metric.csv) and the frontend SLO (front_service.csv); Online Boutique days
        # also hold dependency.csv, source_50.csv and destination_50.csv (call edges and per-edge
        # latencies, not pod series): listed in the card as not converted
        metric_files, not_converted = [], []
        for p, s in files("metric", "*.csv"):
            if p.name.endswith("_metric.csv") or p.name == "front_service.csv":
                metric_files.append((p, s))
            else:
                not_converted.append(p.relative_to(src).as_posix())
        if not_converted:
            log.info("%s: not converted (not pod metric series): %s", src, ", ".join(not_converted))
        metrics, minfo = _convert_metrics(metric_files, w, pods, rejects, FRONTEND[system], kinds)
        t4 = time.perf_counter()
        for what, c in (("traces", traces), ("logs", logs), ("metrics", metrics)):
            c.check(what)
        incidents, checks = _incidents(src, dates, rejects, indicators)
        extra = [
            pa.field("root_cause_pod", pa.string()),
            pa.field("root_cause_indicator_source", pa.string()),
            pa.field("inject_timestamp_raw", pa.int64()),
            pa.field("data_end", pa.timestamp("ns", tz="UTC")),
        ]
        w.write_incidents(incidents_table(incidents, extra))
        files_out = w.close_otlp()
        cs, ce = tinfo.get("construct_spans", [None, None])
        fault_free: list[dict[str, Any]] = []
        overlaps: list[dict[str, Any]] = []
        if cs is not None:
            cs_ns = int(np.datetime64(cs.rstrip("Z"), "ns").astype(np.int64))
            ce_ns = int(np.datetime64(ce.rstrip("Z"), "ns").astype(np.int64))
            spans = [("construct_data", cs_ns, ce_ns)] + [
                (r["incident_id"], r["start_time"], r["data_end"] or r["start_time"]) for r in incidents
            ]
            overlaps = [o for o in time_overlaps(spans) if "construct_data" in (o["a"], o["b"])]
            fault_free.append(
                {"source": "construct_data", "start": cs, "end": ce, "overlaps_incidents": overlaps}
            )
        offsets = sorted(
            {
                c["inject_timestamp_minus_inject_time_s"]
                for c in checks
                if c["inject_timestamp_minus_inject_time_s"] is not None
            }
        )
        dataset = {
            "name": name,
            "adapter": "nezha",
            "source": {
                **SOURCE,
                "folders": [f"rca_data/{d}" for d in dates]
                + ([f"construct_data/{d}" for d in dates] if include_construct else []),
            },
            "licence": SOURCE["licence"],
            "synthetic": False,
            "system": system,
            "symptom_service": FRONTEND[system],
            "metric_kinds": dict(sorted(kinds.items())),
            "signals": ["traces", "logs", "metrics"],
            "metric_files_not_converted": not_converted,
            "counts": {
                "incidents": len(incidents),
                "traces": vars(traces),
                "logs": vars(logs),
                "metric_rows": vars(metrics),
                "metric_points": minfo["points"],
                "metric_cells_without_value": minfo["cells_without_value"],
                "metric_cells_rejected": minfo["cells_rejected"],
                "metric_timestamps_from_time": minfo["timestamps_from_time"],
                "rejected_rows": len(rejects.rows),
                "rejected_by_reason": rejects.by_reason(),
            },
            "choices": {
                "service_name": "pod name without its two hash suffixes "
                "(ts-contacts-service-866bd68c97-xcqfx -> ts-contacts-service); the pod is "
                "k8s.pod.name and service.instance.id",
                "span_kind": "not in the source: inferred — a root, or a span whose parent runs in another "
                "pod, is SERVER (2); a span with a child in another pod is CLIENT (3); other "
                "spans INTERNAL (1); a span whose parent is missing from the data UNSPECIFIED "
                "(0)",
                "span_status": "not in the source: left UNSET",
                "span_times": "StartTimeUnixNano / EndTimeUnixNano as given; the Duration column "
                "(microseconds) is their difference and is not kept",
                "duplicates": "minute files overlap in time (e.g. 08_52_trace.csv starts at 08:50:08), and "
                "construct_data shares a minute with rca_data: exact duplicate rows are "
                "dropped once (counted under duplicates)",
                "logs": "the Log column is a container runtime JSON line: its 'log' field (trailing newline "
                "removed) is the body, 'stream' becomes log.iostream; severity from the level word "
                "after the application timestamp (INFO 9, WARN 13, ERROR 17); TimeUnixNano is the "
                "record time; Container -> k8s.container.name and Node -> k8s.node.ip record "
                "attributes",
                "log_time_fix": "rows whose TimeUnixNano is Go's zero time (negative) take their time from "
                "the Timestamp text (UTC); counted in logs.time_from_timestamp_text",
                "log_clock": "the application's own timestamp inside the body is UTC+8 (16:42:22 for "
                "08:42:22Z); the body is kept as written",
                "metrics": "each pod metric column is a gauge on the pod's resource at TimeStamp (Unix s; "
                "the sub-second Time column is dropped); NaN cells are not written (counted as "
                "cells without value)",
                "front_service": "front_service.csv is the frontend SLO series; its latency percentiles "
                f"equal {FRONTEND[system]}'s PodServerLatency columns, so its gauges "
                f"(frontend.*) go on service.name={FRONTEND[system]}. SuccessRate(%) is 0 "
                "in every row of 2023-01-29 and is converted as is",
                "metric_files": "rca_data and construct_data metric files of a day are byte-identical "
                "whole-day series; rows are merged and deduplicated on (file, TimeStamp)",
                "incident_start": "inject_time read as UTC. inject_timestamp is ignored: it is about 8 h "
                "before inject_time (the collector's UTC+8 wall clock read as UTC) and "
                "repeats (09:03:53 and 09:12:56 share one value); kept as "
                "inject_timestamp_raw",
                "incident_end": "null: the fault list gives no end; data_end is the end of the fault's trace "
                "minute files (its minute and the two after)",
                "root_cause_indicator": "construct_data/root_cause_ts.json (Online Boutique: "
                "root_cause_hipster.json) [service][fault type]; metric "
                "names mapped to this dataset's OTLP metric names (CpuUsageRate(%) "
                "-> pod.cpu.utilization), code regions kept as written; the source "
                "string is root_cause_indicator_source",
                "metric_time": "a pod metric row's TimeStamp, or its Time text where the two differ by more "
                f"than {TIME_TOLERANCE_S} s (metric_timestamps_from_time counts them)",
                "construct_data": "included as fault-free telemetry of the same system in this dataset (its "
                "spans and logs lie between incidents; see fault_free)",
            },
            "clock_check": {
                "telemetry_clock": "StartTimeUnixNano of spans (UTC)",
                "all_inside_data": all(c["inside_data"] for c in checks),
                "inject_timestamp_minus_inject_time_s": offsets,
                "per_incident": checks,
            },
            "fault_free": fault_free,
            "traces": {k: v for k, v in tinfo.items() if k != "construct_spans"},
            "logs": linfo,
            "otlp": {"folder": "otlp", "framing": "length_prefixed", "files": files_out},
            "rejected": "rejected.jsonl (file, line, reason per row)",
        }
        # timings go to the log, not into dataset.json (a DVC output: same source, same bytes)
        log.info("nezha: traces %.1f s, logs %.1f s, metrics %.1f s", t2 - t1, t3 - t2, t4 - t3)
        w.finish(dataset, rejects)
    except BaseException:
        w.abort()
        raise
    secs = time.perf_counter() - t0
    return ImportSummary(name, Path(out), secs, dataset["counts"], len(incidents), len(rejects.rows))
