"""Writing OTLP, in one place: frame serialised messages, write a file atomically (optionally
compressed as a whole), and collect messages of one signal into rotated files the way the
Collector file exporter writes them. The simulator and every dataset adapter write through here;
the reading half (sniffing, splitting) is :mod:`otlp_aiops.otlp.framing`.

Framings written (``WriteFraming``): ``jsonl`` (one OTLP/JSON object per line), ``json`` and
``proto`` (exactly one message, the OTLP/HTTP request bodies), ``length_prefixed`` (each message
after its size as a 4-byte big-endian integer: the file exporter's ``format: proto``) and
``length_prefixed_zstd`` (the same, each payload a zstd frame: ``compression: zstd``).
"""

from __future__ import annotations

import gzip
import hashlib
import os
import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Literal

import zstandard
from opentelemetry.proto.common.v1 import common_pb2

from otlp_aiops.outputs import atomic_write_with

WriteFraming = Literal["jsonl", "json", "proto", "length_prefixed", "length_prefixed_zstd"]
Compression = Literal["none", "gzip", "zstd"]

__all__ = [
    "Compression",
    "RotatingWriter",
    "WriteFraming",
    "WrittenFile",
    "encode_frames",
    "kv",
    "write_file",
]


def kv(key: str, value: str | int | float | bool) -> common_pb2.KeyValue:
    """An OTLP attribute: ``bool`` / ``int`` / ``float`` as such, anything else as a string."""
    if isinstance(value, bool):
        return common_pb2.KeyValue(key=key, value=common_pb2.AnyValue(bool_value=value))
    if isinstance(value, int):
        return common_pb2.KeyValue(key=key, value=common_pb2.AnyValue(int_value=value))
    if isinstance(value, float):
        return common_pb2.KeyValue(key=key, value=common_pb2.AnyValue(double_value=value))
    return common_pb2.KeyValue(key=key, value=common_pb2.AnyValue(string_value=str(value)))


def encode_frames(payloads: Iterable[bytes], framing: WriteFraming, zstd_level: int = 3) -> Iterator[bytes]:
    """Frame already-serialised messages (protobuf bytes, or OTLP/JSON bytes for the JSON framings)."""
    cctx = zstandard.ZstdCompressor(level=zstd_level) if framing == "length_prefixed_zstd" else None
    for n, p in enumerate(payloads, 1):
        if framing == "jsonl":
            yield p + b"\n"
        elif framing in ("json", "proto"):
            if n > 1:
                raise ValueError(f"framing {framing!r} holds exactly one message")
            yield p
        elif framing == "length_prefixed":
            yield struct.pack(">I", len(p)) + p
        elif framing == "length_prefixed_zstd":
            assert cctx is not None
            c = cctx.compress(p)
            yield struct.pack(">I", len(c)) + c
        else:
            raise ValueError(f"unknown framing {framing!r}")


def _write_chunks(raw: BinaryIO, chunks: Iterable[bytes], compression: str) -> None:
    if compression == "gzip":
        # mtime=0 and no file name: the same input gives the same bytes
        with gzip.GzipFile(fileobj=raw, mode="wb", mtime=0, filename="") as out:
            for c in chunks:
                out.write(c)
    elif compression == "zstd":
        with zstandard.ZstdCompressor(level=3).stream_writer(raw, closefd=False) as out:
            for c in chunks:
                out.write(c)
    else:
        for c in chunks:
            raw.write(c)


def write_file(path: str | os.PathLike, chunks: Iterable[bytes], compression: Compression = "none") -> int:
    """Write ``chunks`` to ``path`` atomically (:func:`otlp_aiops.outputs.atomic_write_with`).

    ``compression`` ("none" | "gzip" | "zstd") compresses the whole file; the same chunks give the
    same bytes. Returns the size of the file written.
    """
    if compression not in ("none", "gzip", "zstd"):
        raise ValueError(f"unknown compression {compression!r}")

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as raw:
            _write_chunks(raw, chunks, compression)

    return atomic_write_with(path, write).stat().st_size


@dataclass
class WrittenFile:
    path: str  # relative to the dataset folder
    signal: str
    messages: int
    records: int
    bytes: int
    sha256: str


class RotatingWriter:
    """Collects framed messages of one signal and writes them to ``<signal>-NNNNN.<ext>`` files,
    starting a new file when the next message would pass the rotation size (each file atomically)."""

    def __init__(
        self, folder: Path, root: Path, signal: str, ext: str, framing: WriteFraming, rotate_bytes: int
    ) -> None:
        self.folder, self.root, self.signal, self.ext = folder, root, signal, ext
        self.framing, self.rotate_bytes = framing, rotate_bytes
        self.files: list[WrittenFile] = []
        self._frames: list[bytes] = []
        self._size = self._messages = self._records = 0

    def add(self, payload: bytes, records: int) -> None:
        frame = b"".join(encode_frames([payload], self.framing))
        if self._frames and self._size + len(frame) > self.rotate_bytes:
            self.flush()
        self._frames.append(frame)
        self._size += len(frame)
        self._messages += 1
        self._records += records

    def flush(self) -> None:
        if not self._frames:
            return
        path = self.folder / f"{self.signal}-{len(self.files) + 1:05d}.{self.ext}"
        digest = hashlib.sha256()
        for f in self._frames:
            digest.update(f)
        size = write_file(path, self._frames)
        self.files.append(
            WrittenFile(
                path.relative_to(self.root).as_posix(),
                self.signal,
                self._messages,
                self._records,
                size,
                digest.hexdigest(),
            )
        )
        self._frames, self._size, self._messages, self._records = [], 0, 0, 0

    def close(self) -> list[WrittenFile]:
        self.flush()
        return self.files
