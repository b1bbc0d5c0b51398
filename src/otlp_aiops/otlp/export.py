"""Rebuild OTLP protobuf messages from the Parquet tables of an ingest output folder.

The inverse of :mod:`otlp_aiops.otlp.ingest`: ``export_traces`` / ``export_logs`` /
``export_metrics`` read ``<folder>/<table>/*.parquet`` and return one ``TracesData`` /
``LogsData`` / ``MetricsData``. Records are read in ``(_source_file, _record_index)`` order and
grouped by resource, then scope (then, for metrics, by the metric they belong to); groups come in
the order of their first record and records keep their order within a group. So the grouping into
``Resource*`` / ``Scope*`` / ``Metric`` messages may differ from the source (two blocks with the
same resource become one), while every record comes back with every field.

What the tables do not keep (see the :mod:`~otlp_aiops.otlp.schema` docstring) cannot come back:
an empty span ``status``, an empty resource or scope, empty exponential histogram buckets, and an
empty ``AnyValue`` held by an attribute are left unset. Used by the round-trip tests and by users
who want to re-export a subset (``where``); readable rather than fast.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from otlp_aiops.otlp import schema

if TYPE_CHECKING:
    import pyarrow.compute as pc
    from opentelemetry.proto.logs.v1 import logs_pb2
    from opentelemetry.proto.metrics.v1 import metrics_pb2
    from opentelemetry.proto.trace.v1 import trace_pb2

Row = dict[str, Any]

# point table -> the short name exemplars use in their ``point_table`` column
_POINT_TABLE_SHORT = {**schema.POINT_TABLE_SHORT, "metrics_summary": "summary"}  # summaries have no exemplars


# --------------------------------------------------------------------------------------------------
# reading
# --------------------------------------------------------------------------------------------------


def _read_rows(
    folder: Path, table: str, where: pc.Expression | None = None, order: Iterable[str] = ()
) -> list[Row]:
    """The rows of one table as dicts, in (_source_file, _record_index, *order) order.

    Timestamps come back as int64 nanoseconds (null stays None): Python datetimes cannot hold
    nanoseconds nor times past 9999."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = Path(folder) / table
    if not path.exists():
        return []
    t = pq.read_table(path, schema=schema.TABLES[table], filters=where)
    keys = [k for k in ("_source_file", "_record_index", *order) if k in t.column_names]
    if keys:
        t = t.sort_by([(k, "ascending") for k in keys])
    for i, f in enumerate(t.schema):
        if pa.types.is_timestamp(f.type):
            t = t.set_column(i, f.name, t.column(i).cast(pa.int64()))
    return t.to_pylist()


def _children(
    folder: Path, table: str, index_col: str, extra_key: str | None = None
) -> dict[tuple, list[Row]]:
    """Child rows (span events, span links, exemplars) by the key of their parent row:
    (_source_file, _record_index[, extra_key]), each list in ``index_col`` order."""
    out: dict[tuple, list[Row]] = defaultdict(list)
    for r in _read_rows(folder, table, order=[index_col]):
        key = (r["_source_file"], r["_record_index"])
        if extra_key is not None:
            key += (r[extra_key],)
        out[key].append(r)
    return out


def _by_id(folder: Path, table: str, id_col: str) -> dict[int, Row]:
    return {r[id_col]: r for r in _read_rows(folder, table)}


# --------------------------------------------------------------------------------------------------
# common pieces
# --------------------------------------------------------------------------------------------------


def _fill_attributes(
    kvs: Any, attrs: list[tuple[str, str]] | None, types: list[tuple[str, str]] | None
) -> None:
    """Append the KeyValues of a stored (attributes, attribute_types) pair to a repeated field."""
    from otlp_aiops.otlp.anyvalue import to_proto

    if not attrs:
        return
    tags = dict(types or ())
    for key, text in attrs:
        kv = kvs.add()
        kv.key = key
        to_proto(tags.get(key), text, kv.value)


def _id(b: bytes | None) -> bytes:
    return b if b is not None else b""


def _time(t: int | None) -> int:
    return t if t is not None else 0


def _fill_resource(container: Any, row: Row) -> None:
    """Set ``container.resource`` and ``container.schema_url`` (container: a Resource* message)."""
    import orjson
    from google.protobuf import json_format
    from opentelemetry.proto.resource.v1 import resource_pb2

    r = container.resource
    _fill_attributes(r.attributes, row["attributes"], row["attribute_types"])
    if row["dropped_attributes_count"]:
        r.dropped_attributes_count = row["dropped_attributes_count"]
    if row["entity_refs_json"]:
        parsed = json_format.ParseDict(
            {"entityRefs": orjson.loads(row["entity_refs_json"])}, resource_pb2.Resource()
        )
        r.entity_refs.extend(parsed.entity_refs)
    if row["schema_url"]:
        container.schema_url = row["schema_url"]


def _fill_scope(container: Any, row: Row) -> None:
    """Set ``container.scope`` and ``container.schema_url`` (container: a Scope* message)."""
    s = container.scope
    if row["scope_name"]:
        s.name = row["scope_name"]
    if row["scope_version"]:
        s.version = row["scope_version"]
    _fill_attributes(s.attributes, row["attributes"], row["attribute_types"])
    if row["dropped_attributes_count"]:
        s.dropped_attributes_count = row["dropped_attributes_count"]
    if row["schema_url"]:
        container.schema_url = row["schema_url"]


class _Grouper:
    """Resource* and Scope* blocks of a top-level message, created on first use, in that order (their
    fields from the ingest folder's resources and scopes tables)."""

    def __init__(self, resource_list: Any, scope_field: str, folder: Path):
        self.resource_list = resource_list
        self.scope_field = scope_field
        self.resources = _by_id(folder, "resources", "resource_id")
        self.scopes = _by_id(folder, "scopes", "scope_id")
        self.blocks: dict[int, Any] = {}
        self.scope_blocks: dict[tuple[int, int], Any] = {}

    def scope_block(self, resource_id: int, scope_id: int) -> Any:
        sb = self.scope_blocks.get((resource_id, scope_id))
        if sb is None:
            rb = self.blocks.get(resource_id)
            if rb is None:
                rb = self.blocks[resource_id] = self.resource_list.add()
                _fill_resource(rb, self._row(self.resources, resource_id, "resources"))
            sb = self.scope_blocks[(resource_id, scope_id)] = getattr(rb, self.scope_field).add()
            _fill_scope(sb, self._row(self.scopes, scope_id, "scopes"))
        return sb

    @staticmethod
    def _row(rows: dict[int, Row], key: int, table: str) -> Row:
        try:
            return rows[key]
        except KeyError:
            raise ValueError(
                f"{table} table has no row for id {key}: the ingest output is incomplete"
            ) from None


# --------------------------------------------------------------------------------------------------
# traces
# --------------------------------------------------------------------------------------------------


def export_traces(folder: str | Path, where: pc.Expression | None = None) -> trace_pb2.TracesData:
    """The spans of an ingest output folder as one ``TracesData`` (``where`` filters the spans)."""
    from opentelemetry.proto.trace.v1 import trace_pb2

    folder = Path(folder)
    out = trace_pb2.TracesData()
    g = _Grouper(out.resource_spans, "scope_spans", folder)
    events = _children(folder, "span_events", "event_index")
    links = _children(folder, "span_links", "link_index")
    for row in _read_rows(folder, "spans", where):
        s = g.scope_block(row["resource_id"], row["scope_id"]).spans.add()
        s.trace_id = _id(row["trace_id"])
        s.span_id = _id(row["span_id"])
        if row["trace_state"]:
            s.trace_state = row["trace_state"]
        s.parent_span_id = _id(row["parent_span_id"])
        s.flags = row["flags"]
        s.name = row["name"]
        s.kind = row["kind"]
        s.start_time_unix_nano = _time(row["start_time"])
        s.end_time_unix_nano = _time(row["end_time"])
        _fill_attributes(s.attributes, row["attributes"], row["attribute_types"])
        s.dropped_attributes_count = row["dropped_attributes_count"]
        key = (row["_source_file"], row["_record_index"])
        for e in events.get(key, ()):
            ev = s.events.add()
            ev.time_unix_nano = _time(e["time"])
            ev.name = e["name"]
            _fill_attributes(ev.attributes, e["attributes"], e["attribute_types"])
            ev.dropped_attributes_count = e["dropped_attributes_count"]
        s.dropped_events_count = row["dropped_events_count"]
        for lk in links.get(key, ()):
            li = s.links.add()
            li.trace_id = _id(lk["linked_trace_id"])
            li.span_id = _id(lk["linked_span_id"])
            if lk["trace_state"]:
                li.trace_state = lk["trace_state"]
            _fill_attributes(li.attributes, lk["attributes"], lk["attribute_types"])
            li.dropped_attributes_count = lk["dropped_attributes_count"]
            li.flags = lk["flags"]
        s.dropped_links_count = row["dropped_links_count"]
        if row["status_code"] or row["status_message"]:
            s.status.code = row["status_code"]
            if row["status_message"]:
                s.status.message = row["status_message"]
        if len(s.events) != row["event_count"] or len(s.links) != row["link_count"]:
            raise ValueError(
                f"{row['_source_file']} record {row['_record_index']}: span has event_count "
                f"{row['event_count']} / link_count {row['link_count']} but {len(s.events)} / "
                f"{len(s.links)} rows were found"
            )
    return out


# --------------------------------------------------------------------------------------------------
# logs
# --------------------------------------------------------------------------------------------------


def export_logs(folder: str | Path, where: pc.Expression | None = None) -> logs_pb2.LogsData:
    """The log records of an ingest output folder as one ``LogsData`` (``where`` filters the records)."""
    from opentelemetry.proto.logs.v1 import logs_pb2

    from otlp_aiops.otlp.anyvalue import to_proto

    folder = Path(folder)
    out = logs_pb2.LogsData()
    g = _Grouper(out.resource_logs, "scope_logs", folder)
    for row in _read_rows(folder, "logs", where):
        r = g.scope_block(row["resource_id"], row["scope_id"]).log_records.add()
        r.time_unix_nano = _time(row["time"])
        r.observed_time_unix_nano = _time(row["observed_time"])
        r.severity_number = row["severity_number"]
        if row["severity_text"]:
            r.severity_text = row["severity_text"]
        if row["body_type"] is not None:
            r.body.SetInParent()  # an empty AnyValue body is kept as such
            to_proto(row["body_type"], row["body"], r.body)
        _fill_attributes(r.attributes, row["attributes"], row["attribute_types"])
        r.dropped_attributes_count = row["dropped_attributes_count"]
        r.flags = row["flags"]
        r.trace_id = _id(row["trace_id"])
        r.span_id = _id(row["span_id"])
        if row["event_name"]:
            r.event_name = row["event_name"]
    return out


# --------------------------------------------------------------------------------------------------
# metrics
# --------------------------------------------------------------------------------------------------


def _metric_key(row: Row) -> tuple:
    """What makes two data points belong to the same Metric message (within a resource and scope)."""
    return (
        row["metric_name"],
        row["metric_type"],
        row["metric_description"],
        row["unit"],
        row["aggregation_temporality"],
        row["is_monotonic"],
        tuple(row["metric_metadata"] or ()),
        tuple(row["metric_metadata_types"] or ()),
    )


def _new_metric(scope_block: Any, row: Row) -> Any:
    m = scope_block.metrics.add()
    m.name = row["metric_name"]
    if row["metric_description"]:
        m.description = row["metric_description"]
    if row["unit"]:
        m.unit = row["unit"]
    _fill_attributes(m.metadata, row["metric_metadata"], row["metric_metadata_types"])
    data = getattr(m, row["metric_type"])
    data.SetInParent()
    if row["aggregation_temporality"] is not None:
        data.aggregation_temporality = row["aggregation_temporality"]
    if row["is_monotonic"] is not None:
        data.is_monotonic = row["is_monotonic"]
    return data


def _fill_exemplars(p: Any, exemplars: list[Row]) -> None:
    for e in exemplars:
        x = p.exemplars.add()
        _fill_attributes(x.filtered_attributes, e["filtered_attributes"], e["filtered_attribute_types"])
        x.time_unix_nano = _time(e["time"])
        if e["value_int"] is not None:
            x.as_int = e["value_int"]
        elif e["value_double"] is not None:
            x.as_double = e["value_double"]
        x.span_id = _id(e["span_id"])
        x.trace_id = _id(e["trace_id"])


def _fill_point(p: Any, table: str, row: Row) -> None:
    """The shape-specific fields of a data point."""
    if table == "metrics_number":
        if row["value_int"] is not None:
            p.as_int = row["value_int"]
        elif row["value_double"] is not None:
            p.as_double = row["value_double"]
        return
    p.count = row["count"]
    if table == "metrics_summary":
        p.sum = row["sum"]
        for q, v in zip(row["quantiles"], row["quantile_values"], strict=True):
            p.quantile_values.add(quantile=q, value=v)
        return
    for opt in ("sum", "min", "max"):
        if row[opt] is not None:
            setattr(p, opt, row[opt])
    if table == "metrics_histogram":
        p.bucket_counts.extend(row["bucket_counts"])
        p.explicit_bounds.extend(row["explicit_bounds"])
        return
    p.scale = row["scale"]
    p.zero_count = row["zero_count"]
    p.zero_threshold = row["zero_threshold"]
    for side in ("positive", "negative"):
        offset, counts = row[f"{side}_offset"], row[f"{side}_bucket_counts"]
        if offset or counts:
            b = getattr(p, side)
            b.offset = offset
            b.bucket_counts.extend(counts)


def export_metrics(folder: str | Path, where: pc.Expression | None = None) -> metrics_pb2.MetricsData:
    """The data points of an ingest output folder as one ``MetricsData`` (``where`` filters the
    points of every point table)."""
    from opentelemetry.proto.metrics.v1 import metrics_pb2

    folder = Path(folder)
    out = metrics_pb2.MetricsData()
    g = _Grouper(out.resource_metrics, "scope_metrics", folder)
    exemplars = _children(folder, "exemplars", "exemplar_index", extra_key="point_table")
    points: list[tuple[str, Row]] = [
        (table, row) for table in _POINT_TABLE_SHORT for row in _read_rows(folder, table, where)
    ]
    points.sort(key=lambda tr: (tr[1]["_source_file"], tr[1]["_record_index"]))
    metrics: dict[tuple, Any] = {}
    for table, row in points:
        ctx = (row["resource_id"], row["scope_id"])
        mkey = (*ctx, *_metric_key(row))
        data = metrics.get(mkey)
        if data is None:
            data = metrics[mkey] = _new_metric(g.scope_block(*ctx), row)
        p = data.data_points.add()
        _fill_attributes(p.attributes, row["attributes"], row["attribute_types"])
        p.start_time_unix_nano = _time(row["start_time"])
        p.time_unix_nano = _time(row["time"])
        p.flags = row["flags"]
        _fill_point(p, table, row)
        if table != "metrics_summary":
            exs = exemplars.get((row["_source_file"], row["_record_index"], _POINT_TABLE_SHORT[table]), [])
            if len(exs) != row["exemplar_count"]:
                raise ValueError(
                    f"{row['_source_file']} record {row['_record_index']}: exemplar_count"
                    f" {row['exemplar_count']} but {len(exs)} exemplar rows were found"
                )
            _fill_exemplars(p, exs)
    return out
