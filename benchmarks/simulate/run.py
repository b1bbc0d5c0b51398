"""Simulator benchmark: how long ``simulate`` takes to write the default dataset, and spans written per
second. The default dataset is the ``simulate:`` section of ``params.yaml`` (target: under a minute
on the project's 2-core machine, serialisation and files included).

Each measurement runs in a fresh interpreter (import time excluded, file writing included), is
repeated, and the median is reported with the phases' split and peak RSS. The other framings (and
other systems, on request) are measured once each for reference. Outputs go to
``benchmarks/work/simulate/`` and are deleted afterwards; figures are printed and written to
``benchmarks/results/simulate.json``.

    .venv/bin/python benchmarks/simulate/run.py                 # default dataset x3 + other framings
    .venv/bin/python benchmarks/simulate/run.py --repeats 1 --framings proto
    .venv/bin/python benchmarks/simulate/run.py --systems online-boutique,train-ticket,random:200
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shutil
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
WORK = REPO / "benchmarks" / "work" / "simulate"
RESULTS = REPO / "benchmarks" / "results" / "simulate.json"
TARGET_S = 60.0

# run in a child interpreter: settings as JSON on argv, one JSON line of figures on stdout
CHILD = r"""
import json, resource, sys, time
from otlp_aiops.datasets.simulator import SimulatorConfig, simulate
settings, out = json.loads(sys.argv[1]), sys.argv[2]
cfg = SimulatorConfig.from_dict(settings)
t0 = time.perf_counter()
s = simulate(cfg, out)
wall = time.perf_counter() - t0
cpu = resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({"wall_s": wall, "cpu_s": cpu.ru_utime + cpu.ru_stime, "peak_rss_mb": cpu.ru_maxrss / 1024,
                  "spans": s.spans, "logs": s.logs, "metric_points": s.metric_points, "requests": s.requests,
                  "traces": s.traces, "incidents": s.incidents, "files": s.files, "bytes": s.bytes,
                  "phases_s": s.phase_seconds}))
"""


def measure(settings: dict[str, Any], tag: str) -> dict[str, Any]:
    out = WORK / tag
    shutil.rmtree(out, ignore_errors=True)
    res = subprocess.run(
        [sys.executable, "-c", CHILD, json.dumps(settings), str(out)],
        capture_output=True,
        text=True,
        check=False,
        cwd=REPO,
    )
    if res.returncode != 0:
        raise RuntimeError(f"{tag}: simulate failed:\n{res.stderr[-3000:]}")
    shutil.rmtree(out, ignore_errors=True)
    fig = json.loads(res.stdout.strip().splitlines()[-1])
    fig["spans_per_s"] = fig["spans"] / fig["wall_s"]
    fig["records_per_s"] = (fig["spans"] + fig["logs"] + fig["metric_points"]) / fig["wall_s"]
    return fig


def machine() -> dict[str, Any]:
    import numpy

    sys.path.insert(0, str(REPO / "benchmarks"))
    from machine import machine_info

    return machine_info(numpy=numpy)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--params", type=Path, default=REPO / "params.yaml")
    ap.add_argument("--repeats", type=int, default=3, help="runs of the default dataset (median reported)")
    ap.add_argument("--framings", default="proto-zstd,jsonl", help="other framings, measured once each")
    ap.add_argument(
        "--systems", default="", help="other systems, measured once each (e.g. train-ticket,random:200)"
    )
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()

    settings = (yaml.safe_load(args.params.read_text()) or {}).get("simulate") or {}
    WORK.mkdir(parents=True, exist_ok=True)
    runs = []
    for k in range(args.repeats):
        fig = measure(settings, "default")
        runs.append(fig)
        print(
            f"default run {k + 1}/{args.repeats}: {fig['wall_s']:.2f} s, {fig['spans']:,} spans, "
            f"{fig['spans_per_s']:,.0f} spans/s",
            flush=True,
        )
    walls = [r["wall_s"] for r in runs]
    median = sorted(runs, key=lambda r: r["wall_s"])[len(runs) // 2]
    default = {
        **median,
        "wall_s_median": statistics.median(walls),
        "wall_s_all": walls,
        "spans_per_s_median": median["spans"] / statistics.median(walls),
        "under_target": statistics.median(walls) < TARGET_S,
    }
    others = {}
    for framing in [f for f in args.framings.split(",") if f and f != settings.get("framing", "proto")]:
        fig = measure({**settings, "framing": framing}, framing)
        others[f"framing={framing}"] = fig
        print(
            f"framing {framing}: {fig['wall_s']:.2f} s, {fig['spans_per_s']:,.0f} spans/s, "
            f"{fig['bytes'] / 1e6:.0f} MB",
            flush=True,
        )
    for system in [s for s in args.systems.split(",") if s]:
        fig = measure({**settings, "system": system}, system.replace(":", "-"))
        others[f"system={system}"] = fig
        print(
            f"system {system}: {fig['wall_s']:.2f} s, {fig['spans']:,} spans, {fig['spans_per_s']:,.0f} spans/s",
            flush=True,
        )
    result = {
        "benchmark": "simulate",
        "date": dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat(),
        "machine": machine(),
        "settings": settings,
        "target_s": TARGET_S,
        "default": default,
        "others": others,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    d = default
    print(
        f"\ndefault dataset ({settings.get('system', 'online-boutique')}, {settings.get('duration', '2h')}, "
        f"{d['incidents']} incidents): median {d['wall_s_median']:.2f} s over {len(walls)} runs "
        f"(target < {TARGET_S:.0f} s: {'met' if d['under_target'] else 'MISSED'})"
    )
    print(
        f"  spans {d['spans']:,}  logs {d['logs']:,}  metric points {d['metric_points']:,}  "
        f"-> {d['spans_per_s_median']:,.0f} spans/s, {d['records_per_s']:,.0f} records/s; "
        f"{d['bytes'] / 1e6:.0f} MB in {d['files']} files; peak RSS {d['peak_rss_mb']:.0f} MB"
    )
    print(f"  phases (s): {d['phases_s']}")
    print(f"written to {args.out.relative_to(REPO) if args.out.is_relative_to(REPO) else args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
