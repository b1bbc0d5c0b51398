"""The C decoder (_wire) and the pure-Python decoder must give identical tables, reports and
quarantine on the same input, including every unusual and broken record the C code hands back
or rejects itself. Exact expected values are checked too, so the pair cannot be wrong together."""

from __future__ import annotations

import base64
import json
import struct
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

from otlp_aiops.otlp import accel
from otlp_aiops.otlp.ingest import ingest_paths
from otlp_aiops.otlp.otlpjson import to_otlp_dict
from otlp_aiops.otlp.write import encode_frames
from wire_factories import key as _key
from wire_factories import ld as _ld
from wire_factories import varint as _varint

pytestmark = pytest.mark.skipif(accel.wire is None, reason="the C decoder is not built (no compiler?)")

TID = bytes(range(1, 17))
SID = bytes(range(1, 9))


def _span_request() -> trace_service_pb2.ExportTraceServiceRequest:
    req = trace_service_pb2.ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    rs.schema_url = "https://opentelemetry.io/schemas/1.26.0"
    a = rs.resource.attributes.add()
    a.key, a.value.string_value = "service.name", "cart"
    ss = rs.scope_spans.add()
    ss.scope.name, ss.scope.version = "lib", "1.0"
    for i in range(6):
        s = ss.spans.add()
        s.trace_id, s.span_id, s.parent_span_id = TID, bytes([i + 1] * 8), SID
        s.name, s.kind = f"op{i}", 2
        s.start_time_unix_nano, s.end_time_unix_nano = (
            1_700_000_000_000_000_000 + i,
            1_700_000_000_000_001_000 + i,
        )
        s.trace_state, s.flags = "k=v", 0x101
        s.dropped_attributes_count, s.dropped_events_count, s.dropped_links_count = 1, 2, 3
        s.status.code, s.status.message = 2, "boom"
        for k, setter in [
            ("s", lambda v: setattr(v, "string_value", "x")),
            ("empty_str", lambda v: setattr(v, "string_value", "")),
            ("i", lambda v: setattr(v, "int_value", -(2**63))),
            ("d", lambda v: setattr(v, "double_value", 1e16)),
            ("nan", lambda v: setattr(v, "double_value", float("nan"))),
            ("negzero", lambda v: setattr(v, "double_value", -0.0)),
            ("b", lambda v: setattr(v, "bool_value", False)),
            ("bytes", lambda v: setattr(v, "bytes_value", b"\x00\xff")),
            ("none", lambda v: None),
        ]:
            kv = s.attributes.add()
            kv.key = k
            setter(kv.value)
        arr = s.attributes.add()
        arr.key = "arr"
        arr.value.array_value.values.add().string_value = "a"
        arr.value.array_value.values.add().int_value = 3
        kvl = s.attributes.add()
        kvl.key = "map"
        inner = kvl.value.kvlist_value.values.add()
        inner.key, inner.value.double_value = "z", float("inf")
        ev = s.events.add()
        ev.time_unix_nano, ev.name, ev.dropped_attributes_count = 1_700_000_000_000_000_500, "exception", 4
        ea = ev.attributes.add()
        ea.key, ea.value.string_value = "exception.type", "IOError"
        lk = s.links.add()
        lk.trace_id, lk.span_id, lk.trace_state, lk.flags = TID, SID, "a=b", 1
        la = lk.attributes.add()
        la.key, la.value.int_value = "n", 7
    return req


def _broken_spans_payload() -> bytes:
    """A ResourceSpans request whose scope holds good spans interleaved with broken ones, built
    at the wire level: wrong id length, kind 9, time beyond int64, invalid UTF-8 name, an
    unknown field, a field with the wrong wire type, repeated AnyValue occurrences (protobuf
    merges them), truncated bytes inside a span."""
    good = _span_request().resource_spans[0].scope_spans[0].spans[0].SerializeToString()
    bad_id = _ld(1, b"\x01\x02") + _ld(2, SID) + _ld(5, b"short-id")
    bad_kind = _ld(1, TID) + _ld(2, SID) + _key(6, 0) + _varint(9)
    bad_time = _ld(1, TID) + _ld(2, SID) + _key(7, 1) + struct.pack("<Q", 2**63 + 5)
    bad_utf8 = _ld(1, TID) + _ld(2, SID) + _ld(5, b"\xff\xfe")
    unknown = good + _key(99, 0) + _varint(1) + _ld(98, b"zz")
    wrong_wt = _ld(1, TID) + _ld(2, SID) + _ld(6, b"xx")  # kind as bytes: an unknown field
    merged_value = (
        _ld(1, TID)
        + _ld(2, SID)
        + _ld(9, _ld(1, b"k") + _ld(2, _ld(1, b"first")) + _ld(2, _key(3, 0) + _varint(5)))
    )
    merged_arrays = (
        _ld(1, TID)
        + _ld(2, SID)
        + _ld(9, _ld(1, b"arr") + _ld(2, _ld(5, _ld(1, _ld(1, b"a")))) + _ld(2, _ld(5, _ld(1, _ld(1, b"b")))))
    )
    cut_inside = _ld(1, TID) + _ld(2, SID) + _key(5, 2) + _varint(50) + b"only-a-few"
    status_twice = (
        _ld(1, TID) + _ld(2, SID) + _ld(15, _ld(2, b"m1") + _key(3, 0) + _varint(1)) + _ld(15, _ld(2, b"m2"))
    )
    spans = [good, bad_id, unknown, bad_kind, bad_time, bad_utf8, wrong_wt, merged_value, merged_arrays, cut_inside,
             status_twice, good]  # fmt: skip
    scope = _ld(1, _ld(1, b"lib")) + b"".join(_ld(2, s) for s in spans) + _key(77, 0) + _varint(3)
    resource = _ld(1, _ld(1, _ld(1, b"service.name") + _ld(2, _ld(1, b"cart"))))
    return _ld(1, resource + _ld(2, scope))


def _log_request() -> logs_service_pb2.ExportLogsServiceRequest:
    req = logs_service_pb2.ExportLogsServiceRequest()
    rl = req.resource_logs.add()
    a = rl.resource.attributes.add()
    a.key, a.value.string_value = "service.name", "cart"
    sl = rl.scope_logs.add()
    bodies = [
        lambda v: setattr(v, "string_value", "hello"),
        lambda v: setattr(v, "int_value", 42),
        lambda v: setattr(v, "double_value", 0.1),
        lambda v: setattr(v, "bool_value", True),
        lambda v: setattr(v, "bytes_value", b"\x01"),
        lambda v: v.kvlist_value.values.add(key="k").value.SetInParent(),
        lambda v: v.array_value.SetInParent(),
        lambda v: None,
    ]
    for i, set_body in enumerate(bodies):
        r = sl.log_records.add()
        r.time_unix_nano, r.observed_time_unix_nano = 1_700_000_000_000_000_000 + i, 1_700_000_000_000_000_009
        r.severity_number, r.severity_text = 17, "ERROR"
        r.trace_id, r.span_id, r.flags, r.event_name = TID, SID, 1, "ev" if i % 2 else ""
        if i < 7:
            r.body.SetInParent()
            set_body(r.body)
        kv = r.attributes.add()
        kv.key, kv.value.string_value = "code.function", f"f{i}"
    bad = sl.log_records.add()
    bad.severity_number = 30  # not a SeverityNumber
    return req


def _lenient_json_lines() -> list[bytes]:
    """OTLP/JSON lines exercising every branch the C decoder hands to Python."""
    base = to_otlp_dict(_span_request())
    spans = base["resourceSpans"][0]["scopeSpans"][0]["spans"]
    s0 = spans[0]
    variants = []
    v = json.loads(json.dumps(s0))
    v["traceId"] = base64.b64encode(TID).decode()  # base64 id
    variants.append(v)
    v = json.loads(json.dumps(s0))
    v["kind"] = "SPAN_KIND_CLIENT"  # enum name
    v["status"] = {"code": "STATUS_CODE_OK"}
    variants.append(v)
    v = {
        ("start_time_unix_nano" if k == "startTimeUnixNano" else k): x for k, x in s0.items()
    }  # snake_case key
    variants.append(v)
    v = json.loads(json.dumps(s0))
    v["startTimeUnixNano"] = int(v["startTimeUnixNano"])  # int64 as a number
    v["attributes"].append({"key": "n", "value": {"intValue": 12}})
    v["attributes"].append({"key": "d", "value": {"doubleValue": 3}})
    v["attributes"].append({"key": "flag", "value": {"boolValue": "true"}})
    variants.append(v)
    v = json.loads(json.dumps(s0))
    v["extraField"] = 1  # unknown key
    v["attributes"][0]["value"]["oops"] = 2
    variants.append(v)
    v = json.loads(json.dumps(s0))
    v["spanId"] = "xyz"  # invalid id
    variants.append(v)
    v = json.loads(json.dumps(s0))
    v["endTimeUnixNano"] = str(2**64)  # out of range
    variants.append(v)
    v = json.loads(json.dumps(s0))
    v["kind"] = 17  # unknown enum number
    variants.append(v)
    v = json.loads(json.dumps(s0))
    v["attributes"] = [{"key": 5, "value": {"stringValue": "x"}}]  # non-string key
    variants.append(v)
    base["resourceSpans"][0]["scopeSpans"][0]["spans"] = spans + variants
    logs = to_otlp_dict(_log_request())
    recs = logs["resourceLogs"][0]["scopeLogs"][0]["logRecords"]
    recs.append({"severityNumber": "SEVERITY_NUMBER_WARN", "body": {"stringValue": "named enum"}})
    recs.append({"severity_number": 13, "body": {"string_value": "snake"}})
    recs.append({"timeUnixNano": "-1", "body": {"stringValue": "negative time"}})
    return [json.dumps(base).encode(), json.dumps(logs).encode()]


def _rows(t: pa.Table) -> list[dict]:
    """Rows as dicts, nanosecond timestamps as integers (datetime cannot hold them)."""
    cols = {
        n: (c.cast(pa.int64()) if pa.types.is_timestamp(c.type) else c)
        for n, c in zip(t.column_names, t.columns, strict=True)
    }
    return pa.table(cols).to_pylist()


def _read_all(out: Path) -> dict[str, pa.Table]:
    tables = {}
    for d in sorted(p for p in out.iterdir() if p.is_dir() and p.name != "quarantine"):
        tables[d.name] = pa.concat_tables(pq.read_table(f) for f in sorted(d.glob("*.parquet")))
    return tables


def _ingest_both(tmp_path: Path, files: dict[str, bytes], monkeypatch) -> tuple[dict, dict]:
    src = tmp_path / "src"
    src.mkdir()
    for name, data in files.items():
        (src / name).write_bytes(data)
    results = []
    for impl, wire in (("c", accel.wire), ("python", None)):
        monkeypatch.setattr(accel, "wire", wire)
        out = tmp_path / impl
        report = ingest_paths([src], out, workers=1)
        quarantine = [
            json.loads(line)
            for f in sorted(out.glob("quarantine/*.jsonl"))
            for line in f.read_text().splitlines()
        ]
        for q in quarantine:  # the wording of a reason may differ between decoders; the code may not
            q.pop("reason")
        results.append((report, _read_all(out), quarantine))
    (rc, tc, qc), (rp, tp, qp) = results
    rc.pop("output"), rp.pop("output")
    assert rc == rp
    assert tc.keys() == tp.keys()
    for name in tc:
        assert tc[name].equals(tp[name]), name
    assert qc == qp
    return rc, tc


def test_protobuf_parity_and_values(tmp_path, monkeypatch):
    files = {
        "traces-good.binpb": b"".join(
            encode_frames([_span_request().SerializeToString()], "length_prefixed")
        ),
        "traces-broken.binpb": b"".join(encode_frames([_broken_spans_payload()], "length_prefixed")),
        "logs.binpb": b"".join(encode_frames([_log_request().SerializeToString()], "length_prefixed")),
    }
    report, tables = _ingest_both(tmp_path, files, monkeypatch)
    by_file = {Path(f["path"]).name: f for f in report["files"]}
    broken = by_file["traces-broken.binpb"]
    # 12 spans: good, bad id, unknown fields, bad kind, bad time, bad utf-8, wrong wire type,
    # merged value, merged arrays, cut inside, status twice, good
    assert broken["records_read"] == 12
    assert broken["records_quarantined"] == 5
    assert broken["quarantined_by_reason"] == {
        "invalid_id": 1, "invalid_protobuf": 2, "timestamp_out_of_range": 1, "unknown_enum": 1,
    }  # fmt: skip
    assert broken["unknown_fields"] == {"ScopeSpans.#77": 1, "Span.#6": 1, "Span.#98": 1, "Span.#99": 1}
    spans = _rows(tables["spans"])
    merged = [s for s in spans if s["attributes"] == [("k", "5")]]
    assert len(merged) == 1 and merged[0]["attribute_types"] == [("k", "int")]  # the later occurrence wins
    arrays = [
        s for s in spans if s["attributes"] and s["attributes"][0][0] == "arr" and len(s["attributes"]) == 1
    ]
    assert arrays[0]["attributes"] == [("arr", '["a","b"]')]  # repeated array occurrences concatenate
    twice = [s for s in spans if s["status_message"] == "m2"]
    assert twice[0]["status_code"] == 1  # Status occurrences merge field by field
    good = by_file["traces-good.binpb"]
    assert (good["records_read"], good["records_written"], good["rows_written"]["span_events"]) == (6, 6, 6)
    s0 = next(s for s in spans if s["name"] == "op0")
    assert dict(s0["attributes"]) == {
        "s": "x", "empty_str": "", "i": str(-(2**63)), "d": "1e+16", "nan": "NaN", "negzero": "-0.0", "b": "false",
        "bytes": "AP8=", "none": None, "arr": '["a",3]', "map": '{"kvlistValue":{"values":[{"key":"z","value":{"doubleValue":"Infinity"}}]}}',
    }  # fmt: skip
    assert dict(s0["attribute_types"]) == {
        "i": "int", "d": "double", "nan": "double", "negzero": "double", "b": "bool", "bytes": "bytes",
        "none": "empty", "arr": "array", "map": "kvlist_otlp",
    }  # fmt: skip
    assert (s0["flags"], s0["trace_state"], s0["kind"], s0["status_code"], s0["duration_ns"]) == (
        0x101,
        "k=v",
        2,
        2,
        1000,
    )
    logs = {r["_record_index"]: r for r in _rows(tables["logs"])}
    assert [(logs[i]["body_type"], logs[i]["body"]) for i in range(8)] == [
        ("string", "hello"), ("int", "42"), ("double", "0.1"), ("bool", "true"), ("bytes", "AQ=="),
        ("kvlist", '{"k":null}'), ("array", "[]"), (None, None),
    ]  # fmt: skip
    assert by_file["logs.binpb"]["quarantined_by_reason"] == {"unknown_enum": 1}


def test_json_parity_and_values(tmp_path, monkeypatch):
    files = {"mixed.jsonl": b"\n".join(_lenient_json_lines()) + b"\n"}
    report, tables = _ingest_both(tmp_path, files, monkeypatch)
    (f,) = report["files"]
    # 6 good spans + 9 variants (3 of them bad), 8 good logs + 1 bad + 3 lenient (1 bad)
    assert f["records_read"] == 6 + 9 + 9 + 3
    assert f["quarantined_by_reason"] == {
        "invalid_id": 1, "invalid_value": 1, "timestamp_out_of_range": 2, "unknown_enum": 2,
    }  # fmt: skip
    assert f["ids_base64"] == 1
    assert f["unknown_fields"] == {"AnyValue.oops": 1, "Span.extraField": 1}
    spans = _rows(tables["spans"])
    assert sum(s["kind"] == 3 for s in spans) == 1  # the enum name
    n = next(s for s in spans if ("n", "12") in s["attributes"])
    assert dict(n["attribute_types"])["d"] == "double" and ("d", "3.0") in n["attributes"]
    assert ("flag", "true") in n["attributes"]
    logs = _rows(tables["logs"])
    assert {(r["severity_number"], r["body"]) for r in logs if r["body"] in ("named enum", "snake")} == {
        (13, "named enum"), (13, "snake"),
    }  # fmt: skip


def _common_form_lines() -> list[bytes]:
    """OTLP/JSON in the strict common form the C text decoder reads itself (hex ids, numeric enums,
    simple attribute values), written with protobuf field order (schemaUrl after the records)
    and with other orders, escapes and non-ASCII text, empty blocks."""

    def span(i: int, extra: str = "") -> str:
        return (
            '{"traceId":"%s","spanId":"%016x","parentSpanId":"","name":"GET /caf\\u00e9 \\ud83d\\ude00 \\"q\\"\\n",'
            '"kind":2,"startTimeUnixNano":"1700000000000000%03d","endTimeUnixNano":1700000000000001000,'
            '"attributes":[{"key":"http.route","value":{"stringValue":"/a\\\\b"}},'
            '{"value":{"intValue":"-42"},"key":"http.response.status_code"},'
            '{"key":"ok","value":{"boolValue":true}},{"key":"ratio","value":{"doubleValue":1e-7}},'
            '{"key":"n","value":{"intValue":7}}],"droppedAttributesCount":1,'
            '"events":[{"timeUnixNano":"1700000000000000500","name":"exception","attributes":'
            '[{"key":"exception.type","value":{"stringValue":"IOError"}}]}],'
            '"links":[{"traceId":"%s","spanId":"0102030405060708","traceState":"a=b","flags":1}],'
            '"status":{"message":"boom","code":2},"flags":257%s}'
        ) % (TID.hex(), i + 1, i, TID.hex().upper(), extra)

    resource = '{"attributes":[{"key":"service.name","value":{"stringValue":"cart"}}]}'
    traces = [
        # protobuf field order: schemaUrl after the records, at both levels
        '{"resourceSpans":[{"resource":%s,"scopeSpans":[{"scope":{"name":"lib","version":"1"},"spans":[%s,%s],'
        '"schemaUrl":"https://s/1"}],"schemaUrl":"https://r/1"}]}' % (resource, span(0), span(1)),
        # headers first, an empty scope block and a resource block without scopes
        '{"resourceSpans":[{"schemaUrl":"https://r/2","resource":%s,"scopeSpans":[{"schemaUrl":"","scope":null,'
        '"spans":[%s]},{"scope":{"name":"empty"},"spans":[]}]},{"resource":{"attributes":[{"key":"service.name",'
        '"value":{"stringValue":"lonely"}}]}}]}' % (resource, span(2, ',"traceState":""')),
        # the resource after its scopes
        '{"resourceSpans":[{"scopeSpans":[{"spans":[%s]}],"resource":%s}]}' % (span(3), resource),
    ]
    logs = [
        '{"resourceLogs":[{"resource":%s,"scopeLogs":[{"scope":{"name":"log"},"logRecords":['
        '{"timeUnixNano":"1700000000000000000","observedTimeUnixNano":"1700000000000000001","severityNumber":17,'
        '"severityText":"ERROR","body":{"stringValue":"disk \\u00e9 full"},"attributes":[{"key":"code.function",'
        '"value":{"stringValue":"f"}}],"traceId":"%s","spanId":"0102030405060708","eventName":"e","flags":1},'
        '{"body":{"intValue":"5"}},{"body":{"doubleValue":2.5}},{"body":{"boolValue":false}},{}],'
        '"schemaUrl":"https://s/log"}]}]}' % (resource, TID.hex()),
    ]
    return [x.encode() for x in traces + logs]


def test_json_text_parity_and_values(tmp_path, monkeypatch):
    lines = _common_form_lines()
    for line in lines:  # each is valid JSON, and all of them take the C text path
        json.loads(line)
    report, tables = _ingest_both(tmp_path, {"common.jsonl": b"\n".join(lines) + b"\n"}, monkeypatch)
    (f,) = report["files"]
    assert (f["records_read"], f["records_written"], f["records_quarantined"]) == (4 + 5, 9, 0)
    assert f["unknown_fields"] == {}
    spans = _rows(tables["spans"])
    s0 = spans[0]
    assert s0["name"] == 'GET /café 😀 "q"\n'
    assert dict(s0["attributes"]) == {
        "http.route": "/a\\b", "http.response.status_code": "-42", "ok": "true", "ratio": "1e-07", "n": "7",
    }  # fmt: skip
    assert (s0["http_response_status_code"], s0["status_code"], s0["status_message"], s0["flags"]) == (
        -42,
        2,
        "boom",
        257,
    )
    resources = {r["resource_id"]: r for r in _rows(tables["resources"])}
    scopes = {s["scope_id"]: s for s in _rows(tables["scopes"])}
    by_url = {r["schema_url"]: r for r in resources.values()}
    assert set(by_url) == {"https://r/1", "https://r/2", None}
    assert {r["service_name"] for r in resources.values()} == {"cart", "lonely"}
    assert {(s["scope_name"], s["schema_url"]) for s in scopes.values()} >= {
        ("lib", "https://s/1"),
        ("empty", None),
    }
    # rows carry the context of their final headers, even when schemaUrl came after them
    first = [s for s in spans if s["_record_index"] in (0, 1)]
    assert {resources[s["resource_id"]]["schema_url"] for s in first} == {"https://r/1"}
    assert {scopes[s["scope_id"]]["schema_url"] for s in first} == {"https://s/1"}
    logs = _rows(tables["logs"])
    assert [(r["body_type"], r["body"]) for r in logs] == [
        ("string", "disk é full"), ("int", "5"), ("double", "2.5"), ("bool", "false"), (None, None),
    ]  # fmt: skip


def test_json_text_decoder_reads_the_common_form_itself():
    """The fast path must really take these messages (otherwise the test above proves nothing)."""
    from otlp_aiops.otlp.context import FileContext
    from otlp_aiops.otlp.decode_json import decode_text
    from otlp_aiops.otlp.ingest import _new_batches

    fc = FileContext("x")
    batches = _new_batches("x")
    assert [decode_text(line, fc, batches, "line") for line in _common_form_lines()] == [
        "traces", "traces", "traces", "logs",
    ]  # fmt: skip
    assert fc.records_read == 9
    lenient = _lenient_json_lines()
    assert decode_text(lenient[0], fc, batches, "line") is None  # base64 ids, enum names...: the dict path


def test_json_text_strings_with_a_special_byte_at_every_offset(tmp_path, monkeypatch):
    """The C text decoder scans a string eight bytes at a time until a quote, a backslash or a
    control character: each of them (and a multi-byte character) at every offset of strings of 0-20
    bytes must give what the Python decoder gives; a raw control character sends the line to it."""
    values, lines = [], []
    for n in range(21):
        for i in range(n + 1):
            for special in ('\\"', "\\\\", "\\n", "é", "\\u0001"):
                values.append("x" * i + special + "y" * (n - i))
            values.append("z" * n)
    attrs = ",".join('{"key":"k%d","value":{"stringValue":"%s"}}' % (k, v) for k, v in enumerate(values))
    span = (
        '{"traceId":"%s","spanId":"0102030405060708","name":"s","kind":1,"startTimeUnixNano":"1",'
        '"endTimeUnixNano":"2","attributes":[%s]}' % (TID.hex(), attrs)
    )
    lines.append('{"resourceSpans":[{"scopeSpans":[{"spans":[%s]}]}]}' % span)
    for i in range(10):  # a raw control character (not allowed in JSON strings) at offsets 0-9
        raw = "a" * i + "\x01" + "b" * 5
        lines.append(
            '{"resourceSpans":[{"scopeSpans":[{"spans":[%s]}]}]}'
            % span.replace('"name":"s"', f'"name":"{raw}"')
        )
    report, tables = _ingest_both(tmp_path, {"s.jsonl": "\n".join(lines).encode() + b"\n"}, monkeypatch)
    (f,) = report["files"]
    assert (f["records_read"], f["records_written"]) == (1, 1)  # the raw control characters: not JSON
    assert f["messages_quarantined"] == 10
    got = dict(_rows(tables["spans"])[0]["attributes"])
    assert [got[f"k{k}"] for k in range(len(values))] == [json.loads(f'"{v}"') for v in values]
    from otlp_aiops.otlp.context import FileContext
    from otlp_aiops.otlp.decode_json import decode_text
    from otlp_aiops.otlp.ingest import _new_batches

    monkeypatch.undo()  # the C decoder back: it must read the valid line itself
    assert decode_text(lines[0].encode(), FileContext("x"), _new_batches("x"), "line") == "traces"
