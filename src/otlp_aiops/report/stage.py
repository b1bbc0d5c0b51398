"""The `report` stage: every ``benchmark.datasets`` × method result of params.yaml in, and out:

* ``<out>/tables/`` — Markdown, LaTeX, CSV per dataset × task (and per fault type), ``summary.csv``,
  ``leaderboard.md`` (the README's cross-dataset tables);
* ``<out>/figures/`` — AC@k per dataset and critical-difference diagrams (PNG, the ``dvc plots``);
* ``<out>/report/index.html`` — the static, self-contained HTML report;
* ``metrics/leaderboard.json`` — the headline, the pipeline's DVC metrics:
  ``{dataset: {rca|detect: {method: {metric: value}}}}`` (:mod:`otlp_aiops.report.leaderboard`);
* with ``readme``: the leaderboard copied between the README's ``<!-- leaderboard -->`` markers
  (``otlp-aiops report --readme README.md``; the DVC stage never touches the README).

:func:`run_report` is what ``pipelines/report.py`` (the DVC stage) and ``otlp-aiops report`` call.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


class ReportError(Exception):
    """A missing input or bad setting, with a message for the user."""


def result_paths(root: Path, datasets: Sequence[str], tasks: Mapping[str, Sequence[str]]) -> list[Path]:
    paths = []
    for ds in datasets:
        for task, methods in tasks.items():
            for m in methods:
                p = root / "benchmarks" / "results" / task / ds / f"{m}.parquet"
                if not p.exists():
                    raise ReportError(f"{p} is missing: run the {task}@{ds}-{m} stage first")
                paths.append(p)
    return paths


def run_report(params: Mapping[str, Any], *, root: str | Path = ".", out: str | Path | None = None,
               leaderboard: str | Path | None = None, readme: str | Path | None = None,
               datasets: Sequence[str] | None = None, readme_marker: str = "leaderboard",
               params_source: str = "params.yaml") -> dict:
    """Build the report of ``params`` (a parsed params.yaml) from the results under ``root``.

    ``out`` defaults to ``<root>/benchmarks``; ``leaderboard`` (the JSON file) to
    ``<root>/metrics/leaderboard.json`` (``None`` with a non-default ``out``:
    ``<out>/leaderboard.json``); ``datasets`` overrides ``benchmark.datasets``; ``readme``: copy
    ``tables/leaderboard.md`` between that file's ``<!-- readme_marker -->`` markers. The ``report``
    section is a strict :class:`~otlp_aiops.report.config.ReportConfig` (errors name
    ``params_source``). Returns the summary of :func:`otlp_aiops.report.build.build_report`."""
    from otlp_aiops.report import html
    from otlp_aiops.report import leaderboard as lb
    from otlp_aiops.report.build import build_report
    from otlp_aiops.report.config import ReportConfig
    from otlp_aiops.stages.config import benchmark_config

    root = Path(root)
    default_out = out is None
    out = root / "benchmarks" if out is None else Path(out)
    if leaderboard is None:
        leaderboard = root / "metrics" / "leaderboard.json" if default_out else out / "leaderboard.json"
    bench = benchmark_config(params)
    dss = list(datasets) if datasets else list(bench.datasets)
    cfg = ReportConfig.from_params(params, params_source)
    paths = result_paths(root, dss, {"rca": bench.rca, "detect": bench.detectors})
    cards = {d: html.dataset_card(d, root / "data" / "raw" / d, root / "data" / "interim" / d) for d in dss}
    summary = build_report(paths, out / "tables", out / "figures", seed=cfg.bootstrap_seed, alpha=cfg.alpha,
                           n_resamples=cfg.n_resamples, posthoc=cfg.posthoc,
                           html_path=out / "report" / "index.html", cards=cards, datasets=dss)
    summary["files"].append(str(lb.write_leaderboard(summary["leaderboard"], leaderboard)))
    if readme is not None:
        changed = lb.update_readme(readme, out / "tables" / "leaderboard.md", readme_marker)
        summary["readme"] = f"{readme}: {'updated' if changed else 'already up to date'}"
    return summary


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="pipelines/report.py", description=__doc__.split("\n\n")[0])
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--out", type=Path, default=None,
                    help="Folder for tables/, figures/ and report/ (default: benchmarks/).")
    ap.add_argument("--leaderboard", type=Path, default=None,
                    help="The leaderboard JSON file (default: metrics/leaderboard.json; "
                         "<out>/leaderboard.json with --out).")
    ap.add_argument("--datasets", default=None,
                    help="Comma-separated datasets instead of benchmark.datasets.")
    ap.add_argument("--readme", type=Path, default=None,
                    help="Also copy the leaderboard between this README's <!-- MARKER --> markers.")
    ap.add_argument("--marker", default="leaderboard", help="The README block (default: leaderboard).")
    args = ap.parse_args(argv)
    import yaml

    try:
        params = yaml.safe_load(Path(args.params).read_text()) or {}
        datasets = [d.strip() for d in args.datasets.split(",")] if args.datasets else None
        summary = run_report(params, out=args.out, leaderboard=args.leaderboard, readme=args.readme,
                             readme_marker=args.marker, params_source=str(args.params), datasets=datasets)
    except (ReportError, OSError, ValueError, yaml.YAMLError) as e:
        print(f"error: report: {e}", file=sys.stderr)
        return 1
    shown = {k: v for k, v in summary.items() if k not in ("files", "leaderboard")}
    print(json.dumps(shown, indent=2, default=str)[:4000])
    return 0
