"""The naive reference converters for log records and metric points (``naive.py`` has the spans').

The same idea as ``naive.py``: parse each message (protobuf ``ParseFromString`` of each
length-prefixed frame, or ``json.loads`` of each line), walk it in Python appending to one Python
list per column, and write the lists with ``pyarrow.table`` to zstd Parquet every ``batch_rows``
records. It keeps what a first user needs and validates nothing:

- log records: times, severity, body (as text), attributes (``map<string,string>``), trace and span
  id, service and scope name;
- metric points, one table for every kind: metric name, type and unit, start and time, the value
  (number points; a histogram's or summary's sum), the count and the explicit buckets of a
  histogram, attributes, service and scope name. Exemplars, exponential buckets and quantiles are
  left out (the real ingest writes them all, with typed attribute tags, promoted columns, resources,
  scopes and lineage).
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from naive import _hex_id, _json_value, _proto_value
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest

TS = pa.timestamp("ns", tz="UTC")
ATTRS = pa.map_(pa.string(), pa.string())
LOGS = pa.schema(
    [("time", TS), ("observed_time", TS), ("severity_number", pa.int32()), ("severity_text", pa.string()),
     ("body", pa.string()), ("attributes", ATTRS), ("trace_id", pa.binary(16)), ("span_id", pa.binary(8)),
     ("service_name", pa.string()), ("scope_name", pa.string())]
)  # fmt: skip
POINTS = pa.schema(
    [("metric_name", pa.string()), ("metric_type", pa.string()), ("unit", pa.string()),
     ("start_time", TS), ("time", TS), ("value", pa.float64()), ("count", pa.int64()),
     ("bucket_counts", pa.list_(pa.int64())), ("explicit_bounds", pa.list_(pa.float64())),
     ("attributes", ATTRS), ("service_name", pa.string()), ("scope_name", pa.string())]
)  # fmt: skip
_JSON_KINDS = {"gauge": "gauge", "sum": "sum", "histogram": "histogram",
               "exponentialHistogram": "exponential_histogram", "summary": "summary"}  # fmt: skip


class _Table:
    """Column lists flushed to one Parquet file every ``batch_rows`` rows."""

    def __init__(self, schema: pa.Schema, out: Path, batch_rows: int) -> None:
        self.schema, self.out, self.batch_rows = schema, out, batch_rows
        self.cols: dict[str, list] = {n: [] for n in schema.names}
        self.first = self.cols[schema.names[0]]
        self.writer: pq.ParquetWriter | None = None
        self.rows = 0

    def row_done(self) -> None:
        if len(self.first) >= self.batch_rows:
            self.flush()

    def flush(self) -> None:
        if not self.first:
            return
        table = pa.table(self.cols, schema=self.schema)
        if self.writer is None:
            self.out.parent.mkdir(parents=True, exist_ok=True)
            self.writer = pq.ParquetWriter(self.out, self.schema, compression="zstd")
        self.writer.write_table(table)
        self.rows += table.num_rows
        self.cols = {n: [] for n in self.schema.names}
        self.first = self.cols[self.schema.names[0]]

    def close(self) -> int:
        self.flush()
        if self.writer is not None:
            self.writer.close()
        return self.rows


def _frames(path: Path) -> Iterator[bytes]:
    with open(path, "rb") as f:
        while head := f.read(4):
            (n,) = struct.unpack(">I", head)
            yield f.read(n)


def _service_proto(resource: Any) -> str | None:
    return next((kv.value.string_value for kv in resource.attributes if kv.key == "service.name"), None)


def _service_json(block: dict) -> str | None:
    attrs = block.get("resource", {}).get("attributes", [])
    return next((kv["value"].get("stringValue") for kv in attrs if kv["key"] == "service.name"), None)


def _lines(path: Path) -> Iterator[dict]:
    with open(path, "rb") as f:
        for line in f:
            if line.strip():
                yield json.loads(line)


# --------------------------------------------------------------------------------------------------
# log records
# --------------------------------------------------------------------------------------------------


def logs_proto(path: Path, out: Path, batch_rows: int = 32768) -> int:
    t = _Table(LOGS, out, batch_rows)
    for frame in _frames(path):
        req = ExportLogsServiceRequest()
        req.ParseFromString(frame)
        for rl in req.resource_logs:
            service = _service_proto(rl.resource)
            for sl in rl.scope_logs:
                for r in sl.log_records:
                    c = t.cols
                    c["time"].append(r.time_unix_nano or None)
                    c["observed_time"].append(r.observed_time_unix_nano or None)
                    c["severity_number"].append(r.severity_number)
                    c["severity_text"].append(r.severity_text or None)
                    c["body"].append(_proto_value(r.body))
                    c["attributes"].append([(kv.key, _proto_value(kv.value)) for kv in r.attributes])
                    c["trace_id"].append(r.trace_id or None)
                    c["span_id"].append(r.span_id or None)
                    c["service_name"].append(service)
                    c["scope_name"].append(sl.scope.name or None)
                    t.row_done()
    return t.close()


def logs_jsonl(path: Path, out: Path, batch_rows: int = 32768) -> int:
    t = _Table(LOGS, out, batch_rows)
    for req in _lines(path):
        for rl in req.get("resourceLogs", []):
            service = _service_json(rl)
            for sl in rl.get("scopeLogs", []):
                scope = sl.get("scope", {}).get("name")
                for r in sl.get("logRecords", []):
                    c = t.cols
                    c["time"].append(int(r.get("timeUnixNano", 0)) or None)
                    c["observed_time"].append(int(r.get("observedTimeUnixNano", 0)) or None)
                    c["severity_number"].append(r.get("severityNumber", 0))
                    c["severity_text"].append(r.get("severityText"))
                    c["body"].append(_json_value(r["body"]) if "body" in r else None)
                    c["attributes"].append([(kv["key"], _json_value(kv.get("value", {}))) for kv in r.get("attributes", [])])
                    c["trace_id"].append(_hex_id(r.get("traceId")))
                    c["span_id"].append(_hex_id(r.get("spanId")))
                    c["service_name"].append(service)
                    c["scope_name"].append(scope)
                    t.row_done()
    return t.close()


# --------------------------------------------------------------------------------------------------
# metric points
# --------------------------------------------------------------------------------------------------


def _point(t: _Table, name: str, kind: str, unit: str, start: int, time: int, value: Any, count: Any,
           buckets: Any, bounds: Any, attrs: list, service: Any, scope: Any) -> None:  # fmt: skip
    c = t.cols
    c["metric_name"].append(name)
    c["metric_type"].append(kind)
    c["unit"].append(unit or None)
    c["start_time"].append(start or None)
    c["time"].append(time or None)
    c["value"].append(value)
    c["count"].append(count)
    c["bucket_counts"].append(buckets)
    c["explicit_bounds"].append(bounds)
    c["attributes"].append(attrs)
    c["service_name"].append(service)
    c["scope_name"].append(scope)
    t.row_done()


def metrics_proto(path: Path, out: Path, batch_rows: int = 32768) -> int:
    t = _Table(POINTS, out, batch_rows)
    for frame in _frames(path):
        req = ExportMetricsServiceRequest()
        req.ParseFromString(frame)
        for rm in req.resource_metrics:
            service = _service_proto(rm.resource)
            for sm in rm.scope_metrics:
                scope = sm.scope.name or None
                for m in sm.metrics:
                    kind = m.WhichOneof("data")
                    if kind is None:
                        continue
                    for p in getattr(m, kind).data_points:
                        attrs = [(kv.key, _proto_value(kv.value)) for kv in p.attributes]
                        value = count = buckets = bounds = None
                        if kind in ("gauge", "sum"):
                            which = p.WhichOneof("value")
                            value = float(getattr(p, which)) if which else None
                        else:
                            value, count = (p.sum if p.HasField("sum") or kind == "summary" else None), p.count
                            if kind == "histogram":
                                buckets, bounds = list(p.bucket_counts), list(p.explicit_bounds)
                        _point(t, m.name, kind, m.unit, p.start_time_unix_nano, p.time_unix_nano, value, count,
                               buckets, bounds, attrs, service, scope)  # fmt: skip
    return t.close()


def metrics_jsonl(path: Path, out: Path, batch_rows: int = 32768) -> int:
    t = _Table(POINTS, out, batch_rows)
    for req in _lines(path):
        for rm in req.get("resourceMetrics", []):
            service = _service_json(rm)
            for sm in rm.get("scopeMetrics", []):
                scope = sm.get("scope", {}).get("name")
                for m in sm.get("metrics", []):
                    key = next((k for k in _JSON_KINDS if k in m), None)
                    if key is None:
                        continue
                    kind = _JSON_KINDS[key]
                    for p in m[key].get("dataPoints", []):
                        pattrs = [(kv["key"], _json_value(kv.get("value", {}))) for kv in p.get("attributes", [])]
                        value = count = buckets = bounds = None
                        if kind in ("gauge", "sum"):
                            v = p.get("asDouble", p.get("asInt"))
                            value = float(v) if v is not None else None
                        else:
                            value, count = p.get("sum"), int(p.get("count", 0))
                            if kind == "histogram":
                                buckets = [int(x) for x in p.get("bucketCounts", [])]
                                bounds = [float(x) for x in p.get("explicitBounds", [])]
                        _point(t, m.get("name", ""), kind, m.get("unit", ""), int(p.get("startTimeUnixNano", 0)),
                               int(p.get("timeUnixNano", 0)), value, count, buckets, bounds, pattrs, service, scope)  # fmt: skip
    return t.close()


CONVERTERS = {
    ("logs", "proto"): logs_proto,
    ("logs", "jsonl"): logs_jsonl,
    ("metrics", "proto"): metrics_proto,
    ("metrics", "jsonl"): metrics_jsonl,
}


def bare_parse(path: Path, signal: str, fmt: str) -> int:
    """Parse every message and do nothing else (what ``ParseFromString`` / ``orjson.loads`` alone
    cost); returns the message count."""
    import orjson

    n = 0
    if fmt == "proto":
        req = {"logs": ExportLogsServiceRequest, "metrics": ExportMetricsServiceRequest}.get(signal)
        if req is None:
            from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

            req = ExportTraceServiceRequest
        for frame in _frames(path):
            req.FromString(frame)
            n += 1
        return n
    with open(path, "rb") as f:
        for line in f:
            if line.strip():
                orjson.loads(line)
                n += 1
    return n
