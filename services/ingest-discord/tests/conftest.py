"""Fixtures: a real nats-server, the simulator behind the real gateway (NATS RPC), a recording
stand-in of Discord's webhook API, and the service, with requests signed as Discord signs them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from proxbus_devtools.testing import serve_app
from proxbus_ingest_discord.app import DiscordService
from proxbus_ingest_discord.testing import DiscordStandIn, Signed, service_settings
from proxbus_mcp_gateway.app import Running, start_gateway
from proxbus_mcp_gateway.testing import make_settings, sim_env
from proxbus_pvesim.simulator import Simulator
from proxbus_pvesim.testing import run_simulator


@pytest.fixture
def keypair() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    async with run_simulator(instant=True) as s:
        yield s


@pytest.fixture
async def gateway(sim: Simulator, nats_server: Any) -> AsyncIterator[Running]:
    settings = make_settings(nats_enabled=True, nats_url=nats_server.url, rpc_scopes="read+operate")
    running = await start_gateway(settings, sim_env(sim))
    try:
        yield running
    finally:
        await running.close()


@pytest.fixture
async def discord_api() -> AsyncIterator[DiscordStandIn]:
    stand_in = DiscordStandIn()
    app = web.Application()
    app.router.add_route("*", "/api/v10/{tail:.*}", stand_in.handle)
    async with serve_app(app) as port:
        stand_in.url = f"http://127.0.0.1:{port}/api/v10"
        yield stand_in


@pytest.fixture
async def service(
    nats_server: Any, keypair: Ed25519PrivateKey, discord_api: DiscordStandIn
) -> AsyncIterator[DiscordService]:
    svc = DiscordService(service_settings(nats_server.url, keypair, discord_api.url))
    await svc.start()
    try:
        yield svc
    finally:
        await svc.close()


@pytest.fixture
async def signed(service: DiscordService, keypair: Ed25519PrivateKey) -> AsyncIterator[Signed]:
    async with aiohttp.ClientSession() as http:
        yield Signed(f"http://127.0.0.1:{service.port}/discord/interactions", keypair, http)
