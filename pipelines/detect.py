"""DVC stage `detect@<dataset>-<method>`: evaluate one anomaly detector on one dataset over the seeds of
params.yaml `benchmark`; writes benchmarks/results/detect/<dataset>/<method>.parquet (long form),
benchmarks/results/detect/<dataset>/<method>.json (summary), models/<dataset>/detect/<method>/ and an MLflow run."""

import sys

from otlp_aiops.evaluate.benchmark import stage_main

if __name__ == "__main__":
    sys.exit(stage_main("detect"))
