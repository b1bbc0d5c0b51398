"""DVC stage `raw@<dataset>`: write data/raw/<dataset> — by the simulator for the datasets named
under `simulated:` in params.yaml, else by importing the registry's local copy of a public dataset
(from $OTLP_AIOPS_EXTERNAL/datasets/<name>, checksums verified)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import yaml


def simulate(name: str, params: dict, out: Path) -> dict:
    from otlp_aiops.datasets.simulator import ConfigError, SimulatorConfig, simulate

    settings = {**(params.get("simulate") or {}), **((params.get("simulated") or {}).get(name) or {})}
    try:
        cfg = SimulatorConfig.from_dict(settings)
        summary = simulate(cfg, out)
    except (ConfigError, FileExistsError) as e:
        raise SystemExit(f"error: params.yaml simulated.{name}: {e}") from None
    print(summary.describe())
    counts = json.loads((out / "dataset.json").read_text())["counts"]
    return {"source": "simulator", "system": cfg.system, "seed": cfg.seed, **counts}


def import_public(name: str, out: Path) -> dict:
    from otlp_aiops.datasets.adapters import AdapterError, import_dataset
    from otlp_aiops.datasets.registry import RegistryError, dataset_folder, get_entry, verify

    root = Path(os.environ.get("OTLP_AIOPS_EXTERNAL", "../shared")) / "datasets"
    try:
        entry = get_entry(name)
        src = dataset_folder(entry, root)
        checked = verify(entry, src)
        summary = import_dataset(name, src, out, adapter=entry.adapter)
    except (RegistryError, AdapterError) as e:
        raise SystemExit(f"error: {e}") from None
    print(summary.describe())
    # no timings here: DVC metrics should change only when the data does
    return {"source": "registry", "dataset": name, "files_verified": checked["files"], **summary.counts}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("dataset")
    ap.add_argument("--params", default="params.yaml")
    args = ap.parse_args()
    params = yaml.safe_load(Path(args.params).read_text())
    out = Path("data/raw") / args.dataset
    if args.dataset in (params.get("simulated") or {}):
        metrics = simulate(args.dataset, params, out)
    else:
        metrics = import_public(args.dataset, out)
    path = Path("metrics") / "raw" / f"{args.dataset}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(metrics, indent=2, sort_keys=True, default=str) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
