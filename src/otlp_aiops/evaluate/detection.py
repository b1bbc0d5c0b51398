"""Anomaly-detection metrics on a time-ordered series of windows.

Inputs, one entry per window: ``scores`` (higher = more anomalous), ``labels`` (1 where the window
overlaps a labelled incident), ``incidents`` (its id, "" elsewhere), ``times`` (window starts,
``datetime64[ns]``), and the detector's ``threshold`` (a window is flagged when score > threshold, as
``Detector.predict``). Optional ``fault_free`` marks the windows on which false alarms are counted
(default: every unlabelled window).

Metrics (threshold-free first, then at the detector's threshold):

* ``auc_pr`` — average precision (scikit-learn ``average_precision_score``);
* ``vus_pr`` / ``vus_roc`` — Volume Under the Surface (Paparrizos et al., PVLDB 2022), see
  :mod:`otlp_aiops.evaluate.vus`;
* ``range_precision`` / ``range_recall`` / ``range_f1`` — range-based precision and recall of
  Tatbul, Lee, Zdonik, Alam, Gottschlich, "Precision and Recall for Time Series", NeurIPS 2018, with
  flat positional bias δ = 1, reciprocal cardinality γ(x) = 1/x, and existence weight α for recall
  (``alpha``, default 1.0: an incident counts as detected when any of its windows is flagged;
  precision has no existence term in that definition). Real ranges are the incidents (all windows
  sharing an id); predicted ranges are maximal runs of flagged, contiguous windows;
* ``detection_delay_s`` — per incident, seconds from the incident's start (default: the start of
  its first window) to the start of its first flagged window; None when the incident is missed;
* ``false_alarms_per_hour`` — flagged runs that start in a fault-free window, divided by the hours
  of fault-free windows;
* ``pa_f1`` — point-adjusted F1 (every window of a detected incident counts as detected). It is known
  to inflate results (Kim et al., AAAI 2022) and is reported only under that name, never as a headline.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from otlp_aiops.evaluate.vus import vus

DEFAULT_VUS_BUFFER = 4  # windows: the VUS buffer grows 0..4, i.e. up to ±2 windows around a range


@dataclass(frozen=True)
class DetectionInput:
    """Validated, aligned per-window arrays."""

    scores: np.ndarray  # float64
    labels: np.ndarray  # bool
    incidents: np.ndarray  # object (str)
    times: np.ndarray  # datetime64[ns]
    pred: np.ndarray  # bool: score > threshold
    fault_free: np.ndarray  # bool
    window_ns: int

    @property
    def window_seconds(self) -> float:
        return self.window_ns / 1e9


def prepare(scores, labels, incidents, times, threshold: float, *, fault_free=None,
            window_seconds: float | None = None) -> DetectionInput:
    """Check and align the inputs; every error says what is wrong and where."""
    s = np.asarray(scores, dtype=np.float64)
    n = len(s)
    y = np.asarray(labels)
    inc = np.asarray(incidents, dtype=object)
    t = np.asarray(times).astype("datetime64[ns]")
    for name, a in (("labels", y), ("incidents", inc), ("times", t)):
        if a.shape != (n,):
            raise ValueError(f"{name} has shape {a.shape}, expected ({n},) like scores")
    if s.ndim != 1:
        raise ValueError(f"scores must be 1-D, got shape {s.shape}")
    if np.isnan(s).any():
        raise ValueError(f"scores: {int(np.isnan(s).sum())} NaN values (first at window "
                         f"{int(np.flatnonzero(np.isnan(s))[0])})")
    if not np.isin(y, (0, 1)).all():
        raise ValueError("labels must be 0/1")
    y = y.astype(bool)
    inc = np.array(["" if v is None else str(v) for v in inc], dtype=object)
    bad = np.flatnonzero(y != (inc != ""))
    if len(bad):
        i = int(bad[0])
        raise ValueError(f"{len(bad)} windows where the label and the incident id disagree; first: window "
                         f"{i} label={int(y[i])} incident={inc[i]!r}")
    ti = t.astype(np.int64)
    if n > 1 and (np.diff(ti) <= 0).any():
        i = int(np.flatnonzero(np.diff(ti) <= 0)[0])
        raise ValueError(f"times must be strictly increasing; window {i + 1} is not after window {i}")
    if window_seconds is None:
        if n < 2:
            raise ValueError("window_seconds is needed for a series of fewer than two windows")
        window_ns = int(np.median(np.diff(ti)))
    else:
        window_ns = round(float(window_seconds) * 1e9)
    if window_ns <= 0:
        raise ValueError(f"window length must be positive, got {window_ns} ns")
    if not np.isfinite(threshold):
        raise ValueError(f"threshold must be finite, got {threshold}")
    ff = ~y if fault_free is None else np.asarray(fault_free).astype(bool)
    if ff.shape != (n,):
        raise ValueError(f"fault_free has shape {ff.shape}, expected ({n},)")
    if (ff & y).any():
        raise ValueError(f"{int((ff & y).sum())} windows are both fault-free and labelled")
    return DetectionInput(scores=s, labels=y, incidents=inc, times=t, pred=s > threshold,
                          fault_free=ff, window_ns=window_ns)


def flagged_runs(pred: np.ndarray, times: np.ndarray, window_ns: int) -> list[tuple[int, int]]:
    """Maximal runs of flagged windows as inclusive (first, last) index pairs; a run breaks where
    the next window does not follow within one window length (a gap in the recording)."""
    ti = np.asarray(times).astype("datetime64[ns]").astype(np.int64)
    runs: list[tuple[int, int]] = []
    start = None
    for i in range(len(pred)):
        if pred[i]:
            if start is None:
                start = i
            elif ti[i] - ti[i - 1] > window_ns:
                runs.append((start, i - 1))
                start = i
        elif start is not None:
            runs.append((start, i - 1))
            start = None
    if start is not None:
        runs.append((start, len(pred) - 1))
    return runs


def incident_windows(incidents: np.ndarray) -> dict[str, np.ndarray]:
    """Window indices per incident id, in order of first appearance."""
    out: dict[str, list[int]] = {}
    for i, v in enumerate(incidents):
        if v:
            out.setdefault(v, []).append(i)
    return {k: np.array(v, dtype=np.int64) for k, v in out.items()}


def range_precision_recall(events: Mapping[str, np.ndarray], runs: list[tuple[int, int]],
                           alpha: float = 1.0) -> tuple[float, float]:
    """Tatbul et al. (NeurIPS 2018) range-based precision and recall, flat bias, γ(x) = 1/x.

    Recall = mean over real ranges R_i of α·Existence + (1−α)·CF·Σ_j |R_i ∩ P_j| / |R_i|;
    precision = mean over predicted ranges P_j of CF·Σ_i |P_j ∩ R_i| / |P_j|, where CF = 1/x with x
    the number of ranges of the other kind the range overlaps. Recall is NaN without real ranges,
    precision is 0 without predicted ranges (nothing correct was predicted)."""
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    real = [np.asarray(v) for v in events.values()]
    pred_sets = [np.arange(a, b + 1) for a, b in runs]
    # overlap[i, j] = |R_i ∩ P_j|
    overlap = np.array([[np.intersect1d(r, p, assume_unique=True).size for p in pred_sets] for r in real],
                       dtype=np.float64).reshape(len(real), len(pred_sets))
    if real:
        touched = (overlap > 0).sum(axis=1)
        cf = np.where(touched > 0, 1.0 / np.maximum(touched, 1), 0.0)
        size = np.array([r.size for r in real], dtype=np.float64)
        ov = cf * overlap.sum(axis=1) / size
        recall = float(np.mean(alpha * (touched > 0) + (1.0 - alpha) * ov))
    else:
        recall = math.nan
    if pred_sets:
        touched_p = (overlap > 0).sum(axis=0)
        cf_p = np.where(touched_p > 0, 1.0 / np.maximum(touched_p, 1), 0.0)
        size_p = np.array([p.size for p in pred_sets], dtype=np.float64)
        precision = float(np.mean(cf_p * overlap.sum(axis=0) / size_p))
    else:
        precision = 0.0
    return precision, recall


def _f1(p: float, r: float) -> float:
    if math.isnan(p) or math.isnan(r):
        return math.nan
    return 0.0 if p + r == 0 else 2.0 * p * r / (p + r)


def detection_delays(d: DetectionInput, incident_starts: Mapping[str, np.datetime64] | None = None
                     ) -> dict[str, float | None]:
    """Seconds from each incident's start to the start of its first flagged window (None: missed).

    ``incident_starts`` gives true start times; without it the start of the incident's first window
    is used. A flagged window that began before the true start gives a delay of 0 (never negative)."""
    out: dict[str, float | None] = {}
    for inc, idx in incident_windows(d.incidents).items():
        hit = idx[d.pred[idx]]
        if not len(hit):
            out[inc] = None
            continue
        start = d.times[idx[0]] if incident_starts is None or inc not in incident_starts \
            else np.datetime64(incident_starts[inc], "ns")
        delay_ns = int((d.times[hit[0]] - start).astype("timedelta64[ns]").astype(np.int64))
        out[inc] = max(delay_ns, 0) / 1e9
    return out


def false_alarms_per_hour(d: DetectionInput) -> float:
    """Flagged runs starting in a fault-free window per fault-free hour (NaN with no such window)."""
    hours = d.fault_free.sum() * d.window_ns / 3.6e12
    if hours == 0:
        return math.nan
    starts = [a for a, _ in flagged_runs(d.pred, d.times, d.window_ns) if d.fault_free[a]]
    return len(starts) / hours


def pa_f1(d: DetectionInput) -> float:
    """Point-adjusted F1 (inflated by construction; never a headline)."""
    adj = d.pred.copy()
    for idx in incident_windows(d.incidents).values():
        if d.pred[idx].any():
            adj[idx] = True
    tp = float((adj & d.labels).sum())
    fp = float((adj & ~d.labels).sum())
    fn = float((~adj & d.labels).sum())
    return 0.0 if tp == 0 else 2 * tp / (2 * tp + fp + fn)


def auc_pr(labels: np.ndarray, scores: np.ndarray) -> float:
    """Average precision (scikit-learn); NaN without a positive window."""
    y = np.asarray(labels).astype(bool)
    if not y.any():
        return math.nan
    from sklearn.metrics import average_precision_score

    return float(average_precision_score(y, np.asarray(scores, dtype=np.float64)))


@dataclass(frozen=True)
class DetectionResult:
    metrics: dict[str, float]  # series-level metrics
    per_incident: dict[str, dict]  # incident id -> {"detected": 0/1, "detection_delay_s": float|None}


def evaluate_detection(scores, labels, incidents, times, threshold: float, *,
                       fault_free=None, window_seconds: float | None = None,
                       incident_starts: Mapping[str, np.datetime64] | None = None,
                       vus_buffer: int = DEFAULT_VUS_BUFFER, vus_thresholds: int = 250,
                       range_alpha: float = 1.0) -> DetectionResult:
    """All detection metrics for one scored series at the detector's threshold."""
    d = prepare(scores, labels, incidents, times, threshold, fault_free=fault_free,
                window_seconds=window_seconds)
    events = incident_windows(d.incidents)
    runs = flagged_runs(d.pred, d.times, d.window_ns)
    precision, recall = range_precision_recall(events, runs, alpha=range_alpha)
    delays = detection_delays(d, incident_starts)
    v = vus(d.labels.astype(np.int8), d.scores, max_buffer=vus_buffer, n_thresholds=vus_thresholds)
    detected = [x for x in delays.values() if x is not None]
    m = {
        "auc_pr": auc_pr(d.labels, d.scores),
        "vus_pr": v["vus_pr"],
        "vus_roc": v["vus_roc"],
        "range_precision": precision,
        "range_recall": recall,
        "range_f1": _f1(precision, recall),
        "false_alarms_per_hour": false_alarms_per_hour(d),
        "detection_delay_s": float(np.mean(detected)) if detected else math.nan,
        "n_incidents": float(len(events)),
        "n_detected": float(len(detected)),
        "pa_f1": pa_f1(d),
    }
    per = {k: {"detected": int(x is not None), "detection_delay_s": x} for k, x in delays.items()}
    return DetectionResult(metrics=m, per_incident=per)


# Series-level metrics go to the long form with case_id "" (one value per dataset × method × seed).
SERIES_METRICS = ("auc_pr", "vus_pr", "vus_roc", "range_precision", "range_recall", "range_f1",
                  "false_alarms_per_hour", "pa_f1")


def detection_long_rows(result: DetectionResult, *, dataset: str, method: str, seed: int,
                        run_id: str = "", fault_types: Mapping[str, str] | None = None) -> list[dict]:
    """Rows of the long-form results table for one dataset × method × seed: series-level metrics with
    ``case_id`` "" and ``fault_type`` "", and per incident ``detected`` (0/1) and
    ``detection_delay_s`` (NaN when missed; the report averages over detected incidents)."""
    base = {"dataset": dataset, "task": "detect", "method": method, "seed": int(seed), "run_id": run_id}
    rows = [{**base, "case_id": "", "fault_type": "", "metric": k, "value": float(result.metrics[k])}
            for k in SERIES_METRICS]
    ft = fault_types or {}
    for inc, r in result.per_incident.items():
        delay = r["detection_delay_s"]
        for metric, value in (("detected", float(r["detected"])),
                              ("detection_delay_s", math.nan if delay is None else float(delay))):
            rows.append({**base, "case_id": inc, "fault_type": ft.get(inc, "unknown"), "metric": metric,
                         "value": value})
    return rows
