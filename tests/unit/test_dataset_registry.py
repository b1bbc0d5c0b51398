"""The dataset registry: entries, checksum verification (tampered, missing), fetch from a local copy
and by URL (a file:// template, so no network), and the `datasets` CLI."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from otlp_aiops.datasets.cli import app
from otlp_aiops.datasets.registry import (
    ChecksumError,
    RegistryError,
    fetch,
    get_entry,
    load_registry,
    verify,
)

FILES = {"a/data.csv": b"time,x\n1,2\n", "LICENSE": b"MIT\n"}


def make_copy(root: Path) -> Path:
    folder = root / "toy"
    for rel, data in FILES.items():
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_bytes(data)
    return folder


def make_registry(path: Path, url_template: str | None = None) -> dict:
    entry = {
        "adapter": "rcaeval",
        "description": "toy",
        "licence": "MIT",
        "signals": ["metrics"],
        "incidents": 1,
        "repository": "someone/toy",
        "commit": "abc1234",
        "files": {k: {"sha256": hashlib.sha256(v).hexdigest(), "bytes": len(v)} for k, v in FILES.items()},
    }
    if url_template:
        entry["url_template"] = url_template
    path.write_text(yaml.safe_dump({"version": 1, "datasets": {"toy": entry}}))
    return load_registry(path)


def test_shipped_registry_lists_the_three_datasets_with_checksums() -> None:
    reg = load_registry()
    assert {n: e.incidents for n, e in reg.items()} == {"nezha-tt": 28, "rcd-sockshop": 50, "petshop": 26}
    assert {n: e.adapter for n, e in reg.items()} == {"nezha-tt": "nezha", "rcd-sockshop": "rcd-sockshop", "petshop": "petshop"}
    for e in reg.values():
        assert e.files and all(len(h) == 64 and int(h, 16) >= 0 for h in e.files.values())
        assert e.url.startswith(f"https://github.com/{e.repository}/tree/")
    assert "rca_data/2023-01-29/2023-01-29-fault_list.json" in reg["nezha-tt"].files
    assert len(reg["rcd-sockshop"].files) == 101  # 50 cases x 2 CSVs + collect-data.py
    assert reg["petshop"].licence == "CC-BY-4.0"


def test_verify_accepts_the_copy_and_names_a_tampered_file(tmp_path: Path) -> None:
    reg = make_registry(tmp_path / "r.yaml")
    folder = make_copy(tmp_path)
    (folder / "extra.txt").write_text("not registered")
    got = verify(reg["toy"], folder)
    assert got == {"files": 2, "bytes": sum(map(len, FILES.values())), "unregistered_files": ["extra.txt"]}
    (folder / "a/data.csv").write_bytes(b"time,x\n1,3\n")
    with pytest.raises(ChecksumError, match=r"a/data\.csv: sha256 [0-9a-f]{64} != registered"):
        verify(reg["toy"], folder)
    (folder / "LICENSE").unlink()
    with pytest.raises(ChecksumError, match=r"1 differing, 1 missing.*LICENSE: missing"):
        verify(reg["toy"], folder)


def test_fetch_from_local_copy_and_refuse_a_tampered_one(tmp_path: Path) -> None:
    reg = make_registry(tmp_path / "r.yaml")
    make_copy(tmp_path / "shared")
    out = tmp_path / "out" / "toy"
    rep = fetch("toy", out, from_dir=tmp_path / "shared", registry=reg)
    assert rep["files"] == 2
    assert {p.relative_to(out).as_posix(): p.read_bytes() for p in out.rglob("*") if p.is_file()} == FILES
    (tmp_path / "shared" / "toy" / "LICENSE").write_bytes(b"GPL\n")
    out2 = tmp_path / "out2"
    with pytest.raises(ChecksumError, match="LICENSE"):
        fetch("toy", out2, from_dir=tmp_path / "shared", registry=reg)
    assert not out2.exists() and not list((tmp_path).glob(".out2*"))


def test_fetch_downloads_and_verifies_each_file(tmp_path: Path) -> None:
    up = make_copy(tmp_path / "upstream")
    reg = make_registry(tmp_path / "r.yaml", url_template=up.as_uri() + "/{path}")
    out = tmp_path / "dl"
    assert fetch("toy", out, registry=reg)["files"] == 2
    assert (out / "a" / "data.csv").read_bytes() == FILES["a/data.csv"]
    (up / "a" / "data.csv").write_bytes(b"changed upstream\n")
    with pytest.raises(ChecksumError, match=r"a/data\.csv: sha256"):
        fetch("toy", tmp_path / "dl2", registry=reg)
    with pytest.raises(RegistryError, match="unknown dataset 'nope'"):
        get_entry("nope", reg)


def test_cli_list_and_fetch_errors(tmp_path: Path) -> None:
    runner = CliRunner()
    res = runner.invoke(app, ["list"])
    assert res.exit_code == 0
    for name in ("nezha-tt", "rcd-sockshop", "petshop"):
        assert name in res.output
    assert "incidents: 28" in res.output and "licence: CC-BY-4.0" in res.output
    res = runner.invoke(app, ["fetch", "petshop", "--from", str(tmp_path), "--out", str(tmp_path / "o")])
    assert res.exit_code == 1
    assert "(0 differing, 55 missing)" in res.output and "dataset/low_traffic/graph.csv: missing" in res.output
    res = runner.invoke(app, ["import", "nope", "--from", str(tmp_path), "--out", str(tmp_path / "o")])
    assert res.exit_code == 2 and "unknown dataset or adapter 'nope'" in res.output
