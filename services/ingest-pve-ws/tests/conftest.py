from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from proxbus_ingest_pve_ws.app import PveWsService
from proxbus_ingest_pve_ws.testing import make_settings
from proxbus_mcp_gateway.app import start_gateway
from proxbus_mcp_gateway.testing import make_settings as gateway_settings
from proxbus_mcp_gateway.testing import sim_env
from proxbus_pvesim.testing import api_session, run_simulator


class Services:
    """Starts ``PveWsService`` instances against the test broker and stops them."""

    def __init__(self, nats_url: str) -> None:
        self.nats_url = nats_url
        self._running: list[tuple[PveWsService, asyncio.Event, asyncio.Task[None]]] = []

    async def start(self, reader: Any = None, **over: Any) -> PveWsService:
        svc = PveWsService(make_settings(self.nats_url, **over), reader=reader)
        await svc.start()
        stop = asyncio.Event()
        self._running.append((svc, stop, asyncio.create_task(svc.serve(stop))))
        return svc

    async def stop(self, svc: PveWsService) -> None:
        for s, stop, task in self._running:
            if s is svc:
                stop.set()
                await asyncio.wait_for(task, 15)

    async def stop_all(self) -> None:
        for _, stop, _ in self._running:
            stop.set()
        for _, _, task in self._running:
            await asyncio.wait_for(task, 15)


@pytest.fixture
async def services(nats_server: Any) -> AsyncIterator[Services]:
    s = Services(nats_server.url)
    yield s
    await s.stop_all()


@dataclass
class Lab:
    """The simulator (faults through ``sim``, API writes through ``post``) behind the gateway."""

    sim: Any
    api: Any
    gateway: Any

    async def post(self, path: str, **data: Any) -> str:
        async with self.api.post(f"/api2/json{path}", data=data) as r:
            assert r.status == 200, await r.text()
            return str((await r.json())["data"])


@pytest.fixture
async def lab(nats_server: Any) -> AsyncIterator[Lab]:
    """Simulator + the real mcp-gateway serving ``proxbus.rpc.*`` on the test broker."""
    async with run_simulator(instant=True) as sim, api_session(sim) as api:
        # No read cache: the watcher must see state changes on its next poll.
        settings = gateway_settings(nats_url=nats_server.url, nats_enabled=True, cache_ttl=0)
        running = await start_gateway(settings, sim_env(sim))
        try:
            yield Lab(sim, api, running)
        finally:
            await running.close()
