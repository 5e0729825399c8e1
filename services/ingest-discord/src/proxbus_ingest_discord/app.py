"""Wires the interactions endpoint on the service runtime: ledger, audit, events, follow-ups.

``/discord/interactions`` is served by the runtime's health server (``DISCORD_HOST`` /
``DISCORD_PORT``, next to ``/health`` and ``/metrics``). Until NATS and JetStream are up, and
again once shutdown began, the endpoint answers 503 (Discord shows "interaction failed").
"""

from __future__ import annotations

import asyncio
import logging

import aiohttp
from proxbus_runtime import Service, SilenceStore

from .audit import DiscordAudit
from .buttons import UsedButtons
from .confirmations import Confirmations
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
        user_rate=settings.discord_user_rate,
        button_secret=settings.button_secret,
    )


class DiscordService:
    """The endpoint inside a runtime ``Service``: ``start()`` / ``close()``, or ``async with``."""

    def __init__(self, settings: Settings, *, stop: asyncio.Event | None = None) -> None:
        self.settings = settings
        self.runtime = Service(settings, SERVICE, stop=stop, listen_setting="DISCORD_PORT")
        self.metrics = DiscordMetrics.create(self.runtime.registry)
        verifier = SignatureVerifier(
            load_public_key(settings.discord_public_key), max_age=settings.discord_max_age
        )
        self.endpoint = InteractionsEndpoint(
            verifier, None, self.metrics, max_body=settings.discord_max_body
        )
        # Routes before the runtime starts its HTTP server.
        self.endpoint.install(self.runtime.health.app)
        self.http: aiohttp.ClientSession | None = None
        self.responder: Responder | None = None

    @property
    def port(self) -> int:
        return self.runtime.health.port

    async def start(self) -> None:
        """Start the runtime (waits for NATS and JetStream), then open the buckets and answer."""
        await self.runtime.__aenter__()
        try:
            await self._ready()
        except BaseException:
            await self.close()
            raise

    async def _ready(self) -> None:
        s, js, nc, publisher = (
            self.settings,
            self.runtime.js,
            self.runtime.nc,
            self.runtime.publisher,
        )
        if js is None or nc is None or publisher is None:
            raise RuntimeError("the runtime returned before NATS was ready")
        self.http = aiohttp.ClientSession()
        ledger = await InteractionLedger.open(js)
        self.responder = Responder(
            nc,
            ledger=ledger,
            confirmations=Confirmations(ledger.kv),
            buttons=await UsedButtons.open(js),
            silences=await SilenceStore.open(js),
            audit=DiscordAudit(js),
            publisher=publisher,
            followups=FollowupClient(
                self.http, api_url=s.discord_api_url, timeout=s.discord_http_timeout
            ),
            access=s.access,
            options=responder_options(s),
            metrics=self.metrics,
        )
        self.endpoint.responder = self.responder
        self.runtime.on_stop(self._drain)
        if not s.operators:
            log.warning("DISCORD_OPERATORS is empty: nobody can silence, start, stop or reboot")
        if s.button_secret is None:
            log.warning(
                "DISCORD_BUTTON_SECRET is not set: the Silence/Acknowledge buttons of the"
                " dispatcher's notifications are refused (set the same secret on both services)"
            )
        if not s.access.guilds:
            log.warning("DISCORD_GUILDS is empty: only DISCORD_OPERATORS may use /proxbus")
        log.info(
            "%s ready: POST http://%s:%d/discord/interactions", SERVICE, s.discord_host, self.port
        )

    async def _drain(self, seconds_left: float) -> None:
        """Stop taking interactions; let work and follow-ups in flight finish."""
        self.endpoint.responder = None
        if self.responder is not None:
            await self.responder.close(timeout=max(0.1, seconds_left - 2.0))
            self.responder = None
        if self.http is not None:
            await self.http.close()
            self.http = None

    async def close(self) -> None:
        """Drain (the runtime's stop hooks) and close NATS, the publisher and HTTP."""
        await self.runtime.__aexit__(None, None, None)
        if self.http is not None:  # start() failed before the stop hook was registered
            await self.http.close()
            self.http = None

    async def __aenter__(self) -> DiscordService:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


async def run(settings: Settings, stop: asyncio.Event) -> None:
    """The service's main (``proxbus_runtime.main`` runs it under SIGINT/SIGTERM)."""
    async with DiscordService(settings, stop=stop) as service:
        await service.runtime.serve()
