"""Benchmark of the ``features`` stage: synthetic ingest tables of 1 M / 3 M / 10 M spans (plus metrics
and logs at matching rates) -> every feature table. Wall time, peak RSS (the building process, sampled
by psutil from outside) and spans/s; results in benchmarks/results/features.json.

    .venv/bin/python benchmarks/features/run.py                  # 1M, 3M, 10M
    .venv/bin/python benchmarks/features/run.py --spans 1000000  # one size

Inputs are generated straight into Parquet with the ingest schema (seeded, cached in
benchmarks/work/features/<spans>/). Traces: 10 spans each (a root SERVER span at the frontend, one
INTERNAL span, four CLIENT -> SERVER calls down a 20-service tree; ~1 % failed), 555 spans/s (so 10 M
spans cover 5 h); logs: one per 4 spans from 24 templates with numbers and ids; metrics every 15 s per
service: 8 gauges, 2 cumulative counters and one cumulative histogram; an incident every 10 minutes.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "benchmarks"))
sys.path.insert(0, str(REPO / "src"))

from machine import machine_info  # noqa: E402

from otlp_aiops.otlp import schema as S  # noqa: E402

WORK = REPO / "benchmarks" / "work" / "features"
GEN_VERSION = 1
N_SVC = 20
SPANS_PER_S = 555.0
T0 = 1_767_225_600 * 10**9
SEC = 10**9
CHUNK_TRACES = 100_000


def _fill(schema: pa.Schema, n: int, cols: dict[str, pa.Array]) -> pa.Table:
    arrays = []
    for f in schema:
        if f.name in cols:
            arrays.append(pa.array(cols[f.name], f.type) if not isinstance(cols[f.name], pa.Array)
                          else cols[f.name].cast(f.type))  # fmt: skip
        elif f.nullable:
            arrays.append(pa.nulls(n, f.type))
        elif pa.types.is_string(f.type):
            arrays.append(pa.array([""] * n, f.type) if n < 10 else pa.repeat(pa.scalar("", f.type), n))
        elif pa.types.is_list(f.type):
            arrays.append(pa.array([[]] * n, f.type))
        else:
            arrays.append(pa.array(np.zeros(n, dtype=f.type.to_pandas_dtype()), f.type))
    return pa.Table.from_arrays(arrays, schema=schema)


def _services() -> list[str]:
    return ["frontend"] + [f"svc-{i:02d}" for i in range(1, N_SVC)]


def generate(spans: int, seed: int = 0) -> Path:
    out = WORK / f"v{GEN_VERSION}-{spans}-{seed}"
    if (out / "done").exists():
        return out
    import shutil

    shutil.rmtree(out, ignore_errors=True)
    interim, raw = out / "interim", out / "raw"
    rng = np.random.default_rng(seed)
    svcs = np.array(_services(), dtype=object)
    duration_s = spans / SPANS_PER_S
    n_traces = spans // 10
    # call tree: service k > 0 is called by (k - 1) // 3 (frontend fronts 1..3)
    parent_of = np.array([0] + [(k - 1) // 3 for k in range(1, N_SVC)])
    for t in ("spans", "logs"):
        (interim / t).mkdir(parents=True)
    sw = pq.ParquetWriter(interim / "spans" / "part-00000.parquet", S.with_version(S.SPANS), **S.parquet_options("spans"))
    lw = pq.ParquetWriter(interim / "logs" / "part-00000.parquet", S.with_version(S.LOGS), **S.parquet_options("logs"))
    templates = [f"{verb} request {{}} for user {{}} in {{}} ms from {svc}" for verb in ("handled", "rejected", "queued")
                 for svc in ("cart", "catalog", "pay", "ship")] + [
        "cache miss for key {} size {} shard {}", "connection pool exhausted waiting {} ms {} {}",
        "retrying call attempt {} of {} after {} ms", "GC pause {} ms heap {} MB gen {}",
        "order {} placed with {} items total {}", "user {} logged in from {} session {}",
        "timeout calling {} after {} ms deadline {}", "disk write took {} ms on {} block {}"]  # fmt: skip
    tpl_parts = [t.split("{}") for t in templates]
    done = 0
    while done < n_traces:
        n = min(CHUNK_TRACES, n_traces - done)
        tid = np.zeros((n, 16), np.uint8)
        tid[:, 8:] = np.arange(done + 1, done + n + 1, dtype=">u8").view(np.uint8).reshape(n, 8)
        start = T0 + (rng.random(n) * duration_s * SEC).astype(np.int64)
        # callee chain: 4 calls; call j's callee and caller
        callee = rng.integers(1, N_SVC, size=(n, 4))
        caller = parent_of[callee]
        svc_idx = np.concatenate([np.zeros((n, 2), np.int64), np.repeat(caller, 1, axis=1), callee], axis=1)
        # span slots: 0 root server, 1 internal, 2..5 client (caller), 6..9 server (callee)
        kind = np.array([2, 1, 3, 3, 3, 3, 2, 2, 2, 2], np.int8)
        sid = (np.arange(10 * done, 10 * (done + n), dtype=np.int64).reshape(n, 10) + 1).astype(">u8")
        parent = np.zeros((n, 10), ">u8")
        parent[:, 1:6] = sid[:, [0]]
        parent[:, 6:] = sid[:, 2:6]
        dur = (rng.lognormal(np.log(5e6), 0.6, size=(n, 10))).astype(np.int64)
        dur[:, 0] = dur[:, 6:].sum(axis=1) + 1_000_000
        dur[:, 2:6] = dur[:, 6:] + 200_000
        offs = np.zeros((n, 10), np.int64)
        offs[:, 2:6] = np.arange(4) * 1_000_000 + 100_000
        offs[:, 6:] = offs[:, 2:6] + 50_000
        st = start[:, None] + offs
        status = (rng.random((n, 10)) < 0.01).astype(np.int8) * 2
        m = n * 10
        cols = {
            "trace_id": pa.FixedSizeBinaryArray.from_buffers(pa.binary(16), m, [None, pa.py_buffer(np.repeat(tid, 10, axis=0).tobytes())]),
            "span_id": pa.FixedSizeBinaryArray.from_buffers(pa.binary(8), m, [None, pa.py_buffer(sid.tobytes())]),
            "parent_span_id": pa.FixedSizeBinaryArray.from_buffers(
                pa.binary(8), m, [pa.array((parent != 0).ravel()).buffers()[1], pa.py_buffer(parent.tobytes())]),
            "name": pa.DictionaryArray.from_arrays(pa.array(np.tile(np.arange(10), n).astype(np.int32)),
                                                   pa.array([f"op{k}" for k in range(10)])).cast(pa.string()),
            "kind": np.tile(kind, n), "start_time": pa.array(st.ravel()).cast(S.TIME),
            "end_time": pa.array((st + dur).ravel()).cast(S.TIME), "duration_ns": dur.ravel(),
            "status_code": status.ravel(),
            "service_name": pa.DictionaryArray.from_arrays(pa.array(svc_idx.ravel().astype(np.int32)),
                                                           pa.array(list(svcs))).cast(pa.string()),
            "resource_id": svc_idx.ravel(), "_source_file": pa.repeat(pa.scalar("synthetic"), m),
            "_record_index": np.arange(m, dtype=np.int64),
        }  # fmt: skip
        sw.write_table(_fill(S.SPANS, m, cols))
        # logs: one per 4 spans, at random spans of this chunk
        k = m // 4
        pick = rng.integers(0, m, k)
        tno = rng.integers(0, len(templates), k)
        nums = [pc.cast(pa.array(rng.integers(0, 100000, k)), pa.string()) for _ in range(3)]
        p = [pa.array([tpl_parts[t][j] for t in range(len(templates))]) for j in range(4)]
        pieces = [pc.take(p[0], pa.array(tno)), nums[0], pc.take(p[1], pa.array(tno)), nums[1],
                  pc.take(p[2], pa.array(tno)), nums[2], pc.take(p[3], pa.array(tno))]  # fmt: skip
        body = pc.binary_join_element_wise(*pieces, "")
        sev = np.where(tno >= 20, 17, 9).astype(np.int8)
        lcols = {"time": pa.array(st.ravel()[pick]).cast(S.TIME), "severity_number": sev, "body": body,
                 "service_name": pa.array(svcs[svc_idx.ravel()[pick]].tolist(), pa.string()),
                 "resource_id": svc_idx.ravel()[pick], "_source_file": pa.repeat(pa.scalar("synthetic"), k),
                 "_record_index": np.arange(k, dtype=np.int64)}  # fmt: skip
        lw.write_table(_fill(S.LOGS, k, lcols))
        done += n
    sw.close()
    lw.close()
    # metrics every 15 s per service
    ticks = T0 + np.arange(0, int(duration_s) + 15, 15, dtype=np.int64) * SEC
    nt = len(ticks)
    names = ["container.cpu.usage", "container.memory.usage", "process.thread.count", "jvm.memory.used",
             "go.goroutine.count", "system.disk.io.util", "queue.depth", "db.pool.connections"]  # fmt: skip
    rows_t, rows_s, rows_n, vals, sid = [], [], [], [], []
    for s in range(N_SVC):
        for j in range(len(names) + 2):
            counter = j >= len(names)
            rows_t.append(ticks)
            rows_s.append(np.full(nt, s))
            rows_n.append(np.full(nt, j))
            v = np.cumsum(rng.poisson(300 if j == len(names) else 3, nt)).astype(float) if counter else rng.normal(50, 5, nt)
            vals.append(v)
            sid.append(np.full(nt, s * 100 + j))
    t_all = np.concatenate(rows_t)
    n_all = np.concatenate(rows_n)
    allnames = np.array([*names, "app.request.count", "app.error.count"], dtype=object)
    counter = n_all >= len(names)
    (interim / "metrics_number").mkdir()
    nm = len(t_all)
    pq.write_table(_fill(S.METRICS_NUMBER, nm, {
        "metric_name": pa.array(allnames[n_all].tolist()), "metric_type": pa.array(np.where(counter, "sum", "gauge").tolist()),
        "aggregation_temporality": pa.array(np.where(counter, 2, 0).astype(np.int8), mask=~counter),
        "is_monotonic": pa.array(counter, mask=~counter), "series_id": np.concatenate(sid),
        "start_time": pa.array(np.full(nm, T0 - 3600 * SEC)).cast(S.TIME), "time": pa.array(t_all).cast(S.TIME),
        "value_double": np.concatenate(vals), "service_name": pa.array(svcs[np.concatenate(rows_s)].tolist()),
        "_source_file": pa.repeat(pa.scalar("synthetic"), nm), "_record_index": np.arange(nm, dtype=np.int64),
    }), interim / "metrics_number" / "part-00000.parquet")  # fmt: skip
    bounds = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0]
    hb = []
    for _ in range(N_SVC):
        inc = rng.multinomial(300, [0.02, 0.08, 0.2, 0.3, 0.2, 0.1, 0.05, 0.03, 0.01, 0.005, 0.003, 0.002], size=nt)
        hb.append(np.cumsum(inc, axis=0))
    hb = np.concatenate(hb)
    nh = len(hb)
    (interim / "metrics_histogram").mkdir()
    pq.write_table(_fill(S.METRICS_HISTOGRAM, nh, {
        "metric_name": pa.repeat(pa.scalar("http.server.request.duration"), nh),
        "metric_type": pa.repeat(pa.scalar("histogram"), nh), "aggregation_temporality": np.full(nh, 2, np.int8),
        "series_id": np.repeat(np.arange(N_SVC), nt) + 10_000, "start_time": pa.array(np.full(nh, T0 - 3600 * SEC)).cast(S.TIME),
        "time": pa.array(np.tile(ticks, N_SVC)).cast(S.TIME), "count": hb.sum(axis=1).astype(np.uint64),
        "sum": hb.sum(axis=1) * 0.1, "bucket_counts": pa.array(hb.astype(np.uint64).tolist(), pa.list_(pa.uint64())),
        "explicit_bounds": pa.array([bounds] * nh, pa.list_(pa.float64())),
        "service_name": pa.array(np.repeat(svcs, nt).tolist()), "_source_file": pa.repeat(pa.scalar("synthetic"), nh),
        "_record_index": np.arange(nh, dtype=np.int64),
    }), interim / "metrics_histogram" / "part-00000.parquet")  # fmt: skip
    raw.mkdir(parents=True)
    starts = T0 + np.arange(600, int(duration_s) - 120, 600, dtype=np.int64) * SEC
    pq.write_table(pa.table({
        "incident_id": [f"inc-{i:04d}" for i in range(len(starts))],
        "start_time": pa.array(starts).cast(S.TIME), "end_time": pa.array(starts + 120 * SEC).cast(S.TIME),
        "root_cause_service": pa.array(svcs[rng.integers(1, N_SVC, len(starts))].tolist(), pa.string()),
        "root_cause_indicator": pa.nulls(len(starts), pa.string()), "fault_type": pa.repeat(pa.scalar("cpu_hog"), len(starts)),
    }), raw / "incidents.parquet")  # fmt: skip
    (raw / "dataset.json").write_text(json.dumps({"name": "bench", "synthetic": True}))
    (out / "done").write_text(json.dumps({"spans": spans, "logs": (n_traces * 10) // 4 * 1, "seed": seed}))
    return out


CHILD = """
import json, sys
from otlp_aiops.features.build import build_features
from otlp_aiops.features.config import FeaturesConfig
s = build_features(sys.argv[1] + '/interim', sys.argv[1] + '/raw', sys.argv[2], FeaturesConfig(**json.loads(sys.argv[3])))
print(json.dumps(s))
"""


def measure(data: Path, out: Path, cfg: dict) -> dict:
    import psutil

    load0 = os.getloadavg()
    t = time.perf_counter()
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    proc = subprocess.Popen([sys.executable, "-c", CHILD, str(data), str(out), json.dumps(cfg)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)  # fmt: skip
    ps = psutil.Process(proc.pid)
    peak = 0
    cpu = 0.0
    while proc.poll() is None:
        try:
            peak = max(peak, ps.memory_info().rss)
            c = ps.cpu_times()
            cpu = c.user + c.system
        except psutil.NoSuchProcess:
            break
        time.sleep(0.05)
    stdout, stderr = proc.communicate()
    wall = time.perf_counter() - t
    if proc.returncode != 0:
        raise RuntimeError(f"features build failed:\n{stderr[-3000:]}")
    summary = json.loads(stdout.strip().splitlines()[-1])
    return {"wall_s": round(wall, 2), "peak_rss_mib": round(peak / 2**20, 1), "child_cpu_s": round(cpu, 1),
            "loadavg_before": [round(x, 2) for x in load0], "loadavg_after": [round(x, 2) for x in os.getloadavg()],
            "stage_seconds": summary["seconds"], "timings": summary["timings"], "rows_in": summary["rows_in"],
            "windows": summary["windows"], "services": summary["services"], "features": summary["features"],
            "cases": summary["cases"], "log_templates": summary["log_templates"]}  # fmt: skip


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--spans", type=int, action="append", help="repeatable; default 1M, 3M, 10M")
    ap.add_argument("--memory-limit", default="2GB")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--also-limit", action="append", default=[],
                    help="re-run the largest size with this DuckDB memory limit (shows memory stays bounded)")
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "features.json")
    args = ap.parse_args()
    sizes = args.spans or [1_000_000, 3_000_000, 10_000_000]
    cfg = {"window": "15s", "before": "5m", "after": "5m", "memory_limit": args.memory_limit, "threads": args.threads}
    import duckdb
    import polars

    runs = []
    for n in sizes:
        t = time.perf_counter()
        data = generate(n)
        gen_s = time.perf_counter() - t
        out = WORK / f"out-{n}"
        r = measure(data, out, cfg)
        import shutil

        shutil.rmtree(out, ignore_errors=True)
        r.update({"spans": n, "spans_per_s": round(n / r["wall_s"]), "generate_s": round(gen_s, 1),
                  "memory_limit": cfg["memory_limit"]})
        runs.append(r)
        print(f"{n:>11,} spans  {r['rows_in']['logs']:>10,} logs  {r['rows_in']['metrics_number']:>8,} metric points"
              f"  wall {r['wall_s']:6.1f} s  peak RSS {r['peak_rss_mib']:7.1f} MiB  {r['spans_per_s']:>9,} spans/s"
              f"  (load {r['loadavg_before'][0]:.1f})", flush=True)  # fmt: skip
    for limit in args.also_limit:
        n = max(sizes)
        r = measure(generate(n), WORK / f"out-{n}", {**cfg, "memory_limit": limit})
        import shutil

        shutil.rmtree(WORK / f"out-{n}", ignore_errors=True)
        r.update({"spans": n, "spans_per_s": round(n / r["wall_s"]), "memory_limit": limit})
        runs.append(r)
        print(f"{n:>11,} spans with memory_limit {limit}: wall {r['wall_s']:6.1f} s  peak RSS "
              f"{r['peak_rss_mib']:7.1f} MiB  {r['spans_per_s']:>9,} spans/s  (load {r['loadavg_before'][0]:.1f})")
    result = {"benchmark": "features", "config": cfg, "machine": machine_info(duckdb=duckdb, polars=polars, numpy=np),
              "runs": runs, "target": "10M spans: < 60 s wall, < 4 GiB peak RSS"}  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
