"""Anomaly detectors behind one contract (:class:`otlp_aiops.detect.base.Detector`)."""
