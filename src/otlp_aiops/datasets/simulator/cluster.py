"""The state of every pod, second by second: which process runs, whether it takes traffic, its CPU,
memory, latency inflation, disk and network condition -- the mechanisms through which faults act.

Model (per pod, per second):

* load: the journeys' mean call counts times the actual Poisson request counts, shared over the
  pods of a service that take traffic;
* CPU demand = background + load x CPU per call + fault hog + JIT after a start + GC under memory
  pressure; utilisation = demand / CPU limit; usage is capped at the limit (throttling);
* latency inflation = 1 / (1 - min(utilisation, 0.95)) (a queueing factor) x cold start x GC pressure
  x slow drift; near and above the limit the container is also CFS-throttled: a request waits out
  part of a 100 ms quota period with probability ``throttle`` (an additive delay that hits even
  sub-millisecond operations);
* memory = warm working set (ramping up after a start) + GC heap saw-tooth driven by the allocation
  rate + a leak (fault); above the limit the pod is OOM-killed and restarts;
* pod kills, OOM kills and deploys end a process; a killed pod keeps getting requests (refused)
  until the endpoints catch up, a restarted one is routable once ready.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from otlp_aiops.datasets.simulator.config import SimulatorConfig
from otlp_aiops.datasets.simulator.schedule import Schedule, span_name, wrong_path_template
from otlp_aiops.datasets.simulator.topology import Topology, iter_calls

MIB = 1024 * 1024
BACKGROUND_UTIL = 0.05  # idle runtime CPU, as a fraction of the limit
UTIL_CAP = 0.95  # the queueing factor saturates here (x20)
CFS_PERIOD_MS = 100.0
BURST = 1.3  # demand within a period is burstier than the per-second mean
HOG_SCALE = 1.5  # a CPU hog of severity s wants s x 1.5 x the pod's CPU limit (saturating from s ~ 0.45)
DETECT_S = 3  # seconds a crashed pod stays in the endpoints
READY_S = 3  # seconds from process start to readiness
PREHISTORY_S = 300  # pods were started this long before the recording
POD_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"

RUNTIMES: dict[str, dict[str, float]] = {
    # cold: latency factor right after start; tau: its decay (s); alloc_kb: heap allocated per call
    "go": {"cold": 1.3, "tau": 10.0, "alloc_kb": 40.0, "gc": 1.0},
    "java": {"cold": 4.0, "tau": 40.0, "alloc_kb": 80.0, "gc": 1.0},
    "dotnet": {"cold": 3.0, "tau": 30.0, "alloc_kb": 60.0, "gc": 1.0},
    "nodejs": {"cold": 1.6, "tau": 15.0, "alloc_kb": 50.0, "gc": 1.0},
    "python": {"cold": 1.4, "tau": 10.0, "alloc_kb": 90.0, "gc": 1.0},
    "redis": {"cold": 1.1, "tau": 5.0, "alloc_kb": 0.0, "gc": 0.0},
    "mysql": {"cold": 2.5, "tau": 60.0, "alloc_kb": 0.0, "gc": 0.0},
}


@dataclass
class Incarnation:
    """One process lifetime of a pod (a container restart starts a new one in the same pod)."""

    slot: int
    pod: str
    resource: int  # index into ClusterState.resources (one per pod)
    start: int  # second the process starts (negative: before the recording)
    ready: int
    end: int | None  # second it stops (exclusive); None = still running at the end
    end_reason: str | None  # killed | OOMKilled | replaced
    restarts: int  # the container's restart count while this process runs


@dataclass
class PodResource:
    service: int
    slot: int
    pod: str
    node: str
    version: str


@dataclass
class Slot:
    """A replica position of a service; its pods come and go, the position stays."""

    index: int
    service: int
    replica: int
    cpu_limit: float  # cores
    mem_base: float  # bytes, warm working set
    mem_limit: float
    node: str


@dataclass
class ClusterState:
    n_seconds: int
    slots: list[Slot]
    resources: list[PodResource]
    incarnations: list[Incarnation]
    slot_service: np.ndarray
    inc_at: np.ndarray  # (slots, seconds) incarnation index, -1 when no process runs
    ready: np.ndarray  # (slots, seconds) serving requests
    routable: (
        np.ndarray
    )  # (slots, seconds) in the service's endpoints (ready, or crashed but not yet removed)
    route_table: list[np.ndarray]  # per service (seconds, replicas): routable slots, -1 padded
    route_count: list[np.ndarray]  # per service (seconds,)
    lat_factor: np.ndarray  # (slots, seconds) multiplies own processing time
    io_factor: np.ndarray  # (slots, seconds) multiplies own disk time
    net_delay_ms: np.ndarray  # (slots, seconds) added to every packet leaving the pod
    loss: np.ndarray  # (slots, seconds) packet loss on the pod's interface
    op_fault: np.ndarray  # (ops, seconds) probability that an operation throws (code fault)
    op_return: (
        np.ndarray
    )  # (ops, seconds) probability that an operation takes the wrong code path (code_return)
    throttle: np.ndarray  # (slots, seconds) share of CFS periods the container spends throttled
    util: np.ndarray  # (slots, seconds) CPU demand / limit
    cpu_usage: np.ndarray  # (slots, seconds) cores actually used
    mem: np.ndarray  # (slots, seconds) bytes
    heap: np.ndarray  # (slots, seconds) GC heap part of mem
    load: np.ndarray  # (slots, seconds) calls per second served
    alloc_total: np.ndarray  # (slots, seconds) MiB allocated since process start (GC counters)
    concurrency: np.ndarray  # (slots, seconds) requests in flight (Little's law)
    slots_of: list[list[int]] = field(default_factory=list)

    def resource_at(self, slot: np.ndarray, sec: np.ndarray) -> np.ndarray:
        inc = self.inc_at[slot, sec]
        res = self._inc_resource[np.maximum(inc, 0)]
        return np.where(inc >= 0, res, -1)

    def finalise(self) -> None:
        self._inc_resource = np.array([i.resource for i in self.incarnations], np.int32)


def _pod_hash(rng: np.random.Generator, n: int) -> str:
    return "".join(POD_ALPHABET[i] for i in rng.integers(len(POD_ALPHABET), size=n))


def simulate_cluster(
    cfg: SimulatorConfig,
    topo: Topology,
    schedule: Schedule,
    call_rate: np.ndarray,  # (seconds, ops) first-attempt calls per second
    mean_call_rate: np.ndarray,  # (ops,) at the mean request rate
    rng: np.random.Generator,
) -> ClusterState:
    n_seconds = cfg.seconds
    n_svc, n_ops = len(topo.services), len(topo.operations)
    op_service = np.array([topo.service_index[o.service] for o in topo.operations])
    cpu_ms = np.array([o.cpu_ms for o in topo.operations])
    lat_ms = np.array([o.latency_ms for o in topo.operations])

    # -- slots, limits calibrated so that each service runs at its target utilisation on average --
    mean_cpu = np.bincount(op_service, weights=mean_call_rate * cpu_ms / 1000.0, minlength=n_svc)
    mean_calls = np.bincount(op_service, weights=mean_call_rate, minlength=n_svc)
    nodes = [f"sim-node-{i + 1}" for i in range(3)]
    slots: list[Slot] = []
    slots_of: list[list[int]] = []
    for si, svc in enumerate(topo.services):
        replicas = svc.replicas if cfg.instances is None or not svc.instrumented else cfg.instances
        ids = []
        for r in range(replicas):
            per_pod = mean_cpu[si] / replicas
            limit = per_pod / max(svc.target_util - BACKGROUND_UTIL, 0.05) if per_pod > 0 else 0.1
            limit = float(np.round(max(limit, 0.001), 4))
            base = svc.memory_mb * MIB * float(rng.uniform(0.95, 1.05))
            slots.append(
                Slot(
                    len(slots),
                    si,
                    r,
                    limit,
                    base,
                    svc.memory_limit_mb * MIB,
                    nodes[int(rng.integers(len(nodes)))],
                )
            )
            ids.append(len(slots) - 1)
        slots_of.append(ids)
    n_slots = len(slots)
    slot_service = np.array([s.service for s in slots], np.int32)

    # -- exogenous process events: pod kills (faults) and rolling restarts (disturbances) --
    events: list[list[tuple[int, str, object]]] = [[] for _ in range(n_slots)]
    incidents_by_slot: dict[int, list] = {}
    for inc in schedule.incidents:
        slot = slots_of[topo.service_index[inc.service]][
            min(inc.replica, len(slots_of[topo.service_index[inc.service]]) - 1)
        ]
        incidents_by_slot.setdefault(slot, []).append(inc)
        if inc.fault_type == "pod_kill":
            delay = round(5 + inc.severity * 25)
            inc.params = {"restart_delay_s": delay}
            events[slot].append((inc.start, "killed", delay))
    rs_hash = {svc.name: _pod_hash(rng, 10) for svc in topo.services}
    for d in schedule.disturbances:
        if d.kind != "deploy_restart":
            continue
        si = topo.service_index[d.service]
        new_hash = _pod_hash(rng, 10)
        ids = slots_of[si]
        step = max(1, (d.end - d.start) // (len(ids) + 1))
        for k, slot in enumerate(ids):
            events[slot].append(
                (d.start + k * step, "replaced", f"{d.service}-{new_hash}-{_pod_hash(rng, 5)}")
            )

    # -- per-pod processes, with OOM kills found by iterating memory -> kill -> memory --
    resources: list[PodResource] = []
    pod_resource: dict[str, int] = {}
    incarnations: list[Incarnation] = []
    inc_at = np.full((n_slots, n_seconds), -1, np.int32)
    age = np.zeros((n_slots, n_seconds), np.float64)
    ready = np.zeros((n_slots, n_seconds), bool)
    crashed = np.zeros((n_slots, n_seconds), bool)  # crashed, still in the endpoints
    mem = np.zeros((n_slots, n_seconds), np.float64)
    heap = np.zeros((n_slots, n_seconds), np.float64)
    alloc_total = np.zeros((n_slots, n_seconds), np.float64)
    svc_calls = np.zeros((n_svc, n_seconds))
    np.add.at(svc_calls, op_service, call_rate.T)
    t_axis = np.arange(n_seconds)

    leak_rates: dict[int, list[tuple[int, int, float]]] = {}
    for slot, incs in incidents_by_slot.items():
        for inc in incs:
            if inc.fault_type != "memory_leak":
                continue
            s = slots[slot]
            headroom = s.mem_limit - s.mem_base * 1.15
            rate = (
                headroom * (0.5 + inc.severity) * float(rng.uniform(0.8, 1.2)) / max(inc.end - inc.start, 1)
            )
            leak_rates.setdefault(slot, []).append((inc.start, inc.end, rate))
            inc.params = {"leak_mib_per_s": round(rate / MIB, 3)}

    for slot in range(n_slots):
        s = slots[slot]
        svc = topo.services[s.service]
        rt = RUNTIMES[svc.runtime]
        first_pod = f"{svc.name}-{rs_hash[svc.name]}-{_pod_hash(rng, 5)}"
        first_start = -PREHISTORY_S - int(rng.integers(0, 60))
        alloc_rate = svc_calls[s.service] / max(len(slots_of[s.service]), 1) * rt["alloc_kb"] * 1024
        gc_amp = 0.15 * s.mem_base
        noise = 1.0 + 0.01 * rng.standard_normal(n_seconds)
        ev = sorted(events[slot], key=lambda e: e[0])
        for _ in range(200):
            incs = _incarnations(slot, first_pod, first_start, ev)
            inc_idx, a, rd, cr = _process_arrays(incs, n_seconds)
            m, h, at = _memory(
                s, rt, inc_idx, a, incs, alloc_rate, gc_amp, noise, leak_rates.get(slot, []), t_axis
            )
            over = np.nonzero((inc_idx >= 0) & (m > s.mem_limit))[0]
            if len(over) == 0:
                break
            t_oom = int(over[0])
            ev = sorted([*ev, (t_oom, "OOMKilled", int(rng.integers(3, 12)))], key=lambda e: e[0])
        base = len(incarnations)
        for inc in incs:
            if inc.pod not in pod_resource:
                pod_resource[inc.pod] = len(resources)
                resources.append(PodResource(s.service, slot, inc.pod, s.node, svc.version))
            inc.resource = pod_resource[inc.pod]
            incarnations.append(inc)
        inc_at[slot] = np.where(inc_idx >= 0, inc_idx + base, -1)
        age[slot], ready[slot], crashed[slot] = a, rd, cr
        mem[slot], heap[slot], alloc_total[slot] = m, h, at

    # record what each fault did to its pod: the pod running just before the fault (a kill ends it
    # at the start second), else the next one to run
    for inc in schedule.incidents:
        si = topo.service_index[inc.service]
        slot = slots_of[si][min(inc.replica, len(slots_of[si]) - 1)]
        row = inc_at[slot]
        before = row[max(inc.start - 1, 0)]
        later = row[min(inc.start, n_seconds - 1) :]
        k = before if before >= 0 else (later[later >= 0][0] if (later >= 0).any() else -1)
        inc.pod = incarnations[k].pod if k >= 0 else None
        if inc.fault_type == "memory_leak":
            ooms = [
                i.end
                for i in incarnations
                if i.slot == slot
                and i.end_reason == "OOMKilled"
                and i.end is not None
                and inc.start <= i.end < inc.end
            ]
            inc.params["oom_kills"] = len(ooms)

    routable = ready | crashed
    route_table, route_count = [], []
    for si in range(n_svc):
        ids = np.array(slots_of[si], np.int32)
        mask = routable[ids]  # (R, seconds)
        order = np.argsort(~mask, axis=0, kind="stable")
        table = np.where(np.take_along_axis(mask, order, 0), ids[order], -1).T.copy()
        route_table.append(table.astype(np.int32))
        route_count.append(mask.sum(0).astype(np.int32))

    # -- load and CPU --
    count_by_slot = np.stack([route_count[s.service] for s in slots]) if n_slots else np.zeros((0, n_seconds))
    share = np.where(ready, 1.0 / np.maximum(count_by_slot, 1), 0.0)
    svc_cpu = np.zeros((n_svc, n_seconds))
    np.add.at(svc_cpu, op_service, (call_rate * cpu_ms / 1000.0).T)
    load = svc_calls[slot_service] * share
    limit = np.array([s.cpu_limit for s in slots])[:, None]
    demand = svc_cpu[slot_service] * share + BACKGROUND_UTIL * limit * (
        1 + 0.1 * rng.standard_normal((n_slots, n_seconds))
    )
    cold = np.ones((n_slots, n_seconds))
    for slot, s in enumerate(slots):
        rt = RUNTIMES[topo.services[s.service].runtime]
        running = inc_at[slot] >= 0
        decay = np.exp(-np.maximum(age[slot], 0) / rt["tau"])
        cold[slot] = np.where(running, 1 + (rt["cold"] - 1) * decay, 1.0)
        demand[slot] += np.where(running, 0.5 * limit[slot, 0] * (rt["cold"] - 1) / rt["cold"] * decay, 0.0)
    pressure = np.clip(mem / np.array([s.mem_limit for s in slots])[:, None] - 0.8, 0.0, None)
    demand += 2.0 * pressure * limit
    hog = np.zeros((n_slots, n_seconds))
    io_factor = np.ones((n_slots, n_seconds), np.float32)
    net_delay = np.zeros((n_slots, n_seconds), np.float32)
    loss = np.zeros((n_slots, n_seconds), np.float32)
    op_fault = np.zeros((n_ops, n_seconds), np.float32)
    op_return = np.zeros((n_ops, n_seconds), np.float32)
    for inc in schedule.incidents:
        si = topo.service_index[inc.service]
        slot = slots_of[si][min(inc.replica, len(slots_of[si]) - 1)]
        a, b = inc.start, min(inc.end, n_seconds)
        sev = inc.severity
        if inc.fault_type == "cpu_hog":
            cores = HOG_SCALE * sev * limit[slot, 0]
            hog[slot, a:b] += cores
            inc.params = {"hog_cores": round(float(cores), 5)}
        elif inc.fault_type == "network_delay":
            d = 20.0 + sev * 280.0
            net_delay[slot, a:b] = np.maximum(0.0, d * (1 + 0.1 * rng.standard_normal(b - a)))
            inc.params = {"delay_ms": round(d, 1)}
        elif inc.fault_type == "packet_loss":
            p = 0.05 + sev * 0.35
            loss[slot, a:b] = p
            inc.params = {"loss": round(p, 4)}
        elif inc.fault_type == "disk_io_slow":
            f = 5.0 + sev * 45.0
            io_factor[slot, a:b] = f
            inc.params = {"io_factor": round(f, 2)}
        elif inc.fault_type == "code_exception":
            p = 0.1 + 0.8 * sev
            op_fault[topo.op_index[inc.operation], a:b] = p
            inc.params = {"error_probability": round(p, 4)}
        elif inc.fault_type == "code_return":
            p = 0.5 + 0.5 * sev
            op_return[topo.op_index[inc.operation], a:b] = p
            inc.params = {
                "wrong_path_probability": round(p, 4),
                "skipped_calls": list(
                    dict.fromkeys(span_name(topo, c.op) for c in iter_calls(topo.op(inc.operation).steps))
                ),
                "log_template": wrong_path_template(topo, inc.operation),
            }
    demand += hog * (inc_at >= 0)
    demand *= inc_at >= 0
    util = demand / limit
    cpu_usage = np.minimum(demand, limit) * (1 + 0.02 * rng.standard_normal((n_slots, n_seconds)))
    cpu_usage = np.clip(cpu_usage, 0.0, None) * (inc_at >= 0)

    # slow per-service drift of processing speed (+-3 %, minutes)
    steps = n_seconds // 60 + 1
    drift = np.empty((n_svc, steps))
    acc = np.zeros(n_svc)
    eps = rng.normal(0.0, 0.01, (steps, n_svc))
    for i in range(steps):
        acc = 0.9 * acc + eps[i]
        drift[:, i] = acc
    drift = np.exp(np.repeat(drift, 60, axis=1)[:, :n_seconds])[slot_service]
    queue = 1.0 / (1.0 - np.minimum(util, UTIL_CAP))
    throttle = np.clip(1.0 - 1.0 / np.maximum(util * BURST, 1e-9), 0.0, 0.95).astype(np.float32)
    lat_factor = (queue * cold * (1.0 + 8.0 * pressure) * drift).astype(np.float32)

    svc_lat = np.bincount(op_service, weights=mean_call_rate * lat_ms, minlength=n_svc) / np.maximum(
        mean_calls, 1e-9
    )
    concurrency = load * (svc_lat[slot_service][:, None] / 1000.0) * lat_factor

    state = ClusterState(
        n_seconds=n_seconds,
        slots=slots,
        resources=resources,
        incarnations=incarnations,
        slot_service=slot_service,
        inc_at=inc_at,
        ready=ready,
        routable=routable,
        route_table=route_table,
        route_count=route_count,
        lat_factor=lat_factor,
        io_factor=io_factor,
        net_delay_ms=net_delay,
        loss=loss,
        op_fault=op_fault,
        op_return=op_return,
        throttle=throttle,
        util=util.astype(np.float32),
        cpu_usage=cpu_usage,
        mem=mem,
        heap=heap,
        load=load,
        alloc_total=alloc_total,
        concurrency=concurrency,
        slots_of=slots_of,
    )
    state.finalise()
    return state


def _incarnations(
    slot: int, pod: str, start: int, events: list[tuple[int, str, object]]
) -> list[Incarnation]:
    cur = Incarnation(slot, pod, -1, start, start, None, None, 0)
    out: list[Incarnation] = []
    for t, kind, p in events:
        if t < cur.start:  # the process is down already (a second kill while restarting)
            continue
        cur.end, cur.end_reason = t, kind
        out.append(cur)
        if kind == "replaced":
            cur = Incarnation(slot, str(p), -1, t, t, None, None, 0)
        else:
            s = t + int(p)  # restart delay
            cur = Incarnation(slot, cur.pod, -1, s, s + READY_S, None, None, cur.restarts + 1)
    out.append(cur)
    return out


def _process_arrays(
    incs: list[Incarnation], n_seconds: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    inc_idx = np.full(n_seconds, -1, np.int32)
    age = np.zeros(n_seconds)
    ready = np.zeros(n_seconds, bool)
    crashed = np.zeros(n_seconds, bool)
    t = np.arange(n_seconds)
    for k, inc in enumerate(incs):
        a = max(inc.start, 0)
        b = n_seconds if inc.end is None else min(inc.end, n_seconds)
        if a < b:
            inc_idx[a:b] = k
            age[a:b] = t[a:b] - inc.start
            r = max(inc.ready, 0)
            if r < b:
                ready[r:b] = True
        if inc.end is not None and inc.end_reason in ("killed", "OOMKilled"):
            c0, c1 = max(inc.end, 0), min(inc.end + DETECT_S, n_seconds)
            if c0 < c1:
                crashed[c0:c1] = True
    crashed &= inc_idx < 0
    return inc_idx, age, ready, crashed


def _memory(
    slot: Slot,
    rt: dict[str, float],
    inc_idx: np.ndarray,
    age: np.ndarray,
    incs: list[Incarnation],
    alloc_rate: np.ndarray,
    gc_amp: float,
    noise: np.ndarray,
    leaks: list[tuple[int, int, float]],
    t: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    running = inc_idx >= 0
    ramp = 0.55 + 0.45 * (1.0 - np.exp(-age / 60.0))
    # bytes allocated since the process started: the GC heap grows with it and drops at each collection
    alloc = np.zeros(len(t))
    heap = np.zeros(len(t))
    if rt["gc"] > 0 and gc_amp > 0:
        cum = np.cumsum(alloc_rate * running)
        start_cum = np.zeros(len(t))
        for k, _inc in enumerate(incs):
            sel = inc_idx == k
            if sel.any():
                first = int(np.argmax(sel))
                start_cum[sel] = cum[first - 1] if first > 0 else 0.0
        alloc = cum - start_cum
        heap = np.mod(alloc + 0.37 * gc_amp, gc_amp)
    leak = np.zeros(len(t))
    for a, b, rate in leaks:
        sel = running & (t >= a) & (t < b)
        if sel.any():
            since = np.maximum(a, t - age)  # the leak restarts with the process
            leak = np.where(sel, leak + rate * (t - since + 1), leak)
    m = (slot.mem_base * ramp * noise + heap + leak) * running
    return m, heap * running, alloc / MIB
