"""What every adapter shares: OTLP protobuf building and rotated length-prefixed files, the raw
dataset folder (``otlp/``, ``incidents.parquet``, ``topology.json``, ``dataset.json``) written
atomically, and the bookkeeping of rejected source rows (file, line, reason) so counts add up.
"""

from __future__ import annotations

import contextlib
import csv
import json
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.metrics.v1 import metrics_pb2
from opentelemetry.proto.resource.v1 import resource_pb2

from otlp_aiops.otlp.write import RotatingWriter, WrittenFile, kv
from otlp_aiops.outputs import OutputError, atomic_write_bytes, atomic_write_text, claim_output

ROTATE_BYTES = 16 << 20
SPAN_KIND_INTERNAL, SPAN_KIND_SERVER, SPAN_KIND_CLIENT = 1, 2, 3  # OTLP SpanKind
SCOPE_NAME = "otlp_aiops.datasets.adapters"
SCOPE_VERSION = "1.0.0"
METRIC_KINDS = ("latency", "errors", "traffic", "cpu", "memory", "saturation", "other")

# OTLP SeverityNumber of the usual level words (logs data model: DEBUG 5, INFO 9, WARN 13, ERROR 17, FATAL 21)
SEVERITY = {
    "TRACE": 1,
    "DEBUG": 5,
    "INFO": 9,
    "NOTICE": 10,
    "WARN": 13,
    "WARNING": 13,
    "ERROR": 17,
    "SEVERE": 17,
    "CRITICAL": 21,
    "FATAL": 21,
}

INCIDENT_FIELDS: list[pa.Field] = [
    pa.field("incident_id", pa.string()),
    pa.field("start_time", pa.timestamp("ns", tz="UTC")),
    pa.field("end_time", pa.timestamp("ns", tz="UTC")),
    pa.field("root_cause_service", pa.string()),
    pa.field("root_cause_indicator", pa.string()),
    pa.field("fault_type", pa.string()),
]

# Kubernetes pod names: <deployment>-<replicaset hash>-<pod suffix>
_POD_RX = re.compile(r"^(?P<svc>.+)-[0-9a-f]{8,10}-[0-9a-z]{5}$")
_POD_RX_LOOSE = re.compile(r"^(?P<svc>.+)-[0-9a-z]{5,10}-[0-9a-z]{5}$")


class AdapterError(Exception):
    """The source folder does not have the layout the adapter expects (names the file and the fix)."""


def service_from_pod(pod: str) -> str:
    """``ts-contacts-service-866bd68c97-xcqfx`` -> ``ts-contacts-service`` (the two hash suffixes of a
    Deployment's pod removed); any other name (StatefulSet ``mysql-0``, a bare name) is kept."""
    m = _POD_RX.match(pod) or _POD_RX_LOOSE.match(pod)
    return m.group("svc") if m else pod


def metric_kind(name: str) -> str:
    """A guess at the kind of a metric from its name (used only for columns no adapter table names)."""
    n = name.lower()
    if "cpu" in n:
        return "cpu"
    if "mem" in n:
        return "memory"
    if "lat" in n or "duration" in n or "delay" in n:
        return "latency"
    if "error" in n or "success" in n or "availab" in n or "fail" in n:
        return "errors"
    if any(k in n for k in ("workload", "request", "lod", "throughput", "qps", "network", "istio")):
        return "traffic"
    if any(k in n for k in ("disk", "socket", "thread", "queue", "saturat", "io")):
        return "saturation"
    return "other"


# --------------------------------------------------------------------------------------------------
# protobuf helpers
# --------------------------------------------------------------------------------------------------


def resource_pb(attrs: dict[str, Any]) -> resource_pb2.Resource:
    return resource_pb2.Resource(attributes=[kv(k, v) for k, v in attrs.items() if v is not None])


def scope_pb() -> common_pb2.InstrumentationScope:
    return common_pb2.InstrumentationScope(name=SCOPE_NAME, version=SCOPE_VERSION)


def infer_span_kinds(
    df: Any, *, trace: str, span: str, parent: str, owner: str, root: str
) -> tuple[Any, Any]:
    """For traces that carry no span kind: join each span's parent owner (``_powner``: the ``owner``
    column, a pod or a service, of the span named by ``parent``) and whether a child runs under
    another owner (``_rc``) onto the polars frame ``df``, and return it with the kind expression. A
    root (``parent == root``) or a span whose parent runs elsewhere is SERVER; one whose parent is not
    in the data 0 (UNSPECIFIED); one with a child elsewhere CLIENT; any other INTERNAL."""
    import polars as pl

    parents = df.select(trace, pl.col(span).alias(parent), pl.col(owner).alias("_powner"))
    df = df.join(parents, on=[trace, parent], how="left")
    remote = (
        df.filter(pl.col("_powner").is_not_null() & (pl.col("_powner") != pl.col(owner)))
        .select(trace, pl.col(parent).alias(span), _rc=pl.lit(True))
        .unique()
    )
    df = df.join(remote, on=[trace, span], how="left")
    kind = (
        pl.when((pl.col(parent) == root) | (pl.col("_powner") != pl.col(owner)))
        .then(SPAN_KIND_SERVER)
        .when((pl.col(parent) != root) & pl.col("_powner").is_null())
        .then(0)
        .when(pl.col("_rc").fill_null(False))
        .then(SPAN_KIND_CLIENT)
        .otherwise(SPAN_KIND_INTERNAL)
    )
    return df, kind


@dataclass
class GaugeSeries:
    """One metric column of one resource: values at times (NaN = no value, skipped)."""

    name: str
    unit: str
    values: np.ndarray  # float64
    description: str = ""


def gauge_message(
    resource: dict[str, Any], times_ns: np.ndarray, series: Sequence[GaugeSeries]
) -> tuple[metrics_pb2.MetricsData, int, int]:
    """One MetricsData holding a gauge per series for one resource. Returns (message, points written,
    cells skipped because they hold no value)."""
    md = metrics_pb2.MetricsData()
    rm = md.resource_metrics.add()
    rm.resource.CopyFrom(resource_pb(resource))
    sm = rm.scope_metrics.add()
    sm.scope.CopyFrom(scope_pb())
    written = skipped = 0
    times = np.asarray(times_ns, dtype=np.int64)
    for s in series:
        vals = np.asarray(s.values, dtype=np.float64)
        ok = ~np.isnan(vals)
        skipped += int((~ok).sum())
        if not ok.any():
            continue
        m = sm.metrics.add(name=s.name, unit=s.unit, description=s.description)
        dps = m.gauge.data_points
        for t, v in zip(times[ok].tolist(), vals[ok].tolist(), strict=True):
            dps.add(time_unix_nano=t, as_double=v)
        written += int(ok.sum())
    return md, written, skipped


# --------------------------------------------------------------------------------------------------
# OTLP files
# --------------------------------------------------------------------------------------------------


def signal_writer(root: Path, signal: str, rotate_bytes: int = ROTATE_BYTES) -> RotatingWriter:
    """Length-prefixed protobuf messages of one signal (the Collector file exporter's ``format: proto``)
    in ``otlp/<signal>-NNNNN.binpb`` files, rotated at ``rotate_bytes`` (:mod:`otlp_aiops.otlp.write`)."""
    return RotatingWriter(root / "otlp", root, signal, "binpb", "length_prefixed", rotate_bytes)


# --------------------------------------------------------------------------------------------------
# rejected rows and counts
# --------------------------------------------------------------------------------------------------


@dataclass
class SourceCounts:
    """Per source table (e.g. ``traces``): rows read = converted + duplicates + rejected."""

    read: int = 0
    converted: int = 0
    duplicates: int = 0
    rejected: int = 0
    files: int = 0

    def check(self, what: str) -> None:
        if self.read != self.converted + self.duplicates + self.rejected:
            raise AssertionError(
                f"{what}: rows read {self.read} != converted {self.converted} + duplicates "
                f"{self.duplicates} + rejected {self.rejected}"
            )


@dataclass
class Rejects:
    """Every source row an adapter could not convert: file (relative to the source), 1-based line
    of the CSV file (the header is line 1), reason."""

    source: Path
    rows: list[dict[str, Any]] = field(default_factory=list)

    def add(self, file: Path | str, line: int | None, reason: str) -> None:
        self.rows.append({"file": self._rel(file), "line": line, "reason": reason})

    def _rel(self, file: Path | str) -> str:
        p = Path(file)
        try:
            return p.relative_to(self.source).as_posix()
        except ValueError:
            return p.as_posix()

    def by_reason(self) -> dict[str, int]:
        return dict(Counter(r["reason"].split(":")[0] for r in self.rows))


# --------------------------------------------------------------------------------------------------
# the raw dataset folder
# --------------------------------------------------------------------------------------------------


def incidents_table(rows: list[dict[str, Any]], extra: Sequence[pa.Field] = ()) -> pa.Table:
    """``incidents.parquet``'s table: the DESIGN.md columns in order, then ``extra`` nullable ones.
    Times are ints (ns since the epoch, UTC) or None."""
    fields = [*INCIDENT_FIELDS, *extra]
    cols = {}
    for f in fields:
        vals = [r.get(f.name) for r in rows]
        cols[f.name] = (
            pa.array(vals, type=pa.int64()).cast(f.type)
            if pa.types.is_timestamp(f.type)
            else (pa.array(vals, type=f.type))
        )
    return pa.table(cols, schema=pa.schema(fields))


class RawDatasetWriter:
    """Builds ``data/raw/<dataset>/`` in a temporary sibling folder and swaps it into place at
    :meth:`commit`, so a failed import never leaves a half-written dataset."""

    def __init__(self, out: Path, inputs: Iterable[Path] = ()) -> None:
        self.out = Path(out)
        # the claim refuses an `out` that is not empty and holds no dataset.json, or that overlaps an
        # input; locks it; cleans up after a crashed import; commit() swaps the folder in atomically
        self._claim = contextlib.ExitStack()
        try:
            self.tmp = self._claim.enter_context(
                claim_output(
                    self.out, owner="raw", inputs=inputs, known_files=("dataset.json",), marker=False
                )
            )
        except OutputError as e:
            raise AdapterError(str(e)) from None
        (self.tmp / "otlp").mkdir(parents=True)
        self.writers = {s: signal_writer(self.tmp, s) for s in ("traces", "metrics", "logs")}

    def add(self, signal: str, message: Any, records: int) -> None:
        self.writers[signal].add(message.SerializeToString(), records)

    def write_incidents(self, table: pa.Table) -> None:
        pq.write_table(table, self.tmp / "incidents.parquet")

    def write_json(self, name: str, obj: Any) -> None:
        atomic_write_text(self.tmp / name, json.dumps(obj, indent=2, ensure_ascii=False) + "\n")

    def write_rejects(self, rejects: Rejects) -> None:
        lines = [json.dumps(r, ensure_ascii=False).encode() + b"\n" for r in rejects.rows]
        atomic_write_bytes(self.tmp / "rejected.jsonl", lines)

    def close_otlp(self) -> list[dict[str, Any]]:
        files: list[WrittenFile] = []
        for w in self.writers.values():
            files.extend(w.close())
        return [vars(f) for f in files]

    def commit(self) -> Path:
        try:
            self._claim.close()  # swaps the finished folder into place and releases the lock
        except OutputError as e:
            raise AdapterError(str(e)) from None
        return self.out

    def abort(self) -> None:
        """Remove the temporary folder and release the lock; ``out`` stays as it was."""
        err = RuntimeError("import aborted")
        self._claim.__exit__(type(err), err, None)

    def finish(self, dataset: dict[str, Any], rejects: Rejects) -> Path:
        """Write ``rejected.jsonl`` and ``dataset.json``, then swap the folder into place."""
        self.write_rejects(rejects)
        self.write_json("dataset.json", dataset)
        return self.commit()


def ns_to_iso(ns: int | None) -> str | None:
    if ns is None:
        return None
    return np.datetime_as_string(np.datetime64(int(ns), "ns"), unit="ns") + "Z"


def s_to_ns(seconds: float) -> int:
    """Unix seconds (int or float, millisecond precision kept) -> ns."""
    return round(float(seconds) * 1000) * 1_000_000


def time_overlaps(spans: Iterable[tuple[str, int, int]]) -> list[dict[str, Any]]:
    """Pairs of labelled [start, end] spans (ns) that overlap, with the overlap in seconds."""
    items = sorted(spans, key=lambda x: x[1])
    out = []
    for i, (a, _s1, e1) in enumerate(items):
        for b, s2, e2 in items[i + 1 :]:
            if s2 > e1:
                break
            out.append({"a": a, "b": b, "overlap_s": (min(e1, e2) - s2) / 1e9})
    return out


@dataclass
class ImportSummary:
    """What :func:`otlp_aiops.datasets.adapters.import_dataset` returns (also in dataset.json)."""

    name: str
    out: Path
    seconds: float
    counts: dict[str, Any]
    incidents: int
    rejected: int

    def describe(self) -> str:
        return (
            f"{self.name}: {self.incidents} incidents, {self.rejected} rejected rows, "
            f"{self.seconds:.1f} s -> {self.out}\n" + json.dumps(self.counts, indent=2)
        )


# --------------------------------------------------------------------------------------------------
# CSV reading with line numbers
# --------------------------------------------------------------------------------------------------


def read_csv_text(path: Path, rejects: Rejects, *, header_rows: int = 1):
    """Read a CSV file with every column as text (ids like ``0123…`` must not become numbers) into a
    polars frame with a ``_line`` column (the 1-based physical line; the header is line 1). Rows
    with the wrong number of fields are rejected with their line. Returns (frame, rows rejected)."""
    import polars as pl
    import pyarrow.csv as pacsv

    path = Path(path)
    with open(path, "rb") as f:
        data = f.read()
    if not data.strip():
        raise AdapterError(f"{path}: empty file (expected a CSV header)")
    first = data.split(b"\n", 1)[0].decode("utf-8-sig").rstrip("\r")
    names = next(csv.reader([first]))
    bad: list[tuple[int | None, str]] = []

    def on_invalid(row: Any) -> str:
        bad.append((row.number, f"{row.actual_columns} fields, expected {row.expected_columns}"))
        return "skip"

    table = pacsv.read_csv(
        pa.py_buffer(data),
        read_options=pacsv.ReadOptions(use_threads=False, skip_rows=header_rows, column_names=names),
        parse_options=pacsv.ParseOptions(invalid_row_handler=on_invalid),
        convert_options=pacsv.ConvertOptions(
            column_types={c: pa.string() for c in names}, strings_can_be_null=False
        ),
    )
    for line, why in bad:
        rejects.add(path, line, f"ragged row: {why}")
    physical = data.count(b"\n") + (0 if data.endswith(b"\n") else 1)
    n = table.num_rows
    if physical == n + len(bad) + header_rows:
        bad_lines = {b for b, _ in bad if b is not None}
        lines = [ln for ln in range(header_rows + 1, physical + 1) if ln not in bad_lines][:n]
    else:  # values with embedded newlines: record numbers instead of physical lines
        lines = list(range(header_rows + 1, header_rows + 1 + n))
    df = pl.from_arrow(table)
    assert isinstance(df, pl.DataFrame)
    return df.with_columns(pl.Series("_line", lines, dtype=pl.Int64)), len(bad)


def wide_metric_totals() -> dict[str, int]:
    """The counters :func:`add_wide_metric_file` adds to (dataset.json ``metric_rows``); rows read =
    rows converted + rows rejected."""
    return dict.fromkeys(
        (
            "rows_read",
            "rows_converted",
            "rows_rejected",
            "points",
            "cells_without_value",
            "cells_rejected",
            "files",
        ),
        0,
    )


def add_wide_metric_file(
    w: RawDatasetWriter,
    path: Path,
    metric_name: Any,
    rejects: Rejects,
    totals: dict[str, int],
    kinds: dict[str, str],
    services: set[str],
) -> tuple[int, int]:
    """Convert one wide metric table (a ``time`` column, one column per ``<service>_<metric>``) into
    gauges written by ``w``; add its row and cell counts to ``totals``, its metric kinds and services
    to ``kinds`` / ``services``; return its (first, last) time in ns."""
    df, ragged = read_csv_text(path, rejects)
    msgs, st = wide_metric_messages(df, "time", metric_name, rejects, file=path)
    for msg, n in msgs:
        w.add("metrics", msg, n)
    totals["files"] += 1
    totals["rows_read"] += st["rows_read"] + ragged
    totals["rows_rejected"] += st["rows_rejected"] + ragged
    for k in ("rows_converted", "points", "cells_without_value", "cells_rejected"):
        totals[k] += st[k]
    kinds.update(st["kinds"])
    services.update(st["services"])
    if st["time_range"] is None:
        raise AdapterError(f"{path}: no data rows")
    return st["time_range"]


def wide_metric_messages(
    df,
    time_col: str,
    name_of: Any,
    rejects: Rejects,
    *,
    file: Path,
    extra_resource: dict[str, Any] | None = None,
) -> tuple[list[Any], dict[str, Any]]:
    """A wide table (``time`` + ``<service>_<metric>`` columns, all text, with ``_line``) -> one
    MetricsData per service. ``name_of(metric_part) -> (otlp name, unit, kind)``. Rows whose time is
    not a number are rejected; empty / NaN cells are skipped and counted, text cells rejected.
    Returns (messages with their point counts, stats)."""
    import polars as pl

    if time_col not in df.columns:
        raise AdapterError(f"{file}: no {time_col!r} column")
    t = df[time_col].cast(pl.Float64, strict=False)
    bad = df.filter(t.is_null())
    for line in bad["_line"].to_list():
        rejects.add(file, line, f"bad time: {time_col!r} is not a number")
    df = df.filter(t.is_not_null())
    times_ns = (df[time_col].cast(pl.Float64) * 1e3).round().cast(pl.Int64).to_numpy() * 1_000_000
    stats: dict[str, Any] = {
        "rows_read": df.height + bad.height,
        "rows_converted": df.height,
        "rows_rejected": bad.height,
        "points": 0,
        "cells_without_value": 0,
        "cells_rejected": 0,
        "kinds": {},
        "time_range": (int(times_ns.min()), int(times_ns.max())) if len(times_ns) else None,
        "services": [],
    }
    by_service: dict[str, list[GaugeSeries]] = {}
    for c in df.columns:
        if c == time_col or c.startswith("_"):
            continue
        service, sep, metric = c.partition("_")
        if not sep or not service or not metric:
            raise AdapterError(f"{file}: column {c!r} is not <service>_<metric>")
        name, unit, kind = name_of(metric)
        stats["kinds"][name] = kind
        raw = df[c]
        vals = raw.cast(pl.Float64, strict=False)
        text = df.filter(vals.is_null() & raw.is_not_null() & (raw.str.strip_chars() != ""))
        for line in text["_line"].to_list():
            rejects.add(file, line, f"bad value: column {c!r} is not a number (cell skipped)")
        stats["cells_rejected"] += text.height
        by_service.setdefault(service, []).append(
            GaugeSeries(name, unit, vals.fill_null(float("nan")).to_numpy())
        )
    messages = []
    for service, series in by_service.items():
        names = [s.name for s in series]
        if len(set(names)) != len(names):
            raise AdapterError(f"{file}: service {service!r} has two columns that map to one metric name")
        msg, written, skipped = gauge_message(
            {"service.name": service, **(extra_resource or {})}, times_ns, series
        )
        stats["points"] += written
        stats["cells_without_value"] += skipped
        messages.append((msg, written))
    stats["cells_without_value"] -= stats["cells_rejected"]
    stats["services"] = sorted(by_service)
    return messages, stats
