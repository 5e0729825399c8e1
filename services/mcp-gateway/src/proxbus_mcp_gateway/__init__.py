"""proxbus MCP gateway: the Proxmox API pool served as MCP tools (stdio/HTTP/SSE) and NATS RPC."""

from ._deferred import defer_aiohttp

defer_aiohttp()  # before anything imports nats-py (see _deferred.py)

from .auth import Caller  # noqa: E402
from .config import ClusterConfig, Endpoint, TokenSpec, parse_clusters, parse_tokens  # noqa: E402
from .errors import ConfigError, Forbidden, InvalidArgument, NotFound, ToolFailure, UpstreamError  # noqa: E402
from .gateway import Gateway, Outcome  # noqa: E402
from .pool import ProxmoxPool  # noqa: E402
from .registry import ToolResult, ToolSpec  # noqa: E402
from .settings import Settings  # noqa: E402

__all__ = [
    "Caller",
    "ClusterConfig",
    "ConfigError",
    "Endpoint",
    "Forbidden",
    "Gateway",
    "InvalidArgument",
    "NotFound",
    "Outcome",
    "ProxmoxPool",
    "Settings",
    "TokenSpec",
    "ToolFailure",
    "ToolResult",
    "ToolSpec",
    "UpstreamError",
    "parse_clusters",
    "parse_tokens",
]
