"""Volume Under the Surface (VUS-PR, VUS-ROC) for anomaly scores on a labelled series.

Definition: Paparrizos, Boniol, Palpanas, Tsay, Elmore, Franklin, "Volume Under the Surface: a New
Accuracy Evaluation Measure for Time-Series Anomaly Detection", PVLDB 15(11), 2022; as evaluated in
TSB-AD (Liu & Paparrizos, NeurIPS 2024 Datasets & Benchmarks; PyPI ``tsb-ad`` 1.5,
``basic_metricor.RangeAUC_volume_opt``), whose numbers this module reproduces. Our own, vectorised
formulation of that definition:

For every buffer length ℓ = 0 … L (L = ``max_buffer``), with h = ⌊ℓ/2⌋:

* every labelled range [s, e] gets a soft border: positions s−h … s−1 weigh √(1 − (s−x)/ℓ) and
  e+1 … e+h weigh √(1 − (x−e)/ℓ) (summed over ranges, capped at 1); labelled positions weigh 1;
* the buffered ranges [s−h, e+h] are merged where they touch or overlap (two stay apart only when
  e_i + h < s_{i+1} − h), giving the "existence" segments;
* at a threshold τ (predictions: score ≥ τ), with A = labelled predicted points, B = Σ border weight
  of predicted border points, P = labelled points, N_pred = predicted points:
  TP = A + B, P' = P + B/2, recall = min(TP/P', 1), TPR = recall × (segments hit / segments),
  FPR = (N_pred − TP) / (n − P'), precision = TP / N_pred;
* thresholds are the scores at ``n_thresholds`` evenly spaced positions of the descending sort
  (TSB-AD's 250 by default);
* AP_ℓ = Σ_j (TPR_j − TPR_{j−1}) · precision_j starting from TPR_0 = 0; AUC_ℓ = trapezoid of the
  ROC points framed by (0, 0) and (1, 1).

VUS-PR = mean over ℓ of AP_ℓ; VUS-ROC = mean over ℓ of AUC_ℓ. Ranges come from the binary labels as
contiguous runs of 1 (in index order, as in TSB-AD).
"""

from __future__ import annotations

import itertools
import math

import numpy as np


def label_ranges(labels: np.ndarray) -> list[tuple[int, int]]:
    """Contiguous runs of 1 as inclusive (start, end) index pairs."""
    y = np.asarray(labels).astype(np.int8)
    if y.ndim != 1:
        raise ValueError(f"labels must be 1-D, got shape {y.shape}")
    padded = np.concatenate([[0], y, [0]])
    d = np.diff(padded)
    starts = np.flatnonzero(d == 1)
    ends = np.flatnonzero(d == -1) - 1
    return [(int(s), int(e)) for s, e in zip(starts, ends, strict=True)]


def _border_weights(n: int, ranges: list[tuple[int, int]], ell: int, is_label: np.ndarray) -> np.ndarray:
    w = np.zeros(n, dtype=np.float64)
    h = ell // 2
    if h == 0:
        return w
    for s, e in ranges:
        after = np.arange(e + 1, min(e + h + 1, n))
        w[after] += np.sqrt(1.0 - (after - e) / ell)
        before = np.arange(max(s - h, 0), s)
        w[before] += np.sqrt(1.0 - (s - before) / ell)
    w = np.minimum(w, 1.0)
    w[is_label] = 0.0  # labelled positions count as 1 through A, not through the border
    return w


def _existence_segments(n: int, ranges: list[tuple[int, int]], ell: int) -> list[tuple[int, int]]:
    h = ell // 2
    segs: list[tuple[int, int]] = []
    start = max(ranges[0][0] - h, 0)
    for (_, e), (s_next, _) in itertools.pairwise(ranges):
        if e + h < s_next - h:
            segs.append((start, e + h))
            start = s_next - h
    segs.append((start, min(ranges[-1][1] + h, n - 1)))
    return segs


def vus(labels: np.ndarray, scores: np.ndarray, max_buffer: int = 4,
        n_thresholds: int = 250) -> dict[str, float]:
    """VUS-PR and VUS-ROC (``{"vus_pr": …, "vus_roc": …}``); NaN when there is no labelled point.

    ``max_buffer`` is L in windows (the buffer grows 0 … L; each side gets ⌊ℓ/2⌋ windows)."""
    y = np.asarray(labels)
    s = np.asarray(scores, dtype=np.float64)
    if y.shape != s.shape or y.ndim != 1:
        raise ValueError(f"labels {y.shape} and scores {s.shape} must be 1-D of one length")
    if not np.isin(y, (0, 1)).all():
        raise ValueError("labels must be 0/1")
    if np.isnan(s).any():
        raise ValueError(f"scores contain {int(np.isnan(s).sum())} NaN values")
    if max_buffer < 0 or n_thresholds < 1:
        raise ValueError("max_buffer must be ≥ 0 and n_thresholds ≥ 1")
    y = y.astype(bool)
    n = len(y)
    ranges = label_ranges(y)
    if not ranges:
        return {"vus_pr": math.nan, "vus_roc": math.nan}
    P = float(y.sum())

    order = np.argsort(-s, kind="stable")
    s_desc = s[order]
    thr = s_desc[np.linspace(0, n - 1, n_thresholds).astype(int)]
    # number of points with score ≥ τ: -s_desc is ascending
    n_pred = np.searchsorted(-s_desc, -thr, side="right")
    prefix_label = np.concatenate([[0.0], np.cumsum(y[order].astype(np.float64))])
    A = prefix_label[n_pred]

    aps, aucs = [], []
    for ell in range(max_buffer + 1):
        w = _border_weights(n, ranges, ell, y)
        B = np.concatenate([[0.0], np.cumsum(w[order])])[n_pred]
        segs = _existence_segments(n, ranges, ell)
        seg_max = np.array([s[a : b + 1].max() for a, b in segs])
        hit = (seg_max[None, :] >= thr[:, None]).sum(axis=1)
        tp = A + B
        p_new = P + B / 2.0
        tpr = np.minimum(tp / p_new, 1.0) * (hit / len(segs))
        fpr = (n_pred - tp) / (n - p_new)
        prec = tp / n_pred
        tpr_prev = np.concatenate([[0.0], tpr[:-1]])
        aps.append(float(np.sum((tpr - tpr_prev) * prec)))
        x = np.concatenate([[0.0], fpr, [1.0]])
        t = np.concatenate([[0.0], tpr, [1.0]])
        aucs.append(float(np.sum((x[1:] - x[:-1]) * (t[1:] + t[:-1]) / 2.0)))
    return {"vus_pr": float(np.mean(aps)), "vus_roc": float(np.mean(aucs))}


def vus_pr(labels: np.ndarray, scores: np.ndarray, max_buffer: int = 4, n_thresholds: int = 250) -> float:
    return vus(labels, scores, max_buffer, n_thresholds)["vus_pr"]
