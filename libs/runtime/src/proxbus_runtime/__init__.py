"""proxbus-runtime: how a proxbus service connects, publishes, consumes, serves health and stops."""

from .consumer import EventConsumer, PullConsumer, ReceivedEvent
from .errors import PublishError, RpcError, RpcTimeout, RpcUnavailable, StopRequested
from .health import HealthServer
from .logs import configure_logging
from .main import Check, build_settings, main
from .metrics import register_publisher
from .publisher import EventPublisher, event_headers
from .ratelimit import TokenBucket
from .ratelog import RateLimitedLog
from .rpc import call_tool
from .service import Service
from .settings import ServiceSettings, connect_nats
from .silences import SilenceStore
from .spool import EventSpool, SpoolFull
from .spooling import SpoolingPublisher, SpoolSettings, attach_spooling, open_spooling
from .streams import ensure_streams

__all__ = [
    "Check",
    "EventConsumer",
    "EventPublisher",
    "EventSpool",
    "HealthServer",
    "PublishError",
    "PullConsumer",
    "RateLimitedLog",
    "ReceivedEvent",
    "RpcError",
    "RpcTimeout",
    "RpcUnavailable",
    "Service",
    "ServiceSettings",
    "SilenceStore",
    "SpoolFull",
    "SpoolSettings",
    "SpoolingPublisher",
    "StopRequested",
    "TokenBucket",
    "attach_spooling",
    "build_settings",
    "call_tool",
    "configure_logging",
    "connect_nats",
    "ensure_streams",
    "event_headers",
    "main",
    "open_spooling",
    "register_publisher",
]
