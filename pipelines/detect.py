"""DVC stage `detect@<dataset>-<method>`: evaluate one anomaly detector on one dataset over the seeds of
params.yaml `benchmark`; writes benchmarks/results/detect/<dataset>/<method>.parquet (long form),
metrics/detect/<dataset>/<method>.json, models/<dataset>/<method>/ and an MLflow run."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import yaml

from otlp_aiops.config import ConfigError
from otlp_aiops.evaluate.benchmark import run_detect


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("dataset")
    ap.add_argument("method")
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--no-track", action="store_true", help="Do not log to MLflow.")
    args = ap.parse_args()
    params = yaml.safe_load(Path(args.params).read_text())
    try:
        metrics = run_detect(args.dataset, args.method, params, dvc_stage=f"detect@{args.dataset}-{args.method}",
                      track=not args.no_track)
    except (ConfigError, FileNotFoundError, ValueError) as e:
        print(f"error: detect {args.dataset} {args.method}: {e}", file=sys.stderr)
        return 1
    headline = {k: v for k, v in metrics.items() if "/" not in k and "|" not in k}
    print(json.dumps(headline, indent=2, sort_keys=True, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
