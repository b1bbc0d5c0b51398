"""The ``otlp-aiops`` command line: one sub-command per pipeline stage, calling the library functions
that the DVC stages call."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(
    name="otlp-aiops",
    help="AIOps research workbench for OpenTelemetry data.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _main(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log at DEBUG level.")] = False,
) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s"
    )


@app.command()
def ingest(
    sources: Annotated[list[Path], typer.Argument(help="OTLP files or folders (searched recursively).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder for the Parquet tables.")],
    signal: Annotated[
        str | None,
        typer.Option(
            help="traces | metrics | logs: the signal of protobuf input whose file names do not say it."
        ),
    ] = None,
    workers: Annotated[
        int | None, typer.Option(help="Parallel worker processes (default: CPU count).")
    ] = None,
    batch_rows: Annotated[int, typer.Option(help="Rows per Parquet row group (bounds memory).")] = 32768,
) -> None:
    """Convert OTLP exports (JSON lines, JSON, protobuf, length-prefixed, zstd, gzip) to Parquet tables.

    Bad records are set aside in OUT/quarantine/ with file, position and reason; the summary and
    OUT/ingest_report.json give per-file counts. Exits 1 only if an input cannot be read at all or
    the output cannot be written.
    """
    from otlp_aiops.otlp.ingest import IngestFatalError, ingest_paths, print_summary

    try:
        report = ingest_paths(sources, out, signal=signal, workers=workers, batch_rows=batch_rows)
    except IngestFatalError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(1) from None
    print_summary(report, out)


@app.command()
def simulate(
    out: Annotated[Path, typer.Option("--out", "-o", help="Raw dataset folder to write.")],
    system: Annotated[
        str, typer.Option(help="online-boutique | train-ticket | random:N")
    ] = "online-boutique",
    duration: Annotated[str, typer.Option(help="Simulated time span, e.g. 2h, 90m, 3600s.")] = "2h",
    incidents: Annotated[int, typer.Option(help="Number of injected incidents.")] = 40,
    seed: Annotated[
        int, typer.Option(help="Random seed; same parameters and seed give identical files.")
    ] = 0,
    framing: Annotated[str, typer.Option(help="jsonl | proto | proto-zstd")] = "proto",
    settings: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            help="Any other simulator setting as KEY=VALUE (a YAML value), repeatable, e.g. "
            "--set request_rate=5 --set 'fault_types=[cpu_hog, pod_kill]' (see docs/simulator.md).",
        ),
    ] = None,
) -> None:
    """Write a labelled fault-injection dataset as real OTLP (the built-in default dataset)."""
    import yaml

    from otlp_aiops.datasets.simulator import ConfigError, SimulatorConfig
    from otlp_aiops.datasets.simulator import simulate as run_simulation

    params: dict[str, object] = {
        "system": system,
        "duration": duration,
        "incidents": incidents,
        "seed": seed,
        "framing": framing,
    }
    for item in settings or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            typer.echo(f"error: --set {item!r}: expected KEY=VALUE", err=True)
            raise typer.Exit(2)
        params[key.strip()] = yaml.safe_load(value)
    try:
        cfg = SimulatorConfig.from_dict(params)
        summary = run_simulation(cfg, out)
    except (ConfigError, FileExistsError) as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from None
    typer.echo(summary.describe())


def _benchmark(task: str, dataset: str, method: str, params_file: Path, track: bool) -> None:
    from otlp_aiops.evaluate.benchmark import stage_main

    rc = stage_main(task, [dataset, method, "--params", str(params_file), *([] if track else ["--no-track"])])
    if rc:
        raise typer.Exit(rc)


@app.command()
def rca(
    dataset: Annotated[str, typer.Argument(help="A dataset with features in data/features/<dataset>.")],
    method: Annotated[str, typer.Argument(help="A registered ranker: baro, pagerank, gnn, ...")],
    params: Annotated[Path, typer.Option(help="Settings file (method config: rca.<method>).")] = Path("params.yaml"),
    track: Annotated[bool, typer.Option(help="Log the run to MLflow (mlflow.db at the repository root).")] = True,
) -> None:
    """Rank root causes of every labelled case over the seeds and score them (the rca stage)."""
    _benchmark("rca", dataset, method, params, track)


@app.command()
def detect(
    dataset: Annotated[str, typer.Argument(help="A dataset with features in data/features/<dataset>.")],
    method: Annotated[str, typer.Argument(help="A registered detector: nsigma, iforest, lstm_ae, ...")],
    params: Annotated[Path, typer.Option(help="Settings file (method config: detect.<method>).")] = Path("params.yaml"),
    track: Annotated[bool, typer.Option(help="Log the run to MLflow (mlflow.db at the repository root).")] = True,
) -> None:
    """Fit an anomaly detector on fault-free windows, score the test part and evaluate it (the detect stage)."""
    _benchmark("detect", dataset, method, params, track)


@app.command()
def models() -> None:
    """List the registered detectors and rankers with their settings and defaults."""
    from otlp_aiops import registry
    from otlp_aiops.config import config_to_dict

    for kind in ("detector", "ranker"):
        typer.echo(f"{kind}s:")
        for name in registry.names(kind):
            cls = registry.model_class(kind, name)
            typer.echo(f"  {name:18s} {config_to_dict(cls.Config())}")


def _mount_sub_apps() -> None:
    from otlp_aiops.datasets.cli import app as datasets_app
    from otlp_aiops.features.cli import app as features_app

    app.add_typer(datasets_app, name="datasets", help="Public failure datasets: list, fetch, import.")
    app.add_typer(features_app, name="features", help="Feature tables: service windows, edges, cases.")


_mount_sub_apps()

if __name__ == "__main__":
    app()
