"""Deep-detector benchmark: training seconds per epoch (and in all) of ``lstm_ae`` and ``usad`` with
their ``params.yaml`` configs (``detect.<name>``; ``--device`` overrides the device), on the default
dataset's detection matrix.

The data is ``otlp_aiops.features.store.load_detection("data/features/sim-boutique")`` when the
features stage has written it; otherwise a synthetic matrix of the same shape (480 windows of 15 s ×
12 services × 25 features, a shared daily-like swing, services without traces as NaN columns, four
injected incidents) — the result says which. Detectors are fitted on the fault-free windows (split
into segments at the gaps the incidents leave) and score every window; AUC-PR against the labels is
reported as a sanity check, not as a benchmark result. Threads are pinned (default 1, the
"one core" figure). Results: ``benchmarks/results/detectors.json``.

    .venv/bin/python benchmarks/models/detectors.py                       # both detectors, seeds 0,1,2, 1 thread
    .venv/bin/python benchmarks/models/detectors.py --threads 2 --seeds 0
    .venv/bin/python benchmarks/models/detectors.py --device cuda         # on a GPU machine
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "benchmarks"))
RESULTS = REPO / "benchmarks" / "results" / "detectors.json"
DATASET = REPO / "data" / "features" / "sim-boutique"
TARGET_FIT_S = 20.0  # the aim for a default fit on one core


def synthetic_detection(n: int = 480, services: int = 12, features: int = 25, *, seed: int = 0):
    """A stand-in with the default dataset's shape: correlated per-service features on noise, two
    services without traces (their span features NaN), four incidents of 12-20 windows in the second
    half, each shifting 3 features of one service by 4-6 σ and its first caller by a third of that."""
    from otlp_aiops.features.data import DetectionData

    rng = np.random.default_rng(seed)
    t = np.arange(n)
    swing = np.sin(2 * np.pi * t / 240.0)  # one "day" per hour of 15 s windows
    base = rng.uniform(0.5, 200.0, size=(services, features))
    scale = base * rng.uniform(0.02, 0.1, size=(services, features))
    load = rng.uniform(0.0, 1.0, size=(services, features))  # how much each feature follows traffic
    common = rng.standard_normal((n, 1, 1)) * 0.3  # a shared disturbance: learnable correlation
    v = base + scale * (load * (3.0 * swing[:, None, None] + common) + rng.standard_normal((n, services, features)))
    v[:, services - 2:, :8] = np.nan  # two services without traces: no span features
    label = np.zeros(n, dtype=np.int8)
    incident = np.array([""] * n, dtype=object)
    starts = np.sort(rng.choice(np.arange(n // 2, n - 25, 30), size=4, replace=False))
    for k, a in enumerate(starts):
        b = a + int(rng.integers(12, 21))
        s = int(rng.integers(0, services - 2))
        f = rng.choice(8, size=3, replace=False)
        mag = rng.uniform(4.0, 6.0)
        v[a:b, s, f] += mag * scale[s, f]
        v[a:b, (s + 1) % (services - 2), f] += mag / 3 * scale[(s + 1) % (services - 2), f]
        label[a:b] = 1
        incident[a:b] = f"inc-{k}"
    fault_free = label == 0
    for a in starts:  # margin around incidents, as the features stage does
        fault_free[max(0, a - 4): a + 25] = False
    columns = tuple(f"svc{s:02d}|feat{f:02d}" for s in range(services) for f in range(features))
    times = np.datetime64("2026-01-05T08:00:00", "ns") + t * np.timedelta64(15, "s")
    return DetectionData("synthetic-default-shape", columns, times, v.reshape(n, -1), label, incident,
                         fault_free, np.zeros(n, dtype=np.int64), window_seconds=15.0)


def _shown(path: Path) -> str:
    return str(path.relative_to(REPO)) if path.is_relative_to(REPO) else str(path)


def load_data(path: Path) -> tuple[Any, str]:
    path = path.resolve()
    if path.exists():
        try:
            from otlp_aiops.features.store import load_detection
        except ImportError as e:
            note = f"{path} exists but otlp_aiops.features.store.load_detection is missing ({e}); synthetic data"
        else:
            return load_detection(str(path)), f"loaded {_shown(path)}"
    else:
        note = f"{_shown(path)} not found (run the features stage first); synthetic data of the same shape"
    return synthetic_detection(), note


def fault_free_segments(d: Any) -> tuple[np.ndarray, np.ndarray]:
    """Rows to train on (the fault-free ones) and their segment numbers: a new segment wherever the
    kept rows skip a window or the data's own segment changes."""
    rows = np.flatnonzero(d.fault_free)
    brk = np.ones(len(rows), dtype=bool)
    brk[1:] = (np.diff(rows) != 1) | (np.diff(d.segment[rows]) != 0)
    return rows, np.cumsum(brk)


def detector_config(params: dict[str, Any], name: str, device: str) -> dict[str, Any]:
    """``detect.<name>`` of params.yaml (the pipeline's config; {} when absent) on ``device``."""
    return {**(((params.get("detect") or {}).get(name)) or {}), "device": device}


def measure(name: str, d: Any, seed: int, cfg: dict[str, Any]) -> dict[str, Any]:
    from sklearn.metrics import average_precision_score

    from otlp_aiops import registry

    device = cfg["device"]
    model = registry.create("detector", name, cfg, seed=seed)
    rows, seg = fault_free_segments(d)
    load0 = os.getloadavg()[0]
    cpu0, t0 = time.process_time(), time.perf_counter()
    model.fit(d.X[rows], seg)
    fit_s, fit_cpu_s = time.perf_counter() - t0, time.process_time() - cpu0
    t0 = time.perf_counter()
    scores = model.score(d.X, d.segment)
    score_s = time.perf_counter() - t0
    ep = model.epoch_seconds_
    return {
        "detector": name, "seed": seed, "device": device,
        "fit_s": round(fit_s, 3), "fit_cpu_s": round(fit_cpu_s, 3), "score_s": round(score_s, 3),
        "epochs_run": model.n_epochs_, "best_epoch": model.best_epoch_,
        "epoch_s_median": round(statistics.median(ep), 4), "epoch_s_mean": round(statistics.fmean(ep), 4),
        "epoch_s_first": round(ep[0], 4), "epoch_seconds": [round(x, 4) for x in ep],
        "auc_pr": round(float(average_precision_score(d.label, scores)), 4) if d.label.any() else None,
        "loadavg_1min_before": round(load0, 2), "loadavg_1min_after": round(os.getloadavg()[0], 2),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--detectors", default="lstm_ae,usad")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--data", type=Path, default=DATASET)
    ap.add_argument("--params", type=Path, default=REPO / "params.yaml", help="configs: its detect.<name> sections")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()

    import torch
    import yaml
    from machine import machine_info

    from otlp_aiops import registry
    from otlp_aiops.config import config_to_dict

    torch.set_num_threads(args.threads)
    params = yaml.safe_load(args.params.read_text()) if args.params.exists() else {}
    d, note = load_data(args.data)
    rows, seg = fault_free_segments(d)
    print(f"data: {note}; {d.X.shape[0]} windows x {d.X.shape[1]} columns, {len(rows)} fault-free "
          f"in {int(seg.max()) if len(seg) else 0} segments, {int(d.label.sum())} labelled", flush=True)
    runs = []
    for name in args.detectors.split(","):
        cfg = detector_config(params, name, args.device)
        registry.create("detector", name, cfg).fit(d.X[rows][:50])  # warm-up, not timed
        for seed in (int(s) for s in args.seeds.split(",")):
            r = measure(name, d, seed, cfg)
            runs.append(r)
            print(f"{name:8s} seed {seed}: fit {r['fit_s']:6.2f} s, {r['epochs_run']:3d} epochs "
                  f"(best {r['best_epoch']}), {r['epoch_s_median']:.3f} s/epoch median, "
                  f"score {r['score_s']:.3f} s, AUC-PR {r['auc_pr']}", flush=True)
    summary = {}
    for name in args.detectors.split(","):
        rs = [r for r in runs if r["detector"] == name]
        summary[name] = {
            "config": config_to_dict(registry.create("detector", name, detector_config(params, name, args.device)).config),
            "fit_s_median": statistics.median(r["fit_s"] for r in rs),
            "epoch_s_median": statistics.median(x for r in rs for x in r["epoch_seconds"]),
            "epochs_run": [r["epochs_run"] for r in rs],
            "auc_pr": [r["auc_pr"] for r in rs],
            "meets_target_fit_s": statistics.median(r["fit_s"] for r in rs) < TARGET_FIT_S,
        }
    result = {
        "benchmark": "detectors", "when": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "data": {"note": note, "dataset": d.dataset, "windows": int(d.X.shape[0]), "columns": int(d.X.shape[1]),
                 "fault_free_windows": len(rows), "labelled_windows": int(d.label.sum())},
        "threads": args.threads, "target_fit_s": TARGET_FIT_S, "params": _shown(args.params.resolve()),
        "machine": machine_info(torch=torch, numpy=np), "summary": summary, "runs": runs,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".detectors.", suffix=".json", dir=args.out.parent)
    with os.fdopen(fd, "w") as f:
        json.dump(result, f, indent=2)
        f.write("\n")
    os.replace(tmp, args.out)
    for name, s in summary.items():
        print(f"{name}: fit {s['fit_s_median']:.2f} s median (target < {TARGET_FIT_S:.0f} s), "
              f"{s['epoch_s_median']:.3f} s/epoch, AUC-PR {s['auc_pr']}")
    print(f"wrote {_shown(args.out.resolve())}")


if __name__ == "__main__":
    main()
