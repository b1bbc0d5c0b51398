"""Trace-based root-cause rankers from the literature: MicroRank and TraceRCA.

Both read ``trace_services`` (one row per trace and service: window, entry operation, longest
server-side span, exclusive time, failure, error-level and never-seen log lines joined by trace id;
docs/features.md) through :func:`otlp_aiops.features.store.load_trace_services`, split into the
case's post-onset windows and its fault-free baseline windows. A case without that table (metrics-only
data, hand-built cases) is ranked by :class:`otlp_aiops.rca.multimodal.MultimodalRanker` instead, and
services that no trace reaches are ranked after the others in that ranker's order.

An *invocation* here is the visit of a trace to a service (its server-side span in that trace). It is
anomalous when its duration exceeds ``mean + k·std`` of the same operation in the baseline windows
(the 3-sigma rule both papers start from), or — the multi-modal extension, off with
``use_errors=False`` — when it failed or wrote an error-level log line while fewer than
``error_baseline_max`` of the operation's baseline invocations did.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from otlp_aiops.config import ConfigError
from otlp_aiops.features.data import CaseData
from otlp_aiops.rca.base import RankedCauses, RankerConfig, RootCauseRanker


@dataclasses.dataclass(frozen=True)
class TraceAnomalyConfig(RankerConfig):
    k_sigma: float = 3.0  # an invocation slower than mean + k·std of its operation's baseline is anomalous
    min_baseline: int = 3  # baseline invocations an operation needs for its latency rule
    use_errors: bool = True  # failed / error-logging invocations are anomalous too
    error_baseline_max: float = 0.1  # ... unless that many of the operation's baseline invocations did so

    def __post_init__(self) -> None:
        if not self.k_sigma > 0:
            raise ConfigError(f"k_sigma: must be positive, got {self.k_sigma}")
        if self.min_baseline < 1:
            raise ConfigError(f"min_baseline: must be >= 1, got {self.min_baseline}")
        if not 0 <= self.error_baseline_max <= 1:
            raise ConfigError(f"error_baseline_max: must be in [0, 1], got {self.error_baseline_max}")


@dataclasses.dataclass(frozen=True)
class CaseTraces:
    """The post-onset invocations of a case (codes into the table's names) and their anomaly flags."""

    trace: np.ndarray  # (N,) trace ids (hashes)
    service: np.ndarray  # (N,) service codes
    operation: np.ndarray  # (N,) operation codes
    anomalous: np.ndarray  # (N,) bool
    service_names: np.ndarray
    operation_names: np.ndarray
    operation_service: np.ndarray


def _window_ns(times: np.ndarray) -> np.ndarray:
    return np.asarray(times).astype("datetime64[ns]").astype(np.int64)


def case_traces(case: CaseData, cfg: TraceAnomalyConfig) -> CaseTraces | None:
    """The case's post-onset invocations with their anomaly flags, or None when the case has no
    trace table or no invocation after the onset."""
    from otlp_aiops.features.store import load_trace_services

    d = case.extra.get("features_dir") if isinstance(case.extra, dict) else None
    t = load_trace_services(d) if d else None
    if t is None:
        return None
    after_w = _window_ns(case.times[case.onset :])
    base_times = case.reference_times if len(case.reference_times) else case.times[: case.onset]
    in_after = np.isin(t["w"], after_w)
    in_base = np.isin(t["w"], _window_ns(base_times))
    if not in_after.any():
        return None
    n_ops = len(t["operation_names"])
    op_b = t["operation"][in_base]
    cnt = np.bincount(op_b, minlength=n_ops).astype(np.float64)
    dur_b = t["duration_ms"][in_base]
    s1 = np.bincount(op_b, weights=dur_b, minlength=n_ops)
    s2 = np.bincount(op_b, weights=dur_b**2, minlength=n_ops)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = s1 / cnt
        std = np.sqrt(np.maximum(s2 / cnt - mean**2, 0.0))
    bad_b = (t["error"] | (t["log_errors"] > 0))[in_base]
    err_rate = np.bincount(op_b, weights=bad_b.astype(np.float64), minlength=n_ops) / np.maximum(cnt, 1)

    op = t["operation"][in_after]
    dur = t["duration_ms"][in_after]
    ok = cnt[op] >= cfg.min_baseline
    slow = ok & (dur > mean[op] + cfg.k_sigma * std[op])
    anomalous = slow
    if cfg.use_errors:
        bad = (t["error"] | (t["log_errors"] > 0))[in_after]
        anomalous = anomalous | (bad & (err_rate[op] < cfg.error_baseline_max))
    return CaseTraces(
        t["trace"][in_after],
        t["service"][in_after],
        op,
        anomalous,
        t["service_names"],
        t["operation_names"],
        t["operation_service"],
    )


def _fallback(case: CaseData) -> RankedCauses:
    from otlp_aiops.rca.multimodal import MultimodalRanker

    return MultimodalRanker().fit(None).rank(case)


def _merge(
    case: CaseData, traced: dict[str, float], indicators: list[tuple[str, str, float]]
) -> RankedCauses:
    """Services with a trace score first (by score), then the others in the fallback's order."""
    fb = _fallback(case)
    order = {s: i for i, s in enumerate(fb.services)}
    n = len(case.services)
    scores = []
    for s in case.services:
        if s in traced:
            scores.append(float(traced[s]))
        else:  # below every trace score, in the fallback's order
            scores.append(-1.0 - order[s] / (n + 1))
    return RankedCauses.from_scores(case.services, scores, indicators)


def _anomalous_traces(ct: CaseTraces) -> tuple[np.ndarray, np.ndarray]:
    """Each invocation's trace index, and per trace whether any of its invocations is anomalous."""
    ids, tr = np.unique(ct.trace, return_inverse=True)
    trace_bad = np.zeros(len(ids), bool)
    np.logical_or.at(trace_bad, tr, ct.anomalous)
    return tr, trace_bad


class _TraceRanker(RootCauseRanker):
    """A ranker over the case's post-onset invocations (:func:`case_traces`); a case without them
    is ranked by the fallback."""

    def _rank(self, case: CaseData) -> RankedCauses:
        ct = case_traces(case, self.config)
        if ct is None:
            return _fallback(case)
        return self._rank_traces(case, ct)

    def _rank_traces(self, case: CaseData, ct: CaseTraces) -> RankedCauses:
        raise NotImplementedError


# ------------------------------------------------------------------------------------- MicroRank
@dataclasses.dataclass(frozen=True)
class MicroRankConfig(TraceAnomalyConfig):
    damping: float = 0.85  # PageRank damping
    iterations: int = 50
    spectrum: str = "ochiai"  # ochiai | dstar
    top_indicators: int = 10

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.spectrum not in ("ochiai", "dstar"):
            raise ConfigError(f"spectrum: expected ochiai or dstar, got {self.spectrum!r}")
        if not 0 < self.damping < 1 or self.iterations < 1:
            raise ConfigError("damping must be in (0, 1) and iterations >= 1")


def bipartite_pagerank(
    op: np.ndarray, tr: np.ndarray, n_ops: int, n_tr: int, damping: float, iterations: int
) -> np.ndarray:
    """PageRank over the operation–trace bipartite graph (an edge per invocation, both directions,
    each node's out-weight split evenly), restarting at the traces uniformly; returns the operation
    scores (MicroRank's weighting of how much an operation stands for a set of traces)."""
    from scipy import sparse

    if n_ops == 0 or n_tr == 0:
        return np.zeros(n_ops)
    a = sparse.coo_matrix((np.ones(len(op)), (op, tr)), shape=(n_ops, n_tr)).tocsr()
    a.data[:] = 1.0  # several invocations of one operation in a trace: one edge
    deg_op = np.asarray(a.sum(axis=1)).ravel()
    deg_tr = np.asarray(a.sum(axis=0)).ravel()
    op_to_tr = sparse.diags(1.0 / np.maximum(deg_op, 1)) @ a  # row-stochastic op -> trace
    tr_to_op = sparse.diags(1.0 / np.maximum(deg_tr, 1)) @ a.T.tocsr()
    pref = np.full(n_tr, 1.0 / n_tr)
    p_op, p_tr = np.zeros(n_ops), pref.copy()
    for _ in range(iterations):
        new_op = damping * (tr_to_op.T @ p_tr)
        new_tr = damping * (op_to_tr.T @ p_op) + (1 - damping) * pref
        p_op, p_tr = new_op, new_tr
    return p_op


class MicroRankRanker(_TraceRanker):
    """MicroRank (G. Yu, P. Chen, H. Chen, Z. Guan, Z. Huang, L. Jing, T. Weng, X. Sun, X. Li,
    "MicroRank: End-to-End Latency Issue Localization with Extended Spectrum Analysis in Microservice
    Environments", WWW 2021).

    The post-onset traces are split into anomalous (an anomalous invocation, module docstring) and
    normal ones; a PageRank over each set's operation–trace graph (:func:`bipartite_pagerank`) weights
    every operation, and the spectrum counts of each operation — anomalous traces through it ``ef``
    and not ``nf``, normal ones ``ep`` and not ``np`` — are multiplied by that weight (the paper's
    extended spectrum) and scored by Ochiai ``ef / sqrt((ef + nf)(ef + ep))`` or DStar
    ``ef² / (ep + nf)``. A service scores its best operation; operations are the indicators.
    Simplification: the preference vector is uniform over the traces of each set (the paper also
    weights traces by how rare their operation set is)."""

    name = "microrank"
    Config = MicroRankConfig

    def _rank_traces(self, case: CaseData, ct: CaseTraces) -> RankedCauses:
        cfg = self.config
        tr, trace_bad = _anomalous_traces(ct)
        n_ops = len(ct.operation_names)
        scores = np.zeros(n_ops)
        if trace_bad.any():
            weight = {}
            cover = {}
            for label, sel_tr in (("a", trace_bad), ("n", ~trace_bad)):
                inv = sel_tr[tr]
                codes = np.cumsum(sel_tr) - 1  # trace index within the set
                op, t_ = ct.operation[inv], codes[tr[inv]]
                n_set = int(sel_tr.sum())
                weight[label] = bipartite_pagerank(op, t_, n_ops, n_set, cfg.damping, cfg.iterations) * max(
                    n_ops, 1
                )
                pairs = np.unique(np.stack([op, t_]), axis=1) if len(op) else np.zeros((2, 0), np.int64)
                cover[label] = (np.bincount(pairs[0], minlength=n_ops).astype(np.float64), n_set)
            (ca, na), (cn, _) = cover["a"], cover["n"]
            ef, nf = weight["a"] * ca, weight["a"] * (na - ca)
            ep = weight["n"] * cn  # (np, the normal traces not through it, enters neither formula)
            with np.errstate(invalid="ignore", divide="ignore"):
                if cfg.spectrum == "ochiai":
                    scores = ef / np.sqrt((ef + nf) * (ef + ep))
                else:
                    scores = ef**2 / (ep + nf)
            scores = np.nan_to_num(scores, nan=0.0, posinf=np.finfo(np.float64).max / 2)
        seen = np.unique(ct.operation)
        traced: dict[str, float] = {}
        for o in seen:
            s = str(ct.service_names[ct.operation_service[o]])
            if s in case.services:
                traced[s] = max(traced.get(s, 0.0), float(scores[o]))
        ind = sorted(
            (
                (str(ct.service_names[ct.operation_service[o]]), str(ct.operation_names[o]), float(scores[o]))
                for o in seen
                if scores[o] > 0
            ),
            key=lambda x: (-x[2], x[0], x[1]),
        )
        return _merge(case, traced, ind[: cfg.top_indicators])


# -------------------------------------------------------------------------------------- TraceRCA
@dataclasses.dataclass(frozen=True)
class TraceRCAConfig(TraceAnomalyConfig):
    min_support: float = 0.1  # a service in fewer anomalous traces than this share is not suspicious
    top_indicators: int = 10

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0 <= self.min_support <= 1:
            raise ConfigError(f"min_support: must be in [0, 1], got {self.min_support}")


class TraceRCARanker(_TraceRanker):
    """TraceRCA (Z. Li, J. Chen, R. Jiao, N. Zhao, Z. Wang, S. Zhang, Y. Wu, L. Jiang, L. Yan, Z. Wang,
    Z. Chen, W. Zhang, X. Nie, K. Sui, D. Pei, "Practical Root Cause Localization for Microservice
    Systems via Trace Analysis", IWQoS 2021).

    Anomalous invocations are detected first (module docstring); a trace with one is anomalous. Each
    service is then an association rule "the service has an anomalous invocation ⇒ the trace is
    anomalous", scored from the post-onset traces by its support ``|A_s| / |A|`` (share of the
    anomalous traces in which the service's invocation is anomalous) and its confidence
    ``|A_s| / |T_s|`` (share of the traces through the service in which it is), combined as the
    Jaccard index ``|A_s| / (|A| + |T_s| − |A_s|)`` of the two trace sets. Services below
    ``min_support`` score 0. Of two services with equal score, the one called by the other (further
    down the call chain, where the paper looks for the origin) ranks first. Simplification: single
    services, not service sets, and the 3-sigma invocation rule instead of the paper's selected
    features."""

    name = "tracerca"
    Config = TraceRCAConfig

    def _rank_traces(self, case: CaseData, ct: CaseTraces) -> RankedCauses:
        cfg = self.config
        tr, trace_bad = _anomalous_traces(ct)
        n_a = int(trace_bad.sum())
        n_svc = len(ct.service_names)
        pairs_all = np.unique(np.stack([ct.service, tr]), axis=1)
        t_s = np.bincount(pairs_all[0], minlength=n_svc).astype(np.float64)
        bad = ct.anomalous
        pairs_bad = (
            np.unique(np.stack([ct.service[bad], tr[bad]]), axis=1)
            if bad.any()
            else np.zeros((2, 0), np.int64)
        )
        a_s = np.bincount(pairs_bad[0], minlength=n_svc).astype(np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):
            support = a_s / n_a if n_a else np.zeros(n_svc)
            jac = np.nan_to_num(a_s / (n_a + t_s - a_s), nan=0.0)
        jac = np.where(support >= cfg.min_support, jac, 0.0)
        depth = _depth(case, [str(s) for s in ct.service_names])
        traced: dict[str, float] = {}
        for i in np.unique(ct.service):
            s = str(ct.service_names[i])
            if s in case.services:
                traced[s] = float(jac[i]) + 1e-9 * depth.get(s, 0)  # deeper first among equals
        ind = sorted(
            (
                (str(ct.service_names[i]), "anomalous invocations", float(jac[i]))
                for i in np.unique(ct.service)
                if jac[i] > 0
            ),
            key=lambda x: (-x[2], x[0]),
        )
        return _merge(case, traced, ind[: cfg.top_indicators])


def _depth(case: CaseData, services: list[str]) -> dict[str, int]:
    """Longest caller chain above each service in the case's graph (cycles cut)."""
    callers: dict[str, list[str]] = {}
    for a, b in case.graph.edges:
        callers.setdefault(b, []).append(a)
    memo: dict[str, int] = {}

    def depth(s: str, stack: frozenset) -> int:
        if s in memo:
            return memo[s]
        d = max((depth(c, stack | {s}) + 1 for c in callers.get(s, []) if c not in stack), default=0)
        memo[s] = d
        return d

    return {s: depth(s, frozenset()) for s in services}
