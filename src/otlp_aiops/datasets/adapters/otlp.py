"""Your own OTLP export as a dataset: ``otlp-aiops datasets import otlp --from DIR --incidents FILE``.

The OTLP files under ``DIR`` (any framing the ingest reads: JSON lines, JSON, length-prefixed or raw
protobuf, zstd, gzip) are copied (or, with ``link="symlink"``, linked; the source is never moved or
changed) into ``OUT/otlp/`` with their relative paths, so the signal hints in file and folder names
survive. The incident file becomes ``incidents.parquet`` (the DESIGN.md schema), an optional topology
becomes ``topology.json``, and ``dataset.json`` records the source, the choices made and the counts.

Incident file (CSV, TSV or Parquet; one row per incident; docs/own-data.md):

=====================  =========  ===============================================================
column                 required   also accepted as
=====================  =========  ===============================================================
start_time             yes        start, inject_time
root_cause_service     yes*       service, root_cause
end_time               no         end (empty: the incident lasts ``features.incident_length``)
root_cause_indicator   no         indicator
fault_type             no         fault, type
incident_id            no         id (default: ``incident-001``, … in file order)
=====================  =========  ===============================================================

(*) the column is required; an empty value means "root cause unknown": the incident counts for
detection, not for RCA. Times are ISO-8601 (``2024-05-01T10:00:00Z``, ``…+02:00``; without a zone they
are read as UTC) or epoch numbers in s, ms, µs or ns: the unit is stated (``time_unit``) or detected
from the magnitude (a plausible date between 1980 and 2100), and must be the same for every number in
the file. A bad row is an error naming ``file:line``, the column and the value; nothing is written.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import time
from collections import Counter
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from otlp_aiops.datasets.adapters.common import (
    AdapterError,
    ImportSummary,
    RawDatasetWriter,
    Rejects,
    incidents_table,
)

SOURCE = "otlp-export"
LINK_MODES = ("copy", "symlink")
TIME_UNITS = {"s": 10**9, "ms": 10**6, "us": 10**3, "ns": 1}
_UNIT_ALIASES = {
    "s": "s",
    "sec": "s",
    "seconds": "s",
    "ms": "ms",
    "milliseconds": "ms",
    "us": "us",
    "µs": "us",
    "microseconds": "us",
    "ns": "ns",
    "nanoseconds": "ns",
    "auto": "auto",
}
# canonical column -> accepted header names (compared lower-case, spaces and dashes as underscores)
COLUMNS: dict[str, tuple[str, ...]] = {
    "incident_id": ("incident_id", "id"),
    "start_time": ("start_time", "start", "inject_time"),
    "end_time": ("end_time", "end"),
    "root_cause_service": ("root_cause_service", "service", "root_cause"),
    "root_cause_indicator": ("root_cause_indicator", "indicator"),
    "fault_type": ("fault_type", "fault", "type"),
}
REQUIRED = ("start_time", "root_cause_service")
# epoch magnitudes of 1980-01-01 .. 2100-01-01 in seconds
_EPOCH_LO_S, _EPOCH_HI_S = 315_532_800, 4_102_444_800
_NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")
_ISO = re.compile(
    r"^(?P<date>\d{4}-\d{2}-\d{2})(?:[T ](?P<hms>\d{2}:\d{2}(?::\d{2})?)(?P<frac>[.,]\d+)?)?"
    r"\s*(?P<tz>[Zz]|UTC|[+-]\d{2}(?::?\d{2})?)?$"
)
MAX_ERRORS_SHOWN = 20
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class IncidentError(AdapterError):
    """A bad incident file; the message lists every bad row (file:line, column, value, reason)."""


# --------------------------------------------------------------------------------------------------
# times
# --------------------------------------------------------------------------------------------------


def parse_iso(text: str) -> tuple[int, bool]:
    """ISO-8601 -> (ns since the epoch, UTC; whether the text had no zone). Raises ValueError."""
    m = _ISO.match(text.strip())
    if not m:
        raise ValueError("not an ISO-8601 time")
    hms = m.group("hms") or "00:00:00"
    if len(hms) == 5:
        hms += ":00"
    base = datetime.fromisoformat(f"{m.group('date')}T{hms}").replace(tzinfo=UTC)
    ns = int(base.timestamp()) * 10**9
    frac = m.group("frac")
    if frac:
        digits = frac[1:10].ljust(9, "0")
        ns += int(digits)
    tz = m.group("tz")
    if tz and tz not in ("Z", "z", "UTC"):
        sign = -1 if tz[0] == "-" else 1
        hh, mm = int(tz[1:3]), int(tz[-2:]) if len(tz) > 3 else 0
        ns -= sign * (hh * 3600 + mm * 60) * 10**9
    return ns, tz is None


def epoch_unit(value: Decimal) -> str | None:
    """The unit that makes ``value`` a date between 1980 and 2100, or None."""
    for unit, factor in TIME_UNITS.items():
        s = value * factor / 10**9
        if _EPOCH_LO_S <= s <= _EPOCH_HI_S:
            return unit
    return None


def _epoch_ns(value: Decimal, unit: str) -> int:
    ns = int((value * TIME_UNITS[unit]).to_integral_value())
    if not 0 <= ns < 2**63:
        raise ValueError(f"outside the range of ns timestamps with unit {unit}")
    return ns


# --------------------------------------------------------------------------------------------------
# the incident file
# --------------------------------------------------------------------------------------------------


def _norm(header: str) -> str:
    return re.sub(r"[\s\-]+", "_", header.strip().lower())


def _map_columns(headers: list[str], where: str) -> tuple[dict[str, int], list[str]]:
    """canonical column -> position in ``headers``, and the headers that are not used."""
    lookup = {alias: canon for canon, aliases in COLUMNS.items() for alias in aliases}
    found: dict[str, int] = {}
    unused: list[str] = []
    for i, h in enumerate(headers):
        canon = lookup.get(_norm(h))
        if canon is None:
            unused.append(h)
            continue
        if canon in found:
            raise IncidentError(
                f"{where}: columns {headers[found[canon]]!r} and {h!r} both give {canon}; keep one"
            )
        found[canon] = i
    missing = [c for c in REQUIRED if c not in found]
    if missing:
        need = "; ".join(f"{c} (or {', '.join(COLUMNS[c][1:])})" for c in missing)
        raise IncidentError(
            f"{where}: missing column(s): {need}. Header: {', '.join(headers) or '(empty)'}. "
            "See docs/own-data.md for the incident schema"
        )
    return found, unused


def _read_rows(path: Path) -> tuple[list[str], list[tuple[str, list[Any]]]]:
    """(headers, [(location, values)]) of a CSV/TSV or Parquet incident file. Location: ``file:line``
    for text (the header is line 1), ``file row k`` for Parquet (k from 1)."""
    suffix = path.suffix.lower()
    if suffix in (".parquet", ".pq"):
        import pyarrow as pa
        import pyarrow.parquet as pq

        try:
            t = pq.read_table(path)
        except (OSError, pa.ArrowInvalid) as e:
            raise IncidentError(f"{path}: not a readable Parquet file ({e})") from None
        cols = [t.column(i).to_pylist() for i in range(t.num_columns)]
        return t.column_names, [(f"{path} row {k + 1}", [c[k] for c in cols]) for k in range(t.num_rows)]
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as e:
        raise IncidentError(f"{path}: not UTF-8 text ({e}); save the CSV as UTF-8") from None
    if not text.strip():
        raise IncidentError(
            f"{path}: empty file (expected a header line: start_time,end_time,root_cause_service,…)"
        )
    delimiter = "\t" if suffix == ".tsv" else ","
    reader = csv.reader(io.StringIO(text), delimiter=delimiter)
    headers = next(reader)
    rows = []
    line = reader.line_num
    for values in reader:
        first = line + 1
        line = reader.line_num
        if not values or all(not v.strip() for v in values):
            continue
        if len(values) != len(headers):
            raise IncidentError(f"{path}:{first}: {len(values)} fields, the header has {len(headers)}")
        rows.append((f"{path}:{first}", values))
    return headers, rows


def read_incident_file(
    path: str | Path, time_unit: str = "auto"
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Parse and check an incident file. Returns (rows for :func:`incidents_table`, notes: the time
    unit used, columns ignored, counts). Raises :class:`IncidentError` naming every bad row."""
    path = Path(path)
    if not path.is_file():
        raise IncidentError(f"{path}: no such file (the incident list: CSV or Parquet, see docs/own-data.md)")
    unit = _UNIT_ALIASES.get(str(time_unit).strip().lower())
    if unit is None:
        raise IncidentError(f"time unit {time_unit!r}: expected auto, s, ms, us or ns")
    headers, raw_rows = _read_rows(path)
    cols, unused = _map_columns([str(h) for h in headers], str(path))
    errors: list[str] = []
    rows: list[dict[str, Any]] = []
    pending: list[tuple[str, str, str, Decimal, dict]] = []  # epoch numbers wait for the unit
    detected: Counter = Counter()
    naive = 0

    def cell(values: list[Any], canon: str) -> Any:
        i = cols.get(canon)
        v = None if i is None else values[i]
        if isinstance(v, str):
            v = v.strip()
            return v or None
        if isinstance(v, float) and v != v:  # NaN in a Parquet float column
            return None
        return v

    for where, values in raw_rows:
        row: dict[str, Any] = {}
        for canon in ("incident_id", "root_cause_service", "root_cause_indicator", "fault_type"):
            v = cell(values, canon)
            row[canon] = None if v is None else str(v)
        for canon in ("start_time", "end_time"):
            v = cell(values, canon)
            row[canon] = None
            if v is None:
                if canon == "start_time":
                    errors.append(
                        f"{where}: column {headers[cols[canon]]!r}: empty (every incident needs a start)"
                    )
                continue
            try:
                if hasattr(v, "value") and type(v).__name__ == "Timestamp":  # pandas, ns precision
                    if v.tzinfo is None:
                        naive += 1
                    row[canon] = int(v.value) if v.tzinfo is None else int(v.tz_convert("UTC").value)
                    continue
                if isinstance(v, datetime):
                    if v.tzinfo is None:
                        naive += 1
                        v = v.replace(tzinfo=UTC)
                    d = v - _EPOCH
                    row[canon] = (d.days * 86400 + d.seconds) * 10**9 + d.microseconds * 1000
                    continue
                text = str(v)
                if isinstance(v, int | float) or _NUMBER.match(text):
                    try:
                        num = Decimal(text)
                    except InvalidOperation:
                        raise ValueError("not a number") from None
                    if not num.is_finite() or num < 0:
                        raise ValueError("not a non-negative finite number")
                    u = unit if unit != "auto" else epoch_unit(num)
                    if u is None:
                        raise ValueError(
                            "an epoch number that is no date between 1980 and 2100 in s, ms, µs or "
                            "ns; state the unit (--time-unit) or use ISO-8601"
                        )
                    if unit == "auto":
                        detected[u] += 1
                    pending.append((where, canon, text, num, row))
                    continue
                ns, was_naive = parse_iso(text)
                naive += was_naive
                row[canon] = ns
            except (ValueError, OverflowError) as e:
                errors.append(f"{where}: column {headers[cols[canon]]!r}: value {str(v)!r}: {e}")
        rows.append(row)
        row["_where"] = where

    if len(detected) > 1:
        first = {u: next(w for w, _c, _t, n, _r in pending if epoch_unit(n) == u) for u in detected}
        units = ", ".join(f"{u} ({n} values, first at {first[u]})" for u, n in detected.most_common())
        errors.append(
            f"{path}: epoch numbers in different units: {units}; write every time in one unit "
            "or state it with --time-unit"
        )
    used_unit = unit if unit != "auto" else (next(iter(detected)) if len(detected) == 1 else None)
    if used_unit is not None:
        for where, canon, text, num, row in pending:
            try:
                row[canon] = _epoch_ns(num, used_unit)
            except ValueError as e:
                errors.append(f"{where}: column {headers[cols[canon]]!r}: value {text!r}: {e}")

    seen: dict[str, str] = {}
    for k, row in enumerate(rows):
        where = row["_where"]
        if row["incident_id"] is None:
            row["incident_id"] = f"incident-{k + 1:03d}"
        if row["incident_id"] in seen:
            errors.append(f"{where}: incident_id {row['incident_id']!r} repeats {seen[row['incident_id']]}")
        seen.setdefault(row["incident_id"], where)
        s, e = row["start_time"], row["end_time"]
        if s is not None and e is not None and e < s:
            errors.append(f"{where}: end_time is {(s - e) / 1e9:g} s before start_time")
    if errors:
        shown = "\n  ".join(errors[:MAX_ERRORS_SHOWN])
        more = f"\n  … and {len(errors) - MAX_ERRORS_SHOWN} more" if len(errors) > MAX_ERRORS_SHOWN else ""
        raise IncidentError(f"{path}: {len(errors)} problem(s), nothing written:\n  {shown}{more}")
    for row in rows:
        del row["_where"]
    notes = {
        "file": str(path),
        "time_unit": used_unit or ("none (ISO-8601 only)" if rows else "none"),
        "time_unit_stated": unit != "auto",
        "times_without_zone_read_as_utc": naive,
        "columns_ignored": unused,
        "incidents": len(rows),
        "incidents_without_root_cause": sum(r["root_cause_service"] is None for r in rows),
        "fault_types": dict(sorted(Counter(r["fault_type"] or "unknown" for r in rows).items())),
    }
    return rows, notes


# --------------------------------------------------------------------------------------------------
# topology
# --------------------------------------------------------------------------------------------------


def read_topology(path: str | Path) -> dict[str, Any]:
    """A service graph: JSON (``{"edges": [{"caller": a, "callee": b}, …]}``, ``source``/``target``
    or ``[a, b]`` pairs; other keys kept) or CSV with ``caller,callee`` (or ``source,target``) columns."""
    path = Path(path)
    if not path.is_file():
        raise AdapterError(f"{path}: no such file (the topology: JSON or CSV of caller,callee edges)")
    if path.suffix.lower() == ".csv":
        with open(path, encoding="utf-8-sig", newline="") as f:
            reader = csv.DictReader(f)
            names = {_norm(h): h for h in reader.fieldnames or []}
            a = names.get("caller") or names.get("source")
            b = names.get("callee") or names.get("target")
            if not a or not b:
                raise AdapterError(
                    f"{path}: expected columns caller,callee (or source,target); found "
                    f"{', '.join(reader.fieldnames or []) or 'none'}"
                )
            edges = []
            for r in reader:
                if not (r.get(a) or "").strip() or not (r.get(b) or "").strip():
                    raise AdapterError(f"{path}:{reader.line_num}: empty caller or callee")
                edges.append({"caller": r[a].strip(), "callee": r[b].strip()})
        return {"edges": edges}
    try:
        topo = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise AdapterError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(topo, dict) or not isinstance(topo.get("edges", []), list):
        raise AdapterError(f'{path}: expected an object with an "edges" list')
    for k, e in enumerate(topo.get("edges") or []):
        if isinstance(e, dict):
            ab = e.get("caller", e.get("source")), e.get("callee", e.get("target"))
        elif isinstance(e, list) and len(e) == 2:
            ab = tuple(e)
        else:
            ab = (None, None)
        if not all(isinstance(x, str) and x for x in ab):
            raise AdapterError(f"{path}: edges[{k}] is not a caller/callee pair of service names: {e!r}")
    return topo


# --------------------------------------------------------------------------------------------------
# the import
# --------------------------------------------------------------------------------------------------


def _check_apart(src: Path, out: Path, what: str) -> None:
    s, o = src.resolve(), out.resolve()
    if s == o or s.is_relative_to(o) or o.is_relative_to(s):
        raise AdapterError(
            f"{what} {src} and the output {out} overlap; the output must be a separate folder "
            "(the source is never changed)"
        )


def convert(
    src: Path,
    out: Path,
    *,
    name: str = "otlp",
    incidents: str | Path | None = None,
    topology: str | Path | None = None,
    time_unit: str = "auto",
    link: str = "copy",
) -> ImportSummary:
    """Import an OTLP export folder ``src`` with its incident file into the raw layout at ``out``."""
    from otlp_aiops import progress
    from otlp_aiops.otlp.ingest import IngestFatalError, discover

    t0 = time.perf_counter()
    src, out = Path(src), Path(out)
    dataset = out.name if name in ("otlp", "") else name
    if incidents is None:
        raise AdapterError(
            "the otlp adapter needs --incidents FILE (CSV or Parquet; a header line alone "
            "means a fault-free recording)"
        )
    if link not in LINK_MODES:
        raise AdapterError(f"link mode {link!r}: expected one of {', '.join(LINK_MODES)}")
    _check_apart(src, out, "the export folder")
    _check_apart(Path(incidents), out, "the incident file")
    rows, notes = read_incident_file(incidents, time_unit)
    topo = read_topology(topology) if topology else None
    try:
        inputs, skipped = discover([src], exclude=out)
    except IngestFatalError as e:
        raise AdapterError(str(e)) from None
    if not inputs:
        why = "; ".join(f"{s['path']}: {s['reason']}" for s in skipped[:5])
        raise AdapterError(
            f"{src}: no OTLP files found"
            + (f" ({len(skipped)} other files: {why})" if skipped else "")
            + " — expected OTLP JSON lines, JSON, protobuf (length-prefixed or raw), zstd or gzip"
        )

    w = RawDatasetWriter(out, inputs=[src])
    try:
        total = sum(i.size for i in inputs)
        files = []
        with progress.task(f"import {dataset}", total=total, as_bytes=True) as bar:
            for inp in inputs:
                rel = inp.path.resolve().relative_to(src.resolve())
                dest = w.tmp / "otlp" / rel
                dest.parent.mkdir(parents=True, exist_ok=True)
                if link == "symlink":
                    os.symlink(inp.path.resolve(), dest)
                else:
                    _copy(inp.path, dest)
                files.append(
                    {
                        "path": f"otlp/{rel.as_posix()}",
                        "bytes": inp.size,
                        "framing": inp.fmt.framing,
                        "compression": inp.fmt.compression,
                    }
                )
                bar.advance(inp.size, note=rel.as_posix())
        w.write_incidents(incidents_table(rows))
        if topo is not None:
            w.write_json("topology.json", topo)
        counts = {
            "otlp_files": len(inputs),
            "otlp_bytes": total,
            "files_skipped": len(skipped),
            "incidents": notes["incidents"],
            "incidents_without_root_cause": notes["incidents_without_root_cause"],
            "fault_types": notes["fault_types"],
            "topology_edges": len(topo.get("edges") or []) if topo else 0,
        }
        meta = {
            "name": dataset,
            "source": SOURCE,
            "adapter": "otlp",
            "licence": "user-provided (see the owner of the export)",
            "from": str(src),
            "choices": {
                "otlp_files": "symlinked (the source must stay in place)" if link == "symlink" else "copied",
                "incidents": notes["file"],
                "time_unit": notes["time_unit"],
                "time_unit_stated": notes["time_unit_stated"],
                "times_without_zone_read_as_utc": notes["times_without_zone_read_as_utc"],
                "columns_ignored": notes["columns_ignored"],
                "topology": str(topology) if topology else None,
            },
            "counts": counts,
            "files": files,
            "skipped": skipped,
        }
        w.finish(meta, Rejects(src))
    except BaseException:
        w.abort()
        raise
    return ImportSummary(
        name=dataset,
        out=out,
        seconds=time.perf_counter() - t0,
        counts=counts,
        incidents=notes["incidents"],
        rejected=0,
    )


def _copy(src: Path, dest: Path, chunk: int = 8 << 20) -> None:
    """Copy one file, advancing the current progress task's note; never touches ``src``."""
    import shutil

    with open(src, "rb") as fi, open(dest, "wb") as fo:
        shutil.copyfileobj(fi, fo, chunk)
