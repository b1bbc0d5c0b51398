"""A large single JSON document is split into its resource blocks as it is read (so memory stays
bounded); the result must be the same as parsing the document whole, at any chunk boundary."""

from __future__ import annotations

import io
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from otlp_aiops.otlp import accel, framing
from otlp_aiops.otlp.ingest import ingest_paths

pytestmark = pytest.mark.skipif(accel.wire is None, reason="streaming needs the C scanner")


def _doc() -> dict:
    def span(i: int) -> dict:
        return {
            "traceId": f"{i + 1:032x}",
            "spanId": f"{i + 1:016x}",
            "name": f'op "{i}" ]}}',  # brackets and escaped quotes inside strings
            "kind": 2,
            "startTimeUnixNano": str(1_700_000_000_000_000_000 + i),
            "endTimeUnixNano": str(1_700_000_000_000_000_900 + i),
            "attributes": [{"key": "k\\]", "value": {"stringValue": "v[{"}}],
        }

    return {
        "resourceSpans": [
            {
                "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": f"svc{r}"}}]},
                "scopeSpans": [{"scope": {"name": "lib"}, "spans": [span(r * 10 + i) for i in range(3)]}],
            }
            for r in range(4)
        ]
    }


@pytest.mark.parametrize("chunk_size", [1, 2, 5, 17, 4096])
def test_items_at_any_chunk_boundary(chunk_size):
    doc = _doc()
    raw = json.dumps(doc, indent=2).encode()
    msgs = list(framing._iter_json_document_streamed(io.BytesIO(raw), chunk_size=chunk_size))
    assert [m.payload for m in msgs] == [{"resourceSpans": [rs]} for rs in doc["resourceSpans"]]
    first = raw.index(b"{", raw.index(b"["))
    assert msgs[0].position == f"document, resourceSpans[0] at byte {first}"


def test_cut_document_keeps_complete_blocks():
    raw = json.dumps(_doc(), indent=2).encode()
    second = raw.index(b'"resource"', raw.index(b'"resource"') + 1)
    cut = raw[: second + 40]  # inside the second resource block
    msgs = list(framing._iter_json_document_streamed(io.BytesIO(cut), chunk_size=64))
    assert [type(m).__name__ for m in msgs] == ["Message", "FramingError"]
    assert msgs[1].code == "malformed_json"
    assert "ends inside an object or array" in msgs[1].message


def test_streamed_ingest_equals_whole_document(tmp_path, monkeypatch):
    src = tmp_path / "traces.json"
    src.write_bytes(json.dumps(_doc(), indent=2).encode())
    tables = {}
    for mode, threshold in (("whole", 1 << 40), ("streamed", 0)):
        monkeypatch.setattr(framing, "STREAM_DOCUMENT_BYTES", threshold)
        out = tmp_path / mode
        report = ingest_paths([src], out, workers=1)
        assert report["totals"]["records_written"] == 12
        tables[mode] = pa.concat_tables(pq.read_table(f) for f in sorted((out / "spans").glob("*.parquet")))
    assert tables["whole"].equals(tables["streamed"])
    assert tables["streamed"].column("name").to_pylist()[0] == 'op "0" ]}'


def test_huge_json_lines_are_streamed_too(tmp_path, monkeypatch):
    """A JSON-lines file whose lines are longer than the threshold (one huge request a line) is
    read block by block within each line, with the same result."""
    lines = [json.dumps(_doc()).encode(), json.dumps(_doc()).encode()]
    src = tmp_path / "traces.jsonl"
    src.write_bytes(b"\n".join(lines) + b"\n")
    tables = {}
    for mode, threshold in (("whole", 1 << 40), ("streamed", 100)):
        monkeypatch.setattr(framing, "STREAM_DOCUMENT_BYTES", threshold)
        out = tmp_path / mode
        report = ingest_paths([src], out, workers=1)
        (f,) = report["files"]
        assert (f["framing"], f["records_written"], f["records_quarantined"]) == ("jsonl", 24, 0)
        tables[mode] = pa.concat_tables(pq.read_table(p) for p in sorted((out / "spans").glob("*.parquet")))
    assert tables["whole"].equals(tables["streamed"])
    # (the threshold is still 100 here) positions say the line and the block's byte in it
    positions = [m.position for m in framing.iter_messages(src, lazy_json=True)]
    first = lines[0].index(b"{", lines[0].index(b"["))
    assert len(positions) == 8
    assert positions[0] == f"line 1, document, resourceSpans[0] at byte {first}"
    assert positions[4] == f"line 2, document, resourceSpans[0] at byte {first}"
