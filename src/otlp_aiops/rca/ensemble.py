"""A label-free ensemble: the rankings of complementary label-free rankers, fused per case.

The members see different evidence — ``nezha`` the event patterns (log lines, span starts and ends,
metric alarms) that vanish from or appear in traces, ``multimodal`` the calibrated deviation of log
content, trace structure (exclusive time, client–server gaps on the calls into a service) and
resources — and fail on different cases, so a service that both put near the top is a better bet
than either's first place alone.

Rules (``rule``):

* ``rrf`` — reciprocal-rank fusion (Cormack, Clarke and Büttcher, "Reciprocal Rank Fusion
  outperforms Condorcet and individual Rank Learning Methods", SIGIR 2009):
  ``score(s) = sum_m w_m / (k + rank_m(s))``. It reads only ranks, so members whose scores live on
  unrelated scales (a pattern score, a ratio to a normal peak) need no calibration against each
  other. Services a member ties share their mean rank (fractional ranking), so a tie a member breaks
  only by name does not vote. ``k`` damps the weight of the very first places: small ``k`` lets a
  member's first place dominate, large ``k`` approaches a Borda count.
* ``score`` — the members' scores, each min–max normalised over the case's services, summed with
  the weights (a CombSUM of Fox and Shaw, TREC-2 1994).

Fused ties are broken by the members' own ranks in list order (the first member is the primary),
then by service name, so the order never depends on the input order. The indicator ranking lists,
service by service in the fused order, the members' indicators of that service (members in list
order). Each member is built by the registry from its own config (``member_configs``, in
``params.yaml`` the members' own ``rca.<member>`` sections) and fitted on the same reference;
supervised members are refused: the ensemble needs no labels.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from otlp_aiops.config import ConfigError
from otlp_aiops.features.data import CaseData, ReferenceData
from otlp_aiops.rca.base import RankedCauses, RankerConfig, RootCauseRanker

RULES = ("rrf", "score")


@dataclasses.dataclass(frozen=True)
class EnsembleConfig(RankerConfig):
    members: tuple[str, ...] = ("multimodal", "nezha")
    rule: str = "rrf"  # rrf | score
    # rrf: the rank offset (SIGIR'09 used 60; 0.5 was chosen on the simulators, docs/rca-methods.md)
    k: float = 0.5
    weights: tuple[float, ...] = ()  # one per member; () = all 1
    # name -> that member's config (a params.yaml rca.<member> section); a member left out runs with
    # its defaults
    member_configs: Any = None
    top_indicators: int = 20

    def __post_init__(self) -> None:
        check_members(self.members, excluded=("ensemble",), why="an ensemble cannot be its own member")
        if self.rule not in RULES:
            raise ConfigError(f"rule: expected one of {', '.join(RULES)}, got {self.rule!r}")
        if not self.k >= 0:
            raise ConfigError(f"k: must be >= 0, got {self.k}")
        if self.weights and len(self.weights) != len(self.members):
            raise ConfigError(f"weights: {len(self.weights)} given for {len(self.members)} members")
        if any(not w >= 0 for w in self.weights):
            raise ConfigError(f"weights: must be >= 0, got {list(self.weights)}")
        check_member_configs(self.members, self.member_configs)
        if self.top_indicators < 0:
            raise ConfigError(f"top_indicators: must be >= 0, got {self.top_indicators}")


def check_members(members: Sequence[str], *, excluded: Sequence[str], why: str) -> None:
    """``members`` of a fusing ranker (ensemble, stacked): at least one, none twice, none of
    ``excluded`` (``why`` says why); anything else is a :class:`ConfigError`."""
    if not members:
        raise ConfigError("members: at least one ranker is needed")
    if len(set(members)) != len(members):
        raise ConfigError(f"members: a ranker is listed twice: {list(members)}")
    if set(excluded) & set(members):
        raise ConfigError(f"members: {why}")


def check_member_configs(members: Sequence[str], member_configs: Any) -> None:
    """``member_configs`` of a fusing ranker (ensemble, stacked): ``None`` or a mapping whose keys are
    all among ``members``; anything else is a :class:`ConfigError`."""
    if member_configs is None:
        return
    if not isinstance(member_configs, Mapping):
        raise ConfigError(f"member_configs: expected a mapping name -> config, got {member_configs!r}")
    extra = sorted(set(member_configs) - set(members))
    if extra:
        raise ConfigError(
            f"member_configs: {', '.join(map(str, extra))} not among the members {', '.join(members)}"
        )


def make_members(
    members: Sequence[str], member_configs: Any, *, seed: int, owner: str
) -> list[RootCauseRanker]:
    """Unfitted label-free member rankers of a fusing ranker (``owner``: ensemble, stacked), each with
    its config from ``member_configs`` and ``seed``; a supervised member is a :class:`ConfigError`."""
    from otlp_aiops import registry

    cfgs = member_configs or {}
    out = []
    for m in members:
        if getattr(registry.model_class("ranker", m), "supervised", False):
            raise ConfigError(f"{owner} member {m!r} is supervised; the members must be label-free rankers")
        out.append(registry.create("ranker", m, cfgs.get(m) or {}, seed=seed))
    return out


def fractional_ranks(ranking: RankedCauses, services: tuple[str, ...] | list[str]) -> np.ndarray:
    """1-based rank of each of ``services`` in ``ranking``; services with equal scores share their
    mean rank; a service the ranking leaves out ranks after every ranked one (also shared)."""
    pos = {s: i for i, s in enumerate(ranking.services)}
    n = len(ranking.services)
    # groups of equal scores, in ranking order
    ranks: dict[str, float] = {}
    i = 0
    while i < n:
        j = i
        while j + 1 < n and ranking.scores[j + 1] == ranking.scores[i]:
            j += 1
        for t in range(i, j + 1):
            ranks[ranking.services[t]] = (i + j) / 2 + 1
        i = j + 1
    missing = [s for s in services if s not in pos]
    tail = n + (len(missing) + 1) / 2
    return np.array([ranks.get(s, tail) for s in services], dtype=np.float64)


def _minmax(ranking: RankedCauses, services: tuple[str, ...] | list[str]) -> np.ndarray:
    """The ranking's scores of ``services`` scaled to [0, 1] over the case (NaN, inf and a missing
    service count as the lowest; all equal: 0)."""
    sc = dict(zip(ranking.services, ranking.scores, strict=True))
    v = np.array([sc.get(s, np.nan) for s in services], dtype=np.float64)
    fin = np.isfinite(v)
    if not fin.any():
        return np.zeros(len(v))
    lo, hi = v[fin].min(), v[fin].max()
    out = np.where(fin, (v - lo) / (hi - lo) if hi > lo else 0.0, 0.0)
    return out


class EnsembleRanker(RootCauseRanker):
    """Fused rankings of label-free member rankers (module docstring)."""

    name = "ensemble"
    Config = EnsembleConfig

    def _make_members(self) -> list[RootCauseRanker]:
        return make_members(self.config.members, self.config.member_configs, seed=self.seed, owner="ensemble")

    def _fit(self, reference: ReferenceData | None, train_cases: list[CaseData]) -> None:
        self.members_ = [r.fit(reference) for r in self._make_members()]

    def member_rankings(self, case: CaseData) -> list[RankedCauses]:
        """Every member's ranking of ``case``, in member order."""
        return [r.rank(case) for r in self.members_]

    def fuse(self, services: tuple[str, ...] | list[str], rankings: list[RankedCauses]) -> RankedCauses:
        """The fused ranking of ``services`` from the members' ``rankings`` (in member order)."""
        cfg = self.config
        services = list(services)
        w = np.asarray(cfg.weights or [1.0] * len(rankings), dtype=np.float64)
        ranks = np.stack([fractional_ranks(r, services) for r in rankings])  # (M, S)
        if cfg.rule == "rrf":
            score = (w[:, None] / (cfg.k + ranks)).sum(axis=0)
        else:
            score = (w[:, None] * np.stack([_minmax(r, services) for r in rankings])).sum(axis=0)
        order = sorted(range(len(services)), key=lambda i: (-score[i], *ranks[:, i], services[i]))
        fused = tuple(services[i] for i in order)
        place = {s: i for i, s in enumerate(fused)}
        seen: set[tuple[str, str]] = set()
        indicators = []
        for m, r in enumerate(rankings):
            for j, (s, f, v) in enumerate(r.indicators):
                if (s, f) not in seen and s in place:
                    seen.add((s, f))
                    indicators.append((place[s], m, j, (s, f, float(v))))
        indicators.sort(key=lambda t: t[:3])
        return RankedCauses(
            fused,
            tuple(float(score[i]) for i in order),
            tuple(t[3] for t in indicators[: cfg.top_indicators]),
        )

    def _rank(self, case: CaseData) -> RankedCauses:
        return self.fuse(case.services, self.member_rankings(case))
