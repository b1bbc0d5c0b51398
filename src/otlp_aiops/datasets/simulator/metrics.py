"""Metrics as the pods would export them: per export interval, one OTLP data point per series.

Request counters, error counters and duration histograms are exact aggregates of the simulated
requests (every request, sampled or not); CPU, memory, disk and runtime series come from the
cluster model. Sums and histograms are cumulative from the process start, so a restart resets them
(a new ``start_time_unix_nano``); requests a dying process served after its last export are lost,
as they would be.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.metrics.v1 import metrics_pb2

from otlp_aiops.datasets.simulator.cluster import ClusterState
from otlp_aiops.datasets.simulator.requests import Requests
from otlp_aiops.datasets.simulator.resources import resource_proto
from otlp_aiops.datasets.simulator.schedule import span_name
from otlp_aiops.datasets.simulator.topology import Topology
from otlp_aiops.otlp.write import kv

# explicit bucket bounds in ms (the OTel SDK defaults: ms for rpc.server.duration, the same values in
# seconds for http.server.request.duration)
BOUNDS_MS = np.array([5, 10, 25, 50, 75, 100, 250, 500, 750, 1000, 2500, 5000, 7500, 10000], np.float64)
N_BUCKETS = len(BOUNDS_MS) + 1
CUMULATIVE = metrics_pb2.AGGREGATION_TEMPORALITY_CUMULATIVE
DISK_OP_MS = 0.4  # healthy disk latency per operation

INFRA_SCOPE = ("otelcol/kubeletstatsreceiver", "0.120.0")
SDK_SCOPE = {
    "go": ("go.opentelemetry.io/contrib/instrumentation/runtime", "0.60.0"),
    "java": ("io.opentelemetry.runtime-telemetry-java17", "2.13.0-alpha"),
    "dotnet": ("OpenTelemetry.Instrumentation.Runtime", "1.11.0"),
    "nodejs": ("@opentelemetry/instrumentation-runtime-node", "0.14.0"),
    "python": ("opentelemetry.instrumentation.system_metrics", "0.52b0"),
    "redis": ("otelcol/redisreceiver", "0.120.0"),
    "mysql": ("otelcol/mysqlreceiver", "0.120.0"),
}


class RequestAggregates:
    """Per (pod slot, operation) series and export interval: counts, errors and duration histograms."""

    def __init__(self, topo: Topology, cl: ClusterState, interval: int) -> None:
        self.interval = interval
        self.n_seconds = cl.n_seconds
        self.n_int = -(-cl.n_seconds // interval)
        op_service = np.array([topo.service_index[o.service] for o in topo.operations])
        n_slots, n_ops = len(cl.slots), len(topo.operations)
        self.series_of = np.full((n_slots, n_ops), -1, np.int64)
        self.series: list[tuple[int, int]] = []  # (slot, op)
        for s in cl.slots:
            for o in np.nonzero(op_service == s.service)[0]:
                self.series_of[s.index, o] = len(self.series)
                self.series.append((s.index, int(o)))
        n = len(self.series) * self.n_int
        self.count = np.zeros(n, np.int64)
        self.errors = np.zeros(n, np.int64)
        self.sum_ms = np.zeros(n)
        self.min_ms = np.full(n, np.inf)
        self.max_ms = np.full(n, -np.inf)
        self.buckets = np.zeros(n * N_BUCKETS, np.int64)
        self._inc_at = cl.inc_at

    def add(self, req: Requests) -> None:
        xs, js = np.nonzero(req.ran)
        if len(xs) == 0:
            return
        inst = req.inst[xs, js]
        sec = req.sec[js]
        iv = sec // self.interval
        # a request served by a process that is gone at the export is never exported
        end_sec = np.minimum((iv + 1) * self.interval, self.n_seconds) - 1
        keep = self._inc_at[inst, sec] == self._inc_at[inst, end_sec]
        xs, js, inst, iv = xs[keep], js[keep], inst[keep], iv[keep]
        dur = req.srv_dur[xs, js]
        err = req.srv_code[xs, js] != 0
        flat = self.series_of[inst, req.tree.op[xs]] * self.n_int + iv
        n = len(self.count)
        self.count += np.bincount(flat, minlength=n)
        self.errors += np.bincount(flat, weights=err, minlength=n).astype(np.int64)
        self.sum_ms += np.bincount(flat, weights=dur, minlength=n)
        np.minimum.at(self.min_ms, flat, dur)
        np.maximum.at(self.max_ms, flat, dur)
        b = np.searchsorted(BOUNDS_MS, dur, side="left")
        self.buckets += np.bincount(flat * N_BUCKETS + b, minlength=n * N_BUCKETS)

    def total_requests(self) -> int:
        return int(self.count.sum())


def _cum_since_start(per_sec: np.ndarray, inc_at: np.ndarray) -> np.ndarray:
    """Running totals of a per-second quantity, restarting at each new process."""
    cum = np.cumsum(per_sec)
    t = np.arange(len(per_sec))
    change = np.ones(len(per_sec), bool)
    change[1:] = inc_at[1:] != inc_at[:-1]
    seg0 = np.maximum.accumulate(np.where(change, t, 0))
    before = np.where(seg0 > 0, cum[seg0 - 1], 0.0)
    return cum - before


@dataclass
class _Series:
    name: str
    unit: str
    description: str
    kind: str  # gauge_double | gauge_int | sum_double | sum_int
    values: np.ndarray  # per second, for the slot


def _slot_series(topo: Topology, cl: ClusterState, slot: int) -> tuple[list[_Series], list[_Series]]:
    """(infrastructure series, runtime series) of one pod slot, per second."""
    s = cl.slots[slot]
    svc = topo.services[s.service]
    inc_at = cl.inc_at[slot]
    running = inc_at >= 0
    usage = cl.cpu_usage[slot]
    mem = cl.mem[slot]
    restarts = np.array([cl.incarnations[k].restarts if k >= 0 else 0 for k in inc_at], np.int64)
    io_ops = running * (1.0 + 0.5 * cl.load[slot])
    io_time = io_ops * DISK_OP_MS / 1000.0 * cl.io_factor[slot]
    infra = [
        _Series("container.cpu.usage", "{cpu}", "CPU cores used by the container", "gauge_double", usage),
        _Series("container.memory.usage", "By", "Memory used by the container", "gauge_int", mem),
        _Series("k8s.container.restarts", "{restart}", "Restarts of the container", "gauge_int", restarts),
        _Series(
            "system.disk.operations",
            "{operation}",
            "Disk operations",
            "sum_int",
            _cum_since_start(np.round(io_ops), inc_at),
        ),
        _Series(
            "system.disk.operation_time",
            "s",
            "Time spent in disk operations",
            "sum_double",
            _cum_since_start(io_time, inc_at),
        ),
    ]
    conc = cl.concurrency[slot]
    heap = cl.heap[slot]
    util = usage / s.cpu_limit
    rt: list[_Series] = []
    if svc.instrumented:
        rt += [
            _Series("process.cpu.utilization", "1", "CPU time used over the limit", "gauge_double", util),
            _Series("process.memory.usage", "By", "Resident memory of the process", "gauge_int", mem * 0.92),
        ]
    runtime = svc.runtime
    if runtime == "go":
        rt += [
            _Series(
                "go.goroutine.count", "{goroutine}", "Live goroutines", "gauge_int", running * (12 + 2 * conc)
            ),
            _Series(
                "go.memory.used",
                "By",
                "Memory used by the Go runtime",
                "gauge_int",
                running * (0.45 * mem + heap),
            ),
        ]
    elif runtime == "java":
        rt += [
            _Series(
                "jvm.memory.used", "By", "JVM heap in use", "gauge_int", running * (0.5 * s.mem_base + heap)
            ),
            _Series("jvm.thread.count", "{thread}", "Live JVM threads", "gauge_int", running * (35 + conc)),
        ]
    elif runtime == "nodejs":
        rt += [
            _Series(
                "v8js.memory.heap.used",
                "By",
                "V8 heap in use",
                "gauge_int",
                running * (0.4 * s.mem_base + heap),
            ),
            _Series(
                "nodejs.eventloop.delay.p99",
                "s",
                "Event loop delay, 99th percentile",
                "gauge_double",
                running * 0.011 * cl.lat_factor[slot],
            ),
        ]
    elif runtime == "python":
        rt += [
            _Series(
                "cpython.gc.collections",
                "{collection}",
                "Garbage collections",
                "sum_int",
                running * np.floor(cl.alloc_total[slot] / 4.0),
            ),
            _Series("process.thread.count", "{thread}", "Live threads", "gauge_int", running * (8 + conc)),
        ]
    elif runtime == "dotnet":
        rt += [
            _Series(
                "dotnet.gc.collections",
                "{collection}",
                "Garbage collections",
                "sum_int",
                running * np.floor(cl.alloc_total[slot] / 8.0),
            ),
            _Series(
                "dotnet.thread_pool.thread.count",
                "{thread}",
                "Thread pool threads",
                "gauge_int",
                running * (4 + conc),
            ),
        ]
    elif runtime == "redis":
        rt += [
            _Series("redis.clients.connected", "{client}", "Connected clients", "gauge_int", running * 4),
            _Series("redis.memory.used", "By", "Memory used by redis", "gauge_int", mem * 0.9),
        ]
    elif runtime == "mysql":
        rt += [_Series("mysql.threads", "{thread}", "Connected threads", "gauge_int", running * (6 + conc))]
    return infra, rt


def metric_messages(
    topo: Topology, cl: ClusterState, agg: RequestAggregates, start_ns: int
) -> Iterator[tuple[metrics_pb2.MetricsData, int, int]]:
    """One ``MetricsData`` per export interval: (message, data points, export second)."""
    interval, n_int = agg.interval, agg.n_int
    n_series = len(agg.series)
    count = agg.count.reshape(n_series, n_int)
    errors = agg.errors.reshape(n_series, n_int)
    sums = agg.sum_ms.reshape(n_series, n_int)
    mins = agg.min_ms.reshape(n_series, n_int)
    maxs = agg.max_ms.reshape(n_series, n_int)
    buckets = agg.buckets.reshape(n_series, n_int, N_BUCKETS)
    c_count, c_err = np.cumsum(count, 1), np.cumsum(errors, 1)
    c_sum, c_buckets = np.cumsum(sums, 1), np.cumsum(buckets, 1)

    series_by_slot: dict[int, list[int]] = {}
    for sid, (slot, _) in enumerate(agg.series):
        series_by_slot.setdefault(slot, []).append(sid)
    per_slot = [_slot_series(topo, cl, k) for k in range(len(cl.slots))]
    res_pb = [resource_proto(topo, cl, r) for r in range(len(cl.resources))]
    op_attrs: dict[int, list[common_pb2.KeyValue]] = {}
    for o, op in enumerate(topo.operations):
        svc = topo.service(op.service)
        if svc.protocol == "grpc":
            op_attrs[o] = [
                kv("rpc.system", "grpc"),
                kv("rpc.service", svc.rpc_service or svc.name),
                kv("rpc.method", op.name),
            ]
        elif svc.protocol == "http":
            op_attrs[o] = [
                kv("http.request.method", op.http_method or "GET"),
                kv("http.route", op.route or op.name),
            ]
        else:
            op_attrs[o] = [kv("db.operation.name", op.name)]
    op_label = {o: span_name(topo, op.key) for o, op in enumerate(topo.operations)}

    for k in range(1, n_int + 1):
        t_end = min(k * interval, cl.n_seconds)
        sec = t_end - 1
        iv = k - 1
        t_ns = start_ns + t_end * 1_000_000_000
        md = metrics_pb2.MetricsData()
        n_points = 0
        for slot in range(len(cl.slots)):
            inc_idx = int(cl.inc_at[slot, sec])
            if inc_idx < 0:
                continue
            inc = cl.incarnations[inc_idx]
            svc = topo.services[cl.slots[slot].service]
            start_time = start_ns + inc.start * 1_000_000_000
            first_iv = max(inc.start, 0) // interval
            lo = max(inc.start, 0, (k - 1) * interval)
            rm = md.resource_metrics.add()
            rm.resource.CopyFrom(res_pb[inc.resource])
            infra, runtime = per_slot[slot]
            sm = rm.scope_metrics.add()
            sm.scope.name, sm.scope.version = INFRA_SCOPE
            for s in infra:
                n_points += _add_point(sm, s, lo, sec, start_time, t_ns)
            sm = rm.scope_metrics.add()
            sm.scope.name, sm.scope.version = SDK_SCOPE[svc.runtime]
            for s in runtime:
                n_points += _add_point(sm, s, lo, sec, start_time, t_ns)
            sids = series_by_slot.get(slot, [])

            def cum(c: np.ndarray, sid: int, first_iv: int = first_iv, iv: int = iv) -> np.ndarray:
                return c[sid, iv] - (c[sid, first_iv - 1] if first_iv > 0 else 0)

            live = [sid for sid in sids if cum(c_count, sid) > 0]
            if not live:
                continue
            if not svc.instrumented:
                m = sm.metrics.add()
                if svc.runtime == "redis":
                    m.name, m.unit, m.description = (
                        "redis.commands.processed",
                        "{command}",
                        "Commands processed",
                    )
                else:
                    m.name, m.unit, m.description = "mysql.query.count", "{query}", "Statements executed"
                m.sum.aggregation_temporality, m.sum.is_monotonic = CUMULATIVE, True
                dp = m.sum.data_points.add()
                dp.start_time_unix_nano, dp.time_unix_nano = start_time, t_ns
                dp.as_int = int(sum(cum(c_count, sid) for sid in live))
                n_points += 1
                continue
            http = svc.protocol == "http"
            hist = sm.metrics.add()
            if http:
                hist.name, hist.unit = "http.server.request.duration", "s"
                hist.description = "Duration of HTTP server requests"
                bounds, scale = (BOUNDS_MS / 1000.0).tolist(), 1e-3
            else:
                hist.name, hist.unit = "rpc.server.duration", "ms"
                hist.description = "Duration of inbound RPCs"
                bounds, scale = [0.0, *BOUNDS_MS.tolist()], 1.0
            hist.histogram.aggregation_temporality = CUMULATIVE
            req_m = sm.metrics.add()
            req_m.name, req_m.unit, req_m.description = (
                "app.server.request.count",
                "{request}",
                "Requests served",
            )
            req_m.sum.aggregation_temporality, req_m.sum.is_monotonic = CUMULATIVE, True
            err_m = sm.metrics.add()
            err_m.name, err_m.unit, err_m.description = (
                "app.server.error.count",
                "{request}",
                "Requests that failed",
            )
            err_m.sum.aggregation_temporality, err_m.sum.is_monotonic = CUMULATIVE, True
            for sid in live:
                op = agg.series[sid][1]
                dp = hist.histogram.data_points.add()
                dp.start_time_unix_nano, dp.time_unix_nano = start_time, t_ns
                dp.attributes.extend(op_attrs[op])
                b = cum(c_buckets, sid)
                dp.count = int(b.sum())
                dp.sum = float(cum(c_sum, sid)) * scale
                dp.bucket_counts.extend(([0] if not http else []) + b.tolist())
                dp.explicit_bounds.extend(bounds)
                seg = slice(first_iv, iv + 1)
                dp.min = float(mins[sid, seg].min()) * scale
                dp.max = float(maxs[sid, seg].max()) * scale
                for metric, c in ((req_m, c_count), (err_m, c_err)):
                    p = metric.sum.data_points.add()
                    p.start_time_unix_nano, p.time_unix_nano = start_time, t_ns
                    p.attributes.extend([kv("operation", op_label[op])])
                    p.as_int = int(cum(c, sid))
                n_points += 3
        if n_points:
            yield md, n_points, t_end


def _add_point(
    sm: metrics_pb2.ScopeMetrics, s: _Series, lo: int, sec: int, start_time: int, t_ns: int
) -> int:
    m = sm.metrics.add()
    m.name, m.unit, m.description = s.name, s.unit, s.description
    if s.kind.startswith("gauge"):
        # a gauge reports the mean over the interval for rates, the last value otherwise
        v = (
            float(s.values[lo : sec + 1].mean())
            if s.name.endswith(("cpu.usage", "utilization"))
            else float(s.values[sec])
        )
        dp = m.gauge.data_points.add()
    else:
        v = float(s.values[sec])
        m.sum.aggregation_temporality, m.sum.is_monotonic = CUMULATIVE, True
        dp = m.sum.data_points.add()
        dp.start_time_unix_nano = start_time
    dp.time_unix_nano = t_ns
    if s.kind.endswith("_int"):
        dp.as_int = round(v)
    else:
        dp.as_double = round(v, 6)
    return 1
