"""A gateway with two clusters (``CLUSTERS``): a home lab and a colo, one simulator each.

Without ``cluster`` a listing answers for every cluster the caller may see (each row naming
its ``cluster``, a failing cluster in ``errors``); a vmid, node, UPID or PBS server is looked
up in every cluster (several matches: a 409 naming ``cluster/node``, nothing sent); tools
whose answer only means something for one cluster refuse with the cluster names. Before,
every call without ``cluster`` answered for (or acted on) the first cluster only.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from proxbus_devtools.testing import NatsServer
from proxbus_mcp_gateway.auth import Caller
from proxbus_mcp_gateway.config import TokenSpec
from proxbus_mcp_gateway.gateway import Gateway
from proxbus_mcp_gateway.rpc import start_rpc
from proxbus_mcp_gateway.testing import ADMIN, clusters_env, make_settings
from proxbus_mcp_gateway.tools import build_registry
from proxbus_pvesim.simulator import Simulator
from proxbus_pvesim.testing import run_simulator
from proxbus_runtime import RpcError, call_tool


def lab(name: str, nodes: list[str], guests: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "cluster": {"name": name, "nodes": nodes},
        "guests": {"qemu": 0, "lxc": 0, "list": guests},
        "pbs": {"name": f"{name}-pbs"},
    }


HOME = lab(
    "home",
    ["h1", "h2"],
    [
        {"vmid": 100, "type": "qemu", "name": "web-home", "node": "h1", "status": "stopped",
         "ha": True},
        {"vmid": 101, "type": "qemu", "name": "nas", "node": "h2", "status": "running"},
        {"vmid": 200, "type": "lxc", "name": "dns-home", "node": "h1", "status": "running"},
        {"vmid": 102, "type": "qemu", "name": "vm102", "node": "h2", "status": "stopped"},
    ],
)  # fmt: skip
COLO = lab(
    "colo",
    ["c1", "c2"],
    [
        {"vmid": 100, "type": "qemu", "name": "web-colo", "node": "c1", "status": "stopped",
         "ha": True},
        {"vmid": 300, "type": "qemu", "name": "mail", "node": "c2", "status": "stopped"},
        {"vmid": 301, "type": "lxc", "name": "dns-colo", "node": "c2", "status": "running"},
        {"vmid": 102, "type": "lxc", "name": "ct102", "node": "c1", "status": "stopped"},
    ],
)  # fmt: skip


@pytest.fixture
async def sims() -> AsyncIterator[dict[str, Simulator]]:
    async with run_simulator(HOME) as home, run_simulator(COLO) as colo:
        yield {"home": home, "colo": colo}


@pytest.fixture
async def gw(sims: dict[str, Simulator]) -> AsyncIterator[Gateway]:
    settings = make_settings(default_cluster="home", rpc_scopes="admin")
    gateway = Gateway.from_settings(settings, clusters_env(sims))
    gateway.start()
    try:
        yield gateway
    finally:
        await gateway.close()


def asked(sim: Simulator, path: str) -> int:
    return sum(1 for r in sim.request_log if r.path.endswith(path))


def writes(sims: dict[str, Simulator]) -> list[tuple[str, str, str]]:
    return [
        (name, r.method, r.path)
        for name, sim in sims.items()
        for r in sim.request_log
        if r.method != "GET"
    ]


async def ok(gw: Gateway, tool: str, args: dict[str, Any], caller: Caller = ADMIN) -> Any:
    out = await gw.call(tool, args, caller)
    assert out.ok, (tool, out.code, out.error)
    assert out.result is not None
    return out.result


def test_every_tool_with_a_cluster_argument_says_what_it_does_without_one() -> None:
    from proxbus_mcp_gateway.tools._multi import MODES

    with_cluster = {
        name
        for name, spec in build_registry().tools.items()
        if "cluster" in spec.input_model.model_fields
    }
    assert with_cluster == set(MODES)


# -- listings: every cluster -----------------------------------------------------------


async def test_get_vms_without_cluster_lists_both_clusters(gw: Gateway) -> None:
    result = await ok(gw, "get_vms", {})
    rows = {(r["cluster"], r["vmid"], r["node"]) for r in result.data["items"]}
    assert rows == {("home", 100, "h1"), ("home", 101, "h2"), ("home", 102, "h2"),
                    ("colo", 100, "c1"), ("colo", 300, "c2")}  # fmt: skip
    assert result.data["count"] == 5
    assert "errors" not in result.data
    assert "cluster home: VMs (3)" in result.text
    assert "cluster colo: VMs (2)" in result.text


async def test_get_vms_with_cluster_lists_that_one_only(
    gw: Gateway, sims: dict[str, Simulator]
) -> None:
    before = asked(sims["home"], "/cluster/resources")
    result = await ok(gw, "get_vms", {"cluster": "colo"})
    assert {r["vmid"] for r in result.data["items"]} == {100, 300}
    assert all("cluster" not in r for r in result.data["items"])
    assert asked(sims["home"], "/cluster/resources") == before


@pytest.mark.parametrize(
    ("tool", "args", "key"),
    [
        ("get_lxcs", {}, "vmid"),
        ("get_nodes", {}, "node"),
        ("get_storage", {}, "node"),
        ("get_ha_status", {}, "id"),
        ("get_cluster_log", {}, "node"),
        ("get_recent_tasks", {}, "node"),
        ("list_storage_content", {"storage": "local"}, "volid"),
        ("pbs_list_datastores", {}, "store"),
        ("pbs_get_tasks", {}, "upid"),
    ],
)
async def test_every_listing_without_cluster_answers_for_both(
    gw: Gateway, sims: dict[str, Simulator], tool: str, args: dict[str, Any], key: str
) -> None:
    if tool in ("get_recent_tasks", "get_cluster_log", "pbs_get_tasks"):
        # a task in each cluster (a backup) so that both have rows to show
        for name, vmid in (("home", 101), ("colo", 300)):
            await ok(gw, "create_backup", {"vmid": vmid, "cluster": name, "wait": True})
        if tool == "pbs_get_tasks":
            for name in ("home", "colo"):
                await ok(gw, "pbs_start_gc", {"cluster": name, "store": "store1", "wait": True})
    result = await ok(gw, tool, args)
    items = result.data["items"]
    assert {r["cluster"] for r in items} == {"home", "colo"}, items
    assert all(r.get(key) is not None for r in items)
    assert result.data["count"] == len(items)
    assert "errors" not in result.data


async def test_recent_tasks_of_both_clusters_keep_the_limit_newest_first(gw: Gateway) -> None:
    for name, vmid in (("home", 101), ("colo", 300), ("home", 101)):
        await ok(gw, "create_backup", {"vmid": vmid, "cluster": name, "wait": True})
    result = await ok(gw, "get_recent_tasks", {"limit": 2})
    items = result.data["items"]
    assert len(items) == 2
    starts = [int(r["starttime"]) for r in items]
    assert starts == sorted(starts, reverse=True)


async def test_a_cluster_that_is_down_is_named_in_errors(
    gw: Gateway, sims: dict[str, Simulator]
) -> None:
    await sims["colo"].stop_api()
    result = await ok(gw, "get_vms", {})
    assert {r["cluster"] for r in result.data["items"]} == {"home"}
    assert len(result.data["errors"]) == 1
    assert result.data["errors"][0].startswith("colo: ")
    assert "errors: colo: " in result.text


async def test_every_cluster_down_is_an_error_with_the_reasons(
    gw: Gateway, sims: dict[str, Simulator]
) -> None:
    await sims["colo"].stop_api()
    await sims["home"].stop_api()
    out = await gw.call("get_vms", {}, ADMIN)
    assert not out.ok
    assert out.error is not None
    assert "home: " in out.error
    assert "colo: " in out.error


async def test_cluster_allowlist_limits_the_listing_and_what_is_asked(
    gw: Gateway, sims: dict[str, Simulator]
) -> None:
    token = TokenSpec("colo-only", "0" * 64, frozenset({"read"}), clusters=frozenset({"colo"}))
    caller = Caller.from_token(token, "test")
    before = asked(sims["home"], "/cluster/resources")
    result = await ok(gw, "get_vms", {}, caller)
    assert {r["vmid"] for r in result.data["items"]} == {100, 300}
    assert asked(sims["home"], "/cluster/resources") == before
    # a guest only home has is outside what this caller may see: not found, home not named
    out = await gw.call("get_guest_status", {"vmid": 101}, caller)
    assert out.code == 404, out.error
    assert "home" not in (out.error or "")
    assert (await ok(gw, "get_guest_status", {"vmid": 100}, caller)).data["cluster"] == "colo"
    elsewhere = TokenSpec("dc9", "0" * 64, frozenset({"read"}), clusters=frozenset({"dc9"}))
    out = await gw.call("get_vms", {}, Caller.from_token(elsewhere, "test"))
    assert out.code == 403
    assert out.error == "forbidden: no configured cluster is in the allowlist of 'dc9'"


async def test_cluster_status_without_cluster_shows_both(gw: Gateway) -> None:
    result = await ok(gw, "get_cluster_status", {})
    assert {(n["cluster"], n["name"]) for n in result.data["nodes"]} == {
        ("home", "h1"), ("home", "h2"), ("colo", "c1"), ("colo", "c2")
    }  # fmt: skip
    assert result.data["quorate"] is True
    assert result.data["clusters"] == ["home", "colo"]
    assert "cluster home: cluster" not in result.text
    assert "cluster home:" in result.text
    assert "cluster colo:" in result.text


async def test_diagnostic_and_whoami_without_cluster_cover_both(gw: Gateway) -> None:
    diag = await ok(gw, "run_diagnostic", {})
    assert diag.data["clusters"] == ["home", "colo"]
    assert "cluster home:" in diag.text
    assert "cluster colo:" in diag.text
    me = await ok(gw, "whoami", {})
    assert set(me.data["proxmox_permissions"]) == {"home", "colo"}


async def test_single_cluster_tools_without_cluster_name_the_clusters(
    gw: Gateway, sims: dict[str, Simulator]
) -> None:
    for tool, args in (
        ("get_next_vmid", {}),
        ("proxmox_api", {"method": "POST", "path": "/pools", "params": {"poolid": "x"},
                         "confirm": True}),
        ("proxmox_api", {"path": "/version"}),
    ):  # fmt: skip
        out = await gw.call(tool, args, ADMIN)
        assert out.code == 409, (tool, out.code, out.error)
        assert "several clusters (home, colo)" in (out.error or ""), out.error
        assert "pass cluster" in (out.error or "")
    assert writes(sims) == []
    assert (await ok(gw, "get_next_vmid", {"node": "c2"})).data["vmid"] >= 100


async def test_proxmox_api_list_get_joins_both_clusters(gw: Gateway) -> None:
    result = await ok(gw, "proxmox_api", {"path": "/cluster/resources", "params": {"type": "vm"}})
    rows = {(r["cluster"], r["vmid"]) for r in result.data["data"]}
    assert {("home", 100), ("colo", 100), ("colo", 300)} <= rows
    node_path = await ok(gw, "proxmox_api", {"path": "/nodes/c2/qemu"})
    assert {g["vmid"] for g in node_path.data["data"]} == {300}


# -- a vmid, a node, a UPID, a PBS server: looked up in every cluster ------------------


async def test_vmid_in_one_cluster_is_found_there(gw: Gateway) -> None:
    result = await ok(gw, "get_guest_status", {"vmid": 300})
    assert result.data["node"] == "c2"
    assert result.data["cluster"] == "colo"
    assert result.text.startswith("cluster colo: ")
    assert (await ok(gw, "get_guest_config", {"vmid": 101})).data["node"] == "h2"


async def test_vmid_in_both_clusters_is_a_409_naming_cluster_and_node(
    gw: Gateway, sims: dict[str, Simulator]
) -> None:
    for tool, args in (
        ("get_guest_status", {"vmid": 100}),
        ("execute_vm_command", {"vmid": 100, "command": "start", "confirm": True}),
        ("delete_guest", {"vmid": 100, "confirm": True, "stop": True}),
    ):
        out = await gw.call(tool, args, ADMIN)
        assert out.code == 409, (tool, out.code, out.error)
        assert out.error == (
            "guest 100 exists in several clusters (colo/c1, home/h1); pass cluster to choose one"
        )
    assert writes(sims) == []
    assert not sims["home"].lab.guests[100].running
    assert not sims["colo"].lab.guests[100].running


async def test_a_power_tool_picks_the_cluster_where_the_vmid_is_of_its_type(
    gw: Gateway, sims: dict[str, Simulator]
) -> None:
    """102 is a VM in home and a CT in colo: each power tool acts on its own type's."""
    args = {"vmid": 102, "command": "start", "wait": True}
    await ok(gw, "execute_lxc_command", args)
    assert sims["colo"].lab.guests[102].running
    assert not sims["home"].lab.guests[102].running
    await ok(gw, "execute_vm_command", args)
    assert sims["home"].lab.guests[102].running
    out = await gw.call("execute_vm_command", {"vmid": 301, "command": "start"}, ADMIN)
    assert out.code == 400
    assert out.error == "guest 301 is a container (use the lxc tools)"


async def test_vmid_with_node_picks_the_cluster_of_that_node(
    gw: Gateway, sims: dict[str, Simulator]
) -> None:
    args = {"vmid": 100, "node": "c1", "command": "start", "confirm": True, "wait": True}
    await ok(gw, "execute_vm_command", args)
    assert sims["colo"].lab.guests[100].running
    assert not sims["home"].lab.guests[100].running


async def test_vmid_nowhere_is_not_found_naming_the_clusters(gw: Gateway) -> None:
    out = await gw.call("get_guest_status", {"vmid": 999}, ADMIN)
    assert out.code == 404
    assert out.error == "guest 999 not found in clusters home, colo"


async def test_action_on_a_guest_in_one_cluster_acts_there(
    gw: Gateway, sims: dict[str, Simulator]
) -> None:
    await ok(gw, "execute_vm_command", {"vmid": 300, "command": "start", "wait": True})
    assert sims["colo"].lab.guests[300].running
    assert [w for w in writes(sims) if w[0] == "home"] == []


async def test_action_when_a_cluster_cannot_be_asked_is_refused(
    gw: Gateway, sims: dict[str, Simulator]
) -> None:
    await sims["home"].stop_api()
    out = await gw.call("execute_vm_command", {"vmid": 300, "command": "start"}, ADMIN)
    assert out.code == 409, (out.code, out.error)
    assert "not every cluster could be checked" in (out.error or "")
    assert writes(sims) == []
    # a read goes ahead and finds it
    assert (await ok(gw, "get_guest_status", {"vmid": 300})).data["node"] == "c2"


async def test_node_tools_find_the_cluster_of_the_node(gw: Gateway) -> None:
    assert (await ok(gw, "get_node_status", {"node": "c2"})).data["node"] == "c2"
    result = await ok(gw, "get_vms", {"node": "c2"})
    assert [r["vmid"] for r in result.data["items"]] == [300]
    assert result.data["cluster"] == "colo"
    # the memoized colo answer did not take the resolved call's cluster
    assert "cluster" not in (await ok(gw, "get_vms", {"node": "c2", "cluster": "colo"})).data
    out = await gw.call("get_node_status", {"node": "nowhere"}, ADMIN)
    assert out.code == 404
    assert out.error == "node nowhere is in none of the clusters home, colo"


async def test_task_tools_find_the_cluster_of_the_upid(gw: Gateway) -> None:
    started = await ok(gw, "create_backup", {"vmid": 300})
    upid = started.data["upid"]
    assert ":c2:" in upid
    status = await ok(gw, "get_task_status", {"upid": upid, "wait": True})
    assert status.data["status"]
    assert status.data["cluster"] == "colo"
    assert (await ok(gw, "get_task_log", {"upid": upid})).data["count"] > 0
    gc = await ok(gw, "pbs_start_gc", {"store": "store1", "server": "colo-pbs"})
    pbs_upid = gc.data["upid"]
    args = {"upid": pbs_upid, "server": "colo-pbs"}
    assert (await ok(gw, "get_task_log", args)).data["cluster"] == "colo"
    out = await gw.call("get_task_status", {"upid": pbs_upid}, ADMIN)
    assert out.code == 409
    assert "several clusters (home, colo) have a PBS server" in (out.error or "")


async def test_pbs_tools_find_the_cluster_of_the_server(
    gw: Gateway, sims: dict[str, Simulator]
) -> None:
    result = await ok(gw, "pbs_datastore_status", {"store": "store1", "server": "colo-pbs"})
    assert result.data["store"] == "store1"
    pbs = sims["colo"].lab.pbs
    assert pbs is not None
    snap = pbs.datastores["store1"].snapshots[0]
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(snap.backup_time))
    name = f"{snap.backup_type}/{snap.backup_id}/{stamp}"
    args = {"store": "store1", "snapshot": name, "server": "colo-pbs"}
    assert (await ok(gw, "delete_backup", args)).data["planned"] is True
    await ok(gw, "delete_backup", {**args, "confirm": True})
    assert snap not in pbs.datastores["store1"].snapshots
    out = await gw.call("delete_backup", {"store": "store1", "snapshot": name}, ADMIN)
    assert out.code == 409
    assert "several clusters (home, colo) have a PBS server" in (out.error or "")
    out = await gw.call("pbs_datastore_status", {"store": "store1"}, ADMIN)
    assert out.code == 409
    assert "several clusters (home, colo)" in (out.error or "")


# -- one cluster: nothing changes; RPC: the subject's cluster only -----------------------


async def test_one_cluster_rows_carry_no_cluster_field(sims: dict[str, Simulator]) -> None:
    settings = make_settings(default_cluster="home")
    gateway = Gateway.from_settings(settings, clusters_env({"home": sims["home"]}))
    gateway.start()
    try:
        before = asked(sims["home"], "/cluster/resources")
        result = await ok(gateway, "get_vms", {})
        assert all("cluster" not in r for r in result.data["items"])
        assert result.text.startswith("VMs (3)\n")
        assert asked(sims["home"], "/cluster/resources") == before + 1
        out = await gateway.call("get_guest_status", {"vmid": 300}, ADMIN)
        assert out.error == "guest 300 not found in cluster home"
    finally:
        await gateway.close()


async def test_rpc_on_a_cluster_subject_acts_on_that_cluster_only(
    gw: Gateway, sims: dict[str, Simulator], nats_server: NatsServer, nc: Any
) -> None:
    service = await start_rpc(gw, nc)
    try:
        before = asked(sims["home"], "/cluster/resources")
        colo = await call_tool(nc, "get_vms", {}, timeout=10, cluster="colo")
        assert {r["vmid"] for r in colo["items"]} == {100, 300}
        assert asked(sims["home"], "/cluster/resources") == before
        status = await call_tool(nc, "get_guest_status", {"vmid": 100}, timeout=10, cluster="colo")
        assert status["node"] == "c1"
        with pytest.raises(RpcError) as err:
            await call_tool(nc, "get_guest_status", {"vmid": 101}, timeout=10, cluster="colo")
        assert err.value.code == 404
        both = await call_tool(nc, "get_vms", {}, timeout=10)
        assert {r["cluster"] for r in both["items"]} == {"home", "colo"}
    finally:
        await service.stop()


async def test_the_audit_record_names_the_clusters_a_call_went_to(
    gw: Gateway, caplog: pytest.LogCaptureFixture
) -> None:
    """Arguments stay as sent; ``clusters`` says where a call without one went (absent when
    ``cluster`` was given, as on a one-cluster gateway: those records are unchanged)."""
    caplog.set_level(logging.INFO, logger="proxbus.audit")
    await ok(gw, "get_guest_status", {"vmid": 300})
    await ok(gw, "get_vms", {})
    await ok(gw, "get_vms", {"cluster": "home"})
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("audit ")]
    records = [json.loads(line.removeprefix("audit ")) for line in lines]
    assert [(r["tool"], r["arguments"], r.get("clusters")) for r in records] == [
        ("get_guest_status", {"vmid": 300}, ["colo"]),
        ("get_vms", {}, ["home", "colo"]),
        ("get_vms", {"cluster": "home"}, None),
    ]
    assert "clusters" not in records[2]
