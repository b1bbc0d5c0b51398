"""The Parquet schema of ingested OTLP: one Arrow schema per table, and the promoted columns.

This module is the data contract between ingest and every later stage (see DESIGN.md,
"Parquet tables"). Columns are only ever added, nullable; bump ``SCHEMA_VERSION`` when you do.

Conventions
-----------
* ids are ``fixed_size_binary(16)`` (trace) / ``(8)`` (span); an empty or all-zero id is null.
* times are ``timestamp[ns, tz=UTC]``; an OTLP time of 0 ("unset") is null.
* enums keep their OTLP numbers.
* attributes: ``attributes`` is a ``map<string,string>`` keeping every key in source order, values
  rendered canonically (see :mod:`otlp_aiops.otlp.anyvalue`); ``attribute_types`` maps each key whose
  value is *not* a plain string to its type tag, so the original ``AnyValue`` can be rebuilt exactly.
  It is null when every value is a string.
* "lossless" means every OTLP field value is kept; the presence of an *empty* optional sub-message
  (a span ``status`` with code 0 and no message, an empty ``resource`` or ``scope``, empty exponential
  histogram buckets) is not, because OTLP gives it no meaning apart from the defaults. A resource or
  scope block with no records, or a metric with no data points, has no row to live in and is not
  kept. OTLP requires attribute keys to be unique; if a producer repeats one, every entry stays in
  ``attributes`` but ``attribute_types`` (keyed by name) cannot tell their types apart.
* every row carries ``_source_file`` and ``_record_index`` (lineage). For child rows (span events,
  span links, exemplars) ``_record_index`` is that of the parent span / data point.
"""

from __future__ import annotations

import pyarrow as pa

SCHEMA_VERSION = "1"
SCHEMA_METADATA_KEY = b"otlp_aiops.schema_version"

TRACE_ID = pa.binary(16)
SPAN_ID = pa.binary(8)
TIME = pa.timestamp("ns", tz="UTC")
ATTRS = pa.map_(pa.string(), pa.string())

# Resource attributes promoted to a column on every row: (column, [keys, first present wins]).
# Later keys are older semantic-convention names that real producers still send.
RESOURCE_PROMOTED: list[tuple[str, tuple[str, ...]]] = [
    ("service_name", ("service.name",)),
    ("service_namespace", ("service.namespace",)),
    ("service_version", ("service.version",)),
    ("service_instance_id", ("service.instance.id",)),
    ("host_name", ("host.name",)),
    ("k8s_pod_name", ("k8s.pod.name",)),
    ("k8s_namespace_name", ("k8s.namespace.name",)),
    ("k8s_node_name", ("k8s.node.name",)),
    ("container_id", ("container.id",)),
    ("deployment_environment_name", ("deployment.environment.name", "deployment.environment")),
]

# Hot span attributes promoted to typed columns: (column, arrow type, keys in priority order).
SPAN_PROMOTED: list[tuple[str, pa.DataType, tuple[str, ...]]] = [
    ("http_request_method", pa.string(), ("http.request.method", "http.method")),
    ("http_response_status_code", pa.int64(), ("http.response.status_code", "http.status_code")),
    ("http_route", pa.string(), ("http.route",)),
    ("url_full", pa.string(), ("url.full", "http.url")),
    ("server_address", pa.string(), ("server.address", "net.peer.name")),
    ("rpc_system", pa.string(), ("rpc.system",)),
    ("rpc_service", pa.string(), ("rpc.service",)),
    ("rpc_method", pa.string(), ("rpc.method",)),
    ("rpc_grpc_status_code", pa.int64(), ("rpc.grpc.status_code",)),
    ("db_system", pa.string(), ("db.system.name", "db.system")),
    ("db_namespace", pa.string(), ("db.namespace", "db.name")),
    ("db_operation_name", pa.string(), ("db.operation.name", "db.operation")),
    ("messaging_system", pa.string(), ("messaging.system",)),
    ("messaging_destination_name", pa.string(), ("messaging.destination.name", "messaging.destination")),
    ("peer_service", pa.string(), ("peer.service",)),
    ("error_type", pa.string(), ("error.type",)),
]

LOG_PROMOTED: list[tuple[str, pa.DataType, tuple[str, ...]]] = [
    ("error_type", pa.string(), ("error.type",)),
    ("exception_type", pa.string(), ("exception.type",)),
    ("exception_message", pa.string(), ("exception.message",)),
]

METRIC_PROMOTED: list[tuple[str, pa.DataType, tuple[str, ...]]] = []


def _f(name: str, type_: pa.DataType, nullable: bool = True) -> pa.Field:
    return pa.field(name, type_, nullable=nullable)


def _attrs(prefix: str = "") -> list[pa.Field]:
    return [_f(f"{prefix}attributes", ATTRS), _f(f"{prefix}attribute_types", ATTRS)]


def _context() -> list[pa.Field]:
    """Resource and scope context carried by every span, log record and data point."""
    return [
        _f("resource_id", pa.int64(), False),
        _f("scope_id", pa.int64(), False),
        *[_f(col, pa.string()) for col, _ in RESOURCE_PROMOTED],
        _f("scope_name", pa.string()),
    ]


def _lineage() -> list[pa.Field]:
    return [_f("_source_file", pa.string(), False), _f("_record_index", pa.int64(), False)]


def _promoted(spec: list[tuple[str, pa.DataType, tuple[str, ...]]]) -> list[pa.Field]:
    return [_f(col, t) for col, t, _ in spec]


SPANS = pa.schema(
    [
        _f("trace_id", TRACE_ID),
        _f("span_id", SPAN_ID),
        _f("parent_span_id", SPAN_ID),
        _f("trace_state", pa.string()),
        _f("flags", pa.uint32(), False),
        _f("name", pa.string(), False),
        _f("kind", pa.int8(), False),
        _f("start_time", TIME),
        _f("end_time", TIME),
        _f("duration_ns", pa.int64()),
        _f("status_code", pa.int8(), False),
        _f("status_message", pa.string()),
        *_attrs(),
        _f("dropped_attributes_count", pa.uint32(), False),
        _f("event_count", pa.int32(), False),
        _f("dropped_events_count", pa.uint32(), False),
        _f("link_count", pa.int32(), False),
        _f("dropped_links_count", pa.uint32(), False),
        *_promoted(SPAN_PROMOTED),
        *_context(),
        *_lineage(),
    ]
)

SPAN_EVENTS = pa.schema(
    [
        _f("trace_id", TRACE_ID),
        _f("span_id", SPAN_ID),
        _f("event_index", pa.int32(), False),
        _f("time", TIME),
        _f("name", pa.string(), False),
        *_attrs(),
        _f("dropped_attributes_count", pa.uint32(), False),
        _f("resource_id", pa.int64(), False),
        _f("service_name", pa.string()),
        *_lineage(),
    ]
)

SPAN_LINKS = pa.schema(
    [
        _f("trace_id", TRACE_ID),
        _f("span_id", SPAN_ID),
        _f("link_index", pa.int32(), False),
        _f("linked_trace_id", TRACE_ID),
        _f("linked_span_id", SPAN_ID),
        _f("trace_state", pa.string()),
        _f("flags", pa.uint32(), False),
        *_attrs(),
        _f("dropped_attributes_count", pa.uint32(), False),
        _f("resource_id", pa.int64(), False),
        _f("service_name", pa.string()),
        *_lineage(),
    ]
)

LOGS = pa.schema(
    [
        _f("time", TIME),
        _f("observed_time", TIME),
        _f("severity_number", pa.int8(), False),
        _f("severity_text", pa.string()),
        _f("body", pa.string()),
        # type tag of the body (see anyvalue.TYPE_*); null when the record has no body.
        _f("body_type", pa.string()),
        *_attrs(),
        _f("dropped_attributes_count", pa.uint32(), False),
        _f("flags", pa.uint32(), False),
        _f("trace_id", TRACE_ID),
        _f("span_id", SPAN_ID),
        _f("event_name", pa.string()),
        *_promoted(LOG_PROMOTED),
        *_context(),
        *_lineage(),
    ]
)


def _metric_common() -> list[pa.Field]:
    return [
        _f("metric_name", pa.string(), False),
        _f("metric_description", pa.string()),
        _f("unit", pa.string()),
        # "gauge" | "sum" | "histogram" | "exponential_histogram" | "summary"
        _f("metric_type", pa.string(), False),
        _f("aggregation_temporality", pa.int8()),
        _f("is_monotonic", pa.bool_()),
        _f("metric_metadata", ATTRS),
        _f("metric_metadata_types", ATTRS),
        _f("series_id", pa.int64(), False),
        _f("start_time", TIME),
        _f("time", TIME),
        *_attrs(),
        _f("flags", pa.uint32(), False),
        _f("no_recorded_value", pa.bool_(), False),
        _f("exemplar_count", pa.int32(), False),
    ]


METRICS_NUMBER = pa.schema(
    [
        *_metric_common(),
        # as_double -> value_double only; as_int -> value_int (exact) and value_double; neither -> both null
        _f("value_double", pa.float64()),
        _f("value_int", pa.int64()),
        *_context(),
        *_lineage(),
    ]
)

METRICS_HISTOGRAM = pa.schema(
    [
        *_metric_common(),
        _f("count", pa.uint64(), False),
        _f("sum", pa.float64()),
        _f("min", pa.float64()),
        _f("max", pa.float64()),
        _f("bucket_counts", pa.list_(pa.uint64()), False),
        _f("explicit_bounds", pa.list_(pa.float64()), False),
        *_context(),
        *_lineage(),
    ]
)

METRICS_EXP_HISTOGRAM = pa.schema(
    [
        *_metric_common(),
        _f("count", pa.uint64(), False),
        _f("sum", pa.float64()),
        _f("min", pa.float64()),
        _f("max", pa.float64()),
        _f("scale", pa.int32(), False),
        _f("zero_count", pa.uint64(), False),
        _f("zero_threshold", pa.float64(), False),
        _f("positive_offset", pa.int32(), False),
        _f("positive_bucket_counts", pa.list_(pa.uint64()), False),
        _f("negative_offset", pa.int32(), False),
        _f("negative_bucket_counts", pa.list_(pa.uint64()), False),
        *_context(),
        *_lineage(),
    ]
)

METRICS_SUMMARY = pa.schema(
    [
        *_metric_common(),
        _f("count", pa.uint64(), False),
        _f("sum", pa.float64(), False),
        _f("quantiles", pa.list_(pa.float64()), False),
        _f("quantile_values", pa.list_(pa.float64()), False),
        *_context(),
        *_lineage(),
    ]
)

EXEMPLARS = pa.schema(
    [
        # which point table the exemplar belongs to: "number" | "histogram" | "exponential_histogram"
        _f("point_table", pa.string(), False),
        _f("series_id", pa.int64(), False),
        _f("metric_name", pa.string(), False),
        _f("exemplar_index", pa.int32(), False),
        _f("time", TIME),
        _f("value_double", pa.float64()),
        _f("value_int", pa.int64()),
        _f("trace_id", TRACE_ID),
        _f("span_id", SPAN_ID),
        *_attrs("filtered_"),
        _f("resource_id", pa.int64(), False),
        _f("service_name", pa.string()),
        *_lineage(),
    ]
)

RESOURCES = pa.schema(
    [
        _f("resource_id", pa.int64(), False),
        *[_f(col, pa.string()) for col, _ in RESOURCE_PROMOTED],
        *_attrs(),
        _f("dropped_attributes_count", pa.uint32(), False),
        # the ResourceSpans/ResourceLogs/ResourceMetrics schema_url (part of the resource identity)
        _f("schema_url", pa.string()),
        # Resource.entity_refs as OTLP/JSON (null when absent)
        _f("entity_refs_json", pa.string()),
    ]
)

SCOPES = pa.schema(
    [
        _f("scope_id", pa.int64(), False),
        _f("scope_name", pa.string()),
        _f("scope_version", pa.string()),
        *_attrs(),
        _f("dropped_attributes_count", pa.uint32(), False),
        _f("schema_url", pa.string()),
    ]
)

TABLES: dict[str, pa.Schema] = {
    "spans": SPANS,
    "span_events": SPAN_EVENTS,
    "span_links": SPAN_LINKS,
    "logs": LOGS,
    "metrics_number": METRICS_NUMBER,
    "metrics_histogram": METRICS_HISTOGRAM,
    "metrics_exp_histogram": METRICS_EXP_HISTOGRAM,
    "metrics_summary": METRICS_SUMMARY,
    "exemplars": EXEMPLARS,
    "resources": RESOURCES,
    "scopes": SCOPES,
}

# The tables whose rows are the "records" of each signal (records read = rows written + quarantined).
RECORD_TABLES: dict[str, tuple[str, ...]] = {
    "traces": ("spans",),
    "logs": ("logs",),
    "metrics": ("metrics_number", "metrics_histogram", "metrics_exp_histogram", "metrics_summary"),
}

# the exemplars table's ``point_table`` value for each point table
POINT_TABLE_SHORT = {
    "metrics_number": "number",
    "metrics_histogram": "histogram",
    "metrics_exp_histogram": "exponential_histogram",
}

POINT_TABLE_OF_TYPE = {
    "gauge": "metrics_number",
    "sum": "metrics_number",
    "histogram": "metrics_histogram",
    "exponential_histogram": "metrics_exp_histogram",
    "summary": "metrics_summary",
}


def with_version(schema: pa.Schema) -> pa.Schema:
    """The schema with the schema version in its key-value metadata (as written to Parquet)."""
    return schema.with_metadata({SCHEMA_METADATA_KEY: SCHEMA_VERSION.encode()})


# Parquet encoding: dictionary encoding only where values repeat (ids, times, exact values and
# lineage counters hardly ever do, and trying costs time), and min/max statistics only on the
# columns queries filter on (time ranges, services, names, enums, series), which DuckDB and Polars
# use to skip row groups.
_NO_DICTIONARY = frozenset(
    [
        "trace_id",
        "span_id",
        "parent_span_id",
        "linked_trace_id",
        "linked_span_id",
        "start_time",
        "end_time",
        "time",
        "observed_time",
        "duration_ns",
        "_record_index",
        "value_double",
        "value_int",
        "sum",
        "min",
        "max",
        "count",
    ]
)
_STATISTICS = frozenset(
    [
        "start_time",
        "end_time",
        "time",
        "observed_time",
        "service_name",
        "name",
        "kind",
        "status_code",
        "severity_number",
        "metric_name",
        "series_id",
        "resource_id",
        "scope_id",
    ]
)


def _leaf_paths(schema: pa.Schema) -> list[str]:
    out = []
    for f in schema:
        if pa.types.is_map(f.type):
            out += [f"{f.name}.key_value.key", f"{f.name}.key_value.value"]
        elif pa.types.is_list(f.type):
            out.append(f"{f.name}.list.element")
        else:
            out.append(f.name)
    return out


def parquet_options(table: str) -> dict:
    """Keyword arguments for ``pyarrow.parquet.ParquetWriter`` / ``write_table`` for one table."""
    paths = _leaf_paths(TABLES[table])
    return {
        "compression": "zstd",
        "use_dictionary": [p for p in paths if p.split(".")[0] not in _NO_DICTIONARY],
        "write_statistics": [p for p in paths if p in _STATISTICS],
    }
