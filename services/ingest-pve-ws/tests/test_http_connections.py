"""The webhook listener's connection budgets on the real service (libs/runtime http_limits):
one address flooding connections gets its share, the others are closed at once and counted,
and a PVE webhook from another address is still accepted."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
from proxbus_ingest_pve_ws.testing import stored_events, wait_until


async def test_a_connection_flood_from_one_address_does_not_lock_out_the_webhook(
    services: Any, js: Any
) -> None:
    svc = await services.start(http_max_connections_per_peer=5, http_keepalive_timeout=60)
    port = svc.health.port
    held: list[asyncio.StreamWriter] = []
    refused = 0
    try:
        for _ in range(500):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            try:
                got = await asyncio.wait_for(reader.read(), 0.2 if len(held) < 5 else 5)
            except ConnectionResetError:
                got = b""
            except TimeoutError:
                held.append(writer)  # within its share: open
                continue
            assert got == b""
            refused += 1
            writer.close()
        assert (len(held), refused) == (5, 495)
        body = json.dumps({"title": "backup failed", "severity": "error"}).encode()
        connector = aiohttp.TCPConnector(local_addr=("127.0.0.2", 0))
        async with (
            aiohttp.ClientSession(connector=connector) as http,
            http.post(
                f"http://127.0.0.1:{port}/hooks/pve",
                data=body,
                headers={"Authorization": "Bearer s3cret", "Content-Type": "application/json"},
            ) as resp,
        ):
            assert resp.status == 202, await resp.text()
        async with (
            aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(local_addr=("127.0.0.3", 0))
            ) as http,
            http.get(f"http://127.0.0.1:{port}/metrics") as resp,
        ):
            text = await resp.text()
        assert 'proxbus_http_connections_refused_total{reason="per_peer"} 495.0' in text
        assert 'proxbus_http_budget{budget="max_connections_per_peer"} 5.0' in text
    finally:
        for w in held:
            w.close()

    async def stored() -> bool:
        return any(e.title == "backup failed" for e in await stored_events(js))

    await wait_until(stored)
