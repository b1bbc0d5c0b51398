"""otlp-aiops: a research workbench for AIOps on OpenTelemetry data."""

__version__ = "0.1.0"
