"""Decode protobuf OTLP messages into batch rows.

A message is first split at the wire level into its ``Resource*`` sub-messages (so a message cut
short keeps everything before the cut, and a huge request never needs one huge parse), then each
part is parsed with the upb backend and walked. Unknown fields are counted without slowing the
common case: after ``DiscardUnknownFields`` a clean part re-serialises to its own length, and only
a part that does not is walked field by field to name what was unknown.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
from google.protobuf import unknown_fields as _unknown
from google.protobuf.message import DecodeError, Message
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.logs.v1 import logs_pb2
from opentelemetry.proto.metrics.v1 import metrics_pb2
from opentelemetry.proto.resource.v1 import resource_pb2
from opentelemetry.proto.trace.v1 import trace_pb2

from otlp_aiops.otlp import accel
from otlp_aiops.otlp.anyvalue import RecordError, render_proto
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
from otlp_aiops.otlp.decode_json import SEVERITY_MAX, SPAN_KIND_MAX, STATUS_CODE_MAX, TEMPORALITY_MAX
from otlp_aiops.otlp.framing import split_fields
from otlp_aiops.otlp.otlpjson import to_otlp_dict

INT64_MAX = 2**63 - 1



RESOURCE_TYPES: dict[str, type[Message]] = {
    "traces": trace_pb2.ResourceSpans,
    "logs": logs_pb2.ResourceLogs,
    "metrics": metrics_pb2.ResourceMetrics,
}
TOP_TYPES: dict[str, type[Message]] = {
    "traces": trace_pb2.TracesData,
    "logs": logs_pb2.LogsData,
    "metrics": metrics_pb2.MetricsData,
}


# --------------------------------------------------------------------------------------------------
# unknown fields
# --------------------------------------------------------------------------------------------------


def _count_unknown(m: Message, fc: FileContext) -> None:
    name = m.DESCRIPTOR.name
    for f in _unknown.UnknownFieldSet(m):
        fc.unknown_fields[f"{name}.#{f.field_number}"] += 1
    for fd, v in m.ListFields():
        if fd.message_type is None:
            continue
        if fd.is_repeated:
            for x in v:
                _count_unknown(x, fc)
        else:
            _count_unknown(v, fc)


# --------------------------------------------------------------------------------------------------
# values
# --------------------------------------------------------------------------------------------------


def _id(b: bytes, n: int, what: str) -> bytes | None:
    if len(b) != n:
        if not b:
            return None
        raise RecordError("invalid_id", f"{what} has {len(b)} bytes, not {n} (hex {b.hex()})")
    return None if b == (ZERO_TRACE_ID if n == 16 else ZERO_SPAN_ID) else b


def _time(t: int, what: str) -> int:
    if t > INT64_MAX:
        raise RecordError("timestamp_out_of_range", f"{what} {t} is beyond 2262 in nanoseconds")
    return t


def attrs_proto(kvs: Any, ac: AttrCols) -> None:
    keys = ac.keys
    vals = ac.vals
    for a in kvs:
        keys.append(a.key)
        v = a.value
        sv = v.string_value
        if sv:
            vals.append(sv)
            continue
        tag, text = render_proto(v)
        if tag != "string":
            ac.tag_pos.append(len(vals))
            ac.tags.append(tag)
        vals.append(text)


def _rendered(kvs: Any) -> list[tuple[str, str, str | None]]:
    ac = AttrCols()
    attrs_proto(kvs, ac)
    return ac.rendered()


def _resource(rc: Any, fc: FileContext):
    key = (rc.resource.SerializeToString(), rc.schema_url)
    info = fc.resource_cache.get(key)
    if info is not None:
        return info
    r = rc.resource
    refs = None
    if len(r.entity_refs):
        refs = orjson.dumps(to_otlp_dict(r).get("entityRefs")).decode()
    return fc.register_resource(
        key, make_resource(_rendered(r.attributes), r.dropped_attributes_count, rc.schema_url, refs)
    )


def _scope(sc: Any, fc: FileContext):
    key = (sc.scope.SerializeToString(), sc.schema_url)
    info = fc.scope_cache.get(key)
    if info is not None:
        return info
    s = sc.scope
    return fc.register_scope(
        key, make_scope(s.name, s.version, _rendered(s.attributes), s.dropped_attributes_count, sc.schema_url)
    )


def _resource_from_bytes(res: bytes, schema_url: str, fc: FileContext):
    key = (res, schema_url)
    info = fc.resource_cache.get(key)
    if info is not None:
        return info
    r = resource_pb2.Resource.FromString(res)
    r.DiscardUnknownFields()
    if r.ByteSize() != len(res):
        _count_unknown(resource_pb2.Resource.FromString(res), fc)
    refs = orjson.dumps(to_otlp_dict(r).get("entityRefs")).decode() if len(r.entity_refs) else None
    return fc.register_resource(key, make_resource(_rendered(r.attributes), r.dropped_attributes_count, schema_url, refs))


def _scope_from_bytes(sc: bytes, schema_url: str, fc: FileContext):
    key = (sc, schema_url)
    info = fc.scope_cache.get(key)
    if info is not None:
        return info
    s = common_pb2.InstrumentationScope.FromString(sc)
    s.DiscardUnknownFields()
    if s.ByteSize() != len(sc):
        _count_unknown(common_pb2.InstrumentationScope.FromString(sc), fc)
    return fc.register_scope(
        key, make_scope(s.name, s.version, _rendered(s.attributes), s.dropped_attributes_count, schema_url)
    )


def _render_fallback(b: bytes) -> tuple[str, str | None]:
    """For the C decoder: render a composite AnyValue (array, kvlist, bytes, merged occurrences)."""
    return render_proto(common_pb2.AnyValue.FromString(b))


def _decode_chunk_fast(chunk: bytes, signal: str, path: str, fc: FileContext, batch: Any, position: str) -> None:
    """A ResourceSpans / ResourceLogs block through the C decoder (see _wire.c)."""
    wire = accel.wire
    res, url = wire.scope_header(chunk)
    rinfo = _resource_from_bytes(res, url.decode("utf-8"), fc)
    items = "spans" if signal == "traces" else "log_records"
    scopes = "scope_spans" if signal == "traces" else "scope_logs"
    container = "ResourceSpans" if signal == "traces" else "ResourceLogs"
    si = 0
    for field, wt, a, b in split_fields(chunk):
        if field != 2 or wt != 2:
            if field not in (1, 3) or wt != 2:
                fc.unknown_fields[f"{container}.#{field}"] += 1
            continue
        sc_bytes = chunk[a:b]
        scope, surl = wire.scope_header(sc_bytes)
        ci = batch.ctx.get(rinfo, _scope_from_bytes(scope, surl.decode("utf-8"), fc))
        errors: list = []
        rec0 = fc.records_read
        if signal == "traces":
            a_, ea, la = batch.attrs, batch.event_attrs, batch.link_attrs
            n = wire.decode_scope_spans(
                sc_bytes, ci, rec0, batch.rows, batch.events, batch.links,
                (a_.keys, a_.vals, a_.tag_pos, a_.tags), (ea.keys, ea.vals, ea.tag_pos, ea.tags),
                (la.keys, la.vals, la.tag_pos, la.tags), _render_fallback, fc.unknown_fields, errors,
            )  # fmt: skip
        else:
            a_ = batch.attrs
            n = wire.decode_scope_logs(sc_bytes, ci, rec0, batch.rows, (a_.keys, a_.vals, a_.tag_pos, a_.tags),
                                        _render_fallback, fc.unknown_fields, errors)  # fmt: skip
        fc.records_read = rec0 + n
        for idx, _rec, code, message, raw in errors:
            if idx < 0:
                fc.quarantine_message(position, code, f"{path}.{scopes}[{si}]: {message}", raw)
            else:
                fc.quarantine_record(position, f"{path}.{scopes}[{si}].{items}[{idx}]", code, message, raw)
        si += 1


# --------------------------------------------------------------------------------------------------
# traces
# --------------------------------------------------------------------------------------------------


def _walk_spans(rs: trace_pb2.ResourceSpans, path: str, fc: FileContext, batch: SpanBatch, position: str) -> None:
    rinfo = _resource(rs, fc)
    rows = batch.rows
    attrs = batch.attrs
    for si, ss in enumerate(rs.scope_spans):
        ci = batch.ctx.get(rinfo, _scope(ss, fc))
        for k, s in enumerate(ss.spans):
            rec = fc.records_read
            fc.records_read = rec + 1
            try:
                kind = s.kind
                if kind > SPAN_KIND_MAX or kind < 0:
                    raise RecordError("unknown_enum", f"kind {kind} is not a known SpanKind")
                st = s.status
                code = st.code
                if code > STATUS_CODE_MAX or code < 0:
                    raise RecordError("unknown_enum", f"status.code {code} is not a known StatusCode")
                tid = _id(s.trace_id, 16, "trace_id")
                sid = _id(s.span_id, 8, "span_id")
                pid = _id(s.parent_span_id, 8, "parent_span_id")
                start = s.start_time_unix_nano
                end = s.end_time_unix_nano
                if start > INT64_MAX or end > INT64_MAX:
                    _time(start, "start_time_unix_nano")
                    _time(end, "end_time_unix_nano")
                attrs_proto(s.attributes, attrs)
                row = len(rows)
                evs = s.events
                n_ev = len(evs)
                if n_ev:
                    ea = batch.event_attrs
                    append = batch.events.append
                    for j, e in enumerate(evs):
                        attrs_proto(e.attributes, ea)
                        append((row, j, _time(e.time_unix_nano, f"events[{j}].time_unix_nano"), e.name,
                                len(ea.keys), e.dropped_attributes_count))  # fmt: skip
                lks = s.links
                n_lk = len(lks)
                if n_lk:
                    la = batch.link_attrs
                    append = batch.links.append
                    for j, lk in enumerate(lks):
                        attrs_proto(lk.attributes, la)
                        append((row, j, _id(lk.trace_id, 16, f"links[{j}].trace_id"),
                                _id(lk.span_id, 8, f"links[{j}].span_id"), lk.trace_state or None, lk.flags,
                                len(la.keys), lk.dropped_attributes_count))  # fmt: skip
                rows.append((
                    tid, sid, pid, s.trace_state or None, s.flags, s.name, kind, start, end, code,
                    st.message or None, len(attrs.keys), s.dropped_attributes_count, n_ev,
                    s.dropped_events_count, n_lk, s.dropped_links_count, ci, rec,
                ))  # fmt: skip
            except RecordError as e:
                batch.rollback()
                fc.quarantine_record(position, f"{path}.scope_spans[{si}].spans[{k}]", e.code, e.message,
                                     s.SerializeToString())  # fmt: skip


# --------------------------------------------------------------------------------------------------
# logs
# --------------------------------------------------------------------------------------------------


def _walk_logs(rl: logs_pb2.ResourceLogs, path: str, fc: FileContext, batch: LogBatch, position: str) -> None:
    rinfo = _resource(rl, fc)
    rows = batch.rows
    attrs = batch.attrs
    for si, sl in enumerate(rl.scope_logs):
        ci = batch.ctx.get(rinfo, _scope(sl, fc))
        for k, r in enumerate(sl.log_records):
            rec = fc.records_read
            fc.records_read = rec + 1
            try:
                sev = r.severity_number
                if sev > SEVERITY_MAX or sev < 0:
                    raise RecordError("unknown_enum", f"severity_number {sev} is not a known SeverityNumber")
                if r.HasField("body"):
                    btag, btext = render_proto(r.body)
                else:
                    btag, btext = None, None
                attrs_proto(r.attributes, attrs)
                rows.append((
                    _time(r.time_unix_nano, "time_unix_nano"),
                    _time(r.observed_time_unix_nano, "observed_time_unix_nano"),
                    sev, r.severity_text or None, btext, btag, len(attrs.keys), r.dropped_attributes_count,
                    r.flags, _id(r.trace_id, 16, "trace_id"), _id(r.span_id, 8, "span_id"),
                    r.event_name or None, ci, rec,
                ))  # fmt: skip
            except RecordError as e:
                batch.rollback()
                fc.quarantine_record(position, f"{path}.scope_logs[{si}].log_records[{k}]", e.code, e.message,
                                     r.SerializeToString())  # fmt: skip


# --------------------------------------------------------------------------------------------------
# metrics
# --------------------------------------------------------------------------------------------------

_TABLE_OF = {
    "gauge": "metrics_number",
    "sum": "metrics_number",
    "histogram": "metrics_histogram",
    "exponential_histogram": "metrics_exp_histogram",
    "summary": "metrics_summary",
}
_SHORT = {"metrics_number": "number", "metrics_histogram": "histogram", "metrics_exp_histogram": "exponential_histogram"}


def _opt(p: Any, name: str) -> float | None:
    return getattr(p, name) if p.HasField(name) else None


def _shape(table: str, p: Any) -> tuple:
    if table == "metrics_number":
        w = p.WhichOneof("value")
        if w == "as_int":
            return float(p.as_int), p.as_int
        return (p.as_double if w == "as_double" else None), None
    if table == "metrics_histogram":
        return (p.count, _opt(p, "sum"), _opt(p, "min"), _opt(p, "max"), list(p.bucket_counts),
                list(p.explicit_bounds))  # fmt: skip
    if table == "metrics_exp_histogram":
        return (p.count, _opt(p, "sum"), _opt(p, "min"), _opt(p, "max"), p.scale, p.zero_count, p.zero_threshold,
                p.positive.offset, list(p.positive.bucket_counts), p.negative.offset,
                list(p.negative.bucket_counts))  # fmt: skip
    return p.count, p.sum, [q.quantile for q in p.quantile_values], [q.value for q in p.quantile_values]


def _walk_metrics(
    rm: metrics_pb2.ResourceMetrics, path: str, fc: FileContext, batch: MetricBatch, position: str
) -> None:
    rinfo = _resource(rm, fc)
    for si, sm in enumerate(rm.scope_metrics):
        sinfo = _scope(sm, fc)
        ci = batch.ctx.get(rinfo, sinfo)
        for mi, mt in enumerate(sm.metrics):
            mpath = f"{path}.scope_metrics[{si}].metrics[{mi}]"
            mtype = mt.WhichOneof("data")
            if mtype is None:
                fc.quarantine_message(position, "invalid_structure",
                                      f"{mpath}: metric {mt.name!r} has no data (gauge/sum/histogram/…)",
                                      mt.SerializeToString())  # fmt: skip
                continue
            data = getattr(mt, mtype)
            temporality = None
            monotonic = None
            if mtype != "gauge" and mtype != "summary":
                temporality = data.aggregation_temporality
                if mtype == "sum":
                    monotonic = data.is_monotonic
            table = _TABLE_OF[mtype]
            points = data.data_points
            if temporality is not None and not 0 <= temporality <= TEMPORALITY_MAX:
                fc.records_read += len(points)
                for k, p in enumerate(points):
                    fc.quarantine_record(position, f"{mpath}.{mtype}.data_points[{k}]", "unknown_enum",
                                         f"aggregation_temporality {temporality} is not a known value",
                                         p.SerializeToString())  # fmt: skip
                continue
            info = MetricInfo(mt.name, mt.description or None, mt.unit or None, mtype, temporality, monotonic,
                              _rendered(mt.metadata))  # fmt: skip
            ii = batch.add_info(info)
            rows = batch.points[table]
            ac = batch.attrs[table]
            for k, p in enumerate(points):
                rec = fc.records_read
                fc.records_read = rec + 1
                try:
                    a0 = len(ac.keys)
                    attrs_proto(p.attributes, ac)
                    sid = series_id(rinfo.resource_id, sinfo.scope_id, info, ac.rendered(a0))
                    nex = 0
                    if table != "metrics_summary" and len(p.exemplars):
                        nex = _exemplars(p.exemplars, table, sid, info, rinfo, rec, batch)
                    rows.append((
                        ii, sid, _time(p.start_time_unix_nano, "start_time_unix_nano"),
                        _time(p.time_unix_nano, "time_unix_nano"), len(ac.keys), p.flags, nex, ci, rec,
                        *_shape(table, p),
                    ))  # fmt: skip
                except RecordError as e:
                    batch.rollback(table, rec)
                    fc.quarantine_record(position, f"{mpath}.{mtype}.data_points[{k}]", e.code, e.message,
                                         p.SerializeToString())  # fmt: skip


def _exemplars(exs: Any, table: str, sid: int, info: MetricInfo, rinfo, rec: int, batch: MetricBatch) -> int:
    ea = batch.exemplar_attrs
    for j, ex in enumerate(exs):
        attrs_proto(ex.filtered_attributes, ea)
        w = ex.WhichOneof("value")
        if w == "as_int":
            vd, vi = float(ex.as_int), ex.as_int
        else:
            vd, vi = (ex.as_double if w == "as_double" else None), None
        batch.exemplars.append((
            _SHORT[table], sid, info.name, j, _time(ex.time_unix_nano, f"exemplars[{j}].time_unix_nano"), vd, vi,
            _id(ex.trace_id, 16, f"exemplars[{j}].trace_id"), _id(ex.span_id, 8, f"exemplars[{j}].span_id"),
            len(ea.keys), rinfo.resource_id, rinfo.service_name, rec,
        ))  # fmt: skip
    return len(exs)


WALKERS: dict[str, Callable[..., None]] = {"traces": _walk_spans, "logs": _walk_logs, "metrics": _walk_metrics}
RESOURCE_FIELD = {"traces": "resource_spans", "logs": "resource_logs", "metrics": "resource_metrics"}


# --------------------------------------------------------------------------------------------------
# entry points
# --------------------------------------------------------------------------------------------------


def decode_message(payload: bytes, signal: str, fc: FileContext, batch: Any, position: str) -> None:
    """Decode one protobuf ``*Data`` / ``Export*ServiceRequest`` message into ``batch``.

    Both message kinds carry the repeated ``Resource*`` as field 1, so they share one path.
    """
    rtype = RESOURCE_TYPES[signal]
    walk = WALKERS[signal]
    fname = RESOURCE_FIELD[signal]
    view = memoryview(payload)
    ri = 0
    pos = 0
    try:
        for field, wt, a, b in split_fields(view):
            pos = b
            if field != 1 or wt != 2:
                fc.unknown_fields[f"{TOP_TYPES[signal].DESCRIPTOR.name}.#{field}"] += 1
                continue
            chunk = bytes(view[a:b])
            path = f"{fname}[{ri}]"
            ri += 1
            if accel.wire is not None and signal != "metrics":
                try:
                    _decode_chunk_fast(chunk, signal, path, fc, batch, position)
                except (ValueError, UnicodeDecodeError, DecodeError) as e:
                    fc.quarantine_message(position, "invalid_protobuf", f"{path}: not a valid {rtype.DESCRIPTOR.name}: {e}",
                                          chunk)  # fmt: skip
                continue
            try:
                msg = rtype.FromString(chunk)
            except DecodeError as e:
                fc.quarantine_message(position, "invalid_protobuf", f"{path}: not a valid {rtype.DESCRIPTOR.name}: {e}",
                                      chunk)  # fmt: skip
                continue
            msg.DiscardUnknownFields()
            if msg.ByteSize() != len(chunk):
                _count_unknown(rtype.FromString(chunk), fc)
            walk(msg, path, fc, batch, position)
    except ValueError as e:
        fc.quarantine_message(position, "truncated_message", f"{fname}[{ri}] at byte {pos}: {e}", bytes(view[pos:]))


def guess_signal(payload: bytes) -> str | None:
    """The signal of a protobuf message whose file name does not say it: the one message type
    that parses it cleanly (no unknown fields) and finds records in it; None if not exactly one."""
    clean = []
    for signal, top in TOP_TYPES.items():
        try:
            m = top.FromString(payload)
        except DecodeError:
            continue
        m.DiscardUnknownFields()
        if m.ByteSize() != len(payload):
            continue
        items = 0
        for r in getattr(m, RESOURCE_FIELD[signal]):
            for s in r.ListFields():
                if s[0].name.startswith("scope_"):
                    for sc in s[1]:
                        items += sum(len(v) for fd, v in sc.ListFields() if fd.is_repeated)
        if items:
            clean.append(signal)
    return clean[0] if len(clean) == 1 else None
