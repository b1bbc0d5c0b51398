"""Decode OTLP/JSON (already parsed into dicts and lists) into batch rows, leniently.

Accepted beyond the strict OTLP/JSON encoding: base64 ids as well as hex (counted, since the
specification says hex), 64-bit integers as numbers or strings, enums as numbers, numeric strings
or names, snake_case keys as well as lowerCamelCase, "NaN" / "Infinity" / "-Infinity" doubles.
Unknown keys are ignored and counted. A record that breaks a rule (bad id, unknown enum value,
out-of-range timestamp, wrong type) is quarantined alone; the rest of its message is converted.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

import orjson
from opentelemetry.proto.logs.v1 import logs_pb2
from opentelemetry.proto.metrics.v1 import metrics_pb2
from opentelemetry.proto.trace.v1 import trace_pb2

from otlp_aiops.otlp.anyvalue import (
    RecordError,
    json_bool,
    json_double,
    json_int64,
    render_json,
)
from otlp_aiops.otlp.batches import (
    ZERO_SPAN_ID,
    ZERO_TRACE_ID,
    AttrCols,
    LogBatch,
    MetricBatch,
    MetricInfo,
    SpanBatch,
    make_resource,
    make_scope,
    series_id,
)
from otlp_aiops.otlp.context import FileContext

INT64_MAX = 2**63 - 1
UINT64_MAX = 2**64 - 1
UINT32_MAX = 2**32 - 1


def _enum_names(enum_type: Any) -> dict[str, int]:
    return dict(enum_type.items())


SPAN_KIND = _enum_names(trace_pb2.Span.SpanKind)
STATUS_CODE = _enum_names(trace_pb2.Status.StatusCode)
SEVERITY = _enum_names(logs_pb2.SeverityNumber)
TEMPORALITY = _enum_names(metrics_pb2.AggregationTemporality)
SPAN_KIND_MAX = max(SPAN_KIND.values())
STATUS_CODE_MAX = max(STATUS_CODE.values())
SEVERITY_MAX = max(SEVERITY.values())
TEMPORALITY_MAX = max(TEMPORALITY.values())


def _camel(snake: str) -> str:
    head, *rest = snake.split("_")
    return head + "".join(p.title() for p in rest)


def _known(*snake_names: str) -> frozenset[str]:
    return frozenset([*snake_names, *(_camel(n) for n in snake_names)])


K_SPAN = _known("trace_id", "span_id", "trace_state", "parent_span_id", "flags", "name", "kind",
                "start_time_unix_nano", "end_time_unix_nano", "attributes", "dropped_attributes_count",
                "events", "dropped_events_count", "links", "dropped_links_count", "status")  # fmt: skip
K_EVENT = _known("time_unix_nano", "name", "attributes", "dropped_attributes_count")
K_LINK = _known("trace_id", "span_id", "trace_state", "attributes", "dropped_attributes_count", "flags")
K_STATUS = _known("message", "code")
K_LOG = _known("time_unix_nano", "observed_time_unix_nano", "severity_number", "severity_text", "body",
               "attributes", "dropped_attributes_count", "flags", "trace_id", "span_id", "event_name")  # fmt: skip
K_RESOURCE = _known("attributes", "dropped_attributes_count", "entity_refs")
K_SCOPE = _known("name", "version", "attributes", "dropped_attributes_count")
K_METRIC = _known("name", "description", "unit", "gauge", "sum", "histogram", "exponential_histogram",
                  "summary", "metadata")  # fmt: skip
K_NUMBER = _known("attributes", "start_time_unix_nano", "time_unix_nano", "as_double", "as_int",
                  "exemplars", "flags")  # fmt: skip
K_HIST = _known("attributes", "start_time_unix_nano", "time_unix_nano", "count", "sum", "bucket_counts",
                "explicit_bounds", "exemplars", "flags", "min", "max")  # fmt: skip
K_EXP = _known("attributes", "start_time_unix_nano", "time_unix_nano", "count", "sum", "scale",
               "zero_count", "positive", "negative", "flags", "exemplars", "min", "max",
               "zero_threshold")  # fmt: skip
K_SUMMARY = _known("attributes", "start_time_unix_nano", "time_unix_nano", "count", "sum",
                   "quantile_values", "flags")  # fmt: skip
K_EXEMPLAR = _known("filtered_attributes", "time_unix_nano", "as_double", "as_int", "span_id", "trace_id")

SIGNAL_KEYS = {
    "resourceSpans": "traces",
    "resource_spans": "traces",
    "resourceLogs": "logs",
    "resource_logs": "logs",
    "resourceMetrics": "metrics",
    "resource_metrics": "metrics",
}


def signal_of(obj: Any) -> str | None:
    """The signal of a parsed OTLP/JSON top-level object, from its key; None if it has none."""
    if isinstance(obj, dict):
        for k in obj:
            s = SIGNAL_KEYS.get(k)
            if s is not None:
                return s
    return None


# --------------------------------------------------------------------------------------------------
# field helpers
# --------------------------------------------------------------------------------------------------


def _g(d: dict, camel: str, snake: str) -> Any:
    v = d.get(camel)
    return d.get(snake) if v is None else v


def _list(d: dict, camel: str, snake: str, what: str) -> list:
    v = d.get(camel)
    if v is None:
        v = d.get(snake)
        if v is None:
            return []
    if type(v) is not list:
        raise RecordError("invalid_structure", f"{what} is {type(v).__name__}, not a list")
    return v


def _id(x: Any, n: int, what: str, fc: FileContext) -> bytes | None:
    """A trace (n=16) or span (n=8) id from hex (the OTLP/JSON rule) or base64 (counted)."""
    if not x:
        return None
    if type(x) is not str:
        raise RecordError("invalid_id", f"{what} {x!r} is not a string")
    b = None
    if len(x) == 2 * n:
        try:
            b = bytes.fromhex(x)
        except ValueError:
            b = None
    if b is None or len(b) != n:
        try:
            b = base64.b64decode(x + "=" * (-len(x) % 4), validate=True)
        except (binascii.Error, ValueError):
            b = None
        if b is None or len(b) != n:
            raise RecordError("invalid_id", f"{what} {x!r} is neither a {n}-byte hex nor a base64 id")
        fc.ids_base64 += 1
    return None if b == (ZERO_TRACE_ID if n == 16 else ZERO_SPAN_ID) else b


def _time(x: Any, what: str) -> int:
    """Unix nanoseconds (0 = unset) from a string or number; must fit a timestamp[ns]."""
    if x is None:
        return 0
    t = int(x) if type(x) is str else json_int64(x, what) if type(x) is not int else x
    if t < 0 or t > INT64_MAX:
        raise RecordError("timestamp_out_of_range", f"{what} {x!r} is outside 1970..2262 in nanoseconds")
    return t


def _uint(x: Any, what: str, top: int = UINT32_MAX) -> int:
    if x is None:
        return 0
    n = x if type(x) is int else json_int64(x, what) if not isinstance(x, str) or not x.isdigit() else int(x)
    if n < 0 or n > top:
        raise RecordError("invalid_value", f"{what} {x!r} is out of range")
    return n


def _u64(x: Any, what: str) -> int:
    if x is None:
        return 0
    if isinstance(x, str) and x.isdigit():
        n = int(x)
    elif type(x) is int:
        n = x
    else:
        n = json_int64(x, what)
    if n < 0 or n > UINT64_MAX:
        raise RecordError("invalid_value", f"{what} {x!r} is out of range")
    return n


def _enum(x: Any, names: dict[str, int], top: int, what: str) -> int:
    if x is None:
        return 0
    if type(x) is int:
        v = x
    elif isinstance(x, str):
        v = names.get(x)
        if v is None:
            if not x.isdigit():
                raise RecordError("unknown_enum", f"{what} {x!r} is not a known value")
            v = int(x)
    else:
        raise RecordError("unknown_enum", f"{what} {x!r} is not an enum value")
    if v < 0 or v > top:
        raise RecordError("unknown_enum", f"{what} {x!r} is not a known value")
    return v


def _str(x: Any, what: str) -> str | None:
    """An optional string; "" and absent are both null."""
    if not x:
        return None
    if type(x) is not str:
        raise RecordError("invalid_value", f"{what} {x!r} is not a string")
    return x


def attrs_json(lst: Any, ac: AttrCols, fc: FileContext, what: str = "attributes") -> None:
    """Append a list of OTLP/JSON KeyValue to ``ac``."""
    if not lst:
        return
    if type(lst) is not list:
        raise RecordError("invalid_structure", f"{what} is {type(lst).__name__}, not a list")
    keys = ac.keys
    vals = ac.vals
    for a in lst:
        if type(a) is not dict:
            raise RecordError("invalid_structure", f"{what} entry {a!r} is not an object")
        k = a.get("key")
        if type(k) is not str:
            if k is None:
                k = ""
            else:
                raise RecordError("invalid_value", f"{what} key {k!r} is not a string")
        v = a.get("value")
        if len(a) != 2:
            fc.count_unknown("KeyValue", a, _KV)
        if type(v) is dict and len(v) == 1:
            sv = v.get("stringValue")
            if type(sv) is str:
                keys.append(k)
                vals.append(sv)
                continue
        try:
            tag, text = render_json(v)
        except RecordError as e:
            raise RecordError(e.code, f"{what} {k!r}: {e.message}") from None
        ac.add_typed(k, tag, text)


_KV = frozenset(["key", "value"])


def _rendered_attrs(lst: Any, fc: FileContext, what: str) -> list[tuple[str, str, str | None]]:
    ac = AttrCols()
    attrs_json(lst, ac, fc, what)
    return ac.rendered((0, 0))


# --------------------------------------------------------------------------------------------------
# resource and scope
# --------------------------------------------------------------------------------------------------


def _resource(container: dict, fc: FileContext):
    res = container.get("resource")
    schema_url = _g(container, "schemaUrl", "schema_url") or ""
    key = (orjson.dumps(res) if res is not None else b"", schema_url)
    info = fc.resource_cache.get(key)
    if info is not None:
        return info
    if res is None:
        res = {}
    if type(res) is not dict:
        raise RecordError("invalid_structure", "resource is not an object")
    if not K_RESOURCE.issuperset(res):
        fc.count_unknown("Resource", res, K_RESOURCE)
    attrs = _rendered_attrs(res.get("attributes"), fc, "resource attributes")
    dropped = _uint(_g(res, "droppedAttributesCount", "dropped_attributes_count"), "resource droppedAttributesCount")
    refs = _g(res, "entityRefs", "entity_refs")
    refs_json = orjson.dumps(refs).decode() if refs else None
    return fc.register_resource(key, make_resource(attrs, dropped, schema_url, refs_json))


def _scope(container: dict, fc: FileContext):
    sc = container.get("scope")
    schema_url = _g(container, "schemaUrl", "schema_url") or ""
    key = (orjson.dumps(sc) if sc is not None else b"", schema_url)
    info = fc.scope_cache.get(key)
    if info is not None:
        return info
    if sc is None:
        sc = {}
    if type(sc) is not dict:
        raise RecordError("invalid_structure", "scope is not an object")
    if not K_SCOPE.issuperset(sc):
        fc.count_unknown("InstrumentationScope", sc, K_SCOPE)
    attrs = _rendered_attrs(sc.get("attributes"), fc, "scope attributes")
    dropped = _uint(_g(sc, "droppedAttributesCount", "dropped_attributes_count"), "scope droppedAttributesCount")
    name = _str(sc.get("name"), "scope name") or ""
    version = _str(sc.get("version"), "scope version") or ""
    return fc.register_scope(key, make_scope(name, version, attrs, dropped, schema_url))


def _as_record_error(e: Exception) -> RecordError:
    if isinstance(e, RecordError):
        return e
    if isinstance(e, (TypeError, AttributeError)):
        return RecordError("invalid_structure", f"unexpected structure: {e}")
    return RecordError("invalid_value", str(e))


_ERRORS = (RecordError, TypeError, AttributeError, ValueError, KeyError, OverflowError)


def _walk(doc: dict, fc: FileContext, position: str, names: tuple[str, str, str, str, str, str], per_scope) -> None:
    """Iterate resource -> scope -> items of a top-level object and call ``per_scope`` per scope.

    A resource or scope that cannot be decoded quarantines every record under it.
    """
    rkey_c, rkey_s, skey_c, skey_s, ikey_c, ikey_s = names
    try:
        rlist = _list(doc, rkey_c, rkey_s, rkey_c)
    except RecordError as e:
        fc.quarantine_message(position, e.code, e.message, doc)
        return
    for ri, rc in enumerate(rlist):
        rpath = f"{rkey_c}[{ri}]"
        try:
            if type(rc) is not dict:
                raise RecordError("invalid_structure", f"{rpath} is not an object")
            rinfo = _resource(rc, fc)
            slist = _list(rc, skey_c, skey_s, f"{rpath}.{skey_c}")
        except _ERRORS as e:
            err = _as_record_error(e)
            fc.quarantine_message(position, err.code, f"{rpath}: {err.message}", rc)
            continue
        for si, sc in enumerate(slist):
            spath = f"{rpath}.{skey_c}[{si}]"
            try:
                if type(sc) is not dict:
                    raise RecordError("invalid_structure", f"{spath} is not an object")
                items = _list(sc, ikey_c, ikey_s, f"{spath}.{ikey_c}")
                sinfo = _scope(sc, fc)
            except _ERRORS as e:
                err = _as_record_error(e)
                if type(sc) is dict and isinstance(sc.get(ikey_c) or sc.get(ikey_s), list):
                    lst = sc.get(ikey_c) or sc.get(ikey_s)
                    fc.records_read += len(lst)
                    for k, item in enumerate(lst):
                        fc.quarantine_record(position, f"{spath}.{ikey_c}[{k}]", err.code, f"{spath}: {err.message}", item)
                else:
                    fc.quarantine_message(position, err.code, f"{spath}: {err.message}", sc)
                continue
            per_scope(items, rinfo, sinfo, f"{spath}.{ikey_c}")


# --------------------------------------------------------------------------------------------------
# traces
# --------------------------------------------------------------------------------------------------


def decode_traces(doc: dict, fc: FileContext, batch: SpanBatch, position: str) -> None:
    rows = batch.rows
    attrs = batch.attrs

    def per_scope(spans: list, rinfo, sinfo, ipath: str) -> None:
        ci = batch.ctx.get(rinfo, sinfo)
        for k, s in enumerate(spans):
            rec = fc.records_read
            fc.records_read = rec + 1
            m = batch.mark()
            try:
                if not K_SPAN.issuperset(s):
                    fc.count_unknown("Span", s, K_SPAN)
                g = s.get
                tid = _id(_g(s, "traceId", "trace_id"), 16, "traceId", fc)
                sid = _id(_g(s, "spanId", "span_id"), 8, "spanId", fc)
                pid = _id(_g(s, "parentSpanId", "parent_span_id"), 8, "parentSpanId", fc)
                start = _time(_g(s, "startTimeUnixNano", "start_time_unix_nano"), "startTimeUnixNano")
                end = _time(_g(s, "endTimeUnixNano", "end_time_unix_nano"), "endTimeUnixNano")
                kind = _enum(g("kind"), SPAN_KIND, SPAN_KIND_MAX, "kind")
                name = g("name") or ""
                if type(name) is not str:
                    raise RecordError("invalid_value", f"name {name!r} is not a string")
                st = g("status")
                if st:
                    if not K_STATUS.issuperset(st):
                        fc.count_unknown("Status", st, K_STATUS)
                    code = _enum(st.get("code"), STATUS_CODE, STATUS_CODE_MAX, "status.code")
                    msg = _str(st.get("message"), "status.message")
                else:
                    code, msg = 0, None
                attrs_json(g("attributes"), attrs, fc)
                row = len(rows)
                evs = g("events")
                n_ev = len(evs) if evs else 0
                if n_ev:
                    _events(evs, row, batch, fc)
                lks = g("links")
                n_lk = len(lks) if lks else 0
                if n_lk:
                    _links(lks, row, batch, fc)
                rows.append((
                    tid, sid, pid, _str(_g(s, "traceState", "trace_state"), "traceState"),
                    _uint(g("flags"), "flags"), name, kind, start, end, code, msg, len(attrs.keys),
                    _uint(_g(s, "droppedAttributesCount", "dropped_attributes_count"), "droppedAttributesCount"),
                    n_ev, _uint(_g(s, "droppedEventsCount", "dropped_events_count"), "droppedEventsCount"),
                    n_lk, _uint(_g(s, "droppedLinksCount", "dropped_links_count"), "droppedLinksCount"),
                    ci, rec,
                ))  # fmt: skip
            except _ERRORS as e:
                batch.rollback(m)
                err = _as_record_error(e)
                fc.quarantine_record(position, f"{ipath}[{k}]", err.code, err.message, s)

    _walk(doc, fc, position, ("resourceSpans", "resource_spans", "scopeSpans", "scope_spans", "spans", "spans"),
          per_scope)  # fmt: skip


def _events(evs: Any, row: int, batch: SpanBatch, fc: FileContext) -> None:
    if type(evs) is not list:
        raise RecordError("invalid_structure", "events is not a list")
    ea = batch.event_attrs
    for j, e in enumerate(evs):
        if not K_EVENT.issuperset(e):
            fc.count_unknown("Span.Event", e, K_EVENT)
        name = e.get("name") or ""
        if type(name) is not str:
            raise RecordError("invalid_value", f"events[{j}].name {name!r} is not a string")
        attrs_json(e.get("attributes"), ea, fc, f"events[{j}].attributes")
        batch.events.append((
            row, j, _time(_g(e, "timeUnixNano", "time_unix_nano"), f"events[{j}].timeUnixNano"), name,
            len(ea.keys), _uint(_g(e, "droppedAttributesCount", "dropped_attributes_count"), "droppedAttributesCount"),
        ))  # fmt: skip


def _links(lks: Any, row: int, batch: SpanBatch, fc: FileContext) -> None:
    if type(lks) is not list:
        raise RecordError("invalid_structure", "links is not a list")
    la = batch.link_attrs
    for j, lk in enumerate(lks):
        if not K_LINK.issuperset(lk):
            fc.count_unknown("Span.Link", lk, K_LINK)
        tid = _id(_g(lk, "traceId", "trace_id"), 16, f"links[{j}].traceId", fc)
        sid = _id(_g(lk, "spanId", "span_id"), 8, f"links[{j}].spanId", fc)
        attrs_json(lk.get("attributes"), la, fc, f"links[{j}].attributes")
        batch.links.append((
            row, j, tid, sid, _str(_g(lk, "traceState", "trace_state"), "traceState"), _uint(lk.get("flags"), "flags"),
            len(la.keys), _uint(_g(lk, "droppedAttributesCount", "dropped_attributes_count"), "droppedAttributesCount"),
        ))  # fmt: skip


# --------------------------------------------------------------------------------------------------
# logs
# --------------------------------------------------------------------------------------------------


def decode_logs(doc: dict, fc: FileContext, batch: LogBatch, position: str) -> None:
    rows = batch.rows
    attrs = batch.attrs

    def per_scope(records: list, rinfo, sinfo, ipath: str) -> None:
        ci = batch.ctx.get(rinfo, sinfo)
        for k, r in enumerate(records):
            rec = fc.records_read
            fc.records_read = rec + 1
            m = batch.mark()
            try:
                if not K_LOG.issuperset(r):
                    fc.count_unknown("LogRecord", r, K_LOG)
                g = r.get
                body = g("body")
                if body is None:
                    btag, btext = None, None
                else:
                    try:
                        btag, btext = render_json(body)
                    except RecordError as e:
                        raise RecordError(e.code, f"body: {e.message}") from None
                attrs_json(g("attributes"), attrs, fc)
                rows.append((
                    _time(_g(r, "timeUnixNano", "time_unix_nano"), "timeUnixNano"),
                    _time(_g(r, "observedTimeUnixNano", "observed_time_unix_nano"), "observedTimeUnixNano"),
                    _enum(_g(r, "severityNumber", "severity_number"), SEVERITY, SEVERITY_MAX, "severityNumber"),
                    _str(_g(r, "severityText", "severity_text"), "severityText"),
                    btext, btag, len(attrs.keys),
                    _uint(_g(r, "droppedAttributesCount", "dropped_attributes_count"), "droppedAttributesCount"),
                    _uint(g("flags"), "flags"),
                    _id(_g(r, "traceId", "trace_id"), 16, "traceId", fc),
                    _id(_g(r, "spanId", "span_id"), 8, "spanId", fc),
                    _str(_g(r, "eventName", "event_name"), "eventName"),
                    ci, rec,
                ))  # fmt: skip
            except _ERRORS as e:
                batch.rollback(m)
                err = _as_record_error(e)
                fc.quarantine_record(position, f"{ipath}[{k}]", err.code, err.message, r)

    _walk(doc, fc, position, ("resourceLogs", "resource_logs", "scopeLogs", "scope_logs", "logRecords", "log_records"),
          per_scope)  # fmt: skip


# --------------------------------------------------------------------------------------------------
# metrics
# --------------------------------------------------------------------------------------------------

_DATA_KEYS = (
    ("gauge", "gauge", "gauge"),
    ("sum", "sum", "sum"),
    ("histogram", "histogram", "histogram"),
    ("exponentialHistogram", "exponential_histogram", "exponential_histogram"),
    ("summary", "summary", "summary"),
)
_TABLE_OF = {
    "gauge": "metrics_number",
    "sum": "metrics_number",
    "histogram": "metrics_histogram",
    "exponential_histogram": "metrics_exp_histogram",
    "summary": "metrics_summary",
}
_KNOWN_OF = {
    "metrics_number": K_NUMBER,
    "metrics_histogram": K_HIST,
    "metrics_exp_histogram": K_EXP,
    "metrics_summary": K_SUMMARY,
}


def _opt_double(x: Any, what: str) -> float | None:
    return None if x is None else json_double(x, what)


def _double_list(x: Any, what: str) -> list[float]:
    if not x:
        return []
    if type(x) is not list:
        raise RecordError("invalid_structure", f"{what} is not a list")
    return [json_double(v, what) for v in x]


def _u64_list(x: Any, what: str) -> list[int]:
    if not x:
        return []
    if type(x) is not list:
        raise RecordError("invalid_structure", f"{what} is not a list")
    return [_u64(v, what) for v in x]


def _buckets(b: Any, what: str) -> tuple[int, list[int]]:
    if not b:
        return 0, []
    if type(b) is not dict:
        raise RecordError("invalid_structure", f"{what} is not an object")
    off = b.get("offset", 0)
    off = json_int64(off, f"{what}.offset") if off is not None else 0
    if not -(2**31) <= off < 2**31:
        raise RecordError("invalid_value", f"{what}.offset {off} does not fit int32")
    return off, _u64_list(_g(b, "bucketCounts", "bucket_counts"), f"{what}.bucketCounts")


def _shape(table: str, p: dict) -> tuple:
    """The shape-specific tail of a point row (see batches.POINT_SHAPE_COLUMNS)."""
    if table == "metrics_number":
        d = _g(p, "asDouble", "as_double")
        i = _g(p, "asInt", "as_int")
        if i is not None:
            iv = json_int64(i, "asInt")
            return float(iv), iv
        return (None if d is None else json_double(d, "asDouble")), None
    count = _u64(p.get("count"), "count")
    if table == "metrics_histogram":
        bc = _u64_list(_g(p, "bucketCounts", "bucket_counts"), "bucketCounts")
        eb = _double_list(_g(p, "explicitBounds", "explicit_bounds"), "explicitBounds")
        return (count, _opt_double(p.get("sum"), "sum"), _opt_double(p.get("min"), "min"),
                _opt_double(p.get("max"), "max"), bc, eb)  # fmt: skip
    if table == "metrics_exp_histogram":
        scale = json_int64(p.get("scale", 0) or 0, "scale")
        if not -(2**31) <= scale < 2**31:
            raise RecordError("invalid_value", f"scale {scale} does not fit int32")
        po, pc_ = _buckets(p.get("positive"), "positive")
        no, nc = _buckets(p.get("negative"), "negative")
        zt = _g(p, "zeroThreshold", "zero_threshold")
        return (count, _opt_double(p.get("sum"), "sum"), _opt_double(p.get("min"), "min"),
                _opt_double(p.get("max"), "max"), scale, _u64(_g(p, "zeroCount", "zero_count"), "zeroCount"),
                0.0 if zt is None else json_double(zt, "zeroThreshold"), po, pc_, no, nc)  # fmt: skip
    qv = _g(p, "quantileValues", "quantile_values") or []
    if type(qv) is not list:
        raise RecordError("invalid_structure", "quantileValues is not a list")
    qs = [json_double(q.get("quantile", 0.0) or 0.0, "quantile") for q in qv]
    vs = [json_double(q.get("value", 0.0) or 0.0, "value") for q in qv]
    s = p.get("sum")
    return count, 0.0 if s is None else json_double(s, "sum"), qs, vs


def _exemplars(
    exs: Any, table: str, sid: int, info: MetricInfo, rinfo, rec: int, batch: MetricBatch, fc: FileContext
) -> int:
    if not exs:
        return 0
    if type(exs) is not list:
        raise RecordError("invalid_structure", "exemplars is not a list")
    ea = batch.exemplar_attrs
    short = {"metrics_number": "number", "metrics_histogram": "histogram", "metrics_exp_histogram": "exponential_histogram"}[table]
    for j, ex in enumerate(exs):
        if not K_EXEMPLAR.issuperset(ex):
            fc.count_unknown("Exemplar", ex, K_EXEMPLAR)
        attrs_json(_g(ex, "filteredAttributes", "filtered_attributes"), ea, fc, f"exemplars[{j}].filteredAttributes")
        i = _g(ex, "asInt", "as_int")
        d = _g(ex, "asDouble", "as_double")
        if i is not None:
            iv = json_int64(i, "exemplar asInt")
            vd, vi = float(iv), iv
        else:
            vd, vi = (None if d is None else json_double(d, "exemplar asDouble")), None
        batch.exemplars.append((
            short, sid, info.name, j, _time(_g(ex, "timeUnixNano", "time_unix_nano"), f"exemplars[{j}].timeUnixNano"),
            vd, vi, _id(_g(ex, "traceId", "trace_id"), 16, f"exemplars[{j}].traceId", fc),
            _id(_g(ex, "spanId", "span_id"), 8, f"exemplars[{j}].spanId", fc), len(ea.keys),
            rinfo.resource_id, rinfo.service_name, rec,
        ))  # fmt: skip
    return len(exs)


def _metric_info(mt: dict, fc: FileContext) -> tuple[MetricInfo, str, list]:
    """(info, point table, data points) of an OTLP/JSON Metric."""
    if not K_METRIC.issuperset(mt):
        fc.count_unknown("Metric", mt, K_METRIC)
    name = mt.get("name") or ""
    if type(name) is not str:
        raise RecordError("invalid_value", f"metric name {name!r} is not a string")
    found = [(mtype, mt.get(c) if mt.get(c) is not None else mt.get(s)) for c, s, mtype in _DATA_KEYS]
    found = [(t, d) for t, d in found if d is not None]
    if len(found) > 1:
        raise RecordError("invalid_structure", f"metric {name!r} sets {', '.join(t for t, _ in found)}")
    if not found:
        raise RecordError("invalid_structure", f"metric {name!r} has no data (gauge/sum/histogram/…)")
    mtype, data = found[0]
    if type(data) is not dict:
        raise RecordError("invalid_structure", f"metric {name!r} {mtype} is not an object")
    temporality = None
    monotonic = None
    if mtype in ("sum", "histogram", "exponential_histogram"):
        temporality = _enum(
            _g(data, "aggregationTemporality", "aggregation_temporality"), TEMPORALITY, TEMPORALITY_MAX,
            "aggregationTemporality",
        )
    if mtype == "sum":
        monotonic = json_bool(_g(data, "isMonotonic", "is_monotonic") or False, "isMonotonic")
    info = MetricInfo(
        name=name,
        description=_str(mt.get("description"), "description"),
        unit=_str(mt.get("unit"), "unit"),
        metric_type=mtype,
        temporality=temporality,
        is_monotonic=monotonic,
        metadata=_rendered_attrs(mt.get("metadata"), fc, "metadata"),
    )
    return info, _TABLE_OF[mtype], _list(data, "dataPoints", "data_points", f"metric {name!r} dataPoints")


def decode_metrics(doc: dict, fc: FileContext, batch: MetricBatch, position: str) -> None:
    def per_scope(metrics: list, rinfo, sinfo, ipath: str) -> None:
        ci = batch.ctx.get(rinfo, sinfo)
        for mi, mt in enumerate(metrics):
            mpath = f"{ipath}[{mi}]"
            try:
                if type(mt) is not dict:
                    raise RecordError("invalid_structure", "metric is not an object")
                info, table, points = _metric_info(mt, fc)
            except _ERRORS as e:
                err = _as_record_error(e)
                pts = _points_of(mt)
                if pts is None:
                    fc.quarantine_message(position, err.code, f"{mpath}: {err.message}", mt)
                else:
                    fc.records_read += len(pts)
                    for k, p in enumerate(pts):
                        fc.quarantine_record(position, f"{mpath}.dataPoints[{k}]", err.code, err.message,
                                             {"metric": {kk: vv for kk, vv in mt.items() if kk not in _DATA_KEYS_FLAT}, "dataPoint": p})  # fmt: skip
                continue
            ii = batch.add_info(info)
            rows = batch.points[table]
            ac = batch.attrs[table]
            known = _KNOWN_OF[table]
            for k, p in enumerate(points):
                rec = fc.records_read
                fc.records_read = rec + 1
                m = batch.mark(table)
                try:
                    if not known.issuperset(p):
                        fc.count_unknown(f"{info.metric_type}.DataPoint", p, known)
                    a0 = ac.mark()
                    attrs_json(p.get("attributes"), ac, fc)
                    sid = series_id(rinfo.resource_id, sinfo.scope_id, info, ac.rendered(a0))
                    shape = _shape(table, p)
                    nex = 0
                    if table != "metrics_summary":
                        nex = _exemplars(p.get("exemplars"), table, sid, info, rinfo, rec, batch, fc)
                    rows.append((
                        ii, sid, _time(_g(p, "startTimeUnixNano", "start_time_unix_nano"), "startTimeUnixNano"),
                        _time(_g(p, "timeUnixNano", "time_unix_nano"), "timeUnixNano"), len(ac.keys),
                        _uint(p.get("flags"), "flags"), nex, ci, rec, *shape,
                    ))  # fmt: skip
                except _ERRORS as e:
                    batch.rollback(table, m)
                    err = _as_record_error(e)
                    fc.quarantine_record(position, f"{mpath}.dataPoints[{k}]", err.code, err.message, p)

    _walk(doc, fc, position,
          ("resourceMetrics", "resource_metrics", "scopeMetrics", "scope_metrics", "metrics", "metrics"),
          per_scope)  # fmt: skip


_DATA_KEYS_FLAT = frozenset(k for c, s, _ in _DATA_KEYS for k in (c, s))


def _points_of(mt: Any) -> list | None:
    """The data points of a metric that failed to decode, if they can be located at all."""
    if type(mt) is not dict:
        return None
    for c, s, _ in _DATA_KEYS:
        d = mt.get(c) if mt.get(c) is not None else mt.get(s)
        if type(d) is dict:
            pts = _g(d, "dataPoints", "data_points")
            if type(pts) is list:
                return pts
    return None


DECODERS = {"traces": decode_traces, "logs": decode_logs, "metrics": decode_metrics}
