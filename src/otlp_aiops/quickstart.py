"""``otlp-aiops quickstart``: the whole path in under a minute, outside any repository — a 10-minute
simulation of Online Boutique with a few injected incidents, ingest, feature tables, three root-cause
rankers, and their table. Everything is written into one folder the user names; nothing else is
touched, and no MLflow run is logged.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MARKER = ".otlp-aiops-quickstart"
DATASET = "quickstart"
DEFAULT_METHODS = ("random", "baro", "pagerank")
HEADLINE = (("ac_at_1", "AC@1"), ("ac_at_3", "AC@3"), ("avg_at_5", "Avg@5"), ("mrr", "MRR"))
# short cases and reference windows: a 10-minute recording holds incidents a minute or two apart
FEATURES = {"window": "15s", "before": "1m", "after": "1m", "margin": "15s", "incident_length": "1m",
            "min_reference": 4, "threads": 2}


class QuickstartError(Exception):
    """The output folder cannot be used (names it and why)."""


@dataclass
class QuickstartResult:
    out: Path
    seconds: dict[str, float] = field(default_factory=dict)
    metrics: dict[str, dict[str, Any]] = field(default_factory=dict)
    cases: int = 0

    def table(self) -> str:
        """A Markdown table: method × AC@1, AC@3, Avg@5, MRR (mean over cases)."""
        head = "| method | " + " | ".join(label for _, label in HEADLINE) + " |"
        rule = "|---|" + "---:|" * len(HEADLINE)
        rows = []
        for m, met in self.metrics.items():
            cells = [f"{met[k]:.3f}" if isinstance(met.get(k), float) else "–" for k, _ in HEADLINE]
            rows.append(f"| {m} | " + " | ".join(cells) + " |")
        return "\n".join([head, rule, *rows])


def check_out(out: Path) -> None:
    """Refuse a folder that exists, is not empty and was not written by an earlier quickstart."""
    if out.exists() and not out.is_dir():
        raise QuickstartError(f"{out}: exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not (out / MARKER).exists():
        raise QuickstartError(f"{out}: exists, is not empty and is not a quickstart folder; refusing to "
                              "write into it (name a new or empty folder)")


def run_quickstart(out: str | Path, *, duration: str = "10m", incidents: int = 6, seed: int = 0,
                   methods: Sequence[str] = DEFAULT_METHODS, echo: Any = print) -> QuickstartResult:
    """Simulate, ingest, build features and run ``methods`` into ``out``; returns the timings and
    metrics. ``echo`` receives one line per finished step."""
    from otlp_aiops import registry

    out = Path(out)
    check_out(out)
    for m in methods:
        registry.model_class("ranker", m)  # an unknown name fails before any work
    out.mkdir(parents=True, exist_ok=True)
    (out / MARKER).write_text("written by otlp-aiops quickstart; safe to delete\n")
    res = QuickstartResult(out=out)
    t_all = time.perf_counter()

    def lap(step: str, t0: float, text: str) -> None:
        res.seconds[step] = round(time.perf_counter() - t0, 2)
        echo(f"[{time.perf_counter() - t_all:5.1f} s] {step}: {text}")

    raw = out / "data" / "raw" / DATASET
    interim = out / "data" / "interim" / DATASET
    feats = out / "data" / "features" / DATASET

    t0 = time.perf_counter()
    from otlp_aiops.datasets.simulator import SimulatorConfig, simulate

    cfg = SimulatorConfig.from_dict({"system": "online-boutique", "duration": duration,
                                     "incidents": incidents, "seed": seed, "framing": "proto",
                                     "incident_duration": [45, 75], "min_gap": 30, "disturbances": 0})
    sim = simulate(cfg, raw)
    lap("simulate", t0, f"{duration} of Online Boutique, {incidents} incidents -> {raw}")
    del sim

    t0 = time.perf_counter()
    from otlp_aiops.otlp.ingest import ingest_paths

    rep = ingest_paths([raw / "otlp"], interim, workers=2)
    lap("ingest", t0, f"{rep['totals']['records_written']:,} records -> {interim}")

    t0 = time.perf_counter()
    from otlp_aiops.features.build import build_features
    from otlp_aiops.features.config import resolve_config

    fcfg = resolve_config(FEATURES, DATASET, where="quickstart features: ")
    summary = build_features(interim, raw, feats, fcfg, dataset=DATASET)
    res.cases = int(summary.get("cases", 0))
    lap("features", t0, f"{summary.get('windows')} windows x {summary.get('services')} services, "
                        f"{res.cases} cases -> {feats}")

    from otlp_aiops.executor import executor_config
    from otlp_aiops.stages.common import NO_TRACKING
    from otlp_aiops.stages.config import BenchmarkConfig, StageSettings
    from otlp_aiops.stages.rca import rca_stage

    bench = BenchmarkConfig(datasets=(DATASET,), rca=tuple(methods), detectors=(), seeds=(seed,),
                            detection_offsets=("0s",), supervised_train={}, transfer_from=None)
    executor = executor_config()  # local unless OTLP_AIOPS_EXECUTOR says otherwise
    for m in methods:
        t0 = time.perf_counter()
        metrics = rca_stage(DATASET, m, StageSettings(bench=bench, executor=executor), root=out,
                            tracking=NO_TRACKING)
        res.metrics[m] = metrics
        lap(f"rca {m}", t0, f"AC@1 {metrics.get('ac_at_1', float('nan')):.3f}")
    res.seconds["total"] = round(time.perf_counter() - t_all, 2)
    (out / "quickstart.json").write_text(json.dumps(
        {"seconds": res.seconds, "cases": res.cases,
         "metrics": {m: {k: v.get(k) for k, _ in HEADLINE} for m, v in res.metrics.items()}},
        indent=2, sort_keys=True) + "\n")
    return res


def remove(out: Path) -> None:
    """Delete a quickstart folder (only one with the quickstart marker)."""
    if (out / MARKER).exists():
        shutil.rmtree(out)
