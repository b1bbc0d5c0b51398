"""Ingest benchmark: spans/s per core and peak memory of ``otlp-aiops ingest``, against the bare
parse and a naive reference converter measured in the same run.

For each format (JSON lines, length-prefixed protobuf) of N generated spans (``generate.py``):

1. bare parse -- ``ParseFromString`` of every protobuf message / ``json.loads`` (and ``orjson.loads``,
   which the ingest uses) of every line, input already in memory;
2. the naive reference converter (``naive.py``), one process;
3. ours, one file, ``workers=1`` -> spans/s on one core;
4. ours, the same spans split into K files, ``workers=2`` (both cores) -> spans/s and per core.

5. log records and metric points (and the simulator's spans), per CPU-second, from protobuf and JSON
   lines: ours (C and pure Python), the naive converters (``naive_signals.py``) and the bare parse,
   on the simulator's output -- ``signals.py``, run from here (``--no-signals`` skips it).

Every timing is repeated (median reported) in a fresh interpreter whose process tree's RSS is
polled from here; ``ru_maxrss`` of the process and of its largest child is reported too.
Then the memory test: a ~2 GiB input (the generated file repeated) converted as one big file and
as many files, with peak RSS. Results are printed and written to ``benchmarks/results/ingest.json``.

    .venv/bin/python benchmarks/ingest/run.py                      # 1 M spans + 2 GiB memory test
    .venv/bin/python benchmarks/ingest/run.py --spans 100000 --memory-gb 0   # a quick look
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import inspect
import json
import os
import re
import resource
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import generate
import machine

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
MEASURE = HERE / "measure.py"
RESULTS = REPO / "benchmarks" / "results" / "ingest.json"
RUNS_DIR = generate.WORK_DIR / "runs"

QUOTED_NAIVE = (40_000, 45_000)  # spans/s/core, the figure for the naive reference here
COLLECTOR_CLICKHOUSE = 137_000  # spans/s/core, the Go Collector's OTLP -> ClickHouse path
TARGET_X_NAIVE = 2.0
RSS_LIMIT = 1 << 30
QUIET_PCT = 25.0  # start a measurement only when others use at most this % of the CPU …
QUIET_WAIT_S = 60.0  # … or after waiting this long (set from --quiet-wait)
PURE_PYTHON_ENV = {"OTLP_AIOPS_PURE_PYTHON": "1"}


# --------------------------------------------------------------------------------------------------
# running one measured task
# --------------------------------------------------------------------------------------------------


def _busy_cpu_s() -> float:
    """CPU seconds the whole machine has been busy (all processes, all cores)."""
    t = psutil.cpu_times()
    return t.user + t.nice + t.system + getattr(t, "irq", 0.0) + getattr(t, "softirq", 0.0)


def _ru_cpu(who: int) -> float:
    r = resource.getrusage(who)
    return r.ru_utime + r.ru_stime


def wait_for_quiet(threshold_pct: float, max_wait_s: float) -> dict[str, float]:
    """Wait (up to ``max_wait_s``) until other processes use at most ``threshold_pct`` % of the
    machine's CPU, so a measurement does not start while someone else's job runs."""
    waited = 0.0
    while True:
        pct = psutil.cpu_percent(interval=1.0)  # this process is idle meanwhile
        waited += 1.0
        if pct <= threshold_pct or waited >= max_wait_s:
            return {"others_cpu_pct_before": pct, "waited_s": waited}


def run_task(spec: dict[str, Any], poll_s: float = 0.1, env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run ``measure.py`` with ``spec`` in a fresh interpreter; poll its process tree's RSS and
    account the CPU other processes used meanwhile (a noisy, shared machine)."""
    quiet = wait_for_quiet(QUIET_PCT, QUIET_WAIT_S) if QUIET_WAIT_S > 0 else {}
    busy0, self0, ch0, wall0 = (
        _busy_cpu_s(),
        _ru_cpu(resource.RUSAGE_SELF),
        _ru_cpu(resource.RUSAGE_CHILDREN),
        time.perf_counter(),
    )
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(
            [sys.executable, str(MEASURE), json.dumps(spec)],
            stdout=out,
            stderr=err,
            cwd=REPO,
            env={**os.environ, **(env or {})},
        )
        peak_tree = peak_one = 0
        try:
            root = psutil.Process(proc.pid)
            while proc.poll() is None:
                total = 0
                try:
                    procs = [root, *root.children(recursive=True)]
                except psutil.Error:
                    procs = []
                for p in procs:
                    try:
                        rss = p.memory_info().rss
                    except psutil.Error:
                        continue
                    total += rss
                    peak_one = max(peak_one, rss)
                peak_tree = max(peak_tree, total)
                time.sleep(poll_s)
        except psutil.NoSuchProcess:
            pass
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        proc.wait()
        wall = time.perf_counter() - wall0
        tree_cpu = _ru_cpu(resource.RUSAGE_CHILDREN) - ch0
        others = (_busy_cpu_s() - busy0) - tree_cpu - (_ru_cpu(resource.RUSAGE_SELF) - self0)
        out.seek(0)
        err.seek(0)
        stdout = out.read().decode(errors="replace")
        stderr = err.read().decode(errors="replace")
    if proc.returncode != 0:
        raise RuntimeError(f"measured task {spec['task']} failed ({proc.returncode}):\n{stderr[-4000:]}")
    res = json.loads(stdout.strip().splitlines()[-1])
    res["peak_rss_tree_polled"] = peak_tree
    res["peak_rss_process_polled"] = peak_one
    res["peak_rss_max_process"] = max(res["maxrss_self"], res["maxrss_children"], peak_one)
    res["others_cores_during"] = max(others, 0.0) / wall  # mean cores used by other processes meanwhile
    res.update(quiet)
    return res


def _clean(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists():
        path.unlink()
    for tmp in path.parent.glob(f".{path.name}.*"):  # ingest's temporary and old folders
        shutil.rmtree(tmp, ignore_errors=True)


def measured(spec: dict[str, Any], label: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    """One measured run; its output folder is removed afterwards."""
    res = run_task(spec, env=env)
    _clean(Path(spec["out"]))
    print(
        f"  {label}: {res['seconds']:.2f} s, {res['spans'] / res['seconds']:,.0f} spans/s, "
        f"{res['spans'] / res['cpu_s']:,.0f} spans/CPU-s, peak RSS {_mib(res['peak_rss_tree_polled'])} (tree), "
        f"others used {res['others_cores_during']:.2f} cores",
        file=sys.stderr,
    )
    return res


QUIET_RUN_CORES = 0.3  # a run during which other processes used less than this is a "quiet" run


def summarise(runs: list[dict[str, Any]], cores: int) -> dict[str, Any]:
    """Medians over the repeats; also over the quiet repeats alone, when the machine was shared."""
    secs = [r["seconds"] for r in runs]
    spans = runs[0]["spans"]
    med = statistics.median(secs)
    rate = spans / med
    quiet = [r["seconds"] for r in runs if r["others_cores_during"] < QUIET_RUN_CORES]
    return {
        "spans": spans,
        "seconds": secs,
        "median_s": med,
        "spans_per_s": rate,
        "cores": cores,
        "spans_per_s_per_core": rate / cores,
        "spans_per_cpu_s": spans / statistics.median(r["cpu_s"] for r in runs),
        "quiet_runs": len(quiet),
        "spans_per_s_per_core_quiet": spans / statistics.median(quiet) / cores if quiet else None,
        "spans_per_s_per_core_best": spans / min(secs) / cores,
        "others_cores_during": [round(r["others_cores_during"], 2) for r in runs],
        "peak_rss_tree": max(r["peak_rss_tree_polled"] for r in runs),
        "peak_rss_max_process": max(r["peak_rss_max_process"] for r in runs),
        "rss_before_work": statistics.median(r.get("rss_before", 0) for r in runs),
        "runs": runs,
    }


def derive(res: dict[str, Any]) -> dict[str, Any]:
    """(Re)compute every summary and ratio of one format's results from its stored runs."""
    spans = res["spans"]
    for key in [k for k in res if k == "naive" or k.startswith("ours")]:
        res[key] = summarise(res[key]["runs"], res[key]["cores"])
    naive = res["naive"]
    parse_s = {k: v["median_s"] for k, v in res["parse"].items() if isinstance(v, dict)}
    for key in [k for k in res if k == "naive" or k.startswith("ours")]:
        m = res[key]
        m["x_naive_per_core"] = m["spans_per_s_per_core"] / naive["spans_per_s"]
        m["x_naive_per_cpu_s"] = m["spans_per_cpu_s"] / naive["spans_per_cpu_s"]
        if m["spans_per_s_per_core_quiet"] and naive["spans_per_s_per_core_quiet"]:
            m["x_naive_per_core_quiet"] = (
                m["spans_per_s_per_core_quiet"] / naive["spans_per_s_per_core_quiet"]
            )
        m["x_collector_per_core"] = m["spans_per_s_per_core"] / COLLECTOR_CLICKHOUSE
        m["x_collector_per_cpu_s"] = m["spans_per_cpu_s"] / COLLECTOR_CLICKHOUSE
        # how many bare parses' worth of time one core spends per span
        m["time_per_core_vs_parse"] = {
            k: (1 / m["spans_per_s_per_core"]) / (t / spans) for k, t in parse_s.items()
        }
    return res


# --------------------------------------------------------------------------------------------------
# the throughput part
# --------------------------------------------------------------------------------------------------


def bench_format(ds: generate.Dataset, fmt: str, a: argparse.Namespace) -> dict[str, Any]:
    one = ds.one(fmt)
    spans = ds.meta["spans"]
    print(f"[{fmt}] {spans:,} spans, {one.stat().st_size / 1e6:,.0f} MB", file=sys.stderr)

    print("  bare parse …", file=sys.stderr)
    p = run_task({"task": "parse", "format": fmt, "paths": [str(one)], "repeats": a.repeats})
    parse: dict[str, Any] = {}
    for name in ("ParseFromString", "json.loads", "orjson.loads"):
        if name in p:
            med = statistics.median(p[name])
            parse[name] = {"seconds": p[name], "median_s": med, "spans_per_s": spans / med}
            print(f"  parse {name}: {med:.2f} s, {spans / med:,.0f} spans/s", file=sys.stderr)
    parse["messages"] = p["messages"]
    parse["others_cores_during"] = round(p["others_cores_during"], 2)

    out = RUNS_DIR / f"{fmt}-out"
    base = {"format": fmt, "batch_rows": a.batch_rows, "out": str(out)}
    naive_runs, one_runs, pure_runs, multi_runs = [], [], [], []
    for r in range(1, a.repeats + 1):  # interleaved, so drift in the machine's load hits all alike
        naive_runs.append(measured({**base, "task": "naive", "paths": [str(one)]}, f"naive #{r}"))
        one_spec = {**base, "task": "ingest", "paths": [str(one)], "workers": 1}
        one_runs.append(measured(one_spec, f"ours 1 file, workers=1 #{r}"))
        if a.pure_python and one_runs[0].get("decoder") == "c":
            # the C decoder is optional: measure the pure-Python path it falls back to as well
            pure_runs.append(
                measured(one_spec, f"ours 1 file, workers=1, pure Python #{r}", env=PURE_PYTHON_ENV)
            )
        if a.files >= 2:
            multi_runs.append(
                measured(
                    {**base, "task": "ingest", "paths": [str(ds.split_dir(fmt))], "workers": a.workers},
                    f"ours {a.files} files, workers={a.workers} #{r}",
                )
            )
    res: dict[str, Any] = {
        "spans": spans,
        "bytes": one.stat().st_size,
        "parse": parse,
        "decoder": one_runs[0].get("decoder"),
        "naive": {"runs": naive_runs, "cores": 1},
        "ours_one_file_1_worker": {"runs": one_runs, "cores": 1},
    }
    if pure_runs:
        res["ours_one_file_1_worker_pure_python"] = {"runs": pure_runs, "cores": 1}
    if multi_runs:
        res[f"ours_{a.files}_files_{a.workers}_workers"] = {"runs": multi_runs, "cores": a.workers}
    return derive(res)


# --------------------------------------------------------------------------------------------------
# the memory test
# --------------------------------------------------------------------------------------------------


def iter_records(path: Path, fmt: str):
    """Raw records of a file with their framing (a JSON line, a length-prefixed frame)."""
    with open(path, "rb") as f:
        if fmt == "jsonl":
            yield from f
            return
        while head := f.read(4):
            (n,) = struct.unpack(">I", head)
            yield head + f.read(n)


def build_memory_inputs(src: Path, fmt: str, target: int, n_files: int, dest: Path) -> tuple[Path, Path]:
    """``src`` repeated to ``target`` bytes, cut at record boundaries, written as one file and
    (the same records) as ``n_files`` files."""
    ext = src.suffix
    big = dest / "one" / f"traces{ext}"
    many = dest / "many"
    big.parent.mkdir(parents=True, exist_ok=True)
    many.mkdir(parents=True, exist_ok=True)
    piece_target = target / n_files
    written = 0
    piece_i = 0
    piece_bytes = 0
    with open(big, "wb", buffering=1 << 20) as fbig:
        fpiece = open(many / f"traces-{piece_i:03d}{ext}", "wb", buffering=1 << 20)  # noqa: SIM115
        try:
            while written < target:
                for rec in iter_records(src, fmt):
                    fbig.write(rec)
                    if piece_bytes >= piece_target and piece_i < n_files - 1:
                        fpiece.close()
                        piece_i += 1
                        piece_bytes = 0
                        fpiece = open(many / f"traces-{piece_i:03d}{ext}", "wb", buffering=1 << 20)  # noqa: SIM115
                    fpiece.write(rec)
                    piece_bytes += len(rec)
                    written += len(rec)
                    if written >= target:
                        break
        finally:
            fpiece.close()
    return big, many


def build_document(jsonl: Path, dest: Path) -> Path:
    """The requests of a JSON-lines file as ONE JSON document (``{"resourceSpans": [...]}``, a
    resource block a line): the framing an OTLP/HTTP body or an exported file has, at any size."""
    import orjson

    doc = dest / "document" / "traces.json"
    doc.parent.mkdir(parents=True, exist_ok=True)
    with open(jsonl, "rb") as src, open(doc, "wb", buffering=1 << 20) as out:
        out.write(b'{"resourceSpans": [\n')
        first = True
        for line in src:
            for block in orjson.loads(line)["resourceSpans"]:
                out.write((b"" if first else b",\n") + orjson.dumps(block))
                first = False
        out.write(b"\n]}\n")
    return doc


def memory_test(ds: generate.Dataset, fmt: str, a: argparse.Namespace) -> dict[str, Any]:
    target = int(a.memory_gb * (1 << 30))
    dest = RUNS_DIR / f"memory-{fmt}"
    _clean(dest)
    free = shutil.disk_usage(RUNS_DIR).free
    if free < 2.6 * target:
        msg = f"skipped: {free / 1e9:.1f} GB free, needs ~{2.6 * target / 1e9:.1f} GB"
        print(f"  memory test [{fmt}] {msg}", file=sys.stderr)
        return {"skipped": msg}
    print(f"[{fmt}] memory test: building a {target / (1 << 30):.1f} GiB input …", file=sys.stderr)
    try:
        big, many = build_memory_inputs(ds.one(fmt), fmt, target, a.memory_files, dest)
        n_many = len(list(many.iterdir()))
        out = RUNS_DIR / f"memory-{fmt}-out"
        res: dict[str, Any] = {"input_bytes": big.stat().st_size, "many_files": n_many}

        def document() -> list[str]:  # the same spans as one JSON document, built when its turn comes
            _clean(many)  # (disk: the many-files copy is no longer needed)
            doc = build_document(big, dest)
            res["document_bytes"] = doc.stat().st_size
            return [str(doc)]

        cases = [
            ("one_file_1_worker", lambda: [str(big)], 1),
            (f"{n_many}_files_{a.workers}_workers", lambda: [str(many)], a.workers),
        ]
        if fmt == "jsonl":
            cases.append(("one_document_1_worker", document, 1))
        for key, paths_fn, workers in cases:
            paths = paths_fn()
            r = run_task(
                {
                    "task": "ingest",
                    "format": fmt,
                    "paths": paths,
                    "workers": workers,
                    "out": str(out),
                    "batch_rows": a.batch_rows,
                },
                poll_s=0.05,
            )
            _clean(out)
            res[key] = {
                "workers": workers,
                "spans": r["spans"],
                "seconds": r["seconds"],
                "spans_per_s": r["spans"] / r["seconds"],
                "spans_per_s_per_core": r["spans"] / r["seconds"] / workers,
                "peak_rss_tree": r["peak_rss_tree_polled"],
                "peak_rss_max_process": r["peak_rss_max_process"],
                "under_1_GiB": r["peak_rss_tree_polled"] < RSS_LIMIT
                and r["peak_rss_max_process"] < RSS_LIMIT,
                "run": r,
            }
            print(
                f"  {key}: {r['spans']:,} spans in {r['seconds']:.1f} s, peak RSS {_mib(r['peak_rss_tree_polled'])} "
                f"(tree), {_mib(r['peak_rss_max_process'])} (largest process)",
                file=sys.stderr,
            )
        return res
    finally:
        _clean(dest)


# --------------------------------------------------------------------------------------------------
# report
# --------------------------------------------------------------------------------------------------


def _mib(b: float) -> str:
    return f"{b / (1 << 20):,.0f} MiB"


def ingest_default_batch_rows() -> int:
    from otlp_aiops.otlp.ingest import ingest_paths

    return inspect.signature(ingest_paths).parameters["batch_rows"].default


def source_fingerprint() -> str:
    """A hash of the ingest's code (Python, C, built extensions), to tie the figures to it and to
    notice when it changes in the middle of a run."""
    h = hashlib.sha256()
    for p in sorted((REPO / "src" / "otlp_aiops" / "otlp").rglob("*")):
        if p.is_file() and p.suffix in (".py", ".c", ".so"):
            h.update(p.name.encode())
            h.update(p.read_bytes())
    return h.hexdigest()[:16]


def machine_info() -> dict[str, Any]:
    import orjson
    import pyarrow

    return {
        **machine.machine_info(pyarrow=pyarrow, orjson=orjson),
        "memory_total": psutil.virtual_memory().total,
    }


def _label(key: str) -> str:
    """ "ours_4_files_2_workers" -> "ours: 4 files, workers=2" and the like."""
    if key == "naive":
        return "naive reference, 1 process"
    m = re.fullmatch(r"ours_(one_file|\d+_files)_(\d+)_workers?(_pure_python)?", key)
    if not m:
        return key
    files = "1 file" if m[1] == "one_file" else m[1].replace("_", " ")
    return f"ours: {files}, workers={m[2]}" + (", pure Python" if m[3] else "")


def print_table(result: dict[str, Any]) -> None:
    hdr = (
        f"{'format':<6} {'what':<40} {'median s':>8} {'spans/s':>9} {'spans/s/core':>12} {'x naive':>7} "
        f"{'quiet/core':>12} {'x naive':>7} {'spans/CPU-s':>11} {'x naive':>7} {'x parse':>7} {'peak RSS':>9} "
        f"{'others':>6}"
    )
    print()
    print(hdr)
    print("-" * len(hdr))
    for fmt, r in result["formats"].items():
        for name, p in r["parse"].items():
            if isinstance(p, dict):
                print(
                    f"{fmt:<6} {'bare parse: ' + name:<40} {p['median_s']:>8.2f} {p['spans_per_s']:>9,.0f} "
                    f"{p['spans_per_s']:>12,.0f} {'':>7} {'':>12} {'':>7} {'':>11} {'':>7} {1.0:>7.2f}"
                )
        main_parse = "ParseFromString" if fmt == "proto" else "json.loads"
        for key in [k for k in r if k == "naive" or k.startswith("ours")]:
            m = r[key]
            q = m.get("spans_per_s_per_core_quiet")
            quiet = f"{q:,.0f} ({m['quiet_runs']})" if q else "-"
            xq = m.get("x_naive_per_core_quiet")
            print(
                f"{fmt:<6} {_label(key):<40} {m['median_s']:>8.2f} {m['spans_per_s']:>9,.0f} "
                f"{m['spans_per_s_per_core']:>12,.0f} {m['x_naive_per_core']:>7.2f} {quiet:>12} "
                f"{f'{xq:.2f}' if xq else '-':>7} {m['spans_per_cpu_s']:>11,.0f} "
                f"{m['x_naive_per_cpu_s']:>7.2f} {m['time_per_core_vs_parse'][main_parse]:>7.2f} "
                f"{_mib(m['peak_rss_tree']):>9} {statistics.median(m['others_cores_during']):>6.2f}"
            )
    print(
        "spans/s/core: wall clock, divided by the workers (median of the repeats); quiet/core: the same over\n"
        f"the repeats during which other processes used < {QUIET_RUN_CORES} cores (how many); spans/CPU-s: spans per\n"
        "CPU second of the whole process tree (robust to other jobs); x naive: each divided by the naive's;\n"
        "x parse: one core's time per span divided by the bare parse's (json.loads / ParseFromString);\n"
        "peak RSS: the process tree, polled; others: cores other processes used during the run (median)."
    )
    mt = result.get("memory_test") or {}
    if mt:
        print()
        print(
            f"{'format':<6} {'memory test':<28} {'input':>9} {'spans':>11} {'s':>7} {'spans/s':>9} "
            f"{'peak RSS tree':>14} {'largest proc':>13} {'< 1 GiB':>8}"
        )
        for fmt, r in mt.items():
            if "skipped" in r:
                print(f"{fmt:<6} {r['skipped']}")
                continue
            for key, m in r.items():
                if isinstance(m, dict):
                    print(
                        f"{fmt:<6} {key.replace('_', ' '):<28} "
                        f"{r.get('document_bytes' if 'document' in key else 'input_bytes', 0) / (1 << 30):>5.2f} GiB "
                        f"{m['spans']:>11,} {m['seconds']:>7.1f} {m['spans_per_s']:>9,.0f} "
                        f"{_mib(m['peak_rss_tree']):>14} {_mib(m['peak_rss_max_process']):>13} "
                        f"{'yes' if m['under_1_GiB'] else 'NO':>8}"
                    )
    print()
    for line in result["verdict"]:
        print(line)


SIGNALS_TARGET = 300_000  # log records and metric points per second per core from protobuf (issue 17)
SIGNALS_SIM = ["--duration", "2h", "--incidents", "40", "--seed", "0", "--set", "request_rate=20",
               "--set", "trace_sample_ratio=0.2"]  # fmt: skip


def run_signals(a: argparse.Namespace, formats: list[str]) -> dict[str, Any]:
    """``signals.py`` on ``--signals-input`` (default: the simulator's sim-boutique files, or a
    simulator run made here with the same settings when they are not there); its entries."""
    src = a.signals_input
    if src is None:
        src = REPO / "data" / "raw" / "sim-boutique" / "otlp"
        if not any(src.glob("logs-*.binpb")):
            src = generate.WORK_DIR / "signals-sim" / "otlp"
            if not any(src.glob("logs-*.binpb")):
                print("signals: simulating the input …", flush=True)
                exe = Path(sys.executable).with_name("otlp-aiops")
                subprocess.run([str(exe), "simulate", "--out", str(src.parent), *SIGNALS_SIM], check=True)
    with tempfile.TemporaryDirectory(prefix="ingest-signals-") as tmp:
        out = Path(tmp) / "signals.json"
        cmd = [sys.executable, str(HERE / "signals.py"), "--input", str(src), "--repeats", str(a.repeats),
               "--formats", ",".join(formats), "--out", str(out)]  # fmt: skip
        subprocess.run(cmd, check=True)
        got = json.loads(out.read_text())
    return {"input": str(src), "date": got["date"], "entries": got["signals"]}


def _signals_lines(sig: dict[str, Any]) -> list[str]:
    lines = []
    for key, e in sig["entries"].items():
        c = e["c"]
        what = {"traces": "spans", "logs": "log records", "metrics": "metric points"}[e["signal"]]
        line = f"{key}: {c['records_per_cpu_s']:,.0f} {what}/CPU-s ({c['decoder']} decoder)"
        if "naive" in e:
            line += f" = {e['c_over_naive']:.2f}x naive, {e['c_over_parse']:.2f}x the bare parse"
        if "python" in e:
            line += f", {e['c_over_python']:.2f}x pure Python"
        if e["signal"] == "traces":
            line += f"; {c['records_per_cpu_s'] / COLLECTOR_CLICKHOUSE:.0%} of the Collector's spans/s/core"
        elif e["format"] == "proto":
            ok = c["records_per_cpu_s"] >= SIGNALS_TARGET
            line += f"; {'meets' if ok else 'BELOW'} the {SIGNALS_TARGET // 1000} k target"
        lines.append(line)
    return lines


def verdict(result: dict[str, Any], a: argparse.Namespace) -> list[str]:
    lines = []
    lo, hi = QUOTED_NAIVE
    for fmt, r in result["formats"].items():
        n = r["naive"]
        lines.append(f"{fmt}: the ingest used the {r.get('decoder') or '?'} span decoder")
        lines.append(
            f"{fmt}: naive reference {n['spans_per_s']:,.0f} spans/s wall, {n['spans_per_cpu_s']:,.0f} spans/CPU-s "
            f"(the issue quotes {lo // 1000}-{hi // 1000} k spans/s/core)"
        )
        for key in [k for k in r if k.startswith("ours")]:
            m = r[key]
            x_wall = m.get("x_naive_per_core_quiet") or m["x_naive_per_core"]  # quiet repeats when there are
            x_cpu = m["x_naive_per_cpu_s"]
            mark = (
                "meets"
                if min(x_wall, x_cpu) >= TARGET_X_NAIVE
                else "borderline on"
                if max(x_wall, x_cpu) >= TARGET_X_NAIVE
                else "BELOW"
            )
            quiet = (
                f", quiet repeats {m['spans_per_s_per_core_quiet']:,.0f} = {m['x_naive_per_core_quiet']:.2f}x"
                if m.get("x_naive_per_core_quiet")
                else ""
            )
            lines.append(
                f"{fmt}: {_label(key)}: {m['spans_per_s_per_core']:,.0f} spans/s/core = {m['x_naive_per_core']:.2f}x "
                f"naive{quiet} ({m['spans_per_cpu_s']:,.0f} spans/CPU-s = {x_cpu:.2f}x), {mark} the "
                f"{TARGET_X_NAIVE:.0f}x target; {m['x_collector_per_cpu_s']:.0%} of the Collector's "
                f"{COLLECTOR_CLICKHOUSE // 1000} k spans/s/core (CPU basis)"
            )
    for fmt, r in (result.get("memory_test") or {}).items():
        for key, m in r.items():
            if isinstance(m, dict):
                lines.append(
                    f"{fmt} memory test, {key.replace('_', ' ')}: peak RSS {_mib(m['peak_rss_tree'])} tree, "
                    f"{_mib(m['peak_rss_max_process'])} largest process ({'under' if m['under_1_GiB'] else 'OVER'} 1 GiB)"
                )
    if result.get("signals"):
        lines += _signals_lines(result["signals"])
    fp = result.get("source_fingerprint", {})
    if fp and fp["start"] != fp["end"]:
        lines.append(
            "WARNING: the ingest's source changed during the run: the figures mix two versions; rerun."
        )
    others = [
        c
        for r in result["formats"].values()
        for k, m in r.items()
        if k == "naive" or k.startswith("ours")
        for c in m["others_cores_during"]
    ]
    if others and max(others) > 0.3:
        lines.append(
            f"NOTE: other processes used up to {max(others):.1f} cores during measurements: wall-clock figures are "
            "pessimistic; the CPU-second figures are the fairer comparison."
        )
    return lines


def main(argv: list[str] | None = None) -> None:
    global QUIET_WAIT_S, QUIET_PCT
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--spans", type=int, default=1_000_000)
    ap.add_argument(
        "--files", type=int, default=4, help="files the spans are split into for the multi-core run"
    )
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 2, help="workers of the multi-file run")
    ap.add_argument("--formats", default="jsonl,proto")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--memory-gb", type=float, default=2.0, help="memory-test input size in GiB (0 skips it)")
    ap.add_argument(
        "--memory-files", type=int, default=32, help="files of the memory test's many-files input"
    )
    ap.add_argument(
        "--batch-rows",
        type=int,
        default=None,
        help="rows per row group, ours and naive (default: the ingest's)",
    )
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument(
        "--pure-python",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="when the optional C decoder is in use, also time the pure-Python decoder (1 file, 1 worker)",
    )
    ap.add_argument(
        "--quiet-wait",
        type=float,
        default=QUIET_WAIT_S,
        help="seconds to wait before each measurement for other processes to go quiet (0: don't)",
    )
    ap.add_argument(
        "--quiet-pct", type=float, default=QUIET_PCT, help="'quiet': others use at most this %% CPU"
    )
    ap.add_argument(
        "--signals",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also measure log records and metric points (signals.py on the simulator's output)",
    )
    ap.add_argument(
        "--signals-input",
        type=Path,
        default=None,
        help="a folder of <signal>-NNNNN.binpb files (default: data/raw/sim-boutique/otlp, else simulated)",
    )
    ap.add_argument("--out", type=Path, default=RESULTS)
    ap.add_argument(
        "--from-results",
        type=Path,
        metavar="JSON",
        help="measure nothing: recompute the summaries of a results file from its runs, print, write to --out",
    )
    a = ap.parse_args(argv)
    if a.from_results:
        result = json.loads(a.from_results.read_text())
        for r in result["formats"].values():
            derive(r)
        saved = argparse.Namespace(**result["params"])
        result["verdict"] = verdict(result, saved)
        a.out.write_text(json.dumps(result, indent=2) + "\n")
        print_table(result)
        print(f"\nwritten {a.out}")
        return
    if a.batch_rows is None:
        a.batch_rows = ingest_default_batch_rows()
    QUIET_WAIT_S, QUIET_PCT = a.quiet_wait, a.quiet_pct
    formats = [f.strip() for f in a.formats.split(",") if f.strip()]
    unknown = set(formats) - set(generate.FORMATS)
    if unknown:
        ap.error(f"unknown format(s) {sorted(unknown)}; choose from {', '.join(generate.FORMATS)}")

    started = dt.datetime.now(dt.UTC)
    t0 = time.perf_counter()
    RUNS_DIR.mkdir(parents=True, exist_ok=True)
    ds = generate.generate(generate.GenParams(spans=a.spans, files=max(a.files, 1), seed=a.seed))
    load0 = os.getloadavg()
    fingerprint = source_fingerprint()
    result: dict[str, Any] = {
        "benchmark": "ingest",
        "date": started.isoformat(timespec="seconds"),
        "machine": machine_info(),
        "params": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(a).items()},
        "dataset": ds.meta,
        "reference_figures": {
            "naive_quoted_spans_per_s_per_core": list(QUOTED_NAIVE),
            "collector_clickhouse_spans_per_s_per_core": COLLECTOR_CLICKHOUSE,
            "target_x_naive": TARGET_X_NAIVE,
            "rss_limit": RSS_LIMIT,
        },
        "formats": {},
    }
    for fmt in formats:
        result["formats"][fmt] = bench_format(ds, fmt, a)
    if a.memory_gb > 0:
        result["memory_test"] = {fmt: memory_test(ds, fmt, a) for fmt in formats}
    if a.signals:
        result["signals"] = run_signals(a, formats)
    result["load_average"] = {"start": load0, "end": os.getloadavg()}
    result["source_fingerprint"] = {"start": fingerprint, "end": source_fingerprint()}
    result["total_seconds"] = round(time.perf_counter() - t0, 1)
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(result, indent=2) + "\n")  # the measurements first, whatever follows
    result["verdict"] = verdict(result, a)
    a.out.write_text(json.dumps(result, indent=2) + "\n")
    print_table(result)
    print(f"\nwritten {a.out} ({result['total_seconds']:.0f} s)")


if __name__ == "__main__":
    main()
