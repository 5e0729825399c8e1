"""A task's full log and cancelling a running task (PVE and PBS).

``GET /nodes/{node}/tasks/{upid}/log`` pages with ``start``/``limit``; ``DELETE
/nodes/{node}/tasks/{upid}`` stops a task (pve-manager ``PVE/API2/Tasks.pm``, proxmox-backup
``src/api2/node/tasks.rs``). A PBS UPID has one field more than a PVE one; PBS tasks live
under ``/nodes/localhost``.
"""

from typing import Any

from pydantic import Field

from .. import validate
from ..registry import CallContext, Registry, ToolInput, ToolResult
from ._common import plan
from ._compact import ACT_OUT, Cluster, Confirm, Server, Upid, typed_out


def is_pbs_upid(upid: str) -> bool:
    """PBS: ``UPID:node:pid:pstart:task_id:starttime:type:id:user:`` (one field more)."""
    return upid.count(":") == 9


async def _request(
    ctx: CallContext,
    cluster: str | None,
    server: str | None,
    method: str,
    upid: str,
    suffix: str = "",
    params: dict[str, Any] | None = None,
) -> Any:
    node = validate.upid_node(upid)
    pool = ctx.gateway.pool
    if is_pbs_upid(upid):
        return await pool.pbs_request(
            cluster, server, method, f"/nodes/localhost/tasks/{upid}{suffix}", params
        )
    ctx.caller.require_node(node)
    return await pool.request(
        cluster, method, f"/nodes/{node}/tasks/{upid}{suffix}", params, node=node, cache=False
    )


def register(reg: Registry) -> None:
    class LogIn(ToolInput):
        upid: Upid
        start: int = Field(default=0, ge=0, le=10_000_000)
        limit: int = Field(default=500, ge=1, le=5000)
        cluster: Cluster = None
        server: Server = None

    @reg.tool("Task log", output=typed_out(lines="array", count="integer"))
    async def get_task_log(ctx: CallContext, args: LogIn) -> ToolResult:
        """Full log of a PVE/PBS task by UPID (lines start..start+limit)."""
        validate.upid(args.upid)
        entries = await _request(
            ctx,
            args.cluster,
            args.server,
            "GET",
            args.upid,
            "/log",
            {"start": args.start, "limit": args.limit},
        )
        lines = [str(e.get("t", "")) for e in entries or []]
        status = await _request(ctx, args.cluster, args.server, "GET", args.upid, "/status")
        # a full page may have more after it (the API's total is not passed on)
        next_start = args.start + len(lines) if len(lines) >= args.limit else None
        data = {
            "upid": args.upid,
            "status": status.get("status"),
            "exitstatus": status.get("exitstatus"),
            "start": args.start,
            "lines": lines,
            "count": len(lines),
            "next_start": next_start,
        }
        head = (
            f"task {args.upid} ({status.get('status')} {status.get('exitstatus') or ''})".rstrip()
        )
        text = head + "\n" + "\n".join(lines)
        if next_start is not None:
            text += f"\n... more may follow: call again with start={next_start}"
        return ToolResult(data, text)

    class CancelIn(ToolInput):
        upid: Upid
        cluster: Cluster = None
        server: Server = None
        confirm: Confirm = False

    @reg.tool("Cancel task", scope="operate", destructive=True, output=ACT_OUT)
    async def cancel_task(ctx: CallContext, args: CancelIn) -> ToolResult:
        """Stop a running PVE/PBS task (confirm=true, else a plan)."""
        validate.upid(args.upid)
        status = await _request(ctx, args.cluster, args.server, "GET", args.upid, "/status")
        task = {
            k: status.get(k) for k in ("type", "id", "node", "status", "exitstatus", "starttime")
        }
        if status.get("status") != "running":
            data = {
                "action": "cancel",
                "target": args.upid,
                "executed": False,
                "status": "not running",
                "task": task,
            }
            return ToolResult(data, f"task {args.upid} is not running ({status.get('exitstatus')})")
        if not args.confirm:
            return plan(
                "cancel", args.upid, task, "the task is interrupted; its work may be left half done"
            )
        await _request(ctx, args.cluster, args.server, "DELETE", args.upid)
        data = {
            "action": "cancel",
            "target": args.upid,
            "executed": True,
            "status": "stopped",
            "task": task,
        }
        return ToolResult(data, f"task {args.upid} stopped")
