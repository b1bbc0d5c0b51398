"""The stage runners: typed settings in, seeds × offsets × variants × folds fanned out through the
executor, results and metrics written, tracking called; one function per stage.

* :mod:`~otlp_aiops.stages.config` — ``BenchmarkConfig`` (params.yaml ``benchmark:``) and
  ``StageSettings``: the one place a parsed params.yaml is split into typed settings;
* :mod:`~otlp_aiops.stages.rca` — ``rca_stage`` (``run_rca`` from params), one ``RankerJob`` per seed;
* :mod:`~otlp_aiops.stages.detect` — ``detect_stage`` (``run_detect`` from params), one ``DetectorJob``
  per seed;
* :mod:`~otlp_aiops.stages.common` — where a stage writes, the writers, the ``Tracking`` handle;
* :mod:`~otlp_aiops.stages.entry` — the command line of ``pipelines/rca.py`` / ``pipelines/detect.py``,
  also called by ``otlp-aiops rca`` / ``detect``.

Nothing is imported here, so importing one module (the report reads ``stages.config``) loads only it.
"""
