"""DVC stage `rca@<dataset>-<method>`: evaluate one root-cause ranker on one dataset over the seeds of
params.yaml `benchmark`; writes benchmarks/results/rca/<dataset>/<method>.parquet (long form),
benchmarks/results/rca/<dataset>/<method>.json (summary), models/<dataset>/rca/<method>/ and an MLflow run."""

import sys

from otlp_aiops.stages.entry import stage_command, stage_parser
from otlp_aiops.stages.rca import rca_stage

if __name__ == "__main__":
    args = stage_parser("rca").parse_args()
    sys.exit(
        stage_command(
            "rca",
            args.dataset,
            args.method,
            args.params,
            stage=rca_stage,
            track=not args.no_track,
            executor=args.executor,
            ray_address=args.ray_address,
        )
    )
