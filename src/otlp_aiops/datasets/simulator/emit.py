"""Simulated requests and pod lifecycles -> OTLP resources, spans and log records, batched per
export interval, and written in rotated files the way the Collector file exporter writes them.

Spans and log records are built by copying a prepared template message per (node, side, outcome)
and setting the few fields that vary (ids, times, body): that keeps protobuf building fast.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.logs.v1 import logs_pb2
from opentelemetry.proto.trace.v1 import trace_pb2

from otlp_aiops.datasets.simulator import logtext as lt
from otlp_aiops.datasets.simulator.calltree import CallTree
from otlp_aiops.datasets.simulator.cluster import ClusterState
from otlp_aiops.datasets.simulator.config import SimulatorConfig
from otlp_aiops.datasets.simulator.metrics import DISK_OP_MS
from otlp_aiops.datasets.simulator.requests import DEADLINE, DEPENDENCY, EXCEPTION, OK, UNAVAILABLE, Requests
from otlp_aiops.datasets.simulator.resources import resource_proto
from otlp_aiops.datasets.simulator.schedule import span_name
from otlp_aiops.datasets.simulator.topology import Service, Topology
from otlp_aiops.otlp.write import kv

FAULT_EXCEPTION = 5  # an own exception thrown by the injected bug (EXCEPTION: a background one)
SERVER, CLIENT = 0, 1
SPAN_KIND_SERVER, SPAN_KIND_CLIENT = 2, 3
STATUS_ERROR = 2
FLAG_SAMPLED = 0x01
FLAG_HAS_IS_REMOTE, FLAG_IS_REMOTE = 0x100, 0x200
INFO_A, INFO_B, SLOW, RETRY, OPTIONAL, EXC, DEP, WRONG = range(8)  # log kinds (at most 8: see _encode)
LIFE = ("start", "listen", "sigterm", "stopped", "memory", "disk")
J_LIFECYCLE = 127
_MAXN = 50_001

SPAN_SCOPE = {
    ("go", "grpc"): ("go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc", "0.60.0"),
    ("go", "http"): ("go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp", "0.60.0"),
    ("java", "grpc"): ("io.opentelemetry.grpc-1.6", "2.13.0-alpha"),
    ("java", "http"): ("io.opentelemetry.spring-webmvc-6.0", "2.13.0-alpha"),
    ("dotnet", "grpc"): ("OpenTelemetry.Instrumentation.AspNetCore", "1.11.1"),
    ("dotnet", "http"): ("OpenTelemetry.Instrumentation.AspNetCore", "1.11.1"),
    ("nodejs", "grpc"): ("@opentelemetry/instrumentation-grpc", "0.57.0"),
    ("nodejs", "http"): ("@opentelemetry/instrumentation-http", "0.57.0"),
    ("python", "grpc"): ("opentelemetry.instrumentation.grpc", "0.52b0"),
    ("python", "http"): ("opentelemetry.instrumentation.flask", "0.52b0"),
}
GRPC_CODE = {OK: 0, EXCEPTION: 2, FAULT_EXCEPTION: 2, DEPENDENCY: 13, UNAVAILABLE: 14, DEADLINE: 4}
GRPC_NAME = {
    OK: "OK",
    EXCEPTION: "UNKNOWN",
    FAULT_EXCEPTION: "UNKNOWN",
    DEPENDENCY: "INTERNAL",
    UNAVAILABLE: "UNAVAILABLE",
    DEADLINE: "DEADLINE_EXCEEDED",
}
HTTP_STATUS = {
    OK: 200,
    EXCEPTION: 500,
    FAULT_EXCEPTION: 500,
    DEPENDENCY: 500,
    UNAVAILABLE: 503,
    DEADLINE: 504,
}


def code_text(svc: Service, code: int) -> str:
    if svc.protocol == "grpc":
        return GRPC_NAME[code]
    if svc.protocol == "http":
        return (
            str(HTTP_STATUS[code])
            if code not in (UNAVAILABLE, DEADLINE)
            else ("connection_refused" if code == UNAVAILABLE else "timeout")
        )
    return {UNAVAILABLE: "connection_refused", DEADLINE: "timeout"}.get(code, "ERR")


def _encode(j: int, x: int, a: int, code: int, fail: int, ccode: int) -> int:
    return ((((j * _MAXN + x) * 8 + a) * 8 + code) * (_MAXN + 1) + (fail + 1)) * 8 + ccode


def _jbase(j: int) -> int:
    return _encode(j, 0, 0, 0, -1, 0)


def _decode(key: int) -> tuple[int, int, int, int, int, int]:
    key, ccode = divmod(key, 8)
    key, fail = divmod(key, _MAXN + 1)
    key, code = divmod(key, 8)
    key, a = divmod(key, 8)
    j, x = divmod(key, _MAXN)
    return j, x, a, code, fail - 1, ccode


@dataclass
class Columns:
    """Rows of spans or log records (numpy columns) waiting to be sorted into messages."""

    window: np.ndarray
    res: np.ndarray
    time_ns: np.ndarray  # span end / log time: sort key inside a resource
    start_ns: np.ndarray  # span start / log observed time
    trace_hi: np.ndarray
    trace_lo: np.ndarray
    span_id: np.ndarray
    parent_id: np.ndarray  # spans: parent span id (0 = none); logs: flags
    key: np.ndarray
    extra_ns: np.ndarray  # spans: exception event time (0 = none); logs: unused
    u: np.ndarray  # logs: (n, 3) uniforms for the dynamic fields
    ms: np.ndarray  # logs: duration (or percent) for the dynamic fields

    @staticmethod
    def concat(parts: list[Columns]) -> Columns | None:
        parts = [p for p in parts if p is not None and len(p.window)]
        if not parts:
            return None
        return Columns(
            *(np.concatenate([getattr(p, f) for p in parts]) for f in Columns.__dataclass_fields__)
        )


class Emitter:
    def __init__(self, cfg: SimulatorConfig, topo: Topology, cl: ClusterState, trees: list[CallTree]) -> None:
        self.cfg, self.topo, self.cl, self.trees = cfg, topo, cl, trees
        self.start_ns = cfg.start_ns
        self.export_s = int(cfg.export_interval)
        self.res_pb = [resource_proto(topo, cl, r) for r in range(len(cl.resources))]
        self.res_service = [p.service for p in cl.resources]
        self.instrumented = np.array([s.instrumented for s in topo.services])
        self.entry = topo.entry_service
        self._span_scope = {}
        self._log_scope = {}
        for si, svc in enumerate(topo.services):
            if svc.instrumented:
                proto = "grpc" if svc.protocol == "grpc" else "http"
                name, version = SPAN_SCOPE[(svc.runtime, proto)]
                self._span_scope[si] = common_pb2.InstrumentationScope(name=name, version=version)
            self._log_scope[si] = common_pb2.InstrumentationScope(
                name=svc.name if svc.instrumented else svc.runtime
            )
        self._span_tpl: dict[int, trace_pb2.Span] = {}
        self._log_tpl: dict[int, tuple[logs_pb2.LogRecord, str, tuple[str, ...]]] = {}
        # per tree: the next attempt of each attempt node (-1 for the last), slow thresholds
        self.next_attempt = []
        self.slow_ms = []
        for t in trees:
            nxt = np.full(t.n_nodes, -1, np.int64)
            for groups in t.groups:
                for g in groups:
                    for cc in g.calls:
                        for a, b in zip(cc.attempts[:-1], cc.attempts[1:], strict=True):
                            nxt[a] = b
            self.next_attempt.append(nxt)
            entry_svc = t.service == topo.service_index[self.entry]
            self.slow_ms.append(np.where(entry_svc, 1000.0, 300.0))
        self.info = []
        for o in topo.operations:
            svc = topo.service(o.service)
            if not svc.instrumented:
                self.info.append(())
            elif o.service == self.entry:
                self.info.append(lt.ENTRY_INFO)
            else:
                self.info.append(
                    lt.OPERATION_INFO.get(o.key, lt.GENERIC_INFO if topo.system != "online-boutique" else ())
                )

    # ------------------------------------------------------------------------------------------
    # spans
    # ------------------------------------------------------------------------------------------
    def span_columns(
        self, req: Requests, j: int, trace_ids: np.ndarray, span_ids: np.ndarray
    ) -> Columns | None:
        t = req.tree
        sampled = np.nonzero(req.sampled)[0]
        if len(sampled) == 0:
            return None
        inst = req.inst[:, sampled]
        sec = req.sec[sampled]
        parent = np.maximum(t.parent, 0)
        parts = []
        # server sides of instrumented services
        ran = req.ran[:, sampled] & self.instrumented[t.service][:, None]
        xs, js = np.nonzero(ran)
        cols = sampled[js]
        own = req.own_fail[xs, cols]
        code = np.where(own & req.fault_exc[xs, cols], FAULT_EXCEPTION, req.srv_code[xs, cols])
        fail = req.fail_child[xs, cols]
        ccode = np.where(fail >= 0, req.cli_code[np.maximum(fail, 0), cols], 0)
        start = req.srv_start[xs, cols]
        parts.append(
            (
                xs,
                cols,
                self.cl.resource_at(inst[xs, js], sec[js]),
                start,
                start + req.srv_dur[xs, cols],
                span_ids[xs, SERVER, cols],
                np.where(xs > 0, span_ids[xs, CLIENT, cols], 0),
                _jbase(j) + _vencode(xs, SERVER, code, fail, ccode),
                np.where(own, start + req.pre[xs, cols], 0.0),
            )
        )
        # client sides (every attempt that was made)
        ex = req.exec_[:, sampled].copy()
        ex[0] = False
        xs, js = np.nonzero(ex)
        cols = sampled[js]
        c = req.cli_code[xs, cols]
        c = np.where((c == EXCEPTION) & req.fault_exc[xs, cols], FAULT_EXCEPTION, c)
        fail = np.where(c == DEPENDENCY, req.fail_child[xs, cols], -1)
        ccode = np.where(fail >= 0, req.cli_code[np.maximum(fail, 0), cols], 0)
        start = req.cli_start[xs, cols]
        parts.append(
            (
                xs,
                cols,
                self.cl.resource_at(inst[parent[xs], js], sec[js]),
                start,
                start + req.cli_dur[xs, cols],
                span_ids[xs, CLIENT, cols],
                span_ids[parent[xs], SERVER, cols],
                _jbase(j) + _vencode(xs, CLIENT, c, fail, ccode),
                np.zeros(len(xs)),
            )
        )
        out = []
        for xs, cols, res, start, end, sid, pid, key, ev in parts:
            n = len(xs)
            out.append(
                Columns(
                    window=req.sec[cols] // self.export_s,
                    res=res.astype(np.int64),
                    time_ns=self._ns(end),
                    start_ns=self._ns(start),
                    trace_hi=trace_ids[cols, 0],
                    trace_lo=trace_ids[cols, 1],
                    span_id=sid,
                    parent_id=pid,
                    key=key,
                    extra_ns=np.where(ev > 0, self._ns(ev), 0),
                    u=np.zeros((n, 3)),
                    ms=np.zeros(n),
                )
            )
        return Columns.concat(out)

    def _ns(self, ms: np.ndarray) -> np.ndarray:
        return self.start_ns + np.round(ms * 1e6).astype(np.int64)

    def span_template(self, key: int) -> trace_pb2.Span:
        tpl = self._span_tpl.get(key)
        if tpl is not None:
            return tpl
        j, x, side, code, fail, ccode = _decode(key)
        tree = self.trees[j]
        topo = self.topo
        op = topo.operations[tree.op[x]]
        svc = topo.services[tree.service[x]]
        s = trace_pb2.Span()
        attrs: list[tuple[str, object]] = []
        name = span_name(topo, op.key)
        if side == SERVER:
            s.kind = SPAN_KIND_SERVER
            s.flags = FLAG_SAMPLED | FLAG_HAS_IS_REMOTE | (FLAG_IS_REMOTE if x > 0 else 0)
        else:
            s.kind = SPAN_KIND_CLIENT
            s.flags = FLAG_SAMPLED | FLAG_HAS_IS_REMOTE
        s.name = name
        if svc.protocol == "grpc":
            attrs += [
                ("rpc.system", "grpc"),
                ("rpc.service", svc.rpc_service or svc.name),
                ("rpc.method", op.name),
                ("rpc.grpc.status_code", GRPC_CODE[code]),
            ]
            if side == CLIENT:
                attrs += [("server.address", svc.name), ("server.port", svc.port), ("peer.service", svc.name)]
        elif svc.protocol == "http":
            attrs += [("http.request.method", op.http_method or "GET")]
            if side == SERVER:
                attrs += [
                    ("http.route", op.route or op.name),
                    ("url.scheme", "http"),
                    ("http.response.status_code", HTTP_STATUS[code]),
                    ("server.address", svc.name),
                    ("server.port", svc.port),
                ]
                if x == 0:
                    attrs.append(("user_agent.original", "python-requests/2.32.3"))
            else:
                attrs += [
                    ("url.full", f"http://{svc.name}:{svc.port}{op.route or ''}"),
                    ("server.address", svc.name),
                    ("server.port", svc.port),
                    ("peer.service", svc.name),
                ]
                if code not in (UNAVAILABLE, DEADLINE):
                    attrs.append(("http.response.status_code", HTTP_STATUS[code]))
                if tree.attempt[x] > 1:
                    attrs.append(("http.request.resend_count", int(tree.attempt[x]) - 1))
        else:
            s.name = op.name
            attrs += [
                ("db.system.name", svc.protocol),
                ("db.operation.name", op.name),
                ("server.address", svc.name),
                ("server.port", svc.port),
                ("peer.service", svc.name),
            ]
            if svc.protocol == "mysql":
                attrs.append(("db.namespace", topo.namespace.replace("-", "_")))
        if code != OK:
            exc = lt.EXCEPTIONS.get(svc.runtime, (("Error", "error"), ("Error", "error")))[
                0 if code == FAULT_EXCEPTION else 1
            ]
            if code in (EXCEPTION, FAULT_EXCEPTION):
                attrs.append(("error.type", exc[0] if side == SERVER else code_text(svc, code)))
                message = f"{exc[0]}: {exc[1]}"
            elif code == DEPENDENCY:
                attrs.append(("error.type", code_text(svc, code)))
                peer = topo.services[tree.service[fail]] if fail >= 0 else svc
                message = f"failed to call {peer.name}: {code_text(peer, ccode)}"
            else:
                attrs.append(("error.type", code_text(svc, code)))
                message = "connection refused" if code == UNAVAILABLE else "deadline exceeded"
            s.status.code = STATUS_ERROR
            s.status.message = message
            if side == SERVER and code in (EXCEPTION, FAULT_EXCEPTION):
                ev = s.events.add()
                ev.name = "exception"
                ev.attributes.extend([kv("exception.type", exc[0]), kv("exception.message", exc[1])])
        s.attributes.extend([kv(k, v) for k, v in attrs])
        self._span_tpl[key] = s
        return s

    def trace_messages(self, cols: Columns) -> Iterator[tuple[int, trace_pb2.TracesData, int]]:
        order = np.lexsort((cols.time_ns, cols.res, cols.window))
        window = cols.window[order].tolist()
        res = cols.res[order].tolist()
        start = cols.start_ns[order].tolist()
        end = cols.time_ns[order].tolist()
        key = cols.key[order].tolist()
        ev = cols.extra_ns[order].tolist()
        tid = np.stack([cols.trace_hi[order], cols.trace_lo[order]], 1).astype(">u8").tobytes()
        sid = cols.span_id[order].astype(">u8").tobytes()
        pid_arr = cols.parent_id[order]
        pid = pid_arr.astype(">u8").tobytes()
        has_parent = (pid_arr != 0).tolist()
        td = None
        cur_w = cur_r = None
        spans = None
        n = 0
        for i in range(len(window)):
            if window[i] != cur_w:
                if td is not None:
                    yield cur_w, td, n
                td, cur_w, cur_r, n = trace_pb2.TracesData(), window[i], None, 0
            if res[i] != cur_r:
                cur_r = res[i]
                rs = td.resource_spans.add()
                rs.resource.CopyFrom(self.res_pb[cur_r])
                ss = rs.scope_spans.add()
                ss.scope.CopyFrom(self._span_scope[self.res_service[cur_r]])
                spans = ss.spans
            s = spans.add()
            s.CopyFrom(self.span_template(key[i]))
            s.trace_id = tid[16 * i : 16 * i + 16]
            s.span_id = sid[8 * i : 8 * i + 8]
            if has_parent[i]:
                s.parent_span_id = pid[8 * i : 8 * i + 8]
            s.start_time_unix_nano = start[i]
            s.end_time_unix_nano = end[i]
            if ev[i]:
                s.events[0].time_unix_nano = ev[i]
            n += 1
        if td is not None:
            yield cur_w, td, n

    # ------------------------------------------------------------------------------------------
    # logs
    # ------------------------------------------------------------------------------------------
    def log_columns(
        self, req: Requests, j: int, trace_ids: np.ndarray, span_ids: np.ndarray, rng: np.random.Generator
    ) -> Columns | None:
        t = req.tree
        instr = self.instrumented[t.service][:, None]
        parent = np.maximum(t.parent, 0)
        srv_end = req.srv_start + req.srv_dur
        cli_end = req.cli_start + req.cli_dur
        has_info = np.array([len(self.info[o]) for o in t.op])
        nxt = self.next_attempt[j]
        events: list[tuple[np.ndarray, int, np.ndarray, np.ndarray, np.ndarray, bool, np.ndarray | None]] = []
        served = req.ran & instr
        # (mask, kind, time, duration, code, at caller?, failing child)
        info = served & req.sampled[None, :]
        # the wrong code path of a code_return fault writes its own line instead of the operation's
        # last INFO line (the first of two is written before the paths diverge)
        wrong = info & req.wrong
        events.append(
            (
                info & (has_info >= 1)[:, None] & ~(wrong & (has_info == 1)[:, None]),
                INFO_A,
                req.srv_start + 0.1 * req.pre,
                req.srv_dur,
                req.srv_code,
                False,
                None,
            )
        )
        events.append(
            (
                info & (has_info >= 2)[:, None] & ~wrong,
                INFO_B,
                srv_end - 0.01,
                req.srv_dur,
                req.srv_code,
                False,
                None,
            )
        )
        events.append((wrong, WRONG, srv_end - 0.01, req.srv_dur, req.srv_code, False, None))
        events.append(
            (
                served & (req.srv_dur > self.slow_ms[j][:, None]),
                SLOW,
                srv_end,
                req.srv_dur,
                np.zeros_like(req.srv_code),
                False,
                None,
            )
        )
        failed_attempt = req.exec_ & (req.cli_code != OK)
        failed_attempt[0] = False
        retried = np.zeros_like(failed_attempt)
        has_next = nxt >= 0
        retried[has_next] = failed_attempt[has_next] & req.exec_[nxt[has_next]]
        events.append((retried, RETRY, cli_end, req.cli_dur, req.cli_code, True, None))
        final_fail = failed_attempt & ~retried & t.optional[:, None]
        events.append((final_fail, OPTIONAL, cli_end, req.cli_dur, req.cli_code, True, None))
        exc_code = np.where(req.fault_exc, FAULT_EXCEPTION, EXCEPTION).astype(np.int8)
        events.append(
            (served & req.own_fail, EXC, req.srv_start + req.pre, req.srv_dur, exc_code, False, None)
        )
        events.append(
            (
                served & (req.srv_code == DEPENDENCY),
                DEP,
                srv_end,
                req.srv_dur,
                req.srv_code,
                False,
                req.fail_child,
            )
        )
        out = []
        for mask, kind, time_ms, dur, code, at_caller, fail_child in events:
            xs, cols = np.nonzero(mask)
            if len(xs) == 0:
                continue
            who = parent[xs] if at_caller else xs
            res = self.cl.resource_at(req.inst[who, cols], req.sec[cols])
            c = code[xs, cols].astype(np.int64)
            if kind in (RETRY, OPTIONAL):
                c = np.where((c == EXCEPTION) & req.fault_exc[xs, cols], FAULT_EXCEPTION, c)
            fail = fail_child[xs, cols] if fail_child is not None else np.full(len(xs), -1)
            ccode = np.where(fail >= 0, req.cli_code[np.maximum(fail, 0), cols], 0)
            n = len(xs)
            tm = time_ms[xs, cols]
            u = rng.random((n, 4))
            hi, lo = trace_ids[cols, 0], trace_ids[cols, 1]
            u[:, 0] = (lo >> np.uint64(11)).astype(np.float64) / 2.0**53
            u[:, 1] = (hi >> np.uint64(11)).astype(np.float64) / 2.0**53
            out.append(
                Columns(
                    window=req.sec[cols] // self.export_s,
                    res=res.astype(np.int64),
                    time_ns=self._ns(tm),
                    start_ns=self._ns(tm + 20.0 + 200.0 * u[:, 3]),
                    trace_hi=trace_ids[cols, 0],
                    trace_lo=trace_ids[cols, 1],
                    span_id=span_ids[who, SERVER, cols],
                    parent_id=np.where(req.sampled[cols], FLAG_SAMPLED, 0).astype(np.uint64),
                    key=_jbase(j) + _vencode(xs, kind, c, fail, ccode),
                    extra_ns=np.zeros(n, np.int64),
                    u=u[:, :3],
                    ms=dur[xs, cols],
                )
            )
        return Columns.concat(out)

    def lifecycle_columns(self, rng: np.random.Generator) -> Columns | None:
        """Start-up, shutdown, memory-pressure and slow-disk lines of every pod over the whole run."""
        cl, n_seconds = self.cl, self.cl.n_seconds
        rows: list[tuple[float, int, int, int, float]] = []  # (time s, resource, service, kind, value)
        for inc in cl.incarnations:
            si = cl.slots[inc.slot].service
            if 0 <= inc.start < n_seconds:
                rows.append((inc.start + 0.05, inc.resource, si, 0, 0.0))
                rows.append((inc.start + min(1.0, inc.ready - inc.start + 0.5), inc.resource, si, 1, 0.0))
            if inc.end_reason == "replaced" and inc.end is not None and 0 < inc.end <= n_seconds:
                rows.append((inc.end - 0.8, inc.resource, si, 2, 0.0))
                rows.append((inc.end - 0.05, inc.resource, si, 3, 0.0))
        for slot, s in enumerate(cl.slots):
            frac = cl.mem[slot] / s.mem_limit
            for t in np.nonzero((frac > 0.9) & (np.arange(n_seconds) % 10 == 0))[0]:
                rows.append(
                    (
                        t + 0.5,
                        int(cl.resource_at(np.array([slot]), np.array([t]))[0]),
                        s.service,
                        4,
                        float(frac[t] * 100),
                    )
                )
            io = cl.io_factor[slot]
            for t in np.nonzero((io > 3) & (cl.inc_at[slot] >= 0) & (np.arange(n_seconds) % 10 == 5))[0]:
                rows.append(
                    (
                        t + 0.3,
                        int(cl.resource_at(np.array([slot]), np.array([t]))[0]),
                        s.service,
                        5,
                        float(DISK_OP_MS * io[t] * 25),
                    )
                )
        rows = [r for r in rows if r[1] >= 0 and 0 <= r[0] < n_seconds]
        if not rows:
            return None
        rows.sort()
        arr = np.array(rows)
        n = len(rows)
        u = rng.random((n, 4))
        time_ms = arr[:, 0] * 1000.0
        zeros = np.zeros(n, np.uint64)
        keys = np.array(
            [_encode(J_LIFECYCLE, int(si), int(kind), 0, -1, 0) for _, _, si, kind, _ in rows], np.int64
        )
        return Columns(
            window=(arr[:, 0] // self.export_s).astype(np.int64),
            res=arr[:, 1].astype(np.int64),
            time_ns=self._ns(time_ms),
            start_ns=self._ns(time_ms + 20.0 + 200.0 * u[:, 3]),
            trace_hi=zeros,
            trace_lo=zeros,
            span_id=zeros,
            parent_id=zeros,
            key=keys,
            extra_ns=np.zeros(n, np.int64),
            u=u[:, :3],
            ms=arr[:, 4],
        )

    def log_template(self, key: int) -> tuple[logs_pb2.LogRecord, str, tuple[str, ...]]:
        got = self._log_tpl.get(key)
        if got is not None:
            return got
        j, x, kind, code, fail, ccode = _decode(key)
        topo = self.topo
        rec = logs_pb2.LogRecord()
        attrs: list[tuple[str, object]] = []
        if j == J_LIFECYCLE:
            svc = topo.services[x]
            life = LIFE[kind]
            sev, text = lt.LIFECYCLE[life]
            if not svc.instrumented and life in lt.DATASTORE_LIFECYCLE.get(svc.runtime, {}):
                text = lt.DATASTORE_LIFECYCLE[svc.runtime][life]
            static = {"service": svc.name, "version": svc.version, "port": svc.port}
            attrs.append(("log.origin", "lifecycle"))
        else:
            tree = self.trees[j]
            op = topo.operations[tree.op[x]]
            svc = topo.services[tree.service[x]]
            caller_op = topo.operations[tree.op[tree.parent[x]]] if tree.parent[x] >= 0 else None
            static = {
                "name": span_name(topo, op.key),
                "method": op.http_method or "",
                "status": HTTP_STATUS.get(code, 200),
                "path": lt.route_path(op.route or op.name),
                "threshold": int(self.slow_ms[j][x]),
                "peer": svc.name,
                "callee": span_name(topo, op.key),
                "code": code_text(svc, code),
                "next": int(tree.attempt[x]) + 1,
                "attempts": int(tree.max_attempts[x]),
            }
            if kind in (INFO_A, INFO_B):
                sev, text = lt.INFO, self.info[tree.op[x]][kind - INFO_A]
            elif kind == WRONG:
                sev, text = lt.INFO, lt.WRONG_PATH
            elif kind == SLOW:
                sev, text = lt.WARN, lt.SLOW
            elif kind in (RETRY, OPTIONAL):
                sev, text = lt.WARN, lt.RETRY if kind == RETRY else lt.OPTIONAL
                attrs.append(("error.type", code_text(svc, code)))
                svc = topo.services[tree.service[tree.parent[x]]]  # the caller writes it
                static["name"] = span_name(topo, caller_op.key) if caller_op else ""
            elif kind == EXC:
                sev, text = lt.ERROR, lt.EXCEPTION
                exc = lt.EXCEPTIONS[svc.runtime][0 if code == FAULT_EXCEPTION else 1]
                static |= {"exc_type": exc[0], "exc_message": exc[1]}
                attrs += [("exception.type", exc[0]), ("exception.message", exc[1]), ("error.type", exc[0])]
            else:
                sev, text = lt.ERROR, lt.DEPENDENCY
                peer_svc = topo.services[tree.service[fail]]
                peer_op = topo.operations[tree.op[fail]]
                static |= {
                    "peer": peer_svc.name,
                    "callee": span_name(topo, peer_op.key),
                    "code": code_text(peer_svc, ccode),
                }
                attrs.append(("error.type", code_text(peer_svc, ccode)))
        rec.severity_number = sev
        rec.severity_text = lt.SEVERITY_TEXT[sev]
        if attrs:
            rec.attributes.extend([kv(k, v) for k, v in attrs])
        body, names = lt.partial(text, static)
        got = (rec, body, names)
        self._log_tpl[key] = got
        return got

    def log_messages(self, cols: Columns) -> Iterator[tuple[int, logs_pb2.LogsData, int]]:
        order = np.lexsort((cols.time_ns, cols.res, cols.window))
        window = cols.window[order].tolist()
        res = cols.res[order].tolist()
        time_ns = cols.time_ns[order].tolist()
        observed = cols.start_ns[order].tolist()
        key = cols.key[order].tolist()
        flags = cols.parent_id[order].tolist()
        u = cols.u[order].tolist()
        ms = cols.ms[order].tolist()
        hi = cols.trace_hi[order]
        has_trace = (hi != 0).tolist()
        tid = np.stack([hi, cols.trace_lo[order]], 1).astype(">u8").tobytes()
        sid = cols.span_id[order].astype(">u8").tobytes()
        ld = None
        cur_w = cur_r = None
        records = None
        n = 0
        for i in range(len(window)):
            if window[i] != cur_w:
                if ld is not None:
                    yield cur_w, ld, n
                ld, cur_w, cur_r, n = logs_pb2.LogsData(), window[i], None, 0
            if res[i] != cur_r:
                cur_r = res[i]
                rl = ld.resource_logs.add()
                rl.resource.CopyFrom(self.res_pb[cur_r])
                sl = rl.scope_logs.add()
                sl.scope.CopyFrom(self._log_scope[self.res_service[cur_r]])
                records = sl.log_records
            tpl, body, names = self.log_template(key[i])
            r = records.add()
            r.CopyFrom(tpl)
            r.time_unix_nano = time_ns[i]
            r.observed_time_unix_nano = observed[i]
            u0, u1, u2 = u[i]
            r.body.string_value = lt.render(body, names, u0, u1, u2, ms[i])
            if has_trace[i]:
                r.trace_id = tid[16 * i : 16 * i + 16]
                r.span_id = sid[8 * i : 8 * i + 8]
                r.flags = flags[i]
            n += 1
        if ld is not None:
            yield cur_w, ld, n


def _vencode(
    xs: np.ndarray, a: int | np.ndarray, code: np.ndarray, fail: np.ndarray, ccode: np.ndarray
) -> np.ndarray:
    """Vectorised :func:`_encode` without the journey (add :func:`_jbase`)."""
    xs = xs.astype(np.int64)
    return (
        ((xs * 8 + a) * 8 + code.astype(np.int64)) * (_MAXN + 1) + (fail.astype(np.int64) + 1)
    ) * 8 + ccode.astype(np.int64)
