"""The report stage as one function: long-form results in, tables / curves / figures out."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import pandas as pd

from otlp_aiops.report import figures, stats, tables
from otlp_aiops.report import leaderboard as lb

log = logging.getLogger(__name__)

CD_METRICS = {"rca": "avg_at_5", "detect": "vus_pr"}


def build_report(results: str | Path | Iterable[str | Path] | pd.DataFrame, out_tables_dir: str | Path,
                 out_figures_dir: str | Path, seed: int, *, alpha: float = 0.05, n_resamples: int = 2000,
                 cd_metrics: Mapping[str, str] = CD_METRICS, posthoc: str = "nemenyi",
                 max_k: int = 10, html_path: str | Path | None = None,
                 cards: Mapping[str, object] | None = None, title: str = "otlp-aiops benchmark report",
                 datasets: Sequence[str] | None = None) -> dict:
    """Write, for every dataset × task in the results:

    * ``<tables>/<dataset>_<task>.md|.tex|.csv`` — methods × metrics, overall;
    * ``<tables>/<dataset>_<task>_by_fault.md|.tex|.csv`` — per fault type;
    * ``<tables>/<dataset>_rca_ac_at_k.csv|.json`` (``method,k,ac``) and ``_wide.csv``, and
      ``<figures>/<dataset>_rca_ac_at_k.png``;
    * ``<figures>/<task>_<metric>_cd.png`` — critical-difference diagram over all datasets × cases;
    * ``<tables>/summary.csv`` — every aggregate with its significance test;
    * ``<tables>/leaderboard.md`` — the cross-dataset headline tables (what the README shows);
    * ``html_path`` (when given) — the static HTML report (:mod:`otlp_aiops.report.html`), with a
      card per dataset from ``cards`` (dataset -> :class:`~otlp_aiops.report.html.DatasetCard`).

    Returns a JSON-able summary: datasets, methods per task, files written, best method per
    dataset × task × metric, the leaderboard (:func:`otlp_aiops.report.leaderboard.leaderboard`),
    and what was skipped and why."""
    df = results.copy() if isinstance(results, pd.DataFrame) else stats.load_results(results)
    if isinstance(results, pd.DataFrame):
        df = stats.validate_results(df, "results frame")
    t_dir, f_dir = Path(out_tables_dir), Path(out_figures_dir)
    written: list[str] = []
    skipped: list[str] = []

    metrics_all = sorted({m for ms in stats.TABLE_METRICS.values() for m in ms} | set(cd_metrics.values()))
    metrics_ft = sorted({m for ms in stats.FAULT_TABLE_METRICS.values() for m in ms})
    summ = stats.summarize(df, seed=seed, metrics=metrics_all, n_resamples=n_resamples)
    sig = stats.significance(df, summ, alpha=alpha)
    summ_ft = stats.summarize(df, seed=seed, by_fault_type=True, metrics=metrics_ft, n_resamples=n_resamples)
    sig_ft = stats.significance(df, summ_ft, by_fault_type=True, alpha=alpha)

    pairs = sorted(set(zip(df["dataset"], df["task"], strict=True)))
    html_tables: dict[str, list] = {}
    for ds, task in pairs:
        base = f"{tables.safe_name(ds)}_{task}"
        variants = ((base, summ, sig, stats.TABLE_METRICS[task], False),
                    (f"{base}_by_fault", summ_ft, sig_ft, stats.FAULT_TABLE_METRICS[task], True))
        for name, s, g, ms, by_ft in variants:
            paths = tables.write_tables(s, g, t_dir, name, dataset=ds, task=task, metrics=ms,
                                        by_fault_type=by_ft, alpha=alpha,
                                        tex_metrics=None if by_ft else stats.LATEX_TABLE_METRICS[task])
            if paths:
                written += [str(p) for p in paths]
                header, rows = tables.build_table(s, g, dataset=ds, task=task, metrics=ms,
                                                  by_fault_type=by_ft)
                n_seeds = int(s.loc[(s["dataset"] == ds) & (s["task"] == task), "n_seeds"].max())
                html_tables.setdefault(ds, []).append(
                    (tables.caption_for(ds, task, n_seeds, by_ft, alpha), header, rows))
            else:
                skipped.append(f"{name}: no values for its metrics")

    figs: list[tuple[Path, str]] = []
    curve = stats.ac_at_k_curve(df, max_k=max_k)
    for ds, c in curve.groupby("dataset", sort=True):  # one dataset per figure, never mixed
        name = f"{tables.safe_name(ds)}_rca_ac_at_k"
        written += [str(p) for p in tables.write_curve(c, t_dir, name)]
        figs.append((figures.draw_ac_at_k(c, f"{ds}: AC@k", f_dir / f"{name}.png"), f"{ds}: AC@k by k"))
        written.append(str(figs[-1][0]))

    for task, metric in sorted(cd_metrics.items()):
        sub = df[(df["task"] == task) & (df["metric"] == metric)]
        # protocol variants ("<dataset>+offset60s") re-rank the same cases: each case is one block, once
        sub = sub[~sub["dataset"].str.contains("+", regex=False)]
        blocks = figures.block_matrix(
            sub.groupby(["dataset", "method", "case_id", "metric"], as_index=False)["value"].mean(), metric)
        try:
            cd = figures.critical_difference(blocks, metric, posthoc=posthoc)
        except ValueError as e:
            skipped.append(f"{task}_{metric}_cd: {e}")
            continue
        path = f_dir / f"{task}_{metric}_cd.png"
        label = stats.spec(metric).label
        figures.draw_critical_difference(cd, f"{task}: {label} ({posthoc})", path, alpha=alpha)
        written.append(str(path))
        figs.append((path, f"{task}: critical difference of {label} over every dataset × case"))

    keys = ["dataset", "task", "scope", "method", "metric"]
    full = pd.concat([summ.merge(sig, on=keys, how="left"),
                      summ_ft.merge(sig_ft, on=keys, how="left")], ignore_index=True)
    written.append(str(tables.atomic_write_text(t_dir / "summary.csv",
                                                full.to_csv(index=False, lineterminator="\n"))))

    board = lb.leaderboard(df)
    order = [d for d in (datasets or []) if d in set(df["dataset"])]
    order += sorted(d for d in set(df["dataset"]) - set(order) if not lb.is_variant(d))
    board_md = lb.leaderboard_markdown(summ, sig, datasets=order)
    written.append(str(tables.atomic_write_text(t_dir / "leaderboard.md", board_md)))
    if html_path is not None:
        from otlp_aiops.report import html

        cards_ = dict(cards or {})
        for d in order:
            if d not in cards_:
                cards_[d] = html.dataset_card(d, None, None, results=df)
            elif not cards_[d].fault_types:
                html.fill_from_results(cards_[d], df)
        page = html.render_report(title=title, df=df, tables_by_dataset=html_tables, leaderboard_md=board_md,
                                  figures=figs, cards=cards_, datasets=order,
                                  note=f"{len(order)} dataset(s), methods: " + ", ".join(
                                      f"{t} {len(ms)}" for t, ms in sorted(
                                          (t, set(df.loc[df['task'] == t, 'method'])) for t in stats.TASKS)
                                      if ms))
        written.append(str(tables.atomic_write_text(Path(html_path), page)))

    best = stats.best_methods(summ)
    for s in skipped:
        log.info("report: skipped %s", s)
    return {
        "n_rows": len(df),
        "datasets": sorted(df["dataset"].unique().tolist()),
        "methods": {t: sorted(df.loc[df["task"] == t, "method"].unique().tolist()) for t in stats.TASKS
                    if (df["task"] == t).any()},
        "best": {f"{r.dataset}/{r.task}/{r.metric}": r.best_method for r in best.itertuples(index=False)
                 if r.scope == stats.ALL},
        "files": written,
        "leaderboard": board,
        "skipped": skipped,
    }
