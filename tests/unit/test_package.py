"""Packaging promises: the core imports without the heavy ML stack, and the CLI exposes every stage."""

from __future__ import annotations

import subprocess
import sys

from typer.testing import CliRunner

from otlp_aiops.cli import app


def test_core_imports_without_heavy_dependencies():
    code = (
        "import sys, otlp_aiops.otlp.ingest, otlp_aiops.otlp.export, otlp_aiops.datasets.simulator, otlp_aiops.cli; "
        "heavy = [m for m in ('torch', 'torch_geometric', 'mlflow', 'dowhy', 'sklearn', 'dvc') if m in sys.modules]; "
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_cli_lists_the_stages():
    result = CliRunner().invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in ("ingest", "simulate"):
        assert command in result.output


def test_c_decoder_is_built_where_required():
    """The C decoder is optional (no compiler: pure Python, same tables), so a build failure would
    pass silently; CI sets OTLP_AIOPS_REQUIRE_C=1 to make it fail instead."""
    import os

    from otlp_aiops.otlp import accel

    if os.environ.get("OTLP_AIOPS_REQUIRE_C") == "1":
        assert accel.implementation() == "c", (
            "the C decoder (_wire) was not built: see the pip install output"
        )
        assert accel.metrics_implementation() == "c", (
            "the C metric decoder (_wire_metrics) was not built: see the pip install output"
        )
    else:
        assert accel.implementation() in ("c", "python")
        assert accel.metrics_implementation() in ("c", "python")
