"""The C metric decoder (``_wire_metrics``) and the pure-Python one must write byte-identical Parquet
tables, the same report and the same quarantine, on the simulator's metrics and on hand-built edge
cases: every point kind, exemplars, missing and repeated fields, int and double values, flags, NaN,
unknown fields, packed and unpacked repeated fields, and broken blocks (which the C decoder hands
back to the Python one whole). Exact values are checked too, so the pair cannot be wrong together,
and the clean blocks are checked to really take the C path."""

from __future__ import annotations

import hashlib
import json
import math
import os
import random
import struct
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2

from otlp_aiops.otlp import accel
from otlp_aiops.otlp.context import FileContext
from otlp_aiops.otlp.decode_proto import decode_message
from otlp_aiops.otlp.framing import split_fields
from otlp_aiops.otlp.ingest import _new_batches, ingest_paths
from otlp_aiops.otlp.write import encode_frames
from wire_factories import key as _key
from wire_factories import kv as _kv
from wire_factories import ld as _ld
from wire_factories import varint as _varint

pytestmark = pytest.mark.skipif(accel.wire_metrics is None, reason="the C metric decoder is not built")

ROOT = Path(__file__).resolve().parents[2]
SIM = ROOT / "data" / "raw" / "sim-boutique" / "otlp" / "metrics-00001.binpb"
T0 = 1_700_000_000_000_000_000
TID = bytes(range(1, 17))
SID = bytes(range(1, 9))


def _f64(field: int, v: float | int, fmt: str = "<d") -> bytes:
    return _key(field, 1) + struct.pack(fmt, v)


def _request(service: str = "cart") -> metrics_service_pb2.ExportMetricsServiceRequest:
    """A clean request with every point kind and the unusual-but-valid values."""
    req = metrics_service_pb2.ExportMetricsServiceRequest()
    rm = req.resource_metrics.add(schema_url="https://opentelemetry.io/schemas/1.26.0")
    rm.resource.attributes.extend([_kv("service.name", service), _kv("host.name", "h1")])
    sm = rm.scope_metrics.add(schema_url="https://s/1")
    sm.scope.name, sm.scope.version = "lib", "1.0"
    g = sm.metrics.add(name="queue.depth", unit="1", description="items waiting")
    for i, attrs in enumerate(
        ([("q", "a"), ("code", 5)], [("code", 5), ("q", "a")], [("q", "a"), ("code", "5")], [])
    ):
        p = g.gauge.data_points.add(time_unix_nano=T0 + i, as_int=-(2**63) if i == 0 else 7 + i)
        p.attributes.extend(_kv(k, v) for k, v in attrs)
    g.gauge.data_points.add(time_unix_nano=T0, as_double=float("nan"), flags=1)  # NaN, no recorded value
    g.gauge.data_points.add(time_unix_nano=T0, as_double=-0.0, flags=0xFFFFFFFF)
    g.gauge.data_points.add()  # no value, no time: all defaults
    g.gauge.data_points.add(as_int=2**53 + 1).attributes.extend(
        [_kv("d", 1e16), _kv("b", True), _kv("raw", b"\x00\xff"), _kv("arr", ["x", "y"]), _kv("none", None)]
    )
    s = sm.metrics.add(name="requests", unit="{request}")
    s.sum.aggregation_temporality = 2
    s.sum.is_monotonic = True
    for code in (200, 500, 200):
        p = s.sum.data_points.add(start_time_unix_nano=T0, time_unix_nano=T0 + 10, as_double=1.5)
        p.attributes.append(_kv("http.status_code", code))
        e = p.exemplars.add(time_unix_nano=T0 + 5, as_double=0.25, trace_id=TID, span_id=SID)
        e.filtered_attributes.append(_kv("user", "u1"))
        p.exemplars.add(time_unix_nano=T0 + 6, as_int=3)  # no ids
        p.exemplars.add(trace_id=bytes(16), span_id=bytes(8))  # zero ids, no value
    s2 = sm.metrics.add(name="up_down")
    s2.sum.aggregation_temporality = 1
    s2.sum.data_points.add(as_int=-4)
    h = sm.metrics.add(name="latency", unit="ms")
    h.histogram.aggregation_temporality = 1
    p = h.histogram.data_points.add(
        time_unix_nano=T0, count=3, sum=6.0, min=0.5, max=4.0, bucket_counts=[1, 2], explicit_bounds=[2.0]
    )
    p.attributes.append(_kv("route", "/cart"))
    p.exemplars.add(time_unix_nano=T0, as_double=1.0, trace_id=TID, span_id=SID)
    h.histogram.data_points.add(count=0)  # no buckets, no sum
    h.histogram.data_points.add(count=5, bucket_counts=[1, 1, 3], explicit_bounds=[-math.inf, math.inf])
    x = sm.metrics.add(name="size", unit="By")
    x.exponential_histogram.aggregation_temporality = 2
    p = x.exponential_histogram.data_points.add(
        time_unix_nano=T0, count=4, sum=9.5, scale=-3, zero_count=1, zero_threshold=1e-9, min=0.0, max=7.0
    )
    p.positive.offset = -2
    p.positive.bucket_counts.extend([1, 2**40])
    p.negative.offset = 5
    p.negative.bucket_counts.extend([0])
    p.exemplars.add(as_int=9)
    x.exponential_histogram.data_points.add(count=0, scale=20)  # no buckets at all
    q = sm.metrics.add(name="gc", unit="s")
    q.metadata.extend([_kv("source", "runtime"), _kv("n", 3)])  # an info with metadata
    p = q.summary.data_points.add(time_unix_nano=T0, count=4, sum=2.0)
    p.quantile_values.add(quantile=0.5, value=0.4)
    p.quantile_values.add(quantile=1.0, value=float("nan"))
    q.summary.data_points.add(count=1)
    sm.metrics.add(name="empty_gauge").gauge.SetInParent()  # a metric with no points
    rm.scope_metrics.add()  # an empty scope (no scope message at all)
    req.resource_metrics.add()  # a resource block without scopes
    return req


def _wire_cases() -> list[bytes]:
    """ResourceMetrics blocks built at the wire level. The first ones are clean (the C decoder takes
    them); from BROKEN on, each breaks a rule or needs merging (the Python decoder takes them)."""
    res = _ld(1, _ld(1, _ld(1, b"service.name") + _ld(2, _ld(1, b"wire"))))
    scope = _ld(1, _ld(1, b"w"))

    def block(*metrics: bytes, extra: bytes = b"") -> bytes:
        return res + _ld(2, scope + b"".join(_ld(2, m) for m in metrics)) + extra

    attr = _ld(1, b"k") + _ld(2, _ld(1, b"v"))
    num = _f64(3, T0, "<Q") + _f64(6, -5, "<q") + _ld(7, attr)
    hist_unpacked = (
        _f64(4, 3, "<Q")
        + _f64(6, 1, "<Q")
        + _f64(6, 2, "<Q")
        + _f64(7, 0.5)
        + _key(10, 0)
        + _varint(2**32 + 1)
    )  # unpacked bucket counts and bounds; flags beyond uint32 keep their low 32 bits
    hist_mixed = (
        _f64(4, 4, "<Q")
        + _ld(6, struct.pack("<QQ", 1, 2))
        + _f64(6, 1, "<Q")
        + _ld(7, struct.pack("<dd", 1, 2))
    )
    exp_unpacked = _f64(4, 2, "<Q") + _ld(
        8, _key(1, 0) + _varint(3) + _key(2, 0) + _varint(1) + _ld(2, _varint(1))
    )
    unknowns = (
        num + _key(99, 0) + _varint(1) + _ld(98, b"zz") + _key(4, 0) + _varint(7)
    )  # as_double as a varint
    merged_attr_value = _ld(7, _ld(1, b"m") + _ld(2, _ld(1, b"first")) + _ld(2, _key(3, 0) + _varint(5)))
    clean = [
        block(_ld(1, b"wire.num") + _ld(5, _ld(1, num) + _ld(1, unknowns) + _key(7, 0) + _varint(1))),
        block(
            _ld(1, b"wire.hist")
            + _ld(9, _ld(1, hist_unpacked) + _ld(1, hist_mixed) + _key(2, 0) + _varint(2))
        ),
        block(_ld(1, b"wire.exp") + _ld(10, _ld(1, exp_unpacked)) + _key(15, 5) + b"\0\0\0\0"),
        block(_ld(1, b"wire.merged") + _ld(5, _ld(1, merged_attr_value))),
        block(
            _ld(1, b"wire.name.twice") + _ld(1, b"wire.last") + _ld(5, _ld(1, num)),
            extra=_key(9, 0) + _varint(1),
        ),
    ]
    ok_hist = _f64(4, 1, "<Q") + _f64(6, 1, "<Q")
    broken = [
        block(_ld(1, b"no data")),  # a metric without data: set aside
        block(_ld(1, b"\xff\xfe") + _ld(5, _ld(1, num))),  # invalid UTF-8 name
        block(_ld(1, b"bad.hist") + _ld(9, _ld(1, _f64(4, 9, "<Q") + _f64(6, 1, "<Q")) + _ld(1, ok_hist))),
        block(
            _ld(1, b"nan.bound")
            + _ld(9, _ld(1, _f64(4, 2, "<Q") + _ld(6, struct.pack("<QQ", 1, 1)) + _f64(7, math.nan)))
        ),
        block(_ld(1, b"temporality") + _ld(7, _ld(1, num) + _key(2, 0) + _varint(7))),
        block(_ld(1, b"late") + _ld(5, _ld(1, _f64(3, 2**63 + 1, "<Q")))),  # beyond 2262
        block(
            _ld(1, b"ex.id") + _ld(5, _ld(1, num + _ld(5, _ld(5, b"\x01\x02"))))
        ),  # exemplar trace_id of 2 bytes
        block(_ld(1, b"two.data") + _ld(5, _ld(1, num)) + _ld(5, _ld(1, num))),  # gauge given twice: merges
        block(_ld(1, b"gauge.then.sum") + _ld(5, _ld(1, num)) + _ld(7, _ld(1, num))),
        block(
            _ld(1, b"two.pos") + _ld(10, _ld(1, _ld(8, _key(1, 0) + _varint(2)) + _ld(8, _ld(2, _varint(1)))))
        ),
        block(_ld(1, b"cut") + _ld(5, _ld(1, num[:-3]))),  # malformed inside a point
        block(
            _ld(1, b"packed.cut") + _ld(9, _ld(1, _ld(6, b"\x01\x02\x03")))
        ),  # packed fixed64 not 8-aligned
        block(_ld(1, b"bad.attr.utf8") + _ld(5, _ld(1, _ld(7, _ld(1, b"k") + _ld(2, _ld(1, b"\xc3")))))),
        block(_ld(1, b"ok") + _ld(5, _ld(1, num)), extra=_ld(1, _ld(1, b""))),  # the resource given twice
        _ld(1, b"\x0a\x05abc"),  # a broken resource
        block(_ld(1, b"tail") + _ld(5, _ld(1, num))) + b"\x0a\xff",  # a malformed tail in the block
        block(
            _ld(1, b"md") + _ld(5, b"") + _ld(12, _ld(1, b"k") + _ld(2, _ld(1, b"\xff")))
        ),  # no points, bad metadata
    ]
    return clean + broken


N_CLEAN = 5


def _payload(blocks: list[bytes]) -> bytes:
    return b"".join(_ld(1, b) for b in blocks)


def _read_all(out: Path) -> tuple[dict[str, pa.Table], dict[str, str]]:
    tables, digests = {}, {}
    for d in sorted(p for p in out.iterdir() if p.is_dir() and p.name != "quarantine"):
        files = sorted(d.glob("*.parquet"))
        tables[d.name] = pa.concat_tables(pq.read_table(f) for f in files)
        for f in files:
            digests[f"{d.name}/{f.name}"] = hashlib.sha256(f.read_bytes()).hexdigest()
    return tables, digests


class _Counting:
    """accel.wire_metrics, counting the blocks it decodes and hands back, and the requests it
    declines (their top level is not well-formed: they go block by block)."""

    def __init__(self, wm) -> None:
        self.wm, self.ok, self.handed_back, self.declined = wm, 0, 0, 0

    def decode_block(self, *args):
        r = self.wm.decode_block(*args)
        if r is None:
            self.handed_back += 1
        else:
            self.ok += 1
        return r

    def decode_request(self, payload, rec, state, unknown, python_block):
        back = []

        def counted(ri, chunk, rec):
            back.append(ri)
            return python_block(ri, chunk, rec)

        r = self.wm.decode_request(payload, rec, state, unknown, counted)
        if r is None:
            self.declined += 1
        else:
            self.handed_back += len(back)
            self.ok += sum(1 for _ in split_fields(payload)) - len(back)
        return r


def _ingest_both(tmp_path: Path, files: dict[str, bytes], monkeypatch) -> tuple[dict, dict, _Counting]:
    src = tmp_path / "src"
    src.mkdir()
    for name, data in files.items():
        (src / name).write_bytes(data)
    counting = _Counting(accel.wire_metrics)
    results = []
    for impl, wm in (("c", counting), ("python", None)):
        monkeypatch.setattr(accel, "wire_metrics", wm)
        out = tmp_path / impl
        report = ingest_paths([src], out, workers=1)
        report.pop("output")
        quarantine = [
            json.loads(line)
            for f in sorted(out.glob("quarantine/*.jsonl"))
            for line in f.read_text().splitlines()
        ]
        results.append((report, *_read_all(out), quarantine))
    (rc, tc, dc, qc), (rp, tp, dp, qp) = results
    assert rc == rp
    assert tc.keys() == tp.keys()
    for name in tc:  # (Table.equals takes NaN for unequal to itself)
        assert repr(_rows(tc[name])) == repr(_rows(tp[name])), name
    assert dc == dp  # every Parquet file byte for byte
    assert qc == qp  # every quarantine entry comes from the Python decoder, reason included
    return rc, tc, counting


def _rows(t: pa.Table) -> list[dict]:
    cols = {
        n: (c.cast(pa.int64()) if pa.types.is_timestamp(c.type) else c)
        for n, c in zip(t.column_names, t.columns, strict=True)
    }
    return pa.table(cols).to_pylist()


@pytest.mark.skipif(not SIM.exists(), reason="the simulator's metrics file is not there (dvc pull)")
def test_simulator_metrics_are_byte_identical(tmp_path, monkeypatch):
    report, _tables, counting = _ingest_both(tmp_path, {SIM.name: SIM.read_bytes()}, monkeypatch)
    assert counting.handed_back == 0 and counting.ok > 1000
    totals = report["totals"]
    assert totals["records_quarantined"] == 0
    assert (
        totals["records_written"]
        == totals["rows_written"]["metrics_number"] + totals["rows_written"]["metrics_histogram"]
    )


def test_hand_built_requests_parity_and_values(tmp_path, monkeypatch):
    files = {
        "metrics-clean.binpb": b"".join(
            encode_frames(
                [_request("cart").SerializeToString(), _request("checkout").SerializeToString()],
                "length_prefixed",
            )
        ),
        "metrics-wire.binpb": b"".join(encode_frames([_payload(_wire_cases())], "length_prefixed")),
        # a top level that is not only well-formed blocks: an unknown field, a cut tail
        "metrics-top.binpb": b"".join(
            encode_frames(
                [_payload(_wire_cases()[:2]) + _key(5, 0) + _varint(1) + _ld(1, _wire_cases()[2])[:-4]],
                "length_prefixed",
            )
        ),
    }
    report, tables, counting = _ingest_both(tmp_path, files, monkeypatch)
    n_wire = len(_wire_cases())
    assert counting.ok == 2 * 2 + N_CLEAN + 2  # each request: a full block and one without scopes
    assert counting.handed_back == n_wire - N_CLEAN
    assert counting.declined == 1
    by_file = {Path(f["path"]).name: f for f in report["files"]}
    top = by_file["metrics-top.binpb"]
    assert (top["records_read"], top["quarantined_by_reason"], top["unknown_fields"]) == (
        4, {"truncated_message": 1}, {"MetricsData.#5": 1, "Gauge.#7": 1, "NumberDataPoint.#4": 1,
                                      "NumberDataPoint.#98": 1, "NumberDataPoint.#99": 1},
    )  # fmt: skip
    by_file = {Path(f["path"]).name: f for f in report["files"]}
    wire = by_file["metrics-wire.binpb"]
    assert wire["quarantined_by_reason"] == {
        "bad_histogram": 2, "invalid_protobuf": 7, "invalid_structure": 1, "timestamp_out_of_range": 1,
        "invalid_id": 1, "unknown_enum": 1,
    }  # fmt: skip
    assert wire["unknown_fields"] == {
        "Gauge.#7": 1, "Metric.#15": 1, "NumberDataPoint.#4": 1, "NumberDataPoint.#98": 1, "NumberDataPoint.#99": 1,
        "ResourceMetrics.#9": 1,
    }  # fmt: skip
    clean = by_file["metrics-clean.binpb"]
    assert (clean["records_read"], clean["records_quarantined"]) == (2 * 19, 0)
    num = [r for r in _rows(tables["metrics_number"]) if r["_source_file"].endswith("clean.binpb")]
    cart = [r for r in num if r["service_name"] == "cart"]
    q = [r for r in cart if r["metric_name"] == "queue.depth"]
    assert [(r["value_double"], r["value_int"]) for r in q[:4]] == [
        (float(-(2**63)), -(2**63)), (8.0, 8), (9.0, 9), (10.0, 10),
    ]  # fmt: skip
    assert q[0]["series_id"] == q[1]["series_id"] != q[2]["series_id"]  # reordered: same; "5" vs 5: not
    assert math.isnan(q[4]["value_double"]) and q[4]["value_int"] is None and q[4]["no_recorded_value"]
    assert (q[5]["value_double"], q[5]["flags"], q[5]["no_recorded_value"]) == (-0.0, 0xFFFFFFFF, True)
    assert math.copysign(1, q[5]["value_double"]) == -1
    assert (q[6]["value_double"], q[6]["value_int"], q[6]["time"], q[6]["flags"]) == (None, None, None, 0)
    assert (q[7]["value_double"], q[7]["value_int"]) == (float(2**53 + 1), 2**53 + 1)
    assert dict(q[7]["attributes"]) == {
        "d": "1e+16",
        "b": "true",
        "raw": "AP8=",
        "arr": '["x","y"]',
        "none": None,
    }
    assert q[0]["metric_description"] == "items waiting"
    reqs = [r for r in cart if r["metric_name"] == "requests"]
    assert [(r["aggregation_temporality"], r["is_monotonic"], r["exemplar_count"]) for r in reqs] == [
        (2, True, 3)
    ] * 3
    ex = [
        r for r in _rows(tables["exemplars"]) if r["service_name"] == "cart" and r["point_table"] == "number"
    ]
    assert [(r["value_double"], r["value_int"], r["trace_id"], r["span_id"], r["exemplar_index"]) for r in ex[:3]] == [
        (0.25, None, TID, SID, 0), (3.0, 3, None, None, 1), (None, None, None, None, 2),
    ]  # fmt: skip
    assert ex[0]["series_id"] == reqs[0]["series_id"] and ex[0]["filtered_attributes"] == [("user", "u1")]
    hist = [r for r in _rows(tables["metrics_histogram"]) if r["service_name"] == "cart"]
    assert [(r["count"], r["sum"], r["min"], r["max"], r["bucket_counts"], r["explicit_bounds"]) for r in hist] == [
        (3, 6.0, 0.5, 4.0, [1, 2], [2.0]), (0, None, None, None, [], []),
        (5, None, None, None, [1, 1, 3], [-math.inf, math.inf]),
    ]  # fmt: skip
    exp = [r for r in _rows(tables["metrics_exp_histogram"]) if r["service_name"] == "cart"]
    e0 = exp[0]
    assert (e0["count"], e0["sum"], e0["scale"], e0["zero_count"], e0["zero_threshold"], e0["min"], e0["max"]) == (
        4, 9.5, -3, 1, 1e-9, 0.0, 7.0,
    )  # fmt: skip
    assert (e0["positive_offset"], e0["positive_bucket_counts"], e0["negative_offset"], e0["negative_bucket_counts"]) == (
        -2, [1, 2**40], 5, [0],
    )  # fmt: skip
    assert (exp[1]["scale"], exp[1]["positive_bucket_counts"], exp[1]["sum"]) == (20, [], None)
    summ = [r for r in _rows(tables["metrics_summary"]) if r["service_name"] == "cart"]
    assert (summ[0]["count"], summ[0]["sum"], summ[0]["quantiles"]) == (4, 2.0, [0.5, 1.0])
    assert summ[0]["quantile_values"][0] == 0.4 and math.isnan(summ[0]["quantile_values"][1])
    assert dict(summ[0]["metric_metadata"]) == {"source": "runtime", "n": "3"}
    assert (summ[1]["count"], summ[1]["sum"], summ[1]["quantiles"]) == (1, 0.0, [])
    wnum = [r for r in _rows(tables["metrics_number"]) if r["_source_file"].endswith("wire.binpb")]
    w = {r["metric_name"]: r for r in wnum}
    assert (w["wire.num"]["value_int"], w["wire.num"]["attributes"]) == (-5, [("k", "v")])
    assert w["wire.merged"]["attributes"] == [("m", "5")]  # AnyValue occurrences merge: the later wins
    assert "wire.last" in w and "wire.name.twice" not in w
    wh = [
        r
        for r in _rows(tables["metrics_histogram"])
        if r["metric_name"] == "wire.hist" and r["_source_file"].endswith("wire.binpb")
    ]
    assert [(r["bucket_counts"], r["explicit_bounds"], r["flags"]) for r in wh] == [
        ([1, 2], [0.5], 1), ([1, 2, 1], [1.0, 2.0], 0),
    ]  # fmt: skip
    we = [r for r in _rows(tables["metrics_exp_histogram"]) if r["metric_name"] == "wire.exp"]
    assert (we[0]["positive_offset"], we[0]["positive_bucket_counts"]) == (-2, [1, 1])


def test_small_batches_and_memos_across_them(tmp_path, monkeypatch):
    """Batches of a few rows: the C decoder's memos are per batch, like the Python ones."""
    src = tmp_path / "src"
    src.mkdir()
    reqs = [_request(svc).SerializeToString() for svc in ("cart", "checkout", "cart")]
    (src / "metrics.binpb").write_bytes(b"".join(encode_frames(reqs, "length_prefixed")))
    got = []
    for wm in (accel.wire_metrics, None):
        monkeypatch.setattr(accel, "wire_metrics", wm)
        out = tmp_path / ("c" if wm else "py")
        ingest_paths([src], out, workers=1, batch_rows=3)
        got.append(_read_all(out)[1])
    assert got[0] == got[1] and len(got[0]) > 10


# --------------------------------------------------------------------------------------------------
# mutation fuzzing: the decoder's state after each mutated message, C against Python
# --------------------------------------------------------------------------------------------------

CASES = int(os.environ.get("OTLP_AIOPS_FUZZ_CASES", "600"))
SEED = int(os.environ.get("OTLP_AIOPS_FUZZ_SEED", "0"))


def _state(fc: FileContext, b) -> tuple:
    """Everything the decoder leaves behind, with key ids, metric and context indices resolved
    (a block the C decoder handed back may have added unused metric-table entries)."""

    def attrs(ac):
        table = list(ac.kidx)
        return [table[k] for k in ac.keys], list(ac.vals), list(ac.tag_pos), list(ac.tags)

    def info(i):
        x = b.infos[i]
        return (x.name, x.description, x.unit, x.metric_type, x.temporality, x.is_monotonic, x.metadata)

    def ctx(i):
        r, s = b.ctx.items[i]
        return r.resource_id, s.scope_id

    points = {t: [(info(r[0]), r[1:7], ctx(r[7]), *r[8:]) for r in rows] for t, rows in b.points.items()}
    return (
        repr(points), {t: attrs(a) for t, a in b.attrs.items()}, repr(b.exemplars), attrs(b.exemplar_attrs),
        fc.records_read, fc.records_quarantined, fc.messages_quarantined, dict(fc.quarantined_by_reason),
        sorted(fc.unknown_fields.items()), sorted(fc.resources), sorted(fc.scopes),
        [(q["path"], q["reason_code"], q["reason"]) for q in fc.quarantine],
    )  # fmt: skip


def _run(payload: bytes, wm) -> tuple:
    saved, accel.wire_metrics = accel.wire_metrics, wm
    try:
        fc, batches = FileContext("f"), _new_batches("f")
        decode_message(payload, "metrics", fc, batches["metrics"], "m")
        return _state(fc, batches["metrics"])
    finally:
        accel.wire_metrics = saved


def test_protobuf_mutations_match_the_python_decoder():
    wm = accel.wire_metrics
    seeds = [
        _request().SerializeToString(),
        _payload(_wire_cases()[:N_CLEAN]),
        _payload(_wire_cases()[N_CLEAN:]),
    ]
    rng = random.Random(SEED + 17)
    for i in range(CASES):
        b = bytearray(rng.choice(seeds))
        for _ in range(rng.randint(1, 3)):
            if not b:
                break
            j = rng.randrange(len(b))
            op = rng.random()
            if op < 0.3:
                del b[j:]
            elif op < 0.6:
                b[j] = rng.randrange(256)
            elif op < 0.8:
                k = rng.randrange(len(b))
                b[j:j] = b[k : k + rng.randint(1, 40)]
            else:
                del b[j : j + rng.randint(1, 20)]
        m = bytes(b)
        assert repr(_run(m, wm)) == repr(_run(m, None)), f"mutation {i}: {m.hex()}"
