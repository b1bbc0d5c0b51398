"""The anomaly-detector contract (scikit-learn / PyOD style).

* configured only in the constructor: a frozen config dataclass (``Config``) and a seed;
* ``fit(X)`` learns from fault-free rows and returns ``self``; fitted attributes end in ``_``;
* ``score(X)`` returns one score per row, higher = more anomalous;
* ``threshold_`` comes from the training scores (a quantile set by ``contamination``), and
  ``predict(X)`` is ``score(X) > threshold_``. Threshold-free metrics use the raw scores.

``X`` is a time-ordered (rows × columns) float matrix (:class:`~otlp_aiops.features.data.DetectionData`
``.X``); ``segments`` (optional) numbers contiguous stretches so sequence models do not slide across a
gap. NaN means "no value": detectors must handle it (the base class offers median imputation).
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import numpy as np

from otlp_aiops.persist import Persistent


@dataclasses.dataclass(frozen=True)
class DetectorConfig:
    contamination: float = 0.01  # fraction of training rows above the threshold

    def __post_init__(self) -> None:
        if not 0.0 <= self.contamination < 0.5:
            raise ValueError(f"contamination: must be in [0, 0.5), got {self.contamination}")


class Detector(Persistent):
    name: ClassVar[str] = "detector"
    Config: ClassVar[type] = DetectorConfig
    stochastic: ClassVar[bool] = False  # True when the seed changes the result

    def __init__(self, config: Any = None, *, seed: int = 0) -> None:
        self._set_config(config, seed)

    # --- the contract -------------------------------------------------------------------------
    def fit(self, X: np.ndarray, segments: np.ndarray | None = None) -> Detector:
        X = self._check(X)
        self.n_features_in_ = X.shape[1]
        self._fit(X, segments)
        self.train_scores_ = self.score(X, segments)
        q = 1.0 - self.config.contamination
        self.threshold_ = float(np.quantile(self.train_scores_, q)) if len(X) else float("inf")
        return self

    def score(self, X: np.ndarray, segments: np.ndarray | None = None) -> np.ndarray:
        if not hasattr(self, "n_features_in_"):
            raise RuntimeError(f"{type(self).__name__} is not fitted; call fit() first")
        X = self._check(X)
        if X.shape[1] != self.n_features_in_:
            raise ValueError(f"expected {self.n_features_in_} columns, got {X.shape[1]}")
        s = np.asarray(self._score(X, segments), dtype=np.float64)
        if s.shape != (len(X),):
            raise AssertionError(f"{type(self).__name__}._score returned shape {s.shape}")
        return s

    def predict(self, X: np.ndarray, segments: np.ndarray | None = None) -> np.ndarray:
        return (self.score(X, segments) > self.threshold_).astype(np.int8)

    # --- for subclasses ------------------------------------------------------------------------
    def _fit(self, X: np.ndarray, segments: np.ndarray | None) -> None:
        raise NotImplementedError

    def _score(self, X: np.ndarray, segments: np.ndarray | None) -> np.ndarray:
        raise NotImplementedError

    @staticmethod
    def _check(X: np.ndarray) -> np.ndarray:
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2:
            raise ValueError(f"X must be 2-D (rows × columns), got shape {X.shape}")
        return X


def impute_medians(X: np.ndarray, medians: np.ndarray) -> np.ndarray:
    """Replace NaN by the per-column training median (0 where the column was all NaN)."""
    X = X.copy()
    rows, cols = np.nonzero(np.isnan(X))
    X[rows, cols] = medians[cols]
    return X


def column_medians(X: np.ndarray) -> np.ndarray:
    with np.errstate(all="ignore"):
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            med = np.nanmedian(X, axis=0) if len(X) else np.zeros(X.shape[1])
    return np.where(np.isnan(med), 0.0, med)
