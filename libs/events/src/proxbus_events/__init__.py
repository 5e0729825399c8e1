"""proxbus-events: the event contract v1, NATS subjects/streams and shared service runtime."""

from .consumer import EventConsumer, PullConsumer, ReceivedEvent
from .errors import ProxbusError, PublishError, RpcError, RpcTimeout
from .event import (
    EVENT_SCHEMA,
    KINDS,
    MESSAGE_LIMIT,
    SEVERITY_FLOORS,
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
from .health import HealthServer
from .logs import configure_logging
from .matchers import Matcher, match_all
from .metrics import PublisherCollector, register_publisher
from .publisher import EventPublisher, PublisherStats, event_headers
from .rpc import CALLER_HEADER, ERROR_CODE_HEADER, ERROR_HEADER, RPC_SERVICE_NAME, call_tool
from .runner import ServiceMain, run_service, serve_until_stopped
from .settings import ServiceSettings, connect_nats
from .silences import Silence, SilenceStore
from .streams import (
    AUDIT_STREAM,
    CURSORS_BUCKET,
    DELIVERIES_STREAM,
    DLQ_STREAM,
    EVENTS_STREAM,
    SILENCES_BUCKET,
    StreamLimits,
    ensure_streams,
)
from .subjects import (
    EventSubject,
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
    "CALLER_HEADER",
    "CURSORS_BUCKET",
    "DELIVERIES_STREAM",
    "DLQ_STREAM",
    "ERROR_CODE_HEADER",
    "ERROR_HEADER",
    "EVENTS_STREAM",
    "EVENT_SCHEMA",
    "KINDS",
    "MESSAGE_LIMIT",
    "RPC_SERVICE_NAME",
    "SEVERITY_FLOORS",
    "SILENCES_BUCKET",
    "TITLE_LIMIT",
    "TRUNCATION_MARKER",
    "Event",
    "EventConsumer",
    "EventPublisher",
    "EventSubject",
    "HealthServer",
    "Matcher",
    "ProxbusError",
    "PublishError",
    "PublisherCollector",
    "PublisherStats",
    "PullConsumer",
    "ReceivedEvent",
    "RpcError",
    "RpcTimeout",
    "ServiceMain",
    "ServiceSettings",
    "Severity",
    "Silence",
    "SilenceStore",
    "Source",
    "StreamLimits",
    "apply_severity_floor",
    "audit_subject",
    "call_tool",
    "compute_fingerprint",
    "configure_logging",
    "connect_nats",
    "delivery_subject",
    "deterministic_event_id",
    "dlq_subject",
    "ensure_streams",
    "event_headers",
    "event_subject",
    "events_filter",
    "match_all",
    "new_event_id",
    "parse_event_subject",
    "register_publisher",
    "rpc_subject",
    "run_service",
    "sanitize_token",
    "serve_until_stopped",
    "severity_from_syslog",
    "truncate",
]
