"""Every metric the evaluation computes, described once: its key (in the results table, MLflow and
the DVC metrics), the label a table shows, the task, whether higher is better and the decimals shown.
``report/`` takes labels and directions from :data:`METRICS`; a new metric is one row here (and its
computation in ``evaluate/rca.py`` or ``evaluate/detection.py``)."""

from __future__ import annotations

from dataclasses import dataclass

TASKS = ("rca", "detect")


@dataclass(frozen=True)
class MetricSpec:
    name: str  # the key: ``ac_at_1``, ``vus_pr`` (``_at_``, not ``@``: MLflow rejects ``@``)
    label: str  # how a table shows it: "AC@1", "VUS-PR"
    task: str  # "rca" or "detect" ("" for a name not in the table)
    higher_is_better: bool = True
    decimals: int = 2


def _rows(task: str, *specs: tuple) -> dict[str, MetricSpec]:
    return {s[0]: MetricSpec(s[0], s[1], task, *s[2:]) for s in specs}


# (key, label[, higher_is_better[, decimals]])
METRICS: dict[str, MetricSpec] = {
    # root-cause ranking (evaluate/rca.py): RCAEval's AC@k, Avg@5, MRR
    **_rows("rca", *((f"ac_at_{k}", f"AC@{k}") for k in range(1, 11))),
    **_rows("rca", ("avg_at_5", "Avg@5"), ("mrr", "MRR")),
    # indicator level: only rankers that name indicators have them ("–" otherwise)
    **_rows("rca", *((f"ais_at_{k}", f"AIS@{k}") for k in (1, 3, 5))),
    **_rows("rca", *((f"ind_ac_at_{k}", f"IAC@{k}") for k in (1, 3, 5))),
    **_rows("rca", ("seconds", "s/case", False, 3), ("rank", "rank", False, 1)),
    # anomaly detection (evaluate/detection.py, evaluate/vus.py)
    **_rows(
        "detect",
        ("auc_pr", "AUC-PR"),
        ("vus_pr", "VUS-PR"),
        ("vus_roc", "VUS-ROC"),
        ("range_precision", "R-precision"),
        ("range_recall", "R-recall"),
        ("range_f1", "R-F1"),
        ("detected", "detected"),
        ("detection_delay_s", "delay (s)", False, 0),
        ("false_alarms_per_hour", "FA/h", False),
        ("pa_f1", "PA-F1 (inflated)"),
    ),
}


def metric_spec(name: str) -> MetricSpec:
    """The row of ``name``; a name not in the table is shown as itself, higher is better."""
    return METRICS.get(name) or MetricSpec(name, name, "")
