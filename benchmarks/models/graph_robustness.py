"""How the graph-walk rankers (``pagerank``, ``random_walk``) hold up when the symptom is not the front
door, against ``nsigma`` (no graph): Avg@5 and AC@1 on a dataset's cases as built, and on the same cases
with one service removed (its series, its edges), the symptom then being chosen again by the features
stage's own rule (``features.cases.symptom_service``).

On PetShop, removing ``PetSite`` makes that rule pick the entry reaching the most services, the Step
Functions client, whose subgraph holds none of the faults: the case behind issue 13's "pagerank 0.0
where nsigma 0.58" (docs/rca-methods.md, *Symptom*).

    .venv/bin/python benchmarks/models/graph_robustness.py --features data/features/petshop --drop PetSite

Writes ``benchmarks/results/graph_robustness_<dataset>.json`` and prints the table.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import sys
from pathlib import Path

import numpy as np

from otlp_aiops import registry
from otlp_aiops.features.cases import symptom_service
from otlp_aiops.features.data import CaseData, ServiceGraph
from otlp_aiops.features.store import load_cases

REPO = Path(__file__).resolve().parents[2]
METHODS = ("nsigma", "pagerank", "random_walk")


def without(case: CaseData, name: str) -> CaseData:
    keep = [i for i, s in enumerate(case.services) if s != name]
    services = tuple(case.services[i] for i in keep)
    edges = tuple((a, b) for a, b in case.graph.edges if name not in (a, b))
    symptom = symptom_service({"symptom_service": case.symptom_service}, {}, list(services), list(edges))
    return dataclasses.replace(case, services=services, values=case.values[:, keep],
                               reference=case.reference[:, keep],
                               graph=ServiceGraph(services, edges, case.graph.source), symptom_service=symptom)


def scores(method: str, cases: list[CaseData]) -> dict[str, float]:
    r = registry.create("ranker", method).fit(None)
    ranks = [r.rank(c).rank_of(c.root_cause_service) for c in cases]
    ac = [np.mean([x is not None and x <= k for x in ranks]) for k in range(1, 6)]
    return {"ac_at_1": round(float(ac[0]), 3), "avg_at_5": round(float(np.mean(ac)), 3)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--features", type=Path, required=True, help="data/features/<dataset>")
    ap.add_argument("--drop", required=True, help="the service to remove (e.g. PetSite)")
    args = ap.parse_args()
    cases = load_cases(args.features)
    if not cases:
        raise SystemExit(f"{args.features}: no cases")
    if args.drop not in cases[0].services:
        raise SystemExit(f"{args.drop!r} is not a service of {args.features}")
    dropped = [without(c, args.drop) for c in cases]
    out = {"as_built": {"symptom": cases[0].symptom_service},
           f"without_{args.drop}": {"symptom": dropped[0].symptom_service}}
    for key, cs in (("as_built", cases), (f"without_{args.drop}", dropped)):
        for m in METHODS:
            out[key][m] = scores(m, cs)
    print(f"{'variant':28s} {'symptom':40s} " + " ".join(f"{m + ' Avg@5':>18s}" for m in METHODS))
    for key, row in out.items():
        print(f"{key:28s} {row['symptom'][:40]:40s} " + " ".join(f"{row[m]['avg_at_5']:18.3f}" for m in METHODS))
    dataset = cases[0].dataset
    result = {"benchmark": "graph rankers with a side-entrance symptom", "dataset": dataset,
              "cases": len(cases), "dropped": args.drop, "results": out,
              "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")}
    path = REPO / "benchmarks" / "results" / f"graph_robustness_{dataset}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {path.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
