"""The fault-injection telemetry simulator: labelled incidents in genuine OTLP (traces, metrics,
logs) from a microservice system model, plus ground truth. See docs/simulator.md."""

from otlp_aiops.datasets.simulator.config import (
    DEFAULT_FAULT_TYPES,
    FAULT_TYPES,
    ConfigError,
    SimulatorConfig,
    parse_duration,
)
from otlp_aiops.datasets.simulator.generate import SIMULATOR_VERSION, SimulationSummary, simulate

__all__ = [
    "DEFAULT_FAULT_TYPES",
    "FAULT_TYPES",
    "SIMULATOR_VERSION",
    "ConfigError",
    "SimulationSummary",
    "SimulatorConfig",
    "parse_duration",
    "simulate",
]
