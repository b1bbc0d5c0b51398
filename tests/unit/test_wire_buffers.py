"""The C decoder's column buffers (``_wire.IdBuf``, ``StrBuf``, ``Cols``) and the batches built on
them (``BufAttrCols``, ``RowColumns``): they read back exactly what was appended, and a batch the C
decoder fills through them gives the same tables as the pure-Python decoder's lists, on hand-built
inputs with empty strings, unicode, many attributes, nested AnyValues, missing fields and
malformed bytes."""

from __future__ import annotations

import orjson
import pyarrow as pa
import pytest
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

from otlp_aiops.otlp import accel, schema
from otlp_aiops.otlp.batches import (
    LOG_ROW_FORMAT,
    SPAN_ROW_FORMAT,
    AttrCols,
    BufAttrCols,
    LogBatch,
    RowColumns,
    SpanBatch,
)
from otlp_aiops.otlp.context import FileContext
from otlp_aiops.otlp.decode_json import DECODERS, decode_text
from otlp_aiops.otlp.decode_proto import decode_message

pytestmark = pytest.mark.skipif(accel.wire is None, reason="the C decoder is not built")
wire = accel.wire

TID = bytes(range(1, 17))
SID = bytes(range(1, 9))
ODD = ["", "é", "日本語", "emoji \U0001f600", "a\x00b", "x" * 300, "tab\tand\nnewline"]


# --- the buffers themselves -----------------------------------------------------------------------


def test_strbuf_reads_back_what_was_appended_and_exports_arrow_buffers():
    b = wire.StrBuf()
    b.append("a")
    b.extend([None, "", "é", "\U0001f600"])
    assert len(b) == 5
    assert list(b) == ["a", None, "", "é", "\U0001f600"]
    assert b[-1] == "\U0001f600"
    offsets, data, validity, nulls, width = b.export()
    assert width == 4 and nulls == 1
    assert data == "aé\U0001f600".encode()
    assert list(memoryview(offsets).cast("i")) == [0, 1, 1, 1, 3, 7]
    assert validity == bytes([0b11101])
    b.truncate(1)
    assert list(b) == ["a"] and b.export()[2:4] == (None, 0)
    with pytest.raises(TypeError):
        b.append(b"bytes")
    with pytest.raises(UnicodeEncodeError):
        b.append("\ud800")  # a lone surrogate: refused, as pa.array refuses it
    assert list(b) == ["a"]


def test_idbuf_and_empty_strbuf():
    k = wire.IdBuf()
    k.append(3)
    k.extend(iter([0, 7]))
    assert list(k) == [3, 0, 7] and k.tobytes() == bytes([3, 0, 0, 0, 0, 0, 0, 0, 7, 0, 0, 0])
    k.truncate(1)
    assert list(k) == [3]
    with pytest.raises(OverflowError):
        k.append(-1)
    e = wire.StrBuf()
    assert len(e) == 0 and e.export() == (bytes(4), b"", None, 0, 4)


def test_cols_rows_round_trip_and_columns():
    rows = [
        (TID, SID, None, None, 1, "op", 2, 10, 20, 0, None, 3, 0, 0, 0, 0, 0, 0, 7),
        (None, bytes(8), SID, "ts", 0, "", 0, 0, 0, 2, "msg é", 3, 4, 1, 5, 2, 6, 1, 8),
    ]
    c = wire.Cols(SPAN_ROW_FORMAT)
    for r in rows:
        c.append(r)
    back = list(c)
    assert back[0] == rows[0]
    assert back[1] == (None, bytes(8), SID, "ts", *rows[1][4:])  # an all-zero id stays bytes here
    assert c[-1] == back[1]
    with pytest.raises(TypeError):
        c.append(rows[0][:5])
    with pytest.raises(TypeError):
        c.append((b"short", *rows[0][1:]))
    assert len(c) == 2  # a refused row leaves nothing behind
    c.truncate(1)
    assert list(c) == rows[:1]
    with pytest.raises(ValueError):
        wire.Cols("iz")


def test_row_columns_give_the_same_arrays_from_cols_and_from_lists():
    rows = [
        (TID, SID, None, None, 1, "op", 2, 10, 20, 0, None, 3, 0, 0, 0, 0, 0, 0, 7),
        (None, SID, SID, "ts", 0, "", 0, 0, 0, 2, "日本語", 3, 4, 1, 5, 2, 6, 1, 8),
        (TID, None, None, "", 2**32 - 1, "\U0001f600", 5, 2**63 - 1, 1, 1, "", 9, 0, 0, 0, 0, 0, 0, 9),
    ]
    c = wire.Cols(SPAN_ROW_FORMAT)
    for r in rows:
        c.append(r)
    a, b = RowColumns(c, SPAN_ROW_FORMAT), RowColumns(list(rows), SPAN_ROW_FORMAT)
    by_format = {"H": schema.TRACE_ID, "h": schema.SPAN_ID, "s": pa.string(), "i": pa.int64()}
    types = [by_format[f] for f in SPAN_ROW_FORMAT]
    types[4], types[6] = pa.uint32(), pa.int8()
    for j, t in enumerate(types):
        x, y = a.array(j, t), b.array(j, t)
        assert x.equals(y), j
        assert x.null_count == y.null_count
    assert a.ints(7).tolist() == [10, 0, 2**63 - 1]
    log = wire.Cols(LOG_ROW_FORMAT)
    log.append((1, 2, 9, None, "body", "string", 0, 0, 0, TID, None, None, 0, 1))
    assert RowColumns(log, LOG_ROW_FORMAT).array(4, pa.string()).to_pylist() == ["body"]


def test_buf_attr_cols_make_the_same_maps_as_lists():
    lists, bufs = AttrCols(), BufAttrCols(wire)
    ends = []
    for row in range(50):
        for j in range(row % 7):
            for ac in (lists, bufs):
                if j == 3:
                    ac.add_typed(f"k{j}", "int", str(row))
                elif j == 5:
                    ac.add_typed("empty", "empty", None)
                else:
                    ac.add_typed(f"k{j}", "string", ODD[(row + j) % len(ODD)])
        ends.append(len(lists.keys))
    assert len(bufs.keys) == ends[-1]
    assert bufs.rendered(ends[10]) == lists.rendered(ends[10])
    for null_if_empty in (False, True):
        for x, y in zip(
            lists.to_arrays(ends, null_if_empty), bufs.to_arrays(ends, null_if_empty), strict=True
        ):
            assert x.equals(y)
    for cut in (ends[30] - 1, ends[3]):  # inside a row with typed values, then before any
        bufs.truncate(cut)
        lists.truncate(cut)
        assert list(bufs.vals) == lists.vals and list(bufs.keys) == lists.keys
        # the typed values' positions and tags are buffers too (codes into the C decoder's TAG_NAMES)
        assert list(bufs.tag_pos) == lists.tag_pos and list(bufs.tags) == lists.tags
        assert lists.tag_pos == [p for p in range(cut) if lists.rendered(p)[0][1] != "string"]
        assert set(lists.tags) == ({"int", "empty"} if cut > ends[3] else set())
    assert bufs.lists()[3] is bufs.tags.buf and wire.TAG_NAMES[:4] == ("string", "bool", "int", "double")


# --- whole batches: the C decoder into buffers against the Python decoder into lists --------------


def _ld(field: int, payload: bytes) -> bytes:
    """A length-delimited protobuf field."""
    n, size = len(payload), bytearray()
    while True:
        size.append((n & 0x7F) | (0x80 if n > 0x7F else 0))
        n >>= 7
        if not n:
            return bytes([field << 3 | 2]) + bytes(size) + payload


def _span_request() -> bytes:
    req = trace_service_pb2.ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    rs.resource.attributes.add(key="service.name").value.string_value = "svc é"
    ss = rs.scope_spans.add()
    ss.scope.name = "lib"
    for i in range(40):
        s = ss.spans.add()
        if i % 5:  # every fifth span has no ids, no name, no times: missing fields
            s.trace_id, s.span_id = TID, bytes([i + 1] * 8)
            s.name = ODD[i % len(ODD)] or "op"
            s.start_time_unix_nano, s.end_time_unix_nano = (
                1_700_000_000_000_000_000 + i,
                1_700_000_000_000_000_900,
            )
        s.kind = i % 6
        s.status.code = i % 3
        if i % 4 == 1:
            s.status.message = "failed ü"
        for j in range(i * 7):  # up to 273 attributes a span
            s.attributes.add(key=f"attr.{j % 97}").value.string_value = ODD[(i + j) % len(ODD)]
        s.attributes.add(key="http.response.status_code").value.int_value = 200 + i
        s.attributes.add(key="http.route").value.string_value = f"/r/{i}"
        s.attributes.add(key="ratio").value.double_value = i / 3
        s.attributes.add(key="ok").value.bool_value = bool(i % 2)
        nested = s.attributes.add(key="nested").value
        kv = nested.kvlist_value.values.add(key="inner")
        kv.value.array_value.values.add().string_value = "deep é"
        kv.value.array_value.values.add().int_value = -1
        s.attributes.add(key="unset")  # an AnyValue with nothing set
        s.attributes.add(key="").value.string_value = ""
        if i % 3 == 0:
            e = s.events.add(name="ev", time_unix_nano=5)
            e.attributes.add(key="exception.type").value.string_value = "E é"
            lk = s.links.add(trace_id=TID, span_id=SID)
            lk.attributes.add(key="l").value.string_value = ""
    return req.SerializeToString()


def _log_request() -> bytes:
    req = logs_service_pb2.ExportLogsServiceRequest()
    sl = req.resource_logs.add().scope_logs.add()
    for i in range(30):
        r = sl.log_records.add(time_unix_nano=i, severity_number=i % 25)
        if i % 3 == 0:
            r.body.string_value = ODD[i % len(ODD)]
        elif i % 3 == 1:
            r.body.kvlist_value.values.add(key="k").value.string_value = "v"
        if i % 2:
            r.trace_id, r.span_id, r.severity_text, r.event_name = TID, SID, "INFO", "e ü"
        for j in range(i):
            r.attributes.add(key=f"a{j}").value.string_value = ODD[j % len(ODD)]
    return req.SerializeToString()


def _tables(payload: bytes, signal: str, use_c: bool, monkeypatch) -> tuple[dict, dict]:
    monkeypatch.setattr(accel, "wire", wire if use_c else None)
    batch = SpanBatch("f") if signal == "traces" else LogBatch("f")
    assert isinstance(batch.attrs, BufAttrCols) == use_c
    assert isinstance(batch.rows, list) != use_c
    fc = FileContext("f")
    decode_message(payload, signal, fc, batch, "m")
    return batch.to_tables(), dict(fc.quarantined_by_reason)


@pytest.mark.parametrize("signal", ["traces", "logs"])
def test_buffers_batch_gives_the_python_decoders_tables(signal, monkeypatch):
    payload = _span_request() if signal == "traces" else _log_request()
    c, c_q = _tables(payload, signal, True, monkeypatch)
    py, py_q = _tables(payload, signal, False, monkeypatch)
    assert c.keys() == py.keys() and c_q == py_q == {}
    for name in c:
        assert c[name].equals(py[name]), name
    if signal == "traces":
        spans = c["spans"]
        assert spans.num_rows == 40
        assert spans["trace_id"].null_count == 8 and spans["name"][0].as_py() == ""
        assert spans["name"][3].as_py() == "emoji \U0001f600"
        attrs = spans["attributes"][2].as_py()
        assert len(attrs) == 14 + 7 and ("", "") in attrs and ("unset", None) in attrs
        assert dict(spans["attribute_types"][2].as_py())["nested"] == "kvlist"
        assert (
            spans["http_response_status_code"][2].as_py() == 202 and spans["http_route"][2].as_py() == "/r/2"
        )
    else:
        logs = c["logs"]
        assert logs["body"][3].as_py() == "emoji \U0001f600" and logs["body_type"][2].as_py() is None
        assert logs["body_type"][1].as_py() == "kvlist" and logs["event_name"][1].as_py() == "e ü"


def test_malformed_records_are_rolled_back_from_the_buffers(monkeypatch):
    """Invalid UTF-8 in an attribute value or key, and a wrong id length, after good records: the
    bad record leaves nothing in the buffers; the tables equal the Python decoder's."""
    req = trace_service_pb2.ExportTraceServiceRequest()
    ss = req.resource_spans.add().scope_spans.add()
    for i in range(4):
        s = ss.spans.add(trace_id=TID, span_id=SID, name=f"s{i}")
        s.attributes.add(key="k").value.string_value = "v" * i
    payload = bytearray(req.SerializeToString())
    payload[payload.rfind(b"vvv")] = 0xFF  # the last span's value: invalid UTF-8
    first = bytes(payload).find(b"s1")
    payload[first] = 0xC0  # the second span's name: invalid UTF-8 (overlong)
    c, c_q = _tables(bytes(payload), "traces", True, monkeypatch)
    py, py_q = _tables(bytes(payload), "traces", False, monkeypatch)
    assert c_q == py_q == {"invalid_protobuf": 2}
    assert c["spans"].equals(py["spans"])
    assert c["spans"]["name"].to_pylist() == ["s0", "s2"]
    assert [dict(m) for m in c["spans"]["attributes"].to_pylist()] == [{"k": ""}, {"k": "vv"}]


def _text_tables(line: bytes, use_c: bool, monkeypatch) -> dict:
    """One OTLP/JSON line's span tables: the C text decoder's, or the pure-Python decoder's of the
    parsed document."""
    monkeypatch.setattr(accel, "wire", wire if use_c else None)
    batches = {"traces": SpanBatch("f"), "logs": LogBatch("f")}
    if use_c:
        assert decode_text(line, FileContext("f"), batches, "line") == "traces"
    else:
        DECODERS["traces"](orjson.loads(line), FileContext("f"), batches["traces"], "line")
    return batches["traces"].to_tables()


def test_json_text_into_buffers_with_escapes_and_unicode(monkeypatch):
    """Keys and values with escapes take tstr's path, plain ones are copied as bytes: both end up in
    the same columns; the result equals the pure-Python decoder's."""
    line = (
        b'{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"s"}}]},'
        b'"scopeSpans":[{"scope":{"name":"l"},"spans":['
        b'{"traceId":"0102030405060708090a0b0c0d0e0f10","spanId":"0102030405060708","name":"caf\\u00e9",'
        b'"kind":2,"startTimeUnixNano":"5","endTimeUnixNano":"9","attributes":['
        b'{"key":"k\\"q","value":{"stringValue":"a\\nb"}},{"key":"plain","value":{"stringValue":"\xe6\x97\xa5"}},'
        b'{"key":"e","value":{"stringValue":""}},{"key":"n","value":{"intValue":"12"}}],'
        b'"status":{"message":""}},'
        b'{"spanId":"0000000000000000","name":"\xf0\x9f\x98\x80","traceState":"t=1"}]}]}]}'
    )

    c, py = _text_tables(line, True, monkeypatch), _text_tables(line, False, monkeypatch)
    assert c["spans"].equals(py["spans"])
    spans = c["spans"]
    assert spans["name"].to_pylist() == ["café", "\U0001f600"]
    assert spans["span_id"].to_pylist() == [SID, None] and spans["trace_state"].to_pylist() == [None, "t=1"]
    assert spans["status_message"].to_pylist() == [None, None]
    assert spans["attributes"][0].as_py() == [('k"q', "a\nb"), ("plain", "日"), ("e", ""), ("n", "12")]


def test_typed_values_are_rendered_as_the_python_decoder_renders_them(monkeypatch):
    """int, bool and double values written as text by C (protobuf and JSON text) against Python."""
    req = trace_service_pb2.ExportTraceServiceRequest()
    s = req.resource_spans.add().scope_spans.add().spans.add(trace_id=TID, span_id=SID, name="s")
    for k, v in [("min", -(2**63)), ("max", 2**63 - 1), ("zero", 0)]:
        s.attributes.add(key=k).value.int_value = v
    for k, v in [("nan", float("nan")), ("inf", float("inf")), ("ninf", float("-inf")), ("nz", -0.0)]:
        s.attributes.add(key=k).value.double_value = v
    for k, v in [("tiny", 1e-300), ("tenth", 0.1), ("whole", 3.0)]:
        s.attributes.add(key=k).value.double_value = v
    s.attributes.add(key="t").value.bool_value = True
    s.attributes.add(key="f").value.bool_value = False
    # a bool_value written as varint 2 (any non-zero varint is true), appended as one more KeyValue
    kv = _ld(1, b"b2") + _ld(2, b"\x10\x02")
    payload = _ld(1, _ld(2, _ld(2, s.SerializeToString() + _ld(9, kv))))
    c, _ = _tables(payload, "traces", True, monkeypatch)
    py, _ = _tables(payload, "traces", False, monkeypatch)
    assert c["spans"].equals(py["spans"])
    assert c["spans"]["attributes"][0].as_py() == [
        ("min", "-9223372036854775808"),
        ("max", "9223372036854775807"),
        ("zero", "0"),
        ("nan", "NaN"),
        ("inf", "Infinity"),
        ("ninf", "-Infinity"),
        ("nz", "-0.0"),
        ("tiny", "1e-300"),
        ("tenth", "0.1"),
        ("whole", "3.0"),
        ("t", "true"),
        ("f", "false"),
        ("b2", "true"),
    ]
    types = dict(c["spans"]["attribute_types"][0].as_py())
    assert types["min"] == "int" and types["tenth"] == "double" and types["b2"] == "bool"

    line = (
        b'{"resourceSpans":[{"scopeSpans":[{"spans":[{"spanId":"0102030405060708","name":"j","attributes":['
        b'{"key":"a","value":{"intValue":"007"}},{"key":"b","value":{"intValue":-12}},'
        b'{"key":"c","value":{"boolValue":true}},{"key":"d","value":{"doubleValue":1e300}},'
        b'{"key":"e","value":{"doubleValue":-0.0}},{"key":"f","value":{"doubleValue":2}}]}]}]}]}'
    )
    out = [_text_tables(line, use_c, monkeypatch)["spans"] for use_c in (True, False)]
    assert out[0].equals(out[1])
    assert out[0]["attributes"][0].as_py() == [
        ("a", "7"),
        ("b", "-12"),
        ("c", "true"),
        ("d", "1e+300"),
        ("e", "-0.0"),
        ("f", "2.0"),
    ]


# --- the gathers that replace Arrow's take and the numpy promotion --------------------------------


def _take_ref(arr: pa.Array, idx) -> pa.Array:
    import numpy as np

    idx = np.asarray(idx)
    return arr.take(pa.array(idx, mask=idx < 0))


def test_take_strings_equals_arrow_take_with_nulls_offsets_and_both_index_widths():
    import numpy as np

    from otlp_aiops.otlp.batches import take_str

    src = pa.array(["a", None, "", "é", "\U0001f600", "x" * 300, None, "tail"]).slice(1)  # offset 1
    idx = [0, 1, -1, 2, 3, 4, 5, 6, 2, -5, 1, 0]
    for dtype in (np.int32, np.int64):
        got = take_str(src, np.array(idx, dtype=dtype))
        got.validate(full=True)
        assert got.equals(_take_ref(src, idx))
        assert got.to_pylist() == [
            None,
            "",
            None,
            "é",
            "\U0001f600",
            "x" * 300,
            None,
            "tail",
            "é",
            None,
            "",
            None,
        ]
        assert got.null_count == 5
    # no nulls at all: no validity buffer; an empty index; an index past the end is an error
    plain = pa.array(["k1", "key.two", "k3"])
    got = take_str(plain, np.array([2, 2, 0, 1], dtype=np.int32))
    assert got.to_pylist() == ["k3", "k3", "k1", "key.two"] and got.buffers()[0] is None
    assert take_str(plain, np.zeros(0, dtype=np.int64)).to_pylist() == []
    with pytest.raises(IndexError, match="out of bounds"):
        take_str(plain, np.array([3], dtype=np.int64))
    with pytest.raises(IndexError, match="out of bounds"):  # a slice: its length, not its buffer's
        take_str(src.slice(0, 6), np.array([6], dtype=np.int64))
    rng = np.random.default_rng(7)
    big = pa.array([None if i % 5 == 0 else "v" * (i % 23) + str(i) for i in range(5000)])
    ridx = np.where(rng.random(20000) < 0.1, -1, rng.integers(0, 5000, 20000))
    assert take_str(big, ridx).equals(_take_ref(big, ridx))


def test_promote_index_in_c_equals_the_numpy_promotion(monkeypatch):
    import numpy as np

    from otlp_aiops.otlp import batches

    spec = [
        ("a", pa.string(), ("k.a", "k.a2")),
        ("b", pa.int64(), ("k.b",)),
        ("c", pa.string(), ("k.none",)),
        ("d", pa.string(), ("k.a2", "k.d")),  # k.a2 wanted by two columns
    ]
    rng = np.random.default_rng(3)
    keys = ["k.a", "k.a2", "k.b", "k.d", "other", "k.x"]
    for trial in range(20):
        ac = AttrCols()
        ends, end = [], 0
        for _ in range(int(rng.integers(0, 40))):
            for _ in range(int(rng.integers(0, 6))):
                k = keys[int(rng.integers(len(keys)))]
                v = str(int(rng.integers(-5, 99))) if rng.random() < 0.8 else f"v{trial}"
                ac.keys.append(ac.kidx[k])
                ac.vals.append(v)
                end += 1
            ends.append(end)
        ac.to_arrays(ends)
        c_cols = batches.promote(ac, ends, spec)
        monkeypatch.setattr(accel, "wire", None)
        py_cols = batches.promote(ac, ends, spec)
        monkeypatch.setattr(accel, "wire", wire)
        assert list(c_cols) == list(py_cols)
        for col in c_cols:
            assert c_cols[col].equals(py_cols[col]), (trial, col)


def test_int_strings_read_what_the_integer_rule_accepts(monkeypatch):
    from otlp_aiops.otlp import batches

    texts = [
        "200",
        "-5",
        "007",
        "",
        "-",
        "+1",
        "1.0",
        " 1",
        "123456789012345678",
        "1234567890123456789",
        "-123456789012345678",
        None,
        "0",
        "-0",
        "١٢",
        "9a",
        "404",
    ]
    arr = pa.array(["x", *texts]).slice(1)  # at an offset
    got = batches._int_values(arr, pa.int64())
    got.validate(full=True)
    assert got.to_pylist() == [
        200,
        -5,
        7,
        None,
        None,
        None,
        None,
        None,
        123456789012345678,
        None,
        -123456789012345678,
        None,
        0,
        0,
        None,
        None,
        404,
    ]
    monkeypatch.setattr(accel, "wire", None)
    assert batches._int_values(arr, pa.int64()).equals(got)  # the Arrow compute path agrees
    plain = pa.array(["1", "22"])
    monkeypatch.setattr(accel, "wire", wire)
    assert batches._int_values(plain, pa.int64()).buffers()[0] is None


def test_json_string_scan_finds_quotes_escapes_and_control_bytes_at_every_offset(monkeypatch):
    """The text decoder scans strings 16 and 8 bytes at a time: a closing quote, an escape or a
    control byte (a fallback to Python) at each of the first 40 positions of a value, next to ASCII
    and multi-byte UTF-8, gives the pure-Python decoder's table."""
    values = []
    for n in range(41):
        for tail in ("", '\\"x', "\\\\", "\\u00e9z", "é" * 3):
            values.append("a" * n + tail)
    attrs = ",".join(
        f'{{"key":"k{i}{"b" * (i % 19)}","value":{{"stringValue":"{v}"}}}}' for i, v in enumerate(values)
    )
    line = (
        '{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"0102030405060708090a0b0c0d0e0f10",'
        f'"spanId":"0102030405060708","name":"{"n" * 23}","attributes":[{attrs}]}}]}}]}}]}}'
    ).encode()

    c, py = _text_tables(line, True, monkeypatch), _text_tables(line, False, monkeypatch)
    assert c["spans"].equals(py["spans"])
    got = dict(c["spans"]["attributes"][0].as_py())
    assert (
        len(got) == len(values)
        and got["k0"] == ""
        and got["k6" + "b" * 6] == "a" + '"x'
        and got["k7" + "b" * 7] == "a\\"
    )
    assert got[f"k{len(values) - 1}" + "b" * ((len(values) - 1) % 19)] == "a" * 40 + "ééé"
    # a raw control byte (not JSON) at any position: the C scan gives the message to Python
    monkeypatch.setattr(accel, "wire", wire)
    for n in range(41):
        for bad, want in ((b"\x01", None), (b"", "traces")):
            text = line.replace(b'"name":"', b'"name":"' + b"m" * n + bad, 1)
            batches = {"traces": SpanBatch("f"), "logs": LogBatch("f")}
            assert decode_text(text, FileContext("f"), batches, "line") == want, (n, bad)
