"""The headline leaderboard: dataset × method → a few numbers; its headline is the pipeline's only
DVC metric.

``metrics/leaderboard.json`` holds ``{dataset: {task: {method: {metric: value}}}}``: per benchmark
dataset (protocol variants such as ``<dataset>+offset60s`` left out), per task and method, the mean
over seeds of the per-seed value:

* rankers (``rca``): ``ac_at_1``, ``ac_at_3``, ``avg_at_5``, ``mrr`` (RCAEval's numbers, mean over cases);
* detectors (``detect``): ``vus_pr``, ``range_f1``, ``false_alarms_per_hour``.

``metrics/headline.json`` beside it is the DVC metric: the same shape with one number per method
(:data:`DVC_HEADLINE`: ``avg_at_5`` for rankers, ``vus_pr`` for detectors). With two benchmark
datasets, the whole board's 8 changed values of a pagerank experiment need 394 columns in
``dvc exp show --only-changed``; the headline's 2 need 177. ``dvc metrics diff --targets
metrics/leaderboard.json`` compares the whole board.

The names are those of the stage summaries and of the MLflow runs; ``dvc exp show`` names a column
by its key path, ``sim-boutique.rca.pagerank.avg_at_5``. One file, not one per dataset: DVC prefixes a
key that several files share with the file's path
(``metrics/leaderboard/sim-boutique.json:rca.pagerank.ac_at_1``), so per-dataset files gave the
longest columns (docs/evaluation.md has the widths). Values are rounded to 4 decimals. Timings,
per-fault breakdowns and offset variants live in the report's tables and in MLflow, not here.

:func:`leaderboard_markdown` draws the cross-dataset tables the README shows (``mean ± std`` over
seeds, † worse than the best of that dataset by Wilcoxon + Holm), written to
``benchmarks/tables/leaderboard.md``; :func:`update_readme` copies them between the README's
``<!-- leaderboard -->`` markers.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd

from otlp_aiops.report.stats import ALL, spec

HEADLINE: dict[str, tuple[str, ...]] = {
    "rca": ("ac_at_1", "ac_at_3", "avg_at_5", "mrr"),
    "detect": ("vus_pr", "range_f1", "false_alarms_per_hour"),
}
# what DVC reads as metrics (metrics/headline.json): one number per dataset × task × method, so that
# `dvc exp show --only-changed` fits a 200-column terminal with two benchmark datasets
# (docs/evaluation.md has the widths); the whole board is metrics/leaderboard.json
DVC_HEADLINE: dict[str, tuple[str, ...]] = {"rca": ("avg_at_5",), "detect": ("vus_pr",)}
HEADLINE_FILE = "headline.json"
DECIMALS = 4
README_MARKER = "leaderboard"


def is_variant(dataset: str) -> bool:
    """A protocol variant of a dataset (``sim-boutique+offset60s``), not a dataset of its own."""
    return "+" in dataset


def leaderboard(df: pd.DataFrame, headline: Mapping[str, Sequence[str]] = HEADLINE) -> dict:
    """``{dataset: {task: {method: {metric: value}}}}`` from long-form results: per seed the mean over
    cases (a series-level metric has one value per seed), then the mean over seeds; NaN values are
    left out (a method that never produced the metric has no key for it)."""
    out: dict = {}
    for task, metrics in headline.items():
        sub = df[(df["task"] == task) & df["metric"].isin(list(metrics)) & ~df["dataset"].map(is_variant)]
        sub = sub.dropna(subset=["value"])
        if sub.empty:
            continue
        per_seed = sub.groupby(["dataset", "method", "metric", "seed"], sort=True)["value"].mean()
        means = per_seed.groupby(level=["dataset", "method", "metric"], sort=True).mean()
        for (ds, method, metric), v in means.items():
            if math.isfinite(v):
                out.setdefault(ds, {}).setdefault(task, {}).setdefault(method, {})[metric] = round(float(v),
                                                                                                   DECIMALS)
    # a fixed order of keys: dataset, task (rca first), method, metric in the headline's order
    ordered: dict = {}
    for ds in sorted(out):
        ordered[ds] = {}
        for task in headline:
            if task in out[ds]:
                per_method = out[ds][task]
                ordered[ds][task] = {m: {k: per_method[m][k] for k in headline[task] if k in per_method[m]}
                                     for m in sorted(per_method)}
    return ordered


def leaderboard_json(board: Mapping) -> str:
    return json.dumps(board, indent=2) + "\n"


def headline(board: Mapping, metrics: Mapping[str, Sequence[str]] = DVC_HEADLINE) -> dict:
    """The part of ``board`` that DVC shows: per dataset, task and method only ``metrics[task]``
    (Avg@5 for rankers, VUS-PR for detectors), in the board's order."""
    out: dict = {}
    for ds, tasks in board.items():
        for task, methods in tasks.items():
            for method, values in methods.items():
                kept = {k: values[k] for k in metrics.get(task, ()) if k in values}
                if kept:
                    out.setdefault(ds, {}).setdefault(task, {})[method] = kept
    return out


def write_leaderboard(board: Mapping, path: str | Path) -> Path:
    """``board`` (``{dataset: {task: {method: {metric: value}}}}``) as one JSON file at ``path``
    (``metrics/leaderboard.json``), and its :func:`headline` as ``headline.json`` beside it (the DVC
    metric), both written atomically. Returns ``path``."""
    from otlp_aiops.report.tables import atomic_write_text

    path = Path(path)
    atomic_write_text(path.with_name(HEADLINE_FILE), leaderboard_json(headline(board)))
    return atomic_write_text(path, leaderboard_json(board))


def _cell(summary: pd.DataFrame, sig: pd.DataFrame, ds: str, task: str, method: str,
          metric: str) -> tuple[str, float]:
    s = summary[(summary["dataset"] == ds) & (summary["task"] == task) & (summary["scope"] == ALL)
                & (summary["method"] == method) & (summary["metric"] == metric)]
    if s.empty or not math.isfinite(float(s["mean"].iloc[0])):
        return "—", math.nan
    r = s.iloc[0]
    d = spec(metric).decimals
    text = f"{r['mean']:.{d}f}"
    if r.get("std") is not None and math.isfinite(float(r["std"])):
        text += f" ± {r['std']:.{d}f}"
    if len(sig):
        w = sig[(sig["dataset"] == ds) & (sig["task"] == task) & (sig["scope"] == ALL)
                & (sig["method"] == method) & (sig["metric"] == metric) & sig["significantly_worse"]]
        if len(w):
            text += " †"
    return text, float(r["mean"])


def _headline_table(summary: pd.DataFrame, sig: pd.DataFrame, ds: str, task: str,
                    metrics: Sequence[str]) -> str:
    t = summary[(summary["dataset"] == ds) & (summary["task"] == task) & (summary["scope"] == ALL)]
    metrics = [m for m in metrics if (t["metric"] == m).any()]
    if t.empty or not metrics:
        return ""
    best = {}
    for m in metrics:
        vals = t[t["metric"] == m]["mean"].dropna()
        if len(vals):
            best[m] = vals.max() if spec(m).higher_is_better else vals.min()
    what = "ranker" if task == "rca" else "detector"
    lines = [f"| {what} ({ds}) | " + " | ".join(spec(m).label for m in metrics) + " |",
             "|---" * (len(metrics) + 1) + "|"]
    for method in _method_order(t["method"].unique()):
        cells = []
        for m in metrics:
            text, v = _cell(summary, sig, ds, task, method, m)
            is_best = m in best and math.isfinite(v) and abs(v - best[m]) <= 1e-12
            cells.append(f"**{text}**" if is_best else text)
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def leaderboard_markdown(summary: pd.DataFrame, sig: pd.DataFrame, *,
                         rca_metric: str = "avg_at_5", detect_metrics: Sequence[str] = ("vus_pr", "range_f1"),
                         datasets: Sequence[str] | None = None) -> str:
    """One dataset: its headline (methods × the :data:`HEADLINE` metrics, rankers then detectors).
    More: two cross-dataset tables (rankers: ``rca_metric``; detectors: ``detect_metrics`` joined by
    " / "; datasets as columns; each dataset's full tables are beside it). Best of a column in bold."""
    s = summary[~summary["dataset"].map(is_variant)]
    dss = list(datasets) if datasets is not None else sorted(s["dataset"].unique())
    parts: list[str] = []
    if len(dss) == 1:
        for task in HEADLINE:
            t = _headline_table(s, sig, dss[0], task, HEADLINE[task])
            if t:
                parts.append(t)
    for task, metrics in (("rca", [rca_metric]), ("detect", list(detect_metrics))):
        if len(dss) < 2:
            break
        t = s[s["task"] == task]
        cols = [d for d in dss if (t["dataset"] == d).any()]
        if not cols:
            continue
        methods = _method_order(t["method"].unique())
        what = "ranker" if task == "rca" else "detector"
        label = " / ".join(spec(m).label for m in metrics)
        lines = [f"| {what} ({label}) | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
        best: dict[tuple[str, str], float] = {}
        for d in cols:
            for m in metrics:
                vals = t[(t["dataset"] == d) & (t["metric"] == m) & (t["scope"] == ALL)]["mean"].dropna()
                if len(vals):
                    best[(d, m)] = vals.max() if spec(m).higher_is_better else vals.min()
        for method in methods:
            cells = []
            for d in cols:
                texts = []
                for m in metrics:
                    text, v = _cell(summary, sig, d, task, method, m)
                    if (d, m) in best and math.isfinite(v) and abs(v - best[(d, m)]) <= 1e-12:
                        text = f"**{text}**"
                    texts.append(text)
                cells.append(" / ".join(texts) if any(x != "—" for x in texts) else "—")
            lines.append(f"| {method} | " + " | ".join(cells) + " |")
        parts.append("\n".join(lines))
    legend = ("Mean over seeds (± std for a stochastic method) of the per-seed mean over cases; "
              "bold: best of the column;\n†: worse than the best (Wilcoxon signed-rank over cases, "
              "Holm, p < 0.05). The numbers of `metrics/leaderboard.json`, drawn by the report stage.")
    return "\n\n".join(parts) + ("\n\n" + legend if parts else "") + "\n"


def _method_order(methods) -> list[str]:
    """Methods in a stable order: base methods alphabetically, each followed by its variants."""
    ms = sorted(set(methods))
    base = sorted({m.split("-transfer")[0] for m in ms})
    out = []
    for b in base:
        out += [m for m in ms if m == b or m.startswith(b + "-")]
    return out + [m for m in ms if m not in out]


def replace_between_markers(text: str, block: str, marker: str = README_MARKER) -> str:
    """Replace what lies between ``<!-- marker -->`` and ``<!-- /marker -->`` with ``block``."""
    pat = re.compile(rf"(<!-- {re.escape(marker)} -->\n)(.*?)(<!-- /{re.escape(marker)} -->)", re.S)
    if not pat.search(text):
        raise ValueError(f"no <!-- {marker} --> … <!-- /{marker} --> block")
    return pat.sub(lambda m: m.group(1) + block.rstrip("\n") + "\n" + m.group(3), text, count=1)


def update_readme(readme: str | Path, table_md: str | Path, marker: str = README_MARKER) -> bool:
    """Copy ``table_md`` (a file's text) between the README's markers; True when the README changed."""
    from otlp_aiops.report.tables import atomic_write_text

    readme = Path(readme)
    old = readme.read_text(encoding="utf-8")
    new = replace_between_markers(old, Path(table_md).read_text(encoding="utf-8"), marker)
    if new != old:
        atomic_write_text(readme, new)
    return new != old
