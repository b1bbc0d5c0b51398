"""Inputs and outputs in object storage: ingest and features read from and write to ``s3://`` URIs
of a local S3-compatible server (moto, started by the test on 127.0.0.1), and give the same tables as
with local paths; an output is committed by its manifest, so an interrupted upload is never read."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

moto_server = pytest.importorskip("moto.server")
boto3 = pytest.importorskip("boto3")

from typer.testing import CliRunner  # noqa: E402

from otlp_aiops.storage import MANIFEST, StorageError, _fs, publish, stage_in  # noqa: E402

CONFIG = {"duration": "20m", "warmup": "5m", "incidents": 3, "disturbances": 0, "incident_duration": ["90s", "120s"],
          "min_gap": "60s", "seed": 4, "request_rate": 6, "trace_sample_ratio": 0.2}


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory):
    import logging

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # the server's access log
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    env = {"AWS_ENDPOINT_URL": f"http://{host}:{port}", "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
           "AWS_DEFAULT_REGION": "us-east-1"}
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    client = boto3.client("s3", endpoint_url=env["AWS_ENDPOINT_URL"])
    client.create_bucket(Bucket="lake")
    try:
        yield client
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        server.stop()


def _keys(client, prefix: str) -> list[str]:
    objects = client.list_objects_v2(Bucket="lake", Prefix=prefix).get("Contents", [])
    return sorted(o["Key"] for o in objects if not o["Key"].endswith("/"))  # "folder/" markers aside


def test_ingest_and_features_through_s3_give_the_local_tables(s3, tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    from otlp_aiops.cli import app
    from otlp_aiops.datasets.simulator import SimulatorConfig, simulate

    raw = tmp_path / "raw"
    simulate(SimulatorConfig.from_dict(CONFIG), raw)
    publish(raw, "s3://lake/raw/toy")  # the raw dataset as a committed output in the bucket
    runner = CliRunner()
    for args in (["ingest", str(raw / "otlp"), "--out", str(tmp_path / "interim"), "--workers", "1"],
                 ["ingest", "s3://lake/raw/toy/otlp", "--out", "s3://lake/interim/toy", "--workers", "1"]):
        r = runner.invoke(app, args)
        assert r.exit_code == 0, r.output
    assert "s3://lake/interim/toy" in r.output
    keys = _keys(s3, "interim/toy/")
    assert "interim/toy/_SUCCESS" in keys and any(k.startswith("interim/toy/spans/part-") for k in keys)
    back = stage_in("s3://lake/interim/toy", tmp_path / "back")
    local = pq.read_table(tmp_path / "interim" / "spans").sort_by([("_source_file", "ascending"),
                                                                    ("_record_index", "ascending")])
    remote = pq.read_table(back / "spans").sort_by([("_source_file", "ascending"), ("_record_index", "ascending")])
    assert remote.num_rows == local.num_rows > 1000
    # lineage names the object, not the local staging folder
    prefix = str(raw / "otlp")
    assert [s.replace("s3://lake/raw/toy/otlp", prefix) for s in remote.column("_source_file").to_pylist()] == \
        local.column("_source_file").to_pylist()
    assert remote.drop_columns(["_source_file"]).equals(local.drop_columns(["_source_file"]))

    params = tmp_path / "params.yaml"
    params.write_text("features: {window: 15s, before: 4m, after: 3m}\n")
    for args in (["features", "build", "--dataset", "toy", "--params", str(params), "--interim",
                  str(tmp_path / "interim"), "--raw", str(raw), "--out", str(tmp_path / "features")],
                 ["features", "build", "--dataset", "toy", "--params", str(params), "--interim",
                  "s3://lake/interim/toy", "--raw", "s3://lake/raw/toy", "--out", "s3://lake/features/toy"]):
        r = runner.invoke(app, args)
        assert r.exit_code == 0, r.output
    fback = stage_in("s3://lake/features/toy", tmp_path / "fback")
    a = pq.read_table(tmp_path / "features" / "service_windows.parquet")
    b = pq.read_table(fback / "service_windows.parquet")
    assert a.num_rows == b.num_rows > 0 and a.column_names == b.column_names
    manifest = json.loads(s3.get_object(Bucket="lake", Key="features/toy/_SUCCESS")["Body"].read())
    assert set(manifest["files"]) == {p.relative_to(fback).as_posix() for p in fback.rglob("*") if p.is_file()}


def test_an_interrupted_upload_is_never_read_and_a_new_commit_drops_old_files(s3, tmp_path: Path) -> None:
    out = tmp_path / "out"
    (out / "t").mkdir(parents=True)
    (out / "t" / "a.bin").write_bytes(b"one")
    (out / "old.bin").write_bytes(b"old")
    m = publish(out, "s3://lake/x")
    assert sorted(m["files"]) == ["old.bin", "t/a.bin"]
    (out / "old.bin").unlink()
    (out / "t" / "a.bin").write_bytes(b"two!")
    publish(out, "s3://lake/x")
    assert _keys(s3, "x/") == ["x/_SUCCESS", "x/t/a.bin"]  # the file the new output lacks is gone
    assert (stage_in("s3://lake/x", tmp_path / "r1") / "t" / "a.bin").read_bytes() == b"two!"
    # an upload that stopped after a file changed but before the manifest was rewritten
    s3.put_object(Bucket="lake", Key="x/t/a.bin", Body=b"half")
    with pytest.raises(StorageError, match="differs from the manifest"):
        stage_in("s3://lake/x", tmp_path / "r2")
    # no manifest and no files: nothing to read
    with pytest.raises(StorageError, match="nothing there"):
        stage_in("s3://lake/none", tmp_path / "r3")
    _, base = _fs("s3://lake/x")
    assert base == "lake/x" and MANIFEST == "_SUCCESS"
