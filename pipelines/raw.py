"""DVC stage `raw@<dataset>`: write data/raw/<dataset> — by the simulator for the datasets named
under `simulated:` in params.yaml, from your own OTLP export for those named under `local:`
(docs/own-data.md; the export is read, never changed), else by importing the registry's local copy of
a public dataset (from $OTLP_AIOPS_EXTERNAL/datasets/<name>, checksums verified).

data/raw/<dataset> is a persistent DVC output: DVC does not delete it before the stage runs; the
stage replaces it atomically, and refuses (keeping it) a folder it did not write."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import yaml

from otlp_aiops.outputs import OutputError, atomic_write_json, check_name


def simulate(name: str, params: dict, out: Path) -> dict:
    from otlp_aiops.datasets.simulator import ConfigError, SimulatorConfig, simulate

    settings = {**(params.get("simulate") or {}), **((params.get("simulated") or {}).get(name) or {})}
    from otlp_aiops import progress

    # the simulator draws its own bar on a terminal; in logs, a line every 10 s says it is working
    quiet = "log" if progress.mode() == "log" else "off"
    try:
        cfg = SimulatorConfig.from_dict(settings)
        with progress.task(f"simulate {name}", mode_=quiet):
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


LOCAL_KEYS = {"from": "the export folder", "incidents": "the incident list (CSV or Parquet)",
              "topology": "optional service graph (JSON or CSV)", "time_unit": "auto | s | ms | us | ns",
              "link": "copy (default) | symlink"}


def import_local(name: str, spec: object, out: Path) -> dict:
    """`local.<name>` of params.yaml: your own OTLP export and its incident list -> data/raw/<name>."""
    from otlp_aiops.datasets.adapters import AdapterError
    from otlp_aiops.datasets.adapters.otlp import convert

    where = f"params.yaml local.{name}"
    if not isinstance(spec, dict):
        raise SystemExit(f"error: {where}: expected a mapping {{from: DIR, incidents: FILE}}, got {spec!r}")
    unknown = sorted(set(spec) - set(LOCAL_KEYS))
    if unknown:
        raise SystemExit(f"error: {where}: unknown key(s) {', '.join(unknown)}; known: "
                         + "; ".join(f"{k} ({v})" for k, v in LOCAL_KEYS.items()))
    missing = [k for k in ("from", "incidents") if not spec.get(k)]
    if missing:
        raise SystemExit(f"error: {where}: missing {' and '.join(missing)} ({'; '.join(LOCAL_KEYS[k] for k in missing)})")
    try:
        summary = convert(Path(str(spec["from"])), out, name=name, incidents=Path(str(spec["incidents"])),
                          topology=Path(str(spec["topology"])) if spec.get("topology") else None,
                          time_unit=str(spec.get("time_unit") or "auto"), link=str(spec.get("link") or "copy"))
    except AdapterError as e:
        raise SystemExit(f"error: {where}: {e}") from None
    print(summary.describe())
    counts = {k: v for k, v in summary.counts.items() if isinstance(v, int | float)}
    return {"source": "local", "dataset": name, **counts}


def fingerprint_local(name: str, spec: object) -> dict:
    """The DVC stage `local@<name>`: a fingerprint of the export and its incident list (sha256 of every
    file, by relative path). It changes only when their content does, and `raw` depends on the folder
    of fingerprints, so DVC rebuilds data/raw/<name> when the export changes in place."""
    import hashlib

    if not isinstance(spec, dict) or not spec.get("from") or not spec.get("incidents"):
        raise SystemExit(f"error: params.yaml local.{name}: expected {{from: DIR, incidents: FILE}}, got {spec!r}")
    files: dict[str, str] = {}
    for key in ("from", "incidents", "topology"):
        if not spec.get(key):
            continue
        root = Path(str(spec[key]))
        if not root.exists():
            raise SystemExit(f"error: params.yaml local.{name}.{key}: {root}: no such file or folder")
        paths = sorted(p for p in root.rglob("*") if p.is_file()) if root.is_dir() else [root]
        for p in paths:
            h = hashlib.sha256()
            with open(p, "rb") as f:
                for block in iter(lambda f=f: f.read(1 << 20), b""):
                    h.update(block)
            rel = p.relative_to(root).as_posix() if root.is_dir() else p.name
            files[f"{key}/{rel}"] = h.hexdigest()
    total = hashlib.sha256(json.dumps(files, sort_keys=True).encode()).hexdigest()
    return {"dataset": name, "files": len(files), "sha256": total}


def unknown_dataset(name: str, params: dict, out: Path) -> str:
    """The error for a name that no section of params.yaml and no registry entry describes."""
    from otlp_aiops.datasets.registry import load_registry

    msg = (f"error: unknown dataset {name!r}: params.yaml has no `simulated.{name}` and no `local.{name}`, and the "
           f"dataset registry has no {name!r} (it has {', '.join(sorted(load_registry()))}).\n"
           f"For your own OTLP export, add to params.yaml (docs/own-data.md):\n"
           f"  local:\n    {name}: {{from: path/to/export, incidents: path/to/incidents.csv}}")
    if out.exists() and any(out.iterdir()):
        msg += (f"\n{out} holds files this stage did not write; they are kept. Move them out of data/raw "
                f"(e.g. to exports/{name}) and name that folder as `from:`.")
    return msg


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("dataset")
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--fingerprint", action="store_true",
                    help="the `local@<dataset>` stage: write metrics/local/<dataset>.json (a hash of the export)")
    args = ap.parse_args()
    try:  # the name becomes data/raw/<dataset>: one plain path component
        check_name(args.dataset)
    except OutputError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    params = yaml.safe_load(Path(args.params).read_text())
    if args.fingerprint:
        fp = fingerprint_local(args.dataset, (params.get("local") or {}).get(args.dataset))
        path = Path("metrics") / "local" / f"{args.dataset}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(fp, indent=2, sort_keys=True) + "\n")
        return 0
    out = Path("data/raw") / args.dataset
    local = params.get("local") or {}
    if args.dataset in (params.get("simulated") or {}):
        metrics = simulate(args.dataset, params, out)
    elif args.dataset in local:
        metrics = import_local(args.dataset, local[args.dataset], out)
    else:
        from otlp_aiops.datasets.registry import load_registry

        if args.dataset not in load_registry():
            print(unknown_dataset(args.dataset, params, out), file=sys.stderr)
            return 2
        metrics = import_public(args.dataset, out)
    path = Path("metrics") / "raw" / f"{args.dataset}.json"
    atomic_write_json(path, metrics, default=str)
    return 0


if __name__ == "__main__":
    sys.exit(main())
