"""The RCAEval RE1 / RE2 / RE3 case layout (Pham et al., RCAEval, WWW 2025 companion; Zenodo
13305663 and later records) -> raw OTLP dataset.

A case is a folder ``<service>_<fault>/<rep>/`` (possibly below system folders such as ``RE2-OB/``)
holding ``inject_time.txt`` (Unix seconds) and a wide metric table: ``data.csv`` (RE1) or
``metrics.csv`` / ``simple_metrics.csv`` (RE2, RE3): ``time`` (Unix s) + ``<service>_<metric>``.
RE2/RE3 cases may add ``logs.csv`` (``time,timestamp,container_name,message,level,…``; ``timestamp``
in ns) and ``traces.csv`` (``time,traceID,spanID,serviceName,methodName,operationName,
startTimeMillis,startTime,duration,statusCode,parentSpanID``; ``startTime`` and ``duration`` in µs,
as Jaeger exports them).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa
from opentelemetry.proto.logs.v1 import logs_pb2
from opentelemetry.proto.trace.v1 import trace_pb2

from otlp_aiops.datasets.adapters.common import (
    SEVERITY,
    AdapterError,
    ImportSummary,
    RawDatasetWriter,
    Rejects,
    SourceCounts,
    add_wide_metric_file,
    incidents_table,
    infer_span_kinds,
    metric_kind,
    ns_to_iso,
    read_csv_text,
    resource_pb,
    scope_pb,
    time_overlaps,
    wide_metric_totals,
)

SOURCE = {
    "repository": "https://github.com/phamquiluan/RCAEval",
    "data": "https://zenodo.org/records/13305663 (RE1/RE2/RE3 records linked from the repository)",
    "paper": "Pham et al., RCAEval: A Benchmark for Root Cause Analysis of Microservice Systems with "
    "Telemetry Data, WWW 2025 companion (arXiv:2412.17015)",
    "licence": "per RCAEval's dataset record (CC-BY-4.0 on Zenodo); check the record of the copy you import",
}
METRIC_FILES = ("metrics.csv", "data.csv", "simple_metrics.csv")
STEP_NS = 1_000_000_000
STATUS_ERROR = 2
# metric suffix -> (OTLP name, unit, kind) for the names RCAEval's simple tables use
METRICS: dict[str, tuple[str, str, str]] = {
    "cpu": ("container.cpu.usage", "", "cpu"),
    "mem": ("container.memory.usage", "By", "memory"),
    "diskio": ("container.disk.io", "", "saturation"),
    "socket": ("container.socket.count", "{socket}", "saturation"),
    "workload": ("service.request.rate", "{request}/s", "traffic"),
    "lod": ("service.request.rate", "{request}/s", "traffic"),
    "error": ("service.error.rate", "", "errors"),
    "latency": ("service.latency", "s", "latency"),
    "latency-50": ("service.latency.p50", "s", "latency"),
    "latency-90": ("service.latency.p90", "s", "latency"),
    "latency-99": ("service.latency.p99", "s", "latency"),
    "lat_50": ("service.latency.p50", "s", "latency"),
    "lat_90": ("service.latency.p90", "s", "latency"),
    "lat_99": ("service.latency.p99", "s", "latency"),
}
INDICATOR = {
    "cpu": "container.cpu.usage",
    "mem": "container.memory.usage",
    "disk": "container.disk.io",
    "socket": "container.socket.count",
}


def metric_name(metric: str) -> tuple[str, str, str]:
    """Known simple names get semantic names; raw names (``container-cpu-usage-seconds-total``) are
    kept, dotted, with a kind guessed from the name."""
    if metric in METRICS:
        return METRICS[metric]
    return metric.replace("-", "."), "", metric_kind(metric)


def find_cases(root: Path) -> list[Path]:
    return sorted(p.parent for p in root.rglob("inject_time.txt"))


def parse_case_folder(case: Path) -> tuple[str, str]:
    """``.../checkoutservice_cpu/1`` -> ("checkoutservice", "cpu")."""
    service, sep, fault = case.parent.name.rpartition("_")
    if not sep or not service or not fault:
        raise AdapterError(
            f"{case}: the case folder's parent must be named <service>_<fault>, not {case.parent.name!r}"
        )
    return service, fault


def _read_inject_time(path: Path) -> int:
    text = path.read_text().strip()
    try:
        return round(float(text.split()[0]) * 1000) * 1_000_000
    except (ValueError, IndexError) as e:
        raise AdapterError(f"{path}: expected one Unix timestamp in seconds, found {text[:40]!r}") from e


def _us_to_ns(text_col: str, float_col: str) -> pl.Expr:
    """Microseconds -> ns, exact for integer text (a float64 loses ns at today's epoch)."""
    as_int = pl.col(text_col).cast(pl.Int64, strict=False)
    return (
        pl.when(as_int.is_not_null())
        .then(as_int * 1000)
        .otherwise((pl.col(float_col) * 1000).round().cast(pl.Int64))
    )


def _spans(path: Path, rejects: Rejects, w: RawDatasetWriter, counts: SourceCounts) -> None:
    df, ragged = read_csv_text(path, rejects)
    counts.files += 1
    counts.read += df.height + ragged
    counts.rejected += ragged
    need = ["traceID", "spanID", "serviceName", "operationName", "startTime", "duration"]
    missing = [c for c in need if c not in df.columns]
    if missing:
        raise AdapterError(f"{path}: missing trace columns {missing}")
    if "parentSpanID" not in df.columns:
        df = df.with_columns(parentSpanID=pl.lit(""))
    hex_id = r"^[0-9a-fA-F]+$"
    df = df.with_columns(
        _start=pl.col("startTime").cast(pl.Float64, strict=False),
        _dur=pl.col("duration").cast(pl.Float64, strict=False),
        _par=pl.col("parentSpanID").fill_null("").str.strip_chars(),
    )
    why = (
        pl.when(~pl.col("traceID").str.contains(hex_id) | ~pl.col("traceID").str.len_chars().is_in([16, 32]))
        .then(pl.lit("bad traceID: not 16 or 32 hex digits"))
        .when(~pl.col("spanID").str.contains(r"^[0-9a-fA-F]{16}$"))
        .then(pl.lit("bad spanID: not 16 hex digits"))
        .when((pl.col("_par") != "") & ~pl.col("_par").str.contains(r"^[0-9a-fA-F]{16}$"))
        .then(pl.lit("bad parentSpanID: not 16 hex digits"))
        .when(pl.col("_start").is_null() | pl.col("_dur").is_null() | (pl.col("_dur") < 0))
        .then(pl.lit("bad time: startTime/duration not a number (µs)"))
        .when(pl.col("serviceName") == "")
        .then(pl.lit("empty serviceName"))
        .otherwise(None)
    )
    df = df.with_columns(_why=why)
    for line, reason in df.filter(pl.col("_why").is_not_null()).select("_line", "_why").iter_rows():
        rejects.add(path, line, reason)
    counts.rejected += int(df["_why"].is_not_null().sum())
    df = df.filter(pl.col("_why").is_null())
    df, kind = infer_span_kinds(
        df, trace="traceID", span="spanID", parent="_par", owner="serviceName", root=""
    )
    status = (
        pl.col("statusCode").cast(pl.Float64, strict=False)
        if "statusCode" in df.columns
        else pl.lit(None, pl.Float64)
    )
    df = df.with_columns(
        _kind=kind,
        # Jaeger exports statusCode as the OTel status (2 = ERROR) or an HTTP code: both mean error here
        _err=(status == 2) | (status >= 500),
        _tid=pl.col("traceID").str.to_lowercase().str.pad_start(32, "0").str.decode("hex"),
        _sid=pl.col("spanID").str.to_lowercase().str.decode("hex"),
        _pid=pl.when(pl.col("_par") == "")
        .then(None)
        .otherwise(pl.col("_par"))
        .str.to_lowercase()
        .str.decode("hex"),
        _s=_us_to_ns("startTime", "_start"),
        _e=_us_to_ns("startTime", "_start") + _us_to_ns("duration", "_dur"),
    ).sort("serviceName", "_s")
    td = trace_pb2.TracesData()
    cur, spans = None, None
    for svc, tid, sid, pid, name, kind, s, e, err in zip(
        *(
            df[c].to_list()
            for c in ("serviceName", "_tid", "_sid", "_pid", "operationName", "_kind", "_s", "_e", "_err")
        ),
        strict=True,
    ):
        if svc != cur:
            cur = svc
            rs = td.resource_spans.add()
            rs.resource.CopyFrom(resource_pb({"service.name": svc}))
            ss = rs.scope_spans.add()
            ss.scope.CopyFrom(scope_pb())
            spans = ss.spans
        sp = spans.add(
            trace_id=tid,
            span_id=sid,
            parent_span_id=pid or b"",
            name=name,
            kind=kind,
            start_time_unix_nano=s,
            end_time_unix_nano=e,
        )
        if err:
            sp.status.code = STATUS_ERROR
    if df.height:
        w.add("traces", td, df.height)
    counts.converted += df.height


def _logs(path: Path, rejects: Rejects, w: RawDatasetWriter, counts: SourceCounts) -> None:
    df, ragged = read_csv_text(path, rejects)
    counts.files += 1
    counts.read += df.height + ragged
    counts.rejected += ragged
    missing = [c for c in ("timestamp", "container_name", "message") if c not in df.columns]
    if missing:
        raise AdapterError(f"{path}: missing log columns {missing}")
    level = pl.col("level").fill_null("").str.to_uppercase() if "level" in df.columns else pl.lit("")
    df = df.with_columns(_t=pl.col("timestamp").cast(pl.Int64, strict=False), _lvl=level)
    why = (
        pl.when(pl.col("_t").is_null() | (pl.col("_t") <= 0))
        .then(pl.lit("bad time: timestamp is not a positive integer (ns)"))
        .when(pl.col("container_name") == "")
        .then(pl.lit("empty container_name"))
        .otherwise(None)
    )
    df = df.with_columns(_why=why)
    for line, reason in df.filter(pl.col("_why").is_not_null()).select("_line", "_why").iter_rows():
        rejects.add(path, line, reason)
    counts.rejected += int(df["_why"].is_not_null().sum())
    df = (
        df.filter(pl.col("_why").is_null())
        .with_columns(_sev=pl.col("_lvl").replace_strict(SEVERITY, default=0, return_dtype=pl.Int32))
        .sort("container_name", "_t")
    )
    ld = logs_pb2.LogsData()
    cur, records = None, None
    for svc, t, body, lvl, sev in zip(
        *(df[c].to_list() for c in ("container_name", "_t", "message", "_lvl", "_sev")), strict=True
    ):
        if svc != cur:
            cur = svc
            rl = ld.resource_logs.add()
            rl.resource.CopyFrom(resource_pb({"service.name": svc}))
            sl = rl.scope_logs.add()
            sl.scope.CopyFrom(scope_pb())
            records = sl.log_records
        r = records.add(time_unix_nano=t, observed_time_unix_nano=t, severity_number=sev, severity_text=lvl)
        r.body.string_value = body
    if df.height:
        w.add("logs", ld, df.height)
    counts.converted += df.height


def convert(
    src: Path,
    out: Path,
    *,
    name: str = "rcaeval",
    metrics_file: str | None = None,
    symptom_service: str | None = None,
) -> ImportSummary:
    """Convert every case under ``src`` (a folder with ``inject_time.txt`` somewhere below)."""
    t0 = time.perf_counter()
    src = Path(src)
    cases = find_cases(src)
    if not cases:
        raise AdapterError(
            f"{src}: no case folder with inject_time.txt (expected <service>_<fault>/<rep>/inject_time.txt)"
        )
    rejects = Rejects(src)
    w = RawDatasetWriter(out)
    try:
        kinds: dict[str, str] = {}
        incidents: list[dict[str, Any]] = []
        spans: list[tuple[str, int, int]] = []
        mrows = wide_metric_totals()
        traces, logs = SourceCounts(), SourceCounts()
        signals = {"metrics"}
        services: set[str] = set()
        for case in cases:
            case_id = case.relative_to(src).as_posix()
            service, fault = parse_case_folder(case)
            inject = _read_inject_time(case / "inject_time.txt")
            choices = [metrics_file] if metrics_file else list(METRIC_FILES)
            mpath = next((case / f for f in choices if (case / f).exists()), None)
            if mpath is None:
                raise AdapterError(f"{case}: no metric table (looked for {', '.join(choices)})")
            first, last = add_wide_metric_file(w, mpath, metric_name, rejects, mrows, kinds, services)
            if (case / "traces.csv").exists():
                _spans(case / "traces.csv", rejects, w, traces)
                signals.add("traces")
            if (case / "logs.csv").exists():
                _logs(case / "logs.csv", rejects, w, logs)
                signals.add("logs")
            spans.append((case_id, first, last))
            incidents.append(
                {
                    "incident_id": case_id,
                    "start_time": inject,
                    "end_time": last + STEP_NS,
                    "root_cause_service": service,
                    "root_cause_indicator": INDICATOR.get(fault),
                    "fault_type": fault,
                    "reference_start": first if first < inject else None,
                    "reference_end": inject if first < inject else None,
                    "inside_data": first <= inject <= last,
                }
            )
        assert mrows["rows_read"] == mrows["rows_converted"] + mrows["rows_rejected"]
        traces.check("traces")
        logs.check("logs")
        ts_field = pa.timestamp("ns", tz="UTC")
        extra = [
            pa.field("reference_start", ts_field),
            pa.field("reference_end", ts_field),
            pa.field("inside_data", pa.bool_()),
        ]
        w.write_incidents(incidents_table(incidents, extra))
        files_out = w.close_otlp()
        overlaps = time_overlaps(spans)
        counts = {
            "incidents": len(incidents),
            "metric_rows": mrows,
            "traces": vars(traces),
            "logs": vars(logs),
            "services": len(services),
            "rejected_rows": len(rejects.rows),
            "rejected_by_reason": rejects.by_reason(),
        }
        symptom = symptom_service or next(
            (s for s in ("frontend", "front-end", "ts-ui-dashboard") if s in services), None
        )
        dataset = {
            "name": name,
            "adapter": "rcaeval",
            "source": SOURCE,
            "licence": SOURCE["licence"],
            "synthetic": False,
            "symptom_service": symptom,
            "metric_kinds": dict(sorted(kinds.items())),
            "signals": sorted(signals),
            "counts": counts,
            "choices": {
                "metrics": f"the case's first of {', '.join(METRIC_FILES)} (or --metrics-file); each "
                "<service>_<metric> column a gauge on "
                "service.name=<service>; RCAEval's simple names get semantic names (cpu -> "
                "container.cpu.usage, mem -> container.memory.usage, "
                "latency-90 -> service.latency.p90, workload -> service.request.rate, error -> "
                "service.error.rate), raw names are kept dotted",
                "incident": "one per case: start = inject_time.txt, end = the last metric row + 1 s "
                "(RCAEval's anomalous window runs to the end "
                "of the case); root cause = <service> of the folder <service>_<fault>, fault type = <fault>",
                "reference": "reference_start / reference_end = the case's own rows before inject_time (its "
                "pre-injection normal period)",
                "traces": "startTime and duration in µs (Jaeger); span kind inferred as for Nezha (root or "
                "parent in another service: SERVER; "
                "child in another service: CLIENT; else INTERNAL); statusCode 2 or >= 500 sets status ERROR; "
                "16-digit trace ids are left-padded to 32",
                "logs": "timestamp (ns) is the record time, message the body, level the severity, "
                "container_name the service",
                "symptom_service": "frontend / front-end / ts-ui-dashboard when present, else "
                "--symptom-service",
            },
            "overlaps": overlaps,
            "otlp": {"folder": "otlp", "framing": "length_prefixed", "files": files_out},
            "rejected": "rejected.jsonl (file, line, reason per row)",
            "time_range": [ns_to_iso(min(s for _, s, _ in spans)), ns_to_iso(max(e for _, _, e in spans))],
        }
        w.finish(dataset, rejects)
    except BaseException:
        w.abort()
        raise
    return ImportSummary(name, Path(out), time.perf_counter() - t0, counts, len(incidents), len(rejects.rows))
