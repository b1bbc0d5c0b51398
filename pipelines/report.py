"""DVC stage `report`: the long-form results of every benchmark.datasets × method in params.yaml ->
benchmarks/tables/ (Markdown, LaTeX, CSV, leaderboard.md), benchmarks/figures/ (PNG: the `dvc plots`),
benchmarks/report/index.html (the offline HTML report) and metrics/leaderboard.json (the DVC metrics).
All of it lives in otlp_aiops.report.stage."""

from __future__ import annotations

import sys

from otlp_aiops.report.stage import main

if __name__ == "__main__":
    sys.exit(main())
