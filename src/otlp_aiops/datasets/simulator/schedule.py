"""When faults and benign disturbances happen: one timeline of non-overlapping events after a
fault-free warm-up, with at least ``min_gap`` fault-free seconds between any two events."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from otlp_aiops.datasets.simulator.config import ConfigError, SimulatorConfig
from otlp_aiops.datasets.simulator.topology import Topology, iter_calls

CODE_FAULTS = ("code_exception", "code_return")  # faults in the deployed code of one operation

# The metric (or, for code faults, the operation's server span name: the code region) where each
# fault shows first. Network faults leave no trace in the victim's own metrics: no indicator.
FAULT_INDICATOR = {
    "cpu_hog": "container.cpu.usage",
    "memory_leak": "container.memory.usage",
    "disk_io_slow": "system.disk.operation_time",
    "pod_kill": "k8s.container.restarts",
    "network_delay": None,
    "packet_loss": None,
}


@dataclass
class Incident:
    incident_id: str
    fault_type: str
    service: str
    replica: int  # which pod of the service (code faults hit every pod)
    start: int  # seconds since the start of the recording
    end: int
    severity: float
    indicator: str | None
    operation: str | None = None  # operation key, for code faults
    params: dict[str, Any] = field(default_factory=dict)  # filled in by the cluster model
    pod: str | None = None  # the pod it hit (filled in by the cluster model)


@dataclass
class Disturbance:
    disturbance_id: str
    kind: str  # traffic_surge | deploy_restart
    service: str
    start: int
    end: int
    magnitude: float | None  # request-rate factor for a surge
    description: str = ""


@dataclass
class Schedule:
    incidents: list[Incident]
    disturbances: list[Disturbance]


def _balanced(choices: tuple[str, ...], n: int, rng: np.random.Generator) -> list[str]:
    """n items cycling through choices (counts differ by at most one), in random order."""
    out = [choices[i % len(choices)] for i in range(n)]
    order = rng.permutation(n)
    return [out[i] for i in order]


def make_schedule(cfg: SimulatorConfig, topo: Topology, rng: np.random.Generator) -> Schedule:
    n_inc, n_dist = cfg.incidents, cfg.disturbances
    n = n_inc + n_dist
    if n == 0:
        return Schedule([], [])
    lo, hi = (int(x) for x in cfg.incident_duration)
    dlo, dhi = (int(x) for x in cfg.disturbance_duration)
    is_incident = np.zeros(n, bool)
    is_incident[rng.permutation(n)[:n_inc]] = True
    durations = np.where(is_incident, rng.integers(lo, hi + 1, n), rng.integers(dlo, dhi + 1, n))
    gap = int(cfg.min_gap)
    avail = cfg.seconds - int(cfg.warmup)
    need = int(durations.sum()) + n * gap
    if need > avail:
        mean_need = n_inc * (lo + hi) / 2 + n_dist * (dlo + dhi) / 2 + n * gap + cfg.warmup
        raise ConfigError(
            f"{n_inc} incidents and {n_dist} disturbances do not fit in {cfg.seconds} s: they need about "
            f"{mean_need:.0f} s (warm-up {cfg.warmup:g} s, min_gap {gap} s between events); raise duration "
            "or "
            "lower incidents / disturbances / incident_duration / min_gap"
        )
    # gaps: one before the first event (>= 0 after the warm-up), one after each event (>= min_gap)
    slack = avail - need
    share = rng.dirichlet(np.ones(n + 1)) * slack
    extra = np.floor(share).astype(np.int64)
    extra[-1] += slack - int(extra.sum())
    t = int(cfg.warmup) + int(extra[0])
    starts = np.empty(n, np.int64)
    for i in range(n):
        starts[i] = t
        t += int(durations[i]) + gap + int(extra[i + 1])

    incidents = _incidents(
        cfg,
        topo,
        rng,
        [(int(s), int(d)) for s, d, f in zip(starts, durations, is_incident, strict=False) if f],
    )
    disturbances = _disturbances(
        cfg,
        topo,
        rng,
        [(int(s), int(d)) for s, d, f in zip(starts, durations, is_incident, strict=False) if not f],
    )
    return Schedule(incidents, disturbances)


def _incidents(
    cfg: SimulatorConfig, topo: Topology, rng: np.random.Generator, slots: list[tuple[int, int]]
) -> list[Incident]:
    types = _balanced(cfg.fault_types, len(slots), rng)
    any_service = [s.name for s in topo.services]
    instrumented = [s.name for s in topo.services if s.instrumented]
    out = []
    for k, ((start, dur), ftype) in enumerate(zip(slots, types, strict=True)):
        pool = instrumented if ftype in CODE_FAULTS else any_service
        service = pool[int(rng.integers(len(pool)))]
        svc = topo.service(service)
        replica = int(rng.integers(svc.replicas))
        severity = float(rng.uniform(*cfg.severity))
        operation = None
        indicator = FAULT_INDICATOR.get(ftype)
        if ftype in CODE_FAULTS:
            ops = [o for o in topo.operations if o.service == service]
            if ftype == "code_return":
                # a wrong result shows in the calls the operation makes: prefer one that makes calls
                ops = [o for o in ops if any(True for _ in iter_calls(o.steps))] or ops
            op = ops[int(rng.integers(len(ops)))]
            operation = op.key
            indicator = span_name(topo, op.key)
        out.append(
            Incident(
                f"inc-{k + 1:04d}",
                ftype,
                service,
                replica,
                start,
                start + dur,
                round(severity, 4),
                indicator,
                operation,
            )
        )
    return out


def _disturbances(
    cfg: SimulatorConfig, topo: Topology, rng: np.random.Generator, slots: list[tuple[int, int]]
) -> list[Disturbance]:
    kinds = _balanced(cfg.disturbance_kinds, len(slots), rng)
    entry = topo.entry_service
    deployable = [s.name for s in topo.services if s.instrumented]
    out = []
    for k, ((start, dur), kind) in enumerate(zip(slots, kinds, strict=True)):
        if kind == "traffic_surge":
            mag = round(float(rng.uniform(1.5, 2.5)), 3)
            out.append(
                Disturbance(
                    f"dist-{k + 1:04d}",
                    kind,
                    entry,
                    start,
                    start + dur,
                    mag,
                    f"request rate x{mag:g} at {entry} (a marketing e-mail, not a fault)",
                )
            )
        else:
            service = deployable[int(rng.integers(len(deployable)))]
            out.append(
                Disturbance(
                    f"dist-{k + 1:04d}",
                    kind,
                    service,
                    start,
                    start + dur,
                    None,
                    f"rolling restart of {service} (new pods, same version)",
                )
            )
    return out


def span_name(topo: Topology, op_key: str) -> str:
    """The name of the server span of an operation (what a trace-based ranker reports)."""
    op = topo.op(op_key)
    svc = topo.service(op.service)
    if svc.protocol == "grpc" and svc.rpc_service:
        return f"{svc.rpc_service}/{op.name}"
    return op.name


def wrong_path_template(topo: Topology, op_key: str) -> str:
    """The log line an operation writes on the wrong code path of a ``code_return`` fault, as a
    template (``<*>`` where each record has its own value): the fault's log-side indicator."""
    from otlp_aiops.datasets.simulator.logtext import WRONG_PATH

    return WRONG_PATH.format(name=span_name(topo, op_key), rid="<*>")
