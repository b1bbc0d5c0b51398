"""DVC stage `detect@<dataset>-<method>`: evaluate one anomaly detector on one dataset over the seeds of
params.yaml `benchmark`; writes benchmarks/results/detect/<dataset>/<method>.parquet (long form),
benchmarks/results/detect/<dataset>/<method>.json (summary), models/<dataset>/detect/<method>/ and an
MLflow run."""

import sys

from otlp_aiops.stages.detect import detect_stage
from otlp_aiops.stages.entry import stage_command, stage_parser

if __name__ == "__main__":
    args = stage_parser("detect").parse_args()
    sys.exit(
        stage_command(
            "detect",
            args.dataset,
            args.method,
            args.params,
            stage=detect_stage,
            track=not args.no_track,
            executor=args.executor,
            ray_address=args.ray_address,
        )
    )
