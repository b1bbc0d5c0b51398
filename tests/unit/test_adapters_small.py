"""The nezha, rcd-sockshop and petshop adapters on small hand-written folders in their layouts:
exact spans, logs, points and incidents, rejected rows with file and line, counts that add up."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from otlp_aiops.datasets.adapters import import_dataset
from otlp_aiops.datasets.adapters.common import service_from_pod
from otlp_aiops.otlp.ingest import ingest_paths

S = 1_000_000_000
T = 1674981768  # 2023-01-29T08:42:48Z
POD = "ts-auth-service-7f8d7d756d-k7b9j"
GW = "ts-gateway-service-6f6cfc45b-h5m2n"
TID = "b0103bb0161ad7fa352fe1828eeb643a"


def write_nezha(root: Path) -> None:
    day = root / "rca_data" / "2023-01-29"
    for sub in ("trace", "log", "metric"):
        (day / sub).mkdir(parents=True)
    head = "TraceID,SpanID,ParentID,PodName,OperationName,StartTimeUnixNano,EndTimeUnixNano,Duration\n"
    r1 = f"{TID},520b067330e3ede5,root,{GW},/*,{T * S},{T * S + 318316530},318316\n"
    r2 = f"{TID},5e89765a7f60ff70,520b067330e3ede5,{GW},HTTP POST,{T * S + 1000},{T * S + 316000000},315999\n"
    r3 = f"{TID},7e28bdb6a47af144,5e89765a7f60ff70,{POD},/api/v1/users/login,{T * S + 2000},{T * S + 5 * S},4999999\n"
    (day / "trace" / "08_42_trace.csv").write_text(head + r1 + r2)
    # the next minute file repeats r2 (minute files overlap) and has a bad row on line 4
    (day / "trace" / "08_43_trace.csv").write_text(head + r2 + r3 + f"{TID},xyz,root,{GW},/*,{T * S},{T * S + 1},0\n")
    log = "Timestamp,TimeUnixNano,Node,PodName,Container,TraceID,SpanID,Log\n"
    body = '"{""log"":""16:42:49.100 ERROR  u.c.UserController#48 TraceID: x [login failed]\\n"",""stream"":""stdout""}"'
    (day / "log" / "08_43_log.csv").write_text(
        log
        + f"2023-01-29T08:42:49.1Z,{T * S + 1_100_000_000},33.33.33.1,{POD},server,{TID},7e28bdb6a47af144,{body}\n"
        + f"2023-01-29T08:42:50.250,-6795364578871345152,33.33.33.1,{POD},server,{TID},7e28bdb6a47af144,{body}\n"
        + f"2023-01-29T08:42:51Z,{T * S + 3 * S},33.33.33.1,{POD},server,,,not json\n"
        + "a,b,c\n"
    )
    mhead = "Time,TimeStamp,PodName,CpuUsageRate(%),MemoryUsage(Mi),PodServerLatencyP90(s)\n"
    (day / "metric" / f"{POD}_metric.csv").write_text(
        mhead + f"x,{T - 60},{POD},2.5,424.1,NaN\n" + f"x,{T},{POD},80.0,430.0,0.02\n"
    )
    (day / "metric" / "front_service.csv").write_text(
        "Time,TimeStamp,ServiceName,SuccessRate(%),LatencyP50(s),LatencyP90(s)\n" + f"x,{T},Frontend,0,0.05,0.1\n"
    )
    (day / "2023-01-29-fault_list.json").write_text(
        json.dumps(
            {"08": [{"inject_time": "2023-01-29 08:42:50", "inject_timestamp": str(T + 2 - 28800),
                     "inject_pod": POD, "inject_type": "cpu_contention"}]}
        )
    )
    (root / "construct_data").mkdir()
    (root / "construct_data" / "root_cause_ts.json").write_text(
        json.dumps({"ts-auth-service": {"cpu_contention": "CpuUsageRate(%)"}})
    )


def test_service_from_pod() -> None:
    assert service_from_pod("ts-contacts-service-866bd68c97-xcqfx") == "ts-contacts-service"
    assert service_from_pod("ts-execute-service-775f544d9-zqvjb") == "ts-execute-service"
    assert service_from_pod("mysql-0") == "mysql-0"
    assert service_from_pod("frontend") == "frontend"


def test_nezha_small(tmp_path: Path) -> None:
    write_nezha(tmp_path / "src")
    out = tmp_path / "raw"
    s = import_dataset("nezha-tt", tmp_path / "src", out)
    ds = json.loads((out / "dataset.json").read_text())
    # a DVC output: no wall-clock values, counters in key order, the same bytes from the same source
    assert "timing_s" not in ds
    assert ds["traces"]["span_kinds"] == {"2": 2, "3": 1}  # two SERVER spans, one CLIENT
    assert list(ds["traces"]["span_kinds"]) == ["2", "3"]
    import_dataset("nezha-tt", tmp_path / "src", tmp_path / "again")
    for name in ("dataset.json", "incidents.parquet", "rejected.jsonl"):
        assert (out / name).read_bytes() == (tmp_path / "again" / name).read_bytes(), name
    assert ds["counts"]["traces"] == {"read": 5, "converted": 3, "duplicates": 1, "rejected": 1, "files": 2}
    assert ds["counts"]["logs"] == {"read": 4, "converted": 2, "duplicates": 0, "rejected": 2, "files": 1}
    rej = {(r["file"], r["line"], r["reason"].split(":")[0]) for r in map(json.loads, (out / "rejected.jsonl").read_text().splitlines())}
    assert rej == {
        ("rca_data/2023-01-29/trace/08_43_trace.csv", 4, "bad SpanID"),
        ("rca_data/2023-01-29/log/08_43_log.csv", 4, "bad Log"),
        ("rca_data/2023-01-29/log/08_43_log.csv", 5, "ragged row"),
    }
    assert s.rejected == 3 and s.incidents == 1
    assert ds["symptom_service"] == "ts-ui-dashboard"
    assert ds["metric_kinds"]["pod.cpu.utilization"] == "cpu" and ds["metric_kinds"]["frontend.latency.p90"] == "latency"
    assert ds["clock_check"]["all_inside_data"] is True
    assert ds["clock_check"]["inject_timestamp_minus_inject_time_s"] == [-28800]
    inc = pq.read_table(out / "incidents.parquet").to_pylist()
    assert len(inc) == 1
    i = inc[0]
    assert i["start_time"].timestamp() == T + 2 and i["end_time"] is None
    assert (i["root_cause_service"], i["root_cause_pod"], i["fault_type"]) == ("ts-auth-service", POD, "cpu_contention")
    assert i["root_cause_indicator"] == "pod.cpu.utilization" and i["root_cause_indicator_source"] == "CpuUsageRate(%)"

    report = ingest_paths([out / "otlp"], tmp_path / "interim", workers=1)
    assert report["totals"]["records_quarantined"] == 0
    spans = {s["name"]: s for s in pq.read_table(tmp_path / "interim" / "spans").to_pylist()}
    assert spans["/*"]["kind"] == 2 and spans["/*"]["parent_span_id"] is None
    assert spans["/*"]["duration_ns"] == 318316530
    assert spans["HTTP POST"]["kind"] == 3 and spans["HTTP POST"]["parent_span_id"] == bytes.fromhex("520b067330e3ede5")
    login = spans["/api/v1/users/login"]
    assert (login["kind"], login["service_name"], login["k8s_pod_name"]) == (2, "ts-auth-service", POD)
    assert login["trace_id"] == bytes.fromhex(TID)
    logs = sorted(pq.read_table(tmp_path / "interim" / "logs").to_pylist(), key=lambda r: r["time"])
    assert [r["body"] for r in logs] == ["16:42:49.100 ERROR  u.c.UserController#48 TraceID: x [login failed]"] * 2
    assert [r["severity_number"] for r in logs] == [17, 17]
    assert logs[0]["time"].timestamp() == pytest.approx(T + 1.1)
    assert logs[1]["time"].timestamp() == pytest.approx(T + 2.25)  # Go zero time fixed from the Timestamp text
    assert logs[0]["span_id"] == bytes.fromhex("7e28bdb6a47af144")
    pts = pq.read_table(tmp_path / "interim" / "metrics_number").to_pylist()
    got = {(p["service_name"], p["metric_name"], p["time"].timestamp(), p["value_double"]) for p in pts}
    assert got == {
        ("ts-auth-service", "pod.cpu.utilization", T - 60, 2.5),
        ("ts-auth-service", "pod.cpu.utilization", T, 80.0),
        ("ts-auth-service", "pod.memory.usage", T - 60, 424.1),
        ("ts-auth-service", "pod.memory.usage", T, 430.0),
        ("ts-auth-service", "pod.server.latency.p90", T, 0.02),  # the NaN cell is not written
        ("ts-ui-dashboard", "frontend.success.rate", T, 0.0),
        ("ts-ui-dashboard", "frontend.latency.p50", T, 0.05),
        ("ts-ui-dashboard", "frontend.latency.p90", T, 0.1),
    }


def test_nezha_metric_time_text_wins_over_a_wrong_timestamp(tmp_path: Path) -> None:
    """Nezha's 2022-08-22 adservice file has TimeStamp 2e8 s ahead of its Time text: the Time text is
    used there (and counted); a TimeStamp that agrees with its text, or a row without one, is kept."""
    write_nezha(tmp_path / "src")
    metric = tmp_path / "src" / "rca_data" / "2023-01-29" / "metric" / f"{POD}_metric.csv"
    metric.write_text(
        "Time,TimeStamp,PodName,CpuUsageRate(%),MemoryUsage(Mi),PodServerLatencyP90(s)\n"
        f"2023-01-29 08:41:48.607158889 +0000 UTC m=+0.113112869,{T - 60 + 200_000_000},{POD},2.5,424.1,NaN\n"
        f"2023-01-29 08:42:48.5 +0000 UTC m=+60.1,{T},{POD},80.0,430.0,0.02\n"
        f"x,{T + 60},{POD},81.0,431.0,0.03\n"
    )
    out = tmp_path / "raw"
    import_dataset("nezha-tt", tmp_path / "src", out)
    ds = json.loads((out / "dataset.json").read_text())
    assert ds["counts"]["metric_timestamps_from_time"] == 1
    ingest_paths([out / "otlp"], tmp_path / "interim", workers=1)
    pts = pq.read_table(tmp_path / "interim" / "metrics_number").to_pylist()
    cpu = sorted((p["time"].timestamp(), p["value_double"]) for p in pts if p["metric_name"] == "pod.cpu.utilization")
    assert cpu == [(T - 60, 2.5), (T, 80.0), (T + 60, 81.0)]


def test_nezha_online_boutique_reads_the_hipster_indicator_labels(tmp_path: Path) -> None:
    """An Online Boutique day takes its inner-service labels from root_cause_hipster.json."""
    src = tmp_path / "src"
    write_nezha(src)
    day = src / "rca_data" / "2023-01-29"
    ob_pod = "cartservice-579f59597d-wc2lz"
    for p in list((day / "metric").iterdir()) + list((day / "trace").iterdir()) + list((day / "log").iterdir()):
        p.write_text(p.read_text().replace(POD, ob_pod).replace(GW, "frontend-579b9bff58-t2dbm"))
    (day / "metric" / f"{POD}_metric.csv").rename(day / "metric" / f"{ob_pod}_metric.csv")
    fl = json.loads((day / "2023-01-29-fault_list.json").read_text())
    fl["08"][0].update(inject_pod=ob_pod, inject_type="network_delay")
    (day / "2023-01-29-fault_list.json").write_text(json.dumps(fl))
    # Online Boutique's metric folder also holds call-edge tables: listed, not converted
    (day / "metric" / "dependency.csv").write_text("Source,Target,Weight\ncheckoutservice,emailservice,1\n")
    (day / "metric" / "source_50.csv").write_text("time,timestamp,frontend_cartservice\nx,1661140280,0.004\n")
    (src / "construct_data" / "root_cause_hipster.json").write_text(
        json.dumps({"cartservice": {"network_delay": "NetworkP90(ms)"}})
    )
    out = tmp_path / "raw"
    import_dataset("nezha-tt", src, out)
    inc = pq.read_table(out / "incidents.parquet").to_pylist()
    assert [(i["root_cause_service"], i["fault_type"], i["root_cause_indicator_source"]) for i in inc] == [
        ("cartservice", "network_delay", "NetworkP90(ms)")
    ]
    card = json.loads((out / "dataset.json").read_text())
    assert card["symptom_service"] == "frontend"
    assert card["metric_files_not_converted"] == [
        "rca_data/2023-01-29/metric/dependency.csv",
        "rca_data/2023-01-29/metric/source_50.csv",
    ]


def test_nezha_json_log_lines_give_their_message_and_severity(tmp_path: Path) -> None:
    """Online Boutique logs a JSON object per line: the message is the body and the severity the level."""
    src = tmp_path / "src"
    write_nezha(src)
    inner = '{\\""message\\"":\\""TraceID: 01f6 Query product successfully\\"",\\""severity\\"":\\""warning\\""}'
    body = f'"{{""log"":""{inner}\\n"",""stream"":""stdout""}}"'
    log = src / "rca_data" / "2023-01-29" / "log" / "08_43_log.csv"
    log.write_text(
        "Timestamp,TimeUnixNano,Node,PodName,Container,TraceID,SpanID,Log\n"
        f"2023-01-29T08:42:49.1Z,{T * S + 1_100_000_000},33.33.33.1,{POD},server,{TID},7e28bdb6a47af144,{body}\n"
    )
    out = tmp_path / "raw"
    import_dataset("nezha-tt", src, out)
    ingest_paths([out / "otlp"], tmp_path / "interim", workers=1)
    logs = pq.read_table(tmp_path / "interim" / "logs").to_pylist()
    assert [(r["body"], r["severity_text"], r["severity_number"]) for r in logs] == [
        ("TraceID: 01f6 Query product successfully", "WARNING", 13)
    ]


def test_rcd_sockshop_small(tmp_path: Path) -> None:
    case = tmp_path / "src" / "sock-shop-data" / "carts-cpu" / "1"
    case.mkdir(parents=True)
    head = "time,carts_cpu,carts_lat_90,front-end_mem,carts_lod\n"
    (case / "normal.csv").write_text(head + "1000,1.0,0.01,5,2\n1001,1.5,0.01,5,2\n")
    (case / "anomalous.csv").write_text(head + "5000,90,0.5,6,1\n5001,95,0.7,6,1\nbad,1,1,1,1\n5002,97,,6,1\n")
    out = tmp_path / "raw"
    import_dataset("rcd-sockshop", tmp_path / "src", out)
    inc = pq.read_table(out / "incidents.parquet").to_pylist()
    assert [(r["incident_id"], r["root_cause_service"], r["fault_type"], r["root_cause_indicator"]) for r in inc] == [
        ("carts-cpu/1", "carts", "cpu", "container.cpu.usage")
    ]
    r = inc[0]
    assert (r["start_time"].timestamp(), r["end_time"].timestamp()) == (5000, 5003)
    assert (r["reference_start"].timestamp(), r["reference_end"].timestamp()) == (1000, 1002)
    ds = json.loads((out / "dataset.json").read_text())
    m = ds["counts"]["metric_rows"]
    assert (m["rows_read"], m["rows_converted"], m["rows_rejected"], m["points"], m["cells_without_value"]) == (6, 5, 1, 19, 1)
    assert json.loads((out / "rejected.jsonl").read_text()) == {
        "file": "sock-shop-data/carts-cpu/1/anomalous.csv", "line": 4, "reason": "bad time: 'time' is not a number"
    }
    assert ds["symptom_service"] == "front-end" and ds["overlaps"] == []
    assert ds["metric_kinds"] == {"container.cpu.usage": "cpu", "container.memory.usage": "memory",
                                  "service.latency.p90": "latency", "service.request.rate": "traffic"}
    ingest_paths([out / "otlp"], tmp_path / "interim", workers=1)
    pts = pq.read_table(tmp_path / "interim" / "metrics_number").to_pylist()
    assert {(p["service_name"], p["time"].timestamp(), p["value_double"]) for p in pts if p["metric_name"] == "container.cpu.usage"} == {
        ("carts", 1000, 1.0), ("carts", 1001, 1.5), ("carts", 5000, 90.0), ("carts", 5001, 95.0), ("carts", 5002, 97.0)
    }


def test_petshop_small(tmp_path: Path) -> None:
    scen = tmp_path / "src" / "dataset" / "low_traffic"
    (scen / "noissue").mkdir(parents=True)
    (scen / "train" / "issue_0").mkdir(parents=True)
    (scen / "graph.csv").write_text(",PetSite,PetSearch\nPetSite,0.0,1.0\nPetSearch,0.0,0.0\n")
    header = (
        "microservice,PetSite,PetSite,PetSearch\nmetric,latency,requests,latency\n"
        "statistic,Average,Sum,p90\nunix_timestamp,,,\n"
    )
    (scen / "noissue" / "metrics.csv").write_text(header + "1000.0,0.1,5,0.01\n1300.0,0.2,,0.02\n")
    (scen / "train" / "issue_0" / "metrics.csv").write_text(header + "2000.0,1.5,4,0.9\n2300.0,x,4,0.8\n")
    (scen / "train" / "issue_0" / "target.json").write_text(json.dumps({
        "target": {"node": "PetSite", "metric": "latency", "agg": "Average", "timestamp": 2100},
        "root_cause": {"node": "PetSearch", "metric": None},
        "metadata": {"reproducibility": {"command": "aws ssm put-parameter --name '/petstore/searchdelay' --value '1000'"}},
    }))
    out = tmp_path / "raw"
    import_dataset("petshop", tmp_path / "src", out)
    inc = pq.read_table(out / "incidents.parquet").to_pylist()
    assert len(inc) == 1
    r = inc[0]
    assert (r["incident_id"], r["root_cause_service"], r["fault_type"], r["target_metric"]) == (
        "train/issue_0", "PetSearch", "delay", "latency.average")
    assert r["start_time"].timestamp() == 2100 and r["end_time"] is None and r["root_cause_indicator"] is None
    assert (r["reference_start"].timestamp(), r["reference_end"].timestamp()) == (1000, 1600)
    topo = json.loads((out / "topology.json").read_text())
    assert topo["edges"] == [{"caller": "PetSite", "callee": "PetSearch", "operations": []}]
    ds = json.loads((out / "dataset.json").read_text())
    assert ds["symptom_service"] == "PetSite"
    assert ds["metric_kinds"] == {"latency.average": "latency", "latency.p90": "latency", "requests.sum": "traffic"}
    m = ds["counts"]["metric_rows"]
    assert (m["rows_read"], m["points"], m["cells_without_value"], m["cells_rejected"]) == (4, 10, 1, 1)
    assert json.loads((out / "rejected.jsonl").read_text())["line"] == 6
    ingest_paths([out / "otlp"], tmp_path / "interim", workers=1)
    pts = pq.read_table(tmp_path / "interim" / "metrics_number").to_pylist()
    assert {(p["service_name"], p["metric_name"], p["time"].timestamp(), p["value_double"]) for p in pts if p["time"].timestamp() >= 2000} == {
        ("PetSite", "latency.average", 2000, 1.5), ("PetSite", "requests.sum", 2000, 4.0), ("PetSite", "requests.sum", 2300, 4.0),
        ("PetSearch", "latency.p90", 2000, 0.9), ("PetSearch", "latency.p90", 2300, 0.8),
    }
