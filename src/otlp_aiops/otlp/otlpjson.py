"""Write protobuf OTLP messages as OTLP/JSON (the encoding of the OTLP/HTTP JSON protocol).

OTLP/JSON differs from protobuf's canonical JSON mapping in two ways that matter: trace and span
ids are hex strings, not base64, and enums are integers. ``MessageToDict`` gets the rest right
(lowerCamelCase keys, 64-bit integers as strings, NaN/Infinity as strings, other bytes as base64).
"""

from __future__ import annotations

import base64
from typing import Any

import orjson
from google.protobuf.json_format import MessageToDict
from google.protobuf.message import Message

_ID_KEYS = frozenset(["traceId", "spanId", "parentSpanId"])


def _hex_ids(obj: Any) -> None:
    if isinstance(obj, dict):
        for k, v in obj.items():
            if k in _ID_KEYS and isinstance(v, str):
                obj[k] = base64.b64decode(v).hex()
            else:
                _hex_ids(v)
    elif isinstance(obj, list):
        for v in obj:
            _hex_ids(v)


def to_otlp_dict(msg: Message) -> dict[str, Any]:
    """A protobuf OTLP message (``TracesData``, ``ExportLogsServiceRequest``, ...) as an OTLP/JSON dict."""
    d = MessageToDict(msg, use_integers_for_enums=True, preserving_proto_field_name=False)
    _hex_ids(d)
    return d


def to_otlp_json(msg: Message, pretty: bool = False) -> bytes:
    """A protobuf OTLP message as OTLP/JSON bytes (compact, or indented with ``pretty``)."""
    return orjson.dumps(to_otlp_dict(msg), option=orjson.OPT_INDENT_2 if pretty else 0)
