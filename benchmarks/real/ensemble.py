"""The label-free ``ensemble`` ranker (params.yaml ``rca.ensemble``) beside its members, per fault type,
and how its setting was chosen: on the simulators only, then applied unchanged to the real days.

    python benchmarks/real/ensemble.py FEATURES_FOLDER [...] \
        [--select-on sim-boutique,sim-trainticket] [--out benchmarks/results/ensemble.json]

Every member variant ranks every case once (built by the registry, timed, cached); each candidate
setting — member settings (``--member-grid``, default ``multimodal.sustain_windows`` 0, 2, 3, 5) x
member order (the first breaks fused ties) x rule (``rrf`` with k in ``--ks``, ``score``) — then
fuses those rankings. The setting is chosen on the ``--select-on``
datasets alone: the highest mean AC@1, ties broken by the mean Avg@5, then MRR, then the grid order. The chosen setting's figures are reported on every dataset; ``lodo`` repeats the
choice leaving each dataset with traces out in turn (chosen on the others, scored on it). The
figures of ``params.yaml``'s own setting (which should be the chosen one) are the ``ensemble`` rows.
Seconds per case: the members' ``rank`` plus the fusion (the features stage is not counted; the
first ``nezha`` rank, which reads the ingest tables, is). Prints tables; writes the JSON atomically.
The ingest tables of each folder are read from ``<folder>/../../interim/<name>`` (nezha's default).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from otlp_aiops import registry
from otlp_aiops.config import config_from_dict
from otlp_aiops.evaluate.rca import aggregate_rca, rca_case_result
from otlp_aiops.features.store import load_cases, load_reference
from otlp_aiops.rca.ensemble import EnsembleConfig, EnsembleRanker

ROOT = Path(__file__).resolve().parents[2]
METRICS = ("ac_at_1", "ac_at_3", "ac_at_5", "avg_at_5", "mrr")


class Pool:
    """One dataset's cases and every member ranking computed so far, cached by (member, config):
    each member variant ranks every case once, whatever number of settings reuse it."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.cases = [c for c in load_cases(folder) if c.root_cause_service]
        self.reference = load_reference(folder)
        self.dataset = json.loads((folder / "meta.json").read_text()).get("dataset", folder.name)
        # traces: the case carries call-edge series (the trace-structure features were built)
        self.has_traces = bool(self.cases) and self.cases[0].edges is not None
        self._cache: dict[tuple[str, str], list[tuple[Any, float]]] = {}

    def rankings(self, member: str, config: dict) -> list[tuple[Any, float]]:
        key = (member, json.dumps(config, sort_keys=True, default=str))
        if key not in self._cache:
            r = registry.create("ranker", member, config).fit(self.reference)
            out = []
            for c in self.cases:
                t0 = time.perf_counter()
                out.append((r.rank(c), time.perf_counter() - t0))
            self._cache[key] = out
        return self._cache[key]


def _summary(pool: Pool, ranked: list[tuple[Any, float]]) -> dict:
    results = [rca_case_result(c.case_id, r, c.root_cause_service, fault_type=c.fault_type, seconds=s)
               for c, (r, s) in zip(pool.cases, ranked, strict=True)]
    agg = aggregate_rca(results)
    return {"overall": {k: round(float(agg.overall[k]), 4) for k in (*METRICS, "seconds")},
            "by_fault_type": {ft: {k: round(float(v[k]), 4) for k in (*METRICS, "n_cases")}
                              for ft, v in sorted(agg.by_fault_type.items())},
            "ranks": [r.rank for r in results]}


def score(pool: Pool, cfg: EnsembleConfig) -> dict:
    """AC@k, Avg@5, MRR overall and per fault type of the fusion ``cfg`` on ``pool``'s cases (the
    members' rankings from the cache; seconds: the members' ``rank`` plus the fusion)."""
    mc = cfg.member_configs or {}
    per = [pool.rankings(m, dict(mc.get(m) or {})) for m in cfg.members]
    e = EnsembleRanker(cfg)
    ranked = []
    for i, c in enumerate(pool.cases):
        t0 = time.perf_counter()
        r = e.fuse(c.services, [p[i][0] for p in per])
        ranked.append((r, sum(p[i][1] for p in per) + time.perf_counter() - t0))
    return _summary(pool, ranked)


def single(pool: Pool, member: str, config: dict) -> dict:
    """Member ``member`` alone, in the same protocol."""
    return _summary(pool, pool.rankings(member, config))


def variants(base: EnsembleConfig, spec: str) -> list[tuple[str, dict]]:
    """The member-config axis of the grid: ``member.key=v1,v2`` (``;`` between several) over the
    members' params.yaml configs; ("", the configs as given) when ``spec`` is empty."""
    out = [("", {m: dict((base.member_configs or {}).get(m) or {}) for m in base.members})]
    for part in filter(None, (s.strip() for s in spec.split(";"))):
        target, _, values = part.partition("=")
        member, _, key = target.partition(".")
        if member not in base.members or not key or not values:
            raise SystemExit(f"--member-grid: expected member.key=v1,v2 with a member of {list(base.members)}, got {part!r}")
        nxt = []
        for lbl, mc in out:
            for v in values.split(","):
                val = yaml.safe_load(v)
                nxt.append((f"{lbl} {member}.{key}={v}".strip(), {**mc, member: {**mc[member], key: val}}))
        out = nxt
    return out


def grid(base: EnsembleConfig, ks: list[float], member_grid: str = "") -> list[tuple[str, EnsembleConfig]]:
    out = []
    orders = [base.members, tuple(reversed(base.members))] if len(base.members) == 2 else [base.members]
    for vlabel, mc in variants(base, member_grid):
        for members in orders:
            for k in ks:
                out.append((vlabel, dataclasses.replace(base, members=members, rule="rrf", k=float(k), weights=(),
                                                        member_configs=mc)))
            out.append((vlabel, dataclasses.replace(base, members=members, rule="score", weights=(), member_configs=mc)))
    return out


def label(cand: tuple[str, EnsembleConfig]) -> str:
    vlabel, cfg = cand
    return (f"{'+'.join(cfg.members)} {cfg.rule}" + (f" k={cfg.k:g}" if cfg.rule == "rrf" else "")
            + (f" [{vlabel}]" if vlabel else ""))


def choose(cands: list, table: dict, names: list[str]) -> tuple[int, dict]:
    """Index of the best candidate on datasets ``names`` (mean AC@1, then Avg@5, then MRR, then order)."""
    def key(i: int) -> tuple:
        m = [np.mean([table[n][i]["overall"][k] for n in names]) for k in ("ac_at_1", "avg_at_5", "mrr")]
        return (-round(m[0], 6), -round(m[1], 6), -round(m[2], 6), i)
    best = min(range(len(cands)), key=key)
    return best, {k: round(float(np.mean([table[n][best]["overall"][k] for n in names])), 4)
                  for k in ("ac_at_1", "avg_at_5", "mrr")}


def ties(cands: list, table: dict, names: list[str], best: int) -> list[int]:
    """The candidates equal to ``best`` on every dataset of ``names`` (AC@1, Avg@5, MRR): the choice
    among them is the grid order's, not the data's."""
    same = lambda i: all(table[n][i]["overall"][k] == table[n][best]["overall"][k]  # noqa: E731
                         for n in names for k in ("ac_at_1", "avg_at_5", "mrr"))
    return [i for i in range(len(cands)) if same(i)]


def show(name: str, n: int, rows: dict[str, dict]) -> None:
    print(f"\n{name}: {n} cases")
    print(f"{'method':34s} {'fault type':16s} {'n':>3s} " + " ".join(f"{k:>8s}" for k in METRICS) + "  s/case")
    for m, r in rows.items():
        o = r["overall"]
        print(f"{m:34s} {'all':16s} {n:3d} " + " ".join(f"{o[k]:8.3f}" for k in METRICS) + f"  {o['seconds']:.3f}")
        for ft, f in r["by_fault_type"].items():
            print(f"{'':34s} {ft:16s} {int(f['n_cases']):3d} " + " ".join(f"{f[k]:8.3f}" for k in METRICS))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("folders", nargs="+", type=Path)
    ap.add_argument("--select-on", default="sim-boutique,sim-trainticket",
                    help="datasets (folder names) the setting is chosen on")
    ap.add_argument("--ks", default="0,0.5,1,2,5,10,20,60", help="rrf k values of the grid")
    ap.add_argument("--member-grid", default="multimodal.sustain_windows=0,2,3,5",
                    help="member settings of the grid: member.key=v1,v2[;member.key=...] ('' = as in params.yaml)")
    ap.add_argument("--params", type=Path, default=ROOT / "params.yaml")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "ensemble.json")
    args = ap.parse_args(argv)
    warnings.simplefilter("ignore", RuntimeWarning)
    params = yaml.safe_load(args.params.read_text())
    section = params["rca"]["ensemble"]
    base = config_from_dict(EnsembleConfig, section, where="params.yaml rca.ensemble: ")
    cands = grid(base, [float(k) for k in args.ks.split(",")], args.member_grid)
    select = args.select_on.split(",")

    pools = {f.name: Pool(f) for f in args.folders}
    missing = [n for n in select if n not in pools]
    if missing:
        raise SystemExit(f"--select-on: {', '.join(missing)} not among the folders given")
    table = {n: [score(p, c) for _, c in cands] for n, p in pools.items()}
    best, sel_fig = choose(cands, table, select)
    tied = ties(cands, table, select, best)
    print(f"chosen on {', '.join(select)}: {label(cands[best])} (mean {sel_fig}); equal there: "
          + ", ".join(label(cands[j]) for j in tied))
    params_is_chosen = cands[best][1] == dataclasses.replace(base, weights=())
    if not params_is_chosen:
        print(f"note: params.yaml rca.ensemble ({label(('', base))}) is not the setting chosen on the simulators")

    traced = [n for n, p in pools.items() if p.has_traces]
    lodo = {}
    for held in traced:
        others = [n for n in traced if n != held]
        if not others:
            continue
        i, fig = choose(cands, table, others)
        tied_i = ties(cands, table, others, i)
        lodo[held] = {"chosen_on": others, "setting": label(cands[i]), "on_chosen": fig,
                      "held_out": table[held][i]["overall"],
                      "tied_settings": [label(cands[j]) for j in tied_i],
                      "held_out_ac_at_1_over_tied": [table[held][j]["overall"]["ac_at_1"] for j in tied_i]}

    results = {}
    for n, p in pools.items():
        rows = {}
        for m in base.members:
            mine = dict((base.member_configs or {}).get(m) or {})
            own = dict((params.get("rca") or {}).get(m) or {})
            if own and own != mine:  # the member as its own params.yaml section configures it
                rows[f"{m} (alone, rca.{m})"] = single(p, m, own)
            rows[f"{m} (alone, as in rca.ensemble)"] = single(p, m, mine)
        chosen_mc = cands[best][1].member_configs or {}
        for m in base.members:
            if chosen_mc.get(m) != (base.member_configs or {}).get(m):
                rows[f"{m} (alone, as chosen)"] = single(p, m, dict(chosen_mc.get(m) or {}))
        rows["ensemble (params.yaml)"] = score(p, base)
        rows[f"chosen: {label(cands[best])}"] = table[n][best]
        show(p.dataset, len(p.cases), rows)
        results[n] = {"dataset": p.dataset, "cases": len(p.cases), "has_traces": p.has_traces,
                      "case_ids": [c.case_id for c in p.cases], "methods": rows,
                      "grid": {label(c): table[n][i]["overall"] for i, c in enumerate(cands)}}
    print("\nleave one dataset out (setting chosen on the others, AC@1 / Avg@5 on the held-out one):")
    for held, v in lodo.items():
        print(f"  {held:16s} chosen on {','.join(v['chosen_on']):34s} {v['setting']:58s} "
              f"{v['held_out']['ac_at_1']:.3f} / {v['held_out']['avg_at_5']:.3f}   (AC@1 over the settings tied on "
              f"the others: {min(v['held_out_ac_at_1_over_tied']):.3f}..{max(v['held_out_ac_at_1_over_tied']):.3f}, "
              f"{len(v['tied_settings'])} settings)")

    out = {"params": {k: v for k, v in section.items() if k != "member_configs"},
           "member_grid": args.member_grid, "ks": args.ks,
           "selection": {"on": select, "rule": "max mean AC@1, then Avg@5, then MRR, then grid order",
                         "chosen": label(cands[best]), "figures": sel_fig, "params_is_chosen": params_is_chosen,
                         "tied": [label(cands[j]) for j in tied]},
           "lodo": lodo, "results": results}
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from machine import machine_info

    out["machine"] = machine_info()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{args.out.name}.", dir=args.out.parent)
    with os.fdopen(fd, "w") as f:
        json.dump(out, f, indent=1, sort_keys=True, default=str)
        f.write("\n")
    os.replace(tmp, args.out)
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
