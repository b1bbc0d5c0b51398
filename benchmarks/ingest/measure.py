"""One measured task of the ingest benchmark, run by ``run.py`` in a fresh interpreter.

``python measure.py '<json spec>'`` runs the task and prints one JSON line: wall seconds of the
work alone (imports and input loading excluded), spans, CPU seconds of this process and its
children, and ``ru_maxrss`` of this process and of its largest child. The parent polls the
process tree's RSS from outside as well (``run.py``), which also sees the sum over workers.

Tasks: ``parse`` (bare protobuf ``ParseFromString`` / ``json.loads`` of every message, input read
into memory first), ``naive`` (the reference converter of ``naive.py``), ``ingest``
(``otlp_aiops.otlp.ingest.ingest_paths``).
"""

from __future__ import annotations

import gc
import json
import os
import resource
import struct
import sys
import time
from pathlib import Path
from typing import Any


def _rusage() -> dict[str, float]:
    s = resource.getrusage(resource.RUSAGE_SELF)
    c = resource.getrusage(resource.RUSAGE_CHILDREN)
    return {
        "cpu_s": s.ru_utime + s.ru_stime + c.ru_utime + c.ru_stime,
        "maxrss_self": s.ru_maxrss * 1024,  # KiB on Linux
        "maxrss_children": c.ru_maxrss * 1024,
    }


def _rss_now() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def read_messages(path: Path, fmt: str) -> list[bytes]:
    """Every message of a JSON-lines or length-prefixed file, as bytes, in memory."""
    data = path.read_bytes()
    if fmt == "jsonl":
        return [ln for ln in data.split(b"\n") if ln.strip()]
    out = []
    i = 0
    n = len(data)
    while i < n:
        (m,) = struct.unpack_from(">I", data, i)
        out.append(data[i + 4 : i + 4 + m])
        i += 4 + m
    return out


def task_parse(spec: dict[str, Any]) -> dict[str, Any]:
    fmt = spec["format"]
    msgs = [m for p in spec["paths"] for m in read_messages(Path(p), fmt)]
    nbytes = sum(len(m) for m in msgs)
    gc.collect()
    results: dict[str, Any] = {"messages": len(msgs), "bytes": nbytes}
    if fmt == "proto":
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

        def parse_all() -> int:
            spans = 0
            for m in msgs:
                req = ExportTraceServiceRequest()
                req.ParseFromString(m)
                spans += len(req.resource_spans)  # touch the result; a span count would be a walk
            return spans

        parsers = {"ParseFromString": parse_all}
    else:
        import orjson

        def json_all() -> int:
            loads = json.loads
            for m in msgs:
                loads(m)
            return len(msgs)

        def orjson_all() -> int:
            loads = orjson.loads
            for m in msgs:
                loads(m)
            return len(msgs)

        parsers = {"json.loads": json_all, "orjson.loads": orjson_all}
    for name, fn in parsers.items():
        times = []
        for _ in range(spec.get("repeats", 1)):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        results[name] = times
    return results


def task_naive(spec: dict[str, Any]) -> dict[str, Any]:
    sys.path.insert(0, str(Path(__file__).parent))
    import naive

    conv = naive.CONVERTERS[spec["format"]]
    rss0 = _rss_now()
    cpu0 = _rusage()["cpu_s"]
    t0 = time.perf_counter()
    spans = conv(Path(spec["paths"][0]), Path(spec["out"]) / "spans.parquet", spec["batch_rows"])
    dt = time.perf_counter() - t0
    return {"seconds": dt, "cpu_s": _rusage()["cpu_s"] - cpu0, "spans": spans, "rss_before": rss0}


def task_ingest(spec: dict[str, Any]) -> dict[str, Any]:
    from otlp_aiops.otlp.ingest import ingest_paths

    rss0 = _rss_now()
    cpu0 = _rusage()["cpu_s"]
    t0 = time.perf_counter()
    report = ingest_paths(spec["paths"], spec["out"], workers=spec["workers"], batch_rows=spec["batch_rows"])
    dt = time.perf_counter() - t0
    cpu = _rusage()["cpu_s"] - cpu0
    t = report["totals"]
    if t["records_quarantined"] or t["messages_quarantined"]:
        raise SystemExit(f"ingest quarantined records: {t['quarantined_by_reason']}")
    return {
        "seconds": dt,
        "cpu_s": cpu,
        "spans": t["rows_written"].get("spans", 0),
        "files": t["files"],
        "bytes": t["bytes"],
        "rows_written": t["rows_written"],
        "decoder": _decoder(),
        "rss_before": rss0,
    }


def _decoder() -> str:
    """Which span decoder the ingest used: "c" (the optional accelerator) or "python"."""
    try:
        from otlp_aiops.otlp import accel

        return accel.implementation()
    except ImportError:  # before the accelerator existed
        return "python"


TASKS = {"parse": task_parse, "naive": task_naive, "ingest": task_ingest}


def main() -> None:
    spec = json.loads(sys.argv[1])
    out = TASKS[spec["task"]](spec)
    ru = _rusage()
    out.update(maxrss_self=ru["maxrss_self"], maxrss_children=ru["maxrss_children"])
    sys.stdout.write("\n" + json.dumps(out) + "\n")


if __name__ == "__main__":
    main()
