"""The simulated Train Ticket dataset of the default benchmark (`sim-trainticket` in params.yaml): its
settings, and that a small run of them carries every signal the multi-signal methods read (request logs
with trace context, the wrong-path line of `code_return`, exception logs and spans)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq
import yaml
from opentelemetry.proto.logs.v1 import logs_pb2
from opentelemetry.proto.trace.v1 import trace_pb2

from otlp_aiops.datasets.simulator import SimulatorConfig, simulate
from otlp_aiops.datasets.simulator.generate import build_model
from otlp_aiops.otlp.framing import iter_messages

ROOT = Path(__file__).resolve().parents[2]
# the fault kinds of the real Train Ticket days (Nezha: exception, return, cpu_contention; the held-out
# day: network delay), in the simulator's names
REAL_TT_KINDS = {"code_exception", "code_return", "cpu_hog", "network_delay"}


def _settings() -> dict:
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    assert "sim-trainticket" in params["datasets"]
    assert "sim-trainticket" in params["benchmark"]["datasets"]
    return {**params["simulate"], **params["simulated"]["sim-trainticket"]}


def test_the_benchmark_dataset_is_train_ticket_with_the_real_days_fault_kinds() -> None:
    cfg = SimulatorConfig.from_dict(_settings())
    assert cfg.system == "train-ticket"
    assert set(cfg.fault_types) == REAL_TT_KINDS
    topo, sched = build_model(cfg)
    assert len(topo.services) == 47 and topo.entry_service == "ts-gateway-service"
    counts = Counter(i.fault_type for i in sched.incidents)
    assert len(sched.incidents) == cfg.incidents >= 16 and set(counts) == REAL_TT_KINDS  # 4+ per kind
    assert max(counts.values()) - min(counts.values()) <= 1
    # a case shows 5 min before and after its start (features.before / after): the schedule leaves a
    # fault-free warm-up of at least that length for the first one
    assert min(i.start for i in sched.incidents) >= 300


def _records(folder: Path, signal: str):
    cls = {"traces": trace_pb2.TracesData, "logs": logs_pb2.LogsData}[signal]
    for f in sorted((folder / "otlp").glob(f"{signal}-*")):
        for m in iter_messages(f):
            msg = cls()
            msg.ParseFromString(m.payload)
            for rx in getattr(msg, f"resource_{signal if signal == 'logs' else 'spans'}"):
                service = next(a.value.string_value for a in rx.resource.attributes if a.key == "service.name")
                for sx in getattr(rx, "scope_logs" if signal == "logs" else "scope_spans"):
                    for r in (sx.log_records if signal == "logs" else sx.spans):
                        yield service, r


def test_a_small_run_carries_logs_with_trace_context_and_every_fault_signal(tmp_path: Path) -> None:
    settings = {**_settings(), "duration": "16m", "incidents": 4, "disturbances": 0, "warmup": "3m",
                "incident_duration": ["90s", "90s"], "severity": [0.8, 1.0], "trace_sample_ratio": 0.5}
    simulate(SimulatorConfig.from_dict(settings), tmp_path / "tt")
    incidents = pq.read_table(tmp_path / "tt" / "incidents.parquet").to_pylist()
    assert sorted(i["fault_type"] for i in incidents) == sorted(REAL_TT_KINDS)
    span_ids = {(r.trace_id, r.span_id) for _, r in _records(tmp_path / "tt", "traces")}
    logs = list(_records(tmp_path / "tt", "logs"))
    request_logs = [(s, r) for s, r in logs if r.trace_id]
    # request logs of the ts-* services carry the trace and span of the request; INFO ones belong to
    # exported (sampled) traces
    assert len(request_logs) > 1000 and {s for s, _ in request_logs} > {"ts-gateway-service", "ts-order-service"}
    info = [r for _, r in request_logs if r.severity_text == "INFO"]
    assert all((r.trace_id, r.span_id) in span_ids for r in info)
    by_type = {i["fault_type"]: i for i in incidents}
    # code_return: the ground truth's log template appears, from the faulty service, with trace context
    ret = by_type["code_return"]
    head = json.loads(ret["parameters"])["log_template"].split("<*>")[0]
    wrong = [(s, r) for s, r in request_logs if r.body.string_value.startswith(head)]
    assert wrong and {s for s, _ in wrong} == {ret["root_cause_service"]}
    assert {r.severity_text for _, r in wrong} == {"INFO"}
    # code_exception: ERROR logs with the exception type, from the faulty service, during the fault
    exc = by_type["code_exception"]
    t0, t1 = (int(exc[k].timestamp()) * 10**9 for k in ("start_time", "end_time"))
    errs = [r for s, r in request_logs if s == exc["root_cause_service"] and r.severity_text == "ERROR"
            and t0 <= r.time_unix_nano < t1 + 5 * 10**9]
    assert errs and any(a.key == "exception.type" for r in errs for a in r.attributes)
