"""Fixtures for the conformance tests on real OTLP files written by other projects (../shared).

The shared folder is found through ``OTLP_AIOPS_EXTERNAL`` (CI sets it to ``../shared``). Without it
every test here is skipped with the reason; with it set to a folder that lacks ``otlp-corpus/`` the
tests fail, since that is a broken checkout, not an absent one.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from otlp_aiops.otlp import accel
from otlp_aiops.otlp import schema as S
from otlp_aiops.otlp.ingest import ingest_paths

ENV_VAR = "OTLP_AIOPS_EXTERNAL"
SKIP_REASON = (
    f"{ENV_VAR} is not set: point it at the shared folder (CI sets it to ../shared) "
    "to run the conformance tests on the real OTLP corpus"
)
OTLP_SUFFIXES = (".json", ".jsonl", ".pb")
PURE_PYTHON_ENV = "OTLP_AIOPS_PURE_PYTHON"


def external_root_or_none() -> Path | None:
    value = os.environ.get(ENV_VAR)
    return Path(value).resolve() if value else None


def corpus_dir() -> Path | None:
    root = external_root_or_none()
    return None if root is None else root / "otlp-corpus"


def corpus_files(*, invalid: bool) -> list[Path]:
    """The OTLP files of the corpus (the valid ones, or those under ``invalid/``), sorted."""
    root = corpus_dir()
    if root is None or not root.is_dir():
        return []
    files = [p for p in root.rglob("*") if p.is_file() and p.suffix in OTLP_SUFFIXES]
    return sorted(p for p in files if ("invalid" in p.relative_to(root).parts) == invalid)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Parametrise ``corpus_file`` / ``invalid_file`` over the corpus found at collection time; without
    the shared folder, a single skipped case that says why (instead of pytest's "empty parameter set")."""
    for name, invalid in (("corpus_file", False), ("invalid_file", True)):
        if name not in metafunc.fixturenames:
            continue
        root = corpus_dir()
        if root is None:
            metafunc.parametrize(
                name, [pytest.param(None, marks=pytest.mark.skip(reason=SKIP_REASON), id="unset")]
            )
        else:
            files = corpus_files(invalid=invalid)
            metafunc.parametrize(
                name, files or [None], ids=[str(p.relative_to(root)) for p in files] or ["none"]
            )


@pytest.fixture(scope="session")
def external_root() -> Path:
    root = external_root_or_none()
    if root is None:
        pytest.skip(SKIP_REASON)
    if not (root / "otlp-corpus").is_dir():
        pytest.fail(
            f"{ENV_VAR}={os.environ[ENV_VAR]!r} has no otlp-corpus/ folder (is the shared checkout complete?)"
        )
    return root


@pytest.fixture(scope="session")
def corpus(external_root: Path) -> Path:
    return external_root / "otlp-corpus"


@dataclass
class Ingested:
    """One ingest run: its report, its tables (read back from Parquet) and its quarantine records."""

    out: Path
    report: dict[str, Any]
    tables: dict[str, pa.Table]
    schemas: dict[str, pa.Schema]
    quarantine: list[dict[str, Any]] = field(default_factory=list)

    def entry(self, path: Path) -> dict[str, Any]:
        hits = [f for f in self.report["files"] if f["path"] == str(path)]
        assert len(hits) == 1, f"{path}: {len(hits)} report entries"
        return hits[0]


def read_output(out: Path, report: dict[str, Any]) -> Ingested:
    tables = {}
    schemas = {}
    for name in S.TABLES:
        parts = sorted((out / name).glob("*.parquet"))
        assert parts, f"{out / name}: no Parquet file (every table must exist, even empty)"
        schemas[name] = pq.read_schema(parts[0])
        tables[name] = pa.concat_tables([pq.read_table(p) for p in parts])
    quarantine = []
    for q in sorted((out / "quarantine").glob("*.jsonl")):
        quarantine.extend(json.loads(line) for line in q.read_text().splitlines() if line.strip())
    return Ingested(out, report, tables, schemas, quarantine)


@pytest.fixture(scope="session", params=["c", "python"])
def decoder(request: pytest.FixtureRequest) -> str:
    """Which decoder the ingest uses: the optional C one (``accel.wire``) or pure Python. Every
    conformance test runs with both, since both read the same files in production."""
    if request.param == "c" and accel.wire is None:
        pytest.skip("the C decoder is not built here (or OTLP_AIOPS_PURE_PYTHON is set)")
    return request.param


@contextmanager
def using_decoder(decoder: str) -> Iterator[None]:
    """Switch the decoder for in-process ingest and for worker processes (forked or spawned)."""
    saved_wire, saved_env = accel.wire, os.environ.get(PURE_PYTHON_ENV)
    if decoder == "python":
        accel.wire = None
        os.environ[PURE_PYTHON_ENV] = "1"
    try:
        yield
    finally:
        accel.wire = saved_wire
        if saved_env is None:
            os.environ.pop(PURE_PYTHON_ENV, None)
        else:
            os.environ[PURE_PYTHON_ENV] = saved_env


@pytest.fixture(scope="session")
def _ingest_cache() -> dict[tuple, Ingested]:
    return {}


@pytest.fixture
def ingest_cached(
    tmp_path_factory: pytest.TempPathFactory,
    external_root: Path,
    decoder: str,
    _ingest_cache: dict[tuple, Ingested],
) -> Callable[..., Ingested]:
    """``ingest_cached(path, ...)``: ingest one file or folder (once per session and decoder) with the
    decoder of this test, and read the output back."""

    def run(*sources: Path, workers: int | None = 1) -> Ingested:
        key = (tuple(str(s) for s in sources), workers, decoder)
        cache = _ingest_cache
        if key not in cache:
            out = tmp_path_factory.mktemp("ingest") / "out"
            with using_decoder(decoder):
                report = ingest_paths(list(sources), out, workers=workers)
            on_disk = json.loads((out / "ingest_report.json").read_text())
            assert on_disk == json.loads(json.dumps(report)), (
                "ingest_report.json differs from the returned report"
            )
            cache[key] = read_output(out, report)
        return cache[key]

    return run


@pytest.fixture(scope="session")
def real_dataset(external_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    """``real_dataset(name)`` → a root folder holding ``data/{raw,interim,features}/<name>`` built from
    the shared copy with the pipeline's own settings (params.yaml ``features``), once per session."""
    import yaml

    from otlp_aiops.datasets.adapters import import_dataset
    from otlp_aiops.datasets.registry import get_entry
    from otlp_aiops.features.build import build_features
    from otlp_aiops.features.config import resolve_config

    params = yaml.safe_load((Path(__file__).parents[2] / "params.yaml").read_text())
    root = tmp_path_factory.mktemp("real")
    built: set[str] = set()

    def build(name: str) -> Path:
        if name not in built:
            src = external_root / "datasets" / name
            if not src.is_dir():
                pytest.fail(f"{src}: missing from the shared folder")
            raw, interim, feats = (root / "data" / d / name for d in ("raw", "interim", "features"))
            import_dataset(name, src, raw, adapter=get_entry(name).adapter)
            report = ingest_paths([raw / "otlp"], interim, workers=2)
            assert report["totals"]["records_quarantined"] == 0
            build_features(interim, raw, feats, resolve_config(params["features"], name), dataset=name)
            built.add(name)
        return root

    return build
