"""Per-input-file state shared by the decoders: counts, quarantine, resource and scope registries."""

from __future__ import annotations

import base64
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from otlp_aiops.otlp.batches import ResourceInfo, ScopeInfo

MAX_RAW_BYTES = 1 << 20  # a quarantined record larger than this is kept cut, and says so


@dataclass
class FileContext:
    """Everything the conversion of one input file accumulates, apart from the rows themselves."""

    source_file: str
    signal: str | None = None
    records_read: int = 0
    records_quarantined: int = 0
    messages_read: int = 0
    messages_quarantined: int = 0
    quarantined_by_reason: Counter = field(default_factory=Counter)
    unknown_fields: Counter = field(default_factory=Counter)
    ids_base64: int = 0
    resources: dict[int, dict[str, Any]] = field(default_factory=dict)
    scopes: dict[int, dict[str, Any]] = field(default_factory=dict)
    resource_cache: dict[Any, ResourceInfo] = field(default_factory=dict)
    scope_cache: dict[Any, ScopeInfo] = field(default_factory=dict)
    quarantine: list[dict[str, Any]] = field(default_factory=list)
    text_headers: set = field(default_factory=set)  # resource/scope JSON texts already registered
    # (resource text, url, scope text, url) -> (ResourceInfo, ScopeInfo | None), as parsed by the
    # text decoder; the infos do not depend on the file, so a header repeated message after
    # message (and batch after batch) is parsed once
    text_infos: dict = field(default_factory=dict)
    # Where quarantine entries go as they occur (ingest writes them straight to disk, so millions
    # of bad records never sit in memory); None: kept in ``quarantine``.
    sink: Callable[[dict[str, Any]], None] | None = None
    quarantine_entries: int = 0
    position: str = ""  # of the message being decoded

    def register_resource(self, key: Any, info: ResourceInfo) -> ResourceInfo:
        self.resource_cache[key] = info
        self.resources.setdefault(info.resource_id, info.row)
        return info

    def register_scope(self, key: Any, info: ScopeInfo) -> ScopeInfo:
        self.scope_cache[key] = info
        self.scopes.setdefault(info.scope_id, info.row)
        return info

    def count_unknown(self, obj_type: str, obj: dict, known: frozenset) -> None:
        for k in obj:
            if k not in known:
                self.unknown_fields[f"{obj_type}.{k}"] += 1

    def _add(self, position: str, path: str, code: str, message: str, record: Any) -> None:
        entry: dict[str, Any] = {
            "file": self.source_file,
            "position": position,
            "path": path,
            "signal": self.signal,
            "reason_code": code,
            "reason": message,
        }
        if isinstance(record, str):
            entry["record_text"] = record
        elif isinstance(record, (bytes, bytearray, memoryview)):
            raw = bytes(record)
            entry["record_base64"] = base64.b64encode(raw[:MAX_RAW_BYTES]).decode("ascii")
            entry["record_bytes"] = len(raw)
        else:
            entry["record"] = record
        try:
            too_large = (
                len(orjson.dumps(entry, option=orjson.OPT_NON_STR_KEYS, default=repr)) > MAX_RAW_BYTES * 2
            )
        except (TypeError, ValueError, RecursionError):  # nested too deep for the encoder
            entry.pop("record", None)
            entry["record_omitted"] = "cannot be written as JSON (nested too deep)"
            too_large = False
        if too_large:
            entry.pop("record", None)
            entry["record_omitted"] = "larger than 2 MiB"
        if self.sink is not None:
            self.sink(entry)
        else:
            self.quarantine.append(entry)
        self.quarantine_entries += 1
        self.quarantined_by_reason[code] += 1

    def quarantine_record(self, position: str, path: str, code: str, message: str, record: Any) -> None:
        """A record (span, log record, data point) that could not be converted."""
        self.records_quarantined += 1
        self._add(position, path, code, message, record)

    def quarantine_message(self, position: str, code: str, message: str, raw: Any) -> None:
        """A whole message (line, frame, document) that could not be decoded: its records are unknown."""
        self.messages_quarantined += 1
        self._add(position, "", code, message, raw)
