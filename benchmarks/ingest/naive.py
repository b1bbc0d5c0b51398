"""The naive reference converter the ingest benchmark compares against.

What a competent engineer writes first, without optimising: parse each message (protobuf
``ParseFromString``, or ``json.loads`` of each line), walk it span by span in Python appending to
one Python list per column, and turn the lists into a table with ``pyarrow.table``, written to
Parquet. It keeps the columns a first user of spans needs (ids, name, kind, times, duration,
status, attributes as a ``map<string,string>``, event and link counts, service and scope name) --
fewer than the real ingest, which also writes events, links, resources, scopes, typed attribute
tags, promoted attribute columns and lineage, and validates every value. It validates nothing.

Like the real ingest it flushes a row group every ``batch_rows`` spans (``run.py`` passes the
ingest's own default, so memory stays bounded and both make as many ``pyarrow`` calls) and writes
zstd-compressed Parquet.
"""

from __future__ import annotations

import base64
import json
import struct
import sys
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

SCHEMA = pa.schema(
    [
        ("trace_id", pa.binary(16)),
        ("span_id", pa.binary(8)),
        ("parent_span_id", pa.binary(8)),
        ("name", pa.string()),
        ("kind", pa.int8()),
        ("start_time", pa.timestamp("ns", tz="UTC")),
        ("end_time", pa.timestamp("ns", tz="UTC")),
        ("duration_ns", pa.int64()),
        ("status_code", pa.int8()),
        ("status_message", pa.string()),
        ("attributes", pa.map_(pa.string(), pa.string())),
        ("event_count", pa.int32()),
        ("link_count", pa.int32()),
        ("service_name", pa.string()),
        ("scope_name", pa.string()),
    ]
)


def _new_columns() -> dict[str, list]:
    return {name: [] for name in SCHEMA.names}


class _Writer:
    def __init__(self, out: Path, batch_rows: int) -> None:
        self.out = out
        self.batch_rows = batch_rows
        self.writer: pq.ParquetWriter | None = None
        self.rows = 0

    def flush(self, cols: dict[str, list]) -> None:
        if not cols["span_id"]:
            return
        table = pa.table(cols, schema=SCHEMA)
        if self.writer is None:
            self.out.parent.mkdir(parents=True, exist_ok=True)
            self.writer = pq.ParquetWriter(self.out, SCHEMA, compression="zstd")
        self.writer.write_table(table)
        self.rows += table.num_rows

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


# --------------------------------------------------------------------------------------------------
# protobuf
# --------------------------------------------------------------------------------------------------


def _proto_value(v: Any) -> str | None:
    which = v.WhichOneof("value")
    if which is None:
        return None
    x = getattr(v, which)
    if which == "string_value":
        return x
    if which == "bool_value":
        return "true" if x else "false"
    if which == "bytes_value":
        return base64.b64encode(x).decode()
    if which in ("array_value", "kvlist_value"):
        return str(x)
    return str(x)


def convert_proto(path: Path, out: Path, batch_rows: int = 32768) -> int:
    """Length-prefixed ExportTraceServiceRequest messages -> Parquet. Returns the span count."""
    w = _Writer(out, batch_rows)
    cols = _new_columns()
    with open(path, "rb") as f:
        while True:
            head = f.read(4)
            if not head:
                break
            (n,) = struct.unpack(">I", head)
            req = ExportTraceServiceRequest()
            req.ParseFromString(f.read(n))
            for rs in req.resource_spans:
                service = None
                for kv in rs.resource.attributes:
                    if kv.key == "service.name":
                        service = kv.value.string_value
                for ss in rs.scope_spans:
                    scope = ss.scope.name or None
                    for span in ss.spans:
                        cols["trace_id"].append(span.trace_id or None)
                        cols["span_id"].append(span.span_id or None)
                        cols["parent_span_id"].append(span.parent_span_id or None)
                        cols["name"].append(span.name)
                        cols["kind"].append(span.kind)
                        cols["start_time"].append(span.start_time_unix_nano)
                        cols["end_time"].append(span.end_time_unix_nano)
                        cols["duration_ns"].append(span.end_time_unix_nano - span.start_time_unix_nano)
                        cols["status_code"].append(span.status.code)
                        cols["status_message"].append(span.status.message or None)
                        cols["attributes"].append(
                            [(kv.key, _proto_value(kv.value)) for kv in span.attributes]
                        )
                        cols["event_count"].append(len(span.events))
                        cols["link_count"].append(len(span.links))
                        cols["service_name"].append(service)
                        cols["scope_name"].append(scope)
                        if len(cols["span_id"]) >= batch_rows:
                            w.flush(cols)
                            cols = _new_columns()
    w.flush(cols)
    w.close()
    return w.rows


# --------------------------------------------------------------------------------------------------
# JSON lines
# --------------------------------------------------------------------------------------------------


def _json_value(v: dict) -> str | None:
    for k, x in v.items():  # one key: stringValue, intValue, boolValue, ...
        if k == "stringValue":
            return x
        if k == "boolValue":
            return "true" if x else "false"
        if k in ("arrayValue", "kvlistValue"):
            return json.dumps(x)
        return str(x)
    return None


def _hex_id(x: str | None) -> bytes | None:
    return bytes.fromhex(x) if x else None


def convert_jsonl(path: Path, out: Path, batch_rows: int = 32768) -> int:
    """OTLP/JSON lines (one ExportTraceServiceRequest per line) -> Parquet. Returns the span count."""
    w = _Writer(out, batch_rows)
    cols = _new_columns()
    with open(path, "rb") as f:
        for line in f:
            if not line.strip():
                continue
            req = json.loads(line)
            for rs in req.get("resourceSpans", []):
                service = None
                for kv in rs.get("resource", {}).get("attributes", []):
                    if kv["key"] == "service.name":
                        service = kv["value"].get("stringValue")
                for ss in rs.get("scopeSpans", []):
                    scope = ss.get("scope", {}).get("name")
                    for span in ss.get("spans", []):
                        start = int(span.get("startTimeUnixNano", 0))
                        end = int(span.get("endTimeUnixNano", 0))
                        status = span.get("status", {})
                        cols["trace_id"].append(_hex_id(span.get("traceId")))
                        cols["span_id"].append(_hex_id(span.get("spanId")))
                        cols["parent_span_id"].append(_hex_id(span.get("parentSpanId")))
                        cols["name"].append(span.get("name", ""))
                        cols["kind"].append(span.get("kind", 0))
                        cols["start_time"].append(start)
                        cols["end_time"].append(end)
                        cols["duration_ns"].append(end - start)
                        cols["status_code"].append(status.get("code", 0))
                        cols["status_message"].append(status.get("message"))
                        cols["attributes"].append(
                            [
                                (kv["key"], _json_value(kv.get("value", {})))
                                for kv in span.get("attributes", [])
                            ]
                        )
                        cols["event_count"].append(len(span.get("events", [])))
                        cols["link_count"].append(len(span.get("links", [])))
                        cols["service_name"].append(service)
                        cols["scope_name"].append(scope)
                        if len(cols["span_id"]) >= batch_rows:
                            w.flush(cols)
                            cols = _new_columns()
    w.flush(cols)
    w.close()
    return w.rows


CONVERTERS = {"jsonl": convert_jsonl, "proto": convert_proto}


if __name__ == "__main__":
    fmt, src, dst = sys.argv[1:4]
    print(CONVERTERS[fmt](Path(src), Path(dst)), "spans")
