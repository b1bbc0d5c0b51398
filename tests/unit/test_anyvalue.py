"""AnyValue <-> (type tag, canonical string): exact renderings, and the inverse for every tag."""

from __future__ import annotations

import math

import pytest
from opentelemetry.proto.common.v1 import common_pb2

from otlp_aiops.otlp.anyvalue import RecordError, render_json, render_proto, to_proto, to_python


def _v(**kw) -> common_pb2.AnyValue:
    v = common_pb2.AnyValue()
    for k, x in kw.items():
        setattr(v, k, x)
    return v


def _kvlist(*pairs) -> common_pb2.AnyValue:
    v = common_pb2.AnyValue()
    v.kvlist_value.SetInParent()
    for k, x in pairs:
        kv = v.kvlist_value.values.add()
        kv.key = k
        kv.value.CopyFrom(x)
    return v


def _array(*items) -> common_pb2.AnyValue:
    v = common_pb2.AnyValue()
    v.array_value.SetInParent()
    for x in items:
        v.array_value.values.add().CopyFrom(x)
    return v


CASES = [
    (_v(string_value="GET"), ("string", "GET"), "GET"),
    (_v(bool_value=True), ("bool", "true"), True),
    (_v(int_value=-(2**63)), ("int", "-9223372036854775808"), -(2**63)),
    (_v(double_value=0.1), ("double", "0.1"), 0.1),
    (_v(double_value=1e16), ("double", "1e+16"), 1e16),
    (_v(double_value=-0.0), ("double", "-0.0"), -0.0),
    (_v(double_value=math.inf), ("double", "Infinity"), math.inf),
    (_v(bytes_value=b"\x00\xff"), ("bytes", "AP8="), b"\x00\xff"),
    (common_pb2.AnyValue(), ("empty", None), None),
    (_array(_v(string_value="a"), _v(int_value=1), _v(double_value=1.0), common_pb2.AnyValue()),
     ("array", '["a",1,1.0,null]'), ["a", 1, 1.0, None]),
    (_kvlist(("k", _v(bool_value=False)), ("n", _array())), ("kvlist", '{"k":false,"n":[]}'), {"k": False, "n": []}),
    # plain JSON would lose the bytes / NaN / a repeated key: the OTLP/JSON form is kept instead
    (_array(_v(bytes_value=b"\x01")), ("array_otlp", '{"arrayValue":{"values":[{"bytesValue":"AQ=="}]}}'), [b"\x01"]),
    (_kvlist(("x", _v(double_value=math.nan))),
     ("kvlist_otlp", '{"kvlistValue":{"values":[{"key":"x","value":{"doubleValue":"NaN"}}]}}'), None),
    (_kvlist(("k", _v(int_value=1)), ("k", _v(int_value=2))),
     ("kvlist_otlp", '{"kvlistValue":{"values":[{"key":"k","value":{"intValue":"1"}},{"key":"k","value":{"intValue":"2"}}]}}'),
     {"k": 2}),
]  # fmt: skip


@pytest.mark.parametrize(("value", "rendered", "python"), CASES)
def test_render_and_back(value, rendered, python):
    assert render_proto(value) == rendered
    back = to_proto(*rendered)
    assert back == value
    assert render_proto(back) == rendered
    got = to_python(*rendered)
    if rendered[0] == "kvlist_otlp" and python is None:  # NaN != NaN
        assert math.isnan(got["x"])
    else:
        assert got == python


@pytest.mark.parametrize(
    ("json_value", "rendered"),
    [
        ({"stringValue": "x"}, ("string", "x")),
        ({"intValue": "007"}, ("int", "7")),
        ({"intValue": 5}, ("int", "5")),
        ({"doubleValue": 3}, ("double", "3.0")),
        ({"doubleValue": "-Infinity"}, ("double", "-Infinity")),
        ({"boolValue": "true"}, ("bool", "true")),
        ({"bytesValue": "AP8"}, ("bytes", "AP8=")),  # missing padding accepted, stored canonically
        ({"string_value": "snake"}, ("string", "snake")),
        ({}, ("empty", None)),
        ({"arrayValue": {"values": [{"intValue": "1"}, {"kvlistValue": {"values": [{"key": "a", "value": {}}]}}]}},
         ("array", '[1,{"a":null}]')),
    ],
)  # fmt: skip
def test_lenient_json_renders_like_protobuf(json_value, rendered):
    assert render_json(json_value) == rendered


@pytest.mark.parametrize(
    ("json_value", "code"),
    [
        ({"intValue": "abc"}, "invalid_value"),
        ({"intValue": str(2**63)}, "invalid_value"),
        ({"stringValue": "a", "intValue": "1"}, "invalid_value"),
        ({"bytesValue": "!!"}, "invalid_value"),
        ({"arrayValue": {"values": "nope"}}, "invalid_value"),
    ],
)
def test_bad_json_values_are_record_errors(json_value, code):
    with pytest.raises(RecordError) as e:
        render_json(json_value)
    assert e.value.code == code
