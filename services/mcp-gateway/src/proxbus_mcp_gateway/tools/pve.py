"""PVE tools: inventory, guest power, tasks, snapshots, backup, migration, cluster state."""

import time
from typing import Any, Literal

from pydantic import Field

from ..errors import ToolFailure
from ..registry import CallContext, Registry, ToolInput, ToolResult, list_output
from ._common import (
    ClusterArg,
    ConfirmArg,
    GuestKind,
    NodeArg,
    OptNodeArg,
    SnapArg,
    TimeoutArg,
    VmidArg,
    WaitArg,
    fmt_bytes,
    guest_path,
    kv_text,
    listing,
    locate_guest,
    pct,
    plan,
    start_task,
    wait_task,
)

_SECRET_CONFIG_KEYS = ("cipassword", "sshkeys")
VM_COMMANDS = ("start", "stop", "shutdown", "reboot", "reset", "suspend", "resume")
LXC_COMMANDS = ("start", "stop", "shutdown", "reboot", "suspend", "resume")
_NEEDS_CONFIRM = {"stop", "reset", "shutdown", "reboot", "suspend"}
_EFFECT = {
    "stop": "hard power-off now (like pulling the plug); unsaved guest data is lost",
    "reset": "hard reset now; unsaved guest data is lost",
    "shutdown": "ACPI/clean shutdown; services in the guest go down",
    "reboot": "clean reboot; services in the guest are briefly unavailable",
    "suspend": "guest is paused; services stop answering until resume",
}


def register(reg: Registry) -> None:
    class ClusterIn(ToolInput):
        cluster: ClusterArg = None

    @reg.tool(
        "get_cluster_status",
        "Cluster status",
        "Quorum and node membership of a cluster (standalone nodes listed too).",
        output={
            "type": "object",
            "properties": {"nodes": {"type": "array"}, "quorate": {"type": ["boolean", "null"]}},
        },
    )
    async def get_cluster_status(ctx: CallContext, args: ClusterIn) -> ToolResult:
        pool = ctx.gateway.pool
        name = pool.cluster(args.cluster).config.name
        nodes: list[dict[str, Any]] = []
        clusters: list[dict[str, Any]] = []
        errors = []
        for group, result in await pool.request_all(args.cluster, "/cluster/status"):
            if isinstance(result, ToolFailure):
                errors.append(f"{group.config.name}: {result.message}")
                continue
            for item in result or []:
                if item.get("type") == "cluster":
                    clusters.append(
                        {k: item.get(k) for k in ("name", "quorate", "nodes", "version")}
                    )
                elif item.get("type") == "node":
                    nodes.append(
                        {k: item.get(k) for k in ("name", "online", "ip", "local", "nodeid")}
                    )
        quorate = all(bool(c.get("quorate")) for c in clusters) if clusters else None
        data = {
            "cluster": name,
            "quorate": quorate,
            "pve_clusters": clusters,
            "nodes": nodes,
            "errors": errors,
        }
        online = sum(1 for n in nodes if n.get("online"))
        text = (
            f"cluster {name}: quorate={quorate} nodes online {online}/{len(nodes)}\n"
            + "\n".join(
                f"{n['name']} {'online' if n.get('online') else 'OFFLINE'} {n.get('ip') or '-'}"
                for n in nodes
            )
        )
        if errors:
            text += "\nerrors: " + "; ".join(errors)
        return ToolResult(data, text)

    @reg.tool(
        "get_nodes",
        "List nodes",
        "Nodes with status, CPU, memory and uptime.",
        output=list_output({"node": "string", "status": "string"}),
    )
    async def get_nodes(ctx: CallContext, args: ClusterIn) -> ToolResult:
        items, errors = [], []
        for group, result in await ctx.gateway.pool.request_all(args.cluster, "/nodes"):
            if isinstance(result, ToolFailure):
                errors.append(f"{group.config.name}: {result.message}")
                continue
            for n in result or []:
                if not ctx.caller.node_allowed(n.get("node")):
                    continue
                items.append(
                    {
                        "node": n.get("node"),
                        "status": n.get("status"),
                        "cpu_pct": round(100 * float(n.get("cpu") or 0), 1),
                        "maxcpu": n.get("maxcpu"),
                        "mem": n.get("mem"),
                        "maxmem": n.get("maxmem"),
                        "mem_pct": pct(n.get("mem"), n.get("maxmem")),
                        "uptime": n.get("uptime"),
                    }
                )
        items.sort(key=lambda n: str(n["node"]))
        return listing(items, ["node", "status", "cpu_pct", "mem_pct", "uptime"], "nodes", errors)

    class NodeIn(ToolInput):
        node: NodeArg
        cluster: ClusterArg = None

    @reg.tool(
        "get_node_status",
        "Node status",
        "One node's CPU, load, memory, root disk, uptime and versions.",
    )
    async def get_node_status(ctx: CallContext, args: NodeIn) -> ToolResult:
        s = await ctx.gateway.pool.request(
            args.cluster, "GET", f"/nodes/{args.node}/status", node=args.node
        )
        mem, root = s.get("memory") or {}, s.get("rootfs") or {}
        data = {
            "node": args.node,
            "cpu_pct": round(100 * float(s.get("cpu") or 0), 1),
            "loadavg": s.get("loadavg"),
            "mem_used": mem.get("used"),
            "mem_total": mem.get("total"),
            "mem_pct": pct(mem.get("used"), mem.get("total")),
            "rootfs_pct": pct(root.get("used"), root.get("total")),
            "uptime": s.get("uptime"),
            "pveversion": s.get("pveversion"),
            "kversion": s.get("kversion"),
            "cpuinfo": s.get("cpuinfo"),
            "raw": s,
        }
        text = kv_text(
            f"node {args.node}",
            data,
            ["cpu_pct", "loadavg", "mem_pct", "rootfs_pct", "uptime", "pveversion"],
        )
        return ToolResult(data, text)

    class GuestListIn(ToolInput):
        cluster: ClusterArg = None
        node: OptNodeArg = None
        status: Literal["running", "stopped", "paused"] | None = None
        tag: str | None = Field(default=None, max_length=64)

    async def guest_list(ctx: CallContext, args: GuestListIn, kind: GuestKind) -> ToolResult:
        items, errors = [], []
        pool = ctx.gateway.pool
        if args.node is not None:
            await pool.group_for_node(pool.cluster(args.cluster), args.node)
        for group, result in await pool.request_all(
            args.cluster, "/cluster/resources", {"type": "vm"}
        ):
            if isinstance(result, ToolFailure):
                errors.append(f"{group.config.name}: {result.message}")
                continue
            for g in result or []:
                if g.get("type") != kind or g.get("template"):
                    continue
                if args.node and g.get("node") != args.node:
                    continue
                if args.status and g.get("status") != args.status:
                    continue
                tags = [t for t in str(g.get("tags") or "").replace(",", ";").split(";") if t]
                if args.tag and args.tag not in tags:
                    continue
                if not (
                    ctx.caller.node_allowed(g.get("node"))
                    and ctx.caller.vmid_allowed(g.get("vmid"))
                ):
                    continue
                items.append(
                    {
                        "vmid": g.get("vmid"),
                        "name": g.get("name"),
                        "node": g.get("node"),
                        "status": g.get("status"),
                        "cpu_pct": round(100 * float(g.get("cpu") or 0), 1),
                        "maxcpu": g.get("maxcpu"),
                        "mem": g.get("mem"),
                        "maxmem": g.get("maxmem"),
                        "uptime": g.get("uptime"),
                        "tags": tags,
                    }
                )
        items.sort(key=lambda g: int(g["vmid"] or 0))
        what = "VMs" if kind == "qemu" else "containers"
        return listing(items, ["vmid", "name", "node", "status", "cpu_pct", "maxmem"], what, errors)

    @reg.tool(
        "get_vms",
        "List VMs",
        "QEMU VMs across the cluster; filter by node, status or tag.",
        output=list_output(
            {"vmid": "integer", "name": "string", "node": "string", "status": "string"}
        ),
    )
    async def get_vms(ctx: CallContext, args: GuestListIn) -> ToolResult:
        return await guest_list(ctx, args, "qemu")

    @reg.tool(
        "get_lxcs",
        "List containers",
        "LXC containers across the cluster; filter by node, status or tag.",
        output=list_output(
            {"vmid": "integer", "name": "string", "node": "string", "status": "string"}
        ),
    )
    async def get_lxcs(ctx: CallContext, args: GuestListIn) -> ToolResult:
        return await guest_list(ctx, args, "lxc")

    async def power(ctx: CallContext, args: Any, kind: GuestKind) -> ToolResult:
        node, kind, entry = await locate_guest(ctx, args.cluster, args.vmid, args.node, kind)
        target = (
            f"{'VM' if kind == 'qemu' else 'CT'} {args.vmid} ({entry.get('name', '?')}) on {node}"
        )
        if args.command in _NEEDS_CONFIRM and not args.confirm:
            current = {
                "status": entry.get("status"),
                "uptime": entry.get("uptime"),
                "node": node,
                "name": entry.get("name"),
            }
            return plan(args.command, target, current, _EFFECT[args.command])
        path = guest_path(node, kind, args.vmid, "status", args.command)
        return await start_task(
            ctx, args.cluster, node, "POST", path,
            wait=args.wait, timeout=args.timeout, action=args.command, target=target,
        )  # fmt: skip

    class VmCommandIn(ToolInput):
        vmid: VmidArg
        command: Literal["start", "stop", "shutdown", "reboot", "reset", "suspend", "resume"]
        node: OptNodeArg = None
        cluster: ClusterArg = None
        confirm: ConfirmArg = False
        wait: WaitArg = False
        timeout: TimeoutArg = 45

    @reg.tool(
        "execute_vm_command",
        "VM power action",
        "start/stop/shutdown/reboot/reset/suspend/resume a VM. stop/reset/shutdown/"
        "reboot/suspend need confirm=true (else a plan is returned). wait=true follows the "
        "task with progress; waits over 50 s return a task handle.",
        scope="operate",
        destructive=True,
        idempotent=False,
    )
    async def execute_vm_command(ctx: CallContext, args: VmCommandIn) -> ToolResult:
        return await power(ctx, args, "qemu")

    class LxcCommandIn(ToolInput):
        vmid: VmidArg
        command: Literal["start", "stop", "shutdown", "reboot", "suspend", "resume"]
        node: OptNodeArg = None
        cluster: ClusterArg = None
        confirm: ConfirmArg = False
        wait: WaitArg = False
        timeout: TimeoutArg = 45

    @reg.tool(
        "execute_lxc_command",
        "Container power action",
        "start/stop/shutdown/reboot/suspend/resume a container; same confirm/wait rules "
        "as execute_vm_command.",
        scope="operate",
        destructive=True,
        idempotent=False,
    )
    async def execute_lxc_command(ctx: CallContext, args: LxcCommandIn) -> ToolResult:
        return await power(ctx, args, "lxc")

    class StorageIn(ToolInput):
        cluster: ClusterArg = None
        node: OptNodeArg = None

    @reg.tool(
        "get_storage",
        "List storage",
        "Storage usage per node (type, content, used %).",
        output=list_output({"storage": "string", "node": "string", "used_pct": "number"}),
    )
    async def get_storage(ctx: CallContext, args: StorageIn) -> ToolResult:
        items, errors = [], []
        pool = ctx.gateway.pool
        if args.node is not None:
            await pool.group_for_node(pool.cluster(args.cluster), args.node)
        for group, result in await pool.request_all(
            args.cluster, "/cluster/resources", {"type": "storage"}
        ):
            if isinstance(result, ToolFailure):
                errors.append(f"{group.config.name}: {result.message}")
                continue
            for s in result or []:
                if args.node and s.get("node") != args.node:
                    continue
                if not ctx.caller.node_allowed(s.get("node")):
                    continue
                items.append(
                    {
                        "storage": s.get("storage"),
                        "node": s.get("node"),
                        "type": s.get("plugintype"),
                        "status": s.get("status"),
                        "content": s.get("content"),
                        "shared": bool(s.get("shared")),
                        "used": s.get("disk"),
                        "total": s.get("maxdisk"),
                        "used_pct": pct(s.get("disk"), s.get("maxdisk")),
                    }
                )
        items.sort(key=lambda s: (str(s["node"]), str(s["storage"])))
        return listing(items, ["storage", "node", "type", "status", "used_pct"], "storage", errors)

    class TasksIn(ToolInput):
        cluster: ClusterArg = None
        node: OptNodeArg = None
        limit: int = Field(default=20, ge=1, le=500)
        errors_only: bool = False
        vmid: int | None = Field(default=None, ge=100, le=999_999_999)

    @reg.tool(
        "get_recent_tasks",
        "Recent tasks",
        "Recent tasks (newest first) with status; filter by node, guest or failures.",
        output=list_output({"upid": "string", "type": "string", "status": "string"}),
    )
    async def get_recent_tasks(ctx: CallContext, args: TasksIn) -> ToolResult:
        pool = ctx.gateway.pool
        errors: list[str] = []
        raw: list[dict[str, Any]] = []
        if args.node:
            params: dict[str, Any] = {"limit": args.limit if not args.errors_only else 500}
            if args.errors_only:
                params["errors"] = 1
            if args.vmid:
                params["vmid"] = args.vmid
            raw = await pool.request(
                args.cluster, "GET", f"/nodes/{args.node}/tasks", params, node=args.node
            )
        else:
            for group, result in await pool.request_all(args.cluster, "/cluster/tasks"):
                if isinstance(result, ToolFailure):
                    errors.append(f"{group.config.name}: {result.message}")
                else:
                    raw.extend(result or [])
        items = []
        for t in sorted(raw, key=lambda t: -int(t.get("starttime") or 0)):
            status = t.get("status") or ("running" if not t.get("endtime") else "?")
            failed = status not in ("OK", "running") and not str(status).startswith("WARNINGS")
            if args.errors_only and not failed:
                continue
            task_vmid = int(t["id"]) if str(t.get("id") or "").isdigit() else None
            if args.vmid and task_vmid != args.vmid:
                continue
            if not ctx.caller.node_allowed(t.get("node")):
                continue
            items.append(
                {
                    "upid": t.get("upid"),
                    "node": t.get("node"),
                    "type": t.get("type"),
                    "id": t.get("id"),
                    "user": t.get("user"),
                    "status": status,
                    "starttime": t.get("starttime"),
                    "endtime": t.get("endtime"),
                }
            )
            if len(items) >= args.limit:
                break
        return listing(
            items, ["starttime", "node", "type", "id", "status", "upid"], "tasks", errors
        )

    class TaskIn(ToolInput):
        upid: str = Field(pattern=r"^UPID:[^/\s%]{20,300}$", max_length=300)
        cluster: ClusterArg = None
        wait: WaitArg = False
        timeout: TimeoutArg = 45

    @reg.tool(
        "get_task_status",
        "Task status",
        "Status of a task by UPID; wait=true follows it with progress (waits over 50 s "
        "return the handle). Failed tasks include the log tail.",
    )
    async def get_task_status(ctx: CallContext, args: TaskIn) -> ToolResult:
        from .. import validate

        node = validate.upid_node(args.upid)
        ctx.caller.require_node(node)
        if args.wait:
            status = await wait_task(ctx, args.cluster, node, args.upid, args.timeout)
        else:
            status = dict(
                await ctx.gateway.pool.request(
                    args.cluster,
                    "GET",
                    f"/nodes/{node}/tasks/{args.upid}/status",
                    node=node,
                    cache=False,
                )
            )
            if status.get("status") == "stopped":
                exit_status = str(status.get("exitstatus"))
                status["ok"] = exit_status == "OK" or exit_status.startswith("WARNINGS")
                if not status["ok"]:
                    from ._common import task_log_tail

                    status["log_tail"] = await task_log_tail(ctx, args.cluster, node, args.upid)
        text = kv_text(
            f"task {args.upid}",
            status,
            ["status", "exitstatus", "type", "id", "node", "starttime", "handle"],
        )
        if status.get("log_tail"):
            text += "\nlog tail:\n" + "\n".join(status["log_tail"])
        return ToolResult(status, text)

    class GuestIn(ToolInput):
        vmid: VmidArg
        node: OptNodeArg = None
        cluster: ClusterArg = None

    @reg.tool(
        "get_guest_status",
        "Guest status",
        "Live status of a VM or container: state, CPU, memory, uptime, HA, lock.",
    )
    async def get_guest_status(ctx: CallContext, args: GuestIn) -> ToolResult:
        node, kind, _ = await locate_guest(ctx, args.cluster, args.vmid, args.node)
        s = await ctx.gateway.pool.request(
            args.cluster, "GET", guest_path(node, kind, args.vmid, "status", "current"), node=node
        )
        data = {
            "vmid": args.vmid,
            "node": node,
            "type": kind,
            **{
                k: s.get(k)
                for k in ("name", "status", "qmpstatus", "cpus", "uptime", "lock", "ha", "tags")
                if k in s
            },
            "cpu_pct": round(100 * float(s.get("cpu") or 0), 1),
            "mem": s.get("mem"),
            "maxmem": s.get("maxmem"),
            "mem_pct": pct(s.get("mem"), s.get("maxmem")),
        }
        text = kv_text(
            f"{kind} {args.vmid} on {node}",
            data,
            ["name", "status", "cpu_pct", "mem_pct", "uptime", "lock", "ha"],
        )
        return ToolResult(data, text)

    @reg.tool(
        "get_guest_config",
        "Guest config",
        "Configuration of a VM or container (disks, network, CPU, memory); secrets masked.",
    )
    async def get_guest_config(ctx: CallContext, args: GuestIn) -> ToolResult:
        node, kind, _ = await locate_guest(ctx, args.cluster, args.vmid, args.node)
        cfg = dict(
            await ctx.gateway.pool.request(
                args.cluster, "GET", guest_path(node, kind, args.vmid, "config"), node=node
            )
        )
        for key in _SECRET_CONFIG_KEYS:
            if key in cfg:
                cfg[key] = "***"
        data = {"vmid": args.vmid, "node": node, "type": kind, "config": cfg}
        text = f"{kind} {args.vmid} on {node}\n" + "\n".join(
            f"{k}: {v}" for k, v in sorted(cfg.items()) if k != "digest"
        )
        return ToolResult(data, text)

    @reg.tool(
        "list_snapshots",
        "List snapshots",
        "Snapshots of a VM or container.",
        output=list_output({"name": "string"}),
    )
    async def list_snapshots(ctx: CallContext, args: GuestIn) -> ToolResult:
        node, kind, _ = await locate_guest(ctx, args.cluster, args.vmid, args.node)
        snaps = await ctx.gateway.pool.request(
            args.cluster, "GET", guest_path(node, kind, args.vmid, "snapshot"), node=node
        )
        items = [
            {
                "name": s.get("name"),
                "parent": s.get("parent"),
                "snaptime": s.get("snaptime"),
                "description": s.get("description"),
                "vmstate": s.get("vmstate"),
            }
            for s in snaps or []
            if s.get("name") != "current"
        ]
        return listing(
            items, ["name", "parent", "snaptime", "description"], f"snapshots of {args.vmid}"
        )

    class SnapCreateIn(ToolInput):
        vmid: VmidArg
        name: SnapArg
        description: str = Field(default="", max_length=512)
        vmstate: bool = Field(default=False, description="VMs: include RAM")
        node: OptNodeArg = None
        cluster: ClusterArg = None
        wait: WaitArg = False
        timeout: TimeoutArg = 45

    @reg.tool(
        "create_snapshot",
        "Create snapshot",
        "Take a snapshot of a VM or container.",
        scope="operate",
        idempotent=False,
    )
    async def create_snapshot(ctx: CallContext, args: SnapCreateIn) -> ToolResult:
        node, kind, _ = await locate_guest(ctx, args.cluster, args.vmid, args.node)
        params: dict[str, Any] = {"snapname": args.name}
        if args.description:
            params["description"] = args.description
        if args.vmstate and kind == "qemu":
            params["vmstate"] = 1
        return await start_task(
            ctx, args.cluster, node, "POST", guest_path(node, kind, args.vmid, "snapshot"), params,
            wait=args.wait, timeout=args.timeout, action="snapshot",
            target=f"{args.vmid}@{args.name}",
        )  # fmt: skip

    class SnapIn(ToolInput):
        vmid: VmidArg
        name: SnapArg
        node: OptNodeArg = None
        cluster: ClusterArg = None
        confirm: ConfirmArg = False
        wait: WaitArg = False
        timeout: TimeoutArg = 45

    async def snapshot_action(ctx: CallContext, args: SnapIn, action: str) -> ToolResult:
        node, kind, entry = await locate_guest(ctx, args.cluster, args.vmid, args.node)
        pool = ctx.gateway.pool
        snaps = await pool.request(
            args.cluster, "GET", guest_path(node, kind, args.vmid, "snapshot"), node=node
        )
        names = [s.get("name") for s in snaps or [] if s.get("name") != "current"]
        if args.name not in names:
            raise ToolFailure(
                f"guest {args.vmid} has no snapshot {args.name!r} "
                f"(has: {', '.join(map(str, names)) or 'none'})",
                code=404,
            )
        target = f"{args.vmid}@{args.name}"
        if not args.confirm:
            effect = (
                "guest disks and config go back to the snapshot; changes since are lost"
                if action == "rollback"
                else "the snapshot is deleted permanently"
            )
            return plan(
                action,
                target,
                {"status": entry.get("status"), "node": node, "snapshots": names},
                effect,
            )
        if action == "rollback":
            method = "POST"
            path = guest_path(node, kind, args.vmid, "snapshot", args.name, "rollback")
        else:
            method = "DELETE"
            path = guest_path(node, kind, args.vmid, "snapshot", args.name)
        return await start_task(
            ctx, args.cluster, node, method, path,
            wait=args.wait, timeout=args.timeout, action=action, target=target,
        )  # fmt: skip

    @reg.tool(
        "rollback_snapshot",
        "Roll back snapshot",
        "Roll a guest back to a snapshot (needs confirm=true, else a plan).",
        scope="operate",
        destructive=True,
        idempotent=False,
    )
    async def rollback_snapshot(ctx: CallContext, args: SnapIn) -> ToolResult:
        return await snapshot_action(ctx, args, "rollback")

    @reg.tool(
        "delete_snapshot",
        "Delete snapshot",
        "Delete a snapshot (needs confirm=true, else a plan).",
        scope="operate",
        destructive=True,
        idempotent=False,
    )
    async def delete_snapshot(ctx: CallContext, args: SnapIn) -> ToolResult:
        return await snapshot_action(ctx, args, "delete")

    class BackupIn(ToolInput):
        vmid: VmidArg
        storage: str | None = Field(
            default=None, pattern=r"^[a-zA-Z][a-zA-Z0-9_.-]{0,62}[a-zA-Z0-9]$"
        )
        mode: Literal["snapshot", "suspend", "stop"] = "snapshot"
        compress: Literal["zstd", "lzo", "gzip", "0"] = "zstd"
        notes: str = Field(default="", max_length=256)
        node: OptNodeArg = None
        cluster: ClusterArg = None
        wait: WaitArg = False
        timeout: TimeoutArg = 45

    @reg.tool(
        "create_backup",
        "Back up guest",
        "Start a vzdump backup of one guest (mode stop briefly stops it).",
        scope="operate",
        idempotent=False,
    )
    async def create_backup(ctx: CallContext, args: BackupIn) -> ToolResult:
        node, _, _ = await locate_guest(ctx, args.cluster, args.vmid, args.node)
        params: dict[str, Any] = {
            "vmid": str(args.vmid),
            "mode": args.mode,
            "compress": args.compress,
        }
        if args.storage:
            params["storage"] = args.storage
        if args.notes:
            params["notes-template"] = args.notes
        return await start_task(
            ctx, args.cluster, node, "POST", f"/nodes/{node}/vzdump", params,
            wait=args.wait, timeout=args.timeout, action="backup", target=f"{args.vmid} on {node}",
        )  # fmt: skip

    class MigrateIn(ToolInput):
        vmid: VmidArg
        target: NodeArg
        online: bool = Field(default=True, description="Live-migrate / restart-migrate")
        node: OptNodeArg = None
        cluster: ClusterArg = None
        confirm: ConfirmArg = False
        wait: WaitArg = False
        timeout: TimeoutArg = 45

    @reg.tool(
        "migrate_guest",
        "Migrate guest",
        "Move a VM or container to another node of the same cluster (needs confirm=true).",
        scope="operate",
        destructive=True,
        idempotent=False,
    )
    async def migrate_guest(ctx: CallContext, args: MigrateIn) -> ToolResult:
        node, kind, entry = await locate_guest(ctx, args.cluster, args.vmid, args.node)
        ctx.caller.require_node(args.target)
        pool = ctx.gateway.pool
        cluster = pool.cluster(args.cluster)
        src_group = await pool.group_for_node(cluster, node)
        dst_group = await pool.group_for_node(cluster, args.target)
        if src_group is not dst_group or not src_group.config.clustered:
            raise ToolFailure(f"{node} and {args.target} are not in the same PVE cluster", 400)
        if args.target == node:
            raise ToolFailure(f"guest {args.vmid} is already on {node}", 400)
        running = entry.get("status") == "running"
        if not args.confirm:
            how = (
                ("live migration" if kind == "qemu" else "restart migration")
                if (running and args.online)
                else "offline migration"
            )
            return plan(
                "migrate",
                f"{args.vmid} {node} -> {args.target}",
                {"status": entry.get("status"), "node": node, "name": entry.get("name")},
                f"{how} to {args.target}",
            )
        params: dict[str, Any] = {"target": args.target}
        if running and args.online:
            params["online" if kind == "qemu" else "restart"] = 1
        return await start_task(
            ctx, args.cluster, node, "POST", guest_path(node, kind, args.vmid, "migrate"), params,
            wait=args.wait, timeout=args.timeout, action="migrate",
            target=f"{args.vmid} {node} -> {args.target}",
        )  # fmt: skip

    class LogIn(ToolInput):
        cluster: ClusterArg = None
        limit: int = Field(default=50, ge=1, le=500)

    @reg.tool(
        "get_cluster_log",
        "Cluster log",
        "Most recent cluster log entries.",
        output=list_output({"msg": "string", "node": "string"}),
    )
    async def get_cluster_log(ctx: CallContext, args: LogIn) -> ToolResult:
        items, errors = [], []
        for group, result in await ctx.gateway.pool.request_all(
            args.cluster, "/cluster/log", {"max": args.limit}
        ):
            if isinstance(result, ToolFailure):
                errors.append(f"{group.config.name}: {result.message}")
                continue
            items += [
                {k: e.get(k) for k in ("time", "node", "tag", "pri", "user", "msg")}
                for e in result or []
                if ctx.caller.node_allowed(e.get("node"))
            ]
        items.sort(key=lambda e: -int(e.get("time") or 0))
        items = items[: args.limit]
        text = f"cluster log ({len(items)})\n" + "\n".join(
            f"{time.strftime('%m-%d %H:%M:%S', time.gmtime(int(e.get('time') or 0)))} "
            f"{e.get('node')} {e.get('tag')}: {e.get('msg')}"
            for e in items
        )
        data: dict[str, Any] = {"items": items, "count": len(items)}
        if errors:
            data["errors"] = errors
        return ToolResult(data, text)

    @reg.tool(
        "get_ha_status",
        "HA status",
        "HA manager state: quorum, master, services.",
        output=list_output({"id": "string", "state": "string"}),
    )
    async def get_ha_status(ctx: CallContext, args: ClusterIn) -> ToolResult:
        result = await ctx.gateway.pool.request(args.cluster, "GET", "/cluster/ha/status/current")
        items = [
            {
                k: e.get(k)
                for k in (
                    "id",
                    "type",
                    "node",
                    "status",
                    "state",
                    "sid",
                    "crm_state",
                    "request_state",
                    "quorate",
                )
            }
            for e in result or []
        ]
        return listing(items, ["id", "type", "node", "state", "status"], "HA status")

    @reg.tool(
        "list_clusters",
        "List clusters",
        "Configured clusters/sites, their endpoints and circuit-breaker state.",
        open_world=False,
    )
    async def list_clusters(ctx: CallContext, args: ToolInput) -> ToolResult:
        pool = ctx.gateway.pool
        status = pool.endpoint_status()
        clusters: list[dict[str, Any]] = []
        for name, c in pool.clusters.items():
            if (
                ctx.caller.token
                and ctx.caller.token.clusters is not None
                and name not in ctx.caller.token.clusters
            ):
                continue
            clusters.append(
                {
                    "name": name,
                    "mode": c.config.mode,
                    "groups": [
                        {
                            "name": g.config.name,
                            "clustered": g.config.clustered,
                            "nodes": sorted(g.nodes),
                        }
                        for g in c.groups
                    ],
                    "pbs": list(c.pbs),
                    "endpoints": [s for s in status if s["cluster"] == name],
                }
            )
        lines = []
        for entry in clusters:
            lines.append(f"{entry['name']} ({entry['mode']}) pbs={','.join(entry['pbs']) or '-'}")
            lines.extend(
                f"  {e['endpoint']} {e['address']} {e['state']}"
                + (f" last_error={e['last_error']}" if e["state"] != "closed" else "")
                for e in entry["endpoints"]
            )
        return ToolResult(
            {"clusters": clusters, "default": pool.default_cluster},
            "\n".join(lines) or "no clusters configured",
        )

    class ConnIn(ToolInput):
        cluster: ClusterArg = None

    @reg.tool(
        "test_connectivity",
        "Test connectivity",
        "Probe every API endpoint (PVE and PBS): version, latency, breaker state.",
    )
    async def test_connectivity(ctx: CallContext, args: ConnIn) -> ToolResult:
        import asyncio

        pool = ctx.gateway.pool
        names = [args.cluster] if args.cluster else list(pool.clusters)
        results: list[dict[str, Any]] = []

        async def probe(cname: str, client: Any) -> None:
            started = time.perf_counter()
            try:
                version = await pool._with_retries([client], "GET", "/version", None, None)
                results.append(
                    {
                        "cluster": cname,
                        "endpoint": client.endpoint.name,
                        "ok": True,
                        "version": (version or {}).get("version"),
                        "latency_ms": round((time.perf_counter() - started) * 1000, 1),
                        "state": client.breaker.state,
                    }
                )
            except ToolFailure as exc:
                results.append(
                    {
                        "cluster": cname,
                        "endpoint": client.endpoint.name,
                        "ok": False,
                        "error": exc.message,
                        "state": client.breaker.state,
                    }
                )

        jobs = []
        for cname in names:
            c = pool.cluster(cname)
            jobs += [probe(cname, cl) for g in c.groups for cl in g.clients]
            jobs += [probe(cname, cl) for cl in c.pbs.values()]
        await asyncio.gather(*jobs)
        ok = sum(1 for r in results if r["ok"])
        text = f"{ok}/{len(results)} endpoints answer\n" + "\n".join(
            f"{r['cluster']}/{r['endpoint']}: "
            + (f"OK {r['version']} {r['latency_ms']}ms" if r["ok"] else f"FAIL {r['error']}")
            for r in results
        )
        return ToolResult({"items": results, "ok": ok, "count": len(results)}, text)

    @reg.tool(
        "run_diagnostic",
        "Run diagnostic",
        "Health check of a cluster: quorum, offline nodes, CPU/RAM/storage pressure, "
        "failed tasks, HA errors, unreachable endpoints. Findings sorted by severity.",
    )
    async def run_diagnostic(ctx: CallContext, args: ClusterIn) -> ToolResult:
        pool = ctx.gateway.pool
        name = pool.cluster(args.cluster).config.name
        findings: list[dict[str, Any]] = []

        def add(sev: str, what: str) -> None:
            findings.append({"severity": sev, "finding": what})

        for e in pool.endpoint_status():
            if e["cluster"] == name and e["state"] != "closed":
                add("warning", f"endpoint {e['endpoint']} is {e['state']}: {e['last_error']}")
        for group, res in await pool.request_all(args.cluster, "/cluster/status"):
            if isinstance(res, ToolFailure):
                add("error", f"{group.config.name}: {res.message}")
                continue
            for item in res or []:
                if item.get("type") == "cluster" and not item.get("quorate"):
                    add("critical", f"cluster {item.get('name')} has lost quorum")
                if item.get("type") == "node" and not item.get("online"):
                    add("error", f"node {item.get('name')} is offline")
        for _, res in await pool.request_all(args.cluster, "/cluster/resources"):
            if isinstance(res, ToolFailure):
                continue
            for r in res or []:
                if r.get("type") == "node" and r.get("status") == "online":
                    m = pct(r.get("mem"), r.get("maxmem")) or 0
                    if m >= 90:
                        add("warning", f"node {r.get('node')} memory at {m}%")
                    if float(r.get("cpu") or 0) >= 0.9:
                        add("warning", f"node {r.get('node')} CPU at {100 * float(r['cpu']):.0f}%")
                if r.get("type") == "storage" and r.get("status") == "available":
                    u = pct(r.get("disk"), r.get("maxdisk")) or 0
                    if u >= 85:
                        add(
                            "error" if u >= 95 else "warning",
                            f"storage {r.get('storage')} on {r.get('node')} at {u}%",
                        )
        for _, res in await pool.request_all(args.cluster, "/cluster/tasks"):
            if isinstance(res, ToolFailure):
                continue
            cutoff = time.time() - 86400
            for t in res or []:
                st = str(t.get("status") or "")
                if (
                    st
                    and st != "OK"
                    and not st.startswith("WARNINGS")
                    and int(t.get("starttime") or 0) >= cutoff
                ):
                    add(
                        "warning",
                        f"task {t.get('type')} {t.get('id') or ''} on {t.get('node')} failed: {st}",
                    )
        try:
            for h in await pool.request(args.cluster, "GET", "/cluster/ha/status/current") or []:
                if h.get("type") == "service" and h.get("state") in ("error", "fence", "recovery"):
                    add("error", f"HA service {h.get('sid')} is in state {h.get('state')}")
        except ToolFailure:
            pass
        order = {"critical": 0, "error": 1, "warning": 2, "info": 3}
        findings.sort(key=lambda f: order.get(f["severity"], 9))
        healthy = not any(f["severity"] in ("critical", "error") for f in findings)
        text = (
            f"cluster {name}: {'healthy' if healthy else 'PROBLEMS'} ({len(findings)} findings)\n"
        )
        text += "\n".join(f"[{f['severity']}] {f['finding']}" for f in findings) or "no findings"
        return ToolResult({"cluster": name, "healthy": healthy, "findings": findings}, text)

    @reg.tool(
        "whoami",
        "Who am I",
        "The caller's gateway scopes/allowlists and the Proxmox API token's real "
        "permissions (/access/permissions).",
    )
    async def whoami(ctx: CallContext, args: ClusterIn) -> ToolResult:
        c = ctx.caller
        perms = await ctx.gateway.pool.request(args.cluster, "GET", "/access/permissions")
        token = c.token
        data = {
            "caller": c.name,
            "transport": c.transport,
            "scopes": sorted(c.scopes),
            "allowlists": {
                "clusters": sorted(token.clusters) if token and token.clusters else None,
                "nodes": sorted(token.nodes) if token and token.nodes else None,
                "vmids": [list(r) for r in token.vmids] if token and token.vmids else None,
                "tools": sorted(token.tools) if token and token.tools else None,
            },
            "read_only": ctx.gateway.settings.read_only,
            "proxmox_permissions": perms,
        }
        lines = [
            f"caller {c.name} via {c.transport}: scopes {'+'.join(sorted(c.scopes))}",
            "proxmox token permissions:",
        ]
        for path, privs in sorted((perms or {}).items()):
            lines.append(f"  {path}: {','.join(sorted(k for k, v in privs.items() if v))}")
        return ToolResult(data, "\n".join(lines))

    _ = fmt_bytes  # kept for renderers of other modules
