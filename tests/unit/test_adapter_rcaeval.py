"""The RCAEval RE1/RE2/RE3 case adapter on small hand-written cases in RCAEval's published format."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from otlp_aiops.datasets.adapters import AdapterError, import_dataset
from otlp_aiops.otlp.ingest import ingest_paths

S = 1_000_000_000
T0 = 1_700_000_000  # Unix seconds of the first metric row


def write_re2_case(root: Path) -> Path:
    case = root / "RE2-OB" / "checkoutservice_cpu" / "1"
    case.mkdir(parents=True)
    rows = ["time,checkoutservice_cpu,checkoutservice_latency-90,frontend_mem,frontend_workload"]
    for i in range(6):
        cpu = 0.1 if i < 3 else 0.9
        rows.append(f"{T0 + i},{cpu},{0.01 * (i + 1):.2f},{1000 + i},{5 if i != 4 else ''}")
    rows.append("oops,1,2,3,4")  # line 8: a bad time
    (case / "metrics.csv").write_text("\n".join(rows) + "\n")
    (case / "inject_time.txt").write_text(f"{T0 + 3}\n")
    (case / "logs.csv").write_text(
        "time,timestamp,container_name,message,level,req_path,error\n"
        f"x,{(T0 + 1) * S + 5},frontend,GET /cart 200,info,/cart,\n"
        f"x,{(T0 + 4) * S},checkoutservice,\"failed, retrying\",error,/checkout,timeout\n"
        "x,notatime,frontend,lost,info,,\n"
    )
    tid = "a" * 32
    (case / "traces.csv").write_text(
        "time,traceID,spanID,serviceName,methodName,operationName,startTimeMillis,startTime,duration,statusCode,parentSpanID\n"
        f"x,{tid},{'1' * 16},frontend,GET,GET /checkout,{(T0 + 4) * 1000},{(T0 + 4) * 1_000_000},5000,0,\n"
        f"x,{tid},{'2' * 16},frontend,POST,PlaceOrder,{(T0 + 4) * 1000},{(T0 + 4) * 1_000_000 + 10},4000,0,{'1' * 16}\n"
        f"x,{tid},{'3' * 16},checkoutservice,POST,PlaceOrder,{(T0 + 4) * 1000},{(T0 + 4) * 1_000_000 + 20},3000,2,{'2' * 16}\n"
        f"x,{tid},zz,checkoutservice,POST,bad,0,0,1,0,\n"
    )
    return case


def write_re1_case(root: Path) -> Path:
    case = root / "RE1-SS" / "carts_mem" / "2"
    case.mkdir(parents=True)
    (case / "data.csv").write_text(
        "time,carts_mem,carts_cpu,front-end_cpu\n" + "".join(f"{T0 + 100 + i},{100 + i},0.5,0.2\n" for i in range(4))
    )
    (case / "inject_time.txt").write_text(f"{T0 + 102}")
    return case


@pytest.fixture(scope="module")
def converted(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict]:
    base = tmp_path_factory.mktemp("rcaeval")
    src = base / "src"
    write_re2_case(src)
    write_re1_case(src)
    out = base / "raw"
    summary = import_dataset("rcaeval", src, out)
    report = ingest_paths([out / "otlp"], base / "interim", workers=1)
    return out, base / "interim", {"summary": summary, "report": report}


def test_incidents_from_inject_time_and_folder_names(converted) -> None:
    out, _, _ = converted
    inc = pq.read_table(out / "incidents.parquet").to_pylist()
    by_id = {r["incident_id"]: r for r in inc}
    assert sorted(by_id) == ["RE1-SS/carts_mem/2", "RE2-OB/checkoutservice_cpu/1"]
    re2 = by_id["RE2-OB/checkoutservice_cpu/1"]
    assert re2["root_cause_service"] == "checkoutservice"
    assert re2["fault_type"] == "cpu"
    assert re2["root_cause_indicator"] == "container.cpu.usage"
    assert re2["start_time"].timestamp() == T0 + 3
    assert re2["end_time"].timestamp() == T0 + 6  # last row (T0+5) + 1 s
    assert re2["reference_start"].timestamp() == T0 and re2["reference_end"].timestamp() == T0 + 3
    re1 = by_id["RE1-SS/carts_mem/2"]
    assert (re1["root_cause_service"], re1["fault_type"], re1["root_cause_indicator"]) == ("carts", "mem", "container.memory.usage")
    assert re1["start_time"].timestamp() == T0 + 102 and re1["end_time"].timestamp() == T0 + 104
    schema = pq.read_schema(out / "incidents.parquet")
    assert str(schema.field("start_time").type) == "timestamp[ns, tz=UTC]"


def test_rejected_rows_name_file_and_line_and_counts_add_up(converted) -> None:
    out, _, _ = converted
    ds = json.loads((out / "dataset.json").read_text())
    rej = [json.loads(x) for x in (out / "rejected.jsonl").read_text().splitlines()]
    assert {(r["file"], r["line"], r["reason"].split(":")[0]) for r in rej} == {
        ("RE2-OB/checkoutservice_cpu/1/metrics.csv", 8, "bad time"),
        ("RE2-OB/checkoutservice_cpu/1/logs.csv", 4, "bad time"),
        ("RE2-OB/checkoutservice_cpu/1/traces.csv", 5, "bad spanID"),
    }
    c = ds["counts"]
    assert c["metric_rows"]["rows_read"] == 11 and c["metric_rows"]["rows_rejected"] == 1
    assert c["metric_rows"]["rows_read"] == c["metric_rows"]["rows_converted"] + c["metric_rows"]["rows_rejected"]
    assert c["traces"] == {"read": 4, "converted": 3, "duplicates": 0, "rejected": 1, "files": 1}
    assert c["logs"] == {"read": 3, "converted": 2, "duplicates": 0, "rejected": 1, "files": 1}
    # 6 rows x 4 columns + 4 rows x 3 columns, minus the one empty cell
    assert c["metric_rows"]["points"] == 6 * 4 - 1 + 4 * 3 and c["metric_rows"]["cells_without_value"] == 1
    assert ds["symptom_service"] == "frontend"
    assert ds["metric_kinds"]["container.cpu.usage"] == "cpu"
    assert ds["metric_kinds"]["service.latency.p90"] == "latency"
    assert ds["metric_kinds"]["service.request.rate"] == "traffic"


def test_ingest_reads_everything_with_exact_values(converted) -> None:
    _, interim, info = converted
    rep = info["report"]["totals"]
    assert rep["records_quarantined"] == 0
    assert rep["rows_written"]["spans"] == 3 and rep["rows_written"]["logs"] == 2
    pts = pq.read_table(interim / "metrics_number").to_pylist()
    cpu = {(p["time"].timestamp(), p["value_double"]) for p in pts if p["service_name"] == "checkoutservice" and p["metric_name"] == "container.cpu.usage"}
    assert cpu == {(T0 + i, 0.1 if i < 3 else 0.9) for i in range(6)}
    lat = [p for p in pts if p["metric_name"] == "service.latency.p90" and p["time"].timestamp() == T0 + 2]
    assert [p["value_double"] for p in lat] == [0.03]
    spans = {s["name"] + "/" + s["service_name"]: s for s in pq.read_table(interim / "spans").to_pylist()}
    root = spans["GET /checkout/frontend"]
    assert root["parent_span_id"] is None and root["kind"] == 2 and root["duration_ns"] == 5_000_000
    client = spans["PlaceOrder/frontend"]
    assert client["kind"] == 3 and client["parent_span_id"] == bytes.fromhex("1" * 16)
    server = spans["PlaceOrder/checkoutservice"]
    assert server["kind"] == 2 and server["status_code"] == 2 and server["duration_ns"] == 3_000_000
    assert server["start_time"].timestamp() == pytest.approx(T0 + 4 + 20e-6)
    logs = sorted(pq.read_table(interim / "logs").to_pylist(), key=lambda r: r["time"])
    assert [(r["service_name"], r["body"], r["severity_number"]) for r in logs] == [
        ("frontend", "GET /cart 200", 9),
        ("checkoutservice", "failed, retrying", 17),
    ]


def test_bad_layout_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "x").mkdir()
    with pytest.raises(AdapterError, match=r"inject_time\.txt"):
        import_dataset("rcaeval", tmp_path / "x", tmp_path / "out")
    case = tmp_path / "y" / "nofault" / "1"
    case.mkdir(parents=True)
    (case / "inject_time.txt").write_text("5")
    with pytest.raises(AdapterError, match="<service>_<fault>"):
        import_dataset("rcaeval", tmp_path / "y", tmp_path / "out")
    assert not (tmp_path / "out").exists()
