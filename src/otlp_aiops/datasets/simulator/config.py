"""The simulator's configuration: one frozen dataclass, parsed strictly from a dict (a ``params.yaml``
section or the CLI options)."""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from otlp_aiops.config import ConfigError, parse_duration

# The faults injected when `fault_types` is not set (the default datasets were built with these).
DEFAULT_FAULT_TYPES: tuple[str, ...] = (
    "cpu_hog",
    "memory_leak",
    "network_delay",
    "packet_loss",
    "code_exception",
    "disk_io_slow",
    "pod_kill",
)
# Every fault the simulator can inject: `code_return` (a wrong result: the operation takes another
# code path, with other log lines and fewer downstream calls, and no error) is opt-in.
FAULT_TYPES: tuple[str, ...] = (*DEFAULT_FAULT_TYPES, "code_return")
DISTURBANCE_KINDS: tuple[str, ...] = ("traffic_surge", "deploy_restart")

# CLI framing name -> (framing of otlp.write.encode_frames, file extension)
FRAMINGS: dict[str, tuple[str, str]] = {
    "jsonl": ("jsonl", "jsonl"),
    "proto": ("length_prefixed", "binpb"),
    "proto-zstd": ("length_prefixed_zstd", "binpb"),
}

_SYSTEM_RE = re.compile(r"online-boutique|train-ticket|random:(\d+)")


def _duration_range(value: Any, key: str) -> tuple[float, float]:
    if not isinstance(value, list | tuple) or len(value) != 2:
        raise ConfigError(f"{key}: expected [min, max], e.g. [60s, 120s], got {value!r}")
    lo, hi = (parse_duration(v, key) for v in value)
    if not 0 < lo <= hi:
        raise ConfigError(f"{key}: need 0 < min <= max, got {value!r}")
    return lo, hi


def _number(value: Any, key: str, lo: float, hi: float, integer: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"{key}: expected a number, got {value!r}")
    if integer and value != int(value):
        raise ConfigError(f"{key}: expected an integer, got {value!r}")
    if not lo <= value <= hi:
        raise ConfigError(f"{key}: must lie in [{lo:g}, {hi:g}], got {value!r}")
    return int(value) if integer else float(value)


@dataclass(frozen=True)
class SimulatorConfig:
    """Every setting of one simulated dataset. Durations are held in seconds."""

    system: str = "online-boutique"  # online-boutique | train-ticket | random:N
    duration: float = 7200.0
    incidents: int = 40
    seed: int = 0
    framing: str = "proto"  # jsonl | proto | proto-zstd
    start: str = "2026-01-05T08:00:00Z"  # simulated clock at t=0 (a fixed epoch, never "now")
    request_rate: float = 20.0  # user requests per second at the frontend, daily mean
    diurnal_amplitude: float = 0.3  # relative swing of the day-shaped request rate
    trace_sample_ratio: float = 0.2  # head sampling at the frontend; metrics count every request
    instances: int | None = None  # replicas per service; None = the topology's own numbers
    fault_types: tuple[str, ...] = DEFAULT_FAULT_TYPES
    incident_duration: tuple[float, float] = (60.0, 120.0)
    min_gap: float = 40.0  # fault-free seconds between any two incidents / disturbances
    warmup: float | None = None  # fault-free head of the recording; None: min(10 min, 10 % of duration)
    disturbances: int | None = None  # benign events (traffic surges, deploy restarts); None: incidents / 5
    disturbance_duration: tuple[float, float] = (40.0, 90.0)
    severity: tuple[float, float] = (0.3, 1.0)
    metric_interval: float = 15.0  # metric export interval (seconds)
    export_interval: float = 10.0  # span / log batch interval (seconds)
    rotate_mb: float = 16.0  # start a new file after this many MiB (Collector file exporter rotation)
    disturbance_kinds: tuple[str, ...] = field(default=DISTURBANCE_KINDS)

    # ------------------------------------------------------------------------------------------
    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> SimulatorConfig:
        """Parse a settings dict; unknown keys and unusable values raise :class:`ConfigError`."""
        d = dict(d or {})
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ConfigError(f"unknown simulator setting(s) {unknown}; known settings: {sorted(known)}")
        return cls(**d)

    def __post_init__(self) -> None:
        # Every field is checked and normalised here, so a directly constructed config is as safe as
        # a parsed one ("2h" -> 7200.0, lists -> tuples).
        for f in dataclasses.fields(self):
            object.__setattr__(self, f.name, _PARSERS[f.name](getattr(self, f.name), f.name))
        if self.warmup is None:
            object.__setattr__(self, "warmup", float(min(600, int(self.duration) // 10)))
        if self.disturbances is None:
            object.__setattr__(self, "disturbances", round(self.incidents / 5))
        if self.warmup >= self.duration:
            raise ConfigError(
                f"warmup ({self.warmup:g} s) must be shorter than duration ({self.duration:g} s)"
            )
        if self.export_interval > self.duration or self.metric_interval > self.duration:
            raise ConfigError("metric_interval and export_interval must not exceed duration")

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able settings (tuples as lists, durations in seconds)."""
        out = dataclasses.asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in out.items()}

    # derived -----------------------------------------------------------------------------------
    @property
    def start_ns(self) -> int:
        return int(_parse_start(self.start, "start").timestamp()) * 1_000_000_000

    @property
    def seconds(self) -> int:
        return round(self.duration)

    @property
    def write_framing(self) -> str:
        return FRAMINGS[self.framing][0]

    @property
    def file_extension(self) -> str:
        return FRAMINGS[self.framing][1]


def _parse_start(value: Any, key: str) -> datetime:
    if not isinstance(value, str):
        raise ConfigError(f"{key}: expected an ISO-8601 UTC time such as 2026-01-05T08:00:00Z, got {value!r}")
    try:
        t = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(f"{key}: {value!r} is not an ISO-8601 time (e.g. 2026-01-05T08:00:00Z)") from None
    if t.tzinfo is None:
        t = t.replace(tzinfo=UTC)
    if t.microsecond:
        raise ConfigError(f"{key}: use whole seconds, got {value!r}")
    return t


def _system(value: Any, key: str) -> str:
    if not isinstance(value, str) or not _SYSTEM_RE.fullmatch(value.strip()):
        raise ConfigError(
            f"{key}: expected online-boutique, train-ticket or random:N (N >= 3), got {value!r}"
        )
    value = value.strip()
    if value.startswith("random:") and not 3 <= int(value.split(":")[1]) <= 5000:
        raise ConfigError(f"{key}: random:N needs 3 <= N <= 5000, got {value!r}")
    return value


def _whole_seconds(value: Any, key: str, lo: float) -> float:
    s = parse_duration(value, key)
    if s < lo:
        raise ConfigError(f"{key}: must be at least {lo:g} s, got {value!r}")
    if abs(s - round(s)) > 1e-9:
        raise ConfigError(f"{key}: use whole seconds, got {value!r}")
    return float(round(s))


def _choice_list(allowed: tuple[str, ...]):
    def parse(value: Any, key: str) -> tuple[str, ...]:
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, list | tuple) or not value:
            raise ConfigError(f"{key}: expected a non-empty list out of {list(allowed)}, got {value!r}")
        bad = [v for v in value if v not in allowed]
        if bad:
            raise ConfigError(f"{key}: unknown {bad}; choose from {list(allowed)}")
        return tuple(dict.fromkeys(value))

    return parse


def _framing(value: Any, key: str) -> str:
    if value not in FRAMINGS:
        raise ConfigError(f"{key}: expected one of {list(FRAMINGS)}, got {value!r}")
    return value


def _instances(value: Any, key: str) -> int | None:
    if value is None:
        return None
    return int(_number(value, key, 1, 64, integer=True))


def _severity(value: Any, key: str) -> tuple[float, float]:
    if not isinstance(value, list | tuple) or len(value) != 2:
        raise ConfigError(f"{key}: expected [min, max] within [0, 1], got {value!r}")
    lo, hi = (_number(v, key, 0.0, 1.0) for v in value)
    if lo > hi:
        raise ConfigError(f"{key}: need min <= max, got {value!r}")
    return lo, hi


def _start(value: Any, key: str) -> str:
    _parse_start(value, key)
    return value


_PARSERS: dict[str, Any] = {
    "system": _system,
    "duration": lambda v, k: _whole_seconds(v, k, 60.0),
    "incidents": lambda v, k: int(_number(v, k, 0, 100_000, integer=True)),
    "seed": lambda v, k: int(_number(v, k, 0, 2**63 - 1, integer=True)),
    "framing": _framing,
    "start": _start,
    "request_rate": lambda v, k: _number(v, k, 0.01, 100_000.0),
    "diurnal_amplitude": lambda v, k: _number(v, k, 0.0, 0.9),
    "trace_sample_ratio": lambda v, k: _number(v, k, 0.0, 1.0),
    "instances": _instances,
    "fault_types": _choice_list(FAULT_TYPES),
    "incident_duration": lambda v, k: tuple(float(round(x)) for x in _duration_range(v, k)),
    "min_gap": lambda v, k: _whole_seconds(v, k, 0.0),
    "warmup": lambda v, k: None if v is None else _whole_seconds(v, k, 0.0),
    "disturbances": lambda v, k: None if v is None else int(_number(v, k, 0, 100_000, integer=True)),
    "disturbance_duration": lambda v, k: tuple(float(round(x)) for x in _duration_range(v, k)),
    "severity": _severity,
    "metric_interval": lambda v, k: _whole_seconds(v, k, 1.0),
    "export_interval": lambda v, k: _whole_seconds(v, k, 1.0),
    "rotate_mb": lambda v, k: _number(v, k, 0.01, 1_000_000.0),
    "disturbance_kinds": _choice_list(DISTURBANCE_KINDS),
}
