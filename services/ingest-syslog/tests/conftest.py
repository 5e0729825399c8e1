"""Helpers for the service tests: a running ``SyslogService`` and loopback senders."""

from __future__ import annotations

import os
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from proxbus_devtools.testing import free_port
from proxbus_devtools.testing import wait_until as wait_until  # re-exported to the tests
from proxbus_ingest_syslog.app import SyslogService, serving
from proxbus_ingest_syslog.settings import Settings


def free_udp_tcp_port() -> int:
    """A port free for both TCP and UDP on loopback."""
    for _ in range(50):
        port = free_port()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        return port
    raise RuntimeError("no port free for both TCP and UDP")


def script_env(nats_url: str, port: int, health: int, **extra: str) -> dict[str, str]:
    """Environment for the console script on loopback ports (JSON logs)."""
    return {
        **os.environ,
        "NATS_URL": nats_url,
        "PROXBUS_SITE": "lab",
        "SYSLOG_HOST": "127.0.0.1",
        "SYSLOG_PORT": str(port),
        "HEALTH_HOST": "127.0.0.1",
        "HEALTH_PORT": str(health),
        "LOG_FORMAT": "json",
        **extra,
    }


def make_settings(nats_url: str, port: int, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "nats_url": nats_url,
        "proxbus_site": "lab",
        "syslog_host": "127.0.0.1",
        "syslog_port": port,
        "health_host": "127.0.0.1",
        "health_port": 0,
        "events_max_bytes": 256 * 1024**2,
        "publish_ack_timeout": 2.0,
    }
    values.update(overrides)
    return Settings(**values)


@asynccontextmanager
async def running(settings: Settings) -> AsyncIterator[SyslogService]:
    async with serving(settings) as service:
        yield service


def metric(service: SyslogService, name: str, **labels: str) -> float:
    return service.registry.get_sample_value(name, labels) or 0.0


def line(i: int, host: str = "pve1", app: str = "pvedaemon") -> bytes:
    return f"<30>Nov 24 10:00:00 {host} {app}[42]: test line {i}".encode()
