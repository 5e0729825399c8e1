"""proxbus-events: the wire contract v1 (pure data; no NATS, no HTTP).

The event model, subject names, stream and KV definitions, matchers, the silence model and the
Proxmox facts (UPIDs, host names, guest ids, the vzdump table) every service shares.
"""

from .errors import ConfigError, ProxbusError
from .event import (
    EVENT_SCHEMA,
    FINGERPRINT_SUBJECT_KEY,
    MESSAGE_LIMIT,
    TITLE_LIMIT,
    TRUNCATION_MARKER,
    Event,
    Severity,
    Source,
    apply_severity_floor,
    compute_fingerprint,
    deterministic_event_id,
    new_event_id,
    severity_from_syslog,
    truncate,
)
from .matchers import Matcher, match_all
from .ports import HTTP_PORTS, SMTP_PORT, SYSLOG_PORT
from .proxmox import (
    Upid,
    VzdumpGuest,
    backup_subject_vmid,
    find_upid,
    guest_id,
    parse_upid,
    parse_vzdump_table,
    short_host,
)
from .rpc import CALLER_HEADER, ERROR_CODE_HEADER, ERROR_HEADER, RPC_SERVICE_NAME
from .silences import Silence
from .streams import (
    AUDIT_STREAM,
    BUCKETS,
    CURSORS_BUCKET,
    DELIVERIES_STREAM,
    DLQ_STREAM,
    EVENTS_STREAM,
    SILENCES_BUCKET,
    StreamLimits,
    stream_specs,
)
from .subjects import (
    audit_subject,
    delivery_subject,
    dlq_subject,
    event_subject,
    events_filter,
    parse_event_subject,
    rpc_subject,
    sanitize_token,
)

__all__ = [
    "AUDIT_STREAM",
    "BUCKETS",
    "CALLER_HEADER",
    "CURSORS_BUCKET",
    "DELIVERIES_STREAM",
    "DLQ_STREAM",
    "ERROR_CODE_HEADER",
    "ERROR_HEADER",
    "EVENTS_STREAM",
    "EVENT_SCHEMA",
    "FINGERPRINT_SUBJECT_KEY",
    "HTTP_PORTS",
    "MESSAGE_LIMIT",
    "RPC_SERVICE_NAME",
    "SILENCES_BUCKET",
    "SMTP_PORT",
    "SYSLOG_PORT",
    "TITLE_LIMIT",
    "TRUNCATION_MARKER",
    "ConfigError",
    "Event",
    "Matcher",
    "ProxbusError",
    "Severity",
    "Silence",
    "Source",
    "StreamLimits",
    "Upid",
    "VzdumpGuest",
    "apply_severity_floor",
    "audit_subject",
    "backup_subject_vmid",
    "compute_fingerprint",
    "delivery_subject",
    "deterministic_event_id",
    "dlq_subject",
    "event_subject",
    "events_filter",
    "find_upid",
    "guest_id",
    "match_all",
    "new_event_id",
    "parse_event_subject",
    "parse_upid",
    "parse_vzdump_table",
    "rpc_subject",
    "sanitize_token",
    "severity_from_syslog",
    "short_host",
    "stream_specs",
    "truncate",
]
