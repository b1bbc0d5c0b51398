"""The optional C decoder (``_wire``, built from ``_wire.c`` at install time when a compiler exists).

``accel.wire`` is the module, or None when it is not built or ``OTLP_AIOPS_PURE_PYTHON`` is set;
the decoders check it at call time, so tests can switch implementations by setting it.
"""

from __future__ import annotations

import os
from typing import Any


def _load() -> Any:
    if os.environ.get("OTLP_AIOPS_PURE_PYTHON"):
        return None
    try:
        from otlp_aiops.otlp import _wire
    except ImportError:
        return None
    return _wire


wire: Any = _load()


def implementation() -> str:
    """ "c" or "python": which decoder ingest uses for protobuf and JSON spans and logs."""
    return "c" if wire is not None else "python"
