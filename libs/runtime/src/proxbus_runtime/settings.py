"""Settings shared by every service (NATS connection, site, logging, health port, shutdown)."""

from __future__ import annotations

import logging
import ssl
from pathlib import Path
from typing import Any, Literal

import nats
from nats.aio.client import Client as NATS
from proxbus_events.streams import DAY, GIB, StreamLimits
from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from .ratelog import RateLimitedLog

log = logging.getLogger("proxbus.nats")

# The supervisor (and a container runtime) allows 10 s between SIGTERM and SIGKILL.
STOP_GRACE = 10.0
_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


class ServiceSettings(BaseSettings):
    """Environment / ``.env`` settings every proxbus service reads.

    Subclass per service and add its own fields; ``proxbus_runtime.main`` builds it once.
    """

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", populate_by_name=True)

    nats_url: str = Field(default="nats://127.0.0.1:4222", description="comma-separated URLs")
    nats_creds: Path | None = None
    nats_user: str | None = None
    nats_password: SecretStr | None = None
    nats_token: SecretStr | None = None
    nats_tls_ca: Path | None = None
    nats_tls_cert: Path | None = None
    nats_tls_key: Path | None = None
    nats_connect_timeout: float = Field(default=5.0, gt=0, le=60)
    nats_js_domain: str | None = Field(
        default=None, pattern=r"^[A-Za-z0-9_-]+$", description="JetStream domain (leaf nodes)"
    )
    proxbus_site: str = Field(default="default", min_length=1, max_length=64)
    log_level: str = "INFO"
    log_format: Literal["console", "json"] = "console"
    health_host: str = "0.0.0.0"
    health_port: int = Field(default=0, ge=0, le=65535)
    http_request_timeout: float = Field(
        default=20.0,
        gt=0,
        le=3_600,
        description="seconds a connection has to send a request's headers (aiohttp listeners)",
    )
    # Budgets of the aiohttp listeners (HealthServer: /health, /metrics, webhooks, Discord
    # interactions, the console); see http_limits.py for the defaults' reasons.
    http_max_connections: int = Field(default=512, ge=1, le=100_000)
    http_max_connections_per_peer: int = Field(default=64, ge=1, le=100_000)
    http_keepalive_timeout: float = Field(default=30.0, gt=0, le=3_600)
    shutdown_budget: float = Field(
        default=9.0, gt=0, lt=STOP_GRACE, description="seconds from SIGTERM to exit"
    )
    events_max_age_days: float = Field(default=7.0, gt=0)
    events_max_bytes: int = Field(default=GIB, gt=0)

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        level = value.strip().upper()
        if level not in _LEVELS:
            raise ValueError(f"unknown log level {value!r} (one of {', '.join(_LEVELS)})")
        return level

    @model_validator(mode="after")
    def _per_peer_within_total(self) -> ServiceSettings:
        if self.http_max_connections_per_peer > self.http_max_connections:
            raise ValueError(
                f"HTTP_MAX_CONNECTIONS_PER_PEER ({self.http_max_connections_per_peer}) is above "
                f"HTTP_MAX_CONNECTIONS ({self.http_max_connections})"
            )
        return self

    @property
    def site(self) -> str:
        return self.proxbus_site

    def stream_limits(self) -> StreamLimits:
        return StreamLimits(
            events_max_age=self.events_max_age_days * DAY, events_max_bytes=self.events_max_bytes
        )


def _tls_context(settings: ServiceSettings) -> ssl.SSLContext | None:
    if not (settings.nats_tls_ca or settings.nats_tls_cert):
        return None
    ctx = ssl.create_default_context(
        cafile=str(settings.nats_tls_ca) if settings.nats_tls_ca else None
    )
    if settings.nats_tls_cert:
        ctx.load_cert_chain(
            str(settings.nats_tls_cert),
            str(settings.nats_tls_key) if settings.nats_tls_key else None,
        )
    return ctx


def public_url(url: str) -> str:
    """``url`` (one or comma-separated NATS URLs) without ``user:password@``: for logs and errors."""
    parts = []
    for part in url.split(","):
        part = part.strip()
        scheme, sep, rest = part.rpartition("://")
        # The last "@": a password may hold "/" or "@" (unencoded), a NATS URL has no path.
        parts.append(f"{scheme}{sep}{rest.rpartition('@')[2]}")
    return ",".join(p for p in parts if p)


def nats_options(settings: ServiceSettings, name: str) -> dict[str, Any]:
    """``nats.connect`` keyword arguments: reconnect forever, connection events logged."""

    # nats-py calls this on every failed (re)connect attempt, twice a second.
    errors = RateLimitedLog(log, f"NATS errors ({public_url(settings.nats_url)})", interval=30.0)

    async def on_error(exc: Exception) -> None:
        errors.record(str(exc) or type(exc).__name__)

    async def on_disconnect() -> None:
        log.warning("NATS disconnected")

    async def on_reconnect() -> None:
        log.info("NATS reconnected")

    options: dict[str, Any] = {
        "servers": [u.strip() for u in settings.nats_url.split(",") if u.strip()],
        "name": name,
        "connect_timeout": settings.nats_connect_timeout,
        "max_reconnect_attempts": -1,
        "reconnect_time_wait": 0.5,
        "allow_reconnect": True,
        "error_cb": on_error,
        "disconnected_cb": on_disconnect,
        "reconnected_cb": on_reconnect,
    }
    if settings.nats_creds:
        options["user_credentials"] = str(settings.nats_creds)
    if settings.nats_user:
        options["user"] = settings.nats_user
    if settings.nats_password:
        options["password"] = settings.nats_password.get_secret_value()
    if settings.nats_token:
        options["token"] = settings.nats_token.get_secret_value()
    tls = _tls_context(settings)
    if tls is not None:
        options["tls"] = tls
    return options


async def connect_nats(settings: ServiceSettings, name: str, **overrides: Any) -> NATS:
    """Connect once, failing fast (for commands and tools); then reconnect forever.

    Services use ``Service``, which waits for NATS in the background instead.

    Raises:
        nats.errors.NoServersError: no server answered (two attempts per server).
        OSError, TimeoutError: the connection could not be set up.
    """
    # nats-py applies max_reconnect_attempts to the first connect too, and with -1 (or 0)
    # it never gives up: bound the first connect, then lift the limit for reconnects.
    options = {**nats_options(settings, name), "max_reconnect_attempts": 1}
    client: list[NATS] = []
    warn_disconnected = options["disconnected_cb"]

    async def on_disconnected() -> None:
        # nats-py marks the client closed before this callback when the caller closes it.
        if client and client[0].is_closed:
            log.debug("NATS connection closed")
        else:
            await warn_disconnected()

    options["disconnected_cb"] = on_disconnected
    nc = await nats.connect(**{**options, **overrides})
    client.append(nc)
    if "max_reconnect_attempts" not in overrides:
        nc.options["max_reconnect_attempts"] = -1
    return nc
