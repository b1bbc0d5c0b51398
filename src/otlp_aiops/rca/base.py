"""The root-cause-analysis contract (PyRCA style).

* configured only in the constructor: a frozen config dataclass (``Config``) and a seed;
* ``fit(reference, train_cases=())`` learns from fault-free data (may be a no-op); supervised
  methods also take labelled training cases and must never be given the cases they are tested on;
* ``rank(case)`` returns :class:`RankedCauses`: every service of the case, best first, with scores
  (and, where the method can, (service, indicator, score) triples). It must not read the labels.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np

from otlp_aiops.features.data import CaseData, ReferenceData
from otlp_aiops.persist import Persistent


@dataclasses.dataclass(frozen=True)
class RankedCauses:
    """Services ordered from most to least likely root cause."""

    services: tuple[str, ...]
    scores: tuple[float, ...]
    indicators: tuple[tuple[str, str, float], ...] = ()  # (service, feature, score), best first

    def __post_init__(self) -> None:
        if len(self.services) != len(self.scores):
            raise ValueError("services and scores differ in length")
        if len(set(self.services)) != len(self.services):
            raise ValueError("a service appears twice in a ranking")

    @classmethod
    def from_scores(
        cls,
        services: Sequence[str],
        scores: Sequence[float] | np.ndarray,
        indicators: Sequence[tuple[str, str, float]] = (),
    ) -> RankedCauses:
        """Sort by score, descending; ties and NaN (ranked last) are broken by service name so the
        order never depends on the input order."""
        sc = np.asarray(scores, dtype=np.float64)
        sc = np.where(np.isnan(sc), -np.inf, sc)
        order = sorted(range(len(services)), key=lambda i: (-sc[i], services[i]))
        return cls(tuple(services[i] for i in order), tuple(float(sc[i]) for i in order), tuple(indicators))

    def rank_of(self, service: str) -> int | None:
        """1-based rank of ``service``, None when it is not ranked."""
        try:
            return self.services.index(service) + 1
        except ValueError:
            return None

    def top(self, k: int) -> tuple[str, ...]:
        return self.services[:k]


@dataclasses.dataclass(frozen=True)
class RankerConfig:
    pass


class RootCauseRanker(Persistent):
    name: ClassVar[str] = "ranker"
    Config: ClassVar[type] = RankerConfig
    stochastic: ClassVar[bool] = False  # True when the seed changes the result
    supervised: ClassVar[bool] = False  # True when fit needs labelled train_cases

    def __init__(self, config: Any = None, *, seed: int = 0) -> None:
        self._set_config(config, seed)

    def fit(self, reference: ReferenceData | None, train_cases: Sequence[CaseData] = ()) -> RootCauseRanker:
        if self.supervised and not train_cases:
            raise ValueError(f"{self.name} is supervised: fit() needs labelled train_cases")
        self._fit(reference, list(train_cases))
        self.fitted_ = True
        return self

    def rank(self, case: CaseData) -> RankedCauses:
        if not getattr(self, "fitted_", False):
            raise RuntimeError(f"{type(self).__name__} is not fitted; call fit() first")
        return self._rank(case)

    def _fit(self, reference: ReferenceData | None, train_cases: list[CaseData]) -> None:
        pass

    def _rank(self, case: CaseData) -> RankedCauses:
        raise NotImplementedError
