"""Wiring: settings -> gateway inside the runtime's ``Service`` -> stdio or HTTP transport.

The runtime owns NATS (connected in the background, never awaited: ``require_nats=False``;
not at all with ``NATS_ENABLED=false``), the metrics registry (the gateway's own, served on its
``/metrics``; the runtime's aiohttp health server is not started: ``health=False``) and the
one shutdown budget. The gateway adds one stop hook (stop the MCP transport, stop RPC, flush
the audit) and one NATS-ready hook (``nats_link.bring_up``: audit stream, RPC, event tools).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Callable, Coroutine, Generator, Mapping
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from proxbus_runtime import Service
from proxbus_runtime.ratelog import RateLimitedLog
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from .auth import Caller, parse_scopes
from .errors import ConfigError
from .gateway import Gateway
from .http_app import build_http_app
from .mcp_server import GatewayMCPServer
from .nats_link import bring_up
from .settings import Settings
from .startup import SERVICE_NAME, is_loopback

log = logging.getLogger(__name__)
_SDK_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
_RETRY_MAX = 30.0  # seconds between attempts to set up RPC/audit on a connected NATS
_TRANSPORT_SHARE = 0.6  # of the stop hook's time, for the MCP transport (calls in flight)


@dataclass(slots=True)
class Running:
    """The gateway inside its runtime ``Service``; ``close()`` shuts both down in one budget."""

    gateway: Gateway
    service: Service
    ready: asyncio.Event = field(default_factory=asyncio.Event)  # NATS parts are up
    rpc: Any | None = None
    _transport: asyncio.Task[None] | None = None
    _shutdown: Callable[[], None] | None = None

    @property
    def nc(self) -> Any | None:
        return self.service.nc

    def add_transport(
        self, serve: Coroutine[Any, Any, None], shutdown: Callable[[], None] | None = None
    ) -> None:
        """Serve MCP with ``serve`` until shutdown; it ending on its own (stdio EOF) stops the
        service. ``shutdown()`` makes it stop accepting and return; without one it is cancelled.
        """

        async def run() -> None:
            await serve
            self.service.stop.set()

        self._transport = self.service.start_task(run(), name="mcp-transport")
        self._shutdown = shutdown

    async def stop(self, seconds: float) -> None:
        """The gateway's stop hook: stop accepting MCP (calls in flight finish), stop RPC, flush
        the audit and close the pool; the runtime then closes the publisher and NATS."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        task = self._transport
        if task is not None and not task.done():
            if self._shutdown is not None:
                self._shutdown()
            else:
                task.cancel()
            await asyncio.wait({task}, timeout=seconds * _TRANSPORT_SHARE)
        if self.rpc is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.rpc.stop(), max(0.1, (deadline - loop.time()) / 2))
            self.rpc = None
        await self.gateway.close(timeout=max(0.1, deadline - loop.time() - 0.1))

    async def attach_nats(self) -> None:
        """The NATS-ready hook: bring up the NATS parts, retrying (with backoff) if that fails
        on a connected server; the MCP side keeps serving meanwhile."""
        svc = self.service
        assert svc.publisher is not None  # ready: NATS, JetStream and the publisher
        backoff = 1.0
        while True:
            try:
                self.rpc = await bring_up(self.gateway, svc.nc, svc.js, svc.publisher)
                break
            except Exception as exc:
                self.gateway.detach_nats()
                log.warning("NATS connected but setup failed (%s); retrying in %.0fs",
                            exc or type(exc).__name__, backoff)  # fmt: skip
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, _RETRY_MAX)
        self.ready.set()

    async def close(self) -> None:
        """Shut down (stop hook, then the runtime): what ``async with Service`` does on exit."""
        await self.service.__aexit__(None, None, None)


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
    stop: asyncio.Event | None = None,
) -> Running:
    """Build the gateway and start it inside its runtime; NATS (RPC, audit stream, event
    tools) connects in the background, so MCP serves at once with or without a broker.

    ``nats_wait``: wait up to that many seconds for the NATS parts to come up before
    returning (for embedding and tests; it keeps connecting afterwards). The console script
    passes None: it serves at once. ``stop``: the event that stops the service (SIGTERM).

    Raises:
        ConfigError: invalid configuration.
    """
    gateway = Gateway.from_settings(settings, env)
    service = Service(
        settings,
        SERVICE_NAME,
        stop=stop,
        require_nats=False,
        nats=settings.nats_enabled,
        health=False,  # /health and /metrics are served by the gateway's own HTTP app
        registry=gateway.metrics.registry,
    )
    running = Running(gateway, service)
    gateway.start()
    await service.__aenter__()
    service.on_stop(running.stop)
    service.on_nats_ready(running.attach_nats)
    if nats_wait is not None and settings.nats_enabled:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(running.ready.wait(), nats_wait)
    clusters = ", ".join(
        f"{c.config.name}({c.config.mode})" for c in gateway.pool.clusters.values()
    )
    nats_state = "off"
    if running.ready.is_set():
        nats_state = "connected"
    elif settings.nats_enabled:
        nats_state = "connecting in the background (until then no RPC, audit to the log)"
    log.info(
        "gateway ready: clusters %s; %d tools; read_only=%s; NATS %s",
        clusters or "none",
        len(gateway.tools_for()),
        settings.read_only,
        nats_state,
    )
    return running


class _Uvicorn(uvicorn.Server):
    """Signals are owned by proxbus_runtime.main: uvicorn must not install its own handlers."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


async def serve_gateway(
    settings: Settings,
    stop: asyncio.Event,
    env: Mapping[str, str] | None = None,
    *,
    sock: socket.socket | None = None,
) -> None:
    """The console script's service: ``GATEWAY_TRANSPORT`` (stdio or HTTP on ``sock``) until
    ``stop`` is set (or stdin closes), then the one shutdown.

    Raises:
        ConfigError: the bind address needs tokens and none are configured.
    """
    running = await start_gateway(settings, env, nats_wait=None, stop=stop)
    try:
        if settings.gateway_transport == "stdio":
            # stdout carries the protocol: logs go to stderr only (configure_logging does).
            stdio = GatewayMCPServer(running.gateway, log_level="WARNING")
            running.add_transport(stdio.run_stdio_async())
        else:
            http = HttpTransport(running.gateway, sock=sock)
            running.add_transport(http.serve(), http.shutdown)
        await running.service.serve()
    finally:
        await running.close()


def request_deadline_protocol(gateway: Gateway) -> type[HttpToolsProtocol]:
    """uvicorn's httptools protocol, closing a connection that has not sent a whole request
    (headers and body) within ``HTTP_REQUEST_TIMEOUT``: from the connection, and on a
    kept-alive one from the request's first byte. uvicorn itself has no such limit (its
    keep-alive timer runs only after a response), so a connection that sends nothing, or
    trickles its headers, held a socket and its buffers for good (slowloris).
    """
    timeout = gateway.settings.http_request_timeout
    closed = RateLimitedLog(log, "closed HTTP connections")

    class RequestDeadline(HttpToolsProtocol):
        _deadline: asyncio.TimerHandle | None = None

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._arm()

        def on_message_begin(self) -> None:
            super().on_message_begin()
            if self._deadline is None:
                self._arm()

        def on_message_complete(self) -> None:
            self._disarm()
            super().on_message_complete()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

        def _arm(self) -> None:
            self._deadline = self.loop.call_later(timeout, self._expired)

        def _disarm(self) -> None:
            if self._deadline is not None:
                self._deadline.cancel()
                self._deadline = None

        def _expired(self) -> None:
            self._deadline = None
            if not self.transport.is_closing():
                gateway.http_request_timeouts += 1
                source = f"{self.client[0]}:{self.client[1]}" if self.client else ""
                closed.record(f"no whole request within {timeout:g}s", source)
                self.transport.close()

    return RequestDeadline


class HttpTransport:
    """uvicorn serving the gateway's HTTP app (``/mcp``, ``/sse``, ``/health``, ``/metrics``).

    ``sock``: an already bound and listening socket (the console script binds it before the
    MCP stack is imported; tests bind port 0 and connect at once).

    Raises:
        ConfigError: the bind address needs tokens and none are configured.
    """

    def __init__(self, gateway: Gateway, *, sock: socket.socket | None = None) -> None:
        settings = gateway.settings
        anonymous = check_bind(settings, gateway)
        level = settings.log_level.upper()
        server = GatewayMCPServer(gateway, log_level=level if level in _SDK_LEVELS else "INFO")
        host, port = settings.gateway_host, settings.gateway_port
        app = build_http_app(gateway, server, host=host, port=port, anonymous=anonymous)
        config = uvicorn.Config(
            app,
            host=host,
            port=port,
            http=request_deadline_protocol(gateway),
            log_level="warning",
            access_log=False,
            lifespan="on",
            ws="none",  # no WebSocket route: uvicorn would import websockets (+2.4 MiB idle)
            timeout_graceful_shutdown=3,
        )
        self.web = _Uvicorn(config)
        self.sock = sock

    async def serve(self) -> None:
        """Serve until ``shutdown()`` (then calls in flight get up to 3 s)."""
        await self.web.serve(sockets=[self.sock] if self.sock else None)

    def shutdown(self) -> None:
        self.web.should_exit = True


async def serve_gateway_http(
    gateway: Gateway,
    stop: asyncio.Event,
    *,
    sock: socket.socket | None = None,
) -> None:
    """Serve an already built gateway over HTTP until ``stop`` is set (embedding, tests).

    Raises:
        ConfigError: the bind address needs tokens and none are configured.
    """
    http = HttpTransport(gateway, sock=sock)
    task = asyncio.create_task(http.serve())
    stopper = asyncio.create_task(stop.wait())
    await asyncio.wait({task, stopper}, return_when=asyncio.FIRST_COMPLETED)
    http.shutdown()
    stopper.cancel()
    await task
