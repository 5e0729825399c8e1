"""Wiring: settings -> gateway (+ NATS, RPC, audit) -> stdio or HTTP server."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import AsyncIterator, Generator, Mapping
from dataclasses import dataclass
from typing import Any

import uvicorn

from .auth import Caller, parse_scopes
from .errors import ConfigError
from .gateway import Gateway
from .http_app import build_http_app
from .mcp_server import GatewayMCPServer
from .nats_link import NatsLink
from .settings import Settings
from .startup import is_loopback

log = logging.getLogger(__name__)
_SDK_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


@dataclass(slots=True)
class Running:
    """What ``start_gateway`` set up; ``close()`` tears it down in reverse order."""

    gateway: Gateway
    link: NatsLink

    @property
    def nc(self) -> Any | None:
        return self.link.nc

    @property
    def rpc(self) -> Any | None:
        return self.link.rpc

    async def close(self) -> None:
        await self.link.close()
        await self.gateway.close()
        await self.link.drain()


def check_bind(settings: Settings, gateway: Gateway) -> Caller | None:
    """The anonymous caller (if allowed), or refuse an unauthenticated public listener.

    Raises:
        ConfigError: non-loopback address without tokens and without ``--insecure-no-auth``.
    """
    if gateway.tokens:
        return None
    if not is_loopback(settings.gateway_host) and not settings.insecure_no_auth:
        raise ConfigError(
            f"refusing to listen on {settings.gateway_host} without GATEWAY_TOKENS "
            "(set tokens, bind 127.0.0.1, or pass --insecure-no-auth)"
        )
    return Caller("anonymous", parse_scopes(settings.stdio_scopes), "http")


async def start_gateway(
    settings: Settings,
    env: Mapping[str, str] | None = None,
    *,
    nats_wait: float | None = 10.0,
) -> Running:
    """Build the gateway and start it; NATS (RPC, audit stream, event tools) connects in the
    background, so MCP serves at once with or without a broker.

    ``nats_wait``: wait up to that many seconds for NATS to come up before returning (for
    embedding and tests; it keeps connecting afterwards). The console script's transports
    pass None: they serve at once.

    Raises:
        ConfigError: invalid configuration.
    """
    gateway = Gateway.from_settings(settings, env)
    gateway.start()
    link = NatsLink(settings, gateway)
    link.start()
    if nats_wait is not None and settings.nats_enabled:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(link.ready.wait(), nats_wait)
    clusters = ", ".join(
        f"{c.config.name}({c.config.mode})" for c in gateway.pool.clusters.values()
    )
    log.info(
        "gateway ready: clusters %s; %d tools; read_only=%s; NATS %s",
        clusters or "none",
        len(gateway.tools_for()),
        settings.read_only,
        "connected" if link.ready.is_set() else ("connecting" if settings.nats_enabled else "off"),
    )
    return Running(gateway, link)


class _Uvicorn(uvicorn.Server):
    """Signals are owned by proxbus_runtime.main: uvicorn must not install its own handlers."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


async def serve_http(
    settings: Settings,
    stop: asyncio.Event,
    env: Mapping[str, str] | None = None,
    *,
    sock: socket.socket | None = None,
) -> None:
    """Run the HTTP transports until ``stop`` is set (listening at once; NATS comes later)."""
    running = await start_gateway(settings, env, nats_wait=None)
    try:
        await serve_gateway_http(running.gateway, stop, sock=sock)
    finally:
        await running.close()


async def serve_gateway_http(
    gateway: Gateway,
    stop: asyncio.Event,
    *,
    sock: socket.socket | None = None,
) -> None:
    """Serve an already built gateway over HTTP until ``stop`` is set.

    ``sock``: an already bound and listening socket (tests bind port 0 and connect at once).

    Raises:
        ConfigError: the bind address needs tokens and none are configured.
    """
    settings = gateway.settings
    anonymous = check_bind(settings, gateway)
    level = settings.log_level.upper()
    server = GatewayMCPServer(gateway, log_level=level if level in _SDK_LEVELS else "INFO")
    app = build_http_app(
        gateway, server, host=settings.gateway_host, port=settings.gateway_port, anonymous=anonymous
    )
    config = uvicorn.Config(
        app,
        host=settings.gateway_host,
        port=settings.gateway_port,
        log_level="warning",
        access_log=False,
        lifespan="on",
        ws="none",  # no WebSocket route: uvicorn would import websockets (+2.4 MiB idle)
        timeout_graceful_shutdown=3,
    )
    web = _Uvicorn(config)
    task = asyncio.create_task(web.serve(sockets=[sock] if sock else None))
    stopper = asyncio.create_task(stop.wait())
    await asyncio.wait({task, stopper}, return_when=asyncio.FIRST_COMPLETED)
    web.should_exit = True
    stopper.cancel()
    await task


async def serve_stdio(
    settings: Settings, stop: asyncio.Event, env: Mapping[str, str] | None = None
) -> None:
    """Run the stdio transport (one local client) until EOF or ``stop``."""
    running = await start_gateway(settings, env, nats_wait=None)
    try:
        server = GatewayMCPServer(running.gateway, log_level="WARNING")
        task = asyncio.create_task(server.run_stdio_async())
        stopper = asyncio.create_task(stop.wait())
        done, _ = await asyncio.wait({task, stopper}, return_when=asyncio.FIRST_COMPLETED)
        stopper.cancel()
        if task not in done:
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    finally:
        await running.close()


@contextlib.asynccontextmanager
async def gateway_for_tests(settings: Settings, env: Mapping[str, str]) -> AsyncIterator[Running]:
    running = await start_gateway(settings, env)
    try:
        yield running
    finally:
        await running.close()
