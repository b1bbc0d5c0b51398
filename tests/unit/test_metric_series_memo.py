"""The metric path memoises ``series_id`` and the metric table per batch (``MetricBatch.point_series_id``,
``MetricBatch.add_info``, issue 17).

The memo must be invisible: the same tables as hashing every point afresh, from protobuf and from
OTLP/JSON, across batch boundaries, with typed attributes (an int 5 and a string "5" are different
streams) and reordered attributes (the same stream). Exact ids are checked against ``series_id``
on hand-built inputs, so the memo and the hash cannot be wrong together.
"""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2

from otlp_aiops.otlp import batches as B
from otlp_aiops.otlp.ingest import ingest_paths
from otlp_aiops.otlp.otlpjson import to_otlp_dict
from otlp_aiops.otlp.write import encode_frames
from wire_factories import kv as _kv

T0 = 1_700_000_000_000_000_000


def _request(service: str, t: int) -> metrics_service_pb2.ExportMetricsServiceRequest:
    req = metrics_service_pb2.ExportMetricsServiceRequest()
    rm = req.resource_metrics.add()
    rm.resource.attributes.append(_kv("service.name", service))
    sm = rm.scope_metrics.add()
    sm.scope.name = "lib"
    g = sm.metrics.add(name="queue.depth", unit="1")
    for attrs in ([("q", "a"), ("code", 5)], [("code", 5), ("q", "a")], [("q", "a"), ("code", "5")], []):
        p = g.gauge.data_points.add(time_unix_nano=t, as_int=7)
        p.attributes.extend(_kv(k, v) for k, v in attrs)
    s = sm.metrics.add(name="requests", unit="{request}")
    s.sum.aggregation_temporality = 2
    s.sum.is_monotonic = True
    for code in (200, 500, 200):
        p = s.sum.data_points.add(start_time_unix_nano=T0, time_unix_nano=t, as_double=1.5)
        p.attributes.append(_kv("http.status_code", code))
        e = p.exemplars.add(
            time_unix_nano=t, as_double=0.25, trace_id=bytes(range(1, 17)), span_id=bytes(range(1, 9))
        )
        e.filtered_attributes.append(_kv("user", "u1"))
    h = sm.metrics.add(name="latency", unit="ms")
    h.histogram.aggregation_temporality = 1
    p = h.histogram.data_points.add(
        time_unix_nano=t, count=3, sum=6.0, bucket_counts=[1, 2], explicit_bounds=[2.0]
    )
    p.attributes.append(_kv("route", "/cart"))
    x = sm.metrics.add(name="size", unit="By")
    x.exponential_histogram.aggregation_temporality = 2
    p = x.exponential_histogram.data_points.add(time_unix_nano=t, count=2, scale=1, zero_count=0)
    p.positive.offset = 1
    p.positive.bucket_counts.extend([1, 1])
    q = sm.metrics.add(name="gc", unit="s")
    q.metadata.append(_kv("source", "runtime"))  # an info with metadata is never shared
    p = q.summary.data_points.add(time_unix_nano=t, count=4, sum=2.0)
    p.quantile_values.add(quantile=0.5, value=0.4)
    return req


def _read_all(out: Path) -> dict[str, pa.Table]:
    return {
        d.name: pa.concat_tables(pq.read_table(f) for f in sorted(d.glob("*.parquet")))
        for d in sorted(out.iterdir())
        if d.is_dir() and d.name != "quarantine"
    }


def _inputs(tmp_path: Path) -> Path:
    src = tmp_path / "src"
    src.mkdir()
    reqs = [_request(svc, T0 + i * 10**9) for i in range(3) for svc in ("cart", "checkout")]
    (src / "metrics.binpb").write_bytes(
        b"".join(encode_frames([r.SerializeToString() for r in reqs], "length_prefixed"))
    )
    (src / "metrics.jsonl").write_text("".join(json.dumps(to_otlp_dict(r)) + "\n" for r in reqs))
    return src


def _plain(self, table, a0, resource_id, scope_id, info):  # the un-memoised original
    return B.series_id(resource_id, scope_id, info, self.attrs[table].rendered(a0))


def _plain_info(self, info):  # one metric-table entry per Metric message, as before
    self.infos.append(info)
    return len(self.infos) - 1


def test_memo_gives_the_tables_of_hashing_every_point(tmp_path, monkeypatch):
    src = _inputs(tmp_path)
    got = {}
    for name, batch_rows in (("memo", 32768), ("memo_small_batches", 5)):
        ingest_paths([src], tmp_path / name, workers=1, batch_rows=batch_rows)
        got[name] = _read_all(tmp_path / name)
    monkeypatch.setattr(B.MetricBatch, "point_series_id", _plain)
    monkeypatch.setattr(B.MetricBatch, "add_info", _plain_info)
    ingest_paths([src], tmp_path / "plain", workers=1)
    plain = _read_all(tmp_path / "plain")
    assert set(plain) >= {"metrics_number", "metrics_histogram", "metrics_exp_histogram", "metrics_summary",
                          "exemplars"}  # fmt: skip
    for name, tables in got.items():
        assert tables.keys() == plain.keys()
        for t in plain:
            assert tables[t].equals(plain[t]), (name, t)


def test_series_ids_exact(tmp_path):
    src = _inputs(tmp_path)
    ingest_paths([src], tmp_path / "out", workers=1)
    num = pq.read_table(tmp_path / "out" / "metrics_number").to_pylist()
    res = {
        r["service_name"]: r["resource_id"] for r in pq.read_table(tmp_path / "out" / "resources").to_pylist()
    }
    scope_id = pq.read_table(tmp_path / "out" / "scopes").column("scope_id")[0].as_py()
    gauge = B.MetricInfo("queue.depth", None, "1", "gauge", None, None, [])
    want_int5 = B.series_id(res["cart"], scope_id, gauge, [("q", "string", "a"), ("code", "int", "5")])
    want_str5 = B.series_id(res["cart"], scope_id, gauge, [("q", "string", "a"), ("code", "string", "5")])
    want_none = B.series_id(res["cart"], scope_id, gauge, [])
    assert len({want_int5, want_str5, want_none}) == 3
    cart = [
        r
        for r in num
        if r["service_name"] == "cart"
        and r["metric_name"] == "queue.depth"
        and r["_source_file"].endswith(".binpb")
    ]
    assert len(cart) == 12  # 4 points x 3 requests
    # per request: int 5, the same attributes reordered (same stream), string "5", none
    assert [r["series_id"] for r in cart[:4]] == [want_int5, want_int5, want_str5, want_none]
    assert [r["series_id"] for r in cart] == [r["series_id"] for r in cart[:4]] * 3
    # the same points from protobuf and from JSON: the same ids
    by_file: dict[str, list[int]] = {}
    for r in num:
        by_file.setdefault(Path(r["_source_file"]).suffix, []).append(r["series_id"])
    assert by_file[".binpb"] == by_file[".jsonl"]
    sums = B.MetricInfo("requests", None, "{request}", "sum", 2, True, [])
    ok, err = (
        B.series_id(res["checkout"], scope_id, sums, [("http.status_code", "int", str(c))])
        for c in (200, 500)
    )
    ex = [
        r
        for r in pq.read_table(tmp_path / "out" / "exemplars").to_pylist()
        if r["service_name"] == "checkout"
    ]
    assert [r["series_id"] for r in ex[:3]] == [ok, err, ok]
