"""Conformance of the OTLP ingest on real files written by other projects (``../shared/otlp-corpus``).

Every expected value is derived here, independently of ``otlp_aiops.otlp``'s decoders: JSON files are
read with the plain ``json`` module, ``.pb`` files with the ``opentelemetry.proto`` message classes
(then turned into a dict by ``MessageToDict``), and a small reference extractor (``reference``) walks
either into the rows every table must hold, following the conventions of ``otlp_aiops.otlp.schema``
and ``otlp_aiops.otlp.anyvalue``. Hand-checked exact values per file type anchor the extractor itself.

Every test that ingests runs twice, with the C decoder (when built) and with pure Python (see the
``decoder`` fixture in conftest.py).

Run: ``OTLP_AIOPS_EXTERNAL=/path/to/shared pytest tests/external`` (skipped without the variable).
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import subprocess
import sys
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from google.protobuf.json_format import MessageToDict
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.proto.logs.v1 import logs_pb2
from opentelemetry.proto.metrics.v1 import metrics_pb2
from opentelemetry.proto.trace.v1 import trace_pb2

from otlp_aiops.otlp import schema as S

pytestmark = pytest.mark.external

# ==================================================================================================
# Reading the source documents independently of the ingest
# ==================================================================================================

SIGNAL_OF_KEY = {"resourceSpans": "traces", "resourceLogs": "logs", "resourceMetrics": "metrics"}
REQUEST_OF_SIGNAL = {
    "traces": trace_service_pb2.ExportTraceServiceRequest,
    "logs": logs_service_pb2.ExportLogsServiceRequest,
    "metrics": metrics_service_pb2.ExportMetricsServiceRequest,
}


def pb_signal(path: Path) -> str:
    """The signal of an otlp2parquet ``.pb`` file, from its name (the bytes alone cannot tell)."""
    name = path.name
    return "traces" if name.startswith("trace") else "logs" if name.startswith("log") else "metrics"


def source_documents(path: Path) -> list[dict[str, Any]]:
    """The OTLP/JSON documents of a corpus file: one per JSON document / JSON line / protobuf message."""
    if path.suffix == ".pb":
        msg = REQUEST_OF_SIGNAL[pb_signal(path)].FromString(path.read_bytes())
        return [MessageToDict(msg)]  # lowerCamelCase keys, base64 ids, enum names, int64 as strings
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".jsonl":
        return [json.loads(line) for line in text.splitlines() if line.strip()]
    return [json.loads(text)]


# ==================================================================================================
# AnyValue: the reference form of a value, and the decoding of what the ingest stored
# ==================================================================================================
# A value is compared as (tag, payload): for scalars the payload is the canonical text that
# otlp_aiops.otlp.anyvalue documents (decimal ints, shortest round-trip doubles, "true"/"false",
# standard base64); for arrays and kvlists it is the list of their elements as typed trees, so
# 1 / 1.0 / true / "1" stay apart: ("int", 1), ("double", "1.0"), ("bool", True), ("string", "1"),
# ("array", [tree, ...]), ("kvlist", [(key, tree), ...]), ("bytes", b"..."), ("empty", None).

SCALAR_TAGS = {"string", "int", "double", "bool", "bytes", "empty", "strindex"}


def g(d: dict, camel: str, default: Any = None) -> Any:
    """A field of an OTLP/JSON object by its lowerCamelCase name (snake_case accepted too)."""
    v = d.get(camel)
    if v is None:
        snake = "".join("_" + c.lower() if c.isupper() else c for c in camel)
        v = d.get(snake)
    return default if v is None else v


def as_int(x: Any) -> int:
    if isinstance(x, bool) or not isinstance(x, (int, str)):
        raise AssertionError(f"reference: {x!r} is not an OTLP/JSON integer")
    return int(x)


def as_double(x: Any) -> float:
    if isinstance(x, (int, float)) and not isinstance(x, bool):
        return float(x)
    if x in ("NaN", "Infinity", "-Infinity"):
        return float(x.replace("Infinity", "inf"))
    raise AssertionError(f"reference: {x!r} is not an OTLP/JSON double")


def double_text(x: float) -> str:
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "Infinity" if x > 0 else "-Infinity"
    return repr(x)


def std_b64(raw: str) -> bytes:
    try:
        return base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError):
        return base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4))


_VALUE_KEYS = {
    "stringValue": "string",
    "intValue": "int",
    "doubleValue": "double",
    "boolValue": "bool",
    "bytesValue": "bytes",
    "arrayValue": "array",
    "kvlistValue": "kvlist",
    "stringValueStrindex": "strindex",
}


def value_tree(v: Any) -> tuple[str, Any]:
    """The typed tree of an OTLP/JSON AnyValue."""
    if not v:
        return ("empty", None)
    (key, raw), *rest = [(k, x) for k, x in v.items() if k in _VALUE_KEYS and x is not None] or [(None, None)]
    assert not rest, f"reference: AnyValue {v!r} sets more than one value"
    tag = _VALUE_KEYS.get(key)
    if tag is None:
        return ("empty", None)
    if tag == "string":
        return ("string", raw)
    if tag in ("int", "strindex"):
        return (tag, as_int(raw))
    if tag == "double":
        return ("double", double_text(as_double(raw)))
    if tag == "bool":
        assert isinstance(raw, bool), f"reference: boolValue {raw!r}"
        return ("bool", raw)
    if tag == "bytes":
        return ("bytes", std_b64(raw))
    if tag == "array":
        return ("array", [value_tree(x) for x in (raw or {}).get("values") or []])
    return (
        "kvlist",
        [(kv.get("key", ""), value_tree(kv.get("value"))) for kv in (raw or {}).get("values") or []],
    )


def _plain(tree: tuple[str, Any]) -> bool:
    """Whether a tree survives plain JSON (no bytes, non-finite doubles, strindex or duplicate keys)."""
    tag, x = tree
    if tag in ("bytes", "strindex"):
        return False
    if tag == "double":
        return x not in ("NaN", "Infinity", "-Infinity")
    if tag == "array":
        return all(_plain(t) for t in x)
    if tag == "kvlist":
        keys = [k for k, _ in x]
        return len(keys) == len(set(keys)) and all(_plain(t) for _, t in x)
    return True


def expected_value(v: Any) -> tuple[str, Any]:
    """(tag, payload) that the ingest must store for an OTLP/JSON AnyValue."""
    tree = value_tree(v)
    tag, x = tree
    if tag == "string":
        return ("string", x)
    if tag in ("int", "strindex"):
        return (tag, str(x))
    if tag == "double":
        return ("double", x)
    if tag == "bool":
        return ("bool", "true" if x else "false")
    if tag == "bytes":
        return ("bytes", base64.b64encode(x).decode("ascii"))
    if tag == "empty":
        return ("empty", None)
    return (tag if _plain(tree) else f"{tag}_otlp", x)


def _tree_from_plain(x: Any) -> tuple[str, Any]:
    if x is None:
        return ("empty", None)
    if isinstance(x, bool):
        return ("bool", x)
    if isinstance(x, int):
        return ("int", x)
    if isinstance(x, float):
        return ("double", double_text(x))
    if isinstance(x, str):
        return ("string", x)
    if isinstance(x, list):
        return ("array", [_tree_from_plain(y) for y in x])
    return ("kvlist", [(k, _tree_from_plain(y)) for k, y in x.items()])


def stored_value(tag: str | None, text: str | None) -> tuple[str, Any]:
    """(tag, payload) of a value as the ingest stored it (tag None = a plain string attribute)."""
    tag = tag or "string"
    if tag in SCALAR_TAGS:
        return (tag, text)
    try:
        if tag in ("array", "kvlist"):
            inner, x = _tree_from_plain(json.loads(text))
        elif tag in ("array_otlp", "kvlist_otlp"):
            inner, x = value_tree(json.loads(text))
        else:
            return (tag, f"<unknown tag, text {text!r}>")
        return (tag, x) if tag.startswith(inner) else (tag, f"<a {inner} stored under tag {tag}: {text!r}>")
    except (TypeError, ValueError, AttributeError) as e:
        return (tag, f"<unparsable {text!r}: {e}>")


def expected_attrs(kvs: Any) -> list[tuple[str, str, Any]]:
    return [(kv.get("key", ""), *expected_value(kv.get("value"))) for kv in kvs or []]


def stored_attrs(pairs: list | None, types: list | None) -> list[tuple[str, str, Any]] | str | None:
    """A stored (attributes, attribute_types) pair of map columns, decoded; a string names a violation
    of the documented convention (types must be null when every value is a string, never "string")."""
    if pairs is None:
        return None if types is None else f"<attributes null but attribute_types {types!r}>"
    tmap = dict(types or [])
    if types is not None and (
        not types or "string" in tmap.values() or not set(tmap) <= {k for k, _ in pairs}
    ):
        return f"<attribute_types {types!r} for attributes {pairs!r}>"
    return [(k, *stored_value(tmap.get(k), v)) for k, v in pairs]


def tree_to_python(tree: tuple[str, Any]) -> Any:
    """A typed tree (or a scalar (tag, text)) as a plain Python value, for the otlp2parquet comparison."""
    tag, x = tree
    if tag in ("array", "array_otlp"):
        return [tree_to_python(t) for t in x]
    if tag in ("kvlist", "kvlist_otlp"):
        return {k: tree_to_python(t) for k, t in x}
    if tag in ("int", "strindex"):
        return int(x)
    if tag == "double":
        return float(x.replace("Infinity", "inf")) if isinstance(x, str) else x
    if tag == "bool":
        return x in (True, "true")
    return x


def attrs_to_python(attrs: list[tuple[str, str, Any]] | None) -> dict[str, Any]:
    return {k: tree_to_python((t, x)) for k, t, x in attrs or []}


# ==================================================================================================
# The reference extractor: source documents -> expected rows per table
# ==================================================================================================

SPAN_KIND = dict(trace_pb2.Span.SpanKind.items())
STATUS_CODE = dict(trace_pb2.Status.StatusCode.items())
SEVERITY = dict(logs_pb2.SeverityNumber.items())
TEMPORALITY = dict(metrics_pb2.AggregationTemporality.items())
SPAN_PROMOTED_KEYS = {col: (typ, keys) for col, typ, keys in S.SPAN_PROMOTED}
SHAPE_TABLE = {
    "gauge": "metrics_number",
    "sum": "metrics_number",
    "histogram": "metrics_histogram",
    "exponentialHistogram": "metrics_exp_histogram",
    "summary": "metrics_summary",
}
METRIC_TYPE = {"exponentialHistogram": "exponential_histogram"}
EXEMPLAR_POINT_TABLE = {
    "metrics_number": "number",
    "metrics_histogram": "histogram",
    "metrics_exp_histogram": "exponential_histogram",
}


def enum(x: Any, names: dict[str, int]) -> int:
    if x is None:
        return 0
    if isinstance(x, int):
        return x
    return names[x] if x in names else int(x)


@dataclass
class IdCounter:
    base64: int = 0

    def __call__(self, x: Any, n: int) -> bytes | None:
        """A trace (n=16) / span (n=8) id from hex (OTLP/JSON) or base64 (counted); zero or empty -> None."""
        if not x:
            return None
        if len(x) == 2 * n and all(c in "0123456789abcdefABCDEF" for c in x):
            b = bytes.fromhex(x)
        else:
            b = std_b64(x)
            assert len(b) == n, f"reference: id {x!r} is {len(b)} bytes"
            self.base64 += 1
        return None if b == bytes(n) else b


def ns(x: Any) -> int | None:
    t = as_int(x) if x is not None else 0
    return t or None


def opt_str(x: Any) -> str | None:
    return x or None


def opt_double(x: Any) -> float | None:
    return None if x is None else as_double(x)


def promoted_span_value(attrs: list[tuple[str, str, Any]], keys: tuple[str, ...], typ: pa.DataType) -> Any:
    """A promoted attribute column: the first key present (first occurrence), its canonical text;
    integer columns take the value when that text is a decimal integer."""
    for key in keys:
        hit = next((x for k, t, x in attrs if k == key and t in SCALAR_TAGS and x is not None), None)
        if hit is not None:
            if pa.types.is_integer(typ):
                digits = hit[1:] if hit[:1] in "+-" else hit
                return int(hit) if digits.isdigit() and len(digits) <= 18 else None
            return hit
    return None


@dataclass
class Reference:
    """What one corpus file must turn into."""

    rows: dict[str, list[dict[str, Any]]] = field(default_factory=lambda: {t: [] for t in S.TABLES})
    resources: list[dict[str, Any]] = field(default_factory=list)
    scopes: list[dict[str, Any]] = field(default_factory=list)
    ids: IdCounter = field(default_factory=IdCounter)
    records: int = 0
    signals: set[str] = field(default_factory=set)
    # series identity (OTLP data model) per point: (table, row index) -> identity
    series: dict[tuple[str, int], tuple] = field(default_factory=dict)

    def resource(self, container: dict) -> dict[str, Any]:
        res = container.get("resource") or {}
        attrs = expected_attrs(res.get("attributes"))
        strings = {}
        for k, t, x in attrs:
            if t == "string":
                strings.setdefault(k, x)
        row = {
            **{
                col: next((strings[k] for k in keys if k in strings), None)
                for col, keys in S.RESOURCE_PROMOTED
            },
            "attributes": attrs,
            "dropped_attributes_count": as_int(g(res, "droppedAttributesCount", 0)),
            "schema_url": opt_str(g(container, "schemaUrl")),
            "entity_refs": g(res, "entityRefs") or None,
        }
        if row not in self.resources:
            self.resources.append(row)
        return row

    def scope(self, container: dict) -> dict[str, Any]:
        sc = container.get("scope") or {}
        row = {
            "scope_name": opt_str(sc.get("name")),
            "scope_version": opt_str(sc.get("version")),
            "attributes": expected_attrs(sc.get("attributes")),
            "dropped_attributes_count": as_int(g(sc, "droppedAttributesCount", 0)),
            "schema_url": opt_str(g(container, "schemaUrl")),
        }
        if row not in self.scopes:
            self.scopes.append(row)
        return row

    @staticmethod
    def context(res: dict, scope: dict) -> dict[str, Any]:
        return {
            "resource": res,
            "scope": scope,
            **{col: res[col] for col, _ in S.RESOURCE_PROMOTED},
            "scope_name": scope["scope_name"],
        }

    def add_document(self, doc: dict, source_file: str) -> None:
        lineage = {"_source_file": source_file}
        for key, signal in SIGNAL_OF_KEY.items():
            if key not in doc:
                continue
            self.signals.add(signal)
            inner = {"traces": "scopeSpans", "logs": "scopeLogs", "metrics": "scopeMetrics"}[signal]
            for rc in doc[key]:
                res = self.resource(rc)
                for sc in g(rc, inner, []):
                    scope = self.scope(sc)
                    ctx = self.context(res, scope)
                    if signal == "traces":
                        for span in sc.get("spans") or []:
                            self.span(span, ctx, lineage)
                    elif signal == "logs":
                        for rec in g(sc, "logRecords", []):
                            self.log(rec, ctx, lineage)
                    else:
                        for metric in sc.get("metrics") or []:
                            self.metric(metric, ctx, res, scope, lineage)

    def _record(self, lineage: dict) -> dict[str, Any]:
        rec = {**lineage, "_record_index": self.records}
        self.records += 1
        return rec

    def span(self, s: dict, ctx: dict, lineage: dict) -> None:
        rec = self._record(lineage)
        tid = self.ids(g(s, "traceId"), 16)
        sid = self.ids(g(s, "spanId"), 8)
        start, end = ns(g(s, "startTimeUnixNano")), ns(g(s, "endTimeUnixNano"))
        status = s.get("status") or {}
        attrs = expected_attrs(s.get("attributes"))
        events = s.get("events") or []
        links = s.get("links") or []
        self.rows["spans"].append({
            "trace_id": tid,
            "span_id": sid,
            "parent_span_id": self.ids(g(s, "parentSpanId"), 8),
            "trace_state": opt_str(g(s, "traceState")),
            "flags": as_int(s.get("flags", 0)),
            "name": s.get("name", ""),
            "kind": enum(s.get("kind"), SPAN_KIND),
            "start_time": start,
            "end_time": end,
            "duration_ns": end - start if start is not None and end is not None else None,
            "status_code": enum(status.get("code"), STATUS_CODE),
            "status_message": opt_str(status.get("message")),
            "attributes": attrs,
            "dropped_attributes_count": as_int(g(s, "droppedAttributesCount", 0)),
            "event_count": len(events),
            "dropped_events_count": as_int(g(s, "droppedEventsCount", 0)),
            "link_count": len(links),
            "dropped_links_count": as_int(g(s, "droppedLinksCount", 0)),
            **{col: promoted_span_value(attrs, keys, typ) for col, (typ, keys) in SPAN_PROMOTED_KEYS.items()},
            **ctx,
            **rec,
        })  # fmt: skip
        parent = {
            "trace_id": tid,
            "span_id": sid,
            "resource": ctx["resource"],
            "service_name": ctx["service_name"],
        }
        for j, e in enumerate(events):
            self.rows["span_events"].append({
                **parent,
                "event_index": j,
                "time": ns(g(e, "timeUnixNano")),
                "name": e.get("name", ""),
                "attributes": expected_attrs(e.get("attributes")),
                "dropped_attributes_count": as_int(g(e, "droppedAttributesCount", 0)),
                **rec,
            })  # fmt: skip
        for j, lk in enumerate(links):
            self.rows["span_links"].append({
                **parent,
                "link_index": j,
                "linked_trace_id": self.ids(g(lk, "traceId"), 16),
                "linked_span_id": self.ids(g(lk, "spanId"), 8),
                "trace_state": opt_str(g(lk, "traceState")),
                "flags": as_int(lk.get("flags", 0)),
                "attributes": expected_attrs(lk.get("attributes")),
                "dropped_attributes_count": as_int(g(lk, "droppedAttributesCount", 0)),
                **rec,
            })  # fmt: skip

    def log(self, r: dict, ctx: dict, lineage: dict) -> None:
        rec = self._record(lineage)
        attrs = expected_attrs(r.get("attributes"))
        body_type, body = expected_value(r["body"]) if "body" in r else (None, None)
        self.rows["logs"].append({
            "time": ns(g(r, "timeUnixNano")),
            "observed_time": ns(g(r, "observedTimeUnixNano")),
            "severity_number": enum(g(r, "severityNumber"), SEVERITY),
            "severity_text": opt_str(g(r, "severityText")),
            "body": (body_type, body) if body_type is not None else None,
            "attributes": attrs,
            "dropped_attributes_count": as_int(g(r, "droppedAttributesCount", 0)),
            "flags": as_int(r.get("flags", 0)),
            "trace_id": self.ids(g(r, "traceId"), 16),
            "span_id": self.ids(g(r, "spanId"), 8),
            "event_name": opt_str(g(r, "eventName")),
            **{col: promoted_span_value(attrs, keys, typ) for col, typ, keys in S.LOG_PROMOTED},
            **ctx,
            **rec,
        })  # fmt: skip

    def metric(self, m: dict, ctx: dict, res: dict, scope: dict, lineage: dict) -> None:
        (shape, data), *others = [(k, m[k]) for k in SHAPE_TABLE if k in m]
        assert not others, f"reference: metric {m.get('name')!r} has several data kinds"
        table = SHAPE_TABLE[shape]
        mtype = METRIC_TYPE.get(shape, shape)
        temporality = None
        if shape in ("sum", "histogram", "exponentialHistogram"):
            temporality = enum(g(data, "aggregationTemporality"), TEMPORALITY)
        monotonic = bool(g(data, "isMonotonic", False)) if shape == "sum" else None
        metadata = expected_attrs(m.get("metadata")) or None
        info = {
            "metric_name": m.get("name", ""),
            "metric_description": opt_str(m.get("description")),
            "unit": opt_str(m.get("unit")),
            "metric_type": mtype,
            "aggregation_temporality": temporality,
            "is_monotonic": monotonic,
            "metric_metadata": metadata,
        }
        for p in g(data, "dataPoints", []):
            rec = self._record(lineage)
            attrs = expected_attrs(p.get("attributes"))
            flags = as_int(p.get("flags", 0))
            exemplars = [] if table == "metrics_summary" else p.get("exemplars") or []
            row = {
                **info,
                "start_time": ns(g(p, "startTimeUnixNano")),
                "time": ns(g(p, "timeUnixNano")),
                "attributes": attrs,
                "flags": flags,
                "no_recorded_value": bool(flags & 1),
                "exemplar_count": len(exemplars),
                **self.point_shape(table, p),
                **ctx,
                **rec,
            }
            self.series[(table, len(self.rows[table]))] = (
                json.dumps(res, sort_keys=True, default=repr), json.dumps(scope, sort_keys=True, default=repr),
                info["metric_name"], info["unit"], mtype, temporality, monotonic,
                tuple(sorted(json.dumps(a, default=repr) for a in attrs)),
            )  # fmt: skip
            self.rows[table].append(row)
            for j, ex in enumerate(exemplars):
                vd, vi = self.number_value(ex)
                self.rows["exemplars"].append({
                    "point_table": EXEMPLAR_POINT_TABLE[table],
                    "metric_name": info["metric_name"],
                    "exemplar_index": j,
                    "time": ns(g(ex, "timeUnixNano")),
                    "value_double": vd,
                    "value_int": vi,
                    "trace_id": self.ids(g(ex, "traceId"), 16),
                    "span_id": self.ids(g(ex, "spanId"), 8),
                    "filtered_attributes": expected_attrs(g(ex, "filteredAttributes")),
                    "resource": res,
                    "service_name": ctx["service_name"],
                    "parent": (table, len(self.rows[table]) - 1),
                    **rec,
                })  # fmt: skip

    @staticmethod
    def number_value(p: dict) -> tuple[float | None, int | None]:
        if g(p, "asInt") is not None:
            i = as_int(g(p, "asInt"))
            return float(i), i
        d = g(p, "asDouble")
        return (None if d is None else as_double(d)), None

    def point_shape(self, table: str, p: dict) -> dict[str, Any]:
        if table == "metrics_number":
            vd, vi = self.number_value(p)
            return {"value_double": vd, "value_int": vi}
        common = {"count": as_int(p.get("count", 0)), "sum": opt_double(p.get("sum"))}
        if table == "metrics_summary":
            qv = g(p, "quantileValues", [])
            return {
                **common,
                "sum": as_double(p.get("sum", 0.0)),
                "quantiles": [as_double(q.get("quantile", 0.0)) for q in qv],
                "quantile_values": [as_double(q.get("value", 0.0)) for q in qv],
            }
        common |= {"min": opt_double(p.get("min")), "max": opt_double(p.get("max"))}
        if table == "metrics_histogram":
            return {
                **common,
                "bucket_counts": [as_int(c) for c in g(p, "bucketCounts", [])],
                "explicit_bounds": [as_double(b) for b in g(p, "explicitBounds", [])],
            }
        pos, neg = p.get("positive") or {}, p.get("negative") or {}
        return {
            **common,
            "scale": as_int(p.get("scale", 0)),
            "zero_count": as_int(g(p, "zeroCount", 0)),
            "zero_threshold": as_double(g(p, "zeroThreshold", 0.0)),
            "positive_offset": as_int(pos.get("offset", 0)),
            "positive_bucket_counts": [as_int(c) for c in g(pos, "bucketCounts", [])],
            "negative_offset": as_int(neg.get("offset", 0)),
            "negative_bucket_counts": [as_int(c) for c in g(neg, "bucketCounts", [])],
        }


def reference(path: Path) -> Reference:
    ref = Reference()
    for doc in source_documents(path):
        ref.add_document(doc, str(path))
    if path.suffix == ".pb":
        ref.ids.base64 = 0  # binary ids in protobuf: the base64 seen here is MessageToDict's, not the file's
    return ref


# ==================================================================================================
# Reading the ingest's output in the same form
# ==================================================================================================


def _resolved(t: pa.Table) -> pa.Table:
    """Timestamps as int64 nanoseconds (to_pylist would round them to microseconds)."""
    for i, f in enumerate(t.schema):
        if pa.types.is_timestamp(f.type):
            t = t.set_column(i, f.name, t.column(i).cast(pa.int64()))
    return t


MAP_PAIRS = (
    ("attributes", "attribute_types"),
    ("filtered_attributes", "filtered_attribute_types"),
    ("metric_metadata", "metric_metadata_types"),
)


def _decode_row(r: dict[str, Any]) -> dict[str, Any]:
    for name, types in MAP_PAIRS:
        if name in r:
            r[name] = stored_attrs(r[name], r.pop(types))
    if "body_type" in r:
        tag = r.pop("body_type")
        r["body"] = None if tag is None else stored_value(tag, r["body"])
    return r


def resources_by_id(ing: Any) -> dict[int, dict[str, Any]]:
    out = {}
    for r in _resolved(ing.tables["resources"]).to_pylist():
        rid = r.pop("resource_id")
        assert rid not in out, f"resource_id {rid} appears twice in the resources table"
        r = _decode_row(r)
        refs = r.pop("entity_refs_json")
        r["entity_refs"] = None if refs is None else json.loads(refs)
        out[rid] = r
    return out


def scopes_by_id(ing: Any) -> dict[int, dict[str, Any]]:
    out = {}
    for r in ing.tables["scopes"].to_pylist():
        sid = r.pop("scope_id")
        assert sid not in out, f"scope_id {sid} appears twice in the scopes table"
        out[sid] = _decode_row(r)
    return out


SORT_KEYS = {"span_events": "event_index", "span_links": "link_index", "exemplars": "exemplar_index"}


def actual_rows(ing: Any, table: str, source_file: str | None = None) -> list[dict[str, Any]]:
    """The rows of ``table`` (of one source file), decoded, resource_id / scope_id resolved to the rows
    they point at, in record order."""
    t = ing.tables[table]
    if source_file is not None:
        t = t.filter(pa.compute.equal(t["_source_file"], source_file))
    rows = [_decode_row(r) for r in _resolved(t).to_pylist()]
    resources, scopes = resources_by_id(ing), scopes_by_id(ing)
    for r in rows:
        if "resource_id" in r:
            rid = r.pop("resource_id")
            r["resource"] = resources.get(rid, f"<resource_id {rid} not in the resources table>")
        if "scope_id" in r:
            sid = r.pop("scope_id")
            r["scope"] = scopes.get(sid, f"<scope_id {sid} not in the scopes table>")
    sub = SORT_KEYS.get(table)
    return sorted(rows, key=lambda r: (r["_record_index"], r[sub] if sub else 0))


# ==================================================================================================
# Comparison with readable failures
# ==================================================================================================


def same(a: Any, b: Any) -> bool:
    """Exact equality that tells int from float from bool, and takes NaN as equal to NaN."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return a == b or (math.isnan(a) and math.isnan(b))
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    return a == b


def _short(x: Any, limit: int = 300) -> str:
    s = repr(x)
    return s if len(s) <= limit else s[:limit] + "…"


def _explain(expected: Any, actual: Any) -> str:
    """Expected vs. actual, narrowed to the first differing element of two equally long lists."""
    if isinstance(expected, list) and isinstance(actual, list) and len(expected) == len(actual):
        i = next(i for i, (e, a) in enumerate(zip(expected, actual, strict=True)) if not same(e, a))
        return f"element {i}: expected {_short(expected[i])}, got {_short(actual[i])}"
    return f"expected {_short(expected)}, got {_short(actual)}"


def assert_rows(what: str, actual: list[dict], expected: list[dict], ignore: tuple[str, ...] = ()) -> None:
    """Row-by-row, column-by-column equality; the failure lists every differing cell."""
    problems = []
    if len(actual) != len(expected):
        problems.append(f"{len(actual)} rows, expected {len(expected)}")
    for i, (a, e) in enumerate(zip(actual, expected, strict=False)):
        where = f"row {i} (_record_index {e.get('_record_index')})"
        missing = set(e) - set(a) - set(ignore)
        if missing:
            problems.append(f"{where}: columns missing: {sorted(missing)}")
        unchecked = set(a) - set(e) - set(ignore)
        if unchecked:  # a column added to the schema must be added to the reference extractor too
            problems.append(f"{where}: columns the reference does not know: {sorted(unchecked)}")
        for col, ev in e.items():
            if col in ignore or col not in a:
                continue
            if not same(a[col], ev):
                problems.append(f"{where} column {col}: {_explain(ev, a[col])}")
    if problems:
        shown = "\n  ".join(problems[:40])
        more = f"\n  … {len(problems) - 40} more" if len(problems) > 40 else ""
        pytest.fail(f"{what}: {len(problems)} difference(s)\n  {shown}{more}", pytrace=False)


# ==================================================================================================
# 1. every corpus file converts, and every value matches the source
# ==================================================================================================

RECORD_TABLES = {t for ts in S.RECORD_TABLES.values() for t in ts}
FRAMING = {".json": "json", ".jsonl": "jsonl", ".pb": "proto"}


def test_corpus_is_complete(corpus: Path) -> None:
    """The corpus holds what shared/README.md says (so a partial checkout cannot pass by testing less)."""
    names = {str(p.relative_to(corpus)) for p in corpus.rglob("*") if p.is_file()}
    for expected in (
        "opentelemetry-proto/examples/trace.json",
        "opentelemetry-proto/examples/metrics.json",
        "opentelemetry-proto/examples/logs.json",
        "opentelemetry-proto/examples/events.json",
        *(f"otlp2parquet/testdata/metrics_{k}.{x}" for k in
          ("gauge", "sum", "histogram", "exponential_histogram", "summary", "mixed") for x in ("json", "jsonl", "pb")),
        "otlp2parquet/testdata/trace.json", "otlp2parquet/testdata/trace.pb",
        "otlp2parquet/testdata/traces.jsonl", "otlp2parquet/testdata/traces.pb",
        "otlp2parquet/testdata/log.json", "otlp2parquet/testdata/logs.jsonl", "otlp2parquet/testdata/logs.pb",
        "otlp2parquet/testdata/invalid/malformed.json",
        *(f"otlp2parquet/testdata/parquet/{t}.parquet" for t in
          ("traces", "logs", "metrics_gauge", "metrics_sum", "metrics_histogram",
           "metrics_exponential_histogram", "metrics_summary")),
    ):  # fmt: skip
        assert expected in names, f"{expected} missing from {corpus}"


def test_file_converts_losslessly(corpus_file: Path, corpus: Path, ingest_cached) -> None:
    """Zero quarantine, report counts, and every row of every table equal to the reference extractor's."""
    ref = reference(corpus_file)
    ing = ingest_cached(corpus_file)
    entry = ing.entry(corpus_file)
    label = str(corpus_file)

    # -- the report
    expected_rows = {t: len(r) for t, r in ref.rows.items() if r}
    assert entry["framing"] == FRAMING[corpus_file.suffix]
    assert entry["signals"] == sorted(ref.signals)
    assert entry["messages_quarantined"] == 0, ing.quarantine
    assert entry["records_quarantined"] == 0, ing.quarantine
    assert entry["quarantined_by_reason"] == {}
    assert ing.quarantine == []
    assert entry["records_read"] == ref.records == entry["records_written"]
    assert entry["rows_written"] == expected_rows
    assert entry["ids_base64"] == ref.ids.base64, "base64 ids counted in the report vs. found in the file"
    assert entry["unknown_fields"] == {}, "the corpus uses only OTLP fields; nothing should be unknown"
    assert ing.report["skipped"] == []
    assert ing.report["totals"]["rows_written"] == {
        **expected_rows, "resources": len(ref.resources), "scopes": len(ref.scopes)
    }  # fmt: skip

    # -- the schema contract: every table, the exact Arrow schema, and the version in the metadata
    for name, schema in S.TABLES.items():
        assert ing.schemas[name].remove_metadata().equals(schema), f"{name}: schema differs from schema.py"
        assert ing.schemas[name].metadata[S.SCHEMA_METADATA_KEY] == S.SCHEMA_VERSION.encode()

    # -- resources and scopes tables: exactly the distinct resources / scopes of the file
    resources = list(resources_by_id(ing).values())
    assert len(resources) == len(ref.resources), f"{len(resources)} resources, expected {len(ref.resources)}"
    for r in ref.resources:
        assert any(same(r, a) for a in resources), (
            f"resource {_short(r)} not in the resources table {resources}"
        )
    scopes = list(scopes_by_id(ing).values())
    assert len(scopes) == len(ref.scopes), f"{len(scopes)} scopes, expected {len(ref.scopes)}"
    for s in ref.scopes:
        assert any(same(s, a) for a in scopes), f"scope {_short(s)} not in the scopes table {scopes}"

    # -- every row of every record / child table
    actual = {}
    for table in S.TABLES:
        if table in ("resources", "scopes"):
            continue
        actual[table] = actual_rows(ing, table)
        ignore = ("series_id", "parent") if table == "exemplars" else ("series_id",)
        assert_rows(f"{corpus_file.relative_to(corpus)} {table}", actual[table], ref.rows[table], ignore)
        assert all(r["_source_file"] == label for r in actual[table])

    # -- series_id: one per metric stream (resource, scope, name, unit, type, temporality,
    #    monotonicity, attribute set), distinct between streams
    for table in S.RECORD_TABLES["metrics"]:
        ids_of_stream: dict[tuple, set[int]] = defaultdict(set)
        streams_of_id: dict[int, set[tuple]] = defaultdict(set)
        for i, row in enumerate(actual[table]):
            ids_of_stream[ref.series[(table, i)]].add(row["series_id"])
            streams_of_id[row["series_id"]].add(ref.series[(table, i)])
        assert all(len(v) == 1 for v in ids_of_stream.values()), f"{table}: one stream has several series_id"
        assert all(len(v) == 1 for v in streams_of_id.values()), f"{table}: one series_id for several streams"
    for a, e in zip(actual["exemplars"], ref.rows["exemplars"], strict=True):
        table, i = e["parent"]
        assert a["series_id"] == actual[table][i]["series_id"], "exemplar series_id differs from its point's"


# --------------------------------------------------------------------------------------------------
# hand-checked anchors: exact values read off the files by a person, one or more per file type
# --------------------------------------------------------------------------------------------------

TS_2018 = 1544712660300000000


def _one(ing: Any, table: str) -> dict[str, Any]:
    rows = actual_rows(ing, table)
    assert len(rows) == 1, f"{table}: {len(rows)} rows"
    return rows[0]


def test_anchor_opentelemetry_proto_trace(corpus: Path, ingest_cached) -> None:
    path = corpus / "opentelemetry-proto/examples/trace.json"
    ing = ingest_cached(path)
    span = _one(ing, "spans")
    assert span["trace_id"] == bytes.fromhex("5b8efff798038103d269b633813fc60c")
    assert span["span_id"] == bytes.fromhex("eee19b7ec3c1b174")
    assert span["parent_span_id"] == bytes.fromhex("eee19b7ec3c1b173")
    assert span["name"] == "I'm a server span"
    assert span["kind"] == 2  # SPAN_KIND_SERVER
    assert span["start_time"] == 1544712660000000000
    assert span["end_time"] == 1544712661000000000
    assert span["duration_ns"] == 1_000_000_000
    assert span["status_code"] == 0 and span["status_message"] is None
    assert span["attributes"] == [("my.span.attr", "string", "some value")]
    assert span["service_name"] == "my.service"
    assert span["scope_name"] == "my.library"
    assert span["scope"]["scope_version"] == "1.0.0"
    assert span["scope"]["attributes"] == [("my.scope.attribute", "string", "some scope attribute")]
    assert span["event_count"] == span["link_count"] == 0
    assert span["_record_index"] == 0 and span["_source_file"] == str(path)
    assert ing.entry(path)["ids_base64"] == 0
    # the typed columns themselves, not only their decoded values
    spans = ing.tables["spans"]
    assert spans.schema.field("trace_id").type == pa.binary(16)
    assert spans.schema.field("start_time").type == pa.timestamp("ns", tz="UTC")
    assert spans["start_time"].cast(pa.int64()).to_pylist() == [1544712660000000000]


def test_anchor_opentelemetry_proto_logs_every_attribute_type(corpus: Path, ingest_cached) -> None:
    ing = ingest_cached(corpus / "opentelemetry-proto/examples/logs.json")
    log = _one(ing, "logs")
    assert log["time"] == log["observed_time"] == TS_2018
    assert log["severity_number"] == 10 and log["severity_text"] == "Information"
    assert log["trace_id"] == bytes.fromhex("5b8efff798038103d269b633813fc60c")
    assert log["span_id"] == bytes.fromhex("eee19b7ec3c1b174")
    assert log["body"] == ("string", "Example log record")
    assert log["event_name"] is None
    # the stored strings and type tags exactly, as documented in anyvalue.py
    logs = ing.tables["logs"]
    assert logs["attributes"].to_pylist()[0] == [
        ("string.attribute", "some string"),
        ("boolean.attribute", "true"),
        ("int.attribute", "10"),
        ("double.attribute", "637.704"),
        ("array.attribute", '["many","values"]'),
        ("map.attribute", '{"some.map.key":"some value"}'),
    ]
    assert logs["attribute_types"].to_pylist()[0] == [
        ("boolean.attribute", "bool"),
        ("int.attribute", "int"),
        ("double.attribute", "double"),
        ("array.attribute", "array"),
        ("map.attribute", "kvlist"),
    ]
    assert logs["body_type"].to_pylist() == ["string"]


def test_anchor_opentelemetry_proto_event(corpus: Path, ingest_cached) -> None:
    ing = ingest_cached(corpus / "opentelemetry-proto/examples/events.json")
    log = _one(ing, "logs")
    assert log["event_name"] == "browser.page_view"
    assert log["severity_number"] == 9 and log["severity_text"] == "test severity text"
    assert log["trace_id"] is None and log["span_id"] is None
    assert log["body"] == (
        "kvlist",
        [
            ("type", ("int", 0)),
            ("url", ("string", "https://www.guidgenerator.com/online-guid-generator.aspx")),
            ("referrer", ("string", "https://wwww.google.com")),
            ("title", ("string", "Free Online GUID Generator")),
        ],
    )
    assert ing.tables["logs"]["body"].to_pylist() == [
        '{"type":0,"url":"https://www.guidgenerator.com/online-guid-generator.aspx",'
        '"referrer":"https://wwww.google.com","title":"Free Online GUID Generator"}'
    ]
    assert log["attributes"] == [("event.attribute", "string", "some event attribute")]


def test_anchor_opentelemetry_proto_metrics(corpus: Path, ingest_cached) -> None:
    ing = ingest_cached(corpus / "opentelemetry-proto/examples/metrics.json")
    number = actual_rows(ing, "metrics_number")
    assert [
        (r["metric_name"], r["metric_type"], r["aggregation_temporality"], r["is_monotonic"]) for r in number
    ] == [
        ("my.counter", "sum", 1, True),
        ("my.gauge", "gauge", None, None),
    ]
    assert [(r["value_double"], r["value_int"]) for r in number] == [(5.0, None), (10.0, None)]
    assert number[0]["start_time"] == number[0]["time"] == TS_2018
    assert number[1]["start_time"] is None  # absent in the gauge point
    assert number[0]["unit"] == "1" and number[0]["metric_description"] == "I am a Counter"
    h = _one(ing, "metrics_histogram")
    assert (h["count"], h["sum"], h["min"], h["max"]) == (2, 2.0, 0.0, 2.0)
    assert h["bucket_counts"] == [1, 1] and h["explicit_bounds"] == [1.0]
    assert h["aggregation_temporality"] == 1 and h["_record_index"] == 2
    e = _one(ing, "metrics_exp_histogram")
    assert (e["count"], e["sum"], e["min"], e["max"]) == (3, 10.0, 0.0, 5.0)
    assert (e["scale"], e["zero_count"]) == (0, 1)
    assert (e["positive_offset"], e["positive_bucket_counts"]) == (1, [0, 2])
    assert (e["negative_offset"], e["negative_bucket_counts"], e["zero_threshold"]) == (0, [], 0.0)
    assert e["_record_index"] == 3


def test_anchor_otlp2parquet_base64_trace(corpus: Path, ingest_cached) -> None:
    path = corpus / "otlp2parquet/testdata/trace.json"
    ing = ingest_cached(path)
    span = actual_rows(ing, "spans")[0]
    # "nXmxo38xgBzRGmcG+0DWvQ==" / "3lYkOenBuCM=" / "V1JoRpA7sT4=" in the file
    assert span["trace_id"] == bytes.fromhex("9d79b1a37f31801cd11a6706fb40d6bd")
    assert span["span_id"] == bytes.fromhex("de562439e9c1b823")
    assert span["parent_span_id"] == bytes.fromhex("57526846903bb13e")
    assert span["name"] == "router frontend egress"
    assert span["kind"] == 3  # "SPAN_KIND_CLIENT"
    assert span["start_time"] == 1760738064624462000 and span["end_time"] == 1760738064628483000
    assert span["duration_ns"] == 4_021_000
    assert span["service_name"] == "frontend-proxy" and span["service_namespace"] == "opentelemetry-demo"
    assert span["host_name"] == "docker-desktop"
    assert ing.entry(path)["ids_base64"] == 6  # 2 spans x (trace, span, parent)


def test_anchor_otlp2parquet_logs_jsonl(corpus: Path, ingest_cached) -> None:
    ing = ingest_cached(corpus / "otlp2parquet/testdata/logs.jsonl")
    log = actual_rows(ing, "logs")[0]
    assert log["time"] == 1760741572254301000 and log["observed_time"] is None
    assert log["severity_number"] == 9 and log["severity_text"] == "INFO"  # "SEVERITY_NUMBER_INFO"
    assert log["trace_id"] == base64.b64decode("px89Gm0tPK2zZpy9UOFl5A==")
    assert log["span_id"] == base64.b64decode("NCSdi4KfQRY=")
    assert log["flags"] == 1
    assert log["body"] == ("string", "Product Found")
    assert log["service_name"] == "product-catalog"
    assert log["resource"]["schema_url"] == "https://opentelemetry.io/schemas/1.6.1"


def test_anchor_otlp2parquet_gauge_pb_exact_int(corpus: Path, ingest_cached) -> None:
    ing = ingest_cached(corpus / "otlp2parquet/testdata/metrics_gauge.pb")
    rows = actual_rows(ing, "metrics_number")
    assert [(r["metric_name"], r["value_double"], r["value_int"]) for r in rows] == [
        ("cpu.usage", 67.95700988434129, None),
        ("cpu.usage", 21.87580664170002, None),
        ("memory.available", 8589934592.0, 8589934592),
    ]
    assert rows[0]["attributes"] == [("host", "string", "web-01"), ("cpu", "int", "0")]
    assert rows[0]["time"] == 1705327800000000000 and rows[1]["time"] == 1705327801000000000
    assert rows[0]["deployment_environment_name"] == "production"  # from the older key deployment.environment
    assert rows[0]["service_version"] == "1.0.0"
    assert rows[0]["series_id"] != rows[1]["series_id"]  # cpu 0 vs cpu 1


def test_anchor_otlp2parquet_histograms_and_summary(corpus: Path, ingest_cached) -> None:
    base = corpus / "otlp2parquet/testdata"
    h = actual_rows(ingest_cached(base / "metrics_histogram.json"), "metrics_histogram")[2]
    assert h["metric_name"] == "db.query.duration"
    assert h["bucket_counts"] == [1234, 2891, 876, 198, 35] and h["explicit_bounds"] == [1.0, 5.0, 10.0, 50.0]
    assert (h["count"], h["sum"], h["min"], h["max"]) == (5234, 12456.8, 0.2, 89.5)
    e = actual_rows(ingest_cached(base / "metrics_exponential_histogram.jsonl"), "metrics_exp_histogram")[0]
    assert (e["scale"], e["zero_count"], e["positive_offset"]) == (3, 5, 2)
    assert e["positive_bucket_counts"] == [234, 567, 892, 645, 178, 22]
    s = actual_rows(ingest_cached(base / "metrics_summary.pb"), "metrics_summary")[0]
    assert (s["count"], s["sum"]) == (8534, 45892134.0)
    assert s["quantiles"] == [0.0, 0.5, 0.9, 0.95, 0.99, 1.0]  # the first quantile (0) is omitted in the file
    assert s["quantile_values"] == [128.0, 4512.0, 12834.0, 18923.0, 45123.0, 98234.0]


# ==================================================================================================
# 2. the same content in different framings gives the same rows
# ==================================================================================================

FRAMING_GROUPS = {
    **{f"metrics_{k}": [f"metrics_{k}.json", f"metrics_{k}.jsonl", f"metrics_{k}.pb"]
       for k in ("gauge", "sum", "histogram", "exponential_histogram", "summary", "mixed")},
    "trace": ["trace.json", "trace.pb"],
    "traces": ["traces.jsonl", "traces.pb"],
    "logs": ["logs.jsonl", "logs.pb"],
}  # fmt: skip


def _without_lineage(rows: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k != "_source_file"} for r in rows]


@pytest.mark.parametrize("group", sorted(FRAMING_GROUPS))
def test_framings_give_identical_rows(group: str, corpus: Path, ingest_cached) -> None:
    """``X.json`` / ``X.jsonl`` / ``X.pb`` hold the same data (checked first, from the sources), so every
    table must be identical apart from ``_source_file`` — ids, resource_id, scope_id and series_id too."""
    paths = [corpus / "otlp2parquet/testdata" / name for name in FRAMING_GROUPS[group]]
    refs = [reference(p) for p in paths]
    for p, ref in zip(paths[1:], refs[1:], strict=True):
        for table in S.TABLES:
            assert same(_without_lineage(ref.rows[table]), _without_lineage(refs[0].rows[table])), (
                f"{p.name} and {paths[0].name} do not hold the same {table} (the premise of this test)"
            )
    first = ingest_cached(paths[0])
    for p in paths[1:]:
        other = ingest_cached(p)
        for table in S.TABLES:
            a, b = (_without_lineage(_resolved(x.tables[table]).to_pylist()) for x in (first, other))
            assert same(b, a), f"{table}: {p.name} differs from {paths[0].name}"


# ==================================================================================================
# 3. otlp2parquet's own Parquet output (ClickHouse-style schema), compared by value
# ==================================================================================================
# Their files were written from the .pb files. Compared (theirs -> ours):
#   all tables   Timestamp -> time / start_time, at their microsecond precision (ours ns // 1000)
#                ServiceName -> service_name; ResourceAttributes (JSON) -> resources.attributes, minus the
#                keys their traces/logs schemas move out to columns (service.name, service.namespace,
#                service.instance.id); ScopeName -> scope_name; ScopeVersion -> scopes.scope_version
#   traces       TraceId/SpanId/ParentSpanId (hex strings) -> trace_id/span_id/parent_span_id; SpanName ->
#                name; SpanKind and StatusCode (enum *names*) -> kind / status_code through the
#                opentelemetry.proto enums; StatusMessage; TraceState; Duration -> duration_ns;
#                SpanAttributes -> attributes; Events* -> span_events (time, name, attributes);
#                Links* -> span_links (linked ids, trace_state, attributes)
#   logs         TimestampTime -> time; ObservedTimestamp (epoch when unset) -> observed_time (null);
#                TraceId/SpanId (binary, zeros when unset) -> trace_id/span_id (null); TraceFlags -> flags;
#                SeverityNumber/SeverityText; Body (JSON of the value) -> body; LogAttributes ->
#                attributes; ServiceNamespace/ServiceInstanceId; ResourceSchemaUrl -> resources.schema_url;
#                ScopeAttributes -> scopes.attributes; ScopeSchemaUrl -> scopes.schema_url
#   metrics      MetricName/MetricDescription/MetricUnit; Attributes -> attributes; Value -> value_double;
#                AggregationTemporality/IsMonotonic; Count/Sum/Min/Max; BucketCounts/ExplicitBounds;
#                Scale/ZeroCount/Positive*/Negative*; QuantileQuantiles/QuantileValues -> quantiles /
#                quantile_values
# Not compared, because their schema does not carry them: start times, end time (beyond Duration),
# flags of spans and points, dropped counts, value_int (their Value is a double: compared through
# value_double), zero_threshold, exemplars, event_name, log body type tags (their Body is JSON, so a
# string "1" and an int 1 are told apart but bytes are not), and metrics_mixed (no Parquet of theirs).

O2P = "otlp2parquet/testdata"
THEIR_PARQUET = {
    "traces": ("traces.pb", "spans"),
    "logs": ("logs.pb", "logs"),
    "metrics_gauge": ("metrics_gauge.pb", "metrics_number"),
    "metrics_sum": ("metrics_sum.pb", "metrics_number"),
    "metrics_histogram": ("metrics_histogram.pb", "metrics_histogram"),
    "metrics_exponential_histogram": ("metrics_exponential_histogram.pb", "metrics_exp_histogram"),
    "metrics_summary": ("metrics_summary.pb", "metrics_summary"),
}
PROMOTED_OUT = {
    "traces": {"service.name", "service.namespace"},
    "logs": {"service.name", "service.namespace", "service.instance.id"},
}


def _us(t_ns: int | None) -> int | None:
    return None if t_ns is None else t_ns // 1000


def _their_rows(path: Path) -> list[dict[str, Any]]:
    t = pq.read_table(path)
    for i, f in enumerate(t.schema):
        if pa.types.is_timestamp(f.type):
            t = t.set_column(i, f.name, t.column(i).cast(pa.int64()))
        elif pa.types.is_list(f.type) and pa.types.is_timestamp(f.type.value_type):
            t = t.set_column(i, f.name, t.column(i).cast(pa.list_(pa.int64())))
    return t.to_pylist()


def _compare(what: str, pairs: list[tuple[str, Any, Any]]) -> list[str]:
    return [f"{what} {col}: theirs {_short(t)}, ours {_short(o)}" for col, t, o in pairs if not same(t, o)]


@pytest.mark.parametrize("name", sorted(THEIR_PARQUET))
def test_matches_otlp2parquet_parquet(name: str, corpus: Path, ingest_cached) -> None:
    """Their row for every one of ours (joined on ids / time / attributes), equal where the schemas overlap."""
    src, table = THEIR_PARQUET[name]
    theirs = _their_rows(corpus / O2P / "parquet" / f"{name}.parquet")
    ing = ingest_cached(corpus / O2P / src)
    ours = actual_rows(ing, table)
    children: dict[str, dict[int, list[dict]]] = {}
    for child in ("span_events", "span_links"):
        children[child] = defaultdict(list)
        for r in actual_rows(ing, child):
            children[child][r["_record_index"]].append(r)
    assert len(theirs) == len(ours), f"{name}: {len(theirs)} rows in theirs, {len(ours)} in ours"
    kind = "traces" if name == "traces" else "logs" if name == "logs" else "metrics"
    problems: list[str] = []

    def key(r: dict, mine: bool) -> tuple:
        if kind == "traces":
            return (r["trace_id"].hex(), r["span_id"].hex()) if mine else (r["TraceId"], r["SpanId"])
        if kind == "logs":
            if mine:
                body = None if r["body"] is None else json.dumps(tree_to_python(r["body"]), sort_keys=True)
                return (_us(r["time"]), r["trace_id"] or bytes(16), r["span_id"] or bytes(8), body)
            body = None if r["Body"] is None else json.dumps(json.loads(r["Body"]), sort_keys=True)
            return (r["Timestamp"], r["TraceId"], r["SpanId"], body)
        if mine:
            return (
                r["metric_name"],
                _us(r["time"]),
                json.dumps(attrs_to_python(r["attributes"]), sort_keys=True),
            )
        return (r["MetricName"], r["Timestamp"], json.dumps(json.loads(r["Attributes"]), sort_keys=True))

    by_key = {key(r, True): r for r in ours}
    assert len(by_key) == len(ours), f"{name}: join key not unique in ours"
    assert len({key(t, False) for t in theirs}) == len(theirs), f"{name}: join key not unique in theirs"
    for t in theirs:
        o = by_key.get(key(t, False))
        if o is None:
            problems.append(f"{name}: their row {key(t, False)} has no match in ours")
            continue
        res_attrs = attrs_to_python(o["resource"]["attributes"])
        for k in PROMOTED_OUT.get(kind, set()):
            res_attrs.pop(k, None)
        pairs = [
            ("Timestamp", t["Timestamp"], _us(o["start_time"] if kind == "traces" else o["time"])),
            ("ServiceName", t["ServiceName"], o["service_name"]),
            ("ResourceAttributes", json.loads(t["ResourceAttributes"]), res_attrs),
            ("ScopeName", t["ScopeName"] or None, o["scope_name"]),
            ("ScopeVersion", t["ScopeVersion"], o["scope"]["scope_version"]),
        ]
        if kind == "traces":
            events = children["span_events"][o["_record_index"]]
            links = children["span_links"][o["_record_index"]]
            pairs += [
                ("ParentSpanId", t["ParentSpanId"] or None, o["parent_span_id"] and o["parent_span_id"].hex()),
                ("TraceState", t["TraceState"] or None, o["trace_state"]),
                ("SpanName", t["SpanName"], o["name"]),
                ("SpanKind", SPAN_KIND[t["SpanKind"]], o["kind"]),
                ("StatusCode", STATUS_CODE[t["StatusCode"]] if t["StatusCode"] else 0, o["status_code"]),
                ("StatusMessage", t["StatusMessage"] or None, o["status_message"]),
                ("Duration", t["Duration"], o["duration_ns"]),
                ("SpanAttributes", json.loads(t["SpanAttributes"]), attrs_to_python(o["attributes"])),
                ("EventsTimestamp", t["EventsTimestamp"], [_us(e["time"]) for e in events]),
                ("EventsName", t["EventsName"], [e["name"] for e in events]),
                ("EventsAttributes", [json.loads(a) for a in t["EventsAttributes"]],
                 [attrs_to_python(e["attributes"]) for e in events]),
                ("LinksTraceId", t["LinksTraceId"], [lk["linked_trace_id"].hex() for lk in links]),
                ("LinksSpanId", t["LinksSpanId"], [lk["linked_span_id"].hex() for lk in links]),
                ("LinksTraceState", [s or None for s in t["LinksTraceState"]], [lk["trace_state"] for lk in links]),
                ("LinksAttributes", [json.loads(a) for a in t["LinksAttributes"]],
                 [attrs_to_python(lk["attributes"]) for lk in links]),
            ]  # fmt: skip
        elif kind == "logs":
            pairs += [
                ("TimestampTime", t["TimestampTime"], _us(o["time"])),
                ("ObservedTimestamp", t["ObservedTimestamp"] or None, _us(o["observed_time"])),
                ("TraceFlags", t["TraceFlags"], o["flags"]),
                ("SeverityNumber", t["SeverityNumber"], o["severity_number"]),
                ("SeverityText", t["SeverityText"] or None, o["severity_text"]),
                ("LogAttributes", json.loads(t["LogAttributes"]), attrs_to_python(o["attributes"])),
                ("ServiceNamespace", t["ServiceNamespace"], o["service_namespace"]),
                ("ServiceInstanceId", t["ServiceInstanceId"], o["service_instance_id"]),
                ("ResourceSchemaUrl", t["ResourceSchemaUrl"], o["resource"]["schema_url"]),
                (
                    "ScopeAttributes",
                    json.loads(t["ScopeAttributes"]),
                    attrs_to_python(o["scope"]["attributes"]),
                ),
                ("ScopeSchemaUrl", t["ScopeSchemaUrl"], o["scope"]["schema_url"]),
            ]
        else:
            pairs += [
                ("MetricDescription", t["MetricDescription"], o["metric_description"]),
                ("MetricUnit", t["MetricUnit"], o["unit"]),
                ("Attributes", json.loads(t["Attributes"]), attrs_to_python(o["attributes"])),
            ]
            optional = {"AggregationTemporality": "aggregation_temporality", "IsMonotonic": "is_monotonic",
                        "Value": "value_double", "Count": "count", "Sum": "sum", "Min": "min", "Max": "max",
                        "BucketCounts": "bucket_counts", "ExplicitBounds": "explicit_bounds", "Scale": "scale",
                        "ZeroCount": "zero_count", "PositiveOffset": "positive_offset",
                        "PositiveBucketCounts": "positive_bucket_counts", "NegativeOffset": "negative_offset",
                        "NegativeBucketCounts": "negative_bucket_counts", "QuantileQuantiles": "quantiles",
                        "QuantileValues": "quantile_values"}  # fmt: skip
            pairs += [(theirs_col, t[theirs_col], o[ours_col]) for theirs_col, ours_col in optional.items()
                      if theirs_col in t]  # fmt: skip
        problems += _compare(f"{name} row {key(t, False)[:2]}", pairs)
    assert not problems, "\n".join(problems[:40])


# ==================================================================================================
# 4. invalid inputs: quarantined with a reason, never a crash
# ==================================================================================================

INVALID_REASON = {
    "log_invalid_severity.json": ("unknown_enum", "INVALID_SEVERITY_VALUE"),
    "trace_invalid_kind.json": ("unknown_enum", "SPAN_KIND_INVALID_TYPE"),
    "metrics_invalid_temporality.json": ("unknown_enum", "INVALID_TEMPORALITY_VALUE"),
    "trace_invalid_base64.json": ("invalid_id", "!!!INVALID_BASE64!!!"),
    "trace_mixed_encoding.json": ("invalid_id", "zzz"),
    "malformed.json": ("malformed_json", None),
}


def test_invalid_file_is_quarantined(invalid_file: Path, corpus: Path, ingest_cached) -> None:
    assert invalid_file.name in INVALID_REASON, (
        f"{invalid_file.name}: a new invalid file; add its reason here"
    )
    code, culprit = INVALID_REASON[invalid_file.name]
    ing = ingest_cached(invalid_file)
    entry = ing.entry(invalid_file)
    assert entry["records_read"] == entry["records_written"] + entry["records_quarantined"]
    assert entry["records_written"] == 0
    assert entry["quarantined_by_reason"] == {code: 1}
    assert len(ing.quarantine) == 1
    q = ing.quarantine[0]
    assert q["file"] == str(invalid_file)
    assert q["reason_code"] == code
    assert isinstance(q["position"], str) and q["position"]
    assert isinstance(q["reason"], str) and q["reason"].strip() and "\n" not in q["reason"]
    if code == "malformed_json":
        # the whole document is unreadable: one message quarantined, no record known, text kept
        assert entry["messages_quarantined"] == 1
        assert entry["records_read"] == entry["records_quarantined"] == 0
        assert q["record_text"] == invalid_file.read_text(encoding="utf-8")
        return
    assert entry["messages_quarantined"] == 0
    assert entry["records_read"] == entry["records_quarantined"] == 1
    assert culprit in q["reason"], f"the reason should name the bad value {culprit!r}: {q['reason']!r}"
    # the rejected record itself is kept, as it was in the file
    doc = json.loads(invalid_file.read_text(encoding="utf-8"))
    (key,) = doc
    rc = doc[key][0]
    sc = next(v for k, v in rc.items() if k.startswith("scope"))[0]
    items = next(v for k, v in sc.items() if k != "scope")
    if key == "resourceMetrics":
        point = next(v for k, v in items[0].items() if isinstance(v, dict))["dataPoints"][0]
        assert q["record"]["dataPoint"] == point
        assert q["record"]["metric"]["name"] == items[0]["name"]
    else:
        assert q["record"] == items[0]
    for table in RECORD_TABLES:
        assert ing.tables[table].num_rows == 0


def test_cli_on_invalid_folder_exits_0_and_names_the_files(corpus: Path, tmp_path: Path) -> None:
    folder = corpus / O2P / "invalid"
    exe = Path(sys.executable).with_name("otlp-aiops")
    assert exe.exists(), f"{exe}: the console script is not installed in this environment"
    out = tmp_path / "out"
    proc = subprocess.run([str(exe), "ingest", str(folder), "--out", str(out)], capture_output=True, text=True,
                          timeout=60, check=False)  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for name in INVALID_REASON:
        assert str(folder / name) in proc.stdout, f"{name} not named in the summary:\n{proc.stdout}"
    assert "skipped 1 file(s) that are not OTLP" in proc.stdout  # invalid/README.md
    report = json.loads((out / "ingest_report.json").read_text())
    t = report["totals"]
    assert t["records_read"] == t["records_written"] + t["records_quarantined"]
    assert t["records_quarantined"] == 5 and t["messages_quarantined"] == 1
    assert t["quarantined_by_reason"] == {"invalid_id": 2, "malformed_json": 1, "unknown_enum": 3}
    assert [s["path"] for s in report["skipped"]] == [str(folder / "README.md")]


# ==================================================================================================
# 5. the whole corpus folder at once
# ==================================================================================================


def test_whole_corpus_folder(corpus: Path, ingest_cached) -> None:
    """Non-OTLP files (README, LICENSE, Parquet) are skipped with a reason; every OTLP file converts to
    exactly what it converts to alone, through the parallel path (default workers)."""
    ing = ingest_cached(corpus, workers=None)
    every = sorted(p for p in corpus.rglob("*") if p.is_file())
    otlp = [p for p in every if p.suffix in (".json", ".jsonl", ".pb")]
    other = [p for p in every if p not in otlp]
    assert {p.suffix for p in other} <= {".md", "", ".parquet"}, other
    skipped = {s["path"]: s["reason"] for s in ing.report["skipped"]}
    assert sorted(skipped) == sorted(str(p) for p in other)
    assert all(r.startswith("not OTLP") for r in skipped.values()), skipped
    assert all("Parquet" in skipped[str(p)] for p in other if p.suffix == ".parquet")
    assert sorted(f["path"] for f in ing.report["files"]) == sorted(str(p) for p in otlp)
    t = ing.report["totals"]
    assert t["files"] == len(otlp) and t["files_skipped"] == len(other)
    assert t["records_read"] == t["records_written"] + t["records_quarantined"]
    for f in ing.report["files"]:
        assert f["records_read"] == f["records_written"] + f["records_quarantined"], f["path"]
        bad = f["records_quarantined"] or f["messages_quarantined"]
        assert bool(bad) == ("/invalid/" in f["path"]), f
    assert {q["file"] for q in ing.quarantine} == {str(p) for p in otlp if "invalid" in p.parts}

    resources, scopes = {}, {}
    for p in otlp:
        alone = ingest_cached(p)
        assert ing.entry(p) == alone.entry(p), f"{p}: report entry differs from the file ingested alone"
        for table in S.TABLES:
            if table in ("resources", "scopes"):
                continue
            assert same(actual_rows(ing, table, str(p)), actual_rows(alone, table)), f"{p} {table}"
        resources |= resources_by_id(alone)
        scopes |= scopes_by_id(alone)
    assert same(resources_by_id(ing), resources) and same(scopes_by_id(ing), scopes)
    assert t["rows_written"]["resources"] == len(resources)
    assert t["ids_base64"] == sum(f["ids_base64"] for f in ing.report["files"])
    assert t["ids_base64"] == sum(reference(p).ids.base64 for p in otlp if "invalid" not in p.parts)
