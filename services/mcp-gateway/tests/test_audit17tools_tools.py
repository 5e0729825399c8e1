"""The dedicated tools of issue 17 under review: annotations, Proxmox semantics, secrets and
hostile input, against the simulator over HTTPS (issue 17 audit)."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from mcp.client.session import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from proxbus_mcp_gateway.gateway import Gateway
from proxbus_mcp_gateway.testing import (
    ADMIN,
    ADMIN_SECRET,
    TOKENS,
    gateway_on,
    make_settings,
    serve,
    sim_env,
)
from proxbus_pvesim.simulator import Simulator
from proxbus_pvesim.testing import run_simulator

LAB: dict[str, Any] = {
    "cluster": {"name": "lab", "nodes": 2},
    "guests": {
        "qemu": 0,
        "lxc": 0,
        "list": [
            {"vmid": 100, "type": "qemu", "name": "web1", "node": "pve1", "status": "running"},
            {"vmid": 200, "type": "lxc", "name": "ct1", "node": "pve1", "status": "stopped"},
            {"vmid": 9000, "type": "qemu", "name": "tmpl", "node": "pve1", "template": True},
        ],
    },
}
VZTMPL = "local:vztmpl/debian-13-standard_13.1-2_amd64.tar.zst"

# The 14 tools issue 17 names (delete_guest beside them): (readOnly, destructive, idempotent).
# MCP spec ToolAnnotations: idempotentHint = "calling the tool repeatedly with the same
# arguments will have no additional effect on its environment"; destructiveHint = "may
# perform destructive updates" (creating something new is additive, not destructive).
ANNOTATIONS = {
    "clone_guest": (False, False, False),  # without newid every call makes another clone
    "create_vm": (False, False, False),
    "create_container": (False, False, False),
    "list_storage_content": (True, False, True),
    "get_task_log": (True, False, True),
    "cancel_task": (False, True, True),
    "restore_backup": (False, True, False),  # without vmid: a new guest per call
    "delete_backup": (False, True, True),  # a second delete finds nothing to delete
    "prune_backups": (False, True, True),  # a second prune with the same keep removes nothing
    "get_guest_network": (True, False, True),
    "get_guest_disks": (True, False, True),
    "resize_guest_disk": (False, False, False),  # "+1G" grows again on every call
    "get_node_network": (True, False, True),
    "get_next_vmid": (True, False, True),
    "delete_guest": (False, True, True),
}


@pytest_asyncio.fixture
async def lab() -> AsyncIterator[tuple[Simulator, Gateway]]:
    async with (
        run_simulator(LAB, instant=True) as sim,
        gateway_on(sim, gateway_tokens=TOKENS) as gw,
    ):
        yield sim, gw


async def call(gw: Gateway, tool: str, **args: Any) -> Any:
    return await gw.call(tool, args, ADMIN)


async def test_annotations_of_the_new_tools_as_the_official_client_sees_them(
    lab: tuple[Simulator, Gateway],
) -> None:
    _, gw = lab
    async with (
        serve(gw) as http,
        create_mcp_http_client(headers={"Authorization": f"Bearer {ADMIN_SECRET}"}) as client,
        streamable_http_client(f"{http.url}/mcp", http_client=client) as (r, w),
        ClientSession(r, w) as session,
    ):
        await session.initialize()
        tools = {t.name: t for t in (await session.list_tools()).tools}
    for name, (read_only, destructive, idempotent) in ANNOTATIONS.items():
        t = tools[name]
        a = t.annotations
        assert a is not None, name
        assert (a.read_only_hint, a.destructive_hint, a.idempotent_hint) == (
            read_only,
            destructive,
            idempotent,
        ), name
        assert a.open_world_hint is True, name  # they all talk to Proxmox
        if name in ("clone_guest", "create_vm", "create_container", "resize_guest_disk"):
            # a task starter says what comes back: the task handle and its state
            assert {"upid", "status"} <= set(t.output_schema.get("required", [])), name
        assert t.output_schema is not None, name
        assert t.title, name
        props = t.input_schema["properties"]
        assert ("confirm" in props) is destructive, name
        # what an agent reads: no internal jargon, and it says what comes back
        for jargon in ("pvesim", "proxbus", "upstream", "request_all", "TODO"):
            assert jargon.lower() not in (t.description or "").lower(), (name, jargon)


async def test_a_legacy_tgz_container_dump_restores_as_a_container(
    lab: tuple[Simulator, Gateway],
) -> None:
    """pve-storage Plugin.pm lists ``.tgz`` dumps with format ``tgz`` (BACKUP_EXT_RE_2) and
    ``subtype`` from ``archive_info``: a container dump is restored with ``POST
    /nodes/{node}/lxc`` (``ostemplate`` + ``restore``), never as a VM archive."""
    sim, gw = lab
    assert (await call(gw, "create_backup", vmid=200, storage="local", wait=True)).ok
    item = sim.backup_files[("local", "pve1")][0]
    legacy = dict(item, volid=item["volid"].replace(".tar.zst", ".tgz"), format="tgz")
    del legacy["subtype"]  # as an older PVE lists it
    sim.backup_files[("local", "pve1")].append(legacy)
    sim.backup_sources[legacy["volid"]] = sim.backup_sources[item["volid"]]
    for volid in (item["volid"], legacy["volid"]):
        planned = await call(gw, "restore_backup", archive=volid)
        assert planned.ok, planned.error
        assert planned.result.data["target"].startswith("CT "), planned.result.data
    done = await call(
        gw, "restore_backup", archive=legacy["volid"], vmid=777, confirm=True, wait=True
    )
    assert done.ok, done.error
    assert sim.lab.guests[777].kind == "lxc"


@pytest.mark.parametrize(
    ("tool", "args"),
    [
        ("clone_guest", {"vmid": 9000, "name": "my clone"}),
        ("clone_guest", {"vmid": 9000, "name": "web_1"}),
        ("create_vm", {"node": "pve1", "name": "-db"}),
        ("create_container", {"node": "pve1", "template": VZTMPL, "hostname": "ct..lab"}),
    ],
)
async def test_guest_names_that_are_not_dns_names_never_reach_proxmox(
    lab: tuple[Simulator, Gateway], tool: str, args: dict[str, Any]
) -> None:
    """``name``/``hostname`` are ``format: dns-name`` (pve-common JSONSchema.pm
    ``pve_verify_dns_name``): the tool says so itself instead of sending the request."""
    sim, gw = lab
    before = sim.request_count
    out = await call(gw, tool, **args)
    assert out.code == 400, (out.code, out.error)
    assert "DNS name" in out.error
    assert sim.request_count == before


@pytest.mark.parametrize(
    ("tool", "args"),
    [
        ("create_vm", {"node": "pve1", "iso": "local:/etc/passwd"}),
        ("create_container", {"node": "pve1", "template": "local:/var/lib/vz/x.tar.zst"}),
        ("restore_backup", {"archive": "local:/var/lib/vz/dump/vzdump-qemu-100.vma"}),
        ("delete_backup", {"volid": "local:/etc/shadow"}),
        ("delete_backup", {"volid": "local:backup/../../etc/shadow"}),
        ("delete_backup", {"volid": "/var/lib/vz/dump/vzdump-qemu-100.vma"}),
        ("delete_backup", {"store": "store1", "snapshot": "vm/100/2025-01-31T02:00:00Z/../x"}),
        ("delete_backup", {"store": "store1", "snapshot": "../vm/100/2025-01-31T02:00:00Z"}),
        ("delete_backup", {"store": "store1", "snapshot": "vm/100/2025-13-45T99:00:00Z"}),
        ("delete_backup", {"store": "../store1", "snapshot": "vm/100/2025-01-31T02:00:00Z"}),
        ("prune_backups", {"store": "store1", "group": "vm/../100", "keep": "last=1"}),
        ("prune_backups", {"store": "store1", "group": "vm/100", "keep": "last=0"}),
        ("list_storage_content", {"storage": "../local"}),
        ("get_guest_disks", {"vmid": 99}),
        ("get_guest_disks", {"vmid": 1_000_000_000}),
        ("get_guest_disks", {"vmid": "100/../101"}),
        ("get_node_network", {"node": "-pve1"}),
        ("get_task_log", {"upid": "UPID:pve1:../../../../etc/passwd:x:y:z:"}),
        ("cancel_task", {"upid": "UPID:pve1:00001234:00000001:65000000:qmstart:100:root@pam:/x"}),
        ("resize_guest_disk", {"vmid": 100, "disk": "scsi0", "size": "+1P"}),
        ("get_next_vmid", {"node": "pve1/../x"}),
    ],
)
async def test_hostile_input_is_a_clear_error_without_a_request(
    lab: tuple[Simulator, Gateway], tool: str, args: dict[str, Any]
) -> None:
    sim, gw = lab
    before = sim.request_count
    out = await call(gw, tool, **args)
    assert not out.ok, out.result
    assert out.code == 400, (out.code, out.error)
    assert out.error
    assert "Traceback" not in out.error
    assert len(out.error) < 600
    assert sim.request_count == before


async def test_unknown_node_storage_and_snapshot_are_clear_errors(
    lab: tuple[Simulator, Gateway],
) -> None:
    _, gw = lab
    for tool, args, expected in [
        ("get_node_network", {"node": "pve9"}, "pve9"),
        ("get_next_vmid", {"node": "pve9"}, "pve9"),
        ("create_vm", {"node": "pve9"}, "pve9"),
        ("list_storage_content", {"storage": "nosuch"}, "nosuch"),
        ("restore_backup", {"archive": "nosuch:backup/vzdump-qemu-100.vma.zst"}, "nosuch"),
        ("delete_backup", {"store": "store1", "snapshot": "vm/100/2001-01-01T00:00:00Z"}, "no snapshot"),
        ("prune_backups", {"store": "nosuch", "group": "vm/100", "keep": "last=1"}, "nosuch"),
        ("get_guest_disks", {"vmid": 4242}, "4242"),
        ("resize_guest_disk", {"vmid": 200, "disk": "scsi0", "size": "+1G"}, "scsi0"),
    ]:  # fmt: skip
        out = await call(gw, tool, **args)
        assert not out.ok, (tool, out.result)
        assert expected in out.error, (tool, out.error)
        assert "Traceback" not in out.error


@pytest.mark.parametrize(
    "args",
    [
        {"vmid": 100, "node": "x" * 1_000_000},
        {"vmid": 100, "disk": "scsi0", "size": "+1G", "node": {"a": {"b": {"c": [1, [2, [3]]]}}}},
        {"vmid": json.loads("[" * 150 + "]" * 150)},
        {"vmid": 100, **{f"extra{i}": i for i in range(2000)}},
    ],
)
async def test_huge_and_deeply_nested_arguments_are_refused(
    lab: tuple[Simulator, Gateway], args: dict[str, Any]
) -> None:
    sim, gw = lab
    before = sim.request_count
    out = await gw.call("resize_guest_disk", args, ADMIN)
    assert out.code == 400, (out.code, out.error)
    assert len(out.error) < 2000, len(out.error)
    assert sim.request_count == before


async def test_proxmox_api_plan_and_audit_never_echo_a_password(
    lab: tuple[Simulator, Gateway],
) -> None:
    """A plan shows what would be sent; a password given for a container or cloud-init is
    masked there (text and structured content), as get_guest_config masks cipassword."""
    _, gw = lab
    secret = "hunter2-very-secret"
    for path, params in [
        ("/nodes/pve1/lxc", {"vmid": 901, "ostemplate": VZTMPL, "password": secret}),
        ("/nodes/pve1/qemu/100/config", {"cipassword": secret}),
    ]:
        method = "POST" if path.endswith("lxc") else "PUT"
        out = await call(gw, "proxmox_api", method=method, path=path, params=params)
        assert out.ok, out.error
        assert out.result.data["planned"] is True
        assert secret not in out.result.text
        assert secret not in json.dumps(out.result.data)


def test_tools_list_with_every_tool_stays_under_40_kb() -> None:
    """The worst case: every registered tool listed (NATS up, admin, not READ_ONLY), in the
    compact JSON a server sends."""
    from proxbus_mcp_gateway.mcp_server import tool_definition
    from proxbus_mcp_gateway.tools import build_registry

    tools = [tool_definition(s) for s in build_registry().tools.values()]
    payload = json.dumps(
        {"tools": [t.model_dump(mode="json", by_alias=True, exclude_none=True) for t in tools]},
        separators=(",", ":"),
    )
    assert len(tools) >= 49
    assert len(payload) < 40_000, len(payload)


async def test_clone_to_another_storage_is_a_full_clone(lab: tuple[Simulator, Gateway]) -> None:
    """qemu-server ``clone_vm`` / pve-container ``clone_vm``: ``full`` defaults to "not a
    template", and "parameter 'storage' not allowed for linked clones": a template cloned to
    a named storage must be a full clone (as the web UI does), and full=false with a storage
    is refused before any request."""
    sim, gw = lab
    out = await call(gw, "clone_guest", vmid=9000, newid=400, storage="local-lvm", wait=True)
    assert out.ok, out.error
    assert sim.lab.guests[400].linked_base is None
    before = sim.request_count
    refused = await call(gw, "clone_guest", vmid=9000, newid=401, storage="local-lvm", full=False)
    assert refused.code == 400, refused.error
    assert "full" in refused.error
    assert 401 not in sim.lab.guests
    assert sim.request_count == before


async def test_a_running_pbs_task_log_and_cancel() -> None:
    """PBS tasks live under ``/nodes/localhost/tasks/{upid}`` (proxmox-backup
    src/api2/node/tasks.rs): status, log and DELETE to stop, like PVE's."""
    async with run_simulator(LAB, instant=False, task_seconds=60) as sim:
        gw = Gateway.from_settings(make_settings(), sim_env(sim))
        gw.start()
        try:
            started = await call(gw, "pbs_start_gc", store="store1")
            assert started.ok, started.error
            upid = started.result.data["upid"]
            log = await call(gw, "get_task_log", upid=upid)
            assert log.ok, log.error
            assert log.result.data["status"] == "running"
            planned = await call(gw, "cancel_task", upid=upid)
            assert planned.result.data["planned"] is True
            assert sim.pbs_tasks.get(upid).running
            done = await call(gw, "cancel_task", upid=upid, confirm=True)
            assert done.ok, done.error
            assert not sim.pbs_tasks.get(upid).running
            after = await call(gw, "get_task_log", upid=upid)
            assert after.result.data["status"] == "stopped"
            assert after.result.data["exitstatus"] != "OK"
        finally:
            await gw.close()


async def test_restore_onto_an_existing_guest_is_refused_in_the_plan(
    lab: tuple[Simulator, Gateway],
) -> None:
    """qemu-server create_vm with ``archive`` refuses an existing vmid without ``force`` and a
    running guest with it; a container backup cannot replace a VM. The plan says so instead of
    promising a restore that Proxmox will refuse."""
    sim, gw = lab
    assert (await call(gw, "create_backup", vmid=100, storage="local", wait=True)).ok
    volid = sim.backup_files[("local", "pve1")][0]["volid"]
    before = sim.request_count
    for args, expected in [
        ({"vmid": 100}, "force=true"),
        ({"vmid": 100, "force": True}, "running"),
        ({"vmid": 200, "force": True}, "not a VM"),
    ]:
        out = await call(gw, "restore_backup", archive=volid, **args)
        assert out.code == 409, (args, out.code, out.error)
        assert expected in out.error, out.error
    assert all(r.method == "GET" for r in list(sim.request_log)[-(sim.request_count - before) :])
    ok = await call(gw, "restore_backup", archive=volid, vmid=101)
    assert ok.ok, ok.error
    assert ok.result.data["planned"] is True


async def test_a_protected_backup_is_not_planned_for_deletion(
    lab: tuple[Simulator, Gateway],
) -> None:
    """proxmox-backup refuses to remove a protected snapshot: the tool says so up front."""
    sim, gw = lab
    assert sim.lab.pbs is not None
    snap = sim.lab.pbs.datastores["store1"].snapshots[0]
    snap.protected = True
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(snap.backup_time))
    name = f"{snap.backup_type}/{snap.backup_id}/{stamp}"
    for args in ({"store": "store1", "snapshot": name}, {"volid": f"pbs-store:backup/{name}"}):
        out = await call(gw, "delete_backup", confirm=True, **args)
        assert out.code == 409, (args, out.code, out.error)
        assert "protected" in out.error
    assert snap in sim.lab.pbs.datastores["store1"].snapshots


async def test_ssh_keys_of_every_openssh_type_are_accepted(lab: tuple[Simulator, Gateway]) -> None:
    """OpenSSH public key types include the FIDO ``sk-`` ones (sshd(8) AUTHORIZED_KEYS)."""
    sim, gw = lab
    key = "sk-ssh-ed25519@openssh.com AAAAGnNrLXNzaC1lZDI1NTE5QG9wZW5zc2guY29tAAAAIA== me@host"
    out = await call(
        gw, "create_container", node="pve1", template=VZTMPL, ssh_key=key, storage="local-lvm"
    )
    assert out.ok, out.error
    assert sim.lab.guests[out.result.data["vmid"]].kind == "lxc"
    bad = await call(gw, "create_container", node="pve1", template=VZTMPL, ssh_key="hello")
    assert bad.code == 400


async def test_storage_content_is_bounded_by_a_limit(lab: tuple[Simulator, Gateway]) -> None:
    """A backup storage can hold thousands of volumes: the answer is the newest ``limit``
    (default 200) with the total, not every volume in one message."""
    sim, gw = lab
    for _ in range(3):
        assert (await call(gw, "create_backup", vmid=100, storage="local", wait=True)).ok
    out = await call(gw, "list_storage_content", storage="local", node="pve1", limit=2)
    assert out.ok, out.error
    data = out.result.data
    total = len(sim.storage_volumes(sim.lab.storages["local"], "pve1"))
    assert (data["count"], data["total"]) == (2, total)
    assert "raise limit" in out.result.text
    everything = await call(gw, "list_storage_content", storage="local", node="pve1")
    assert everything.result.data["count"] == total
    assert (await call(gw, "list_storage_content", storage="local", limit=0)).code == 400


async def test_container_addresses_without_an_agent(lab: tuple[Simulator, Gateway]) -> None:
    """Containers have no guest agent: their addresses come from ``GET
    /nodes/{node}/lxc/{vmid}/interfaces`` (pve-container src/PVE/LXC.pm ``get_interfaces``,
    null while the container is stopped)."""
    sim, gw = lab
    stopped = await call(gw, "get_guest_network", vmid=200)
    assert stopped.code == 409, (stopped.code, stopped.error)
    assert "not running" in stopped.error
    assert (await call(gw, "execute_lxc_command", vmid=200, command="start", wait=True)).ok
    out = await call(gw, "get_guest_network", vmid=200)
    assert out.ok, out.error
    assert out.result.data["ip"] == sim.lab.guests[200].guest_ip()
    eth0 = next(i for i in out.result.data["items"] if i["name"] == "eth0")
    assert eth0["mac"] == sim.lab.guests[200].mac.lower()
    assert eth0["ipv6"]


async def test_a_restored_copy_gets_new_mac_addresses(lab: tuple[Simulator, Gateway]) -> None:
    """A restore keeps the backup's MACs unless ``unique`` (qemu-server create_vm: "Assign a
    unique random ethernet address"): a copy beside the running original must not share its
    MAC; a restore over the original (force) keeps it."""
    sim, gw = lab
    assert (await call(gw, "create_backup", vmid=100, storage="local", wait=True)).ok
    volid = sim.backup_files[("local", "pve1")][0]["volid"]
    original = sim.lab.guests[100].mac
    plan = await call(gw, "restore_backup", archive=volid, vmid=300)
    assert "new MAC addresses" in plan.result.data["effect"]
    copy = await call(gw, "restore_backup", archive=volid, vmid=300, confirm=True, wait=True)
    assert copy.ok, copy.error
    assert sim.lab.guests[300].mac != sim.lab.guests[100].mac
    assert (
        await call(gw, "execute_vm_command", vmid=100, command="stop", confirm=True, wait=True)
    ).ok
    over = await call(
        gw, "restore_backup", archive=volid, vmid=100, force=True, confirm=True, wait=True
    )
    assert over.ok, over.error
    assert sim.lab.guests[100].mac == original


async def test_a_keep_option_given_twice_is_refused(lab: tuple[Simulator, Gateway]) -> None:
    """``last=1,last=5`` is ambiguous (PBS takes one value per keep-* option): a 400 naming
    it, not the last one silently."""
    sim, gw = lab
    before = sim.request_count
    out = await call(gw, "prune_backups", store="store1", group="vm/100", keep="last=1,last=5")
    assert out.code == 400, (out.code, out.error)
    assert "last" in out.error
    assert sim.request_count == before


@pytest.mark.parametrize(("vmid", "disk"), [(200, "scsi0"), (100, "rootfs"), (100, "mp0")])
async def test_a_disk_of_the_other_guest_type_is_a_short_clear_error(
    lab: tuple[Simulator, Gateway], vmid: int, disk: str
) -> None:
    """Containers have rootfs/mpN, VMs scsiN/virtioN/sataN/ideN/efidisk0/tpmstate0 (the
    resize ``disk`` enums of pve-container and qemu-server): said before any write, not as
    PVE's 400 listing all 257 allowed values."""
    sim, gw = lab
    writes = sum(1 for r in sim.request_log if r.method != "GET")
    out = await call(gw, "resize_guest_disk", vmid=vmid, disk=disk, size="+1G")
    assert out.code == 400, (out.code, out.error)
    assert len(out.error) < 200, out.error
    assert sum(1 for r in sim.request_log if r.method != "GET") == writes


async def test_a_task_log_page_says_where_the_next_one_starts(
    lab: tuple[Simulator, Gateway],
) -> None:
    """``GET .../tasks/{upid}/log`` pages with start/limit (pve-manager PVE/API2/Tasks.pm
    read_task_log): a full page tells the agent how to read on."""
    _, gw = lab
    upid = (await call(gw, "create_backup", vmid=100, storage="local", wait=True)).result.data[
        "upid"
    ]
    whole = await call(gw, "get_task_log", upid=upid)
    assert whole.result.data["count"] >= 3
    assert whole.result.data["next_start"] is None
    page = await call(gw, "get_task_log", upid=upid, limit=2)
    assert page.result.data["lines"] == whole.result.data["lines"][:2]
    assert page.result.data["next_start"] == 2
    assert "start=2" in page.result.text
    rest = await call(gw, "get_task_log", upid=upid, start=2, limit=5000)
    assert rest.result.data["lines"] == whole.result.data["lines"][2:]


@pytest.mark.parametrize(
    ("tool", "args", "field"),
    [
        ("get_node_status", {"node": "pve_1"}, "node"),
        ("get_vms", {"node": "-pve1"}, "node"),
        ("get_vms", {"cluster": "Lab!"}, "cluster"),
        ("migrate_guest", {"vmid": 100, "target": "pve1."}, "target"),
        ("pbs_datastore_status", {"store": "../x"}, "store"),
        ("pbs_datastore_status", {"store": "store1", "server": "a_b"}, "server"),
        ("proxmox_api", {"path": "/version", "server": "a b"}, "server"),
    ],
)
async def test_names_are_checked_by_the_model_not_repeated_in_tools_list(
    lab: tuple[Simulator, Gateway], tool: str, args: dict[str, Any], field: str
) -> None:
    """tools/list carries a length for node, cluster, datastore and PBS server names, not
    their pattern (40 copies were 2 KB); the pattern is still checked by the input model,
    so a bad name is "invalid arguments" and never reaches Proxmox."""
    sim, gw = lab
    before = sim.request_count
    out = await call(gw, tool, **args)
    assert out.code == 400, out
    assert out.error.startswith(f"invalid arguments: {field}: Value error, not a valid"), out.error
    assert sim.request_count == before
    listed = gw.registry.tools[tool].input_schema()["properties"][field]
    assert "pattern" not in listed
    assert listed["maxLength"] <= 64
