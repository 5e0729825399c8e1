"""Every tool through the official ``mcp`` client against the simulator (issue 17 audit).

The client re-validates each successful result's ``structuredContent`` against the tool's
``outputSchema`` with jsonschema (``ClientSession.validate_tool_result``) and raises on a
mismatch, so every call below is also an output-schema check. Read tools are called with
several argument sets (empty results, filters, PVE and PBS, a template, a container, a
running task); the destructive tools first without ``confirm`` (a plan: the simulator's state
and write log must not move) and then with it. Two topologies: a two-node cluster with PBS,
and two standalone hosts (one with PBS, one without) where one host also goes down
(partial failures must stay valid: ``errors`` beside the items).
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
from mcp.client.session import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from proxbus_mcp_gateway.app import start_gateway
from proxbus_mcp_gateway.gateway import Gateway
from proxbus_mcp_gateway.testing import (
    ADMIN_SECRET,
    TOKENS,
    clusters_env,
    make_settings,
    serve,
    sim_env,
    standalone_env,
)
from proxbus_pvesim.model import BackupSnapshot
from proxbus_pvesim.simulator import Simulator
from proxbus_pvesim.testing import run_simulator

CLUSTER_LAB: dict[str, Any] = {
    "cluster": {"name": "lab", "nodes": 2},
    "guests": {
        "qemu": 0,
        "lxc": 0,
        "list": [
            {"vmid": 100, "type": "qemu", "name": "web1", "node": "pve1", "status": "running",
             "ha": True, "tags": ["prod"]},
            {"vmid": 101, "type": "qemu", "name": "db1", "node": "pve2", "status": "stopped"},
            {"vmid": 102, "type": "qemu", "name": "noagent", "node": "pve2", "status": "running",
             "agent": False},
            {"vmid": 200, "type": "lxc", "name": "ct1", "node": "pve1", "status": "running"},
            {"vmid": 9000, "type": "qemu", "name": "tmpl", "node": "pve1", "template": True,
             "disk": 10},
        ],
    },
    # Tasks end at once, except backups: a running vzdump to read, follow and cancel.
    "task_seconds": {"default": 0, "vzdump": 120},
}  # fmt: skip
ISO = "local:iso/debian-13.1.0-amd64-netinst.iso"
VZTMPL = "local:vztmpl/debian-13-standard_13.1-2_amd64.tar.zst"


def standalone(name: str, pbs: bool) -> dict[str, Any]:
    vm = {"vmid": 100, "type": "qemu", "name": f"web-{name}", "node": name, "status": "running"}
    ct = {"vmid": 300, "type": "lxc", "name": f"ct-{name}", "node": name, "status": "stopped"}
    lab: dict[str, Any] = {"standalone": name, "guests": {"qemu": 0, "lxc": 0, "list": [vm, ct]}}
    if not pbs:
        lab["pbs"] = None
    return lab


def two_hosts_env(sims: dict[str, Simulator], pbs: Simulator) -> dict[str, str]:
    env = standalone_env(sims)
    shared = sim_env(pbs)
    env |= {k: v for k, v in shared.items() if k.startswith("PBS_")}
    env["VERIFY_SSL"] = shared["VERIFY_SSL"]
    return env


@asynccontextmanager
async def session_for(gw: Gateway) -> AsyncIterator[ClientSession]:
    async with (
        serve(gw) as http,
        create_mcp_http_client(headers={"Authorization": f"Bearer {ADMIN_SECRET}"}) as client,
        streamable_http_client(f"{http.url}/mcp", http_client=client) as (r, w),
        ClientSession(r, w) as session,
    ):
        await session.initialize()
        yield session


class Caller:
    """Calls through the official client; remembers which tools were exercised."""

    def __init__(self, session: ClientSession, sims: list[Simulator]) -> None:
        self.session = session
        self.sims = sims
        self.called: set[str] = set()
        # no answer ever carries a credential: the Proxmox/PBS token secrets, the gateway's
        # bearer token
        self.secrets = {ADMIN_SECRET} | {
            t.secret for sim in sims for t in (sim.tokens.admin, sim.pbs_tokens.admin)
        }
        self.progress: list[tuple[float, float | None, str | None]] = []
        self.schemas: dict[str, dict[str, Any]] = {}

    async def load_schemas(self) -> None:
        self.schemas = {
            t.name: t.output_schema or {} for t in (await self.session.list_tools()).tools
        }

    async def ok(self, tool: str, args: dict[str, Any], progress: bool = False) -> dict[str, Any]:
        out = await self.call(tool, args, progress)
        assert not out.is_error, (tool, args, out.content)
        assert isinstance(out.structured_content, dict), (tool, args)
        text = out.content[0].text  # type: ignore[union-attr]
        assert text.strip(), (tool, args)
        shown = text + json.dumps(out.structured_content)
        assert not [x for x in self.secrets if x in shown], (tool, args)
        if self.schemas:
            # a listing whose schema leaves ``errors`` out (list_output partial=False) never
            # answers partially
            declared = self.schemas[tool].get("properties", {})
            if "items" in declared and "errors" in out.structured_content:
                assert "errors" in declared, tool
        return out.structured_content

    async def error(self, tool: str, args: dict[str, Any]) -> str:
        out = await self.call(tool, args)
        assert out.is_error, (tool, args, out.structured_content)
        text: str = out.content[0].text  # type: ignore[union-attr]
        assert "Traceback" not in text
        assert not [x for x in self.secrets if x in text], (tool, args)
        return text

    async def call(self, tool: str, args: dict[str, Any], progress: bool = False) -> Any:
        async def on_progress(done: float, total: float | None, message: str | None) -> None:
            self.progress.append((done, total, message))

        self.called.add(tool)
        with anyio.fail_after(60):
            return await self.session.call_tool(
                tool, args, progress_callback=on_progress if progress else None
            )

    def writes(self) -> int:
        return sum(1 for s in self.sims for r in s.request_log if r.method != "GET")

    async def plan_only(self, tool: str, args: dict[str, Any]) -> dict[str, Any]:
        """A destructive call without confirm: a plan, and no write reached Proxmox."""
        before = self.writes()
        plan = await self.ok(tool, args)
        assert plan["planned"] is True, (tool, plan)
        assert plan["executed"] is False, (tool, plan)
        assert self.writes() == before, (tool, args)
        return plan

    async def with_progress(self, tool: str, args: dict[str, Any]) -> dict[str, Any]:
        """A long task followed with ``wait``: progress notifications reach the client."""
        self.progress.clear()
        out = await self.ok(tool, {**args, "wait": True}, progress=True)
        assert len(self.progress) >= 2, (tool, self.progress)
        assert self.progress[-1][0] == self.progress[-1][1], (tool, self.progress)
        assert all(p[2] for p in self.progress), self.progress
        return out


async def test_every_tool_validates_against_its_output_schema_on_a_cluster_with_pbs() -> None:
    async with run_simulator(CLUSTER_LAB, instant=False) as sim:
        gw = Gateway.from_settings(make_settings(gateway_tokens=TOKENS), sim_env(sim))
        gw.start()
        try:
            async with session_for(gw) as session:
                listed = (await session.list_tools()).tools
                for tool in listed:
                    assert tool.output_schema is not None, tool.name
                    assert tool.output_schema.get("type") == "object", tool.name
                c = Caller(session, [sim])
                await c.load_schemas()
                await _cluster_script(c, sim)
                await _typed_paths(c, sim)
                # The event tools need the bus (NATS is off here): a clear error, not a crash.
                for name in ("get_recent_events", "list_silences", "silence_alerts"):
                    if name in {t.name for t in listed}:
                        await c.call(name, {})
                missing = {t.name for t in listed} - c.called
                assert not missing, f"tools never exercised: {sorted(missing)}"
        finally:
            await gw.close()


async def _cluster_script(c: Caller, sim: Simulator) -> None:
    lab = sim.lab
    assert lab.pbs is not None
    # --- inventory, including empty results and fields Proxmox leaves null
    status = await c.ok("get_cluster_status", {})
    assert status["quorate"] is True
    assert len((await c.ok("get_nodes", {}))["items"]) == 2
    assert (await c.ok("get_node_status", {"node": "pve2"}))["node"] == "pve2"
    for args in ({}, {"status": "running"}, {"node": "pve2"}, {"tag": "prod"}, {"tag": "none"}):
        await c.ok("get_vms", args)
    assert (await c.ok("get_vms", {"tag": "none"}))["count"] == 0
    assert (await c.ok("get_lxcs", {}))["count"] == 1
    assert (await c.ok("get_lxcs", {"status": "paused"}))["count"] == 0
    await c.ok("get_storage", {})
    await c.ok("get_storage", {"node": "pve1"})
    for vmid in (100, 101, 200, 9000):
        await c.ok("get_guest_status", {"vmid": vmid})
        await c.ok("get_guest_config", {"vmid": vmid})
        disks = await c.ok("get_guest_disks", {"vmid": vmid})
        assert disks["count"] >= 1, (vmid, disks)
        await c.ok("list_snapshots", {"vmid": vmid})
    net = await c.ok("get_guest_network", {"vmid": 100})
    assert net["ip"] == lab.guests[100].guest_ip()
    assert "not running" in await c.error("get_guest_network", {"vmid": 101})
    assert "agent" in (await c.error("get_guest_network", {"vmid": 102})).lower()
    ct_net = await c.ok("get_guest_network", {"vmid": 200})  # a container: no agent needed
    assert ct_net["ip"] == lab.guests[200].guest_ip()
    for args in ({"node": "pve1"}, {"node": "pve2", "type": "bridge"}, {"node": "pve1", "type": "bond"}):  # fmt: skip
        await c.ok("get_node_network", args)
    nxt = (await c.ok("get_next_vmid", {}))["vmid"]
    assert nxt == 103
    assert (await c.ok("get_next_vmid", {"node": "pve2"}))["vmid"] == nxt
    for args in (
        {"storage": "local"},
        {"storage": "local", "content": "iso"},
        {"storage": "local", "content": "snippets"},
        {"storage": "local-lvm", "vmid": 100},
        {"storage": "pbs-store", "content": "backup"},
        {"storage": "local", "node": "pve2", "content": "vztmpl"},
    ):
        await c.ok("list_storage_content", args)
    assert (await c.ok("list_storage_content", {"storage": "local", "content": "snippets"}))[
        "count"
    ] == 0
    ha = await c.ok("get_ha_status", {})
    assert any(i.get("state") is None for i in ha["items"]), ha  # Proxmox's nulls, validated
    clusters = (await c.ok("list_clusters", {}))["clusters"]
    assert {e["state"] for e in clusters[0]["endpoints"]} == {"closed"}  # in use, none failing
    await c.ok("test_connectivity", {})
    await c.ok("run_diagnostic", {})
    me = await c.ok("whoami", {})
    assert (me["read_only"], "errors" in me) == (False, False)
    assert me["proxmox_permissions"]["/"]  # one host: path -> privileges
    await c.ok("get_cluster_log", {})
    await c.ok("get_cluster_log", {"limit": 1})
    for args in ({}, {"errors_only": True}, {"node": "pve1", "limit": 5}, {"vmid": 100}):
        await c.ok("get_recent_tasks", args)
    await c.ok("proxmox_api", {"path": "/version"})
    await c.ok("proxmox_api", {"path": "/admin/datastore", "product": "pbs"})
    # --- PBS reads
    await c.ok("pbs_list_datastores", {})
    store = await c.ok("pbs_datastore_status", {"store": "store1"})
    assert store["avail"] == store["total"] - store["used"]
    assert "pending-bytes" in store["gc-status"]  # the description promises the GC status
    for args in ({"store": "store1"}, {"store": "store1", "groups_only": True},
                 {"store": "store1", "group": "vm/99999"}, {"store": "store1", "limit": 1}):  # fmt: skip
        await c.ok("pbs_list_backups", args)
    assert (await c.ok("pbs_list_backups", {"store": "store1", "group": "vm/99999"}))["count"] == 0
    await c.ok("pbs_get_tasks", {})
    await c.ok("pbs_get_tasks", {"errors_only": True})

    # --- a running task: status, log, cancel (plan, then confirm)
    started = await c.ok("create_backup", {"vmid": 101, "storage": "local"})
    upid = started["upid"]
    locked = await c.ok("get_guest_status", {"vmid": 101})  # vzdump holds the backup lock
    assert (locked["status"], locked["lock"]) == ("stopped", "backup")
    assert (await c.ok("get_task_status", {"upid": upid}))["status"] == "running"
    running_log = await c.ok("get_task_log", {"upid": upid})
    assert running_log["status"] == "running"
    await c.ok("get_task_log", {"upid": upid, "start": 10_000})  # past the end: no lines
    await c.plan_only("cancel_task", {"upid": upid})
    assert sim.pve_tasks.get(upid).running
    cancelled = await c.ok("cancel_task", {"upid": upid, "confirm": True})
    assert cancelled["executed"] is True
    assert not sim.pve_tasks.get(upid).running
    assert (await c.ok("cancel_task", {"upid": upid, "confirm": True}))["executed"] is False
    failed = await c.ok("get_task_status", {"upid": upid})
    assert failed["ok"] is False
    assert failed["log_tail"], failed

    # --- provisioning with progress; plans that change nothing
    clone = await c.with_progress("clone_guest", {"vmid": 9000, "name": "web-2"})
    newid = clone["newid"]
    assert lab.guests[newid].linked_base == 9000
    # qemu-server clone_vm: "target" only with shared storage (a clear error, nothing made)
    assert "local storage" in await c.error(
        "clone_guest", {"vmid": 101, "newid": 150, "full": True, "target": "pve1"}
    )
    assert 150 not in lab.guests
    full = await c.with_progress("clone_guest", {"vmid": 101, "newid": 150, "full": True})
    assert (full["newid"], lab.guests[150].node) == (150, "pve2")
    vm = await c.with_progress("create_vm", {"node": "pve2", "name": "new-vm", "iso": ISO})
    assert lab.guests[vm["vmid"]].node == "pve2"
    ct = await c.with_progress(
        "create_container", {"node": "pve1", "template": VZTMPL, "hostname": "new-ct"}
    )
    assert lab.guests[ct["vmid"]].kind == "lxc"
    grown = await c.with_progress(
        "resize_guest_disk", {"vmid": 150, "disk": "scsi0", "size": "+1G"}
    )
    assert grown["status"] == "ok"
    await c.with_progress(
        "resize_guest_disk", {"vmid": ct["vmid"], "disk": "rootfs", "size": "+1G"}
    )

    # --- power, snapshots, migration (plans first)
    await c.plan_only("execute_vm_command", {"vmid": 100, "command": "stop"})
    assert lab.guests[100].running
    await c.with_progress("execute_vm_command", {"vmid": 101, "command": "start"})
    await c.plan_only("execute_lxc_command", {"vmid": 200, "command": "stop"})
    await c.with_progress("execute_lxc_command", {"vmid": 200, "command": "stop", "confirm": True})
    await c.with_progress("create_snapshot", {"vmid": 150, "name": "before"})
    await c.plan_only("rollback_snapshot", {"vmid": 150, "name": "before"})
    await c.with_progress("rollback_snapshot", {"vmid": 150, "name": "before", "confirm": True})
    await c.plan_only("delete_snapshot", {"vmid": 150, "name": "before"})
    await c.with_progress("delete_snapshot", {"vmid": 150, "name": "before", "confirm": True})
    assert lab.guests[150].snapshots == []
    await c.plan_only("migrate_guest", {"vmid": 150, "target": "pve1"})
    assert lab.guests[150].node == "pve2"
    await c.plan_only(
        "proxmox_api", {"method": "POST", "path": "/nodes/pve2/qemu/150/status/start"}
    )

    # --- backups: restore / delete of a PVE volume, PBS snapshot delete and prune
    sim.pve_tasks.durations["vzdump"] = 0
    await c.with_progress("create_backup", {"vmid": 150, "storage": "local"})
    items = (await c.ok("list_storage_content", {"storage": "local", "content": "backup"}))["items"]
    volid = next(i["volid"] for i in items if i.get("vmid") == 150)
    await c.plan_only("restore_backup", {"archive": volid})
    assert 151 not in lab.guests
    await c.with_progress("restore_backup", {"archive": volid, "vmid": 151, "confirm": True})
    assert lab.guests[151].name == lab.guests[150].name
    await c.plan_only("delete_backup", {"volid": volid})
    await c.ok("delete_backup", {"volid": volid, "confirm": True})
    assert volid not in json.dumps(await c.ok("list_storage_content", {"storage": "local"}))

    ds = lab.pbs.datastores["store1"]
    snap = ds.snapshots[0]
    name = f"{snap.backup_type}/{snap.backup_id}/" + time.strftime(
        "%Y-%m-%dT%H:%M:%SZ", time.gmtime(snap.backup_time)
    )
    await c.plan_only("delete_backup", {"store": "store1", "snapshot": name})
    assert snap in ds.snapshots
    await c.ok("delete_backup", {"store": "store1", "snapshot": name, "confirm": True})
    assert snap not in ds.snapshots
    group = f"{ds.snapshots[0].backup_type}/{ds.snapshots[0].backup_id}"
    count = len(ds.snapshots)
    prune_plan = await c.ok("prune_backups", {"store": "store1", "group": group, "keep": "last=1"})
    assert prune_plan["planned"] is True
    assert len(ds.snapshots) == count
    await c.ok(
        "prune_backups", {"store": "store1", "group": group, "keep": "last=1", "confirm": True}
    )
    # an empty group: plan and prune of nothing stay valid
    empty = {"store": "store1", "group": "vm/99999", "keep": "last=1"}
    assert (await c.ok("prune_backups", empty))["count"] == 0
    assert (await c.ok("prune_backups", {**empty, "confirm": True}))["count"] == 0
    gc = await c.with_progress("pbs_start_gc", {"store": "store1"})
    assert "lines" in await c.ok("get_task_log", {"upid": gc["upid"]})
    await c.with_progress("pbs_start_verify", {"store": "store1"})

    # --- delete a guest: plan (nothing deleted), then confirm
    await c.plan_only("delete_guest", {"vmid": newid})
    assert newid in lab.guests
    await c.with_progress("delete_guest", {"vmid": newid, "confirm": True})
    assert newid not in lab.guests


async def test_tools_validate_on_two_standalone_hosts_also_when_one_is_down() -> None:
    async with (
        run_simulator(standalone("edge1", pbs=True)) as one,
        run_simulator(standalone("edge2", pbs=False)) as two,
    ):
        env = two_hosts_env({"edge1": one, "edge2": two}, one)
        # no read cache: the answers after edge2 goes down must come from the hosts
        gw = Gateway.from_settings(make_settings(gateway_tokens=TOKENS, cache_ttl=0), env)
        gw.start()
        try:
            async with session_for(gw) as session:
                c = Caller(session, [one, two])
                await c.load_schemas()
                status = await c.ok("get_cluster_status", {})
                assert status["quorate"] is None  # no PVE cluster: unknown, not false
                me = await c.ok("whoami", {})  # each host's token: host -> its permissions
                assert set(me["proxmox_permissions"]) == {"edge1", "edge2"}
                joined = await c.ok("proxmox_api", {"path": "/cluster/resources"})
                assert {"edge1", "edge2"} <= {r.get("node") for r in joined["data"]}
                await c.ok("pbs_datastore_status", {"store": "store1"})
                assert (await c.ok("get_vms", {}))["count"] == 2
                assert "several hosts" in await c.error("get_guest_disks", {"vmid": 100})
                for node in ("edge1", "edge2"):
                    assert (await c.ok("get_node_status", {"node": node}))["uptime"] > 0
                    await c.ok("get_guest_status", {"vmid": 100, "node": node})
                    await c.ok("get_guest_disks", {"vmid": 100, "node": node})
                    await c.ok("get_guest_network", {"vmid": 100, "node": node})
                    await c.ok("get_node_network", {"node": node})
                    await c.ok("get_next_vmid", {"node": node})
                    await c.ok("list_storage_content", {"storage": "local", "node": node})
                stopped_ct = {"vmid": 300, "node": "edge1"}
                assert "not running" in await c.error("get_guest_network", stopped_ct)
                both = await c.ok("list_storage_content", {"storage": "local", "content": "iso"})
                assert {i["node"] for i in both["items"]} == {"edge1", "edge2"}
                await c.ok("pbs_list_backups", {"store": "store1"})
                cloned = await c.with_progress(
                    "clone_guest", {"vmid": 100, "node": "edge2", "newid": 120, "full": True}
                )
                assert cloned["newid"] == 120
                assert 120 in two.lab.guests
                assert 120 not in one.lab.guests
                # the tightened schemas on another host's task and guest
                log = await c.ok("get_task_log", {"upid": cloned["upid"]})
                assert log["count"] == len(log["lines"]) > 0
                assert (await c.ok("get_task_status", {"upid": cloned["upid"]}))["ok"] is True
                for node in ("edge1", "edge2"):
                    await c.ok("get_guest_config", {"vmid": 100, "node": node})
                    act = {"vmid": 100, "node": node, "command": "stop"}
                    assert (await c.plan_only("execute_vm_command", act))["target"]
                already = await c.ok(
                    "execute_vm_command", {"vmid": 100, "node": "edge1", "command": "start"}
                )
                assert already["executed"] is False
                await c.plan_only(
                    "delete_backup",
                    {"store": "store1", "snapshot": _pbs_volid(one).split(":backup/")[1]},
                )
                await c.plan_only("delete_guest", {"vmid": 120, "node": "edge2", "stop": True})
                await c.plan_only("delete_guest", {"vmid": 300, "node": "edge1"})
                await c.plan_only("restore_backup", {"archive": _pbs_volid(one), "node": "edge1"})

                await two.stop_api()
                partial = await c.ok("get_vms", {})
                assert [g["node"] for g in partial["items"]] == ["edge1"]
                assert partial["errors"]
                assert "edge2" in partial["errors"][0]
                for tool in ("get_nodes", "get_storage", "get_lxcs", "get_recent_tasks"):
                    assert (await c.ok(tool, {}))["errors"], tool
                await c.ok("get_cluster_status", {})
                await c.ok("run_diagnostic", {})
                conn = await c.ok("test_connectivity", {})
                assert conn["ok"] < conn["count"]
                # partial answers: the host that is down is named in errors
                me = await c.ok("whoami", {})
                assert list(me["proxmox_permissions"]) == ["edge1"]
                assert "edge2" in me["errors"][0]
                joined = await c.ok("proxmox_api", {"path": "/cluster/resources"})
                assert "edge2" in joined["errors"][0]
                await c.ok("list_clusters", {})
                assert "edge2" in await c.error("get_node_status", {"node": "edge2"})
                await c.ok("get_guest_status", {"vmid": 300})  # the host that answers
                # A guest on the host that answers is still found for a read, never acted on.
                await c.ok("get_guest_disks", {"vmid": 300})
                assert "not every host" in await c.error(
                    "resize_guest_disk", {"vmid": 300, "disk": "rootfs", "size": "+1G"}
                )
        finally:
            await gw.close()


async def _typed_paths(c: Caller, sim: Simulator) -> None:
    """Each tool with a typed output schema (required keys and their types) on every path it
    has: plan, already done, started (no wait), waited for (ok and still running), PBS and
    PVE tasks, a page of a log, PBS namespaces."""
    lab = sim.lab
    assert lab.pbs is not None
    typed = {
        name
        for name, schema in c.schemas.items()
        if schema.get("required")
        and all(schema.get("properties", {}).get(k, {}).get("type") for k in schema["required"])
    }
    assert {
        "get_task_log", "cancel_task", "restore_backup", "delete_backup", "delete_guest",
        "execute_vm_command", "execute_lxc_command", "create_snapshot", "get_task_status",
        "migrate_guest", "rollback_snapshot", "delete_snapshot", "create_backup", "pbs_start_gc",
        "pbs_start_verify", "get_guest_config", "test_connectivity", "run_diagnostic",
        "get_node_status", "get_guest_status", "list_clusters", "whoami",
        "pbs_datastore_status", "silence_alerts",
    } <= typed, typed  # fmt: skip
    # proxmox_api: the envelope is typed, ``data`` is whatever the endpoint returns
    assert not {"planned", "path", "errors"} - set(c.schemas["proxmox_api"]["properties"])
    # --- power: already in that state, started without waiting, still running after the wait
    assert (await c.ok("execute_vm_command", {"vmid": 100, "command": "start"}))[
        "executed"
    ] is False
    assert (await c.ok("execute_lxc_command", {"vmid": 200, "command": "stop", "confirm": True}))[
        "executed"
    ] is False  # stopped by the cluster script already
    started = await c.ok("execute_lxc_command", {"vmid": 200, "command": "start"})
    assert (started["executed"], started["status"]) == (True, "started")
    sim.pve_tasks.durations["qmreboot"] = 60
    slow = {"vmid": 101, "command": "reboot", "confirm": True, "wait": True, "timeout": 1}
    running = await c.ok("execute_vm_command", slow)
    assert running["status"] == "running", running
    # --- the task: its status (not waiting, waiting until the budget), a page of its log
    assert (await c.ok("get_task_status", {"upid": running["upid"]}))["status"] == "running"
    waited = await c.ok("get_task_status", {"upid": running["upid"], "wait": True, "timeout": 1})
    assert waited["handle"] == running["upid"]
    assert (await c.ok("get_task_log", {"upid": running["upid"]}))["status"] == "running"
    stopped = await c.ok("cancel_task", {"upid": running["upid"], "confirm": True})
    assert stopped["executed"] is True
    sim.pve_tasks.durations["qmreboot"] = 0
    # a PBS task: status with and without waiting, and its log
    gc = await c.ok("pbs_start_gc", {"store": "store1"})
    assert (await c.ok("get_task_status", {"upid": gc["upid"], "wait": True}))["ok"] is True
    assert (await c.ok("get_task_status", {"upid": gc["upid"]}))["status"] == "stopped"
    assert (await c.ok("cancel_task", {"upid": gc["upid"]}))["executed"] is False
    # a PBS task still running after the wait, then cancelled; a verify not waited for
    sim.pbs_tasks.durations["verify"] = 60
    slow_verify = await c.ok("pbs_start_verify", {"store": "store1", "wait": True, "timeout": 1})
    assert slow_verify["status"] == "running", slow_verify
    assert (await c.ok("cancel_task", {"upid": slow_verify["upid"], "confirm": True}))["executed"]
    sim.pbs_tasks.durations["verify"] = 0
    assert (await c.ok("pbs_start_verify", {"store": "store1"}))["status"] == "started"
    # --- snapshots and restores without waiting; a delete without waiting
    snap = await c.ok("create_snapshot", {"vmid": 101, "name": "nowait"})
    assert snap["status"] == "started"
    await c.ok("get_task_status", {"upid": snap["upid"], "wait": True})
    await c.plan_only("rollback_snapshot", {"vmid": 101, "name": "nowait"})
    for tool in ("rollback_snapshot", "delete_snapshot"):
        act = await c.ok(tool, {"vmid": 101, "name": "nowait", "confirm": True})
        assert (act["executed"], act["status"]) == (True, "started"), tool
        # the next snapshot action needs the guest's lock gone: wait for the task
        assert (await c.ok("get_task_status", {"upid": act["upid"], "wait": True}))["ok"] is True
    backup = await c.with_progress("create_backup", {"vmid": 101, "storage": "local"})
    page = await c.ok("get_task_log", {"upid": backup["upid"], "limit": 1})  # more follow
    assert (page["count"], page["next_start"]) == (1, 1)
    items = (await c.ok("list_storage_content", {"storage": "local", "content": "backup"}))["items"]
    volid = next(i["volid"] for i in items if i.get("vmid") == 101)
    restored = await c.ok("restore_backup", {"archive": volid, "vmid": 160, "confirm": True})
    assert (restored["executed"], restored["status"]) == (True, "started")
    await c.ok("get_task_status", {"upid": restored["upid"], "wait": True})
    # migrate: plan, then without waiting, then back waiting for it
    await c.plan_only("migrate_guest", {"vmid": 160, "target": "pve1"})
    moved = await c.ok("migrate_guest", {"vmid": 160, "target": "pve1", "confirm": True})
    assert (moved["executed"], moved["status"]) == (True, "started")
    await c.ok("get_task_status", {"upid": moved["upid"], "wait": True})
    back = {"vmid": 160, "target": "pve2", "confirm": True, "wait": True}
    assert (await c.ok("migrate_guest", back))["status"] == "ok"
    await c.plan_only("delete_guest", {"vmid": 160})
    gone = await c.ok("delete_guest", {"vmid": 160, "confirm": True})
    assert (gone["executed"], gone["status"]) == (True, "started")
    # --- PBS namespaces: list, delete and prune there, each row with its namespace
    ds = lab.pbs.datastores["store1"]
    ds.add_namespace("site-b/prod")
    for k in range(3):
        ds.snapshots.append(
            BackupSnapshot("vm", "700", 1_750_000_000 + k * 86400, 10, ns="site-b/prod")
        )
    listed = await c.ok("pbs_list_backups", {"store": "store1", "max_depth": 7})
    assert "site-b/prod" in listed["namespaces"]
    inside = await c.ok("pbs_list_backups", {"store": "store1", "ns": "site-b/prod"})
    assert {i["ns"] for i in inside["items"]} == {"site-b/prod"}
    await c.ok(
        "pbs_list_backups", {"store": "store1", "ns": "site-b", "groups_only": True, "max_depth": 1}
    )
    one = {"store": "store1", "ns": "site-b/prod", "snapshot": "vm/700/2025-06-15T15:06:40Z"}
    await c.plan_only("delete_backup", one)
    assert (await c.ok("delete_backup", {**one, "confirm": True}))["ns"] == "site-b/prod"
    prune = {"store": "store1", "ns": "site-b/prod", "group": "vm/700", "keep": "last=1"}
    await c.ok("prune_backups", prune)
    assert (await c.ok("prune_backups", {**prune, "confirm": True}))["removed"] == 1
    assert (await c.ok("pbs_start_verify", {"store": "store1", "ns": "site-b", "wait": True}))[
        "ns"
    ] == "site-b"
    assert "does not exist" in await c.error(
        "pbs_list_backups", {"store": "store1", "ns": "nosuch"}
    )


def _site(name: str, nodes: list[str], guests: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "cluster": {"name": name, "nodes": nodes},
        "guests": {"qemu": 0, "lxc": 0, "list": guests},
        "pbs": {"name": f"{name}-pbs"},
        "task_seconds": 0,
    }


async def test_tools_validate_on_two_clusters_without_cluster_also_when_one_is_down() -> None:
    """CLUSTERS: the joined answers (rows with an untyped ``cluster``, per-cluster sections,
    ``errors`` for a cluster that is down) validate against the same output schemas."""
    home = _site("home", ["h1", "h2"], [
        {"vmid": 100, "type": "qemu", "name": "web-home", "node": "h1", "status": "running",
         "ha": True},
        {"vmid": 200, "type": "lxc", "name": "ct-home", "node": "h2", "status": "running"},
    ])  # fmt: skip
    colo = _site("colo", ["c1"], [
        {"vmid": 100, "type": "qemu", "name": "web-colo", "node": "c1", "status": "running"},
        {"vmid": 300, "type": "qemu", "name": "mail", "node": "c1", "status": "stopped"},
    ])  # fmt: skip
    async with run_simulator(home) as one, run_simulator(colo) as two:
        env = clusters_env({"home": one, "colo": two})
        settings = make_settings(gateway_tokens=TOKENS, cache_ttl=0, default_cluster="home")
        gw = Gateway.from_settings(settings, env)
        gw.start()
        try:
            async with session_for(gw) as session:
                c = Caller(session, [one, two])
                await c.load_schemas()
                backup = await c.ok("create_backup", {"vmid": 300, "wait": True})
                assert ":c1:" in backup["upid"]
                await c.ok("get_task_status", {"upid": backup["upid"]})
                await c.ok("get_task_log", {"upid": backup["upid"]})
                for tool, args in (
                    ("get_vms", {}), ("get_lxcs", {}), ("get_nodes", {}), ("get_storage", {}),
                    ("get_recent_tasks", {}), ("get_cluster_log", {}), ("get_ha_status", {}),
                    ("list_storage_content", {"storage": "local"}), ("pbs_list_datastores", {}),
                    ("pbs_get_tasks", {}),
                ):  # fmt: skip
                    rows = (await c.ok(tool, args))["items"]
                    assert {"home", "colo"} >= {r["cluster"] for r in rows}, tool
                assert (await c.ok("get_vms", {}))["count"] == 3
                assert len((await c.ok("get_cluster_status", {}))["nodes"]) == 3
                assert set((await c.ok("whoami", {}))["proxmox_permissions"]) == {"home", "colo"}
                await c.ok("run_diagnostic", {})
                await c.ok("test_connectivity", {})
                await c.ok("proxmox_api", {"path": "/cluster/resources"})
                await c.ok("get_guest_status", {"vmid": 300})
                await c.ok("get_vms", {"node": "c1"})
                await c.plan_only("execute_vm_command", {"vmid": 300, "command": "reboot"})
                assert "several clusters" in await c.error("get_guest_status", {"vmid": 100})
                assert "several clusters" in await c.error("get_next_vmid", {})
                await two.stop_api()
                part = await c.ok("get_vms", {})
                assert part["errors"][0].startswith("colo: ")
                status = await c.ok("get_cluster_status", {})
                assert status["errors"][0].startswith("colo: ")
                assert (await c.ok("run_diagnostic", {}))["healthy"] is False
                assert (await c.ok("whoami", {}))["errors"][0].startswith("colo: ")
                await c.ok("proxmox_api", {"path": "/cluster/resources"})
                assert "not every cluster" in await c.error(
                    "execute_vm_command", {"vmid": 200, "command": "stop", "confirm": True}
                )
        finally:
            await gw.close()


async def test_typed_read_tools_validate_on_a_read_only_gateway() -> None:
    """READ_ONLY: the read tools with typed schemas still validate; the action tools are an
    error (no structured content to validate)."""
    async with run_simulator(CLUSTER_LAB, instant=False) as sim:
        gw = Gateway.from_settings(
            make_settings(gateway_tokens=TOKENS, read_only=True), sim_env(sim)
        )
        gw.start()
        try:
            async with session_for(gw) as session:
                c = Caller(session, [sim])
                await c.load_schemas()
                upid = sim.pve_tasks.start(
                    "pve1", "vzdump", "101", "root@pam", lambda t: 0, ["INFO: starting"]
                ).upid
                assert (await c.ok("get_task_status", {"upid": upid}))["status"] == "running"
                assert (await c.ok("get_task_log", {"upid": upid}))["lines"] == ["INFO: starting"]
                for tool, args in (
                    ("cancel_task", {"upid": upid, "confirm": True}),
                    ("execute_vm_command", {"vmid": 100, "command": "stop"}),
                    ("delete_guest", {"vmid": 101}),
                ):
                    assert "READ_ONLY" in await c.error(tool, args), tool
                assert sim.pve_tasks.get(upid).running
        finally:
            await gw.close()


def _pbs_volid(sim: Simulator) -> str:
    assert sim.lab.pbs is not None
    snap = next(s for s in sim.lab.pbs.datastores["store1"].snapshots if s.backup_type == "vm")
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(snap.backup_time))
    return f"pbs-store:backup/vm/{snap.backup_id}/{stamp}"


async def test_event_tools_validate_with_the_bus(sim: Simulator, nats_server: Any) -> None:
    """The event tools need NATS: with a broker, ``silence_alerts`` (typed), ``list_silences``
    and ``get_recent_events`` validate through the official client; bad matchers are an
    error, not a silence."""
    running = await start_gateway(
        make_settings(gateway_tokens=TOKENS, nats_enabled=True, nats_url=nats_server.url),
        sim_env(sim),
    )
    try:
        assert running.ready.is_set()
        async with session_for(running.gateway) as session:
            c = Caller(session, [sim])
            await c.load_schemas()
            assert c.schemas["silence_alerts"]["required"] == ["id", "matchers", "ends_at"]
            made = await c.ok(
                "silence_alerts",
                {"matchers": ["node=pve1", "severity<=warning"], "duration_minutes": 30},
            )
            assert [m["name"] for m in made["matchers"]] == ["node", "severity"]
            listed = await c.ok("list_silences", {})
            assert [s["id"] for s in listed["items"]] == [made["id"]]
            assert "color" in await c.error("silence_alerts", {"matchers": ["color=blue"]})
            assert (await c.ok("list_silences", {}))["count"] == 1
            await c.ok("get_recent_events", {})
    finally:
        await running.close()
