"""proxbus-runtime: how a proxbus service connects, publishes, consumes, serves health and stops."""

from typing import TYPE_CHECKING, Any

from .consumer import EventConsumer, PullConsumer, ReceivedEvent
from .errors import FetchError, PublishError, RpcError, RpcTimeout, RpcUnavailable, StopRequested
from .frames import header_block, publish_frame
from .listen import ListenError, listening
from .logs import configure_logging
from .main import Check, build_settings, check_connection, main
from .metrics import register_publisher
from .publisher import EventPublisher, event_headers
from .ratelimit import TokenBucket
from .ratelog import RateLimitedLog
from .rpc import call_tool
from .service import Service
from .settings import ServiceSettings, connect_nats
from .silences import SilenceStore
from .spool import EventSpool, SpoolFull, SpoolWriteError
from .spooling import SpoolingPublisher, SpoolSettings, attach_spooling, open_spooling
from .streams import ensure_streams, open_bucket

if TYPE_CHECKING:
    from .health import HealthServer


def __getattr__(name: str) -> Any:
    # aiohttp (about 10 MiB resident) is imported with the health server, not with the
    # package: the MCP gateway serves its own HTTP and never starts one (its idle RSS).
    if name == "HealthServer":
        from .health import HealthServer

        return HealthServer
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "Check",
    "EventConsumer",
    "EventPublisher",
    "EventSpool",
    "FetchError",
    "HealthServer",
    "ListenError",
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
    "SpoolWriteError",
    "SpoolingPublisher",
    "StopRequested",
    "TokenBucket",
    "attach_spooling",
    "build_settings",
    "call_tool",
    "check_connection",
    "configure_logging",
    "connect_nats",
    "ensure_streams",
    "event_headers",
    "header_block",
    "listening",
    "main",
    "open_bucket",
    "open_spooling",
    "publish_frame",
    "register_publisher",
]
