"""The gateway's settings (environment / ``.env``), built once in ``main()``."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from proxbus_events import HTTP_PORTS
from proxbus_runtime import ServiceSettings
from pydantic import Field, SecretStr


class Settings(ServiceSettings):
    """Gateway options on top of the shared service settings.

    Proxmox endpoints come from the seed variables (``PVE_NODES``, ``PVE_<NAME>_*``...),
    parsed by :mod:`proxbus_mcp_gateway.config` from the raw environment.
    """

    default_cluster: str | None = Field(
        default=None, description="name of the cluster the un-prefixed variables define"
    )
    gateway_host: str = "127.0.0.1"
    gateway_port: int = Field(default=HTTP_PORTS["mcp-gateway"], ge=0, le=65535)
    gateway_tokens: SecretStr | None = None
    gateway_tokens_file: Path | None = None
    gateway_allowed_hosts: str = Field(default="", description="extra Host values, comma-separated")
    gateway_allowed_origins: str = Field(default="", description="extra Origins, comma-separated")
    insecure_no_auth: bool = False
    read_only: bool = False
    stdio_scopes: str = "read+operate"
    rpc_enabled: bool = True
    rpc_scopes: str = "read"
    nats_enabled: bool = True
    audit_enabled: bool = True
    api_timeout: float = Field(default=10.0, gt=0, le=300)
    connect_timeout: float = Field(default=3.0, gt=0, le=60)
    api_retries: int = Field(default=2, ge=0, le=10)
    retry_backoff: float = Field(default=0.2, ge=0, le=10)
    pool_workers: int = Field(default=16, ge=1, le=256)
    breaker_failures: int = Field(default=3, ge=1, le=100)
    breaker_cooldown: float = Field(default=15.0, gt=0, le=3600)
    cache_ttl: float = Field(default=2.0, ge=0, le=60)
    discover_endpoints: bool = Field(
        default=True, description="add CLUSTERED members seen in /cluster/status for failover"
    )
    membership_ttl: float = Field(default=30.0, gt=0, le=3600)
    max_wait: float = Field(default=50.0, gt=0, le=3600)
    mcp_json_response: bool = Field(
        default=False,
        description="streamable HTTP answers plain JSON instead of an SSE stream (faster; "
        "no progress notifications during a call)",
    )
    max_concurrent_calls: int = Field(default=256, ge=1, le=10_000)
    max_calls_per_caller: int = Field(
        default=64,
        ge=1,
        le=10_000,
        description="tool calls one caller (token name) may have in flight; more: 429",
    )
    max_sessions: int = Field(
        default=200, ge=1, le=100_000, description="open MCP sessions (streamable HTTP + SSE)"
    )
    max_sessions_per_caller: int = Field(
        default=20, ge=1, le=100_000, description="open MCP sessions per token (per caller)"
    )
    session_idle_timeout: float = Field(
        default=300.0,
        gt=0,
        le=86_400,
        description="a streamable HTTP session unused this long ends",
    )
    http_request_timeout: float = Field(
        default=20.0,
        gt=0,
        le=3_600,
        description="time a client has to send a whole HTTP request (headers and body)",
    )
    gateway_transport: Literal["http", "stdio"] = "http"
