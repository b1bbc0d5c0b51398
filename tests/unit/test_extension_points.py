"""The extension points keep their promises (docs/extending.md): registered names match the classes,
every adapter satisfies the adapter protocol and the dataset -> adapter mapping is read from the
registry, every DVC stage lists the package modules its script imports, the package has no import
circle, and the shared plumbing (OTLP writer, ``kv``, durations, saved-model versions, the ingest
settings) is one definition each."""

from __future__ import annotations

import ast
import gzip
import hashlib
import inspect
import json
import struct
from pathlib import Path

import numpy as np
import pytest
import yaml

from otlp_aiops import __version__, registry
from otlp_aiops.config import ConfigError, parse_duration
from otlp_aiops.datasets.adapters import ADAPTERS, DatasetAdapter, adapter_module, dataset_adapters
from otlp_aiops.datasets.registry import load_registry
from otlp_aiops.otlp.framing import Limits
from otlp_aiops.otlp.ingest_config import IngestConfig
from otlp_aiops.otlp.write import RotatingWriter, encode_frames, kv, write_file
from otlp_aiops.persist import SCHEMA_VERSION

REPO = Path(__file__).resolve().parents[2]
SRC = REPO / "src"
PACKAGE = "otlp_aiops"
# stages whose command runs a pipelines/ script but which need not list its modules, and why
DEPS_EXEMPT = {
    "local": "hashes the export and incident list only; a code change writes the same fingerprint",
}


# --------------------------------------------------------------------------------------------------
# registries
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["detector", "ranker"])
def test_each_registered_class_name_matches_its_registry_key(kind: str) -> None:
    # a saved model is reloaded by its class's `name`: a mismatch would load another model
    wrong = {}
    for key in registry.names(kind):
        cls = registry.model_class(kind, key)
        if "name" not in vars(cls) or cls.name != key:
            wrong[key] = getattr(cls, "name", None)
    assert wrong == {}


def test_every_adapter_module_satisfies_the_protocol() -> None:
    assert set(ADAPTERS) >= {"nezha", "rcd-sockshop", "petshop", "rcaeval", "otlp"}
    for name in ADAPTERS:
        module = adapter_module(name)
        assert isinstance(module, DatasetAdapter), name
        params = inspect.signature(module.convert).parameters
        assert list(params)[:2] == ["src", "out"], name
        assert params["name"].kind is inspect.Parameter.KEYWORD_ONLY, name


def test_the_dataset_to_adapter_mapping_is_the_registry() -> None:
    mapping = dataset_adapters()
    assert (
        mapping.items() >= {"nezha-tt": "nezha", "rcd-sockshop": "rcd-sockshop", "petshop": "petshop"}.items()
    )
    assert mapping == {n: e.adapter for n, e in load_registry().items()}
    assert set(mapping.values()) <= set(ADAPTERS)
    import otlp_aiops.datasets.adapters as adapters

    assert not hasattr(adapters, "DATASET_ADAPTERS")  # said once, in registry.yaml


# --------------------------------------------------------------------------------------------------
# DVC deps and the import graph
# --------------------------------------------------------------------------------------------------


def _module_file(name: str) -> Path | None:
    p = SRC / Path(*name.split("."))
    if (p / "__init__.py").is_file():
        return p / "__init__.py"
    return p.with_suffix(".py") if p.with_suffix(".py").is_file() else None


def _imports(path: Path, name: str, *, module_level_only: bool = False, parents: bool = True) -> set[str]:
    """The package modules ``path`` (module ``name``) imports: at any depth (function-level imports
    run too), or only its module-level statements; with ``parents``, importing a module imports its
    parent packages too (their ``__init__`` runs)."""
    tree = ast.parse(path.read_text())
    nodes = (
        [n for n in tree.body if isinstance(n, ast.Import | ast.ImportFrom)]
        if module_level_only
        else ast.walk(tree)
    )
    found: set[str] = set()
    for n in nodes:
        if isinstance(n, ast.Import):
            found.update(a.name for a in n.names)
        elif isinstance(n, ast.ImportFrom):
            if n.level:
                parts = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
                base = ".".join(parts[: len(parts) - (n.level - 1)] + ([n.module] if n.module else []))
            else:
                base = n.module or ""
            subs = {f"{base}.{a.name}" for a in n.names if _module_file(f"{base}.{a.name}")}
            found.update(subs)
            if len(subs) < len(n.names):
                found.add(base)
    out = set()
    for m in found:
        parts = m.split(".")
        if parts[0] != PACKAGE:
            continue
        for i in range(1 if parents else len(parts), len(parts) + 1):
            if _module_file(".".join(parts[:i])):
                out.add(".".join(parts[:i]))
    return out - {name}


def _closure(script: Path) -> set[str]:
    seen: set[str] = set()
    todo = list(_imports(script, "__main__"))
    while todo:
        m = todo.pop()
        if m not in seen:
            seen.add(m)
            todo.extend(_imports(_module_file(m), m) - seen)  # type: ignore[arg-type]
    return {_module_file(m).relative_to(REPO).as_posix() for m in seen}  # type: ignore[union-attr]


def _script_stages() -> dict[str, tuple[str, list[str]]]:
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    out = {}
    for name, body in stages.items():
        body = body.get("do", body)
        words = body["cmd"].split()
        if words[0] == "python" and words[1].startswith("pipelines/"):
            out[name] = (words[1], list(body.get("deps", [])))
    return out


def test_the_import_closure_follows_function_level_and_relative_imports() -> None:
    files = _closure(REPO / "pipelines" / "ingest.py")
    assert {
        "src/otlp_aiops/__init__.py",
        "src/otlp_aiops/otlp/__init__.py",
        "src/otlp_aiops/otlp/ingest.py",
        "src/otlp_aiops/otlp/framing.py",
        "src/otlp_aiops/otlp/ingest_config.py",
        "src/otlp_aiops/config.py",
        "src/otlp_aiops/outputs.py",
    } <= files
    assert not any("/rca/" in f or "/report/" in f for f in files)


@pytest.mark.parametrize("stage", sorted(_script_stages()))
def test_every_stage_depends_on_the_modules_its_script_imports(stage: str) -> None:
    if stage in DEPS_EXEMPT:
        pytest.skip(DEPS_EXEMPT[stage])
    script, deps = _script_stages()[stage]
    assert script in deps, f"dvc.yaml {stage}: {script} is not among its deps"
    files = _closure(REPO / script)
    uncovered = sorted(f for f in files if not any(f == d or f.startswith(d.rstrip("/") + "/") for d in deps))
    assert uncovered == [], f"dvc.yaml {stage}: add these (or their folder) to deps"


def test_detect_depends_on_the_incident_list_it_reads() -> None:
    _, deps = _script_stages()["detect"]
    assert "data/raw/${item.dataset}/incidents.parquet" in deps


@pytest.mark.parametrize("module_level_only", [True, False], ids=["module-level", "with-function-level"])
def test_the_package_has_no_import_circle(module_level_only: bool) -> None:
    """No circle among the package's modules, counting imports inside functions too (the command
    lines share ``cli_settings`` rather than import each other)."""
    graph = {}
    for path in (SRC / PACKAGE).rglob("*.py"):
        parts = path.relative_to(SRC).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        graph[name] = _imports(path, name, module_level_only=module_level_only, parents=False)
    # depth-first search for a back edge
    state: dict[str, int] = {}
    cycles: list[list[str]] = []

    def visit(m: str, stack: list[str]) -> None:
        state[m] = 1
        for n in sorted(graph.get(m, ())):
            if state.get(n) == 1:
                cycles.append([*stack[stack.index(n) :], n])
            elif n not in state:
                visit(n, [*stack, n])
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m, [m])
    assert cycles == []


def test_the_simulator_emitter_and_metrics_do_not_import_each_other() -> None:
    emit = _imports(SRC / PACKAGE / "datasets/simulator/emit.py", "otlp_aiops.datasets.simulator.emit")
    metrics = _imports(
        SRC / PACKAGE / "datasets/simulator/metrics.py", "otlp_aiops.datasets.simulator.metrics"
    )
    assert "otlp_aiops.datasets.simulator.emit" not in metrics
    assert "otlp_aiops.otlp.write" in emit and "otlp_aiops.otlp.write" in metrics


# --------------------------------------------------------------------------------------------------
# one OTLP writer
# --------------------------------------------------------------------------------------------------


def test_kv_types_its_value() -> None:
    assert kv("a", True).value.bool_value is True
    assert kv("b", 7).value.int_value == 7
    assert kv("c", 0.25).value.double_value == 0.25
    assert kv("d", "x").value.string_value == "x"
    assert kv("e", None).value.string_value == "None"  # type: ignore[arg-type]
    from otlp_aiops.datasets.adapters import common

    assert common.kv is kv  # the adapters use the one helper


def test_encode_frames_length_prefix_and_zstd() -> None:
    assert b"".join(encode_frames([b"ab", b"cde"], "length_prefixed")) == b"\0\0\0\x02ab\0\0\0\x03cde"
    assert b"".join(encode_frames([b"{}", b"[]"], "jsonl")) == b"{}\n[]\n"
    with pytest.raises(ValueError, match="exactly one"):
        list(encode_frames([b"a", b"b"], "proto"))
    import zstandard

    framed = b"".join(encode_frames([b"hello" * 10], "length_prefixed_zstd"))
    (size,) = struct.unpack(">I", framed[:4])
    assert size == len(framed) - 4
    assert zstandard.ZstdDecompressor().decompress(framed[4:]) == b"hello" * 10


def test_rotating_writer_rotates_at_the_size_and_records_each_file(tmp_path: Path) -> None:
    w = RotatingWriter(tmp_path / "otlp", tmp_path, "traces", "binpb", "length_prefixed", rotate_bytes=20)
    for payload, records in ((b"aaaa", 1), (b"bbbb", 2), (b"cccc", 3)):  # frames of 8 bytes
        w.add(payload, records)
    files = w.close()
    assert [(f.path, f.messages, f.records, f.bytes) for f in files] == [
        ("otlp/traces-00001.binpb", 2, 3, 16),
        ("otlp/traces-00002.binpb", 1, 3, 8),
    ]
    first = (tmp_path / "otlp" / "traces-00001.binpb").read_bytes()
    assert first == b"\0\0\0\x04aaaa\0\0\0\x04bbbb"
    assert files[0].sha256 == hashlib.sha256(first).hexdigest()
    assert sorted(p.name for p in (tmp_path / "otlp").iterdir()) == [
        "traces-00001.binpb",
        "traces-00002.binpb",
    ]


def test_write_file_is_deterministic_and_compresses_whole_files(tmp_path: Path) -> None:
    a = write_file(tmp_path / "a.gz", [b"x" * 100, b"y"], "gzip")
    write_file(tmp_path / "b.gz", [b"x" * 100, b"y"], "gzip")
    assert a == (tmp_path / "a.gz").stat().st_size
    assert (tmp_path / "a.gz").read_bytes() == (tmp_path / "b.gz").read_bytes()
    assert gzip.decompress((tmp_path / "a.gz").read_bytes()) == b"x" * 100 + b"y"
    with pytest.raises(ValueError, match="compression"):
        write_file(tmp_path / "c", [b""], "lz4")  # type: ignore[arg-type]
    assert not (tmp_path / "c").exists()


# --------------------------------------------------------------------------------------------------
# plumbing in one place
# --------------------------------------------------------------------------------------------------


def test_one_duration_parser() -> None:
    from otlp_aiops.datasets.simulator import config as sim_config
    from otlp_aiops.features import config as feat_config

    assert sim_config.parse_duration is parse_duration is feat_config.parse_duration
    assert parse_duration("1h30m") == 5400.0 and parse_duration("500ms", "window") == 0.5
    with pytest.raises(ConfigError, match=r"^window: '15 parsecs' is not a duration"):
        parse_duration("15 parsecs", "window")


def test_saved_models_carry_versions_and_old_ones_still_load(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(50, 3))
    model = registry.create("detector", "nsigma", {}, seed=0).fit(x)
    model.save(tmp_path / "m")
    meta = json.loads((tmp_path / "m" / "model.json").read_text())
    assert (
        (meta["package_version"], meta["schema_version"]) == (__version__, SCHEMA_VERSION) == (__version__, 1)
    )
    expected = model.score(x)
    np.testing.assert_array_equal(registry.load_model(tmp_path / "m", "detector").score(x), expected)
    # a model saved before the versions were stamped
    old = {k: v for k, v in meta.items() if k not in ("package_version", "schema_version")}
    (tmp_path / "m" / "model.json").write_text(json.dumps(old))
    np.testing.assert_array_equal(registry.load_model(tmp_path / "m", "detector").score(x), expected)
    # a model from a newer layout is refused, naming both versions
    (tmp_path / "m" / "model.json").write_text(
        json.dumps({**meta, "schema_version": 99, "package_version": "9.0"})
    )
    with pytest.raises(
        ConfigError, match=r"schema 99 \(otlp-aiops 9.0\) is newer than this otlp-aiops reads \(1\)"
    ):
        registry.load_model(tmp_path / "m", "detector")


def test_ingest_settings_are_a_strict_frozen_config() -> None:
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    cfg = IngestConfig.from_params(params)
    assert set(params["ingest"]) == {"workers", "batch_rows", "max_part_bytes", "max_empty_frames", "block_bytes"}
    assert (cfg.workers, cfg.batch_rows) == (params["ingest"]["workers"], params["ingest"]["batch_rows"])
    assert cfg.limits == Limits(params["ingest"]["max_part_bytes"], params["ingest"]["max_empty_frames"])
    assert IngestConfig.from_params({}) == IngestConfig(None, 32768, 256 << 20, 4096, 256 << 20)
    assert cfg.block_bytes == params["ingest"]["block_bytes"]
    with pytest.raises(ConfigError, match=r"params.yaml ingest: unknown setting\(s\) wokers"):
        IngestConfig.from_params({"ingest": {"wokers": 2}})
    with pytest.raises(ConfigError, match="batch_rows must be"):
        IngestConfig.from_params({"ingest": {"batch_rows": 0}})
    with pytest.raises(ConfigError, match="expected an integer"):
        IngestConfig.from_params({"ingest": {"workers": "many"}})


# --------------------------------------------------------------------------------------------------
# the worked examples of docs/extending.md run as written
# --------------------------------------------------------------------------------------------------


def _doc_blocks() -> list[str]:
    import re

    return re.findall(r"```python\n(.*?)```", (REPO / "docs" / "extending.md").read_text(), re.S)


def test_the_detector_and_ranker_examples_keep_the_contracts() -> None:
    import otlp_aiops.detect.baselines as detect_module
    import otlp_aiops.rca.baselines as rca_module
    from model_factories import make_case

    detector_code, ranker_code = _doc_blocks()[:2]
    ns = dict(vars(detect_module))
    exec(detector_code, ns)  # the snippet is written for detect/baselines.py
    mad = ns["MADDetector"](ns["MADConfig"]()).fit(np.array([[0.0], [1.0], [2.0], [3.0], [4.0]]))
    # median 2, MAD 1: a point 3 robust standard deviations above the median scores 3
    assert mad.score(np.array([[2.0 + 3 * 1.4826], [2.0]])) == pytest.approx([3.0, 0.0])
    ns = dict(vars(rca_module))
    exec(ranker_code, ns)
    ranker = ns["ErrorRiseRanker"](ns["ErrorRiseConfig"]()).fit(None)
    assert ranker.rank(make_case(root="payment", fault="errors")).rank_of("payment") == 1


def test_the_adapter_example_converts_and_counts_rejected_cells(tmp_path: Path) -> None:
    import types

    src = tmp_path / "src" / "cases"
    src.mkdir(parents=True)
    (src / "cart-cpu_hog.csv").write_text(
        "time,cart_cpu,cart_latency\n100,0.5,0.01\n101,0.7,0.02\n102,oops,0.03\n"
    )
    module = types.ModuleType("mycsv")
    exec(_doc_blocks()[2], module.__dict__)
    assert isinstance(module, DatasetAdapter)
    summary = module.convert(tmp_path / "src", tmp_path / "out")
    assert (summary.incidents, summary.rejected) == (1, 1)
    assert summary.counts["metric_rows"]["rows_converted"] == 3
    assert (
        summary.counts["metric_rows"]["points"] == 5 and summary.counts["metric_rows"]["cells_rejected"] == 1
    )
    import pyarrow.parquet as pq

    row = pq.read_table(tmp_path / "out" / "incidents.parquet").to_pylist()[0]
    assert (row["incident_id"], row["root_cause_service"], row["fault_type"]) == (
        "cart-cpu_hog",
        "cart",
        "cpu_hog",
    )
    assert row["start_time"].timestamp() == 100 and row["end_time"].timestamp() == 103


def test_the_feature_table_example_counts_distinct_traces() -> None:
    import duckdb

    import otlp_aiops.features.tables as tables_module

    ns = dict(vars(tables_module))
    exec(_doc_blocks()[3], ns)
    con = duckdb.connect()
    con.sql("""CREATE TABLE spans AS SELECT * FROM (VALUES
        ('x', 'a', TIMESTAMP '2024-01-01 00:00:01'), ('x', 'a', TIMESTAMP '2024-01-01 00:00:02'),
        ('x', 'b', TIMESTAMP '2024-01-01 00:00:03'), ('x', 'c', TIMESTAMP '2024-01-01 00:01:05'),
        (NULL, 'd', TIMESTAMP '2024-01-01 00:00:04')) t(service_name, trace_id, start_time)""")
    con.sql("CREATE TEMP TABLE sw_long (w BIGINT, service VARCHAR, feature VARCHAR, value DOUBLE)")
    ns["trace_count_features"](con, 60_000_000_000)
    rows = con.sql(
        "SELECT w % 3600000000000 // 60000000000, service, feature, value FROM sw_long ORDER BY 1"
    ).fetchall()
    assert rows == [(0, "x", "span.trace_count", 2.0), (1, "x", "span.trace_count", 1.0)]
