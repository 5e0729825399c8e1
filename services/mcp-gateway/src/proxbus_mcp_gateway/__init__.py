"""proxbus MCP gateway: the Proxmox API pool served as MCP tools (stdio/HTTP/SSE) and NATS RPC."""

from .auth import Caller
from .config import ClusterConfig, Endpoint, TokenSpec, parse_clusters, parse_tokens
from .errors import ConfigError, Forbidden, InvalidArgument, NotFound, ToolFailure, UpstreamError
from .gateway import Gateway, Outcome
from .pool import ProxmoxPool
from .registry import ToolResult, ToolSpec
from .settings import Settings

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
