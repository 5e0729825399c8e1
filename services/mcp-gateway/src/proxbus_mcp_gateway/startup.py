"""What runs before the MCP stack is imported: configuration checks and the HTTP socket.

The MCP SDK, Starlette and uvicorn take most of the gateway's start time (about 2 s of imports
on an idle 2-core machine, more under load). The console script checks the configuration and
binds its listening socket first, so the port accepts connections at once; requests wait in
the backlog until the app serves them instead of being refused.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Mapping

from .errors import ConfigError
from .settings import Settings

SERVICE_NAME = "mcp-gateway"


def is_loopback(host: str) -> bool:
    if host in ("localhost", ""):
        return host == "localhost"
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def preflight(settings: Settings, env: Mapping[str, str] | None = None) -> None:
    """Check configuration before anything starts (exit code 2 instead of a crash later).

    Raises:
        ConfigError: invalid endpoints/tokens, or a public HTTP bind without tokens.
    """
    from .config import load_tokens_file, parse_clusters, parse_tokens
    from .gateway import gateway_environment

    env = env if env is not None else gateway_environment()
    parse_clusters(env, settings.default_cluster or settings.site)
    secret = settings.gateway_tokens.get_secret_value() if settings.gateway_tokens else None
    tokens = parse_tokens(secret)
    if settings.gateway_tokens_file:
        tokens += load_tokens_file(settings.gateway_tokens_file)
    if (
        settings.gateway_transport == "http"
        and not tokens
        and not is_loopback(settings.gateway_host)
        and not settings.insecure_no_auth
    ):
        raise ConfigError(
            f"refusing to listen on {settings.gateway_host} without GATEWAY_TOKENS "
            "(set tokens, bind 127.0.0.1, or pass --insecure-no-auth)"
        )


def listen_socket(settings: Settings, backlog: int = 2048) -> socket.socket:
    """A bound, listening TCP socket for ``GATEWAY_HOST:GATEWAY_PORT`` (handed to uvicorn).

    Raises:
        ConfigError: the address cannot be resolved or bound (in use, not local...).
    """
    host = settings.gateway_host.strip("[]")
    try:
        infos = socket.getaddrinfo(
            host, settings.gateway_port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
        family, kind, proto, _, address = infos[0]
        sock = socket.socket(family, kind, proto)
    except OSError as exc:
        raise ConfigError(f"cannot listen on {settings.gateway_host}: {exc}") from None
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(backlog)
    except OSError as exc:
        sock.close()
        raise ConfigError(
            f"cannot listen on {settings.gateway_host}:{settings.gateway_port}: {exc}"
        ) from None
    return sock
