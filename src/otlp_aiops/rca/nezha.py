"""Nezha (Yu et al., "Nezha: Interpretable Fine-Grained Root Causes Analysis for Microservices on
Multi-Modal Observability Data", ESEC/FSE 2023): root causes from event patterns that the fault-free
phase expects and the fault phase lacks. docs/rca-methods.md has the details and the comparison with
the authors' run.

1. Events (:mod:`otlp_aiops.rca.nezha_events`): span start/end per operation, log templates (a code
   location ``Class#line`` where the body has one, else our Drain template), metric alarms — all tied
   to traces through the trace and span ids of the ingest tables (``data/interim/<dataset>``).
2. An event graph per trace; a pattern is an edge (event pair), its support the number of its
   occurrences over the traces of a phase.
3. Fault-free phase: the pattern support of every fault-free window of the dataset
   (``reference: dataset``; ``case``: only the case's reference windows), computed once per dataset.
   Fault phase: the traces that start in ``[end of the onset window + fault_delay_s, …
   + fault_length_s)`` (Nezha: the minute file "inject time + 2 min"; here two minutes by default).
4. Ranking (``pattern_ranker.pattern_ranker`` in the authors' code, read to settle details): an
   expected pattern — fault-free support scaled to the fault phase's number of traces ``e >
   min_support``, present in ``min_presence`` of the fault-free windows — scores ``e / (e + f)``, kept
   at ``min_score``; a kept pattern whose source event is the target of another kept pattern scoring
   at least as high is dropped (only the top of a broken chain; alarm targets excepted); a pattern
   maps to its source event's service and carries that service's alarm (an alarmed service keeps only
   its deepest pattern). Order (``order``): ``bound`` — ``e / (e + f⁺)`` with f⁺ the 90 % upper
   Poisson limit of f, then depth; ``nezha`` — score, then depth (the authors'); ``score``;
   ``significance``. Services rank by their best pattern. ``unexpected_weight`` > 0 also ranks
   patterns that appear in the fault phase only (the paper's "actual" patterns).
5. Metric alarms (the paper: fixed thresholds, CPU or memory > 80 %, network P90 > 300 ms): a
   ``metric.*`` feature of an ``alarm_kinds`` kind, or one named in ``alarm_features`` (the network
   alarm: ``span.in_gap_p90``), whose largest value in ``[fault phase start, + alarm_length_s)`` is
   ``alarm_sigma`` standard deviations above the fault-free mean and over ``1 + alarm_min_change``
   times the fault-free 99th percentile (statistics over every fault-free window of the dataset;
   with ``alarm_sparse_new_high``, a series whose fault-free median is 0 must also exceed its
   fault-free maximum); alarms weaker than ``alarm_dominance`` x the case's strongest are dropped.
   One alarm event per service.

Where a dataset has no traces (metrics only: rcd-sockshop, petshop) or a service has no pattern, the
ranking falls back: services with an alarm next (by its strength), then every other service by its
largest z over the ``fallback_kinds`` features (n-sigma style); the indicator is that feature.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import warnings
from pathlib import Path

import numpy as np
import polars as pl

from otlp_aiops.features.data import FEATURE_KINDS, CaseData, ReferenceData
from otlp_aiops.rca.base import RankedCauses, RankerConfig, RootCauseRanker
from otlp_aiops.rca.nezha_events import (
    Telemetry,
    event_edges,
    load_telemetry,
    pattern_counts,
    traces_between,
)

log = logging.getLogger(__name__)

# ordering keys: a service with a pattern outranks one with only an alarm, which outranks the rest
_TIER_PATTERN, _TIER_ALARM = 2.0, 1.0


@dataclasses.dataclass(frozen=True)
class NezhaConfig(RankerConfig):
    # the ingest tables are read from <interim_root>/<dataset>/; "" = beside the features folder the
    # cases come from (<root>/data/features/<ds> -> <root>/data/interim/<ds>)
    interim_root: str = ""
    fault_delay_s: float = 0.0  # the fault phase starts this long after the end of the onset window ...
    fault_length_s: float = 120.0  # ... and lasts this long (Nezha: one minute; see docs/rca-methods.md)
    min_support: float = 3.0  # an expected pattern counts when its scaled fault-free support exceeds this
    min_score: float = 0.67  # Nezha's threshold: 1 / (1 + 0.5)
    min_presence: float = 0.7  # ... and occurs in at least this share of the reference windows with traces
    # how the patterns that passed the thresholds are ordered: bound (e / (e + 90 % upper limit of f),
    # then depth), score (then significance), significance (-log10 Poisson P of so few occurrences),
    # nezha (score, then depth: the authors')
    order: str = "bound"
    unexpected_weight: float = 0.0  # > 0: patterns new in the fault phase also rank, score x weight
    reference: str = "dataset"  # dataset: every fault-free window | case: the case's reference windows
    alarm_kinds: tuple[str, ...] = ("cpu", "memory")
    # features that alarm by name whatever their kind: the paper's third alarm, "NetworkP90", is the
    # 90th percentile of how long a caller in another pod waits past the start of the service's spans
    # (alarm.py, get_netwrok_metric); span.in_gap_p90 — the calls into the service, client minus
    # server duration — is that network share without the service's own time (docs/rca-methods.md)
    alarm_features: tuple[str, ...] = ()
    alarm_sigma: float = 6.0
    alarm_sparse_new_high: bool = False  # a series mostly 0 when fault-free alarms only above its maximum
    alarm_min_change: float = 9.0  # ... and above (1 + this) x the fault-free 99th percentile (9: ten times)
    alarm_dominance: float = 0.5  # keep the alarms at least this share as strong as the strongest
    alarm_length_s: float = 120.0  # alarms look at the windows in [fault phase start, + this)
    # services without a pattern or an alarm (all of them on metrics-only data) rank by their largest
    # z over the features of these kinds (empty: every kind), n-sigma style
    fallback_kinds: tuple[str, ...] = ()
    code_location: bool = True  # a "Class#line" in a log body is its template (Nezha's Train Ticket rule)
    drain_similarity: float = 0.4
    min_reference_traces: int = 20  # fewer in the case's reference windows: all fault-free windows
    top_indicators: int = 20

    def __post_init__(self) -> None:
        if not self.fault_length_s > 0:
            raise ValueError(f"fault_length_s: must be positive, got {self.fault_length_s}")
        if self.reference not in ("dataset", "case"):
            raise ValueError(f"reference: expected dataset or case, got {self.reference!r}")
        if self.order not in ("bound", "score", "significance", "nezha"):
            raise ValueError(f"order: expected bound, score, significance or nezha, got {self.order!r}")
        if not 0.0 <= self.min_presence <= 1.0:
            raise ValueError(f"min_presence: must be in [0, 1], got {self.min_presence}")
        if not 0.0 < self.min_score <= 1.0:
            raise ValueError(f"min_score: must be in (0, 1], got {self.min_score}")
        if self.min_support < 0 or self.unexpected_weight < 0 or self.alarm_sigma < 0:
            raise ValueError("min_support, unexpected_weight and alarm_sigma must be ≥ 0")
        bad = [k for k in (*self.alarm_kinds, *self.fallback_kinds) if k not in FEATURE_KINDS]
        if bad:
            raise ValueError(
                f"alarm_kinds / fallback_kinds: unknown kinds {bad}; known: {', '.join(FEATURE_KINDS)}"
            )


class NezhaRanker(RootCauseRanker):
    """Nezha's pattern ranking over our traces, logs and metric features (module docstring).

    Fitted attributes: ``dataset_``, ``window_ns_``, ``ref_windows_`` (the fault-free windows),
    ``alarm_stats_`` (mean, std, 99th percentile of every series over them), ``interim_dir_`` (where
    the ingest tables are, "" while none is known), ``ref_counts_`` (w, a, b, a_svc, n: pattern support
    per fault-free window), ``ref_traces_`` (w, traces), ``depth_`` (event -> deepest depth seen).
    Without ``interim_root`` the pattern table is built at the first ``rank`` (the ingest folder is
    found from the case's features folder), once.
    """

    name = "nezha"
    Config = NezhaConfig

    # --- fit -------------------------------------------------------------------------------------
    def _fit(self, reference: ReferenceData | None, train_cases: list[CaseData]) -> None:
        self.window_ns_ = round((reference.window_seconds if reference is not None else 60.0) * 1e9)
        self.dataset_ = reference.dataset if reference is not None else ""
        self.ref_windows_ = (
            reference.times.astype("datetime64[ns]").astype(np.int64)
            if reference is not None
            else np.zeros(0, np.int64)
        )
        self.interim_dir_ = ""
        self.ref_counts_ = _empty_counts()
        self.ref_traces_ = pl.DataFrame(schema={"w": pl.Int64, "traces": pl.UInt32})
        self.depth_: dict[str, int] = {}
        self.alarm_stats_: tuple[tuple[str, ...], np.ndarray] | None = None
        self._tel: Telemetry | None = None
        self._looked: set[str] = set()
        if reference is None:
            return
        if len(reference.times):
            # alarm thresholds from every fault-free window of the dataset: mean, standard deviation
            # and (robust to a short stretch of unlabelled trouble among them) the 99th percentile
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                stats = _robust_stats(reference.values)
            self.alarm_stats_ = (tuple(reference.features), stats)
        if self.config.interim_root:
            self._build(Path(self.config.interim_root) / reference.dataset)

    def _interim_for(self, case: CaseData) -> None:
        """Without ``interim_root``: the ingest tables beside the case's features folder
        (``<root>/data/features/<ds>`` -> ``<root>/data/interim/<ds>``), read once."""
        if self.interim_dir_ or self.config.interim_root or not self.dataset_:
            return
        fd = case.extra.get("features_dir") if isinstance(case.extra, dict) else None
        d = (
            Path(fd).parent.parent / "interim" / self.dataset_
            if fd
            else Path("data") / "interim" / self.dataset_
        )
        looked = getattr(self, "_looked", set())
        if str(d) not in looked:
            looked.add(str(d))
            self._looked = looked
            self._build(d)

    def _build(self, d: Path) -> None:
        """The fault-free pattern table: support of every pattern per fault-free window."""
        if not (d / "spans").is_dir():
            log.info("nezha: %s has no spans table; ranking by metric alarms only", d)
            return
        self.interim_dir_ = str(
            d
        )  # as given (relative in the pipeline): a saved model holds no absolute path
        windows = self.ref_windows_
        tel = self._telemetry()
        if tel.empty:
            log.info("nezha: %s holds no spans; ranking by metric alarms only", d)
            return
        w = (pl.col("trace_t0") // self.window_ns_) * self.window_ns_
        spans = tel.spans.with_columns(w=w).filter(pl.col("w").is_in(windows.tolist()))
        logs = (
            tel.logs.join(spans.select("tid", "w").unique(), on="tid", how="inner")
            if tel.logs.height
            else None
        )
        edges, events = event_edges(spans.drop("w"), logs.drop("w") if logs is not None else tel.logs)
        tw = spans.select("tid", "w").unique()
        self.ref_counts_ = (
            edges.join(tw, on="tid").group_by("w", "a", "b", "a_svc").agg(n=pl.len()).sort("w", "a", "b")
        )
        self.ref_traces_ = tw.group_by("w").agg(traces=pl.len()).sort("w")
        dep = events.group_by("ev").agg(pl.col("depth").max()).sort("ev")
        self.depth_ = dict(zip(dep["ev"].to_list(), dep["depth"].to_list(), strict=True))

    def _telemetry(self) -> Telemetry:
        """The dataset's spans and logs, read once per process (not part of the saved state)."""
        if getattr(self, "_tel", None) is None:
            self._tel = load_telemetry(
                Path(self.interim_dir_),
                self.ref_windows_,
                self.window_ns_,
                code_location=self.config.code_location,
                drain_similarity=self.config.drain_similarity,
            )
        return self._tel

    # --- rank ------------------------------------------------------------------------------------
    def _rank(self, case: CaseData) -> RankedCauses:
        cfg = self.config
        w_ns = round(case.window_seconds * 1e9)
        onset_ns = int(case.times[case.onset].astype("datetime64[ns]").astype(np.int64))
        lo = onset_ns + w_ns + round(cfg.fault_delay_s * 1e9)
        hi = lo + round(cfg.fault_length_s * 1e9)
        alarms, z = self._alarms(case, lo)
        self._interim_for(case)
        results = self._patterns(case, lo, hi, alarms) if self.interim_dir_ else []

        services = list(case.services)
        score = np.full(len(services), -np.inf)
        pos = {s: i for i, s in enumerate(services)}
        indicators: list[tuple[str, str, float]] = []
        n = len(results)
        for rank, r in enumerate(results):
            key = r["key"]
            ind = f"{r['a']} -> {r['b']}" + (f" [alarm {r['alarm']}]" if r.get("alarm") else "")
            indicators.append((r["svc"], ind, key))
            i = pos.get(r["svc"])
            if i is not None and not np.isfinite(score[i]):
                # list order (score, depth, then fault-free support) decides; the key keeps the score
                score[i] = _TIER_PATTERN + key + 1e-9 * (n - rank) / max(n, 1)
        for svc, (feat, zz) in sorted(alarms.items(), key=lambda t: (-t[1][1], t[0])):
            i = pos.get(svc)
            if i is not None and not np.isfinite(score[i]):
                score[i] = _TIER_ALARM + _squash(zz)
            indicators.append((svc, feat, _TIER_ALARM + _squash(zz) - 2.0))
        for i, s in enumerate(services):
            if not np.isfinite(score[i]) and s in z:
                score[i] = _squash(z[s][1]) * 0.999
        rest = sorted(
            ((s, f, _squash(v) * 0.999 - 2.0) for s, (f, v) in z.items() if s not in alarms),
            key=lambda t: (-t[2], t[0]),
        )
        indicators.extend(rest)
        return RankedCauses.from_scores(services, score, indicators[: cfg.top_indicators])

    def _alarms(
        self, case: CaseData, lo: int
    ) -> tuple[dict[str, tuple[str, float]], dict[str, tuple[str, float]]]:
        """(service -> (feature, strength) for services with a metric alarm; service -> (feature, z)
        of its largest z over the ``fallback_kinds`` features) from the case's windows in
        ``[lo, lo + alarm_length_s)``; the names of each alarmed service's alarming metrics go to
        ``_alarm_names`` (its indicator)."""
        cfg = self.config
        self._alarm_names: dict[str, str] = {}
        fk = set(cfg.fallback_kinds) if cfg.fallback_kinds else set(FEATURE_KINDS)
        kinds = np.array(
            [
                (k in cfg.alarm_kinds and f.startswith("metric.")) or f in cfg.alarm_features
                for f, k in zip(case.features, case.feature_kinds, strict=True)
            ],
            bool,
        )
        fall = np.array([k in fk for k in case.feature_kinds], bool)
        use = kinds | fall
        if not use.any():
            return {}, {}
        t = case.times.astype("datetime64[ns]").astype(np.int64)
        w_ns = round(case.window_seconds * 1e9)
        hi = lo + round(cfg.alarm_length_s * 1e9)
        sel = (t + w_ns > lo) & (t < hi)
        sel[: case.onset] = False
        if not sel.any():
            sel = np.zeros(len(t), bool)
            sel[case.onset :] = True
        cur = case.values[sel][:, :, use]
        stats = self.alarm_stats_
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            if (
                stats is not None
                and stats[0] == tuple(case.features)
                and stats[1].shape[1] == len(case.services)
            ):
                mu, sd, top, peak, med = (stats[1][i][:, use] for i in range(5))
            else:  # not fitted on this dataset's reference: the case's own
                mu, sd, top, peak, med = _robust_stats(case.baseline()[:, :, use])
            now = np.nanmax(cur, axis=0)  # the strongest window of the alarm span
        floor = np.maximum(np.abs(mu) * 1e-3, 1e-9)
        zz = (now - mu) / np.where(np.isfinite(sd) & (sd > floor), sd, floor)
        zz = np.where(np.isfinite(zz), zz, -np.inf)
        # a new high: well above the fault-free 99th percentile, not only above the mean; its
        # strength is how many times that percentile it reaches
        ratio = now / np.maximum(np.abs(top), floor)
        ratio = np.where(np.isfinite(ratio), ratio, 0.0)
        is_alarm_kind = kinds[use]
        # a series flat at zero in the fault-free windows has no scale to alarm against
        scaled = np.isfinite(sd) & (sd > 0) & np.isfinite(top) & (np.abs(top) > 0)
        alarm = (
            (zz > cfg.alarm_sigma) & (ratio > 1.0 + cfg.alarm_min_change) & is_alarm_kind[None, :] & scaled
        )
        if cfg.alarm_sparse_new_high:
            # a sparse count (zero in most fault-free windows: one GC in a window, once in 140 windows)
            # can be 10x its 99th percentile and no higher than it has been in normal times: such a
            # series alarms only above its fault-free maximum
            sparse = np.isfinite(med) & (med == 0)
            alarm &= ~sparse | (now > np.where(np.isfinite(peak), peak, -np.inf))
        zf = np.where(fall[use][None, :], zz, -np.inf)
        feats = [f for f, u in zip(case.features, use, strict=True) if u]
        alarms: dict[str, tuple[str, float]] = {}
        best: dict[str, tuple[str, float]] = {}
        for i, s in enumerate(case.services):
            if np.isfinite(zf[i]).any():
                j = int(np.argmax(zf[i]))
                best[s] = (feats[j], float(zf[i, j]))
            ok = np.flatnonzero(alarm[i])
            if len(ok):
                j = int(ok[np.argmax(ratio[i, ok])])
                alarms[s] = (feats[j], float(ratio[i, j]))
                # every metric of the service that alarms about as strongly (cpu usage and cpu
                # utilization rise together): all are named in the indicator, the first is the event
                near = sorted(
                    ok[ratio[i, ok] >= cfg.alarm_dominance * ratio[i, j]], key=lambda q: (-ratio[i, q], q)
                )
                names = list(dict.fromkeys(_metric_name(feats[q]) for q in near))
                self._alarm_names[s] = ", ".join(names)
        if alarms:  # the alarms of one incident: only those near the strongest
            strongest = max(v for _, v in alarms.values())
            alarms = {s: a for s, a in alarms.items() if a[1] >= cfg.alarm_dominance * strongest}
        return alarms, best

    def _patterns(self, case: CaseData, lo: int, hi: int, alarms: dict[str, tuple[str, float]]) -> list[dict]:
        cfg = self.config
        tel = self._telemetry()
        spans, logs = traces_between(tel, lo, hi)
        n_fault = spans.select(pl.col("tid").n_unique()).item() if spans.height else 0
        if n_fault == 0 or self.ref_counts_.height == 0:
            return []
        metric = {s: (_metric_name(f),) for s, (f, _) in alarms.items()}
        edges, events = event_edges(spans, logs, metric)
        fault = pattern_counts(edges)
        ref, n_ref = self._reference_counts(case)
        if n_ref == 0:
            return []
        scale = n_fault / n_ref
        both = (
            ref.with_columns(e=pl.col("n") * scale)
            .drop("n")
            .join(fault.rename({"n": "f"}), on=["a", "b", "a_svc"], how="full", coalesce=True)
            .with_columns(
                pl.col("e").fill_null(0.0),
                pl.col("presence").fill_null(0.0),
                pl.col("f").fill_null(0).cast(pl.Float64),
            )
        )
        expected = (
            both.filter((pl.col("e") > cfg.min_support) & (pl.col("presence") >= cfg.min_presence))
            .with_columns(score=pl.col("e") / (pl.col("e") + pl.col("f")))
            .filter(pl.col("score") >= cfg.min_score)
        )
        parts = [expected]
        if cfg.unexpected_weight > 0:
            new = (
                both.filter(pl.col("f") > cfg.min_support)
                .with_columns(score=pl.col("f") / (pl.col("e") + pl.col("f")))
                .filter(pl.col("score") >= cfg.min_score)
                .with_columns(score=pl.col("score") * cfg.unexpected_weight)
            )
            parts.append(new)
        cand = pl.concat(parts)
        if cand.height == 0:
            return []
        rows = cand.sort(["score", "e", "a", "b"], descending=[True, True, False, False]).to_dicts()
        # only the top of a broken chain: drop (a, b) when a kept (c, a) scores at least as high
        best_into: dict[str, float] = {}
        for r in rows:
            best_into[r["b"]] = max(best_into.get(r["b"], -math.inf), r["score"])
        kept = [r for r in rows if _is_alarm(r["b"]) or not (best_into.get(r["a"], -math.inf) >= r["score"])]
        depth = dict(self.depth_)
        for r in events.group_by("ev").agg(pl.col("depth").max()).iter_rows():
            depth.setdefault(r[0], r[1])
        for r in kept:
            r["depth"] = int(depth.get(r["a"], 0))
            r["svc"] = r["a_svc"]
            if r["svc"] in alarms:
                r["alarm"] = self._alarm_names.get(r["svc"]) or _metric_name(alarms[r["svc"]][0])
        # an alarmed service keeps only its deepest pattern (Nezha keeps one alarm result per pod)
        deepest: dict[str, int] = {}
        for r in kept:
            if "alarm" in r:
                deepest[r["svc"]] = max(deepest.get(r["svc"], -1), r["depth"])
        out, seen_alarm = [], set()
        for r in kept:
            if "alarm" in r:
                if r["depth"] < deepest[r["svc"]] or r["svc"] in seen_alarm:
                    continue
                seen_alarm.add(r["svc"])
            out.append(r)
        for r in out:
            r["sig"] = _drop_significance(r["e"], r["f"])
        if cfg.order == "nezha":
            out.sort(key=lambda r: (-r["score"], -r["depth"], -r["e"], r["a"], r["b"]))
            for r in out:
                r["key"] = float(r["score"]) + 1e-3 * r["depth"] / (1 + r["depth"])
        elif cfg.order == "bound":
            for r in out:
                r["lcb"] = _score_bound(r["e"], r["f"])
            out.sort(key=lambda r: (-r["lcb"], -r["depth"], r["a"], r["b"]))
            for r in out:
                r["key"] = r["lcb"] + 1e-6 * r["depth"] / (1 + r["depth"])
        elif cfg.order == "score":
            out.sort(key=lambda r: (-round(r["score"], 6), -r["sig"], -r["depth"], r["a"], r["b"]))
            for r in out:
                r["key"] = round(float(r["score"]), 6) + 1e-3 * r["sig"] / (1.0 + r["sig"])
        else:
            out.sort(key=lambda r: (-r["sig"], -r["depth"], r["a"], r["b"]))
            for r in out:  # into [0, 1): the tiers stay apart
                r["key"] = r["sig"] / (1.0 + r["sig"]) + 1e-6 * r["depth"] / (1 + r["depth"])
        return out

    def _reference_counts(self, case: CaseData) -> tuple[pl.DataFrame, int]:
        """Pattern support over the case's reference windows (all fault-free windows when those hold
        fewer than ``min_reference_traces`` traces), the share of those windows (with traces) each
        pattern occurs in (``presence``), and their number of traces."""
        if self.config.reference == "dataset":
            wins = self.ref_traces_["w"].to_numpy()
        else:
            wins = case.reference_times.astype("datetime64[ns]").astype(np.int64)
        tr = self.ref_traces_.filter(pl.col("w").is_in(wins.tolist()))
        n = int(tr["traces"].sum()) if tr.height else 0
        if n >= self.config.min_reference_traces:
            ref = self.ref_counts_.filter(pl.col("w").is_in(wins.tolist()))
        else:
            ref, tr = self.ref_counts_, self.ref_traces_
            n = int(tr["traces"].sum())
        n_win = max(tr.height, 1)
        out = ref.group_by("a", "b", "a_svc").agg(pl.col("n").sum(), presence=pl.col("w").n_unique() / n_win)
        return out, n


def _robust_stats(v: np.ndarray) -> np.ndarray:
    """(5, S, F): mean, standard deviation, 99th percentile, maximum and median over axis 0."""
    return np.stack([np.nanmean(v, axis=0), np.nanstd(v, axis=0), np.nanpercentile(v, 99, axis=0),
                     np.nanmax(v, axis=0), np.nanmedian(v, axis=0)])


def _score_bound(e: float, f: float, level: float = 0.9) -> float:
    """Nezha's score e / (e + f) with f replaced by its one-sided ``level`` upper Poisson limit
    (chi2.ppf(level, 2 (f + 1)) / 2): a lower bound that grows with the evidence, so a pattern that
    vanished from 30 expected occurrences outranks one that vanished from 3."""
    from scipy.stats import chi2

    f_up = float(chi2.ppf(level, 2.0 * (f + 1.0)) / 2.0)
    return float(e / (e + f_up)) if e > 0 else 0.0


def _drop_significance(e: float, f: float) -> float:
    """-log10 P(F <= f) for F ~ Poisson(e): how unlikely so few occurrences are when ``e`` are
    expected (0 for a pattern that did not drop)."""
    from scipy.stats import poisson

    if f >= e:
        return 0.0
    p = float(poisson.cdf(f, e))
    return float(-np.log10(max(p, 1e-300)))


def _empty_counts() -> pl.DataFrame:
    return pl.DataFrame(
        schema={"w": pl.Int64, "a": pl.String, "b": pl.String, "a_svc": pl.String, "n": pl.UInt32}
    )


def _squash(z: float) -> float:
    """A z-score mapped into [0, 1) (monotone), so tiers never overlap."""
    if not np.isfinite(z) or z <= 0:
        return 0.0
    return float(z / (1.0 + z))


def _metric_name(feature: str) -> str:
    """``metric.pod.cpu.utilization.mean`` -> ``pod.cpu.utilization`` (the alarm's metric)."""
    name = feature.removeprefix("metric.")
    head, _, tail = name.rpartition(".")
    return (
        head
        if head and tail in {"mean", "max", "min", "last", "sum", "p50", "p90", "p95", "p99", "rate"}
        else name
    )


def _is_alarm(event: str) -> bool:
    return " alarm " in event
