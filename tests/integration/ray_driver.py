"""Run the default pipeline's ingest, features and one rca and one detect stage on a small simulated dataset,
once with the local executor and once on the Ray cluster at ``--address``, and compare the outputs.
Also kills a Ray worker in the middle of an ingest (``--kill``) and checks that the retried run gives
the same tables. Prints one JSON line: what was compared, the timings and the verdict.

Run by tests/integration/test_executor_ray.py and benchmarks/scale/run.py inside a private network
namespace that holds a two-node cluster (see docs/scale.md); exits 1 when an output differs."""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

CONFIG = {
    "duration": "30m", "warmup": "5m", "incidents": 6, "disturbances": 0, "incident_duration": ["90s", "120s"],
    "min_gap": "60s", "seed": 5, "request_rate": 8, "trace_sample_ratio": 0.2, "framing": "proto",
    "rotate_mb": 0.5,
}
PARAMS = {
    "benchmark": {"datasets": ["toy"], "seeds": [0, 1], "detection_offsets": ["0s"], "folds": 3,
                  "train_fraction": 0.5, "rca": ["random", "baro"], "detectors": ["nsigma"]},
    "rca": {},
    "detect": {},
}


def tree_digest(folder: Path) -> dict[str, str]:
    """sha256 of every file under ``folder`` (relative path -> digest), the report's timings aside."""
    out = {}
    for p in sorted(folder.rglob("*")):
        if p.is_file():
            data = p.read_bytes()
            if p.name == "ingest_report.json":
                rep = json.loads(data)
                rep.pop("seconds", None)
                rep.pop("output", None)  # where it was written: the two runs write to two folders
                for f in rep.get("files", []):
                    f.pop("seconds", None)
                data = json.dumps(rep, sort_keys=True).encode()
            out[str(p.relative_to(folder))] = hashlib.sha256(data).hexdigest()
    return out


def rca_table(root: Path, task: str, method: str):
    import pandas as pd

    df = pd.read_parquet(root / "benchmarks" / "results" / task / "toy" / f"{method}.parquet")
    df = df.drop(columns=[c for c in df.columns if c in ("run_id", "seconds")])
    return df.sort_values(list(df.columns)).reset_index(drop=True)


def _kill_one_worker(stop: threading.Event, killed: list[int]) -> None:
    """Kill the first Ray worker seen converting a file (its process title is ``ray::convert_file``)."""
    while not stop.is_set() and not killed:
        r = subprocess.run(["pgrep", "-f", "ray::convert_file"], capture_output=True, text=True)
        pids = [int(p) for p in r.stdout.split()]
        if pids:
            os.kill(pids[0], signal.SIGKILL)
            killed.append(pids[0])
            return
        time.sleep(0.01)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--address", required=True)
    ap.add_argument("--work", type=Path, required=True)
    ap.add_argument("--kill", action="store_true", help="kill one Ray worker during the Ray ingest")
    args = ap.parse_args()

    from otlp_aiops.datasets.simulator import SimulatorConfig, simulate
    from otlp_aiops.executor import LOCAL, ExecutorConfig
    from otlp_aiops.features.build import build_features
    from otlp_aiops.features.config import resolve_config
    from otlp_aiops.otlp.ingest import ingest_paths
    from otlp_aiops.stages.detect import run_detect
    from otlp_aiops.stages.rca import run_rca
    from otlp_aiops.sweep import run_sweep

    ray_cfg = ExecutorConfig(kind="ray", address=args.address)
    raw = args.work / "raw"
    simulate(SimulatorConfig.from_dict(CONFIG), raw)
    files = sorted((raw / "otlp").rglob("*.binpb"))
    result: dict = {"input_files": len(files)}

    timings = {}
    outs = {}
    for name, cfg in (("local", LOCAL), ("ray", ray_cfg)):
        root = args.work / name
        interim = root / "data" / "interim" / "toy"
        stop, killed = threading.Event(), []
        watcher = threading.Thread(target=_kill_one_worker, args=(stop, killed), daemon=True)
        if name == "ray" and args.kill:
            import ray  # joined here so the watcher sees the workers of this ingest only

            ray.init(address=args.address, log_to_driver=False, configure_logging=False)
            watcher.start()
        t0 = time.perf_counter()
        report = ingest_paths([raw / "otlp"], interim, workers=1, executor=cfg)
        timings[f"ingest_{name}_s"] = round(time.perf_counter() - t0, 2)
        stop.set()
        if name == "ray" and args.kill:
            result["killed_worker_pid"] = killed[0] if killed else None
        result[f"ingest_{name}_records"] = report["totals"]["records_written"]
        outs[name] = tree_digest(interim)
        feats = root / "data" / "features" / "toy"
        t0 = time.perf_counter()  # on Ray: 5-minute partitions of the 30 minutes, as tasks on both nodes
        build_features(interim, raw, feats, resolve_config({"window": "15s", "before": "4m", "after": "3m"}, "toy"),
                       dataset="toy", executor=cfg, partition_s=300)
        timings[f"features_{name}_s"] = round(time.perf_counter() - t0, 2)
        for method in ("random", "baro"):
            t0 = time.perf_counter()
            run_rca("toy", method, PARAMS, root=root, track=False, executor=cfg)
            timings[f"rca_{method}_{name}_s"] = round(time.perf_counter() - t0, 2)
        run_detect("toy", "nsigma", PARAMS, root=root, track=False, executor=cfg)
        # a sweep: Ray Tune trials on the cluster, one after another locally
        sweep = {**PARAMS, "sweep": {"task": "rca", "dataset": "toy", "method": "baro", "metric": "avg_at_5",
                                     "grid": {"absolute": [False, True]}}}
        t0 = time.perf_counter()
        outs[f"sweep_{name}"] = run_sweep(sweep, root=root, track=False, executor=cfg)["trials"]
        timings[f"sweep_{name}_s"] = round(time.perf_counter() - t0, 2)

    result["sweep_identical"] = outs["sweep_local"] == outs["sweep_ray"] and len(outs["sweep_ray"]) == 2
    result["ingest_identical"] = outs["local"] == outs["ray"]
    result["ingest_files_compared"] = len(outs["local"])
    result["features_identical"] = (tree_digest(args.work / "local/data/features/toy")
                                    == tree_digest(args.work / "ray/data/features/toy"))
    for task, method in (("rca", "random"), ("rca", "baro"), ("detect", "nsigma")):
        a, b = rca_table(args.work / "local", task, method), rca_table(args.work / "ray", task, method)
        result[f"{task}_{method}_identical"] = bool(a.equals(b)) and len(a) > 0
        result[f"{task}_{method}_rows"] = len(a)
    import ray

    if ray.is_initialized():
        result["nodes_alive"] = sum(1 for n in ray.nodes() if n["Alive"])
    result["timings"] = timings
    ok = all(v for k, v in result.items() if k.endswith("_identical"))
    result["ok"] = ok
    print(json.dumps(result, sort_keys=True))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
