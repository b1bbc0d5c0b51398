"""DoWhy root-cause ranker (``dowhy``): a graphical causal model (``dowhy.gcm``) over the service
dependency graph, fitted on fault-free data, that attributes the symptom service's anomaly to the
services upstream of it in causal order (Budhathoki et al., "Causal structure-based root cause
analysis of outliers", ICML 2022), as the PetShop benchmark's "counterfactual attribution" method does
(Hardt et al., CLeaR 2024). dowhy is imported only inside the functions that use it."""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from otlp_aiops.config import ConfigError
from otlp_aiops.features.data import CaseData, ReferenceData
from otlp_aiops.rca.base import RankedCauses, RankerConfig, RootCauseRanker
from otlp_aiops.rca.graph import (
    WINDOW_STATS,
    _check_kinds,
    call_edges,
    choose_symptom,
    robust_z_hard_floor,
    service_anomaly,
)

log = logging.getLogger(__name__)

REGRESSORS = ("linear", "ridge")
SCORERS = ("mean_deviation", "median_deviation", "median_cdf_quantile")
SHAPLEY = ("auto", "exact", "permutation", "early_stopping")
AGGREGATES = ("mean", "rows")
_JITTER = 1e-3  # z units: lets a variable that never moved in the fault-free data be modelled at all


@dataclass(frozen=True)
class DoWhyConfig(RankerConfig):
    """dowhy.gcm anomaly attribution.

    variable_kind: the feature kind that is each service's causal variable; fallback_kinds: the kinds
    tried in order for a service without it; min_coverage: the fraction of fault-free windows a
    feature must have a value in to be used; regressor: linear | ridge (the additive-noise mechanism
    of a service with callees); anomaly_scorer: mean_deviation (PetShop) | median_deviation |
    median_cdf_quantile (dowhy's default); attribute_mean_deviation: attribute g(x) − E[g(X)] (True,
    PetShop) or the information-theoretic score (False); aggregate: "mean" attributes the mean of the
    post-onset windows as one sample, "rows" attributes every post-onset window and averages;
    num_distribution_samples: samples of the fault-free distribution per attribution; shapley: the
    Shapley estimator (auto: dowhy 0.14 computes exact values up to a few services, else uses
    permutation sampling); shapley_permutations:
    permutations for the sampling estimators; window_stat, scale_floor: the own-anomaly score that
    orders the services the attribution does not cover (see :mod:`otlp_aiops.rca.graph`).
    """

    variable_kind: str = "latency"
    fallback_kinds: tuple[str, ...] = ("errors", "cpu", "memory", "saturation", "traffic", "logs", "other")
    min_coverage: float = 0.5
    regressor: str = "linear"
    anomaly_scorer: str = "mean_deviation"
    attribute_mean_deviation: bool = True
    aggregate: str = "mean"
    num_distribution_samples: int = 500
    shapley: str = "auto"
    shapley_permutations: int = 10
    window_stat: str = "mean"
    scale_floor: float = 1e-3

    def __post_init__(self) -> None:
        _check_kinds((self.variable_kind, *self.fallback_kinds), "dowhy variable_kind/fallback_kinds")
        for name, value, allowed in (
            ("regressor", self.regressor, REGRESSORS),
            ("anomaly_scorer", self.anomaly_scorer, SCORERS),
            ("shapley", self.shapley, SHAPLEY),
            ("aggregate", self.aggregate, AGGREGATES),
            ("window_stat", self.window_stat, WINDOW_STATS),
        ):
            if value not in allowed:
                raise ConfigError(f"{name} {value!r}; expected one of {', '.join(allowed)}")
        if not 0.0 <= self.min_coverage <= 1.0:
            raise ConfigError(f"min_coverage must be in [0, 1], got {self.min_coverage}")
        if self.num_distribution_samples < 10 or self.shapley_permutations < 1:
            raise ConfigError("num_distribution_samples must be >= 10 and shapley_permutations >= 1")
        if self.scale_floor < 0:
            raise ConfigError("scale_floor must be >= 0")


def break_cycles(nodes: list[str], edges: list[tuple[str, str]], depth: dict[str, int] | None = None):
    """A DAG over ``nodes`` from causal (cause, effect) = (callee, caller) edges.

    Edges are added in order of the caller's call depth from the symptom (``depth``; unknown = after
    all known), then by (caller, callee) name; an edge that would close a cycle is dropped. So the calls
    that lead away from the symptom are kept and a call back towards it (the one closing the loop) is
    the one dropped, and the same graph always loses the same edges.
    """
    import networkx as nx

    depth = depth or {}
    g = nx.DiGraph()
    g.add_nodes_from(nodes)
    dropped = []
    for u, v in sorted(set(edges), key=lambda e: (depth.get(e[1], len(nodes) + 1), e[1], e[0])):
        if u == v or nx.has_path(g, v, u):
            dropped.append((u, v))
            continue
        g.add_edge(u, v)
    return g, dropped


def call_depth(start: int, edges: list[tuple[int, int]], n: int) -> list[int | None]:
    """Breadth-first call depth of every node from ``start`` along caller → callee edges (None when
    it cannot be reached)."""
    out: list[int | None] = [None] * n
    out[start] = 0
    frontier = [start]
    while frontier:
        nxt = []
        for a, b in edges:
            if a in frontier and out[b] is None:
                out[b] = out[a] + 1  # type: ignore[operator]
                nxt.append(b)
        frontier = nxt
    return out


class DoWhyRanker(RootCauseRanker):
    """Rank services by their contribution to the symptom service's anomaly (``gcm.attribute_anomalies``).

    * causal graph: the call graph reversed (callee → caller: a callee's behaviour causes its
      callers'), cycles broken by :func:`break_cycles`, restricted to the symptom and its ancestors;
    * one variable per service: its first ``variable_kind`` feature (latency by default, PetShop's
      choice) with enough values, else the first feature of the first ``fallback_kinds`` kind it has;
      standardised by the fault-free median and robust scale;
    * mechanisms, fitted on the fault-free data (the ReferenceData given to ``fit``, else each case's
      baseline): empirical distributions for services that call no one, additive-noise models with a
      linear (or ridge) regressor for the others — no automatic assignment (slow and unnecessary);
    * score: the Shapley contribution of each service's noise to the symptom's anomaly score on the
      post-onset windows. Services outside the symptom's ancestry or without a variable follow, ordered
      by their own anomaly (largest robust z after the onset).
    """

    name: ClassVar[str] = "dowhy"
    Config: ClassVar[type] = DoWhyConfig

    def _fit(self, reference: ReferenceData | None, train_cases: list[CaseData]) -> None:
        if reference is None:
            self.reference_ = None
            return
        self.reference_ = {
            "services": tuple(reference.services),
            "features": tuple(reference.features),
            "feature_kinds": tuple(reference.feature_kinds),
            "values": np.asarray(reference.values, dtype=np.float64),
        }

    # ------------------------------------------------------------------ the fault-free data
    def _fit_matrix(self, case: CaseData) -> np.ndarray:
        """The fault-free data in the case's (time, service, feature) layout: the fitted reference
        (NaN for a service or feature it lacks) or, without one, the case baseline."""
        ref = getattr(self, "reference_", None)
        if ref is None:
            base = case.baseline()
            if len(base) == 0:
                raise ValueError(
                    f"case {case.case_id}: no fault-free baseline (no reference windows and onset 0)"
                )
            return base
        out = np.full((len(ref["values"]), len(case.services), len(case.features)), np.nan)
        spos = {s: i for i, s in enumerate(ref["services"])}
        fpos = {f: i for i, f in enumerate(ref["features"])}
        for si, s in enumerate(case.services):
            if s not in spos:
                continue
            for fi, f in enumerate(case.features):
                if f in fpos:
                    out[:, si, fi] = ref["values"][:, spos[s], fpos[f]]
        return out

    def _variables(self, case: CaseData, fit: np.ndarray) -> dict[int, int]:
        """service position → feature position of its causal variable (services without one absent)."""
        c = self.config
        kinds = np.asarray(case.feature_kinds)
        coverage = np.mean(np.isfinite(fit), axis=0) if len(fit) else np.zeros(fit.shape[1:])  # (S, F)
        out = {}
        for s in range(len(case.services)):
            for kind in (c.variable_kind, *c.fallback_kinds):
                ok = np.flatnonzero((kinds == kind) & (coverage[s] >= max(c.min_coverage, 1e-12)))
                if len(ok):
                    out[s] = int(ok[0])
                    break
        return out

    # ------------------------------------------------------------------------- ranking
    def _rank(self, case: CaseData) -> RankedCauses:
        c = self.config
        an = service_anomaly(case, window_stat=c.window_stat, scale_floor=c.scale_floor)
        fit = self._fit_matrix(case)
        var = self._variables(case, fit)
        n_services = len(case.services)
        names = case.services
        in_model = np.array([s in var for s in range(n_services)])
        edges = call_edges(case)
        phi: dict[int, float] = {}
        if in_model.any():
            sym = choose_symptom(case, an.node_score, edges, candidates=in_model)
            phi = self._attribute(case, fit, var, edges, sym)
        if len(phi) <= 1:  # no causal graph above the symptom: nothing to attribute between services
            phi = {}
        scores = np.empty(n_services)
        attributed = np.zeros(n_services, dtype=bool)
        for s, v in phi.items():
            scores[s] = v
            attributed[s] = True
        floor = (min(phi.values()) if phi else 0.0) - 1.0
        rest = ~attributed
        scores[rest] = floor - 1.0 / (1.0 + an.node_score[rest])
        ranked = RankedCauses.from_scores(names, scores)
        ind = tuple(
            (s, case.features[var[names.index(s)]], float(phi[names.index(s)]))
            for s in ranked.services
            if names.index(s) in phi
        )
        return RankedCauses(ranked.services, ranked.scores, ind)

    def _attribute(
        self, case: CaseData, fit: np.ndarray, var: dict[int, int], edges: list[tuple[int, int]], sym: int
    ) -> dict[int, float]:
        import networkx as nx
        import pandas as pd
        from dowhy import gcm
        from dowhy.gcm.shapley import ShapleyApproximationMethods, ShapleyConfig
        from dowhy.gcm.util.general import set_random_seed

        c = self.config
        gcm.config.disable_progress_bars()
        names = case.services
        nodes = [names[s] for s in sorted(var)]
        causal = [(names[b], names[a]) for a, b in edges if a in var and b in var]  # callee → caller
        depth = {names[i]: d for i, d in enumerate(call_depth(sym, edges, len(names))) if d is not None}
        dag, dropped = break_cycles(nodes, causal, depth)
        if dropped:
            log.debug("case %s: dropped %d edge(s) closing a cycle: %s", case.case_id, len(dropped), dropped)
        target = names[sym]
        keep = sorted(nx.ancestors(dag, target) | {target})
        dag = dag.subgraph(keep).copy()
        cols = [names.index(n) for n in keep]

        def column(x: np.ndarray) -> np.ndarray:  # (T, S, F) → (T, nodes): the chosen variables
            return np.stack([x[:, s, var[s]] for s in cols], axis=1)

        base = column(fit)
        zf = robust_z_hard_floor(base, base, c.scale_floor)
        med = np.nan_to_num(np.nanmedian(zf, axis=0), nan=0.0)
        zf = np.where(np.isfinite(zf), zf, med)
        rng = np.random.default_rng(self.seed)
        flat = np.std(zf, axis=0) <= 0
        if flat.any():  # a variable that never moved: give it a tiny seeded spread so it can be modelled
            zf[:, flat] += _JITTER * rng.standard_normal((len(zf), int(flat.sum())))
        za = robust_z_hard_floor(column(case.after()), base, c.scale_floor)
        za = np.where(np.isfinite(za), za, med)
        if c.aggregate == "mean":
            za = za.mean(axis=0, keepdims=True)

        scm = gcm.InvertibleStructuralCausalModel(dag)
        for n in keep:
            if dag.in_degree(n) == 0:
                scm.set_causal_mechanism(n, gcm.EmpiricalDistribution())
            else:
                reg = (
                    gcm.ml.create_linear_regressor()
                    if c.regressor == "linear"
                    else gcm.ml.create_ridge_regressor()
                )
                scm.set_causal_mechanism(n, gcm.AdditiveNoiseModel(reg))
        set_random_seed(self.seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            gcm.fit(scm, pd.DataFrame(zf, columns=keep))
            method = {
                "auto": ShapleyApproximationMethods.AUTO,
                "exact": ShapleyApproximationMethods.EXACT,
                "permutation": ShapleyApproximationMethods.PERMUTATION,
                "early_stopping": ShapleyApproximationMethods.EARLY_STOPPING,
            }[c.shapley]
            contributions: dict[Any, np.ndarray] = gcm.attribute_anomalies(
                scm,
                target,
                anomaly_samples=pd.DataFrame(za, columns=keep),
                anomaly_scorer=_scorer(gcm, c.anomaly_scorer),
                attribute_mean_deviation=c.attribute_mean_deviation,
                num_distribution_samples=c.num_distribution_samples,
                shapley_config=ShapleyConfig(
                    approximation_method=method, num_permutations=c.shapley_permutations, n_jobs=1
                ),
            )
        return {names.index(n): float(np.nan_to_num(np.mean(v), nan=0.0)) for n, v in contributions.items()}


def _scorer(gcm: Any, name: str) -> Any:
    if name == "mean_deviation":
        return gcm.anomaly_scorers.MeanDeviationScorer()
    if name == "median_deviation":
        return gcm.anomaly_scorers.MedianDeviationScorer()
    return gcm.anomaly_scorers.MedianCDFQuantileScorer()
