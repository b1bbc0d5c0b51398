"""``nezha`` (our reimplementation, params.yaml ``rca.nezha``) against the original Nezha run on the same
Train Ticket day, fault by fault (issue 14), and ``nezha`` on further datasets.

    python benchmarks/real/nezha_reference.py [data/features/nezha-tt] [--also data/features/sim-boutique ...]
        [--reference ../shared/references/nezha-tt-2023-01-29.csv]
        [--csv benchmarks/real/tables/nezha_vs_reference.csv] [--out benchmarks/results/nezha_reference.json]

The features folder's ingest tables are read from ``<root>/data/interim/<name>`` beside it (the
ranker's default). Per fault: the true service, Nezha's rank of it and its top 5 (from the reference
CSV), ours, whether the two agree, our top pattern, the rank of the true (service, indicator) in our
indicator ranking (AIS rank; 0 = not found) and the seconds ``rank`` took. The summary holds AS@1/3/5
(service level) and AIS@1/3/5 of both, the gap, the number of equal ranks, and seconds: ``fit``, the
first ``rank`` (which reads the ingest tables and builds the fault-free pattern table: the per-dataset
cost, paid once), and the median of the others. ``--also`` folders get the same summary without the
reference. Prints a table; writes the CSV and the JSON atomically.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import yaml

from otlp_aiops.config import config_from_dict
from otlp_aiops.evaluate.rca import aggregate_rca, rca_case_result
from otlp_aiops.features.store import load_cases, load_reference
from otlp_aiops.rca.nezha import NezhaConfig, NezhaRanker

ROOT = Path(__file__).resolve().parents[2]
KS = (1, 3, 5)


def _atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def rank_dataset(folder: Path, cfg: NezhaConfig) -> tuple[list, dict]:
    cases = [c for c in load_cases(folder) if c.root_cause_service]
    t0 = time.perf_counter()
    ranker = NezhaRanker(cfg).fit(load_reference(folder))
    fit_s = time.perf_counter() - t0
    rows, results, secs = [], [], []
    for c in cases:
        t1 = time.perf_counter()
        r = ranker.rank(c)
        secs.append(time.perf_counter() - t1)
        res = rca_case_result(c.case_id, r, c.root_cause_service, fault_type=c.fault_type, seconds=secs[-1],
                              root_cause_indicator=c.root_cause_indicator)
        results.append(res)
        rows.append((c, r, res))
    summary = aggregate_rca(results)
    out = {
        "dataset": folder.name, "cases": len(cases), "traces_used": ranker.ref_counts_.height > 0,
        "fit_seconds": round(fit_s, 3), "first_rank_seconds": round(secs[0], 3) if secs else None,
        "median_rank_seconds": round(statistics.median(secs[1:]), 4) if len(secs) > 1 else None,
        "overall": {k: round(v, 4) for k, v in summary.overall.items()},
        "by_fault_type": {ft: {k: round(v, 4) for k, v in m.items()} for ft, m in summary.by_fault_type.items()},
    }
    return rows, out


def compare(rows: list, reference: Path) -> tuple[list[dict], dict]:
    with open(reference, newline="") as f:
        ref = list(csv.DictReader(f))
    if len(ref) != len(rows):
        raise ValueError(f"{reference}: {len(ref)} faults, the features folder has {len(rows)} cases")
    table = []
    for k, ((c, r, res), x) in enumerate(zip(rows, ref, strict=True), 1):
        if x["true_service"] != c.root_cause_service:
            raise ValueError(f"{reference} fault {k}: true service {x['true_service']} but case {c.case_id} "
                             f"says {c.root_cause_service} (order of faults differs)")
        top = r.indicators[0] if r.indicators else ("", "", 0.0)
        table.append({
            "fault_no": k, "case_id": c.case_id, "inject_time": x["inject_time"], "fault_type": c.fault_type,
            "true_service": c.root_cause_service, "label": x["label"],
            "reference_rank": int(x["nezha_rank"]), "rank": res.rank if res.rank is not None else "",
            "same_rank": int(x["nezha_rank"]) == res.rank,
            "reference_top5": x["top5_services"], "top5": ";".join(r.top(5)),
            "top_pattern": f"{top[0]}: {top[1]}", "indicator_rank": res.indicator_rank,
            "reference_seconds": float(x["seconds"]), "seconds": round(res.seconds, 3),
        })  # fmt: skip
    n = len(table)
    ref_ranks = [t["reference_rank"] for t in table]
    ours = [t["rank"] if t["rank"] != "" else 10**9 for t in table]
    summ = {"faults": n, "same_rank": sum(t["same_rank"] for t in table)}
    for k in KS:
        summ[f"reference_as_at_{k}"] = round(sum(r <= k for r in ref_ranks) / n, 4)
        summ[f"as_at_{k}"] = round(sum(r <= k for r in ours) / n, 4)
        summ[f"gap_as_at_{k}"] = round(summ[f"as_at_{k}"] - summ[f"reference_as_at_{k}"], 4)
        summ[f"ais_at_{k}"] = round(sum(0 < t["indicator_rank"] <= k for t in table) / n, 4)
    summ["reference_mean_seconds"] = round(sum(t["reference_seconds"] for t in table) / n, 2)
    summ["disagreements"] = [t["fault_no"] for t in table if not t["same_rank"]]
    return table, summ


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("features", nargs="?", default="data/features/nezha-tt", type=Path)
    ap.add_argument("--also", nargs="*", default=[], type=Path, help="further features folders (no reference)")
    ap.add_argument("--reference", type=Path, default=ROOT.parent / "shared" / "references" / "nezha-tt-2023-01-29.csv")
    ap.add_argument("--csv", type=Path, default=ROOT / "benchmarks" / "real" / "tables" / "nezha_vs_reference.csv")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "nezha_reference.json")
    ap.add_argument("--params", type=Path, default=ROOT / "params.yaml")
    args = ap.parse_args(argv)
    params = yaml.safe_load(args.params.read_text()) or {}
    section = ((params.get("rca") or {}).get("nezha")) or {}
    cfg = config_from_dict(NezhaConfig, section, where="params.yaml rca.nezha: ")
    rows, summary = rank_dataset(args.features, cfg)
    table, cmp_ = compare(rows, args.reference)
    print(f"{'#':>2} {'fault':15} {'true service':30} {'ref':>3} {'ours':>4} {'AIS':>3}  top pattern")
    for t in table:
        mark = " " if t["same_rank"] else "*"
        print(f"{t['fault_no']:2d} {t['fault_type']:15} {t['true_service']:30} {t['reference_rank']:3d} "
              f"{t['rank']!s:>4}{mark}{t['indicator_rank']:3d}  {t['top_pattern'][:90]}")
    print(json.dumps(cmp_, indent=1))
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(table[0]), lineterminator="\n")
    w.writeheader()
    w.writerows(table)
    _atomic(args.csv, buf.getvalue())
    result = {"config": {k: (list(v) if isinstance(v, tuple) else v) for k, v in vars(cfg).items()},
              "nezha_tt": {**summary, "vs_reference": cmp_}, "also": []}
    for folder in args.also:
        _, s = rank_dataset(folder, cfg)
        result["also"].append(s)
        print(folder.name, json.dumps({k: s[k] for k in ("cases", "traces_used", "fit_seconds", "first_rank_seconds",
                                                         "median_rank_seconds")}),
              {k: s["overall"].get(k) for k in ("ac_at_1", "ac_at_3", "ac_at_5", "avg_at_5", "ais_at_1", "ais_at_3")})
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from machine import machine_info

    result["machine"] = machine_info()
    _atomic(args.out, json.dumps(result, indent=2, sort_keys=True, default=str) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
