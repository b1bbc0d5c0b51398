"""The C decoder of metric points from OTLP/JSON text (``_wire_metrics.decode_json_text``, through
``decode_json.decode_text``) and the pure-Python dict decoder (``decode_json.decode_metrics``) must
write byte-identical Parquet tables, the same report and the same quarantine: on the simulator's
metrics as JSON lines, on hand-built lines (every metric type, ints as strings and numbers, NaN and
infinities, -0, missing fields, empty points, attributes of every simple type and with escapes,
exemplars, headers after their items, a sum whose temporality comes after its points) and on lines
that must fall back (exponential histograms, summaries, base64 ids, enum names, snake_case keys,
duplicate keys, bad values), and on mutated lines. Clean lines are checked to take the C path, a
line that falls back half-way to leave the batch as it was, and some values exactly."""

from __future__ import annotations

import copy
import math
import os
import random
import struct
from pathlib import Path

import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
from test_metric_decoder_parity import _ingest_both, _request, _state

from otlp_aiops.otlp import accel
from otlp_aiops.otlp.context import FileContext
from otlp_aiops.otlp.decode_json import DECODERS, decode_text
from otlp_aiops.otlp.ingest import _new_batches
from otlp_aiops.otlp.otlpjson import to_otlp_json

pytestmark = pytest.mark.skipif(accel.wire_metrics is None, reason="the C metric decoder is not built")

ROOT = Path(__file__).resolve().parents[2]
SIM = ROOT / "data" / "raw" / "sim-boutique" / "otlp" / "metrics-00001.binpb"
T0 = 1_700_000_000_000_000_000
TID = bytes(range(1, 17)).hex()
SID = bytes(range(1, 9)).hex()


def _kv(k: str, v: dict) -> dict:
    return {"key": k, "value": v}


def _res(service: str) -> dict:
    return {
        "attributes": [
            _kv("service.name", {"stringValue": service}),
            _kv("host.cpus", {"intValue": "8"}),
            _kv("host.ratio", {"doubleValue": 0.5}),
            _kv("host.ok", {"boolValue": True}),
        ]
    }


ATTRS_ALL = [  # every simple type, escapes and non-ASCII text, ints as string and number
    _kv("s", {"stringValue": 'a"b\\c\u00e9\U0001f600\n'}),
    _kv("i", {"intValue": "-5"}),
    _kv("j", {"intValue": 12}),
    _kv("d", {"doubleValue": 1e16}),
    _kv("e", {"doubleValue": -0.0}),
    _kv("b", {"boolValue": False}),
    _kv("k\u00e9y", {"stringValue": ""}),
]


def _clean(service: str = "cart") -> dict:
    """A request in the common form, with the unusual-but-valid values."""
    gauge = {
        "name": "queue.depth",
        "description": "items waiting",
        "unit": "1",
        "gauge": {
            "dataPoints": [
                {"timeUnixNano": str(T0), "asInt": "-9223372036854775808", "attributes": ATTRS_ALL[:2]},
                {"timeUnixNano": T0 + 1, "asInt": 9223372036854775807, "attributes": ATTRS_ALL[1::-1]},
                {"asDouble": "NaN", "flags": 1, "attributes": []},
                {"asDouble": -0.0, "flags": 4294967295, "attributes": None},
                {"asDouble": "Infinity"},
                {"asDouble": "-Infinity", "startTimeUnixNano": "0"},
                {},
                {"asInt": "9007199254740993", "attributes": ATTRS_ALL},
                {"asDouble": 3},
                {"asDouble": 1.5e300, "asInt": None},
                {"asDouble": 0.1, "exemplars": []},
                {"asInt": -4, "exemplars": None},
            ]
        },
    }
    ex = [
        {
            "timeUnixNano": str(T0 + 5),
            "asDouble": 0.25,
            "traceId": TID,
            "spanId": SID.upper(),
            "filteredAttributes": [_kv("user", {"stringValue": "u1"})],
        },
        {"asInt": "3", "timeUnixNano": T0 + 6},
        {"traceId": "0" * 32, "spanId": "", "asInt": -7},
        {},
    ]
    requests = {
        "name": "requests",
        "unit": "{request}",
        "sum": {  # protobuf field order: the temporality after the points
            "dataPoints": [
                {
                    "startTimeUnixNano": str(T0),
                    "timeUnixNano": str(T0 + 10),
                    "asDouble": 1.5,
                    "attributes": [_kv("http.status_code", {"intValue": str(code)})],
                    "exemplars": ex,
                }
                for code in (200, 500, 200)
            ],
            "aggregationTemporality": 2,
            "isMonotonic": True,
        },
    }
    up_down = {"name": "up_down", "sum": {"dataPoints": [{"asInt": "-4"}], "aggregationTemporality": 1}}
    delta = {"sum": {"isMonotonic": False, "aggregationTemporality": 0, "dataPoints": [{"asInt": 1}]}}
    hist = {
        "name": "latency",
        "unit": "ms",
        "description": "",
        "histogram": {
            "dataPoints": [
                {
                    "timeUnixNano": str(T0),
                    "count": "6",
                    "sum": 12.5,
                    "min": 0.5,
                    "max": 9,
                    "bucketCounts": ["1", "2", 3],
                    "explicitBounds": [1, 5.5],
                    "exemplars": ex[:2],
                    "attributes": [_kv("route", {"stringValue": "/a"})],
                },
                {"count": 0},
                {"count": "2", "bucketCounts": [2], "explicitBounds": []},
                {"count": 1, "bucketCounts": [None, 1], "explicitBounds": ["Infinity"], "sum": "NaN"},
            ],
            "aggregationTemporality": 1,
        },
    }
    empty = {"name": "empty", "gauge": {"dataPoints": []}}
    no_points = {"name": "none", "sum": {"aggregationTemporality": 2, "isMonotonic": True}}
    scope = {"scope": {"name": "lib", "version": "1.0"}, "metrics": [gauge, requests, up_down, delta, hist]}
    return {
        "resourceMetrics": [
            {"resource": _res(service), "scopeMetrics": [scope, {"metrics": [empty, no_points]}, {}]},
            {  # headers after their items, at both levels (protobuf field order)
                "scopeMetrics": [
                    {"metrics": [up_down], "scope": {"name": "late"}, "schemaUrl": "https://s/1"},
                    {"metrics": [hist], "schemaUrl": ""},
                ],
                "resource": _res(service + "-2"),
                "schemaUrl": "https://opentelemetry.io/schemas/1.26.0",
            },
            {"resource": _res("lonely")},
        ]
    }


def _line(obj: dict) -> bytes:
    return orjson.dumps(obj)


def _clean_lines() -> list[bytes]:
    return [
        _line(_clean("cart")),
        _line(_clean("checkout")),
        b' \t{ "resourceMetrics" : [ ] }\r',
        b'{"resourceMetrics":null}',
    ]


def _fallback_lines() -> list[bytes]:
    """Lines the C decoder hands to the dict decoder (some of which quarantine records)."""
    base = _clean("fb")
    out = [to_otlp_json(_request("cart")), to_otlp_json(_request("checkout"))]  # exp. histograms, summaries

    def variant(path: list, value) -> None:
        d = copy.deepcopy(base)
        node = d
        for k in path[:-1]:
            node = node[k]
        if value is KeyError:
            del node[path[-1]]
        else:
            node[path[-1]] = value
        out.append(_line(d))

    m = ["resourceMetrics", 0, "scopeMetrics", 0, "metrics"]
    p0 = [*m, 0, "gauge", "dataPoints", 0]
    s0 = [*m, 1, "sum", "dataPoints", 0]
    h0 = [*m, 4, "histogram", "dataPoints", 0]
    variant([*p0, "asInt"], "1e3")
    variant([*p0, "asInt"], 1.0)
    variant([*p0, "asInt"], "9223372036854775808")
    variant([*p0, "asDouble"], "nan")
    variant([*p0, "asDouble"], "1.5")
    variant([*p0, "timeUnixNano"], "-1")
    variant([*p0, "timeUnixNano"], "9223372036854775808")
    variant([*p0, "time_unix_nano"], "5")
    variant([*p0, "extra"], 1)
    variant([*p0, "flags"], "1")
    variant([*p0, "attributes"], [_kv("arr", {"arrayValue": {"values": [{"intValue": 1}]}})])
    variant([*s0, "exemplars", 0, "traceId"], "AQIDBAUGBwgJCgsMDQ4PEA==")
    variant([*s0, "exemplars", 0, "spanId"], "0102")
    variant([*m, 1, "sum", "aggregationTemporality"], "AGGREGATION_TEMPORALITY_CUMULATIVE")
    variant([*m, 1, "sum", "aggregationTemporality"], 7)
    variant([*m, 1, "sum", "isMonotonic"], "true")
    variant([*m, 1, "metadata"], [_kv("m", {"stringValue": "x"})])
    variant([*m, 1, "gauge"], {"dataPoints": []})
    variant([*m, 1, "sum"], KeyError)
    variant([*h0, "bucketCounts"], ["1", "2", "4"])  # counts do not add up: quarantined
    variant([*h0, "bucketCounts"], ["1", None, "4"])
    variant([*h0, "explicitBounds"], [5.5, 1])
    variant([*m, 0, "name"], 'caf\u00e9 \\ "q"')  # escapes in the metric name
    variant(["resourceMetrics", 0, "resource"], {"attributes": 5})  # a broken resource
    variant(["resourceMetrics", 0, "scopeMetrics", 0, "scope"], {"name": 5})
    variant(["resourceMetrics", 1, "scopeMetrics", 1, "metrics", 0, "summary"], {"dataPoints": [{}]})
    d = copy.deepcopy(base)
    hist = d["resourceMetrics"][0]["scopeMetrics"][0]["metrics"][4]
    hist["name"] = hist.pop("name")  # the name after the data
    out.append(_line(d))
    text = _line(base)
    out += [
        text.replace(b'"unit":"1",', b'"unit":"1","unit":"2",', 1),  # a duplicate key
        text.replace(b'"asDouble":1.5', b'"asDouble":1.5e999', 1),
        text.replace(b'"count":"6"', b'"count":6.0', 1),
        b"{}",
        b'{"resourceMetrics":[],"x":1}',
        b'{"resourceMetrics":[5]}',
    ]
    return out


def _counting_ingest(tmp_path: Path, files: dict[str, bytes], monkeypatch) -> tuple[dict, dict, list]:
    """_ingest_both, recording what each decode_json_text call of the C run returned."""
    wm = accel.wire_metrics
    results: list = []

    class Counting:
        def __getattr__(self, name):
            return getattr(wm, name)

        def decode_json_text(self, *args):
            r = wm.decode_json_text(*args)
            results.append(r)
            return r

    monkeypatch.setattr(accel, "wire_metrics", Counting())
    monkeypatch.setattr("test_metric_decoder_parity._Counting", lambda w: w)
    report, tables, _ = _ingest_both(tmp_path, files, monkeypatch)
    return report, tables, results


def _sim_jsonl(tmp_path: Path) -> bytes:
    if SIM.exists():
        data = SIM.read_bytes()
    else:  # a small simulator run of our own
        from otlp_aiops.datasets.simulator import SimulatorConfig, simulate

        cfg = {"duration": "6m", "warmup": "1m", "incidents": 1, "min_gap": "20s", "request_rate": 4.0}
        simulate(SimulatorConfig.from_dict(cfg), tmp_path / "sim")
        data = (tmp_path / "sim" / "otlp" / "metrics-00001.binpb").read_bytes()
    req, lines, i = metrics_service_pb2.ExportMetricsServiceRequest, [], 0
    while i < len(data):  # length-prefixed: a 4-byte big-endian length before each message
        (n,) = struct.unpack_from(">I", data, i)
        lines.append(to_otlp_json(req.FromString(data[i + 4 : i + 4 + n])))
        i += 4 + n
    return b"\n".join(lines) + b"\n"


def test_simulator_metrics_json_are_byte_identical(tmp_path, monkeypatch):
    text = _sim_jsonl(tmp_path)
    report, tables, calls = _counting_ingest(tmp_path, {"metrics-00001.jsonl": text}, monkeypatch)
    assert len(calls) == text.count(b"\n") and None not in calls  # every line took the C path
    totals = report["totals"]
    assert totals["records_quarantined"] == 0 and totals["records_written"] > 1000
    assert {"metrics_number", "metrics_histogram"} <= tables.keys()


def test_hand_built_json_parity_and_values(tmp_path, monkeypatch):
    files = {
        "metrics-clean.jsonl": b"\n".join(_clean_lines()) + b"\n",
        "metrics-fallback.jsonl": b"\n".join(_fallback_lines()) + b"\n",
    }
    report, tables, calls = _counting_ingest(tmp_path, files, monkeypatch)
    # the clean lines all through C (26 points each), the others all handed back (files in any order)
    assert [c for c in calls if c is not None] == [26, 52, 52, 52]
    assert calls.count(None) == len(_fallback_lines()) - 1  # ({} is not even tried)
    assert report["totals"]["records_quarantined"] > 0  # (the bad histograms, the broken resource...)

    def clean(name: str) -> pa.Table:
        t = tables[name]
        return t.filter(pc.ends_with(t["_source_file"], "clean.jsonl"))

    first = clean("metrics_number").slice(0, 12)
    assert first["value_int"].to_pylist() == [
        -(2**63),
        2**63 - 1,
        None,
        None,
        None,
        None,
        None,
        2**53 + 1,
        None,
        None,
        None,
        -4,
    ]
    vd = first["value_double"].to_pylist()
    assert vd[0] == -(2.0**63) and vd[7] == 2.0**53 and vd[8] == 3.0 and vd[9] == 1.5e300 and vd[10] == 0.1
    assert math.isnan(vd[2]) and vd[4] == math.inf and vd[5] == -math.inf and vd[6] is None
    assert vd[3] == 0.0 and math.copysign(1.0, vd[3]) == -1.0
    assert first["flags"].to_pylist()[2:4] == [1, 4294967295]
    sids = first["series_id"].to_pylist()
    assert sids[0] == sids[1] and sids[2] == sids[3] == sids[4] and sids[0] != sids[2]
    assert [dict(a) if a else a for a in first["attributes"].to_pylist()[7:8]] == [
        {
            "s": 'a"b\\c\u00e9\U0001f600\n',
            "i": "-5",
            "j": "12",
            "d": "1e+16",
            "e": "-0.0",
            "b": "false",
            "k\u00e9y": "",
        }
    ]
    hist = clean("metrics_histogram").slice(0, 4)
    assert hist["count"].to_pylist() == [6, 0, 2, 1]
    assert hist["bucket_counts"].to_pylist() == [[1, 2, 3], [], [2], [0, 1]]
    assert hist["explicit_bounds"].to_pylist() == [[1.0, 5.5], [], [], [math.inf]]
    assert hist["aggregation_temporality"].to_pylist() == [1] * 4
    ex = clean("exemplars").slice(0, 4)
    assert ex["value_double"].to_pylist() == [0.25, 3.0, -7.0, None]
    assert ex["value_int"].to_pylist() == [None, 3, -7, None]
    assert ex["trace_id"].to_pylist() == [bytes.fromhex(TID), None, None, None]
    assert ex["span_id"].to_pylist() == [bytes.fromhex(SID), None, None, None]


def _run(lines: list[bytes], wm) -> tuple:
    """Decode lines as ingest does (the text first, else parse and the dict decoder)."""
    saved, accel.wire_metrics = accel.wire_metrics, wm
    try:
        fc, batches = FileContext("f"), _new_batches("f")
        errors = []
        for k, line in enumerate(lines):
            if decode_text(line, fc, batches, f"l{k}") is None:
                try:
                    doc = orjson.loads(line)
                except orjson.JSONDecodeError:
                    errors.append(k)
                    continue
                if type(doc) is dict:
                    DECODERS["metrics"](doc, fc, batches["metrics"], f"l{k}")
                else:
                    errors.append(-k)
        return _state(fc, batches["metrics"]), errors
    finally:
        accel.wire_metrics = saved


def test_fallback_half_way_leaves_the_batch_unchanged():
    good = _clean_lines()[0]
    d = _clean("x")
    d["resourceMetrics"][1]["scopeMetrics"][1]["metrics"].append(
        {"name": "s", "summary": {"dataPoints": [{}]}}
    )
    bad = _line(d)  # the C decoder gives up in the second resource
    fc, batches = FileContext("f"), _new_batches("f")
    assert decode_text(good, fc, batches, "l0") == "metrics"
    before = repr(_state(fc, batches["metrics"]))
    assert decode_text(bad, fc, batches, "l1") is None
    assert repr(_state(fc, batches["metrics"])) == before
    assert repr(_run([good, bad, good], accel.wire_metrics)) == repr(_run([good, bad, good], None))


CASES = int(os.environ.get("OTLP_AIOPS_FUZZ_CASES", "600"))
SEED = int(os.environ.get("OTLP_AIOPS_FUZZ_SEED", "0"))
_VALUES = [None, 0, -1, 1, 7, 2**63, -(2**63), 2**64 - 1, 1.5, -0.0, 1e300, "", "0", "12", "-3", "1.5", "NaN", "nan",
           "Infinity", "-Infinity", "x", "AQID", TID, SID, True, False, [], [1], {}, {"stringValue": "v"},
           [{"key": "k", "value": {"intValue": "1"}}], "AGGREGATION_TEMPORALITY_DELTA"]  # fmt: skip
_KEYS = ["asInt", "asDouble", "timeUnixNano", "count", "sum", "flags", "attributes", "exemplars", "time_unix_nano",
         "schemaUrl", "aggregationTemporality", "isMonotonic", "name", "unit", "bucketCounts", "zzz"]  # fmt: skip


def _mutate(doc, rng: random.Random):
    """Change one random node of a JSON tree: another value, a key removed, renamed or added."""
    nodes = []

    def walk(x):
        if isinstance(x, dict):
            nodes.append(x)
            for v in x.values():
                walk(v)
        elif isinstance(x, list):
            nodes.append(x)
            for v in x:
                walk(v)

    walk(doc)
    node = rng.choice(nodes)
    if isinstance(node, list):
        if node and rng.random() < 0.5:
            del node[rng.randrange(len(node))]
        elif node:
            node.append(copy.deepcopy(rng.choice(node)))
        return
    op = rng.random()
    if node and op < 0.5:
        node[rng.choice(list(node))] = copy.deepcopy(rng.choice(_VALUES))
    elif node and op < 0.7:
        del node[rng.choice(list(node))]
    elif node and op < 0.8:
        k = rng.choice(list(node))
        node[rng.choice(_KEYS)] = node.pop(k)
    else:
        node[rng.choice(_KEYS)] = copy.deepcopy(rng.choice(_VALUES))


def test_json_mutations_match_the_python_decoder():
    wm = accel.wire_metrics
    seeds = [_clean("cart"), _clean("cart"), _clean("cart"), orjson.loads(to_otlp_json(_request()))]
    rng = random.Random(SEED + 29)
    for i in range(CASES):
        doc = copy.deepcopy(rng.choice(seeds))
        for _ in range(rng.randint(1, 3)):
            _mutate(doc, rng)
        line = _line(doc)
        if rng.random() < 0.2:  # and now and then the text itself
            b = bytearray(line)
            j = rng.randrange(len(b))
            b[j : j + rng.randint(0, 3)] = bytes(
                rng.choice(b' ,:{}[]"0-.e\\') for _ in range(rng.randint(0, 2))
            )
            line = bytes(b)
        assert repr(_run([line], wm)) == repr(_run([line], None)), f"mutation {i}: {line!r}"
