"""Choosing the ``stacked`` ranker's settings on the simulators, fast: the members rank every case
once (cached under ``<root>/stacked_cache/``), then each setting is a refit of the level-1 model only.

    python benchmarks/real/stacked_tune.py --root /tmp/h13 --kfold sim-trainticket \
        --train sim-boutique-train --test sim-boutique [--report nezha-tt]

Prints AC@1, AC@3, Avg@5, MRR per setting: k-fold over incidents (``benchmark.folds``, seeds 0–4)
for ``--kfold`` datasets, train → test for ``--train``/``--test``. ``--report`` datasets are scored
only with the setting params.yaml holds (they must not choose it). Writes nothing in the repository.
"""

from __future__ import annotations

import argparse
import itertools
import pickle
from pathlib import Path

import numpy as np
import yaml
from scipy.optimize import minimize

from otlp_aiops import registry
from otlp_aiops.evaluate.protocol import incident_folds
from otlp_aiops.features.store import load_cases, load_reference
from otlp_aiops.rca.stacked import feature_names, listnet_loss
from otlp_aiops.stages.config import benchmark_config, method_config


def cached(root: Path, ds: str, cfg: dict) -> list[tuple[str, str, np.ndarray, int]]:
    """(case_id, fault_type, features (S, D), target) of every labelled case of ``ds``."""
    path = root / "stacked_cache" / f"{ds}.pkl"
    if path.exists():
        return pickle.loads(path.read_bytes())
    fd = root / "data" / "features" / ds
    ranker = registry.create("ranker", "stacked", cfg)
    ref = load_reference(fd)
    ranker.members_ = [r.fit(ref) for r in ranker._make_members()]
    ranker.dataset_ = ref.dataset
    out = []
    for c in load_cases(fd):
        if c.root_cause_service in c.services:
            out.append(
                (
                    c.case_id,
                    c.fault_type or "?",
                    ranker.case_features(c, ranker.member_rankings(c)),
                    c.services.index(c.root_cause_service),
                )
            )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps(out))
    return out


def fit(data, cols, l2):
    res = minimize(
        listnet_loss,
        np.zeros(len(cols)),
        args=([x[:, cols] for _, _, x, _ in data], [t for *_, t in data], l2),
        jac=True,
        method="L-BFGS-B",
    )
    return res.x


def rank_of(x, t, w, cols):
    s = x[:, cols] @ w
    # ties: pessimistic-free mean position (the ranker breaks them by member ranks, then name)
    return 1 + (s > s[t]).sum() + 0.5 * ((s == s[t]).sum() - 1)


def summary(ranks):
    r = np.asarray(ranks, dtype=float)
    return {
        "ac1": (r <= 1).mean(),
        "ac3": (r <= 3).mean(),
        "avg5": np.mean([(r <= k).mean() for k in range(1, 6)]),
        "mrr": (1 / r).mean(),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", type=Path, required=True)
    ap.add_argument("--kfold", default="")
    ap.add_argument("--train", default="")
    ap.add_argument("--test", default="")
    ap.add_argument("--report", default="")
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--setting", default="all", help="--report: the feature subset chosen on the simulators")
    a = ap.parse_args()
    params = yaml.safe_load(Path(a.params).read_text())
    cfg = method_config(params, "rca", "stacked")
    bench = benchmark_config(params)
    mlp = method_config(params, "rca", "mlp")
    cfg = {
        **cfg,
        "node_evidence": True,
        "set_kinds": mlp["kinds"],
        "set_groups": mlp["groups"],
        "set_raw_groups": mlp["raw_groups"],
        "set_ranks": True,
    }
    names = feature_names(registry.create("ranker", "stacked", cfg).config)

    def cols(*prefixes):
        return [i for i, n in enumerate(names) if n.startswith(prefixes)]

    fused = ("fused", "fused_rr", "agree")
    members = tuple(f"{m}." for m in cfg["members"])
    subsets = {
        "fused": cols("fused"),
        "fused+dev": cols("fused", "dev"),
        "members": cols(*members),
        "members+fused": cols(*members, *fused),
        "all": cols(*members, *fused, "dev"),
        "all+sets": cols(*members, *fused, "dev", "set."),
        "fused+sets": cols("fused", "set."),
        "sets": cols("set."),
        "all+sets+setrr": cols(*members, *fused, "dev", "set"),
        "all+setrr": cols(*members, *fused, "dev", "setrr."),
    }
    l2s = [0.003, 0.01, 0.03, 0.1]
    grid = list(itertools.product(subsets, l2s))

    def evaluate(data_kfold, train, test, sub, l2):
        cols = subsets[sub]
        ranks = []
        for data in data_kfold:
            for seed in range(5):
                for tr, te in incident_folds([d[0] for d in data], bench.folds, seed):
                    w = fit([data[i] for i in tr], cols, l2)
                    ranks += [rank_of(data[i][2], data[i][3], w, cols) for i in te]
        out = {"kfold": summary(ranks)} if ranks else {}
        if train:
            w = fit(train, cols, l2)
            out["transfer"] = summary([rank_of(x, t, w, cols) for _, _, x, t in test])
        return out, ranks

    kf = [cached(a.root, d, cfg) for d in a.kfold.split(",") if d]
    train = cached(a.root, a.train, cfg) if a.train else []
    test = [c for d in a.test.split(",") if d for c in cached(a.root, d, cfg)]
    for sub, l2 in grid:
        out, _ = evaluate(kf, train, test, sub, l2)
        print(
            f"{sub:14s} l2={l2:<5} "
            + "  ".join(
                f"{k}: AC@1 {v['ac1']:.3f} AC@3 {v['ac3']:.3f} Avg@5 {v['avg5']:.3f} MRR {v['mrr']:.3f}"
                for k, v in out.items()
            ),
            flush=True,
        )
    for d in [d for d in a.report.split(",") if d]:
        data = cached(a.root, d, cfg)
        sub = a.setting
        out, _ = evaluate([data], [], [], sub, cfg.get("l2", 0.01))
        print(f"REPORT {d} ({sub}, l2={cfg.get('l2', 0.01)}): {out}")


if __name__ == "__main__":
    main()
