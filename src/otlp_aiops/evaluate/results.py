"""The long-form results table, defined once: one row per dataset × task × method × seed × case ×
metric. The rca/detect stages write it (:func:`otlp_aiops.stages.common.write_results`) and the
report reads it (:mod:`otlp_aiops.report.stats`)."""

from __future__ import annotations

# (column, Arrow type name): the Parquet schema of benchmarks/results/<task>/<dataset>/<method>.parquet
RESULT_SCHEMA: tuple[tuple[str, str], ...] = (
    ("dataset", "string"),
    ("task", "string"),
    ("method", "string"),
    ("seed", "int64"),
    ("case_id", "string"),  # "" marks a series-level value (one per dataset × method × seed)
    ("fault_type", "string"),
    ("metric", "string"),
    ("value", "float64"),
    ("run_id", "string"),  # "" in the tracked files (the same inputs give the same bytes)
)
RESULT_COLUMNS: tuple[str, ...] = tuple(name for name, _ in RESULT_SCHEMA)
