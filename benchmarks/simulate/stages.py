"""What a simulated dataset of ``params.yaml`` costs the default pipeline before any method runs: the
wall time of its three data stages, ``raw`` (simulate), ``ingest`` and ``features``, each run as DVC
runs it (``python pipelines/<stage>.py``, a fresh interpreter, the settings of ``params.yaml``).

The stages run in ``benchmarks/work/stages/`` (its own ``data/`` folder; deleted afterwards unless
``--keep``); figures are printed and written to ``benchmarks/results/stages_<dataset>.json``. Target
for a dataset of the default benchmark: under two minutes for the three on the project's 2-core
machine.

    .venv/bin/python benchmarks/simulate/stages.py                      # sim-trainticket
    .venv/bin/python benchmarks/simulate/stages.py --dataset sim-boutique
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
WORK = REPO / "benchmarks" / "work" / "stages"
TARGET_S = 120.0


def run_stage(args: list[str]) -> dict[str, float]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    res = subprocess.run([sys.executable, *args], cwd=WORK, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if res.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed ({res.returncode}):\n{res.stderr[-3000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"wall_s": round(wall, 2), "cpu_s": round(cpu, 2), "last_line": res.stdout.strip().splitlines()[-1:]}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", default="sim-trainticket", help="a name under `simulated:` in params.yaml")
    ap.add_argument("--keep", action="store_true", help="keep benchmarks/work/stages/ afterwards")
    args = ap.parse_args()
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    if args.dataset not in (params.get("simulated") or {}):
        raise SystemExit(f"{args.dataset!r} is not under `simulated:` in params.yaml")
    shutil.rmtree(WORK, ignore_errors=True)
    WORK.mkdir(parents=True)
    shutil.copy(REPO / "params.yaml", WORK / "params.yaml")
    stages = {
        "raw": ["pipelines/raw.py", args.dataset],
        "ingest": ["pipelines/ingest.py", args.dataset],
        "features": ["pipelines/features.py", "--dataset", args.dataset],
    }
    out: dict[str, dict] = {}
    try:
        for name, cmd in stages.items():
            out[name] = run_stage([str(REPO / cmd[0]), *cmd[1:]])
            print(f"{name:9s} {out[name]['wall_s']:7.1f} s wall {out[name]['cpu_s']:7.1f} s CPU  "
                  f"{' '.join(out[name]['last_line'])}")
        raw_bytes = sum(p.stat().st_size for p in (WORK / "data" / "raw" / args.dataset).rglob("*") if p.is_file())
        counts = json.loads((WORK / "metrics" / "raw" / f"{args.dataset}.json").read_text())
    finally:
        if not args.keep:
            shutil.rmtree(WORK, ignore_errors=True)
    total = sum(v["wall_s"] for v in out.values())
    print(f"total     {total:7.1f} s wall (target {TARGET_S:.0f} s); raw data {raw_bytes / 1e6:.0f} MB")
    result = {
        "benchmark": "data stages of a simulated dataset",
        "dataset": args.dataset,
        "settings": {**(params.get("simulate") or {}), **params["simulated"][args.dataset]},
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "stages": {k: {"wall_s": v["wall_s"], "cpu_s": v["cpu_s"]} for k, v in out.items()},
        "total_wall_s": round(total, 2),
        "target_s": TARGET_S,
        "raw_bytes": raw_bytes,
        "counts": {k: counts[k] for k in ("requests", "spans", "logs", "metric_points", "incidents") if k in counts},
        "machine": "the project's shared 2-core machine (other jobs running)",
    }
    path = REPO / "benchmarks" / "results" / f"stages_{args.dataset}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {path.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
