"""Audit of issue 17, item 2: two standalone hosts that each have VM 100 and CT 200.

Every tool that takes a guest's ``vmid`` (and resolves it to a host) answers, without
``node``, a 409 that names both hosts, and sends nothing but GETs to either host — over the
gateway's pipeline and over NATS RPC (``proxbus.rpc.<tool>``). The list of tools is taken
from the registry, so a new vmid tool is covered without editing this file.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from proxbus_devtools.testing import NatsServer
from proxbus_mcp_gateway.gateway import Gateway
from proxbus_mcp_gateway.rpc import start_rpc
from proxbus_mcp_gateway.testing import ADMIN, make_settings, standalone_env
from proxbus_mcp_gateway.tools import build_registry
from proxbus_pvesim.simulator import Simulator
from proxbus_pvesim.testing import run_simulator
from proxbus_runtime import RpcError, call_tool

HOSTS = ("edge1", "edge2")

# Arguments that make each guest tool act (confirm=true where a plan would be the answer).
ACTING_ARGS: dict[str, dict[str, Any]] = {
    "execute_vm_command": {"vmid": 100, "command": "start", "confirm": True},
    "execute_lxc_command": {"vmid": 200, "command": "start", "confirm": True},
    "get_guest_status": {"vmid": 100},
    "get_guest_config": {"vmid": 100},
    "migrate_guest": {"vmid": 100, "target": "edge2", "confirm": True},
    "get_guest_network": {"vmid": 100},
    "get_guest_disks": {"vmid": 100},
    "resize_guest_disk": {"vmid": 100, "disk": "scsi0", "size": "+1G"},
    "clone_guest": {"vmid": 100, "newid": 150},
    "delete_guest": {"vmid": 100, "confirm": True, "stop": True},
    "list_snapshots": {"vmid": 100},
    "create_snapshot": {"vmid": 100, "name": "audit"},
    "rollback_snapshot": {"vmid": 100, "name": "audit", "confirm": True},
    "delete_snapshot": {"vmid": 100, "name": "audit", "confirm": True},
    "create_backup": {"vmid": 100},
}
# Tools whose vmid is a filter (list results) or a new id, not a guest to resolve.
NOT_RESOLVING = {
    "get_recent_tasks",
    "list_storage_content",
    "create_vm",
    "create_container",
    "restore_backup",
}


def standalone(name: str) -> dict[str, Any]:
    guests = [
        {"vmid": 100, "type": "qemu", "name": f"web-{name}", "node": name, "status": "stopped"},
        {"vmid": 200, "type": "lxc", "name": f"ct-{name}", "node": name, "status": "stopped"},
    ]
    return {"standalone": name, "guests": {"qemu": 0, "lxc": 0, "list": guests}, "pbs": None}


@pytest.fixture
async def hosts() -> AsyncIterator[dict[str, Simulator]]:
    async with (
        run_simulator(standalone("edge1")) as one,
        run_simulator(standalone("edge2")) as two,
    ):
        yield {"edge1": one, "edge2": two}


@pytest.fixture
async def gw(hosts: dict[str, Simulator]) -> AsyncIterator[Gateway]:
    gateway = Gateway.from_settings(make_settings(rpc_scopes="admin"), standalone_env(hosts))
    gateway.start()
    try:
        yield gateway
    finally:
        await gateway.close()


def writes(hosts: dict[str, Simulator]) -> list[tuple[str, str, str]]:
    return [
        (name, r.method, r.path)
        for name, sim in hosts.items()
        for r in sim.request_log
        if r.method != "GET"
    ]


def test_every_guest_tool_is_covered() -> None:
    """A new tool with a ``vmid`` argument must be listed here (acting args or filter)."""
    with_vmid = {
        name
        for name, spec in build_registry().tools.items()
        if "vmid" in spec.input_model.model_fields
    }
    assert with_vmid == set(ACTING_ARGS) | NOT_RESOLVING


@pytest.mark.parametrize("tool", sorted(ACTING_ARGS))
async def test_guest_tool_without_node_on_two_hosts_is_409_and_acts_nowhere(
    hosts: dict[str, Simulator], gw: Gateway, tool: str
) -> None:
    vmid = ACTING_ARGS[tool]["vmid"]
    out = await gw.call(tool, ACTING_ARGS[tool], ADMIN)
    assert out.code == 409, (out.code, out.error)
    assert out.error == (
        f"guest {vmid} exists on several hosts (edge1, edge2); pass node to choose one"
    )
    assert writes(hosts) == []
    for sim in hosts.values():
        assert not sim.lab.guests[vmid].running


async def test_guest_tools_over_rpc_without_node_are_409_and_act_nowhere(
    hosts: dict[str, Simulator], gw: Gateway, nats_server: NatsServer, nc: Any
) -> None:
    service = await start_rpc(gw, nc)
    try:
        for tool, args in sorted(ACTING_ARGS.items()):
            with pytest.raises(RpcError) as err:
                await call_tool(nc, tool, args, timeout=10)
            assert err.value.code == 409, (tool, err.value)
            assert "exists on several hosts (edge1, edge2)" in str(err.value), tool
    finally:
        await service.stop()
    assert writes(hosts) == []


# -- proxmox_api on several standalone hosts ------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "params"),
    [
        ("POST", "/pools", {"poolid": "audit"}),
        ("PUT", "/cluster/options", {"description": "audit"}),
        ("GET", "/version", {}),  # one object per host: cannot be joined
    ],
)
@pytest.mark.parametrize("confirm", [True, False])
async def test_proxmox_api_without_a_node_in_the_path_on_two_hosts_acts_nowhere(
    hosts: dict[str, Simulator],
    gw: Gateway,
    method: str,
    path: str,
    params: dict[str, Any],
    confirm: bool,
) -> None:
    """A path with no ``{node}`` cannot say which standalone host it is for: the gateway must
    not pick the first one (it would change, or answer for, edge1 alone), nor plan to."""
    args = {"method": method, "path": path, "params": params, "confirm": confirm}
    out = await gw.call("proxmox_api", args, ADMIN)
    assert out.code == 409, (out.code, out.error)
    assert out.error == (
        f"{path} is not node-scoped and cluster lab has several independent hosts "
        "(edge1, edge2): use a /nodes/{node}/... path, or configure each host as its own "
        "cluster (CLUSTERS)"
    )
    sent = [
        (r.method, r.path)
        for sim in hosts.values()
        for r in sim.request_log
        if r.path.endswith(path) and r.method != "GET"
    ]
    assert sent == []


@pytest.mark.parametrize(
    "path", ["/cluster/resources", "/cluster/tasks", "/cluster/log", "/cluster/ha/status/current"]
)
async def test_proxmox_api_list_get_without_a_node_joins_every_hosts_answer(
    hosts: dict[str, Simulator], gw: Gateway, path: str
) -> None:
    """What the ingest-pve-ws watcher polls through proxmox_api: on several standalone hosts
    each answers for itself, and the answer holds both (it held the first host's only)."""
    out = await gw.call("proxmox_api", {"path": path}, ADMIN)
    assert out.ok, out.error
    assert out.result is not None
    asked = {
        name for name, sim in hosts.items() if any(r.path.endswith(path) for r in sim.request_log)
    }
    assert asked == {"edge1", "edge2"}
    if path == "/cluster/resources":
        guests = {(e["vmid"], e["node"]) for e in out.result.data["data"] if e.get("vmid")}
        assert {(100, "edge1"), (100, "edge2")} <= guests
    assert "errors" not in out.result.data


async def test_proxmox_api_list_get_with_one_host_down_names_it(
    hosts: dict[str, Simulator], gw: Gateway
) -> None:
    await hosts["edge2"].stop_api()
    out = await gw.call("proxmox_api", {"path": "/cluster/resources"}, ADMIN)
    assert out.ok, out.error
    assert out.result is not None
    assert {e.get("node") for e in out.result.data["data"]} == {"edge1"}
    assert out.result.data["errors"][0].startswith("edge2: ")


async def test_proxmox_api_with_a_node_in_the_path_reaches_that_host_only(
    hosts: dict[str, Simulator], gw: Gateway
) -> None:
    out = await gw.call("proxmox_api", {"path": "/nodes/edge2/qemu/100/status/current"}, ADMIN)
    assert out.ok, out.error
    assert out.result is not None
    assert out.result.data["data"]["name"] == "web-edge2"
    assert not [r for r in hosts["edge1"].request_log if "/qemu/100/" in r.path]


# -- list tools with one of two hosts down ----------------------------------------------------

PER_HOST_LISTS = ("get_nodes", "get_vms", "get_lxcs", "get_storage", "get_recent_tasks")


@pytest.mark.parametrize("tool", PER_HOST_LISTS)
async def test_a_list_tool_with_one_host_down_lists_the_other_and_names_the_failure(
    hosts: dict[str, Simulator], gw: Gateway, tool: str
) -> None:
    await hosts["edge2"].stop_api()
    out = await gw.call(tool, {}, ADMIN)
    assert out.ok, out.error
    assert out.result is not None
    data = out.result.data
    assert {i.get("node") for i in data["items"]} <= {"edge1"}
    assert data["errors"], data
    assert data["errors"][0].startswith("edge2"), data["errors"]
    assert "connection refused" in data["errors"][0]


@pytest.mark.parametrize("tool", [*PER_HOST_LISTS, "get_cluster_log", "get_cluster_status"])
async def test_a_list_tool_with_every_host_down_is_an_error(
    hosts: dict[str, Simulator], gw: Gateway, tool: str
) -> None:
    for sim in hosts.values():
        await sim.stop_api()
    out = await gw.call(tool, {}, ADMIN)
    assert not out.ok, out.result
    assert out.code in (502, 503), (out.code, out.error)
    assert "edge1" in (out.error or ""), out.error
    assert "edge2" in (out.error or ""), out.error


async def test_ha_status_with_the_second_host_down_names_it(
    hosts: dict[str, Simulator], gw: Gateway
) -> None:
    """Each standalone host has its own HA manager: a host that could not be asked is named
    in ``errors``, not left out silently."""
    await hosts["edge2"].stop_api()
    out = await gw.call("get_ha_status", {}, ADMIN)
    assert out.ok, out.error
    assert out.result is not None
    assert any(e.startswith("edge2") for e in out.result.data.get("errors") or []), out.result.data


async def test_ha_status_of_two_standalone_hosts_lists_both(gw: Gateway) -> None:
    out = await gw.call("get_ha_status", {}, ADMIN)
    assert out.ok, out.error
    assert out.result is not None
    assert {i["node"] for i in out.result.data["items"] if i["type"] == "quorum"} == {
        "edge1",
        "edge2",
    }


@pytest.mark.parametrize("tool", sorted(ACTING_ARGS))
async def test_guest_tool_with_node_touches_that_host_only(
    hosts: dict[str, Simulator], gw: Gateway, tool: str
) -> None:
    """With ``node``, every request about the guest goes to that host: nothing reaches the
    other one's guest (reads included), whatever the outcome of the call itself."""
    args = dict(ACTING_ARGS[tool], node="edge2")
    if tool == "migrate_guest":
        args["target"] = "edge1"  # not a member of edge2's (standalone) cluster: refused
    out = await gw.call(tool, args, ADMIN)
    vmid = args["vmid"]
    assert out.code != 409, out.error
    on_edge1 = [r.path for r in hosts["edge1"].request_log if f"/{vmid}" in r.path]
    assert on_edge1 == [], on_edge1
    assert all(name == "edge2" for name, _, _ in writes(hosts)), writes(hosts)


@pytest.mark.parametrize("broken", HOSTS)
async def test_diagnostic_reads_every_hosts_ha_and_names_one_it_could_not_read(
    hosts: dict[str, Simulator], gw: Gateway, broken: str
) -> None:
    """Each standalone host runs its own HA manager: the diagnostic asks each, and one whose
    HA status cannot be read is a finding (the failure was swallowed, and only the first
    host was asked)."""
    hosts[broken].fail_requests("/cluster/ha/status/current", status=500, reason="ha broken")
    out = await gw.call("run_diagnostic", {}, ADMIN)
    assert out.ok, out.error
    assert out.result is not None
    findings = [f["finding"] for f in out.result.data["findings"]]
    assert any(f.startswith(f"{broken}: HA status unreadable") for f in findings), findings


# -- tools that take no guest (next free id, whoami) -----------------------------------------
# The next free VMID is per host, so without node it is a 409 naming them (it was the first
# host's answer, which can be taken on the other); whoami shows each host's token
# permissions (it showed the first host's only).


def asked(hosts: dict[str, Simulator], path: str) -> set[str]:
    return {name for name, s in hosts.items() if any(r.path == path for r in s.request_log)}


async def test_next_vmid_without_node_on_two_hosts_is_409(
    hosts: dict[str, Simulator], gw: Gateway
) -> None:
    out = await gw.call("get_next_vmid", {}, ADMIN)
    assert out.code == 409, (out.code, out.error)
    assert out.error == (
        "cluster lab has several independent hosts (edge1, edge2), each with its own guest "
        "ids: pass node to choose one"
    )
    assert asked(hosts, "/api2/json/cluster/nextid") == set()
    out = await gw.call("get_next_vmid", {"node": "edge2"}, ADMIN)
    assert out.ok, out.error
    assert asked(hosts, "/api2/json/cluster/nextid") == {"edge2"}


async def test_whoami_on_two_hosts_shows_each_hosts_permissions(
    hosts: dict[str, Simulator], gw: Gateway
) -> None:
    out = await gw.call("whoami", {}, ADMIN)
    assert out.ok, out.error
    assert out.result is not None
    assert asked(hosts, "/api2/json/access/permissions") == {"edge1", "edge2"}
    perms = out.result.data["proxmox_permissions"]
    assert set(perms) == {"edge1", "edge2"}
    assert all("/" in p for p in perms.values())
    assert "edge1:" in out.result.text
    assert "edge2:" in out.result.text
