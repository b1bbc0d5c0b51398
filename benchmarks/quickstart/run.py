"""Quick-start benchmark: the wall time of ``otlp-aiops quickstart`` as a new user runs it (a fresh
process, imports included, into a new folder; target: under a minute on the project's 2-core machine),
and of docs/own-data.md run top to bottom (every ```bash block, in a scratch copy of the repository).

Each is repeated; the median and every run are printed and written, with the machine and its load,
to ``benchmarks/results/quickstart.json``. Outputs go to ``benchmarks/work/quickstart/`` and are
deleted afterwards.

    .venv/bin/python benchmarks/quickstart/run.py                  # quickstart x3, docs page x1
    .venv/bin/python benchmarks/quickstart/run.py --repeats 1 --docs 0
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
WORK = REPO / "benchmarks" / "work" / "quickstart"
RESULTS = REPO / "benchmarks" / "results" / "quickstart.json"
TARGET_S = 60.0
sys.path.insert(0, str(REPO / "benchmarks"))


def timed(cmd: list[str], cwd: Path, env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode:
        raise SystemExit(f"{' '.join(cmd[:3])} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return wall


def docs_copy(dest: Path) -> None:
    """The parts of the repository the docs page uses, as its own git repository."""
    dest.mkdir(parents=True)
    for name in ("params.yaml", "dvc.yaml", ".dvcignore"):
        if (REPO / name).exists():
            shutil.copy(REPO / name, dest / name)
    (dest / "metrics" / "local").mkdir(parents=True)
    shutil.copy(REPO / "metrics" / "local" / "README.md", dest / "metrics" / "local" / "README.md")
    (dest / ".dvc").mkdir()
    shutil.copy(REPO / ".dvc" / "config", dest / ".dvc" / "config")
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(REPO / "pipelines", dest / "pipelines", ignore=ignore)
    shutil.copytree(REPO / "src", dest / "src", ignore=ignore)
    subprocess.run(["git", "init", "-q"], cwd=dest, check=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=3, help="quickstart runs (default 3)")
    ap.add_argument("--docs", type=int, default=1, help="runs of docs/own-data.md (default 1)")
    args = ap.parse_args()
    from machine import machine_info

    exe = Path(sys.executable).parent / "otlp-aiops"
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
           "OTLP_AIOPS_PROGRESS": "log", "DVC_NO_ANALYTICS": "1", "MLFLOW_DISABLE_TELEMETRY": "true"}
    shutil.rmtree(WORK, ignore_errors=True)
    WORK.mkdir(parents=True)
    load_before = os.getloadavg()
    try:
        quick = []
        for k in range(args.repeats):
            quick.append(round(timed([str(exe), "quickstart", f"run-{k}"], WORK, env), 2))
            print(f"quickstart run {k + 1}: {quick[-1]:.1f} s")
        script = "set -euo pipefail\n" + "\n".join(
            re.findall(r"^```bash\n(.*?)^```", (REPO / "docs" / "own-data.md").read_text(), flags=re.S | re.M))
        docs = []
        for k in range(args.docs):
            root = WORK / f"docs-{k}"
            docs_copy(root)
            docs.append(round(timed(["bash", "-c", script], root, env), 2))
            print(f"docs/own-data.md run {k + 1}: {docs[-1]:.1f} s")
    finally:
        shutil.rmtree(WORK, ignore_errors=True)
    result = {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "machine": machine_info(),
        "load_average_1m_before": round(load_before[0], 2),
        "target_s": TARGET_S,
        "quickstart_wall_s": quick,
        "quickstart_median_s": statistics.median(quick) if quick else None,
        "own_data_docs_wall_s": docs,
        "own_data_docs_median_s": statistics.median(docs) if docs else None,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "machine"}, indent=2))
    print(f"-> {RESULTS.relative_to(REPO)}")
    return 0 if all(q < TARGET_S for q in quick) else 1


if __name__ == "__main__":
    sys.exit(main())
