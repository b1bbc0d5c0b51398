"""The ``otlp-aiops`` command line: one sub-command per pipeline stage, calling the library functions
that the DVC stages call."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer

from otlp_aiops.cli_settings import parse_settings

app = typer.Typer(
    name="otlp-aiops",
    help="AIOps research workbench for OpenTelemetry data.",
    no_args_is_help=True,
    add_completion=True,  # --install-completion / --show-completion (bash, zsh, fish, PowerShell)
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        from otlp_aiops import __version__

        typer.echo(f"otlp-aiops {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log at DEBUG level.")] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s"
    )


@app.command()
def ingest(
    sources: Annotated[list[str], typer.Argument(help="OTLP files or folders (searched recursively); "
                                                 "local paths or s3://bucket/prefix.")],
    out: Annotated[
        str,
        typer.Option("--out", "-o", help="Output folder for the Parquet tables (a local path, or "
                     "s3://bucket/prefix: built locally, then uploaded and committed)."),
    ],
    signal: Annotated[
        str | None,
        typer.Option(
            help="traces | metrics | logs: the signal of protobuf input whose file names do not say it."
        ),
    ] = None,
    workers: Annotated[
        int | None, typer.Option(min=1, help="Parallel worker processes (default: CPU count).")
    ] = None,
    batch_rows: Annotated[
        int, typer.Option(min=1, help="Rows per Parquet row group (bounds memory).")
    ] = 32768,
    max_part_bytes: Annotated[
        int,
        typer.Option(min=1, help="Largest line / document block / frame, decompressed; a larger one is "
                     "quarantined as too_large (bounds memory against compression bombs)."),
    ] = 256 << 20,
    max_empty_frames: Annotated[
        int, typer.Option(min=1, help="Zero-length frames in a row after which a stream is not read further.")
    ] = 4096,
    executor: Annotated[
        str | None,
        typer.Option(help="local | ray: where files are converted (default: local; docs/scale.md)."),
    ] = None,
    ray_address: Annotated[
        str | None, typer.Option(help="The Ray cluster to join: auto, host:port or ray://host:port.")
    ] = None,
    block_bytes: Annotated[
        int, typer.Option(min=1, help="ray: an uncompressed JSON-lines or length-prefixed file larger than "
                          "this is cut at record boundaries into blocks converted by tasks of their own.")
    ] = 256 << 20,
) -> None:
    """Convert OTLP exports (JSON lines, JSON, protobuf, length-prefixed, zstd, gzip) to Parquet tables.

    Bad records are set aside in OUT/quarantine/ with file, position and reason; the summary and
    OUT/ingest_report.json give per-file counts. Exits 1 only if an input cannot be read at all or
    the output cannot be written.
    """
    from otlp_aiops.otlp.framing import Limits
    from otlp_aiops.otlp.ingest import IngestFatalError, ingest_paths, print_summary

    try:
        limits = Limits(max_part_bytes=max_part_bytes, max_empty_frames=max_empty_frames)
    except ValueError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from None
    from otlp_aiops.executor import ExecutorError, executor_config
    from otlp_aiops.storage import StorageError, remote_io, staged_labels

    try:
        cfg = executor_config({}, kind=executor, address=ray_address)
        def run(ins: list, o: Path) -> dict:
            return ingest_paths(ins, o, signal=signal, workers=workers, batch_rows=batch_rows, limits=limits,
                                executor=cfg, source_labels=staged_labels(ins, sources), block_bytes=block_bytes)

        report = remote_io(run, sources, out)
    except (IngestFatalError, ExecutorError, StorageError) as e:
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
    incidents: Annotated[int, typer.Option(min=0, help="Number of injected incidents.")] = 40,
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

    from otlp_aiops.datasets.simulator import ConfigError, SimulatorConfig
    from otlp_aiops.datasets.simulator import simulate as run_simulation

    params: dict[str, object] = {
        "system": system,
        "duration": duration,
        "incidents": incidents,
        "seed": seed,
        "framing": framing,
    }
    params.update(parse_settings(settings))
    try:
        cfg = SimulatorConfig.from_dict(params)
        summary = run_simulation(cfg, out)
    except (ConfigError, FileExistsError) as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from None
    typer.echo(summary.describe())


def _benchmark(
    task: str, dataset: str, method: str | None, params_file: Path, track: bool, all_: bool
) -> None:
    from otlp_aiops.stages.detect import detect_stage
    from otlp_aiops.stages.entry import stage_command
    from otlp_aiops.stages.rca import rca_stage

    if all_ == (method is not None):
        typer.echo(f"error: name one METHOD or pass --all (every method of params.yaml "
                   f"benchmark.{'rca' if task == 'rca' else 'detectors'})", err=True)
        raise typer.Exit(2)
    methods = [method] if method else _params_methods(task, params_file)
    stage = rca_stage if task == "rca" else detect_stage
    failed = []
    for m in methods:
        if len(methods) > 1:
            typer.echo(f"== {task} {dataset} {m}", err=True)
        rc = stage_command(task, dataset, m, params_file, stage=stage, track=track)
        if rc:
            failed.append(m)
    if len(methods) > 1:
        typer.echo(f"{task} {dataset}: {len(methods) - len(failed)} of {len(methods)} methods done"
                   + (f"; failed: {', '.join(failed)}" if failed else ""), err=True)
    if failed:
        raise typer.Exit(1)


def _params_methods(task: str, params_file: Path) -> list[str]:
    """The methods of ``benchmark.rca`` / ``benchmark.detectors`` in the settings file."""
    import yaml

    try:
        params = yaml.safe_load(params_file.read_text()) or {}
    except (OSError, yaml.YAMLError) as e:
        typer.echo(f"error: {params_file}: {e}", err=True)
        raise typer.Exit(2) from None
    key = "rca" if task == "rca" else "detectors"
    methods = (params.get("benchmark") or {}).get(key) or []
    if not methods:
        typer.echo(f"error: {params_file}: benchmark.{key} lists no methods", err=True)
        raise typer.Exit(2)
    return [str(m) for m in methods]


_TRACK_HELP = "Log the run to MLflow (mlflow.db at the repository root)."


@app.command()
def rca(
    dataset: Annotated[str, typer.Argument(help="A dataset with features in data/features/<dataset>.")],
    method: Annotated[
        str | None, typer.Argument(help="A registered ranker: baro, pagerank, gnn, ... (or --all)")
    ] = None,
    all_: Annotated[
        bool, typer.Option("--all", help="Every ranker of params.yaml benchmark.rca, one after another.")
    ] = False,
    params: Annotated[
        Path, typer.Option(help="Settings file (method config: rca.<method>).")
    ] = Path("params.yaml"),
    track: Annotated[bool, typer.Option(help=_TRACK_HELP)] = True,
) -> None:
    """Rank root causes of every labelled case over the seeds and score them (the rca stage)."""
    _benchmark("rca", dataset, method, params, track, all_)


@app.command()
def detect(
    dataset: Annotated[str, typer.Argument(help="A dataset with features in data/features/<dataset>.")],
    method: Annotated[
        str | None, typer.Argument(help="A registered detector: nsigma, iforest, lstm_ae, ... (or --all)")
    ] = None,
    all_: Annotated[
        bool,
        typer.Option("--all", help="Every detector of params.yaml benchmark.detectors, one after another."),
    ] = False,
    params: Annotated[
        Path, typer.Option(help="Settings file (method config: detect.<method>).")
    ] = Path("params.yaml"),
    track: Annotated[bool, typer.Option(help=_TRACK_HELP)] = True,
) -> None:
    """Fit an anomaly detector on fault-free windows, score the test part and evaluate it (the detect
    stage)."""
    _benchmark("detect", dataset, method, params, track, all_)


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def report(
    ctx: typer.Context,
    params: Annotated[
        Path, typer.Option(help="Settings file (sections report and benchmark).")
    ] = Path("params.yaml"),
    out: Annotated[
        Path | None,
        typer.Option("--out", "-o", help="Folder for tables/, figures/, report/ (default: benchmarks)."),
    ] = None,
) -> None:
    """Build the benchmark tables, figures, leaderboard and HTML report from the results (the report stage).

    Run it from the repository root. Further options go to the stage as they are, e.g. --datasets a,b
    or --readme README.md (python pipelines/report.py --help lists them)."""
    from otlp_aiops.report.stage import main as report_main

    argv = ["--params", str(params), *(["--out", str(out)] if out else []), *ctx.args]
    rc = report_main(argv)
    if rc:
        raise typer.Exit(rc)


@app.command()
def quickstart(
    out: Annotated[
        Path, typer.Argument(help="Folder to write everything into (new, empty or an earlier quickstart's).")
    ] = Path("quickstart-out"),
    duration: Annotated[str, typer.Option(help="Simulated time span.")] = "10m",
    incidents: Annotated[int, typer.Option(min=1, help="Injected incidents.")] = 6,
    seed: Annotated[int, typer.Option(help="Random seed of the simulation and the rankers.")] = 0,
    methods: Annotated[
        list[str] | None,
        typer.Option("--method", "-m", help="Ranker to run (repeatable; default: random, baro, pagerank)."),
    ] = None,
) -> None:
    """The whole path in under a minute, into one folder: simulate, ingest, features, three rankers, a table.

    Simulates 10 minutes of Online Boutique with injected incidents, ingests the OTLP, builds the
    feature tables, runs three root-cause rankers and prints their table (no repository needed)."""
    from otlp_aiops.quickstart import DEFAULT_METHODS, QuickstartError, run_quickstart

    try:
        res = run_quickstart(out, duration=duration, incidents=incidents, seed=seed,
                             methods=methods or DEFAULT_METHODS, echo=lambda line: typer.echo(line, err=True))
    except QuickstartError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from None
    except (ValueError, KeyError) as e:  # unknown method, bad duration: the library names it
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from None
    typer.echo(f"\nroot-cause ranking on {res.cases} simulated incidents (mean over cases, "
               f"{res.seconds['total']:.1f} s in all):\n")
    typer.echo(res.table())
    typer.echo(
        f"\noutputs: {out}/ (data/raw, data/interim, data/features, benchmarks/results, quickstart.json)"
    )


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

    app.add_typer(
        datasets_app, name="datasets", help="Datasets: list, fetch, import (public ones or your own OTLP "
        "export)."
    )
    app.add_typer(features_app, name="features", help="Feature tables: service windows, edges, cases.")


_mount_sub_apps()

if __name__ == "__main__":
    app()
