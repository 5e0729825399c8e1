"""Guests keyed by cluster, node and vmid; upstream failures reported as such (issue 17)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from proxbus_mcp_gateway.gateway import Gateway
from proxbus_mcp_gateway.testing import ADMIN, make_settings, sim_env, standalone_env
from proxbus_pvesim.simulator import Simulator
from proxbus_pvesim.testing import run_simulator

HOSTS = ("edge1", "edge2")


def standalone(name: str) -> dict[str, Any]:
    """One standalone host with VM 100 (named after the host) and no PBS."""
    vm = {"vmid": 100, "type": "qemu", "name": f"web-{name}", "node": name, "status": "stopped"}
    return {"standalone": name, "guests": {"qemu": 0, "lxc": 0, "list": [vm]}, "pbs": None}


@pytest.fixture
async def hosts() -> AsyncIterator[dict[str, Simulator]]:
    async with (
        run_simulator(standalone("edge1")) as one,
        run_simulator(standalone("edge2")) as two,
    ):
        yield {"edge1": one, "edge2": two}


@pytest.fixture
async def two_host_gateway(hosts: dict[str, Simulator]) -> AsyncIterator[Gateway]:
    gw = Gateway.from_settings(make_settings(), standalone_env(hosts))
    gw.start()
    try:
        yield gw
    finally:
        await gw.close()


async def call(gw: Gateway, tool: str, **args: Any) -> Any:
    return await gw.call(tool, args, ADMIN)


async def test_vmid_on_two_hosts_without_node_is_an_error_listing_both(
    two_host_gateway: Gateway,
) -> None:
    out = await call(two_host_gateway, "get_guest_status", vmid=100)
    assert out.code == 409
    assert out.error == "guest 100 exists on several hosts (edge1, edge2); pass node to choose one"


@pytest.mark.parametrize("node", HOSTS)
async def test_vmid_with_node_reads_that_hosts_guest(two_host_gateway: Gateway, node: str) -> None:
    out = await call(two_host_gateway, "get_guest_status", vmid=100, node=node)
    assert out.ok, out.error
    assert out.result.data["node"] == node
    assert out.result.data["name"] == f"web-{node}"


@pytest.mark.parametrize("node", HOSTS)
async def test_start_with_node_acts_on_that_host_only(
    hosts: dict[str, Simulator], two_host_gateway: Gateway, node: str
) -> None:
    out = await call(two_host_gateway, "execute_vm_command", vmid=100, command="start", node=node)
    assert out.ok, out.error
    assert out.result.data["target"] == f"VM 100 (web-{node}) on {node}"
    for name, sim in hosts.items():
        assert sim.lab.guests[100].running is (name == node)
        started = [t for t in sim.pve_tasks.all_tasks() if t.type == "qmstart"]
        assert len(started) == (1 if name == node else 0)


async def test_start_without_node_on_two_hosts_acts_nowhere(
    hosts: dict[str, Simulator], two_host_gateway: Gateway
) -> None:
    out = await call(two_host_gateway, "execute_vm_command", vmid=100, command="start")
    assert out.code == 409
    assert "edge1, edge2" in out.error
    for sim in hosts.values():
        assert not sim.lab.guests[100].running
        assert not [t for t in sim.pve_tasks.all_tasks() if t.type == "qmstart"]


async def test_start_without_node_while_the_other_host_is_down_acts_nowhere(
    hosts: dict[str, Simulator], two_host_gateway: Gateway
) -> None:
    await hosts["edge2"].stop_api()
    out = await call(two_host_gateway, "execute_vm_command", vmid=100, command="start")
    assert out.code == 409
    assert out.error.startswith("guest 100 found on edge1, but not every host could be checked")
    assert "edge2" in out.error
    assert "pass node" in out.error
    assert not hosts["edge1"].lab.guests[100].running


async def test_read_without_node_while_the_other_host_is_down_answers_from_the_one_found(
    hosts: dict[str, Simulator], two_host_gateway: Gateway
) -> None:
    await hosts["edge2"].stop_api()
    out = await call(two_host_gateway, "get_guest_status", vmid=100)
    assert out.ok, out.error
    assert out.result.data["node"] == "edge1"


async def test_guest_on_another_node_names_where_it_is(two_host_gateway: Gateway) -> None:
    out = await call(two_host_gateway, "get_guest_status", vmid=100, node="edge3")
    assert out.code == 404
    assert out.error == "guest 100 is not on node edge3 (found on: edge1, edge2)"


async def test_list_tools_name_each_hosts_guest(two_host_gateway: Gateway) -> None:
    out = await call(two_host_gateway, "get_vms")
    assert out.ok, out.error
    assert sorted((v["vmid"], v["node"]) for v in out.result.data["items"]) == [
        (100, "edge1"),
        (100, "edge2"),
    ]


# -- upstream failures ----------------------------------------------------------------------


async def test_guest_lookup_with_the_simulator_down_is_an_upstream_error(
    sim: Simulator, gateway: Gateway
) -> None:
    await sim.stop_api()
    out = await call(gateway, "get_guest_status", vmid=100)
    assert out.code in (502, 503)
    assert out.error.startswith("looking up guest 100 failed on every endpoint:")
    assert "connection refused" in out.error
    assert "not found" not in out.error


async def test_guest_lookup_with_a_refused_token_says_401(sim: Simulator) -> None:
    bad = dict(sim_env(sim), PVE_CLUSTER_PRIMARY_TOKEN_VALUE="00000000-0000-0000-0000-000000000000")
    gw = Gateway.from_settings(make_settings(), bad)
    try:
        out = await call(gw, "get_guest_status", vmid=100)
        assert out.code == 502
        assert "401 authentication failed" in out.error
        assert "not found" not in out.error
    finally:
        await gw.close()


async def test_guest_lookup_with_resources_answering_500_is_an_upstream_error(
    sim: Simulator, gateway: Gateway
) -> None:
    sim.fail_requests("/cluster/resources", status=500, reason="simulated failure")
    out = await call(gateway, "execute_vm_command", vmid=100, command="start")
    assert out.code == 502
    assert "500 simulated failure" in out.error
    assert "not found" not in out.error


@pytest.mark.parametrize(
    ("tool", "path"),
    [
        ("get_vms", "/cluster/resources"),
        ("get_lxcs", "/cluster/resources"),
        ("get_storage", "/cluster/resources"),
        ("get_nodes", "/nodes"),
        ("get_recent_tasks", "/cluster/tasks"),
        ("get_cluster_log", "/cluster/log"),
        ("get_cluster_status", "/cluster/status"),
    ],
)
async def test_list_tool_with_every_source_failing_is_an_error_and_audited(
    sim: Simulator, tool: str, path: str, caplog: pytest.LogCaptureFixture
) -> None:
    sim.fail_requests(path, status=500, reason="simulated failure")
    gw = Gateway.from_settings(make_settings(), sim_env(sim))
    gw.start()
    try:
        with caplog.at_level("INFO", logger="proxbus.audit"):
            out = await call(gw, tool)
        assert not out.ok
        assert out.code == 502
        assert "failed on every endpoint" in out.error
        assert "500 simulated failure" in out.error
        records = [r.getMessage() for r in caplog.records if r.name == "proxbus.audit"]
        assert len(records) == 1
        assert f'"tool":"{tool}"' in records[0]
        assert '"outcome":"error"' in records[0]
        assert '"code":502' in records[0]
    finally:
        await gw.close()


async def test_list_tool_with_one_host_down_lists_the_other_and_names_the_failure(
    hosts: dict[str, Simulator], two_host_gateway: Gateway
) -> None:
    await hosts["edge2"].stop_api()
    out = await call(two_host_gateway, "get_vms")
    assert out.ok, out.error
    assert [v["node"] for v in out.result.data["items"]] == ["edge1"]
    assert out.result.data["errors"][0].startswith("edge2: ")
