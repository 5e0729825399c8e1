"""PVE task tools: recent tasks, one task's status, the cluster log."""

import time
from typing import Any

from pydantic import Field

from ..registry import CallContext, Registry, ToolInput, ToolResult, list_output
from ._common import (
    ClusterArg,
    OptNodeArg,
    TimeoutArg,
    WaitArg,
    answered,
    kv_text,
    listing,
    wait_task,
)
from ._compact import typed_out


def register(reg: Registry) -> None:
    class TasksIn(ToolInput):
        cluster: ClusterArg = None
        node: OptNodeArg = None
        limit: int = Field(default=20, ge=1, le=500)
        errors_only: bool = False
        vmid: int | None = Field(default=None, ge=100, le=999_999_999)

    @reg.tool(
        "Recent tasks", output=list_output({"upid": "string", "type": "string", "status": "string"})
    )
    async def get_recent_tasks(ctx: CallContext, args: TasksIn) -> ToolResult:
        """Recent tasks (newest first) with status."""
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
            answers, errors = answered(
                await pool.request_all(args.cluster, "/cluster/tasks"), "listing tasks"
            )
            for _, result in answers:
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

    @reg.tool("Task status", output=typed_out(status="string"))
    async def get_task_status(ctx: CallContext, args: TaskIn) -> ToolResult:
        """Status of a task by UPID (failed: with log tail); wait=true: follow with progress (over
        50 s: the handle).
        """
        from .. import validate
        from .task_control import is_pbs_upid

        node = validate.upid_node(args.upid)
        # A PBS task handle (pbs_start_gc / pbs_start_verify): PBS serves it under
        # /nodes/localhost (proxmox-backup src/api2/node/tasks.rs), not a PVE node.
        product = "pbs" if is_pbs_upid(args.upid) else "pve"
        if product == "pbs":
            node = "localhost"
        else:
            ctx.caller.require_node(node)
        path = f"/nodes/{node}/tasks/{args.upid}/status"
        pool = ctx.gateway.pool
        if args.wait:
            status = await wait_task(
                ctx, args.cluster, node, args.upid, args.timeout, product=product
            )
        else:
            if product == "pbs":
                raw = await pool.pbs_request(args.cluster, None, "GET", path)
            else:
                raw = await pool.request(args.cluster, "GET", path, node=node, cache=False)
            status = dict(raw)
            if status.get("status") == "stopped":
                exit_status = str(status.get("exitstatus"))
                status["ok"] = exit_status == "OK" or exit_status.startswith("WARNINGS")
                if not status["ok"]:
                    from ._common import task_log_tail

                    status["log_tail"] = await task_log_tail(
                        ctx, args.cluster, node, args.upid, product
                    )
        text = kv_text(
            f"task {args.upid}",
            status,
            ["status", "exitstatus", "type", "id", "node", "starttime", "handle"],
        )
        if status.get("log_tail"):
            text += "\nlog tail:\n" + "\n".join(status["log_tail"])
        return ToolResult(status, text)

    class LogIn(ToolInput):
        cluster: ClusterArg = None
        limit: int = Field(default=50, ge=1, le=500)

    @reg.tool("Cluster log", output=list_output({"msg": "string", "node": "string"}))
    async def get_cluster_log(ctx: CallContext, args: LogIn) -> ToolResult:
        """Most recent cluster log entries."""
        items: list[dict[str, Any]] = []
        answers, errors = answered(
            await ctx.gateway.pool.request_all(args.cluster, "/cluster/log", {"max": args.limit}),
            "reading the cluster log",
        )
        for _, result in answers:
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
