"""Default ports of the services: the one place they are written (settings and tools read them)."""

from __future__ import annotations

from typing import Final

HTTP_PORTS: Final = {
    # the service's HTTP server: /health, /metrics and its own routes
    "mcp-gateway": 8080,
    "ingest-pve-ws": 8090,
    "dispatcher": 8091,
    "ingest-syslog": 8092,
    "ingest-email": 8093,
    "ingest-discord": 8094,
}
SYSLOG_PORT: Final = 5514  # UDP and TCP (514 inside containers)
SMTP_PORT: Final = 2525
