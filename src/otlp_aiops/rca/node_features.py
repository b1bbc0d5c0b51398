"""Per-service node features for learned root-cause rankers (``gnn``, ``mlp``).

A case becomes an (S, D) matrix: one row per service of ``case.services``, one column per statistic.
Every statistic is a *standardised deviation* of the post-onset windows from the fault-free baseline
(:meth:`CaseData.baseline`), so the numbers do not depend on units or on a dataset's naming:

* robust z of each window ``z_t = (x_t − median) / (1.4826·MAD + eps + rel_eps·|median|)``, median
  and MAD over the baseline windows of that (service, feature), clipped to ``±z_clip``. 1.4826·MAD
  estimates the standard deviation of normal data (Rousseeuw & Croux 1993); where the MAD is 0 but
  the baseline varies (sparse counts: mostly 0, a few spikes) the baseline's standard deviation
  stands in for it (``std_fallback``); ``eps`` and the relative floor keep a constant baseline (an
  error rate that is always 0) from turning any change into infinity.
* per feature, over the post-onset windows: ``peak`` = max |z|, ``level`` = mean |z|, ``shift`` =
  mean z (signed: latency up, traffic down).

``mode="kinds"`` (dataset-agnostic, the transfer setting) aggregates the features of each kind in
``kinds`` (``case.feature_kinds`` says which feature is which kind) per service:

    <kind>.max_abs   max of ``peak`` over the service's features of that kind
    <kind>.mean_abs  max of ``level`` over them
    <kind>.mean      ``shift`` of the feature with the largest ``level`` (its direction)
    <kind>.missing   1 when the service has no usable feature of that kind (the three above are 0)

A feature is usable for a service when it has at least one finite baseline value and one finite
post-onset value. ``mode="all"`` gives the same four columns for every feature column of the dataset
(``<feature>.max_abs`` …): richer, but tied to one dataset's feature names.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from otlp_aiops.features.data import FEATURE_KINDS, CaseData

DEFAULT_KINDS = ("latency", "errors", "traffic", "cpu", "memory")
MODES = ("kinds", "all")
STATS = ("max_abs", "mean_abs", "mean", "missing")
MAD_TO_SIGMA = 1.4826


@dataclass(frozen=True, eq=False)
class NodeFeatures:
    """The node feature matrix of one case: ``x[i]`` describes ``services[i]``."""

    services: tuple[str, ...]
    columns: tuple[str, ...]
    x: np.ndarray  # (S, D) float64, finite
    # per service: its feature with the largest mean |z| (None: none usable)
    top_feature: tuple[str | None, ...] = ()
    top_level: np.ndarray | None = None  # (S,) that mean |z| (0 where None)


def robust_z_soft_floor(after: np.ndarray, baseline: np.ndarray, *, z_clip: float = 100.0,
                        eps: float = 1e-6, rel_eps: float = 1e-3, std_fallback: bool = True) -> np.ndarray:
    """Robust z-scores of ``after`` (T, ...) against ``baseline`` (R, ...) along axis 0 with a *soft*
    scale floor, added to the spread: scale = 1.4826·MAD + ``eps`` + ``rel_eps``·|median|; clipped
    to ``±z_clip``; NaN where ``after`` is NaN or the baseline has no finite value. With
    ``std_fallback`` a baseline whose MAD is 0 but which is not constant (a sparse error count:
    mostly 0, a few spikes) is scaled by its standard deviation instead. (The rankers of
    ``rca/graph.py`` floor the scale instead: :func:`otlp_aiops.rca.graph.robust_z_hard_floor`.)"""
    after = np.asarray(after, dtype=np.float64)
    baseline = np.asarray(baseline, dtype=np.float64)
    finite = np.isfinite(baseline)
    has_base = finite.any(axis=0)
    # nanmedian warns on all-NaN slices; fill those with 0 and mask them afterwards
    safe = np.where(has_base[None], np.where(finite, baseline, np.nan), 0.0)
    med = np.nanmedian(safe, axis=0)
    mad = np.nanmedian(np.abs(safe - med[None]), axis=0)
    spread = MAD_TO_SIGMA * mad
    if std_fallback:
        spread = np.where(spread > 0, spread, np.nanstd(safe, axis=0))
    scale = spread + eps + rel_eps * np.abs(med)
    z = np.clip((after - med[None]) / scale[None], -z_clip, z_clip)
    z[:, ~has_base] = np.nan
    return z


def _feature_stats(z: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``peak``, ``level``, ``shift`` over axis 0 of z (T, S, F) and where they are defined (S, F)."""
    ok = np.isfinite(z)
    usable = ok.any(axis=0)
    n = np.maximum(ok.sum(axis=0), 1)
    za = np.where(ok, np.abs(z), 0.0)
    peak = za.max(axis=0)
    level = za.sum(axis=0) / n
    shift = np.where(ok, z, 0.0).sum(axis=0) / n
    return peak, level, shift, usable


def parse_groups(groups: Sequence[str]) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """``"name=pattern|pattern"`` strings → ((name, patterns), ...); patterns are shell globs over
    feature names (``fnmatch``). Raises ValueError on a malformed or repeated entry."""
    out, seen = [], set()
    for g in groups:
        name, sep, pats = str(g).partition("=")
        name = name.strip()
        patterns = tuple(p.strip() for p in pats.split("|") if p.strip())
        if not sep or not name or not patterns:
            raise ValueError(f"feature group {g!r} is not 'name=glob|glob'")
        if name in seen or name in FEATURE_KINDS:
            raise ValueError(f"feature group name {name!r} repeats or is a feature kind")
        seen.add(name)
        out.append((name, patterns))
    return tuple(out)


def selections(features: Sequence[str], feature_kinds: Sequence[str], kinds: Sequence[str] = DEFAULT_KINDS,
               groups: Sequence[str] = ()) -> list[tuple[str, np.ndarray]]:
    """The feature sets that node features aggregate over, as (label, boolean mask over ``features``):
    one per kind in ``kinds`` (by ``feature_kinds``), then one per named group (by glob over the
    feature names: the features stage names span, trace and log features the same in every dataset,
    so a group transfers). A set may be empty: its columns then say ``missing``."""
    unknown = [k for k in kinds if k not in FEATURE_KINDS]
    if unknown:
        raise ValueError(f"unknown feature kind(s) {', '.join(unknown)}; known: {', '.join(FEATURE_KINDS)}")
    fk = np.asarray(feature_kinds, dtype=object)
    out = [(k, fk == k) for k in kinds]
    for name, patterns in parse_groups(groups):
        out.append((name, np.array([any(fnmatch.fnmatchcase(f, p) for p in patterns) for f in features],
                                   dtype=bool)))
    return out


def _case_z(case: CaseData, *, z_clip: float, eps: float, rel_eps: float, std_fallback: bool) -> np.ndarray:
    values = np.asarray(case.values, dtype=np.float64)
    n_services, n_features = len(case.services), len(case.features)
    if values.ndim != 3 or values.shape[1:] != (n_services, n_features):
        raise ValueError(f"case {case.case_id}: values have shape {values.shape}, "
                         f"expected (T, {n_services}, {n_features})")
    if len(case.feature_kinds) != n_features:
        raise ValueError(f"case {case.case_id}: {len(case.feature_kinds)} feature kinds "
                         f"for {n_features} features")
    after = case.after()
    if len(after) == 0:
        raise ValueError(f"case {case.case_id}: no window at or after the onset "
                         f"(onset={case.onset}, T={len(values)})")
    base = case.baseline()
    if len(base) == 0:
        raise ValueError(f"case {case.case_id}: no baseline windows (no reference and onset=0)")
    return robust_z_soft_floor(after, base, z_clip=z_clip, eps=eps, rel_eps=rel_eps,
                               std_fallback=std_fallback)


def window_features(z: np.ndarray, sels: Sequence[tuple[str, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """Per-window node features for the label-free ranker: from robust z (T, S, F), for each feature
    set of ``sels`` and window, ``max |z|`` over the set's features and the signed z of that feature
    → (T, S, 2·G) (0 where the window has no finite value), and (S, G) ``missing`` (1 where the
    service has no usable feature in the set: no finite z in any window)."""
    n_windows, n_services, _ = z.shape
    ok = np.isfinite(z)
    za = np.where(ok, np.abs(z), -1.0)
    zs = np.where(ok, z, 0.0)
    vals = np.zeros((n_windows, n_services, 2 * len(sels)))
    missing = np.ones((n_services, len(sels)))
    for g, (_, mask) in enumerate(sels):
        if not mask.any():
            continue
        a = za[:, :, mask]
        best = a.argmax(axis=2)  # (T, S)
        top = np.take_along_axis(a, best[..., None], axis=2)[..., 0]
        has = top >= 0
        vals[:, :, 2 * g] = np.where(has, top, 0.0)
        signed = np.take_along_axis(zs[:, :, mask], best[..., None], axis=2)[..., 0]
        vals[:, :, 2 * g + 1] = np.where(has, signed, 0.0)
        missing[:, g] = (~ok[:, :, mask].any(axis=(0, 2))).astype(np.float64)
    return vals, missing


def node_features(case: CaseData, mode: str = "kinds", *, kinds: Sequence[str] = DEFAULT_KINDS,
                  groups: Sequence[str] = (), raw_groups: Sequence[str] = (), z_clip: float = 100.0,
                  eps: float = 1e-6, rel_eps: float = 1e-3, std_fallback: bool = True) -> NodeFeatures:
    """The (S, D) node feature matrix of ``case`` (labels are not read). ``groups`` (kinds mode)
    adds the same four statistics for named sets of features (:func:`parse_groups`); ``raw_groups``
    for sets of features that already are scores against the dataset's reference (the features
    stage's ``log.mix_*``, ``log.pattern_*``, ``*_excess``: Poisson z-scores, ≈ 0 in normal windows),
    taken as they are (clipped to ±z_clip) instead of being standardised again against the case's
    baseline — a second standardisation against a short baseline of mostly-zero scores turns any
    small value into a huge z."""
    if mode not in MODES:
        raise ValueError(f"node feature mode {mode!r} is not one of {', '.join(MODES)}")
    n_services, n_features = len(case.services), len(case.features)
    z = _case_z(case, z_clip=z_clip, eps=eps, rel_eps=rel_eps, std_fallback=std_fallback)
    peak, level, shift, usable = _feature_stats(z)
    lv_all = np.where(usable, level, -np.inf)
    top = lv_all.argmax(axis=1) if n_features else np.zeros(n_services, dtype=np.int64)
    has_top = usable.any(axis=1)
    top_feature = tuple(case.features[top[i]] if has_top[i] else None for i in range(n_services))
    top_level = np.where(has_top, lv_all[np.arange(n_services), top] if n_features else 0.0, 0.0)

    if mode == "all":
        cols, blocks = [], []
        for j, name in enumerate(case.features):
            u = usable[:, j]
            blocks.append(np.stack([np.where(u, peak[:, j], 0.0), np.where(u, level[:, j], 0.0),
                                    np.where(u, shift[:, j], 0.0), (~u).astype(np.float64)], axis=1))
            cols += [f"{name}.{s}" for s in STATS]
        x = np.concatenate(blocks, axis=1) if blocks else np.zeros((n_services, 0))
        return NodeFeatures(tuple(case.services), tuple(cols), x, top_feature, top_level)

    sels = selections(case.features, case.feature_kinds, kinds, groups)
    x, cols = set_stats(peak, level, shift, usable, sels)
    if raw_groups:
        rsels = selections(case.features, case.feature_kinds, (), raw_groups)
        xr, cr = set_stats(*_feature_stats(raw_scores(case.after(), z_clip)), rsels)
        x, cols = np.concatenate([x, xr], axis=1), cols + cr
    return NodeFeatures(tuple(case.services), cols, x, top_feature, top_level)


def raw_scores(values: np.ndarray, z_clip: float = 100.0) -> np.ndarray:
    """Feature values that already are scores, clipped to ±z_clip (NaN stays NaN)."""
    return np.clip(np.asarray(values, dtype=np.float64), -z_clip, z_clip)


def set_stats(peak: np.ndarray, level: np.ndarray, shift: np.ndarray, usable: np.ndarray,
              sels: Sequence[tuple[str, np.ndarray]]) -> tuple[np.ndarray, tuple[str, ...]]:
    """The four statistics of each feature set (``<label>.max_abs/mean_abs/mean/missing``) from the
    per-feature ``peak``, ``level``, ``shift`` and ``usable`` (N, F) of :func:`_feature_stats`:
    (N, 4·len(sels)) and the column names. N is services (node features) or edges."""
    x = np.zeros((peak.shape[0], 4 * len(sels)))
    cols: list[str] = []
    for i, (label, sel) in enumerate(sels):
        cols += [f"{label}.{s}" for s in STATS]
        u = usable[:, sel]  # (N, Fk)
        any_u = u.any(axis=1)
        lv = np.where(u, level[:, sel], -np.inf)
        if sel.any():
            x[:, 4 * i] = np.where(u, peak[:, sel], 0.0).max(axis=1)
            x[:, 4 * i + 1] = np.where(any_u, lv.max(axis=1), 0.0)
            best = lv.argmax(axis=1)  # first of the most deviating features
            x[:, 4 * i + 2] = np.where(any_u, shift[:, sel][np.arange(len(best)), best], 0.0)
        x[:, 4 * i + 3] = (~any_u).astype(np.float64)
    return x, tuple(cols)
