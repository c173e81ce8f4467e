"""Names and shapes tailpipe-ai emits: standard library only, no OpenTelemetry import.

- ``attributes``: OpenTelemetry GenAI semantic-convention names (pinned to v1.41.0), our ``tailpipe.*``
  energy/carbon extension, metric names and buckets, and the content denylist (``is_content_attribute``).
- ``record``: the telemetry record ``tailpipe.record/1`` (``Record``) and its JSON Schema
  (``record.schema.json``, see ``schema_path()``).

Attribute constants are used as ``from tailpipe_ai.semconv import attributes as attrs``; the most used
names are re-exported here too.
"""

from . import attributes
from .attributes import (
    CONTENT_ATTRIBUTE_PREFIXES,
    CONTENT_ATTRIBUTES,
    CONTENT_EVENTS,
    GEN_AI_SEMCONV_VERSION,
    INTEGRATIONS,
    OUTPUT_TYPES,
    SEMCONV_ATTRIBUTES,
    TAILPIPE_ATTR_PREFIX,
    TAILPIPE_ATTRIBUTES,
    TOKEN_ACCURACIES,
    WELL_KNOWN_OPERATIONS,
    WELL_KNOWN_PROVIDERS,
    is_content_attribute,
    is_content_event,
    normalize_provider_name,
)
from .record import (
    FIELD_NAMES,
    REQUIRED_FIELDS,
    SCHEMA,
    SCHEMA_FILE,
    STATUS_ERROR,
    STATUS_OK,
    STATUSES,
    Record,
    RecordError,
    decode,
    encode,
    load_schema,
    new_record_id,
    parse_rfc3339,
    rfc3339_from_unix_ns,
    rfc3339_utc,
    schema_path,
    utc_now_rfc3339,
)

__all__ = [
    "CONTENT_ATTRIBUTES",
    "CONTENT_ATTRIBUTE_PREFIXES",
    "CONTENT_EVENTS",
    "FIELD_NAMES",
    "GEN_AI_SEMCONV_VERSION",
    "INTEGRATIONS",
    "OUTPUT_TYPES",
    "REQUIRED_FIELDS",
    "SCHEMA",
    "SCHEMA_FILE",
    "SEMCONV_ATTRIBUTES",
    "STATUSES",
    "STATUS_ERROR",
    "STATUS_OK",
    "TAILPIPE_ATTRIBUTES",
    "TAILPIPE_ATTR_PREFIX",
    "TOKEN_ACCURACIES",
    "WELL_KNOWN_OPERATIONS",
    "WELL_KNOWN_PROVIDERS",
    "Record",
    "RecordError",
    "attributes",
    "decode",
    "encode",
    "is_content_attribute",
    "is_content_event",
    "load_schema",
    "new_record_id",
    "normalize_provider_name",
    "parse_rfc3339",
    "rfc3339_from_unix_ns",
    "rfc3339_utc",
    "schema_path",
    "utc_now_rfc3339",
]
