"""Read what the ``features`` stage wrote (``data/features/<dataset>/``) into the in-memory objects of
:mod:`otlp_aiops.features.data` that every model takes."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq

from otlp_aiops.features.cases import case_arrays, read_incidents
from otlp_aiops.features.config import FeaturesConfig
from otlp_aiops.features.data import CaseData, DetectionData, EdgeSeries, ReferenceData, ServiceGraph


def _meta(features_dir: Path) -> dict[str, Any]:
    path = features_dir / "meta.json"
    if not path.exists():
        raise FileNotFoundError(f"{path}: not a features folder (run the features stage first)")
    return json.loads(path.read_text())


@lru_cache(maxsize=8)
def _graph_cached(path: str, mtime: float) -> ServiceGraph:
    d = Path(path)
    meta = _meta(d)
    g = pq.read_table(d / "graph_edges.parquet", columns=["caller", "callee"])
    edges = tuple(zip(g.column("caller").to_pylist(), g.column("callee").to_pylist(), strict=True))
    return ServiceGraph(tuple(meta["services"]), edges, meta["graph_source"])


def load_graph(features_dir: str | Path) -> ServiceGraph:
    d = Path(features_dir)
    return _graph_cached(str(d.resolve()), (d / "meta.json").stat().st_mtime)


def _ns(col) -> np.ndarray:
    return col.to_numpy().astype("datetime64[ns]")


def load_cases(
    features_dir: str | Path, case_ids: Iterable[str] | None = None, *, detection_offset: float | None = None
) -> list[CaseData]:
    """The labelled cases (all, or those named, in the order of the incident start times).

    ``detection_offset`` (seconds) rebuilds the cases with another shift of the start than the stage
    used (RCAEval's protocol knob) from the stored matrix, with the same rules."""
    d = Path(features_dir)
    meta = _meta(d)
    table = pq.read_table(d / "cases.parquet")
    if table.num_rows == 0:
        return []
    if detection_offset is not None and float(detection_offset) != _config(meta).offset_s:
        return _rebuilt_cases(d, meta, table, float(detection_offset), case_ids)
    graph = load_graph(d)
    rows = table.to_pylist()
    if case_ids is not None:
        wanted = list(case_ids)
        unknown = sorted(set(wanted) - {r["case_id"] for r in rows})
        if unknown:
            raise KeyError(f"{d / 'cases.parquet'}: no case {', '.join(unknown)}")
        keep = set(wanted)
        rows = [r for r in rows if r["case_id"] in keep]
    out = []
    for r in rows:  # cases (tens to hundreds), one file each
        with np.load(d / r["file"]) as z:
            arrays = {k: z[k] for k in ("times", "values", "reference_times", "reference")}
        out.append(
            CaseData(
                case_id=r["case_id"],
                dataset=meta["dataset"],
                services=tuple(meta["services"]),
                features=tuple(meta["features"]),
                feature_kinds=tuple(meta["feature_kinds"]),
                times=arrays["times"],
                values=arrays["values"],
                onset=int(r["onset"]),
                reference_times=arrays["reference_times"],
                reference=arrays["reference"],
                graph=graph,
                symptom_service=meta["symptom_service"],
                root_cause_service=r["root_cause_service"],
                root_cause_indicator=r["root_cause_indicator"],
                fault_type=r["fault_type"],
                start_time=np.datetime64(r["start_time"].replace(tzinfo=None), "ns")
                if r["start_time"] is not None
                else None,
                window_seconds=float(meta["window_seconds"]),
                extra={
                    **{
                        k: r[k]
                        for k in ("n_masked", "n_empty", "n_empty_after", "n_reference", "reference_source")
                    },
                    "features_dir": str(d),
                },
                edges=edges_at(d, arrays["times"], arrays["reference_times"]),
            )
        )
    return out


def _config(meta: dict[str, Any]) -> FeaturesConfig:
    known = {f for f in FeaturesConfig.__dataclass_fields__}
    cfg = {k: (tuple(v) if isinstance(v, list) else v) for k, v in meta["config"].items() if k in known}
    return FeaturesConfig(**cfg)


def _rebuilt_cases(
    d: Path, meta: dict[str, Any], table, offset_s: float, case_ids: Iterable[str] | None
) -> list[CaseData]:
    cfg = dataclasses.replace(_config(meta), detection_offset=offset_s)
    w_ns = round(cfg.window_s * 1e9)
    inc = read_incidents(d / "incidents.parquet", cfg.incident_length_s)
    w = _windows(d)
    grid = w["times"].astype(np.int64)
    values = np.asarray(load_matrix(d))
    graph = load_graph(d)
    wanted = set(case_ids) if case_ids is not None else None
    labels = {r["case_id"]: r for r in table.to_pylist()}
    out = []
    for k, cid in enumerate(inc.ids):
        if cid not in labels or (wanted is not None and cid not in wanted):
            continue
        c = case_arrays(k, inc, cfg, w_ns, grid, values, w["fault_free"])
        r = labels[cid]
        out.append(
            CaseData(
                case_id=cid,
                dataset=meta["dataset"],
                services=tuple(meta["services"]),
                features=tuple(meta["features"]),
                feature_kinds=tuple(meta["feature_kinds"]),
                times=c["times"].view("datetime64[ns]"),
                values=c["values"],
                onset=int(c["onset"]),
                reference_times=grid[c["ref_idx"]].view("datetime64[ns]"),
                reference=values[c["ref_idx"]],
                graph=graph,
                symptom_service=meta["symptom_service"],
                root_cause_service=r["root_cause_service"],
                root_cause_indicator=r["root_cause_indicator"],
                fault_type=r["fault_type"],
                start_time=np.datetime64(int(inc.start[k]), "ns"),
                window_seconds=float(meta["window_seconds"]),
                extra={
                    "n_masked": int(c["masked"].sum()),
                    "n_reference": len(c["ref_idx"]),
                    "reference_source": c["ref_source"],
                    "detection_offset_s": offset_s,
                    "features_dir": str(d),
                },
                edges=edges_at(
                    d, c["times"].view("datetime64[ns]"), grid[c["ref_idx"]].view("datetime64[ns]")
                ),
            )
        )
    return out


def _windows(d: Path) -> dict[str, np.ndarray]:
    t = pq.read_table(d / "windows.parquet")
    return {
        "times": _ns(t.column("window_start")),
        "segment": t.column("segment").to_numpy(),
        "label": t.column("label").to_numpy().astype(np.int8),
        "incident": np.array(t.column("incident_id").to_pylist(), dtype=object),
        "fault_free": t.column("fault_free").to_numpy(zero_copy_only=False).astype(bool),
    }


def load_matrix(features_dir: str | Path) -> np.ndarray:
    """The (window x service x feature) matrix of the whole dataset (memory-mapped, read-only)."""
    return np.load(Path(features_dir) / "matrix.npy", mmap_mode="r")


def load_reference(features_dir: str | Path) -> ReferenceData:
    """Every fault-free window (no incident within the margin); ``segment`` numbers contiguous runs."""
    d = Path(features_dir)
    meta = _meta(d)
    w = _windows(d)
    idx = np.flatnonzero(w["fault_free"])
    values = np.asarray(load_matrix(d)[idx])
    seg = w["segment"][idx]
    breaks = np.concatenate([[False], (np.diff(idx) != 1) | (np.diff(seg) != 0)])
    return ReferenceData(
        dataset=meta["dataset"],
        services=tuple(meta["services"]),
        features=tuple(meta["features"]),
        feature_kinds=tuple(meta["feature_kinds"]),
        times=w["times"][idx],
        values=values,
        graph=load_graph(d),
        symptom_service=meta["symptom_service"],
        window_seconds=float(meta["window_seconds"]),
        segment=np.cumsum(breaks).astype(np.int64),
        edges=edges_at(d, w["times"][idx]),
    )


def load_detection(features_dir: str | Path) -> DetectionData:
    """The flat (window x service|feature) matrix; columns that are NaN in every window are dropped."""
    d = Path(features_dir)
    meta = _meta(d)
    w = _windows(d)
    m = load_matrix(d)
    n, s, f = m.shape
    flat = np.asarray(m).reshape(n, s * f)
    keep = np.flatnonzero(~np.isnan(flat).all(axis=0)) if n else np.zeros(0, np.int64)
    names = [f"{svc}|{feat}" for svc in meta["services"] for feat in meta["features"]]
    return DetectionData(
        dataset=meta["dataset"],
        columns=tuple(names[i] for i in keep),
        times=w["times"],
        X=flat[:, keep],
        label=w["label"],
        incident=w["incident"],
        fault_free=w["fault_free"],
        segment=w["segment"],
        window_seconds=float(meta["window_seconds"]),
    )


@lru_cache(maxsize=4)
def _trace_services_cached(path: str, mtime: float) -> dict[str, np.ndarray] | None:
    f = Path(path) / "trace_services.parquet"
    if not f.exists():
        return None
    t = pq.read_table(f)
    services = t.column("service").to_pylist()
    ops = t.column("operation").to_pylist()
    names = sorted(set(services))
    svc_pos = {s: i for i, s in enumerate(names)}
    op_names = sorted({(s, o) for s, o in zip(services, ops, strict=True)}, key=lambda x: (x[0], x[1] or ""))
    op_pos = {k: i for i, k in enumerate(op_names)}
    out = {
        "w": t.column("w").to_numpy(),
        "trace": t.column("trace").to_numpy(),
        "service": np.array([svc_pos[s] for s in services], np.int64),
        "operation": np.array([op_pos[(s, o)] for s, o in zip(services, ops, strict=True)], np.int64),
        "duration_ms": t.column("duration_ms").to_numpy(zero_copy_only=False).astype(np.float64),
        "self_ms": t.column("self_ms").to_numpy(zero_copy_only=False).astype(np.float64),
        "error": t.column("error").to_numpy(zero_copy_only=False).astype(bool),
        "log_errors": t.column("log_errors").to_numpy(zero_copy_only=False).astype(np.int64),
        "log_unseen": t.column("log_unseen").to_numpy(zero_copy_only=False).astype(np.int64),
        "service_names": np.array(names, dtype=object),
        "operation_names": np.array([f"{s} {o}" for s, o in op_names], dtype=object),
        "operation_service": np.array([svc_pos[s] for s, _ in op_names], np.int64),
    }
    return out


def load_trace_services(features_dir: str | Path) -> dict[str, np.ndarray] | None:
    """``trace_services.parquet`` (one row per trace and service; docs/features.md) as numpy arrays,
    services and operations as integer codes into ``service_names`` / ``operation_names``; None when
    the dataset has no traces table (cached per folder)."""
    d = Path(features_dir)
    meta = d / "meta.json"
    return _trace_services_cached(str(d.resolve()), meta.stat().st_mtime if meta.exists() else 0.0)


# --- call-edge series (edge_windows.parquet) on the window grid -----------------------------------

EDGE_COUNT_COLUMNS = ("calls", "errors", "gap_calls")  # 0 (not NaN) in a window with data but no call


@lru_cache(maxsize=4)
def _edge_grid_cached(path: str, mtime: float) -> tuple[np.ndarray, EdgeSeries] | None:
    d = Path(path)
    f = d / "edge_windows.parquet"
    if not f.exists():
        return None
    t = pq.read_table(f)
    feats = tuple(c for c in t.column_names if c not in ("w", "window_start", "caller", "callee"))
    if t.num_rows == 0 or not feats:
        return None
    w = pq.read_table(d / "windows.parquet", columns=["window_start", "has_data"])
    grid = _ns(w.column("window_start")).astype(np.int64)
    has_data = w.column("has_data").to_numpy(zero_copy_only=False).astype(bool)
    callers, callees = t.column("caller").to_pylist(), t.column("callee").to_pylist()
    pairs = tuple(sorted(set(zip(callers, callees, strict=True))))
    pos = {p: i for i, p in enumerate(pairs)}
    e_idx = np.array([pos[p] for p in zip(callers, callees, strict=True)], dtype=np.int64)
    times = _ns(t.column("window_start")).astype(np.int64)
    w_idx = np.searchsorted(grid, times)
    ok = (w_idx < len(grid)) & (grid[np.minimum(w_idx, len(grid) - 1)] == times)
    values = np.full((len(grid), len(pairs), len(feats)), np.nan)
    for j, name in enumerate(feats):
        if name in EDGE_COUNT_COLUMNS:
            values[has_data, :, j] = 0.0
        col = t.column(name).to_numpy(zero_copy_only=False).astype(np.float64)
        values[w_idx[ok], e_idx[ok], j] = col[ok]
    return grid, EdgeSeries(pairs, feats, values)


def load_edge_series(features_dir: str | Path) -> tuple[np.ndarray, EdgeSeries] | None:
    """``edge_windows.parquet`` on the window grid: (grid window starts as int64 ns, the series over
    every grid window), or None when the dataset has no call edges from traces (cached per folder)."""
    d = Path(features_dir)
    meta = d / "meta.json"
    return _edge_grid_cached(str(d.resolve()), meta.stat().st_mtime if meta.exists() else 0.0)


def edges_at(
    features_dir: str | Path, times: np.ndarray, reference_times: np.ndarray | None = None
) -> EdgeSeries | None:
    """The call-edge series over ``times`` (and ``reference_times``): NaN at a time off the grid."""
    loaded = load_edge_series(features_dir)
    if loaded is None:
        return None
    grid, full = loaded

    def take(ts: np.ndarray) -> np.ndarray:
        ts = np.asarray(ts).astype("datetime64[ns]").astype(np.int64)
        i = np.minimum(np.searchsorted(grid, ts), len(grid) - 1)
        hit = grid[i] == ts
        out = full.values[i]
        out[~hit] = np.nan
        return out

    ref = take(reference_times) if reference_times is not None else None
    return EdgeSeries(full.pairs, full.features, take(times), ref)
