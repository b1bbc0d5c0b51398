"""Whether two result trees hold the same rca/detect results: for every
`<task>/<dataset>/<method>.parquet` under OTHER's benchmarks/results, the same file in this repository
(or BASE) byte for byte, and else value for value (every column but `run_id`).

    python benchmarks/repro/compare_results.py OTHER_ROOT [--base ROOT]

Used to check a refactor against committed real-dataset results, e.g. after
`python benchmarks/real/run_real.py --root /tmp/r --datasets nezha-tt --methods baro,nezha`.
Exits 1 when any file's values differ."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[2]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("other", type=Path)
    ap.add_argument("--base", type=Path, default=ROOT)
    args = ap.parse_args()
    bad = 0
    files = sorted((args.other / "benchmarks" / "results").glob("*/*/*.parquet"))
    for f in files:
        rel = f.relative_to(args.other)
        g = args.base / rel
        if not g.exists():
            print(f"MISSING {rel}")
            bad += 1
            continue
        if f.read_bytes() == g.read_bytes():
            print(f"bytes-identical {rel}")
            continue
        a, b = pd.read_parquet(f), pd.read_parquet(g)
        cols = [c for c in a.columns if c != "run_id"]
        same = list(a.columns) == list(b.columns) and a[cols].reset_index(drop=True).equals(
            b[cols].reset_index(drop=True)
        )
        print(f"{'values-identical' if same else 'VALUES DIFFER'} {rel}")
        bad += not same
    print(f"{len(files)} files, {bad} differing or missing")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
