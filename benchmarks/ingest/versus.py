"""This tree's ingest against another tree's, on the same input in the same run: spans per CPU-second
of one file, one worker, the two trees interleaved (issue 17's "2x the per-core rate" as a ratio that
does not depend on how fast the machine is that day).

    git archive 241aeba src setup.py pyproject.toml README.md | tar -x -C /tmp/before
    (cd /tmp/before && /work/main/.venv/bin/python setup.py build_ext --inplace)   # its _wire
    .venv/bin/python benchmarks/ingest/versus.py --before /tmp/before/src --label 241aeba

Inputs: ``generate.py``'s one-file proto and JSON lines sets for ``--spans`` (generated when missing).
Each conversion runs in a fresh interpreter (``PYTHONPATH`` picks the tree; imports excluded from the
time, as in ``measure.py``). Prints the medians and their ratio per format and writes
``results/ingest_versus.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
RESULTS = REPO / "benchmarks" / "results" / "ingest_versus.json"
CODE = """
import json, resource, sys, time
from otlp_aiops.otlp.ingest import ingest_paths
def cpu():
    s, c = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return s.ru_utime + s.ru_stime + c.ru_utime + c.ru_stime
c0 = cpu()
r = ingest_paths([sys.argv[1]], sys.argv[2], workers=1)
print(json.dumps({"cpu_s": cpu() - c0, "spans": r["totals"]["rows_written"]["spans"]}))
"""


def _one(src: Path, path: Path) -> dict:
    out = Path(tempfile.mkdtemp(prefix="versus-"))
    try:
        env = dict(os.environ, PYTHONPATH=str(src))
        env.pop("OTLP_AIOPS_PURE_PYTHON", None)
        p = subprocess.run(
            [sys.executable, "-c", CODE, str(path), str(out / "o")], env=env, capture_output=True, text=True
        )
        if p.returncode:
            raise SystemExit(f"{src}: ingest failed:\n{p.stderr[-2000:]}")
        return json.loads(p.stdout.strip().splitlines()[-1])
    finally:
        shutil.rmtree(out, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--before", type=Path, required=True, help="the other tree's src folder")
    ap.add_argument("--label", default="before", help="a name for the other tree (e.g. its commit)")
    ap.add_argument("--spans", type=int, default=1_000_000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", type=Path, default=RESULTS)
    a = ap.parse_args()
    sys.path.insert(0, str(HERE))
    import generate

    ds = generate.generate(generate.GenParams(spans=a.spans))
    inputs = {fmt: ds.one(fmt) for fmt in ("proto", "jsonl")}
    trees = {a.label: a.before.resolve(), "this tree": REPO / "src"}
    runs: dict[str, dict[str, list[float]]] = {f: {t: [] for t in trees} for f in inputs}
    load0 = os.getloadavg()
    for r in range(a.repeats):
        for fmt, path in inputs.items():
            for name, src in trees.items():
                res = _one(src, path)
                rate = res["spans"] / res["cpu_s"]
                runs[fmt][name].append(rate)
                print(f"#{r + 1} {fmt:5} {name:>12}: {rate:,.0f} spans/CPU-s", flush=True)
    summary = {}
    for fmt, by_tree in runs.items():
        med = {t: statistics.median(v) for t, v in by_tree.items()}
        ratio = med["this tree"] / med[a.label]
        summary[fmt] = {"spans_per_cpu_s": med, "ratio": ratio, "runs": by_tree}
        print(
            f"{fmt}: {a.label} {med[a.label]:,.0f}, this tree {med['this tree']:,.0f} spans/CPU-s: {ratio:.2f}x"
        )
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(
        json.dumps(
            {
                "benchmark": "ingest_versus",
                "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "spans": a.spans,
                "before": a.label,
                "repeats": a.repeats,
                "load_average_start": load0,
                "load_average_end": os.getloadavg(),
                "formats": summary,
            },
            indent=1,
        )
        + "\n"
    )
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
