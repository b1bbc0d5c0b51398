#!/usr/bin/env bash
# The benchmark on the real datasets as well as the simulator's: imports Nezha (Train Ticket), Sock Shop 1
# and PetShop from the registry's local copies ($OTLP_AIOPS_EXTERNAL/datasets, default ../shared/datasets,
# checksums verified), then runs every method on every dataset. Supervised rankers (gnn, mlp) are
# cross-validated over incidents on each real dataset and, as "<method>-transfer", also applied unchanged
# after training on the simulator. `dvc exp show` lists the metrics side by side afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."
real='nezha-tt, rcd-sockshop, petshop'
dvc exp run --name "${1:-real-datasets}" \
  -S "datasets=[sim-boutique, sim-boutique-train, $real]" \
  -S "benchmark.datasets=[sim-boutique, $real]"
