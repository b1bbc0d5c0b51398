"""Per-step CPU time of one span batch (issue 17's direct timing): the decoder filling a SpanBatch
from the protobuf requests / JSON lines, ``SpanBatch.to_tables``, and the Parquet write of the spans
table, each the minimum over ``--repeats`` in one interpreter (imports and per-file work excluded).

    .venv/bin/python benchmarks/ingest/generate.py --spans 50000 --files 1 --work-dir /tmp/gen
    .venv/bin/python benchmarks/ingest/steps.py /tmp/gen/<key>        # holds proto/one, jsonl/one

Run it with ``PYTHONPATH=<other tree>/src`` to time another version of the code on the same input,
or with ``OTLP_AIOPS_PURE_PYTHON=1`` for the pure-Python decoder. Prints one line per format and
writes ``--out`` (JSON) when given.
"""

from __future__ import annotations

import argparse
import io
import json
import struct
import time
from pathlib import Path

import pyarrow.parquet as pq

from otlp_aiops.otlp import accel, schema
from otlp_aiops.otlp.context import FileContext
from otlp_aiops.otlp.decode_json import DECODERS, decode_text
from otlp_aiops.otlp.decode_proto import decode_message
from otlp_aiops.otlp.framing import parse_json
from otlp_aiops.otlp.ingest import _new_batches


def _proto_messages(path: Path) -> list[bytes]:
    data = path.read_bytes()
    out, i = [], 0
    while i < len(data):
        (n,) = struct.unpack(">I", data[i : i + 4])
        out.append(data[i + 4 : i + 4 + n])
        i += 4 + n
    return out


def _fill(fmt: str, messages: list[bytes], limit: int) -> tuple:
    fc, batches = FileContext("f"), _new_batches("f")
    for k, m in enumerate(messages):
        if fmt == "proto":
            decode_message(m, "traces", fc, batches["traces"], f"m{k}")
        elif accel.wire is None or decode_text(m, fc, batches, f"l{k}") is None:
            DECODERS["traces"](parse_json(m), fc, batches["traces"], f"l{k}")
        if len(batches["traces"]) >= limit:
            return batches["traces"], k + 1
    return batches["traces"], len(messages)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("input", type=Path, help="a generate.py output folder (proto/one, jsonl/one)")
    ap.add_argument("--rows", type=int, default=32768, help="spans in the batch (ingest's batch_rows)")
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--out", type=Path)
    a = ap.parse_args()
    result: dict = {"decoder": accel.implementation(), "formats": {}}
    inputs = {
        "proto": _proto_messages(a.input / "proto/one/traces.binpb"),
        "jsonl": (a.input / "jsonl/one/traces.jsonl").read_bytes().splitlines(),
    }
    for fmt, messages in inputs.items():
        _, k = _fill(fmt, messages, a.rows)
        messages = messages[:k]
        best = {"decode": float("inf"), "to_tables": float("inf"), "parquet": float("inf")}
        for _ in range(a.repeats):
            t0 = time.process_time()
            batch, _ = _fill(fmt, messages, a.rows)
            t1 = time.process_time()
            tables = batch.to_tables()
            t2 = time.process_time()
            with pq.ParquetWriter(io.BytesIO(), schema.SPANS, **schema.parquet_options("spans")) as w:
                w.write_table(tables["spans"])
            t3 = time.process_time()
            for step, s in (("decode", t1 - t0), ("to_tables", t2 - t1), ("parquet", t3 - t2)):
                best[step] = min(best[step], s)
        n = len(batch)
        total = sum(best.values())
        us = {step: s / n * 1e6 for step, s in best.items()}
        result["formats"][fmt] = {"spans": n, "messages": k, "us_per_span": us, "spans_per_cpu_s": n / total}
        print(
            f"{fmt} ({result['decoder']}): {n} spans from {k} messages: "
            + ", ".join(f"{step} {v:.2f} us" for step, v in us.items())
            + f"; total {total / n * 1e6:.2f} us/span = {n / total:,.0f} spans/CPU-s"
        )
    if a.out:
        a.out.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
