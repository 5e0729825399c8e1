"""Wires the interactions endpoint: NATS, the ledger, audit, events, follow-ups, HTTP."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field

import aiohttp
from nats.aio.client import Client as NATS
from prometheus_client import CollectorRegistry
from proxbus_runtime import (
    EventPublisher,
    HealthServer,
    SilenceStore,
    connect_nats,
    ensure_streams,
    register_publisher,
)

from .audit import DiscordAudit
from .dedupe import InteractionLedger
from .endpoint import InteractionsEndpoint
from .followup import FollowupClient
from .metrics import DiscordMetrics
from .responder import Responder, ResponderOptions
from .settings import Settings
from .signature import SignatureVerifier, load_public_key

log = logging.getLogger(__name__)

SERVICE = "ingest-discord"


def responder_options(settings: Settings) -> ResponderOptions:
    return ResponderOptions(
        site=settings.site,
        cluster=settings.discord_cluster,
        rpc_timeout=settings.discord_rpc_timeout,
        defer_after=settings.discord_defer_after,
        confirm_seconds=settings.discord_confirm_seconds,
        events_limit=settings.discord_events_limit,
    )


@dataclass(slots=True)
class DiscordService:
    """The running pieces; ``start()`` then ``serve(stop)``; tests reach in through fields."""

    settings: Settings
    nc: NATS | None = None
    publisher: EventPublisher | None = None
    http: aiohttp.ClientSession | None = None
    responder: Responder | None = None
    server: HealthServer | None = None
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    @property
    def port(self) -> int:
        assert self.server is not None
        return self.server.port

    async def start(self) -> None:
        """Connect, open the buckets, start the publisher and the HTTP listener."""
        s = self.settings
        verifier = SignatureVerifier(
            load_public_key(s.discord_public_key), max_age=s.discord_max_age
        )
        self.nc = await connect_nats(s, name=f"proxbus-{SERVICE}")
        js = self.nc.jetstream(timeout=s.nats_connect_timeout)
        await ensure_streams(js, s.stream_limits())
        self.publisher = EventPublisher(js)
        await self.publisher.start()
        register_publisher(self.registry, self.publisher, SERVICE)
        self.http = aiohttp.ClientSession()
        metrics = DiscordMetrics.create(self.registry)
        self.responder = Responder(
            self.nc,
            ledger=await InteractionLedger.open(js),
            silences=await SilenceStore.open(js),
            audit=DiscordAudit(js),
            publisher=self.publisher,
            followups=FollowupClient(
                self.http, api_url=s.discord_api_url, timeout=s.discord_http_timeout
            ),
            operators=s.operators,
            options=responder_options(s),
            metrics=metrics,
        )
        self.server = HealthServer(s.discord_host, s.discord_port, self.registry)
        nc = self.nc
        self.server.add_check("nats", lambda: nc.is_connected)
        InteractionsEndpoint(
            verifier, self.responder, metrics, max_body=s.discord_max_body
        ).install(self.server.app)
        await self.server.start()
        if not s.operators:
            log.warning("DISCORD_OPERATORS is empty: nobody can silence, start, stop or reboot")
        log.info(
            "%s started: POST http://%s:%d/discord/interactions",
            SERVICE, s.discord_host, self.server.port,
        )  # fmt: skip

    async def serve(self, stop: asyncio.Event) -> None:
        """Serve until ``stop``; then drain and close."""
        try:
            await stop.wait()
        finally:
            await self.close()

    async def close(self) -> None:
        """Stop intake (HTTP), finish follow-ups, flush events, close NATS."""
        if self.server is not None:
            await self.server.stop()
            self.server = None
        if self.responder is not None:
            await self.responder.close(timeout=5.0)
            self.responder = None
        if self.http is not None:
            await self.http.close()
            self.http = None
        if self.publisher is not None:
            await self.publisher.close(timeout=3.0)
            self.publisher = None
        if self.nc is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.nc.drain(), 2.0)
            if not self.nc.is_closed:
                await self.nc.close()
            self.nc = None


async def run(settings: Settings, stop: asyncio.Event) -> None:
    """The service's main: start, serve until ``stop``, close."""
    service = DiscordService(settings)
    try:
        await service.start()
    except BaseException:
        await service.close()
        raise
    await service.serve(stop)
