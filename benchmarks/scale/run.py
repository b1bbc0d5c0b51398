"""Scaling on Ray: ingest throughput and a stage of many fits with one and with two Ray worker nodes
(one CPU each) of a cluster on this machine, measured in one run; writes benchmarks/results/scale.json.

    python benchmarks/scale/run.py [--duration 60m] [--seeds 8] [--repeats 3]

Re-runs itself inside a private network namespace (``unshare -n``, as root) so that Ray binds only
the loopback (see ../shared/STACK.md). Also reports the peak RSS of the Ray worker processes during
the ingest. On a 2-core machine the ideal ratio is 2.0; other load on the machine lowers it."""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))


def _ray(*args: str) -> None:
    subprocess.run(["ray", *args], check=True, capture_output=True)


def _peak_worker_rss(stop: threading.Event, peak: list[int]) -> None:
    import psutil

    while not stop.is_set():
        for p in psutil.process_iter(["cmdline"]):
            try:
                if any("ray::" in c for c in (p.info["cmdline"] or [])):
                    peak[0] = max(peak[0], p.memory_info().rss)
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                pass
        time.sleep(0.05)


def measure(work: Path, seeds: int, repeats: int, nodes: int) -> dict:
    import shutil

    from otlp_aiops.executor import ExecutorConfig
    from otlp_aiops.otlp.ingest import ingest_paths
    from otlp_aiops.stages.detect import run_detect

    cfg = ExecutorConfig(kind="ray", address="127.0.0.1:6390")
    raw = work / "raw" / "otlp"
    size = sum(p.stat().st_size for p in raw.rglob("*") if p.is_file())
    ingest_s, fit_s = [], []
    stop, peak = threading.Event(), [0]
    watcher = threading.Thread(target=_peak_worker_rss, args=(stop, peak), daemon=True)
    watcher.start()
    records = 0
    for r in range(repeats):
        out = work / f"interim-{nodes}-{r}"
        t0 = time.perf_counter()
        rep = ingest_paths([raw], out, workers=1, executor=cfg)
        ingest_s.append(time.perf_counter() - t0)
        records = rep["totals"]["records_written"]
        shutil.rmtree(out)
    stop.set()
    params = {"benchmark": {"datasets": ["toy"], "seeds": list(range(seeds)), "detection_offsets": ["0s"], "folds": 3,
                            "train_fraction": 0.5, "rca": [], "detectors": ["iforest"]},
              "rca": {}, "detect": {}}
    for _ in range(repeats):
        t0 = time.perf_counter()
        run_detect("toy", "iforest", params, root=work / "fits", track=False, executor=cfg)
        fit_s.append(time.perf_counter() - t0)
    return {"nodes": nodes, "ingest_bytes": size, "ingest_records": records,
            "ingest_s_median": statistics.median(ingest_s), "ingest_records_per_s": records / statistics.median(ingest_s),
            "fits": seeds, "fits_s_median": statistics.median(fit_s),
            "fits_per_s": seeds / statistics.median(fit_s), "peak_worker_rss_mb": round(peak[0] / 2**20, 1)}


def inside(args: argparse.Namespace) -> int:
    import ray
    from machine import machine_info  # benchmarks/machine.py

    from otlp_aiops.datasets.simulator import SimulatorConfig, simulate
    from otlp_aiops.features.build import build_features
    from otlp_aiops.features.config import resolve_config
    from otlp_aiops.otlp.ingest import ingest_paths

    work = Path(args.work)
    simulate(SimulatorConfig.from_dict({"duration": args.duration, "incidents": 6, "seed": 3, "request_rate": 10,
                                        "rotate_mb": 4.0, "framing": "proto"}), work / "raw")
    fits = work / "fits" / "data"
    ingest_paths([work / "raw" / "otlp"], fits / "interim" / "toy", workers=2)
    build_features(fits / "interim" / "toy", work / "raw", fits / "features" / "toy",
                   resolve_config({"window": "15s"}, "toy"), dataset="toy")
    (fits / "raw").mkdir(parents=True, exist_ok=True)
    os.symlink(work / "raw", fits / "raw" / "toy")
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    results = []
    try:
        _ray("start", "--head", "--node-ip-address=127.0.0.1", "--port=6390", "--num-cpus=1",
             "--include-dashboard=false", "--disable-usage-stats")
        results.append(measure(work, args.seeds, args.repeats, 1))
        ray.shutdown()
        _ray("start", "--address=127.0.0.1:6390", "--node-ip-address=127.0.0.1", "--num-cpus=1",
             "--disable-usage-stats")
        time.sleep(2)
        results.append(measure(work, args.seeds, args.repeats, 2))
    finally:
        ray.shutdown()
        subprocess.run(["ray", "stop", "--force"], capture_output=True)
    one, two = results
    out = {"machine": machine_info(), "duration": args.duration, "repeats": args.repeats, "runs": results,
           "ingest_speedup_2_vs_1": round(two["ingest_records_per_s"] / one["ingest_records_per_s"], 2),
           "fits_speedup_2_vs_1": round(two["fits_per_s"] / one["fits_per_s"], 2)}
    print(json.dumps(out, indent=2))
    dest = ROOT / "benchmarks" / "results" / "scale.json"
    dest.write_text(json.dumps(out, indent=2, sort_keys=True) + "\n")
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--duration", default="60m")
    ap.add_argument("--seeds", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--work", default=None)
    args = ap.parse_args()
    if os.environ.get("OTLP_AIOPS_IN_NETNS") == "1":
        return inside(args)
    import tempfile

    work = args.work or tempfile.mkdtemp(prefix="otlp-aiops-scale-")
    env = {**os.environ, "OTLP_AIOPS_IN_NETNS": "1", "RAY_USAGE_STATS_ENABLED": "0",
           "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    return subprocess.run(["unshare", "-n", sys.executable, __file__, "--duration", args.duration, "--seeds",
                           str(args.seeds), "--repeats", str(args.repeats), "--work", work], env=env).returncode


if __name__ == "__main__":
    sys.exit(main())
