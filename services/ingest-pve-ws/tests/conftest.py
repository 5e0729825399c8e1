from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from proxbus_ingest_pve_ws.app import PveWsService
from proxbus_ingest_pve_ws.testing import make_settings


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
