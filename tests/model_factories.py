"""Synthetic cases with a known root cause for model tests: a small service tree whose root cause
deviates strongly after the onset and whose callers deviate more weakly (the fault propagates from
callee to caller), on otherwise stationary noise."""

from __future__ import annotations

import numpy as np

from otlp_aiops.features.data import CaseData, DetectionData, ReferenceData, ServiceGraph

SERVICES = ("frontend", "checkout", "cart", "payment", "currency", "redis")
# caller -> callee
EDGES = (
    ("frontend", "checkout"),
    ("frontend", "cart"),
    ("checkout", "payment"),
    ("checkout", "currency"),
    ("cart", "redis"),
)
FEATURES = ("span.server_latency_p90", "span.server_error_rate", "span.server_request_rate",
            "metric.cpu.mean", "metric.memory.mean")
KINDS = ("latency", "errors", "traffic", "cpu", "memory")
FAULT_FEATURE = {"latency": 0, "errors": 1, "cpu": 3, "memory": 4}
T0 = np.datetime64("2026-01-05T08:00:00", "ns")


def graph() -> ServiceGraph:
    return ServiceGraph(SERVICES, EDGES, "traces")


def _noise(rng: np.random.Generator, n: int) -> np.ndarray:
    base = np.array([100.0, 0.01, 20.0, 0.3, 200.0])
    scale = np.array([5.0, 0.005, 1.0, 0.02, 2.0])
    return base + scale * rng.standard_normal((n, len(SERVICES), len(FEATURES)))


def _callers_chain(root: str) -> list[str]:
    out, cur = [], root
    while True:
        parents = [a for a, b in EDGES if b == cur]
        if not parents:
            return out
        cur = parents[0]
        out.append(cur)


def make_case(root: str = "payment", fault: str = "latency", *, seed: int = 0, before: int = 20,
              after: int = 20, reference: int = 40, magnitude: float = 12.0, case_id: str | None = None,
              window_seconds: float = 15.0) -> CaseData:
    rng = np.random.default_rng(seed)
    T = before + after
    values = _noise(rng, T)
    f = FAULT_FEATURE[fault]
    s = SERVICES.index(root)
    scale = np.array([5.0, 0.005, 1.0, 0.02, 2.0])[f]
    values[before:, s, f] += magnitude * scale
    if fault in ("latency", "errors"):
        for k, caller in enumerate(_callers_chain(root), start=1):  # weaker upstream
            values[before:, SERVICES.index(caller), f] += magnitude * scale / (2.0 * k + 1)
    times = T0 + np.arange(T) * np.timedelta64(int(window_seconds), "s")
    ref = _noise(rng, reference)
    ref_times = times[0] - np.arange(reference, 0, -1) * np.timedelta64(int(window_seconds), "s")
    return CaseData(
        case_id=case_id or f"{root}-{fault}-{seed}", dataset="synthetic", services=SERVICES,
        features=FEATURES, feature_kinds=KINDS, times=times, values=values, onset=before,
        reference_times=ref_times, reference=ref, graph=graph(), symptom_service="frontend",
        root_cause_service=root, root_cause_indicator=FEATURES[f], fault_type=fault,
        start_time=times[before], window_seconds=window_seconds,
    )


def make_cases(n: int = 12, *, seed: int = 0, magnitude: float = 12.0) -> list[CaseData]:
    rng = np.random.default_rng(seed)
    roots = [s for s in SERVICES if s != "frontend"]
    faults = list(FAULT_FEATURE)
    return [make_case(roots[rng.integers(len(roots))], faults[rng.integers(len(faults))],
                      seed=seed * 1000 + i, magnitude=magnitude, case_id=f"case-{i:03d}")
            for i in range(n)]


def make_reference(n: int = 200, *, seed: int = 0) -> ReferenceData:
    rng = np.random.default_rng(seed)
    times = T0 - np.arange(n, 0, -1) * np.timedelta64(15, "s")
    return ReferenceData("synthetic", SERVICES, FEATURES, KINDS, times, _noise(rng, n), graph(),
                         symptom_service="frontend", window_seconds=15.0, segment=np.zeros(n, dtype=np.int64))


def make_detection(n: int = 600, *, seed: int = 0, incidents: tuple[tuple[int, int], ...] = ((300, 330), (450, 470)),
                   magnitude: float = 8.0) -> DetectionData:
    """A flat series: the first half fault-free (training), two labelled incidents later on."""
    rng = np.random.default_rng(seed)
    v = _noise(rng, n)
    # a slow daily-like swing shared by all services, so a detector must learn correlations
    swing = np.sin(np.arange(n) * 2 * np.pi / 120.0)
    v[:, :, 2] += 3.0 * swing[:, None]
    label = np.zeros(n, dtype=np.int8)
    incident = np.array([""] * n, dtype=object)
    for k, (a, b) in enumerate(incidents):
        v[a:b, 3, 0] += magnitude * 5.0
        v[a:b, 2, 3] += magnitude * 0.02
        label[a:b] = 1
        incident[a:b] = f"inc-{k}"
    fault_free = label == 0
    for a, b in incidents:
        fault_free[max(0, a - 5): b + 5] = False
    X = v.reshape(n, -1)
    columns = tuple(f"{s}|{f}" for s in SERVICES for f in FEATURES)
    times = T0 + np.arange(n) * np.timedelta64(15, "s")
    return DetectionData("synthetic", columns, times, X, label, incident, fault_free,
                         np.zeros(n, dtype=np.int64), window_seconds=15.0)
