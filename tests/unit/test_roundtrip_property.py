"""Property: a random valid OTLP message of any signal, written in every framing the ingest reads,
ingested and exported back with :mod:`otlp_aiops.otlp.export`, equals the source on every field.

Compared as multisets of (resource, resource schema_url, scope, scope schema_url, item), since the
grouping into Resource* / Scope* / Metric messages may differ; the only normalisation is the one the
schema docstring documents (presence of empty sub-messages). Every example is ingested with the
C decoder and with the pure-Python one.

Deterministic by default (derandomize, no database, no shrinking: a failure names the framing, the
decoder and the one item that differs). Locally: OTLP_AIOPS_HYPOTHESIS_EXAMPLES=300 runs more
examples, OTLP_AIOPS_HYPOTHESIS_RANDOM=1 draws new ones, OTLP_AIOPS_HYPOTHESIS_SHRINK=1 shrinks a
failure to a minimal message (minutes).
"""

from __future__ import annotations

import base64
import os
import random
import re
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.logs.v1 import logs_pb2
from opentelemetry.proto.metrics.v1 import metrics_pb2
from opentelemetry.proto.trace.v1 import trace_pb2

from otlp_aiops.otlp import accel, framing, otlpjson
from otlp_aiops.otlp import schema as S
from otlp_aiops.otlp.export import export_logs, export_metrics, export_traces
from otlp_aiops.otlp.ingest import ingest_paths
from otlp_factories import (
    FRAMINGS,
    RESOURCE_FIELD,
    SCOPE_FIELD,
    SIGNALS,
    assert_same_items,
    canonical_items,
    normalise,
    otlp_data,
    write_framing,
)

EXAMPLES = int(os.environ.get("OTLP_AIOPS_HYPOTHESIS_EXAMPLES", "30"))
PROPERTY = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=not os.environ.get("OTLP_AIOPS_HYPOTHESIS_RANDOM"),
    database=None,
    # Shrinking a failure costs minutes here (each example writes and ingests 7 files), and the
    # failure message already shows just the item that differs: shrink only when asked to.
    phases=tuple(Phase)
    if os.environ.get("OTLP_AIOPS_HYPOTHESIS_SHRINK")
    else (Phase.explicit, Phase.reuse, Phase.generate),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)
IMPLEMENTATIONS = ["python", *(["c"] if accel.wire is not None else [])]
EXPORT = {"traces": export_traces, "logs": export_logs, "metrics": export_metrics}

# what the report says for each framing the factories write: (compression, framing)
DETECTED = {
    "jsonl": ("none", "jsonl"),
    "json_pretty": ("none", "json"),
    "proto": ("none", "proto"),
    "length_prefixed": ("none", "length_prefixed"),
    "length_prefixed_zstd_frames": ("none", "length_prefixed+zstd frames"),
    "zstd_file": ("zstd", "length_prefixed"),
    "gzip": ("gzip", "jsonl"),
}


def _n_records(msg: Any, signal: str) -> int:
    n = 0
    for rb in getattr(msg, RESOURCE_FIELD[signal]):
        for sb in getattr(rb, SCOPE_FIELD[signal]):
            if signal == "metrics":
                n += sum(len(getattr(m, m.WhichOneof("data")).data_points) for m in sb.metrics)
            else:
                n += len(sb.spans if signal == "traces" else sb.log_records)
    return n


def _distinct_contexts(msg: Any, signal: str) -> tuple[int, int]:
    """How many distinct (resource, schema_url) and (scope, schema_url) a message holds."""
    res, scopes = set(), set()
    for rb in getattr(msg, RESOURCE_FIELD[signal]):
        res.add((rb.resource.SerializeToString(deterministic=True), rb.schema_url))
        for sb in getattr(rb, SCOPE_FIELD[signal]):
            scopes.add((sb.scope.SerializeToString(deterministic=True), sb.schema_url))
    return len(res), len(scopes)


@contextmanager
def implementation(name: str) -> Iterator[None]:
    """Ingest with the C decoder (which also streams JSON documents block by block, whatever
    their size) or the pure-Python one. Not the monkeypatch fixture: hypothesis runs many
    examples per test function."""
    saved = accel.wire, accel.wire_metrics, framing.STREAM_DOCUMENT_BYTES
    try:
        if name == "python":
            accel.wire = accel.wire_metrics = None
        else:
            framing.STREAM_DOCUMENT_BYTES = 0
        yield
    finally:
        accel.wire, accel.wire_metrics, framing.STREAM_DOCUMENT_BYTES = saved


def ingest_with(name: str, sources: list[Path], out: Path) -> dict[str, Any]:
    with implementation(name):
        return ingest_paths(sources, out, workers=1)


@pytest.mark.parametrize("signal", SIGNALS)
@PROPERTY
@given(data=st.data())
def test_every_framing_round_trips(
    signal: str, data: st.DataObject, tmp_path_factory: pytest.TempPathFactory
):
    msg = data.draw(otlp_data(signal), label="message")
    check_round_trip(msg, signal, tmp_path_factory.mktemp(f"rt-{signal}"))


def check_round_trip(msg: Any, signal: str, work: Path) -> None:
    """Write ``msg`` in every framing, ingest the files with each decoder, export, compare."""
    src = work / "in"
    paths = {}
    for framing_name, (suffix, *_) in FRAMINGS.items():
        # the signal is in the name, as a Collector file exporter per pipeline names its files
        paths[framing_name] = str(
            write_framing(src / f"{signal}-{framing_name}{suffix}", msg, signal, framing_name)
        )
    expected = canonical_items(normalise(msg))
    n = _n_records(msg, signal)
    n_res, n_scopes = _distinct_contexts(msg, signal)

    for impl in IMPLEMENTATIONS:
        out = work / f"out-{impl}"
        report = ingest_with(impl, [src], out)
        by_path = {f["path"]: f for f in report["files"]}
        assert sorted(by_path) == sorted(paths.values())
        for framing_name, path in paths.items():
            f = by_path[path]
            where = f"{framing_name} ({impl} decoder)"
            assert (f["compression"], f["framing"]) == DETECTED[framing_name], where
            assert f["signals"] == [signal], where
            assert (f["records_read"], f["records_written"], f["records_quarantined"]) == (n, n, 0), where
            assert f["messages_quarantined"] == 0, (where, f["quarantined_by_reason"])
            assert f["unknown_fields"] == {}, where
            assert f["ids_base64"] == 0, where

        # the same resource or scope read from JSON and from protobuf gets the same id
        assert report["totals"]["rows_written"]["resources"] == n_res, impl
        assert report["totals"]["rows_written"]["scopes"] == n_scopes, impl

        got = canonical_items(EXPORT[signal](out))
        if got != Counter({k: v * len(paths) for k, v in expected.items()}):
            for framing_name, path in paths.items():  # name the framing that lost something
                one = EXPORT[signal](out, where=pc.field("_source_file") == path)
                assert_same_items(expected, canonical_items(one), signal,
                                  f"{signal} written as {framing_name}, {impl} decoder")  # fmt: skip
            raise AssertionError(f"{impl} decoder: every framing alone round-trips, but not all together")


# --------------------------------------------------------------------------------------------------
# the smallest messages the property found to fail, kept as plain tests (see each docstring)
# --------------------------------------------------------------------------------------------------


def _one_span(**fields: Any) -> trace_pb2.TracesData:
    msg = trace_pb2.TracesData()
    msg.resource_spans.add().scope_spans.add().spans.add(**fields)
    return msg


def test_pretty_json_with_an_empty_object_line(tmp_path: Path):
    """A pretty-printed document in which a line is just ``{}`` (an empty span, data point or
    AnyValue in a list) must be sniffed as one JSON document, not as JSON lines."""
    check_round_trip(_one_span(), "traces", tmp_path)


@pytest.mark.parametrize("block_size", [123, 91], ids=["0x7b_brace", "0x5b_bracket"])
def test_raw_protobuf_whose_first_block_length_reads_as_json(block_size: int, tmp_path: Path):
    """A raw protobuf message starts with 0x0a (a newline) then the first block's length: a length
    of 123 or 91 bytes is the byte ``{`` or ``[``, which the sniffer must not take for JSON."""
    msg = metrics_pb2.MetricsData()
    metric = msg.resource_metrics.add().scope_metrics.add().metrics.add(name="x" * (block_size - 19))
    metric.gauge.data_points.add(as_int=1)
    assert msg.SerializeToString()[1] == block_size
    check_round_trip(msg, "metrics", tmp_path)


def test_summary_negative_zero_quantile_through_json(tmp_path: Path):
    """-0.0 is a double like any other: OTLP/JSON writes it as -0.0 and it must be read back so."""
    msg = metrics_pb2.MetricsData()
    metric = msg.resource_metrics.add().scope_metrics.add().metrics.add(name="latency")
    metric.summary.data_points.add(count=1, sum=-0.0).quantile_values.add(quantile=-0.0, value=-0.0)
    check_round_trip(msg, "metrics", tmp_path)


def test_promoted_integer_attribute_given_as_a_signed_string(tmp_path: Path):
    """``http.response.status_code`` sent as the string "+5" (a producer bug, but valid OTLP) must
    not stop the ingest: it stays in ``attributes``, and the typed column is null or 5."""
    msg = _one_span(name="GET")
    kv = msg.resource_spans[0].scope_spans[0].spans[0].attributes.add(key="http.response.status_code")
    kv.value.string_value = "+5"
    check_round_trip(msg, "traces", tmp_path)


def test_export_where_selects_a_subset(tmp_path: Path):
    """``where`` re-exports a subset: its records with their children, resources and scopes."""
    msg = trace_pb2.TracesData()
    for svc in ("a", "b"):
        rs = msg.resource_spans.add()
        rs.resource.attributes.add(key="service.name").value.string_value = svc
        ss = rs.scope_spans.add()
        ss.scope.name = "lib"
        s = ss.spans.add(trace_id=bytes([1]) * 16, span_id=bytes([2]) * 8, name=f"op-{svc}")
        s.events.add(name="ev", time_unix_nano=5)
        s.links.add(trace_id=bytes([3]) * 16, span_id=bytes([4]) * 8)
    write_framing(tmp_path / "in" / "traces.jsonl", msg, "traces", "jsonl")
    ingest_paths([tmp_path / "in"], tmp_path / "out", workers=1)
    got = export_traces(tmp_path / "out", where=pc.field("service_name") == "b")
    expected = trace_pb2.TracesData()
    expected.resource_spans.add().CopyFrom(msg.resource_spans[1])
    assert got == expected


# --------------------------------------------------------------------------------------------------
# the JSON reader's lenient variants
# --------------------------------------------------------------------------------------------------

_ID_KEYS = {"traceId", "spanId", "parentSpanId"}
# 64-bit integer fields (OTLP/JSON writes them as decimal strings)
_INT64_KEYS = {
    "timeUnixNano", "startTimeUnixNano", "endTimeUnixNano", "observedTimeUnixNano", "intValue", "asInt",
    "count", "zeroCount", "bucketCounts",
}  # fmt: skip
_ENUMS = {
    "kind": trace_pb2.Span.SpanKind,
    "code": trace_pb2.Status.StatusCode,
    "severityNumber": logs_pb2.SeverityNumber,
    "aggregationTemporality": metrics_pb2.AggregationTemporality,
}


def _snake(key: str) -> str:
    return re.sub(r"(?<!^)([A-Z])", lambda m: "_" + m.group(1).lower(), key)


class _Lenient:
    """Rewrites strict OTLP/JSON into the variants real producers write, at random, counting
    the ids it rewrote as base64."""

    def __init__(self, rnd: random.Random) -> None:
        self.rnd = rnd
        self.base64_ids = 0

    def value(self, key: str | None, v: Any) -> Any:
        rnd = self.rnd
        if isinstance(v, dict):
            return {self.key(k): self.value(k, x) for k, x in v.items()}
        if isinstance(v, list):
            return [self.value(key if key == "bucketCounts" else None, x) for x in v]
        if key in _ID_KEYS and isinstance(v, str):
            choice = rnd.random()
            if choice < 0.25:
                return v.upper()  # hex in capitals is still hex
            if choice < 0.6:
                self.base64_ids += 1
                b64 = base64.b64encode(bytes.fromhex(v)).decode()
                return b64 if rnd.random() < 0.5 else b64.rstrip("=")
        if key in _INT64_KEYS and isinstance(v, str) and re.fullmatch(r"-?\d+", v) and rnd.random() < 0.5:
            return int(v)
        if key in _ENUMS and type(v) is int and rnd.random() < 0.5:
            return _ENUMS[key].Name(v)
        return v

    def key(self, k: str) -> str:
        return _snake(k) if self.rnd.random() < 0.5 else k


def _table_texts(out: Path) -> dict[str, str]:
    """Every table of an ingest output, lineage file name dropped, as comparable text (repr keeps
    NaN and -0.0 apart from other values, which Arrow's equality does not)."""
    texts = {}
    for name in S.TABLES:
        t = pq.read_table(out / name)
        t = t.drop_columns([c for c in ("_source_file",) if c in t.column_names])
        for i, f in enumerate(t.schema):
            if pa.types.is_timestamp(f.type):
                t = t.set_column(i, f.name, t.column(i).cast(pa.int64()))
        texts[name] = repr(t.to_pylist())
    return texts


@pytest.mark.parametrize("signal", SIGNALS)
@settings(PROPERTY, max_examples=max(10, EXAMPLES // 2))
@given(data=st.data())
def test_lenient_json_gives_the_same_rows(
    signal: str, data: st.DataObject, tmp_path_factory: pytest.TempPathFactory
):
    msg = data.draw(otlp_data(signal), label="message")
    lenient = _Lenient(data.draw(st.randoms(use_true_random=False), label="choices"))
    work = tmp_path_factory.mktemp(f"lenient-{signal}")
    strict_lines = [otlpjson.to_otlp_dict(msg)]
    lenient_lines = [lenient.value(None, d) for d in strict_lines]
    (work / "strict").mkdir()
    (work / "lenient").mkdir()
    (work / "strict" / "x.jsonl").write_bytes(b"".join(orjson.dumps(d) + b"\n" for d in strict_lines))
    (work / "lenient" / "x.jsonl").write_bytes(b"".join(orjson.dumps(d) + b"\n" for d in lenient_lines))
    tables = {}
    for impl in IMPLEMENTATIONS:
        for form in ("strict", "lenient"):
            report = ingest_with(impl, [work / form], work / f"out-{form}-{impl}")
            f = report["files"][0]
            assert (f["records_quarantined"], f["messages_quarantined"]) == (0, 0), (form, impl)
            assert f["unknown_fields"] == {}, (form, impl)
            assert f["ids_base64"] == (lenient.base64_ids if form == "lenient" else 0), (form, impl)
            tables[form, impl] = _table_texts(work / f"out-{form}-{impl}")
    strict = tables["strict", "python"]
    for (form, impl), got in tables.items():
        for name in S.TABLES:
            assert got[name] == strict[name], f"table {name} differs: {form} JSON, {impl} decoder"


def test_lenient_entity_refs_give_the_same_resource(tmp_path: Path):
    """``entityRefs`` written with snake_case keys is the same resource: same ``resource_id``, same
    ``entity_refs_json`` (kept as OTLP/JSON, whatever spelling the input used)."""
    msg = logs_pb2.LogsData()
    rl = msg.resource_logs.add()
    rl.resource.entity_refs.add(
        type="service", id_keys=["service.name"], description_keys=["service.version"]
    )
    rl.scope_logs.add().log_records.add(time_unix_nano=1)
    strict = otlpjson.to_otlp_dict(msg)
    snake = orjson.loads(
        orjson.dumps(strict).replace(b"idKeys", b"id_keys").replace(b"descriptionKeys", b"description_keys")
    )
    for form, doc in (("strict", strict), ("snake", snake)):
        (tmp_path / form).mkdir()
        (tmp_path / form / "x.jsonl").write_bytes(orjson.dumps(doc) + b"\n")
        ingest_paths([tmp_path / form], tmp_path / f"out-{form}", workers=1)
    a = pq.read_table(tmp_path / "out-strict" / "resources").to_pylist()
    b = pq.read_table(tmp_path / "out-snake" / "resources").to_pylist()
    assert b == a
