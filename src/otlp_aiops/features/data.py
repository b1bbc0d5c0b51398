"""The in-memory form of the feature tables that every detector and root-cause method reads.

The ``features`` stage writes these to ``data/features/<dataset>/`` once; ``load_cases``,
``load_reference`` and ``load_detection`` (in :mod:`otlp_aiops.features.store`) read them back.
Models never read Parquet or SQL themselves: they take these objects.

Axes and conventions
--------------------
* ``services``: node order, the same in every array of one dataset.
* ``features``: feature names ``<source>.<name>`` (e.g. ``span.server_latency_p99``,
  ``metric.container_cpu_usage.mean``, ``log.severity_error``); ``feature_kinds`` gives, per
  feature, one of :data:`FEATURE_KINDS`, so methods that transfer between datasets can select
  "latency", "errors", "cpu", "memory", "traffic" without knowing each dataset's names.
* ``values``: float64, NaN where a service has no value for a feature in a window (a service without
  traces has NaN span features; a feature no service has is not a column).
* times: ``datetime64[ns]`` UTC window starts.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

FEATURE_KINDS = ("latency", "errors", "traffic", "cpu", "memory", "saturation", "logs", "other")


@dataclass(frozen=True, eq=False)
class ServiceGraph:
    """The service dependency graph: directed caller → callee edges over ``services``."""

    services: tuple[str, ...]
    edges: tuple[tuple[str, str], ...]  # (caller, callee)
    source: str = "traces"  # traces | topology | traces+topology | none

    def edge_index(self) -> np.ndarray:
        """(2, E) int64 array of (caller, callee) node positions, the PyG ``edge_index`` layout."""
        pos = {s: i for i, s in enumerate(self.services)}
        if not self.edges:
            return np.zeros((2, 0), dtype=np.int64)
        return np.array([[pos[a] for a, _ in self.edges], [pos[b] for _, b in self.edges]], dtype=np.int64)

    def to_networkx(self):
        import networkx as nx

        g = nx.DiGraph()
        g.add_nodes_from(self.services)
        g.add_edges_from(self.edges)
        return g


@dataclass(frozen=True, eq=False)
class EdgeSeries:
    """Per call edge and window (the ``edge_windows`` table on a case's or the reference's windows):
    ``values[t, e, f]`` for the (caller, callee) ``pairs[e]`` and the columns ``features``
    (``calls``, ``errors``, ``error_rate``, ``gap_mean``, ``gap_p50`` …); NaN where unknown, counts 0
    in a window with data but no call. ``reference``: the same over a case's reference windows."""

    pairs: tuple[tuple[str, str], ...]
    features: tuple[str, ...]
    values: np.ndarray  # (T, E, Fe) float64
    reference: np.ndarray | None = None  # (R, E, Fe) float64 (cases only)


@dataclass(frozen=True, eq=False)
class CaseData:
    """One labelled incident as a method sees it.

    ``values[t, s, f]`` covers the case window ``[start - before, start + after)``; ``onset`` is the
    index of the first window at or after the (detection-offset-shifted) start, so
    ``values[:onset]`` is what came before the alarm and ``values[onset:]`` what came after.
    ``reference`` is the fault-free stretch this case may learn from (usually the windows before the
    start that overlap no incident; for datasets that ship a separate normal recording per case, that
    recording). Labels (``root_cause_*``, ``fault_type``) are for evaluation only: a ranker must not
    read them.
    """

    case_id: str
    dataset: str
    services: tuple[str, ...]
    features: tuple[str, ...]
    feature_kinds: tuple[str, ...]
    times: np.ndarray  # (T,) datetime64[ns]
    values: np.ndarray  # (T, S, F) float64
    onset: int
    reference_times: np.ndarray  # (R,) datetime64[ns]
    reference: np.ndarray  # (R, S, F) float64
    graph: ServiceGraph
    symptom_service: str | None = None  # where the alarm fires (the frontend / SLO service)
    root_cause_service: str | None = None
    root_cause_indicator: str | None = None
    fault_type: str | None = None
    start_time: np.datetime64 | None = None
    window_seconds: float = 60.0
    extra: dict = field(default_factory=dict)
    edges: EdgeSeries | None = None  # call-edge series where the dataset has traces (else None)

    def before(self) -> np.ndarray:
        return self.values[: self.onset]

    def after(self) -> np.ndarray:
        return self.values[self.onset :]

    def baseline(self) -> np.ndarray:
        """The fault-free data a method compares the post-onset windows against: the reference
        windows when there are any, else the pre-onset part of the case window."""
        return self.reference if len(self.reference) else self.before()


@dataclass(frozen=True, eq=False)
class ReferenceData:
    """All fault-free windows of a dataset (no incident within a margin), time-ordered, in the same
    (time, service, feature) layout as the cases: what normal models are fitted on."""

    dataset: str
    services: tuple[str, ...]
    features: tuple[str, ...]
    feature_kinds: tuple[str, ...]
    times: np.ndarray  # (N,) datetime64[ns]
    values: np.ndarray  # (N, S, F) float64
    graph: ServiceGraph
    symptom_service: str | None = None
    window_seconds: float = 60.0
    segment: np.ndarray | None = None  # (N,) int: contiguous stretches share a number
    edges: EdgeSeries | None = None  # call-edge series over ``times`` where the dataset has traces


@dataclass(frozen=True, eq=False)
class DetectionData:
    """The flat, time-ordered (window × feature) matrix that anomaly detectors take.

    ``columns`` name the matrix columns (``<service>|<feature>``); ``label`` is 1 where a window
    overlaps a labelled incident; ``incident`` gives its id (or ""); ``fault_free`` marks windows far
    enough from every incident to train and to count false alarms on; ``segment`` numbers contiguous
    stretches (a sequence model must not slide across a gap).
    """

    dataset: str
    columns: tuple[str, ...]
    times: np.ndarray  # (N,) datetime64[ns]
    X: np.ndarray  # (N, D) float64
    label: np.ndarray  # (N,) int8
    incident: np.ndarray  # (N,) object (str)
    fault_free: np.ndarray  # (N,) bool
    segment: np.ndarray  # (N,) int64
    window_seconds: float = 60.0
