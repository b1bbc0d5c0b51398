"""Every request of one journey over a stretch of time, simulated at once: one numpy row per call
tree node, one column per request.

Per node: the callee pod is picked among the pods in the endpoints; the own processing time is a
heavy-tailed draw (log-normal body, Pareto tail) scaled by the pod's latency factor, plus disk time
scaled by its I/O factor; an exception happens with the operation's background rate plus any code
fault; a ``code_return`` fault sends a share of the operation's requests down another code path that
returns a default result without making its calls (and without an error). The server side lasts own
time + its call groups (sequential groups add, calls in a group overlap); a failed non-optional call
aborts the handler, which fails too. The client side adds the network both ways (plus any delay
injected on the sending pod), retransmissions and drops from packet loss, a refused connection for a
crashed pod, and the caller's timeout; retryable failures (UNAVAILABLE, DEADLINE_EXCEEDED) are retried
with backoff. Nothing here reads the incident list: the cluster state is the only way a fault reaches a
request.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from otlp_aiops.datasets.simulator.calltree import CallTree
from otlp_aiops.datasets.simulator.cluster import CFS_PERIOD_MS, ClusterState
from otlp_aiops.datasets.simulator.topology import Topology

OK, EXCEPTION, DEPENDENCY, UNAVAILABLE, DEADLINE = 0, 1, 2, 3, 4
BASE_NET_MS = 0.15
RTO_MS = 200.0
BACKOFF_MS = 25.0
PRE_FRACTION = 0.3  # share of the own time spent before the first call
TAIL_P, TAIL_ALPHA = 0.02, 1.5


@dataclass
class OpArrays:
    latency: np.ndarray
    sigma: np.ndarray
    io: np.ndarray
    error: np.ndarray

    @classmethod
    def of(cls, topo: Topology) -> OpArrays:
        ops = topo.operations
        return cls(
            np.array([o.latency_ms for o in ops]),
            np.array([o.sigma for o in ops]),
            np.array([o.io_ms for o in ops]),
            np.array([o.error_rate for o in ops]),
        )


@dataclass
class Requests:
    """The simulated requests of one journey in one chunk. Times in ms since the recording start."""

    tree: CallTree
    sec: np.ndarray  # (N,) second each request arrives
    start_ms: np.ndarray  # (N,)
    sampled: np.ndarray  # (N,) head-sampled: its spans are exported
    inst: np.ndarray  # (M, N) callee slot, -1 when no pod was in the endpoints
    exec_: np.ndarray  # (M, N) the attempt was made (client side exists)
    ran: np.ndarray  # (M, N) the server side ran
    own_fail: np.ndarray
    fault_exc: np.ndarray  # the exception is the injected bug's (else a background error)
    wrong: np.ndarray  # (M, N) the handler took the wrong code path of a code_return fault (no calls)
    srv_code: np.ndarray  # OK / EXCEPTION / DEPENDENCY
    srv_dur: np.ndarray
    srv_start: np.ndarray
    pre: np.ndarray
    cli_code: np.ndarray  # OK / EXCEPTION / DEPENDENCY (server said so) / UNAVAILABLE / DEADLINE
    cli_dur: np.ndarray
    cli_start: np.ndarray
    fail_child: np.ndarray  # node whose failure failed this server side, -1

    @property
    def n(self) -> int:
        return len(self.sec)


def simulate_requests(
    tree: CallTree,
    ops: OpArrays,
    cl: ClusterState,
    rng: np.random.Generator,
    counts: np.ndarray,
    sec0: int,
    sample_ratio: float,
) -> Requests:
    """``counts``: requests per second of this journey for seconds ``sec0 ...``."""
    sec = np.repeat(np.arange(sec0, sec0 + len(counts), dtype=np.int64), counts)
    N, M = len(sec), tree.n_nodes
    start_ms = sec * 1000.0 + rng.random(N) * 1000.0
    order = np.argsort(start_ms, kind="stable")
    sec, start_ms = sec[order], start_ms[order]
    sampled = rng.random(N) < sample_ratio
    variables = [rng.integers(lo, hi + 1, N) for (_, lo, hi) in tree.variables]

    # -- routing: a pod of the callee service, among those in its endpoints --
    inst = np.empty((M, N), np.int32)
    for s in np.unique(tree.service):
        xs = np.nonzero(tree.service == s)[0]
        cnt = cl.route_count[s][sec]
        table = cl.route_table[s]
        j = (rng.random((len(xs), N)) * cnt).astype(np.int64)
        j = np.minimum(j, table.shape[1] - 1)
        chosen = table[sec[None, :], j]
        inst[xs] = np.where(cnt[None, :] > 0, chosen, -1)
    safe = np.maximum(inst, 0)
    secb = np.broadcast_to(sec, (M, N))
    up = cl.ready[safe, secb] & (inst >= 0)

    # -- own processing time and exceptions --
    op = tree.op
    z = rng.standard_normal((M, N))
    tail = np.where(rng.random((M, N)) < TAIL_P, 1.0 + 2.0 * rng.pareto(TAIL_ALPHA, (M, N)), 1.0)
    own = ops.latency[op][:, None] * np.exp(ops.sigma[op][:, None] * z) * np.minimum(tail, 200.0)
    own *= cl.lat_factor[safe, secb]
    # CFS throttling: with probability f the request lands in a throttled stretch of the quota period
    f = cl.throttle[safe, secb]
    u_thr = rng.random((M, N))
    own += np.where(u_thr < f, (u_thr / np.maximum(f, 1e-9)) * f * CFS_PERIOD_MS, 0.0)
    own += ops.io[op][:, None] * cl.io_factor[safe, secb] * np.exp(0.3 * rng.standard_normal((M, N)))
    u_fail = rng.random((M, N))
    fault_p = cl.op_fault[op[:, None], secb]
    own_fail = u_fail < ops.error[op][:, None] + fault_p
    fault_exc = u_fail < fault_p  # the bug's own exception, not a background one
    # a wrong result (code_return): the same uniform, above the exception's share, so the draws of
    # every other request are unchanged and the two never coincide
    lo = ops.error[op][:, None] + fault_p
    wrong = (u_fail >= lo) & (u_fail < lo + cl.op_return[op[:, None], secb])
    pre = own * PRE_FRACTION
    post = own - pre

    # -- network between caller pod and callee pod --
    parent = np.maximum(tree.parent, 0)
    caller = safe[parent]
    req_net = BASE_NET_MS * np.exp(0.3 * rng.standard_normal((M, N))) + cl.net_delay_ms[caller, secb]
    resp_net = BASE_NET_MS * np.exp(0.3 * rng.standard_normal((M, N))) + cl.net_delay_ms[safe, secb] * (
        inst >= 0
    )
    loss = 1.0 - (1.0 - cl.loss[caller, secb]) * (1.0 - cl.loss[safe, secb] * (inst >= 0))
    retx = np.where(rng.random((M, N)) < 1.0 - (1.0 - loss) ** 3, RTO_MS * rng.integers(1, 4, (M, N)), 0.0)
    u_drop = rng.random((M, N))
    drop_req = u_drop < 0.3 * loss
    drop_resp = (u_drop >= 0.3 * loss) & (u_drop < 0.6 * loss)
    delivered = up & ~drop_req
    backoff_u = rng.random((M, N))

    # -- bottom-up: durations and outcomes --
    srv_dur = np.zeros((M, N))
    srv_code = np.zeros((M, N), np.int8)
    cli_dur = np.zeros((M, N))
    cli_code = np.zeros((M, N), np.int8)
    fail_child = np.full((M, N), -1, np.int32)
    attempt_cond = np.ones((M, N), bool)
    attempt_off = np.zeros((M, N))
    group_off: list[list[np.ndarray]] = [[] for _ in range(M)]
    group_alive: list[list[np.ndarray]] = [[] for _ in range(M)]
    true_n = np.ones(N, bool)
    timeout = tree.timeout_ms
    for x in range(M - 1, -1, -1):
        alive = ~own_fail[x]
        goes = ~wrong[x]  # the wrong code path returns before making any call
        elapsed = pre[x].copy()
        failed_by = np.full(N, -1, np.int32)
        for g in tree.groups[x]:
            active = variables[g.var] > g.k if g.var >= 0 else true_n
            gdur = np.zeros(N)
            gfail = np.zeros(N, bool)
            gby = np.full(N, -1, np.int32)
            for cc in g.calls:
                cond = true_n
                total = np.zeros(N)
                last_fail = np.zeros(N, bool)
                last_node = np.full(N, cc.attempts[0], np.int32)
                prev_retry = np.zeros(N, bool)
                for ai, a in enumerate(cc.attempts):
                    if ai == 0:
                        total = cli_dur[a].copy()
                    else:
                        cond = cond & last_fail & prev_retry
                        backoff = BACKOFF_MS * 2 ** (ai - 1) * (0.5 + backoff_u[a])
                        attempt_off[a] = total + backoff
                        total = np.where(cond, total + backoff + cli_dur[a], total)
                        attempt_cond[a] = cond
                    failed = cli_code[a] != OK
                    last_fail = np.where(cond, failed, last_fail)
                    last_node = np.where(cond, a, last_node)
                    prev_retry = cli_code[a] >= UNAVAILABLE
                gdur = np.maximum(gdur, np.where(active, total, 0.0))
                if not cc.optional:
                    call_fail = last_fail & active
                    gby = np.where(call_fail & ~gfail, last_node, gby)
                    gfail |= call_fail
            runs = alive & goes
            group_off[x].append(elapsed.copy())
            group_alive[x].append(runs)
            elapsed = np.where(runs, elapsed + gdur, elapsed)
            failed_by = np.where(runs & gfail, gby, failed_by)
            alive = alive & ~(runs & gfail)
        ok = alive
        srv_dur[x] = elapsed + np.where(ok, post[x], 0.2 * post[x])
        srv_code[x] = np.where(own_fail[x], EXCEPTION, np.where(ok, OK, DEPENDENCY))
        fail_child[x] = failed_by
        if x == 0:
            continue
        total = req_net[x] + retx[x] + srv_dur[x] + resp_net[x]
        late = drop_req[x] | drop_resp[x] | (total > timeout[x])
        cli_code[x] = np.where(
            inst[x] < 0, UNAVAILABLE, np.where(~up[x], UNAVAILABLE, np.where(late, DEADLINE, srv_code[x]))
        )
        cli_dur[x] = np.where(
            inst[x] < 0, 0.3, np.where(~up[x], 1.0 + req_net[x], np.where(late, timeout[x], total))
        )

    # -- top-down: which attempts happened, and when --
    exec_ = np.zeros((M, N), bool)
    ran = np.zeros((M, N), bool)
    cli_start = np.zeros((M, N))
    srv_start = np.zeros((M, N))
    exec_[0] = True
    ran[0] = delivered[
        0
    ]  # a request the entry pod never gets leaves no trace (the load generator is not instrumented)
    cli_start[0] = start_ms
    srv_start[0] = start_ms
    for x in range(M):
        for gi, g in enumerate(tree.groups[x]):
            active = variables[g.var] > g.k if g.var >= 0 else true_n
            gexec = ran[x] & group_alive[x][gi] & active
            gstart = srv_start[x] + group_off[x][gi]
            for ci, cc in enumerate(g.calls):
                for a in cc.attempts:
                    e = gexec & attempt_cond[a]
                    exec_[a] = e
                    cli_start[a] = gstart + attempt_off[a] + 0.02 * ci
                    srv_start[a] = cli_start[a] + req_net[a] + retx[a]
                    ran[a] = e & delivered[a]
    return Requests(
        tree=tree,
        sec=sec,
        start_ms=start_ms,
        sampled=sampled,
        inst=inst,
        exec_=exec_,
        ran=ran,
        own_fail=own_fail,
        fault_exc=fault_exc,
        wrong=wrong,
        srv_code=srv_code,
        srv_dur=srv_dur,
        srv_start=srv_start,
        pre=pre,
        cli_code=cli_code,
        cli_dur=cli_dur,
        cli_start=cli_start,
        fail_child=fail_child,
    )
