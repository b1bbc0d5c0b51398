"""A label-free multi-modal root-cause ranker: per service, the strongest evidence among log content,
trace structure and resource metrics, each measured against its own normal peak.

The evidence (features of ``docs/features.md``):

* log content: a line that the spans of an operation always wrote and no longer write
  (``log.pattern_drop``, and ``log.pattern_drop_rel``: each (operation, line) pair against its own
  normal extreme), the service's log-key mix losing a usual line (``log.mix_drop``) — what a
  ``return`` or ``exception`` fault changes — and lines never seen in the reference
  (``log.pattern_unseen``, ``log.mix_unseen_error``; counts, square-rooted: Anscombe's
  variance-stabilising transform of a Poisson count, so they sit on the scale of a z);
* trace structure: calls into the service whose client–server gap exceeds the edge's reference
  quantile (``span.in_gap_excess``: a network delay at the callee);
* resources (the USE method's utilisation and saturation): robust z of the service's ``cpu`` and
  ``saturation`` metrics against the case's fault-free baseline (median, 1.4826·MAD, the standard
  deviation where the MAD is 0; clipped at ``z_clip``);
* slower inside the service: traces whose exclusive time exceeds the reference quantile of their
  operation (``span.self_time_excess``).

The content and trace features are already statistics against the reference (Poisson z-scores);
every one of them, and every resource z, is then set against its own behaviour in the baseline
windows: ``evidence = post-onset statistic / (1 + the largest |value| in the baseline windows)``
(the post-onset peak for transient evidence — a vanished or new line —, the post-onset median for
sustained evidence — gaps, exclusive time, resources) — how many times the
normal extreme the fault window reaches. This puts a Poisson z of a vanished log line and a CPU z on
one scale without a weight per signal, and a service that is noisy in normal times (its mix varies)
does not outrank one that never moves. A service scores its strongest evidence; the indicator is the
feature that gave it.

On metrics-only data (no log or span features) every metric feature counts as resource evidence
(``fallback_kinds``), so the ranker degrades to a robust n-sigma. The trace rankers of
:mod:`otlp_aiops.rca.trace` cite the papers this builds on (MicroRank, TraceRCA); the span-to-log
patterns follow Nezha (Yu et al., "Nezha: Interpretable Fine-Grained Root Causes Analysis for
Microservices on Multi-modal Observability Data", ESEC/FSE 2023), here counted per window rather
than mined per trace.
"""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np

from otlp_aiops.config import ConfigError
from otlp_aiops.features.data import FEATURE_KINDS, CaseData, ReferenceData
from otlp_aiops.rca.base import RankedCauses, RankerConfig, RootCauseRanker

MAD_TO_SIGMA = 1.4826


@dataclasses.dataclass(frozen=True)
class MultimodalConfig(RankerConfig):
    # statistics against the reference (Poisson z): post-onset peak over (1 + baseline peak)
    statistic_features: tuple[str, ...] = ("log.pattern_drop_rel", "log.pattern_drop", "log.mix_drop")
    # statistics whose evidence is summed: a pod's network delay slows the calls into it and out of it,
    # a victim downstream sees only the calls from the faulty pod
    summed_features: tuple[str, ...] = ("span.in_gap_excess", "span.out_gap_excess")
    # statistics of a sustained change (median over the post-onset windows), each on its own
    sustained_features: tuple[str, ...] = ("span.self_time_excess",)
    # counts of never-seen items: square-rooted first
    count_features: tuple[str, ...] = ("log.pattern_unseen", "log.mix_unseen_error")
    # metrics of these kinds: robust z, post-onset mean over (1 + baseline peak |z|)
    # memory is left out by default: memory levels drift (caches, GC), and a case's fault-free
    # baseline can lie far in time (incidents every few minutes); its z then mostly measures the drift
    resource_kinds: tuple[str, ...] = ("cpu", "saturation")
    # when a case has none of the features above with data: every metric of these kinds
    fallback_kinds: tuple[str, ...] = ("latency", "errors", "traffic", "cpu", "memory", "saturation", "other")
    resource_stat: str = "median"  # of the post-onset resource z: median (sustained) | mean
    # sustained evidence: the largest resource_stat over any run of this many consecutive post-onset
    # windows (0: over all of them). An incident can end long before the case window does (sim:
    # 75 s of a 5-min window) and the median over the whole window then reads 0 for a clear fault;
    # 3 lifts sim network delays but costs nezha-tt 0.714 -> 0.607 AC@1 (docs/rca-methods.md, ensemble)
    sustain_windows: int = 0
    # evidence = statistic / (1 + this quantile of the baseline |values|); 1 = the peak
    baseline_quantile: float = 1.0
    min_baseline: int = 3  # baseline windows with a value a resource z needs
    scale_floor: float = 1e-3  # relative floor of the z scale (x |median|)
    # resource z clipped to +-z_clip (a constant baseline that moves gives a huge but finite z)
    z_clip: float = 1e6
    # the dataset's fault-free reference (``fit``) as a second opinion on what is normal for a
    # resource metric. reference_scale: where the case's own baseline is constant (no spread to
    # scale a z by; a disk-operation rate that reads 4.0 for the 20 windows before a case), its z is
    # scaled by the reference's spread instead of the 1e-3·|median| floor, which made a one-unit step
    # a z of hundreds. reference_quantile: the normal extreme a resource z is set against is the
    # larger of the case baseline's peak and this quantile of the reference windows' |z| (None: the
    # case baseline alone; and on metrics-only data, which is ranked as a robust n-sigma against the
    # case's baseline); off by default: cumulative counters (container restarts) and drifting levels
    # make a reference far in time look abnormal (docs/rca-methods.md, multimodal)
    reference_scale: bool = True
    reference_quantile: float | None = None
    top_indicators: int = 10

    def __post_init__(self) -> None:
        for name in ("resource_kinds", "fallback_kinds"):
            bad = [k for k in getattr(self, name) if k not in FEATURE_KINDS]
            if bad:
                raise ConfigError(
                    f"{name}: unknown feature kind(s) {', '.join(bad)}; known: {', '.join(FEATURE_KINDS)}"
                )
        if self.resource_stat not in ("median", "mean"):
            raise ConfigError(f"resource_stat: expected median or mean, got {self.resource_stat!r}")
        if not 0 <= self.baseline_quantile <= 1:
            raise ConfigError(f"baseline_quantile: must be in [0, 1], got {self.baseline_quantile}")
        if self.min_baseline < 1:
            raise ConfigError(f"min_baseline: must be >= 1, got {self.min_baseline}")
        if self.sustain_windows < 0:
            raise ConfigError(f"sustain_windows: must be >= 0, got {self.sustain_windows}")
        if not self.z_clip > 0:
            raise ConfigError(f"z_clip: must be positive, got {self.z_clip}")
        if not self.scale_floor >= 0:
            raise ConfigError(f"scale_floor: must be >= 0, got {self.scale_floor}")
        if self.reference_quantile is not None and not 0 <= self.reference_quantile <= 1:
            raise ConfigError(f"reference_quantile: must be in [0, 1] or null, got {self.reference_quantile}")


def robust_scale(base: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Median and spread of ``base`` (R, ...) over axis 0: 1.4826·MAD, the standard deviation
    where the MAD is 0 (NaN skipped; NaN where there is no value)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        med = np.nanmedian(base, axis=0)
        mad = MAD_TO_SIGMA * np.nanmedian(np.abs(base - med), axis=0)
        sd = np.nanstd(base, axis=0)
    return med, np.where(mad > 0, mad, sd)


def robust_z_min_baseline(
    x: np.ndarray,
    base: np.ndarray,
    scale_floor: float,
    min_baseline: int,
    fallback_scale: np.ndarray | None = None,
) -> np.ndarray:
    """z of ``x`` (T, S, F) against ``base`` (R, S, F): median and 1.4826·MAD (the standard deviation
    where the MAD is 0; ``fallback_scale`` (S, F) where both are 0, when given; never below
    ``scale_floor``·|median| nor 1e-9: the hard floor of
    :func:`otlp_aiops.rca.graph.robust_z_hard_floor`, unclipped); NaN where the baseline has fewer
    than ``min_baseline`` values."""
    n = np.isfinite(base).sum(axis=0)
    med, scale = robust_scale(base)
    if fallback_scale is not None:
        scale = np.where(np.nan_to_num(scale, nan=0.0) > 0, scale, fallback_scale)
    scale = np.fmax(np.nan_to_num(scale, nan=0.0), np.fmax(scale_floor * np.abs(np.nan_to_num(med)), 1e-9))
    z = (x - med) / scale
    z[..., n < min_baseline] = np.nan
    return z


def _peak(a: np.ndarray) -> np.ndarray:
    """Largest finite value over axis 0, at least 0 (0 where there is none)."""
    if len(a) == 0:
        return np.zeros(a.shape[1:])
    m = np.where(np.isfinite(a), a, -np.inf).max(axis=0)
    return np.clip(np.where(np.isfinite(m), m, 0.0), 0.0, None)


class MultimodalRanker(RootCauseRanker):
    """Strongest calibrated evidence per service over log content, trace structure and resources
    (module docstring). Label-free: ``fit`` learns nothing; every reference is the case's own."""

    name = "multimodal"
    Config = MultimodalConfig

    def _fit(self, reference: ReferenceData | None, train_cases: list[CaseData]) -> None:
        # the dataset's fault-free windows: a second opinion on normal (reference_scale / _quantile)
        cfg = self.config
        self.reference_ = None
        self._reference_memo: dict[tuple, tuple[np.ndarray, np.ndarray]] = {}
        wanted = cfg.reference_scale or cfg.reference_quantile is not None
        if wanted and reference is not None and len(reference.values):
            self.reference_ = reference

    def _reference(self, case: CaseData, sel: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        """The reference windows (N, S, F_sel) of the case's services and selected features (NaN
        where the reference lacks one) and their :func:`robust_scale` spread (S, F_sel), or None
        without a reference. Aligned once per (services, features) layout: the cases of a dataset
        share one, so every case after the first reads the memo (read-only arrays)."""
        ref = getattr(self, "reference_", None)
        if ref is None:
            return None
        feats = tuple(f for f, k in zip(case.features, sel, strict=True) if k)
        key = (tuple(case.services), feats)
        memo = self.__dict__.setdefault("_reference_memo", {})
        if key not in memo:
            s_idx = {s: i for i, s in enumerate(ref.services)}
            f_idx = {f: j for j, f in enumerate(ref.features)}
            out = np.full((len(ref.values), len(case.services), len(feats)), np.nan)
            rows = [(i, s_idx[s]) for i, s in enumerate(case.services) if s in s_idx]
            cols = [(j, f_idx[f]) for j, f in enumerate(feats) if f in f_idx]
            if rows and cols:
                ci, ri = (list(t) for t in zip(*rows, strict=True))
                cj, rj = (list(t) for t in zip(*cols, strict=True))
                out[:, *np.ix_(ci, cj)] = ref.values[:, *np.ix_(ri, rj)]
            scale = robust_scale(out)[1]
            out.setflags(write=False)
            scale.setflags(write=False)
            memo[key] = (out, scale)
        return memo[key]

    def evidence(self, case: CaseData) -> tuple[np.ndarray, np.ndarray]:
        """(S, F) evidence of every (service, feature) — 0 where the feature is not used — and the
        (F,) mask of the features whose evidence is summed (``summed_features``)."""
        cfg = self.config
        base, after = case.baseline(), case.after()
        if len(after) == 0:
            raise ValueError(f"case {case.case_id}: no windows after the onset")
        n_features = len(case.features)
        feats = np.asarray(case.features, dtype=object)
        kinds = np.asarray(case.feature_kinds, dtype=object)
        stat = np.isin(feats, list(cfg.statistic_features))
        count = np.isin(feats, list(cfg.count_features))
        summed = np.isin(feats, list(cfg.summed_features))
        sustained = np.isin(feats, list(cfg.sustained_features)) & ~summed
        is_metric = np.array([f.startswith("metric.") for f in feats], bool)
        resource = np.isin(kinds, list(cfg.resource_kinds)) & is_metric
        has_after = np.isfinite(after).any(axis=(0, 1)) if n_features else np.zeros(0, bool)
        metrics_only = not ((stat | count | summed | sustained) & has_after).any()
        if metrics_only:
            # metrics-only data: every metric of the fallback kinds, a robust n-sigma against the
            # case's own baseline (as nsigma and BARO; reference_quantile does not apply)
            resource = np.isin(kinds, list(cfg.fallback_kinds))
        ev = np.zeros((len(case.services), n_features))
        empty = np.zeros((0, len(case.services), 0))
        for sel, is_sustained in ((stat | count, False), (summed | sustained, True)):
            if not sel.any():
                continue
            a = after[:, :, sel]
            b = base[:, :, sel] if len(base) else empty[:, :, :0].repeat(sel.sum(), axis=2)
            is_count = count[sel]
            a = np.where(is_count, np.sqrt(np.clip(a, 0, None)), a)
            b = np.where(is_count, np.sqrt(np.clip(b, 0, None)), b)
            # transient evidence (a vanished line) counts at its peak; sustained evidence (a slower
            # network) at the median of the post-onset windows, as the resource z
            level = self._sustained(np.clip(a, 0, None)) if is_sustained else _peak(a)
            ev[:, sel] = level / (1.0 + self._normal(np.abs(b)))
        if resource.any() and len(base):
            res_base = base[:, :, resource]
            aligned = self._reference(case, resource)
            ref_vals = aligned[0] if aligned is not None else None
            fallback = aligned[1] if aligned is not None and cfg.reference_scale else None
            z = robust_z_min_baseline(
                case.values[:, :, resource], res_base, cfg.scale_floor, cfg.min_baseline, fallback
            )
            z = np.clip(z, -cfg.z_clip, cfg.z_clip)
            za = np.clip(z[case.onset :], 0, None)
            level = self._sustained(za)
            zb = robust_z_min_baseline(res_base, res_base, cfg.scale_floor, cfg.min_baseline, fallback)
            zb = np.clip(zb, -cfg.z_clip, cfg.z_clip)
            normal = self._normal(np.abs(zb))
            if ref_vals is not None and cfg.reference_quantile is not None and not metrics_only:
                zr = robust_z_min_baseline(ref_vals, res_base, cfg.scale_floor, cfg.min_baseline, fallback)
                zr = np.abs(np.clip(zr, -cfg.z_clip, cfg.z_clip))
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", RuntimeWarning)
                    ref_normal = np.nan_to_num(np.nanquantile(zr, cfg.reference_quantile, axis=0), nan=0.0)
                normal = np.maximum(normal, ref_normal)
            ev[:, resource] = level / (1.0 + normal)
        return np.nan_to_num(ev, nan=0.0, posinf=0.0), summed

    def _normal(self, b: np.ndarray) -> np.ndarray:
        """The normal extreme of baseline values ``b`` (R, S, F): their ``baseline_quantile`` (NaN
        skipped; 0 where none)."""
        q = self.config.baseline_quantile
        if q >= 1.0 or len(b) == 0:
            return _peak(b)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            return np.nan_to_num(np.nanquantile(b, q, axis=0), nan=0.0)

    def _sustained(self, a: np.ndarray) -> np.ndarray:
        """The largest ``resource_stat`` (median or mean) of ``a`` over any ``sustain_windows``
        consecutive rows (all rows when 0 or when there are fewer), NaN skipped (0 where none)."""
        if not len(a):
            return np.zeros(a.shape[1:])
        w = self.config.sustain_windows
        w = len(a) if w <= 0 or w >= len(a) else w
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            stat = np.nanmedian if self.config.resource_stat == "median" else np.nanmean
            runs = np.lib.stride_tricks.sliding_window_view(a, w, axis=0)  # (T-w+1, ..., w)
            level = stat(runs, axis=-1)
            level = np.where(np.isfinite(level), level, -np.inf).max(axis=0)
            return np.where(np.isfinite(level), level, 0.0)

    def _rank(self, case: CaseData) -> RankedCauses:
        ev, summed = self.evidence(case)
        score = ev[:, ~summed].max(axis=1, initial=0.0) if ev.shape[1] else np.zeros(len(case.services))
        if summed.any():
            score = np.maximum(score, ev[:, summed].sum(axis=1))
        flat = [
            (case.services[i], case.features[j], float(ev[i, j]))
            for i, j in zip(*np.nonzero(ev > 0), strict=True)
        ]
        flat.sort(key=lambda t: (-t[2], t[0], t[1]))
        return RankedCauses.from_scores(case.services, score, flat[: self.config.top_indicators])
