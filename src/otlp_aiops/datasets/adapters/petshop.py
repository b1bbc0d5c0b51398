"""The PetShop dataset (amazon-science/petshop-root-cause-analysis, one traffic scenario such as
``dataset/low_traffic``) -> raw OTLP dataset (metrics + the true call graph).

Layout: ``graph.csv`` (adjacency matrix, row calls column), ``noissue/metrics.csv`` (fault-free),
``{train,test}/issue_<k>/{metrics.csv,target.json}``. ``metrics.csv`` has a three-row header
(component / metric / statistic) and a fourth row naming the index column ``unix_timestamp``.
"""

from __future__ import annotations

import csv
import json
import math
import re
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from otlp_aiops.datasets.adapters.common import (
    AdapterError,
    GaugeSeries,
    ImportSummary,
    RawDatasetWriter,
    Rejects,
    gauge_message,
    incidents_table,
    ns_to_iso,
    s_to_ns,
    time_overlaps,
)

SOURCE = {
    "repository": "https://github.com/amazon-science/petshop-root-cause-analysis",
    "commit": "1c5992dc",
    "paper": "Hardt et al., The PetShop Dataset — Finding Causes of Performance Issues across Microservices, "
    "CLeaR 2024 (arXiv:2311.04806)",
    "licence": "CC-BY-4.0 (LICENSE_DATASET)",
}
KINDS = {"latency": "latency", "requests": "traffic", "availability": "errors"}
HEADER_ROWS = 4
# fault type from the issue's reproduction command (the dataset labels only the root-cause node)
FAULT_PATTERNS = [
    (re.compile(r"delay|sleep\(", re.I), "delay"),
    (re.compile(r"error", re.I), "error"),
    (re.compile(r"requests", re.I), "request_overload"),
]


def metric_name(metric: str, statistic: str) -> str:
    return f"{metric}.{statistic.lower()}"


def fault_type(command: str) -> str:
    for rx, kind in FAULT_PATTERNS:
        if rx.search(command or ""):
            return kind
    return "unknown"


def _scenario(src: Path) -> Path:
    if (src / "graph.csv").exists():
        return src
    hits = sorted(p.parent for p in src.glob("dataset/*/graph.csv"))
    if len(hits) == 1:
        return hits[0]
    if not hits:
        raise AdapterError(f"{src}: no graph.csv (expected the PetShop layout dataset/<scenario>/graph.csv)")
    raise AdapterError(f"{src}: several scenarios {[h.name for h in hits]}: pass the scenario folder itself")


def read_metrics(
    path: Path, rejects: Rejects
) -> tuple[np.ndarray, list[tuple[str, str, str]], np.ndarray, dict[str, int]]:
    """(times ns, columns (component, metric, statistic), values (rows, cols) with NaN gaps, stats)."""
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    if (
        len(rows) < HEADER_ROWS
        or rows[0][:1] != ["microservice"]
        or rows[1][:1] != ["metric"]
        or rows[2][:1] != ["statistic"]
    ):
        raise AdapterError(
            f"{path}: expected a header of rows microservice / metric / statistic / unix_timestamp"
        )
    width = len(rows[0])
    cols = list(zip(rows[0][1:], rows[1][1:], rows[2][1:], strict=True))
    times, values = [], []
    st = {"rows_read": 0, "rows_converted": 0, "rows_rejected": 0, "cells_rejected": 0}
    for i, r in enumerate(rows[HEADER_ROWS:], HEADER_ROWS + 1):
        st["rows_read"] += 1
        if len(r) != width:
            rejects.add(path, i, f"ragged row: {len(r)} fields, expected {width}")
            st["rows_rejected"] += 1
            continue
        try:
            t = float(r[0])
            if not math.isfinite(t):
                raise ValueError(r[0])
        except ValueError:
            rejects.add(path, i, f"bad time: unix_timestamp {r[0]!r} is not a number")
            st["rows_rejected"] += 1
            continue
        vals = []
        for c, cell in zip(cols, r[1:], strict=True):
            if cell.strip() == "":
                vals.append(math.nan)
                continue
            try:
                vals.append(float(cell))
            except ValueError:
                rejects.add(path, i, f"bad value: column {'/'.join(c)!r} is not a number (cell skipped)")
                st["cells_rejected"] += 1
                vals.append(math.nan)
        times.append(s_to_ns(t))
        values.append(vals)
        st["rows_converted"] += 1
    return (
        np.array(times, dtype=np.int64),
        cols,
        np.array(values, dtype=np.float64).reshape(len(times), len(cols)),
        st,
    )


def convert(src: Path, out: Path, *, name: str = "petshop") -> ImportSummary:
    t0 = time.perf_counter()
    scen = _scenario(Path(src))
    rejects = Rejects(Path(src))
    issues = sorted(
        (p.parent for p in scen.glob("*/issue_*/target.json")),
        key=lambda p: (p.parent.name, int(p.name.split("_")[1]) if p.name.split("_")[1].isdigit() else 0),
    )
    if not issues:
        raise AdapterError(f"{scen}: no {{train,test}}/issue_<k>/target.json")
    w = RawDatasetWriter(out)
    try:
        kinds: dict[str, str] = {}
        totals = Counter()
        spans: list[tuple[str, int, int]] = []
        components: set[str] = set()

        def emit(path: Path, label: str) -> tuple[int, int]:
            times, cols, vals, st = read_metrics(path, rejects)
            totals.update(st)
            totals["files"] += 1
            if len(times) == 0:
                raise AdapterError(f"{path}: no data rows")
            by_comp: dict[str, list[GaugeSeries]] = {}
            for j, (comp, metric, stat) in enumerate(cols):
                mname = metric_name(metric, stat)
                kinds[mname] = KINDS.get(metric, "other")
                by_comp.setdefault(comp, []).append(GaugeSeries(mname, "", vals[:, j]))
            for comp, series in by_comp.items():
                msg, written, skipped = gauge_message({"service.name": comp}, times, series)
                totals["points"] += written
                totals["cells_without_value"] += skipped
                w.add("metrics", msg, written)
            components.update(by_comp)
            spans.append((label, int(times.min()), int(times.max())))
            return int(times.min()), int(times.max())

        normal_path = scen / "noissue" / "metrics.csv"
        ref = emit(normal_path, "noissue") if normal_path.exists() else None
        step_ns = 300 * 1_000_000_000
        incidents: list[dict[str, Any]] = []
        for d in issues:
            case_id = d.relative_to(scen).as_posix()
            tpath = d / "target.json"
            try:
                target = json.loads(tpath.read_text())
                tgt, rc = target["target"], target["root_cause"]
                ts = float(tgt["timestamp"])
                node = rc["node"]
            except (ValueError, KeyError, TypeError) as e:
                raise AdapterError(
                    f"{tpath}: not a PetShop target (target.node/metric/agg/timestamp, root_cause.node): {e}"
                ) from e
            span = emit(d / "metrics.csv", case_id)
            command = ((target.get("metadata") or {}).get("reproducibility") or {}).get("command") or ""
            incidents.append(
                {
                    "incident_id": case_id,
                    "start_time": s_to_ns(ts),
                    "end_time": None,
                    "root_cause_service": node,
                    "root_cause_indicator": rc.get("metric"),
                    "fault_type": fault_type(command),
                    "split": d.parent.name,
                    "target_service": tgt.get("node"),
                    "target_metric": metric_name(tgt.get("metric", ""), tgt.get("agg", "")),
                    "data_start": span[0],
                    "data_end": span[1] + step_ns,
                    "reference_start": ref[0] if ref else None,
                    "reference_end": ref[1] + step_ns if ref else None,
                    "reproduce_command": command,
                }
            )
        totals["cells_without_value"] -= totals["cells_rejected"]
        assert totals["rows_read"] == totals["rows_converted"] + totals["rows_rejected"]
        ts_field = pa.timestamp("ns", tz="UTC")
        extra = [
            pa.field("split", pa.string()),
            pa.field("target_service", pa.string()),
            pa.field("target_metric", pa.string()),
            pa.field("data_start", ts_field),
            pa.field("data_end", ts_field),
            pa.field("reference_start", ts_field),
            pa.field("reference_end", ts_field),
            pa.field("reproduce_command", pa.string()),
        ]
        w.write_incidents(incidents_table(incidents, extra))
        topology, graph_info = _topology(scen / "graph.csv", rejects)
        w.write_json("topology.json", topology)
        files_out = w.close_otlp()
        targets = Counter(r["target_service"] for r in incidents)
        symptom = targets.most_common(1)[0][0]
        overlaps = time_overlaps(spans)
        counts = {
            "incidents": len(incidents),
            "metric_rows": dict(totals),
            "components": len(components),
            "topology_edges": len(topology["edges"]),
            "rejected_rows": len(rejects.rows),
            "rejected_by_reason": rejects.by_reason(),
        }
        dataset = {
            "name": name,
            "adapter": "petshop",
            "source": {
                **SOURCE,
                "folder": scen.relative_to(Path(src)).as_posix() if scen != Path(src) else ".",
            },
            "licence": SOURCE["licence"],
            "synthetic": False,
            "system": "petshop (AWS One Observability demo PetAdoptions)",
            "symptom_service": symptom,
            "metric_kinds": dict(sorted(kinds.items())),
            "signals": ["metrics"],
            "counts": counts,
            "choices": {
                "metrics": "each (component, metric, statistic) column is a gauge named <metric>.<statistic> "
                "(latency.average, latency.p50/p90/p95/p99, "
                "requests.sum, availability.average) on a resource whose service.name is the component; "
                "5-minute points at unix_timestamp; "
                "units are not stated by the source (latency values look like seconds) so unit is left empty",
                "incident_start": "target.timestamp. The repository's evaluation code never reads it (it "
                "passes each issue's whole metrics.csv as the "
                "abnormal data); the paper describes target as the observed SLO violation (node, metric, "
                "statistic). Its values fall 5-10 min "
                "after the first row of the issue's 20-minute window on a ~30-minute schedule, consistent "
                "with the time the issue was triggered "
                "or first observed; documented as the observed-anomaly time",
                "incident_end": "null: not given; data_start / data_end give the issue's metric window",
                "root_cause_indicator": "root_cause.metric (null in every issue of this scenario)",
                "fault_type": "derived from metadata.reproducibility.command: delay/sleep -> delay, error -> "
                "error, requests -> request_overload, else unknown",
                "normal_data": "noissue/metrics.csv is fault-free data (a separate recording, months from "
                "the issues); every incident names it in "
                "reference_start / reference_end, as the repository's evaluation compares each issue against "
                "it",
                "symptom_service": "target.node of the issues (every issue of this scenario targets it)"
                if len(targets) == 1
                else f"the most common target.node ({dict(targets)}); per incident in target_service",
                "topology": "graph.csv adjacency: a 1 in row A, column B is the call A -> B (caller -> "
                "callee)",
                "empty_cells": "empty cells are not written (counted as cells without value)",
            },
            "graph": graph_info,
            "overlaps": overlaps,
            "otlp": {"folder": "otlp", "framing": "length_prefixed", "files": files_out},
            "rejected": "rejected.jsonl (file, line, reason per row)",
            "time_range": [ns_to_iso(min(s for _, s, _ in spans)), ns_to_iso(max(e for _, _, e in spans))],
        }
        w.finish(dataset, rejects)
    except BaseException:
        w.abort()
        raise
    return ImportSummary(name, Path(out), time.perf_counter() - t0, counts, len(incidents), len(rejects.rows))


def _topology(path: Path, rejects: Rejects) -> tuple[dict[str, Any], dict[str, Any]]:
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    if not rows:
        raise AdapterError(f"{path}: empty")
    names = rows[0][1:]
    edges = []
    for i, r in enumerate(rows[1:], 2):
        if len(r) != len(names) + 1:
            rejects.add(path, i, f"ragged row: {len(r)} fields, expected {len(names) + 1}")
            continue
        caller = r[0]
        for callee, cell in zip(names, r[1:], strict=True):
            try:
                v = float(cell)
            except ValueError:
                rejects.add(path, i, f"bad value: {cell!r} for {callee!r} is not a number")
                continue
            if v != 0:
                edges.append({"caller": caller, "callee": callee, "operations": []})
    services = sorted(set(names) | {r[0] for r in rows[1:] if r})
    topo = {
        "system": "petshop",
        "reference": SOURCE["repository"],
        "entry_service": "PetSite",
        "source": "graph.csv (true call graph)",
        "services": [{"name": s} for s in services],
        "edges": edges,
    }
    return topo, {"nodes": len(services), "edges": len(edges)}
