"""``otlp-aiops ingest``: OTLP files -> the Parquet tables of :mod:`otlp_aiops.otlp.schema`.

Each input file is converted by one worker process (files in parallel, batches streamed to
Parquet row groups so memory stays bounded). Everything is written under a temporary folder beside
the output and moved into place only when complete. Next to the tables: ``ingest_report.json``
(per file: framing, signal, counts, reasons) and ``quarantine/`` (each rejected record with file,
position and reason). For every file, records read = records written + records quarantined.
"""

from __future__ import annotations

import contextlib
import errno
import gc
import logging
import os
import re
import stat
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from otlp_aiops import __version__
from otlp_aiops.executor import LOCAL, ExecutorConfig, run_tasks
from otlp_aiops.otlp import schema
from otlp_aiops.otlp.batches import LogBatch, MetricBatch, SpanBatch
from otlp_aiops.otlp.context import FileContext
from otlp_aiops.otlp.decode_json import DECODERS, SIGNAL_KEYS, decode_text
from otlp_aiops.otlp.decode_proto import decode_message, guess_signal
from otlp_aiops.otlp.framing import (
    DEFAULT_LIMITS,
    Block,
    Format,
    FramingError,
    Limits,
    UnreadableInput,
    iter_block,
    iter_messages,
    json_error_code,
    json_error_message,
    parse_json,
    sniff,
    split_blocks,
)
from otlp_aiops.outputs import OutputError, claim_output

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
    """The OTLP files under ``sources`` (files, or folders searched recursively), and what was
    found in folders but skipped, each with a reason code and a reason: files that are not OTLP,
    not regular files (FIFOs, devices, sockets: never opened, so they cannot hang the run),
    symlink loops and dangling links, files and folders that cannot be read. A named file that
    cannot be read, is not a regular file or is not OTLP is fatal."""
    found: list[tuple[Path, bool]] = []
    skipped: list[dict[str, str]] = []

    def walk_error(e: OSError) -> None:
        skipped.append(
            {
                "path": str(e.filename),
                "code": "unreadable_folder",
                "reason": f"cannot read the folder: {e.strerror or e}",
            }
        )

    for src in sources:
        src = Path(src)
        try:
            st = os.stat(src)
        except OSError as e:
            raise IngestFatalError(f"{src}: {_stat_problem(e)[1]}") from e
        if stat.S_ISDIR(st.st_mode):
            for root, dirs, files in os.walk(src, onerror=walk_error):
                rootp = Path(root)
                if exclude is not None and _inside(rootp, exclude):
                    dirs[:] = []
                    continue
                for d in sorted(dirs):
                    if not d.startswith(".") and os.path.islink(rootp / d):
                        skipped.append(
                            {
                                "path": str(rootp / d),
                                "code": "symlinked_folder",
                                "reason": "a symbolic link to a folder: not followed",
                            }
                        )
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                found.extend((rootp / f, False) for f in sorted(files) if not f.startswith("."))
        else:
            found.append((src, True))
    inputs: list[InputFile] = []
    seen: set[str] = set()
    for path, explicit in found:
        try:
            st = os.stat(path)
        except OSError as e:
            code, why = _stat_problem(e)
            if explicit:
                raise IngestFatalError(f"{path}: {why}") from e
            skipped.append({"path": str(path), "code": code, "reason": why})
            continue
        if not stat.S_ISREG(st.st_mode):
            why = f"not a regular file ({_file_kind(st.st_mode)}): not read"
            if explicit:
                raise IngestFatalError(f"{path}: {why}")
            skipped.append({"path": str(path), "code": "not_regular", "reason": why})
            continue
        real = os.path.realpath(path)
        if real in seen:
            continue
        seen.add(real)
        try:
            fmt = sniff(path)
        except (UnreadableInput, OSError) as e:
            if explicit:
                raise IngestFatalError(str(e)) from e
            skipped.append({"path": str(path), "code": "unreadable", "reason": str(e)})
            continue
        if fmt.framing == "unknown":
            if explicit:
                raise IngestFatalError(
                    f"{path}: not an OTLP file in any framing this reader knows ({fmt.why})"
                )
            skipped.append({"path": str(path), "code": "not_otlp", "reason": f"not OTLP: {fmt.why}"})
            continue
        inputs.append(InputFile(len(inputs), path, str(path), fmt, st.st_size))
    return inputs, skipped


def _stat_problem(e: OSError) -> tuple[str, str]:
    if e.errno == errno.ELOOP:
        return "symlink_loop", "a symbolic link loop: not read"
    if e.errno == errno.ENOENT:
        return "missing", "no such file or folder (or a dangling symbolic link)"
    return "unreadable", f"cannot read: {e.strerror or e}"


def _file_kind(mode: int) -> str:
    for test, name in (
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISDIR, "a folder"),
    ):
        if test(mode):
            return name
    return f"mode {mode:o}"


def _inside(path: Path, folder: Path) -> bool:
    real, top = os.path.realpath(path), os.path.realpath(folder)
    return real == top or real.startswith(top.rstrip(os.sep) + os.sep)


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

    def __init__(self, out_dir: Path, index: int, stem: str | None = None, suffix: str = ".parquet") -> None:
        self.out_dir = out_dir
        self.index = index
        self.name = f"{stem or f'part-{index:05d}'}{suffix}"  # (a block's parts: see convert_block)
        self.writers: dict[str, pq.ParquetWriter] = {}
        self.rows: Counter = Counter()

    def write(self, tables: dict[str, pa.Table]) -> None:
        for name, t in tables.items():
            w = self.writers.get(name)
            if w is None:
                d = self.out_dir / name
                d.mkdir(parents=True, exist_ok=True)
                w = self.writers[name] = pq.ParquetWriter(
                    d / self.name,
                    schema.with_version(schema.TABLES[name]),
                    **schema.parquet_options(name),
                )
            w.write_table(t)
            self.rows[name] += t.num_rows

    def close(self) -> None:
        for w in self.writers.values():
            w.close()

    def discard(self) -> None:
        """Close quietly and remove every part file written (a file set aside whole)."""
        for name, w in self.writers.items():
            with contextlib.suppress(Exception):
                w.close()
            with contextlib.suppress(OSError):
                (self.out_dir / name / self.name).unlink()
        self.writers = {}
        self.rows = Counter()


def _flush_full(batches: dict[str, Any], writers: _TableWriters, batch_rows: int, inp: InputFile) -> None:
    """Write out every batch that has reached ``batch_rows`` records, and start it afresh."""
    for sig, b in batches.items():
        if len(b) >= batch_rows:
            _write(writers, b.to_tables())
            batches[sig] = type(b)(inp.label)


def _quarantine_framing_error(fc: FileContext, err: FramingError, inp: InputFile, hint: str | None) -> None:
    fc.signal = hint
    raw: Any = err.raw
    if inp.fmt.framing in ("jsonl", "json") or err.code in ("malformed_json", "nested_too_deep"):
        with contextlib.suppress(UnicodeDecodeError):
            raw = raw.decode("utf-8")  # text stays readable in the quarantine
    if err.code in ("malformed_json", "nested_too_deep", "too_large"):
        m = _JSON_SIGNAL_KEY.search(raw[:4096] if isinstance(raw, str) else "")
        fc.signal = fc.signal or (SIGNAL_KEYS[m.group(1)] if m else None)
    fc.quarantine_message(err.position, err.code, err.message, raw)


def _write(writers: _TableWriters, tables: dict[str, pa.Table]) -> None:
    try:
        writers.write(tables)
    except OSError as e:
        raise OutputWriteError(str(e)) from e


class _InputReadError(Exception):
    """An I/O error while reading an input: that file is set aside, the run goes on."""


def _read(inp: InputFile, limits: Limits, block: Block | None = None) -> Any:
    """The messages of an input file (or of one block of it)."""
    try:
        if block is None:
            yield from iter_messages(inp.path, inp.fmt, lazy_json=True, limits=limits)
        else:
            yield from iter_block(inp.path, inp.fmt, block, lazy_json=True, limits=limits)
    except (OSError, UnreadableInput) as e:
        raise _InputReadError(f"cannot read: {e}") from e


def _new_batches(label: str) -> dict[str, Any]:
    return {"traces": SpanBatch(label), "logs": LogBatch(label), "metrics": MetricBatch(label)}


class _QuarantineSink:
    """Quarantine entries of one input file, written to ``quarantine/part-NNNNN.jsonl`` as they
    occur (opened on the first one), so that millions of bad records never sit in memory."""

    def __init__(self, out_dir: Path, index: int, stem: str | None = None) -> None:
        self.path = out_dir / "quarantine" / f"{stem or f'part-{index:05d}'}.jsonl"
        self.f: Any = None
        self.opened = False

    def __call__(self, entry: dict[str, Any]) -> None:
        try:
            if self.f is None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                mode = "ab" if self.opened else "wb"  # (reopened for a file set aside after closing)
                self.f = open(self.path, mode, buffering=1 << 20)  # noqa: SIM115 -- closed by close()
                self.opened = True
            self.f.write(_dump_quarantine(entry) + b"\n")
        except OSError as e:
            raise OutputWriteError(str(e)) from e

    def close(self) -> None:
        if self.f is not None:
            try:
                self.f.close()
            except OSError as e:
                raise OutputWriteError(str(e)) from e
            finally:
                self.f = None


@contextlib.contextmanager
def _conversion_memory_pool() -> Any:
    """Arrow's system allocator (malloc) for the length of a conversion, unless the user chose one
    with ``ARROW_DEFAULT_MEMORY_POOL``. A conversion allocates and frees the same few-MB buffers batch
    after batch; Arrow's default mimalloc pool hands those pages back and faults them in again, while
    malloc keeps them: 4-8 % less CPU and a lower peak RSS on 1 M spans (benchmarks/README.md). The
    previous default pool is restored afterwards (buffers remember the pool that made them)."""
    if os.environ.get("ARROW_DEFAULT_MEMORY_POOL"):
        yield
        return
    previous = pa.default_memory_pool()
    pa.set_memory_pool(pa.system_memory_pool())
    try:
        yield
    finally:
        pa.set_memory_pool(previous)


def convert_file(
    inp: InputFile, out_dir: Path, signal: str | None, batch_rows: int, limits: Limits = DEFAULT_LIMITS
) -> dict[str, Any]:
    """Convert one input file into part files under ``out_dir``; return its report entry and its
    resources and scopes (quarantined records go straight to ``out_dir/quarantine``).

    Whatever goes wrong inside the file (a parser's recursion limit, memory, a read error, a bug)
    costs that file only: its part files are removed, every record read from it is counted
    quarantined, and one quarantine entry and the report say why."""
    fc = FileContext(inp.label)
    sink = fc.sink = _QuarantineSink(out_dir, inp.index)
    writers = _TableWriters(out_dir, inp.index)
    try:
        try:
            with _conversion_memory_pool():
                result = _convert(inp, fc, writers, signal, batch_rows, limits)
        finally:
            sink.close()
    except (OutputWriteError, KeyboardInterrupt, SystemExit):
        raise
    except BaseException as e:  # one file never stops the run
        return _failed_file(inp, fc, writers, sink, e)
    return result


def _failure_reason(e: BaseException) -> tuple[str, str]:
    if isinstance(e, RecursionError):
        return "nested_too_deep", f"nested too deep to decode ({e})"
    if isinstance(e, MemoryError):
        return "out_of_memory", "ran out of memory while converting it"
    if isinstance(e, _InputReadError):
        return "unreadable", str(e)
    return "internal_error", f"{type(e).__name__}: {e}".replace("\n", " ")


def _failed_file(
    inp: InputFile, fc: FileContext, writers: _TableWriters, sink: _QuarantineSink, e: BaseException
) -> dict[str, Any]:
    code, why = _failure_reason(e)
    log.warning("%s: set aside whole at %s: %s", inp.label, fc.position or "the start", why)
    writers.discard()
    fc.sink = sink
    fc.quarantine_message(
        fc.position or "file",
        code,
        f"the file was set aside from here on, and its rows written so far removed: {why}",
        b"",
    )
    sink.close()
    entry = _entry(inp, fc, set(), Counter(), 0, Counter(), written=0)
    entry["records_quarantined"] = fc.records_read
    entry["error"] = {"code": code, "reason": why, "position": fc.position or "file"}
    return {"entry": entry, "resources": {}, "scopes": {}}


def _convert(
    inp: InputFile,
    fc: FileContext,
    writers: _TableWriters,
    signal: str | None,
    batch_rows: int,
    limits: Limits,
    block: Block | None = None,
) -> dict[str, Any]:
    hint = signal or signal_from_name(inp.path)
    proto_source = "option" if signal else "file name" if hint else "content"
    signal_sources: set[str] = set()
    batches = _new_batches(inp.label)
    seen_signals: Counter = Counter()
    frames_zstd = 0
    gc_was_enabled = gc.isenabled()
    gc.disable()  # millions of short-lived acyclic objects: the cyclic collector only costs time here
    try:
        for msg in _read(inp, limits, block):
            fc.messages_read += 1
            fc.position = msg.position
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
                        err = FramingError(msg.position, json_error_code(e), json_error_message(e), text)
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
                        msg.position,
                        "unknown_signal",
                        "protobuf message whose signal cannot be told: pass --signal traces|metrics|logs "
                        "or name the file after its signal",
                        msg.payload,
                    )
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

    written = sum(writers.rows[t] for sig in SIGNALS for t in schema.RECORD_TABLES[sig])
    if written + fc.records_quarantined != fc.records_read:  # an invariant, not an input error
        raise AssertionError(
            f"{inp.label}: {fc.records_read} records read but {written} written"
            f" + {fc.records_quarantined} quarantined"
        )
    entry = _entry(inp, fc, signal_sources, seen_signals, frames_zstd, writers.rows, written)
    return {"entry": entry, "resources": fc.resources, "scopes": fc.scopes}


def _entry(
    inp: InputFile,
    fc: FileContext,
    signal_sources: set[str],
    seen_signals: Counter,
    frames_zstd: int,
    rows: Counter,
    written: int,
) -> dict[str, Any]:
    return {
        "path": inp.label,
        "bytes": inp.size,
        "compression": inp.fmt.compression,
        "framing": inp.fmt.framing + ("+zstd frames" if frames_zstd else ""),
        "signals": sorted(seen_signals),
        "signal_source": ", ".join(sorted(signal_sources)) or None,
        "messages_read": fc.messages_read,
        "messages_quarantined": fc.messages_quarantined,
        "records_read": fc.records_read,
        "records_written": written,
        "records_quarantined": fc.records_quarantined,
        "rows_written": dict(sorted(rows.items())),
        "quarantined_by_reason": dict(sorted(fc.quarantined_by_reason.items())),
        "unknown_fields": dict(sorted(fc.unknown_fields.items())),
        "ids_base64": fc.ids_base64,
    }


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
# blocks of very large files (executor kind ray): each converted by a task of its own
# --------------------------------------------------------------------------------------------------

DEFAULT_BLOCK_BYTES = 256 << 20

# What a block's quarantine entries say for ``signal`` while it is still the one left by the
# previous block's last message (set when all blocks are done: _merge_blocks).
_INHERITED = "<signal left by the previous block: see otlp_aiops.otlp.ingest._INHERITED>"


class _BlockQuarantineSink(_QuarantineSink):
    """A block's quarantine part, counting the entries whose signal is still ``_INHERITED``."""

    def __init__(self, out_dir: Path, index: int, stem: str) -> None:
        super().__init__(out_dir, index, stem)
        self.inherited = 0

    def __call__(self, entry: dict[str, Any]) -> None:
        if entry.get("signal") == _INHERITED:
            self.inherited += 1
        super().__call__(entry)


def _block_stem(index: int, block: Block) -> str:
    return f"part-{index:05d}-{block.number:05d}"


def _block_suffix(block: Block) -> str:
    """Blocks after the first write ``.unshifted`` parts: their ``_record_index`` counts from 0, and a
    second task adds the records of the blocks before (:func:`_shift_parts`)."""
    return ".parquet" if block.number == 0 else ".unshifted"


def convert_block(
    inp: InputFile, out_dir: Path, signal: str | None, batch_rows: int, limits: Limits, block: Block | None
) -> dict[str, Any]:
    """:func:`convert_file` for one block of ``inp`` (``block`` None: the whole file). Its part files
    are ``part-<file>-<block>``; what depends on the blocks before it (``_record_index``, and the
    ``signal`` of a quarantine entry made before the block's first message sets it) is mended when
    every block is done (:func:`_merge_blocks`). Retried whole by Ray: it overwrites its own parts."""
    if block is None:
        return convert_file(inp, out_dir, signal, batch_rows, limits)
    stem = _block_stem(inp.index, block)
    fc = FileContext(inp.label)
    fc.signal = _INHERITED
    sink = fc.sink = _BlockQuarantineSink(out_dir, inp.index, stem)
    writers = _TableWriters(out_dir, inp.index, stem, _block_suffix(block))
    try:
        try:
            with _conversion_memory_pool():
                result = _convert(inp, fc, writers, signal, batch_rows, limits, block)
        finally:
            sink.close()
    except (OutputWriteError, KeyboardInterrupt, SystemExit):
        raise
    except BaseException as e:  # as in convert_file: the file is set aside from here on (_merge_blocks)
        result = _failed_file(inp, fc, writers, sink, e)
    result["signal_end"] = fc.signal
    result["inherited"] = sink.inherited
    return result


def _shift_parts(parts: list[tuple[str, str, str]], offset: int) -> int:
    """Each ``(table, unshifted part, final part)`` rewritten with ``offset`` added to
    ``_record_index``, row group by row group (the unshifted part is left: a retry redoes it whole)."""
    import pyarrow.compute as pc

    for name, src, dst in parts:
        pf = pq.ParquetFile(src)
        part_schema = schema.with_version(schema.TABLES[name])
        tmp = dst + ".tmp"
        with pq.ParquetWriter(tmp, part_schema, **schema.parquet_options(name)) as w:
            for g in range(pf.metadata.num_row_groups):
                t = pf.read_row_group(g)
                i = t.schema.get_field_index("_record_index")
                if i >= 0:
                    t = t.set_column(i, t.schema.field(i), pc.add(t.column(i), pa.scalar(offset, pa.int64())))
                w.write_table(t.cast(part_schema))
        os.replace(tmp, dst)
    return len(parts)


def _patch_signal(path: Path, signal: str | None) -> None:
    """Set the ``signal`` of a block's quarantine entries still ``_INHERITED``."""
    data = path.read_bytes()
    path.write_bytes(data.replace(orjson.dumps(_INHERITED), orjson.dumps(signal)))


def _merge_blocks(
    inp: InputFile, parts: list[dict[str, Any]], tmp: Path, executor: ExecutorConfig
) -> dict[str, Any]:
    """The result :func:`convert_file` gives for the whole of ``inp``, from its blocks' results (in
    order): counts added up, positions already the file's; ``_record_index`` shifted by the records
    of the blocks before; a block set aside sets the file aside from there, as one task would."""
    failed = next((k for k, r in enumerate(parts) if r["entry"].get("error")), None)
    kept = parts if failed is None else parts[: failed + 1]
    carry: str | None = None  # the signal left by the blocks so far
    for k, r in enumerate(kept):
        if r["inherited"]:
            _patch_signal(tmp / "quarantine" / f"part-{inp.index:05d}-{k:05d}.jsonl", carry)
        if r["signal_end"] != _INHERITED:
            carry = r["signal_end"]
    fc = FileContext(inp.label)
    for r in kept:
        e = r["entry"]
        fc.messages_read += e["messages_read"]
        fc.messages_quarantined += e["messages_quarantined"]
        fc.records_read += e["records_read"]
        fc.records_quarantined += e["records_quarantined"]
        fc.quarantined_by_reason.update(e["quarantined_by_reason"])
        fc.unknown_fields.update(e["unknown_fields"])
        fc.ids_base64 += e["ids_base64"]
    if failed is not None:
        for k in range(len(parts)):
            for p in tmp.glob(f"*/part-{inp.index:05d}-{k:05d}.*"):
                if p.parent.name != "quarantine" or k > failed:
                    p.unlink()
        entry = _entry(inp, fc, set(), Counter(), 0, Counter(), written=0)
        entry["records_quarantined"] = fc.records_read
        entry["error"] = parts[failed]["entry"]["error"]
        return {"entry": entry, "resources": {}, "scopes": {}}
    offset = 0
    shifts = []
    for k, r in enumerate(parts):
        if k:
            found = sorted(tmp.glob(f"*/part-{inp.index:05d}-{k:05d}.unshifted"))
            if found:
                shifts.append(
                    ([(p.parent.name, str(p), str(p.with_suffix(".parquet"))) for p in found], offset)
                )
        offset += r["entry"]["records_read"]
    if shifts:
        run_tasks(_shift_parts, shifts, executor)
        for paths, _ in shifts:
            for _, src, _ in paths:
                os.unlink(src)
    sources: set[str] = set()
    signals: Counter = Counter()
    rows: Counter = Counter()
    resources: dict[int, dict] = {}
    scopes: dict[int, dict] = {}
    for r in parts:
        e = r["entry"]
        sources.update(e["signal_source"].split(", ") if e["signal_source"] else ())
        signals.update(e["signals"])
        rows.update(e["rows_written"])
        for k, v in r["resources"].items():
            resources.setdefault(k, v)
        for k, v in r["scopes"].items():
            scopes.setdefault(k, v)
    zstd = int(any(r["entry"]["framing"].endswith("+zstd frames") for r in parts))
    written = sum(r["entry"]["records_written"] for r in parts)
    entry = _entry(inp, fc, sources, signals, zstd, rows, written)
    return {"entry": entry, "resources": resources, "scopes": scopes}


_PR_SET_PDEATHSIG = 1


def _die_with_parent(parent_pid: int) -> None:
    """Worker start-up: end this process when the parent dies (killed with -9 included), so no
    worker goes on converting into a folder nobody will move into place. On Linux the kernel sends
    SIGKILL on the parent's death (prctl PR_SET_PDEATHSIG); elsewhere a daemon thread polls."""
    if sys.platform.startswith("linux"):
        try:
            import ctypes
            import signal as _signal

            libc = ctypes.CDLL(None, use_errno=True)
            if libc.prctl(_PR_SET_PDEATHSIG, int(_signal.SIGKILL), 0, 0, 0) == 0:
                if os.getppid() != parent_pid:  # the parent died before the call
                    os._exit(1)
                return
        except (OSError, AttributeError):
            pass

    def watch() -> None:
        while True:
            time.sleep(1.0)
            if os.getppid() != parent_pid:
                os._exit(1)

    threading.Thread(target=watch, name="die-with-parent", daemon=True).start()


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
    limits: Limits | None = None,
    executor: ExecutorConfig = LOCAL,
    source_labels: dict[str, str] | None = None,
    block_bytes: int = DEFAULT_BLOCK_BYTES,
) -> dict[str, Any]:
    """Convert OTLP files to Parquet tables under ``out`` (replaced atomically). Returns the report.

    ``executor``: where the files are converted (:mod:`otlp_aiops.executor`): a local process pool of
    ``workers``, or Ray tasks; the tables are the same. ``source_labels``: a local source folder ->
    the name recorded for it in ``_source_file`` and the report (e.g. the ``s3://`` URI it was staged from).

    ``limits``: the most one part of a file may hold (:class:`~otlp_aiops.otlp.framing.Limits`).
    ``block_bytes`` (Ray only): an uncompressed JSON-lines or length-prefixed file larger than this is
    cut at record boundaries into blocks of about this size, each converted by a task of its own;
    the tables hold the same rows with the same values as one task's (more, smaller part files)."""
    limits = limits or DEFAULT_LIMITS
    if isinstance(block_bytes, bool) or not isinstance(block_bytes, int) or block_bytes < 1:
        raise IngestFatalError(f"block_bytes must be a whole number ≥ 1, not {block_bytes!r}")
    if signal is not None and signal not in SIGNALS:
        raise IngestFatalError(f"--signal must be one of {', '.join(SIGNALS)}, not {signal!r}")
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
        raise IngestFatalError(
            f"workers must be a whole number ≥ 1 (or unset: the CPU count), not {workers!r}"
        )
    if isinstance(batch_rows, bool) or not isinstance(batch_rows, int) or batch_rows < 1:
        raise IngestFatalError(f"batch_rows must be a whole number ≥ 1, not {batch_rows!r}")
    out = Path(out)
    sources = [Path(s) for s in sources]
    try:
        # refuses an output that is, holds or lies inside an input, or is not ingest's; locks it;
        # cleans up after a crashed run; the finished folder replaces `out` atomically
        with claim_output(out, owner="ingest", inputs=sources, known_files=("ingest_report.json",)) as tmp:
            inputs, skipped = discover(sources, exclude=out)
            if source_labels:
                inputs = [replace(i, label=_relabel(i.label, source_labels)) for i in inputs]
            try:
                results = _run(inputs, tmp, signal, workers, batch_rows, limits, executor, block_bytes)
                report = _finish(inputs, skipped, results, tmp, out)
            except OutputWriteError as e:
                raise OutputWriteError(f"{out}: cannot write the output: {e}") from e
            except OSError as e:
                if isinstance(e, IngestFatalError):
                    raise
                raise OutputWriteError(f"{out}: cannot write the output: {e}") from e
    except OutputError as e:
        raise IngestFatalError(str(e)) from None
    return report


def _relabel(label: str, labels: dict[str, str]) -> str:
    for local, name in labels.items():
        if label == local or label.startswith(local.rstrip("/") + "/"):
            return name.rstrip("/") + label[len(local.rstrip("/")) :]
    return label


def _run(
    inputs: list[InputFile],
    tmp: Path,
    signal: str | None,
    workers: int | None,
    batch_rows: int,
    limits: Limits = DEFAULT_LIMITS,
    executor: ExecutorConfig = LOCAL,
    block_bytes: int = DEFAULT_BLOCK_BYTES,
) -> list:
    from otlp_aiops import progress

    tasks = [(inp, tmp, signal, batch_rows, limits) for inp in inputs]
    n = min(workers or os.cpu_count() or 1, len(tasks))
    # progress by bytes, advanced as each file is done (the bar's note names the last one)
    with progress.task(
        f"ingest {len(tasks)} file(s)", total=sum(i.size for i in inputs), as_bytes=True
    ) as bar:
        # largest files first, so the last worker does not start a big file at the end
        order = sorted(range(len(tasks)), key=lambda i: -inputs[i].size)
        if executor.is_ray:  # workers on other nodes: absolute paths (same file system, or a shared one)
            tasks = [(replace(inp, path=inp.path.resolve()), tmp.resolve(), *rest) for inp, _, *rest in tasks]
            if any(i.size > block_bytes for i in inputs):
                return _run_blocks(tasks, inputs, executor, block_bytes, limits, bar)

        finished: dict[int, Any] = {}

        def done(i: int, result: Any) -> None:
            finished[i] = result
            bar.advance(inputs[i].size, note=inputs[i].label)

        try:
            return run_tasks(
                convert_file,
                tasks,
                executor,
                workers=n,
                order=order,
                initializer=_die_with_parent,
                initargs=(os.getpid(),),
                on_done=done,
            )
        except BrokenProcessPool:  # a worker was killed (out of memory, a signal, a crash)
            if executor.is_ray:
                raise
            log.warning("a worker process died: converting the remaining files one at a time")
            results = [finished.get(i) for i in range(len(tasks))]
            for i in order:
                if results[i] is None:
                    results[i] = _convert_alone(tasks[i])
                    bar.advance(inputs[i].size, note=inputs[i].label)
            return results


def _run_blocks(
    tasks: list[tuple],
    inputs: list[InputFile],
    executor: ExecutorConfig,
    block_bytes: int,
    limits: Limits,
    bar: Any,
) -> list:
    """Ray: files, and the blocks of files larger than ``block_bytes``, as tasks (largest first);
    then each cut file's blocks merged into its result (:func:`_merge_blocks`)."""
    units: list[tuple] = []
    owner: list[int] = []
    blocks_of: dict[int, list[Block]] = {}
    for i, t in enumerate(tasks):
        inp = t[0]
        blocks = split_blocks(inp.path, inp.fmt, block_bytes, limits) if inp.size > block_bytes else []
        if len(blocks) > 1:
            blocks_of[i] = blocks
            log.info("%s: %d blocks of about %d bytes", inp.label, len(blocks), block_bytes)
        for b in blocks if len(blocks) > 1 else [None]:
            units.append((*t, b))
            owner.append(i)

    def size(u: int) -> int:
        b = units[u][-1]
        return inputs[owner[u]].size if b is None else b.end - b.start

    def done(u: int, result: Any) -> None:
        bar.advance(size(u), note=inputs[owner[u]].label)

    order = sorted(range(len(units)), key=lambda u: -size(u))
    out = run_tasks(convert_block, units, executor, order=order, on_done=done)
    results: list[Any] = [None] * len(tasks)
    parts: dict[int, list] = {i: [] for i in blocks_of}
    for u, r in enumerate(out):
        if owner[u] in blocks_of:
            parts[owner[u]].append(r)
        else:
            results[owner[u]] = r
    tmp = tasks[0][1]
    for i in blocks_of:
        results[i] = _merge_blocks(tasks[i][0], parts[i], tmp, executor)
    return results


def _convert_alone(task: tuple) -> dict[str, Any]:
    """One file in a worker of its own, after a worker died: if this one dies too, the file is set
    aside (reason ``worker_died``) and the run goes on."""
    inp, tmp = task[0], task[1]
    _remove_parts(tmp, inp.index)
    try:
        with ProcessPoolExecutor(max_workers=1, initializer=_die_with_parent, initargs=(os.getpid(),)) as ex:
            return ex.submit(convert_file, *task).result()
    except BrokenProcessPool:
        _remove_parts(tmp, inp.index)
    log.warning("%s: the worker converting it died: set aside", inp.label)
    fc = FileContext(inp.label)
    sink = fc.sink = _QuarantineSink(tmp, inp.index)
    why = "the worker process converting it died (killed by a signal, e.g. out of memory, or crashed)"
    fc.quarantine_message("file", "worker_died", f"the file was set aside: {why}", b"")
    sink.close()
    entry = _entry(inp, fc, set(), Counter(), 0, Counter(), written=0)
    entry["error"] = {"code": "worker_died", "reason": why, "position": "file"}
    return {"entry": entry, "resources": {}, "scopes": {}}


def _remove_parts(tmp: Path, index: int) -> None:
    """Every part file one input file may have left (a worker killed midway)."""
    for p in tmp.glob(f"*/part-{index:05d}.*"):
        with contextlib.suppress(OSError):
            p.unlink()


def _finish(inputs: list[InputFile], skipped: list, results: list, tmp: Path, out: Path) -> dict[str, Any]:
    resources: dict[int, dict] = {}
    scopes: dict[int, dict] = {}
    for r in results:
        for k, v in r["resources"].items():
            resources.setdefault(k, v)
        for k, v in r["scopes"].items():
            scopes.setdefault(k, v)
    extra = {
        "resources": pa.Table.from_pylist([resources[k] for k in sorted(resources)], schema=schema.RESOURCES),
        "scopes": pa.Table.from_pylist([scopes[k] for k in sorted(scopes)], schema=schema.SCOPES),
    }
    for name, t in extra.items():
        d = tmp / name
        d.mkdir(parents=True, exist_ok=True)
        pq.write_table(
            t.replace_schema_metadata(schema.with_version(t.schema).metadata),
            d / "part-00000.parquet",
            **schema.parquet_options(name),
        )
    for name, table_schema in schema.TABLES.items():  # every table exists, so readers always find a schema
        d = tmp / name
        if not d.exists():
            d.mkdir(parents=True)
            pq.write_table(
                table_schema.empty_table().replace_schema_metadata(
                    schema.with_version(table_schema).metadata
                ),
                d / "part-empty.parquet",
                **schema.parquet_options(name),
            )
    files = [r["entry"] for r in results]
    totals: dict[str, Any] = {"files": len(files), "files_skipped": len(skipped)}
    for k in (
        "bytes",
        "messages_read",
        "messages_quarantined",
        "records_read",
        "records_written",
        "records_quarantined",
        "ids_base64",
    ):
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
    totals["skipped_by_reason"] = dict(sorted(Counter(k.get("code", "not_otlp") for k in skipped).items()))
    totals["files_set_aside"] = sum(1 for f in files if f.get("error"))
    report = {
        "schema_version": schema.SCHEMA_VERSION,
        "tool": f"otlp-aiops {__version__}",
        "output": str(out),
        "totals": totals,
        "files": files,
        "skipped": skipped,
    }
    (tmp / "ingest_report.json").write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2) + b"\n")
    return report


def print_summary(report: dict[str, Any], out: Path | str) -> None:
    """A short human summary on stdout: totals, and every file that had quarantined parts."""
    t = report["totals"]
    print(
        f"ingested {t['files']} file(s), {t['bytes']:,} bytes -> {out}\n"
        f"  records: {t['records_read']:,} read = {t['records_written']:,} written"
        f" + {t['records_quarantined']:,} quarantined"
        f"; messages quarantined whole: {t['messages_quarantined']:,}"
    )
    print("  rows: " + ", ".join(f"{k} {v:,}" for k, v in t["rows_written"].items() if v))
    if t["files_skipped"]:
        by = dict(t.get("skipped_by_reason") or {"not_otlp": t["files_skipped"]})
        if by.get("not_otlp"):
            print(f"  skipped {by.pop('not_otlp')} file(s) that are not OTLP (see ingest_report.json)")
        if by:
            why = ", ".join(f"{k} {v}" for k, v in by.items())
            print(
                f"  skipped {sum(by.values())} other path(s) found in folders: {why} (see ingest_report.json)"
            )
    for f in report["files"]:
        if f.get("error"):
            print(f"  set aside whole: {f['path']} at {f['error']['position']}: {f['error']['reason']}")
    bad = [f for f in report["files"] if f["records_quarantined"] or f["messages_quarantined"]]
    for f in bad[:20]:
        reasons = ", ".join(f"{k} {v}" for k, v in f["quarantined_by_reason"].items())
        print(f"  quarantined in {f['path']}: {reasons}")
    if len(bad) > 20:
        print(f"  … and {len(bad) - 20} more files with quarantined records")
    if bad:
        print(f"  rejected records with file, position and reason: {str(out).rstrip('/')}/quarantine")
