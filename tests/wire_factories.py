"""Hand-encoded protobuf wire pieces and OTLP KeyValues for the decoder tests."""

from __future__ import annotations

from opentelemetry.proto.common.v1 import common_pb2


def varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def key(field: int, wt: int) -> bytes:
    """A field's tag: number and wire type."""
    return varint(field << 3 | wt)


def ld(field: int, payload: bytes) -> bytes:
    """A length-delimited field."""
    return key(field, 2) + varint(len(payload)) + payload


def kv(name: str, value: object) -> common_pb2.KeyValue:
    """A KeyValue of the AnyValue kind that ``value``'s Python type names (a list: an array of
    strings; None: an empty AnyValue)."""
    out = common_pb2.KeyValue(key=name)
    if isinstance(value, bool):
        out.value.bool_value = value
    elif isinstance(value, int):
        out.value.int_value = value
    elif isinstance(value, float):
        out.value.double_value = value
    elif isinstance(value, bytes):
        out.value.bytes_value = value
    elif isinstance(value, list):
        for x in value:
            out.value.array_value.values.add().string_value = x
    elif value is not None:
        out.value.string_value = str(value)
    return out
