"""AC@1/3/5, Avg@5, MRR per fault type and seconds per case of the label-free rankers of issue 13
(``multimodal``, ``microrank``, ``tracerca``) beside the baselines, on built feature folders.

    python benchmarks/real/trace_rankers.py data/features/nezha-tt [more folders] \
        [--methods multimodal,microrank,tracerca,baro,nsigma,random] [--out benchmarks/results/trace_rankers.json] \
        [--rebuild]

Every method runs with its ``params.yaml`` section, seed 0 (``random``: the benchmark's seeds,
averaged). Seconds per case count ``rank`` only; with ``--rebuild`` the feature stage is run again
from ``data/interim/<name>`` and ``data/raw/<name>`` (params.yaml ``features``) into a temporary
folder, timed (the trace and log tables included: the per-dataset cost, paid once), and the rankers
read that folder. Prints one
table per dataset and writes the figures as JSON (atomically).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import yaml

from otlp_aiops import registry
from otlp_aiops.config import config_from_dict
from otlp_aiops.evaluate.rca import aggregate_rca, rca_case_result
from otlp_aiops.features.store import load_cases, load_reference

ROOT = Path(__file__).resolve().parents[2]
METRICS = ("ac_at_1", "ac_at_3", "ac_at_5", "avg_at_5", "mrr")


def rebuild(folder: Path, params: dict, tmp: Path) -> tuple[Path, float]:
    from otlp_aiops.features.build import build_features
    from otlp_aiops.features.config import resolve_config

    name = folder.name
    data = folder.parent.parent
    out = tmp / name
    t0 = time.perf_counter()
    build_features(data / "interim" / name, data / "raw" / name, out, resolve_config(params["features"], name),
                   dataset=name)
    return out, time.perf_counter() - t0


def run(folder: Path, methods: list[str], params: dict, features_seconds: float | None = None) -> dict:
    cases = [c for c in load_cases(folder) if c.root_cause_service]
    reference = load_reference(folder)
    meta = json.loads((folder / "meta.json").read_text())
    out = {"dataset": meta.get("dataset", folder.name), "cases": len(cases),
           "features_seconds": features_seconds, "content_reference": meta.get("content_reference"),
           "methods": {}}
    seeds = (params.get("benchmark") or {}).get("seeds", [0])
    for m in methods:
        cls = registry.model_class("ranker", m)
        cfg = config_from_dict(cls.Config, (params.get("rca") or {}).get(m) or {}, where=f"rca.{m}: ")
        per_seed = []
        for seed in (seeds if cls.stochastic else seeds[:1]):
            r = cls(cfg, seed=seed).fit(reference)
            results = []
            for c in cases:
                t0 = time.perf_counter()
                ranking = r.rank(c)
                results.append(rca_case_result(c.case_id, ranking, c.root_cause_service, fault_type=c.fault_type,
                                               seconds=time.perf_counter() - t0))
            per_seed.append(aggregate_rca(results))
        overall = {k: float(np.mean([s.overall[k] for s in per_seed])) for k in (*METRICS, "seconds")}
        fts = sorted(per_seed[0].by_fault_type)
        by_ft = {ft: {k: float(np.mean([s.by_fault_type[ft][k] for s in per_seed])) for k in (*METRICS, "n_cases")}
                 for ft in fts}
        out["methods"][m] = {"overall": overall, "by_fault_type": by_ft}
    return out


def show(res: dict) -> None:
    secs, n = res["features_seconds"], max(res["cases"], 1)
    built = "not timed (use --rebuild)" if secs is None else f"{secs:.1f} s ({secs / n:.3f} s per case)"
    print(f"\n{res['dataset']}: {res['cases']} cases; features stage {built}; "
          f"content reference {res['content_reference']}")
    print(f"{'method':12s} {'fault type':16s} {'n':>3s} " + " ".join(f"{k:>8s}" for k in METRICS) + "  s/case")
    for m, r in res["methods"].items():
        o = r["overall"]
        print(f"{m:12s} {'all':16s} {res['cases']:3d} " + " ".join(f"{o[k]:8.3f}" for k in METRICS) + f"  {o['seconds']:.4f}")
        for ft, f in r["by_fault_type"].items():
            print(f"{'':12s} {ft:16s} {int(f['n_cases']):3d} " + " ".join(f"{f[k]:8.3f}" for k in METRICS))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("folders", nargs="+", type=Path)
    ap.add_argument("--methods", default="multimodal,microrank,tracerca,baro,nsigma,random")
    ap.add_argument("--params", type=Path, default=ROOT / "params.yaml")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "trace_rankers.json")
    ap.add_argument("--rebuild", action="store_true", help="time the features stage again (into a temp folder)")
    args = ap.parse_args(argv)
    warnings.simplefilter("ignore", RuntimeWarning)
    params = yaml.safe_load(args.params.read_text())
    results = []
    with tempfile.TemporaryDirectory(prefix="trace-rankers-") as tmp:
        for folder in args.folders:
            secs = None
            if args.rebuild:
                folder, secs = rebuild(folder, params, Path(tmp))
            res = run(folder, args.methods.split(","), params, secs)
            show(res)
            results.append(res)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{args.out.name}.", dir=args.out.parent)
    with os.fdopen(fd, "w") as f:
        json.dump({"results": results}, f, indent=1, sort_keys=True)
        f.write("\n")
    os.replace(tmp, args.out)
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
