"""Baseline root-cause rankers: a random floor, n-sigma, BARO and ε-Diagnosis.

They look at each (service, feature) series of a case separately: the fault-free baseline
(``case.baseline()``) against the windows after the onset (``case.after()``); a service scores as
its most anomalous feature, and the features themselves are returned as indicators.
"""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np

from otlp_aiops.features.data import CaseData
from otlp_aiops.rca.base import RankedCauses, RankerConfig, RootCauseRanker


@dataclasses.dataclass(frozen=True)
class RandomConfig(RankerConfig):
    pass


class RandomRanker(RootCauseRanker):
    """A uniformly random order (RCAEval's "Dummy"): the floor every method must beat."""

    name = "random"
    Config = RandomConfig
    stochastic = True

    def _rank(self, case: CaseData) -> RankedCauses:
        # one stream per (seed, case), so the ranking does not depend on the order cases are ranked in
        key = np.frombuffer(case.case_id.encode(), dtype=np.uint8).astype(np.uint32)
        rng = np.random.default_rng([self.seed, *key.tolist()])
        scores = rng.random(len(case.services))
        return RankedCauses.from_scores(case.services, scores)


def _usable(base: np.ndarray, after: np.ndarray, drop_constant: bool) -> np.ndarray:
    """(S, F) mask of series with data on both sides (and, optionally, not constant on either side,
    as RCAEval's preprocessing drops constant columns of each part)."""
    ok = (np.isfinite(base).sum(axis=0) >= 1) & (np.isfinite(after).sum(axis=0) >= 1)
    if drop_constant:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            ok &= np.nan_to_num(np.nanmax(base, axis=0) - np.nanmin(base, axis=0)) > 0
            ok &= np.nan_to_num(np.nanmax(after, axis=0) - np.nanmin(after, axis=0)) > 0
    return ok


def _service_ranking(
    case: CaseData, scores: np.ndarray, usable: np.ndarray, top_indicators: int
) -> RankedCauses:
    """scores (S, F) → services scored by their best usable feature; indicators best first."""
    s = np.where(usable, scores, -np.inf)
    service_scores = s.max(axis=1) if s.shape[1] else np.full(len(case.services), -np.inf)
    flat = [
        (case.services[i], case.features[j], float(s[i, j])) for i, j in zip(*np.nonzero(usable), strict=True)
    ]
    flat.sort(key=lambda t: (-t[2], t[0], t[1]))
    return RankedCauses.from_scores(case.services, service_scores, flat[:top_indicators])


@dataclasses.dataclass(frozen=True)
class ZScoreConfig(RankerConfig):
    absolute: bool = False  # RCAEval scores the signed maximum: a drop counts only through its sign flip
    drop_constant: bool = True  # as RCAEval's preprocessing: a constant series carries no evidence
    # RCAEval's preprocessing converts memory to MB (``convert_mem_mb``) before scaling. It matters where
    # the baseline's spread is 0 and the scaler divides by 1: a change of a few kB must not outrank a
    # CPU saturation. Memory-kind features (bytes in OTLP) are multiplied by this factor.
    memory_scale: float = 1e-6
    top_indicators: int = 10

    def __post_init__(self) -> None:
        if not self.memory_scale > 0:
            raise ValueError(f"memory_scale: must be positive, got {self.memory_scale}")


class NSigmaRanker(RootCauseRanker):
    """n-sigma: each series standardised by the baseline mean and standard deviation; a series
    scores its largest z after the onset, a service its largest series (as RCAEval's ``nsigma``)."""

    name = "nsigma"
    Config = ZScoreConfig

    def _center_scale(self, base: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Mean and standard deviation; a scale that is zero up to floating-point error counts as
        zero (scikit-learn's StandardScaler test: var <= n·eps·var + (n·mean·eps)², the bound on the
        rounding error of the variance), and zero scales become 1, as StandardScaler does. Without
        that, a series that is constant but for rounding (std 1e-18) would yield z-scores of 1e17."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            mean, var = np.nanmean(base, axis=0), np.nanvar(base, axis=0)
            n = np.sum(np.isfinite(base), axis=0)
        eps = np.finfo(np.float64).eps
        constant = var <= n * eps * var + (n * mean * eps) ** 2
        return mean, np.where(constant, 0.0, np.sqrt(var))

    def _rank(self, case: CaseData) -> RankedCauses:
        base, after = case.baseline(), case.after()
        mem = np.array([k == "memory" for k in case.feature_kinds], dtype=bool)
        if mem.any() and self.config.memory_scale != 1.0:
            unit = np.where(mem, self.config.memory_scale, 1.0)
            base, after = base * unit, after * unit
        usable = _usable(base, after, self.config.drop_constant)
        center, scale = self._center_scale(base)
        scale = np.where(np.isfinite(scale) & (scale > 0), scale, 1.0)  # sklearn: a zero scale becomes 1
        z = (after - center) / scale
        if self.config.absolute:
            z = np.abs(z)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            scores = np.nanmax(z, axis=0) if len(z) else np.full(usable.shape, np.nan)
        usable &= np.isfinite(scores)
        return _service_ranking(case, scores, usable, self.config.top_indicators)


class BaroRanker(NSigmaRanker):
    """BARO's root-cause step (Pham, Ha & Zhang, FSE 2024): the same ranking with a robust scaler,
    median and inter-quartile range of the baseline (RCAEval's ``baro`` uses scikit-learn's
    RobustScaler; a zero IQR scales by 1, as RobustScaler does)."""

    name = "baro"
    Config = ZScoreConfig

    def _center_scale(self, base: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            q25, med, q75 = np.nanpercentile(base, [25, 50, 75], axis=0)
        iqr = q75 - q25
        # RobustScaler treats a scale below 10·eps as zero (then 1): rounding noise is not spread
        return med, np.where(iqr < 10 * np.finfo(np.float64).eps, 0.0, iqr)


@dataclasses.dataclass(frozen=True)
class EpsilonConfig(RankerConfig):
    test: str = "ks"  # ks | mannwhitney | welch
    top_indicators: int = 10

    def __post_init__(self) -> None:
        if self.test not in ("ks", "mannwhitney", "welch"):
            raise ValueError(f"test: expected ks, mannwhitney or welch, got {self.test!r}")


class EpsilonDiagnosisRanker(RootCauseRanker):
    """ε-Diagnosis (Shan et al., WWW 2019) ranks metrics by a two-sample test of the normal against
    the abnormal period. A series scores ``1 - p`` of the chosen test (Kolmogorov–Smirnov by
    default); equal p-values (common when both samples are well separated) are broken by the test
    statistic, so the order stays informative."""

    name = "epsilon_diagnosis"
    Config = EpsilonConfig

    def _rank(self, case: CaseData) -> RankedCauses:
        from scipy import stats

        base, after = case.baseline(), case.after()
        usable = _usable(base, after, drop_constant=False)
        scores = np.full(usable.shape, np.nan)
        for i, j in zip(*np.nonzero(usable), strict=True):
            a = base[:, i, j][np.isfinite(base[:, i, j])]
            b = after[:, i, j][np.isfinite(after[:, i, j])]
            if a.min() == a.max() == b.min() == b.max():
                scores[i, j] = 0.0
                continue
            if self.config.test == "ks":
                r = stats.ks_2samp(a, b)
                stat = r.statistic
            elif self.config.test == "mannwhitney":
                r = stats.mannwhitneyu(a, b, alternative="two-sided")
                stat = abs(r.statistic / (len(a) * len(b)) - 0.5) * 2
            else:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", RuntimeWarning)
                    r = stats.ttest_ind(a, b, equal_var=False)
                stat = abs(r.statistic) if np.isfinite(r.statistic) else 0.0
            p = r.pvalue if np.isfinite(r.pvalue) else 1.0
            # -log10 p keeps resolution where 1-p would round to 1; the statistic breaks exact ties
            scores[i, j] = -np.log10(max(p, 1e-300)) + 1e-6 * stat
        usable &= np.isfinite(scores)
        return _service_ranking(case, scores, usable, self.config.top_indicators)
