"""Ingest on Ray cuts a large uncompressed file into blocks at record boundaries (JSON lines:
newlines; length-prefixed: frame starts), one task each: the tables, the quarantine and the report
hold exactly what one task over the whole file gives (value-identical; the part files differ)."""

from __future__ import annotations

import gzip
import itertools
import struct
from pathlib import Path
from typing import Any

import orjson
import pyarrow.parquet as pq
import pytest
from opentelemetry.proto.logs.v1 import logs_pb2
from test_hostile_ingest import T0, good_line, histogram_points, traces

from otlp_aiops.otlp.framing import Block, Limits, iter_block, iter_messages, sniff, split_blocks
from otlp_aiops.otlp.otlpjson import to_otlp_json

BLOCK = 1500  # bytes: the fixture's files are cut into several blocks each
GARBAGE = b"\x0a\x05garbage-not-protobuf"  # a message quarantined whole


def _frame(payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + payload


def _bad_span(m: int) -> bytes:
    """A trace message with one span whose trace_id is 3 bytes: that record is quarantined."""
    msg = traces(m, 3)
    msg.resource_spans[0].scope_spans[0].spans[1].trace_id = b"abc"
    return msg.SerializeToString()


def _logs(m: int) -> bytes:
    msg = logs_pb2.LogsData()
    rl = msg.resource_logs.add()
    rl.resource.attributes.add(key="service.name").value.string_value = f"svc{m % 3}"
    for i in range(3):
        r = rl.scope_logs.add().log_records.add(time_unix_nano=T0 + i, severity_number=9)
        r.body.string_value = f"line {m}.{i}"
    return msg.SerializeToString()


def fixture(folder: Path) -> dict[str, Path]:
    """Files cut into several blocks (and small / compressed ones read whole), with bad parts
    in their second and later blocks."""
    folder.mkdir()
    files = {}
    frames = [_frame(traces(m, 2).SerializeToString()) for m in range(40)]
    frames[7] = _frame(_bad_span(7))  # block 2 or later: a record quarantined
    frames[9] = _frame(GARBAGE)  # a message quarantined whole
    frames[12] = _frame(b"")  # an empty frame
    frames[20] = _frame(_bad_span(20))
    files["spans"] = folder / "spans.binpb"
    files["spans"].write_bytes(b"".join(frames))
    files["metrics"] = folder / "metrics.binpb"
    files["metrics"].write_bytes(b"".join(_frame(histogram_points().SerializeToString()) for _ in range(12)))
    files["logs"] = folder / "logs.binpb"
    files["logs"].write_bytes(b"".join(_frame(_logs(m)) for m in range(30)))
    lines = [to_otlp_json(traces(m)) + b"\n" for m in range(30)]
    lines[6] = b'{"not": "otlp"}\n'  # in a later block, before any message there: an inherited signal
    lines[8] = b'{"resourceSpans": [ broken\n'
    lines[11] = b"\n"
    bad = orjson.loads(to_otlp_json(traces(11, 3)))
    bad["resourceSpans"][0]["scopeSpans"][0]["spans"][2]["traceId"] = "zz"
    lines[12] = orjson.dumps(bad) + b"\n"
    files["jsonl"] = folder / "traces.jsonl"
    files["jsonl"].write_bytes(b"".join(lines))
    # no signal in the name: a quarantine entry's signal is the last message's, across blocks
    mixed = [_frame(traces(m, 2).SerializeToString()) for m in range(8)] + [_frame(b'{"x": 1}')] * 60
    files["mixed"] = folder / "mixed.binpb"
    files["mixed"].write_bytes(b"".join(mixed))
    files["small"] = folder / "small-traces.jsonl"
    files["small"].write_bytes(lines[0])
    files["gzip"] = folder / "gz-traces.jsonl.gz"
    files["gzip"].write_bytes(gzip.compress(b"".join(lines), mtime=0))
    return files


def _blocks(path: Path) -> list[Block]:
    return split_blocks(path, sniff(path), BLOCK)


def test_blocks_are_cut_at_records_and_read_as_in_the_whole_file(tmp_path: Path) -> None:
    files = fixture(tmp_path / "in")
    for name in ("spans", "metrics", "logs", "jsonl"):
        path, fmt = files[name], sniff(files[name])
        blocks = _blocks(path)
        assert len(blocks) >= 3, name
        assert blocks[0].start == 0 and blocks[-1].end == path.stat().st_size
        assert all(a.end == b.start for a, b in itertools.pairwise(blocks))
        whole = list(iter_messages(path, fmt, lazy_json=True))  # Message / FramingError: dataclasses
        assert [m for b in blocks for m in iter_block(path, fmt, b, lazy_json=True)] == whole, name
    # a line: the newline is the block's last byte; a frame: the next block starts at a length prefix
    data = files["jsonl"].read_bytes()
    assert all(data[b.end - 1 : b.end] == b"\n" for b in _blocks(files["jsonl"]))
    assert [b.before for b in _blocks(files["jsonl"])][:2] == [
        0,
        data[: _blocks(files["jsonl"])[1].start].count(b"\n"),
    ]
    for name in ("small", "gzip"):  # too small, compressed: one block
        assert len(_blocks(files[name])) == 1


def test_a_run_of_empty_frames_the_reader_stops_at_ends_the_cutting(tmp_path: Path) -> None:
    path = tmp_path / "t.binpb"
    body = _frame(traces(1).SerializeToString())
    path.write_bytes(body * 3 + _frame(b"") * 4 + body * 20)
    fmt = sniff(path)
    limits = Limits(max_empty_frames=4)
    blocks = split_blocks(path, fmt, len(body), limits)
    # cut after each of the first three frames; the stop (4th empty frame) lies in the last block
    assert [b.start for b in blocks] == [0, len(body), 2 * len(body), 3 * len(body)]
    assert blocks[-1].end == path.stat().st_size and blocks[-1].before == 3
    whole = list(iter_messages(path, fmt, limits=limits))
    assert [m for b in blocks for m in iter_block(path, fmt, b, limits=limits)] == whole
    assert (
        whole[-1].position == f"message 7 at byte {3 * len(body) + 12}" and whole[-1].code == "empty_frames"
    )


def _tables(out: Path) -> dict[str, list[dict[str, Any]]]:
    """Every table's rows, its part files read in name order (the order readers list them in)."""
    tables = {}
    for d in sorted(p for p in out.iterdir() if p.is_dir() and p.name != "quarantine"):
        rows: list[dict[str, Any]] = []
        for f in sorted(d.glob("*.parquet")):
            rows.extend(pq.read_table(f).to_pylist())
        tables[d.name] = rows
    return tables


def _quarantine(out: Path) -> list[dict[str, Any]]:
    return [orjson.loads(line) for f in sorted((out / "quarantine").glob("*.jsonl"))
            for line in f.read_bytes().splitlines()]  # fmt: skip


def test_ray_blocks_give_the_local_tables_quarantine_and_report(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("ray")
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    monkeypatch.setenv("RAY_USAGE_STATS_ENABLED", "0")
    import ray

    from otlp_aiops.executor import ExecutorConfig
    from otlp_aiops.otlp.ingest import ingest_paths

    files = fixture(tmp_path / "in")
    local = ingest_paths([tmp_path / "in"], tmp_path / "local", workers=1, batch_rows=7)
    try:
        on_ray = ingest_paths([tmp_path / "in"], tmp_path / "ray", batch_rows=7, block_bytes=BLOCK,
                              executor=ExecutorConfig(kind="ray", num_cpus=2))  # fmt: skip
    finally:
        ray.shutdown()
    # the files were cut: several part files for each large uncompressed one, none left unshifted
    parts = sorted(p.name for p in (tmp_path / "ray" / "spans").iterdir())
    assert sum(p.startswith("part-00005-") for p in parts) >= 3, parts  # spans.binpb (sorted: 6th)
    assert not list((tmp_path / "ray").glob("*/*.unshifted")) and not list((tmp_path / "ray").glob("*/*.tmp"))
    a, b = _tables(tmp_path / "local"), _tables(tmp_path / "ray")
    assert a.keys() == b.keys()
    for name in a:
        assert a[name] == b[name], name  # same rows, same values, same order (_record_index included)
    assert len(a["spans"]) > 100 and len(a["logs"]) == 90 and a["metrics_histogram"]
    qa, qb = _quarantine(tmp_path / "local"), _quarantine(tmp_path / "ray")
    assert qa == qb
    # bad parts in later blocks: quarantined at the same positions (record numbers, byte offsets)
    spans_blocks = _blocks(files["spans"])
    at = {q["position"] for q in qa if q["file"].endswith("spans.binpb")}
    sizes = [len(_frame(traces(m, 2).SerializeToString())) for m in range(20)]
    sizes[7], sizes[9], sizes[12] = len(_frame(_bad_span(7))), len(_frame(GARBAGE)), 4
    offset = sum(sizes)  # frame 21: the second bad span
    assert spans_blocks[1].start <= offset < spans_blocks[1].end
    assert at == {f"message 8 at byte {sum(sizes[:7])}", f"message 10 at byte {sum(sizes[:9])}",
                  f"message 21 at byte {offset}"}  # fmt: skip
    assert sum(q["file"].endswith("spans.binpb") and q["path"] != "" for q in qb) == 2  # 2 spans
    jl = [q for q in qa if q["file"].endswith("/traces.jsonl")]
    assert [(q["position"], q["reason_code"]) for q in jl][:2] == [
        ("line 7", "not_otlp"),
        ("line 9", "malformed_json"),
    ]
    assert _blocks(files["jsonl"])[1].before < 6  # line 7 lies in a later block
    assert jl[0]["signal"] is None and all("<signal" not in (q["signal"] or "") for q in qb)
    mixed = [q for q in qb if q["file"].endswith("mixed.binpb")]
    assert len(mixed) == 60 and {q["signal"] for q in mixed} == {"traces"}
    assert _blocks(files["mixed"])[1].before > 8  # the second block holds only JSON frames
    assert any(q["reason_code"] != "not_otlp" and q["path"] for q in jl)  # the bad span of line 13
    ra = {k: v for k, v in local.items() if k != "output"}
    rb = {k: v for k, v in on_ray.items() if k != "output"}
    assert ra == rb
    t = rb["totals"]
    assert (
        t["records_read"] == t["records_written"] + t["records_quarantined"] and t["records_quarantined"] >= 4
    )
    assert orjson.loads((tmp_path / "ray" / "ingest_report.json").read_bytes())["files"] == on_ray["files"]


def _convert_both(tmp_path: Path, name: str, monkeypatch: pytest.MonkeyPatch | None = None) -> tuple:
    """One file converted whole (convert_file) and in blocks (convert_block + _merge_blocks), in
    this process: (whole result, merged result, the two output folders)."""
    from otlp_aiops.executor import LOCAL
    from otlp_aiops.otlp.ingest import _merge_blocks, convert_block, convert_file, discover

    files = fixture(tmp_path / "in")
    (inp,) = [i for i in discover([tmp_path / "in"])[0] if i.path == files[name]]
    a, b = tmp_path / "whole", tmp_path / "blocks"
    whole = convert_file(inp, a, None, 7)
    parts = [convert_block(inp, b, None, 7, Limits(), blk) for blk in _blocks(inp.path)]
    return whole, _merge_blocks(inp, parts, b, LOCAL), a, b


@pytest.mark.parametrize("name", ["spans", "jsonl", "mixed", "metrics"])
def test_merged_blocks_are_the_whole_files_result(tmp_path: Path, name: str) -> None:
    whole, merged, a, b = _convert_both(tmp_path, name)
    assert merged == whole
    assert _tables(a) == _tables(b) and _quarantine(a) == _quarantine(b)
    assert len(list((b / "spans").glob("*.parquet"))) > 1 or name in ("mixed", "metrics")  # (spans: block 0)


def test_a_block_set_aside_sets_the_file_aside_from_there_as_one_task_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from otlp_aiops.otlp import ingest

    decode = ingest.decode_message
    where = "message 21 at byte"  # in the second block of spans.binpb

    def failing(payload: bytes, sig: str, fc: Any, batch: Any, position: str) -> Any:
        if position.startswith(where):
            raise RuntimeError("a bug")
        return decode(payload, sig, fc, batch, position)

    monkeypatch.setattr(ingest, "decode_message", failing)
    whole, merged, a, b = _convert_both(tmp_path, "spans")
    assert whole["entry"]["error"]["code"] == "internal_error" and whole["entry"]["records_written"] == 0
    assert merged == whole
    assert _tables(a) == _tables(b) == {"spans": []}  # every part removed (the folder stays, as today)
    q = _quarantine(b)
    assert (
        q == _quarantine(a)
        and q[-1]["position"].startswith(where)
        and q[-1]["reason_code"] == "internal_error"
    )


def test_a_conversion_runs_on_arrow_system_allocator_and_restores_the_default(tmp_path, monkeypatch):
    """Ingest converts with Arrow's system pool (malloc keeps the pages that batch after batch of
    the same buffers reuse) and puts the previous default back; a pool the user chose with
    ARROW_DEFAULT_MEMORY_POOL is left alone."""
    import pyarrow as pa

    from otlp_aiops.otlp import ingest

    src = tmp_path / "traces.jsonl"
    src.write_bytes(b"".join(good_line(m) for m in range(3)))
    seen: list[str] = []
    convert = ingest._convert

    def spy(*a: Any, **kw: Any) -> Any:
        seen.append(pa.default_memory_pool().backend_name)
        return convert(*a, **kw)

    monkeypatch.setattr(ingest, "_convert", spy)
    monkeypatch.delenv("ARROW_DEFAULT_MEMORY_POOL", raising=False)
    before = pa.default_memory_pool().backend_name
    report = ingest.ingest_paths([src], tmp_path / "out", workers=1)
    assert report["totals"]["rows_written"]["spans"] == 6
    assert seen == ["system"] and pa.default_memory_pool().backend_name == before
    monkeypatch.setenv("ARROW_DEFAULT_MEMORY_POOL", "user-choice")
    ingest.ingest_paths([src], tmp_path / "out2", workers=1)
    assert seen == ["system", before]
