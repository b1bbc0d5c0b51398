"""Features settings (strict, per-dataset overrides), per-case reference recordings, bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from features_factories import SEC, T0, write_raw, write_table
from otlp_aiops.config import ConfigError
from otlp_aiops.features.build import FeaturesError, build_features
from otlp_aiops.features.cases import case_window, make_grid
from otlp_aiops.features.config import FeaturesConfig, resolve_config
from otlp_aiops.features.kinds import metric_kind
from otlp_aiops.features.store import load_cases

SECTION = {"window": "15s", "before": "5m", "after": "5m",
           "overrides": {"rcd-sockshop": {"window": "1s", "before": "4m", "after": "1m"}}}  # fmt: skip


def test_overrides_merge_and_durations() -> None:
    base = resolve_config(SECTION, "sim-boutique")
    assert (base.window_s, base.before_s, base.after_s, base.reference_s) == (15.0, 300.0, 300.0, 300.0)
    sock = resolve_config(SECTION, "rcd-sockshop")
    assert (sock.window_s, sock.before_s, sock.after_s) == (1.0, 240.0, 60.0)
    assert resolve_config({"window": 60, "reference": "1h30m"}, "x").reference_s == 5400.0


@pytest.mark.parametrize(
    ("section", "message"),
    [({"windw": "15s"}, "unknown setting"), ({"window": "15 parsecs"}, "not a duration"),
     ({"window": 0}, "must be positive"), ({"overrides": {"x": {"bogus": 1}}}, "unknown setting"),
     ({"drain_similarity": 1.5}, "drain_similarity")],
)  # fmt: skip
def test_bad_settings_are_errors(section: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        resolve_config(section, "x")


def test_case_window_onset_and_offset() -> None:
    cfg = FeaturesConfig(window="10s", before="30s", after="20s", detection_offset="7s")
    times, onset = case_window(T0 + 25 * SEC, cfg, 10 * SEC)  # shifted start 32 s: window 30 s
    assert onset == 3 and ((times - T0) // SEC).tolist() == [0, 10, 20, 30, 40]


def test_grid_fills_small_gaps_and_splits_segments() -> None:
    ws = np.array([0, 1, 3, 10, 11]) * 10
    grid, seg, has = make_grid(ws, 10, segment_gap=1)
    assert (grid // 10).tolist() == [0, 1, 2, 3, 10, 11]
    assert seg.tolist() == [0, 0, 0, 0, 1, 1] and has.tolist() == [True, True, False, True, True, True]


def test_metric_kinds() -> None:
    assert [metric_kind(n) for n in ("container.cpu.usage", "jvm.memory.used", "http.server.request.duration",
                                     "app.server.error.count", "app.server.request.count", "queue.depth", "foo")] == [
        "cpu", "memory", "latency", "errors", "traffic", "saturation", "other"]  # fmt: skip
    assert metric_kind("foo", {"foo": "cpu"}) == "cpu"
    with pytest.raises(ValueError, match="not one of"):
        metric_kind("foo", {"foo": "bananas"})


def _metric_only(tmp: Path, incidents: list[dict], reference: bool = False) -> tuple[Path, Path]:
    interim, raw = tmp / "interim", tmp / "raw"
    write_table(interim, "metrics_number", [
        {"service_name": s, "metric_name": "cpu", "series_id": k, "time": T0 + t * SEC, "value_double": float(t)}
        for k, s in enumerate(("x", "y")) for t in range(0, 600, 10)])  # fmt: skip
    write_raw(raw, incidents, dataset={"name": "m", "symptom_service": "y", "metric_kinds": {"cpu": "saturation"}},
              reference=reference)  # fmt: skip
    return interim, raw


def test_reference_recording_of_a_case(tmp_path: Path) -> None:
    inc = [{"incident_id": "c1", "start_time": T0 + 560 * SEC, "root_cause_service": "x",
            "reference_start": T0 + 100 * SEC, "reference_end": T0 + 150 * SEC}]  # fmt: skip
    interim, raw = _metric_only(tmp_path, inc, reference=True)
    cfg = FeaturesConfig(window="10s", before="60s", after="60s", margin=0)
    build_features(interim, raw, tmp_path / "out", cfg)
    (case,) = load_cases(tmp_path / "out")
    assert ((case.reference_times - np.datetime64(T0, "ns")) // np.timedelta64(1, "s")).tolist() == [100, 110, 120, 130, 140]
    assert case.extra["reference_source"] == "recording" and case.symptom_service == "y"
    assert case.feature_kinds == ("saturation", "saturation")  # declared in dataset.json
    f = case.features.index("metric.cpu.mean")
    assert case.reference[:, 0, f].tolist() == [100.0, 110.0, 120.0, 130.0, 140.0]
    # no end_time: the incident lasts incident_length (5 m) and runs past the data's end
    assert case.values.shape[0] == 12 and np.isnan(case.values[-2:]).all()


def test_bad_incidents_name_file_and_record(tmp_path: Path) -> None:
    interim, raw = _metric_only(tmp_path, [{"incident_id": "c1", "start_time": T0}, {"incident_id": "c1", "start_time": T0}])
    with pytest.raises(FeaturesError, match=r"incidents.parquet: incident_id must be unique"):
        build_features(interim, raw, tmp_path / "out", FeaturesConfig())
    with pytest.raises(FeaturesError, match="no ingest output"):
        build_features(tmp_path / "nowhere", raw, tmp_path / "out", FeaturesConfig())
    assert not (tmp_path / "out").exists()


def test_cli_build_and_rebuild_replace_atomically(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from otlp_aiops.features.cli import app

    interim, raw = _metric_only(tmp_path, [{"incident_id": "c1", "start_time": T0 + 300 * SEC}])
    params = tmp_path / "params.yaml"
    params.write_text("dataset: m\nfeatures:\n  window: 10s\n  before: 1m\n  after: 1m\n"
                      "  overrides:\n    m: {window: 20s}\n")  # fmt: skip
    out = tmp_path / "features" / "m"
    args = ["--params", str(params), "--interim", str(interim), "--raw", str(raw), "--out", str(out)]
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 0, r.output
    assert '"window_seconds": 20.0' in r.output and '"windows": 30' in r.output
    r = CliRunner().invoke(app, [*args, "--set", "window=30s"])
    assert r.exit_code == 0 and '"windows": 20' in r.output
    assert sorted(p.name for p in out.parent.iterdir()) == ["m"]  # no temporary or old folder left
    r = CliRunner().invoke(app, [*args, "--set", "windw=1s"])
    assert r.exit_code == 1 and "unknown setting(s) windw" in r.output
