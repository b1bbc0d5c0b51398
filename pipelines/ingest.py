"""DVC stage `ingest@<dataset>`: data/raw/<dataset>/otlp -> data/interim/<dataset> (Parquet tables +
report)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml

from otlp_aiops.config import ConfigError
from otlp_aiops.executor import ExecutorError, executor_config
from otlp_aiops.otlp.ingest import IngestFatalError, ingest_paths, print_summary
from otlp_aiops.otlp.ingest_config import IngestConfig
from otlp_aiops.outputs import OutputError, atomic_write_json, check_name


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("dataset")
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--executor", choices=("local", "ray"), help="Where files are converted (default: params.yaml).")
    ap.add_argument("--ray-address", help="The Ray cluster to join (auto, host:port, ray://host:port).")
    args = ap.parse_args()
    try:  # the name becomes data/raw/<dataset> and data/interim/<dataset>
        check_name(args.dataset)
    except OutputError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    params = yaml.safe_load(Path(args.params).read_text())
    try:
        cfg = IngestConfig.from_params(params, args.params)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    src = Path("data/raw") / args.dataset / "otlp"
    out = Path("data/interim") / args.dataset
    try:
        executor = executor_config(params, kind=args.executor, address=args.ray_address)
        report = ingest_paths([src], out, workers=cfg.workers, batch_rows=cfg.batch_rows, limits=cfg.limits,
                              executor=executor, block_bytes=cfg.block_bytes)
    except (IngestFatalError, ExecutorError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print_summary(report, out)
    metrics = Path("metrics") / "ingest" / f"{args.dataset}.json"
    atomic_write_json(metrics, {"dataset": args.dataset, **report["totals"]})
    return 0


if __name__ == "__main__":
    sys.exit(main())
