"""AC@1 of the label-free ``ensemble``'s members under setting variants, and of their reciprocal-rank
fusion, per dataset and fault type: the scratch measurements behind docs/rca-methods.md's tables on
``multimodal``'s ``reference_scale`` / ``reference_quantile`` and ``nezha``'s ``alarm_features`` /
``alarm_sparse_new_high``.

    python benchmarks/real/member_variants.py --features sim-trainticket=data/features/sim-trainticket \
        --features nezha-tt=/tmp/r/data/features/nezha-tt \
        --multimodal '{"reference_scale": false}' --nezha '{"alarm_features": []}'

Each member starts from the ensemble's member config in params.yaml, updated with the given JSON.
The fusion is the ensemble's rule (rrf, k from params.yaml; ties by the first member's rank, then
name). Writes nothing.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import yaml

from otlp_aiops import registry
from otlp_aiops.features.store import load_cases, load_reference


def fractional_ranks(ranking, services) -> np.ndarray:
    score = dict(zip(ranking.services, ranking.scores, strict=True))
    v = np.array([score.get(s, -np.inf) for s in services])
    return np.array([1 + (v > x).sum() + 0.5 * ((v == x).sum() - 1) for x in v])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--features", action="append", required=True, help="NAME=features folder")
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--multimodal", default="{}", help="JSON changes to the multimodal member")
    ap.add_argument("--nezha", default="{}", help="JSON changes to the nezha member")
    a = ap.parse_args()
    params = yaml.safe_load(Path(a.params).read_text())
    ens = params["rca"]["ensemble"]
    cfgs = {
        "multimodal": {**ens["member_configs"]["multimodal"], **json.loads(a.multimodal)},
        "nezha": {**ens["member_configs"]["nezha"], **json.loads(a.nezha)},
    }
    k = float(ens.get("k", 0.5))
    for item in a.features:
        name, folder = item.split("=", 1)
        ref = load_reference(folder)
        members = {m: registry.create("ranker", m, c).fit(ref) for m, c in cfgs.items()}
        per: dict[str, list[tuple[int, int, int]]] = {}
        for case in load_cases(folder):
            if case.root_cause_service not in case.services:
                continue
            rc = case.services.index(case.root_cause_service)
            ranks = [fractional_ranks(m.rank(case), case.services) for m in members.values()]
            fused = sum(1.0 / (k + r) for r in ranks)
            order = sorted(range(len(case.services)),
                           key=lambda i: (-fused[i], *(r[i] for r in ranks), case.services[i]))
            firsts = [int(r[rc] == 1) for r in ranks] + [int(order[0] == rc)]
            per.setdefault(case.fault_type or "?", []).append(tuple(firsts))
        rows = [x for v in per.values() for x in v]
        acc = np.mean(rows, axis=0)
        print(f"{name}: AC@1 multimodal {acc[0]:.3f}, nezha {acc[1]:.3f}, ensemble {acc[2]:.3f}  ("
              + ", ".join(f"{t} {sum(r[2] for r in v)}/{len(v)}" for t, v in sorted(per.items())) + ")")


if __name__ == "__main__":
    main()
