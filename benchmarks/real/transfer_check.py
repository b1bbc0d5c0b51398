"""A quick check of supervised rankers, without the whole benchmark: train on one dataset (or k-fold
over one dataset's incidents), apply to others, print AC@1/3, Avg@5 and MRR (mean over seeds) at the
headline detection offset.

    python benchmarks/real/transfer_check.py --root /tmp/h13 --method gnn --train sim-boutique-train \
        --test petshop,rcd-sockshop [--set modality_dropout=0.3] [--seeds 0,1,2]
    python benchmarks/real/transfer_check.py --root /tmp/h13 --method stacked --kfold sim-trainticket

``--set key=value`` (YAML value) overrides the ranker's params.yaml section. Results go to stdout and,
as one JSON line per run, to ``<root>/transfer_check.jsonl``; nothing in the repository is written.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import yaml

from otlp_aiops import registry
from otlp_aiops.evaluate.protocol import incident_folds
from otlp_aiops.features.store import load_cases, load_reference
from otlp_aiops.stages.config import benchmark_config, method_config


def metrics(ranks: list[int | None], n_services: list[int]) -> dict[str, float]:
    r = np.array([x if x is not None else n + 1 for x, n in zip(ranks, n_services, strict=True)], dtype=float)
    ac = {k: float((r <= k).mean()) for k in range(1, 6)}
    return {
        "ac1": ac[1],
        "ac3": ac[3],
        "avg5": float(np.mean([ac[k] for k in range(1, 6)])),
        "mrr": float((1.0 / r).mean()),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", required=True, type=Path)
    ap.add_argument("--method", required=True)
    ap.add_argument("--train", default="sim-boutique-train")
    ap.add_argument("--test", default="")
    ap.add_argument("--kfold", default="", help="comma list: k-fold over these datasets' incidents")
    ap.add_argument("--seeds", default="0,1,2,3,4")
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--set", action="append", default=[])
    ap.add_argument("--per-case", action="store_true")
    a = ap.parse_args()
    params = yaml.safe_load(Path(a.params).read_text())
    cfg = dict(method_config(params, "rca", a.method))
    for kv in a.set:
        k, _, v = kv.partition("=")
        cfg[k] = yaml.safe_load(v)
    bench = benchmark_config(params)
    seeds = [int(s) for s in a.seeds.split(",")]
    feats = a.root / "data" / "features"
    runs: list[tuple[str, list]] = []  # (dataset, per-seed list of (case, ranking, seconds))
    tests = [d for d in a.test.split(",") if d]
    if tests:
        tref = load_reference(feats / a.train)
        tcases = [c for c in load_cases(feats / a.train) if c.root_cause_service]
        test_cases = {d: [c for c in load_cases(feats / d) if c.root_cause_service] for d in tests}
        out = {d: [] for d in tests}
        for seed in seeds:
            t0 = time.perf_counter()
            ranker = registry.create("ranker", a.method, cfg, seed=seed).fit(tref, tcases)
            fit_s = time.perf_counter() - t0
            for d in tests:
                rows = []
                for c in test_cases[d]:
                    t1 = time.perf_counter()
                    rows.append((c, ranker.rank(c), time.perf_counter() - t1))
                out[d].append((rows, fit_s))
        runs += [(f"{d} <- {a.train}", out[d]) for d in tests]
    for d in [d for d in a.kfold.split(",") if d]:
        ref = load_reference(feats / d)
        cases = [c for c in load_cases(feats / d) if c.root_cause_service]
        per_seed = []
        for seed in seeds:
            got, fit_s = {}, 0.0
            for tr, te in incident_folds([c.case_id for c in cases], bench.folds, seed):
                t0 = time.perf_counter()
                ranker = registry.create("ranker", a.method, cfg, seed=seed).fit(ref, [cases[i] for i in tr])
                fit_s += time.perf_counter() - t0
                for i in te:
                    t1 = time.perf_counter()
                    got[cases[i].case_id] = (cases[i], ranker.rank(cases[i]), time.perf_counter() - t1)
            per_seed.append(([got[c.case_id] for c in cases], fit_s))
        runs.append((f"{d} (k-fold)", per_seed))
    with open(a.root / "transfer_check.jsonl", "a") as fh:
        for label, per_seed in runs:
            ms = [
                metrics(
                    [r.rank_of(c.root_cause_service) for c, r, _ in rows],
                    [len(c.services) for c, _, _ in rows],
                )
                for rows, _ in per_seed
            ]
            mean = {k: float(np.mean([m[k] for m in ms])) for k in ms[0]}
            secs = float(np.mean([s for rows, _ in per_seed for _, _, s in rows]))
            fit = float(np.mean([f for _, f in per_seed]))
            by_fault: dict[str, list[float]] = {}
            for rows, _ in per_seed:
                for c, r, _ in rows:
                    by_fault.setdefault(c.fault_type or "?", []).append(
                        float(r.rank_of(c.root_cause_service) == 1)
                    )
            bf = {k: round(float(np.mean(v)), 3) for k, v in sorted(by_fault.items())}
            print(
                f"{a.method:10s} {label:40s} AC@1 {mean['ac1']:.3f} AC@3 {mean['ac3']:.3f} "
                f"Avg@5 {mean['avg5']:.3f} MRR {mean['mrr']:.3f}  rank {secs:.3f}s/case fit {fit:.1f}s  {bf} "
                f"{' '.join(a.set)}",
                flush=True,
            )
            fh.write(
                json.dumps(
                    {
                        "method": a.method,
                        "run": label,
                        "set": a.set,
                        **mean,
                        "rank_s": secs,
                        "fit_s": fit,
                        "by_fault": bf,
                    }
                )
                + "\n"
            )
            if a.per_case:
                for c, r, _ in per_seed[0][0]:
                    print(
                        f"   {c.case_id:30s} {c.fault_type or '?':15s} {c.root_cause_service:25s} "
                        f"rank {r.rank_of(c.root_cause_service)} top3 {', '.join(r.top(3))}"
                    )


if __name__ == "__main__":
    main()
