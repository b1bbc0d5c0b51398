"""Aggregation, uncertainty and significance over the long-form results table.

The long form has one row per dataset × task × method × seed × case × metric, columns
:data:`RESULT_COLUMNS`. ``case_id`` "" marks a series-level value (one per dataset × method × seed,
e.g. VUS-PR); every other row is a per-case value whose mean over cases is the metric (for RCA the
per-case AC@k is a 0/1 hit, so the mean is RCAEval's AC@k).

* :func:`summarize` — per dataset × task × method (× fault type) × metric: mean ± std over seeds of the
  per-seed value (the mean over cases), and a 95 % percentile bootstrap interval over cases of the
  seed-averaged per-case values (``scipy.stats.bootstrap``, seeded);
* :func:`significance` — Wilcoxon signed-rank (``scipy.stats.wilcoxon``, two-sided) of each method
  against the best one on per-case values (paired on ``case_id``, averaged over seeds), with
  Holm's step-down correction across the comparisons of one table cell family;
* :func:`holm` — Holm (1979), "A simple sequentially rejective multiple test procedure".
"""

from __future__ import annotations

import logging
import math
import zlib
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from otlp_aiops.evaluate.metrics import TASKS
from otlp_aiops.evaluate.metrics import metric_spec as spec  # labels and directions: evaluate/metrics.py
from otlp_aiops.evaluate.rca import ac_at_k
from otlp_aiops.evaluate.results import RESULT_COLUMNS

log = logging.getLogger(__name__)

ALL = "all"  # the fault-type scope of the overall rows


TABLE_METRICS = {
    # no "seconds": tables are tracked outputs, and a timing differs run to run (MLflow has them)
    "rca": ("ac_at_1", "ac_at_3", "ac_at_5", "avg_at_5", "mrr", "ais_at_1", "ais_at_3"),
    "detect": ("auc_pr", "vus_pr", "range_f1", "range_precision", "range_recall", "detection_delay_s",
               "false_alarms_per_hour", "pa_f1"),
}
# The LaTeX tables (a column of a two-column paper): five metrics at most; the Markdown and CSV
# forms keep every one of TABLE_METRICS.
LATEX_TABLE_METRICS = {
    "rca": ("ac_at_1", "ac_at_3", "avg_at_5", "mrr", "ais_at_1"),
    "detect": ("vus_pr", "auc_pr", "range_f1", "detection_delay_s", "false_alarms_per_hour"),
}
FAULT_TABLE_METRICS = {
    "rca": ("ac_at_1", "ac_at_3", "avg_at_5", "mrr", "ais_at_1"),
    "detect": ("detected", "detection_delay_s"),
}


# --------------------------------------------------------------------------------------------------
# loading and validation


def validate_results(df: pd.DataFrame, source: str = "results") -> pd.DataFrame:
    """Check columns, types and duplicates; return a normalised copy."""
    missing = [c for c in RESULT_COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"{source}: missing columns {missing} (need {list(RESULT_COLUMNS)})")
    out = df.loc[:, list(RESULT_COLUMNS)].copy()
    for c in ("dataset", "task", "method", "case_id", "fault_type", "metric", "run_id"):
        out[c] = out[c].astype(object).where(out[c].notna(), "").astype(str)
    bad_task = sorted(set(out["task"]) - set(TASKS))
    if bad_task:
        i = int(np.flatnonzero(~out["task"].isin(TASKS))[0])
        raise ValueError(f"{source}: row {i}: task {bad_task[0]!r} is not one of {TASKS}")
    try:
        out["seed"] = pd.to_numeric(out["seed"], errors="raise").astype(np.int64)
        out["value"] = pd.to_numeric(out["value"], errors="raise").astype(np.float64)
    except (ValueError, TypeError) as e:
        raise ValueError(f"{source}: seed/value not numeric: {e}") from e
    for c in ("dataset", "method", "metric"):
        if (out[c] == "").any():
            raise ValueError(f"{source}: row {int(np.flatnonzero(out[c] == '')[0])}: empty {c}")
    key = ["dataset", "task", "method", "seed", "case_id", "metric"]
    dup = out.duplicated(key, keep=False)
    if dup.any():
        r = out[dup].iloc[0]
        raise ValueError(f"{source}: {int(dup.sum())} duplicate rows for one dataset/task/method/seed/case/"
                         f"metric; first: {r['dataset']}/{r['task']}/{r['method']}/seed {r['seed']}/"
                         f"case {r['case_id']!r}/{r['metric']}")
    return out.reset_index(drop=True)


def load_results(paths: str | Path | Iterable[str | Path]) -> pd.DataFrame:
    """Read long-form results from Parquet / CSV files or folders of them (recursively)."""
    if isinstance(paths, str | Path):
        paths = [paths]
    files: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            files += sorted(f for f in p.rglob("*") if f.suffix in (".parquet", ".csv") and f.is_file())
        elif p.is_file():
            files.append(p)
        else:
            raise FileNotFoundError(f"results path {p} does not exist")
    if not files:
        raise FileNotFoundError(f"no .parquet or .csv results under {[str(p) for p in paths]}")
    frames = []
    for f in files:
        if f.suffix == ".parquet":
            df = pd.read_parquet(f)
        else:
            df = pd.read_csv(f, dtype={"case_id": str, "fault_type": str, "run_id": str},
                             keep_default_na=False, na_values={"value": ["", "nan", "NaN"]})
        frames.append(validate_results(df, str(f)))
    return validate_results(pd.concat(frames, ignore_index=True), "+".join(str(f) for f in files))


# --------------------------------------------------------------------------------------------------
# Holm


def holm(pvalues: Sequence[float]) -> np.ndarray:
    """Holm step-down adjusted p-values, in input order: the i-th smallest of m p-values becomes
    max_{j ≤ i} min(1, (m − j + 1) · p_(j)). NaN entries stay NaN and do not count in m."""
    p = np.asarray(pvalues, dtype=np.float64)
    out = np.full(p.shape, np.nan)
    ok = np.flatnonzero(~np.isnan(p))
    m = len(ok)
    if m == 0:
        return out
    order = ok[np.argsort(p[ok], kind="stable")]
    adj = np.maximum.accumulate((m - np.arange(m)) * p[order])
    out[order] = np.minimum(adj, 1.0)
    return out


# --------------------------------------------------------------------------------------------------
# aggregation


def _scoped(df: pd.DataFrame, by_fault_type: bool) -> pd.DataFrame:
    """Add the ``scope`` column: "all", or each fault type (per-case rows only)."""
    if not by_fault_type:
        return df.assign(scope=ALL)
    cases = df[df["case_id"] != ""]
    return cases.assign(scope=cases["fault_type"].replace("", "unknown"))


GROUP = ["dataset", "task", "scope", "method", "metric"]


def case_values(df: pd.DataFrame, by_fault_type: bool = False) -> pd.DataFrame:
    """Per-case values averaged over seeds (NaN ignored): GROUP + case_id + value."""
    d = _scoped(df[df["case_id"] != ""], by_fault_type)
    return d.groupby([*GROUP, "case_id"], as_index=False, sort=True)["value"].mean()


def bootstrap_ci(values: np.ndarray, seed: int, *, n_resamples: int = 2000,
                 confidence: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean (scipy.stats.bootstrap); NaN for fewer than 2 values."""
    v = np.asarray(values, dtype=np.float64)
    v = v[~np.isnan(v)]
    if len(v) < 2:
        return math.nan, math.nan
    if np.all(v == v[0]):
        return float(v[0]), float(v[0])
    from scipy.stats import bootstrap

    res = bootstrap((v,), np.mean, n_resamples=n_resamples, confidence_level=confidence,
                    method="percentile", vectorized=True, rng=np.random.default_rng(seed))
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


def group_seed(seed: int, key: Sequence[object]) -> list[int]:
    """A seed for one group that depends on the group, not on the order groups are visited."""
    return [int(seed), zlib.crc32("\x1f".join(map(str, key)).encode())]


def summarize(df: pd.DataFrame, *, seed: int, by_fault_type: bool = False,
              metrics: Sequence[str] | None = None, n_resamples: int = 2000,
              confidence: float = 0.95) -> pd.DataFrame:
    """Mean ± std over seeds and a bootstrap interval over cases, per dataset × task × scope × method ×
    metric. Columns: GROUP + mean, std, n_seeds, n_cases, ci_low, ci_high.

    Per seed, the value is the mean over cases (NaN per-case values, e.g. the delay of a missed
    incident, are left out); std uses ddof=1 (NaN for a single seed)."""
    d = df if metrics is None else df[df["metric"].isin(metrics)]
    d = _scoped(d, by_fault_type)
    per_seed = d.groupby([*GROUP, "seed"], as_index=False, sort=True)["value"].mean()
    agg = per_seed.groupby(GROUP, sort=True)["value"].agg(
        mean="mean", std=lambda s: float(s.dropna().std(ddof=1)) if s.notna().sum() > 1 else math.nan,
        n_seeds="count").reset_index()
    cv = d[d["case_id"] != ""].groupby([*GROUP, "case_id"], sort=True)["value"].mean()
    lows, highs, ncases = [], [], []
    cv_groups = {k: g.to_numpy() for k, g in cv.groupby(level=list(range(len(GROUP))), sort=False)}
    for row in agg.itertuples(index=False):
        key = tuple(getattr(row, c) for c in GROUP)
        vals = cv_groups.get(key)
        if vals is None:
            lows.append(math.nan)
            highs.append(math.nan)
            ncases.append(0)
            continue
        lo, hi = bootstrap_ci(vals, group_seed(seed, key), n_resamples=n_resamples, confidence=confidence)
        lows.append(lo)
        highs.append(hi)
        ncases.append(int(np.sum(~np.isnan(vals))))
    agg["n_cases"] = ncases
    agg["ci_low"] = lows
    agg["ci_high"] = highs
    return agg


def best_methods(summary: pd.DataFrame) -> pd.DataFrame:
    """Per dataset × task × scope × metric: the best mean (direction from
    :data:`otlp_aiops.evaluate.metrics.METRICS`) and all methods within 1e-12 of it. Columns: dataset,
    task, scope, metric, best_method (first by name), best_methods (tuple), best_mean."""
    rows = []
    for key, g in summary.dropna(subset=["mean"]).groupby(["dataset", "task", "scope", "metric"], sort=True):
        hib = spec(key[3]).higher_is_better
        target = g["mean"].max() if hib else g["mean"].min()
        tied = tuple(sorted(g.loc[(g["mean"] - target).abs() <= 1e-12, "method"]))
        rows.append((*key, tied[0], tied, float(target)))
    return pd.DataFrame(rows, columns=["dataset", "task", "scope", "metric", "best_method", "best_methods",
                                       "best_mean"])


def _signed_rank_exact_p(d: np.ndarray) -> float:
    """Two-sided exact p-value of the signed-rank statistic (midranks for ties) by enumerating all
    2^n sign patterns — what ``scipy.stats.wilcoxon(method="auto")`` computes for n ≤ 13 with ties or
    zeros through ``permutation_test`` (same statistic, same relative tolerance), but vectorised:
    scipy's generic path takes ~0.5 s a call."""
    from scipy.stats import rankdata

    d = d[d != 0]  # zero_method="wilcox": zero differences are dropped
    n = len(d)
    if n == 0:
        return 1.0
    r = rankdata(np.abs(d))
    observed = float(r[d > 0].sum())
    signs = (np.arange(2**n)[:, None] >> np.arange(n)[None, :]) & 1
    null = signs @ r
    gamma = abs(np.finfo(np.float64).eps * 100 * observed)
    p_less = np.mean(null <= observed + gamma)
    p_greater = np.mean(null >= observed - gamma)
    return float(min(1.0, 2.0 * min(p_less, p_greater)))


def _wilcoxon_p(x: np.ndarray, y: np.ndarray) -> float:
    """Two-sided Wilcoxon signed-rank p-value of x − y (scipy's ``method="auto"`` choices: exact without
    ties or zeros up to n = 50, exact enumeration with them up to n = 13, else the normal
    approximation); 1.0 when every difference is 0, NaN without pairs."""
    d = x - y
    if len(d) == 0:
        return math.nan
    if np.all(d == 0):
        return 1.0
    nz = d[d != 0]
    tied = len(np.unique(np.abs(nz))) < len(nz) or len(nz) < len(d)
    if tied and len(d) <= 13:
        return _signed_rank_exact_p(d)
    from scipy.stats import wilcoxon

    return float(wilcoxon(x, y, zero_method="wilcox", alternative="two-sided").pvalue)


def significance(df: pd.DataFrame, summary: pd.DataFrame, *, by_fault_type: bool = False,
                 alpha: float = 0.05) -> pd.DataFrame:
    """Each method against the best one (per dataset × task × scope × metric), Wilcoxon signed-rank on
    the per-case values averaged over seeds, paired on ``case_id``; Holm across the methods compared
    within one dataset × task × scope × metric. Series-level metrics (no cases) get no test.

    Columns: dataset, task, scope, metric, method, best_method, n_pairs, p_value, p_holm,
    significantly_worse (p_holm < alpha and a worse mean)."""
    cv = case_values(df, by_fault_type)
    cv = cv[cv["metric"].isin(summary["metric"].unique())]
    best = best_methods(summary)
    means = summary.set_index(GROUP)["mean"]
    rows = []
    for b in best.itertuples(index=False):
        sub = cv[(cv["dataset"] == b.dataset) & (cv["task"] == b.task) & (cv["scope"] == b.scope)
                 & (cv["metric"] == b.metric)]
        if sub.empty:
            continue
        wide = sub.pivot(index="case_id", columns="method", values="value")
        if b.best_method not in wide.columns:
            continue
        family = []
        for m in sorted(c for c in wide.columns if c != b.best_method):
            pair = wide[[m, b.best_method]].dropna()
            if len(pair) < len(wide[[m, b.best_method]].dropna(how="all")):
                log.info("%s/%s/%s/%s: %s vs %s paired on %d of the cases", b.dataset, b.task, b.scope,
                         b.metric, m, b.best_method, len(pair))
            family.append((m, len(pair), _wilcoxon_p(pair[m].to_numpy(), pair[b.best_method].to_numpy())))
        adj = holm([p for _, _, p in family])
        hib = spec(b.metric).higher_is_better
        for (m, n, p), pa in zip(family, adj, strict=True):
            mean = means.get((b.dataset, b.task, b.scope, m, b.metric), math.nan)
            worse = (mean < b.best_mean) if hib else (mean > b.best_mean)
            rows.append((b.dataset, b.task, b.scope, b.metric, m, b.best_method, n, p, float(pa),
                         bool(worse and not math.isnan(pa) and pa < alpha)))
    return pd.DataFrame(rows, columns=["dataset", "task", "scope", "metric", "method", "best_method",
                                       "n_pairs", "p_value", "p_holm", "significantly_worse"])


def ac_at_k_curve(df: pd.DataFrame, max_k: int = 10) -> pd.DataFrame:
    """AC@k for k = 1 … min(max_k, most services in a case), per dataset × method: the mean over
    seeds of each seed's :func:`otlp_aiops.evaluate.rca.ac_at_k` over the ``rank`` rows (an unranked
    case is a miss). Columns: dataset, method, k, ac."""
    r = df[(df["task"] == "rca") & (df["metric"] == "rank") & (df["case_id"] != "")]
    if r.empty:
        return pd.DataFrame(columns=["dataset", "method", "k", "ac"])
    ns = df[(df["task"] == "rca") & (df["metric"] == "n_services")]
    rows = []
    for (ds, method), g in r.groupby(["dataset", "method"], sort=True):
        n_serv = ns.loc[ns["dataset"] == ds, "value"]
        kmax = int(min(max_k, n_serv.max())) if len(n_serv) and n_serv.notna().any() else max_k
        by_seed = [seed_ranks.to_numpy() for _, seed_ranks in g.groupby("seed", sort=True)["value"]]
        for k in range(1, kmax + 1):
            per_seed = pd.Series([ac_at_k(ranks, k) for ranks in by_seed], dtype=np.float64)
            rows.append((ds, method, k, float(per_seed.mean())))
    return pd.DataFrame(rows, columns=["dataset", "method", "k", "ac"])
