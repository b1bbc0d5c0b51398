"""Adapters that turn public labelled failure datasets into the raw dataset layout of DESIGN.md
(``otlp/`` + ``incidents.parquet`` + optional ``topology.json`` + ``dataset.json``).

Each adapter is ``convert(src, out, *, name=...) -> ImportSummary``; :data:`ADAPTERS` maps the
adapter name to its module, :data:`DATASET_ADAPTERS` a known dataset name to its adapter.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from otlp_aiops.datasets.adapters.common import AdapterError, ImportSummary

ADAPTERS: dict[str, str] = {
    "nezha": "otlp_aiops.datasets.adapters.nezha",
    "rcd-sockshop": "otlp_aiops.datasets.adapters.rcd_sockshop",
    "petshop": "otlp_aiops.datasets.adapters.petshop",
    "rcaeval": "otlp_aiops.datasets.adapters.rcaeval",
    "otlp": "otlp_aiops.datasets.adapters.otlp",  # your own OTLP export + incident file (docs/own-data.md)
}
DATASET_ADAPTERS: dict[str, str] = {
    "nezha-tt": "nezha",
    "rcd-sockshop": "rcd-sockshop",
    "petshop": "petshop",
}

__all__ = ["ADAPTERS", "DATASET_ADAPTERS", "AdapterError", "ImportSummary", "import_dataset"]


def import_dataset(name: str, src: str | Path, out: str | Path, *, adapter: str | None = None, **options: Any) -> ImportSummary:
    """Convert the source folder ``src`` of dataset (or adapter) ``name`` into ``out``."""
    adapter = adapter or DATASET_ADAPTERS.get(name, name)
    if adapter not in ADAPTERS:
        known = sorted(set(ADAPTERS) | set(DATASET_ADAPTERS))
        raise AdapterError(f"unknown dataset or adapter {name!r}; known: {', '.join(known)}")
    module = importlib.import_module(ADAPTERS[adapter])
    src = Path(src)
    if not src.is_dir():
        raise AdapterError(f"{src}: no such folder")
    from otlp_aiops.outputs import OutputError, check_output_vs_inputs

    try:  # an `out` that is, holds or lies inside the source would delete or pollute it
        check_output_vs_inputs(out, [src])
    except OutputError as e:
        raise AdapterError(str(e)) from None
    if adapter == "otlp":  # reports its own progress (bytes copied)
        return module.convert(src, Path(out), name=name, **options)
    from otlp_aiops import progress

    with progress.task(f"import {name}", unit="files"):  # elapsed time; a log line every 10 s
        return module.convert(src, Path(out), name=name, **options)
