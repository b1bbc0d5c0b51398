"""Test helpers for OTLP: hypothesis strategies for random valid messages of every signal, the
framings to write them in, and the canonical form two messages are compared in.

Random messages stay inside the valid ranges of OTLP (ids non-zero or empty, times 0 or within
int64, known enum numbers, unique attribute keys): what they test is that a valid message comes
back from the Parquet tables unchanged.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from google.protobuf import text_format
from google.protobuf.message import Message
from hypothesis import strategies as st
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.logs.v1 import logs_pb2
from opentelemetry.proto.metrics.v1 import metrics_pb2
from opentelemetry.proto.resource.v1 import resource_pb2
from opentelemetry.proto.trace.v1 import trace_pb2

from otlp_aiops.otlp import otlpjson
from otlp_aiops.otlp.write import encode_frames, write_file

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1
UINT32_MAX = 2**32 - 1
UINT64_MAX = 2**64 - 1

SIGNALS = ("traces", "logs", "metrics")
TOP_TYPES: dict[str, type[Message]] = {
    "traces": trace_pb2.TracesData,
    "logs": logs_pb2.LogsData,
    "metrics": metrics_pb2.MetricsData,
}
RESOURCE_FIELD = {"traces": "resource_spans", "logs": "resource_logs", "metrics": "resource_metrics"}
SCOPE_FIELD = {"traces": "scope_spans", "logs": "scope_logs", "metrics": "scope_metrics"}
ITEM_FIELD = {"traces": "spans", "logs": "log_records", "metrics": "metrics"}

# --------------------------------------------------------------------------------------------------
# scalars
# --------------------------------------------------------------------------------------------------

# Hot semantic-convention keys (promoted to columns by ingest) mixed with arbitrary text.
HOT_KEYS = [
    "service.name", "service.namespace", "service.instance.id", "host.name", "k8s.pod.name",
    "deployment.environment", "http.request.method", "http.method", "http.response.status_code",
    "http.status_code", "http.route", "url.full", "rpc.system", "rpc.grpc.status_code", "db.system",
    "peer.service", "error.type", "exception.type", "exception.message",
]  # fmt: skip


def texts(max_size: int = 8) -> st.SearchStrategy[str]:
    """Unicode text that protobuf accepts (no lone surrogates), with the awkward cases boosted."""
    return st.one_of(
        st.text(st.characters(exclude_categories=("Cs",)), max_size=max_size),
        st.sampled_from(
            ["", "a", "GET", "\x00", "é", "😀", "line\r\nbreak", '"quoted"', "{}", "[1]", "NaN", "+1", "404"]
        ),
    )


def keys() -> st.SearchStrategy[str]:
    return st.one_of(st.sampled_from(HOT_KEYS), texts(6))


def doubles() -> st.SearchStrategy[float]:
    """Every double, with the special values boosted (NaN only as the canonical quiet NaN)."""
    return st.one_of(
        st.floats(allow_nan=False),
        st.sampled_from([math.nan, math.inf, -math.inf, -0.0, 0.0, 1.0, 0.1, 1e300, 5e-324]),
    )


def int64s() -> st.SearchStrategy[int]:
    return st.one_of(st.integers(INT64_MIN, INT64_MAX), st.sampled_from([0, 1, -1, INT64_MIN, INT64_MAX]))


def uint32s() -> st.SearchStrategy[int]:
    return st.one_of(st.just(0), st.integers(0, UINT32_MAX))


def uint64s() -> st.SearchStrategy[int]:
    return st.one_of(st.integers(0, 1000), st.integers(0, UINT64_MAX), st.just(UINT64_MAX))


def times() -> st.SearchStrategy[int]:
    """Unix nanoseconds: unset (0), realistic, or anywhere within int64."""
    return st.one_of(
        st.just(0),
        st.integers(1_600_000_000_000_000_000, 1_800_000_000_000_000_000),
        st.integers(1, INT64_MAX),
    )


def ids(n: int) -> st.SearchStrategy[bytes]:
    """An n-byte id, random and not all zero, or empty (unset)."""
    return st.one_of(st.just(b""), st.binary(min_size=n, max_size=n).filter(lambda b: any(b)))


# --------------------------------------------------------------------------------------------------
# AnyValue and attributes
# --------------------------------------------------------------------------------------------------


def _array(values: list[common_pb2.AnyValue]) -> common_pb2.AnyValue:
    v = common_pb2.AnyValue()
    v.array_value.SetInParent()
    v.array_value.values.extend(values)
    return v


def _kvlist(items: list[tuple[str, common_pb2.AnyValue]]) -> common_pb2.AnyValue:
    v = common_pb2.AnyValue()
    v.kvlist_value.SetInParent()
    for k, x in items:
        v.kvlist_value.values.add(key=k).value.CopyFrom(x)
    return v


def scalar_anyvalues() -> st.SearchStrategy[common_pb2.AnyValue]:
    A = common_pb2.AnyValue
    return st.one_of(
        texts().map(lambda s: A(string_value=s)),
        st.booleans().map(lambda b: A(bool_value=b)),
        int64s().map(lambda i: A(int_value=i)),
        doubles().map(lambda x: A(double_value=x)),
        st.binary(max_size=10).map(lambda b: A(bytes_value=b)),
        st.builds(A),  # empty: no value set
        st.integers(-(2**31), 2**31 - 1).map(lambda i: A(string_value_strindex=i)),
    )


def anyvalues() -> st.SearchStrategy[common_pb2.AnyValue]:
    """Every AnyValue kind, arrays and kvlists nested (nested kvlists may repeat a key)."""
    return st.recursive(
        scalar_anyvalues(),
        lambda children: st.one_of(
            st.lists(children, max_size=4).map(_array),
            st.lists(st.tuples(keys(), children), max_size=4).map(_kvlist),
        ),
        max_leaves=8,
    )


def attributes(max_size: int = 4) -> st.SearchStrategy[list[common_pb2.KeyValue]]:
    """A list of KeyValue with unique keys."""
    return st.lists(st.tuples(keys(), anyvalues()), max_size=max_size, unique_by=lambda kv: kv[0]).map(
        lambda items: [common_pb2.KeyValue(key=k, value=v) for k, v in items]
    )


# --------------------------------------------------------------------------------------------------
# resource and scope
# --------------------------------------------------------------------------------------------------


@st.composite
def resources(draw) -> tuple[resource_pb2.Resource | None, str]:
    """(resource or None for unset, the Resource* block's schema_url)."""
    if draw(st.integers(0, 5)) == 0:
        return None, draw(st.sampled_from(["", "https://opentelemetry.io/schemas/1.26.0"]))
    r = resource_pb2.Resource(dropped_attributes_count=draw(st.sampled_from([0, 0, 3, UINT32_MAX])))
    r.attributes.extend(draw(attributes()))
    for _ in range(draw(st.integers(0, 2) if draw(st.integers(0, 3)) == 0 else st.just(0))):
        r.entity_refs.add(
            schema_url=draw(st.sampled_from(["", "https://opentelemetry.io/schemas/1.30.0"])),
            type=draw(st.sampled_from(["service", "host", ""])),
            id_keys=draw(st.lists(st.sampled_from(["service.name", "host.id"]), max_size=2)),
            description_keys=draw(st.lists(texts(4), max_size=2)),
        )
    return r, draw(st.sampled_from(["", "https://opentelemetry.io/schemas/1.26.0", "x"]))


@st.composite
def scopes(draw) -> tuple[common_pb2.InstrumentationScope | None, str]:
    if draw(st.integers(0, 5)) == 0:
        return None, draw(st.sampled_from(["", "https://opentelemetry.io/schemas/1.26.0"]))
    s = common_pb2.InstrumentationScope(
        name=draw(st.one_of(st.sampled_from(["", "io.opentelemetry.http", "otel"]), texts())),
        version=draw(st.sampled_from(["", "1.2.3", "v0"])),
        dropped_attributes_count=draw(st.sampled_from([0, 0, 1, UINT32_MAX])),
    )
    s.attributes.extend(draw(attributes(3)))
    return s, draw(st.sampled_from(["", "https://opentelemetry.io/schemas/1.26.0", "s"]))


# --------------------------------------------------------------------------------------------------
# records
# --------------------------------------------------------------------------------------------------


@st.composite
def spans(draw) -> trace_pb2.Span:
    s = trace_pb2.Span(
        trace_id=draw(ids(16)),
        span_id=draw(ids(8)),
        trace_state=draw(st.sampled_from(["", "congo=t61rcWkgMzE", "a=1,b=2"])),
        parent_span_id=draw(ids(8)),
        flags=draw(st.one_of(st.sampled_from([0, 1, 0x100, 0x301]), uint32s())),
        name=draw(texts()),
        kind=draw(st.sampled_from(list(trace_pb2.Span.SpanKind.values()))),
        start_time_unix_nano=draw(times()),
        end_time_unix_nano=draw(times()),
        dropped_attributes_count=draw(uint32s()),
        dropped_events_count=draw(uint32s()),
        dropped_links_count=draw(uint32s()),
    )
    s.attributes.extend(draw(attributes()))
    for _ in range(draw(st.integers(0, 3))):
        e = s.events.add(time_unix_nano=draw(times()), name=draw(texts()),
                         dropped_attributes_count=draw(uint32s()))  # fmt: skip
        e.attributes.extend(draw(attributes(3)))
    for _ in range(draw(st.integers(0, 2))):
        lk = s.links.add(
            trace_id=draw(ids(16)), span_id=draw(ids(8)), trace_state=draw(st.sampled_from(["", "k=v"])),
            dropped_attributes_count=draw(uint32s()), flags=draw(uint32s()),
        )  # fmt: skip
        lk.attributes.extend(draw(attributes(3)))
    if draw(st.booleans()):
        s.status.code = draw(st.sampled_from(list(trace_pb2.Status.StatusCode.values())))
        s.status.message = draw(st.one_of(st.just(""), texts()))
    return s


@st.composite
def log_records(draw) -> logs_pb2.LogRecord:
    r = logs_pb2.LogRecord(
        time_unix_nano=draw(times()),
        observed_time_unix_nano=draw(times()),
        severity_number=draw(st.sampled_from(list(logs_pb2.SeverityNumber.values()))),
        severity_text=draw(st.sampled_from(["", "INFO", "Error", "warn"])),
        dropped_attributes_count=draw(uint32s()),
        flags=draw(st.one_of(st.sampled_from([0, 1]), uint32s())),
        trace_id=draw(ids(16)),
        span_id=draw(ids(8)),
        event_name=draw(
            st.one_of(st.just(""), st.sampled_from(["device.app.lifecycle", "browser.click"]), texts())
        ),
    )
    if draw(st.integers(0, 4)):  # most records have a body, of every kind (an empty AnyValue included)
        r.body.CopyFrom(draw(anyvalues()))
    r.attributes.extend(draw(attributes()))
    return r


@st.composite
def exemplars(draw) -> metrics_pb2.Exemplar:
    e = metrics_pb2.Exemplar(time_unix_nano=draw(times()), span_id=draw(ids(8)), trace_id=draw(ids(16)))
    e.filtered_attributes.extend(draw(attributes(2)))
    value = draw(st.sampled_from(["double", "int", "none"]))
    if value == "double":
        e.as_double = draw(doubles())
    elif value == "int":
        e.as_int = draw(int64s())
    return e


def _point_common(draw, p: Any, with_exemplars: bool = True) -> None:
    p.attributes.extend(draw(attributes(3)))
    p.start_time_unix_nano = draw(times())
    p.time_unix_nano = draw(times())
    # bit 0 is NO_RECORDED_VALUE; other bits are reserved but must survive
    p.flags = draw(st.one_of(st.sampled_from([0, 0, 1]), uint32s()))
    if with_exemplars:
        p.exemplars.extend(draw(st.lists(exemplars(), max_size=2)))


@st.composite
def number_points(draw) -> metrics_pb2.NumberDataPoint:
    p = metrics_pb2.NumberDataPoint()
    _point_common(draw, p)
    value = draw(st.sampled_from(["double", "int", "none"]))
    if value == "double":
        p.as_double = draw(doubles())
    elif value == "int":
        p.as_int = draw(int64s())
    return p


@st.composite
def histogram_points(draw) -> metrics_pb2.HistogramDataPoint:
    p = metrics_pb2.HistogramDataPoint(count=draw(uint64s()))
    _point_common(draw, p)
    for opt in ("sum", "min", "max"):
        if draw(st.booleans()):
            setattr(p, opt, draw(doubles()))
    # of the shape OTLP requires (ingest quarantines others as bad_histogram): no buckets, or one
    # count more than the strictly increasing, non-NaN bounds, the counts summing to count
    bounds = sorted({b for b in draw(st.lists(doubles(), max_size=4)) if b == b})
    if bounds or draw(st.booleans()):
        counts = draw(st.lists(st.integers(0, UINT64_MAX // 5), min_size=len(bounds) + 1, max_size=len(bounds) + 1))
        p.bucket_counts.extend(counts)
        p.explicit_bounds.extend(bounds)
        p.count = sum(counts)
    return p


@st.composite
def exp_histogram_points(draw) -> metrics_pb2.ExponentialHistogramDataPoint:
    p = metrics_pb2.ExponentialHistogramDataPoint(
        count=draw(uint64s()),
        scale=draw(st.one_of(st.integers(-10, 20), st.integers(-(2**31), 2**31 - 1))),
        zero_count=draw(uint64s()),
        zero_threshold=draw(st.one_of(st.just(0.0), doubles())),
    )
    _point_common(draw, p)
    for opt in ("sum", "min", "max"):
        if draw(st.booleans()):
            setattr(p, opt, draw(doubles()))
    for side in ("positive", "negative"):
        if draw(st.integers(0, 3)):
            b = getattr(p, side)
            b.SetInParent()
            b.offset = draw(st.one_of(st.integers(-5, 5), st.integers(-(2**31), 2**31 - 1)))
            b.bucket_counts.extend(draw(st.lists(uint64s(), max_size=4)))
    return p


@st.composite
def summary_points(draw) -> metrics_pb2.SummaryDataPoint:
    p = metrics_pb2.SummaryDataPoint(count=draw(uint64s()), sum=draw(doubles()))
    _point_common(draw, p, with_exemplars=False)
    for _ in range(draw(st.integers(0, 3))):
        p.quantile_values.add(quantile=draw(doubles()), value=draw(doubles()))
    return p


_POINTS = {
    "gauge": number_points,
    "sum": number_points,
    "histogram": histogram_points,
    "exponential_histogram": exp_histogram_points,
    "summary": summary_points,
}
TEMPORALITIES = list(metrics_pb2.AggregationTemporality.values())


@st.composite
def metrics(draw) -> metrics_pb2.Metric:
    """A Metric of any type with 1..3 data points (a Metric without points has no rows to keep)."""
    m = metrics_pb2.Metric(
        name=draw(st.one_of(st.sampled_from(["http.server.request.duration", "cpu", ""]), texts())),
        description=draw(st.sampled_from(["", "Duration of HTTP server requests."])),
        unit=draw(st.sampled_from(["", "s", "By", "{request}", "1"])),
    )
    m.metadata.extend(draw(st.one_of(st.just([]), attributes(2))))
    mtype = draw(st.sampled_from(list(_POINTS)))
    data = getattr(m, mtype)
    data.SetInParent()
    if mtype in ("sum", "histogram", "exponential_histogram"):
        data.aggregation_temporality = draw(st.sampled_from(TEMPORALITIES))
    if mtype == "sum":
        data.is_monotonic = draw(st.booleans())
    data.data_points.extend(draw(st.lists(_POINTS[mtype](), min_size=1, max_size=3)))
    return m


ITEMS: dict[str, Callable[[], st.SearchStrategy[Any]]] = {
    "traces": spans,
    "logs": log_records,
    "metrics": metrics,
}


@st.composite
def otlp_data(draw, signal: str) -> Message:
    """A TracesData / LogsData / MetricsData: 1..3 Resource* blocks of 1..2 Scope* blocks of 1..3 items.

    Resources and scopes are drawn from small pools, so the same resource (or scope) often appears in
    several blocks, as it does when a Collector batches several exports into one file."""
    res_pool = draw(st.lists(resources(), min_size=1, max_size=2))
    scope_pool = draw(st.lists(scopes(), min_size=1, max_size=2))
    msg = TOP_TYPES[signal]()
    for _ in range(draw(st.integers(1, 3))):
        rb = getattr(msg, RESOURCE_FIELD[signal]).add()
        res, rurl = draw(st.sampled_from(res_pool))
        if res is not None:
            rb.resource.CopyFrom(res)
        rb.schema_url = rurl
        for _ in range(draw(st.integers(1, 2))):
            sb = getattr(rb, SCOPE_FIELD[signal]).add()
            sc, surl = draw(st.sampled_from(scope_pool))
            if sc is not None:
                sb.scope.CopyFrom(sc)
            sb.schema_url = surl
            getattr(sb, ITEM_FIELD[signal]).extend(draw(st.lists(ITEMS[signal](), min_size=1, max_size=3)))
    return msg


# --------------------------------------------------------------------------------------------------
# comparison
# --------------------------------------------------------------------------------------------------


def _clear_empty_values(kvs: Iterable[common_pb2.KeyValue]) -> None:
    """An attribute whose value is an empty AnyValue is stored as type ``empty``; whether the
    (empty) value message was present is not kept."""
    for kv in kvs:
        if kv.HasField("value") and kv.value.ByteSize() == 0:
            kv.ClearField("value")
        elif kv.value.WhichOneof("value") == "kvlist_value":
            _clear_empty_values(kv.value.kvlist_value.values)
        elif kv.value.WhichOneof("value") == "array_value":
            _clear_nested(kv.value.array_value.values)


def _clear_nested(values: Iterable[common_pb2.AnyValue]) -> None:
    for v in values:
        which = v.WhichOneof("value")
        if which == "kvlist_value":
            _clear_empty_values(v.kvlist_value.values)
        elif which == "array_value":
            _clear_nested(v.array_value.values)


def _normalise_kvs(m: Message) -> None:
    """Apply _clear_empty_values to every attribute list anywhere inside ``m``."""
    for fd, value in m.ListFields():
        if fd.message_type is None:
            continue
        if fd.message_type is common_pb2.KeyValue.DESCRIPTOR and fd.is_repeated:
            _clear_empty_values(value)
        if fd.message_type is common_pb2.AnyValue.DESCRIPTOR:
            if fd.is_repeated:
                _clear_nested(value)
            else:
                _clear_nested([value])
            continue
        if fd.is_repeated:
            for x in value:
                _normalise_kvs(x)
        else:
            _normalise_kvs(value)


def normalise(msg: Message) -> Message:
    """A copy of ``msg`` without what the schema docstring says the tables do not keep: the
    presence of empty sub-messages (resource, scope, span status, exponential histogram buckets,
    an attribute's empty AnyValue)."""
    m = type(msg)()
    m.CopyFrom(msg)
    for _fd, blocks in m.ListFields():
        for rb in blocks:
            if rb.HasField("resource") and rb.resource.ByteSize() == 0:
                rb.ClearField("resource")
            for fd2, sblocks in rb.ListFields():
                if not fd2.name.startswith("scope_"):
                    continue
                for sb in sblocks:
                    if sb.HasField("scope") and sb.scope.ByteSize() == 0:
                        sb.ClearField("scope")
                    for s in getattr(sb, "spans", ()):
                        if s.HasField("status") and s.status.ByteSize() == 0:
                            s.ClearField("status")
                    for mt in getattr(sb, "metrics", ()):
                        if mt.WhichOneof("data") == "exponential_histogram":
                            for p in mt.exponential_histogram.data_points:
                                for side in ("positive", "negative"):
                                    if p.HasField(side) and getattr(p, side).ByteSize() == 0:
                                        p.ClearField(side)
    _normalise_kvs(m)
    return m


def _ser(m: Message) -> bytes:
    return m.SerializeToString(deterministic=True)


def canonical_items(msg: Message) -> Counter:
    """The multiset of (resource, resource schema_url, scope, scope schema_url, item) of a message,
    as serialised bytes; for metrics an item is (the Metric without its points, one data point)."""
    out: Counter = Counter()
    for _fd, blocks in msg.ListFields():
        for rb in blocks:
            r = (_ser(rb.resource), rb.schema_url)
            for fd2, sblocks in rb.ListFields():
                if not fd2.name.startswith("scope_"):
                    continue
                for sb in sblocks:
                    s = (_ser(sb.scope), sb.schema_url)
                    for item in getattr(sb, "spans", ()):
                        out[(*r, *s, _ser(item))] += 1
                    for item in getattr(sb, "log_records", ()):
                        out[(*r, *s, _ser(item))] += 1
                    for mt in getattr(sb, "metrics", ()):
                        head = metrics_pb2.Metric()
                        head.CopyFrom(mt)
                        which = mt.WhichOneof("data")
                        getattr(head, which).ClearField("data_points")
                        for p in getattr(mt, which).data_points:
                            out[(*r, *s, _ser(head), type(p).__name__, _ser(p))] += 1
    return out


def _describe(key: tuple, signal: str) -> str:
    res = resource_pb2.Resource.FromString(key[0])
    scope = common_pb2.InstrumentationScope.FromString(key[2])
    if signal == "metrics":
        head = metrics_pb2.Metric.FromString(key[4])
        point = getattr(metrics_pb2, key[5]).FromString(key[6])
        item = f"metric:\n{text_format.MessageToString(head, as_utf8=True)}point:\n{text_format.MessageToString(point, as_utf8=True)}"
    else:
        cls = trace_pb2.Span if signal == "traces" else logs_pb2.LogRecord
        item = text_format.MessageToString(cls.FromString(key[4]), as_utf8=True)
    return (
        f"resource (schema_url {key[1]!r}):\n{text_format.MessageToString(res, as_utf8=True)}"
        f"scope (schema_url {key[3]!r}):\n{text_format.MessageToString(scope, as_utf8=True)}item:\n{item}"
    )


def assert_same_items(expected: Counter, actual: Counter, signal: str, what: str = "") -> None:
    """Assert two canonical_items multisets are equal, showing the first differences readably."""
    if expected == actual:
        return
    missing = expected - actual
    extra = actual - expected
    lines = [f"{what}: {sum(missing.values())} item(s) lost or changed, {sum(extra.values())} unexpected"]
    for k in list(missing)[:2]:
        lines.append(f"--- expected (x{missing[k]}), not found:\n{_describe(k, signal)}")
    for k in list(extra)[:2]:
        lines.append(f"+++ found instead (x{extra[k]}):\n{_describe(k, signal)}")
    raise AssertionError("\n".join(lines))


# --------------------------------------------------------------------------------------------------
# writing in every framing
# --------------------------------------------------------------------------------------------------

# name -> (file name suffix, frame framing, whole-file compression, message serialiser)
FRAMINGS: dict[str, tuple[str, str, str, str]] = {
    "jsonl": (".jsonl", "jsonl", "none", "json"),
    "json_pretty": (".json", "json", "none", "json_pretty"),
    "proto": (".pb", "proto", "none", "proto"),
    "length_prefixed": (".binpb", "length_prefixed", "none", "proto"),
    "length_prefixed_zstd_frames": (".binpb", "length_prefixed_zstd", "none", "proto"),
    "zstd_file": (".binpb.zst", "length_prefixed", "zstd", "proto"),
    "gzip": (".jsonl.gz", "jsonl", "gzip", "json"),
}


def split_message(msg: Message, signal: str) -> list[Message]:
    """One message per Resource* block (how a Collector file exporter writes one export per line)."""
    out = []
    for rb in getattr(msg, RESOURCE_FIELD[signal]):
        part = TOP_TYPES[signal]()
        getattr(part, RESOURCE_FIELD[signal]).add().CopyFrom(rb)
        out.append(part)
    return out


def serialise(msg: Message, how: str) -> bytes:
    if how == "json":
        return otlpjson.to_otlp_json(msg)
    if how == "json_pretty":
        return otlpjson.to_otlp_json(msg, pretty=True)
    return msg.SerializeToString()


def write_framing(path: Path, msg: Message, signal: str, framing: str) -> Path:
    """Write ``msg`` to ``path`` in one of FRAMINGS; single-message framings hold it whole,
    the others one message per Resource* block."""
    _, frames, compression, how = FRAMINGS[framing]
    parts = [msg] if frames in ("json", "proto") else split_message(msg, signal)
    write_file(path, encode_frames((serialise(p, how) for p in parts), frames), compression)  # type: ignore[arg-type]
    return path
