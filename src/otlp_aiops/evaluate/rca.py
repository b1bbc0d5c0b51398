"""Root-cause-analysis metrics, computed in exactly one place.

Definitions follow RCAEval (Pham et al., "RCAEval: A Benchmark for Root Cause Analysis of
Microservice Systems with Telemetry Data", WWW'25 companion; and "BARO", FSE/ASE'24):

* AC@k  — the fraction of cases whose true root-cause service is among the top k ranked services;
* Avg@k — the mean of AC@1 … AC@k (the headline number is Avg@5);
* MRR   — the mean over cases of 1 / rank of the true root cause (0 when it is not ranked).

Fine-grained (indicator-level) metrics, for rankers that return (service, indicator, score) rows and
cases whose label names an indicator (``root_cause_indicator``: a metric, a log template or code
region, an operation):

* AIS@k — Nezha's "inner-service" accuracy (Yu et al., FSE'23, §4.1): the true service *and* indicator
  are found among the top k rows of the indicator ranking, rows with equal scores sharing one rank
  (Nezha's own evaluation counts a tie of score and depth as one place);
* IAC@k (``ind_ac_at_k``) — AC@k at indicator level (RCAEval's fine-grained "service_metric" ranking):
  the same match, counted by position (no tie sharing).

Matching an indicator row to the label (:func:`indicator_matches`): a label "X_Y" is Nezha's pattern
label and matches a row "A -> B" when X is in A and Y is in B (``pattern_ranker.evaluation``); any
other label matches when it occurs in the row's indicator at a token boundary
("pod.cpu.utilization" in "metric.pod.cpu.utilization.mean").
These are NaN (left out of the means, "—" in tables) for a case without an indicator label or a
ranker that returns no indicators.

A case whose true root cause is not in the ranking at all counts as a miss at every k (and rr 0);
such cases are counted in ``n_unranked`` and logged, because they usually mean the method and the
labels disagree on service names.

Metric names use ``_at_`` instead of ``@`` because MLflow rejects ``@`` in metric names; the report
shows them as "AC@1", "Avg@5".
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from otlp_aiops.rca.base import RankedCauses

log = logging.getLogger(__name__)

AVG_K = 5  # Avg@5 = mean(AC@1..AC@5), as in RCAEval's tables
DEFAULT_KS = (1, 3, 5)


def ac_at_k(ranks: Iterable[float | None], k: int) -> float:
    """AC@k: the fraction of cases whose true root cause is among the top ``k``, from the 1-based
    ``ranks`` of the true root cause, one per case (``None`` or NaN: not ranked, a miss at every k).
    The one definition: the case results, the report's AC@k curve and the benchmarks call it."""
    if k < 1:
        raise ValueError(f"k must be ≥ 1, got {k}")
    r = np.array([math.nan if x is None else x for x in ranks], dtype=np.float64)
    if len(r) == 0:
        raise ValueError("ac_at_k: no cases")
    return float(np.count_nonzero(r <= k)) / len(r)  # NaN compares False: a miss


@dataclass(frozen=True)
class RcaCaseResult:
    """The outcome of ranking one case."""

    case_id: str
    fault_type: str
    root_cause_service: str
    rank: int | None  # 1-based rank of the true root cause; None when it is not ranked
    n_services: int
    seconds: float
    # indicator level: None when not scored (no indicator label, or the ranker gives no indicators)
    indicator_rank: int | None = None  # tie-sharing rank of the first matching row (AIS@k); 0 = not found
    indicator_position: int | None = None  # 1-based position of that row (IAC@k); 0 = not found

    @property
    def indicator_scored(self) -> bool:
        return self.indicator_rank is not None

    def indicator_hit(self, k: int, *, ties: bool = True) -> float:
        """AIS@k (``ties``: equal scores share a rank) or IAC@k for this case; NaN when not scored."""
        r = self.indicator_rank if ties else self.indicator_position
        if r is None:
            return math.nan
        return 1.0 if 0 < r <= k else 0.0

    def hit(self, k: int) -> float:
        """1.0 when the true root cause is in the top ``k``, else 0.0 (AC@k of this one case)."""
        return ac_at_k((self.rank,), k)

    @property
    def rr(self) -> float:
        """Reciprocal rank (0 when not ranked)."""
        return 0.0 if self.rank is None else 1.0 / self.rank

    @property
    def avg_at_5(self) -> float:
        return sum(self.hit(k) for k in range(1, AVG_K + 1)) / AVG_K

    def as_dict(self, max_k: int = AVG_K) -> dict:
        """Per-case values: rank (None = not ranked), hit_at_1..hit_at_max_k, rr, seconds."""
        d: dict = {
            "case_id": self.case_id,
            "fault_type": self.fault_type,
            "root_cause_service": self.root_cause_service,
            "rank": self.rank,
            "ranked": self.rank is not None,
            "n_services": self.n_services,
        }
        for k in range(1, max_k + 1):
            d[f"hit_at_{k}"] = self.hit(k)
        d["rr"] = self.rr
        d["seconds"] = self.seconds
        if self.indicator_scored:
            d["indicator_rank"] = self.indicator_rank or None
            for k in DEFAULT_KS:
                d[f"ais_at_{k}"] = self.indicator_hit(k)
                d[f"ind_ac_at_{k}"] = self.indicator_hit(k, ties=False)
        return d


_PAIR = " -> "


def _contains(text: str, part: str) -> bool:
    """``part`` occurs in ``text`` and is not glued to a letter or digit on either side."""
    if not part:
        return False
    return re.search(rf"(?<![A-Za-z0-9]){re.escape(part)}(?![A-Za-z0-9])", text) is not None


def _key(text: str) -> str:
    # metric names become feature-name parts with every run of other characters as "_"
    # (features.tables.metric_key: container.cpu.usage -> container_cpu_usage)
    return re.sub(r"[^0-9A-Za-z_]+", "_", text)


def indicator_matches(indicator: str, label: str) -> bool:
    """Whether an indicator row names the labelled root-cause indicator (module docstring)."""
    label = label.strip()
    parts = label.split("_")
    if len(parts) == 2 and _PAIR in indicator and all(p.strip() for p in parts):
        a, _, b = indicator.partition(_PAIR)
        if parts[0].strip() in a and parts[1].strip() in b:
            return True
    return _contains(indicator, label) or _contains(_key(indicator), _key(label).strip("_"))


def indicator_ranks(ranking: RankedCauses, service: str, label: str) -> tuple[int, int]:
    """(tie-sharing rank, position) of the first indicator row of ``service`` that matches ``label``;
    (0, 0) when no row matches. Rows with an equal score share the rank of the first of them."""
    rank, prev = 0, None
    for pos, (svc, ind, score) in enumerate(ranking.indicators, 1):
        if prev is None or score != prev:
            rank += 1
            prev = score
        if svc == service and indicator_matches(ind, label):
            return rank, pos
    return 0, 0


def rca_case_result(case_id: str, ranking: RankedCauses, root_cause_service: str, *,
                    fault_type: str | None = None, seconds: float = math.nan,
                    root_cause_indicator: str | None = None) -> RcaCaseResult:
    """Score one ranking against the true root-cause service (and, where the case names one and the
    ranking has indicator rows, the true indicator)."""
    if not isinstance(ranking, RankedCauses):
        raise TypeError(f"case {case_id}: ranking must be a RankedCauses, got {type(ranking).__name__}")
    if not root_cause_service:
        raise ValueError(f"case {case_id}: no true root-cause service (unlabelled case cannot be scored)")
    rank = ranking.rank_of(root_cause_service)
    if rank is None:
        log.warning("case %s: true root cause %r is not among the %d ranked services (counted as a miss)",
                    case_id, root_cause_service, len(ranking.services))
    ind_rank = ind_pos = None
    if root_cause_indicator and ranking.indicators:
        ind_rank, ind_pos = indicator_ranks(ranking, root_cause_service, root_cause_indicator)
    return RcaCaseResult(case_id=str(case_id), fault_type=str(fault_type or "unknown"),
                         root_cause_service=str(root_cause_service), rank=rank,
                         n_services=len(ranking.services), seconds=float(seconds),
                         indicator_rank=ind_rank, indicator_position=ind_pos)


def _summarize(results: Sequence[RcaCaseResult], ks: Sequence[int]) -> dict[str, float]:
    n = len(results)
    out: dict[str, float] = {}
    for k in sorted(set(ks) | set(range(1, AVG_K + 1))):
        out[f"ac_at_{k}"] = ac_at_k([r.rank for r in results], k)
    out[f"avg_at_{AVG_K}"] = sum(out[f"ac_at_{k}"] for k in range(1, AVG_K + 1)) / AVG_K
    out["mrr"] = sum(r.rr for r in results) / n
    secs = [r.seconds for r in results if not math.isnan(r.seconds)]
    out["seconds"] = sum(secs) / len(secs) if secs else math.nan
    out["n_cases"] = float(n)
    out["n_unranked"] = float(sum(r.rank is None for r in results))
    scored = [r for r in results if r.indicator_scored]
    if scored:  # indicator level: only over the cases with an indicator label (absent otherwise)
        for k in ks:
            out[f"ais_at_{k}"] = sum(r.indicator_hit(k) for r in scored) / len(scored)
            out[f"ind_ac_at_{k}"] = sum(r.indicator_hit(k, ties=False) for r in scored) / len(scored)
        out["n_indicator_cases"] = float(len(scored))
    return out


@dataclass(frozen=True)
class RcaSummary:
    overall: dict[str, float]
    by_fault_type: dict[str, dict[str, float]]

    def flat(self) -> dict[str, float]:
        """One flat dictionary for MLflow / DVC metrics: ``ac_at_1``, …, and ``<fault>/ac_at_1``."""
        d = dict(self.overall)
        for ft, m in sorted(self.by_fault_type.items()):
            for k, v in m.items():
                d[f"{ft}/{k}"] = v
        return d


def aggregate_rca(results: Iterable[RcaCaseResult], ks: Sequence[int] = DEFAULT_KS) -> RcaSummary:
    """AC@k (for ``ks`` and 1..5), Avg@5, MRR, mean seconds per case, case and miss counts —
    overall and per fault type. Each value is a mean over cases (the RCAEval number)."""
    results = list(results)
    if not results:
        raise ValueError("aggregate_rca: no case results")
    ids = [r.case_id for r in results]
    if len(set(ids)) != len(ids):
        dup = sorted({i for i in ids if ids.count(i) > 1})
        raise ValueError(f"aggregate_rca: case ids appear more than once: {dup[:5]}")
    by_ft: dict[str, list[RcaCaseResult]] = {}
    for r in results:
        by_ft.setdefault(r.fault_type, []).append(r)
    return RcaSummary(overall=_summarize(results, ks),
                      by_fault_type={ft: _summarize(rs, ks) for ft, rs in sorted(by_ft.items())})


# The per-case metrics written to the long-form results table: the mean over cases of each is the
# RCAEval aggregate of the same name ("rank" and "n_services" feed the AC@k-by-k curve).
def rca_long_rows(results: Iterable[RcaCaseResult], *, dataset: str, method: str, seed: int,
                  run_id: str = "", max_k: int = AVG_K) -> list[dict]:
    """Rows of the long-form results table (``dataset, task, method, seed, case_id, fault_type,
    metric, value, run_id``) for one dataset × method × seed."""
    rows: list[dict] = []
    for r in results:
        vals: dict[str, float] = {f"ac_at_{k}": r.hit(k) for k in range(1, max(max_k, AVG_K) + 1)}
        vals[f"avg_at_{AVG_K}"] = r.avg_at_5
        vals["mrr"] = r.rr
        vals["seconds"] = r.seconds
        vals["rank"] = math.nan if r.rank is None else float(r.rank)
        vals["n_services"] = float(r.n_services)
        if r.indicator_scored:  # only where defined, so the mean over rows is the aggregate
            for k in DEFAULT_KS:
                vals[f"ais_at_{k}"] = r.indicator_hit(k)
                vals[f"ind_ac_at_{k}"] = r.indicator_hit(k, ties=False)
        for metric, value in vals.items():
            rows.append({"dataset": dataset, "task": "rca", "method": method, "seed": int(seed),
                         "case_id": r.case_id, "fault_type": r.fault_type, "metric": metric,
                         "value": float(value), "run_id": run_id})
    return rows
