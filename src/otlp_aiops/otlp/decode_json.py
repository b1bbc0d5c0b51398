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
import re
from typing import Any

import orjson
from opentelemetry.proto.logs.v1 import logs_pb2
from opentelemetry.proto.metrics.v1 import metrics_pb2
from opentelemetry.proto.trace.v1 import trace_pb2

from otlp_aiops.otlp import accel, schema
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
    histogram_problem,
    make_resource,
    make_scope,
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


_SNAKE_TO_CAMEL: dict[str, str] = {}


def _known(*snake_names: str) -> frozenset[str]:
    """The lowerCamelCase keys of an OTLP/JSON object (snake_case spellings are mapped on the slow path)."""
    for n in snake_names:
        _SNAKE_TO_CAMEL[n] = _camel(n)
    return frozenset(_camel(n) for n in snake_names)


def _norm(d: Any, known: frozenset[str], obj_type: str, fc: FileContext) -> dict:
    """An object with keys outside ``known``: snake_case spellings of known keys are renamed,
    other keys are counted as unknown (and ignored)."""
    if type(d) is not dict:
        raise RecordError("invalid_structure", f"{obj_type} is {type(d).__name__}, not an object")
    out = {}
    for k, v in d.items():
        if k not in known:
            c = _SNAKE_TO_CAMEL.get(k)
            if c is None or c not in known:
                fc.unknown_fields[f"{obj_type}.{k}"] += 1
                continue
            if c in d:  # both spellings: the camelCase one wins
                continue
            k = c
        out[k] = v
    return out


K_SPAN = _known(
    "trace_id",
    "span_id",
    "trace_state",
    "parent_span_id",
    "flags",
    "name",
    "kind",
    "start_time_unix_nano",
    "end_time_unix_nano",
    "attributes",
    "dropped_attributes_count",
    "events",
    "dropped_events_count",
    "links",
    "dropped_links_count",
    "status",
)
K_EVENT = _known("time_unix_nano", "name", "attributes", "dropped_attributes_count")
K_LINK = _known("trace_id", "span_id", "trace_state", "attributes", "dropped_attributes_count", "flags")
K_STATUS = _known("message", "code")
K_LOG = _known(
    "time_unix_nano",
    "observed_time_unix_nano",
    "severity_number",
    "severity_text",
    "body",
    "attributes",
    "dropped_attributes_count",
    "flags",
    "trace_id",
    "span_id",
    "event_name",
)
K_RESOURCE = _known("attributes", "dropped_attributes_count", "entity_refs")
K_SCOPE = _known("name", "version", "attributes", "dropped_attributes_count")
K_METRIC = _known(
    "name", "description", "unit", "gauge", "sum", "histogram", "exponential_histogram", "summary", "metadata"
)
K_NUMBER = _known(
    "attributes", "start_time_unix_nano", "time_unix_nano", "as_double", "as_int", "exemplars", "flags"
)
K_HIST = _known(
    "attributes",
    "start_time_unix_nano",
    "time_unix_nano",
    "count",
    "sum",
    "bucket_counts",
    "explicit_bounds",
    "exemplars",
    "flags",
    "min",
    "max",
)
K_EXP = _known(
    "attributes",
    "start_time_unix_nano",
    "time_unix_nano",
    "count",
    "sum",
    "scale",
    "zero_count",
    "positive",
    "negative",
    "flags",
    "exemplars",
    "min",
    "max",
    "zero_threshold",
)
K_SUMMARY = _known(
    "attributes", "start_time_unix_nano", "time_unix_nano", "count", "sum", "quantile_values", "flags"
)
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
    if x.__class__ is str and x.isdigit():
        t = int(x)
    elif x.__class__ is int:
        t = x
    elif isinstance(x, str) and x.lstrip("-").isdigit():
        t = int(x)
    else:
        t = json_int64(x, what)
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
    """Append a list of OTLP/JSON KeyValue to ``ac``.

    The common case (well-formed entries, mostly string values) runs as list comprehensions;
    anything unusual takes the careful per-entry path, which names the problem."""
    if not lst:
        return
    try:
        ks = [a["key"] for a in lst]
        vd = [a["value"] for a in lst]
        vs = [v.get("stringValue") for v in vd]
    except (KeyError, TypeError, AttributeError):
        return _attrs_json_careful(lst, ac, fc, what)
    n = len(ks)
    if sum(map(len, lst)) != n + n or sum(map(len, vd)) != n:
        return _attrs_json_careful(lst, ac, fc, what)  # extra keys somewhere: count them there
    tagged = None
    if None in vs:
        tagged = []
        i = -1
        while True:
            try:
                i = vs.index(None, i + 1)
            except ValueError:
                break
            try:
                tag, vs[i] = render_json(vd[i])
            except RecordError as e:
                raise RecordError(e.code, f"{what} {ks[i]!r}: {e.message}") from None
            tagged.append((i, tag))
    try:
        "".join(ks)  # raises TypeError unless every key is a string
        "".join(vs)  # ... and every value (an empty AnyValue is None: careful path)
    except TypeError:
        return _attrs_json_careful(lst, ac, fc, what)
    if tagged:
        base = len(ac.keys)
        for i, tag in tagged:
            if tag != "string":
                ac.tag_pos.append(base + i)
                ac.tags.append(tag)
    ac.keys.extend(map(ac.kidx.__getitem__, ks))
    ac.vals.extend(vs)


def _attrs_json_careful(lst: Any, ac: AttrCols, fc: FileContext, what: str) -> None:
    if type(lst) is not list:
        raise RecordError("invalid_structure", f"{what} is {type(lst).__name__}, not a list")
    for a in lst:
        if type(a) is not dict:
            raise RecordError("invalid_structure", f"{what} entry {a!r} is not an object")
        if not _KV.issuperset(a):
            fc.count_unknown("KeyValue", a, _KV)
        k = a.get("key")
        if k is None:
            k = ""
        elif type(k) is not str:
            raise RecordError("invalid_value", f"{what} key {k!r} is not a string")
        v = a.get("value")
        if type(v) is dict:
            extra = [x for x in v if x not in _ANY_KEYS]
            for x in extra:
                fc.unknown_fields[f"AnyValue.{x}"] += 1
        try:
            tag, text = render_json(v)
        except RecordError as e:
            raise RecordError(e.code, f"{what} {k!r}: {e.message}") from None
        ac.add_typed(k, tag, text)


_KV = frozenset(["key", "value"])
_ANY_VALUE_FIELDS = (
    "string_value",
    "bool_value",
    "int_value",
    "double_value",
    "array_value",
    "kvlist_value",
    "bytes_value",
    "string_value_strindex",
)
_ANY_KEYS = frozenset(_camel(n) for n in _ANY_VALUE_FIELDS) | frozenset(_ANY_VALUE_FIELDS)


def _rendered_attrs(lst: Any, fc: FileContext, what: str) -> list[tuple[str, str, str | None]]:
    ac = AttrCols()
    attrs_json(lst, ac, fc, what)
    return ac.rendered()


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
    res = {} if res is None else res
    if type(res) is not dict or not K_RESOURCE.issuperset(res):
        res = _norm(res, K_RESOURCE, "Resource", fc)
    attrs = _rendered_attrs(res.get("attributes"), fc, "resource attributes")
    dropped = _uint(res.get("droppedAttributesCount"), "resource droppedAttributesCount")
    refs_json = _entity_refs_json(res.get("entityRefs"))
    return fc.register_resource(key, make_resource(attrs, dropped, schema_url, refs_json))


def _entity_refs_json(refs: Any) -> str | None:
    """Resource.entity_refs in canonical OTLP/JSON, whatever spelling the input used, so that
    the same resource gets the same id from JSON and from protobuf."""
    if not refs:
        return None
    from google.protobuf.json_format import ParseDict, ParseError  # no ids inside: safe here
    from opentelemetry.proto.resource.v1 import resource_pb2

    from otlp_aiops.otlp.otlpjson import to_otlp_dict

    r = resource_pb2.Resource()
    try:
        ParseDict({"entityRefs": refs}, r)
    except ParseError as e:
        raise RecordError("invalid_value", f"resource entityRefs: {e}") from None
    return orjson.dumps(to_otlp_dict(r).get("entityRefs")).decode() if len(r.entity_refs) else None


def _scope(container: dict, fc: FileContext):
    sc = container.get("scope")
    schema_url = _g(container, "schemaUrl", "schema_url") or ""
    key = (orjson.dumps(sc) if sc is not None else b"", schema_url)
    info = fc.scope_cache.get(key)
    if info is not None:
        return info
    sc = {} if sc is None else sc
    if type(sc) is not dict or not K_SCOPE.issuperset(sc):
        sc = _norm(sc, K_SCOPE, "InstrumentationScope", fc)
    attrs = _rendered_attrs(sc.get("attributes"), fc, "scope attributes")
    dropped = _uint(sc.get("droppedAttributesCount"), "scope droppedAttributesCount")
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


def _walk(
    doc: dict, fc: FileContext, position: str, names: tuple[str, str, str, str, str, str], per_scope
) -> None:
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
            slist = _list(rc, skey_c, skey_s, f"{rpath}.{skey_c}")
            rinfo = _resource(rc, fc)
        except _ERRORS as e:
            err = _as_record_error(e)
            items = (
                [it for sc in slist for it in _items_of(sc, ikey_c, ikey_s)]
                if type(rc) is dict and isinstance(rc.get(skey_c) or rc.get(skey_s), list)
                else None
            )
            _quarantine_all(
                fc, position, f"{rpath}.{skey_c}[*].{ikey_c}", err, f"{rpath}: {err.message}", items, rc
            )
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
                items = _items_of(sc, ikey_c, ikey_s) if type(sc) is dict else None
                _quarantine_all(fc, position, f"{spath}.{ikey_c}", err, f"{spath}: {err.message}", items, sc)
                continue
            per_scope(items, rinfo, sinfo, f"{spath}.{ikey_c}")


def _items_of(sc: Any, ikey_c: str, ikey_s: str) -> list:
    lst = sc.get(ikey_c) or sc.get(ikey_s) if type(sc) is dict else None
    return lst if type(lst) is list else []


def _quarantine_all(
    fc: FileContext,
    position: str,
    path: str,
    err: RecordError,
    message: str,
    items: list | None,
    container: Any,
) -> None:
    """Quarantine every record of a container whose context (resource, scope) is broken; if its
    records cannot even be located, the container as one message."""
    if items is None:
        fc.quarantine_message(position, err.code, message, container)
        return
    fc.records_read += len(items)
    for k, item in enumerate(items):
        fc.quarantine_record(position, f"{path}[{k}]", err.code, message, item)


# --------------------------------------------------------------------------------------------------
# traces
# --------------------------------------------------------------------------------------------------


def decode_traces(doc: dict, fc: FileContext, batch: SpanBatch, position: str) -> None:
    rows = batch.rows
    attrs = batch.attrs

    def per_scope(spans: list, rinfo, sinfo, ipath: str) -> None:
        ci = batch.ctx.get(rinfo, sinfo)
        rec0 = fc.records_read
        fc.records_read = rec0 + len(spans)

        def one(k: int, s: Any) -> None:
            rec = rec0 + k
            try:
                if type(s) is not dict or not K_SPAN.issuperset(s):
                    s = _norm(s, K_SPAN, "Span", fc)
                g = s.get
                tid = _id(g("traceId"), 16, "traceId", fc)
                sid = _id(g("spanId"), 8, "spanId", fc)
                pid = g("parentSpanId")
                pid = _id(pid, 8, "parentSpanId", fc) if pid else None
                start = _time(g("startTimeUnixNano"), "startTimeUnixNano")
                end = _time(g("endTimeUnixNano"), "endTimeUnixNano")
                kind = g("kind")
                if kind.__class__ is not int or kind > SPAN_KIND_MAX or kind < 0:
                    kind = _enum(kind, SPAN_KIND, SPAN_KIND_MAX, "kind")
                name = g("name") or ""
                if name.__class__ is not str:
                    raise RecordError("invalid_value", f"name {name!r} is not a string")
                st = g("status")
                if st:
                    if type(st) is not dict or not K_STATUS.issuperset(st):
                        st = _norm(st, K_STATUS, "Status", fc)
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
                ts = g("traceState")
                flags = g("flags")
                da = g("droppedAttributesCount")
                de = g("droppedEventsCount")
                dl = g("droppedLinksCount")
                rows.append(
                    (
                        tid,
                        sid,
                        pid,
                        _str(ts, "traceState") if ts else None,
                        0 if flags is None else _uint(flags, "flags"),
                        name,
                        kind,
                        start,
                        end,
                        code,
                        msg,
                        len(attrs.keys),
                        0 if da is None else _uint(da, "droppedAttributesCount"),
                        n_ev,
                        0 if de is None else _uint(de, "droppedEventsCount"),
                        n_lk,
                        0 if dl is None else _uint(dl, "droppedLinksCount"),
                        ci,
                        rec,
                    )
                )
            except _ERRORS as e:
                batch.rollback()
                err = _as_record_error(e)
                fc.quarantine_record(position, f"{ipath}[{k}]", err.code, err.message, s)

        wire = accel.wire
        if wire is not None and type(spans) is list:
            a, ea, la = attrs, batch.event_attrs, batch.link_attrs
            wire.decode_json_spans(
                spans, ci, rec0, rows, batch.events, batch.links, a.lists(), ea.lists(), la.lists(), one
            )
        else:
            for k, s in enumerate(spans):
                one(k, s)

    _walk(
        doc,
        fc,
        position,
        ("resourceSpans", "resource_spans", "scopeSpans", "scope_spans", "spans", "spans"),
        per_scope,
    )


def _events(evs: Any, row: int, batch: SpanBatch, fc: FileContext) -> None:
    if type(evs) is not list:
        raise RecordError("invalid_structure", "events is not a list")
    ea = batch.event_attrs
    for j, e in enumerate(evs):
        if type(e) is not dict or not K_EVENT.issuperset(e):
            e = _norm(e, K_EVENT, "Span.Event", fc)
        name = e.get("name") or ""
        if type(name) is not str:
            raise RecordError("invalid_value", f"events[{j}].name {name!r} is not a string")
        attrs_json(e.get("attributes"), ea, fc, f"events[{j}].attributes")
        batch.events.append(
            (
                row,
                j,
                _time(e.get("timeUnixNano"), f"events[{j}].timeUnixNano"),
                name,
                len(ea.keys),
                _uint(e.get("droppedAttributesCount"), "droppedAttributesCount"),
            )
        )


def _links(lks: Any, row: int, batch: SpanBatch, fc: FileContext) -> None:
    if type(lks) is not list:
        raise RecordError("invalid_structure", "links is not a list")
    la = batch.link_attrs
    for j, lk in enumerate(lks):
        if type(lk) is not dict or not K_LINK.issuperset(lk):
            lk = _norm(lk, K_LINK, "Span.Link", fc)
        tid = _id(lk.get("traceId"), 16, f"links[{j}].traceId", fc)
        sid = _id(lk.get("spanId"), 8, f"links[{j}].spanId", fc)
        attrs_json(lk.get("attributes"), la, fc, f"links[{j}].attributes")
        batch.links.append(
            (
                row,
                j,
                tid,
                sid,
                _str(lk.get("traceState"), "traceState"),
                _uint(lk.get("flags"), "flags"),
                len(la.keys),
                _uint(lk.get("droppedAttributesCount"), "droppedAttributesCount"),
            )
        )


# --------------------------------------------------------------------------------------------------
# logs
# --------------------------------------------------------------------------------------------------


def decode_logs(doc: dict, fc: FileContext, batch: LogBatch, position: str) -> None:
    rows = batch.rows
    attrs = batch.attrs

    def per_scope(records: list, rinfo, sinfo, ipath: str) -> None:
        ci = batch.ctx.get(rinfo, sinfo)
        rec0 = fc.records_read
        fc.records_read = rec0 + len(records)

        def one(k: int, r: Any) -> None:
            rec = rec0 + k
            try:
                if type(r) is not dict or not K_LOG.issuperset(r):
                    r = _norm(r, K_LOG, "LogRecord", fc)
                g = r.get
                body = g("body")
                if body is None:
                    btag, btext = None, None
                else:
                    sv = body.get("stringValue") if type(body) is dict and len(body) == 1 else None
                    if type(sv) is str:
                        btag, btext = "string", sv
                    else:
                        try:
                            btag, btext = render_json(body)
                        except RecordError as e:
                            raise RecordError(e.code, f"body: {e.message}") from None
                attrs_json(g("attributes"), attrs, fc)
                sev = g("severityNumber")
                if sev.__class__ is not int or sev > SEVERITY_MAX or sev < 0:
                    sev = _enum(sev, SEVERITY, SEVERITY_MAX, "severityNumber")
                rows.append(
                    (
                        _time(g("timeUnixNano"), "timeUnixNano"),
                        _time(g("observedTimeUnixNano"), "observedTimeUnixNano"),
                        sev,
                        _str(g("severityText"), "severityText"),
                        btext,
                        btag,
                        len(attrs.keys),
                        _uint(g("droppedAttributesCount"), "droppedAttributesCount"),
                        _uint(g("flags"), "flags"),
                        _id(g("traceId"), 16, "traceId", fc),
                        _id(g("spanId"), 8, "spanId", fc),
                        _str(g("eventName"), "eventName"),
                        ci,
                        rec,
                    )
                )
            except _ERRORS as e:
                batch.rollback()
                err = _as_record_error(e)
                fc.quarantine_record(position, f"{ipath}[{k}]", err.code, err.message, r)

        wire = accel.wire
        if wire is not None and type(records) is list:
            a = attrs
            wire.decode_json_logs(records, ci, rec0, rows, a.lists(), one)
        else:
            for k, r in enumerate(records):
                one(k, r)

    _walk(
        doc,
        fc,
        position,
        ("resourceLogs", "resource_logs", "scopeLogs", "scope_logs", "logRecords", "log_records"),
        per_scope,
    )


# --------------------------------------------------------------------------------------------------
# metrics
# --------------------------------------------------------------------------------------------------

_DATA_KEYS = ("gauge", "sum", "histogram", "exponentialHistogram", "summary")
_TYPE_OF = {
    "gauge": "gauge",
    "sum": "sum",
    "histogram": "histogram",
    "exponentialHistogram": "exponential_histogram",
    "summary": "summary",
}
_TABLE_OF = schema.POINT_TABLE_OF_TYPE
_KNOWN_OF = {
    "metrics_number": K_NUMBER,
    "metrics_histogram": K_HIST,
    "metrics_exp_histogram": K_EXP,
    "metrics_summary": K_SUMMARY,
}
K_GAUGE = _known("data_points")
K_SUM = _known("data_points", "aggregation_temporality", "is_monotonic")
K_HISTOGRAM_DATA = _known("data_points", "aggregation_temporality")
K_SUMMARY_DATA = _known("data_points")
K_BUCKETS = _known("offset", "bucket_counts")
K_QUANTILE = _known("quantile", "value")
_DATA_KNOWN = {
    "gauge": K_GAUGE,
    "sum": K_SUM,
    "histogram": K_HISTOGRAM_DATA,
    "exponential_histogram": K_HISTOGRAM_DATA,
    "summary": K_SUMMARY_DATA,
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


def _int32(x: Any, what: str) -> int:
    v = 0 if x is None else json_int64(x, what)
    if not -(2**31) <= v < 2**31:
        raise RecordError("invalid_value", f"{what} {v} does not fit int32")
    return v


def _buckets(b: Any, what: str, fc: FileContext) -> tuple[int, list[int]]:
    if not b:
        return 0, []
    if type(b) is not dict or not K_BUCKETS.issuperset(b):
        b = _norm(b, K_BUCKETS, "Buckets", fc)
    return _int32(b.get("offset"), f"{what}.offset"), _u64_list(b.get("bucketCounts"), f"{what}.bucketCounts")


def _shape(table: str, p: dict, fc: FileContext) -> tuple:
    """The shape-specific tail of a point row (see batches.POINT_SHAPE_COLUMNS)."""
    if table == "metrics_number":
        i = p.get("asInt")
        if i is not None:
            iv = json_int64(i, "asInt")
            return float(iv), iv
        d = p.get("asDouble")
        return (None if d is None else json_double(d, "asDouble")), None
    count = _u64(p.get("count"), "count")
    if table == "metrics_histogram":
        row = (
            count,
            _opt_double(p.get("sum"), "sum"),
            _opt_double(p.get("min"), "min"),
            _opt_double(p.get("max"), "max"),
            _u64_list(p.get("bucketCounts"), "bucketCounts"),
            _double_list(p.get("explicitBounds"), "explicitBounds"),
        )
        bad = histogram_problem(count, row[4], row[5])  # (after every field is read, as before)
        if bad is not None:
            raise RecordError("bad_histogram", f"histogram point: {bad}")
        return row
    if table == "metrics_exp_histogram":
        po, pcounts = _buckets(p.get("positive"), "positive", fc)
        no, ncounts = _buckets(p.get("negative"), "negative", fc)
        zt = p.get("zeroThreshold")
        row = (
            count,
            _opt_double(p.get("sum"), "sum"),
            _opt_double(p.get("min"), "min"),
            _opt_double(p.get("max"), "max"),
            _int32(p.get("scale"), "scale"),
            _u64(p.get("zeroCount"), "zeroCount"),
            0.0 if zt is None else json_double(zt, "zeroThreshold"),
            po,
            pcounts,
            no,
            ncounts,
        )
        return row
    qv = p.get("quantileValues") or []
    if type(qv) is not list:
        raise RecordError("invalid_structure", "quantileValues is not a list")
    qs, vs = [], []
    for q in qv:
        if type(q) is not dict or not K_QUANTILE.issuperset(q):
            q = _norm(q, K_QUANTILE, "ValueAtQuantile", fc)
        qx, vx = q.get("quantile"), q.get("value")
        qs.append(0.0 if qx is None else json_double(qx, "quantile"))
        vs.append(0.0 if vx is None else json_double(vx, "value"))
    sm = p.get("sum")
    return count, 0.0 if sm is None else json_double(sm, "sum"), qs, vs


_SHORT = schema.POINT_TABLE_SHORT


def _exemplars(
    exs: Any, table: str, sid: int, info: MetricInfo, rinfo, rec: int, batch: MetricBatch, fc: FileContext
) -> int:
    if not exs:
        return 0
    if type(exs) is not list:
        raise RecordError("invalid_structure", "exemplars is not a list")
    ea = batch.exemplar_attrs
    for j, ex in enumerate(exs):
        if type(ex) is not dict or not K_EXEMPLAR.issuperset(ex):
            ex = _norm(ex, K_EXEMPLAR, "Exemplar", fc)
        attrs_json(ex.get("filteredAttributes"), ea, fc, f"exemplars[{j}].filteredAttributes")
        i = ex.get("asInt")
        d = ex.get("asDouble")
        if i is not None:
            iv = json_int64(i, "exemplar asInt")
            vd, vi = float(iv), iv
        else:
            vd, vi = (None if d is None else json_double(d, "exemplar asDouble")), None
        batch.exemplars.append(
            (
                _SHORT[table],
                sid,
                info.name,
                j,
                _time(ex.get("timeUnixNano"), f"exemplars[{j}].timeUnixNano"),
                vd,
                vi,
                _id(ex.get("traceId"), 16, f"exemplars[{j}].traceId", fc),
                _id(ex.get("spanId"), 8, f"exemplars[{j}].spanId", fc),
                len(ea.keys),
                rinfo.resource_id,
                rinfo.service_name,
                rec,
            )
        )
    return len(exs)


def _metric_info(mt: dict, fc: FileContext) -> tuple[MetricInfo, str, list]:
    """(info, point table, data points) of an OTLP/JSON Metric (keys already normalised)."""
    name = mt.get("name") or ""
    if type(name) is not str:
        raise RecordError("invalid_value", f"metric name {name!r} is not a string")
    found = [k for k in _DATA_KEYS if mt.get(k) is not None]
    if len(found) > 1:
        raise RecordError("invalid_structure", f"metric {name!r} sets {', '.join(found)}")
    if not found:
        raise RecordError("invalid_structure", f"metric {name!r} has no data (gauge/sum/histogram/…)")
    mtype = _TYPE_OF[found[0]]
    data = mt[found[0]]
    known = _DATA_KNOWN[mtype]
    if type(data) is not dict or not known.issuperset(data):
        data = _norm(data, known, mtype, fc)
    temporality = None
    monotonic = None
    if mtype in ("sum", "histogram", "exponential_histogram"):
        temporality = _enum(
            data.get("aggregationTemporality"), TEMPORALITY, TEMPORALITY_MAX, "aggregationTemporality"
        )
    if mtype == "sum":
        monotonic = json_bool(data.get("isMonotonic") or False, "isMonotonic")
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
                if type(mt) is not dict or not K_METRIC.issuperset(mt):
                    mt = _norm(mt, K_METRIC, "Metric", fc)
                info, table, points = _metric_info(mt, fc)
            except _ERRORS as e:
                err = _as_record_error(e)
                pts = _points_of(mt)
                ctx = {k: v for k, v in mt.items() if k not in _DATA_KEYS} if type(mt) is dict else None
                _quarantine_all(
                    fc,
                    position,
                    f"{mpath}.dataPoints",
                    err,
                    err.message,
                    None if pts is None else [{"metric": ctx, "dataPoint": p} for p in pts],
                    mt,
                )
                continue
            ii = batch.add_info(info)
            rows = batch.points[table]
            ac = batch.attrs[table]
            known = _KNOWN_OF[table]
            for k, p in enumerate(points):
                rec = fc.records_read
                fc.records_read = rec + 1
                try:
                    if type(p) is not dict or not known.issuperset(p):
                        p = _norm(p, known, f"{info.metric_type}.DataPoint", fc)
                    a0 = len(ac.keys)
                    attrs_json(p.get("attributes"), ac, fc)
                    sid = batch.point_series_id(table, a0, rinfo.resource_id, sinfo.scope_id, info)
                    shape = _shape(table, p, fc)
                    nex = 0
                    if table != "metrics_summary":
                        nex = _exemplars(p.get("exemplars"), table, sid, info, rinfo, rec, batch, fc)
                    rows.append(
                        (
                            ii,
                            sid,
                            _time(p.get("startTimeUnixNano"), "startTimeUnixNano"),
                            _time(p.get("timeUnixNano"), "timeUnixNano"),
                            len(ac.keys),
                            _uint(p.get("flags"), "flags"),
                            nex,
                            ci,
                            rec,
                            *shape,
                        )
                    )
                except _ERRORS as e:
                    batch.rollback(table, rec)
                    err = _as_record_error(e)
                    fc.quarantine_record(position, f"{mpath}.dataPoints[{k}]", err.code, err.message, p)

    _walk(
        doc,
        fc,
        position,
        ("resourceMetrics", "resource_metrics", "scopeMetrics", "scope_metrics", "metrics", "metrics"),
        per_scope,
    )


def _points_of(mt: Any) -> list | None:
    """The data points of a metric that failed to decode, if they can be located at all."""
    if type(mt) is not dict:
        return None
    for k in (*_DATA_KEYS, "exponential_histogram"):
        d = mt.get(k)
        if type(d) is dict:
            pts = _g(d, "dataPoints", "data_points")
            if type(pts) is list:
                return pts
    return None


DECODERS = {"traces": decode_traces, "logs": decode_logs, "metrics": decode_metrics}


# --------------------------------------------------------------------------------------------------
# from the text: the C decoder, for messages in the strict common form
# --------------------------------------------------------------------------------------------------

_TEXT_SIGNAL = re.compile(rb'[ \t\r\n]*\{[ \t\r\n]*"(resourceSpans|resourceLogs|resourceMetrics)"')
_TEXT_SIGNALS = {b"resourceSpans": "traces", b"resourceLogs": "logs", b"resourceMetrics": "metrics"}


def _metric_text_state(batch: MetricBatch) -> tuple:
    """The state tuple of ``_wire_metrics.decode_json_text`` for ``batch`` (see decode_block)."""

    def metric_fn(name, description, unit, mtype, temporality, monotonic, metadata) -> int:
        return batch.add_info(MetricInfo(name, description, unit, mtype, temporality, monotonic, []))

    # res_fn and scope_fn are not used for text (ctx_fn is); the fallback must be callable, and is
    # never called for text
    return batch.c_state(None, None, metric_fn, metric_fn, [])


def decode_text(text: bytes, fc: FileContext, batches: dict[str, Any], position: str) -> str | None:
    """Decode one OTLP/JSON message straight from its text with the C decoders, when it is spans,
    log records or metric points (gauge, sum, histogram) in the strict common form (camelCase keys,
    hex ids, numeric enums, simple attribute values). Returns the signal decoded, or None: nothing
    was appended; parse the text and use DECODERS, which give the same rows, and handle every other
    case."""
    m = _TEXT_SIGNAL.match(text)
    if m is None:
        return None
    signal = _TEXT_SIGNALS[m.group(1)]
    wire = accel.wire_metrics if signal == "metrics" else accel.wire
    if wire is None:
        return None
    batch = batches[signal]
    contexts = batch.text_contexts  # header texts -> context index, for this batch
    registered = fc.text_headers  # header texts already registered with the file
    pending: list[tuple] = []  # registrations to make if the whole message decodes

    memo = fc.text_infos

    def infos(res: bytes | None, url: str | None, scope: bytes | None, surl: str | None) -> tuple:
        key = (res, url, scope, surl)
        hit = memo.get(key)
        if hit is not None:
            return hit
        scratch = FileContext("")  # nothing is counted or registered from here
        rinfo = _resource({"resource": orjson.loads(res) if res else None, "schemaUrl": url or ""}, scratch)
        if scope is None and surl is None:
            hit = memo[key] = (rinfo, None)
            return hit
        sinfo = _scope({"scope": orjson.loads(scope) if scope else None, "schemaUrl": surl or ""}, scratch)
        hit = memo[key] = (rinfo, sinfo)
        return hit

    def ctx_fn(
        mode: int, res: bytes | None, url: str | None, scope: bytes | None, surl: str | None
    ) -> int | None:
        key = (res, url, scope, surl) if mode != 1 else (res, url)
        if mode != 0:  # the final headers of a block: to be registered with the file, as decode_* do
            if key not in registered:
                try:
                    infos(res, url, scope, surl) if mode == 2 else infos(res, url, None, None)
                except (*_ERRORS, orjson.JSONDecodeError):
                    return None
                pending.append((mode, key, res, url, scope, surl))
            return 0
        ci = contexts.get(key)
        if ci is None:
            try:
                rinfo, sinfo = infos(res, url, scope or b"{}", surl)
            except (*_ERRORS, orjson.JSONDecodeError):
                return None  # the dict decoder reports it
            ci = contexts[key] = batch.ctx.get(rinfo, sinfo)
        return ci

    if signal == "metrics":

        def metric_ctx_fn(
            mode: int, res: bytes | None, url: str | None, scope: bytes | None, surl: str | None
        ) -> Any:
            ci = ctx_fn(mode, res, url, scope, surl)
            if mode != 0 or ci is None:
                return ci
            rinfo = batch.ctx.items[ci][0]
            return ci, rinfo.resource_id, rinfo.service_name

        n = wire.decode_json_text(text, fc.records_read, _metric_text_state(batch), metric_ctx_fn)
    elif signal == "traces":
        a = batch.attrs
        n = wire.decode_json_text(
            0,
            text,
            fc.records_read,
            batch.rows,
            a.lists(),
            batch.events,
            batch.links,
            batch.event_attrs.lists(),
            batch.link_attrs.lists(),
            ctx_fn,
        )
    else:
        n = wire.decode_json_text(
            1, text, fc.records_read, batch.rows, batch.attrs.lists(), None, None, None, None, ctx_fn
        )
    if n is None:
        return None
    for mode, key, res, url, scope, surl in pending:
        if key not in registered:
            _resource({"resource": orjson.loads(res) if res else None, "schemaUrl": url or ""}, fc)
            if mode == 2:
                _scope({"scope": orjson.loads(scope) if scope else None, "schemaUrl": surl or ""}, fc)
            registered.add(key)
    fc.records_read = n
    return signal
