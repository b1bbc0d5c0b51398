"""DVC stage `simulate`: params.yaml `simulate:` -> data/raw/sim-boutique (OTLP + ground truth)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import yaml

from otlp_aiops.datasets.simulator import ConfigError, SimulatorConfig, simulate

OUT = Path("data/raw/sim-boutique")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    params = yaml.safe_load(Path(args.params).read_text())
    try:
        cfg = SimulatorConfig.from_dict(params.get("simulate") or {})
        summary = simulate(cfg, args.out)
    except (ConfigError, FileExistsError) as e:
        print(f"error: {args.params} simulate: {e}", file=sys.stderr)
        return 1
    print(summary.describe())
    counts = json.loads((args.out / "dataset.json").read_text())["counts"]
    metrics = Path("metrics") / "simulate.json"
    metrics.parent.mkdir(exist_ok=True)
    metrics.write_text(
        json.dumps({"system": cfg.system, "seed": cfg.seed, **counts}, indent=2, sort_keys=True) + "\n"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
