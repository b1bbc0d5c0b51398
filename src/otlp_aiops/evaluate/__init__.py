"""Evaluation metrics: root-cause ranking (RCAEval's AC@k, Avg@5, MRR) and anomaly detection
(AUC-PR, VUS-PR, range-based F1, detection delay, false alarms per hour)."""

from otlp_aiops.evaluate.detection import (
    DetectionResult,
    detection_long_rows,
    evaluate_detection,
)
from otlp_aiops.evaluate.rca import (
    RcaCaseResult,
    RcaSummary,
    aggregate_rca,
    rca_case_result,
    rca_long_rows,
)
from otlp_aiops.evaluate.vus import vus, vus_pr

__all__ = [
    "DetectionResult",
    "RcaCaseResult",
    "RcaSummary",
    "aggregate_rca",
    "detection_long_rows",
    "evaluate_detection",
    "rca_case_result",
    "rca_long_rows",
    "vus",
    "vus_pr",
]
