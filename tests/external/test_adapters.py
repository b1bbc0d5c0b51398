"""The adapters on the real datasets in ../shared/datasets: each whole folder converted once per
session, ingested with zero quarantined records, and spot-checked against the source CSVs."""

from __future__ import annotations

import csv
import json
import time
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow.parquet as pq
import pytest

from otlp_aiops.datasets.adapters import import_dataset
from otlp_aiops.datasets.registry import get_entry, verify
from otlp_aiops.otlp.ingest import ingest_paths

pytestmark = pytest.mark.external


def _convert(name: str, external_root: Path, tmp: Path) -> dict[str, Any]:
    src = external_root / "datasets" / name
    if not src.is_dir():
        pytest.fail(f"{src}: missing (is the shared checkout complete?)")
    t0 = time.perf_counter()
    summary = import_dataset(name, src, tmp / "raw" / name)
    t1 = time.perf_counter()
    report = ingest_paths([tmp / "raw" / name / "otlp"], tmp / "interim" / name, workers=2)
    t2 = time.perf_counter()
    out = tmp / "raw" / name
    print(f"{name}: convert {t1 - t0:.1f} s, ingest {t2 - t1:.1f} s")
    return {
        "src": src,
        "out": out,
        "interim": tmp / "interim" / name,
        "summary": summary,
        "report": report,
        "dataset": json.loads((out / "dataset.json").read_text()),
        "incidents": pq.read_table(out / "incidents.parquet").to_pylist(),
        "convert_s": t1 - t0,
    }


def _table(d: dict[str, Any], name: str) -> pl.DataFrame:
    return pl.read_parquet(str(d["interim"] / name / "*.parquet"))


@pytest.fixture(scope="module")
def nezha(external_root: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return _convert("nezha-tt", external_root, tmp_path_factory.mktemp("nezha"))


@pytest.fixture(scope="module")
def sockshop(external_root: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return _convert("rcd-sockshop", external_root, tmp_path_factory.mktemp("sockshop"))


@pytest.fixture(scope="module")
def petshop(external_root: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return _convert("petshop", external_root, tmp_path_factory.mktemp("petshop"))


def _no_quarantine(d: dict[str, Any]) -> None:
    t = d["report"]["totals"]
    assert t["records_quarantined"] == 0 and t["messages_quarantined"] == 0, t["quarantined_by_reason"]
    assert t["records_read"] == t["records_written"]


# --------------------------------------------------------------------------------------------------
# Nezha (Train Ticket, 2023-01-29)
# --------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_nezha_converts_fast_and_ingests_clean(nezha: dict[str, Any]) -> None:
    assert nezha["convert_s"] < 180
    _no_quarantine(nezha)
    c = nezha["dataset"]["counts"]
    for sig in ("traces", "logs", "metric_rows"):
        assert c[sig]["read"] == c[sig]["converted"] + c[sig]["duplicates"] + c[sig]["rejected"]
    rows = nezha["report"]["totals"]["rows_written"]
    assert rows["spans"] == c["traces"]["converted"] > 300_000
    assert rows["logs"] == c["logs"]["converted"] > 170_000
    assert rows["metrics_number"] == c["metric_points"]
    # the two corrupt lines of 10_06_log.csv, by file and line
    rej = [json.loads(x) for x in (nezha["out"] / "rejected.jsonl").read_text().splitlines()]
    assert {(r["file"], r["line"]) for r in rej} == {
        ("rca_data/2023-01-29/log/10_06_log.csv", 631),
        ("rca_data/2023-01-29/log/10_06_log.csv", 760),
    }


@pytest.mark.slow
def test_nezha_incidents_match_the_fault_list(nezha: dict[str, Any]) -> None:
    faults = json.loads((nezha["src"] / "rca_data/2023-01-29/2023-01-29-fault_list.json").read_text())
    expected = sorted(
        (f["inject_time"].replace(" ", "T"), f["inject_pod"].rsplit("-", 2)[0], f["inject_type"])
        for v in faults.values()
        for f in v
    )
    got = sorted(
        (r["start_time"].strftime("%Y-%m-%dT%H:%M:%S"), r["root_cause_service"], r["fault_type"]) for r in nezha["incidents"]
    )
    assert len(got) == 28 and got == expected
    clock = nezha["dataset"]["clock_check"]
    assert clock["all_inside_data"] is True
    assert all(30 < c["inject_after_data_start_s"] < 130 for c in clock["per_incident"])
    assert nezha["dataset"]["symptom_service"] == "ts-ui-dashboard"
    ff = nezha["dataset"]["fault_free"]
    assert ff and ff[0]["source"] == "construct_data" and ff[0]["overlaps_incidents"] == []
    cpu = [r for r in nezha["incidents"] if r["fault_type"] == "cpu_contention"]
    assert cpu and all(r["root_cause_indicator"] == "pod.cpu.utilization" for r in cpu)


@pytest.mark.slow
def test_nezha_spot_checks_against_the_csvs(nezha: dict[str, Any]) -> None:
    spans = _table(nezha, "spans")
    login = spans.filter(pl.col("span_id") == bytes.fromhex("7e28bdb6a47af144")).to_dicts()
    assert len(login) == 1
    s = login[0]
    assert s["name"] == "/api/v1/users/login" and s["service_name"] == "ts-auth-service"
    assert s["parent_span_id"] == bytes.fromhex("5e89765a7f60ff70")
    assert s["duration_ns"] == 1674981769012521162 - 1674981768701000000
    assert s["kind"] == 2
    root = spans.filter(pl.col("span_id") == bytes.fromhex("520b067330e3ede5")).to_dicts()[0]
    assert root["parent_span_id"] is None and root["service_name"] == "ts-gateway-service"

    pts = _table(nezha, "metrics_number")
    v = pts.filter(
        (pl.col("k8s_pod_name") == "ts-contacts-service-866bd68c97-xcqfx")
        & (pl.col("metric_name") == "pod.cpu.utilization")
        & (pl.col("time") == pl.lit(1674981669 * 10**9).cast(pl.Datetime("ns", "UTC")))
    )["value_double"].to_list()
    assert v == [2.8750074138704234]
    f = pts.filter(
        (pl.col("service_name") == "ts-ui-dashboard")
        & (pl.col("metric_name") == "frontend.latency.p90")
        & (pl.col("time") == pl.lit(1674981669 * 10**9).cast(pl.Datetime("ns", "UTC")))
    )["value_double"].to_list()
    assert f == [0.48749999999999993]

    with open(nezha["src"] / "rca_data/2023-01-29/log/08_43_log.csv", newline="") as fh:
        first = next(csv.DictReader(fh))
    body = json.loads(first["Log"])["log"].rstrip("\n")
    logs = _table(nezha, "logs").filter(pl.col("time") == pl.lit(int(first["TimeUnixNano"])).cast(pl.Datetime("ns", "UTC")))
    hit = logs.filter(pl.col("body") == body).to_dicts()
    assert len(hit) == 1
    assert hit[0]["k8s_pod_name"] == first["PodName"] and hit[0]["severity_number"] == 9
    assert hit[0]["trace_id"] == bytes.fromhex(first["TraceID"])


# --------------------------------------------------------------------------------------------------
# Sock Shop 1
# --------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_sockshop_incidents_references_and_values(sockshop: dict[str, Any]) -> None:
    _no_quarantine(sockshop)
    inc = {r["incident_id"]: r for r in sockshop["incidents"]}
    assert len(inc) == 50
    assert {r["root_cause_service"] for r in inc.values()} == {"carts", "catalogue", "orders", "payment", "user"}
    assert {r["fault_type"] for r in inc.values()} == {"cpu", "mem"}
    r = inc["carts-cpu/1"]
    assert r["start_time"].timestamp() == 1652812675 and r["end_time"].timestamp() == 1652812957
    assert r["reference_start"].timestamp() == 1652565600 and r["reference_end"].timestamp() == 1652565892
    # normal.csv is the earlier recording in every case but one (its normal data follows the fault)
    assert [k for k, x in inc.items() if x["reference_end"] > x["start_time"]] == ["orders-mem/5"]
    assert sockshop["dataset"]["normal_after_anomalous"] == ["orders-mem/5"]
    assert sockshop["dataset"]["overlaps"] == []
    assert sockshop["dataset"]["symptom_service"] == "front-end"
    with open(sockshop["src"] / "sock-shop-data/payment-mem/3/anomalous.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    row = rows[10]
    pts = _table(sockshop, "metrics_number")
    at = pl.lit(int(row["time"]) * 10**9).cast(pl.Datetime("ns", "UTC"))
    got = pts.filter((pl.col("service_name") == "payment") & (pl.col("time") == at))
    vals = dict(zip(got["metric_name"].to_list(), got["value_double"].to_list(), strict=True))
    assert vals["container.memory.usage"] == float(row["payment_mem"])
    assert vals["container.cpu.usage"] == float(row["payment_cpu"])
    c = sockshop["dataset"]["counts"]["metric_rows"]
    assert sockshop["report"]["totals"]["rows_written"]["metrics_number"] == c["points"]


# --------------------------------------------------------------------------------------------------
# PetShop (low traffic)
# --------------------------------------------------------------------------------------------------


def test_petshop_incidents_topology_and_values(petshop: dict[str, Any]) -> None:
    _no_quarantine(petshop)
    inc = {r["incident_id"]: r for r in petshop["incidents"]}
    assert len(inc) == 26
    assert sum(r["split"] == "train" for r in inc.values()) == 8
    scen = petshop["src"] / "dataset" / "low_traffic"
    target = json.loads((scen / "test/issue_0/target.json").read_text())
    r = inc["test/issue_0"]
    assert r["start_time"].timestamp() == target["target"]["timestamp"]
    assert r["root_cause_service"] == target["root_cause"]["node"] == "petInfo_AWS::DynamoDB::Table"
    assert r["fault_type"] == "request_overload"
    assert petshop["dataset"]["symptom_service"] == "PetSite"
    topo = json.loads((petshop["out"] / "topology.json").read_text())
    assert len(topo["edges"]) == 44
    assert {"caller": "PetSite", "callee": "PetSearch_AWS::ECS::Fargate", "operations": []} in topo["edges"]
    with open(scen / "train/issue_0/metrics.csv", newline="") as fh:
        rows = list(csv.reader(fh))
    col = next(j for j in range(1, len(rows[0])) if rows[0][j] == "PetSite" and rows[1][j] == "latency" and rows[2][j] == "Average")
    pts = _table(petshop, "metrics_number")
    at = pl.lit(int(float(rows[4][0])) * 10**9).cast(pl.Datetime("ns", "UTC"))
    got = pts.filter((pl.col("service_name") == "PetSite") & (pl.col("metric_name") == "latency.average") & (pl.col("time") == at))
    assert got["value_double"].to_list() == [float(rows[4][col])]


def test_registry_checksums_match_the_shared_copies(external_root: Path) -> None:
    for name in ("nezha-tt", "rcd-sockshop", "petshop"):
        entry = get_entry(name)
        got = verify(entry, external_root / "datasets" / name)
        assert got["files"] == len(entry.files) and got["unregistered_files"] == []
