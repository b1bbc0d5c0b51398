"""``simulate(cfg, out)``: one labelled fault-injection dataset, written as real OTLP plus ground truth.

Order of work: topology -> schedule of incidents and disturbances -> request rate and Poisson
arrivals -> second-by-second pod state (where faults act) -> every request simulated in chunks of
time (metrics aggregate all of them, spans are exported for the head-sampled ones, WARN/ERROR logs
for all) -> metrics per export interval -> ground truth and metadata. Everything is written into a
staging folder that replaces ``out`` only when complete.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from otlp_aiops.datasets.simulator.calltree import expand
from otlp_aiops.datasets.simulator.cluster import ClusterState, simulate_cluster
from otlp_aiops.datasets.simulator.config import FRAMINGS, SimulatorConfig
from otlp_aiops.datasets.simulator.emit import Columns, Emitter
from otlp_aiops.datasets.simulator.metrics import RequestAggregates, metric_messages
from otlp_aiops.datasets.simulator.requests import OpArrays, simulate_requests
from otlp_aiops.datasets.simulator.schedule import Schedule, make_schedule, span_name
from otlp_aiops.datasets.simulator.topology import Topology, build_topology, iter_calls
from otlp_aiops.datasets.simulator.traffic import arrivals, request_rate
from otlp_aiops.otlp.write import RotatingWriter, WrittenFile

log = logging.getLogger(__name__)

SIMULATOR_VERSION = "1.0.0"
SOURCE = "otlp-aiops simulator"
LICENCE = "CC0-1.0"
ARRIVAL_CHUNK_S = 300
LOAD_WINDOW_S = 10  # pod load = requests per second averaged over this window (a second of Poisson noise at
# 1 request/s is not queueing)
REQUEST_CHUNK_S = 300
# random stream tags: each part of the model draws from its own stream
TAG_TOPOLOGY, TAG_SCHEDULE, TAG_RATE, TAG_ARRIVALS, TAG_CLUSTER, TAG_REQUESTS, TAG_LIFECYCLE = range(1, 8)

NOT_MODELLED = [
    "Real code, real network stacks or real kernels: latency, CPU and memory follow simple formulas "
    "(a queueing factor 1/(1-utilisation) capped at x20, a log-normal body with a Pareto tail), not "
    "measurements.",
    "Retry load is not fed back into CPU utilisation; the load on a pod comes from the mean call counts of "
    "the "
    "journeys times the actual request counts, so a retry storm does not itself saturate a service.",
    "Requests in flight when a pod is killed are not cut short; a server keeps working after its caller "
    "timed out "
    "(no deadline propagation or cancellation).",
    "No asynchronous messaging (queues, pub/sub), caches with hit ratios, connection pools, circuit "
    "breakers, "
    "rate limiters, autoscaling or load shedding.",
    "No node-level faults, noisy neighbours, DNS, TLS, clock skew between pods, or partial network "
    "partitions; "
    "one fault at a time, never overlapping.",
    "Client-side metrics (rpc.client.*) and span links are not produced; span events only for exceptions.",
    "Logs carry trace context but are templated: a handful of templates per service, not free text.",
    "Only journeys the topology lists are generated; users, sessions and carts have no state across "
    "requests.",
    "Metrics of uninstrumented datastores (redis, MySQL) are receiver-style series on the pod resource; real "
    "Collector receivers use their own resources.",
    "Train Ticket and random:N are shapes, not replicas: their endpoints and call trees are simplified.",
]


@dataclass
class SimulationSummary:
    out: Path
    system: str
    seconds_simulated: int
    requests: int
    traces: int
    spans: int
    logs: int
    metric_points: int
    incidents: int
    disturbances: int
    files: int
    bytes: int
    wall_seconds: float = 0.0
    by_fault_type: dict[str, int] = field(default_factory=dict)
    phase_seconds: dict[str, float] = field(
        default_factory=dict
    )  # where the time went (never written to files)

    @property
    def spans_per_second(self) -> float:
        return self.spans / self.wall_seconds if self.wall_seconds > 0 else float("nan")

    def describe(self) -> str:
        faults = ", ".join(f"{k} {v}" for k, v in sorted(self.by_fault_type.items())) or "none"
        return (
            f"simulated {self.system} for {self.seconds_simulated} s -> {self.out}\n"
            f"  requests {self.requests:,} (traces exported {self.traces:,})\n"
            f"  spans {self.spans:,}  logs {self.logs:,}  metric points {self.metric_points:,}\n"
            f"  incidents {self.incidents} ({faults}); benign disturbances {self.disturbances}\n"
            f"  {self.files} OTLP files, {self.bytes / 1e6:.1f} MB; {self.wall_seconds:.1f} s wall "
            f"({self.spans_per_second:,.0f} spans/s)"
        )


def _rng(seed: int, *tags: int) -> np.random.Generator:
    return np.random.default_rng([seed, *tags])


def build_model(cfg: SimulatorConfig) -> tuple[Topology, Schedule]:
    """The topology (with any replica override) and the incident / disturbance schedule."""
    topo = build_topology(cfg.system, _rng(cfg.seed, TAG_TOPOLOGY))
    if cfg.instances is not None:
        services = tuple(
            dataclasses.replace(s, replicas=cfg.instances) if s.instrumented else s for s in topo.services
        )
        topo = Topology(
            topo.system,
            topo.namespace,
            services,
            topo.operations,
            topo.journeys,
            topo.traffic_source,
            topo.reference,
        )
    schedule = make_schedule(cfg, topo, _rng(cfg.seed, TAG_SCHEDULE))
    return topo, schedule


def simulate(cfg: SimulatorConfig, out: str | os.PathLike, progress: bool | None = None) -> SimulationSummary:
    """Write the dataset to ``out`` (replacing an earlier simulated dataset there).

    ``progress``: show a progress bar (default: when stderr is a terminal)."""
    t0 = time.perf_counter()
    out = Path(out)
    _check_target(out)
    from otlp_aiops.outputs import OutputError, claim_output

    shutil.rmtree(out.parent / f".{out.name}.partial", ignore_errors=True)  # left by earlier versions
    try:
        # locked, cleaned up after a crash, written in a temporary sibling and swapped in atomically
        with claim_output(out, owner="simulator", known_files=("dataset.json",), marker=False) as staging:
            summary = _generate(cfg, staging, sys.stderr.isatty() if progress is None else progress)
    except OutputError as e:
        raise FileExistsError(str(e)) from None
    summary.out = out
    summary.wall_seconds = time.perf_counter() - t0
    return summary


def _check_target(out: Path) -> None:
    if not out.exists():
        return
    if not out.is_dir():
        raise FileExistsError(f"{out}: exists and is not a folder")
    if not any(out.iterdir()):
        return
    meta = out / "dataset.json"
    try:
        source = json.loads(meta.read_text()).get("source")
    except (OSError, ValueError):
        source = None
    if source != SOURCE:
        raise FileExistsError(
            f"{out}: not empty and not a simulated dataset (no dataset.json with source {SOURCE!r}); "
            "refusing to overwrite it -- choose another --out or empty the folder"
        )


def _generate(cfg: SimulatorConfig, root: Path, progress: bool = False) -> SimulationSummary:
    seed, n_seconds = cfg.seed, cfg.seconds
    phases: dict[str, float] = Counter()
    tick = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal tick
        now = time.perf_counter()
        phases[name] += now - tick
        tick = now

    topo, schedule = build_model(cfg)
    trees = [expand(topo, j) for j in topo.journeys]
    n_ops = len(topo.operations)
    rate = request_rate(cfg, schedule, _rng(seed, TAG_RATE))
    counts = arrivals(rate, topo, seed, ARRIVAL_CHUNK_S, TAG_ARRIVALS)
    expected = np.stack([t.expected_calls(n_ops) for t in trees])  # (journeys, ops)
    weights = np.array([j.weight for j in topo.journeys])
    call_rate = _moving_average(counts.astype(np.float64), LOAD_WINDOW_S) @ expected
    mean_call_rate = cfg.request_rate * (weights / weights.sum()) @ expected
    cl = simulate_cluster(cfg, topo, schedule, call_rate, mean_call_rate, _rng(seed, TAG_CLUSTER))
    log.info(
        "simulating %s: %d s, %d incidents, %d disturbances, %d pods",
        topo.system,
        n_seconds,
        len(schedule.incidents),
        len(schedule.disturbances),
        len(cl.slots),
    )
    lap("model")

    emitter = Emitter(cfg, topo, cl, trees)
    agg = RequestAggregates(topo, cl, int(cfg.metric_interval))
    ops = OpArrays.of(topo)
    framing = cfg.write_framing
    ext = cfg.file_extension
    rotate = max(1, int(cfg.rotate_mb * 1024 * 1024))
    otlp_dir = root / "otlp"
    writers = {
        sig: RotatingWriter(otlp_dir, root, sig, ext, framing, rotate)
        for sig in ("traces", "metrics", "logs")
    }

    if framing == "jsonl":
        from otlp_aiops.otlp.otlpjson import to_otlp_json

        def serialise(msg: Any) -> bytes:
            return to_otlp_json(msg)
    else:

        def serialise(msg: Any) -> bytes:
            return msg.SerializeToString()

    export_s = int(cfg.export_interval)
    chunk = max(1, REQUEST_CHUNK_S // export_s) * export_s
    lifecycle = emitter.lifecycle_columns(_rng(seed, TAG_LIFECYCLE))
    n_requests = n_traces = n_spans = n_logs = 0
    bar = _progress(progress, n_seconds)
    for c0 in range(0, n_seconds, chunk):
        c1 = min(n_seconds, c0 + chunk)
        bar(c0)
        span_parts: list[Columns | None] = []
        log_parts: list[Columns | None] = []
        for j, tree in enumerate(trees):
            rng = _rng(seed, TAG_REQUESTS, j, c0 // chunk)
            req = simulate_requests(tree, ops, cl, rng, counts[c0:c1, j], c0, cfg.trace_sample_ratio)
            if req.n == 0:
                continue
            agg.add(req)
            lap("requests")
            n_requests += req.n
            n_traces += int(req.sampled.sum())
            trace_ids = rng.integers(1, 2**64 - 1, (req.n, 2), dtype=np.uint64, endpoint=True)
            span_ids = rng.integers(1, 2**64 - 1, (tree.n_nodes, 2, req.n), dtype=np.uint64, endpoint=True)
            span_parts.append(emitter.span_columns(req, j, trace_ids, span_ids))
            log_parts.append(emitter.log_columns(req, j, trace_ids, span_ids, rng))
            lap("spans_logs")
        if lifecycle is not None:
            sel = (lifecycle.window >= c0 // export_s) & (lifecycle.window < -(-c1 // export_s))
            if sel.any():
                log_parts.append(Columns(*(getattr(lifecycle, f)[sel] for f in Columns.__dataclass_fields__)))
        spans = Columns.concat(span_parts)
        if spans is not None:
            for _, msg, n in emitter.trace_messages(spans):
                writers["traces"].add(serialise(msg), n)
                n_spans += n
        logs = Columns.concat(log_parts)
        if logs is not None:
            for _, msg, n in emitter.log_messages(logs):
                writers["logs"].add(serialise(msg), n)
                n_logs += n
        lap("spans_logs")
    bar(n_seconds)
    n_points = 0
    for msg, n, _ in metric_messages(topo, cl, agg, cfg.start_ns):
        writers["metrics"].add(serialise(msg), n)
        n_points += n
    files = [f for sig in ("traces", "metrics", "logs") for f in writers[sig].close()]
    lap("metrics")

    _write_ground_truth(cfg, topo, schedule, root)
    counts_out = {
        "requests": n_requests,
        "traces": n_traces,
        "spans": n_spans,
        "logs": n_logs,
        "metric_points": n_points,
        "incidents": len(schedule.incidents),
        "disturbances": len(schedule.disturbances),
        "pods": len(cl.resources),
        "files": len(files),
    }
    _write_json(root / "topology.json", topology_json(cfg, topo, cl))
    _write_json(root / "dataset.json", dataset_json(cfg, topo, schedule, files, counts_out))
    lap("ground_truth")
    return SimulationSummary(
        out=root,
        system=topo.system,
        seconds_simulated=n_seconds,
        requests=n_requests,
        traces=n_traces,
        spans=n_spans,
        logs=n_logs,
        metric_points=n_points,
        incidents=len(schedule.incidents),
        disturbances=len(schedule.disturbances),
        files=len(files),
        bytes=sum(f.bytes for f in files),
        by_fault_type=dict(Counter(i.fault_type for i in schedule.incidents)),
        phase_seconds={k: round(v, 3) for k, v in phases.items()},
    )


def _moving_average(x: np.ndarray, window: int) -> np.ndarray:
    """Centred moving average along axis 0 (shorter windows at the edges)."""
    c = np.vstack([np.zeros((1, x.shape[1])), np.cumsum(x, axis=0)])
    t = np.arange(len(x))
    lo = np.maximum(t - window // 2, 0)
    hi = np.minimum(t + (window - window // 2), len(x))
    return (c[hi] - c[lo]) / (hi - lo)[:, None]


def _progress(enabled: bool, total: int):
    """A callable taking the simulated second reached; a rich progress bar when enabled."""
    if not enabled:
        return lambda done: None
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    bar = Progress(
        TextColumn("simulating"),
        BarColumn(),
        TextColumn("{task.completed:.0f}/{task.total:.0f} s"),
        TimeRemainingColumn(),
        transient=True,
    )
    task = bar.add_task("simulate", total=total)
    bar.start()

    def update(done: int) -> None:
        bar.update(task, completed=done)
        if done >= total:
            bar.stop()

    return update


# ------------------------------------------------------------------------------------------------
# ground truth and metadata
# ------------------------------------------------------------------------------------------------


def _iso(start_ns: int, sec: float) -> str:
    return datetime.fromtimestamp(start_ns / 1e9 + sec, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _write_json(path: Path, obj: Any) -> None:
    from otlp_aiops.outputs import atomic_write_text

    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def _write_parquet(path: Path, table: Any) -> None:
    import pyarrow.parquet as pq

    from otlp_aiops.outputs import atomic_write_with

    atomic_write_with(path, lambda tmp: pq.write_table(table, tmp))


def _write_ground_truth(cfg: SimulatorConfig, topo: Topology, schedule: Schedule, root: Path) -> None:
    import pyarrow as pa

    ts = pa.timestamp("ns", tz="UTC")
    s0 = cfg.start_ns
    sec = 1_000_000_000
    inc = schedule.incidents
    incidents = pa.table(
        {
            "incident_id": pa.array([i.incident_id for i in inc], pa.string()),
            "start_time": pa.array([s0 + i.start * sec for i in inc], ts),
            "end_time": pa.array([s0 + i.end * sec for i in inc], ts),
            "root_cause_service": pa.array([i.service for i in inc], pa.string()),
            "root_cause_indicator": pa.array([i.indicator for i in inc], pa.string()),
            "fault_type": pa.array([i.fault_type for i in inc], pa.string()),
            "severity": pa.array([i.severity for i in inc], pa.float64()),
            "root_cause_pod": pa.array([i.pod for i in inc], pa.string()),
            "root_cause_operation": pa.array(
                [span_name(topo, i.operation) if i.operation else None for i in inc], pa.string()
            ),
            "parameters": pa.array([json.dumps(i.params, sort_keys=True) for i in inc], pa.string()),
        }
    )
    dist = schedule.disturbances
    disturbances = pa.table(
        {
            "disturbance_id": pa.array([d.disturbance_id for d in dist], pa.string()),
            "start_time": pa.array([s0 + d.start * sec for d in dist], ts),
            "end_time": pa.array([s0 + d.end * sec for d in dist], ts),
            "kind": pa.array([d.kind for d in dist], pa.string()),
            "service": pa.array([d.service for d in dist], pa.string()),
            "magnitude": pa.array([d.magnitude for d in dist], pa.float64()),
            "description": pa.array([d.description for d in dist], pa.string()),
        }
    )
    _write_parquet(root / "incidents.parquet", incidents)
    _write_parquet(root / "disturbances.parquet", disturbances)


def topology_json(cfg: SimulatorConfig, topo: Topology, cl: ClusterState) -> dict[str, Any]:
    s0 = cfg.start_ns
    services = []
    for si, s in enumerate(topo.services):
        services.append(
            {
                "name": s.name,
                "protocol": s.protocol,
                "runtime": s.runtime,
                "instrumented": s.instrumented,
                "replicas": len(cl.slots_of[si]),
                "port": s.port,
                "rpc_service": s.rpc_service,
                "version": s.version,
                "cpu_limit_cores": cl.slots[cl.slots_of[si][0]].cpu_limit,
                "memory_limit_bytes": int(s.memory_limit_mb * 1024 * 1024),
                "operations": [span_name(topo, o.key) for o in topo.operations if o.service == s.name],
            }
        )
    operations = []
    for o in topo.operations:
        operations.append(
            {
                "service": o.service,
                "name": o.name,
                "span_name": span_name(topo, o.key),
                "calls": [
                    {
                        "service": topo.op(c.op).service,
                        "operation": span_name(topo, c.op),
                        "optional": c.optional,
                        "attempts": c.attempts,
                        "timeout_ms": c.timeout_ms,
                    }
                    for c in iter_calls(o.steps)
                ],
            }
        )
    pods = []
    for r, pr in enumerate(cl.resources):
        incs = [i for i in cl.incarnations if i.resource == r]
        pods.append(
            {
                "pod": pr.pod,
                "service": topo.services[pr.service].name,
                "replica": cl.slots[pr.slot].replica,
                "node": pr.node,
                "processes": [
                    {
                        "start": _iso(s0, i.start),
                        "end": _iso(s0, i.end) if i.end is not None else None,
                        "end_reason": i.end_reason,
                        "restarts": i.restarts,
                    }
                    for i in incs
                ],
            }
        )
    return {
        "system": topo.system,
        "namespace": topo.namespace,
        "reference": topo.reference,
        "traffic_source": topo.traffic_source,
        "entry_service": topo.entry_service,
        "services": services,
        "edges": topo.edges(),
        "operations": operations,
        "journeys": [
            {
                "name": j.name,
                "entry": span_name(topo, j.entry),
                "weight": j.weight,
                "variables": {n: [lo, hi] for n, lo, hi in j.variables},
            }
            for j in topo.journeys
        ],
        "pods": pods,
    }


def dataset_json(
    cfg: SimulatorConfig, topo: Topology, schedule: Schedule, files: list[WrittenFile], counts: dict[str, int]
) -> dict[str, Any]:
    collector_format = {"jsonl": "json", "proto": "proto", "proto-zstd": "proto with compression: zstd"}[
        cfg.framing
    ]
    return {
        "name": f"sim-{topo.namespace}",
        "source": SOURCE,
        "synthetic": True,
        "licence": LICENCE,
        "generator": {"name": "otlp_aiops.datasets.simulator", "version": SIMULATOR_VERSION},
        "system": topo.system,
        "system_reference": topo.reference,
        "seed": cfg.seed,
        "config": cfg.to_dict(),
        "time_range": {"start": _iso(cfg.start_ns, 0), "end": _iso(cfg.start_ns, cfg.seconds)},
        "converted": "nothing: generated directly as OTLP (no source data)",
        "otlp": {
            "folder": "otlp",
            "framing": FRAMINGS[cfg.framing][0],
            "collector_file_exporter_format": collector_format,
            "messages": "one TracesData / LogsData per span / log export interval, one MetricsData per "
            "metric "
            "export interval; each carries every pod that exported in it",
            "rotation_mb": cfg.rotate_mb,
            "files": [dataclasses.asdict(f) for f in files],
        },
        "sampling": {
            "trace_sample_ratio": cfg.trace_sample_ratio,
            "how": "head sampling at the entry service: a sampled request exports every span of its trace",
            "metrics": "request counts, errors and duration histograms include every request, sampled or not",
            "logs": "INFO request logs only for sampled requests (as with a trace-based log sampler); WARN "
            "and "
            "ERROR logs for every request, with its trace and span id (flags mark whether it was sampled); "
            "lifecycle logs for every pod",
        },
        "counts": counts,
        "ground_truth": {
            "incidents": "incidents.parquet",
            "disturbances": "disturbances.parquet",
            "incident_columns": {
                "incident_id": "string",
                "start_time": "fault injected",
                "end_time": "fault removed",
                "root_cause_service": "the faulty service",
                "root_cause_indicator": "metric name where the fault "
                "shows first, or the server span name for code faults (the code region); null for network "
                "faults",
                "fault_type": "cpu_hog | memory_leak | network_delay | packet_loss | code_exception | "
                "disk_io_slow "
                "| pod_kill | code_return",
                "severity": "0..1, scales the fault's strength",
                "root_cause_pod": "the pod hit",
                "root_cause_operation": "the faulty operation (code faults)",
                "parameters": "JSON: the fault's physical size (hog cores, delay ms, loss, ...); "
                "code_return: "
                "wrong_path_probability, skipped_calls (span names) and log_template (the wrong path's line)",
            },
            "disturbances_note": "benign events that are NOT incidents (traffic surges, rolling restarts); "
            "they lie "
            "in fault-free stretches, at least min_gap seconds from any incident: use them to "
            "count false alarms",
            "fault_free": f"the first {cfg.warmup:g} s hold no incident or disturbance; every gap between "
            "events is "
            f">= {cfg.min_gap:g} s",
            "by_fault_type": dict(sorted(Counter(i.fault_type for i in schedule.incidents).items())),
            "by_disturbance_kind": dict(sorted(Counter(d.kind for d in schedule.disturbances).items())),
        },
        "metrics": METRIC_CATALOGUE,
        "not_modelled": NOT_MODELLED,
    }


METRIC_CATALOGUE = {
    "container.cpu.usage": "gauge, cores (mean over the interval); CPU hogs, GC pressure and JIT raise it",
    "process.cpu.utilization": "gauge, CPU used / CPU limit",
    "container.memory.usage": "gauge, bytes; memory leaks raise it until the OOM kill",
    "process.memory.usage": "gauge, bytes",
    "k8s.container.restarts": "gauge, container restarts of the pod (kills, OOM kills)",
    "system.disk.operations": "cumulative sum",
    "system.disk.operation_time": "cumulative sum, seconds; slow disks raise its rate per operation",
    "rpc.server.duration": "histogram, ms, per rpc.method (gRPC services)",
    "http.server.request.duration": "histogram, s, per http.route (HTTP services)",
    "app.server.request.count": "cumulative sum per operation (every request, sampled or not)",
    "app.server.error.count": "cumulative sum per operation",
    "runtime": "go.goroutine.count, go.memory.used, jvm.memory.used, jvm.thread.count, "
    "v8js.memory.heap.used, "
    "nodejs.eventloop.delay.p99, cpython.gc.collections, process.thread.count, dotnet.gc.collections, "
    "dotnet.thread_pool.thread.count, redis.*, mysql.*",
    "resets": "sums and histograms are cumulative from the process start: a restart starts them again with a "
    "new "
    "start_time_unix_nano",
}
