"""The evaluation protocol: which data a method learns from and which cases it is tested on.

* Unsupervised rankers and detectors learn from fault-free data only; every case is a test case.
* Supervised rankers (``gnn``, ``mlp``) never see a test incident in training: either they are
  trained on another dataset (the simulator with another seed; or, for the transfer experiment,
  the simulator applied to a real dataset unchanged), or k-fold cross-validation over incidents
  assigns each incident to exactly one test fold.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def incident_folds(case_ids: Sequence[str], k: int, seed: int) -> list[tuple[list[int], list[int]]]:
    """k folds over the cases: ``[(train_positions, test_positions), ...]``; every case is in exactly
    one test fold; the assignment is a seeded permutation dealt round-robin, so folds differ in size
    by at most one. ``k`` larger than the number of cases becomes leave-one-out."""
    n = len(case_ids)
    if n < 2:
        raise ValueError(f"k-fold needs at least 2 cases, got {n}")
    k = max(2, min(int(k), n))
    order = np.random.default_rng(seed).permutation(n)
    fold_of = np.empty(n, dtype=np.int64)
    fold_of[order] = np.arange(n) % k
    folds = []
    for f in range(k):
        test = [i for i in range(n) if fold_of[i] == f]
        train = [i for i in range(n) if fold_of[i] != f]
        folds.append((train, test))
    return folds


def fault_free_split(times: np.ndarray, fault_free: np.ndarray, fraction: float) -> np.ndarray:
    """Boolean mask of the detectors' training rows: the earliest ``fraction`` of the fault-free
    windows, in time order. Everything else — every incident window and the later fault-free windows —
    is the test part. Unlike a cut of the time span, this works whether a dataset's fault-free data
    come first (the simulator's warm-up), are interleaved with the incidents (Nezha), or are a separate
    recording months later (PetShop), and every incident is evaluated."""
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"train fraction must be in (0, 1), got {fraction}")
    idx = np.flatnonzero(fault_free)
    order = idx[np.argsort(times[idx].astype("datetime64[ns]").astype(np.int64), kind="stable")]
    train = np.zeros(len(times), dtype=bool)
    train[order[: int(np.floor(len(order) * fraction))]] = True
    return train


def subset_segments(rows: np.ndarray, segment: np.ndarray) -> np.ndarray:
    """Segment numbers for the selected rows (a boolean mask or positions) of a time-ordered series:
    a new segment wherever the selection skips a row or the series' own segment changes, so that a
    sequence model never slides a window across a gap the selection made."""
    idx = np.flatnonzero(rows) if rows.dtype == bool else np.asarray(rows, dtype=np.int64)
    if len(idx) == 0:
        return np.zeros(0, dtype=np.int64)
    brk = np.ones(len(idx), dtype=bool)
    brk[1:] = (np.diff(idx) != 1) | (np.diff(segment[idx]) != 0)
    return np.cumsum(brk) - 1
