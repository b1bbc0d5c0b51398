"""Settings of the ``report`` stage: one frozen dataclass, read from ``params.yaml`` section ``report``
(an unknown key is an error, as for every other section)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from otlp_aiops.config import ConfigError, config_from_dict

POSTHOC_TESTS = ("nemenyi", "conover")


@dataclass(frozen=True)
class ReportConfig:
    """``bootstrap_seed``: seeds the bootstrap intervals (:func:`otlp_aiops.report.stats.summarize`);
    ``alpha``: the significance level of the Wilcoxon + Holm marks and the critical-difference bars;
    ``n_resamples``: bootstrap resamples per interval; ``posthoc``: the test after Friedman in the
    critical-difference diagrams (``nemenyi`` or ``conover``)."""

    bootstrap_seed: int = 0
    alpha: float = 0.05
    n_resamples: int = 2000
    posthoc: str = "nemenyi"

    def __post_init__(self) -> None:
        if not 0.0 < self.alpha < 1.0:
            raise ConfigError(f"alpha must be between 0 and 1, not {self.alpha!r}")
        if self.n_resamples < 1:
            raise ConfigError(f"n_resamples must be a whole number >= 1, not {self.n_resamples!r}")
        if self.posthoc not in POSTHOC_TESTS:
            raise ConfigError(f"posthoc must be one of {', '.join(POSTHOC_TESTS)}, not {self.posthoc!r}")

    @classmethod
    def from_params(cls, params: Mapping[str, Any], source: str = "params.yaml") -> ReportConfig:
        """The ``report`` section of a parsed ``params.yaml`` (absent: the defaults); errors name
        ``source``."""
        return config_from_dict(cls, params.get("report"), where=f"{source} report: ")
