"""DVC stage `features`: data/interim/<dataset> + data/raw/<dataset> -> data/features/<dataset>
(+ metrics/features/<dataset>.json). Settings: params.yaml `features` (+ `features.overrides.<dataset>`)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml

from otlp_aiops.config import ConfigError
from otlp_aiops.executor import ExecutorError, executor_config
from otlp_aiops.features.build import FeaturesError, build_features
from otlp_aiops.features.config import resolve_config
from otlp_aiops.outputs import OutputError, atomic_write_json, check_name


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--dataset", help="dataset name (default: params.yaml `dataset`)")
    ap.add_argument(
        "--executor", choices=("local", "ray"), help="Where the time partitions run (default: params.yaml)."
    )
    ap.add_argument("--ray-address", help="The Ray cluster to join (auto, host:port, ray://host:port).")
    ap.add_argument(
        "--partition",
        type=float,
        default=3600.0,
        help="ray: seconds of data per task (rounded to whole windows; default 3600)",
    )
    args = ap.parse_args()
    params = yaml.safe_load(Path(args.params).read_text()) or {}
    dataset = args.dataset or params.get("dataset")
    known = params.get("datasets")
    if not dataset:
        print(f"error: {args.params}: no `dataset` and no --dataset", file=sys.stderr)
        return 2
    try:  # the name becomes data/features/<dataset>: never a path of its own
        check_name(dataset)
    except OutputError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if known and dataset not in known:
        print(
            f"error: dataset {dataset!r} is not in {args.params} `datasets` ({', '.join(known)})",
            file=sys.stderr,
        )
        return 2
    try:
        cfg = resolve_config(params.get("features"), dataset, where=f"{args.params} features: ")
        summary = build_features(
            Path("data/interim") / dataset,
            Path("data/raw") / dataset,
            Path("data/features") / dataset,
            cfg,
            dataset=dataset,
            executor=executor_config(params, kind=args.executor, address=args.ray_address),
            partition_s=args.partition,
        )
    except (ConfigError, FeaturesError, FileNotFoundError, ExecutorError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    metrics = Path("metrics") / "features" / f"{dataset}.json"
    # timings are printed, never stored: DVC metrics and outputs change only with the data
    counts = {k: v for k, v in summary.items() if k not in ("seconds", "timings")}
    atomic_write_json(metrics, counts)
    print(
        f"features {dataset}: {summary['windows']} windows x {summary['services']} services x "
        f"{summary['features']} features, {summary['cases']} cases, {summary['graph_edges']} graph edges "
        f"({summary['seconds']:.1f} s)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
