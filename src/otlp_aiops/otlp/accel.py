"""The optional C decoders (``_wire`` for spans and log records, ``_wire_metrics`` for metric data
points; built from ``_wire.c`` / ``_wire_metrics.c`` at install time when a compiler exists).

``accel.wire`` and ``accel.wire_metrics`` are the modules, or None when they are not built or
``OTLP_AIOPS_PURE_PYTHON`` is set; the decoders check them at call time, so tests can switch
implementations by setting them.
"""

from __future__ import annotations

import importlib
import os
from typing import Any


def _load(name: str = "_wire") -> Any:
    if os.environ.get("OTLP_AIOPS_PURE_PYTHON"):
        return None
    try:
        return importlib.import_module(f"otlp_aiops.otlp.{name}")
    except ImportError:
        return None


wire: Any = _load()
wire_metrics: Any = _load("_wire_metrics")


def implementation() -> str:
    """ "c" or "python": which decoder ingest uses for protobuf and JSON spans and logs."""
    return "c" if wire is not None else "python"


def metrics_implementation() -> str:
    """ "c" or "python": which decoder ingest uses for metric data points (protobuf, and JSON text
    in the common form)."""
    return "c" if wire_metrics is not None else "python"
