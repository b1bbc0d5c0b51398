"""The ``features`` stage: ingest tables + ground truth -> the feature store of one dataset
(``data/features/<dataset>/``, every file described in docs/features.md), and the readers of that store.

Modules (importing the package imports none of them):

* :mod:`~otlp_aiops.features.build`: the stage itself, :func:`build_features`, in named steps over
  one DuckDB connection; :class:`FeaturesError` for input it cannot use.
* :mod:`~otlp_aiops.features.tables`: the SQL of the span, metric, log and edge feature tables.
* :mod:`~otlp_aiops.features.traces`: per-trace tables (call edges, operations, trace services) and
  the trace-structure features.
* :mod:`~otlp_aiops.features.logs`: log-key, span-name mix and pattern features.
* :mod:`~otlp_aiops.features.drain`: the Drain log-template miner.
* :mod:`~otlp_aiops.features.kinds`: which feature kind (latency, errors, cpu, …) a feature is.
* :mod:`~otlp_aiops.features.cases`: incidents, the window grid and labels, the symptom service and
  each incident's case arrays.
* :mod:`~otlp_aiops.features.store`: reads the store back into the objects of ``data``
  (``load_cases``, ``load_reference``, ``load_detection``).
* :mod:`~otlp_aiops.features.data`: those in-memory objects (``CaseData``, ``ReferenceData``, …).
* :mod:`~otlp_aiops.features.config`: the stage's settings (``FeaturesConfig``).
* :mod:`~otlp_aiops.features.cli`: ``otlp-aiops features build``.
"""
