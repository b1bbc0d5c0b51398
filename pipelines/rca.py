"""DVC stage `rca@<dataset>-<method>`: evaluate one root-cause ranker on one dataset over the seeds of
params.yaml `benchmark`; writes benchmarks/results/rca/<dataset>/<method>.parquet (long form),
benchmarks/results/rca/<dataset>/<method>.json (summary), models/<dataset>/rca/<method>/ and an MLflow run."""

import sys

from otlp_aiops.evaluate.benchmark import stage_main

if __name__ == "__main__":
    sys.exit(stage_main("rca"))
