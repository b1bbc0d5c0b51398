"""DVC stage `ingest@<dataset>`: data/raw/<dataset>/otlp -> data/interim/<dataset> (Parquet tables +
report)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import yaml

from otlp_aiops.otlp.ingest import IngestFatalError, ingest_paths, print_summary


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("dataset")
    ap.add_argument("--params", default="params.yaml")
    args = ap.parse_args()
    cfg = yaml.safe_load(Path(args.params).read_text())["ingest"]
    src = Path("data/raw") / args.dataset / "otlp"
    out = Path("data/interim") / args.dataset
    try:
        report = ingest_paths([src], out, workers=cfg["workers"], batch_rows=cfg["batch_rows"])
    except IngestFatalError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print_summary(report, out)
    metrics = Path("metrics") / "ingest" / f"{args.dataset}.json"
    metrics.parent.mkdir(parents=True, exist_ok=True)
    metrics.write_text(json.dumps({"dataset": args.dataset, **report["totals"]}, indent=2, sort_keys=True) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
