"""A supervised stacker over label-free rankers: learning to rank from the members' evidence.

The label-free members (by default ``multimodal`` and ``nezha``) each rank every service of a case;
the ``ensemble`` fuses their ranks with a fixed rule. ``stacked`` learns the fusion instead, from the
labelled training incidents — stacked generalization (Wolpert, "Stacked generalization", *Neural
Networks* 5(2), 1992): a level-1 model trained on the outputs of level-0 models. The level-0 models
here learn nothing from the labels (they are fitted on the fault-free reference only), so their
outputs on the training incidents are not over-fitted and need no inner cross-validation.

Per service and case, the level-1 features (all normalised within the case, so they mean the same on
every dataset) are, for each member: the reciprocal of its fractional rank (ties share their mean
rank), its score min–max scaled over the case's services, and whether it put the service first
alone; then, when ``node_evidence`` is on, the service's largest deviation over all its features
(:func:`otlp_aiops.rca.node_features.node_features`'s ``top_level``, compressed by sign·log1p and
divided by the case's largest) and its rank by that deviation, reciprocal.

The level-1 model is linear, ``score = w · f``, trained listwise: the cross-entropy of the softmax of
the scores over each case's services against the labelled root cause (ListNet's top-one probability
model, Cao et al., "Learning to rank: from pairwise approach to listwise approach", ICML 2007, with
one relevant item per list), plus an L2 penalty ``l2/2·|w|²``. The objective is convex, so L-BFGS
finds its one minimum whatever the start: the ranker is deterministic (the seed is passed to the
members). Softmax over a case is unchanged by adding a constant to every service, so a member that
has no data for a case (it raises ``ValueError``, or ties every service) contributes nothing to that
case and the other members decide: the fallback needs no special weight.

Fused ties are broken by the members' ranks in member order, then by service name. Indicators are
the members' indicators, service by service in the stacked order (as in ``ensemble``).
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from scipy.optimize import minimize

from otlp_aiops.config import ConfigError
from otlp_aiops.features.data import FEATURE_KINDS, CaseData, ReferenceData
from otlp_aiops.rca.base import RankedCauses, RankerConfig, RootCauseRanker
from otlp_aiops.rca.ensemble import (
    _minmax,
    check_member_configs,
    check_members,
    fractional_ranks,
    make_members,
)
from otlp_aiops.rca.node_features import node_features, parse_groups

log = logging.getLogger(__name__)

MEMBER_FEATURES = ("rr", "score", "first")
FUSED_FEATURES = ("fused", "fused_rr", "agree")
NODE_FEATURES = ("dev", "dev_rr")


@dataclasses.dataclass(frozen=True)
class StackedConfig(RankerConfig):
    members: tuple[str, ...] = ("multimodal", "nezha")
    # name -> that member's config (a params.yaml rca.<member> section);
    # a member left out runs with its defaults
    member_configs: Any = None
    rrf_k: float = 0.5  # the fused feature: reciprocal-rank fusion sum_m 1/(rrf_k + rank_m), as ``ensemble``
    node_evidence: bool = True  # add the service's largest standardised deviation (and its rank) as features
    # per-set evidence: for each feature set (kinds, then "name=glob" groups standardised against the
    # baseline, then raw_groups already scored against the reference: rca.node_features), the
    # service's largest |z| in the set over the case's largest; none when all three are empty
    set_kinds: tuple[str, ...] = ()
    set_groups: tuple[str, ...] = ()
    set_raw_groups: tuple[str, ...] = ()
    set_ranks: bool = False  # also each service's reciprocal rank within the case, per set
    l2: float = 0.01  # L2 penalty on the weights (per training case)
    max_iter: int = 500  # L-BFGS iterations
    top_indicators: int = 20

    def __post_init__(self) -> None:
        check_members(
            self.members,
            excluded=("stacked", "ensemble"),
            why="label-free base rankers only (not stacked or ensemble)",
        )
        check_member_configs(self.members, self.member_configs)
        bad = [k for k in self.set_kinds if k not in FEATURE_KINDS]
        if bad:
            raise ConfigError(f"set_kinds: unknown feature kind(s) {bad}; known: {', '.join(FEATURE_KINDS)}")
        try:
            names = [n for n, _ in parse_groups(self.set_groups)] + [
                n for n, _ in parse_groups(self.set_raw_groups)
            ]
        except ValueError as e:
            raise ConfigError(f"set_groups: {e}") from None
        if len(set(names)) != len(names):
            raise ConfigError("set_groups: a name appears twice in set_groups and set_raw_groups")
        if not self.rrf_k >= 0:
            raise ConfigError(f"rrf_k: must be >= 0, got {self.rrf_k}")
        if not self.l2 >= 0:
            raise ConfigError(f"l2: must be >= 0, got {self.l2}")
        if self.max_iter < 1 or self.top_indicators < 0:
            raise ConfigError("max_iter must be >= 1, top_indicators >= 0")


def feature_names(cfg: StackedConfig) -> tuple[str, ...]:
    """The level-1 feature columns of ``cfg``, in order."""
    sets = [
        *cfg.set_kinds,
        *(n for n, _ in parse_groups(cfg.set_groups)),
        *(n for n, _ in parse_groups(cfg.set_raw_groups)),
    ]
    return (
        tuple(f"{m}.{f}" for m in cfg.members for f in MEMBER_FEATURES)
        + FUSED_FEATURES
        + (NODE_FEATURES if cfg.node_evidence else ())
        + tuple(f"set.{s}" for s in sets)
        + (tuple(f"setrr.{s}" for s in sets) if cfg.set_ranks else ())
    )


def member_features(services: list[str], ranking: RankedCauses | None) -> np.ndarray:
    """(S, 3) features of one member's ranking of ``services``: 1/rank (fractional), min–max score,
    sole first place; zeros when the member has no ranking for the case."""
    n_services = len(services)
    if ranking is None:
        return np.zeros((n_services, len(MEMBER_FEATURES)))
    r = fractional_ranks(ranking, services)
    return np.stack([1.0 / r, _minmax(ranking, services), (r == 1.0).astype(np.float64)], axis=1)


def fused_features(rr: np.ndarray, k: float) -> np.ndarray:
    """(S, 3) from the members' reciprocal ranks ``rr`` (S, M): the reciprocal-rank fusion score
    ``sum_m 1/(k + rank_m)`` (the ``ensemble``'s rule), the reciprocal of the service's fractional
    rank by it, and the members' agreement ``prod_m 1/rank_m`` (1 only where every member puts the
    service first)."""
    n_services = rr.shape[0]
    fused = (1.0 / (k + 1.0 / rr)).sum(axis=1)
    names = [str(i) for i in range(n_services)]
    r = fractional_ranks(RankedCauses.from_scores(names, fused), names)
    return np.stack([fused, 1.0 / r, rr.prod(axis=1)], axis=1)


def deviation_features(top_level: np.ndarray) -> np.ndarray:
    """(S, 2) from each service's largest robust deviation: sign·log1p, over the case's largest
    (0 when none deviates), and the reciprocal of its fractional rank by that deviation."""
    d = np.log1p(np.abs(np.nan_to_num(np.asarray(top_level, dtype=np.float64))))
    hi = d.max() if len(d) else 0.0
    rel = d / hi if hi > 0 else np.zeros_like(d)
    fake = RankedCauses.from_scores([str(i) for i in range(len(d))], d)
    r = fractional_ranks(fake, [str(i) for i in range(len(d))])
    return np.stack([rel, 1.0 / r], axis=1)


def listnet_loss(
    w: np.ndarray, X: list[np.ndarray], targets: list[int], l2: float
) -> tuple[float, np.ndarray]:
    """Mean over cases of −log softmax(X_c·w)[target_c] + l2/2·|w|², and its gradient."""
    loss, grad = 0.0, np.zeros_like(w)
    for x, t in zip(X, targets, strict=True):
        s = x @ w
        s = s - s.max()
        p = np.exp(s)
        p /= p.sum()
        loss -= np.log(max(p[t], 1e-300))
        grad += x.T @ p - x[t]
    n = max(len(X), 1)
    return loss / n + 0.5 * l2 * float(w @ w), grad / n + l2 * w


class StackedRanker(RootCauseRanker):
    """Learning to rank over label-free members' evidence (module docstring)."""

    name: ClassVar[str] = "stacked"
    Config: ClassVar[type] = StackedConfig
    supervised: ClassVar[bool] = True

    def _make_members(self) -> list[RootCauseRanker]:
        return make_members(self.config.members, self.config.member_configs, seed=self.seed, owner="stacked")

    def _members_for(self, case: CaseData) -> list[RootCauseRanker]:
        """The members fitted on the fault-free reference of ``case``'s own dataset: those of ``fit``
        for the training dataset; for another (a model trained on one dataset and applied to
        another), members fitted on that dataset's reference, read from the case's features folder
        (``case.extra["features_dir"]``), once per dataset. Without one, the training dataset's."""
        if case.dataset == self.dataset_:
            return self.members_
        cache = self.__dict__.setdefault("_other_members", {})
        if case.dataset not in cache:
            fd = case.extra.get("features_dir") if isinstance(case.extra, dict) else None
            if not fd:
                log.warning(
                    "stacked: case %s of %s has no features_dir; members fitted on %s rank it",
                    case.case_id,
                    case.dataset,
                    self.dataset_,
                )
                cache[case.dataset] = self.members_
            else:
                from otlp_aiops.features.store import load_reference

                ref = load_reference(Path(fd))
                cache[case.dataset] = [r.fit(ref) for r in self._make_members()]
        return cache[case.dataset]

    def member_rankings(self, case: CaseData) -> list[RankedCauses | None]:
        """Each member's ranking of ``case`` (None where the member has no data for it)."""
        out: list[RankedCauses | None] = []
        for name, r in zip(self.config.members, self._members_for(case), strict=True):
            try:
                out.append(r.rank(case))
            except ValueError as e:
                log.warning("stacked: member %s gives no ranking for case %s (%s)", name, case.case_id, e)
                out.append(None)
        return out

    def case_features(self, case: CaseData, rankings: list[RankedCauses | None]) -> np.ndarray:
        """The (S, D) level-1 features of ``case``'s services (columns: :func:`feature_names`)."""
        services = list(case.services)
        blocks = [member_features(services, r) for r in rankings]
        # a member without a ranking counts as tying every service (rank (S+1)/2) in the fusion
        rr = np.stack(
            [
                b[:, 0] if r is not None else np.full(len(services), 2.0 / (len(services) + 1))
                for b, r in zip(blocks, rankings, strict=True)
            ],
            axis=1,
        )
        blocks.append(fused_features(rr, self.config.rrf_k))
        if self.config.node_evidence:
            try:
                top = node_features(case).top_level
            except ValueError:
                top = np.zeros(len(services))
            blocks.append(deviation_features(top))
        if self._uses_sets():
            blocks.append(self.set_features(case))
        return np.concatenate(blocks, axis=1)

    def _uses_sets(self) -> bool:
        c = self.config
        return bool(c.set_kinds or c.set_groups or c.set_raw_groups)

    def set_features(self, case: CaseData) -> np.ndarray:
        """(S, G): per feature set, each service's ``max_abs`` (sign·log1p of the largest robust |z|
        over the set's features and post-onset windows) over the case's largest; 0 where missing."""
        c = self.config
        nf = node_features(case, "kinds", kinds=c.set_kinds, groups=c.set_groups, raw_groups=c.set_raw_groups)
        x = np.log1p(np.abs(nf.x[:, 0::4])) * (1.0 - nf.x[:, 3::4])
        hi = x.max(axis=0) if len(x) else np.zeros(x.shape[1])
        rel = np.where(hi > 0, x / np.where(hi > 0, hi, 1.0), 0.0)
        if not c.set_ranks:
            return rel
        names = [str(i) for i in range(len(x))]
        rr = (
            np.stack(
                [
                    1.0 / fractional_ranks(RankedCauses.from_scores(names, x[:, g]), names)
                    for g in range(x.shape[1])
                ],
                axis=1,
            )
            if x.shape[1]
            else np.zeros((len(x), 0))
        )
        return np.concatenate([rel, rr], axis=1)

    def _fit(self, reference: ReferenceData | None, train_cases: list[CaseData]) -> None:
        self.members_ = [r.fit(reference) for r in self._make_members()]
        self.dataset_ = reference.dataset if reference is not None else ""
        self._other_members = {}
        X, y, skipped = [], [], []
        for case in train_cases:
            if case.root_cause_service not in case.services:
                skipped.append(case.case_id)
                continue
            X.append(self.case_features(case, self.member_rankings(case)))
            y.append(case.services.index(case.root_cause_service))
        if not X:
            raise ValueError(
                f"stacked: none of the {len(train_cases)} training cases has its root cause among "
                "its services"
            )
        d = X[0].shape[1]
        res = minimize(
            listnet_loss,
            np.zeros(d),
            args=(X, y, self.config.l2),
            jac=True,
            method="L-BFGS-B",
            options={"maxiter": self.config.max_iter},
        )
        self.weights_ = np.asarray(res.x, dtype=np.float64)
        self.feature_names_ = feature_names(self.config)
        self.train_info_ = {
            "n_cases": len(train_cases),
            "skipped_cases": len(skipped),
            "loss": float(res.fun),
            "iterations": int(res.nit),
            "converged": bool(res.success),
            "weights": dict(zip(self.feature_names_, map(float, self.weights_), strict=True)),
        }

    def _rank(self, case: CaseData) -> RankedCauses:
        services = list(case.services)
        rankings = self.member_rankings(case)
        score = self.case_features(case, rankings) @ self.weights_
        ranks = np.stack(
            [fractional_ranks(r, services) if r is not None else np.ones(len(services)) for r in rankings]
        )
        order = sorted(range(len(services)), key=lambda i: (-score[i], *ranks[:, i], services[i]))
        fused = tuple(services[i] for i in order)
        place = {s: i for i, s in enumerate(fused)}
        seen: set[tuple[str, str]] = set()
        ind = []
        for m, r in enumerate(rankings):
            for j, (s, f, v) in enumerate(r.indicators if r is not None else ()):
                if (s, f) not in seen and s in place:
                    seen.add((s, f))
                    ind.append((place[s], m, j, (s, f, float(v))))
        ind.sort(key=lambda t: t[:3])
        return RankedCauses(
            fused,
            tuple(float(score[i]) for i in order),
            tuple(t[3] for t in ind[: self.config.top_indicators]),
        )
