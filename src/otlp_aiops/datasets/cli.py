"""``otlp-aiops datasets …``: import a public failure dataset into the raw layout, list the known
datasets, fetch (and verify) a dataset copy. Mounted by the main CLI as the ``datasets`` group."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(
    name="datasets",
    help="Public labelled failure datasets: adapters into OTLP and the dataset registry.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.command("import")
def import_cmd(
    name: Annotated[
        str,
        typer.Argument(
            help="Dataset (nezha-tt, rcd-sockshop, petshop), adapter (nezha, rcaeval, …) or `otlp` for your "
            "own export."
        ),
    ],
    src: Annotated[
        Path,
        typer.Option(
            "--from",
            help="The dataset's source folder (its original layout; for `otlp`: the folder of OTLP files).",
        ),
    ],
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Raw dataset folder to write, e.g. data/raw/NAME.")
    ],
    adapter: Annotated[
        str | None,
        typer.Option(
            help="Adapter to use when NAME is not a known dataset (nezha, rcd-sockshop, petshop, rcaeval, "
            "otlp)."
        ),
    ] = None,
    incidents: Annotated[
        Path | None,
        typer.Option(
            help="otlp: the incident list, CSV or Parquet (start_time, end_time, root_cause_service, "
            "root_cause_indicator, fault_type; docs/own-data.md)."
        ),
    ] = None,
    topology: Annotated[
        Path | None,
        typer.Option(
            help='otlp: a true service graph, JSON {"edges": [{"caller", "callee"}]} or CSV caller,callee.'
        ),
    ] = None,
    time_unit: Annotated[
        str,
        typer.Option(
            help="otlp: unit of epoch-number times in the incident list: auto (from the magnitude) | s | ms "
            "| us | ns."
        ),
    ] = "auto",
    symlink: Annotated[
        bool,
        typer.Option(
            "--symlink/--copy",
            help="otlp: link the OTLP files instead of copying them (saves space; "
            "the export must then stay in place). The source is never moved or changed.",
        ),
    ] = False,
) -> None:
    """Convert a dataset folder into OTLP + incidents.parquet (+ topology.json) + dataset.json."""
    from otlp_aiops.datasets.adapters import AdapterError, import_dataset

    options: dict = {}
    if (adapter or name) == "otlp":
        options = {
            "incidents": incidents,
            "topology": topology,
            "time_unit": time_unit,
            "link": "symlink" if symlink else "copy",
        }
    elif incidents or topology:
        typer.echo("error: --incidents / --topology belong to the `otlp` import (your own export)", err=True)
        raise typer.Exit(2)
    try:
        summary = import_dataset(name, src, out, adapter=adapter, **options)
    except (AdapterError, FileExistsError) as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from None
    typer.echo(summary.describe())
    if options:
        how = "linked (keep the export in place)" if symlink else "copied"
        typer.echo(
            f"OTLP files {how} into {out / 'otlp'}; the source {src} is unchanged. "
            f"Next: otlp-aiops ingest {out / 'otlp'} --out data/interim/{out.name}"
        )


@app.command("list")
def list_cmd() -> None:
    """Show every registered dataset: description, size, licence, signals, incidents, source."""
    from otlp_aiops.datasets.registry import load_registry

    for e in load_registry().values():
        typer.echo(
            f"{e.name}  ({e.adapter} adapter)\n"
            f"  {e.description}\n"
            f"  size: {e.size_bytes / 1e6:.1f} MB in {len(e.files)} files   licence: {e.licence}\n"
            f"  signals: {', '.join(e.signals)}   incidents: {e.incidents}\n"
            f"  source: {e.url} (sha256 of every file in the registry)\n"
        )


@app.command("fetch")
def fetch_cmd(
    name: Annotated[str, typer.Argument(help="A registered dataset name (see `datasets list`).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder to put the verified copy in.")],
    src: Annotated[
        Path | None, typer.Option("--from", help="Use a local copy (DIR/NAME or DIR) instead of downloading.")
    ] = None,
) -> None:
    """Download a dataset from its pinned commit (or copy a local one) and verify every checksum."""
    from otlp_aiops.datasets.registry import RegistryError, fetch

    try:
        report = fetch(name, out, from_dir=src)
    except RegistryError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"{name}: {report['files']} files, {report['bytes'] / 1e6:.1f} MB verified -> {report['out']}")
