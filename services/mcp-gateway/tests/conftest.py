"""Fixtures: a simulator, a gateway wired to it, and the gateway served over HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from proxbus_mcp_gateway.gateway import Gateway
from proxbus_mcp_gateway.testing import TOKENS, HttpGateway, make_settings, serve, sim_env
from proxbus_pvesim.simulator import Simulator
from proxbus_pvesim.testing import run_simulator


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    async with run_simulator(instant=True) as s:
        yield s


@pytest.fixture
async def gateway(sim: Simulator) -> AsyncIterator[Gateway]:
    gw = Gateway.from_settings(make_settings(), sim_env(sim))
    gw.start()
    try:
        yield gw
    finally:
        await gw.close()


@pytest.fixture
async def http_gateway(sim: Simulator) -> AsyncIterator[HttpGateway]:
    gw = Gateway.from_settings(make_settings(gateway_tokens=TOKENS), sim_env(sim))
    gw.start()
    try:
        async with serve(gw) as served:
            yield served
    finally:
        await gw.close()
