"""The incident schedule: never overlapping, fault-free gaps, balanced fault types, sensible targets."""

from __future__ import annotations

import itertools
from collections import Counter

import pytest

from otlp_aiops.datasets.simulator import DEFAULT_FAULT_TYPES, SimulatorConfig
from otlp_aiops.datasets.simulator.generate import build_model
from otlp_aiops.datasets.simulator.schedule import FAULT_INDICATOR


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("system", ["online-boutique", "train-ticket", "random:40"])
def test_events_never_overlap_and_keep_fault_free_gaps(seed: int, system: str) -> None:
    cfg = SimulatorConfig.from_dict({"seed": seed, "system": system})
    topo, sched = build_model(cfg)
    events = sorted(
        [(i.start, i.end, "incident") for i in sched.incidents]
        + [(d.start, d.end, d.kind) for d in sched.disturbances]
    )
    assert len(sched.incidents) == 40 and len(sched.disturbances) == 8
    assert events[0][0] >= cfg.warmup
    assert events[-1][1] <= cfg.seconds - cfg.min_gap
    for (a0, a1, _), (b0, _, _) in itertools.pairwise(events):
        assert a0 < a1 and b0 - a1 >= cfg.min_gap
    lo, hi = cfg.incident_duration
    assert all(lo <= i.end - i.start <= hi for i in sched.incidents)
    assert all(cfg.severity[0] <= i.severity <= cfg.severity[1] for i in sched.incidents)
    # fault types as balanced as 40 / 7 allows
    counts = Counter(i.fault_type for i in sched.incidents)
    assert set(counts) == set(DEFAULT_FAULT_TYPES) and max(counts.values()) - min(counts.values()) <= 1
    services = {s.name: s for s in topo.services}
    for i in sched.incidents:
        assert 0 <= i.replica < services[i.service].replicas
        if i.fault_type in ("code_exception", "code_return"):
            assert services[i.service].instrumented and topo.op(i.operation).service == i.service
            assert i.indicator is not None and i.indicator.endswith(topo.op(i.operation).name)
        else:
            assert i.indicator == FAULT_INDICATOR[i.fault_type]
    for d in sched.disturbances:
        if d.kind == "traffic_surge":
            assert d.service == topo.entry_service and 1.5 <= d.magnitude <= 2.5
        else:
            assert services[d.service].instrumented and d.magnitude is None


def test_schedule_is_a_function_of_seed_and_settings() -> None:
    cfg = SimulatorConfig.from_dict({"seed": 3})
    _, a = build_model(cfg)
    _, b = build_model(cfg)
    assert a == b
    _, c = build_model(SimulatorConfig.from_dict({"seed": 4}))
    assert [i.start for i in c.incidents] != [i.start for i in a.incidents]


def test_fault_types_and_zero_counts() -> None:
    _, s = build_model(
        SimulatorConfig.from_dict({"fault_types": ["pod_kill"], "incidents": 5, "disturbances": 0})
    )
    assert [i.fault_type for i in s.incidents] == ["pod_kill"] * 5 and s.disturbances == []
    _, s = build_model(SimulatorConfig.from_dict({"incidents": 0, "disturbances": 0}))
    assert s.incidents == [] and s.disturbances == []


@pytest.mark.parametrize("system", ["online-boutique", "train-ticket"])
def test_code_return_hits_an_operation_that_makes_calls(system: str) -> None:
    from otlp_aiops.datasets.simulator.topology import iter_calls

    cfg = SimulatorConfig.from_dict(
        {"system": system, "fault_types": ["code_return"], "incidents": 20, "disturbances": 0, "seed": 2}
    )
    topo, s = build_model(cfg)
    assert len(s.incidents) == 20
    services = {sv.name: sv for sv in topo.services}
    for i in s.incidents:
        op = topo.op(i.operation)
        assert services[i.service].instrumented and op.service == i.service
        assert i.indicator is not None and i.indicator.endswith(op.name)  # the code region: its span name
        # an operation with downstream calls wherever the service has one (a wrong result skips them)
        if any(any(True for _ in iter_calls(o.steps)) for o in topo.operations if o.service == i.service):
            assert any(True for _ in iter_calls(op.steps)), i
