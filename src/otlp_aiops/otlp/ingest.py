"""``otlp-aiops ingest``: OTLP files -> the Parquet tables of :mod:`otlp_aiops.otlp.schema`.

Each input file is converted by one worker process (files in parallel, batches streamed to
Parquet row groups so memory stays bounded). Everything is written under a temporary folder beside
the output and moved into place only when complete. Next to the tables: ``ingest_report.json``
(per file: framing, signal, counts, reasons) and ``quarantine/`` (each rejected record with file,
position and reason). For every file, records read = records written + records quarantined.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import re
import shutil
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from otlp_aiops import __version__
from otlp_aiops.otlp import schema as S
from otlp_aiops.otlp.batches import LogBatch, MetricBatch, SpanBatch
from otlp_aiops.otlp.context import FileContext
from otlp_aiops.otlp.decode_json import DECODERS, SIGNAL_KEYS, decode_text
from otlp_aiops.otlp.decode_proto import decode_message, guess_signal
from otlp_aiops.otlp.framing import (
    Format,
    FramingError,
    UnreadableInput,
    iter_messages,
    json_error_message,
    parse_json,
    sniff,
)

log = logging.getLogger(__name__)

SIGNALS = ("traces", "metrics", "logs")
_NAME_HINTS = [
    ("traces", re.compile(r"trace|span", re.I)),
    ("metrics", re.compile(r"metric", re.I)),
    ("logs", re.compile(r"log", re.I)),
]


class IngestFatalError(Exception):
    """An input that cannot be read at all, or an output that cannot be written."""


class OutputWriteError(IngestFatalError, OSError):
    """The output cannot be written (disk full, permissions); the previous output stays."""


@dataclass(frozen=True)
class InputFile:
    index: int
    path: Path
    label: str  # the path as recorded in _source_file and the report
    fmt: Format
    size: int


# --------------------------------------------------------------------------------------------------
# discovery
# --------------------------------------------------------------------------------------------------


def discover(
    sources: list[Path], exclude: Path | None = None
) -> tuple[list[InputFile], list[dict[str, str]]]:
    """The OTLP files under ``sources`` (files, or folders searched recursively), and the files that
    were found in folders but skipped (not OTLP), with the reason. A named file that cannot be read
    or is not OTLP is fatal."""
    found: list[tuple[Path, bool]] = []
    for src in sources:
        src = Path(src)
        if src.is_dir():
            for root, dirs, files in os.walk(src):
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                rootp = Path(root)
                if exclude is not None and _inside(rootp, exclude):
                    dirs[:] = []
                    continue
                found.extend((rootp / f, False) for f in sorted(files) if not f.startswith("."))
        elif src.exists():
            found.append((src, True))
        else:
            raise IngestFatalError(f"{src}: no such file or folder")
    inputs: list[InputFile] = []
    skipped: list[dict[str, str]] = []
    seen: set[Path] = set()
    for path, explicit in found:
        real = path.resolve()
        if real in seen:
            continue
        seen.add(real)
        try:
            fmt = sniff(path)
            size = path.stat().st_size
        except (UnreadableInput, OSError) as e:
            raise IngestFatalError(str(e)) from e
        if fmt.framing == "unknown":
            if explicit:
                raise IngestFatalError(
                    f"{path}: not an OTLP file in any framing this reader knows ({fmt.why})"
                )
            skipped.append({"path": str(path), "reason": f"not OTLP: {fmt.why}"})
            continue
        inputs.append(InputFile(len(inputs), path, str(path), fmt, size))
    return inputs, skipped


def _inside(path: Path, folder: Path) -> bool:
    try:
        path.resolve().relative_to(folder.resolve())
        return True
    except ValueError:
        return False


def signal_from_name(path: Path) -> str | None:
    """traces / metrics / logs if the file name (or else a parent folder's name) says which."""
    for part in [path.name, *(p.name for p in path.parents)][:4]:
        hits = [sig for sig, rx in _NAME_HINTS if rx.search(part)]
        if len(hits) == 1:
            return hits[0]
    return None


# --------------------------------------------------------------------------------------------------
# converting one file
# --------------------------------------------------------------------------------------------------


class _TableWriters:
    """One Parquet file per table for one input file, opened on first use."""

    def __init__(self, out_dir: Path, index: int) -> None:
        self.out_dir = out_dir
        self.index = index
        self.writers: dict[str, pq.ParquetWriter] = {}
        self.rows: Counter = Counter()

    def write(self, tables: dict[str, pa.Table]) -> None:
        for name, t in tables.items():
            w = self.writers.get(name)
            if w is None:
                d = self.out_dir / name
                d.mkdir(parents=True, exist_ok=True)
                w = self.writers[name] = pq.ParquetWriter(
                    d / f"part-{self.index:05d}.parquet",
                    S.with_version(S.TABLES[name]),
                    **S.parquet_options(name),
                )
            w.write_table(t)
            self.rows[name] += t.num_rows

    def close(self) -> None:
        for w in self.writers.values():
            w.close()


def _flush_full(batches: dict[str, Any], writers: _TableWriters, batch_rows: int, inp: InputFile) -> None:
    """Write out every batch that has reached ``batch_rows`` records, and start it afresh."""
    for sig, b in batches.items():
        if len(b) >= batch_rows:
            _write(writers, b.to_tables())
            batches[sig] = type(b)(inp.label)


def _quarantine_framing_error(fc: FileContext, err: FramingError, inp: InputFile, hint: str | None) -> None:
    fc.signal = hint
    raw: Any = err.raw
    if inp.fmt.framing in ("jsonl", "json") or err.code == "malformed_json":
        with contextlib.suppress(UnicodeDecodeError):
            raw = raw.decode("utf-8")  # text stays readable in the quarantine
    if err.code == "malformed_json":
        m = _JSON_SIGNAL_KEY.search(raw[:4096] if isinstance(raw, str) else "")
        fc.signal = fc.signal or (SIGNAL_KEYS[m.group(1)] if m else None)
    fc.quarantine_message(err.position, err.code, err.message, raw)


def _write(writers: _TableWriters, tables: dict[str, pa.Table]) -> None:
    try:
        writers.write(tables)
    except OSError as e:
        raise OutputWriteError(str(e)) from e


def _read(inp: InputFile) -> Any:
    """The messages of an input file; an I/O error while reading it is fatal and names it."""
    try:
        yield from iter_messages(inp.path, inp.fmt, lazy_json=True)
    except OSError as e:
        raise IngestFatalError(f"{inp.label}: cannot read: {e}") from e


def _new_batches(label: str) -> dict[str, Any]:
    return {"traces": SpanBatch(label), "logs": LogBatch(label), "metrics": MetricBatch(label)}


def convert_file(inp: InputFile, out_dir: Path, signal: str | None, batch_rows: int) -> dict[str, Any]:
    """Convert one input file into part files under ``out_dir``; return its report entry, its
    resources and scopes, and its quarantine records."""
    hint = signal or signal_from_name(inp.path)
    proto_source = "option" if signal else "file name" if hint else "content"
    signal_sources: set[str] = set()
    fc = FileContext(inp.label)
    batches = _new_batches(inp.label)
    writers = _TableWriters(out_dir, inp.index)
    seen_signals: Counter = Counter()
    frames_zstd = 0
    gc_was_enabled = gc.isenabled()
    gc.disable()  # millions of short-lived acyclic objects: the cyclic collector only costs time here
    try:
        for msg in _read(inp):
            fc.messages_read += 1
            if isinstance(msg, FramingError):
                _quarantine_framing_error(fc, msg, inp, hint)
                continue
            frames_zstd += msg.frame_compressed
            if msg.is_json:
                signal_sources.add("JSON key")
                payload = msg.payload
                if msg.text is not None:
                    sig = decode_text(msg.text, fc, batches, msg.position)
                    if sig is not None:
                        seen_signals[sig] += 1
                        _flush_full(batches, writers, batch_rows, inp)
                        continue
                    try:
                        payload = parse_json(msg.text)
                    except ValueError as e:
                        text = msg.text.rstrip(b"\r\n") if inp.fmt.framing == "jsonl" else msg.text
                        err = FramingError(msg.position, "malformed_json", json_error_message(e), text)
                        _quarantine_framing_error(fc, err, inp, hint)
                        continue
                objs = payload if isinstance(payload, list) else [payload]
                for obj in objs:
                    sigs = _json_signals(obj)
                    if not sigs:
                        if obj != {}:
                            fc.quarantine_message(
                                msg.position,
                                "not_otlp",
                                "no resourceSpans / resourceMetrics / resourceLogs at the top level",
                                obj,
                            )
                        continue
                    for sig in sigs:
                        fc.signal = sig
                        seen_signals[sig] += 1
                        DECODERS[sig](obj, fc, batches[sig], msg.position)
                    if len(obj) > len(sigs):
                        fc.count_unknown("top-level", obj, _TOP_KEYS)
            else:
                sig = hint or guess_signal(msg.payload)
                fc.signal = sig
                if sig is None:
                    fc.quarantine_message(
                        msg.position, "unknown_signal",
                        "protobuf message whose signal cannot be told: pass --signal traces|metrics|logs "
                        "or name the file after its signal", msg.payload,
                    )  # fmt: skip
                    continue
                seen_signals[sig] += 1
                signal_sources.add(proto_source)
                decode_message(msg.payload, sig, fc, batches[sig], msg.position)
            _flush_full(batches, writers, batch_rows, inp)
        for b in batches.values():
            if len(b):
                _write(writers, b.to_tables())
    finally:
        try:
            writers.close()
        except OSError as e:
            raise OutputWriteError(str(e)) from e
        finally:
            if gc_was_enabled:
                gc.enable()

    written = sum(writers.rows[t] for sig in SIGNALS for t in S.RECORD_TABLES[sig])
    if written + fc.records_quarantined != fc.records_read:  # an invariant, not an input error
        raise AssertionError(
            f"{inp.label}: {fc.records_read} records read but {written} written + {fc.records_quarantined} quarantined"
        )
    if fc.quarantine:
        qdir = out_dir / "quarantine"
        try:
            qdir.mkdir(parents=True, exist_ok=True)
            with open(qdir / f"part-{inp.index:05d}.jsonl", "wb") as f:
                for q in fc.quarantine:
                    f.write(_dump_quarantine(q) + b"\n")
        except OSError as e:
            raise OutputWriteError(str(e)) from e
    sig_list = sorted(seen_signals)
    entry = {
        "path": inp.label,
        "bytes": inp.size,
        "compression": inp.fmt.compression,
        "framing": inp.fmt.framing + ("+zstd frames" if frames_zstd else ""),
        "signals": sig_list,
        "signal_source": ", ".join(sorted(signal_sources)) or None,
        "messages_read": fc.messages_read,
        "messages_quarantined": fc.messages_quarantined,
        "records_read": fc.records_read,
        "records_written": written,
        "records_quarantined": fc.records_quarantined,
        "rows_written": dict(sorted(writers.rows.items())),
        "quarantined_by_reason": dict(sorted(fc.quarantined_by_reason.items())),
        "unknown_fields": dict(sorted(fc.unknown_fields.items())),
        "ids_base64": fc.ids_base64,
    }
    return {"entry": entry, "resources": fc.resources, "scopes": fc.scopes}


_TOP_KEYS = frozenset(SIGNAL_KEYS)
_JSON_SIGNAL_KEY = re.compile('"(' + "|".join(SIGNAL_KEYS) + ')"')


def _json_signals(obj: Any) -> list[str]:
    if not isinstance(obj, dict):
        return []
    return [SIGNAL_KEYS[k] for k in obj if k in SIGNAL_KEYS]


def _dump_quarantine(q: dict[str, Any]) -> bytes:
    try:
        return orjson.dumps(q)
    except TypeError:  # integers beyond 64 bits read by the fallback JSON parser
        import json

        return json.dumps(q, default=str).encode()


def _convert_task(args: tuple) -> dict[str, Any]:
    return convert_file(*args)


# --------------------------------------------------------------------------------------------------
# the whole run
# --------------------------------------------------------------------------------------------------


def ingest_paths(
    sources: list[Path] | list[str],
    out: Path | str,
    *,
    signal: str | None = None,
    workers: int | None = None,
    batch_rows: int = 32768,
) -> dict[str, Any]:
    """Convert OTLP files to Parquet tables under ``out`` (replaced atomically). Returns the report."""
    if signal is not None and signal not in SIGNALS:
        raise IngestFatalError(f"--signal must be one of {', '.join(SIGNALS)}, not {signal!r}")
    out = Path(out)
    inputs, skipped = discover([Path(s) for s in sources], exclude=out)
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}"
    try:
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir(parents=True)
    except OSError as e:
        raise IngestFatalError(f"{out}: cannot write the output: {e}") from e
    try:
        try:
            results = _run(inputs, tmp, signal, workers, batch_rows)
            report = _finish(inputs, skipped, results, tmp, out)
        except OutputWriteError as e:
            raise OutputWriteError(f"{out}: cannot write the output: {e}") from e
        except OSError as e:
            if isinstance(e, IngestFatalError):
                raise
            raise OutputWriteError(f"{out}: cannot write the output: {e}") from e
        _swap_into_place(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return report


def _run(
    inputs: list[InputFile], tmp: Path, signal: str | None, workers: int | None, batch_rows: int
) -> list:
    tasks = [(inp, tmp, signal, batch_rows) for inp in inputs]
    n = min(workers or os.cpu_count() or 1, len(tasks))
    if n <= 1:
        return [convert_file(*t) for t in tasks]
    # largest files first, so the last worker does not start a big file at the end
    order = sorted(range(len(tasks)), key=lambda i: -inputs[i].size)
    results: list[Any] = [None] * len(tasks)
    with ProcessPoolExecutor(max_workers=n) as ex:
        for i, res in zip(order, ex.map(_convert_task, [tasks[i] for i in order]), strict=True):
            results[i] = res
    return results


def _finish(inputs: list[InputFile], skipped: list, results: list, tmp: Path, out: Path) -> dict[str, Any]:
    resources: dict[int, dict] = {}
    scopes: dict[int, dict] = {}
    for r in results:
        for k, v in r["resources"].items():
            resources.setdefault(k, v)
        for k, v in r["scopes"].items():
            scopes.setdefault(k, v)
    extra = {
        "resources": pa.Table.from_pylist([resources[k] for k in sorted(resources)], schema=S.RESOURCES),
        "scopes": pa.Table.from_pylist([scopes[k] for k in sorted(scopes)], schema=S.SCOPES),
    }
    for name, t in extra.items():
        d = tmp / name
        d.mkdir(parents=True, exist_ok=True)
        pq.write_table(t.replace_schema_metadata(S.with_version(t.schema).metadata), d / "part-00000.parquet",
                       **S.parquet_options(name))  # fmt: skip
    for name, schema in S.TABLES.items():  # every table exists, so readers always find a schema
        d = tmp / name
        if not d.exists():
            d.mkdir(parents=True)
            pq.write_table(schema.empty_table().replace_schema_metadata(S.with_version(schema).metadata),
                           d / "part-empty.parquet", **S.parquet_options(name))  # fmt: skip
    files = [r["entry"] for r in results]
    totals: dict[str, Any] = {"files": len(files), "files_skipped": len(skipped)}
    for k in ("bytes", "messages_read", "messages_quarantined", "records_read", "records_written",
              "records_quarantined", "ids_base64"):  # fmt: skip
        totals[k] = sum(f[k] for f in files)
    rows: Counter = Counter()
    reasons: Counter = Counter()
    for f in files:
        rows.update(f["rows_written"])
        reasons.update(f["quarantined_by_reason"])
    rows["resources"] = len(resources)
    rows["scopes"] = len(scopes)
    totals["rows_written"] = dict(sorted(rows.items()))
    totals["quarantined_by_reason"] = dict(sorted(reasons.items()))
    report = {
        "schema_version": S.SCHEMA_VERSION,
        "tool": f"otlp-aiops {__version__}",
        "output": str(out),
        "totals": totals,
        "files": files,
        "skipped": skipped,
    }
    (tmp / "ingest_report.json").write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2) + b"\n")
    return report


def _swap_into_place(tmp: Path, out: Path) -> None:
    try:
        if out.is_file():
            raise IngestFatalError(f"{out}: exists and is a file, not a folder")
        old = None
        if out.exists():
            old = out.parent / f".{out.name}.old-{os.getpid()}"
            os.replace(out, old)
        os.replace(tmp, out)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except OSError as e:
        raise IngestFatalError(f"{out}: cannot move the finished output into place: {e}") from e


def print_summary(report: dict[str, Any], out: Path) -> None:
    """A short human summary on stdout: totals, and every file that had quarantined parts."""
    t = report["totals"]
    print(
        f"ingested {t['files']} file(s), {t['bytes']:,} bytes -> {out}\n"
        f"  records: {t['records_read']:,} read = {t['records_written']:,} written + {t['records_quarantined']:,} quarantined"
        f"; messages quarantined whole: {t['messages_quarantined']:,}"
    )
    print("  rows: " + ", ".join(f"{k} {v:,}" for k, v in t["rows_written"].items() if v))
    if t["files_skipped"]:
        print(f"  skipped {t['files_skipped']} file(s) that are not OTLP (see ingest_report.json)")
    bad = [f for f in report["files"] if f["records_quarantined"] or f["messages_quarantined"]]
    for f in bad[:20]:
        reasons = ", ".join(f"{k} {v}" for k, v in f["quarantined_by_reason"].items())
        print(f"  quarantined in {f['path']}: {reasons}")
    if len(bad) > 20:
        print(f"  … and {len(bad) - 20} more files with quarantined records")
    if bad:
        print(f"  rejected records with file, position and reason: {out / 'quarantine'}")
