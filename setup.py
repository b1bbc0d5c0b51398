"""Build configuration for the optional C accelerators; everything else lives in pyproject.toml.

``otlp_aiops.otlp._wire`` decodes OTLP protobuf spans and log records from wire bytes, and
``otlp_aiops.otlp._wire_metrics`` metric data points and exemplars. Both are optional: if they
cannot be compiled (no C compiler), ingest uses the pure-Python decoder, which produces identical
tables, more slowly. Set OTLP_AIOPS_PURE_PYTHON=1 to use the Python decoder even when they are built.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "otlp_aiops.otlp._wire",
            ["src/otlp_aiops/otlp/_wire.c"],
            depends=["src/otlp_aiops/otlp/_wire_pb.h", "src/otlp_aiops/otlp/_wire_json.h"],
            optional=True,
            extra_compile_args=["-O3", "-Wall", "-Wno-unused-label"],
        ),
        Extension(
            "otlp_aiops.otlp._wire_metrics",
            ["src/otlp_aiops/otlp/_wire_metrics.c"],
            depends=["src/otlp_aiops/otlp/_wire_pb.h", "src/otlp_aiops/otlp/_wire_json.h"],
            optional=True,
            extra_compile_args=["-O3", "-Wall", "-Wno-unused-label", "-Wno-unused-function"],
        ),
    ]
)
