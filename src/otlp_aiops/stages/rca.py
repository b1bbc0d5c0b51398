"""The rca stage: run one root-cause ranker on every labelled case of one dataset over the seeds,
detection offsets and protocol variants, score it, and record it.

:func:`rca_stage` takes typed settings; :func:`run_rca` splits a parsed params.yaml into them (what
``pipelines/rca.py`` and ``otlp-aiops rca`` call, through :mod:`otlp_aiops.stages.entry`). It writes
the long-form results (one row per dataset × method × seed × case × metric) and a summary JSON beside
them (per fault type, per protocol variant), saves the fitted models, and logs one MLflow parent run
(the headline) with a nested run per seed × offset × variant. The metrics dictionary is built once
and sent to MLflow and the JSON under the same names."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from otlp_aiops import progress
from otlp_aiops.config import config_to_dict
from otlp_aiops.evaluate.protocol import incident_folds
from otlp_aiops.evaluate.rca import ac_at_k
from otlp_aiops.executor import run_tasks
from otlp_aiops.stages import common
from otlp_aiops.stages.common import Tracking
from otlp_aiops.stages.config import StageSettings


def dataset_label(dataset: str, offset_s: float, primary: bool) -> str:
    """The ``dataset`` column of a row: the dataset at the primary offset, else ``<ds>+offset<N>s``."""
    return dataset if primary else f"{dataset}+offset{offset_s:g}s"


@dataclasses.dataclass(frozen=True)
class RankerJob:
    """One seed of one protocol variant at one detection offset: a task of the executor."""

    cls: type  # the registered ranker class
    cfg: Any  # its Config
    seed: int
    reference: Any  # the fault-free reference of the evaluated dataset
    cases: Sequence[Any]  # the labelled cases to rank
    train_on: str | None  # supervised: the dataset it learns from (None: k folds over ``cases``)
    train_sets: Mapping[str, tuple[Any, list[Any]]]  # dataset -> (reference, labelled cases)
    folds: int  # k of the k-fold protocol
    models_dir: Path | None  # where the fitted models go (None: not saved)
    variant: str  # the method's name in the results (``<m>`` or ``<m>-transfer``)


def _rank_all(ranker: Any, cases: Sequence[Any]) -> list[tuple[Any, Any, float]]:
    out = []
    for c in cases:
        t0 = time.perf_counter()
        ranking = ranker.rank(c)
        out.append((c, ranking, time.perf_counter() - t0))
        progress.advance(1, note=str(c.case_id))
    return out


def run_ranker_seed(job: RankerJob) -> tuple[list[tuple[Any, Any, float]], float, dict[str, list[float]]]:
    """Fit and rank as the protocol says (unsupervised: on the reference; supervised: on the training
    dataset, or k folds over the incidents, never on a test incident); returns the (case, ranking,
    seconds) triples in case order, the fit seconds and the training curves."""
    cls, cfg, seed, cases = job.cls, job.cfg, job.seed, job.cases
    t0 = time.perf_counter()
    if not cls.supervised:
        ranker = cls(cfg, seed=seed).fit(job.reference)
        fit_s = time.perf_counter() - t0
        ranked = _rank_all(ranker, cases)
        if job.models_dir is not None:
            ranker.save(job.models_dir / f"seed-{seed}")
        return ranked, fit_s, common.training_history(ranker)
    if job.train_on:
        tref, tcases = job.train_sets[job.train_on]
        ranker = cls(cfg, seed=seed).fit(tref, tcases)
        fit_s = time.perf_counter() - t0
        if job.models_dir is not None:
            ranker.save(job.models_dir / f"{job.variant}-seed-{seed}")
        return _rank_all(ranker, cases), fit_s, common.training_history(ranker)
    ranked_by_id: dict[str, tuple[Any, Any, float]] = {}
    fit_s = 0.0
    history: dict[str, list[float]] = {}  # the first fold's curve
    for f, (train_idx, test_idx) in enumerate(incident_folds([c.case_id for c in cases], job.folds, seed)):
        t1 = time.perf_counter()
        ranker = cls(cfg, seed=seed).fit(job.reference, [cases[i] for i in train_idx])
        fit_s += time.perf_counter() - t1
        history = history or common.training_history(ranker)
        for item in _rank_all(ranker, [cases[i] for i in test_idx]):
            ranked_by_id[item[0].case_id] = item
        if job.models_dir is not None:
            ranker.save(job.models_dir / f"seed-{seed}-fold-{f}")
    return [ranked_by_id[c.case_id] for c in cases], fit_s, history


def _case_table(ranked: list[tuple[Any, Any, float]]) -> Any:
    import pandas as pd

    return pd.DataFrame(
        [
            {
                "case_id": c.case_id,
                "fault_type": c.fault_type,
                "root_cause_service": c.root_cause_service,
                "rank": r.rank_of(c.root_cause_service) if c.root_cause_service else None,
                "top5": ", ".join(r.top(5)),
                "top_indicators": ", ".join(f"{s}:{f}" for s, f, _ in r.indicators[:3]),
                "seconds": secs,
            }
            for c, r, secs in ranked
        ]
    )


def _by_fault(summary: Mapping[str, float]) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for k, v in summary.items():
        if "/" in k:
            ft, m = k.rsplit("/", 1)
            out.setdefault(ft, {})[m] = v
    return out


def rca_stage(
    dataset: str,
    method: str,
    settings: StageSettings,
    *,
    root: Path | None = None,
    tracking: Tracking | None = None,
) -> dict[str, Any]:
    """Run ranker ``method`` on every labelled case of ``dataset`` over the seeds; returns the
    metrics dictionary: headline keys (``ac_at_1``, …), ``<fault>/<metric>`` and
    ``<dataset label>/<variant>/<metric>`` for the other offsets and transfer variants. Written, less
    its timings, to ``benchmarks/results/rca/<dataset>/<method>.json`` (:func:`stage_files`).

    Paths are relative to ``root`` (default: the working directory, where DVC runs stages); the
    MLflow store is at ``root`` when given, else at the repository root (:mod:`otlp_aiops.tracking`)."""
    from otlp_aiops.evaluate.rca import aggregate_rca, rca_case_result, rca_long_rows
    from otlp_aiops.features.store import load_cases, load_reference

    tracking = tracking or Tracking()
    track_root, root = root, (root if root is not None else Path("."))
    bench, executor = settings.bench, settings.executor
    cls, cfg, seeds = common.stage_method("rca", method, settings)
    fdir = root / "data" / "features" / dataset
    reference = load_reference(fdir)
    offsets = bench.offsets_s()

    # supervised rankers: where they learn (never from a test incident)
    train_ds = bench.supervised_train.get(dataset) if cls.supervised else None
    transfer_ds = (
        bench.transfer_from
        if cls.supervised and bench.transfer_from not in (None, dataset, train_ds)
        else None
    )
    train_sets: dict[str, tuple[Any, list[Any]]] = {}
    for ds in {d for d in (train_ds, transfer_ds) if d}:
        tdir = root / "data" / "features" / ds
        train_sets[ds] = (load_reference(tdir), [c for c in load_cases(tdir) if c.root_cause_service])

    variants = [(method, train_ds)] + ([(f"{method}-transfer", transfer_ds)] if transfer_ds else [])
    rows: list[dict] = []
    metrics: dict[str, Any] = {"dataset": dataset, "method": method, "seeds": len(seeds)}
    inputs = [f"data/features/{dataset}", *(f"data/features/{d}" for d in train_sets)]
    protocol = (
        "unsupervised"
        if not cls.supervised
        else f"trained on {train_ds}"
        if train_ds
        else f"{bench.folds}-fold over incidents"
    )
    run_params = {
        "method": method,
        "config": config_to_dict(cfg),
        "seeds": seeds,
        "detection_offsets": list(bench.detection_offsets),
        "protocol": protocol,
        **({"transfer_from": transfer_ds} if transfer_ds else {}),
    }
    models_dir = root / "models" / dataset / "rca" / method
    task_models_dir = models_dir.resolve() if executor.is_ray else models_dir  # Ray workers: another cwd

    with (
        tracking.stage_run(
            "rca",
            dataset,
            method,
            root=track_root,
            params=run_params,
            inputs=inputs,
            offset=",".join(bench.detection_offsets),
        ) as run,
        progress.task(f"rca {dataset} {method}", unit="cases") as bar,
    ):
        for oi, offset in enumerate(offsets):
            label = dataset_label(dataset, offset, oi == 0)
            cases = [c for c in load_cases(fdir, detection_offset=offset) if c.root_cause_service]
            if not cases:
                raise ValueError(f"{fdir}: no labelled cases to evaluate")
            if oi == 0:  # progress: every case once per offset × variant × seed
                bar.set_total(len(offsets) * len(variants) * len(seeds) * len(cases))
            for variant, train_on in variants:
                per_seed: list[dict[str, float]] = []
                # the seeds as tasks (:mod:`otlp_aiops.executor`); logged below in seed order
                jobs = [
                    (
                        RankerJob(
                            cls=cls,
                            cfg=cfg,
                            seed=seed,
                            reference=reference,
                            cases=cases,
                            train_on=train_on,
                            train_sets=train_sets,
                            folds=bench.folds,
                            models_dir=task_models_dir if oi == 0 else None,
                            variant=variant,
                        ),
                    )
                    for seed in seeds
                ]
                n_cases = len(cases)
                on_done = (lambda _i, _r, n=n_cases: bar.advance(n)) if executor.is_ray else None
                outcomes = run_tasks(run_ranker_seed, jobs, executor, on_done=on_done)
                for seed, (ranked, fit_s, history) in zip(seeds, outcomes, strict=True):
                    with run.seed_run(
                        seed, dataset=label, method=variant, offset=str(bench.detection_offsets[oi])
                    ) as sr:
                        results = [
                            rca_case_result(
                                c.case_id,
                                r,
                                c.root_cause_service,
                                fault_type=c.fault_type,
                                seconds=s,
                                root_cause_indicator=c.root_cause_indicator,
                            )
                            for c, r, s in ranked
                        ]
                        summary = aggregate_rca(results).flat()
                        summary["fit_seconds"] = fit_s
                        per_seed.append(summary)
                        # the nested run is one label × variant × seed: the same names as the JSON
                        sr.log_metrics({k: v for k, v in summary.items() if "/" not in k})
                        sr.log_dict(_by_fault(summary), f"by_fault/{label}/{variant}.json")
                        common.log_history(sr, history)
                        sr.log_table(_case_table(ranked), f"cases/{label}/{variant}.csv")
                        rows.extend(
                            rca_long_rows(results, dataset=label, method=variant, seed=seed, run_id=sr.run_id)
                        )
                agg = common.mean_std(per_seed)
                key = "" if (oi == 0 and variant == method) else f"{label}/{variant}/"
                for k, v in agg.items():
                    metrics[f"{key}{k}"] = v
        # the parent: the headline (primary offset, the method itself), under the JSON's names
        run.log_metrics({k: v for k, v in metrics.items() if "/" not in k and isinstance(v, float)})
        files = common.stage_files(root, "rca", dataset, method)
        common.write_stage_outputs(files, rows, metrics, run.run_id)
        if tracking.enabled:
            run.log_artifact(files["results"], "results")
            run.log_artifact(files["summary"], "results")
            _log_ac_curve(run, rows, method)
    return metrics


def run_rca(dataset: str, method: str, params: Mapping[str, Any], **options: Any) -> dict[str, Any]:
    """:func:`rca_stage` from a parsed params.yaml; ``options``: ``root``, ``dvc_stage``, ``track``,
    ``executor`` (:func:`~otlp_aiops.stages.common.run_from_params`)."""
    return common.run_from_params(rca_stage, "rca", dataset, method, params, **options)


def _log_ac_curve(run: Any, rows: list[dict], method: str) -> None:
    """AC@k against k, one line per dataset label × variant, as a figure of the parent run."""
    import pandas as pd
    from matplotlib.figure import Figure

    df = pd.DataFrame(rows)
    ranks = df[df.metric == "rank"]
    if ranks.empty:
        return
    fig = Figure(figsize=(5, 3.2))
    ax = fig.subplots()
    kmax = int(df[df.metric == "n_services"].value.max())
    ks = np.arange(1, kmax + 1)
    for (label, variant), g in ranks.groupby(["dataset", "method"]):
        r = g.value.to_numpy()
        ax.plot(ks, [ac_at_k(r, int(k)) for k in ks], marker=".", label=f"{variant} · {label}")
    ax.set_xlabel("k")
    ax.set_ylabel("AC@k")
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    run.log_figure(fig, f"ac_at_k_{method}.png")
