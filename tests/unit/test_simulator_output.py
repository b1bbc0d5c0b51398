"""What ``simulate`` writes: byte-identical reruns, the raw dataset layout, rotation, safe replacement,
metrics that count every request, and counters that reset when a pod restarts. The OTLP is read back
with the protobuf runtime directly (no ingest), on tiny runs."""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import re
import subprocess
import sys
from collections import Counter, defaultdict
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from opentelemetry.proto.logs.v1 import logs_pb2
from opentelemetry.proto.metrics.v1 import metrics_pb2
from opentelemetry.proto.trace.v1 import trace_pb2
from typer.testing import CliRunner

from otlp_aiops.datasets.simulator import SIMULATOR_VERSION, SimulatorConfig, simulate
from otlp_aiops.otlp.framing import iter_messages

TINY = {
    "duration": "6m",
    "warmup": "1m",
    "incidents": 2,
    "disturbances": 1,
    "incident_duration": ["30s", "60s"],
    "disturbance_duration": ["20s", "30s"],
    "min_gap": "20s",
    "request_rate": 4.0,
}


def _digests(folder: Path) -> dict[str, str]:
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def _messages(folder: Path, signal: str) -> list:
    cls = {"traces": trace_pb2.TracesData, "metrics": metrics_pb2.MetricsData, "logs": logs_pb2.LogsData}[
        signal
    ]
    out = []
    for f in sorted((folder / "otlp").glob(f"{signal}-*")):
        for m in iter_messages(f):
            assert not m.is_json
            msg = cls()
            msg.ParseFromString(m.payload)
            out.append(msg)
    return out


def _attr(kvs, key: str):
    for kv in kvs:
        if kv.key == key:
            return getattr(kv.value, kv.value.WhichOneof("value"))
    return None


def _points(folder: Path, name: str) -> list[tuple[str, str | None, int, int, float]]:
    """(pod, operation, start ns, time ns, value) of every point of metric ``name``."""
    rows = []
    for md in _messages(folder, "metrics"):
        for rm in md.resource_metrics:
            pod = _attr(rm.resource.attributes, "k8s.pod.name")
            for sm in rm.scope_metrics:
                for m in sm.metrics:
                    if m.name != name:
                        continue
                    kind = m.WhichOneof("data")
                    for dp in getattr(m, kind).data_points:
                        value = dp.count if kind == "histogram" else getattr(dp, dp.WhichOneof("value"))
                        op = (
                            _attr(dp.attributes, "operation")
                            or _attr(dp.attributes, "rpc.method")
                            or _attr(dp.attributes, "http.route")
                        )
                        rows.append((pod, op, dp.start_time_unix_nano, dp.time_unix_nano, value))
    return rows


@pytest.mark.parametrize("framing", ["proto", "jsonl", "proto-zstd"])
def test_same_settings_and_seed_give_byte_identical_files(tmp_path: Path, framing: str) -> None:
    cfg = SimulatorConfig.from_dict({**TINY, "framing": framing})
    a = simulate(cfg, tmp_path / "a")
    b = simulate(cfg, tmp_path / "b")
    da, db = _digests(tmp_path / "a"), _digests(tmp_path / "b")
    assert da == db
    assert {"dataset.json", "topology.json", "incidents.parquet", "disturbances.parquet"} <= set(da)
    assert a.spans == b.spans > 500 and a.logs > 100 and a.metric_points > 1000
    other = simulate(SimulatorConfig.from_dict({**TINY, "framing": framing, "seed": 1}), tmp_path / "c")
    dc = _digests(tmp_path / "c")
    assert (
        dc["otlp/traces-00001." + ("jsonl" if framing == "jsonl" else "binpb")]
        != da["otlp/traces-00001." + ("jsonl" if framing == "jsonl" else "binpb")]
    )
    assert other.spans != a.spans


def test_identical_across_processes_and_hash_seeds(tmp_path: Path) -> None:
    """Nothing may depend on set / dict ordering under hash randomisation or on the process."""
    settings = {**TINY, "system": "train-ticket", "request_rate": 2.0}
    simulate(SimulatorConfig.from_dict(settings), tmp_path / "here")
    code = (
        "import json, sys\n"
        "from otlp_aiops.datasets.simulator import SimulatorConfig, simulate\n"
        "simulate(SimulatorConfig.from_dict(json.loads(sys.argv[1])), sys.argv[2], progress=False)\n"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    subprocess.run(
        [sys.executable, "-c", code, json.dumps(settings), str(tmp_path / "there")], check=True, env=env
    )
    assert _digests(tmp_path / "here") == _digests(tmp_path / "there")


def test_raw_dataset_layout_and_metadata(tmp_path: Path) -> None:
    cfg = SimulatorConfig.from_dict(TINY)
    summary = simulate(cfg, tmp_path / "d")
    root = tmp_path / "d"
    names = sorted(p.name for p in (root / "otlp").iterdir())
    assert names and all(re.fullmatch(r"(traces|metrics|logs)-\d{5}\.binpb", n) for n in names)
    assert {n.split("-")[0] for n in names} == {"traces", "metrics", "logs"}
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging folders left

    meta = json.loads((root / "dataset.json").read_text())
    assert meta["source"] == "otlp-aiops simulator" and meta["synthetic"] is True and meta["licence"]
    assert meta["generator"]["version"] == SIMULATOR_VERSION
    assert meta["seed"] == 0 and meta["config"] == cfg.to_dict()
    assert meta["time_range"] == {"start": "2026-01-05T08:00:00Z", "end": "2026-01-05T08:06:00Z"}
    assert meta["counts"]["spans"] == summary.spans and meta["counts"]["logs"] == summary.logs
    assert meta["counts"]["metric_points"] == summary.metric_points
    assert meta["ground_truth"]["disturbances"] == "disturbances.parquet"
    assert len(meta["not_modelled"]) >= 5
    listed = {f["path"]: f for f in meta["otlp"]["files"]}
    assert set(listed) == {f"otlp/{n}" for n in names}
    for path, f in listed.items():
        data = (root / path).read_bytes()
        assert f["bytes"] == len(data) and f["sha256"] == hashlib.sha256(data).hexdigest()
    assert sum(f["records"] for f in listed.values() if f["signal"] == "traces") == summary.spans

    inc = pq.read_table(root / "incidents.parquet")
    ts = pa.timestamp("ns", tz="UTC")
    assert inc.schema.field("incident_id").type == pa.string()
    assert inc.schema.field("start_time").type == ts and inc.schema.field("end_time").type == ts
    for col in ("root_cause_service", "root_cause_indicator", "fault_type", "root_cause_pod"):
        assert inc.schema.field(col).type == pa.string()
    assert inc.schema.field("severity").type == pa.float64()
    assert inc.num_rows == 2
    dist = pq.read_table(root / "disturbances.parquet")
    assert dist.num_rows == 1 and dist.schema.field("start_time").type == ts
    assert set(dist.column_names) >= {"disturbance_id", "start_time", "end_time", "kind", "service"}

    topo = json.loads((root / "topology.json").read_text())
    assert topo["system"] == "online-boutique" and topo["entry_service"] == "frontend"
    assert len(topo["edges"]) == 15 and len(topo["services"]) == 11
    pods = {p["pod"] for p in topo["pods"]}
    seen = {
        _attr(rs.resource.attributes, "k8s.pod.name")
        for td in _messages(root, "traces")
        for rs in td.resource_spans
    }
    assert seen <= pods


def test_files_rotate_at_the_configured_size(tmp_path: Path) -> None:
    cfg = SimulatorConfig.from_dict({**TINY, "rotate_mb": 0.25})
    simulate(cfg, tmp_path / "r")
    files = sorted((tmp_path / "r" / "otlp").iterdir())
    per_signal = Counter(f.name.split("-")[0] for f in files)
    assert per_signal["traces"] >= 3 and per_signal["metrics"] >= 2
    limit = 0.25 * 1024 * 1024
    for f in files:
        n = sum(1 for _ in iter_messages(f))
        assert f.stat().st_size <= limit or n == 1
    # the files hold the same records as an unrotated run
    whole = simulate(SimulatorConfig.from_dict(TINY), tmp_path / "w")
    assert (
        sum(
            len(s.spans)
            for td in _messages(tmp_path / "r", "traces")
            for rs in td.resource_spans
            for s in rs.scope_spans
        )
        == whole.spans
    )


def test_replaces_a_simulated_dataset_but_never_a_foreign_folder(tmp_path: Path) -> None:
    out = tmp_path / "out"
    simulate(SimulatorConfig.from_dict({**TINY, "rotate_mb": 0.25}), out)
    assert len(list((out / "otlp").iterdir())) > 3
    simulate(SimulatorConfig.from_dict(TINY), out)  # fewer files: the old ones must go
    assert len(list((out / "otlp").iterdir())) == 3
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="refusing to overwrite"):
        simulate(SimulatorConfig.from_dict(TINY), foreign)
    assert (foreign / "notes.txt").read_text() == "mine"


def test_metrics_count_every_request_and_histograms_agree(tmp_path: Path) -> None:
    """With every trace sampled and nothing disturbing the pods, the request counters' final values
    equal the number of server spans, per pod and operation; histogram counts equal the counters."""
    cfg = SimulatorConfig.from_dict({**TINY, "incidents": 0, "disturbances": 0, "trace_sample_ratio": 1.0})
    simulate(cfg, tmp_path / "m")
    root = tmp_path / "m"
    spans: Counter[tuple[str, str]] = Counter()
    for td in _messages(root, "traces"):
        for rs in td.resource_spans:
            pod = _attr(rs.resource.attributes, "k8s.pod.name")
            for ss in rs.scope_spans:
                for s in ss.spans:
                    if s.kind == trace_pb2.Span.SPAN_KIND_SERVER:
                        spans[(pod, s.name)] += 1
    final: dict[tuple[str, str], int] = {}
    for pod, op, _, _t, v in sorted(_points(root, "app.server.request.count"), key=lambda r: r[3]):
        final[(pod, op)] = int(v)
    assert len(final) > 20 and sum(final.values()) > 5000
    assert final == dict(spans)
    hist = {(pod, t): 0 for pod, _, _, t, _ in _points(root, "rpc.server.duration")}
    counts = defaultdict(int)
    for pod, _, _, t, v in _points(root, "app.server.request.count"):
        if (pod, t) in hist:
            counts[(pod, t)] += int(v)
    for pod, _, _, t, v in _points(root, "rpc.server.duration"):
        hist[(pod, t)] += int(v)
    assert len(hist) > 100 and hist == dict(counts)


def test_a_pod_kill_resets_counters_and_bumps_restarts(tmp_path: Path) -> None:
    cfg = SimulatorConfig.from_dict(
        {**TINY, "fault_types": ["pod_kill"], "incidents": 1, "disturbances": 0, "instances": 1, "seed": 5}
    )
    simulate(cfg, tmp_path / "k")
    root = tmp_path / "k"
    inc = pq.read_table(root / "incidents.parquet").to_pylist()[0]
    pod = inc["root_cause_pod"]
    t0 = int(inc["start_time"].timestamp()) * 10**9
    delay = json.loads(inc["parameters"])["restart_delay_s"]
    series = [
        r
        for r in _points(
            root,
            "app.server.request.count"
            if inc["root_cause_service"] != "redis-cart"
            else "redis.commands.processed",
        )
        if r[0] == pod
    ]
    by_start: dict[int, list[tuple[int, float]]] = defaultdict(list)
    for _, op, start, t, v in series:
        if op in (None, series[0][1]):
            by_start[start].append((t, v))
    starts = sorted(by_start)
    assert len(starts) == 2
    assert starts[0] < cfg.start_ns  # the first process predates the recording
    assert starts[1] == t0 + delay * 10**9  # the new process starts after the restart delay
    before, after = sorted(by_start[starts[0]]), sorted(by_start[starts[1]])
    assert before[-1][0] <= t0 < after[0][0]
    assert after[0][1] < before[-1][1]  # the cumulative sum started again
    for run_ in (before, after):
        assert all(a[1] <= b[1] for a, b in itertools.pairwise(run_))  # monotonic within a process
    # nothing exported while the container was down
    assert not [t for t, _ in before + after if t0 < t < starts[1]]
    restarts = sorted((t, v) for p, _, _, t, v in _points(root, "k8s.container.restarts") if p == pod)
    assert {v for t, v in restarts if t <= t0} == {0} and {v for t, v in restarts if t > starts[1]} == {1}


def test_cli_simulate_passes_extra_settings(tmp_path: Path) -> None:
    from otlp_aiops.cli import app

    res = CliRunner().invoke(
        app,
        [
            "simulate",
            "--out",
            str(tmp_path / "c"),
            "--duration",
            "5m",
            "--incidents",
            "1",
            "--set",
            "request_rate=3",
            "--set",
            "fault_types=[cpu_hog]",
        ],
    )
    assert res.exit_code == 0, res.output
    assert "spans" in res.output
    meta = json.loads((tmp_path / "c" / "dataset.json").read_text())
    assert meta["config"]["request_rate"] == 3.0 and meta["config"]["fault_types"] == ["cpu_hog"]
    bad = CliRunner().invoke(app, ["simulate", "--out", str(tmp_path / "e"), "--set", "incidnets=3"])
    assert bad.exit_code == 2 and "incidnets" in bad.output
