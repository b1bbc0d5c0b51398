"""OTLP on disk -> Arrow -> Parquet: framing detection, lenient OTLP/JSON and protobuf decoding, the
schema."""
