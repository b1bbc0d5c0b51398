"""Benchmark report: aggregation over seeds and cases, bootstrap intervals, Wilcoxon + Holm,
tables (Markdown, LaTeX, CSV), AC@k curves for ``dvc plots`` and a critical-difference figure."""

from otlp_aiops.report.build import build_report
from otlp_aiops.report.stats import RESULT_COLUMNS, holm, load_results, significance, summarize

__all__ = ["RESULT_COLUMNS", "build_report", "holm", "load_results", "significance", "summarize"]
