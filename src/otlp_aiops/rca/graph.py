"""Graph-walk root-cause rankers over the service dependency graph: a MicroRCA-style personalised
PageRank (``pagerank``) and a CloudRanger / MicroCause-style random walk (``random_walk``).

Both weight the caller → callee graph of a case by how anomalous each service is after the onset
(robust z of its features against the fault-free baseline) and by how strongly the services' anomaly
series move together, then walk towards the callees: a fault propagates from callee to caller, so the
walk goes against the propagation, towards the cause. The random walk starts at every entry service
and the symptom (:func:`walk_starts`); PageRank restarts ∝ anomaly on every service of the graph, so a
service outside the symptom's subgraph is still ranked by its evidence.
The helpers here (``service_anomaly``, ``choose_symptom``…) are shared with :mod:`otlp_aiops.rca.causal`.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from otlp_aiops.config import ConfigError
from otlp_aiops.features.data import FEATURE_KINDS, CaseData
from otlp_aiops.rca.base import RankedCauses, RankerConfig, RootCauseRanker

log = logging.getLogger(__name__)

WINDOW_STATS = ("mean", "median", "max")
PERSONALIZATIONS = ("anomaly", "anomaly_corr")
_ABS_SCALE_FLOOR = 1e-9  # below any real metric's resolution; keeps z finite for constant features
_Z_CLIP = 1e6  # a constant-in-baseline feature that moves gives a huge but finite z


# --------------------------------------------------------------------------------------- anomaly
@dataclass(frozen=True, eq=False)
class ServiceAnomaly:
    """How anomalous each service of a case is after the onset.

    ``z[t, s, f]``: robust z of every case window against the baseline (NaN where missing);
    ``feature_score[s, f]``: the window statistic of ``|z|`` over the post-onset windows (0 where
    missing); ``node_score[s]``: the largest feature score of the service; ``best_feature[s]``: its
    feature index (-1 when the service has no value); ``series[t, s]``: ``z`` of that feature (0 where
    missing), the service's anomaly series used for correlations.
    """

    z: np.ndarray
    feature_score: np.ndarray
    node_score: np.ndarray
    best_feature: np.ndarray
    series: np.ndarray
    feature_mask: np.ndarray  # (F,) bool: the features that were considered


def _check_kinds(kinds: tuple[str, ...], where: str) -> None:
    bad = [k for k in kinds if k not in FEATURE_KINDS]
    if bad:
        raise ConfigError(
            f"{where}: unknown feature kind(s) {', '.join(bad)}; known: {', '.join(FEATURE_KINDS)}"
        )


def robust_z_hard_floor(values: np.ndarray, baseline: np.ndarray, scale_floor: float) -> np.ndarray:
    """``(values - median) / scale`` per (service, feature) with the median and scale of ``baseline``,
    the scale floored (a *hard* floor, unlike :func:`otlp_aiops.rca.node_features.robust_z_soft_floor`).

    scale = 1.4826 · MAD (a robust standard deviation); where the MAD is 0 (a feature that is almost
    always the same value, such as an error rate of 0) the standard deviation; never below
    ``scale_floor · |median|`` nor an absolute 1e-9, so z stays finite (and is clipped at 1e6).
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN slices: the feature is missing
        med = np.nanmedian(baseline, axis=0)
        mad = 1.4826 * np.nanmedian(np.abs(baseline - med), axis=0)
        std = np.nanstd(baseline, axis=0)
    scale = np.where(mad > 0, mad, std)
    scale = np.fmax(scale, np.fmax(scale_floor * np.abs(med), _ABS_SCALE_FLOOR))
    z = (values - med) / scale
    return np.clip(z, -_Z_CLIP, _Z_CLIP)


def service_anomaly(
    case: CaseData,
    *,
    feature_kinds: tuple[str, ...] = (),
    window_stat: str = "mean",
    scale_floor: float = 1e-3,
) -> ServiceAnomaly:
    """Score every service of ``case`` by the largest robust z of its features after the onset.

    A feature's score is the ``window_stat`` (mean, median or max) of ``|z|`` over the post-onset
    windows; ``feature_kinds`` (empty = all) restricts the features considered.
    """
    baseline, after = case.baseline(), case.after()
    if len(baseline) == 0:
        raise ValueError(f"case {case.case_id}: no fault-free baseline (no reference windows and onset 0)")
    if len(after) == 0:
        raise ValueError(
            f"case {case.case_id}: no windows after the onset (onset {case.onset} of {len(case.values)})"
        )
    mask = np.ones(len(case.features), dtype=bool)
    if feature_kinds:
        mask = np.isin(np.asarray(case.feature_kinds), list(feature_kinds))
        if not mask.any():
            raise ValueError(
                f"case {case.case_id}: no feature of kind {', '.join(feature_kinds)} "
                f"(kinds present: {', '.join(sorted(set(case.feature_kinds)))})"
            )
    z = robust_z_hard_floor(case.values, baseline, scale_floor)
    z[:, :, ~mask] = np.nan
    absz = np.abs(z[case.onset :])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        if window_stat == "mean":
            fs = np.nanmean(absz, axis=0)
        elif window_stat == "median":
            fs = np.nanmedian(absz, axis=0)
        elif window_stat == "max":
            fs = np.nanmax(absz, axis=0)
        else:
            raise ConfigError(f"window_stat {window_stat!r}; expected one of {', '.join(WINDOW_STATS)}")
    fs = np.nan_to_num(fs, nan=0.0)
    n_services = len(case.services)
    has = np.any(np.isfinite(z[case.onset :]), axis=0)  # (S, F)
    best = np.where(has.any(axis=1), np.argmax(np.where(has, fs, -1.0), axis=1), -1)
    node = np.array([fs[s, best[s]] if best[s] >= 0 else 0.0 for s in range(n_services)])
    series = np.zeros((len(case.values), n_services))
    for s in range(n_services):
        if best[s] >= 0:
            series[:, s] = np.nan_to_num(z[:, s, best[s]], nan=0.0)
    return ServiceAnomaly(z, fs, node, best, series, mask)


def abs_corr(series: np.ndarray) -> np.ndarray:
    """|Pearson correlation| between the columns of ``series`` (T, S); 0 for a constant column."""
    x = series - series.mean(axis=0)
    norm = np.sqrt((x * x).sum(axis=0))
    ok = norm > 0
    x = np.where(ok, x / np.where(ok, norm, 1.0), 0.0)
    c = np.abs(x.T @ x)
    np.fill_diagonal(c, np.where(ok, 1.0, 0.0))
    return np.clip(c, 0.0, 1.0)


# ----------------------------------------------------------------------------------------- graph
def call_edges(case: CaseData) -> list[tuple[int, int]]:
    """The case's caller → callee edges as node positions, restricted to ``case.services``, without
    self-calls and duplicates, in a stable order."""
    pos = {s: i for i, s in enumerate(case.services)}
    out = {(pos[a], pos[b]) for a, b in case.graph.edges if a in pos and b in pos and a != b}
    return sorted(out)


def _anomaly_only(case: CaseData, an) -> RankedCauses:
    """No call graph (a metric-only dataset without topology, or no traced call): there is nothing to
    walk on. The services are ranked by their own anomaly instead."""
    ranked = RankedCauses.from_scores(case.services, an.node_score)
    return RankedCauses(ranked.services, ranked.scores, _indicators(case, an, ranked.services))


def walk_starts(case: CaseData, edges: list[tuple[int, int]]) -> np.ndarray:
    """Where a walk over the call graph starts, as a distribution over the case's services: every
    *entry* service (one that no service calls and that calls at least one) and the declared symptom
    (``case.symptom_service``, where the user-facing alarm fires) when it has a call edge, equally
    weighted; all zeros when the graph has no edge.

    Not the symptom alone: a system has several front doors (PetShop: the web site, a Step Functions
    trigger, two API clients), and a symptom that is a side entrance (declared so, or chosen as the
    entry reaching the most services when the real front door has no data) confines a walk to a
    subgraph without the fault. PetShop without the PetSite series, where the features stage picks
    the Step Functions client: Avg@5 0.00 for both walks from that start alone, where nsigma scores
    0.47. With one entry (Online Boutique's frontend, Train Ticket's gateway) nothing changes.
    """
    n_services = len(case.services)
    start = np.zeros(n_services)
    if not edges:
        return start
    callers = {a for a, _ in edges}
    called = {b for _, b in edges}
    entries = [i for i in sorted(callers) if i not in called]
    if not entries:  # every caller is also called (a cycle at the top): start from every caller
        entries = sorted(callers)
    start[entries] = 1.0
    if case.symptom_service in case.services:
        i = case.services.index(case.symptom_service)
        if i in callers | called:
            start[i] = 1.0
    return start / start.sum()


def _walk_frame(case: CaseData, c):
    """What the random walk starts from: the node anomalies, the call edges, the start distribution
    (:func:`walk_starts`) and the services reachable from it (positions ``idx``, ``local`` maps them to
    0..n-1); None when there is no call edge."""
    an = service_anomaly(
        case, feature_kinds=c.feature_kinds, window_stat=c.window_stat, scale_floor=c.scale_floor
    )
    edges = call_edges(case)
    n_services = len(case.services)
    start = walk_starts(case, edges)
    if not start.any():
        return None
    reached = np.zeros(n_services, dtype=bool)
    for i in np.flatnonzero(start):
        reached |= reachable(int(i), edges, n_services)
    if reached.sum() <= 1:
        return None
    idx = np.flatnonzero(reached)
    return an, edges, n_services, start, reached, idx, {g: k for k, g in enumerate(idx)}


def choose_symptom(
    case: CaseData, node_score: np.ndarray, edges: list[tuple[int, int]], candidates: np.ndarray | None = None
) -> int:
    """The service the walk starts from: ``case.symptom_service`` when it is one of the case's
    services (and a candidate), else the most anomalous service that no one calls (an entry point; all
    candidates when every service is called), ties broken by name."""
    n_services = len(case.services)
    cand = np.ones(n_services, dtype=bool) if candidates is None else np.asarray(candidates, dtype=bool)
    if case.symptom_service in case.services:
        i = case.services.index(case.symptom_service)
        if cand[i]:
            return i
    called = {b for _, b in edges}
    # the entry services (called by no one) among the candidates, else every candidate
    entries = [i for i in range(n_services) if cand[i] and i not in called] or [
        i for i in range(n_services) if cand[i]
    ]
    best = min(entries, key=lambda i: (-node_score[i], case.services[i]))
    log.debug(
        "case %s: symptom %r not usable; starting from %s (most anomalous entry service)",
        case.case_id,
        case.symptom_service,
        case.services[best],
    )
    return best


def reachable(start: int, edges: list[tuple[int, int]], n: int) -> np.ndarray:
    """Nodes reachable from ``start`` along caller → callee edges (``start`` included)."""
    adj: list[list[int]] = [[] for _ in range(n)]
    for a, b in edges:
        adj[a].append(b)
    seen = np.zeros(n, dtype=bool)
    seen[start] = True
    stack = [start]
    while stack:
        for b in adj[stack.pop()]:
            if not seen[b]:
                seen[b] = True
                stack.append(b)
    return seen


def personalized_pagerank(
    weights: np.ndarray,
    personalization: np.ndarray,
    damping: float,
    *,
    tol: float = 1e-12,
    max_iter: int = 1000,
) -> np.ndarray:
    """Personalised PageRank by power iteration (Page et al. 1999; Haveliwala 2002).

    ``weights[i, j]`` ≥ 0 is the weight of the move i → j; rows are normalised to transition
    probabilities; a node without out-weight (dangling) sends its mass to ``personalization``, as
    networkx.pagerank does. Converged when the L1 change is below ``n · tol``.
    """
    n = len(weights)
    p = np.asarray(personalization, dtype=np.float64)
    p = p / p.sum()
    out = weights.sum(axis=1)
    dangling = out <= 0
    P = np.divide(
        weights, out[:, None], out=np.zeros_like(weights, dtype=np.float64), where=~dangling[:, None]
    )
    x = p.copy()
    for _ in range(max_iter):
        prev = x
        x = damping * (x @ P + x[dangling].sum() * p) + (1.0 - damping) * p
        if np.abs(x - prev).sum() < n * tol:
            break
    else:
        log.warning("personalised PageRank did not converge in %d iterations", max_iter)
    return x / x.sum()


def _after_reached(scores: np.ndarray, reached: np.ndarray, anomaly: np.ndarray) -> np.ndarray:
    """Services the walk cannot reach are ranked after every reached one, by their own anomaly:
    their score is ``-1 / (1 + anomaly)`` ∈ [-1, 0), below the reached services' scores (≥ 0)."""
    return np.where(reached, scores, -1.0 / (1.0 + anomaly))


def _indicators(
    case: CaseData, an: ServiceAnomaly, order: tuple[str, ...]
) -> tuple[tuple[str, str, float], ...]:
    """Each service's most anomalous feature, in ranking order."""
    out = []
    for s in order:
        i = case.services.index(s)
        if an.best_feature[i] >= 0:
            out.append((s, case.features[an.best_feature[i]], float(an.node_score[i])))
    return tuple(out)


# ------------------------------------------------------------------------------------- pagerank
@dataclass(frozen=True)
class PageRankConfig(RankerConfig):
    """MicroRCA-style personalised PageRank.

    feature_kinds: feature kinds scored (empty = all); window_stat: mean | median | max of |z| over
    the post-onset windows; scale_floor: the robust scale is at least this fraction of |median|;
    damping: PageRank damping factor (1 - restart probability); personalization: the restart
    distribution, ∝ node anomaly ("anomaly") or ∝ anomaly × |corr with the symptom| ("anomaly_corr",
    MicroRCA's front-end correlation; it misses faults that do not reach the symptom);
    min_edge_weight: floor of an edge's |correlation| weight (keeps a quiet but called service
    reachable); tol, max_iter: power iteration; score_times_anomaly: rank by PageRank score × node
    anomaly (MicroRCA) rather than the score alone.
    """

    feature_kinds: tuple[str, ...] = ()
    window_stat: str = "mean"
    scale_floor: float = 1e-3
    damping: float = 0.85
    personalization: str = "anomaly"
    min_edge_weight: float = 0.01
    tol: float = 1e-12
    max_iter: int = 1000
    score_times_anomaly: bool = True

    def __post_init__(self) -> None:
        _check_kinds(self.feature_kinds, "pagerank feature_kinds")
        if self.window_stat not in WINDOW_STATS:
            raise ConfigError(f"window_stat {self.window_stat!r}; expected one of {', '.join(WINDOW_STATS)}")
        if self.personalization not in PERSONALIZATIONS:
            raise ConfigError(
                f"personalization {self.personalization!r}; expected one of {', '.join(PERSONALIZATIONS)}"
            )
        if not 0.0 < self.damping < 1.0:
            raise ConfigError(f"damping must be in (0, 1), got {self.damping}")
        if not 0.0 < self.min_edge_weight <= 1.0:
            raise ConfigError(f"min_edge_weight must be in (0, 1], got {self.min_edge_weight}")
        if self.scale_floor < 0 or self.tol <= 0 or self.max_iter < 1:
            raise ConfigError("scale_floor must be >= 0, tol > 0 and max_iter >= 1")


class PageRankRanker(RootCauseRanker):
    """MicroRCA (Wu, Tordsson, Elmroth, Kao, NOMS 2020): personalised PageRank over an
    anomaly-weighted service graph.

    * node anomaly a_s: the largest robust z of the service's features after the onset (MicroRCA
      detects anomalous services with BIRCH on response times; a robust z works on every feature kind);
    * the walk moves along caller → callee edges (against the propagation, towards the cause) over
      the whole call graph; an edge's weight is the |correlation|
      of the two services' anomaly series over the case window (MicroRCA weights edges of its
      anomalous subgraph by response-time correlation), at least ``min_edge_weight``;
    * personalisation p_s ∝ a_s (default) or a_s · |corr(s, start)| (``anomaly_corr``; MicroRCA
      multiplies a node's anomaly by its correlation with the anomalous front-end response time; the
      start is :func:`walk_starts`);
    * score = PageRank · a_s over every service of the call graph: the restart reaches each, so none
      is ranked last only because it lies outside the symptom's subgraph (MicroRCA, too, runs
      PageRank over its whole anomalous subgraph); services without any call edge follow, by their
      anomaly.
    """

    name: ClassVar[str] = "pagerank"
    Config: ClassVar[type] = PageRankConfig

    def _rank(self, case: CaseData) -> RankedCauses:
        c = self.config
        an = service_anomaly(
            case, feature_kinds=c.feature_kinds, window_stat=c.window_stat, scale_floor=c.scale_floor
        )
        edges = call_edges(case)
        if not edges:
            return _anomaly_only(case, an)
        n_services = len(case.services)
        # The walk covers the whole call graph, not only the services below the symptom: the restart
        # ∝ anomaly reaches every node of it, so a fault outside the symptom's subgraph (a wrong
        # symptom, a side entrance, calls the traces missed) is still ranked by its evidence. Services
        # with no call edge at all are outside the graph (no traced call in or out: on Nezha's day, 18
        # services nobody called, never the cause); they follow, by their own anomaly.
        in_graph = np.zeros(n_services, dtype=bool)
        for i, j in edges:
            in_graph[i] = in_graph[j] = True
        idx = np.flatnonzero(in_graph)
        local = {g: k for k, g in enumerate(idx)}
        corr = abs_corr(an.series)
        W = np.zeros((len(idx), len(idx)))
        for i, j in edges:
            W[local[i], local[j]] = max(c.min_edge_weight, corr[i, j])
        a = an.node_score[idx]
        p = a.copy()
        if c.personalization == "anomaly_corr":
            p *= np.maximum(c.min_edge_weight, corr[idx] @ walk_starts(case, edges))
        if not p.sum() > 0:
            p = np.ones(len(idx))
        pr = personalized_pagerank(W, p, c.damping, tol=c.tol, max_iter=c.max_iter)
        scores = np.zeros(n_services)
        scores[idx] = pr * a if c.score_times_anomaly else pr
        scores = _after_reached(scores, in_graph, an.node_score)
        ranked = RankedCauses.from_scores(case.services, scores)
        return RankedCauses(ranked.services, ranked.scores, _indicators(case, an, ranked.services))


# ---------------------------------------------------------------------------------- random walk
@dataclass(frozen=True)
class RandomWalkConfig(RankerConfig):
    """CloudRanger / MicroCause-style first-order random walk.

    feature_kinds, window_stat, scale_floor: as for pagerank; rho: weight of a backward move to a
    caller relative to a forward move to a callee; anomaly_weight: λ in the relevance
    R_s = (1 - λ)·|corr(s, symptom)| + λ·a_s / max a; restart: probability of jumping back to the
    start at each step (0 = a plain walk, CloudRanger); tol, max_iter: convergence of the repeated
    squaring that finds the walk's limit (:func:`walk_visits`).
    """

    feature_kinds: tuple[str, ...] = ()
    window_stat: str = "mean"
    scale_floor: float = 1e-3
    rho: float = 0.2
    anomaly_weight: float = 0.8
    restart: float = 0.0
    tol: float = 1e-12
    max_iter: int = 64

    def __post_init__(self) -> None:
        _check_kinds(self.feature_kinds, "random_walk feature_kinds")
        if self.window_stat not in WINDOW_STATS:
            raise ConfigError(f"window_stat {self.window_stat!r}; expected one of {', '.join(WINDOW_STATS)}")
        if not 0.0 <= self.rho <= 1.0:
            raise ConfigError(f"rho must be in [0, 1], got {self.rho}")
        if not 0.0 <= self.anomaly_weight <= 1.0:
            raise ConfigError(f"anomaly_weight must be in [0, 1], got {self.anomaly_weight}")
        if not 0.0 <= self.restart < 1.0:
            raise ConfigError(f"restart must be in [0, 1), got {self.restart}")
        if self.scale_floor < 0 or self.tol <= 0 or self.max_iter < 1:
            raise ConfigError("scale_floor must be >= 0, tol > 0 and max_iter >= 1")


def walk_transitions(relevance: np.ndarray, edges: list[tuple[int, int]], rho: float) -> np.ndarray:
    """The CloudRanger transition matrix (Wang et al., CCGrid 2018, §IV-C) on the call graph.

    From i: forward to each callee j with weight R_j, backward to each caller k with weight ρ·R_k,
    and to itself with max(0, R_i − max over its neighbours of R) (stay where the evidence is
    strongest); each row normalised; a node with no weight at all stays put.
    """
    n = len(relevance)
    W = np.zeros((n, n))
    for a, b in edges:
        W[a, b] = max(W[a, b], relevance[b])  # forward: caller a → callee b
        W[b, a] = max(W[b, a], rho * relevance[a])  # backward: callee b → caller a
    for i in range(n):
        nb = [b for a, b in edges if a == i] + [a for a, b in edges if b == i]
        best = max((relevance[j] for j in nb), default=0.0)
        W[i, i] += max(0.0, relevance[i] - best)
    out = W.sum(axis=1)
    stuck = out <= 0
    W[stuck, :] = 0.0
    W[stuck, np.flatnonzero(stuck)] = 1.0
    return W / W.sum(axis=1, keepdims=True)


def walk_visits(
    P: np.ndarray, start: int | np.ndarray, restart: float, *, tol: float = 1e-12, max_iter: int = 64
) -> np.ndarray:
    """The long-run visit frequencies of the walk from ``start`` (a node, or a distribution over
    nodes): its exact stationary distribution instead of a count over sampled steps.

    With ``restart`` > 0 the walk jumps back to ``start`` with that probability each step; with 0 the
    lazy chain (I + P) / 2 is used, which has the same stationary distribution and is aperiodic (for a
    reducible chain the limit is the one reached from ``start``). The limit is found by repeated
    squaring of the step matrix (M, M², M⁴, …), at most ``max_iter`` squarings, until no entry changes
    by more than ``tol``.
    """
    n = len(P)
    if np.ndim(start) == 0:
        e = np.zeros(n)
        e[int(start)] = 1.0
    else:
        e = np.asarray(start, dtype=np.float64)
        e = e / e.sum()
    if restart > 0:
        M = (1.0 - restart) * P + restart * e[None, :]
    else:
        M = 0.5 * (np.eye(n) + P)
    for _ in range(max_iter):
        M2 = M @ M
        M2 /= M2.sum(axis=1, keepdims=True)  # rounding would otherwise compound over the squarings
        done = np.abs(M2 - M).max() <= tol
        M = M2
        if done:
            break
    else:
        log.warning("random walk visit frequencies did not converge in %d squarings", max_iter)
    x = e @ M
    return x / x.sum()


class RandomWalkRanker(RootCauseRanker):
    """A first-order random walk over the call graph from the entry services and the symptom
    (:func:`walk_starts`), ranking services by how often the walk visits them: CloudRanger (Wang et
    al., CCGrid 2018) and Microscope (Lin et al., ICSOC 2018) transitions, with MicroCause's (Meng et
    al., IWQoS 2020) idea of mixing a node's correlation with the symptom and its own anomaly into its
    relevance.

    * relevance R_s = (1 − λ)·|corr(series_s, series_start)| + λ·a_s / max a (the mean correlation
      over the starts); the starts' own correlation term is 0 (it is 1 by definition and is no
      evidence of a cause);
    * transitions: :func:`walk_transitions` (forward to callees, backward ×ρ, self-loop);
    * ranking: the exact visit frequencies (:func:`walk_visits`), so the ranker is deterministic and
      needs no seed. Services the walk cannot reach (no call edge) follow, by their own anomaly.

    Without restart the visits drain towards deep callees: on PetShop (datastores and queues under
    every service) this walk ranks below random (Avg@5 0.04–0.08); ``restart: 0.15`` lifts it to 0.49
    but lowers sim-boutique from 0.68 to 0.58, so the default stays CloudRanger's plain walk.
    """

    name: ClassVar[str] = "random_walk"
    Config: ClassVar[type] = RandomWalkConfig

    def _rank(self, case: CaseData) -> RankedCauses:
        c = self.config
        w = _walk_frame(case, c)
        if w is None:
            return _anomaly_only(
                case,
                service_anomaly(
                    case, feature_kinds=c.feature_kinds, window_stat=c.window_stat, scale_floor=c.scale_floor
                ),
            )
        an, edges, n_services, start, reached, idx, local = w
        sub_edges = [(local[a], local[b]) for a, b in edges if reached[a] and reached[b]]
        corr = abs_corr(an.series)[idx] @ start  # with the start (a mean over several starts)
        corr[start[idx] > 0] = 0.0
        a = an.node_score[idx]
        an_norm = a / a.max() if a.max() > 0 else np.zeros_like(a)
        R = (1.0 - c.anomaly_weight) * corr + c.anomaly_weight * an_norm
        P = walk_transitions(R, sub_edges, c.rho)
        visits = walk_visits(P, start[idx], c.restart, tol=c.tol, max_iter=c.max_iter)
        scores = np.zeros(n_services)
        scores[idx] = visits
        scores = _after_reached(scores, reached, an.node_score)
        ranked = RankedCauses.from_scores(case.services, scores)
        return RankedCauses(ranked.services, ranked.scores, _indicators(case, an, ranked.services))
