"""Decode protobuf OTLP messages into batch rows.

A message is first split at the wire level into its ``Resource*`` sub-messages (so a message cut
short keeps everything before the cut, and a huge request never needs one huge parse), then each
part is parsed with the upb backend and walked. Unknown fields are counted without slowing the
common case: after ``DiscardUnknownFields`` a clean part re-serialises to its own length, and only
a part that does not is walked field by field to name what was unknown.
"""

from __future__ import annotations

from collections import Counter
from types import SimpleNamespace
from typing import Any

import orjson
from google.protobuf import unknown_fields as _unknown
from google.protobuf.message import DecodeError, Message
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.logs.v1 import logs_pb2
from opentelemetry.proto.metrics.v1 import metrics_pb2
from opentelemetry.proto.resource.v1 import resource_pb2
from opentelemetry.proto.trace.v1 import trace_pb2

from otlp_aiops.otlp import accel, schema
from otlp_aiops.otlp.anyvalue import RecordError, render_proto
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


def _count_unknown(m: Message, counts: Counter) -> None:
    name = m.DESCRIPTOR.name
    for f in _unknown.UnknownFieldSet(m):
        counts[f"{name}.#{f.field_number}"] += 1
    for fd, v in m.ListFields():
        if fd.message_type is None:
            continue
        if fd.is_repeated:
            for x in v:
                _count_unknown(x, counts)
        else:
            _count_unknown(v, counts)


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
    kidx = ac.kidx
    for a in kvs:
        keys.append(kidx[a.key])
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
    if not len(kvs):
        return []
    ac = AttrCols()
    attrs_proto(kvs, ac)
    return ac.rendered()


def _resource_from_bytes(res: bytes, schema_url: str, fc: FileContext, count: bool = True) -> Any:
    """The ResourceInfo of a serialised Resource; its unknown fields are counted at every use
    (``count``: once per Resource* block, like the scopes' once per Scope* block)."""
    hit = _resource_entry(res, schema_url, fc)
    if hit[1] and count:
        fc.unknown_fields.update(hit[1])
    return hit[0]


def _resource_entry(res: bytes, schema_url: str, fc: FileContext) -> tuple[Any, Counter]:
    """(ResourceInfo, its unknown fields) of a serialised Resource, registered and cached."""
    key = ("pb", res, schema_url)
    hit = fc.resource_cache.get(key)
    if hit is None:
        r = resource_pb2.Resource.FromString(res)
        unknown = _unknown_counts(r, res)
        refs = orjson.dumps(to_otlp_dict(r).get("entityRefs")).decode() if len(r.entity_refs) else None
        info = make_resource(_rendered(r.attributes), r.dropped_attributes_count, schema_url, refs)
        fc.resources.setdefault(info.resource_id, info.row)
        hit = fc.resource_cache[key] = (info, unknown)
    return hit


def _scope_from_bytes(sc: bytes, schema_url: str, fc: FileContext) -> Any:
    hit = _scope_entry(sc, schema_url, fc)
    if hit[1]:
        fc.unknown_fields.update(hit[1])
    return hit[0]


def _scope_entry(sc: bytes, schema_url: str, fc: FileContext) -> tuple[Any, Counter]:
    """(ScopeInfo, its unknown fields) of a serialised InstrumentationScope, registered and cached."""
    key = ("pb", sc, schema_url)
    hit = fc.scope_cache.get(key)
    if hit is None:
        s = common_pb2.InstrumentationScope.FromString(sc)
        unknown = _unknown_counts(s, sc)
        info = make_scope(s.name, s.version, _rendered(s.attributes), s.dropped_attributes_count, schema_url)
        fc.scopes.setdefault(info.scope_id, info.row)
        hit = fc.scope_cache[key] = (info, unknown)
    return hit


def _unknown_counts(m: Message, raw: bytes) -> Counter:
    """Unknown fields of message ``m`` parsed from ``raw``, by "Message.#field"; drops them from m.

    Cheap when there are none: without its unknown fields a message re-serialises to its own
    length (unless the producer's encoding is not canonical, which the exact count then shows)."""
    counts: Counter = Counter()
    m.DiscardUnknownFields()
    if m.ByteSize() != len(raw):
        _count_unknown(type(m).FromString(raw), counts)
    return counts


def _render_fallback(b: bytes) -> tuple[str, str | None, list[str]]:
    """For the C decoder: render a composite AnyValue (array, kvlist, bytes, merged occurrences),
    with the names of the unknown fields inside it (counted with its record)."""
    try:
        v = common_pb2.AnyValue.FromString(b)
    except DecodeError as e:  # the C decoder reads a ValueError as "malformed record"
        raise ValueError(str(e)) from None
    unknown = _unknown_counts(v, b)
    return (*render_proto(v), list(unknown.elements()))


def _container_fields(
    chunk: bytes, decode_url: bool = True
) -> tuple[bytes, Any, list[tuple[int, int]], list[int], int | None]:
    """Wire-level split of a Resource* or Scope* message: (field 1 bytes — occurrences merged —,
    schema_url, [(start, end)] of field 2, other field numbers, offset where it stops being
    well-formed or None)."""
    head = b""
    url = b""
    items: list[tuple[int, int]] = []
    others: list[int] = []
    bad_at = None
    pos = 0
    try:
        for field, wt, a, b in split_fields(chunk):
            pos = b
            if field == 2 and wt == 2:
                items.append((a, b))
            elif field == 1 and wt == 2:
                head += chunk[a:b]
            elif field == 3 and wt == 2:
                url = chunk[a:b]
            else:
                others.append(field)
    except ValueError:
        bad_at = pos
    return head, url.decode("utf-8", "strict") if decode_url else url, items, others, bad_at


# --------------------------------------------------------------------------------------------------
# spans and log records, one at a time (the pure-Python decoder)
# --------------------------------------------------------------------------------------------------


def _span_row(s: trace_pb2.Span, ci: int, rec: int, batch: SpanBatch) -> None:
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
    attrs = batch.attrs
    attrs_proto(s.attributes, attrs)
    rows = batch.rows
    row = len(rows)
    evs = s.events
    n_ev = len(evs)
    if n_ev:
        ea = batch.event_attrs
        append = batch.events.append
        for j, e in enumerate(evs):
            attrs_proto(e.attributes, ea)
            append(
                (
                    row,
                    j,
                    _time(e.time_unix_nano, "event time_unix_nano"),
                    e.name,
                    len(ea.keys),
                    e.dropped_attributes_count,
                )
            )
    lks = s.links
    n_lk = len(lks)
    if n_lk:
        la = batch.link_attrs
        append = batch.links.append
        for j, lk in enumerate(lks):
            attrs_proto(lk.attributes, la)
            append(
                (
                    row,
                    j,
                    _id(lk.trace_id, 16, "link trace_id"),
                    _id(lk.span_id, 8, "link span_id"),
                    lk.trace_state or None,
                    lk.flags,
                    len(la.keys),
                    lk.dropped_attributes_count,
                )
            )
    rows.append(
        (
            tid,
            sid,
            pid,
            s.trace_state or None,
            s.flags,
            s.name,
            kind,
            start,
            end,
            code,
            st.message or None,
            len(attrs.keys),
            s.dropped_attributes_count,
            n_ev,
            s.dropped_events_count,
            n_lk,
            s.dropped_links_count,
            ci,
            rec,
        )
    )


def _log_row(r: logs_pb2.LogRecord, ci: int, rec: int, batch: LogBatch) -> None:
    sev = r.severity_number
    if sev > SEVERITY_MAX or sev < 0:
        raise RecordError("unknown_enum", f"severity_number {sev} is not a known SeverityNumber")
    time = _time(r.time_unix_nano, "time_unix_nano")
    observed = _time(r.observed_time_unix_nano, "observed_time_unix_nano")
    btag, btext = render_proto(r.body) if r.HasField("body") else (None, None)
    attrs = batch.attrs
    attrs_proto(r.attributes, attrs)
    batch.rows.append(
        (
            time,
            observed,
            sev,
            r.severity_text or None,
            btext,
            btag,
            len(attrs.keys),
            r.dropped_attributes_count,
            r.flags,
            _id(r.trace_id, 16, "trace_id"),
            _id(r.span_id, 8, "span_id"),
            r.event_name or None,
            ci,
            rec,
        )
    )


class _Spec:
    """How one signal's protobuf nests: Resource* -> Scope* -> items."""

    def __init__(
        self, container: str, scopes: str, items: str, scope_container: str, item_type: Any, row: Any
    ):
        self.container, self.scopes, self.items = container, scopes, items
        self.scope_container, self.item_type, self.row = scope_container, item_type, row


SPEC = {
    "traces": _Spec("ResourceSpans", "scope_spans", "spans", "ScopeSpans", trace_pb2.Span, _span_row),
    "logs": _Spec("ResourceLogs", "scope_logs", "log_records", "ScopeLogs", logs_pb2.LogRecord, _log_row),
}


def _walk_items(
    msg: Any, chunk: bytes, path: str, fc: FileContext, batch: Any, position: str, signal: str
) -> None:
    """A parsed ResourceSpans / ResourceLogs (unknown fields already counted and dropped)."""
    spec = SPEC[signal]
    rinfo = _resource_from_bytes(msg.resource.SerializeToString(), msg.schema_url, fc)
    row = spec.row
    for si, sc in enumerate(getattr(msg, spec.scopes)):
        ci = batch.ctx.get(rinfo, _scope_from_bytes(sc.scope.SerializeToString(), sc.schema_url, fc))
        for k, item in enumerate(getattr(sc, spec.items)):
            rec = fc.records_read
            fc.records_read = rec + 1
            try:
                row(item, ci, rec, batch)
            except RecordError as e:
                batch.rollback()
                fc.quarantine_record(
                    position,
                    f"{path}.{spec.scopes}[{si}].{spec.items}[{k}]",
                    e.code,
                    e.message,
                    _original_item(chunk, si, k),
                )


def _original_item(chunk: bytes, si: int, k: int) -> bytes:
    """The bytes of item k of scope si of a Resource* chunk, as the producer wrote them."""
    _, _, scopes, _, _ = _container_fields(chunk)
    a, b = scopes[si]
    sc = chunk[a:b]
    _, _, items, _, _ = _container_fields(sc)
    a, b = items[k]
    return sc[a:b]


def _decode_block_careful(
    chunk: bytes, path: str, fc: FileContext, batch: Any, position: str, signal: str
) -> None:
    """A Resource* block that upb cannot parse whole, scope by scope and record by record, so that
    one broken record (bad UTF-8, cut bytes) costs only itself — as the C decoder does."""
    container = {"traces": "ResourceSpans", "logs": "ResourceLogs", "metrics": "ResourceMetrics"}[signal]
    scopes_name = {"traces": "scope_spans", "logs": "scope_logs", "metrics": "scope_metrics"}[signal]
    res, url_bytes, scopes, others, bad_at = _container_fields(chunk, decode_url=False)
    for f in others:
        fc.unknown_fields[f"{container}.#{f}"] += 1
    try:
        rinfo = _resource_from_bytes(res, url_bytes.decode("utf-8"), fc)
    except (DecodeError, UnicodeDecodeError) as e:
        fc.quarantine_message(position, "invalid_protobuf", f"{path}: resource: {e}", chunk)
        return
    for si, (a, b) in enumerate(scopes):
        _scope_careful(chunk[a:b], f"{path}.{scopes_name}[{si}]", rinfo, fc, batch, position, signal)
    if bad_at is not None:
        fc.quarantine_message(
            position,
            "invalid_protobuf",
            f"{path}: malformed protobuf after {len(scopes)} scopes",
            chunk[bad_at:],
        )


def _wire_error(buf: bytes) -> tuple[int, str]:
    """Where the top level of a message stops being well-formed protobuf, and why."""
    pos = 0
    try:
        for _, _, _, b in split_fields(buf):
            pos = b
    except ValueError as e:
        return pos, str(e)
    return pos, "malformed protobuf"


def _decode_request_fast(payload: bytes, signal: str, fc: FileContext, batch: Any, position: str) -> None:
    """A whole request through the C decoder (spans, log records); see ``_wire.decode_request``.
    ``ctx_fn`` returns a scope's context index, -1 to skip a broken scope, -2 to drop a block whose
    resource is broken."""
    spec = SPEC[signal]
    fname = RESOURCE_FIELD[signal]
    errors: list = []
    bad_resources: set[int] = set()
    seen_resources: set[int] = set()

    memo = batch.proto_contexts

    def ctx_fn(
        ri: int, si: int, res: bytes, url: bytes, scope: bytes, surl: bytes, block: Any, sblock: Any
    ) -> int:
        if ri in bad_resources:
            return -2
        if si >= 0:  # a (resource, scope) pair seen before in this batch, neither with unknown fields
            ci = memo.get((res, url, scope, surl))
            if ci is not None:
                seen_resources.add(ri)
                return ci
        try:
            rinfo = _resource_from_bytes(res, url.decode("utf-8"), fc, count=ri not in seen_resources)
            seen_resources.add(ri)
        except (DecodeError, UnicodeDecodeError) as e:
            bad_resources.add(ri)  # the whole block is set aside, as in _decode_block_careful
            errors.append((ri, -1, -1, 0, "invalid_protobuf", f"resource: {e}", bytes(block)))
            return -2
        if si < 0:  # a block without scopes: only its resource to check
            return -1
        try:
            shit = _scope_entry(scope, surl.decode("utf-8"), fc)
        except (DecodeError, UnicodeDecodeError) as e:
            errors.append((ri, si, -1, 0, "invalid_protobuf", f"scope: {e}", bytes(sblock)))
            return -1
        if shit[1]:
            fc.unknown_fields.update(shit[1])
        ci = batch.ctx.get(rinfo, shit[0])
        if not shit[1] and not _resource_entry(res, url.decode("utf-8"), fc)[1]:
            memo[(res, url, scope, surl)] = ci  # nothing to count on a repeat: the same answer
        return ci

    item_type = spec.item_type

    def validate(raw: bytes) -> tuple[str | None, list[str]]:
        try:
            item = item_type.FromString(raw)
        except DecodeError as e:
            return str(e), []
        return None, list(_unknown_counts(item, raw).elements())

    attrs = batch.attrs.lists()
    if signal == "traces":
        fc.records_read = accel.wire.decode_request(
            0,
            payload,
            fc.records_read,
            batch.rows,
            attrs,
            batch.events,
            batch.links,
            batch.event_attrs.lists(),
            batch.link_attrs.lists(),
            _render_fallback,
            fc.unknown_fields,
            errors,
            ctx_fn,
            validate,
        )
    else:
        fc.records_read = accel.wire.decode_request(
            1,
            payload,
            fc.records_read,
            batch.rows,
            attrs,
            None,
            None,
            None,
            None,
            _render_fallback,
            fc.unknown_fields,
            errors,
            ctx_fn,
            validate,
        )
    for ri, si, idx, _rec, code, message, raw in errors:
        if code == "truncated_message":  # the request itself: word it as the Python decoder does
            pos, why = _wire_error(payload)
            fc.quarantine_message(position, code, f"{fname}[{ri}] at byte {pos}: {why}", raw)
        elif si < 0:
            fc.quarantine_message(position, code, f"{fname}[{ri}]: {message}", raw)
        elif idx < 0:
            fc.quarantine_message(position, code, f"{fname}[{ri}].{spec.scopes}[{si}]: {message}", raw)
        else:
            fc.quarantine_record(
                position, f"{fname}[{ri}].{spec.scopes}[{si}].{spec.items}[{idx}]", code, message, raw
            )


def _scope_careful(
    sc: bytes, spath: str, rinfo: Any, fc: FileContext, batch: Any, position: str, signal: str
) -> None:
    scope_container = {"traces": "ScopeSpans", "logs": "ScopeLogs", "metrics": "ScopeMetrics"}[signal]
    try:
        scope, surl, items, others, bad_at = _container_fields(sc)
        sinfo = _scope_from_bytes(scope, surl, fc)
    except (DecodeError, UnicodeDecodeError) as e:
        fc.quarantine_message(position, "invalid_protobuf", f"{spath}: scope: {e}", sc)
        return
    for f in others:  # a scope set aside whole has no fields to speak of (as in the C decoder)
        fc.unknown_fields[f"{scope_container}.#{f}"] += 1
    ci = batch.ctx.get(rinfo, sinfo)
    if signal == "metrics":
        for mi, (a, b) in enumerate(items):
            raw = sc[a:b]
            try:
                mt = metrics_pb2.Metric.FromString(raw)
            except DecodeError as e:
                fc.quarantine_message(position, "invalid_protobuf", f"{spath}.metrics[{mi}]: {e}", raw)
                continue
            fc.unknown_fields.update(_unknown_counts(mt, raw))
            _metric_points(mt, f"{spath}.metrics[{mi}]", rinfo, sinfo, ci, fc, batch, position)
    else:
        spec = SPEC[signal]
        for k, (a, b) in enumerate(items):
            raw = sc[a:b]
            rec = fc.records_read
            fc.records_read = rec + 1
            try:
                item = spec.item_type.FromString(raw)
                fc.unknown_fields.update(_unknown_counts(item, raw))
                spec.row(item, ci, rec, batch)
            except DecodeError as e:
                fc.quarantine_record(position, f"{spath}.{spec.items}[{k}]", "invalid_protobuf", str(e), raw)
            except RecordError as e:
                batch.rollback()
                fc.quarantine_record(position, f"{spath}.{spec.items}[{k}]", e.code, e.message, raw)
    if bad_at is not None:
        fc.quarantine_message(
            position,
            "invalid_protobuf",
            f"{spath}: malformed protobuf after {len(items)} records",
            sc[bad_at:],
        )


# --------------------------------------------------------------------------------------------------
# metrics
# --------------------------------------------------------------------------------------------------

_TABLE_OF = schema.POINT_TABLE_OF_TYPE
_SHORT = schema.POINT_TABLE_SHORT


def _opt(p: Any, name: str) -> float | None:
    return getattr(p, name) if p.HasField(name) else None


def _shape(table: str, p: Any) -> tuple:
    if table == "metrics_number":
        w = p.WhichOneof("value")
        if w == "as_int":
            return float(p.as_int), p.as_int
        return (p.as_double if w == "as_double" else None), None
    if table == "metrics_histogram":
        counts, bounds = list(p.bucket_counts), list(p.explicit_bounds)
        bad = histogram_problem(p.count, counts, bounds)
        if bad is not None:
            raise RecordError("bad_histogram", f"histogram point: {bad}")
        return (p.count, _opt(p, "sum"), _opt(p, "min"), _opt(p, "max"), counts, bounds)
    if table == "metrics_exp_histogram":
        return (
            p.count,
            _opt(p, "sum"),
            _opt(p, "min"),
            _opt(p, "max"),
            p.scale,
            p.zero_count,
            p.zero_threshold,
            p.positive.offset,
            list(p.positive.bucket_counts),
            p.negative.offset,
            list(p.negative.bucket_counts),
        )
    return p.count, p.sum, [q.quantile for q in p.quantile_values], [q.value for q in p.quantile_values]


def _metric_points(
    mt: metrics_pb2.Metric,
    mpath: str,
    rinfo: Any,
    sinfo: Any,
    ci: int,
    fc: FileContext,
    batch: MetricBatch,
    position: str,
) -> None:
    """The data points of one Metric."""
    mtype = mt.WhichOneof("data")
    if mtype is None:
        fc.quarantine_message(
            position,
            "invalid_structure",
            f"{mpath}: metric {mt.name!r} has no data (gauge/sum/histogram/…)",
            mt.SerializeToString(),
        )
        return
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
            fc.quarantine_record(
                position,
                f"{mpath}.{mtype}.data_points[{k}]",
                "unknown_enum",
                f"aggregation_temporality {temporality} is not a known value",
                p.SerializeToString(),
            )
        return
    info = MetricInfo(
        mt.name,
        mt.description or None,
        mt.unit or None,
        mtype,
        temporality,
        monotonic,
        _rendered(mt.metadata),
    )
    ii = batch.add_info(info)
    rows = batch.points[table]
    ac = batch.attrs[table]
    for k, p in enumerate(points):
        rec = fc.records_read
        fc.records_read = rec + 1
        try:
            a0 = len(ac.keys)
            attrs_proto(p.attributes, ac)
            sid = batch.point_series_id(table, a0, rinfo.resource_id, sinfo.scope_id, info)
            nex = 0
            if table != "metrics_summary" and len(p.exemplars):
                nex = _exemplars(p.exemplars, table, sid, info, rinfo, rec, batch)
            rows.append(
                (
                    ii,
                    sid,
                    _time(p.start_time_unix_nano, "start_time_unix_nano"),
                    _time(p.time_unix_nano, "time_unix_nano"),
                    len(ac.keys),
                    p.flags,
                    nex,
                    ci,
                    rec,
                    *_shape(table, p),
                )
            )
        except RecordError as e:
            batch.rollback(table, rec)
            fc.quarantine_record(
                position, f"{mpath}.{mtype}.data_points[{k}]", e.code, e.message, p.SerializeToString()
            )


def _walk_metrics(
    msg: metrics_pb2.ResourceMetrics, path: str, fc: FileContext, batch: MetricBatch, position: str
) -> None:
    rinfo = _resource_from_bytes(msg.resource.SerializeToString(), msg.schema_url, fc)
    for si, sm in enumerate(msg.scope_metrics):
        sinfo = _scope_from_bytes(sm.scope.SerializeToString(), sm.schema_url, fc)
        ci = batch.ctx.get(rinfo, sinfo)
        for mi, mt in enumerate(sm.metrics):
            _metric_points(
                mt, f"{path}.scope_metrics[{si}].metrics[{mi}]", rinfo, sinfo, ci, fc, batch, position
            )


def _metrics_fast(fc: FileContext, batch: MetricBatch) -> Any:
    """For one message, the C decoder (``_wire_metrics``): ``request(payload, python_block)`` decodes
    a whole request whose top level is well-formed (else returns False, touching nothing), and
    ``block(chunk)`` one ResourceMetrics block, saying whether it did. A block that is anything but
    the plain common case (malformed bytes, a record to set aside, merged fields) is handed back with
    nothing added, to the Python decoder, which is therefore the one that writes every quarantine
    entry. Unknown fields are collected in ``pending`` and counted once a block is decoded."""
    pending: list[str] = []

    def res_fn(res: bytes, url: bytes) -> Any:
        try:
            info, unknown = _resource_entry(res, url.decode("utf-8"), fc)
        except (DecodeError, UnicodeDecodeError):
            return None
        if unknown:
            pending.extend(unknown.elements())
        return info

    def scope_fn(rinfo: Any, sc: bytes, url: bytes) -> tuple | None:
        try:
            sinfo, unknown = _scope_entry(sc, url.decode("utf-8"), fc)
        except (DecodeError, UnicodeDecodeError):
            return None
        if unknown:
            pending.extend(unknown.elements())
        return batch.ctx.get(rinfo, sinfo), rinfo.resource_id, rinfo.service_name

    def metric_fn(
        name, description, unit, mtype, temporality, monotonic, metadata: list[bytes]
    ) -> int | None:
        kvs = []
        for raw in metadata:
            try:
                kv = common_pb2.KeyValue.FromString(raw)
            except DecodeError:
                return None
            pending.extend(_unknown_counts(kv, raw).elements())
            kvs.append(kv)
        return batch.add_info(
            MetricInfo(name, description, unit, mtype, temporality, monotonic, _rendered(kvs))
        )

    state = batch.c_state(res_fn, scope_fn, metric_fn, _render_fallback, pending)
    wm = accel.wire_metrics

    def block(chunk: bytes) -> bool:
        pending.clear()
        rec = wm.decode_block(chunk, fc.records_read, state)
        if rec is None:
            return False
        fc.records_read = rec
        if pending:
            fc.unknown_fields.update(pending)
        return True

    def request(payload: bytes, python_block: Any) -> bool:
        pending.clear()
        rec = wm.decode_request(payload, fc.records_read, state, fc.unknown_fields, python_block)
        if rec is None:
            return False
        fc.records_read = rec
        return True

    return SimpleNamespace(block=block, request=request)


def _exemplars(exs: Any, table: str, sid: int, info: MetricInfo, rinfo, rec: int, batch: MetricBatch) -> int:
    ea = batch.exemplar_attrs
    for j, ex in enumerate(exs):
        attrs_proto(ex.filtered_attributes, ea)
        w = ex.WhichOneof("value")
        if w == "as_int":
            vd, vi = float(ex.as_int), ex.as_int
        else:
            vd, vi = (ex.as_double if w == "as_double" else None), None
        batch.exemplars.append(
            (
                _SHORT[table],
                sid,
                info.name,
                j,
                _time(ex.time_unix_nano, f"exemplars[{j}].time_unix_nano"),
                vd,
                vi,
                _id(ex.trace_id, 16, f"exemplars[{j}].trace_id"),
                _id(ex.span_id, 8, f"exemplars[{j}].span_id"),
                len(ea.keys),
                rinfo.resource_id,
                rinfo.service_name,
                rec,
            )
        )
    return len(exs)


RESOURCE_FIELD = {"traces": "resource_spans", "logs": "resource_logs", "metrics": "resource_metrics"}


# --------------------------------------------------------------------------------------------------
# entry points
# --------------------------------------------------------------------------------------------------


def decode_message(payload: bytes, signal: str, fc: FileContext, batch: Any, position: str) -> None:
    """Decode one protobuf ``*Data`` / ``Export*ServiceRequest`` message into ``batch``.

    Both message kinds carry the repeated ``Resource*`` as field 1, so they share one path. Each
    Resource* block goes to the C decoder when it is built (spans, log records: the whole request;
    metric points: each ResourceMetrics block it takes, see ``_metrics_fast``), else is parsed whole
    by upb and walked; a block that does not parse whole is decoded record by record.
    """
    if accel.wire is not None and signal != "metrics":
        _decode_request_fast(payload, signal, fc, batch, position)
        return
    rtype = RESOURCE_TYPES[signal]
    fname = RESOURCE_FIELD[signal]
    fast = None
    if signal == "metrics" and accel.wire_metrics is not None:
        fast = _metrics_fast(fc, batch)

        def python_block(ri: int, chunk: bytes, rec: int) -> int:
            fc.records_read = rec
            _decode_block(chunk, f"{fname}[{ri}]", rtype, fc, batch, position, signal)
            return fc.records_read

        if fast.request(payload, python_block):  # a well-formed request: C, block by block
            return
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
            if fast is not None and fast.block(chunk):
                continue
            _decode_block(chunk, path, rtype, fc, batch, position, signal)
    except ValueError as e:
        fc.quarantine_message(
            position, "truncated_message", f"{fname}[{ri}] at byte {pos}: {e}", bytes(view[pos:])
        )


def _decode_block(
    chunk: bytes, path: str, rtype: Any, fc: FileContext, batch: Any, position: str, signal: str
) -> None:
    """One Resource* block with the pure-Python decoder."""
    try:
        msg = rtype.FromString(chunk)
    except DecodeError:
        _decode_block_careful(chunk, path, fc, batch, position, signal)
        return
    fc.unknown_fields.update(_unknown_counts(msg, chunk))
    if signal == "metrics":
        _walk_metrics(msg, path, fc, batch, position)
    else:
        _walk_items(msg, chunk, path, fc, batch, position, signal)


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
    if not clean:  # a bad record somewhere: let the records that do parse vote
        return _guess_by_records(payload)
    return clean[0] if len(clean) == 1 else None


_RECORD_TYPES = {"traces": trace_pb2.Span, "logs": logs_pb2.LogRecord, "metrics": metrics_pb2.Metric}


def _guess_by_records(payload: bytes, most: int = 64) -> str | None:
    """The signal of a message that no type parses whole: each record (field 2 of each scope block,
    field 2 of each Resource*) that parses cleanly as exactly one of Span / LogRecord / Metric votes
    for it; the signal with the only most votes, if any (at most ``most`` records are looked at)."""
    votes: Counter = Counter()
    seen = 0
    try:
        for f1, w1, a1, b1 in split_fields(payload):
            if (f1, w1) != (1, 2):
                continue
            for f2, w2, a2, b2 in split_fields(payload, a1, b1):
                if (f2, w2) != (2, 2):
                    continue
                for f3, w3, a3, b3 in split_fields(payload, a2, b2):
                    if (f3, w3) != (2, 2):
                        continue
                    rec = payload[a3:b3]
                    fits = []
                    for signal, rtype in _RECORD_TYPES.items():
                        try:
                            m = rtype.FromString(rec)
                        except DecodeError:
                            continue
                        m.DiscardUnknownFields()
                        if m.ByteSize() == len(rec):
                            fits.append(signal)
                    if len(fits) == 1:
                        votes[fits[0]] += 1
                    seen += 1
                    if seen >= most:
                        raise StopIteration
    except (ValueError, StopIteration):
        pass
    ranked = votes.most_common(2)
    if not ranked or (len(ranked) == 2 and ranked[0][1] == ranked[1][1]):
        return None
    return ranked[0][0]
