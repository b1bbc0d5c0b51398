"""How wide `dvc exp show --only-changed` and `dvc metrics diff` are for candidate layouts of the
leaderboard metrics (docs/evaluation.md): the reason the pipeline's DVC metric is metrics/headline.json.

    python benchmarks/dvc_width/run.py [--layouts per_dataset,per_task,one_file,headline]

For each layout, a scratch git + DVC repository (in a temporary folder) holds the committed
metrics/leaderboard.json written in that layout by a stage that depends on `rca.pagerank.damping`;
`dvc exp run -S rca.pagerank.damping=0.7` then changes pagerank's four metrics in every dataset, as a
real damping change would. Prints and writes benchmarks/results/dvc_width.json: per layout the widest
line of each view and its count of "…" — `exp_show` as a 200-column terminal shows it (`COLUMNS=200
--no-pager`: "…" marks the columns DVC folded away), `exp_show_unfolded` as the pager gets it (the
width the table needs), and `metrics_diff`. A layout fits when `exp_show` folds nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# writes metrics in one layout from board.json; pagerank's values move when damping != 0.85
GEN = r"""
import json, pathlib, sys, yaml
layout = sys.argv[1]
board = json.load(open("board.json"))
if yaml.safe_load(open("params.yaml"))["rca"]["pagerank"]["damping"] != 0.85:
    for ds in board.values():
        for k in ds["rca"]["pagerank"]:
            ds["rca"]["pagerank"][k] = round(ds["rca"]["pagerank"][k] - 0.0123, 4)
def put(path, obj):
    p = pathlib.Path(path); p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(json.dumps(obj, indent=2) + "\n")
if layout == "per_dataset":
    for ds, b in board.items():
        put(f"metrics/leaderboard/{ds}.json", b)
elif layout == "per_task":
    for t in ("rca", "detect"):
        put(f"metrics/leaderboard/{t}.json", {ds: b[t] for ds, b in board.items()})
elif layout == "one_file":
    put("metrics/leaderboard.json", board)
elif layout == "headline":
    head = {"rca": "avg_at_5", "detect": "vus_pr"}
    put("metrics/headline.json", {ds: {t: {m: {head[t]: v[head[t]]} for m, v in b[t].items() if head[t] in v}
                                       for t in b} for ds, b in board.items()})
"""

METRICS = {
    "per_dataset": lambda dss: [f"metrics/leaderboard/{ds}.json" for ds in dss],
    "per_task": lambda dss: ["metrics/leaderboard/rca.json", "metrics/leaderboard/detect.json"],
    "one_file": lambda dss: ["metrics/leaderboard.json"],
    "headline": lambda dss: ["metrics/headline.json"],
}


def _run(cmd: list[str], cwd: Path, env: dict[str, str]) -> str:
    return subprocess.run(cmd, cwd=cwd, env=env, check=True, capture_output=True, text=True).stdout


def measure(layout: str, board: dict, work: Path) -> dict:
    repo = work / layout
    repo.mkdir()
    (repo / "board.json").write_text(json.dumps(board))
    (repo / "gen.py").write_text(GEN)
    (repo / "params.yaml").write_text("rca:\n  pagerank:\n    damping: 0.85\n")
    metrics = "".join(f"      - {m}:\n          cache: false\n" for m in METRICS[layout](sorted(board)))
    # as in the pipeline: per-dataset rca stages whose results folder the report depends on (DVC shows
    # the changed folder's hash as a column)
    rca = (
        "  rca:\n    foreach: [" + ", ".join(sorted(board)) + "]\n    do:\n"
        "      cmd: python -c \"import pathlib, yaml; p = pathlib.Path('benchmarks/results/rca/${item}'); "
        "p.mkdir(parents=True, exist_ok=True); (p / 'pagerank.json').write_text(str(yaml.safe_load("
        "open('params.yaml'))['rca']['pagerank']))\"\n"
        "      params:\n        - rca.pagerank\n"
        "      outs:\n        - benchmarks/results/rca/${item}/pagerank.json:\n            cache: false\n"
    )
    (repo / "dvc.yaml").write_text(
        "stages:\n" + rca + "  report:\n    cmd: python gen.py " + layout + "\n    deps:\n      - gen.py\n"
        "      - board.json\n      - benchmarks/results/rca\n    params:\n      - rca.pagerank\n"
        "    metrics:\n" + metrics
    )
    env = {
        **os.environ,
        "COLUMNS": "200",
        "DVC_NO_ANALYTICS": "1",
        "GIT_AUTHOR_NAME": "w",
        "GIT_AUTHOR_EMAIL": "w@w",
        "GIT_COMMITTER_NAME": "w",
        "GIT_COMMITTER_EMAIL": "w@w",
    }
    _run(["git", "init", "-q", "-b", "main"], repo, env)
    _run(["dvc", "init", "-q"], repo, env)
    _run(["dvc", "repro", "-q"], repo, env)
    _run(["git", "add", "-A"], repo, env)
    _run(["git", "commit", "-qm", "base"], repo, env)
    _run(["dvc", "exp", "run", "-q", "-S", "rca.pagerank.damping=0.7"], repo, env)
    out = {}
    for view, cmd in (
        ("exp_show", ["dvc", "exp", "show", "--only-changed", "--no-pager"]),
        ("exp_show_unfolded", ["dvc", "exp", "show", "--only-changed"]),
        ("metrics_diff", ["dvc", "metrics", "diff"]),
    ):
        lines = _run(cmd, repo, env).splitlines()
        out[view] = {"width": max(len(x.rstrip()) for x in lines), "folded": sum(x.count("…") for x in lines)}
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--layouts", default=",".join(METRICS))
    ap.add_argument("--board", default=str(ROOT / "metrics" / "leaderboard.json"))
    args = ap.parse_args()
    if shutil.which("dvc") is None:
        print("dvc is not on PATH (pip install -e '.[pipeline]')", file=sys.stderr)
        return 1
    board = json.loads(Path(args.board).read_text())
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for layout in args.layouts.split(","):
            results[layout] = measure(layout, board, Path(tmp))
            print(f"{layout:12s} " + "  ".join(f"{k} {v}" for k, v in results[layout].items()))
    out = {
        "datasets": sorted(board),
        "change": "rca.pagerank.damping 0.85 -> 0.7 (pagerank's 4 metrics per dataset)",
        "columns": 200,
        "layouts": results,
    }
    path = ROOT / "benchmarks" / "results" / "dvc_width.json"
    path.write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
