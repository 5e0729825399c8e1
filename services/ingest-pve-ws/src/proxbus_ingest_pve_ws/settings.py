"""Settings of ingest-pve-ws (environment / ``.env``), built once in ``main()``."""

from __future__ import annotations

import os
import socket
from typing import Annotated

from proxbus_events import HTTP_PORTS
from proxbus_runtime import SpoolSettings
from pydantic import Field, SecretStr, field_validator
from pydantic_settings import NoDecode

from .gotify import DEFAULT_MAX_ID_JUMP, DEFAULT_RECENT_IDS


def _default_replica_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


class Settings(SpoolSettings):
    """Configuration of the watcher, the webhook receiver and the Gotify listener."""

    health_port: int = Field(default=HTTP_PORTS["ingest-pve-ws"], ge=0, le=65535)

    # API watcher (reads through the gateway's NATS RPC; holds no Proxmox credentials)
    event_ws_enabled: bool = True
    pve_ws_clusters: Annotated[list[str], NoDecode] = Field(default_factory=list)
    pve_ws_poll_seconds: float = Field(default=5.0, gt=0.05, le=3600)
    pve_ws_rpc_timeout: float = Field(default=5.0, gt=0)
    pve_ws_lease_seconds: float = Field(default=0.0, ge=0)
    pve_ws_replica_id: str = Field(default_factory=_default_replica_id, min_length=1)
    pve_ws_task_lookback: int = Field(default=300, ge=0)
    pve_ws_log_limit: int = Field(default=500, ge=1, le=10_000)
    pve_ws_log_tail_lines: int = Field(default=20, ge=0, le=1000)
    pve_ws_storage_warn: float = Field(default=0.85, gt=0, le=1)
    pve_ws_storage_crit: float = Field(default=0.95, gt=0, le=1)
    pve_ws_storage_hysteresis: float = Field(default=0.02, ge=0, lt=0.5)

    # PVE 8.3+ webhook target
    pve_webhook_secret: SecretStr | None = None
    pve_webhook_max_bytes: int = Field(default=256 * 1024, ge=1024)
    # json.loads recurses once per level (RecursionError near 1,000): the cap stays far below.
    pve_webhook_max_depth: int = Field(default=32, ge=2, le=200)

    # Gotify stream listener (on when a URL and a client token are set). Only GOTIFY_LISTEN_URL:
    # GOTIFY_URL in a shared .env is the dispatcher's outgoing server and must not start this.
    gotify_listen_url: str | None = None
    gotify_client_token: SecretStr | None = None
    gotify_backoff_max: float = Field(default=30.0, gt=0)
    gotify_timeout: float = Field(default=10.0, gt=0)
    # Largest step of message ids the cursor takes on one message (a bigger one needs a second
    # message to confirm it), and how many recent ids the duplicate check remembers.
    gotify_max_id_jump: int = Field(default=DEFAULT_MAX_ID_JUMP, ge=1)
    gotify_recent_ids: int = Field(default=DEFAULT_RECENT_IDS, ge=100, le=1_000_000)

    @field_validator("pve_ws_clusters", mode="before")
    @classmethod
    def _split_clusters(cls, value: object) -> object:
        if isinstance(value, str):
            return [p.strip() for p in value.split(",") if p.strip()]
        return value

    @property
    def clusters(self) -> list[str]:
        """Cluster names passed to the gateway's tools (default: the site name)."""
        return self.pve_ws_clusters or [self.site]

    @property
    def lease_seconds(self) -> float:
        """Lease length: configured, else three poll intervals (at least 10 s)."""
        return self.pve_ws_lease_seconds or max(10.0, 3 * self.pve_ws_poll_seconds)
