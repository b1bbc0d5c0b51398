"""Incidents, windows and cases: the small arrays of the ``features`` stage.

The incident list of a raw dataset (:func:`read_incidents`), the window grid of the matrices
(:func:`make_grid`), which windows an incident covers (:func:`overlapping`), the symptom service
(:func:`symptom_service`) and each incident's case (:func:`case_arrays`, written by
:func:`write_cases`). The stage (:mod:`otlp_aiops.features.build`) and the store
(:mod:`otlp_aiops.features.store`, which rebuilds cases at another detection offset) share them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from otlp_aiops.features.config import FeaturesConfig
from otlp_aiops.outputs import file_stem, write_npz

TS = pa.timestamp("ns", tz="UTC")


class FeaturesError(ValueError):
    """Input the stage cannot use; the message names the file, the record and the reason."""


# ---------------------------------------------------------------------------------------------
# incidents
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Incidents:
    ids: np.ndarray  # (I,) object
    start: np.ndarray  # (I,) int64 ns
    end: np.ndarray  # (I,) int64 ns (end_time, or start + incident_length when null)
    ref_start: np.ndarray  # (I,) int64 ns, or -1
    ref_end: np.ndarray
    table: pa.Table


def read_incidents(path: Path, incident_length_s: float) -> Incidents:
    if not path.exists():
        raise FeaturesError(f"{path}: missing (every raw dataset has an incident list, maybe empty)")
    t = pq.read_table(path)
    need = ["incident_id", "start_time", "end_time", "root_cause_service"]
    missing = [c for c in need if c not in t.column_names]
    if missing:
        raise FeaturesError(f"{path}: missing column(s) {', '.join(missing)}")
    for c in ("root_cause_indicator", "fault_type"):
        if c not in t.column_names:
            t = t.append_column(c, pa.nulls(len(t), pa.string()))

    def ns(col: str) -> np.ndarray:
        a = t.column(col)
        if not pa.types.is_timestamp(a.type):
            raise FeaturesError(f"{path}: column {col} is {a.type}, expected a timestamp")
        return a.cast(pa.timestamp("ns", tz="UTC")).cast(pa.int64()).fill_null(-1).to_numpy()

    ids = np.array(t.column("incident_id").to_pylist(), dtype=object)
    start = ns("start_time")
    bad = np.flatnonzero(start < 0)
    if len(bad):
        raise FeaturesError(f"{path}: incident {ids[bad[0]]!r} (row {bad[0]}): start_time is null")
    dup = {i for i in ids if (ids == i).sum() > 1}
    if dup or any(i is None for i in ids):
        repeated = sorted(map(str, dup))
        raise FeaturesError(f"{path}: incident_id must be unique and non-null (repeated: {repeated})")
    end = ns("end_time")
    end = np.where(end < 0, start + int(incident_length_s * 1e9), end)
    if (end < start).any():
        i = int(np.flatnonzero(end < start)[0])
        raise FeaturesError(f"{path}: incident {ids[i]!r}: end_time before start_time")
    has_ref = "reference_start" in t.column_names and "reference_end" in t.column_names
    rs = ns("reference_start") if has_ref else np.full(len(t), -1, np.int64)
    re_ = ns("reference_end") if has_ref else np.full(len(t), -1, np.int64)
    order = np.argsort(start, kind="stable")
    return Incidents(ids[order], start[order], end[order], rs[order], re_[order], t.take(order))


# ---------------------------------------------------------------------------------------------
# windows
# ---------------------------------------------------------------------------------------------
def overlapping(grid: np.ndarray, w_ns: int, start: np.ndarray, end: np.ndarray) -> np.ndarray:
    """(N,) index of the first interval [start, end) overlapping each window [w, w + W), or -1."""
    hit = np.full(len(grid), -1, np.int64)
    for k in range(len(start) - 1, -1, -1):  # over intervals (few), earliest wins
        lo = np.searchsorted(grid, start[k] - w_ns, side="right")
        hi = np.searchsorted(grid, end[k] if end[k] > start[k] else start[k] + 1, side="left")
        hit[lo:hi] = k
    return hit


def fault_free(windows: np.ndarray, w_ns: int, inc: Incidents, margin_s: float) -> np.ndarray:
    """(N,) bool: no incident within ``margin_s`` of the window."""
    margin = int(margin_s * 1e9)
    return overlapping(windows, w_ns, inc.start - margin, inc.end + margin) < 0


def make_grid(ws: np.ndarray, w_ns: int, segment_gap: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The windows of the matrices: the windows with data, small gaps (<= segment_gap empty windows)
    filled; returns (grid, segment id, has_data)."""
    if len(ws) == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, bool)
    breaks = np.flatnonzero(np.diff(ws) // w_ns - 1 > segment_gap)
    starts = np.concatenate([[ws[0]], ws[breaks + 1]])
    ends = np.concatenate([ws[breaks], [ws[-1]]])
    lengths = (ends - starts) // w_ns + 1
    seg = np.repeat(np.arange(len(starts)), lengths)
    offsets = np.arange(len(seg)) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    grid = starts[seg] + offsets * w_ns
    has = np.isin(grid, ws)
    return grid, seg.astype(np.int64), has


@dataclass(frozen=True)
class WindowLabels:
    """Per grid window: the incident it overlaps (index into the incidents, or -1) and whether it is
    fault-free (no incident within the margin, or inside a case's own normal recording)."""

    hit: np.ndarray  # (N,) int64
    fault_free: np.ndarray  # (N,) bool


def label_windows(grid: np.ndarray, w_ns: int, inc: Incidents, cfg: FeaturesConfig) -> WindowLabels:
    hit = overlapping(grid, w_ns, inc.start, inc.end)
    ff = fault_free(grid, w_ns, inc, cfg.margin_s)
    has_ref = inc.ref_start >= 0
    if has_ref.any():  # a case's own normal recording is fault-free by definition
        ref_end = inc.ref_end[has_ref] - w_ns + 1
        in_ref = overlapping(grid, w_ns, inc.ref_start[has_ref], ref_end) >= 0
        ff |= in_ref & (hit < 0)
    return WindowLabels(hit, ff)


# ---------------------------------------------------------------------------------------------
# the symptom service
# ---------------------------------------------------------------------------------------------
def symptom_service(
    meta: dict, topology: dict, services: list[str], edges: list[tuple[str, str]]
) -> str | None:
    """Where the user-facing alarm fires: the dataset's declared symptom service, else the topology's
    entry service, else ``frontend``, else the only service nobody calls. A declared service that has
    no edge in the graph while the graph has edges (Nezha's ``ts-ui-dashboard`` has no traces; its calls
    go to ``ts-gateway-service``) cannot start a walk through the graph: the entry of the graph — the
    caller-less service reaching the most services — stands in for it."""
    callees = {b for _, b in edges}
    callers = {a for a, _ in edges}
    roots = sorted(callers - callees)
    for cand in (meta.get("symptom_service"), topology.get("entry_service")):
        if isinstance(cand, str) and cand in services:
            if edges and cand not in callers | callees and roots:
                return _widest_root(roots, edges)
            return cand
    if "frontend" in services:
        return "frontend"
    if len(roots) == 1:
        return roots[0]
    return _widest_root(roots, edges) if roots else None


def _widest_root(roots: list[str], edges: list[tuple[str, str]]) -> str:
    succ: dict[str, set[str]] = {}
    for a, b in edges:
        succ.setdefault(a, set()).add(b)

    def reach(r: str) -> int:
        seen, stack = {r}, [r]
        while stack:
            for n in succ.get(stack.pop(), ()):
                if n not in seen:
                    seen.add(n)
                    stack.append(n)
        return len(seen)

    return max(roots, key=lambda r: (reach(r), r))


# ---------------------------------------------------------------------------------------------
# cases
# ---------------------------------------------------------------------------------------------
def case_window(start_ns: int, cfg: FeaturesConfig, w_ns: int) -> tuple[np.ndarray, int]:
    """The window starts a case covers and the onset index: the onset window is the one containing the
    (offset-shifted) start; ceil(before / W) windows before it, ceil(after / W) from it on."""
    s = start_ns + round(cfg.offset_s * 1e9)
    onset_w = (s // w_ns) * w_ns
    nb = int(np.ceil(cfg.before_s * 1e9 / w_ns - 1e-9))
    na = int(np.ceil(cfg.after_s * 1e9 / w_ns - 1e-9))
    return onset_w + (np.arange(nb + na, dtype=np.int64) - nb) * w_ns, nb


def case_arrays(
    k: int,
    inc: Incidents,
    cfg: FeaturesConfig,
    w_ns: int,
    grid: np.ndarray,
    values: np.ndarray,
    ff: np.ndarray,
) -> dict[str, Any]:
    """Incident ``k``'s case: its windows (a window overlapping another incident is masked to NaN: it
    stays in the array so that every case has the same shape and onset), the onset index, and its
    reference windows — the incident's own fault-free recording when it has one, else the latest
    fault-free windows before the start; when those are fewer than ``min_reference``, the fault-free
    windows of the dataset nearest in time (before or after) make up the reference."""
    n_ref = int(np.ceil(cfg.reference_s * 1e9 / w_ns - 1e-9))
    n_services, n_features = values.shape[1:]
    times, onset = case_window(int(inc.start[k]), cfg, w_ns)
    pos = np.searchsorted(grid, times)
    if len(grid):
        found = (pos < len(grid)) & (grid[np.minimum(pos, len(grid) - 1)] == times)
    else:
        found = np.zeros(len(times), bool)
    vals = np.full((len(times), n_services, n_features), np.nan)
    vals[found] = values[pos[found]]
    others = np.arange(len(inc.ids)) != k
    masked = overlapping(times, w_ns, inc.start[others], inc.end[others]) >= 0
    vals[masked] = np.nan
    if inc.ref_start[k] >= 0 and inc.ref_end[k] >= 0:
        ref_idx = np.flatnonzero((grid >= inc.ref_start[k]) & (grid + w_ns <= inc.ref_end[k]))
        ref_source = "recording"
    else:
        shifted = inc.start[k] + round(cfg.offset_s * 1e9)
        if n_ref:
            ref_idx = np.flatnonzero(ff & (grid + w_ns <= min(shifted, inc.start[k])))[-n_ref:]
        else:
            ref_idx = np.zeros(0, np.int64)
        ref_source = "before"
        if len(ref_idx) < min(cfg.min_reference, n_ref):
            cand = np.flatnonzero(ff)
            nearest = cand[np.argsort(np.abs(grid[cand] - inc.start[k]), kind="stable")[:n_ref]]
            ref_idx = np.sort(nearest)
            ref_source = "nearest"
    return {
        "times": times,
        "onset": onset,
        "values": vals,
        "masked": masked,
        "ref_idx": ref_idx,
        "ref_source": ref_source,
    }


_CASE_COUNTS = ("onset", "n_windows", "n_masked", "n_empty", "n_empty_after", "n_reference")
_CASE_LABELS = ("root_cause_service", "root_cause_indicator", "fault_type")


def write_cases(
    tmp: Path,
    cfg: FeaturesConfig,
    w_ns: int,
    inc: Incidents,
    grid: np.ndarray,
    values: np.ndarray,
    ff: np.ndarray,
    dataset: str,
) -> list[dict[str, Any]]:
    """Per incident: :func:`case_arrays` written to ``cases/<id>.npz`` and a row of ``cases.parquet``."""
    (tmp / "cases").mkdir()
    rows = []
    for k, cid in enumerate(inc.ids):
        c = case_arrays(k, inc, cfg, w_ns, grid, values, ff)
        times, onset, vals, ref_idx = c["times"], c["onset"], c["values"], c["ref_idx"]
        # file_stem: ids `x/1` and `x_1` get two files; write_npz: no wall-clock zip timestamps
        file = f"cases/{file_stem(cid)}.npz"
        write_npz(
            tmp / file,
            times=times.view("datetime64[ns]"),
            values=vals,
            reference_times=grid[ref_idx].view("datetime64[ns]"),
            reference=values[ref_idx],
        )
        empty = np.isnan(vals).all(axis=(1, 2))
        rows.append(
            {
                "case_id": cid,
                "file": file,
                "start_time": int(inc.start[k]),
                "first_window": int(times[0]),
                "onset_window": int(times[onset]),
                "onset": onset,
                "n_windows": len(times),
                "n_masked": int(c["masked"].sum()),
                "n_empty": int(empty.sum()),
                "n_empty_after": int(empty[onset:].sum()),
                "n_reference": len(ref_idx),
                "reference_source": c["ref_source"],
            }
        )
    pq.write_table(_cases_table(rows, inc.table, dataset), tmp / "cases.parquet")
    return rows


def _cases_table(rows: list[dict[str, Any]], incidents: pa.Table, dataset: str) -> pa.Table:
    if not rows:
        return pa.table({"case_id": pa.array([], pa.string())})

    def column(name: str, type_: pa.DataType | None = None) -> pa.Array:
        return pa.array([r[name] for r in rows], type_)

    return pa.table(
        {
            "case_id": column("case_id", pa.string()),
            "dataset": pa.array([dataset] * len(rows), pa.string()),
            "file": column("file"),
            "start_time": column("start_time", pa.int64()).cast(TS),
            "first_window": column("first_window", pa.int64()).cast(TS),
            "onset_window": column("onset_window", pa.int64()).cast(TS),
            **{c: column(c, pa.int64()) for c in _CASE_COUNTS},
            "reference_source": column("reference_source", pa.string()),
            **{c: incidents.column(c).cast(pa.string()) for c in _CASE_LABELS},
        }
    )
