"""`dvc repro` reproduces itself: the features stage writes the same bytes for the same inputs and
config, run after run and whatever DuckDB's thread count. The ingest writes small row groups, so
DuckDB aggregates the tables in parallel even on this small dataset: a floating-point sum whose
order depends on the threads, a wall-clock time in a file (``summary.json``, a zip entry in a
``.npz``) or an execution setting in ``meta.json`` all fail this test."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import numpy as np

from features_factories import SMALL_SIMULATION

CONFIG = SMALL_SIMULATION


def _digests(d: Path) -> dict[str, str]:
    return {
        str(p.relative_to(d)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(d.rglob("*"))
        if p.is_file()
    }


def test_features_are_byte_identical_across_runs_and_thread_counts(tmp_path: Path) -> None:
    from otlp_aiops.datasets.simulator import SimulatorConfig, simulate
    from otlp_aiops.features.build import build_features
    from otlp_aiops.features.config import resolve_config
    from otlp_aiops.otlp.ingest import ingest_paths

    raw, interim = tmp_path / "raw", tmp_path / "interim"
    simulate(SimulatorConfig.from_dict(CONFIG), raw)
    report = ingest_paths([raw / "otlp"], interim, workers=1, batch_rows=1024)
    assert report["totals"]["rows_written"]["spans"] > 20 * 1024  # many row groups: parallel scans
    cfg = resolve_config({"window": "15s", "before": "3m", "after": "2m"}, "toy")
    runs = {}
    for name, threads in [("a", 2), ("b", 2), ("c", 1)]:
        summary = build_features(
            interim, raw, tmp_path / name, dataclasses.replace(cfg, threads=threads), dataset="toy"
        )
        assert summary["cases"] == 4 and summary["seconds"] > 0  # the caller still gets the timing ...
        runs[name] = _digests(tmp_path / name)
    assert len(runs["a"]) > 10 and "cases.parquet" in runs["a"] and "matrix.npy" in runs["a"]
    for other in ("b", "c"):
        differ = sorted(
            k for k in runs["a"].keys() | runs[other].keys() if runs["a"].get(k) != runs[other].get(k)
        )
        assert differ == [], f"run {other} differs from run a in {differ}"
    written = json.loads((tmp_path / "a" / "summary.json").read_text())
    assert "seconds" not in written and "timings" not in written  # ... but no file holds it
    assert "threads" not in json.loads((tmp_path / "a" / "meta.json").read_text())["config"]
    case = sorted((tmp_path / "a" / "cases").iterdir())[0]
    with np.load(case) as z:  # the deterministic .npz still loads
        assert sorted(z.files) == ["reference", "reference_times", "times", "values"]
        assert z["values"].shape[0] == z["times"].shape[0] > 0
