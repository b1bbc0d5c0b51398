"""Generated fixtures for what the corpus in ../shared lacks: every framing and compression, files
cut in the middle, empty and mixed files, protobuf without a signal in its name, unknown fields,
bad records, the atomic output folder and the CLI's exit codes. Every test checks exact counts,
positions and reasons, worked out from the bytes the test wrote, not from what ingest reports."""

from __future__ import annotations

import base64
import gzip
import hashlib
import os
import struct
import zlib
from pathlib import Path
from typing import Any

import orjson
import pyarrow.parquet as pq
import pytest
import zstandard
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.logs.v1 import logs_pb2
from opentelemetry.proto.metrics.v1 import metrics_pb2
from opentelemetry.proto.trace.v1 import trace_pb2
from typer.testing import CliRunner

from otlp_aiops.cli import app
from otlp_aiops.otlp import accel, ingest
from otlp_aiops.otlp.framing import Format, sniff
from otlp_aiops.otlp.ingest import IngestFatalError, ingest_paths
from otlp_aiops.otlp.otlpjson import to_otlp_dict, to_otlp_json
from otlp_aiops.otlp.write import encode_frames

T0 = 1_700_000_000_000_000_000

# --------------------------------------------------------------------------------------------------
# fixtures: small messages with recognisable names
# --------------------------------------------------------------------------------------------------


def _service(resource: Any, name: str) -> None:
    resource.attributes.add(key="service.name").value.string_value = name


def traces_message(m: int, n: int = 2) -> trace_pb2.TracesData:
    """One ResourceSpans (service svc{m}) holding n spans named op{m}.{i}."""
    msg = trace_pb2.TracesData()
    rs = msg.resource_spans.add()
    _service(rs.resource, f"svc{m}")
    ss = rs.scope_spans.add()
    ss.scope.name = "lib"
    for i in range(n):
        ss.spans.add(
            trace_id=bytes([m + 1]) * 16,
            span_id=bytes([m + 1]) + (i + 1).to_bytes(7, "big"),
            name=f"op{m}.{i}",
            kind=trace_pb2.Span.SPAN_KIND_SERVER,
            start_time_unix_nano=T0 + i,
            end_time_unix_nano=T0 + i + 1000,
        )
    return msg


def logs_message(m: int, n: int = 2) -> logs_pb2.LogsData:
    msg = logs_pb2.LogsData()
    rl = msg.resource_logs.add()
    _service(rl.resource, f"svc{m}")
    sl = rl.scope_logs.add()
    for i in range(n):
        r = sl.log_records.add(time_unix_nano=T0 + i, severity_number=logs_pb2.SEVERITY_NUMBER_INFO)
        r.body.string_value = f"log{m}.{i}"
    return msg


def metrics_message(m: int, n: int = 2) -> metrics_pb2.MetricsData:
    msg = metrics_pb2.MetricsData()
    rm = msg.resource_metrics.add()
    _service(rm.resource, f"svc{m}")
    metric = rm.scope_metrics.add().metrics.add(name=f"gauge{m}")
    for i in range(n):
        metric.gauge.data_points.add(time_unix_nano=T0 + i, as_int=i)
    return msg


def three_traces() -> list[trace_pb2.TracesData]:
    """Three messages of two spans each: op0.0, op0.1, op1.0, op1.1, op2.0, op2.1."""
    return [traces_message(m) for m in range(3)]


def span_names(n_messages: int) -> list[str]:
    return [f"op{m}.{i}" for m in range(n_messages) for i in range(2)]


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b, n = n & 0x7F, n >> 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def length_prefixed(payloads: list[bytes]) -> bytes:
    return b"".join(encode_frames(payloads, "length_prefixed"))


def jsonl(msgs: list[Any], newline: bytes = b"\n") -> bytes:
    return b"".join(to_otlp_json(m) + newline for m in msgs)


def merged(msgs: list[trace_pb2.TracesData]) -> trace_pb2.TracesData:
    out = trace_pb2.TracesData()
    for m in msgs:
        out.resource_spans.extend(m.resource_spans)
    return out


# --------------------------------------------------------------------------------------------------
# helpers: run ingest, read what it wrote
# --------------------------------------------------------------------------------------------------


@pytest.fixture(params=["c", "python"])
def decoder(request, monkeypatch) -> str:
    """Run a test with the C decoder and with the pure-Python one (they must agree)."""
    if request.param == "c" and accel.wire is None:
        pytest.skip("the C decoder is not built")
    if request.param == "python":
        monkeypatch.setattr(accel, "wire", None)
    return request.param


def run_ingest(sources: list[Path], out: Path, **kw) -> dict[str, Any]:
    report = ingest_paths(sources, out, workers=1, **kw)
    for f in report["files"]:  # the invariant of DESIGN.md, for every file
        assert f["records_read"] == f["records_written"] + f["records_quarantined"], f["path"]
    t = report["totals"]
    assert t["records_read"] == t["records_written"] + t["records_quarantined"]
    return report


def only_file(report: dict[str, Any]) -> dict[str, Any]:
    assert len(report["files"]) == 1, report["files"]
    return report["files"][0]


def column(out: Path, table: str, name: str) -> list:
    t = pq.read_table(out / table)
    if "_record_index" in t.column_names:
        t = t.sort_by([("_source_file", "ascending"), ("_record_index", "ascending")])
    return t.column(name).to_pylist()


def quarantine(out: Path) -> list[dict[str, Any]]:
    entries = []
    for f in sorted((out / "quarantine").glob("*.jsonl")) if (out / "quarantine").exists() else []:
        entries += [orjson.loads(line) for line in f.read_bytes().splitlines()]
    return entries


def brief(entries: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
    """(position, path, reason_code) of each quarantine entry."""
    return [(e["position"], e["path"], e["reason_code"]) for e in entries]


# --------------------------------------------------------------------------------------------------
# every framing and compression, with names that say nothing or the wrong thing
# --------------------------------------------------------------------------------------------------


def _zstd(data: bytes) -> bytes:
    return zstandard.ZstdCompressor(level=3).compress(data)


def _gzip(data: bytes) -> bytes:
    return gzip.compress(data, mtime=0)


def _payloads() -> list[bytes]:
    return [m.SerializeToString() for m in three_traces()]


BOM = b"\xef\xbb\xbf"

# name -> (file name, bytes, sniffed Format, report framing, messages read)
FRAMING_CASES = {
    "length_prefixed": ("x.json", lambda: length_prefixed(_payloads()), Format("none", "length_prefixed"),
                        "length_prefixed", 3),
    "length_prefixed_zstd_frames": ("x.jsonl", lambda: b"".join(encode_frames(_payloads(), "length_prefixed_zstd")),
                                    Format("none", "length_prefixed"), "length_prefixed+zstd frames", 3),
    "zstd_file_of_length_prefixed": ("x.gz", lambda: _zstd(length_prefixed(_payloads())),
                                     Format("zstd", "length_prefixed"), "length_prefixed", 3),
    "zstd_file_of_jsonl": ("x.pb", lambda: _zstd(jsonl(three_traces())), Format("zstd", "jsonl"), "jsonl", 3),
    "gzip_of_jsonl": ("x.zst", lambda: _gzip(jsonl(three_traces())), Format("gzip", "jsonl"), "jsonl", 3),
    "gzip_of_length_prefixed": ("x.json", lambda: _gzip(length_prefixed(_payloads())),
                                Format("gzip", "length_prefixed"), "length_prefixed", 3),
    "jsonl_crlf": ("x.pb", lambda: jsonl(three_traces(), b"\r\n"), Format("none", "jsonl"), "jsonl", 3),
    # a raw message is read one top-level field (one ResourceSpans) at a time
    "raw_proto": ("x.json", lambda: merged(three_traces()).SerializeToString(), Format("none", "proto"), "proto", 3),
    "pretty_json_document": ("x.pb", lambda: to_otlp_json(merged(three_traces()), pretty=True),
                             Format("none", "json"), "json", 1),
    "json_lines_of_requests_with_blank_lines": (
        "x.bin", lambda: b"\n" + jsonl(three_traces()).replace(b"\n", b"\n\n"), Format("none", "jsonl"), "jsonl", 3),
    "jsonl_with_bom": ("x.pb", lambda: BOM + jsonl(three_traces()), Format("none", "jsonl"), "jsonl", 3),
    "pretty_json_with_bom": ("x.pb", lambda: BOM + to_otlp_json(merged(three_traces()), pretty=True),
                             Format("none", "json"), "json", 1),
    "json_array_document": ("x.pb", lambda: orjson.dumps([to_otlp_dict(m) for m in three_traces()],
                                                         option=orjson.OPT_INDENT_2),
                            Format("none", "json"), "json", 1),
    "gzip_of_pretty_json": ("x.binpb", lambda: _gzip(to_otlp_json(merged(three_traces()), pretty=True)),
                            Format("gzip", "json"), "json", 1),
    "zstd_file_of_raw_proto": ("x.json", lambda: _zstd(merged(three_traces()).SerializeToString()),
                               Format("zstd", "proto"), "proto", 3),
    # the framings also carry OTLP/JSON payloads
    "length_prefixed_json_payloads": ("x.pb", lambda: length_prefixed([to_otlp_json(m) for m in three_traces()]),
                                      Format("none", "length_prefixed"), "length_prefixed", 3),
    "length_prefixed_zstd_json_payloads": (
        "x.pb", lambda: b"".join(encode_frames([to_otlp_json(m) for m in three_traces()], "length_prefixed_zstd")),
        Format("none", "length_prefixed"), "length_prefixed+zstd frames", 3),
}  # fmt: skip


@pytest.mark.parametrize("case", list(FRAMING_CASES))
def test_framing_is_detected_from_bytes_and_converted(case: str, tmp_path: Path):
    name, make, fmt, report_framing, n_messages = FRAMING_CASES[case]
    path = tmp_path / "in" / name
    path.parent.mkdir()
    path.write_bytes(make())
    assert sniff(path) == fmt

    report = run_ingest([path], tmp_path / "out")
    f = only_file(report)
    proto = ("proto" in report_framing or "length_prefixed" in report_framing) and "json" not in case
    assert f["compression"] == fmt.compression
    assert f["framing"] == report_framing
    assert f["signals"] == ["traces"]
    # the name says nothing: protobuf's signal is guessed from the content, JSON's read from its key
    if not case.startswith("length_prefixed_") or not case.endswith("json_payloads"):
        assert f["signal_source"] == ("content" if proto else "JSON key")
    assert (f["messages_read"], f["messages_quarantined"]) == (n_messages, 0)
    assert (f["records_read"], f["records_written"], f["records_quarantined"]) == (6, 6, 0)
    assert f["rows_written"] == {"spans": 6}
    assert report["totals"]["rows_written"]["resources"] == 3
    assert report["totals"]["rows_written"]["scopes"] == 1
    assert column(tmp_path / "out", "spans", "name") == span_names(3)
    assert column(tmp_path / "out", "spans", "service_name") == [
        "svc0",
        "svc0",
        "svc1",
        "svc1",
        "svc2",
        "svc2",
    ]
    assert quarantine(tmp_path / "out") == []


def _traces_with_block_size(size: int) -> trace_pb2.TracesData:
    """One ResourceSpans of exactly ``size`` bytes (its span name pads it)."""
    msg = traces_message(0, 1)
    span = msg.resource_spans[0].scope_spans[0].spans[0]
    span.name = "x" * (size - msg.resource_spans[0].ByteSize() + len(span.name))
    assert msg.resource_spans[0].ByteSize() == size
    return msg


def test_length_prefixed_frame_whose_first_block_length_byte_is_a_brace(tmp_path: Path):
    """A protobuf frame starts with 0x0a (a newline) and its first block's length; when that length
    is 123, the byte ``{``, the frame is still protobuf, not JSON to be quarantined as malformed."""
    first = _traces_with_block_size(123).SerializeToString()
    assert first[:2] == b"\x0a{"
    path = tmp_path / "traces.binpb"
    path.write_bytes(length_prefixed([first, traces_message(1).SerializeToString()]))
    f = only_file(run_ingest([path], tmp_path / "out"))
    assert (f["messages_quarantined"], f["quarantined_by_reason"]) == (0, {})
    assert (f["records_read"], f["records_written"]) == (3, 3)
    assert column(tmp_path / "out", "spans", "name")[1:] == ["op1.0", "op1.1"]


def test_export_service_request_and_data_messages_are_alike(tmp_path: Path):
    from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

    req = trace_service_pb2.ExportTraceServiceRequest()
    req.resource_spans.extend(merged(three_traces()).resource_spans)
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "request.binpb").write_bytes(length_prefixed([req.SerializeToString()]))
    f = only_file(run_ingest([tmp_path / "in"], tmp_path / "out"))
    assert (f["framing"], f["records_written"]) == ("length_prefixed", 6)
    assert column(tmp_path / "out", "spans", "name") == span_names(3)


@pytest.mark.parametrize(
    ("content", "fmt"),
    [
        (b"", Format("none", "empty")),
        (b" \r\n\t\n", Format("none", "empty")),
        (_gzip(b""), Format("gzip", "empty")),
        (_zstd(b""), Format("zstd", "empty")),
    ],
    ids=["zero_bytes", "whitespace", "gzip_of_nothing", "zstd_of_nothing"],
)
def test_empty_file(content: bytes, fmt: Format, tmp_path: Path):
    path = tmp_path / "in" / "traces.jsonl"
    path.parent.mkdir()
    path.write_bytes(content)
    assert sniff(path) == fmt
    report = run_ingest([path], tmp_path / "out")
    f = only_file(report)
    assert (f["framing"], f["compression"]) == ("empty", fmt.compression)
    assert (f["messages_read"], f["records_read"], f["records_quarantined"]) == (0, 0, 0)
    assert f["rows_written"] == {}
    # every table exists, empty, so readers always find a schema
    for table in ("spans", "logs", "metrics_number", "resources"):
        assert pq.read_table(tmp_path / "out" / table).num_rows == 0
    assert quarantine(tmp_path / "out") == []


@pytest.mark.parametrize(
    ("content", "why"),
    [
        (b"service,latency\nfrontend,12\n", "starts with bytes 736572766963652c"),
        (b"PAR1\x00\x00\x00\x00", "a Parquet file"),
        (b'{"name": "not otlp"}\n', None),
    ],
    ids=["csv", "parquet", "json_without_otlp_keys"],
)
def test_non_otlp_files_are_told_apart(content: bytes, why: str | None, tmp_path: Path):
    path = tmp_path / "traces.json"
    path.write_bytes(content)
    fmt = sniff(path)
    if why is None:
        # JSON that is not OTLP is still JSON: its one object (a whole object on the first line,
        # so read as JSON lines) is quarantined as not_otlp
        assert fmt == Format("none", "jsonl")
        report = run_ingest([path], tmp_path / "out")
        f = only_file(report)
        assert (f["messages_quarantined"], f["quarantined_by_reason"]) == (1, {"not_otlp": 1})
        assert brief(quarantine(tmp_path / "out")) == [("line 1", "", "not_otlp")]
    else:
        assert fmt == Format("none", "unknown", why)


def test_non_otlp_files_in_a_folder_are_skipped_and_listed(tmp_path: Path):
    src = tmp_path / "in"
    src.mkdir()
    (src / "traces.jsonl").write_bytes(jsonl(three_traces()))
    (src / "README.txt").write_bytes(b"Exported by the Collector\n")
    report = run_ingest([src], tmp_path / "out")
    assert [f["path"] for f in report["files"]] == [str(src / "traces.jsonl")]
    assert report["skipped"] == [
        {"path": str(src / "README.txt"), "code": "not_otlp", "reason": "not OTLP: starts with bytes 4578706f72746564"}
    ]
    assert report["totals"]["files_skipped"] == 1


# --------------------------------------------------------------------------------------------------
# files cut in the middle: everything before the cut is converted, the cut part is quarantined
# --------------------------------------------------------------------------------------------------


def test_length_prefixed_cut_inside_a_frame(tmp_path: Path):
    payloads = _payloads()
    data = length_prefixed(payloads)
    third = 8 + len(payloads[0]) + len(payloads[1])  # byte offset of the third frame's length
    path = tmp_path / "traces.binpb"
    path.write_bytes(data[: third + 4 + 10])  # the length and 10 bytes of the third frame
    assert sniff(path) == Format("none", "length_prefixed")

    f = only_file(run_ingest([path], tmp_path / "out"))
    assert (f["messages_read"], f["messages_quarantined"]) == (3, 1)
    assert (f["records_read"], f["records_written"], f["records_quarantined"]) == (4, 4, 0)
    assert f["quarantined_by_reason"] == {"truncated_message": 1}
    assert column(tmp_path / "out", "spans", "name") == span_names(2)
    (q,) = quarantine(tmp_path / "out")
    assert (q["file"], q["position"], q["reason_code"]) == (
        str(path),
        f"message 3 at byte {third}",
        "truncated_message",
    )
    assert q["reason"] == f"frame declares {len(payloads[2])} bytes but the file ends after 10"
    assert q["record_bytes"] == 14


def test_length_prefixed_cut_inside_a_length(tmp_path: Path):
    payloads = _payloads()
    third = 8 + len(payloads[0]) + len(payloads[1])
    path = tmp_path / "traces.binpb"
    path.write_bytes(length_prefixed(payloads)[: third + 2])
    f = only_file(run_ingest([path], tmp_path / "out"))
    assert (f["records_written"], f["messages_quarantined"]) == (4, 1)
    (q,) = quarantine(tmp_path / "out")
    assert (q["position"], q["reason_code"]) == (f"message 3 at byte {third}", "truncated_message")
    assert q["reason"] == "2 stray bytes where a 4-byte length was expected"


def test_jsonl_cut_mid_line(tmp_path: Path):
    data = jsonl(three_traces())
    lines = data.splitlines(keepends=True)
    path = tmp_path / "traces.jsonl"
    path.write_bytes(lines[0] + lines[1] + lines[2][:40])
    assert sniff(path) == Format("none", "jsonl")
    f = only_file(run_ingest([path], tmp_path / "out"))
    assert (f["messages_read"], f["messages_quarantined"]) == (3, 1)
    assert (f["records_read"], f["records_written"]) == (4, 4)
    assert f["quarantined_by_reason"] == {"malformed_json": 1}
    assert column(tmp_path / "out", "spans", "name") == span_names(2)
    (q,) = quarantine(tmp_path / "out")
    assert brief([q]) == [("line 3", "", "malformed_json")]
    assert q["record_text"] == lines[2][:40].decode()
    assert q["signal"] == "traces"


def test_raw_proto_cut_mid_message(tmp_path: Path):
    msgs = three_traces()
    data = merged(msgs).SerializeToString()
    blocks = [m.resource_spans[0].ByteSize() for m in msgs]
    head = [1 + len(_varint(n)) for n in blocks]  # tag 0x0a and the length of each block
    third = head[0] + blocks[0] + head[1] + blocks[1]
    assert data[third] == 0x0A
    path = tmp_path / "traces.pb"
    path.write_bytes(data[: third + head[2] + blocks[2] // 2])
    assert sniff(path) == Format("none", "proto")
    f = only_file(run_ingest([path], tmp_path / "out"))
    assert f["framing"] == "proto"
    assert (f["records_written"], f["messages_quarantined"]) == (4, 1)
    assert column(tmp_path / "out", "spans", "name") == span_names(2)
    (q,) = quarantine(tmp_path / "out")
    assert brief([q]) == [(f"message 1, top-level field 3 at byte {third}", "", "truncated_message")]
    assert q["reason"] == f"field declares {blocks[2]} bytes but the file ends after {blocks[2] // 2}"


def test_pretty_json_document_cut(tmp_path: Path):
    data = to_otlp_json(merged(three_traces()), pretty=True)
    path = tmp_path / "traces.json"
    path.write_bytes(data[: len(data) // 2])
    assert sniff(path) == Format("none", "json")
    f = only_file(run_ingest([path], tmp_path / "out"))
    # a document is one message: cut, none of its records can be located
    assert (f["records_read"], f["messages_quarantined"], f["quarantined_by_reason"]) == (
        0,
        1,
        {"malformed_json": 1},
    )
    assert brief(quarantine(tmp_path / "out")) == [("document", "", "malformed_json")]


def _complete_frames(data: bytes) -> int:
    """How many whole length-prefixed frames ``data`` starts with."""
    i = n = 0
    while i + 4 <= len(data):
        (size,) = struct.unpack(">I", data[i : i + 4])
        if i + 4 + size > len(data):
            break
        i += 4 + size
        n += 1
    return n


def test_zstd_stream_cut(tmp_path: Path):
    """A small whole-file zstd stream cut short (a copy interrupted, a disk full): nothing can be
    decompressed, and that must show, either as a quarantined stream or as a fatal error naming the
    file; it must not pass for an empty file with no records."""
    z = _zstd(length_prefixed(_payloads()))
    cut = z[: len(z) * 2 // 3]
    assert zstandard.ZstdDecompressor().decompressobj().decompress(cut) == b""  # nothing recoverable
    path = tmp_path / "traces.binpb.zst"
    path.write_bytes(cut)
    assert sniff(path).compression == "zstd"
    try:
        report = run_ingest([path], tmp_path / "out")
    except IngestFatalError as e:
        assert str(path) in str(e)
        return
    f = only_file(report)
    assert f["framing"] != "empty", "a cut zstd stream was taken for an empty file"
    assert (f["records_written"], f["messages_quarantined"]) == (0, 1)
    assert f["quarantined_by_reason"] == {"decompression_error": 1}


def _incompressible(msg: trace_pb2.TracesData) -> trace_pb2.TracesData:
    """Give every span a request id that does not compress, so compressed files span many blocks."""
    for s in msg.resource_spans[0].scope_spans[0].spans:
        s.attributes.add(key="request.id").value.string_value = hashlib.sha256(s.span_id).hexdigest()
    return msg


def test_large_zstd_stream_cut_keeps_what_precedes_the_cut(tmp_path: Path):
    """Past one zstd block (128 KiB), what precedes the cut can be decompressed: the complete
    frames in it are converted and the cut is reported."""
    msgs = [_incompressible(traces_message(m, n=400)) for m in range(4)]
    data = length_prefixed([m.SerializeToString() for m in msgs])
    z = _zstd(data)
    cut = z[: len(z) * 2 // 3]
    readable = zstandard.ZstdDecompressor().decompressobj().decompress(cut)
    n_frames = _complete_frames(readable)
    assert 0 < n_frames < 4
    path = tmp_path / "traces.binpb.zst"
    path.write_bytes(cut)
    assert sniff(path) == Format("zstd", "length_prefixed")
    f = only_file(run_ingest([path], tmp_path / "out"))
    assert f["records_written"] == 400 * n_frames
    assert f["messages_quarantined"] == 1, "the cut went unnoticed: records were lost without a trace"
    assert f["quarantined_by_reason"] in ({"decompression_error": 1}, {"truncated_message": 1})


def test_zstd_stream_of_several_frames_cut_inside_the_last(tmp_path: Path):
    """zstd files may hold several frames (appended or written in chunks): a cut in the last frame
    keeps the frames before it."""
    payloads = _payloads()
    frames = [_zstd(length_prefixed([p])) for p in payloads]
    path = tmp_path / "traces.binpb.zst"
    path.write_bytes(frames[0] + frames[1] + frames[2][: len(frames[2]) // 2])
    f = only_file(run_ingest([path], tmp_path / "out"))
    assert column(tmp_path / "out", "spans", "name") == span_names(2)
    assert f["records_written"] == 4
    assert f["messages_quarantined"] == 1, "the cut third frame went unnoticed"
    assert f["quarantined_by_reason"] in ({"decompression_error": 1}, {"truncated_message": 1})


@pytest.mark.parametrize("keep", ["two_thirds", "all_but_the_trailer"])
def test_gzip_stream_cut(keep: str, tmp_path: Path):
    """A small gzip file cut short: the complete lines that can be decompressed are converted and
    the cut is quarantined. The file must not be skipped as "not OTLP" (nor be fatal when named)."""
    data = jsonl(three_traces())
    g = _gzip(data)
    cut = g[: len(g) * 2 // 3] if keep == "two_thirds" else g[:-4]  # the trailer's size field is lost
    readable = zlib.decompressobj(wbits=31).decompress(cut)  # what can be recovered
    n_lines = readable.count(b"\n")
    assert n_lines == (0 if keep == "two_thirds" else 3)
    path = tmp_path / "in" / "traces.jsonl.gz"
    path.parent.mkdir()
    path.write_bytes(cut)
    report = run_ingest([path.parent], tmp_path / "out")
    assert report["skipped"] == []
    f = only_file(report)
    assert (f["compression"], f["framing"]) == ("gzip", "jsonl")
    assert f["records_written"] == 2 * n_lines
    assert f["quarantined_by_reason"].get("decompression_error") == 1
    # the partial line before the cut, if it is read at all, is malformed JSON
    assert set(f["quarantined_by_reason"]) <= {"decompression_error", "malformed_json"}


def test_large_gzip_stream_cut_keeps_what_precedes_the_cut(tmp_path: Path):
    """Past the 64 KiB the sniffer looks at, a cut gzip stream is read up to the cut."""
    msgs = [traces_message(m, n=40) for m in range(60)]
    data = jsonl(msgs)
    g = _gzip(data)
    cut = g[: len(g) * 2 // 3]
    readable = zlib.decompressobj(wbits=31).decompress(cut)
    assert len(readable) > 1 << 16
    path = tmp_path / "traces.jsonl.gz"
    path.write_bytes(cut)
    f = only_file(run_ingest([path], tmp_path / "out"))
    complete = readable.count(b"\n")
    # whole lines before the cut are converted; at most the line the cut falls in is lost
    assert f["records_written"] == 40 * complete
    assert f["quarantined_by_reason"] == {"decompression_error": 1}
    (q,) = quarantine(tmp_path / "out")
    # one entry for the cut: the partial last line, with the stream's reason
    assert (q["position"], q["reason_code"]) == (f"line {complete + 1}", "decompression_error")
    assert q["reason"].startswith("the gzip stream is cut")
    assert q["record_text"].encode() == readable[readable.rindex(b"\n") + 1 :]


# --------------------------------------------------------------------------------------------------
# mixed signals, and protobuf whose signal the name does not give
# --------------------------------------------------------------------------------------------------


def test_mixed_signals_in_one_jsonl_file(tmp_path: Path):
    """A Collector with one file exporter shared by all pipelines writes every signal to one file."""
    path = tmp_path / "in" / "otel-export.jsonl"  # the name names no signal
    path.parent.mkdir()
    path.write_bytes(jsonl([traces_message(0), metrics_message(1, 3), logs_message(2, 4), traces_message(3)]))
    f = only_file(run_ingest([path], tmp_path / "out"))
    assert f["signals"] == ["logs", "metrics", "traces"]
    assert f["signal_source"] == "JSON key"
    assert (f["messages_read"], f["records_read"], f["records_written"]) == (4, 11, 11)
    assert f["rows_written"] == {"logs": 4, "metrics_number": 3, "spans": 4}
    out = tmp_path / "out"
    assert column(out, "spans", "name") == ["op0.0", "op0.1", "op3.0", "op3.1"]
    assert column(out, "metrics_number", "value_int") == [0, 1, 2]
    assert column(out, "logs", "body") == ["log2.0", "log2.1", "log2.2", "log2.3"]
    # lineage: the record index runs over the whole file, across signals
    assert column(out, "spans", "_record_index") == [0, 1, 9, 10]
    assert column(out, "metrics_number", "_record_index") == [2, 3, 4]
    assert column(out, "logs", "_record_index") == [5, 6, 7, 8]
    assert sorted(column(out, "resources", "service_name")) == ["svc0", "svc1", "svc2", "svc3"]


def test_one_json_line_with_several_signals(tmp_path: Path):
    doc = {**to_otlp_dict(traces_message(0)), **to_otlp_dict(logs_message(1))}
    path = tmp_path / "x.jsonl"
    path.write_bytes(orjson.dumps(doc) + b"\n")
    f = only_file(run_ingest([path], tmp_path / "out"))
    assert f["signals"] == ["logs", "traces"]
    assert f["rows_written"] == {"logs": 2, "spans": 2}


@pytest.mark.parametrize(
    ("message", "signal", "table", "n"),
    [(traces_message(0), "traces", "spans", 2), (logs_message(0, 3), "logs", "logs", 3),
     (metrics_message(0, 4), "metrics", "metrics_number", 4)],
    ids=["traces", "logs", "metrics"],
)  # fmt: skip
def test_protobuf_without_signal_in_its_name(message: Any, signal: str, table: str, n: int, tmp_path: Path):
    path = tmp_path / "a" / "b" / "data.bin"  # no folder on the way names a signal either
    path.parent.mkdir(parents=True)
    path.write_bytes(length_prefixed([message.SerializeToString()] * 2))
    f = only_file(run_ingest([path], tmp_path / "guessed"))
    assert (f["signals"], f["signal_source"]) == ([signal], "content")
    assert f["rows_written"] == {table: 2 * n}

    f = only_file(run_ingest([path], tmp_path / "told", signal=signal))
    assert (f["signals"], f["signal_source"]) == ([signal], "option")
    assert f["rows_written"] == {table: 2 * n}


def test_protobuf_whose_signal_cannot_be_guessed_needs_the_option(tmp_path: Path):
    # a ResourceSpans with a resource and no spans parses as any of the three signals
    msg = trace_pb2.TracesData()
    _service(msg.resource_spans.add().resource, "svc")
    path = tmp_path / "a" / "b" / "data.bin"
    path.parent.mkdir(parents=True)
    path.write_bytes(length_prefixed([msg.SerializeToString(), traces_message(1).SerializeToString()]))
    f = only_file(run_ingest([path], tmp_path / "guessed"))
    assert (f["messages_quarantined"], f["quarantined_by_reason"]) == (1, {"unknown_signal": 1})
    assert f["records_written"] == 2  # the second message is told by its spans
    (q,) = quarantine(tmp_path / "guessed")
    assert (q["position"], q["reason_code"]) == ("message 1 at byte 0", "unknown_signal")
    assert "--signal" in q["reason"]

    f = only_file(run_ingest([path], tmp_path / "told", signal="traces"))
    assert (f["messages_quarantined"], f["records_written"], f["signal_source"]) == (0, 2, "option")


def test_cli_signal_option(tmp_path: Path):
    path = tmp_path / "a" / "b" / "data.bin"
    path.parent.mkdir(parents=True)
    path.write_bytes(logs_message(0).SerializeToString())
    res = CliRunner().invoke(app, ["ingest", str(path), "--out", str(tmp_path / "out"), "--signal", "logs"])
    assert res.exit_code == 0, res.output
    report = orjson.loads((tmp_path / "out" / "ingest_report.json").read_bytes())
    assert (report["files"][0]["signal_source"], report["files"][0]["rows_written"]) == (
        "option",
        {"logs": 2},
    )
    res = CliRunner().invoke(app, ["ingest", str(path), "--out", str(tmp_path / "o2"), "--signal", "spans"])
    assert res.exit_code == 1
    assert "--signal must be one of traces, metrics, logs, not 'spans'" in res.output


# --------------------------------------------------------------------------------------------------
# unknown fields: counted, never fatal
# --------------------------------------------------------------------------------------------------


def test_unknown_json_keys_are_counted(tmp_path: Path, decoder: str):
    doc = to_otlp_dict(traces_message(0))
    doc["exportedBy"] = "otelcol"
    rs = doc["resourceSpans"][0]
    rs["resource"]["futureField"] = 1
    rs["scopeSpans"][0]["scope"]["extra"] = True
    rs["scopeSpans"][0]["spans"][0]["newSpanField"] = {"a": 1}
    rs["scopeSpans"][0]["spans"][1]["newSpanField"] = 2
    rs["scopeSpans"][0]["spans"][1]["status"] = {"code": 2, "reason": "x"}
    rs["scopeSpans"][0]["spans"][1]["events"] = [{"name": "e", "severity": 3}]
    path = tmp_path / "traces.jsonl"
    path.write_bytes(orjson.dumps(doc) + b"\n")
    f = only_file(run_ingest([path], tmp_path / "out"))
    assert (f["records_written"], f["records_quarantined"], f["messages_quarantined"]) == (2, 0, 0)
    assert f["unknown_fields"] == {
        "InstrumentationScope.extra": 1,
        "Resource.futureField": 1,
        "Span.Event.severity": 1,
        "Span.newSpanField": 2,
        "Status.reason": 1,
        "top-level.exportedBy": 1,
    }
    assert column(tmp_path / "out", "spans", "status_code") == [0, 2]


def _with_unknown(msg: Any, field: int, value: int = 1) -> Any:
    """A copy of ``msg`` carrying an extra varint field ``field`` that its schema does not define."""
    return type(msg).FromString(msg.SerializeToString() + _varint(field << 3) + _varint(value))


def test_unknown_protobuf_fields_are_counted(tmp_path: Path, decoder: str):
    msg = traces_message(0, 3)
    ss = msg.resource_spans[0].scope_spans[0]
    spans = [_with_unknown(s, 99) if i != 1 else s for i, s in enumerate(ss.spans)]
    del ss.spans[:]
    ss.spans.extend(spans)
    ss.scope.CopyFrom(_with_unknown(ss.scope, 40))
    msg.resource_spans[0].CopyFrom(_with_unknown(msg.resource_spans[0], 9))
    data = msg.SerializeToString() + b"\x38\x01"  # TracesData field 7, varint 1
    path = tmp_path / "traces.binpb"
    path.write_bytes(length_prefixed([data]))
    f = only_file(run_ingest([path], tmp_path / "out"))
    assert (f["records_written"], f["records_quarantined"], f["messages_quarantined"]) == (3, 0, 0)
    assert f["unknown_fields"] == {
        "InstrumentationScope.#40": 1,
        "ResourceSpans.#9": 1,
        "Span.#99": 2,
        "TracesData.#7": 1,
    }
    assert column(tmp_path / "out", "spans", "name") == ["op0.0", "op0.1", "op0.2"]


# --------------------------------------------------------------------------------------------------
# bad records: quarantined alone, with file, position and reason; the rest converts
# --------------------------------------------------------------------------------------------------


def test_bad_records_in_json_lines(tmp_path: Path, decoder: str):
    def line(spans: list[dict]) -> bytes:
        doc = to_otlp_dict(traces_message(0, len(spans)))
        doc["resourceSpans"][0]["scopeSpans"][0]["spans"] = spans
        return orjson.dumps(doc) + b"\n"

    good = to_otlp_dict(traces_message(0, 1))["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
    data = (
        line([good, {**good, "traceId": "xyz"}])
        + b'{"resourceSpans": [{"scopeSpans": [\n'
        + line([{**good, "kind": 9}, good, {**good, "startTimeUnixNano": str(2**63)}])
        + line([{**good, "spanId": "00112233445566778899"}, {**good, "parentSpanId": "zz" * 8}, good])
    )
    path = tmp_path / "traces.jsonl"
    path.write_bytes(data)
    report = run_ingest([path], tmp_path / "out")
    f = only_file(report)
    assert (f["messages_read"], f["messages_quarantined"]) == (4, 1)
    assert (f["records_read"], f["records_written"], f["records_quarantined"]) == (8, 3, 5)
    assert f["quarantined_by_reason"] == {
        "invalid_id": 3,
        "malformed_json": 1,
        "timestamp_out_of_range": 1,
        "unknown_enum": 1,
    }
    spans = "resourceSpans[0].scopeSpans[0].spans"
    q = quarantine(tmp_path / "out")
    assert brief(q) == [
        ("line 1", f"{spans}[1]", "invalid_id"),
        ("line 2", "", "malformed_json"),
        ("line 3", f"{spans}[0]", "unknown_enum"),
        ("line 3", f"{spans}[2]", "timestamp_out_of_range"),
        ("line 4", f"{spans}[0]", "invalid_id"),
        ("line 4", f"{spans}[1]", "invalid_id"),
    ]
    assert all(e["file"] == str(path) and e["signal"] == "traces" for e in q)
    assert q[0]["record"]["traceId"] == "xyz"  # the rejected record itself, as read
    assert "xyz" in q[0]["reason"]
    assert str(2**63) in q[3]["reason"]
    assert column(tmp_path / "out", "spans", "_record_index") == [0, 3, 7]
    assert report["totals"]["quarantined_by_reason"] == f["quarantined_by_reason"]


def test_bad_records_in_protobuf(tmp_path: Path, decoder: str):
    """Protobuf accepts what JSON cannot say: ids of the wrong length, times past int64, enum
    numbers that are not defined. Each such record is quarantined; its neighbours are not."""
    m1 = traces_message(0, 2)
    m1.resource_spans[0].scope_spans[0].spans[1].trace_id = b"\x01\x02\x03\x04\x05"
    m2 = traces_message(1, 4)
    s = m2.resource_spans[0].scope_spans[0].spans
    s[0].start_time_unix_nano = 2**63
    s[1].kind = 9  # proto3 enums are open: an undefined number parses
    s[3].links.add(trace_id=bytes(range(16)), span_id=b"\x01" * 7)
    m3 = logs_message(2, 3)
    r = m3.resource_logs[0].scope_logs[0].log_records
    r[0].severity_number = 99
    r[2].observed_time_unix_nano = 2**64 - 1
    m4 = metrics_message(3, 2)
    m4.resource_metrics[0].scope_metrics[0].metrics[0].gauge.data_points[1].time_unix_nano = 2**63 + 5
    m5 = metrics_message(4, 2)
    metric = m5.resource_metrics[0].scope_metrics[0].metrics[0]
    points = list(metric.gauge.data_points)
    metric.sum.data_points.extend(points)  # the gauge becomes a sum (one oneof)
    metric.sum.aggregation_temporality = 7
    path = tmp_path / "mixed.binpb"  # no signal in the name: each message is guessed
    path.write_bytes(length_prefixed([m.SerializeToString() for m in (m1, m2, m3, m4, m5)]))
    f = only_file(run_ingest([path], tmp_path / "out"))
    assert (f["records_read"], f["records_written"], f["records_quarantined"]) == (13, 4, 9)
    assert f["quarantined_by_reason"] == {"invalid_id": 2, "timestamp_out_of_range": 3, "unknown_enum": 4}
    q = quarantine(tmp_path / "out")
    spans = "resource_spans[0].scope_spans[0].spans"
    logs = "resource_logs[0].scope_logs[0].log_records"
    metrics = "resource_metrics[0].scope_metrics[0].metrics[0]"
    at = [0]  # byte offset of each frame
    for m in (m1, m2, m3, m4):
        at.append(at[-1] + 4 + m.ByteSize())
    assert brief(q) == [
        ("message 1 at byte 0", f"{spans}[1]", "invalid_id"),
        (f"message 2 at byte {at[1]}", f"{spans}[0]", "timestamp_out_of_range"),
        (f"message 2 at byte {at[1]}", f"{spans}[1]", "unknown_enum"),
        (f"message 2 at byte {at[1]}", f"{spans}[3]", "invalid_id"),
        (f"message 3 at byte {at[2]}", f"{logs}[0]", "unknown_enum"),
        (f"message 3 at byte {at[2]}", f"{logs}[2]", "timestamp_out_of_range"),
        (f"message 4 at byte {at[3]}", f"{metrics}.gauge.data_points[1]", "timestamp_out_of_range"),
        (f"message 5 at byte {at[4]}", f"{metrics}.sum.data_points[0]", "unknown_enum"),
        (f"message 5 at byte {at[4]}", f"{metrics}.sum.data_points[1]", "unknown_enum"),
    ]
    assert [e["signal"] for e in q] == ["traces"] * 4 + ["logs"] * 2 + ["metrics"] * 3
    # a quarantined protobuf record is kept as its bytes
    assert trace_pb2.Span.FromString(base64.b64decode(q[0]["record_base64"])).name == "op0.1"
    out = tmp_path / "out"
    assert column(out, "spans", "name") == ["op0.0", "op1.2"]
    assert column(out, "logs", "body") == ["log2.1"]
    assert column(out, "metrics_number", "value_int") == [0]


@pytest.mark.parametrize(
    ("garbage", "code", "reason"),
    [
        # a ResourceSpans whose declared length runs past the end of its frame
        (b"\x0a\x05\x0a\x03ab", "truncated_message",
         "resource_spans[0] at byte 0: field 1 runs 1 bytes past the end of the message"),
        # a well-framed ResourceSpans whose Resource holds wire type 7, which does not exist
        (b"\x0a\x04\x0a\x02\x0f\x00", "invalid_protobuf",
         "resource_spans[0]: resource: Error parsing message with type "
         "'opentelemetry.proto.resource.v1.Resource': Wire format was corrupt"),
    ],
    ids=["block_past_the_frame", "corrupt_wire_format"],
)  # fmt: skip
def test_invalid_protobuf_frame_is_quarantined_and_the_next_frame_read(
    garbage: bytes, code: str, reason: str, tmp_path: Path, decoder: str
):
    payloads = _payloads()
    path = tmp_path / "traces.binpb"
    path.write_bytes(length_prefixed([payloads[0], garbage, payloads[2]]))
    f = only_file(run_ingest([path], tmp_path / "out"))
    assert (f["messages_read"], f["messages_quarantined"], f["records_written"]) == (3, 1, 4)
    assert f["quarantined_by_reason"] == {code: 1}
    assert column(tmp_path / "out", "spans", "name") == ["op0.0", "op0.1", "op2.0", "op2.1"]
    (q,) = quarantine(tmp_path / "out")
    assert (q["position"], q["reason_code"], q["reason"]) == (
        f"message 2 at byte {4 + len(payloads[0])}",
        code,
        reason,
    )


# --------------------------------------------------------------------------------------------------
# the output folder is replaced atomically
# --------------------------------------------------------------------------------------------------


def _leftovers(parent: Path) -> list[str]:
    return sorted(p.name for p in parent.iterdir() if p.name.startswith("."))


def test_failed_run_leaves_the_previous_output_untouched(tmp_path: Path, monkeypatch):
    src = tmp_path / "traces.jsonl"
    src.write_bytes(jsonl(three_traces()))
    out = tmp_path / "out"
    run_ingest([src], out)
    before = sorted(p.relative_to(out).as_posix() for p in out.rglob("*"))

    def disk_full(self, tables):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(ingest._TableWriters, "write", disk_full)
    with pytest.raises(OSError, match="No space left"):
        ingest_paths([src], out, workers=1)
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*")) == before
    assert column(out, "spans", "name") == span_names(3)
    assert _leftovers(tmp_path) == []


def test_failed_first_run_leaves_no_folder(tmp_path: Path, monkeypatch):
    src = tmp_path / "traces.jsonl"
    src.write_bytes(jsonl(three_traces()))

    def boom(*args, **kwargs):
        raise RuntimeError("interrupted")

    monkeypatch.setattr(ingest, "_finish", boom)
    with pytest.raises(RuntimeError):
        ingest_paths([src], tmp_path / "out", workers=1)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["traces.jsonl"]


def test_successful_run_replaces_the_previous_output(tmp_path: Path):
    src = tmp_path / "traces.jsonl"
    src.write_bytes(jsonl(three_traces()))
    out = tmp_path / "out"
    run_ingest([src], out)  # an earlier run of ingest: the folder is ingest's own
    (out / "stale.txt").write_text("from an older run")
    run_ingest([src], out)
    assert not (out / "stale.txt").exists()
    assert column(out, "spans", "name") == span_names(3)
    assert _leftovers(tmp_path) == []
    # a folder that ingest did not write is never replaced: refused, its files untouched
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(IngestFatalError, match="not written by ingest"):
        ingest_paths([src], foreign, workers=1)
    assert [p.name for p in foreign.iterdir()] == ["notes.txt"] and _leftovers(tmp_path) == []


def test_parallel_workers_give_the_same_tables(tmp_path: Path):
    src = tmp_path / "in"
    src.mkdir()
    for m in range(4):
        (src / f"traces-{m}.jsonl").write_bytes(jsonl([traces_message(m)]))
    one = ingest_paths([src], tmp_path / "one", workers=1)
    two = ingest_paths([src], tmp_path / "two", workers=2)
    assert one["files"] == two["files"]
    for table, key in (("spans", "_source_file"), ("resources", "resource_id"), ("scopes", "scope_id")):
        a = pq.read_table(tmp_path / "one" / table).sort_by(key)
        b = pq.read_table(tmp_path / "two" / table).sort_by(key)
        assert a.equals(b), table


# --------------------------------------------------------------------------------------------------
# the command line: exit 0 with quarantined records, 1 (naming the file) when nothing can be done
# --------------------------------------------------------------------------------------------------


def _cli(*args: str):
    return CliRunner().invoke(app, ["ingest", *args])


def test_cli_exits_0_with_quarantined_records(tmp_path: Path):
    path = tmp_path / "traces.jsonl"
    path.write_bytes(jsonl(three_traces()) + b"{not json\n")
    res = _cli(str(path), "--out", str(tmp_path / "out"))
    assert res.exit_code == 0, res.output
    assert "records: 6 read = 6 written + 0 quarantined; messages quarantined whole: 1" in res.output
    assert f"quarantined in {path}: malformed_json 1" in res.output
    assert (tmp_path / "out" / "ingest_report.json").exists()


def test_cli_exits_1_for_a_missing_input(tmp_path: Path):
    missing = tmp_path / "nope.jsonl"
    res = _cli(str(missing), "--out", str(tmp_path / "out"))
    assert res.exit_code == 1
    assert f"error: {missing}: no such file or folder" in res.output
    assert not (tmp_path / "out").exists()


def test_cli_exits_1_for_a_named_file_that_is_not_otlp(tmp_path: Path):
    notes = tmp_path / "notes.txt"
    notes.write_bytes(b"hello\n")
    res = _cli(str(notes), "--out", str(tmp_path / "out"))
    assert res.exit_code == 1
    assert f"error: {notes}: not an OTLP file in any framing this reader knows" in res.output
    assert not (tmp_path / "out").exists()


def test_cli_exits_1_when_the_output_cannot_be_written(tmp_path: Path):
    src = tmp_path / "traces.jsonl"
    src.write_bytes(jsonl(three_traces()))
    blocker = tmp_path / "a-file"
    blocker.write_bytes(b"")
    res = _cli(str(src), "--out", str(blocker / "out"))  # the parent is a file
    assert res.exit_code == 1
    assert f"error: {blocker / 'out'}: cannot create the parent folder" in res.output

    res = _cli(str(src), "--out", str(blocker))  # the output is a file
    assert res.exit_code == 1
    assert f"error: {blocker}: exists and is not a folder" in res.output
    assert blocker.read_bytes() == b""
    assert _leftovers(tmp_path) == []


def test_cli_exits_1_when_the_disk_fills_up(tmp_path: Path, monkeypatch):
    """An output that cannot be written part-way (disk full, quota) is the same failure as one that
    cannot be created: a one-line error naming the output, exit 1, not a traceback; the previous
    output stays."""
    src = tmp_path / "traces.jsonl"
    src.write_bytes(jsonl(three_traces()))
    out = tmp_path / "out"
    run_ingest([src], out)

    def disk_full(self, tables):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(ingest._TableWriters, "write", disk_full)
    res = _cli(str(src), "--out", str(out))
    assert res.exit_code == 1
    assert isinstance(res.exception, SystemExit), (
        f"a traceback instead of an error message: {res.exception!r}"
    )
    assert f"error: {out}" in res.output
    assert "No space left on device" in res.output
    assert column(out, "spans", "name") == span_names(3)
    assert _leftovers(tmp_path) == []


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_cli_exits_1_when_the_output_folder_is_read_only(tmp_path: Path):
    src = tmp_path / "traces.jsonl"
    src.write_bytes(jsonl(three_traces()))
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        res = _cli(str(src), "--out", str(ro / "out"))
    finally:
        ro.chmod(0o700)
    assert res.exit_code == 1
    assert f"error: {ro / 'out'}: cannot write the output" in res.output


def test_attribute_value_type_survives_every_framing(tmp_path: Path):
    """One record with one attribute of every AnyValue kind, in protobuf and JSON: the same rows."""
    msg = traces_message(0, 1)
    span = msg.resource_spans[0].scope_spans[0].spans[0]
    values = {
        "s": common_pb2.AnyValue(string_value="GET"),
        "b": common_pb2.AnyValue(bool_value=False),
        "i": common_pb2.AnyValue(int_value=-(2**63)),
        "d": common_pb2.AnyValue(double_value=-0.0),
        "nan": common_pb2.AnyValue(double_value=float("nan")),
        "bytes": common_pb2.AnyValue(bytes_value=b"\x00\xff"),
        "empty": common_pb2.AnyValue(),
    }
    for k, v in values.items():
        span.attributes.add(key=k).value.CopyFrom(v)
    arr = span.attributes.add(key="arr").value.array_value
    arr.values.add(int_value=1)
    arr.values.add(double_value=1.0)
    kv = span.attributes.add(key="kv").value.kvlist_value
    kv.values.add(key="x").value.bytes_value = b"\x01"
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "traces.binpb").write_bytes(length_prefixed([msg.SerializeToString()]))
    (tmp_path / "in" / "traces.jsonl").write_bytes(jsonl([msg]))
    run_ingest([tmp_path / "in"], tmp_path / "out")
    attrs = column(tmp_path / "out", "spans", "attributes")
    types = column(tmp_path / "out", "spans", "attribute_types")
    assert attrs[0] == attrs[1] == [
        ("s", "GET"), ("b", "false"), ("i", "-9223372036854775808"), ("d", "-0.0"), ("nan", "NaN"),
        ("bytes", "AP8="), ("empty", None), ("arr", "[1,1.0]"),
        ("kv", '{"kvlistValue":{"values":[{"key":"x","value":{"bytesValue":"AQ=="}}]}}'),
    ]  # fmt: skip
    assert types[0] == types[1] == [
        ("b", "bool"), ("i", "int"), ("d", "double"), ("nan", "double"), ("bytes", "bytes"), ("empty", "empty"),
        ("arr", "array"), ("kv", "kvlist_otlp"),
    ]  # fmt: skip
