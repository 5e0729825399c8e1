"""Container HEALTHCHECK probe: exit 0 when the service in this image answers on loopback.

The slim image has no curl, so the Dockerfile runs ``python /app/healthcheck.py``. The
service comes from ``PROXBUS_SERVICE`` (baked into the image from the ``SERVICE`` build
arg); its port from the same variable the service itself reads, with the same default.
"""

from __future__ import annotations

import os
import socket
import sys
import urllib.error
import urllib.request

# service -> (variable holding the port that serves /health, the service's default)
HEALTH_PORTS: dict[str, tuple[str, int]] = {
    "ingest-syslog": ("HEALTH_PORT", 8092),
    "ingest-email": ("HEALTH_PORT", 8093),
    "ingest-pve-ws": ("HEALTH_PORT", 8090),
    "dispatcher": ("HEALTH_PORT", 8091),
    "mcp-gateway": ("GATEWAY_PORT", 8080),
    "ingest-discord": ("DISCORD_PORT", 8094),
}
# The demo simulator has no /health: its PVE API (compose runs it with --port 8006)
# accepting connections is the signal.
TCP_PORTS: dict[str, int] = {"pvesim": 8006}
TIMEOUT = 3.0


def _port(variable: str, default: int) -> int:
    value = os.environ.get(variable, "").strip()
    return int(value) if value else default


def probe(service: str) -> tuple[bool, str]:
    """(healthy, what was seen) for ``service``."""
    if service in TCP_PORTS:
        port = TCP_PORTS[service]
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT):
                return True, f"port {port} accepts connections"
        except OSError as exc:
            return False, f"port {port}: {exc}"
    if service not in HEALTH_PORTS:
        return False, f"unknown service {service!r}"
    port = _port(*HEALTH_PORTS[service])
    url = f"http://127.0.0.1:{port}/health"
    # No proxy: an HTTP_PROXY set for the service must not capture a loopback probe.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=TIMEOUT) as response:
            return response.status == 200, f"{url} -> {response.status}"
    except urllib.error.HTTPError as exc:
        return False, f"{url} -> {exc.code}"
    except OSError as exc:
        return False, f"{url}: {exc}"


def main() -> int:
    service = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("PROXBUS_SERVICE", "")
    healthy, detail = probe(service)
    print(detail, file=sys.stdout if healthy else sys.stderr)
    return 0 if healthy else 1


if __name__ == "__main__":
    sys.exit(main())
