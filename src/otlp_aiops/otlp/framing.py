"""How OTLP lies on disk: detect compression and framing from the bytes and split a file into
messages (writing them, in any of these framings, is :mod:`otlp_aiops.otlp.write`).

Read side: :func:`sniff` looks at the first bytes (never the file name) and :func:`iter_messages`
yields one :class:`Message` per JSON line / JSON document / length-prefixed frame / raw protobuf
message, or a :class:`FramingError` for a part that cannot be split off or decoded (a malformed
line, a truncated frame, a corrupt compressed stream). Errors never stop the iteration early unless
nothing after them can be located.

Framings understood (``Format.framing``):

* ``jsonl`` -- one OTLP/JSON object per line (the Collector file exporter's ``format: json``)
* ``json`` -- a single JSON document, usually pretty-printed (the OTLP/HTTP JSON request body)
* ``length_prefixed`` -- each message preceded by its size as a 4-byte big-endian integer
  (the file exporter's ``format: proto``, and any format with ``compression: zstd``); a payload may
  itself be a zstd frame, and may be protobuf or JSON
* ``proto`` -- one raw protobuf message (an OTLP/HTTP protobuf request body)

Compression of the whole file (``Format.compression``): ``gzip`` or ``zstd``, detected by magic.
"""

from __future__ import annotations

import io
import os
import re
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Literal

import orjson
import zstandard
from google.protobuf.message import DecodeError
from opentelemetry.proto.logs.v1 import logs_pb2
from opentelemetry.proto.metrics.v1 import metrics_pb2
from opentelemetry.proto.trace.v1 import trace_pb2

from otlp_aiops.otlp import accel

GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
PARQUET_MAGIC = b"PAR1"
_SNIFF_BYTES = 1 << 16
# The buffered reader over an input file: a JSON line holding a Collector's whole request (~0.4 MB of
# 300 spans) fits in it, so ``readline`` returns it with one copy instead of joining 64 KiB pieces.
_READ_BUFFER = 1 << 20
_OTLP_JSON_KEYS = frozenset(
    [
        "resourceSpans",
        "resource_spans",
        "resourceLogs",
        "resource_logs",
        "resourceMetrics",
        "resource_metrics",
    ]
)

Framing = Literal["jsonl", "json", "length_prefixed", "proto", "empty", "unknown"]


@dataclass(frozen=True)
class Format:
    compression: str  # "none" | "gzip" | "zstd"
    framing: Framing
    why: str = ""  # for "unknown": what the bytes looked like


@dataclass
class Message:
    """One decoded unit of a file: a parsed JSON value or the bytes of a protobuf message.

    With ``iter_messages(..., lazy_json=True)`` a JSON message comes unparsed: ``payload`` is None
    and ``text`` holds its bytes (the caller decodes the text, or parses it, and reports malformed
    JSON itself)."""

    position: str  # "line 12", "message 3 at byte 1024", "document"
    payload: Any  # dict / list for JSON, bytes for protobuf
    is_json: bool
    frame_compressed: bool = False
    text: bytes | None = None


@dataclass
class FramingError:
    """A part of the file that could not be turned into a message."""

    position: str
    code: str  # malformed_json | truncated_message | decompression_error
    message: str
    raw: bytes


class UnreadableInput(Exception):
    """The file cannot be read at all (I/O error, or no OTLP framing recognised)."""


DEFAULT_MAX_PART_BYTES = 256 << 20
DEFAULT_MAX_EMPTY_FRAMES = 4096


@dataclass(frozen=True)
class Limits:
    """Bounds on what one part of a file may cost, whatever the file claims.

    ``max_part_bytes``: the most bytes any single part (a JSON line, a JSON document or one of its
    resource blocks, a length-prefixed frame after decompression, a top-level protobuf field) may
    hold once decompressed; a larger part is skipped as it is read and quarantined as ``too_large``.
    ``max_empty_frames``: after this many zero-length frames in a row the rest of a length-prefixed
    stream is not read (a gzip of zeros is billions of them) and the stop is quarantined as
    ``empty_frames``."""

    max_part_bytes: int = DEFAULT_MAX_PART_BYTES
    max_empty_frames: int = DEFAULT_MAX_EMPTY_FRAMES

    def __post_init__(self) -> None:
        if self.max_part_bytes < 1 or self.max_empty_frames < 1:
            raise ValueError(f"limits must be positive: {self}")


DEFAULT_LIMITS = Limits()


class JsonTooDeep(ValueError):
    """JSON nested deeper than the parsers recurse."""


def _too_large(position: str, what: str, size: int | None, limits: Limits, head: bytes = b"") -> FramingError:
    """A part beyond ``max_part_bytes``; ``size`` when it is known (None: it was not read to the end)."""
    how = f"is {size:,} bytes, more than" if size is not None else "is larger than"
    return FramingError(
        position,
        "too_large",
        f"{what} {how} the limit max_part_bytes = {limits.max_part_bytes:,} "
        "(ingest setting max_part_bytes / --max-part-bytes)",
        head,
    )


def _discard(stream: IO[bytes], n: int) -> int:
    """Read and drop n bytes of a stream in bounded chunks; the number actually dropped."""
    done = 0
    while done < n:
        got = len(stream.read(min(1 << 20, n - done)))
        if not got:
            break
        done += got
    return done


_TOO_LARGE_HEAD = 4096  # bytes of a too-large part kept in its quarantine entry


# --------------------------------------------------------------------------------------------------
# reading
# --------------------------------------------------------------------------------------------------


class _DecompressingReader(io.RawIOBase):
    """A whole-file gzip or zstd stream (several members / frames allowed), decompressed as read.

    Each step decompresses a bounded amount: gzip with ``max_length``, zstd by feeding the
    compressed bytes in small slices (a zstd block needs at least 3 input bytes and holds at most
    128 KiB, so a 1 KiB slice yields at most ~43 MiB however the file was built). A compression
    bomb therefore never sits decompressed in memory, only the part being read.

    A stream that is cut short or corrupt does not raise: everything that could be decompressed
    is returned, then end-of-file, and ``problem`` says what went wrong (the standard readers
    either drop the last buffer's worth of good data when they raise, or, for zstd, say nothing).
    """

    _IN_CHUNK = 1 << 16
    _ZSTD_SLICE = 1 << 10
    _GZIP_OUT = 1 << 20

    def __init__(self, raw: IO[bytes], kind: str) -> None:
        self.raw = raw
        self.kind = kind
        self.problem: str | None = None
        self._d = self._new()
        self._in_member = False
        self._out = b""
        self._pos = 0
        self._done = False
        self._pending = b""  # compressed bytes read but not yet fed
        self._off = 0

    def _new(self) -> Any:
        if self.kind == "gzip":
            return zlib.decompressobj(wbits=31)
        return zstandard.ZstdDecompressor().decompressobj()

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        while self._pos >= len(self._out):
            if self._done:
                return 0
            self._out, self._pos = self._step(), 0
        n = min(len(b), len(self._out) - self._pos)
        b[:n] = self._out[self._pos : self._pos + n]
        self._pos += n
        return n

    def _step(self) -> bytes:
        """Some decompressed bytes (possibly none); sets ``_done`` at the end of the stream."""
        if self._off >= len(self._pending):
            self._pending, self._off = self.raw.read(self._IN_CHUNK), 0
            if not self._pending:
                if self._in_member and self.kind == "gzip":
                    # output zlib still holds back under max_length, from input already fed
                    try:
                        out = self._d.decompress(b"", self._GZIP_OUT)
                    except zlib.error:
                        out = b""
                    if self._d.eof:
                        self._pending, self._off = self._d.unused_data, 0
                        self._d = self._new()
                        self._in_member = False
                    if out or self._pending:
                        return out
                if self._in_member:
                    unit = "gzip member" if self.kind == "gzip" else "zstd frame"
                    self.problem = f"the {self.kind} stream is cut: the file ends inside a {unit}"
                self._done = True
                return b""
        try:
            if self.kind == "gzip":
                data = self._pending[self._off :] if self._off else self._pending
                out = self._d.decompress(data, self._GZIP_OUT)
                self._pending, self._off = self._d.unconsumed_tail, 0
            else:
                end = self._off + self._ZSTD_SLICE
                out = self._d.decompress(self._pending[self._off : end])
                self._off = end
        except (zlib.error, zstandard.ZstdError) as e:
            self.problem = f"corrupt {self.kind} data: {e}"
            self._done = True
            return b""
        self._in_member = True
        if self._d.eof:
            # the next member / frame, if any, starts with the bytes this one did not use
            rest = self._pending[self._off :]
            self._pending, self._off = self._d.unused_data + rest, 0
            self._d = self._new()
            self._in_member = False
        return out

    def close(self) -> None:
        self.raw.close()
        super().close()


def _open_decompressed(path: Path) -> tuple[IO[bytes], str, _DecompressingReader | None]:
    # One buffer over the unbuffered file (not a buffered reader over another): a line is copied once
    f = open(path, "rb", buffering=0)  # noqa: SIM115 -- returned to the caller, who closes it
    head = f.read(4)
    f.seek(0)
    kind = "gzip" if head[:2] == GZIP_MAGIC else "zstd" if head == ZSTD_MAGIC else None
    if kind is None:
        return io.BufferedReader(f, _READ_BUFFER), "none", None
    reader = _DecompressingReader(f, kind)
    return io.BufferedReader(reader, _READ_BUFFER), kind, reader


def _peek(stream: IO[bytes], n: int = _SNIFF_BYTES) -> bytes:
    """Up to n bytes from the start of a buffered stream, without consuming them."""
    data = stream.peek(n)  # type: ignore[attr-defined]
    return data[:n]


def _is_otlp_json_line(line: bytes) -> bool:
    try:
        obj = orjson.loads(line)
    except orjson.JSONDecodeError:
        return False
    return isinstance(obj, dict) and not _OTLP_JSON_KEYS.isdisjoint(obj)


def _is_json_object_line(line: bytes) -> bool:
    try:
        return isinstance(orjson.loads(line), dict)
    except orjson.JSONDecodeError:
        return False


_JSON_START = re.compile(rb"[{\[][ \t\r\n]*(?:[\"{\[\]}]|$)")
# The same after what ``lstrip(b"\xef\xbb\xbf \t\r\n")`` would remove, matched in place (no copy).
_JSON_START_AFTER_WS = re.compile(rb"[\xef\xbb\xbf \t\r\n]*" + _JSON_START.pattern)
_RESOURCE_TYPES = (trace_pb2.ResourceSpans, logs_pb2.ResourceLogs, metrics_pb2.ResourceMetrics)


def _json_like(data: bytes) -> bool:
    """Whether bytes start like JSON text: an object or array opening, then a key, value or close."""
    return _JSON_START_AFTER_WS.match(data) is not None


def _looks_like_otlp_proto(head: bytes) -> str | None:
    """How sure it is that bytes starting with 0x0a are a protobuf OTLP message (field 1 = a
    Resource* block), not text that happens to start with a newline: "clean" when the first block
    lies within ``head`` and parses as a Resource* without unknown fields, "plausible" when it runs
    past ``head`` but its first fields have Resource* tags, else None."""
    if head[:1] != b"\x0a":
        return None
    try:
        n, i = _varint(head, 1)
    except ValueError:
        return None
    if n == 0:
        return "plausible"
    if i + n <= len(head):
        block = head[i : i + n]
        for rtype in _RESOURCE_TYPES:
            try:
                m = rtype.FromString(block)
            except DecodeError:
                continue
            m.DiscardUnknownFields()
            if m.ByteSize() == n:
                return "clean"
        # Not clean (a bad record inside, e.g. invalid UTF-8): still OTLP if the block is made of
        # Resource* fields 1-3, all length-delimited, that exactly fill it; decoded record by record.
        if n and _resource_shaped(head, i, i + n):
            return "plausible"
        return None
    # The block runs past what we have: its first fields must be Resource* fields 1-3, all
    # length-delimited (tags 0x0a, 0x12, 0x1a).
    if i >= len(head) or head[i] not in (0x0A, 0x12, 0x1A):
        return None
    try:
        for field, wt, _, _ in split_fields(head, i, min(i + n, len(head))):
            if field > 3 or wt != 2:
                return None
    except ValueError:
        pass  # cut by the end of what we have
    return "plausible"


def _resource_shaped(buf: bytes, start: int, end: int) -> bool:
    """Whether buf[start:end] is well-formed wire format of fields 1-3, all length-delimited."""
    try:
        return all(field <= 3 and wt == 2 for field, wt, _, _ in split_fields(buf, start, end))
    except ValueError:
        return False


def _sniff_head(head: bytes, compression: str) -> Format:
    if not head:
        return Format(compression, "empty")
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    if not text:
        return Format(compression, "empty")
    proto = _looks_like_otlp_proto(head)
    if proto == "clean":
        return Format(compression, "proto")
    if _json_like(text):
        lines = [ln for ln in text.split(b"\n")[:-1] if ln.strip()]
        if not lines or _is_json_object_line(lines[0]):
            # A whole object on the first line (a pretty-printed document's first line never is),
            # or a first line longer than the sniff window: read line by line.
            return Format(compression, "jsonl")
        # A pretty-printed document, unless later lines are whole OTLP objects (a bad first line).
        if any(_is_otlp_json_line(ln) for ln in lines[1:16]):
            return Format(compression, "jsonl")
        return Format(compression, "json")
    if proto == "plausible":
        return Format(compression, "proto")
    # A 4-byte big-endian length first: its top byte is small, while a raw OTLP message starts
    # with the tag 0x0a (field 1, length-delimited).
    if len(head) >= 4 and head[0] < 0x0A:
        (n,) = struct.unpack(">I", head[:4])
        nxt = head[4:8]
        if n == 0 or nxt[:1] in (b"\x0a", b"{") or nxt == ZSTD_MAGIC:
            return Format(compression, "length_prefixed")
    if head[:4] == PARQUET_MAGIC:
        return Format(compression, "unknown", "a Parquet file")
    return Format(compression, "unknown", f"starts with bytes {head[:8].hex()}")


def sniff(path: str | os.PathLike) -> Format:
    """Detect compression and framing of an OTLP file from its first bytes."""
    path = Path(path)
    try:
        stream, compression, reader = _open_decompressed(path)
    except OSError as e:
        raise UnreadableInput(f"{path}: cannot open: {e}") from e
    try:
        head = _peek(stream)
        if not head and reader is not None and reader.problem:
            return Format(compression, "unknown", f"cannot decompress: {reader.problem}")
        return _sniff_head(head, compression)
    except OSError as e:
        raise UnreadableInput(f"{path}: cannot read: {e}") from e
    finally:
        stream.close()


def parse_json(raw: bytes) -> Any:
    """Parse JSON text; ValueError (with the position) when it is malformed."""
    return _parse_json(raw)


def json_error_message(e: Exception) -> str:
    return _json_error(e)


def _parse_json(raw: bytes) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as e:
        if "recursion" in str(e).lower():
            raise JsonTooDeep(f"JSON nested too deep to read: {e}") from None
        # The standard library also reads NaN / Infinity literals and integers beyond 64 bits.
        import json

        try:
            return json.loads(raw if isinstance(raw, (bytes, str)) else bytes(raw))
        except RecursionError:
            raise JsonTooDeep("JSON nested too deep to read (the parser's recursion limit)") from None


def _json_error(e: Exception) -> str:
    if isinstance(e, JsonTooDeep):
        return str(e).replace("\n", " ")
    return f"malformed JSON: {e}".replace("\n", " ")


def json_error_code(e: Exception) -> str:
    """The quarantine reason for a JSON text that does not parse."""
    return "nested_too_deep" if isinstance(e, JsonTooDeep) else "malformed_json"


class _RestOfLine(io.RawIOBase):
    """The rest of one (huge) line of a stream, after ``first``: up to and including its newline."""

    def __init__(self, stream: IO[bytes], first: bytes) -> None:
        self.stream = stream
        self.pending = first
        self.done = first.endswith(b"\n")

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        if not self.pending and not self.done:
            self.pending = self.stream.readline(len(b))
            self.done = not self.pending or self.pending.endswith(b"\n")
        n = min(len(b), len(self.pending))
        b[:n] = self.pending[:n]
        self.pending = self.pending[n:]
        return n


def _skip_line(stream: IO[bytes]) -> int:
    """Read and drop the rest of a line, in bounded chunks; the number of bytes dropped."""
    n = 0
    while True:
        chunk = stream.readline(1 << 20)
        n += len(chunk)
        if not chunk or chunk.endswith(b"\n"):
            return n


def _iter_jsonl(
    stream: IO[bytes], lazy: bool = False, limits: Limits = DEFAULT_LIMITS, lineno: int = 0
) -> Iterator[Message | FramingError]:
    """``lineno``: the lines before the stream's start (a block of a file, :func:`iter_block`)."""
    cap = limits.max_part_bytes
    while True:
        # A line longer than STREAM_DOCUMENT_BYTES (one huge request) is split into its resource
        # blocks as it is read, like a large document, rather than held whole.
        limit = max(min(STREAM_DOCUMENT_BYTES, cap + 1), 1)
        line = stream.readline(limit)
        if not line:
            return
        lineno += 1
        if len(line) >= limit and not line.endswith(b"\n"):
            if accel.wire is None:  # no scanner: the whole line, up to the limit
                more = stream.readline(cap + 1 - len(line)) if len(line) <= cap else b""
                line += more
                if len(line) > cap and not line.endswith(b"\n"):
                    size = len(line) + _skip_line(stream)
                    yield _too_large(f"line {lineno}", "the line", size, limits, line[:_TOO_LARGE_HEAD])
                    continue
            else:
                rest = io.BufferedReader(_RestOfLine(stream, line), 1 << 20)
                for m in _iter_json_document_streamed(rest, limits=limits):
                    m.position = f"line {lineno}, {m.position}"
                    yield m
                continue
        if line[:1].isspace() and not line.strip():  # strip copies the line: only when it may be blank
            continue
        if lazy:
            yield Message(f"line {lineno}", None, True, text=line)
            continue
        try:
            yield Message(f"line {lineno}", _parse_json(line), True)
        except ValueError as e:
            yield FramingError(f"line {lineno}", json_error_code(e), _json_error(e), line.rstrip(b"\r\n"))


def _zstd_frame(payload: bytes, cap: int) -> bytes | None:
    """One zstd frame decompressed, or None when it expands beyond ``cap`` bytes (found out
    while decompressing in small slices, so the expansion never sits in memory). ZstdError when it
    is corrupt or incomplete."""
    d = zstandard.ZstdDecompressor().decompressobj()
    out: list[bytes] = []
    total = 0
    declared = zstandard.frame_content_size(payload)
    if declared > cap:
        return None
    step = _DecompressingReader._ZSTD_SLICE
    view = memoryview(payload)
    for i in range(0, len(payload), step):
        chunk = d.decompress(view[i : i + step])
        total += len(chunk)
        if total > cap:
            return None
        out.append(chunk)
        if d.eof:
            break
    if not d.eof:
        raise zstandard.ZstdError("the frame is incomplete")
    return b"".join(out)


def _decode_payload(
    position: str, payload: bytes, lazy: bool = False, limits: Limits = DEFAULT_LIMITS
) -> Message | FramingError:
    compressed = payload[:4] == ZSTD_MAGIC
    if compressed:
        try:
            plain = _zstd_frame(payload, limits.max_part_bytes)
        except zstandard.ZstdError as e:
            return FramingError(
                position, "decompression_error", f"zstd frame cannot be decompressed: {e}", payload
            )
        if plain is None:
            return _too_large(
                position, "the zstd frame, decompressed,", None, limits, payload[:_TOO_LARGE_HEAD]
            )
        payload = plain
    # JSON-like first: it is a regex on the first bytes, while the protobuf check parses a block
    if _json_like(payload) and _looks_like_otlp_proto(payload) != "clean":
        if lazy:
            return Message(position, None, True, compressed, text=payload)
        try:
            return Message(position, _parse_json(payload), True, compressed)
        except ValueError as e:
            return FramingError(position, json_error_code(e), _json_error(e), payload)
    return Message(position, payload, False, compressed)


def _iter_length_prefixed(
    stream: IO[bytes], lazy: bool = False, limits: Limits = DEFAULT_LIMITS, offset: int = 0, index: int = 0
) -> Iterator[Message | FramingError]:
    """``offset``, ``index``: the stream's start in the file and the messages before it (a block of a
    file, :func:`iter_block`; it starts after a non-empty frame, so no run of empty frames is cut)."""
    empty_run = 0
    while True:
        head = stream.read(4)
        if not head:
            return
        index += 1
        position = f"message {index} at byte {offset}"
        if len(head) < 4:
            yield FramingError(
                position,
                "truncated_message",
                f"{len(head)} stray bytes where a 4-byte length was expected",
                head,
            )
            return
        (n,) = struct.unpack(">I", head)
        if n == 0:
            offset += 4
            empty_run += 1
            if empty_run >= limits.max_empty_frames:
                yield FramingError(
                    position,
                    "empty_frames",
                    f"{empty_run:,} empty frames in a row: the rest of the stream is not read "
                    f"(limit max_empty_frames = {limits.max_empty_frames:,})",
                    b"",
                )
                return
            yield Message(position, b"", False)
            continue
        empty_run = 0
        body, problem = _read_body(stream, n, head, position, "frame", limits)
        if problem is not None:
            yield problem
            if problem.code != "too_large":
                return
            offset += 4 + n
            continue
        offset += 4 + n
        yield _decode_payload(position, body, lazy, limits)


_PART_NAMES = {"frame": "the frame", "field": "the top-level field"}  # as a too_large message names them


def _read_body(
    stream: IO[bytes], n: int, head: bytes, position: str, what: str, limits: Limits
) -> tuple[bytes, FramingError | None]:
    """The ``n`` bytes of a part (a ``what``: frame or field) whose ``head`` was just read, or the
    problem with it: too_large (it was skipped, reading goes on), truncated_message (the stream ends
    first, reading stops)."""
    if n > limits.max_part_bytes:
        got = _discard(stream, n)
        if got >= n:
            return b"", _too_large(position, _PART_NAMES[what], n, limits, head)
        short, raw = got, head
    else:
        body = stream.read(n)
        if len(body) == n:
            return body, None
        short, raw = len(body), head + body
    message = f"{what} declares {n} bytes but the file ends after {short}"
    return b"", FramingError(position, "truncated_message", message, raw)


def _read_varint(stream: IO[bytes]) -> tuple[int, bytes]:
    """A varint read byte by byte from a stream: (value, its bytes); (-1, b"") at a clean end."""
    raw = bytearray()
    shift = result = 0
    while True:
        b = stream.read(1)
        if not b:
            if raw:
                raise ValueError("the file ends inside a varint")
            return -1, b""
        raw += b
        result |= (b[0] & 0x7F) << shift
        if not b[0] & 0x80:
            return result, bytes(raw)
        shift += 7
        if shift > 63:
            raise ValueError("varint is longer than 10 bytes")


def _iter_raw_proto(stream: IO[bytes], limits: Limits = DEFAULT_LIMITS) -> Iterator[Message | FramingError]:
    """A single raw protobuf message, streamed one top-level field at a time.

    Every OTLP top-level message is ``repeated Resource* = 1``, so each top-level field is yielded
    as a message of the same type holding just that field: memory stays bounded by the largest
    resource block, and a message cut short keeps every complete block before the cut.
    """
    offset = 0
    index = 0
    while True:
        position = f"message 1, top-level field {index + 1} at byte {offset}"
        try:
            key, key_raw = _read_varint(stream)
            if key < 0:
                return
            index += 1
            wt = key & 7
            if wt == 2:
                n, len_raw = _read_varint(stream)
                if n < 0:
                    raise ValueError("the file ends before the field's length")
                head = key_raw + len_raw
            elif wt in (0, 1, 5):
                head = key_raw
                n = {1: 8, 5: 4}.get(wt, 0)
                if wt == 0:
                    _, v_raw = _read_varint(stream)
                    head += v_raw
            else:
                raise ValueError(f"wire type {wt} is not valid at the top level of an OTLP message")
        except ValueError as e:
            rest = stream.read()
            yield FramingError(position, "truncated_message", f"not well-formed protobuf: {e}", rest)
            return
        body, problem = _read_body(stream, n, head, position, "field", limits)
        if problem is not None:
            yield problem
            if problem.code != "too_large":
                return
            offset += len(head) + n
            continue
        offset += len(head) + n
        yield Message(position, head + body, False)


# A JSON document larger than this is split into its resource blocks as it is read (with the C
# scanner), instead of being parsed whole: memory then stays bounded by the largest block.
STREAM_DOCUMENT_BYTES = 64 << 20


# A resource block larger than this (read whole, within max_part_bytes) is not parsed whole: it is
# cut into messages of the same resource holding ~SPLIT_CHUNK_BYTES of its records each, so that
# the parsed objects stay small; memory is then bounded by the block's bytes, not ~10x them.
SPLIT_BLOCK_BYTES = 16 << 20
SPLIT_CHUNK_BYTES = 4 << 20
_SCOPE_KEYS = {
    "resourceSpans": ("scopeSpans", "scope_spans"),
    "resource_spans": ("scopeSpans", "scope_spans"),
    "resourceLogs": ("scopeLogs", "scope_logs"),
    "resource_logs": ("scopeLogs", "scope_logs"),
    "resourceMetrics": ("scopeMetrics", "scope_metrics"),
    "resource_metrics": ("scopeMetrics", "scope_metrics"),
}
_ITEM_KEYS = ("spans", "logRecords", "log_records", "metrics")
_WS = b" \t\r\n"


_SCAN_WINDOW = 4 << 20


def _member_events(buf: Any) -> Iterator[tuple]:
    """The members of the JSON object text ``buf`` (bytes or a memoryview), without parsing their
    values, scanned a window at a time (so the events never pile up): ("key", name, offset of its
    opening quote, offset of its value), ("array", name) when that value is an array, and ("item",
    name, start, end) for each object or array item of it. ValueError if the text is not one
    balanced object."""
    if bytes(buf[:1]) != b"{":
        raise ValueError("not a JSON object")
    scan = accel.wire.json_scan
    n = len(buf)
    pos, depth, in_string, escape, str_start, item_start = 0, 0, False, False, -1, -1
    name: str | None = None
    in_array = False
    while pos < n:
        end = min(n, pos + _SCAN_WINDOW)
        events, depth, in_string, escape, str_start, item_start = scan(
            buf[:end], pos, depth, in_string, escape, str_start, item_start
        )
        pos = end
        for kind, a, b in events:
            if kind == 0:
                j = b + 1
                while j < n and buf[j] in _WS:
                    j += 1
                if j < n and buf[j] == 0x3A:  # ':' -- a key, not a string value
                    name, in_array = bytes(buf[a:b]).decode("utf-8", "replace"), False
                    yield ("key", name, a - 1, j + 1)
            elif kind == 1:
                if name is None:
                    raise ValueError("an array where a key was expected")
                in_array = True
                yield ("array", name)
            elif in_array:  # (items of an object value's inner arrays are not the member's items)
                yield ("item", name, a, b)
    if depth != 0 or in_string:
        raise ValueError("the object is not closed")


def _object_header(buf: Any, big: tuple[str, ...]) -> tuple[dict[str, Any], str | None]:
    """The members of a JSON object parsed, except the first array member named in ``big``, whose
    name is returned instead (None if there is none)."""
    keys: list[tuple[str, int, int]] = []
    arrays: dict[str, list[Any]] = {}
    big_name = None
    for ev in _member_events(buf):
        if ev[0] == "key":
            keys.append(ev[1:])
        elif ev[0] == "array":
            if ev[1] in big and big_name is None:
                big_name = ev[1]
            arrays.setdefault(ev[1], [])
        elif ev[1] != big_name:
            arrays[ev[1]].append(_parse_json(buf[ev[2] : ev[3]]))
    end = len(buf) - 1
    while end > 0 and buf[end] != 0x7D:  # the closing '}'
        end -= 1
    header: dict[str, Any] = {}
    for k, (name, _, start) in enumerate(keys):
        if name in arrays:
            if name != big_name:
                header[name] = arrays[name]
            continue
        stop = keys[k + 1][1] if k + 1 < len(keys) else end
        header[name] = _parse_json(bytes(buf[start:stop]).strip(_WS).removesuffix(b",").strip(_WS))
    return header, big_name


def _array_items(buf: Any, name: str) -> Iterator[tuple[int, int]]:
    """(start, end) of each item of the first array member ``name`` of a JSON object."""
    seen = False
    for ev in _member_events(buf):
        if ev[0] == "array" and ev[1] == name and not seen:
            seen = True
        elif ev[0] == "item" and ev[1] == name and seen:
            yield ev[2], ev[3]
        elif ev[0] == "key" and seen:
            return


def _split_block(key: str, block: Any, position: str) -> Iterator[Message | FramingError]:
    """One large resource block (bytes or a memoryview) as several messages of the same resource
    (and scope), each with ~SPLIT_CHUNK_BYTES of its records, parsed one chunk at a time. Each
    level is scanned twice (its other members first, then its big array), so no list of all the
    records' offsets is ever built."""
    try:
        yield from _split_block_parts(key, block, position)
    except ValueError as e:  # a malformed member: the block as a whole is the bad part
        yield FramingError(position, json_error_code(e), _json_error(e), bytes(block[:_TOO_LARGE_HEAD]))


def _split_block_parts(key: str, block: Any, position: str) -> Iterator[Message | FramingError]:
    header, scope_key = _object_header(block, _SCOPE_KEYS[key])
    if scope_key is None:
        yield Message(position, {key: [_parse_json(block)]}, True)
        return
    for si, (sa, sb) in enumerate(_array_items(block, scope_key)):
        scope = block[sa:sb]
        sheader, item_key = _object_header(scope, _ITEM_KEYS) if sb - sa > SPLIT_CHUNK_BYTES else ({}, None)
        if item_key is None:
            msg = {key: [{**header, scope_key: [_parse_json(scope)]}]}
            yield Message(f"{position}, {scope_key}[{si}]", msg, True)
            continue
        chunk: list[Any] = []
        size = first = count = 0
        for ia, ib in _array_items(scope, item_key):
            chunk.append(_parse_json(scope[ia:ib]))
            size += ib - ia
            count += 1
            if size >= SPLIT_CHUNK_BYTES:
                msg = {key: [{**header, scope_key: [{**sheader, item_key: chunk}]}]}
                yield Message(f"{position}, {scope_key}[{si}].{item_key}[{first}:{count}]", msg, True)
                chunk, size, first = [], 0, count
        if chunk or not count:
            msg = {key: [{**header, scope_key: [{**sheader, item_key: chunk}]}]}
            yield Message(f"{position}, {scope_key}[{si}].{item_key}[{first}:{count}]", msg, True)


def _iter_json_document_streamed(
    stream: IO[bytes], chunk_size: int = 16 << 20, limits: Limits = DEFAULT_LIMITS
) -> Iterator[Message | FramingError]:
    """One message per item of each top-level array (``{"resourceSpans": [item, …]}`` yields
    ``{"resourceSpans": [item]}`` per item), reading the document in chunks.

    An item larger than ``limits.max_part_bytes`` is dropped as it is read (only its first bytes
    are kept) and reported as ``too_large``; so is a top-level string value that large."""
    scan = accel.wire.json_scan
    cap = limits.max_part_bytes
    chunk_size = max(1, min(chunk_size, cap))
    buf = bytearray()
    base = 0  # offset in the document of buf[0]
    pos, depth, in_string, escape, str_start, item_start = 0, 0, False, False, -1, -1
    last_string = key = None
    index = 0
    skipping = -1  # document offset of the too-large item being dropped, or -1
    skip_head = b""
    string_lost = False  # a top-level string too large to keep
    head = b""  # the document's first bytes, for a report
    arrays = 0  # top-level arrays seen
    while True:
        data = stream.read(chunk_size)
        if len(head) < _TOO_LARGE_HEAD:
            head += data[: _TOO_LARGE_HEAD - len(head)]
        buf += data
        try:
            events, depth, in_string, escape, str_start, item_start = scan(
                buf, pos, depth, in_string, escape, str_start, item_start
            )
        except ValueError as e:
            yield FramingError("document", "malformed_json", f"malformed JSON: {e}", bytes(buf))
            return
        pos = len(buf)
        for kind, a, b in events:
            if kind == 0:
                last_string = "<too large>" if string_lost else buf[a:b].decode("utf-8", "replace")
                string_lost = False
            elif kind == 1:
                key, index = last_string, 0
                arrays += 1
            else:
                position = f"document, {key}[{index}] at byte {base + a if skipping < 0 else skipping}"
                index += 1
                if skipping >= 0:
                    size = base + b - skipping
                    skipping = -1
                    yield _too_large(position, "the block", size, limits, skip_head)
                    continue
                if b - a > SPLIT_BLOCK_BYTES and key in _SCOPE_KEYS:
                    view = memoryview(buf)[a:b]  # no copy; released before buf is resized
                    try:
                        yield from _split_block(key, view, position)
                    finally:
                        view.release()
                    continue
                try:
                    yield Message(position, {key: [_parse_json(bytes(buf[a:b]))]}, True)
                except ValueError as e:
                    yield FramingError(position, json_error_code(e), _json_error(e), bytes(buf[a:b]))
        if item_start >= 0 and pos - item_start > cap:  # an item too large to hold: drop what is read
            if skipping < 0:
                skipping = base + item_start
                skip_head = bytes(buf[item_start : item_start + _TOO_LARGE_HEAD])
            item_start = 0  # (the scanner only hands it back in the item's end event)
            if in_string:
                str_start = 0
            base += pos
            del buf[:]
            pos = 0
        elif in_string and item_start < 0 and pos - str_start > cap:  # a huge top-level string
            string_lost = True
            str_start = 0
            base += pos
            del buf[:]
            pos = 0
        keep = min(x for x in (item_start, str_start if in_string else -1, pos) if x >= 0)
        if keep:
            del buf[:keep]
            base += keep
            pos -= keep
            item_start = item_start - keep if item_start >= 0 else -1
            str_start = str_start - keep if str_start >= 0 else -1
        if not data:
            break
    if depth != 0 or in_string:
        yield FramingError(
            f"document, byte {base}",
            "malformed_json",
            f"malformed JSON: the document ends inside {'a string' if in_string else 'an object or array'}"
            f" (nesting depth {depth})",
            bytes(buf),
        )
    elif not arrays:  # nothing that could hold resource blocks: never dropped silently
        size = base + len(buf)
        if head.lstrip(b"\xef\xbb\xbf \t\r\n")[:1] == b"{":
            yield FramingError(
                "document",
                "not_otlp",
                f"no resourceSpans / resourceMetrics / resourceLogs array at the top level of {size:,} bytes",
                head,
            )
        else:
            yield FramingError(
                "document", "malformed_json", f"malformed JSON: no JSON object in {size:,} bytes", head
            )


def iter_messages(
    path: str | os.PathLike, fmt: Format | None = None, lazy_json: bool = False, limits: Limits | None = None
) -> Iterator[Message | FramingError]:
    """Split an OTLP file into messages. Raises :class:`UnreadableInput` only if it cannot be opened.

    ``lazy_json``: JSON lines, frames and (not streamed) documents come unparsed (see Message).
    ``limits``: the most any one part may cost (:class:`Limits`); larger parts come as
    ``too_large`` errors, and memory stays bounded by them whatever the file holds."""
    limits = limits or DEFAULT_LIMITS
    path = Path(path)
    fmt = fmt or sniff(path)
    if fmt.framing in ("empty", "unknown"):
        return
    try:
        stream, _, reader = _open_decompressed(path)
    except OSError as e:
        raise UnreadableInput(f"{path}: cannot open: {e}") from e
    with stream:
        if fmt.framing == "jsonl":
            items = _iter_jsonl(stream, lazy_json, limits)
        elif fmt.framing == "length_prefixed":
            items = _iter_length_prefixed(stream, lazy_json, limits)
        elif fmt.framing == "proto":
            items = _iter_raw_proto(stream, limits)
        else:
            items = _iter_document(stream, lazy_json, limits)
        last = None
        for item in items:
            if last is not None:
                yield last
            last = item
        if reader is not None and reader.problem:
            # A cut compressed stream usually also cuts the last message: one entry says both.
            cut_line = (
                isinstance(last, Message)
                and last.text is not None
                and fmt.framing == "jsonl"
                and not last.text.endswith(b"\n")
            )
            if cut_line:  # the line the cut fell in, still unparsed (lazy): it is the cut part
                last = FramingError(
                    last.position, "decompression_error", f"{reader.problem}; the line is cut", last.text
                )
            elif isinstance(last, FramingError):
                last = FramingError(
                    last.position, "decompression_error", f"{reader.problem}; {last.message}", last.raw
                )
            else:
                if last is not None:
                    yield last
                last = FramingError(f"{fmt.compression} stream", "decompression_error", reader.problem, b"")
        if last is not None:
            yield last


# --------------------------------------------------------------------------------------------------
# blocks of a large file: byte ranges cut at record boundaries, each converted on its own (Ray)
# --------------------------------------------------------------------------------------------------

SPLITTABLE = ("jsonl", "length_prefixed")  # of an uncompressed file; the rest is read whole


@dataclass(frozen=True)
class Block:
    """Bytes ``start`` to ``end`` of a file, cut where a line / a length-prefixed frame begins.
    ``before``: the lines (jsonl) or messages (length_prefixed) before ``start``, so that positions
    read from the block are the whole file's."""

    number: int
    start: int
    end: int
    before: int


def split_blocks(
    path: str | os.PathLike, fmt: Format, block_bytes: int, limits: Limits | None = None
) -> list[Block]:
    """``path`` cut into blocks of about ``block_bytes`` (at least), at record boundaries: newlines
    for JSON lines, frame starts (walking the length prefixes) for length-prefixed files. One block
    (the whole file) when it cannot be cut: compressed, another framing, or no boundary found.
    A boundary never falls inside a run of empty frames, nor after a frame the reader stops at
    (truncated, or the ``max_empty_frames``-th empty one): the block holding it runs to the end."""
    limits = limits or DEFAULT_LIMITS
    size = os.path.getsize(path)
    starts: list[tuple[int, int]] = [(0, 0)]  # (byte, lines / messages before it)
    if fmt.compression == "none" and fmt.framing in SPLITTABLE and size > block_bytes:
        with open(path, "rb", buffering=1 << 20) as f:
            if fmt.framing == "jsonl":
                pos = lines = 0
                target = block_bytes
                while True:
                    chunk = f.read(4 << 20)
                    if not chunk:
                        break
                    i = 0
                    while pos + len(chunk) > target:  # the first newline at or after `target`
                        j = chunk.find(b"\n", max(i, target - pos))
                        if j < 0:
                            break
                        lines += chunk.count(b"\n", i, j + 1)
                        i = j + 1
                        if pos + i < size:
                            starts.append((pos + i, lines))
                        target = pos + i + block_bytes
                    lines += chunk.count(b"\n", i)
                    pos += len(chunk)
            else:
                offset = index = empty_run = 0
                target = block_bytes
                while offset + 4 <= size:
                    head = f.read(4)
                    if len(head) < 4:
                        break
                    (n,) = struct.unpack(">I", head)
                    index += 1
                    if n == 0:
                        empty_run += 1
                        if empty_run >= limits.max_empty_frames:
                            break  # the reader stops here
                        offset += 4
                        continue
                    empty_run = 0
                    if offset + 4 + n > size:
                        break  # truncated: the reader stops here
                    offset += 4 + n
                    f.seek(offset)
                    if offset >= target and offset < size:
                        starts.append((offset, index))
                        target = offset + block_bytes
    ends = [s for s, _ in starts[1:]] + [size]
    return [Block(k, s, e, before) for k, ((s, before), e) in enumerate(zip(starts, ends, strict=True))]


class _Range(io.RawIOBase):
    """Bytes ``start`` to ``end`` of a file."""

    def __init__(self, f: IO[bytes], start: int, end: int) -> None:
        f.seek(start)
        self.f = f
        self.left = end - start

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        n = min(len(b), self.left)
        if n <= 0:
            return 0
        got = self.f.readinto(memoryview(b)[:n])
        self.left -= got
        return got

    def close(self) -> None:
        self.f.close()
        super().close()


def iter_block(
    path: str | os.PathLike, fmt: Format, block: Block, lazy_json: bool = False, limits: Limits | None = None
) -> Iterator[Message | FramingError]:
    """The messages of one block of an uncompressed file (:func:`split_blocks`), with the positions
    (line numbers, message numbers and byte offsets) they have in the whole file."""
    limits = limits or DEFAULT_LIMITS
    if fmt.compression != "none" or fmt.framing not in SPLITTABLE:
        raise ValueError(f"a {fmt.compression} {fmt.framing} file is not read in blocks")
    try:
        raw = open(path, "rb", buffering=0)  # noqa: SIM115 -- closed with the stream
    except OSError as e:
        raise UnreadableInput(f"{path}: cannot open: {e}") from e
    with io.BufferedReader(_Range(raw, block.start, block.end), _READ_BUFFER) as stream:
        if fmt.framing == "jsonl":
            yield from _iter_jsonl(stream, lazy_json, limits, lineno=block.before)
        else:
            yield from _iter_length_prefixed(
                stream, lazy_json, limits, offset=block.start, index=block.before
            )


class _Chain:
    """``first``, then the rest of ``stream``: read(n) only."""

    def __init__(self, first: bytes, stream: IO[bytes]) -> None:
        self.first = memoryview(first)
        self.stream = stream

    def read(self, n: int = -1) -> bytes:
        if len(self.first):
            out = bytes(self.first[:n] if n >= 0 else self.first)
            self.first = self.first[len(out) :]
            return out
        return self.stream.read(n)


def _iter_document(stream: IO[bytes], lazy: bool, limits: Limits) -> Iterator[Message | FramingError]:
    """A single JSON document: read whole when it is small, else (with the C scanner, for an
    object) split into its resource blocks as it is read; never more than the limit in memory."""
    cap = limits.max_part_bytes
    streamable = accel.wire is not None and _peek(stream, 4096).lstrip(b"\xef\xbb\xbf \t\r\n")[:1] == b"{"
    whole = min(STREAM_DOCUMENT_BYTES, cap) if streamable else cap
    data = stream.read(whole + 1)
    if len(data) > whole:
        if streamable:
            yield from _iter_json_document_streamed(_Chain(data, stream), limits=limits)
        else:
            # (not read further: one document per file, and a bomb would take long to count)
            yield _too_large("document", "the document", None, limits, data[:_TOO_LARGE_HEAD])
        return
    if lazy:
        yield Message("document", None, True, text=data)
        return
    try:
        yield Message("document", _parse_json(data), True)
    except ValueError as e:
        yield FramingError("document", json_error_code(e), _json_error(e), data)


# --------------------------------------------------------------------------------------------------
# protobuf wire scanning: split a container message into its repeated sub-messages without parsing
# --------------------------------------------------------------------------------------------------


def _varint(buf: memoryview | bytes, i: int) -> tuple[int, int]:
    shift = 0
    result = 0
    while True:
        if i >= len(buf):
            raise ValueError("varint runs past the end of the message")
        b = buf[i]
        i += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, i
        shift += 7
        if shift > 63:
            raise ValueError("varint is longer than 10 bytes")


def split_fields(buf: bytes, start: int = 0, end: int | None = None) -> Iterator[tuple[int, int, int, int]]:
    """Scan protobuf wire format: yield (field number, wire type, value start, value end) per field.

    Raises ValueError at the first byte that is not well-formed wire format; what was yielded
    before stays valid (the caller can keep it and set the tail aside).
    """
    end = len(buf) if end is None else end
    i = start
    while i < end:
        key, i = _varint(buf, i)
        field, wt = key >> 3, key & 7
        if field == 0 or field > 536870911:
            raise ValueError(f"field number {field} is out of range")
        i, j = _value_span(buf, i, end, field, wt, 0)
        if j > end:
            raise ValueError(f"field {field} runs {j - end} bytes past the end of the message")
        yield field, wt, i, j
        i = j


def _group_end(buf: bytes, i: int, end: int, field: int, depth: int) -> int:
    """The offset after the end-group tag that closes group ``field`` whose content starts at i."""
    if depth > 100:
        raise ValueError("groups nested too deep")
    while i < end:
        key, i = _varint(buf, i)
        f, wt = key >> 3, key & 7
        if f == 0 or f > 536870911:
            raise ValueError(f"field number {f} is out of range")
        if wt == 4:
            if f != field:
                raise ValueError(f"group {field} is closed as group {f}")
            return i
        _, i = _value_span(buf, i, end, f, wt, depth + 1)
    raise ValueError(f"group {field} is not closed")


def _value_span(buf: bytes, i: int, end: int, field: int, wt: int, depth: int) -> tuple[int, int]:
    """Where the value of field ``field`` (wire type ``wt``, its tag ending at i) starts and ends: a
    length-delimited value starts after its length, a group (deprecated, still valid) ends after its
    end-group tag (``depth``: the groups it is nested in)."""
    if wt == 0:
        return i, _varint(buf, i)[1]
    if wt == 1:
        return i, i + 8
    if wt == 2:
        n, i = _varint(buf, i)
        return i, i + n
    if wt == 5:
        return i, i + 4
    if wt == 3:
        return i, _group_end(buf, i, end, field, depth)
    raise ValueError(f"wire type {wt} where a field starts")
