"""PVE inventory tools: cluster status, nodes, VMs, containers, storage."""

from typing import Any, Literal

from pydantic import Field

from ..registry import CallContext, Registry, ToolInput, ToolResult, list_output
from ._common import (
    ClusterArg,
    ClusterIn,
    DerivedMemo,
    GuestKind,
    NodeArg,
    OptNodeArg,
    answered,
    kv_text,
    listing,
    pct,
)
from ._compact import shape


def register(reg: Registry) -> None:
    @reg.tool(
        "Cluster status",
        output={
            "type": "object",
            "properties": {"nodes": {"type": "array"}, "quorate": {"type": ["boolean", "null"]}},
        },
    )
    async def get_cluster_status(ctx: CallContext, args: ClusterIn) -> ToolResult:
        """Quorum and node membership of a cluster (standalone nodes listed too)."""
        pool = ctx.gateway.pool
        name = pool.cluster(args.cluster).config.name
        nodes: list[dict[str, Any]] = []
        clusters: list[dict[str, Any]] = []
        answers, errors = answered(
            await pool.request_all(args.cluster, "/cluster/status"), "reading the cluster status"
        )
        for _, result in answers:
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

    @reg.tool("List nodes", output=list_output({"node": "string", "status": "string"}))
    async def get_nodes(ctx: CallContext, args: ClusterIn) -> ToolResult:
        """Nodes with status, CPU, memory and uptime."""
        items = []
        answers, errors = answered(
            await ctx.gateway.pool.request_all(args.cluster, "/nodes"), "listing nodes"
        )
        for _, result in answers:
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

    # pve-manager PVE/API2/Nodes.pm ``status`` (returns in the API schema): cpu, loadavg
    # (3 strings), memory/rootfs {used,total} bytes, uptime s, pveversion; all keys below are
    # in every answer, null where the node left a field out.
    @reg.tool(
        "Node status",
        output=shape(
            "node cpu_pct mem_pct rootfs_pct uptime pveversion",
            node="string",
            cpu_pct="number",
            mem_pct="number?",
            rootfs_pct="number?",
            uptime="integer?",
            pveversion="string?",
        ),
    )
    async def get_node_status(ctx: CallContext, args: NodeIn) -> ToolResult:
        """One node's CPU, load, memory, root disk, uptime and versions."""
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

    memo = DerivedMemo()

    async def guest_list(ctx: CallContext, args: GuestListIn, kind: GuestKind) -> ToolResult:
        items = []
        pool = ctx.gateway.pool
        if args.node is not None:
            await pool.group_for_node(pool.cluster(args.cluster), args.node)
        answers = await pool.request_all(args.cluster, "/cluster/resources", {"type": "vm"})
        sources = tuple(result for _, result in answers)
        key = (kind, args.cluster, args.node, args.status, args.tag, ctx.caller.allowlist_key)
        if (done := memo.get(key, sources)) is not None:
            return done
        good, errors = answered(answers, "listing guests")
        for _, result in good:
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
        cols = ["vmid", "name", "node", "status", "cpu_pct", "maxmem"]
        done = listing(items, cols, what, errors)
        memo.put(key, sources, done)
        return done

    @reg.tool(
        "List VMs",
        output=list_output(
            {"vmid": "integer", "name": "string", "node": "string", "status": "string"}
        ),
    )
    async def get_vms(ctx: CallContext, args: GuestListIn) -> ToolResult:
        """QEMU VMs; no cluster: of every cluster."""
        return await guest_list(ctx, args, "qemu")

    @reg.tool(
        "List containers",
        output=list_output(
            {"vmid": "integer", "name": "string", "node": "string", "status": "string"}
        ),
    )
    async def get_lxcs(ctx: CallContext, args: GuestListIn) -> ToolResult:
        """LXC containers; no cluster: of every cluster."""
        return await guest_list(ctx, args, "lxc")

    class StorageIn(ToolInput):
        cluster: ClusterArg = None
        node: OptNodeArg = None

    @reg.tool(
        "List storage",
        output=list_output({"storage": "string", "node": "string", "used_pct": "number"}),
    )
    async def get_storage(ctx: CallContext, args: StorageIn) -> ToolResult:
        """Storage usage per node (type, content, used %)."""
        items = []
        pool = ctx.gateway.pool
        if args.node is not None:
            await pool.group_for_node(pool.cluster(args.cluster), args.node)
        answers, errors = answered(
            await pool.request_all(args.cluster, "/cluster/resources", {"type": "storage"}),
            "listing storage",
        )
        for _, result in answers:
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
