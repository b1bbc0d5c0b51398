"""RCAEval's "Sock Shop 1" (azamikram/rcd ``sock-shop-data/``) -> raw OTLP dataset (metrics only).

Layout: ``sock-shop-data/<service>-<cpu|mem>/<rep>/{normal.csv,anomalous.csv}``; columns ``time``
(Unix s, 1 s step) and ``<service>_<metric>`` (``cpu``, ``mem``, ``lod``, ``lat_50/90/99``), as the
repository's ``collect-data.py`` queries them from Prometheus.

Each case is one incident from its first anomalous row to its last (+1 s); its ``normal.csv`` is an
earlier, separate fault-free recording, kept at its real timestamps as fault-free data and named in
the incident's ``reference_start`` / ``reference_end``.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pyarrow as pa

from otlp_aiops.datasets.adapters.common import (
    AdapterError,
    ImportSummary,
    RawDatasetWriter,
    Rejects,
    add_wide_metric_file,
    incidents_table,
    metric_kind,
    ns_to_iso,
    time_overlaps,
    wide_metric_totals,
)

SOURCE = {
    "repository": "https://github.com/azamikram/rcd",
    "commit": "373882c6",
    "folder": "sock-shop-data",
    "paper": "Ikram et al., Root Cause Analysis of Failures in Microservices through Causal Discovery, "
    "NeurIPS 2022; "
    "used as 'Sock Shop 1' by Pham et al., RCAEval, ASE 2024",
    "licence": "none stated in the repository (RCAEval lists RCD's code as MIT); used for research "
    "evaluation only",
}
STEP_NS = 1_000_000_000
# metric suffix -> (OTLP name, unit, kind); units from collect-data.py's PromQL
METRICS: dict[str, tuple[str, str, str]] = {
    "cpu": (
        "container.cpu.usage",
        "%",
        "cpu",
    ),  # rate(container_cpu_usage_seconds_total) * 100: % of one core
    "mem": ("container.memory.usage", "By", "memory"),  # container_memory_usage_bytes
    "lod": ("service.request.rate", "{request}/s", "traffic"),  # rate(request_duration_seconds_count)
    "lat_50": ("service.latency.p50", "s", "latency"),  # histogram_quantile(0.50, request_duration_seconds)
    "lat_90": ("service.latency.p90", "s", "latency"),
    "lat_99": ("service.latency.p99", "s", "latency"),
}
INDICATOR = {"cpu": "container.cpu.usage", "mem": "container.memory.usage"}


def metric_name(metric: str) -> tuple[str, str, str]:
    if metric in METRICS:
        return METRICS[metric]
    name = f"sockshop.{metric}"
    return name, "", metric_kind(metric)


def _cases(root: Path) -> list[Path]:
    cases = sorted(p.parent for p in root.glob("*/*/anomalous.csv"))
    return sorted(cases, key=lambda p: (p.parent.name, int(p.name) if p.name.isdigit() else p.name))


def convert(src: Path, out: Path, *, name: str = "rcd-sockshop") -> ImportSummary:
    t0 = time.perf_counter()
    src = Path(src)
    root = src / "sock-shop-data" if (src / "sock-shop-data").is_dir() else src
    cases = _cases(root)
    if not cases:
        raise AdapterError(
            f"{src}: no <service>-<fault>/<rep>/anomalous.csv cases (expected sock-shop-data/)"
        )
    rejects = Rejects(src)
    w = RawDatasetWriter(out)
    try:
        incidents: list[dict[str, Any]] = []
        spans: list[tuple[str, int, int]] = []
        totals = wide_metric_totals()
        kinds: dict[str, str] = {}
        services: set[str] = set()
        for case in cases:
            case_id = case.relative_to(root).as_posix()
            service, _, fault = case.parent.name.rpartition("-")
            ranges = {}
            for part in ("normal", "anomalous"):
                path = case / f"{part}.csv"
                if not path.exists():
                    raise AdapterError(f"{path}: missing (every case has normal.csv and anomalous.csv)")
                ranges[part] = add_wide_metric_file(w, path, metric_name, rejects, totals, kinds, services)
                spans.append((f"{case_id}/{part}", *ranges[part]))
            incidents.append(
                {
                    "incident_id": case_id,
                    "start_time": ranges["anomalous"][0],
                    "end_time": ranges["anomalous"][1] + STEP_NS,
                    "root_cause_service": service,
                    "root_cause_indicator": INDICATOR.get(fault),
                    "fault_type": fault,
                    "reference_start": ranges["normal"][0],
                    "reference_end": ranges["normal"][1] + STEP_NS,
                }
            )
        assert totals["rows_read"] == totals["rows_converted"] + totals["rows_rejected"]
        extra = [
            pa.field("reference_start", pa.timestamp("ns", tz="UTC")),
            pa.field("reference_end", pa.timestamp("ns", tz="UTC")),
        ]
        w.write_incidents(incidents_table(incidents, extra))
        files_out = w.close_otlp()
        overlaps = time_overlaps(spans)
        # the README says normal.csv is earlier; check it per case rather than trust it
        normal_after = [r["incident_id"] for r in incidents if r["reference_start"] >= r["end_time"]]
        counts = {
            "incidents": len(incidents),
            "metric_rows": totals,
            "services": len(services),
            "rejected_rows": len(rejects.rows),
            "rejected_by_reason": rejects.by_reason(),
        }
        dataset = {
            "name": name,
            "adapter": "rcd-sockshop",
            "source": SOURCE,
            "licence": SOURCE["licence"],
            "synthetic": False,
            "system": "sock-shop",
            "symptom_service": "front-end",
            "metric_kinds": dict(sorted(kinds.items())),
            "signals": ["metrics"],
            "counts": counts,
            "choices": {
                "metrics": "each <service>_<metric> column is a gauge named by its meaning (cpu -> "
                "container.cpu.usage in % of one core, "
                "mem -> container.memory.usage in bytes, lod -> service.request.rate in requests/s, lat_N -> "
                "service.latency.pN in s) "
                "on a resource whose service.name is <service>; time is Unix seconds (1 s step)",
                "incident": "one per case: start = first row of anomalous.csv, end = its last row + 1 s; "
                "root cause = the case folder's service, "
                "fault type its suffix, indicator the faulty resource's metric",
                "normal_data": "normal.csv is an earlier, separate fault-free recording: kept at its real "
                "timestamps as fault-free data and "
                "named per incident in reference_start / reference_end (RCAEval's BARO compares each case "
                "against its own normal rows)",
                "overlaps": "no recording (normal or anomalous) of any case overlaps another's in time"
                if not overlaps
                else "some recordings overlap in time: see overlaps",
                "empty_cells": "empty or NaN cells are not written (counted as cells without value)",
                "normal_order": "normal.csv is earlier than anomalous.csv in every case except those in "
                "normal_after_anomalous "
                "(orders-mem/5 in the RCD copy: its normal recording starts 5 min after the anomalous one "
                "ends, so it may hold recovery); "
                "kept as the case's reference, as RCAEval does",
            },
            "overlaps": overlaps,
            "normal_after_anomalous": normal_after,
            "time_range": [ns_to_iso(min(s for _, s, _ in spans)), ns_to_iso(max(e for _, _, e in spans))],
            "otlp": {"folder": "otlp", "framing": "length_prefixed", "files": files_out},
            "rejected": "rejected.jsonl (file, line, reason per row)",
        }
        w.finish(dataset, rejects)
    except BaseException:
        w.abort()
        raise
    return ImportSummary(name, Path(out), time.perf_counter() - t0, counts, len(incidents), len(rejects.rows))
