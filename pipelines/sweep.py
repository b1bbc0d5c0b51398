"""DVC stage `sweep`: the grid of params.yaml `sweep` (one method on one dataset), each trial a whole
benchmark run, as Ray Tune trials on a Ray executor or one after another locally; writes
benchmarks/results/sweeps/<dataset>/<task>-<method>.json and one MLflow parent run with a nested run
per trial."""

import sys

from otlp_aiops.sweep import sweep_command, sweep_parser

if __name__ == "__main__":
    args = sweep_parser().parse_args()
    sys.exit(
        sweep_command(
            args.params, track=not args.no_track, executor=args.executor, ray_address=args.ray_address
        )
    )
