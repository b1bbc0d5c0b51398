"""Build configuration for the optional C accelerator; everything else lives in pyproject.toml.

``otlp_aiops.otlp._wire`` decodes OTLP protobuf spans and log records from wire bytes. It is
optional: if it cannot be compiled (no C compiler), ingest uses the pure-Python decoder, which
produces identical tables, more slowly. Set OTLP_AIOPS_PURE_PYTHON=1 to use the Python decoder
even when the extension is built.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "otlp_aiops.otlp._wire",
            ["src/otlp_aiops/otlp/_wire.c"],
            optional=True,
            extra_compile_args=["-O2", "-Wall", "-Wno-unused-label"],
        )
    ]
)
