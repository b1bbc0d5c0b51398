"""The ``features`` stage on the Ray executor (time partitions as Ray tasks, docs/scale.md) on the
synthetic ingest tables of ``run.py``: wall time, CPU seconds and the peak RSS of the driver and of
each Ray worker (every process of the build sampled by psutil from outside, every 50 ms); optionally
the local build of the same data, and a byte-for-byte comparison of the two outputs. Results in
benchmarks/results/features_ray.json.

    .venv/bin/python benchmarks/features/ray_run.py --spans 3000000 --partition 3600 --compare
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "benchmarks"))
sys.path.insert(0, str(REPO / "benchmarks" / "features"))

from machine import machine_info  # noqa: E402
from run import WORK, generate  # noqa: E402

CHILD = """
import json, sys
from otlp_aiops.executor import LOCAL, ExecutorConfig
from otlp_aiops.features.build import build_features
from otlp_aiops.features.config import FeaturesConfig
a = json.loads(sys.argv[3])
ex = ExecutorConfig(kind="ray", num_cpus=a["num_cpus"]) if a["executor"] == "ray" else LOCAL
s = build_features(sys.argv[1] + '/interim', sys.argv[1] + '/raw', sys.argv[2], FeaturesConfig(**a["cfg"]),
                   dataset="bench", executor=ex, partition_s=a["partition_s"])
print(json.dumps(s))
"""


def measure(data: Path, out: Path, args: dict) -> dict:
    """Run one build in a child process; sample the RSS and CPU time of it and all its descendants
    (with a private Ray: the raylet, the GCS and the workers, whose process titles start ``ray::``)."""
    import psutil

    load0 = os.getloadavg()
    t = time.perf_counter()
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "RAY_USAGE_STATS_ENABLED": "0",
           "RAY_AUTH_MODE": "disabled"}  # fmt: skip
    proc = subprocess.Popen([sys.executable, "-c", CHILD, str(data), str(out), json.dumps(args)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)  # fmt: skip
    root = psutil.Process(proc.pid)
    peak: dict[int, int] = {}
    name: dict[int, str] = {}
    cpu: dict[int, float] = {}
    while proc.poll() is None:
        try:
            procs = [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            break
        for p in procs:
            try:
                rss = p.memory_info().rss
                c = p.cpu_times()
                title = p.cmdline()[0] if p.pid != root.pid else "driver"
            except (psutil.NoSuchProcess, psutil.AccessDenied, IndexError):
                continue
            peak[p.pid] = max(peak.get(p.pid, 0), rss)
            cpu[p.pid] = c.user + c.system
            if title.startswith("ray::") and name.get(p.pid, "").startswith("ray::partition"):
                continue  # keep the title it had while it ran a partition
            name[p.pid] = title if title.startswith("ray::") or p.pid == root.pid else Path(title).name
        time.sleep(0.05)
    stdout, stderr = proc.communicate()
    wall = time.perf_counter() - t
    if proc.returncode != 0:
        raise RuntimeError(f"features build failed:\n{stderr[-3000:]}")
    summary = json.loads(stdout.strip().splitlines()[-1])
    mib = 2**20
    workers = {pid: v for pid, v in peak.items() if name[pid].startswith("ray::")}
    ran = {pid: v for pid, v in workers.items() if name[pid].startswith("ray::partition")}
    return {
        "wall_s": round(wall, 2),
        "cpu_s_all_processes": round(sum(cpu.values()), 1),
        "driver_peak_rss_mib": round(peak.get(root.pid, 0) / mib, 1),
        "worker_peak_rss_mib": sorted(round(v / mib, 1) for v in ran.values()),
        "max_worker_peak_rss_mib": round(max(ran.values(), default=0) / mib, 1),
        "idle_workers": len(workers) - len(ran),
        "other_ray_processes_peak_rss_mib": {
            name[p]: round(v / mib, 1) for p, v in peak.items() if p != root.pid and p not in workers
        },
        "loadavg_before": [round(x, 2) for x in load0],
        "loadavg_after": [round(x, 2) for x in os.getloadavg()],
        "stage_seconds": summary["seconds"],
        "timings": summary["timings"],
        "rows_in": summary["rows_in"],
        "windows": summary["windows"],
        "features": summary["features"],
    }


def digests(d: Path) -> dict[str, str]:
    return {str(p.relative_to(d)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(d.rglob("*")) if p.is_file()}  # fmt: skip


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--spans", type=int, default=10_000_000)
    ap.add_argument("--partition", type=float, default=3600.0, help="seconds of data per Ray task")
    ap.add_argument("--num-cpus", type=int, default=2, help="CPUs of the private Ray")
    ap.add_argument(
        "--memory-limit", default="2GB", help="DuckDB memory limit of the driver and of each task"
    )
    ap.add_argument("--threads", type=int, default=2, help="DuckDB threads of the driver (a task uses 1)")
    ap.add_argument("--compare", action="store_true", help="also build locally and compare every file")
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "features_ray.json")
    args = ap.parse_args()
    cfg = {
        "window": "15s",
        "before": "5m",
        "after": "5m",
        "memory_limit": args.memory_limit,
        "threads": args.threads,
    }
    data = generate(args.spans)
    runs = []
    outs = {}
    for kind in ("ray", "local") if args.compare else ("ray",):
        out = WORK / f"out-{kind}-{args.spans}"
        shutil.rmtree(out, ignore_errors=True)
        r = measure(data, out, {"executor": kind, "num_cpus": args.num_cpus, "partition_s": args.partition,
                                "cfg": cfg})  # fmt: skip
        r.update({"executor": kind, "spans": args.spans, "spans_per_s": round(args.spans / r["wall_s"])})
        runs.append(r)
        outs[kind] = digests(out)
        shutil.rmtree(out, ignore_errors=True)
        print(f"{kind:>5}: {args.spans:,} spans  wall {r['wall_s']:.1f} s  cpu {r['cpu_s_all_processes']:.1f} s  "
              f"driver peak {r['driver_peak_rss_mib']:.0f} MiB  worker peaks {r['worker_peak_rss_mib']} MiB  "
              f"(load {r['loadavg_before'][0]:.1f})", flush=True)  # fmt: skip
    result = {
        "benchmark": "features_ray",
        "config": {**cfg, "partition_s": args.partition, "num_cpus": args.num_cpus, "task_threads": 1},
        "machine": machine_info(),
        "runs": runs,
    }
    if args.compare:
        differ = sorted(
            k for k in outs["ray"].keys() | outs["local"].keys() if outs["ray"].get(k) != outs["local"].get(k)
        )
        result["identical"] = {"files": len(outs["local"]), "differing": differ}
        print(f"outputs: {len(outs['local'])} files, differing: {differ}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
