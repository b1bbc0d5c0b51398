"""Column accumulators: the decoders append one plain tuple per record, these turn a batch into Arrow.

The decoders (``decode_json``, ``decode_proto``) do the per-record Python work and nothing else;
everything that can be done on whole columns (timestamps, null masks, map arrays, promoted columns,
broadcasting the resource/scope context) happens here, vectorised, once per batch.
"""

from __future__ import annotations

import hashlib
import struct
from bisect import bisect_left
from dataclasses import dataclass, field
from itertools import islice
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from otlp_aiops.otlp import accel, schema

ZERO_TRACE_ID = bytes(16)
ZERO_SPAN_ID = bytes(8)
INT64_MAX = 2**63 - 1


# --------------------------------------------------------------------------------------------------
# attributes
# --------------------------------------------------------------------------------------------------


class KeyIndex(dict):
    """Attribute key -> its position in a batch's key table (insertion order), added on first use."""

    def __missing__(self, key: str) -> int:
        i = self[key] = len(self)
        return i


def take_str(arr: pa.Array, idx: np.ndarray) -> pa.Array:
    """``arr.take(idx)`` for a string array and a numpy int32/int64 index array in which a negative
    index gives a null: through the C decoder's ``take_strings`` when it is built (one pass for the
    lengths, one copy each; 1.6-2.5x Arrow's ``take``, identical arrays), else through Arrow."""
    wire = accel.wire
    idx = np.ascontiguousarray(idx)
    if wire is not None and arr.type == pa.string() and idx.dtype in (np.int32, np.int64):
        validity, offsets, data = arr.buffers()
        got = None
        if offsets is not None and data is not None:
            got = wire.take_strings(offsets, data, validity, arr.offset, len(arr), idx, idx.dtype.itemsize)
        if got is not None:
            offs, data, valid, nulls = got
            vbuf = pa.py_buffer(valid) if valid is not None else None
            return pa.StringArray.from_buffers(len(idx), pa.py_buffer(offs), pa.py_buffer(data), vbuf, nulls)
    return arr.take(pa.array(idx, mask=idx < 0) if len(idx) and idx.min() < 0 else pa.array(idx))


class AttrCols:
    """Flat attribute storage for one column of maps: keys, values, and type tags of non-strings.

    A row's attributes are positions ``ends[i-1]:ends[i]``; the decoder records ``len(keys)``
    after each row as that row's end. Keys repeat endlessly, so ``keys`` holds small ints into the
    batch's key table (``kidx``), and the string column is built from them in one ``take``.
    """

    __slots__ = (
        "_key_ids",
        "_keys_arr",
        "_names",
        "_offsets",
        "_row_of",
        "_table",
        "_vals_arr",
        "keys",
        "kidx",
        "tag_pos",
        "tags",
        "vals",
    )

    def __init__(self) -> None:
        self.keys: list[int] = []
        self.kidx = KeyIndex()
        self.vals: list[str | None] = []
        self.tag_pos: list[int] = []
        self.tags: list[str] = []
        self._names: list[str] = []

    def lists(self) -> tuple:
        """What the C decoder appends to: (keys, vals, tag_pos, tags, key index)."""
        return self.keys, self.vals, self.tag_pos, self.tags, self.kidx

    def truncate(self, start: int) -> None:
        """Drop the attributes from position ``start`` on (a record that is being rolled back)."""
        del self.keys[start:], self.vals[start:]
        tag_pos = self.tag_pos
        while tag_pos and tag_pos[-1] >= start:
            tag_pos.pop()
            self.tags.pop()

    def add_typed(self, key: str, tag: str, text: str | None) -> None:
        if tag != "string":
            self.tag_pos.append(len(self.keys))
            self.tags.append(tag)
        self.keys.append(self.kidx[key])
        self.vals.append(text)

    def key_names(self) -> list[str]:
        """The key table as a list (position -> key), extended as keys are added: ``kidx`` only
        ever grows (``truncate`` leaves it alone), and the C decoder adds to it directly."""
        names = self._names
        if len(names) < len(self.kidx):
            names.extend(islice(self.kidx, len(names), None))
        return names

    def rendered(self, start: int = 0) -> list[tuple[str, str, str | None]]:
        """(key, tag, text) of the attributes from position ``start`` on."""
        table = self.key_names()
        keys, vals = self.keys[start:], self.vals[start:]
        tag_pos = self.tag_pos
        if not tag_pos or tag_pos[-1] < start:  # no typed value among them (the common case)
            return [(table[k], "string", v) for k, v in zip(keys, vals, strict=True)]
        t0 = bisect_left(tag_pos, start)
        tags = dict(zip(tag_pos[t0:], self.tags[t0:], strict=True))
        return [
            (table[k], tags.get(start + i, "string"), v)
            for i, (k, v) in enumerate(zip(keys, vals, strict=True))
        ]

    def to_arrays(self, ends: Any, null_if_empty: bool = False) -> tuple[pa.Array, pa.Array]:
        """(attributes, attribute_types) map arrays for rows with the given end offsets.

        A row without attributes gets an empty map, or null with ``null_if_empty``."""
        ends = np.asarray(ends, dtype=np.int64)
        n = len(ends)
        offsets = np.zeros(n + 1, dtype=np.int32)
        offsets[1:] = ends
        mask = pa.array(offsets[1:] == offsets[:-1]) if null_if_empty else None
        self._offsets, self._row_of = offsets, None
        self._table = pa.array(list(self.kidx), pa.string())
        self._key_ids = self._key_id_array()
        self._keys_arr = take_str(self._table, self._key_ids)
        self._vals_arr = self._values_array()
        attrs = pa.MapArray.from_arrays(pa.array(offsets), self._keys_arr, self._vals_arr, mask=mask)
        if not self.tag_pos:
            return attrs, pa.nulls(n, schema.ATTRS)
        pos, tag_names = self._typed()
        rows = self.attr_rows()[pos]
        counts = np.bincount(rows, minlength=n)
        toff = np.zeros(n + 1, dtype=np.int32)
        np.cumsum(counts, out=toff[1:])
        keys = take_str(self._table, self._key_ids[pos])  # from the small key table: cache-friendly
        types = pa.MapArray.from_arrays(pa.array(toff), keys, tag_names, mask=pa.array(counts == 0))
        return attrs, types

    def attr_rows(self) -> np.ndarray:
        """The row of every attribute position (after ``to_arrays``), what
        ``np.searchsorted(ends, positions, side="right")`` gives, for all positions in one pass
        (positions past the last row's end get ``n``, as there)."""
        rows = self._row_of
        if rows is None:
            offsets = self._offsets
            n = len(offsets) - 1
            rows = np.repeat(np.arange(n, dtype=np.int64), np.diff(offsets))
            extra = len(self._key_ids) - len(rows)
            if extra > 0:
                rows = np.concatenate([rows, np.full(extra, n, dtype=np.int64)])
            self._row_of = rows
        return rows

    def _key_id_array(self) -> np.ndarray:
        return np.fromiter(self.keys, dtype=np.int32, count=len(self.keys))

    def _typed(self) -> tuple[np.ndarray, pa.Array]:
        """The positions of the typed (non-string) values and their tags (``attribute_types``)."""
        pos = np.fromiter(self.tag_pos, dtype=np.int64, count=len(self.tag_pos))
        return pos, pa.array(self.tags, pa.string())

    def _values_array(self) -> pa.Array:
        return pa.array(self.vals, pa.string())


class TagCodes:
    """The type tags of a ``BufAttrCols``: codes into the C decoder's ``TAG_NAMES`` in an
    ``_wire.IdBuf`` (which the C decoder appends to), read and appended like a list of tag names
    (the pure-Python decoder appends names to it when a record falls back)."""

    __slots__ = ("buf", "code", "names")

    def __init__(self, wire: Any) -> None:
        self.buf = wire.IdBuf()
        self.names: tuple[str, ...] = wire.TAG_NAMES
        self.code = {t: i for i, t in enumerate(self.names)}

    def append(self, tag: str) -> None:
        self.buf.append(self.code[tag])

    def truncate(self, n: int) -> None:
        self.buf.truncate(n)

    def __len__(self) -> int:
        return len(self.buf)

    def __getitem__(self, i: int) -> str:
        return self.names[self.buf[i]]

    def __iter__(self) -> Any:
        names = self.names
        return (names[c] for c in np.frombuffer(self.buf.tobytes(), dtype=np.int32).tolist())

    def array(self) -> pa.Array:
        """The tags as a string array (a ``take`` from the small table of names)."""
        return take_str(_tag_table(self.names), np.frombuffer(self.buf.tobytes(), dtype=np.int32))


_TAG_TABLES: dict[tuple[str, ...], pa.Array] = {}


def _tag_table(names: tuple[str, ...]) -> pa.Array:
    table = _TAG_TABLES.get(names)
    if table is None:
        table = _TAG_TABLES[names] = pa.array(list(names), pa.string())
    return table


class BufAttrCols(AttrCols):
    """``AttrCols`` whose keys and values live in the C decoder's column buffers (``_wire.IdBuf``:
    int32 key ids; ``_wire.StrBuf``: UTF-8 data + offsets + validity) instead of lists: the C
    decoder writes a string attribute's bytes there without making a ``str``, and ``to_arrays``
    wraps the buffers into Arrow arrays without a per-value Python object. The typed values'
    positions are an ``IdBuf`` too, and their tags codes (:class:`TagCodes`). The buffers take
    ``append``/``extend`` and read back like lists, so the pure-Python decoder can fill the same
    batch (a record that falls back to it), and everything that reads ``keys``/``vals`` still works.
    The arrays are the same values as ``AttrCols`` makes, so the tables are identical."""

    __slots__ = ()

    def __init__(self, wire: Any) -> None:
        super().__init__()
        self.keys = wire.IdBuf()
        self.vals = wire.StrBuf()
        self.tag_pos = wire.IdBuf()
        self.tags = TagCodes(wire)  # type: ignore[assignment]

    def lists(self) -> tuple:
        return self.keys, self.vals, self.tag_pos, self.tags.buf, self.kidx  # type: ignore[attr-defined]

    def truncate(self, start: int) -> None:
        self.keys.truncate(start)
        self.vals.truncate(start)
        cut = bisect_left(self.tag_pos, start)
        self.tag_pos.truncate(cut)
        self.tags.truncate(cut)  # type: ignore[attr-defined]

    def rendered(self, start: int = 0) -> list[tuple[str, str, str | None]]:
        table = self.key_names()
        keys = [self.keys[i] for i in range(start, len(self.keys))]
        vals = [self.vals[i] for i in range(start, len(self.vals))]
        tags = dict(zip(self.tag_pos, self.tags, strict=True))
        return [
            (table[k], tags.get(start + i, "string"), v)
            for i, (k, v) in enumerate(zip(keys, vals, strict=True))
        ]

    def _values_array(self) -> pa.Array:
        offsets, data, validity, nulls, width = self.vals.export()
        n = len(self.vals)
        typ = pa.string() if width == 4 else pa.large_string()
        valid = None if validity is None else pa.py_buffer(validity)
        arr = pa.Array.from_buffers(
            typ, n, [valid, pa.py_buffer(offsets), pa.py_buffer(data)], null_count=nulls
        )
        return arr if width == 4 else arr.cast(pa.string())

    def _key_id_array(self) -> np.ndarray:
        return np.frombuffer(self.keys.tobytes(), dtype=np.int32)

    def _typed(self) -> tuple[np.ndarray, pa.Array]:
        pos = np.frombuffer(self.tag_pos.tobytes(), dtype=np.int32).astype(np.int64)
        return pos, self.tags.array()  # type: ignore[attr-defined]


def new_attr_cols() -> AttrCols:
    """The attribute store of a span or log batch: column buffers when the C decoder is in use
    (checked when the batch is made, as the decoders check ``accel.wire`` at call time), else lists."""
    wire = accel.wire
    if wire is not None and hasattr(wire, "TAG_NAMES"):
        return BufAttrCols(wire)
    return AttrCols()


# Rows kept as the C decoder's column buffers (``_wire.Cols``), one format character a column:
# 'i' int64, 's' optional string, 'h' / 'H' optional 8- / 16-byte id. The row layouts are those
# of the SpanBatch and LogBatch docstrings.
SPAN_ROW_FORMAT = "Hhhsisiiiisiiiiiiii"
LOG_ROW_FORMAT = "iiisssiiiHhsii"


def new_rows(fmt: str) -> Any:
    """The rows of a span or log batch: ``_wire.Cols`` when the C decoder is in use, else a list.
    Both take ``append(tuple)`` and read back as tuples; ``RowColumns`` reads their columns."""
    wire = accel.wire
    if wire is not None and hasattr(wire, "Cols"):
        return wire.Cols(fmt)
    return []


class RowColumns:
    """The columns of a batch's rows as numpy/Arrow arrays: from ``_wire.Cols``'s buffers without a
    per-value Python object, or transposed from a list of tuples (the pure-Python decoder's)."""

    def __init__(self, rows: Any, fmt: str) -> None:
        self.fmt = fmt
        self.n = len(rows)
        if isinstance(rows, list):
            self.cols: Any = None
            self.lists = list(zip(*rows, strict=True))
        else:
            self.cols = rows

    def ints(self, j: int) -> np.ndarray:
        if self.cols is None:
            return np.asarray(self.lists[j], dtype=np.int64)
        return np.frombuffer(self.cols.column(j), dtype=np.int64)

    def array(self, j: int, typ: pa.DataType) -> pa.Array:
        if self.cols is None:
            return pa.array(self.lists[j], typ)
        kind = self.fmt[j]
        if kind == "i":
            return pa.array(self.ints(j), typ)
        if kind == "s":
            offsets, data, validity, nulls, width = self.cols.column(j)
            st = pa.string() if width == 4 else pa.large_string()
            valid = None if validity is None else pa.py_buffer(validity)
            arr = pa.Array.from_buffers(
                st, self.n, [valid, pa.py_buffer(offsets), pa.py_buffer(data)], null_count=nulls
            )
            return arr if arr.type == typ else arr.cast(typ)
        data, validity, nulls = self.cols.column(j)
        valid = None if validity is None else pa.py_buffer(validity)
        w = 16 if kind == "H" else 8
        arr = pa.Array.from_buffers(pa.binary(w), self.n, [valid, pa.py_buffer(data)], null_count=nulls)
        return arr if arr.type == typ else arr.cast(typ)


def histogram_problem(count: int, bucket_counts: Any, bounds: Any) -> str | None:
    """Why an explicit-bucket histogram point breaks the OTLP shape rules, or None when it keeps
    them (metrics.proto, HistogramDataPoint): bucket_counts is empty with no bounds, or has one
    element more than explicit_bounds; the bucket counts sum to count; the bounds are numbers in
    strictly increasing order. A point that breaks them would shift every percentile read from it,
    so it is quarantined (reason ``bad_histogram``)."""
    nb, nc = len(bounds), len(bucket_counts)
    if nc == 0:
        return None if nb == 0 else f"{nb} explicit bounds but no bucket counts"
    if nc != nb + 1:
        return f"{nc} bucket counts for {nb} explicit bounds (must be {nb + 1})"
    total = sum(bucket_counts)
    if total != count:
        return f"the bucket counts sum to {total}, not to count {count}"
    prev = None
    for i, b in enumerate(bounds):
        if b != b:
            return f"explicit bound {i} is NaN"
        if prev is not None and not b > prev:
            return f"explicit bounds are not strictly increasing at {i} ({prev!r} then {b!r})"
        prev = b
    return None


def stable_hash(parts: list[Any]) -> int:
    """A signed 64-bit hash of a list of strings/ints/None, stable across runs and machines."""
    h = hashlib.blake2b(digest_size=8)
    for p in parts:
        if p is None:
            h.update(b"\x00\x01")
        else:
            h.update(str(p).encode("utf-8", "surrogatepass"))
        h.update(b"\x00\x1e")
    return int.from_bytes(h.digest(), "little", signed=True)


def attrs_hash_parts(rendered: list[tuple[str, str, str | None]]) -> list[Any]:
    out: list[Any] = []
    for k, t, v in rendered:
        out.extend((k, t, v))
    return out


# --------------------------------------------------------------------------------------------------
# resource / scope context
# --------------------------------------------------------------------------------------------------


@dataclass
class ResourceInfo:
    resource_id: int
    promoted: tuple[str | None, ...]
    row: dict[str, Any]  # a row of the resources table

    @property
    def service_name(self) -> str | None:
        return self.promoted[0]


@dataclass
class ScopeInfo:
    scope_id: int
    name: str | None
    row: dict[str, Any]


def make_resource(
    attrs: list[tuple[str, str, str | None]], dropped: int, schema_url: str, entity_refs_json: str | None
) -> ResourceInfo:
    rid = stable_hash(["resource", *attrs_hash_parts(attrs), dropped, schema_url or None, entity_refs_json])
    values = {k: v for k, t, v in reversed(attrs) if t == "string"}  # first occurrence wins
    promoted = tuple(
        next((values[k] for k in keys if k in values), None) for _, keys in schema.RESOURCE_PROMOTED
    )
    row = {
        "resource_id": rid,
        **{col: promoted[i] for i, (col, _) in enumerate(schema.RESOURCE_PROMOTED)},
        "attributes": [(k, v) for k, _, v in attrs],
        "attribute_types": [(k, t) for k, t, _ in attrs if t != "string"] or None,
        "dropped_attributes_count": dropped,
        "schema_url": schema_url or None,
        "entity_refs_json": entity_refs_json,
    }
    return ResourceInfo(rid, promoted, row)


def make_scope(
    name: str, version: str, attrs: list[tuple[str, str, str | None]], dropped: int, schema_url: str
) -> ScopeInfo:
    sid = stable_hash(["scope", name, version, *attrs_hash_parts(attrs), dropped, schema_url or None])
    row = {
        "scope_id": sid,
        "scope_name": name or None,
        "scope_version": version or None,
        "attributes": [(k, v) for k, _, v in attrs],
        "attribute_types": [(k, t) for k, t, _ in attrs if t != "string"] or None,
        "dropped_attributes_count": dropped,
        "schema_url": schema_url or None,
    }
    return ScopeInfo(sid, name or None, row)


class Contexts:
    """The distinct (resource, scope) pairs of a batch; rows refer to them by index."""

    def __init__(self) -> None:
        self.index: dict[tuple[int, int], int] = {}
        self.items: list[tuple[ResourceInfo, ScopeInfo]] = []

    def get(self, r: ResourceInfo, s: ScopeInfo) -> int:
        key = (r.resource_id, s.scope_id)
        i = self.index.get(key)
        if i is None:
            i = self.index[key] = len(self.items)
            self.items.append((r, s))
        return i

    def columns(self, idx: Any) -> dict[str, pa.Array]:
        take = np.asarray(idx)
        if take.dtype not in (np.int32, np.int64):
            take = take.astype(np.int64)
        cols: dict[str, pa.Array] = {
            "resource_id": pa.array(np.array([r.resource_id for r, _ in self.items], np.int64)[take]),
            "scope_id": pa.array(np.array([s.scope_id for _, s in self.items], np.int64)[take]),
        }
        for j, (col, _) in enumerate(schema.RESOURCE_PROMOTED):
            cols[col] = take_str(pa.array([r.promoted[j] for r, _ in self.items], pa.string()), take)
        cols["scope_name"] = take_str(pa.array([s.name for _, s in self.items], pa.string()), take)
        return cols


# --------------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------------


def ts_array(values: Any) -> pa.Array:
    """Nanosecond integers (0 = unset) -> timestamp[ns, UTC] with nulls for 0."""
    a = np.asarray(values, dtype=np.int64)
    return pa.array(a, type=schema.TIME, mask=a == 0)


def promote(
    ac: AttrCols, ends: Any, spec: list[tuple[str, pa.DataType, tuple[str, ...]]]
) -> dict[str, pa.Array]:
    """Promoted typed columns from the attributes of the rows ending at ``ends`` (after
    ``ac.to_arrays(ends)``): for each column, the value of the first of its keys present in the row,
    the first occurrence of that key. Integer columns take only values written as integers.

    All columns in one pass: each wanted attribute's (column, row) cell is a position in one flat
    index array, filled lower priority keys first so that higher priority ones overwrite them, and
    the values of all columns that have any are taken at once (one slice per column)."""
    n = len(ends)
    wanted = [(c, j, k) for c, (_, _, keys) in enumerate(spec) for j, k in enumerate(keys)]
    if accel.wire is not None:
        return _promote_c(ac, ends, spec, wanted)
    lut = np.full(len(ac.kidx) + 1, -1, dtype=np.int16)  # key table position -> index in `wanted`
    for w, (_, _, k) in enumerate(wanted):
        i = ac.kidx.get(k)
        if i is not None:
            lut[i] = w
    which_all = lut.take(ac._key_ids) if len(ac._key_ids) else np.zeros(0, np.int16)
    pos_all = np.flatnonzero(which_all >= 0)
    which = which_all[pos_all]
    col_of = np.array([c for c, _, _ in wanted], dtype=np.int64)[which]
    present = np.flatnonzero(np.bincount(col_of, minlength=len(spec)))
    slot = np.full(len(spec), -1, dtype=np.int64)
    slot[present] = np.arange(len(present))
    flat = slot[col_of] * n + ac.attr_rows()[pos_all]
    idx = np.full(len(present) * n, -1, dtype=np.int64)
    prio = np.array([j for _, j, _ in wanted], dtype=np.int64)[which]
    if len(prio) and prio.any():
        for j in range(int(prio.max()), -1, -1):  # lower priority keys first
            sel = prio == j
            f, p = flat[sel], pos_all[sel]
            idx[f[::-1]] = p[::-1]  # first occurrence in a row wins
    else:
        idx[flat[::-1]] = pos_all[::-1]
    taken = take_str(ac._vals_arr, idx) if len(present) else None
    return _promoted_columns(spec, slot, taken, n)


def _promote_c(
    ac: AttrCols, ends: Any, spec: list[tuple[str, pa.DataType, tuple[str, ...]]], wanted: list
) -> dict[str, pa.Array]:
    """``promote`` with the cell index built by the C decoder's ``promote_index`` in one pass over
    the attributes (the numpy path below builds the same index; identical columns)."""
    n = len(ends)
    col_of = np.full(len(ac.kidx) + 1, -1, dtype=np.int16)
    prio_of = np.zeros(len(ac.kidx) + 1, dtype=np.int16)
    for c, j, k in wanted:  # a key wanted by two columns goes to the last of them, as below
        i = ac.kidx.get(k)
        if i is not None:
            col_of[i], prio_of[i] = c, j
    ends64 = np.ascontiguousarray(ends, dtype=np.int64)
    idx_b, counts_b = accel.wire.promote_index(
        np.ascontiguousarray(ac._key_ids, dtype=np.int32), ends64, col_of, prio_of, len(spec)
    )
    idx = np.frombuffer(idx_b, dtype=np.int64).reshape(len(spec), n)
    present = np.flatnonzero(np.frombuffer(counts_b, dtype=np.int64))
    slot = np.full(len(spec), -1, dtype=np.int64)
    slot[present] = np.arange(len(present))
    taken = take_str(ac._vals_arr, idx[present].ravel()) if len(present) else None
    return _promoted_columns(spec, slot, taken, n)


def _promoted_columns(
    spec: list[tuple[str, pa.DataType, tuple[str, ...]]], slot: np.ndarray, taken: Any, n: int
) -> dict[str, pa.Array]:
    out: dict[str, pa.Array] = {}
    for c, (col, typ, _) in enumerate(spec):
        s = slot[c]
        if s < 0:
            out[col] = pa.nulls(n, typ)
            continue
        arr = taken.slice(s * n, n)
        if pa.types.is_integer(typ):
            arr = _int_values(arr, typ)
        out[col] = arr
    return out


def _int_values(arr: pa.Array, typ: pa.DataType) -> pa.Array:
    """The values of a string array written as integers (``^-?[0-9]{1,18}$``, what a cast to int64
    accepts) cast to ``typ``, null elsewhere. When every value is 1-18 ASCII digits (the usual
    case) that is the plain cast, checked without the regex. Through the C decoder's ``int_strings``
    (one pass over the bytes) when it is built."""
    wire = accel.wire
    buffers = arr.buffers() if wire is not None and arr.type == pa.string() and typ == pa.int64() else None
    if buffers is not None and buffers[1] is not None and buffers[2] is not None:
        validity, offsets, data = buffers
        vals, valid, nulls = wire.int_strings(offsets, data, validity, arr.offset, len(arr))
        vbuf = pa.py_buffer(valid) if valid is not None else None
        return pa.Array.from_buffers(pa.int64(), len(arr), [vbuf, pa.py_buffer(vals)], null_count=nulls)
    digits = pc.and_(pc.ascii_is_decimal(arr), pc.less_equal(pc.binary_length(arr), 18))
    if (pc.sum(digits).as_py() or 0) == len(arr) - arr.null_count:
        return arr.cast(typ)
    ok = pc.match_substring_regex(arr, r"^-?[0-9]{1,18}$")
    return pc.if_else(ok, arr, pa.scalar(None, pa.string())).cast(typ)


def _table(table_schema: pa.Schema, cols: dict[str, Any]) -> pa.Table:
    arrays = []
    for f in table_schema:
        a = cols[f.name]
        if not isinstance(a, (pa.Array, pa.ChunkedArray)):
            a = pa.array(a, f.type)
        elif a.type != f.type:
            a = a.cast(f.type)
        arrays.append(a)
    return pa.Table.from_arrays(arrays, schema=table_schema)


# --------------------------------------------------------------------------------------------------
# batches
# --------------------------------------------------------------------------------------------------


@dataclass
class _RowBatch:
    """What the span and log batches share: the rows of one signal, their attributes and contexts."""

    source_file: str
    rows: list[tuple] = field(default_factory=list)
    attrs: AttrCols = field(default_factory=new_attr_cols)
    ctx: Contexts = field(default_factory=Contexts)
    text_contexts: dict = field(default_factory=dict)  # for the C decoder of OTLP/JSON text
    proto_contexts: dict = field(default_factory=dict)  # (resource, scope) bytes -> context, protobuf

    def __len__(self) -> int:
        return len(self.rows)


@dataclass
class SpanBatch(_RowBatch):
    """Spans and their events and links, as appended by a decoder.

    span row: (trace_id, span_id, parent_span_id, trace_state, flags, name, kind, start, end,
               status_code, status_message, attr_end, dropped_attrs, n_events, dropped_events,
               n_links, dropped_links, ctx, record_index)
    event row: (span_row, event_index, time, name, attr_end, dropped_attrs)
    link row: (span_row, link_index, trace_id, span_id, trace_state, flags, attr_end, dropped_attrs)
    """

    rows: Any = field(default_factory=lambda: new_rows(SPAN_ROW_FORMAT))
    events: list[tuple] = field(default_factory=list)
    event_attrs: AttrCols = field(default_factory=new_attr_cols)
    links: list[tuple] = field(default_factory=list)
    link_attrs: AttrCols = field(default_factory=new_attr_cols)

    def rollback(self) -> None:
        """Undo what a span that failed half-way appended (its own row is appended last)."""
        rows = self.rows
        row = len(rows)
        self.attrs.truncate(rows[-1][11] if rows else 0)
        ev = self.events
        while ev and ev[-1][0] == row:
            ev.pop()
        self.event_attrs.truncate(ev[-1][4] if ev else 0)
        lk = self.links
        while lk and lk[-1][0] == row:
            lk.pop()
        self.link_attrs.truncate(lk[-1][6] if lk else 0)

    def to_tables(self) -> dict[str, pa.Table]:
        rows = self.rows
        n = len(rows)
        if n == 0:
            return {}
        c = RowColumns(rows, SPAN_ROW_FORMAT)
        start = c.ints(7)
        end = c.ints(8)
        valid = (start != 0) & (end != 0)
        attr_end = c.ints(11)
        attrs, types = self.attrs.to_arrays(attr_end)
        ctx = self.ctx.columns(c.ints(17))
        trace_id = c.array(0, schema.TRACE_ID)
        span_id = c.array(1, schema.SPAN_ID)
        cols = {
            "trace_id": trace_id,
            "span_id": span_id,
            "parent_span_id": c.array(2, schema.SPAN_ID),
            "trace_state": c.array(3, pa.string()),
            "flags": c.array(4, pa.uint32()),
            "name": c.array(5, pa.string()),
            "kind": c.array(6, pa.int8()),
            "start_time": ts_array(start),
            "end_time": ts_array(end),
            "duration_ns": pa.array(end - start, pa.int64(), mask=~valid),
            "status_code": c.array(9, pa.int8()),
            "status_message": c.array(10, pa.string()),
            "attributes": attrs,
            "attribute_types": types,
            "dropped_attributes_count": c.array(12, pa.uint32()),
            "event_count": c.array(13, pa.int32()),
            "dropped_events_count": c.array(14, pa.uint32()),
            "link_count": c.array(15, pa.int32()),
            "dropped_links_count": c.array(16, pa.uint32()),
            **promote(self.attrs, attr_end, schema.SPAN_PROMOTED),
            **ctx,
            "_source_file": pa.repeat(pa.scalar(self.source_file, pa.string()), n),
            "_record_index": c.array(18, pa.int64()),
        }
        out = {"spans": _table(schema.SPANS, cols)}
        parent = {
            "trace_id": trace_id,
            "span_id": span_id,
            "resource_id": ctx["resource_id"],
            "service_name": ctx["service_name"],
            "_record_index": cols["_record_index"],
        }
        if self.events:
            e = list(zip(*self.events, strict=True))
            own = {
                "event_index": pa.array(e[1], pa.int32()),
                "time": ts_array(e[2]),
                "name": pa.array(e[3], pa.string()),
            }
            out["span_events"] = self._child_table(schema.SPAN_EVENTS, parent, e, 4, self.event_attrs, own)
        if self.links:
            li = list(zip(*self.links, strict=True))
            own = {
                "link_index": pa.array(li[1], pa.int32()),
                "linked_trace_id": pa.array(li[2], schema.TRACE_ID),
                "linked_span_id": pa.array(li[3], schema.SPAN_ID),
                "trace_state": pa.array(li[4], pa.string()),
                "flags": pa.array(li[5], pa.uint32()),
            }
            out["span_links"] = self._child_table(schema.SPAN_LINKS, parent, li, 6, self.link_attrs, own)
        return out

    def _child_table(
        self,
        table_schema: pa.Schema,
        parent: dict[str, Any],
        cols: list[tuple],
        attr_at: int,
        attrs: AttrCols,
        own: dict[str, Any],
    ) -> pa.Table:
        """The event or link table: ``cols`` are its rows' columns (the span row first, the attribute
        end at ``attr_at``, the dropped-attribute count after it); each row repeats its span's
        ``parent`` columns."""
        take = pa.array(cols[0], pa.int32())
        values, types = attrs.to_arrays(cols[attr_at])
        return _table(
            table_schema,
            {
                **{k: v.take(take) for k, v in parent.items()},
                **own,
                "attributes": values,
                "attribute_types": types,
                "dropped_attributes_count": pa.array(cols[attr_at + 1], pa.uint32()),
                "_source_file": pa.repeat(pa.scalar(self.source_file, pa.string()), len(cols[0])),
            },
        )


@dataclass
class LogBatch(_RowBatch):
    """log row: (time, observed_time, severity_number, severity_text, body, body_type, attr_end,
    dropped_attrs, flags, trace_id, span_id, event_name, ctx, record_index)"""

    rows: Any = field(default_factory=lambda: new_rows(LOG_ROW_FORMAT))

    def rollback(self) -> None:
        """Undo what a log record that failed half-way appended (its row is appended last)."""
        self.attrs.truncate(self.rows[-1][6] if self.rows else 0)

    def to_tables(self) -> dict[str, pa.Table]:
        n = len(self.rows)
        if n == 0:
            return {}
        c = RowColumns(self.rows, LOG_ROW_FORMAT)
        attr_end = c.ints(6)
        attrs, types = self.attrs.to_arrays(attr_end)
        cols = {
            "time": ts_array(c.ints(0)),
            "observed_time": ts_array(c.ints(1)),
            "severity_number": c.array(2, pa.int8()),
            "severity_text": c.array(3, pa.string()),
            "body": c.array(4, pa.string()),
            "body_type": c.array(5, pa.string()),
            "attributes": attrs,
            "attribute_types": types,
            "dropped_attributes_count": c.array(7, pa.uint32()),
            "flags": c.array(8, pa.uint32()),
            "trace_id": c.array(9, schema.TRACE_ID),
            "span_id": c.array(10, schema.SPAN_ID),
            "event_name": c.array(11, pa.string()),
            **promote(self.attrs, attr_end, schema.LOG_PROMOTED),
            **self.ctx.columns(c.ints(12)),
            "_source_file": pa.repeat(pa.scalar(self.source_file, pa.string()), n),
            "_record_index": c.array(13, pa.int64()),
        }
        return {"logs": _table(schema.LOGS, cols)}


@dataclass
class MetricInfo:
    """What a data point inherits from its Metric."""

    name: str
    description: str | None
    unit: str | None
    metric_type: str
    temporality: int | None
    is_monotonic: bool | None
    metadata: list[tuple[str, str, str | None]]

    def stream_fields(self) -> tuple:
        """What of the metric identifies its streams (with the resource, scope and attributes)."""
        return (self.name, self.unit, self.metric_type, self.temporality, self.is_monotonic)


# Positions in a point row shared by all point shapes:
# (metric_info_index, series_id, start, time, attr_end, flags, n_exemplars, ctx, record_index, *shape)
P_MINFO, P_SERIES, P_START, P_TIME, P_ATTR_END, P_FLAGS, P_NEX, P_CTX, P_REC = range(9)
POINT_SHAPE_COLUMNS = {
    "metrics_number": ("value_double", "value_int"),
    "metrics_histogram": ("count", "sum", "min", "max", "bucket_counts", "explicit_bounds"),
    "metrics_exp_histogram": (
        "count",
        "sum",
        "min",
        "max",
        "scale",
        "zero_count",
        "zero_threshold",
        "positive_offset",
        "positive_bucket_counts",
        "negative_offset",
        "negative_bucket_counts",
    ),
    "metrics_summary": ("count", "sum", "quantiles", "quantile_values"),
}


_POINT_FIXED = struct.Struct("<9q")  # the shared columns of a point row, packed


class PointRows:
    """The data points of one point table, as a list of rows that stores them by column: the nine
    shared columns (metric index, series_id, start, time, attr_end, flags, n_exemplars, ctx,
    record_index) packed as int64 in ``fixed`` (72 bytes a row), each shape column in a list of
    ``shape``. The decoders ``append`` row tuples and read ``rows[-1]``; the C decoder writes the
    packed bytes and the lists directly (no Python object per shared value), and ``to_tables`` reads
    the shared columns as one numpy array."""

    __slots__ = ("fixed", "shape")

    def __init__(self, n_shape: int) -> None:
        self.fixed = bytearray()
        self.shape: tuple[list, ...] = tuple([] for _ in range(n_shape))

    def __len__(self) -> int:
        return len(self.fixed) // _POINT_FIXED.size

    def append(self, row: tuple) -> None:
        self.fixed += _POINT_FIXED.pack(*row[:9])
        for col, v in zip(self.shape, row[9:], strict=True):
            col.append(v)

    def __getitem__(self, i: int) -> tuple:
        n = len(self)
        if i < 0:
            i += n
        if not 0 <= i < n:
            raise IndexError("point row index out of range")
        return (*_POINT_FIXED.unpack_from(self.fixed, i * _POINT_FIXED.size), *(col[i] for col in self.shape))

    def __iter__(self) -> Any:
        return (self[i] for i in range(len(self)))

    def lists(self) -> tuple:
        """What the C decoder appends to: (packed shared columns, shape column lists)."""
        return self.fixed, self.shape

    def fixed_columns(self) -> np.ndarray:
        """The shared columns, an (n, 9) int64 array."""
        return np.frombuffer(self.fixed, dtype=np.int64).reshape(-1, 9)


@dataclass
class MetricBatch:
    """Data points of all shapes, and their exemplars.

    exemplar row: (point_table, series_id, metric_name, exemplar_index, time, value_double,
                   value_int, trace_id, span_id, attr_end, resource_id, service_name, record_index)
    """

    source_file: str
    infos: list[MetricInfo] = field(default_factory=list)
    points: dict[str, PointRows] = field(
        default_factory=lambda: {t: PointRows(len(cols)) for t, cols in POINT_SHAPE_COLUMNS.items()}
    )
    attrs: dict[str, AttrCols] = field(default_factory=lambda: {t: AttrCols() for t in POINT_SHAPE_COLUMNS})
    exemplars: list[tuple] = field(default_factory=list)
    exemplar_attrs: AttrCols = field(default_factory=AttrCols)
    ctx: Contexts = field(default_factory=Contexts)
    _sids: dict = field(default_factory=dict, repr=False)  # point_series_id's memo, for this batch
    _info_index: dict = field(default_factory=dict, repr=False)  # add_info's memo
    # The C decoder's memos for this batch (``_wire_metrics``): the metric table index and the
    # series_id, keyed by bytes it builds from the wire (metric identity; that, the context index
    # and the point's raw attribute bytes). Misses are filled by add_info / point_series_id.
    c_info_memo: dict = field(default_factory=dict, repr=False)
    c_series_memo: dict = field(default_factory=dict, repr=False)
    text_contexts: dict = field(default_factory=dict, repr=False)  # for the C decoder of OTLP/JSON text

    def __len__(self) -> int:
        return sum(len(v) for v in self.points.values())

    def c_state(self, res_fn: Any, scope_fn: Any, metric_fn: Any, fallback: Any, pending: list) -> tuple:
        """The state tuple of the C metric decoders (``_wire_metrics.decode_block``,
        ``decode_request`` and ``decode_json_text``): this batch's point rows, attribute lists,
        exemplars and memos (tables numbered in ``POINT_SHAPE_COLUMNS`` order), the caller's
        callbacks, and ``series_fn``, which computes a point's ``series_id`` here on a memo miss."""
        tables = tuple(POINT_SHAPE_COLUMNS)

        def series_fn(table: int, a0: int, ci: int, ii: int) -> int:
            rinfo, sinfo = self.ctx.items[ci]
            return self.point_series_id(tables[table], a0, rinfo.resource_id, sinfo.scope_id, self.infos[ii])

        return (
            tuple(self.points[t].lists() for t in tables),
            tuple(self.attrs[t].lists() for t in tables),
            self.exemplars,
            self.exemplar_attrs.lists(),
            self.c_info_memo,
            self.c_series_memo,
            res_fn,
            scope_fn,
            metric_fn,
            series_fn,
            fallback,
            pending,
        )

    def point_series_id(self, table: str, a0: int, resource_id: int, scope_id: int, info: MetricInfo) -> int:
        """``series_id`` of the point of ``table`` whose attributes start at ``a0`` (the last ones
        appended), memoised for the batch: a stream's points repeat with the same attributes, and
        the hash of the rendered attributes is the metric path's dearest step. The memo's key holds
        everything ``series_id`` reads (the attribute keys as positions in this batch's key table,
        which are fixed for the batch)."""
        ac = self.attrs[table]
        tag_pos = ac.tag_pos
        if tag_pos and tag_pos[-1] >= a0:
            t0 = bisect_left(tag_pos, a0)
            typed: tuple = (*(p - a0 for p in tag_pos[t0:]), *ac.tags[t0:])
        else:
            typed = ()
        key = (
            table,
            resource_id,
            scope_id,
            *info.stream_fields(),
            tuple(ac.keys[a0:]),
            tuple(ac.vals[a0:]),
            typed,
        )
        sid = self._sids.get(key)
        if sid is None:
            sid = self._sids[key] = series_id(resource_id, scope_id, info, ac.rendered(a0))
        return sid

    def attr_start(self, table: str) -> int:
        """Where the attributes of the next point of ``table`` start."""
        rows = self.points[table]
        return rows[-1][P_ATTR_END] if rows else 0

    def rollback(self, table: str, record_index: int) -> None:
        """Undo what a data point that failed half-way appended (its row is appended last)."""
        self.attrs[table].truncate(self.attr_start(table))
        ex = self.exemplars
        while ex and ex[-1][12] == record_index:
            ex.pop()
        self.exemplar_attrs.truncate(ex[-1][9] if ex else 0)

    def add_info(self, info: MetricInfo) -> int:
        """The index of ``info`` in the batch's metric table. A Metric message usually carries one
        or two points, so the same metric repeats thousands of times a batch: infos without
        metadata are shared by value (the columns taken from them are the same either way)."""
        if info.metadata:
            self.infos.append(info)
            return len(self.infos) - 1
        key = (info.name, info.description, info.unit, info.metric_type, info.temporality, info.is_monotonic)
        i = self._info_index.get(key)
        if i is None:
            self.infos.append(info)
            i = self._info_index[key] = len(self.infos) - 1
        return i

    def _info_columns(self, idx: Any) -> dict[str, pa.Array]:
        take = pa.array(idx, pa.int32())
        infos = self.infos
        md = AttrCols()
        ends = []
        for i in infos:
            for k, t, v in i.metadata:
                md.add_typed(k, t, v)
            ends.append(len(md.keys))
        md_attrs, md_types = md.to_arrays(ends, null_if_empty=True)
        return {
            "metric_name": pa.array([i.name for i in infos], pa.string()).take(take),
            "metric_description": pa.array([i.description for i in infos], pa.string()).take(take),
            "unit": pa.array([i.unit for i in infos], pa.string()).take(take),
            "metric_type": pa.array([i.metric_type for i in infos], pa.string()).take(take),
            "aggregation_temporality": pa.array([i.temporality for i in infos], pa.int8()).take(take),
            "is_monotonic": pa.array([i.is_monotonic for i in infos], pa.bool_()).take(take),
            "metric_metadata": md_attrs.take(take),
            "metric_metadata_types": md_types.take(take),
        }

    def to_tables(self) -> dict[str, pa.Table]:
        out: dict[str, pa.Table] = {}
        for table, rows in self.points.items():
            n = len(rows)
            if n == 0:
                continue
            c = rows.fixed_columns().T  # c[k]: shared column k, contiguous
            c = np.ascontiguousarray(c)
            attrs, types = self.attrs[table].to_arrays(c[P_ATTR_END])
            flags = pa.array(c[P_FLAGS].astype(np.uint32), pa.uint32())
            cols: dict[str, Any] = {
                **self._info_columns(c[P_MINFO].astype(np.int32)),
                "series_id": pa.array(c[P_SERIES], pa.int64()),
                "start_time": ts_array(c[P_START]),
                "time": ts_array(c[P_TIME]),
                "attributes": attrs,
                "attribute_types": types,
                "flags": flags,
                "no_recorded_value": pc.not_equal(pc.bit_wise_and(flags, pa.scalar(1, pa.uint32())), 0),
                "exemplar_count": pa.array(c[P_NEX].astype(np.int32), pa.int32()),
                **self.ctx.columns(c[P_CTX].astype(np.int32)),
                "_source_file": pa.repeat(pa.scalar(self.source_file, pa.string()), n),
                "_record_index": pa.array(c[P_REC], pa.int64()),
            }
            table_schema = schema.TABLES[table]
            for j, name in enumerate(POINT_SHAPE_COLUMNS[table]):
                cols[name] = pa.array(rows.shape[j], table_schema.field(name).type)
            out[table] = _table(table_schema, cols)
        if self.exemplars:
            e = list(zip(*self.exemplars, strict=True))
            ea, et = self.exemplar_attrs.to_arrays(e[9])
            out["exemplars"] = _table(
                schema.EXEMPLARS,
                {
                    "point_table": pa.array(e[0], pa.string()),
                    "series_id": pa.array(e[1], pa.int64()),
                    "metric_name": pa.array(e[2], pa.string()),
                    "exemplar_index": pa.array(e[3], pa.int32()),
                    "time": ts_array(e[4]),
                    "value_double": pa.array(e[5], pa.float64()),
                    "value_int": pa.array(e[6], pa.int64()),
                    "trace_id": pa.array(e[7], schema.TRACE_ID),
                    "span_id": pa.array(e[8], schema.SPAN_ID),
                    "filtered_attributes": ea,
                    "filtered_attribute_types": et,
                    "resource_id": pa.array(e[10], pa.int64()),
                    "service_name": pa.array(e[11], pa.string()),
                    "_source_file": pa.repeat(pa.scalar(self.source_file, pa.string()), len(self.exemplars)),
                    "_record_index": pa.array(e[12], pa.int64()),
                },
            )
        return out


def series_id(
    resource_id: int, scope_id: int, info: MetricInfo, attrs: list[tuple[str, str, str | None]]
) -> int:
    """The identity of a metric stream (OTLP data model): resource, scope, name, unit, type,
    temporality, monotonicity and the point's attributes (order-insensitive)."""
    return stable_hash(
        [
            resource_id,
            scope_id,
            *info.stream_fields(),
            *attrs_hash_parts(sorted(attrs, key=lambda a: (a[0], a[1], a[2] or ""))),
        ]
    )
