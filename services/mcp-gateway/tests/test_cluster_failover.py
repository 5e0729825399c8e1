"""CLUSTERED: when the primary member's API stops answering, calls go through another member.

The simulator serves one PVE listener; ``member_listener`` adds a second one on its own port
sharing the same simulated cluster (same model, auth, TLS), standing for another member.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from proxbus_mcp_gateway.gateway import Gateway
from proxbus_mcp_gateway.testing import ADMIN, make_settings, sim_env
from proxbus_pvesim.server import ApiServer
from proxbus_pvesim.simulator import Simulator
from proxbus_pvesim.testing import member_listener


@pytest.fixture
async def second_member(sim: Simulator) -> AsyncIterator[ApiServer]:
    async with member_listener(sim) as listener:
        yield listener


async def test_calls_fail_over_when_the_primary_api_is_down(
    sim: Simulator, second_member: ApiServer
) -> None:
    env = {**sim_env(sim), "PVE_NODES": "pve2", "PVE_PVE2_HOST": f"127.0.0.1:{second_member.port}"}
    gw = Gateway.from_settings(make_settings(cache_ttl=0, breaker_failures=1), env)
    try:
        first = await gw.call("get_vms", {}, ADMIN)
        assert first.ok, first.error
        await sim.stop_api("pve")
        before = second_member.request_count
        for _ in range(3):
            out = await gw.call("get_vms", {}, ADMIN)
            assert out.ok, out.error
            assert out.result.data["count"] == first.result.data["count"]
        assert second_member.request_count > before
        status = {e["endpoint"]: e["state"] for e in gw.pool.endpoint_status()}
        assert status["cluster-primary"] == "open"
        assert status["pve2"] == "closed"
        clusters = await gw.call("list_clusters", {}, ADMIN)
        assert "open" in clusters.result.text
        stopped = next(g for g in sim.lab.guests.values() if g.kind == "qemu" and not g.running)
        started = await gw.call(
            "execute_vm_command", {"vmid": stopped.vmid, "command": "start", "wait": True}, ADMIN
        )
        assert started.ok, started.error
    finally:
        await gw.close()


async def test_an_open_breaker_is_not_hammered_and_reports_endpoint_down(sim: Simulator) -> None:
    gw = Gateway.from_settings(
        make_settings(cache_ttl=0, breaker_failures=2, api_retries=0), sim_env(sim)
    )
    try:
        await sim.stop_api("pve")
        first = await gw.call("get_nodes", {}, ADMIN)
        second = await gw.call("get_nodes", {}, ADMIN)
        # Every source failed: an error with the cause, not an empty list (issue 17).
        assert not first.ok
        assert "connection refused" in first.error
        assert not second.ok
        assert "connection refused" in second.error
        third = await gw.call("get_node_status", {"node": "pve1"}, ADMIN)
        assert not third.ok
        assert "circuit open" in third.error
        health = gw.pool.healthy()
        assert health is False
    finally:
        await gw.close()


async def test_clustered_members_are_discovered_from_cluster_status(sim: Simulator) -> None:
    # Discovered members are only added here, never dialled: the simulator's IPs are made up.
    gw = Gateway.from_settings(make_settings(discover_endpoints=True), sim_env(sim))
    try:
        out = await gw.call("get_node_status", {"node": "pve2"}, ADMIN)
        assert out.ok, out.error
        endpoints = {e["endpoint"]: e["address"] for e in gw.pool.endpoint_status()}
        assert {"pve2", "pve3"} <= set(endpoints)
        assert "pve1" not in endpoints  # the answering member is the primary itself
        assert endpoints["pve2"].endswith(f":{sim.pve_port}")
        assert all(
            e["requests"] == 0
            for e in gw.pool.endpoint_status()
            if e["endpoint"] in ("pve2", "pve3")
        )
    finally:
        await gw.close()


async def test_plain_api_errors_never_open_the_breaker(sim: Simulator) -> None:
    # Proxmox answers many ordinary errors with a 500 (unknown task, missing config file):
    # the endpoint is alive and must stay in use for every other call.
    gw = Gateway.from_settings(
        make_settings(cache_ttl=0, breaker_failures=1, api_retries=0), sim_env(sim)
    )
    try:
        bogus = "UPID:pve1:00001234:00ABCDEF:65F0A1B2:qmstart:100:root@pam:"
        for _ in range(3):
            out = await gw.call(
                "proxmox_api",
                {"method": "GET", "path": f"/nodes/pve1/tasks/{bogus}/status"},
                ADMIN,
            )
            assert not out.ok
        status = {e["endpoint"]: e["state"] for e in gw.pool.endpoint_status()}
        assert status["cluster-primary"] == "closed"
        nodes = await gw.call("get_nodes", {}, ADMIN)
        assert nodes.ok, nodes.error
        assert nodes.result.data["count"] == 3
    finally:
        await gw.close()
