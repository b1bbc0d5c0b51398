"""SimulatorConfig: strict parsing, durations, defaults, and schedule feasibility errors."""

from __future__ import annotations

import dataclasses

import pytest

from otlp_aiops.datasets.simulator import (
    DEFAULT_FAULT_TYPES,
    FAULT_TYPES,
    ConfigError,
    SimulatorConfig,
    parse_duration,
    simulate,
)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("2h", 7200.0),
        ("90m", 5400.0),
        ("3600s", 3600.0),
        ("1h30m", 5400.0),
        ("500ms", 0.5),
        (3600, 3600.0),
        ("45", 45.0),
        ("1d", 86400.0),
        (" 2h ", 7200.0),
        ("1.5h", 5400.0),
    ],
)
def test_parse_duration_accepts_units(text: object, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("bad", ["2 hours", "h", "2x", "", "-5s", -1, True, None, [1], "1h 30"])
def test_parse_duration_rejects_garbage(bad: object) -> None:
    with pytest.raises(ConfigError, match="duration"):
        parse_duration(bad)


def test_defaults_are_the_documented_default_dataset() -> None:
    cfg = SimulatorConfig.from_dict({})
    assert (cfg.system, cfg.duration, cfg.incidents, cfg.seed, cfg.framing) == (
        "online-boutique",
        7200.0,
        40,
        0,
        "proto",
    )
    # code_return is opt-in: the default datasets keep the seven faults they were built with
    assert cfg.fault_types == DEFAULT_FAULT_TYPES and len(DEFAULT_FAULT_TYPES) == 7
    assert (*DEFAULT_FAULT_TYPES, "code_return") == FAULT_TYPES
    assert SimulatorConfig.from_dict({"fault_types": ["code_return"]}).fault_types == ("code_return",)
    assert cfg.write_framing == "length_prefixed" and cfg.file_extension == "binpb"
    assert cfg.start_ns == (1_767_571_200 + 8 * 3600) * 10**9  # 2026-01-05T08:00:00Z, never "now"


def test_from_dict_normalises_and_round_trips() -> None:
    cfg = SimulatorConfig.from_dict(
        {
            "duration": "90m",
            "incident_duration": ["1m", "150s"],
            "min_gap": "1m",
            "fault_types": "cpu_hog, pod_kill",
            "framing": "proto-zstd",
            "system": "random:25",
        }
    )
    assert cfg.duration == 5400.0 and cfg.incident_duration == (60.0, 150.0) and cfg.min_gap == 60.0
    assert cfg.fault_types == ("cpu_hog", "pod_kill")
    assert cfg.write_framing == "length_prefixed_zstd"
    assert SimulatorConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.seed = 3  # type: ignore[misc]


def test_direct_construction_is_checked_too() -> None:
    assert SimulatorConfig(duration="2h").duration == 7200.0  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="system"):
        SimulatorConfig(system="sock-shop")


def test_unknown_keys_are_an_error_naming_them() -> None:
    with pytest.raises(ConfigError, match=r"unknown simulator setting\(s\) \['incidnets'\]"):
        SimulatorConfig.from_dict({"incidnets": 40})


@pytest.mark.parametrize(
    ("settings", "match"),
    [
        ({"system": "random:2"}, "random:N"),
        ({"system": "train_ticket"}, "system"),
        ({"framing": "json"}, "framing"),
        ({"incidents": -1}, "incidents"),
        ({"incidents": 2.5}, "integer"),
        ({"seed": "0"}, "seed"),
        ({"duration": "30s"}, "at least 60"),
        ({"duration": "10m", "warmup": "10m"}, "warmup"),
        ({"fault_types": ["cpu_hog", "meteor"]}, "meteor"),
        ({"fault_types": []}, "non-empty"),
        ({"incident_duration": ["2m", "1m"]}, "min <= max"),
        ({"incident_duration": "2m"}, r"\[min, max\]"),
        ({"severity": [0.5, 1.5]}, "severity"),
        ({"trace_sample_ratio": 2}, "trace_sample_ratio"),
        ({"instances": 0}, "instances"),
        ({"start": "yesterday"}, "ISO-8601"),
        ({"metric_interval": "1.5s"}, "whole seconds"),
    ],
)
def test_bad_values_name_the_setting(settings: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        SimulatorConfig.from_dict(settings)


def test_too_many_incidents_for_the_duration_is_a_clear_error(tmp_path) -> None:
    cfg = SimulatorConfig.from_dict({"duration": "10m", "warmup": "1m", "incidents": 20})
    with pytest.raises(ConfigError, match="do not fit in 600 s"):
        simulate(cfg, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    assert not any(tmp_path.iterdir())  # no staging folder left behind
