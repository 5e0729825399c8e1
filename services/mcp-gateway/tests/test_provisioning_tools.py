"""The provisioning, backup, device and task-control tools against the simulator.

Every path these tools use is served by pvesim only if it is in the official schema with
those parameters (pvesim answers 501 / 400 otherwise), so a passing call is also a schema
check of the request.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from proxbus_mcp_gateway.auth import Caller, parse_scopes
from proxbus_mcp_gateway.gateway import Gateway
from proxbus_mcp_gateway.testing import ADMIN, READER, gateway_on, make_settings, sim_env
from proxbus_pvesim.model import GIB
from proxbus_pvesim.simulator import Simulator
from proxbus_pvesim.testing import run_simulator

OPERATOR = Caller("test-ops", parse_scopes("read+operate"), "test")
LAB: dict[str, Any] = {
    "cluster": {"name": "lab", "nodes": 2},
    "guests": {
        "qemu": 3,
        "lxc": 2,
        "list": [{"vmid": 9000, "name": "tmpl", "node": "pve1", "template": True, "disk": 10}],
    },
}
NEW_TOOLS = {
    "get_next_vmid": ("read", False),
    "clone_guest": ("admin", False),
    "create_vm": ("admin", False),
    "create_container": ("admin", False),
    "delete_guest": ("admin", True),
    "list_storage_content": ("read", False),
    "restore_backup": ("admin", True),
    "delete_backup": ("admin", True),
    "prune_backups": ("admin", True),
    "get_task_log": ("read", False),
    "cancel_task": ("operate", True),
    "get_guest_network": ("read", False),
    "get_guest_disks": ("read", False),
    "resize_guest_disk": ("admin", False),
    "get_node_network": ("read", False),
}


@pytest_asyncio.fixture
async def lab() -> AsyncIterator[tuple[Simulator, Gateway]]:
    async with run_simulator(LAB, instant=True) as sim, gateway_on(sim) as gw:
        yield sim, gw


async def call(gw: Gateway, tool: str, caller: Caller = ADMIN, **args: Any) -> Any:
    out = await gw.call(tool, args, caller)
    return out


def writes(sim: Simulator) -> int:
    return sum(1 for r in sim.request_log if r.method != "GET")


def test_new_tools_carry_scope_annotations_output_schema_and_confirm() -> None:
    from proxbus_mcp_gateway.tools import build_registry

    reg = build_registry()
    for name, (scope, destructive) in NEW_TOOLS.items():
        spec = reg.tools[name]
        assert spec.scope == scope, name
        assert spec.destructive is destructive, name
        assert spec.read_only is (scope == "read"), name
        assert spec.output_schema.get("type") == "object", name
        if destructive:
            assert "confirm" in spec.input_schema()["properties"], name


async def test_next_vmid_and_clone_of_a_template_with_progress(
    lab: tuple[Simulator, Gateway],
) -> None:
    sim, gw = lab
    nxt = await call(gw, "get_next_vmid")
    assert nxt.ok, nxt.error
    expected = min(set(range(100, 10_000)) - set(sim.lab.guests))
    assert nxt.result.data == {"vmid": expected}
    seen: list[Any] = []

    async def progress(done: float, total: float | None, message: str | None) -> None:
        seen.append((done, total, message))

    out = await gw.call(
        "clone_guest", {"vmid": 9000, "name": "web-1", "wait": True}, ADMIN, progress
    )
    assert out.ok, out.error
    assert out.result.data["newid"] == expected
    assert out.result.data["status"] == "ok"
    clone = sim.lab.guests[expected]
    assert (clone.name, clone.node, clone.linked_base, clone.lock) == ("web-1", "pve1", 9000, None)
    assert seen
    assert seen[-1][0] == seen[-1][1]


async def test_create_vm_and_container_then_delete_needs_confirm(
    lab: tuple[Simulator, Gateway],
) -> None:
    sim, gw = lab
    vm = await call(
        gw, "create_vm", node="pve2", vmid=500, name="db-1", memory=1024, disk_gb=20,
        iso="local:iso/debian-13.1.0-amd64-netinst.iso", wait=True,
    )  # fmt: skip
    assert vm.ok, vm.error
    g = sim.lab.guests[500]
    assert (g.node, g.maxmem, g.maxdisk, g.cdrom) == (
        "pve2",
        1024 * 1024**2,
        20 * GIB,
        "local:iso/debian-13.1.0-amd64-netinst.iso",
    )
    ct = await call(
        gw, "create_container", node="pve1", template="local:vztmpl/debian-13-standard_13.1-2_amd64.tar.zst",
        hostname="ct-1", wait=True,
    )  # fmt: skip
    assert ct.ok, ct.error
    assert sim.lab.guests[ct.result.data["vmid"]].kind == "lxc"

    before = writes(sim)
    planned = await call(gw, "delete_guest", vmid=500)
    assert planned.ok, planned.error
    assert planned.result.data["planned"] is True
    assert 500 in sim.lab.guests
    assert writes(sim) == before
    done = await call(gw, "delete_guest", vmid=500, confirm=True, wait=True)
    assert done.ok, done.error
    assert 500 not in sim.lab.guests

    running = next(g for g in sim.lab.guests.values() if g.running)
    refused = await call(gw, "delete_guest", vmid=running.vmid, confirm=True)
    assert refused.code == 409
    assert "stop it first" in refused.error
    assert running.vmid in sim.lab.guests
    planned = await call(gw, "delete_guest", vmid=running.vmid, stop=True)
    assert planned.result.data["effect"].startswith("hard stop now")
    assert sim.lab.guests[running.vmid].running
    stopped_and_gone = await call(
        gw, "delete_guest", vmid=running.vmid, stop=True, confirm=True, wait=True
    )
    assert stopped_and_gone.ok, stopped_and_gone.error
    assert running.vmid not in sim.lab.guests


@pytest.mark.parametrize(
    ("tool", "args"),
    [
        ("create_vm", {"node": "../etc"}),
        ("create_vm", {"node": "pve1", "storage": "local/../x"}),
        ("create_vm", {"node": "pve1", "iso": "local:iso/../../etc/shadow"}),
        ("create_container", {"node": "pve1", "template": "nocolon"}),
        ("list_storage_content", {"storage": "a%2fb"}),
        ("delete_backup", {"volid": "local:backup/../x", "node": "pve1"}),
        ("delete_backup", {"store": "store1", "snapshot": "vm/100/yesterday"}),
        ("prune_backups", {"store": "store1", "group": "vm/100", "keep": "forever=1"}),
        ("resize_guest_disk", {"vmid": 100, "disk": "scsi0;rm", "size": "+1G"}),
        ("resize_guest_disk", {"vmid": 100, "disk": "scsi0", "size": "-1G"}),
        ("get_node_network", {"node": "pve1/../.."}),
    ],
)
async def test_bad_input_is_refused_before_any_request(
    lab: tuple[Simulator, Gateway], tool: str, args: dict[str, Any]
) -> None:
    sim, gw = lab
    before = sim.request_count
    out = await call(gw, tool, **args)
    assert out.code == 400, (out.code, out.error)
    assert sim.request_count == before


async def test_scopes_of_the_new_tools(lab: tuple[Simulator, Gateway]) -> None:
    _, gw = lab
    assert (await call(gw, "clone_guest", OPERATOR, vmid=9000)).code == 403
    assert (await call(gw, "delete_guest", OPERATOR, vmid=100)).code == 403
    assert (
        await call(
            gw,
            "cancel_task",
            READER,
            upid="UPID:pve1:00001234:00000001:65000000:qmstart:100:root@pam:",
        )
    ).code == 403
    assert (await call(gw, "get_next_vmid", READER)).ok


async def test_storage_content_lists_isos_templates_and_backups(
    lab: tuple[Simulator, Gateway],
) -> None:
    sim, gw = lab
    iso = await call(gw, "list_storage_content", storage="local", content="iso")
    assert iso.ok, iso.error
    assert sorted((i["node"], i["volid"]) for i in iso.result.data["items"]) == [
        ("pve1", "local:iso/debian-13.1.0-amd64-netinst.iso"),
        ("pve2", "local:iso/debian-13.1.0-amd64-netinst.iso"),
    ]
    one = await call(gw, "list_storage_content", storage="local", node="pve2", content="vztmpl")
    assert [i["node"] for i in one.result.data["items"]] == ["pve2"]
    backups = await call(gw, "list_storage_content", storage="pbs-store", content="backup")
    assert sim.lab.pbs is not None
    assert backups.result.data["count"] == len(sim.lab.pbs.datastores["store1"].snapshots)


async def test_task_log_and_cancel_of_a_running_task() -> None:
    async with run_simulator(LAB, instant=False, task_seconds=60) as sim:
        gw = Gateway.from_settings(make_settings(), sim_env(sim))
        try:
            vm = next(g for g in sim.lab.guests.values() if g.kind == "qemu" and g.running)
            sim.crash_guest(vm.vmid)
            started = await call(gw, "execute_vm_command", vmid=vm.vmid, command="start")
            assert started.ok, started.error
            upid = started.result.data["upid"]
            before = writes(sim)
            planned = await call(gw, "cancel_task", upid=upid)
            assert planned.result.data["planned"] is True
            assert writes(sim) == before
            assert sim.pve_tasks.get(upid) is not None
            assert sim.pve_tasks.get(upid).running
            done = await call(gw, "cancel_task", upid=upid, confirm=True)
            assert done.ok, done.error
            assert sim.pve_tasks.get(upid).exitstatus == "interrupted by signal"
            log = await call(gw, "get_task_log", upid=upid)
            assert log.ok, log.error
            assert log.result.data["lines"][-1] == "TASK ERROR: interrupted by signal"
            again = await call(gw, "cancel_task", upid=upid, confirm=True)
            assert again.result.data["executed"] is False
        finally:
            await gw.close()


async def test_pbs_task_log_is_read_from_the_backup_server(lab: tuple[Simulator, Gateway]) -> None:
    _, gw = lab
    gc = await call(gw, "pbs_start_gc", store="store1", wait=True)
    assert gc.ok, gc.error
    log = await call(gw, "get_task_log", upid=gc.result.data["upid"])
    assert log.ok, log.error
    assert "Start GC phase1 (mark used chunks)" in log.result.data["lines"]


async def test_restore_and_delete_a_pve_backup_with_plans_first(
    lab: tuple[Simulator, Gateway],
) -> None:
    sim, gw = lab
    vm = next(g for g in sim.lab.guests.values() if g.kind == "qemu" and not g.template)
    assert (await call(gw, "create_backup", vmid=vm.vmid, storage="local", wait=True)).ok
    listed = await call(gw, "list_storage_content", storage="local", node=vm.node, content="backup")
    volid = listed.result.data["items"][0]["volid"]

    before = writes(sim)
    planned = await call(gw, "restore_backup", archive=volid, node=vm.node, vmid=700)
    assert planned.result.data["planned"] is True
    assert 700 not in sim.lab.guests
    restored = await call(
        gw, "restore_backup", archive=volid, node=vm.node, vmid=700, confirm=True, wait=True
    )
    assert restored.ok, restored.error
    assert writes(sim) == before + 1
    assert (sim.lab.guests[700].name, sim.lab.guests[700].maxdisk) == (vm.name, vm.maxdisk)

    planned = await call(gw, "delete_backup", volid=volid, node=vm.node)
    assert planned.result.data["planned"] is True
    assert planned.result.data["current"]["vmid"] == vm.vmid
    deleted = await call(gw, "delete_backup", volid=volid, node=vm.node, confirm=True)
    assert deleted.ok, deleted.error
    again = await call(gw, "list_storage_content", storage="local", node=vm.node, content="backup")
    assert volid not in [i["volid"] for i in again.result.data["items"]]


async def test_pbs_snapshot_delete_and_prune_match_their_plans(
    lab: tuple[Simulator, Gateway],
) -> None:
    sim, gw = lab
    assert sim.lab.pbs is not None
    ds = sim.lab.pbs.datastores["store1"]
    snap = ds.snapshots[0]
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(snap.backup_time))
    name = f"{snap.backup_type}/{snap.backup_id}/{stamp}"
    before = writes(sim)
    planned = await call(gw, "delete_backup", store="store1", snapshot=name)
    assert planned.result.data["planned"] is True
    assert snap in ds.snapshots
    assert writes(sim) == before
    volid = f"pbs-store:backup/{name}"
    listed = await call(gw, "list_storage_content", storage="pbs-store")
    assert volid in [i["volid"] for i in listed.result.data["items"]]
    assert (await call(gw, "delete_backup", store="store1", snapshot=name, confirm=True)).ok
    assert snap not in ds.snapshots
    # the PVE view of the datastore is not served from the read cache afterwards
    listed = await call(gw, "list_storage_content", storage="pbs-store")
    assert volid not in [i["volid"] for i in listed.result.data["items"]]

    group = max(
        {(s.backup_type, s.backup_id) for s in ds.snapshots},
        key=lambda k: sum(1 for s in ds.snapshots if (s.backup_type, s.backup_id) == k),
    )
    members = [s for s in ds.snapshots if (s.backup_type, s.backup_id) == group]
    assert len(members) >= 2
    args = {"store": "store1", "group": f"{group[0]}/{group[1]}", "keep": "last=1"}
    before = len(sim.request_log)
    pruned_plan = await call(gw, "prune_backups", **args)
    assert pruned_plan.ok, pruned_plan.error
    # the plan is PBS's dry-run: one POST .../prune that leaves the datastore as it was
    posts = [r for r in list(sim.request_log)[before:] if r.method != "GET"]
    assert [(r.method, r.path) for r in posts] == [
        ("POST", "/api2/json/admin/datastore/store1/prune")
    ]
    assert [s for s in ds.snapshots if (s.backup_type, s.backup_id) == group] == members
    plan_removes = {i["backup-time"] for i in pruned_plan.result.data["items"] if not i["keep"]}
    assert len(plan_removes) == len(members) - 1
    done = await call(gw, "prune_backups", confirm=True, **args)
    assert done.ok, done.error
    assert done.result.data["removed"] == len(plan_removes)
    left = {s.backup_time for s in ds.snapshots if (s.backup_type, s.backup_id) == group}
    assert left == {max(s.backup_time for s in members)}
    assert not left & plan_removes


async def test_guest_network_disks_resize_and_node_network(
    lab: tuple[Simulator, Gateway],
) -> None:
    sim, gw = lab
    running = next(g for g in sim.lab.guests.values() if g.kind == "qemu" and g.running)
    net = await call(gw, "get_guest_network", vmid=running.vmid)
    assert net.ok, net.error
    assert net.result.data["ip"] == running.guest_ip()
    stopped = sim.lab.guests[9000]
    refused = await call(gw, "get_guest_network", vmid=9000)
    assert not refused.ok
    assert f"VM {stopped.vmid} is not running" in refused.error

    disks = await call(gw, "get_guest_disks", vmid=running.vmid)
    assert disks.ok, disks.error
    root = disks.result.data["items"][0]
    assert (root["disk"], root["bytes"]) == ("scsi0", running.maxdisk)
    grown = await call(
        gw, "resize_guest_disk", vmid=running.vmid, disk="scsi0", size="+2G", wait=True
    )
    assert grown.ok, grown.error
    assert sim.lab.guests[running.vmid].maxdisk == root["bytes"] + 2 * GIB
    shrink = await call(
        gw, "resize_guest_disk", vmid=running.vmid, disk="scsi0", size="1G", wait=True
    )
    assert not shrink.ok
    assert "shrinking disks is not supported" in shrink.error

    nodenet = await call(gw, "get_node_network", node="pve2", type="bridge")
    assert nodenet.ok, nodenet.error
    assert nodenet.result.data["items"][0]["address"] == sim.lab.nodes["pve2"].ip


async def test_local_storage_is_listed_on_every_node_and_backups_found_without_node(
    lab: tuple[Simulator, Gateway],
) -> None:
    sim, gw = lab
    vms = {}
    for g in sim.lab.guests.values():
        if g.kind == "qemu" and not g.template:
            vms.setdefault(g.node, g)
    assert set(vms) == {"pve1", "pve2"}
    for g in vms.values():
        assert (await call(gw, "create_backup", vmid=g.vmid, storage="local", wait=True)).ok
    listed = await call(gw, "list_storage_content", storage="local", content="backup")
    assert listed.ok, listed.error
    where = {i["vmid"]: i["node"] for i in listed.result.data["items"]}
    assert where == {g.vmid: node for node, g in vms.items()}
    on_pve2 = next(i["volid"] for i in listed.result.data["items"] if i["node"] == "pve2")
    planned = await call(gw, "restore_backup", archive=on_pve2)
    assert planned.ok, planned.error
    assert planned.result.data["target"].endswith("on pve2")
