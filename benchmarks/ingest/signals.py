"""Records per CPU-second of ``ingest_paths`` for each signal: spans, log records, metric points.

``run.py`` measures spans from the generated shop traffic; this measures all three signals on the
simulator's OTLP output (``otlp-aiops simulate``, length-prefixed protobuf), which carries logs and
metrics as well (number points, histograms, exemplars), and on the same requests as OTLP/JSON lines
(converted once with ``to_otlp_json`` and cached under ``benchmarks/work/ingest/signals/``). Each measurement runs in a fresh
interpreter (``python signals.py --one ...``): imports are done and one warm-up conversion of the
first file is thrown away before the timed conversion; the figure is records written per CPU-second
of the process (robust to other jobs on the shared machine) and per wall second. The repeats of the
C decoder and of the pure-Python decoder (``OTLP_AIOPS_PURE_PYTHON=1``) are interleaved, and the
median of each is reported with their ratio (for metric points the C decoder is ``_wire_metrics``).
For metrics, a third interleaved column, ``baseline``, runs the pure-Python metric path as it was
before issue 17's per-batch ``series_id`` memo (patched back in, the rest of the tree as it is), so
that the gain is a ratio within one run. Two reference columns are interleaved too (``--no-reference``
skips them): ``naive``, the naive converter of the signal (``naive.py`` for spans,
``naive_signals.py`` for log records and metric points), and ``parse``, the bare parse of every
message (``ParseFromString`` / ``orjson.loads``; its rate counts the records the ingest wrote).
``run.py`` runs this script as its last step and keeps its entries under ``signals``. Signals left out with ``--signals`` keep their entries from
the existing results file (each entry carries its own ``date``).

    .venv/bin/python benchmarks/ingest/signals.py                       # data/raw/sim-boutique/otlp
    .venv/bin/python benchmarks/ingest/signals.py --input DIR --repeats 5

Writes ``benchmarks/results/ingest_signals.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "benchmarks" / "results" / "ingest_signals.json"
DEFAULT_INPUT = ROOT / "data" / "raw" / "sim-boutique" / "otlp"
SIGNALS = {
    "traces": ("spans",),
    "logs": ("logs",),
    "metrics": ("metrics_number", "metrics_histogram", "metrics_exp_histogram", "metrics_summary"),
}
WORK = ROOT / "benchmarks" / "work" / "ingest" / "signals"  # JSON-lines copies of the inputs (git-ignored)
COLLECTOR_SPANS_PER_CORE = 137_000  # the Go Collector's OTLP -> ClickHouse path (issue 17)


def _jsonl_copy(path: Path, signal: str) -> Path:
    """The same requests as OTLP/JSON lines (``to_otlp_dict``: hex ids, int64 as strings), cached."""
    import struct

    from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
    from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
    from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

    from otlp_aiops.otlp.otlpjson import to_otlp_json

    out = WORK / f"{path.stem}.jsonl"
    if out.exists() and out.stat().st_mtime >= path.stat().st_mtime:
        return out
    req = {
        "traces": trace_service_pb2.ExportTraceServiceRequest,
        "logs": logs_service_pb2.ExportLogsServiceRequest,
        "metrics": metrics_service_pb2.ExportMetricsServiceRequest,
    }[signal]
    data = path.read_bytes()
    lines = []
    i = 0
    while i < len(data):  # length-prefixed: a 4-byte big-endian length before each message
        (m,) = struct.unpack_from(">I", data, i)
        lines.append(to_otlp_json(req.FromString(data[i + 4 : i + 4 + m])))
        i += 4 + m
    WORK.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    tmp.write_bytes(b"\n".join(lines) + b"\n")
    tmp.replace(out)
    return out


def _unmemoised() -> None:
    """The metric path as it was before issue 17: every point's attributes rendered (with a fresh
    key table) and hashed, no memo, one metric-table entry per Metric message. For the in-run
    ``baseline`` column only."""
    from bisect import bisect_left

    from otlp_aiops.otlp import batches as B

    def rendered(self, start=0):
        table = list(self.kidx)
        t0 = bisect_left(self.tag_pos, start)
        tags = dict(zip(self.tag_pos[t0:], self.tags[t0:], strict=True))
        return [
            (table[k], tags.get(start + i, "string"), v)
            for i, (k, v) in enumerate(zip(self.keys[start:], self.vals[start:], strict=True))
        ]

    def point_series_id(self, table, a0, resource_id, scope_id, info):
        return B.series_id(resource_id, scope_id, info, self.attrs[table].rendered(a0))

    def add_info(self, info):
        self.infos.append(info)
        return len(self.infos) - 1

    B.AttrCols.rendered = rendered
    B.MetricBatch.point_series_id = point_series_id
    B.MetricBatch.add_info = add_info


def _reference(paths: list[str], signal: str, mode: str) -> dict:
    """In a fresh interpreter: the naive converter (``naive.py`` for spans, ``naive_signals.py`` for
    log records and metric points) or the bare parse of every message, timed after the imports."""
    sys.path.insert(0, str(Path(__file__).parent))
    import naive
    import naive_signals

    fmt = "jsonl" if paths[0].endswith(".jsonl") else "proto"
    tmp = Path(tempfile.mkdtemp(prefix="ingest-signals-"))
    try:
        c0, t0 = time.process_time(), time.perf_counter()
        if mode == "naive":
            conv = naive.CONVERTERS[fmt] if signal == "traces" else naive_signals.CONVERTERS[(signal, fmt)]
            n = sum(conv(Path(p), tmp / f"{i}.parquet") for i, p in enumerate(paths))
        else:
            n = None  # the records are the ingest's count (the messages are what is parsed)
            for p in paths:
                naive_signals.bare_parse(Path(p), signal, fmt)
        cpu, wall = time.process_time() - c0, time.perf_counter() - t0
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return {"records": n, "rows": {}, "cpu_s": cpu, "wall_s": wall, "decoder": mode,
            "bytes": sum(Path(p).stat().st_size for p in paths)}  # fmt: skip


def _one(paths: list[str], signal: str, baseline: bool = False) -> dict:
    """In a fresh interpreter: a warm-up conversion, then the timed one."""
    import gc

    from otlp_aiops.otlp import accel
    from otlp_aiops.otlp.ingest import ingest_paths

    if baseline:
        _unmemoised()

    tmp = Path(tempfile.mkdtemp(prefix="ingest-signals-"))
    try:
        ingest_paths(paths[:1], tmp / "warm", workers=1)
        gc.collect()
        c0, t0 = time.process_time(), time.perf_counter()
        r = ingest_paths(paths, tmp / "out", workers=1)
        cpu, wall = time.process_time() - c0, time.perf_counter() - t0
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    rows = r["totals"]["rows_written"]
    n = sum(rows.get(t, 0) for t in SIGNALS[signal])
    decoder = accel.implementation()
    if signal == "metrics":  # _wire_metrics reads protobuf and (in the common form) JSON text
        decoder = accel.metrics_implementation()
    return {"records": n, "rows": rows, "cpu_s": cpu, "wall_s": wall, "decoder": decoder,
            "bytes": r["totals"]["bytes"]}  # fmt: skip


def _measure(paths: list[str], signal: str, mode: str) -> dict:
    env = dict(os.environ)
    env.pop("OTLP_AIOPS_PURE_PYTHON", None)
    if mode in ("python", "baseline"):
        env["OTLP_AIOPS_PURE_PYTHON"] = "1"
    spec = {"paths": paths, "signal": signal, "baseline": mode == "baseline", "mode": mode}
    out = subprocess.run(
        [sys.executable, __file__, "--one", json.dumps(spec)],
        env=env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--input", type=Path, default=DEFAULT_INPUT, help="a folder of <signal>-NNNNN.binpb files"
    )
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--files", type=int, default=1, help="files per signal (the first K of each)")
    ap.add_argument("--signals", default="traces,logs,metrics")
    ap.add_argument(
        "--formats", default="proto,jsonl", help="proto (the input) and/or jsonl (converted once)"
    )
    ap.add_argument("--no-pure-python", action="store_true")
    ap.add_argument("--no-baseline", action="store_true", help="skip the metric path's pre-memo baseline")
    ap.add_argument(
        "--no-reference", action="store_true", help="skip the naive converter and the bare parse"
    )
    ap.add_argument("--out", type=Path, default=RESULTS)
    ap.add_argument("--one", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.one:
        spec = json.loads(a.one)
        if spec.get("mode") in ("naive", "parse"):
            print(json.dumps(_reference(spec["paths"], spec["signal"], spec["mode"])))
        else:
            print(json.dumps(_one(spec["paths"], spec["signal"], spec.get("baseline", False))))
        return
    if not a.input.is_dir():
        sys.exit(f"{a.input}: no such folder (build it with `otlp-aiops simulate` or pass --input)")
    result: dict = {"benchmark": "ingest_signals", "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                    "input": str(a.input), "repeats": a.repeats, "load_average_start": os.getloadavg(),
                    "signals": {}}  # fmt: skip
    modes = ["c"] if a.no_pure_python else ["c", "python"]
    for signal, fmt in ((s, f) for s in a.signals.split(",") for f in a.formats.split(",")):
        paths = sorted(str(p) for p in a.input.glob(f"{signal}-*.binpb"))[: a.files]
        if not paths:
            continue
        if fmt == "jsonl":
            paths = [str(_jsonl_copy(Path(p), signal)) for p in paths]
        sig_modes = modes + (["baseline"] if signal == "metrics" and not a.no_baseline else [])
        sig_modes += [] if a.no_reference else ["naive", "parse"]
        runs: dict[str, list[dict]] = {m: [] for m in sig_modes}
        for _ in range(a.repeats):
            for m in sig_modes:  # interleaved, so that a burst of load hits all alike
                runs[m].append(_measure(paths, signal, m))
        entry: dict = {
            "date": result["date"],
            "signal": signal,
            "format": fmt,
            "files": paths,
            "bytes": runs["c"][0]["bytes"],
            "rows": runs["c"][0]["rows"],
        }
        for m in sig_modes:
            rs = runs[m]
            for r in rs:  # the bare parse counts messages; its records are the ingest's
                r["records"] = runs["c"][0]["records"] if r["records"] is None else r["records"]
            entry[m] = {
                "decoder": rs[0]["decoder"],
                "records": rs[0]["records"],
                "cpu_s": [r["cpu_s"] for r in rs],
                "wall_s": [r["wall_s"] for r in rs],
                "records_per_cpu_s": statistics.median(r["records"] / r["cpu_s"] for r in rs),
                "records_per_wall_s": statistics.median(r["records"] / r["wall_s"] for r in rs),
            }
        if "naive" in entry:
            entry["c_over_naive"] = entry["c"]["records_per_cpu_s"] / entry["naive"]["records_per_cpu_s"]
            entry["c_over_parse"] = entry["c"]["records_per_cpu_s"] / entry["parse"]["records_per_cpu_s"]
        if "python" in entry:
            entry["c_over_python"] = entry["c"]["records_per_cpu_s"] / entry["python"]["records_per_cpu_s"]
        if "baseline" in entry:
            entry["over_baseline"] = entry["c"]["records_per_cpu_s"] / entry["baseline"]["records_per_cpu_s"]
        result["signals"][f"{signal}/{fmt}"] = entry
        line = f"{signal:8s} {fmt:6s} {entry['c']['records']:>8,} records  c ({entry['c']['decoder']}): " \
               f"{entry['c']['records_per_cpu_s']:>9,.0f}/CPU-s"  # fmt: skip
        if "python" in entry:
            line += f"  pure Python: {entry['python']['records_per_cpu_s']:>9,.0f}/CPU-s" \
                    f"  ratio {entry['c_over_python']:.2f}x"  # fmt: skip
        if "baseline" in entry:
            line += f"  before the memos: {entry['baseline']['records_per_cpu_s']:>9,.0f}/CPU-s" \
                    f" (now {entry['over_baseline']:.2f}x)"  # fmt: skip
        if "naive" in entry:
            line += f"  naive: {entry['naive']['records_per_cpu_s']:>9,.0f}/CPU-s ({entry['c_over_naive']:.2f}x)" \
                    f"  bare parse: {entry['parse']['records_per_cpu_s']:>9,.0f}/CPU-s" \
                    f" ({entry['c_over_parse']:.2f}x)"  # fmt: skip
        if signal == "traces":
            line += (
                f"  ({entry['c']['records_per_cpu_s'] / COLLECTOR_SPANS_PER_CORE:.2f}x the Collector's 137 k)"
            )
        print(line, flush=True)
    result["load_average_end"] = os.getloadavg()
    if a.out.exists():  # keep the entries of the signals and formats not measured this time
        try:
            old = json.loads(a.out.read_text())["signals"]
        except (ValueError, KeyError):
            old = {}
        for k, v in old.items():
            if k not in result["signals"]:
                v.setdefault("date", json.loads(a.out.read_text()).get("date"))
                result["signals"][k] = v
    a.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = a.out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(result, indent=1) + "\n")
    tmp.replace(a.out)
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
