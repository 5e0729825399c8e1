"""Audit of issue 17, item 7: one caller cannot take every call slot. Calls in flight are
capped per caller (MAX_CALLS_PER_CALLER); one over the cap is refused at once (429, audited)
while other callers keep being served."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from proxbus_mcp_gateway.auth import Caller, parse_scopes
from proxbus_mcp_gateway.gateway import Gateway
from proxbus_mcp_gateway.testing import make_settings, sim_env
from proxbus_pvesim.simulator import Simulator

GREEDY = Caller("greedy", parse_scopes("read"), "test")
OTHER = Caller("other", parse_scopes("read"), "test")


@pytest.fixture
async def slow(sim: Simulator) -> AsyncIterator[Gateway]:
    sim.add_latency("/cluster/resources", 1.0)
    settings = make_settings(max_calls_per_caller=2, max_concurrent_calls=3, cache_ttl=0)
    gw = Gateway.from_settings(settings, sim_env(sim))
    gw.start()
    try:
        yield gw
    finally:
        await gw.close()


async def test_a_caller_over_its_cap_is_refused_and_others_still_get_through(
    slow: Gateway,
) -> None:
    first = [asyncio.create_task(slow.call("get_vms", {}, GREEDY)) for _ in range(2)]
    await asyncio.sleep(0)  # let both take their slot
    third = await asyncio.wait_for(slow.call("get_vms", {}, GREEDY), 0.5)
    assert third.code == 429, (third.code, third.error)
    assert third.error == "too many calls in flight for 'greedy' (2, MAX_CALLS_PER_CALLER)"
    # The greedy caller holds 2 of the 3 slots: another caller is still served.
    other = await asyncio.wait_for(slow.call("get_vms", {}, OTHER), 5)
    assert other.ok, other.error
    for task in first:
        assert (await task).ok
    # Slots are given back.
    assert (await slow.call("list_clusters", {}, GREEDY)).ok
    assert slow.in_flight_by_caller == {}
