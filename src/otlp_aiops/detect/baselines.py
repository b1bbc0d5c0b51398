"""Strong simple anomaly detectors: n-sigma, Isolation Forest, PCA reconstruction error.

All three standardise each column with the training (fault-free) median imputation, mean and
standard deviation, so columns in bytes and columns in ratios weigh alike.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from otlp_aiops.detect.base import Detector, DetectorConfig, column_medians, impute_medians


class _Standardised(Detector):
    """Shared preprocessing: median imputation, then z-scores with guarded standard deviations."""

    def _prepare_fit(self, X: np.ndarray) -> np.ndarray:
        self.medians_ = column_medians(X)
        Xi = impute_medians(X, self.medians_)
        self.mean_ = Xi.mean(axis=0) if len(Xi) else np.zeros(X.shape[1])
        std = Xi.std(axis=0) if len(Xi) else np.ones(X.shape[1])
        # a column constant in training: any change is news, measured against a unit scale
        self.std_ = np.where(std > 1e-12, std, 1.0)
        return (Xi - self.mean_) / self.std_

    def _prepare(self, X: np.ndarray) -> np.ndarray:
        return (impute_medians(X, self.medians_) - self.mean_) / self.std_


@dataclasses.dataclass(frozen=True)
class NSigmaConfig(DetectorConfig):
    pass


class NSigmaDetector(_Standardised):
    """Score = the largest absolute z-score of any column (the classic k-sigma rule, k chosen by
    the threshold)."""

    name = "nsigma"
    Config = NSigmaConfig

    def _fit(self, X, segments):
        self._prepare_fit(X)

    def _score(self, X, segments):
        Z = self._prepare(X)
        return np.abs(Z).max(axis=1) if Z.shape[1] else np.zeros(len(Z))


@dataclasses.dataclass(frozen=True)
class IsolationForestConfig(DetectorConfig):
    n_estimators: int = 200
    max_samples: int = 256  # Liu et al. (ICDM 2008) recommend sub-samples of 256
    max_features: float = 1.0

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.n_estimators < 1 or self.max_samples < 2 or not 0.0 < self.max_features <= 1.0:
            raise ValueError("n_estimators ≥ 1, max_samples ≥ 2 and 0 < max_features ≤ 1 are required")


class IsolationForestDetector(_Standardised):
    """scikit-learn's Isolation Forest (Liu, Ting & Zhou, ICDM 2008); score = the negated
    ``score_samples`` (path-length based), so higher is more anomalous."""

    name = "iforest"
    Config = IsolationForestConfig
    stochastic = True

    def _fit(self, X, segments):
        from sklearn.ensemble import IsolationForest

        Z = self._prepare_fit(X)
        c = self.config
        self.forest_ = IsolationForest(
            n_estimators=c.n_estimators,
            max_samples=min(c.max_samples, max(len(Z), 2)),
            max_features=c.max_features,
            random_state=self.seed,
            n_jobs=1,
        ).fit(Z)

    def _score(self, X, segments):
        return -self.forest_.score_samples(self._prepare(X))


@dataclasses.dataclass(frozen=True)
class PCAConfig(DetectorConfig):
    variance: float = 0.9  # keep the leading components that explain this share of the variance

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0.0 < self.variance <= 1.0:
            raise ValueError(f"variance: must be in (0, 1], got {self.variance}")


class PCADetector(_Standardised):
    """Reconstruction error of PCA (the squared prediction error of Lakhina et al., SIGCOMM 2004):
    the part of a row that the normal subspace does not explain."""

    name = "pca"
    Config = PCAConfig

    def _fit(self, X, segments):
        Z = self._prepare_fit(X)
        if len(Z) < 2 or Z.shape[1] == 0:
            self.components_ = np.zeros((0, Z.shape[1]))
            return
        _, s, vt = np.linalg.svd(Z - Z.mean(axis=0), full_matrices=False)
        var = s**2
        share = np.cumsum(var) / var.sum() if var.sum() > 0 else np.ones_like(var)
        k = int(np.searchsorted(share, self.config.variance - 1e-12) + 1)
        self.center_ = Z.mean(axis=0)
        self.components_ = vt[: min(k, len(vt))]

    def _score(self, X, segments):
        Z = self._prepare(X)
        if self.components_.shape[0] == 0:
            return (Z**2).sum(axis=1)
        C = Z - self.center_
        R = C - (C @ self.components_.T) @ self.components_
        return (R**2).sum(axis=1)
