"""Figures: critical-difference diagram and AC@k curves, drawn on ``matplotlib.figure.Figure`` objects
with an Agg canvas (no pyplot state, no backend switch, never a window); files are written atomically.

Critical difference (Demšar, JMLR 2006): methods are ranked within each block (rank 1 = best,
ties get the average rank), a Friedman test checks that the ranks differ, and a post-hoc test
(Nemenyi, or Conover with Holm) gives the pairwise p-values whose non-significant groups the diagram
joins with bars. The drawing and the post-hoc tests are scikit-posthocs'
(``critical_difference_diagram``, ``posthoc_nemenyi_friedman``, ``posthoc_conover_friedman``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from otlp_aiops.report.stats import spec


def save_figure(fig, path: str | Path, dpi: int = 150) -> Path:
    """Save a matplotlib Figure atomically (format from the suffix)."""
    import matplotlib
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    from otlp_aiops.outputs import atomic_write_with

    path = Path(path)
    if fig.canvas is None or not isinstance(fig.canvas, FigureCanvasAgg):
        FigureCanvasAgg(fig)
    fmt = path.suffix.lstrip(".").lower()
    # no version or date stamps, fixed SVG ids: the same figure gives the same bytes (tracked files)
    metadata = {"png": {"Software": None}, "svg": {"Date": None, "Creator": None},
                "pdf": {"CreationDate": None, "Creator": None, "Producer": None}}.get(fmt)
    with matplotlib.rc_context({"svg.hashsalt": "otlp-aiops"}):
        atomic_write_with(path, lambda tmp: fig.savefig(tmp, format=fmt, dpi=dpi, bbox_inches="tight",
                                                        metadata=metadata))
    return path


@dataclass(frozen=True)
class CriticalDifference:
    avg_ranks: pd.Series  # method -> average rank (1 = best)
    pvalues: pd.DataFrame  # method × method post-hoc p-values
    friedman_p: float
    n_blocks: int


def block_matrix(case_values: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Blocks × methods matrix of one metric: blocks are (dataset, case) pairs, or datasets for a
    series-level metric; a block that lacks any method is dropped."""
    d = case_values[case_values["metric"] == metric]
    if d.empty:
        return pd.DataFrame()
    d = d.assign(block=d["dataset"] + "\x1f" + d["case_id"])
    return d.pivot_table(index="block", columns="method", values="value", aggfunc="mean").dropna()


def critical_difference(blocks: pd.DataFrame, metric: str, posthoc: str = "nemenyi") -> CriticalDifference:
    """Average ranks, Friedman p-value and the post-hoc p-value matrix for a blocks × methods matrix."""
    if blocks.shape[1] < 3:
        raise ValueError(f"critical difference needs at least 3 methods, got {blocks.shape[1]}")
    if blocks.shape[0] < 2:
        raise ValueError(f"critical difference needs at least 2 blocks, got {blocks.shape[0]}")
    from scipy.stats import friedmanchisquare, rankdata

    sign = -1.0 if spec(metric).higher_is_better else 1.0
    ranks = rankdata(sign * blocks.to_numpy(), axis=1, method="average")
    avg = pd.Series(ranks.mean(axis=0), index=list(blocks.columns))
    if np.all(blocks.to_numpy() == blocks.to_numpy()[:, :1]):
        fp = 1.0  # every block ties all methods: nothing to test
    else:
        fp = float(friedmanchisquare(*[blocks[c].to_numpy() for c in blocks.columns]).pvalue)
    import scikit_posthocs as sp

    data = blocks.reset_index(drop=True)
    if posthoc == "nemenyi":
        pv = sp.posthoc_nemenyi_friedman(data)
    elif posthoc == "conover":
        pv = sp.posthoc_conover_friedman(data, p_adjust="holm")
    else:
        raise ValueError(f"posthoc must be 'nemenyi' or 'conover', got {posthoc!r}")
    pv = pv.fillna(1.0)
    return CriticalDifference(avg_ranks=avg, pvalues=pv, friedman_p=fp, n_blocks=int(blocks.shape[0]))


def draw_critical_difference(cd: CriticalDifference, title: str, path: str | Path,
                             alpha: float = 0.05) -> Path:
    import scikit_posthocs as sp
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8, 1.2 + 0.25 * len(cd.avg_ranks)))
    ax = fig.add_subplot(1, 1, 1)
    artists = sp.critical_difference_diagram(cd.avg_ranks, cd.pvalues, alpha=alpha, ax=ax)
    # scikit-posthocs draws each crossbar through its methods in set order, which changes with the
    # process's string-hash seed: the same bar, other bytes. Sort every bar's points by rank.
    for bar in artists.get("crossbars", []):
        for line in bar if isinstance(bar, list) else [bar]:
            xs, ys = (np.asarray(v, dtype=float) for v in line.get_data())
            order = np.argsort(xs, kind="stable")
            line.set_data(xs[order], ys[order])
    ax.set_title(f"{title}\nFriedman p = {cd.friedman_p:.3g}, {cd.n_blocks} blocks", fontsize=9)
    return save_figure(fig, path)


def draw_ac_at_k(curve: pd.DataFrame, title: str, path: str | Path) -> Path:
    """AC@k by k, one line per method."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5, 3.5))
    ax = fig.add_subplot(1, 1, 1)
    for method, g in curve.groupby("method", sort=True):
        ax.plot(g["k"], g["ac"], marker="o", ms=3, label=method)
    ax.set_xlabel("k")
    ax.set_ylabel("AC@k")
    ax.set_ylim(-0.02, 1.02)
    if len(curve):
        ax.set_xticks(range(1, int(curve["k"].max()) + 1))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    ax.set_title(title, fontsize=9)
    return save_figure(fig, path)

