"""Byte identity of ingest's Parquet output across code versions and decoders: the same inputs are
converted by another tree (``--before``, e.g. an exported older commit with its built ``_wire``), by
this tree with the C decoder and by this tree with the pure-Python decoder
(``OTLP_AIOPS_PURE_PYTHON=1``), each in a fresh interpreter; every Parquet file is compared byte for
byte with the ``--before`` tree's.

    git archive HEAD src setup.py pyproject.toml README.md | tar -x -C /tmp/before
    (cd /tmp/before && /work/main/.venv/bin/python setup.py build_ext --inplace)  # its _wire, _wire_metrics
    .venv/bin/python benchmarks/ingest/identity.py --before /tmp/before/src FILE...

FILEs of any signal (the name tells ingest which): traces and logs exercise ``_wire``, metrics
``_wire_metrics``; run it once per signal, e.g. on data/raw/sim-boutique/otlp/metrics-0000{1,2}.binpb.
Prints one line per comparison; exits 1 if any file differs.
"""

from __future__ import annotations

import argparse
import filecmp
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CODE = (
    "import sys; from otlp_aiops.otlp import ingest, accel; "
    "print(accel.implementation(), file=sys.stderr); ingest.ingest_paths(sys.argv[2:], sys.argv[1], workers=1)"
)


def convert(srcs: list[Path], out: Path, pythonpath: Path, pure: bool) -> None:
    env = {k: v for k, v in os.environ.items() if k != "OTLP_AIOPS_PURE_PYTHON"}
    env["PYTHONPATH"] = str(pythonpath)
    if pure:
        env["OTLP_AIOPS_PURE_PYTHON"] = "1"
    subprocess.run([sys.executable, "-c", CODE, str(out), *map(str, srcs)], env=env, check=True, cwd="/")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--before", type=Path, required=True, help="the other tree's src/ folder")
    ap.add_argument("files", type=Path, nargs="+", help="OTLP files, converted together")
    a = ap.parse_args()
    ok = True
    with tempfile.TemporaryDirectory() as tmp:
        outs = {}
        for mode, path, pure in (
            ("before", a.before, False),
            ("c", REPO / "src", False),
            ("pure", REPO / "src", True),
        ):
            outs[mode] = Path(tmp) / mode
            convert([f.resolve() for f in a.files], outs[mode], path.resolve(), pure)
        files = sorted(p.relative_to(outs["before"]) for p in outs["before"].rglob("*.parquet"))
        for mode in ("c", "pure"):
            other = sorted(p.relative_to(outs[mode]) for p in outs[mode].rglob("*.parquet"))
            differ = [
                str(f)
                for f in files
                if not (outs[mode] / f).exists()
                or not filecmp.cmp(outs["before"] / f, outs[mode] / f, shallow=False)
            ]
            same = other == files and not differ
            ok &= same
            print(
                f"before vs {mode}: {len(files)} Parquet files, "
                + ("identical" if same else f"DIFFERENT {differ}")
            )
        shutil.rmtree(tmp, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
