"""Fidelity of the routes the gateway's dedicated tools use (issue 17 audit).

Each case is what real Proxmox does, with the source it follows.
"""

from __future__ import annotations

from typing import Any

import pytest
from proxbus_pvesim.simulator import Simulator
from proxbus_pvesim.testing import api_session, run_simulator

LAB: dict[str, Any] = {
    "cluster": {"name": "lab", "nodes": 2},
    "guests": {
        "qemu": 0,
        "lxc": 0,
        "list": [
            {"vmid": 100, "type": "qemu", "name": "web1", "node": "pve1", "status": "stopped"},
            {"vmid": 200, "type": "lxc", "name": "ct1", "node": "pve1", "status": "stopped"},
        ],
    },
    "task_seconds": {"default": 120},
}


async def _post(s: Any, path: str, data: dict[str, Any]) -> tuple[int, Any]:
    async with s.post(f"/api2/json{path}", data=data) as r:
        return r.status, await r.json()


async def _delete_task(s: Any, upid: str) -> None:
    async with s.delete(f"/api2/json/nodes/pve1/tasks/{upid}") as r:
        assert r.status == 200, await r.text()


@pytest.mark.parametrize(
    ("path", "data", "kind"),
    [
        ("/nodes/pve1/vzdump", {"vmid": "100", "storage": "local"}, "backup"),
        ("/nodes/pve1/qemu/100/migrate", {"target": "pve2"}, "migrate"),
    ],
)
async def test_an_interrupted_task_leaves_no_lock(
    path: str, data: dict[str, Any], kind: str
) -> None:
    """vzdump unlocks the guest in its cleanup also when the task dies (pve-manager
    PVE/VZDump.pm ``exec_backup_task``: ``$cleanup->{unlock}`` then ``unlock_vm``); a failed
    or interrupted migration removes its lock (qemu-server PVE/QemuMigrate.pm / pve-guest-common
    AbstractMigrate.pm: ``remove_lock($vmid, 'migrate')`` on error). Otherwise every later
    action on the guest answers "VM is locked"."""
    async with run_simulator(LAB, instant=False) as sim, api_session(sim) as s:
        status, body = await _post(s, path, data)
        assert status == 200, body
        assert sim.lab.guests[100].lock == kind
        await _delete_task(s, body["data"])
        assert sim.pve_tasks.get(body["data"]).exitstatus == "interrupted by signal"
        assert sim.lab.guests[100].lock is None


@pytest.mark.parametrize(
    ("path", "key"),
    [
        ("/nodes/pve1/qemu/100/clone", "name"),
        ("/nodes/pve1/lxc/200/clone", "hostname"),
        ("/nodes/pve1/qemu", "name"),
        ("/nodes/pve1/lxc", "hostname"),
    ],
)
@pytest.mark.parametrize("bad", ["my vm", "web_1", "-web", "web.", "web..lab"])
async def test_guest_names_must_be_dns_names(
    pvesim: Simulator, path: str, key: str, bad: str
) -> None:
    """``name`` / ``hostname`` have ``format: dns-name`` in the official schema; PVE checks it
    with ``pve_verify_dns_name`` (pve-common src/PVE/JSONSchema.pm: labels of
    ``[a-zA-Z0-9]([a-zA-Z0-9\\-]*[a-zA-Z0-9])?`` joined by dots) and answers 400 with
    "value does not look like a valid DNS name"."""
    data: dict[str, Any] = {key: bad}
    if path.endswith("/clone"):
        data["newid"] = 900
    else:
        data["vmid"] = 900
        if path.endswith("/lxc"):
            data["ostemplate"] = "local:vztmpl/debian-13-standard_13.1-2_amd64.tar.zst"
    before = set(pvesim.lab.guests)
    async with api_session(pvesim) as s:
        status, body = await _post(s, path, data)
    assert status == 400, body
    assert body["errors"] == {key: "invalid format - value does not look like a valid DNS name\n"}
    assert set(pvesim.lab.guests) == before


async def test_good_dns_names_are_accepted(pvesim: Simulator) -> None:
    async with api_session(pvesim) as s:
        status, body = await _post(
            s, "/nodes/pve1/qemu/100/clone", {"newid": 901, "name": "web-2.lab.example"}
        )
    assert status == 200, body


async def test_vmid_format_error_reads_like_pve(pvesim: Simulator) -> None:
    async with (
        api_session(pvesim) as s,
        s.get("/api2/json/cluster/nextid", params={"vmid": "5"}) as r,
    ):
        assert r.status == 400
        body = await r.json()
    assert body["errors"] == {"vmid": "invalid format - value does not look like a valid VM ID\n"}


async def test_container_without_rootfs_gets_four_gib_on_the_default_storage(
    pvesim: Simulator,
) -> None:
    """pve-container src/PVE/API2/LXC.pm create_vm: no rootfs → ``"$storage:4"``."""
    data = {"vmid": 901, "ostemplate": "local:vztmpl/debian-13-standard_13.1-2_amd64.tar.zst"}
    async with api_session(pvesim) as s:
        status, body = await _post(s, "/nodes/pve1/lxc", {**data, "storage": "local-lvm"})
    assert status == 200, body
    assert pvesim.lab.guests[901].maxdisk == 4 * 1024**3


async def test_file_backups_carry_their_subtype_and_a_tgz_restores_as_a_container() -> None:
    """pve-storage Plugin.pm lists dump files with ``subtype`` (``archive_info`` type); legacy
    ``.tgz`` container dumps (format ``tgz``) restore through ``POST /nodes/{node}/lxc``."""
    async with run_simulator(LAB, instant=True) as sim, api_session(sim) as s:
        status, body = await _post(s, "/nodes/pve1/vzdump", {"vmid": "200", "storage": "local"})
        assert status == 200, body
        async with s.get(
            "/api2/json/nodes/pve1/storage/local/content", params={"content": "backup"}
        ) as r:
            items = (await r.json())["data"]
        assert [(i["subtype"], i["format"]) for i in items] == [("lxc", "tar.zst")]
        # the same dump as an older host names it (vzdump-lxc-200-....tgz)
        legacy = dict(items[0], volid=items[0]["volid"].replace(".tar.zst", ".tgz"), format="tgz")
        del legacy["subtype"]
        sim.backup_files[("local", "pve1")].append(legacy)
        sim.backup_sources[legacy["volid"]] = sim.backup_sources[items[0]["volid"]]
        status, body = await _post(
            s, "/nodes/pve1/lxc", {"vmid": 902, "ostemplate": legacy["volid"], "restore": 1}
        )
        assert status == 200, body
        status, body = await _post(s, "/nodes/pve1/qemu", {"vmid": 903, "archive": legacy["volid"]})
        assert status == 500
        assert sim.lab.guests[902].kind == "lxc"
        assert 903 not in sim.lab.guests


@pytest.mark.parametrize(
    ("data", "key", "reason"),
    [
        ({"scsi0": "local-lvm:32,iothread=maybe"}, "scsi0", "scsi0.iothread: type check"),
        (
            {"scsi0": "local-lvm:32,turbo=1"},
            "scsi0",
            "invalid key in comma-separated list property: turbo",
        ),
        ({"net0": "virtio,bridge=vmbr0,bridge=vmbr1"}, "net0", "duplicate key"),
        (
            {"net0": "rtl9999,bridge=vmbr0"},
            "net0",
            "net0.model: value 'rtl9999' does not have a value",
        ),
        (
            {"net0": "bridge=vmbr0,tag=5000"},
            "net0",
            "net0.tag: value must have a maximum value of 4094",
        ),
        (
            {"memory": "current=8"},
            "memory",
            "memory.current: value must have a minimum value of 16",
        ),
        ({"agent": "enabled=1,fs=1"}, "agent", "invalid key in comma-separated list property: fs"),
        ({"ide2": "media=cdrom"}, "ide2", "ide2.file: property is missing and it is not optional"),
    ],
)
async def test_property_strings_are_checked_like_pve(
    pvesim: Simulator, data: dict[str, Any], key: str, reason: str
) -> None:
    """Property-string parameters (``format`` is a hash in the schema) go through pve-common
    ``parse_property_string``: unknown/duplicate keys, bad values and missing default keys
    are a 400 ``invalid format - ...`` for that parameter; nothing is created."""
    async with api_session(pvesim) as s:
        status, body = await _post(s, "/nodes/pve1/qemu", {"vmid": 910, **data})
    assert status == 400, body
    assert list(body["errors"]) == [key]
    assert body["errors"][key].startswith("invalid format - ")
    assert reason in body["errors"][key]
    assert 910 not in pvesim.lab.guests


async def test_what_the_gateway_tools_send_parses(pvesim: Simulator) -> None:
    """The property strings of create_vm / create_container (and the web UI's) are valid."""
    vm = {
        "vmid": 911, "memory": "2048", "cores": 2, "scsihw": "virtio-scsi-single",
        "scsi0": "local-lvm:32,iothread=1", "net0": "virtio,bridge=vmbr0", "agent": "1",
        "ostype": "l26", "ide2": "local:iso/debian-13.1.0-amd64-netinst.iso,media=cdrom",
    }  # fmt: skip
    ct = {
        "vmid": 912, "ostemplate": "local:vztmpl/debian-13-standard_13.1-2_amd64.tar.zst",
        "memory": 512, "cores": 1, "rootfs": "local-lvm:8",
        "net0": "name=eth0,bridge=vmbr0,ip=dhcp", "unprivileged": 1,
    }  # fmt: skip
    async with api_session(pvesim) as s:
        assert (await _post(s, "/nodes/pve1/qemu", vm))[0] == 200
        assert (await _post(s, "/nodes/pve1/lxc", ct))[0] == 200


async def test_a_parameter_that_requires_another_is_refused_alone(pvesim: Simulator) -> None:
    """``force`` on ``POST /nodes/{node}/qemu`` has ``requires: archive`` (JSONSchema.pm
    check_object: "missing property - 'force' requires this property")."""
    async with api_session(pvesim) as s:
        status, body = await _post(s, "/nodes/pve1/qemu", {"vmid": 913, "force": 1})
    assert status == 400, body
    assert body["errors"] == {"archive": "missing property - 'force' requires this property"}


@pytest.mark.parametrize("encoded", [False, True])
async def test_a_volume_id_may_keep_its_slash_in_the_path(encoded: bool) -> None:
    """pve-manager PVE/API2/Storage/Status.pm mounts Content with ``fragmentDelimiter => ''``
    ("volume IDs may contain a slash '/'"): ``.../content/local:backup/vzdump-...`` reaches
    ``{volume}`` whole, as proxmoxer sends it; the percent-encoded form works too."""
    async with run_simulator(LAB, instant=True) as sim, api_session(sim) as s:
        status, body = await _post(s, "/nodes/pve1/vzdump", {"vmid": "100", "storage": "local"})
        assert status == 200, body
        volid = sim.backup_files[("local", "pve1")][0]["volid"]
        path = volid.replace(":", "%3A").replace("/", "%2F") if encoded else volid
        async with s.delete(f"/api2/json/nodes/pve1/storage/local/content/{path}") as r:
            assert r.status == 200, await r.text()
        assert sim.backup_files[("local", "pve1")] == []


@pytest.mark.parametrize("unique", [False, True])
async def test_a_restore_keeps_the_mac_address_unless_unique(unique: bool) -> None:
    """The restored config carries the backup's MAC addresses; ``unique`` ("Assign a unique
    random ethernet address", requires archive/restore) makes new ones."""
    async with run_simulator(LAB, instant=True) as sim, api_session(sim) as s:
        assert (await _post(s, "/nodes/pve1/vzdump", {"vmid": "100", "storage": "local"}))[0] == 200
        volid = sim.backup_files[("local", "pve1")][0]["volid"]
        data: dict[str, Any] = {"vmid": 920, "archive": volid}
        if unique:
            data["unique"] = 1
        status, body = await _post(s, "/nodes/pve1/qemu", data)
        assert status == 200, body
        same = sim.lab.guests[920].mac == sim.lab.guests[100].mac
        assert same is not unique


async def test_pbs_errors_are_plain_text_like_proxmox_backup() -> None:
    """proxmox-rest-server formatter.rs ``json_format_error``: the body is the error's text
    (``err.to_string()``), the status line keeps its standard phrase; parameter errors read
    as proxmox-schema's ``ParameterError`` ("parameter verification errors ... parameter
    'x': ..."). PVE keeps its JSON ``errors`` map and the reason in the status line."""
    async with run_simulator(LAB, instant=True) as sim, api_session(sim, service="PBS") as s:
        assert sim.lab.pbs is not None
        snap = sim.lab.pbs.datastores["store1"].snapshots[0]
        snap.protected = True
        params = {
            "backup-type": snap.backup_type,
            "backup-id": snap.backup_id,
            "backup-time": str(snap.backup_time),
        }
        async with s.delete("/api2/json/admin/datastore/store1/snapshots", params=params) as r:
            assert (r.status, r.reason) == (400, "Bad Request")
            assert (await r.text()) == "cannot remove protected snapshot"
        async with s.get("/api2/json/admin/datastore/store1/snapshots", params={"frob": "1"}) as r:
            assert (r.status, r.reason) == (400, "Bad Request")
            text = await r.text()
        assert text.startswith("parameter verification errors\n\n")
        assert "parameter 'frob': " in text
