#!/usr/bin/env bash
# GNN vs its no-graph MLP ablation, and the GNN's convolution and depth, as queued DVC experiments.
# Each variant is one `dvc exp run --queue`; `dvc queue start -j 1` runs them; every run logs to the
# same MLflow store (mlflow.db at the repository root) and `dvc exp show` compares the metrics.
set -euo pipefail
cd "$(dirname "$0")/.."
dvc exp run --queue --name gnn-gat -S rca.gnn.conv=gat
dvc exp run --queue --name gnn-3layers -S rca.gnn.layers=3
dvc exp run --queue --name supervised-with-saturation-logs \
  -S 'rca.gnn.kinds=[latency, errors, traffic, cpu, memory, saturation, logs]' \
  -S 'rca.mlp.kinds=[latency, errors, traffic, cpu, memory, saturation, logs]'
echo "queued; run them with: dvc queue start -j 1 && dvc queue status && dvc exp show"
