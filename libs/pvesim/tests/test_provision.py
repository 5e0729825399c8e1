"""Guest lifecycle routes: clone, create, restore, destroy, resize, agent, network, backups."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest_asyncio
from proxbus_pvesim.model import GIB
from proxbus_pvesim.simulator import Simulator
from proxbus_pvesim.testing import api_session, run_simulator

API = "/api2/json"
LAB = {
    "cluster": {"name": "lab", "nodes": 2},
    "guests": {
        "qemu": 2,
        "lxc": 1,
        "list": [
            {"vmid": 9000, "name": "tmpl", "node": "pve1", "template": True, "disk": 10},
            {"vmid": 9001, "name": "noagent", "node": "pve1", "agent": False},
        ],
    },
}


@pytest_asyncio.fixture
async def sim() -> AsyncIterator[Simulator]:
    async with run_simulator(LAB, instant=True) as s:
        yield s


async def _json(r: aiohttp.ClientResponse) -> Any:
    return (await r.json())["data"]


async def finished(s: aiohttp.ClientSession, upid: str) -> dict[str, Any]:
    node = upid.split(":")[1]
    async with asyncio.timeout(5):
        while True:
            async with s.get(f"{API}/nodes/{node}/tasks/{upid}/status") as r:
                status = await _json(r)
            if status["status"] == "stopped":
                return dict(status)
            await asyncio.sleep(0.01)


async def test_linked_clone_of_a_template_makes_a_new_stopped_vm(sim: Simulator) -> None:
    async with api_session(sim) as s:
        async with s.post(f"{API}/nodes/pve1/qemu/9000/clone", data={"newid": 120}) as r:
            assert r.status == 200
            upid = await _json(r)
        assert ":qmclone:9000:" in upid
        assert (await finished(s, upid))["exitstatus"] == "OK"
        clone = sim.lab.guests[120]
        assert (clone.name, clone.node, clone.status, clone.lock) == (
            "Copy-of-VM-tmpl",
            "pve1",
            "stopped",
            None,
        )
        assert clone.maxdisk == 10 * GIB
        async with s.get(f"{API}/nodes/pve1/qemu/120/config") as r:
            cfg = await _json(r)
        assert cfg["scsi0"].startswith("local-lvm:base-9000-disk-0/vm-120-disk-0,")
        async with s.post(f"{API}/nodes/pve1/qemu/9000/clone", data={"newid": 120}) as r:
            assert r.status == 500
            assert r.reason == "VM 120 already exists on node 'pve1'"
        async with s.post(
            f"{API}/nodes/pve1/qemu/9000/clone", data={"newid": 121, "storage": "local-lvm"}
        ) as r:
            assert r.reason == "parameter 'storage' not allowed for linked clones"
        async with s.post(
            f"{API}/nodes/pve1/qemu/9000/clone", data={"newid": 121, "target": "pve2"}
        ) as r:
            assert r.reason == "can't clone VM to node 'pve2' (VM uses local storage)"
        async with s.post(f"{API}/nodes/pve1/qemu/9000/clone", data={"newid": 99}) as r:
            assert r.status == 400


async def test_template_with_linked_clones_cannot_be_destroyed(sim: Simulator) -> None:
    async with api_session(sim) as s:
        async with s.post(f"{API}/nodes/pve1/qemu/9000/clone", data={"newid": 130}) as r:
            await finished(s, await _json(r))
        async with s.delete(f"{API}/nodes/pve1/qemu/9000") as r:
            status = await finished(s, await _json(r))
        assert "still in use by linked cloned VM 130" in status["exitstatus"]
        assert 9000 in sim.lab.guests


async def test_create_vm_with_disk_and_iso_then_resize_and_destroy(sim: Simulator) -> None:
    async with api_session(sim) as s:
        data = {
            "vmid": 150,
            "name": "new",
            "memory": 2048,
            "cores": 2,
            "scsi0": "local-lvm:16,iothread=1",
            "net0": "virtio,bridge=vmbr0",
            "ide2": "local:iso/debian-13.1.0-amd64-netinst.iso,media=cdrom",
        }
        async with s.post(f"{API}/nodes/pve2/qemu", data=data) as r:
            assert r.status == 200, r.reason
            assert ":qmcreate:150:" in await _json(r)
            await finished(s, await _json(r))
        g = sim.lab.guests[150]
        assert (g.node, g.maxmem, g.cores, g.maxdisk, g.lock) == (
            "pve2",
            2048 * 1024**2,
            2,
            16 * GIB,
            None,
        )
        async with s.post(f"{API}/nodes/pve2/qemu", data={**data, "scsi0": "local:4"}) as r:
            assert r.reason == "VM 150 already exists on node 'pve2'"
        async with s.post(
            f"{API}/nodes/pve2/qemu", data={**data, "vmid": 151, "scsi0": "local:4"}
        ) as r:
            assert r.reason == "storage 'local' does not support content-type 'images'"

        async with s.put(
            f"{API}/nodes/pve2/qemu/150/resize", data={"disk": "scsi0", "size": "+4G"}
        ) as r:
            assert (await finished(s, await _json(r)))["exitstatus"] == "OK"
        assert sim.lab.guests[150].maxdisk == 20 * GIB
        async with s.put(
            f"{API}/nodes/pve2/qemu/150/resize", data={"disk": "scsi0", "size": "8G"}
        ) as r:
            status = await finished(s, await _json(r))
        assert status["exitstatus"] == "shrinking disks is not supported"

        sim.set_guest_running(g)
        async with s.delete(f"{API}/nodes/pve2/qemu/150") as r:
            assert r.reason == "VM 150 is running - destroy failed"
        sim.set_guest_stopped(g)
        async with s.delete(f"{API}/nodes/pve2/qemu/150", params={"purge": "1"}) as r:
            assert ":qmdestroy:150:" in await _json(r)
            assert (await finished(s, await _json(r)))["exitstatus"] == "OK"
        assert 150 not in sim.lab.guests


async def test_create_container_from_template(sim: Simulator) -> None:
    async with api_session(sim) as s:
        data = {
            "vmid": 160,
            "hostname": "ct160",
            "ostemplate": "local:vztmpl/debian-13-standard_13.1-2_amd64.tar.zst",
            "rootfs": "local-lvm:8",
            "memory": 512,
        }
        async with s.post(f"{API}/nodes/pve1/lxc", data=data) as r:
            assert r.status == 200, r.reason
            await finished(s, await _json(r))
        assert sim.lab.guests[160].kind == "lxc"
        assert sim.lab.guests[160].maxdisk == 8 * GIB
        bad = {**data, "vmid": 161, "ostemplate": "local:vztmpl/nope.tar.zst"}
        async with s.post(f"{API}/nodes/pve1/lxc", data=bad) as r:
            assert r.reason == "volume 'local:vztmpl/nope.tar.zst' does not exist"


async def test_agent_reports_addresses_of_running_vms_only(sim: Simulator) -> None:
    running = next(g for g in sim.lab.guests.values() if g.kind == "qemu" and g.running)
    async with api_session(sim) as s:
        path = f"{API}/nodes/{running.node}/qemu/{running.vmid}/agent/network-get-interfaces"
        async with s.get(path) as r:
            result = (await _json(r))["result"]
        eth0 = next(i for i in result if i["name"] == "eth0")
        assert running.guest_ip() in [a["ip-address"] for a in eth0["ip-addresses"]]
        async with s.get(f"{API}/nodes/pve1/qemu/9000/agent/network-get-interfaces") as r:
            assert r.reason == "VM 9000 is not running"
        async with s.get(f"{API}/nodes/pve1/qemu/9001/agent/network-get-interfaces") as r:
            assert r.reason == "No QEMU guest agent configured"


async def test_backup_restore_and_delete_through_an_encoded_volume_id(sim: Simulator) -> None:
    vm = next(g for g in sim.lab.guests.values() if g.kind == "qemu" and g.vmid < 9000)
    async with api_session(sim) as s:
        async with s.post(
            f"{API}/nodes/{vm.node}/vzdump", data={"vmid": str(vm.vmid), "storage": "local"}
        ) as r:
            await finished(s, await _json(r))
        async with s.get(
            f"{API}/nodes/{vm.node}/storage/local/content", params={"content": "backup"}
        ) as r:
            volid = (await _json(r))[0]["volid"]
        async with s.post(f"{API}/nodes/{vm.node}/qemu", data={"vmid": 170, "archive": volid}) as r:
            assert ":qmrestore:170:" in await _json(r)
            await finished(s, await _json(r))
        restored = sim.lab.guests[170]
        assert (restored.name, restored.maxmem, restored.maxdisk) == (
            vm.name,
            vm.maxmem,
            vm.maxdisk,
        )
        url = f"{API}/nodes/{vm.node}/storage/local/content/{quote(volid, safe='')}"
        async with s.delete(url) as r:
            assert r.status == 200, r.reason
            await finished(s, await _json(r))
        async with s.get(
            f"{API}/nodes/{vm.node}/storage/local/content", params={"content": "backup"}
        ) as r:
            assert volid not in [i["volid"] for i in await _json(r)]


async def test_pbs_snapshot_delete_removes_it_from_the_datastore(sim: Simulator) -> None:
    assert sim.lab.pbs is not None
    ds = sim.lab.pbs.datastores["store1"]
    snap = ds.snapshots[0]
    before = len(ds.snapshots)
    async with api_session(sim, service="PBS") as s:
        params = {
            "backup-type": snap.backup_type,
            "backup-id": snap.backup_id,
            "backup-time": str(snap.backup_time),
        }
        async with s.delete(f"{API}/admin/datastore/store1/snapshots", params=params) as r:
            assert r.status == 200, r.reason
        async with s.delete(f"{API}/admin/datastore/store1/snapshots", params=params) as r:
            assert r.status == 404
    assert len(ds.snapshots) == before - 1


async def test_node_network_lists_the_bridge(sim: Simulator) -> None:
    async with (
        api_session(sim) as s,
        s.get(f"{API}/nodes/pve2/network", params={"type": "bridge"}) as r,
    ):
        items = await _json(r)
    assert [i["iface"] for i in items] == ["vmbr0"]
    assert items[0]["address"] == sim.lab.nodes["pve2"].ip


async def test_pbs_volume_deleted_through_pve_storage_leaves_the_datastore(sim: Simulator) -> None:
    assert sim.lab.pbs is not None
    ds = sim.lab.pbs.datastores["store1"]
    async with api_session(sim) as s:
        async with s.get(f"{API}/nodes/pve1/storage/pbs-store/content") as r:
            volumes = await _json(r)
        vm_backup = next(v for v in volumes if v["format"] == "pbs-vm")
        async with s.post(
            f"{API}/nodes/pve1/qemu", data={"vmid": 180, "archive": vm_backup["volid"]}
        ) as r:
            assert (await finished(s, await _json(r)))["exitstatus"] == "OK"
        assert sim.lab.guests[180].kind == "qemu"
        before = len(ds.snapshots)
        url = f"{API}/nodes/pve1/storage/pbs-store/content/{quote(vm_backup['volid'], safe='')}"
        async with s.delete(url) as r:
            assert (await finished(s, await _json(r)))["exitstatus"] == "OK"
    assert len(ds.snapshots) == before - 1
