"""OTLP ``AnyValue`` <-> (type tag, canonical string): how attribute values and log bodies are stored.

A value is stored as a string plus a type tag, so that the ``map<string,string>`` attribute columns
stay easy to query while the original value can be rebuilt exactly:

=================  ==============================================================  ============
tag                canonical string                                                 example
=================  ==============================================================  ============
``string``         the string itself (the tag is omitted from ``attribute_types``)  ``GET``
``bool``           ``true`` / ``false``                                             ``true``
``int``            decimal                                                          ``-42``
``double``         shortest round-trip decimal; ``NaN``, ``Infinity``, ``-Infinity``  ``0.25``
``bytes``          standard base64                                                  ``AAE=``
``array``          compact JSON array of plain JSON values                          ``["a",1,2.5]``
``kvlist``         compact JSON object                                              ``{"k":true}``
``array_otlp``     OTLP/JSON ``arrayValue`` (when plain JSON would lose a type:     see below
                   nested bytes, NaN/Infinity, duplicate keys)
``kvlist_otlp``    OTLP/JSON ``kvlistValue``, same reason
``empty``          null (an ``AnyValue`` with nothing set)
``strindex``       decimal (``string_value_strindex``, a profiles-only field)
=================  ==============================================================  ============

In plain JSON, a double is always written with a ``.`` or an exponent (``1.0``), so it cannot be
confused with an int; an empty nested value is ``null``.
"""

from __future__ import annotations

import base64
import binascii
import math
from typing import Any

import orjson
from opentelemetry.proto.common.v1 import common_pb2

TYPE_STRING = "string"
TYPE_BOOL = "bool"
TYPE_INT = "int"
TYPE_DOUBLE = "double"
TYPE_BYTES = "bytes"
TYPE_ARRAY = "array"
TYPE_KVLIST = "kvlist"
TYPE_ARRAY_OTLP = "array_otlp"
TYPE_KVLIST_OTLP = "kvlist_otlp"
TYPE_EMPTY = "empty"
TYPE_STRINDEX = "strindex"

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1


class RecordError(ValueError):
    """A record that cannot be converted; ``code`` is a short stable reason for the report."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


def render_double(x: float) -> str:
    if x != x:
        return "NaN"
    if x == math.inf:
        return "Infinity"
    if x == -math.inf:
        return "-Infinity"
    return repr(x)


def parse_double_text(text: str) -> float:
    return float(text)  # float() accepts "NaN", "Infinity", "-Infinity"


class _NotPlain(Exception):
    """Raised while building plain JSON when it would lose information."""


# --------------------------------------------------------------------------------------------------
# protobuf AnyValue -> (tag, text)
# --------------------------------------------------------------------------------------------------


def render_proto(v: common_pb2.AnyValue) -> tuple[str, str | None]:
    """Render a protobuf ``AnyValue`` as (tag, canonical string)."""
    which = v.WhichOneof("value")
    if which == "string_value":
        return TYPE_STRING, v.string_value
    if which == "int_value":
        return TYPE_INT, str(v.int_value)
    if which == "double_value":
        return TYPE_DOUBLE, render_double(v.double_value)
    if which == "bool_value":
        return TYPE_BOOL, "true" if v.bool_value else "false"
    if which == "bytes_value":
        return TYPE_BYTES, base64.b64encode(v.bytes_value).decode("ascii")
    if which is None:
        return TYPE_EMPTY, None
    if which == "string_value_strindex":
        return TYPE_STRINDEX, str(v.string_value_strindex)
    if which == "array_value":
        try:
            plain = [_plain_proto(x) for x in v.array_value.values]
            return TYPE_ARRAY, orjson.dumps(plain).decode()
        except _NotPlain:
            return TYPE_ARRAY_OTLP, orjson.dumps(_otlp_json_proto(v)).decode()
    # kvlist_value
    try:
        return TYPE_KVLIST, orjson.dumps(_plain_kvlist_proto(v.kvlist_value.values)).decode()
    except _NotPlain:
        return TYPE_KVLIST_OTLP, orjson.dumps(_otlp_json_proto(v)).decode()


def _plain_kvlist_proto(kvs) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for kv in kvs:
        if kv.key in out:
            raise _NotPlain
        out[kv.key] = _plain_proto(kv.value)
    return out


def _plain_proto(v: common_pb2.AnyValue) -> Any:
    which = v.WhichOneof("value")
    if which == "string_value":
        return v.string_value
    if which == "int_value":
        return v.int_value
    if which == "double_value":
        x = v.double_value
        if math.isfinite(x):
            return x
        raise _NotPlain
    if which == "bool_value":
        return v.bool_value
    if which is None:
        return None
    if which == "array_value":
        return [_plain_proto(x) for x in v.array_value.values]
    if which == "kvlist_value":
        return _plain_kvlist_proto(v.kvlist_value.values)
    raise _NotPlain  # bytes, strindex


def _otlp_json_proto(v: common_pb2.AnyValue) -> dict[str, Any]:
    """A protobuf AnyValue in OTLP/JSON form (intValue as string, bytes as base64, NaN as "NaN")."""
    which = v.WhichOneof("value")
    if which == "string_value":
        return {"stringValue": v.string_value}
    if which == "int_value":
        return {"intValue": str(v.int_value)}
    if which == "double_value":
        x = v.double_value
        return {"doubleValue": x if math.isfinite(x) else render_double(x)}
    if which == "bool_value":
        return {"boolValue": v.bool_value}
    if which == "bytes_value":
        return {"bytesValue": base64.b64encode(v.bytes_value).decode("ascii")}
    if which == "string_value_strindex":
        return {"stringValueStrindex": v.string_value_strindex}
    if which == "array_value":
        return {"arrayValue": {"values": [_otlp_json_proto(x) for x in v.array_value.values]}}
    if which == "kvlist_value":
        return {
            "kvlistValue": {
                "values": [
                    {"key": kv.key, "value": _otlp_json_proto(kv.value)} for kv in v.kvlist_value.values
                ]
            }
        }
    return {}


# --------------------------------------------------------------------------------------------------
# OTLP/JSON AnyValue (a parsed dict, lenient) -> (tag, text)
# --------------------------------------------------------------------------------------------------

_JSON_KEYS = {
    "stringValue": TYPE_STRING,
    "string_value": TYPE_STRING,
    "boolValue": TYPE_BOOL,
    "bool_value": TYPE_BOOL,
    "intValue": TYPE_INT,
    "int_value": TYPE_INT,
    "doubleValue": TYPE_DOUBLE,
    "double_value": TYPE_DOUBLE,
    "bytesValue": TYPE_BYTES,
    "bytes_value": TYPE_BYTES,
    "arrayValue": TYPE_ARRAY,
    "array_value": TYPE_ARRAY,
    "kvlistValue": TYPE_KVLIST,
    "kvlist_value": TYPE_KVLIST,
    "stringValueStrindex": TYPE_STRINDEX,
    "string_value_strindex": TYPE_STRINDEX,
}


def json_int64(x: Any, what: str) -> int:
    """An OTLP/JSON 64-bit integer: a JSON number or a decimal string."""
    if type(x) is int:
        n = x
    elif isinstance(x, str):
        try:
            n = int(x)
        except ValueError:
            raise RecordError("invalid_value", f"{what} {x!r} is not an integer") from None
    elif isinstance(x, float) and x.is_integer():
        n = int(x)
    else:
        raise RecordError("invalid_value", f"{what} {x!r} is not an integer")
    if n < INT64_MIN or n > INT64_MAX:
        raise RecordError("invalid_value", f"{what} {x!r} does not fit in int64")
    return n


def json_double(x: Any, what: str) -> float:
    """An OTLP/JSON double: a JSON number, or "NaN" / "Infinity" / "-Infinity" (any numeric string)."""
    if type(x) is float:
        return x
    if type(x) is int:
        return float(x)
    if isinstance(x, str):
        try:
            return float(x)
        except ValueError:
            pass
    raise RecordError("invalid_value", f"{what} {x!r} is not a number")


def json_bool(x: Any, what: str) -> bool:
    if x is True or x is False:
        return x
    if x in ("true", "false"):
        return x == "true"
    raise RecordError("invalid_value", f"{what} {x!r} is not a boolean")


def json_bytes(x: Any, what: str) -> bytes:
    if not isinstance(x, str):
        raise RecordError("invalid_value", f"{what} {x!r} is not a base64 string")
    try:
        return base64.b64decode(x, validate=True)
    except (binascii.Error, ValueError):
        try:  # URL-safe base64 and missing padding are common enough to accept (nothing else)
            return base64.b64decode(x + "=" * (-len(x) % 4), altchars=b"-_", validate=True)
        except (binascii.Error, ValueError):
            raise RecordError("invalid_value", f"{what} {x!r} is not valid base64") from None


def _json_values(container: Any, what: str) -> list:
    if container is None:
        return []
    if not isinstance(container, dict):
        raise RecordError("invalid_value", f"{what} is not an object")
    values = container.get("values")
    if values is None:
        return []
    if not isinstance(values, list):
        raise RecordError("invalid_value", f"{what}.values is not a list")
    return values


def _json_kind(v: Any) -> tuple[str | None, Any]:
    """(tag, raw payload) of an OTLP/JSON AnyValue dict; (None, None) for an empty value."""
    if v is None:
        return None, None
    if not isinstance(v, dict):
        raise RecordError("invalid_value", f"attribute value {v!r} is not an AnyValue object")
    tag = None
    raw = None
    for k, x in v.items():
        t = _JSON_KEYS.get(k)
        if t is None or x is None:
            continue  # unknown keys are tolerated (counted by the caller); null means unset
        if tag is not None:
            raise RecordError("invalid_value", f"AnyValue sets both {tag} and {t}")
        tag, raw = t, x
    return tag, raw


def render_json(v: Any) -> tuple[str, str | None]:
    """Render an OTLP/JSON AnyValue (as parsed by a JSON reader) as (tag, canonical string)."""
    tag, raw = _json_kind(v)
    if tag is None:
        return TYPE_EMPTY, None
    if tag == TYPE_STRING:
        if not isinstance(raw, str):
            raise RecordError("invalid_value", f"stringValue {raw!r} is not a string")
        return TYPE_STRING, raw
    if tag == TYPE_INT:
        return TYPE_INT, str(json_int64(raw, "intValue"))
    if tag == TYPE_DOUBLE:
        return TYPE_DOUBLE, render_double(json_double(raw, "doubleValue"))
    if tag == TYPE_BOOL:
        return TYPE_BOOL, "true" if json_bool(raw, "boolValue") else "false"
    if tag == TYPE_BYTES:
        return TYPE_BYTES, base64.b64encode(json_bytes(raw, "bytesValue")).decode("ascii")
    if tag == TYPE_STRINDEX:
        return TYPE_STRINDEX, str(json_int64(raw, "stringValueStrindex"))
    if tag == TYPE_ARRAY:
        values = _json_values(raw, "arrayValue")
        try:
            return TYPE_ARRAY, orjson.dumps([_plain_json(x) for x in values]).decode()
        except _NotPlain:
            return TYPE_ARRAY_OTLP, orjson.dumps(
                {"arrayValue": {"values": [_otlp_json(x) for x in values]}}
            ).decode()
    values = _json_values(raw, "kvlistValue")
    try:
        return TYPE_KVLIST, orjson.dumps(_plain_kvlist_json(values)).decode()
    except _NotPlain:
        return TYPE_KVLIST_OTLP, orjson.dumps({"kvlistValue": {"values": _otlp_kvlist_json(values)}}).decode()


def _kv_json(kv: Any) -> tuple[str, Any]:
    if not isinstance(kv, dict):
        raise RecordError("invalid_value", f"key-value {kv!r} is not an object")
    key = kv.get("key", "")
    if not isinstance(key, str):
        raise RecordError("invalid_value", f"key {key!r} is not a string")
    return key, kv.get("value")


def _plain_kvlist_json(values: list) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for kv in values:
        key, val = _kv_json(kv)
        if key in out:
            raise _NotPlain
        out[key] = _plain_json(val)
    return out


def _plain_json(v: Any) -> Any:
    tag, raw = _json_kind(v)
    if tag is None:
        return None
    if tag == TYPE_STRING:
        if not isinstance(raw, str):
            raise RecordError("invalid_value", f"stringValue {raw!r} is not a string")
        return raw
    if tag == TYPE_INT:
        return json_int64(raw, "intValue")
    if tag == TYPE_DOUBLE:
        x = json_double(raw, "doubleValue")
        if math.isfinite(x):
            return x
        raise _NotPlain
    if tag == TYPE_BOOL:
        return json_bool(raw, "boolValue")
    if tag == TYPE_ARRAY:
        return [_plain_json(x) for x in _json_values(raw, "arrayValue")]
    if tag == TYPE_KVLIST:
        return _plain_kvlist_json(_json_values(raw, "kvlistValue"))
    raise _NotPlain


def _otlp_kvlist_json(values: list) -> list[dict[str, Any]]:
    out = []
    for kv in values:
        key, val = _kv_json(kv)
        out.append({"key": key, "value": _otlp_json(val)})
    return out


def _otlp_json(v: Any) -> dict[str, Any]:
    """Normalise a lenient OTLP/JSON AnyValue to its canonical OTLP/JSON form."""
    tag, raw = _json_kind(v)
    if tag is None:
        return {}
    if tag == TYPE_STRING:
        return {"stringValue": _plain_json(v)}
    if tag == TYPE_INT:
        return {"intValue": str(json_int64(raw, "intValue"))}
    if tag == TYPE_DOUBLE:
        x = json_double(raw, "doubleValue")
        return {"doubleValue": x if math.isfinite(x) else render_double(x)}
    if tag == TYPE_BOOL:
        return {"boolValue": json_bool(raw, "boolValue")}
    if tag == TYPE_BYTES:
        return {"bytesValue": base64.b64encode(json_bytes(raw, "bytesValue")).decode("ascii")}
    if tag == TYPE_STRINDEX:
        return {"stringValueStrindex": json_int64(raw, "stringValueStrindex")}
    if tag == TYPE_ARRAY:
        return {"arrayValue": {"values": [_otlp_json(x) for x in _json_values(raw, "arrayValue")]}}
    return {"kvlistValue": {"values": _otlp_kvlist_json(_json_values(raw, "kvlistValue"))}}


# --------------------------------------------------------------------------------------------------
# (tag, text) -> protobuf AnyValue / Python value: the inverse, for export and for users
# --------------------------------------------------------------------------------------------------


def to_proto(
    tag: str | None, text: str | None, out: common_pb2.AnyValue | None = None
) -> common_pb2.AnyValue:
    """Rebuild the protobuf ``AnyValue`` from its stored (tag, text). A null tag means ``string``."""
    v = common_pb2.AnyValue() if out is None else out
    if tag is None or tag == TYPE_STRING:
        v.string_value = text if text is not None else ""
    elif tag == TYPE_INT:
        v.int_value = int(text)
    elif tag == TYPE_DOUBLE:
        v.double_value = parse_double_text(text)
    elif tag == TYPE_BOOL:
        v.bool_value = text == "true"
    elif tag == TYPE_BYTES:
        v.bytes_value = base64.b64decode(text)
    elif tag == TYPE_EMPTY:
        pass
    elif tag == TYPE_STRINDEX:
        v.string_value_strindex = int(text)
    elif tag == TYPE_ARRAY:
        v.array_value.SetInParent()
        for x in orjson.loads(text):
            _plain_to_proto(x, v.array_value.values.add())
    elif tag == TYPE_KVLIST:
        v.kvlist_value.SetInParent()
        for k, x in orjson.loads(text).items():
            kv = v.kvlist_value.values.add()
            kv.key = k
            _plain_to_proto(x, kv.value)
    elif tag in (TYPE_ARRAY_OTLP, TYPE_KVLIST_OTLP):
        _otlp_json_to_proto(orjson.loads(text), v)
    else:
        raise ValueError(f"unknown AnyValue type tag {tag!r}")
    return v


def _plain_to_proto(x: Any, v: common_pb2.AnyValue) -> None:
    if x is None:
        return
    if isinstance(x, bool):
        v.bool_value = x
    elif isinstance(x, int):
        v.int_value = x
    elif isinstance(x, float):
        v.double_value = x
    elif isinstance(x, str):
        v.string_value = x
    elif isinstance(x, list):
        v.array_value.SetInParent()
        for y in x:
            _plain_to_proto(y, v.array_value.values.add())
    else:
        v.kvlist_value.SetInParent()
        for k, y in x.items():
            kv = v.kvlist_value.values.add()
            kv.key = k
            _plain_to_proto(y, kv.value)


def _otlp_json_to_proto(d: dict[str, Any], v: common_pb2.AnyValue) -> None:
    if "stringValue" in d:
        v.string_value = d["stringValue"]
    elif "intValue" in d:
        v.int_value = int(d["intValue"])
    elif "doubleValue" in d:
        v.double_value = float(d["doubleValue"])
    elif "boolValue" in d:
        v.bool_value = d["boolValue"]
    elif "bytesValue" in d:
        v.bytes_value = base64.b64decode(d["bytesValue"])
    elif "stringValueStrindex" in d:
        v.string_value_strindex = int(d["stringValueStrindex"])
    elif "arrayValue" in d:
        v.array_value.SetInParent()
        for x in d["arrayValue"]["values"]:
            _otlp_json_to_proto(x, v.array_value.values.add())
    elif "kvlistValue" in d:
        v.kvlist_value.SetInParent()
        for kvd in d["kvlistValue"]["values"]:
            kv = v.kvlist_value.values.add()
            kv.key = kvd["key"]
            _otlp_json_to_proto(kvd["value"], kv.value)


def to_python(tag: str | None, text: str | None) -> Any:
    """The stored value as a Python object (str, bool, int, float, bytes, list, dict or None)."""
    if tag is None or tag == TYPE_STRING:
        return text
    if tag in (TYPE_INT, TYPE_STRINDEX):
        return int(text)
    if tag == TYPE_DOUBLE:
        return parse_double_text(text)
    if tag == TYPE_BOOL:
        return text == "true"
    if tag == TYPE_BYTES:
        return base64.b64decode(text)
    if tag == TYPE_EMPTY:
        return None
    if tag in (TYPE_ARRAY, TYPE_KVLIST):
        return orjson.loads(text)
    return _proto_to_python(to_proto(tag, text))


def _proto_to_python(v: common_pb2.AnyValue) -> Any:
    which = v.WhichOneof("value")
    if which is None:
        return None
    if which == "array_value":
        return [_proto_to_python(x) for x in v.array_value.values]
    if which == "kvlist_value":
        return {kv.key: _proto_to_python(kv.value) for kv in v.kvlist_value.values}
    return getattr(v, which)
