"""A journey's call tree expanded into a flat list of nodes, so that every request of that journey
can be simulated at once with numpy (one array row per node).

A node is one *attempt* of one call: its client side lives in the caller, its server side in the
callee. Node 0 is the entry operation (server side only). Loops over a journey variable are
expanded to their largest count; a copy runs only where the variable is large enough. Retries are
expanded to ``attempts`` nodes; attempt k runs only if attempt k-1 failed with a retryable code.
Children always have larger node ids than their parent.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from otlp_aiops.datasets.simulator.topology import Call, Journey, Par, Repeat, Step, Topology

MAX_NODES = 50_000


@dataclass
class CallCopy:
    """One copy of a call in a group: its attempt nodes, in order."""

    attempts: list[int]
    optional: bool


@dataclass
class Group:
    """Calls that start together (one call, or a ``Par``); the next group starts when all ended."""

    calls: list[CallCopy]
    var: int  # journey variable index, or -1
    k: int  # the group runs only where variable > k


@dataclass
class CallTree:
    journey: Journey
    variables: list[tuple[str, int, int]]
    op: np.ndarray  # operation index per node
    service: np.ndarray
    parent: np.ndarray  # node whose server side makes the call (-1 for the entry)
    attempt: np.ndarray  # 1-based
    max_attempts: np.ndarray
    timeout_ms: np.ndarray
    optional: np.ndarray
    groups: list[list[Group]] = field(default_factory=list)  # per node

    @property
    def n_nodes(self) -> int:
        return len(self.op)

    def expected_calls(self, n_ops: int) -> np.ndarray:
        """Mean first-attempt calls of each operation per request (the load the journey puts on it)."""
        prob = np.zeros(self.n_nodes)
        prob[0] = 1.0
        for x in range(self.n_nodes):
            for g in self.groups[x]:
                p = prob[x] * self._p_var(g.var, g.k)
                for cc in g.calls:
                    prob[cc.attempts[0]] = p
        out = np.zeros(n_ops)
        np.add.at(out, self.op, prob)
        return out

    def _p_var(self, var: int, k: int) -> float:
        if var < 0:
            return 1.0
        _, lo, hi = self.variables[var]
        return max(0, hi - max(k + 1, lo) + 1) / (hi - lo + 1)


def expand(topo: Topology, journey: Journey) -> CallTree:
    variables = list(journey.variables)
    var_index = {name: i for i, (name, _, _) in enumerate(variables)}
    rows: list[
        tuple[int, int, int, int, float, bool]
    ] = []  # op, parent, attempt, max_attempts, timeout, optional
    groups: list[list[Group]] = []

    def flatten(steps: tuple[Step, ...]) -> list[tuple[tuple[Call, ...], int, int]]:
        out: list[tuple[tuple[Call, ...], int, int]] = []
        for s in steps:
            if isinstance(s, Call):
                out.append(((s,), -1, 0))
            elif isinstance(s, Par):
                out.append((s.calls, -1, 0))
            else:
                assert isinstance(s, Repeat)
                if isinstance(s.count, int):
                    n, var = s.count, -1
                else:
                    if s.count not in var_index:
                        raise ValueError(
                            f"{topo.system}: journey {journey.name} reaches a loop over {s.count!r} but does "
                            "not "
                            f"define that variable"
                        )
                    var = var_index[s.count]
                    n = variables[var][2]
                for k in range(n):
                    for b in s.body:
                        if isinstance(b, Repeat):
                            raise ValueError(f"{topo.system}: nested loops are not supported")
                        calls = b.calls if isinstance(b, Par) else (b,)
                        out.append((calls, var, k if var >= 0 else 0))
        return out

    def add(op_idx: int, parent: int, attempt: int, call: Call | None) -> int:
        nid = len(rows)
        if nid >= MAX_NODES:
            raise ValueError(
                f"{topo.system}: journey {journey.name} expands to more than {MAX_NODES} calls; "
                "use fewer services, retries or loop iterations"
            )
        rows.append(
            (
                op_idx,
                parent,
                attempt,
                call.attempts if call else 1,
                call.timeout_ms if call else 0.0,
                call.optional if call else False,
            )
        )
        groups.append([])
        op = topo.operations[op_idx]
        my_groups = []
        for calls, var, k in flatten(op.steps):
            copies = []
            for c in calls:
                callee = topo.op_index[c.op]
                ids = [add(callee, nid, a, c) for a in range(1, c.attempts + 1)]
                copies.append(CallCopy(ids, c.optional))
            my_groups.append(Group(copies, var, k))
        groups[nid] = my_groups
        return nid

    add(topo.op_index[journey.entry], -1, 1, None)
    arr = np.array(rows, dtype=object)
    op = arr[:, 0].astype(np.int32)
    return CallTree(
        journey=journey,
        variables=variables,
        op=op,
        service=np.array([topo.service_index[topo.operations[o].service] for o in op], np.int32),
        parent=arr[:, 1].astype(np.int32),
        attempt=arr[:, 2].astype(np.int16),
        max_attempts=arr[:, 3].astype(np.int16),
        timeout_ms=arr[:, 4].astype(np.float64),
        optional=arr[:, 5].astype(bool),
        groups=groups,
    )
