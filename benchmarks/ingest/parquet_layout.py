"""Parquet layout choices for the spans table, measured (issue 17, item 3): the CPU time of writing one
span batch and the bytes it takes, for the writer settings of ``schema.parquet_options("spans")`` and
for alternatives: no dictionary on the attribute values, no dictionary at all, zstd level 3, lz4,
no compression, and rows sorted before the write (by service and start time; by service, span name
and start time; by trace id), with the sort's own time counted. Also the write time of each column,
largest first, so it shows which column the time goes to.

    .venv/bin/python benchmarks/ingest/generate.py --spans 50000 --files 1
    .venv/bin/python benchmarks/ingest/parquet_layout.py benchmarks/work/ingest/<key>

One interpreter, CPU time (``time.process_time``), the minimum of ``--repeats``; one batch of
``--rows`` spans decoded from the input's ``proto/one/traces.binpb``. Writes
``results/ingest_parquet_layout.json``.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import time
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from otlp_aiops.otlp import schema

sys.path.insert(0, str(Path(__file__).parent))
import steps  # this folder's per-step timing helpers

RESULTS = Path(__file__).resolve().parents[1] / "results" / "ingest_parquet_layout.json"
SORTS = {
    "sorted: service, start_time": ["service_name", "start_time"],
    "sorted: service, name, start_time": ["service_name", "name", "start_time"],
    "sorted: trace_id": ["trace_id"],
}


def _write(table: pa.Table, options: dict[str, Any], repeats: int) -> tuple[float, int]:
    best, size = float("inf"), 0
    for _ in range(repeats):
        buf = io.BytesIO()
        t0 = time.process_time()
        with pq.ParquetWriter(buf, table.schema, **options) as w:
            w.write_table(table)
        best = min(best, time.process_time() - t0)
        size = len(buf.getvalue())
    return best, size


def _only(options: dict[str, Any], column: str) -> dict[str, Any]:
    """The writer options restricted to one top-level column (its nested paths included)."""
    out = dict(options)
    for k in ("use_dictionary", "write_statistics"):
        if isinstance(out.get(k), list):
            out[k] = [c for c in out[k] if c.split(".")[0] == column]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("input", type=Path, help="a generate.py output folder (holds proto/one)")
    ap.add_argument("--rows", type=int, default=32768, help="spans in the batch (ingest's batch_rows)")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--out", type=Path, default=RESULTS)
    a = ap.parse_args()
    batch, _ = steps._fill("proto", steps._proto_messages(a.input / "proto/one/traces.binpb"), a.rows)
    table = batch.to_tables()["spans"]
    n = len(table)
    ours = schema.parquet_options("spans")
    dict_cols = ours["use_dictionary"]
    variants: dict[str, dict[str, Any]] = {
        "ours (schema.parquet_options)": ours,
        "no dictionary on attribute values": dict(
            ours, use_dictionary=[c for c in dict_cols if c != "attributes.key_value.value"]
        ),
        "no dictionary": dict(ours, use_dictionary=False),
        "zstd level 3 (Arrow's default is 1)": dict(ours, compression_level=3),
        "lz4": dict(ours, compression="lz4"),
        "no compression": dict(ours, compression="none"),
    }
    rows: list[dict[str, Any]] = []
    for name, options in variants.items():
        s, b = _write(table, options, a.repeats)
        rows.append({"layout": name, "sort_us": 0.0, "write_us": s / n * 1e6, "bytes": b})
    for name, keys in SORTS.items():
        sort_s = float("inf")
        for _ in range(a.repeats):
            t0 = time.process_time()
            sorted_table = table.take(pc.sort_indices(table, sort_keys=[(k, "ascending") for k in keys]))
            sort_s = min(sort_s, time.process_time() - t0)
        s, b = _write(sorted_table, ours, a.repeats)
        rows.append({"layout": name, "sort_us": sort_s / n * 1e6, "write_us": s / n * 1e6, "bytes": b})
    base_us, base_b = rows[0]["write_us"], rows[0]["bytes"]
    print(f"one batch of {n} spans; CPU µs per span (minimum of {a.repeats})")
    print(f"{'layout':<36} {'sort':>6} {'write':>6} {'total':>6} {'vs ours':>8} {'bytes':>10} {'vs ours':>8}")
    for r in rows:
        r["total_us"] = r["sort_us"] + r["write_us"]
        r["time_vs_ours"] = r["total_us"] / base_us - 1
        r["bytes_vs_ours"] = r["bytes"] / base_b - 1
        print(
            f"{r['layout']:<36} {r['sort_us']:6.3f} {r['write_us']:6.3f} {r['total_us']:6.3f} "
            f"{r['time_vs_ours']:+8.1%} {r['bytes']:10,d} {r['bytes_vs_ours']:+8.1%}"
        )
    columns = []
    for c in table.column_names:
        s, b = _write(table.select([c]), _only(ours, c), a.repeats)
        columns.append({"column": c, "write_us": s / n * 1e6, "bytes": b})
    columns.sort(key=lambda r: -r["write_us"])
    print("\nwrite time by column (alone, ours), the largest:")
    for r in columns[:8]:
        print(f"  {r['column']:<28} {r['write_us']:6.3f} µs/span {r['bytes']:10,d} bytes")
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(
        json.dumps({"spans": n, "repeats": a.repeats, "layouts": rows, "columns": columns}, indent=1) + "\n"
    )
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
