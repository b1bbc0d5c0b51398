"""DVC stage `report`: the long-form results of every benchmark.datasets × method in params.yaml ->
benchmarks/tables/ (Markdown, LaTeX, CSV), benchmarks/figures/ and benchmarks/plots/ac_at_k.csv (the
`dvc plots` curve of the first dataset)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import yaml


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--out", type=Path, default=Path("benchmarks"),
                    help="Folder for tables/, figures/ and plots/ (the stage writes benchmarks/).")
    args = ap.parse_args()
    os.environ.setdefault("MPLBACKEND", "Agg")
    from otlp_aiops.evaluate.benchmark import benchmark_config
    from otlp_aiops.report.build import build_report
    from otlp_aiops.report.stats import ac_at_k_curve, load_results

    params = yaml.safe_load(Path(args.params).read_text())
    bench = benchmark_config(params)
    cfg = params.get("report") or {}
    paths = []
    for ds in bench.datasets:
        for task, methods in (("rca", bench.rca), ("detect", bench.detectors)):
            for m in methods:
                p = Path("benchmarks/results") / task / ds / f"{m}.parquet"
                if not p.exists():
                    print(f"error: {p} is missing: run the {task}@{ds}-{m} stage first", file=sys.stderr)
                    return 1
                paths.append(p)
    summary = build_report(paths, args.out / "tables", args.out / "figures",
                           seed=int(cfg.get("bootstrap_seed", 0)), alpha=float(cfg.get("alpha", 0.05)),
                           n_resamples=int(cfg.get("n_resamples", 2000)), posthoc=str(cfg.get("posthoc", "nemenyi")))
    # the `dvc plots` curve: AC@k by k, one column per method, for the first benchmark dataset
    curve = ac_at_k_curve(load_results(paths))
    first = curve[curve.dataset == bench.datasets[0]]
    wide = first.pivot(index="k", columns="method", values="ac").reset_index()
    out = args.out / "plots" / "ac_at_k.csv"
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    wide.to_csv(tmp, index=False, float_format="%.6g")
    os.replace(tmp, out)
    print(json.dumps({k: v for k, v in summary.items() if k != "files"}, indent=2, default=str)[:4000])
    return 0


if __name__ == "__main__":
    sys.exit(main())
