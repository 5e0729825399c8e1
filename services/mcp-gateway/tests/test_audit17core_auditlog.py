"""Audit of issue 17, item 7: the audit path under a flood while NATS is gone. Records past the
queue are dropped and counted; what it logs (queue full, publish failures) is rate-limited,
not one WARNING per call a client makes."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from proxbus_devtools.testing import NatsServer, wait_until
from proxbus_mcp_gateway.app import start_gateway
from proxbus_mcp_gateway.audit import MAX_QUEUE
from proxbus_mcp_gateway.testing import ADMIN, make_settings, sim_env
from proxbus_pvesim.simulator import Simulator


async def test_a_call_flood_with_nats_gone_logs_a_bounded_number_of_lines(
    sim: Simulator, nats_server: NatsServer, caplog: pytest.LogCaptureFixture
) -> None:
    settings = make_settings(nats_enabled=True, nats_url=nats_server.url)
    running = await start_gateway(settings, sim_env(sim))
    try:
        assert running.ready.is_set()
        gw = running.gateway
        nats_server.kill()
        with caplog.at_level(logging.WARNING, logger="proxbus.audit"):
            for _ in range(MAX_QUEUE + 500):
                out = await gw.call("list_clusters", {}, ADMIN)
                assert out.ok
            await wait_until(lambda: gw.audit.dropped >= 500, timeout=30)
        lines: list[Any] = [r for r in caplog.records if r.name == "proxbus.audit"]
        assert len(lines) <= 4, [r.getMessage() for r in lines[:6]]
    finally:
        await running.close()
