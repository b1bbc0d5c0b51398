"""Settings of the ``ingest`` stage: one frozen dataclass, read from ``params.yaml`` section ``ingest``
(an unknown key is an error, as for every other section)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from otlp_aiops.config import ConfigError, config_from_dict
from otlp_aiops.otlp.framing import DEFAULT_MAX_EMPTY_FRAMES, DEFAULT_MAX_PART_BYTES, Limits


@dataclass(frozen=True)
class IngestConfig:
    """``workers``: worker processes converting files in parallel (null: the CPU count);
    ``batch_rows``: records per Parquet row group (bounds memory); ``max_part_bytes`` and
    ``max_empty_frames``: the :class:`~otlp_aiops.otlp.framing.Limits` on one part of a file;
    ``block_bytes`` (executor kind ray only): an uncompressed JSON-lines or length-prefixed file
    larger than this is cut at record boundaries into blocks converted by tasks of their own."""

    workers: int | None = None
    batch_rows: int = 32768
    max_part_bytes: int = DEFAULT_MAX_PART_BYTES
    max_empty_frames: int = DEFAULT_MAX_EMPTY_FRAMES
    block_bytes: int = 256 << 20  # = otlp_aiops.otlp.ingest.DEFAULT_BLOCK_BYTES

    def __post_init__(self) -> None:
        if self.workers is not None and self.workers < 1:
            raise ConfigError(
                f"workers must be a whole number >= 1 (or null: the CPU count), not {self.workers!r}"
            )
        if self.batch_rows < 1:
            raise ConfigError(f"batch_rows must be a whole number >= 1, not {self.batch_rows!r}")
        for name in ("max_part_bytes", "max_empty_frames", "block_bytes"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be a whole number >= 1, not {getattr(self, name)!r}")

    @property
    def limits(self) -> Limits:
        return Limits(max_part_bytes=self.max_part_bytes, max_empty_frames=self.max_empty_frames)

    @classmethod
    def from_params(cls, params: Mapping[str, Any], source: str = "params.yaml") -> IngestConfig:
        """The ``ingest`` section of a parsed ``params.yaml`` (absent: the defaults); errors name
        ``source``."""
        return config_from_dict(cls, params.get("ingest"), where=f"{source} ingest: ")
