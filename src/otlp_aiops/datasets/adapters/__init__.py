"""Adapters that turn public labelled failure datasets into the raw dataset layout of DESIGN.md
(``otlp/`` + ``incidents.parquet`` + optional ``topology.json`` + ``dataset.json``).

An adapter is a module with a ``convert`` function (the :class:`DatasetAdapter` protocol);
:data:`ADAPTERS` maps the adapter name to its module. Which adapter converts a known dataset is
said once, by the dataset's ``adapter:`` in ``datasets/registry.yaml``. docs/extending.md walks
through adding one.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from otlp_aiops.datasets.adapters.common import AdapterError, ImportSummary

ADAPTERS: dict[str, str] = {
    "nezha": "otlp_aiops.datasets.adapters.nezha",
    "rcd-sockshop": "otlp_aiops.datasets.adapters.rcd_sockshop",
    "petshop": "otlp_aiops.datasets.adapters.petshop",
    "rcaeval": "otlp_aiops.datasets.adapters.rcaeval",
    "otlp": "otlp_aiops.datasets.adapters.otlp",  # your own OTLP export + incident file (docs/own-data.md)
}

__all__ = ["ADAPTERS", "AdapterError", "DatasetAdapter", "ImportSummary", "adapter_module", "import_dataset"]


@runtime_checkable
class DatasetAdapter(Protocol):
    """What an adapter module provides: ``convert`` reads the source folder ``src`` in its original
    layout and writes the raw dataset folder ``out`` (through
    :class:`~otlp_aiops.datasets.adapters.common.RawDatasetWriter`: atomic, rejected rows counted),
    raising :class:`AdapterError` naming the file and the fix when the layout is not the expected
    one. ``options`` are the adapter's own keyword settings (e.g. ``include_construct``)."""

    def convert(self, src: Path, out: Path, *, name: str, **options: Any) -> ImportSummary: ...


def dataset_adapters() -> dict[str, str]:
    """Known dataset name -> adapter name, read from the dataset registry (``registry.yaml``)."""
    from otlp_aiops.datasets.registry import load_registry

    return {name: entry.adapter for name, entry in load_registry().items()}


def adapter_module(adapter: str) -> DatasetAdapter:
    """The module of adapter ``adapter`` (an :data:`ADAPTERS` key)."""
    if adapter not in ADAPTERS:
        raise AdapterError(f"unknown adapter {adapter!r}; known: {', '.join(sorted(ADAPTERS))}")
    return importlib.import_module(ADAPTERS[adapter])  # type: ignore[return-value]


def import_dataset(
    name: str, src: str | Path, out: str | Path, *, adapter: str | None = None, **options: Any
) -> ImportSummary:
    """Convert the source folder ``src`` of dataset (or adapter) ``name`` into ``out``."""
    if adapter is None:
        datasets = dataset_adapters()
        adapter = datasets.get(name, name)
        if adapter not in ADAPTERS:
            known = sorted(set(ADAPTERS) | set(datasets))
            raise AdapterError(f"unknown dataset or adapter {name!r}; known: {', '.join(known)}")
    module = adapter_module(adapter)
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
