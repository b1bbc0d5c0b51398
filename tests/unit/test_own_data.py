"""Your own data through the pipeline: the `otlp` import (incident file, times, topology, the raw
layout, the source left alone), the `local:` kind of the raw stage, progress reporting, the CLI
basics (--version, completion, --all, rejected sizes, --set errors, report) and the quick start."""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from otlp_aiops import progress
from otlp_aiops.datasets.adapters import AdapterError, import_dataset
from otlp_aiops.datasets.adapters.otlp import (
    IncidentError,
    epoch_unit,
    parse_iso,
    read_incident_file,
    read_topology,
)

REPO = Path(__file__).resolve().parents[2]
T0 = 1767600062  # 2026-01-05T08:01:02Z
NS = 10**9

METRICS_LINE = json.dumps({"resourceMetrics": [{
    "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "cart"}}]},
    "scopeMetrics": [{"metrics": [{"name": "cpu", "gauge": {"dataPoints": [
        {"timeUnixNano": str(T0 * NS), "asDouble": 0.5}]}}]}]}]})
SPANS_LINE = json.dumps({"resourceSpans": [{
    "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "front"}}]},
    "scopeSpans": [{"spans": [{"traceId": "5b8efff798038103d269b633813fc60c", "spanId": "eee19b7ec3c1b174",
                               "name": "GET /", "kind": 2, "startTimeUnixNano": str(T0 * NS),
                               "endTimeUnixNano": str(T0 * NS + 5_000_000)}]}]}]})


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


@pytest.fixture
def export(tmp_path: Path) -> Path:
    """A tiny export: two OTLP JSON-lines files in sub-folders and a README that is not OTLP."""
    src = tmp_path / "export"
    write(src / "metrics" / "metrics-0001.jsonl", METRICS_LINE + "\n")
    write(src / "traces" / "traces-0001.jsonl", SPANS_LINE + "\n" + SPANS_LINE + "\n")
    write(src / "README.txt", "notes about this export\n")
    return src


def digest(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


# --------------------------------------------------------------------------------------------------
# times
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("text, ns, naive", [
    ("2026-01-05T08:01:02Z", T0 * NS, False),
    ("2026-01-05T09:01:02+01:00", T0 * NS, False),
    ("2026-01-05 03:31:02-0430", T0 * NS, False),
    ("2026-01-05T08:01:02.123456789Z", T0 * NS + 123_456_789, False),
    ("2026-01-05T08:01:02,5Z", T0 * NS + 500_000_000, False),
    ("2026-01-05T08:01:02", T0 * NS, True),
    ("2026-01-05T08:01", (T0 - 2) * NS, True),
    ("2026-01-05", (T0 - 8 * 3600 - 62) * NS, True),
])
def test_parse_iso_exact_nanoseconds(text: str, ns: int, naive: bool) -> None:
    assert parse_iso(text) == (ns, naive)


@pytest.mark.parametrize("text", ["2026-13-05T08:00:00Z", "05/01/2026 08:00", "yesterday", "2026-01-05T25:00:00Z"])
def test_parse_iso_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        parse_iso(text)


def test_epoch_unit_from_magnitude() -> None:
    from decimal import Decimal

    assert epoch_unit(Decimal(T0)) == "s"
    assert epoch_unit(Decimal(T0) + Decimal("0.25")) == "s"
    assert epoch_unit(Decimal(T0 * 1000)) == "ms"
    assert epoch_unit(Decimal(T0 * 10**6)) == "us"
    assert epoch_unit(Decimal(T0 * NS)) == "ns"
    assert epoch_unit(Decimal(12)) is None  # 1970: no plausible unit
    assert epoch_unit(Decimal(10**20)) is None


# --------------------------------------------------------------------------------------------------
# the incident file
# --------------------------------------------------------------------------------------------------


def test_incident_csv_aliases_mixed_forms_and_defaults(tmp_path: Path) -> None:
    f = write(tmp_path / "inc.csv",
              "Start, End ,Service,indicator,Fault-Type,notes\n"
              f"2026-01-05T08:01:02Z,{(T0 + 84) * 1000},adservice,container.memory.usage,memory_leak,x\n"
              "\n"
              f"{(T0 + 166) * 1000},,emailservice,,network_delay,\n"
              f"{(T0 + 300) * 1000},2026-01-05T08:07:26Z,,,,\n")
    rows, notes = read_incident_file(f)
    assert [r["incident_id"] for r in rows] == ["incident-001", "incident-002", "incident-003"]
    assert [r["start_time"] for r in rows] == [T0 * NS, (T0 + 166) * NS, (T0 + 300) * NS]
    assert [r["end_time"] for r in rows] == [(T0 + 84) * NS, None, (T0 + 384) * NS]
    assert [r["root_cause_service"] for r in rows] == ["adservice", "emailservice", None]
    assert rows[0]["root_cause_indicator"] == "container.memory.usage" and rows[1]["root_cause_indicator"] is None
    assert [r["fault_type"] for r in rows] == ["memory_leak", "network_delay", None]
    assert notes["time_unit"] == "ms" and notes["time_unit_stated"] is False
    assert notes["columns_ignored"] == ["notes"]
    assert notes["incidents_without_root_cause"] == 1
    assert notes["fault_types"] == {"memory_leak": 1, "network_delay": 1, "unknown": 1}


def test_incident_time_unit_stated(tmp_path: Path) -> None:
    f = write(tmp_path / "inc.csv", "id,start_time,root_cause_service\na,1500,svc\nb,2000.5,svc\n")
    with pytest.raises(IncidentError, match="no date between 1980 and 2100"):
        read_incident_file(f)
    rows, notes = read_incident_file(f, time_unit="ms")
    assert [r["start_time"] for r in rows] == [1_500_000_000, 2_000_500_000]
    assert notes["time_unit"] == "ms" and notes["time_unit_stated"] is True
    with pytest.raises(IncidentError, match="time unit 'hours'"):
        read_incident_file(f, time_unit="hours")


def test_incident_errors_name_file_line_column_value(tmp_path: Path) -> None:
    f = write(tmp_path / "bad.csv",
              "incident_id,start_time,end_time,root_cause_service\n"
              "a,2026-13-05T08:01:02Z,,svc\n"
              "b,,,svc\n"
              "c,2026-01-05T08:01:02Z,2026-01-05T08:00:00Z,svc\n"
              "a,2026-01-05T09:00:00Z,,svc\n")
    with pytest.raises(IncidentError) as e:
        read_incident_file(f)
    msg = str(e.value)
    assert f"{f}: 4 problem(s), nothing written" in msg
    assert f"{f}:2: column 'start_time': value '2026-13-05T08:01:02Z': month must be in 1..12" in msg
    assert f"{f}:3: column 'start_time': empty" in msg
    assert f"{f}:4: end_time is 62 s before start_time" in msg
    assert f"{f}:5: incident_id 'a' repeats {f}:2" in msg


def test_incident_mixed_epoch_units_is_an_error(tmp_path: Path) -> None:
    f = write(tmp_path / "inc.csv", f"start,service\n{T0},a\n{T0 * 1000},b\n")
    with pytest.raises(IncidentError, match=r"epoch numbers in different units: .*first at .*inc.csv:3"):
        read_incident_file(f)
    with pytest.raises(IncidentError, match=r"inc.csv:3: column 'start': value '1767600062000': outside the range"):
        read_incident_file(f, time_unit="s")  # stated: both read as seconds, and the second does not fit


@pytest.mark.parametrize("text, match", [
    ("", "empty file"),
    ("begin,svc\n1,2\n", r"missing column\(s\): start_time \(or start, inject_time\); root_cause_service"),
    ("start,service\n2026-01-05T08:01:02Z,a,extra\n", r"inc.csv:2: 3 fields, the header has 2"),
    ("start,start_time,service\n1,2,a\n", "both give start_time"),
])
def test_incident_file_shape_errors(tmp_path: Path, text: str, match: str) -> None:
    with pytest.raises(IncidentError, match=match):
        read_incident_file(write(tmp_path / "inc.csv", text))


def test_incident_header_only_is_a_fault_free_recording(tmp_path: Path) -> None:
    rows, notes = read_incident_file(write(tmp_path / "inc.csv", "start_time,end_time,root_cause_service\n"))
    assert rows == [] and notes["incidents"] == 0


def test_incident_parquet_timestamps_and_numbers(tmp_path: Path) -> None:
    t = pa.table({
        "start_time": pa.array([T0 * NS, (T0 + 60) * NS], pa.int64()).cast(pa.timestamp("ns", tz="UTC")),
        "end_time": pa.array([datetime(2026, 1, 5, 8, 2, 2), None], pa.timestamp("us")),  # naive: UTC
        "root_cause_service": ["a", "b"],
        "fault_type": ["cpu_hog", None],
    })
    f = tmp_path / "inc.parquet"
    pq.write_table(t, f)
    rows, notes = read_incident_file(f)
    assert [r["start_time"] for r in rows] == [T0 * NS, (T0 + 60) * NS]
    assert [r["end_time"] for r in rows] == [(T0 + 60) * NS, None]
    assert notes["times_without_zone_read_as_utc"] == 1
    pq.write_table(pa.table({"start": [T0 * 10**6], "service": ["a"]}), f)
    rows, notes = read_incident_file(f)
    assert rows[0]["start_time"] == T0 * NS and notes["time_unit"] == "us"
    pq.write_table(pa.table({"start": ["2026-01-05T08:01:02Z", "nope"], "service": ["a", "b"]}), f)
    with pytest.raises(IncidentError, match=r"inc.parquet row 2: column 'start': value 'nope'"):
        read_incident_file(f)


# --------------------------------------------------------------------------------------------------
# topology
# --------------------------------------------------------------------------------------------------


def test_topology_json_and_csv(tmp_path: Path) -> None:
    j = write(tmp_path / "t.json", json.dumps({"edges": [{"source": "a", "target": "b"}, ["b", "c"]], "x": 1}))
    assert read_topology(j)["x"] == 1
    c = write(tmp_path / "t.csv", "Caller,Callee\na,b\nb,c\n")
    assert read_topology(c) == {"edges": [{"caller": "a", "callee": "b"}, {"caller": "b", "callee": "c"}]}
    with pytest.raises(AdapterError, match=r"edges\[0\] is not a caller/callee pair"):
        read_topology(write(tmp_path / "bad.json", '{"edges": [{"caller": "a"}]}'))
    with pytest.raises(AdapterError, match="expected columns caller,callee"):
        read_topology(write(tmp_path / "bad.csv", "from,to\na,b\n"))


# --------------------------------------------------------------------------------------------------
# the import
# --------------------------------------------------------------------------------------------------


def test_import_copies_writes_the_raw_layout_and_leaves_the_source(tmp_path: Path, export: Path) -> None:
    inc = write(tmp_path / "inc.csv", f"start,end,service,fault\n{T0},{T0 + 60},cart,cpu_hog\n")
    topo = write(tmp_path / "topo.csv", "caller,callee\nfront,cart\n")
    before = digest(export)
    out = tmp_path / "data" / "raw" / "mine"
    s = import_dataset("otlp", export, out, incidents=inc, topology=topo)
    assert digest(export) == before  # nothing moved or changed
    assert s.name == "mine" and s.incidents == 1
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()) == [
        "dataset.json", "incidents.parquet", "otlp/metrics/metrics-0001.jsonl", "otlp/traces/traces-0001.jsonl",
        "rejected.jsonl", "topology.json"]
    assert not any(p.is_symlink() for p in out.rglob("*"))
    assert (out / "otlp/traces/traces-0001.jsonl").read_bytes() == (export / "traces/traces-0001.jsonl").read_bytes()
    meta = json.loads((out / "dataset.json").read_text())
    assert meta["source"] == "otlp-export" and meta["adapter"] == "otlp"
    assert meta["choices"]["otlp_files"] == "copied" and meta["choices"]["time_unit"] == "s"
    assert meta["counts"] == {"otlp_files": 2, "otlp_bytes": len(METRICS_LINE) + 1 + 2 * (len(SPANS_LINE) + 1),
                              "files_skipped": 1, "incidents": 1, "incidents_without_root_cause": 0,
                              "fault_types": {"cpu_hog": 1}, "topology_edges": 1}
    assert meta["skipped"][0]["path"].endswith("README.txt")
    t = pq.read_table(out / "incidents.parquet")
    assert t.schema.field("start_time").type == pa.timestamp("ns", tz="UTC")
    assert t.column_names[:6] == ["incident_id", "start_time", "end_time", "root_cause_service",
                                  "root_cause_indicator", "fault_type"]
    assert t.column("start_time").cast(pa.int64()).to_pylist() == [T0 * NS]
    assert json.loads((out / "topology.json").read_text()) == {"edges": [{"caller": "front", "callee": "cart"}]}

    # the ingest reads the imported folder: every record through
    from otlp_aiops.otlp.ingest import ingest_paths

    rep = ingest_paths([out / "otlp"], tmp_path / "interim", workers=1)
    assert rep["totals"]["records_read"] == rep["totals"]["records_written"] == 3

    # a second import replaces its own output
    s2 = import_dataset("otlp", export, out, incidents=write(tmp_path / "inc2.csv", "start,service\n"))
    assert s2.incidents == 0 and pq.read_table(out / "incidents.parquet").num_rows == 0


def test_import_symlinks_when_asked(tmp_path: Path, export: Path) -> None:
    inc = write(tmp_path / "inc.csv", f"start,service\n{T0},cart\n")
    out = tmp_path / "raw"
    import_dataset("otlp", export, out, incidents=inc, link="symlink")
    link = out / "otlp/metrics/metrics-0001.jsonl"
    assert link.is_symlink() and link.resolve() == (export / "metrics/metrics-0001.jsonl").resolve()
    assert json.loads((out / "dataset.json").read_text())["choices"]["otlp_files"].startswith("symlinked")


def test_import_refusals(tmp_path: Path, export: Path) -> None:
    inc = write(tmp_path / "inc.csv", f"start,service\n{T0},cart\n")
    before = digest(export)
    with pytest.raises(AdapterError, match="needs --incidents"):
        import_dataset("otlp", export, tmp_path / "o1")
    with pytest.raises(AdapterError, match=r"overlap|inside|contains"):
        import_dataset("otlp", export, export / "raw", incidents=inc)
    with pytest.raises(AdapterError, match=r"overlap|inside|contains"):
        import_dataset("otlp", export / "traces", export, incidents=inc)
    assert digest(export) == before
    hand = tmp_path / "hand"
    write(hand / "mine.txt", "keep me")
    with pytest.raises(AdapterError, match="refusing to replace it"):
        import_dataset("otlp", export, hand, incidents=inc)
    assert (hand / "mine.txt").read_text() == "keep me"
    empty = tmp_path / "empty-export"
    write(empty / "notes.txt", "no telemetry here")
    with pytest.raises(AdapterError, match="no OTLP files found"):
        import_dataset("otlp", empty, tmp_path / "o2", incidents=inc)
    bad = write(tmp_path / "bad.csv", "start,service\nnever,cart\n")
    with pytest.raises(IncidentError, match=r"bad\.csv:2"):
        import_dataset("otlp", export, tmp_path / "o3", incidents=bad)
    assert not (tmp_path / "o3").exists() and not list(tmp_path.glob(".o3*"))


def test_cli_import_otlp(tmp_path: Path, export: Path) -> None:
    from otlp_aiops.cli import app

    inc = write(tmp_path / "inc.csv", f"start,service\n{T0 * 1000},cart\n")
    out = tmp_path / "raw"
    r = CliRunner().invoke(app, ["datasets", "import", "otlp", "--from", str(export), "--incidents", str(inc),
                                 "--out", str(out), "--time-unit", "ms"])
    assert r.exit_code == 0, r.output
    assert "raw: 1 incidents" in r.output
    assert json.loads((out / "dataset.json").read_text())["choices"]["time_unit_stated"] is True
    bad = write(tmp_path / "bad.csv", "start,service\n2026-02-30T00:00:00Z,cart\n")
    r = CliRunner().invoke(app, ["datasets", "import", "otlp", "--from", str(export), "--incidents", str(bad),
                                 "--out", str(tmp_path / "o")])
    assert r.exit_code == 2
    assert f"{bad}:2: column 'start': value '2026-02-30T00:00:00Z'" in r.output
    assert "Traceback" not in r.output


# --------------------------------------------------------------------------------------------------
# the raw stage: local datasets, unknown names
# --------------------------------------------------------------------------------------------------


def run_raw(cwd: Path, name: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO / "pipelines" / "raw.py"), name], cwd=cwd,
                          capture_output=True, text=True, timeout=120)


def test_raw_stage_local_dataset_and_unknown_name(tmp_path: Path, export: Path) -> None:
    write(tmp_path / "inc.csv", f"start,service\n{T0},cart\n")
    write(tmp_path / "params.yaml", "datasets: [mine, ghost]\nlocal:\n"
                                    "  mine: {from: export, incidents: inc.csv}\n  typo: {from: export, incident: x}\n")
    hand = write(tmp_path / "data/raw/ghost/spans.json", "hand-made")
    r = run_raw(tmp_path, "ghost")
    assert r.returncode == 2
    assert "unknown dataset 'ghost'" in r.stderr
    assert "local:\n    ghost: {from: path/to/export, incidents: path/to/incidents.csv}" in r.stderr
    assert "they are kept" in r.stderr and hand.read_text() == "hand-made"

    before = digest(export)
    r = run_raw(tmp_path, "mine")
    assert r.returncode == 0, r.stderr
    assert digest(export) == before
    assert json.loads((tmp_path / "metrics/raw/mine.json").read_text()) == {
        "dataset": "mine", "source": "local", "otlp_files": 2, "otlp_bytes": len(METRICS_LINE) + 1 + 2 * (len(SPANS_LINE) + 1),
        "files_skipped": 1, "incidents": 1, "incidents_without_root_cause": 0, "topology_edges": 0}
    assert (tmp_path / "data/raw/mine/otlp/traces/traces-0001.jsonl").exists()

    r = run_raw(tmp_path, "typo")
    assert r.returncode != 0 and "local.typo: unknown key(s) incident" in r.stderr


def test_dvc_raw_output_is_persistent() -> None:
    import yaml

    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    raw = stages["raw"]["do"]
    assert raw["outs"] == [{"data/raw/${item}": {"persist": True}}]
    assert "local" in raw["params"] and "metrics/local" in raw["deps"]
    local = stages["local"]
    assert local["foreach"] == "${local}"
    assert local["do"]["deps"] == ["${item.from}", "${item.incidents}"]  # the export: a dependency ...
    assert local["do"]["outs"] == [{"metrics/local/${key}.json": {"cache": False}}]  # ... never an output
    assert (REPO / "metrics" / "local").is_dir()  # exists in a fresh clone: `raw` depends on it
    assert "local" in yaml.safe_load((REPO / "params.yaml").read_text())


def test_fingerprint_changes_with_the_content_only(tmp_path: Path, export: Path) -> None:
    write(tmp_path / "inc.csv", f"start,service\n{T0},cart\n")
    write(tmp_path / "params.yaml", "local:\n  mine: {from: export, incidents: inc.csv}\n")

    def fingerprint() -> dict:
        r = subprocess.run([sys.executable, str(REPO / "pipelines" / "raw.py"), "mine", "--fingerprint"],
                           cwd=tmp_path, capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        return json.loads((tmp_path / "metrics/local/mine.json").read_text())

    first = fingerprint()
    assert first["dataset"] == "mine" and first["files"] == 4  # 3 export files + the incident list
    os.utime(export / "README.txt", (0, 0))
    assert fingerprint() == first  # a touched file: same content, same fingerprint
    write(tmp_path / "inc.csv", f"start,service\n{T0},cart\n{T0 + 60},front\n")
    assert fingerprint()["sha256"] != first["sha256"]


# --------------------------------------------------------------------------------------------------
# progress
# --------------------------------------------------------------------------------------------------


def test_progress_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.delenv("OTLP_AIOPS_PROGRESS", raising=False)
    monkeypatch.setattr(sys, "stderr", Tty())
    assert progress.mode() == "bar"
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    assert progress.mode() == "log"
    monkeypatch.setenv("OTLP_AIOPS_PROGRESS", "off")
    assert progress.mode() == "off"


def test_progress_log_lines_with_eta() -> None:
    out = io.StringIO()
    t = progress.Task("rca ds m", total=4, unit="cases", mode_="log", interval=60, first_after=0, stream=out)
    t.t0 -= 30  # 30 s in
    t.advance(1, note="case-1")
    assert t.line() == "rca ds m: 1/4 cases (25 %), 0:30 elapsed, ETA 1:30 [case-1]"
    t.set_total(None)
    assert t.line() == "rca ds m: 1 cases, 0:30 elapsed [case-1]"
    assert t.line(final=True) == "rca ds m: done, 1 cases in 0:30"
    u = progress.Task("import x", mode_="log", stream=out)
    u.t0 -= 75
    assert (u.line(), u.line(final=True)) == ("import x: 1:15 elapsed", "import x: done in 1:15")
    b = progress.Task("ingest", total=3 << 20, as_bytes=True, mode_="log", stream=out)
    b.advance(1 << 20)
    assert b.line().startswith("ingest: 1.0 MB/3.0 MB (33 %), 0:00 elapsed")
    assert progress.fmt_seconds(3725) == "1:02:05"


def test_progress_heartbeat_prints_without_advances() -> None:
    import time

    out = io.StringIO()
    with progress.task("slow step", total=2, mode_="log", interval=0.1, first_after=0.05, stream=out) as t:
        time.sleep(0.5)  # no advance: the heartbeat still reports
        t.advance(2)
    lines = out.getvalue().splitlines()
    assert len(lines) >= 3
    assert lines[0].startswith("slow step: 0/2 items (0 %)")
    assert lines[-1].startswith("slow step: done, 2 items in 0:0")


def test_progress_current_task_and_noop() -> None:
    progress.advance(5)  # no task open: nothing happens
    out = io.StringIO()
    with progress.task("outer", total=10, mode_="off", stream=out) as outer:
        with progress.task("inner", total=3, mode_="off", stream=out) as inner:
            progress.advance(2)
            assert progress.current() is inner
        progress.advance(1)
        assert progress.current() is outer
    assert (inner.done, outer.done) == (2, 1)
    assert progress.current() is None and out.getvalue() == ""


def test_progress_bar_mode_renders() -> None:
    out = io.StringIO()
    with progress.task("features ds", total=8, unit="steps", mode_="bar", stream=out) as t:
        for _ in range(8):
            t.advance(1, note="step")
    assert "features ds" in out.getvalue() and "8/8 steps" in out.getvalue()


def test_ingest_reports_progress(tmp_path: Path, export: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    from otlp_aiops.otlp.ingest import IngestFatalError, ingest_paths

    monkeypatch.setenv("OTLP_AIOPS_PROGRESS", "log")
    monkeypatch.setattr(progress, "FIRST_LINE_AFTER_S", 0.0)
    ingest_paths([export], tmp_path / "interim", workers=1)
    err = capsys.readouterr().err
    assert "ingest 2 file(s): done" in err
    for bad in ({"workers": 0}, {"workers": -2}, {"batch_rows": 0}):
        with pytest.raises(IngestFatalError, match="≥ 1"):
            ingest_paths([export], tmp_path / "interim2", **bad)


# --------------------------------------------------------------------------------------------------
# the CLI basics
# --------------------------------------------------------------------------------------------------


def test_cli_version_and_completion() -> None:
    from otlp_aiops import __version__
    from otlp_aiops.cli import app

    r = CliRunner().invoke(app, ["--version"])
    assert r.exit_code == 0 and r.output.strip() == f"otlp-aiops {__version__}"
    exe = Path(sys.executable).parent / "otlp-aiops"
    if not exe.exists():
        pytest.skip("the otlp-aiops console script is not installed next to this Python")
    r = subprocess.run([str(exe), "--show-completion", "bash"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "_OTLP_AIOPS_COMPLETE=complete_bash" in r.stdout
    assert r.stdout.rstrip().endswith("complete -o default -F _otlp_aiops_completion otlp-aiops")
    r = CliRunner().invoke(app, ["--help"])
    assert "--install-completion" in r.output


@pytest.mark.parametrize("args, opt", [
    (["ingest", "x", "--out", "y", "--workers", "0"], "--workers"),
    (["ingest", "x", "--out", "y", "--workers", "-1"], "--workers"),
    (["ingest", "x", "--out", "y", "--batch-rows", "-5"], "--batch-rows"),
    (["ingest", "x", "--out", "y", "--max-part-bytes", "0"], "--max-part-bytes"),
    (["simulate", "--out", "y", "--incidents", "-1"], "--incidents"),
])
def test_cli_rejects_zero_workers_and_negative_sizes(args: list[str], opt: str) -> None:
    from otlp_aiops.cli import app

    r = CliRunner().invoke(app, args)
    assert r.exit_code == 2 and opt in r.output


@pytest.mark.parametrize("cmd", [["simulate", "--out", "never"], ["features", "build", "--dataset", "x"]])
@pytest.mark.parametrize("item, why", [("a=[1,", "the value is not valid YAML"), ("novalue", "expected KEY=VALUE"),
                                       ("=3", "expected KEY=VALUE")])
def test_cli_malformed_set_is_one_line(cmd: list[str], item: str, why: str, tmp_path: Path) -> None:
    from otlp_aiops.cli import app

    r = CliRunner().invoke(app, [*cmd, "--set", item])
    assert r.exit_code == 2
    lines = [ln for ln in r.output.splitlines() if ln.strip()]
    assert lines == [lines[0]] and lines[0].startswith(f"error: --set {item!r}: {why}")
    assert not Path("never").exists()


def test_cli_rca_all_runs_the_params_methods(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from otlp_aiops.cli import app
    from otlp_aiops.stages import entry

    calls = []

    def stage_command(task, dataset, method, params_file, *, stage, track):  # the CLI calls it, no argv
        calls.append((task, [dataset, method]))
        assert stage.__name__ == f"{task}_stage"
        assert params_file == params and track is (task == "detect")
        return 1 if method == "bad" else 0

    monkeypatch.setattr(entry, "stage_command", stage_command)
    params = write(tmp_path / "p.yaml", "benchmark: {rca: [baro, bad, pagerank], detectors: [pca]}\n")
    r = CliRunner().invoke(app, ["rca", "ds", "--all", "--params", str(params), "--no-track"])
    assert calls == [("rca", ["ds", "baro"]), ("rca", ["ds", "bad"]), ("rca", ["ds", "pagerank"])]
    assert r.exit_code == 1 and "2 of 3 methods done; failed: bad" in r.output
    calls.clear()
    r = CliRunner().invoke(app, ["detect", "ds", "--all", "--params", str(params)])
    assert r.exit_code == 0 and calls == [("detect", ["ds", "pca"])]
    r = CliRunner().invoke(app, ["rca", "ds"])
    assert r.exit_code == 2 and "name one METHOD or pass --all" in r.output
    r = CliRunner().invoke(app, ["rca", "ds", "baro", "--all"])
    assert r.exit_code == 2


def test_cli_report_calls_the_stage(monkeypatch: pytest.MonkeyPatch) -> None:
    from otlp_aiops.cli import app
    from otlp_aiops.report import stage

    calls = []
    monkeypatch.setattr(stage, "main", lambda argv: calls.append(argv) or 0)
    r = CliRunner().invoke(app, ["report", "--params", "p.yaml", "--out", "o", "--datasets", "a,b"])
    assert r.exit_code == 0, r.output
    assert calls == [["--params", "p.yaml", "--out", "o", "--datasets", "a,b"]]
    monkeypatch.setattr(stage, "main", lambda argv: 1)
    assert CliRunner().invoke(app, ["report"]).exit_code == 1


# --------------------------------------------------------------------------------------------------
# the quick start
# --------------------------------------------------------------------------------------------------


def test_quickstart_refuses_a_foreign_folder(tmp_path: Path) -> None:
    from otlp_aiops.cli import app

    write(tmp_path / "mine" / "thesis.tex", "x")
    r = CliRunner().invoke(app, ["quickstart", str(tmp_path / "mine")])
    assert r.exit_code == 2 and "is not a quickstart folder" in r.output
    assert os.listdir(tmp_path / "mine") == ["thesis.tex"]


def test_quickstart_runs_the_whole_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    from otlp_aiops.quickstart import run_quickstart
    from otlp_aiops.stages.rca import run_rca

    monkeypatch.setenv("OTLP_AIOPS_PROGRESS", "log")
    monkeypatch.setattr(progress, "FIRST_LINE_AFTER_S", 0.0)  # every step reports when it ends
    lines: list[str] = []
    res = run_quickstart(tmp_path / "qs", echo=lines.append)
    err = capsys.readouterr().err
    assert "features quickstart: done, 8 steps" in err
    assert re.search(r"ingest \d+ file\(s\): done, [\d.]+ MB", err)
    assert "rca quickstart baro: done, 6 cases" in err
    assert res.cases == 6 and list(res.metrics) == ["random", "baro", "pagerank"]
    assert [ln.split("] ")[1].split(":")[0] for ln in lines] == ["simulate", "ingest", "features", "rca random",
                                                                  "rca baro", "rca pagerank"]
    table = res.table().splitlines()
    assert table[0] == "| method | AC@1 | AC@3 | Avg@5 | MRR |" and len(table) == 5
    # quality floor: BARO finds most simulated faults; random does not beat it
    assert res.metrics["baro"]["ac_at_1"] >= 0.5
    assert res.metrics["baro"]["mrr"] > res.metrics["random"]["mrr"]
    saved = json.loads((tmp_path / "qs" / "quickstart.json").read_text())
    assert saved["cases"] == 6 and set(saved["metrics"]) == {"random", "baro", "pagerank"}

    # stochastic rankers: every case once per seed
    params = {"benchmark": {"datasets": ["quickstart"], "rca": ["random"], "detectors": [], "seeds": [0, 1],
                            "detection_offsets": ["0s"], "supervised_train": {}, "transfer_from": None}}
    run_rca("quickstart", "random", params, root=tmp_path / "qs", track=False)
    assert "rca quickstart random: done, 12 cases" in capsys.readouterr().err
    from otlp_aiops.stages.detect import run_detect

    run_detect("quickstart", "pca", params, root=tmp_path / "qs", track=False)
    assert "detect quickstart pca: done, 1 seeds" in capsys.readouterr().err
    # an earlier quick start's folder is reused
    assert run_quickstart(tmp_path / "qs", methods=["baro"], echo=lambda _: None).metrics["baro"]["ac_at_1"] >= 0.5


def test_readme_opens_with_the_quickstart() -> None:
    head = (REPO / "README.md").read_text()[:1500]
    assert "otlp-aiops quickstart" in head
