"""NATS in the background: the gateway serves MCP at once and gains RPC, the audit stream and
the event tools when (if ever) NATS answers.

Until then the audit goes to the log and the event tools answer "not connected". This is the
seam the shared runtime's ``require_nats=False`` mode plugs into: whatever connects NATS
calls :func:`bring_up` with the connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from .gateway import Gateway
from .settings import Settings

log = logging.getLogger(__name__)


async def bring_up(gateway: Gateway, nc: Any, js: Any | None = None) -> Any | None:
    """Attach a connected NATS client: streams, audit publisher, RPC service (if enabled).

    ``js``: a JetStream context whose streams are already ensured (the runtime's
    ``Service(require_nats=False)`` provides one: ``service.on_nats_ready(lambda:
    bring_up(gateway, service.nc, service.js))``); without it they are ensured here.
    Returns the RPC service (or None).
    """
    if js is None:
        from proxbus_runtime import ensure_streams

        js = nc.jetstream(domain=gateway.settings.nats_js_domain, timeout=5)
        await ensure_streams(js, gateway.settings.stream_limits())
    gateway.attach_nats(nc, js)
    rpc = None
    if gateway.settings.rpc_enabled:
        from .rpc import start_rpc

        rpc = await start_rpc(gateway, nc)
    servers = ", ".join(str(u.netloc) for u in getattr(nc, "servers", [])[:1]) or "?"
    log.info(
        "NATS connected (%s): audit to JetStream%s, event tools on",
        servers,
        ", RPC service proxbus-gateway registered" if rpc is not None else "",
    )
    return rpc


class NatsLink:
    """Connects in the background (retrying forever) and brings the NATS parts up once."""

    def __init__(self, settings: Settings, gateway: Gateway) -> None:
        self.settings = settings
        self.gateway = gateway
        self.nc: Any | None = None
        self.rpc: Any | None = None
        self.ready = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self.settings.nats_enabled and self._task is None:
            self._task = asyncio.create_task(self._run(), name="nats-link")

    async def _run(self) -> None:
        from proxbus_runtime import connect_nats

        attempt = 0
        while True:
            attempt += 1
            try:
                # A bounded first connect (nats-py's own loop would retry it forever with
                # max_reconnect_attempts=-1, and with 0 too); this loop retries instead.
                nc = await connect_nats(
                    self.settings, name="proxbus-mcp-gateway", max_reconnect_attempts=1
                )
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if attempt == 1:
                    log.warning(
                        "NATS not reachable (%s): serving without RPC and event tools, audit "
                        "to the log; retrying in the background",
                        exc or type(exc).__name__,
                    )
                await asyncio.sleep(min(2.0, 0.25 * attempt))
                continue
            # Connected: from now on nats-py reconnects on its own.
            nc.options["max_reconnect_attempts"] = -1
            self.nc = nc
            try:
                self.rpc = await bring_up(self.gateway, nc)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("NATS connected but setup failed (%s); retrying", exc)
                self.gateway.detach_nats()
                with contextlib.suppress(Exception):
                    await nc.close()
                self.nc = None
                await asyncio.sleep(min(2.0, 0.25 * attempt))
                continue
            self.ready.set()
            return

    async def close(self) -> None:
        """Stop connecting; stop RPC; flush the audit (by the gateway); drain NATS."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self.rpc is not None:
            with contextlib.suppress(Exception):
                await self.rpc.stop()
            self.rpc = None

    async def drain(self) -> None:
        if self.nc is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.nc.drain(), 5)
            self.nc = None
