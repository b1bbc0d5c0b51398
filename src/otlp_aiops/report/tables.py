r"""Publishable tables: Markdown, LaTeX (booktabs) and CSV, written atomically.

A Markdown cell reads "mean ± std [ci_low, ci_high]": mean ± std over seeds, 95 % bootstrap interval
over cases. The best method of a column is bold; † marks a method significantly worse than the best
(Wilcoxon signed-rank, Holm-adjusted p < alpha). Rows are methods (or fault type × method), columns
metrics. The CSV holds the same numbers unformatted, one row per method × metric, for re-use.

The LaTeX form is a float ready for a two-column paper: ``table`` with ``\caption`` and ``\label``
(``tab:<name>``), booktabs rules, cells "mean ± std" (the intervals stay in the Markdown and CSV
forms) and a ``\resizebox`` that shrinks the tabular to ``\columnwidth`` only when it is wider. It
needs ``\usepackage{booktabs}`` and ``\usepackage{graphicx}``, which its first line states.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from otlp_aiops.report.stats import ALL, best_methods, spec

DAGGER = "†"
MISSING = "–"


def atomic_write_text(path: str | Path, text: str) -> Path:
    """UTF-8 text written atomically (:func:`otlp_aiops.outputs.atomic_write_text`)."""
    from otlp_aiops.outputs import atomic_write_text as write

    return write(path, text)


def safe_name(s: str) -> str:
    """A file-name-safe form of a dataset / fault-type name."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", s).strip("-") or "x"


@dataclass(frozen=True)
class Cell:
    text: str  # "" when there is no value
    best: bool = False
    worse: bool = False
    short: str = ""  # "mean ± std" without the interval (the LaTeX cell); "" = same as text


def cell_text(mean: float, std: float, lo: float, hi: float, decimals: int) -> str:
    """"0.82 ± 0.03 [0.75, 0.88]"; the ± part is left out without a std (one seed), the interval
    without a bootstrap (series-level metric or fewer than two cases)."""
    if mean is None or math.isnan(mean):
        return ""
    f = f"{{:.{decimals}f}}"
    s = f.format(mean)
    if std is not None and not math.isnan(std):
        s += " ± " + f.format(std)
    if lo is not None and hi is not None and not (math.isnan(lo) or math.isnan(hi)):
        s += f" [{f.format(lo)}, {f.format(hi)}]"
    return s


def build_table(summary: pd.DataFrame, sig: pd.DataFrame, *, dataset: str, task: str,
                metrics: Sequence[str], by_fault_type: bool = False) -> tuple[list[str], list[list[object]]]:
    """Header and rows (leading str columns, then :class:`Cell` per metric) for one dataset × task."""
    s = summary[(summary["dataset"] == dataset) & (summary["task"] == task)]
    metrics = [m for m in metrics if m in set(s["metric"])]
    if not by_fault_type:
        s = s[s["scope"] == ALL]
    bests: dict[tuple[str, str], set[str]] = {}
    for (scope, metric), g in s.dropna(subset=["mean"]).groupby(["scope", "metric"]):
        target = g["mean"].max() if spec(metric).higher_is_better else g["mean"].min()
        bests[(scope, metric)] = set(g.loc[(g["mean"] - target).abs() <= 1e-12, "method"])
    worse: set[tuple[str, str, str]] = set()
    if len(sig):
        w = sig[(sig["dataset"] == dataset) & (sig["task"] == task) & sig["significantly_worse"]]
        worse = {(r.scope, r.method, r.metric) for r in w.itertuples(index=False)}
    idx = s.set_index(["scope", "method", "metric"])
    header = (["fault type"] if by_fault_type else []) + ["method"] + [spec(m).label for m in metrics]
    rows: list[list[object]] = []
    for scope, method in sorted(set(zip(s["scope"], s["method"], strict=True))):
        row: list[object] = ([scope] if by_fault_type else []) + [method]
        for m in metrics:
            if (scope, method, m) not in idx.index:
                row.append(Cell(""))
                continue
            r = idx.loc[(scope, method, m)]
            row.append(Cell(cell_text(r["mean"], r["std"], r["ci_low"], r["ci_high"], spec(m).decimals),
                            best=method in bests.get((scope, m), set()),
                            worse=(scope, method, m) in worse,
                            short=cell_text(r["mean"], r["std"], math.nan, math.nan, spec(m).decimals)))
        rows.append(row)
    return header, rows


def _md_cell(c: object) -> str:
    if not isinstance(c, Cell):
        return str(c).replace("|", "\\|")
    if not c.text:
        return MISSING
    t = f"**{c.text}**" if c.best else c.text
    return f"{t} {DAGGER}" if c.worse else t


def to_markdown(header: list[str], rows: list[list[object]], caption: str = "") -> str:
    lines = [caption, ""] if caption else []
    lines.append("| " + " | ".join(header) + " |")
    lines.append("|" + "|".join(["---"] * len(header)) + "|")
    lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


_TEX_ESCAPES = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
                "<": r"$<$", ">": r"$>$"}  # "<" in an OT1 text font prints "¡"


def tex_escape(s: str) -> str:
    return "".join(_TEX_ESCAPES.get(ch, ch) for ch in s)


def _tex_text(s: str) -> str:
    return (tex_escape(s).replace("±", r"$\pm$").replace(DAGGER, r"$^{\dagger}$")
            .replace("–", "--").replace("—", "---"))


def _tex_cell(c: object) -> str:
    if not isinstance(c, Cell):
        return tex_escape(str(c))
    if not c.text:
        return "--"
    t = _tex_text(c.short or c.text)
    t = rf"\textbf{{{t}}}" if c.best else t
    return t + r"$^{\dagger}$" if c.worse else t


LATEX_PREAMBLE = r"% Needs \usepackage{booktabs} (rules) and \usepackage{graphicx} (\resizebox)."


def to_latex(header: list[str], rows: list[list[object]], caption: str = "", label: str = "") -> str:
    """A ``table`` float: caption, label, booktabs tabular shrunk to the column width when wider."""
    n_text = sum(1 for c in rows[0] if not isinstance(c, Cell)) if rows else 1
    cols = "l" * n_text + "r" * (len(header) - n_text)
    lines = [LATEX_PREAMBLE, r"\begin{table}[tbp]", r"\centering"]
    if caption:
        lines.append(r"\caption{" + _tex_text(" ".join(caption.split())) + "}")
    if label:
        lines.append(r"\label{" + re.sub(r"[^A-Za-z0-9:._-]+", "-", label) + "}")
    lines += [r"\resizebox{\ifdim\width>\columnwidth\columnwidth\else\width\fi}{!}{%",
              rf"\begin{{tabular}}{{{cols}}}", r"\toprule",
              " & ".join(tex_escape(h) for h in header) + r" \\", r"\midrule"]
    lines += [" & ".join(_tex_cell(c) for c in row) + r" \\" for row in rows]
    lines += [r"\bottomrule", r"\end{tabular}}", r"\end{table}"]
    return "\n".join(lines) + "\n"


def numeric_table(summary: pd.DataFrame, sig: pd.DataFrame, *, dataset: str, task: str,
                  metrics: Sequence[str], by_fault_type: bool = False) -> pd.DataFrame:
    s = summary[(summary["dataset"] == dataset) & (summary["task"] == task) & summary["metric"].isin(metrics)]
    if not by_fault_type:
        s = s[s["scope"] == ALL]
    keys = ["dataset", "task", "scope", "method", "metric"]
    best = best_methods(s)
    s = s.merge(best[["dataset", "task", "scope", "metric", "best_method", "best_methods"]],
                on=["dataset", "task", "scope", "metric"], how="left")
    s["is_best"] = [isinstance(b, tuple) and m in b
                    for m, b in zip(s["method"], s["best_methods"], strict=True)]
    s = s.drop(columns=["best_methods"])
    cols = ["n_pairs", "p_value", "p_holm", "significantly_worse"]
    if len(sig):
        s = s.merge(sig[[*keys, *cols]], on=keys, how="left")
    else:
        s = s.assign(n_pairs=pd.NA, p_value=math.nan, p_holm=math.nan, significantly_worse=False)
    s["n_pairs"] = s["n_pairs"].astype("Int64")
    s = s.rename(columns={"scope": "fault_type"})
    s["significantly_worse"] = s["significantly_worse"].astype("boolean").fillna(False).astype(bool)
    return s.sort_values(["fault_type", "metric", "method"]).reset_index(drop=True)


def caption_for(dataset: str, task: str, n_seeds: int, by_fault_type: bool, alpha: float,
                latex: bool = False) -> str:
    what = "root-cause analysis" if task == "rca" else "anomaly detection"
    scope = " per fault type" if by_fault_type else ""
    ci = ("(95 % bootstrap intervals over cases and every metric: the CSV form)" if latex
          else "[95 % bootstrap interval over cases]")
    return (f"{dataset}: {what}{scope}. Mean ± std over {n_seeds} seed(s) {ci}; bold: best; {DAGGER}: worse "
            f"than the best (Wilcoxon signed-rank, Holm, p < {alpha:g}).")


def write_tables(summary: pd.DataFrame, sig: pd.DataFrame, out_dir: str | Path, name: str, *, dataset: str,
                 task: str, metrics: Sequence[str], by_fault_type: bool = False,
                 alpha: float = 0.05, tex_metrics: Sequence[str] | None = None) -> list[Path]:
    """Write ``<out_dir>/<name>.md``, ``.tex``, ``.csv``; return the paths (none when empty).
    ``tex_metrics``: the columns of the LaTeX form (default: ``metrics``)."""
    header, rows = build_table(summary, sig, dataset=dataset, task=task, metrics=metrics,
                               by_fault_type=by_fault_type)
    if not rows or len(header) <= (2 if by_fault_type else 1):
        return []
    s = summary[(summary["dataset"] == dataset) & (summary["task"] == task)]
    n_seeds = int(s["n_seeds"].max()) if len(s) else 0
    cap = caption_for(dataset, task, n_seeds, by_fault_type, alpha)
    cap_tex = caption_for(dataset, task, n_seeds, by_fault_type, alpha, latex=True)
    out = Path(out_dir)
    tex_header, tex_rows = (header, rows) if tex_metrics is None else build_table(
        summary, sig, dataset=dataset, task=task, metrics=tex_metrics, by_fault_type=by_fault_type)
    paths = [atomic_write_text(out / f"{name}.md", to_markdown(header, rows, cap)),
             atomic_write_text(out / f"{name}.tex",
                               to_latex(tex_header, tex_rows, cap_tex, label=f"tab:{name}"))]
    num = numeric_table(summary, sig, dataset=dataset, task=task, metrics=metrics,
                        by_fault_type=by_fault_type)
    paths.append(atomic_write_text(out / f"{name}.csv", num.to_csv(index=False, lineterminator="\n")))
    return paths


def write_curve(curve: pd.DataFrame, out_dir: str | Path, name: str) -> list[Path]:
    """The AC@k curve of one dataset in the forms ``dvc plots`` reads: long CSV and JSON
    (``method,k,ac``) and a wide CSV (``k`` and one column per method)."""
    c = curve[["method", "k", "ac"]].sort_values(["method", "k"]).reset_index(drop=True)
    out = Path(out_dir)
    wide = c.pivot(index="k", columns="method", values="ac").reset_index()
    wide.columns.name = None
    return [atomic_write_text(out / f"{name}.csv", c.to_csv(index=False, lineterminator="\n")),
            atomic_write_text(out / f"{name}.json", c.to_json(orient="records", indent=1) + "\n"),
            atomic_write_text(out / f"{name}_wide.csv", wide.to_csv(index=False, lineterminator="\n"))]
