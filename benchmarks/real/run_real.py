"""The benchmark on the real datasets (nezha-tt, rcd-sockshop, petshop) in a private root, with the
functions the DVC stages use: what ``experiments/real-datasets.sh`` does through ``dvc exp run``,
without touching the repository's ``data/`` or ``benchmarks/results/``.

    python benchmarks/real/run_real.py --root /tmp/k \
        [--datasets nezha-tt,rcd-sockshop,petshop] [--methods nezha,ensemble,multimodal] \
        [--task rca|detect] [--params params.yaml] [--build-only] [--rebuild]

Steps, per dataset (and for the transfer source ``benchmark.transfer_from``, default
sim-boutique-train, when a supervised ranker is asked for):

1. ``<root>/params.yaml``: a copy of ``--params`` with ``datasets`` and ``benchmark.datasets``
   extended to the real datasets (as ``experiments/real-datasets.sh`` does);
2. ``<root>/data/raw/<ds>``: the registry's local copy (``$OTLP_AIOPS_EXTERNAL/datasets``, default
   ``/work/shared``) or the simulator (``pipelines/raw.py``), unless already there;
3. ``<root>/data/interim/<ds>``: OTLP -> Parquet (``pipelines/ingest.py``), unless already there;
4. ``<root>/data/features/<ds>``: the feature store (``pipelines/features.py``), unless already there;
5. every method: :func:`otlp_aiops.stages.rca.run_rca` (or ``stages.detect.run_detect``) with
   ``root=<root>`` and ``track=False`` (no MLflow), the seeds / offsets / folds of params.yaml;
   results land in ``<root>/benchmarks/results/{rca,detect}/<ds>/<method>.{parquet,json}``.

Prints one line per run (AC@1/3/5, Avg@5, MRR, wall seconds, seconds per case) and appends it to
``<root>/benchmarks/results/run_real.jsonl``. A failing method is reported and the next one runs.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import time
import traceback
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
REAL = ["nezha-tt", "rcd-sockshop", "petshop"]


def _load_stage(name: str):
    spec = importlib.util.spec_from_file_location(f"_stage_{name}", REPO / "pipelines" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def write_params(src: Path, root: Path, datasets: list[str]) -> dict:
    params = yaml.safe_load(src.read_text())
    train = (params.get("benchmark") or {}).get("transfer_from")
    ds = list(params.get("datasets") or [])
    for d in [*datasets, *([train] if train else [])]:
        if d not in ds:
            ds.append(d)
    params["datasets"] = ds
    bds = list(params["benchmark"].get("datasets") or [])
    params["benchmark"]["datasets"] = bds + [d for d in datasets if d not in bds]
    root.mkdir(parents=True, exist_ok=True)
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return params


def build(ds: str, params: dict, root: Path, rebuild: bool = False) -> None:
    from otlp_aiops.executor import executor_config
    from otlp_aiops.features.build import build_features
    from otlp_aiops.features.config import resolve_config
    from otlp_aiops.otlp.ingest import ingest_paths
    from otlp_aiops.otlp.ingest_config import IngestConfig

    raw = root / "data" / "raw" / ds
    interim = root / "data" / "interim" / ds
    feats = root / "data" / "features" / ds
    if rebuild or not (raw / "otlp").exists():
        t0 = time.perf_counter()
        stage = _load_stage("raw")
        raw.parent.mkdir(parents=True, exist_ok=True)
        if ds in (params.get("simulated") or {}):
            stage.simulate(ds, params, raw)
        else:
            stage.import_public(ds, raw)
        print(f"raw {ds}: {time.perf_counter() - t0:.1f} s", flush=True)
    if rebuild or (not (interim / "spans").exists() and not (interim / "metrics").exists()):
        t0 = time.perf_counter()
        cfg = IngestConfig.from_params(params)
        ingest_paths([raw / "otlp"], interim, workers=cfg.workers, batch_rows=cfg.batch_rows, limits=cfg.limits,
                     executor=executor_config(params))
        print(f"ingest {ds}: {time.perf_counter() - t0:.1f} s", flush=True)
    if rebuild or not (feats / "meta.json").exists():
        t0 = time.perf_counter()
        summary = build_features(interim, raw, feats, resolve_config(params.get("features"), ds), dataset=ds)
        print(f"features {ds}: {summary['windows']} windows x {summary['services']} services x "
              f"{summary['features']} features, {summary['cases']} cases ({time.perf_counter() - t0:.1f} s)",
              flush=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", required=True, type=Path, help="private root: data/, benchmarks/results/ under it")
    ap.add_argument("--datasets", default=",".join(REAL))
    ap.add_argument("--methods", default="", help="comma list (default: params benchmark.rca / .detectors)")
    ap.add_argument("--task", choices=("rca", "detect"), default="rca")
    ap.add_argument("--params", type=Path, default=REPO / "params.yaml")
    ap.add_argument("--build-only", action="store_true")
    ap.add_argument("--rebuild", action="store_true", help="rebuild raw/interim/features even where present")
    args = ap.parse_args()
    os.environ.setdefault("OTLP_AIOPS_EXTERNAL", "/work/shared")
    root = args.root.resolve()
    datasets = [d for d in args.datasets.split(",") if d]
    params = write_params(args.params, root, datasets)
    bench = params["benchmark"]
    methods = [m for m in args.methods.split(",") if m] or list(bench["rca" if args.task == "rca" else "detectors"])

    from otlp_aiops import registry
    from otlp_aiops.stages.detect import run_detect
    from otlp_aiops.stages.rca import run_rca

    need_train = args.task == "rca" and any(
        getattr(registry.model_class("ranker", m), "supervised", False) for m in methods)
    for ds in ([bench["transfer_from"]] if need_train and bench.get("transfer_from") else []) + datasets:
        build(ds, params, root, rebuild=args.rebuild)
    if args.build_only:
        return 0
    log = root / "benchmarks" / "results" / "run_real.jsonl"
    log.parent.mkdir(parents=True, exist_ok=True)
    failed = 0
    for ds in datasets:
        for m in methods:
            t0 = time.perf_counter()
            try:
                fn = run_rca if args.task == "rca" else run_detect
                metrics = fn(ds, m, params, root=root, track=False)
            except Exception as e:  # report it and go on with the next method
                failed += 1
                print(f"FAILED {args.task} {ds} {m}: {type(e).__name__}: {e}", flush=True)
                traceback.print_exc()
                continue
            wall = time.perf_counter() - t0
            keys = (("ac_at_1", "ac_at_3", "ac_at_5", "avg_at_5", "mrr") if args.task == "rca"
                    else ("range_f1", "pa_f1", "auc_pr", "vus_pr", "false_alarms_per_hour"))
            line = {"task": args.task, "dataset": ds, "method": m, "wall_s": round(wall, 1),
                    **{k: metrics.get(k) for k in keys},
                    **{k: metrics[k] for k in ("seconds_per_case", "mean_seconds", "seconds") if k in metrics}}
            print(json.dumps(line, default=str), flush=True)
            with open(log, "a") as f:
                f.write(json.dumps(line, default=str) + "\n")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
