"""``otlp-aiops features``: build the feature tables of a dataset (the same function the DVC stage calls)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(
    help="Feature tables, dependency graph and incident cases.", no_args_is_help=True, add_completion=False
)


_DatasetOption = Annotated[str | None, typer.Option(help="Dataset name (default: params.yaml `dataset`).")]
_ParamsOption = Annotated[Path, typer.Option(help="params.yaml to read section `features` from.")]
_InterimOption = Annotated[
    str | None, typer.Option(help="Ingest tables (default data/interim/DATASET; or s3://bucket/prefix).")
]
_RawOption = Annotated[str | None, typer.Option(help="Raw dataset (default data/raw/DATASET; or s3://…).")]
_OUT_HELP = "Output (default data/features/DATASET; or s3://…: built locally, then uploaded and committed)."
_OutOption = Annotated[str | None, typer.Option("--out", "-o", help=_OUT_HELP)]
_SetOption = Annotated[list[str] | None, typer.Option("--set", help="Override a setting: KEY=VALUE (YAML).")]
_ExecutorOption = Annotated[
    str | None,
    typer.Option(help="local | ray: where the time partitions run (default: params; docs/scale.md)."),
]
_RayAddressOption = Annotated[
    str | None, typer.Option(help="The Ray cluster to join: auto, host:port or ray://host:port.")
]
_PartitionOption = Annotated[
    float, typer.Option(min=1e-9, help="ray: seconds of data per task (rounded to whole windows).")
]


@app.command()
def build(
    dataset: _DatasetOption = None,
    params: _ParamsOption = Path("params.yaml"),
    interim: _InterimOption = None,
    raw: _RawOption = None,
    out: _OutOption = None,
    settings: _SetOption = None,
    executor: _ExecutorOption = None,
    ray_address: _RayAddressOption = None,
    partition: _PartitionOption = 3600.0,
) -> None:
    """Build service_windows, log templates, edges, graph, cases and feature matrices."""
    import yaml

    from otlp_aiops.config import ConfigError
    from otlp_aiops.executor import ExecutorError, executor_config
    from otlp_aiops.features.build import FeaturesError, build_features
    from otlp_aiops.features.config import resolve_config
    from otlp_aiops.storage import StorageError, remote_io

    p = yaml.safe_load(params.read_text()) if params.exists() else {}
    p = p or {}
    name = dataset or p.get("dataset")
    if not name:
        typer.echo("error: no --dataset and no `dataset` in params", err=True)
        raise typer.Exit(2)
    from otlp_aiops.outputs import OutputError, check_name

    try:  # `--dataset ../../x` must not name a folder outside data/features
        check_name(name)
    except OutputError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from None
    section = dict(p.get("features") or {})
    overrides = dict(section.get("overrides") or {})
    own = dict(overrides.get(name) or {})  # --set wins over the dataset's overrides
    from otlp_aiops.cli_settings import parse_settings

    own.update(parse_settings(settings))
    section["overrides"] = {**overrides, name: own}
    try:
        cfg = resolve_config(section, name, where="features: ")
        ex = executor_config(p, kind=executor, address=ray_address)
        summary = remote_io(
            lambda ins, o: build_features(
                ins[0], ins[1], o, cfg, dataset=name, executor=ex, partition_s=partition
            ),
            [interim or str(Path("data/interim") / name), raw or str(Path("data/raw") / name)],
            out or str(Path("data/features") / name),
        )
    except (ConfigError, FeaturesError, FileNotFoundError, StorageError, ExecutorError) as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(1) from None
    typer.echo(json.dumps(summary, indent=2, sort_keys=True))
