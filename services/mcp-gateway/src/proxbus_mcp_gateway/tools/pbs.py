"""PBS tools: datastores, backups with verification state, tasks, GC and verify jobs."""

from typing import Annotated, Any

from pydantic import Field

from ..errors import ToolFailure
from ..registry import CallContext, Registry, ToolInput, ToolResult, list_output
from ._common import ClusterArg, StoreArg, TimeoutArg, WaitArg, listing, pct, task_result, wait_task

ServerArg = Annotated[
    str | None,
    Field(
        default=None,
        pattern=r"^[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?$",
        description="PBS server; default: first",
    ),
]


def register(reg: Registry) -> None:
    class ServerIn(ToolInput):
        cluster: ClusterArg = None
        server: ServerArg = None

    @reg.tool("PBS datastores", output=list_output({"store": "string", "used_pct": "number"}))
    async def pbs_list_datastores(ctx: CallContext, args: ServerIn) -> ToolResult:
        """Datastores of a PBS server with usage."""
        pool = ctx.gateway.pool
        stores = await pool.pbs_request(args.cluster, args.server, "GET", "/admin/datastore")
        try:
            usage = {
                u.get("store"): u
                for u in await pool.pbs_request(
                    args.cluster, args.server, "GET", "/status/datastore-usage"
                )
                or []
            }
        except ToolFailure:
            usage = {}
        items = []
        for s in stores or []:
            u = usage.get(s.get("store"), {})
            items.append(
                {
                    "store": s.get("store"),
                    "comment": s.get("comment"),
                    "used": u.get("used"),
                    "total": u.get("total"),
                    "used_pct": pct(u.get("used"), u.get("total")),
                }
            )
        return listing(items, ["store", "used_pct", "comment"], "datastores")

    class StoreIn(ToolInput):
        store: StoreArg
        cluster: ClusterArg = None
        server: ServerArg = None

    @reg.tool("PBS datastore status")
    async def pbs_datastore_status(ctx: CallContext, args: StoreIn) -> ToolResult:
        """Size, usage and GC status of one PBS datastore."""
        pool = ctx.gateway.pool
        s = await pool.pbs_request(
            args.cluster, args.server, "GET", f"/admin/datastore/{args.store}/status"
        )
        data = dict(s or {})
        data["store"] = args.store
        data["used_pct"] = pct(data.get("used"), data.get("total"))
        text = (
            f"datastore {args.store}: used {data['used_pct']}% "
            + f"(used={data.get('used')} total={data.get('total')} avail={data.get('avail')})"
        )
        gc = data.get("gc-status")
        if isinstance(gc, dict):
            text += (
                f"\nlast GC: removed={gc.get('removed-bytes')} pending={gc.get('pending-bytes')}"
            )
        return ToolResult(data, text)

    class BackupsIn(ToolInput):
        store: StoreArg
        group: str | None = Field(
            default=None, pattern=r"^(vm|ct|host)/[A-Za-z0-9_.-]{1,64}$", description="e.g. vm/100"
        )
        groups_only: bool = Field(default=False, description="List backup groups instead")
        limit: int = Field(default=50, ge=1, le=1000)
        cluster: ClusterArg = None
        server: ServerArg = None

    @reg.tool("PBS backups", output=list_output({"backup-id": "string", "verify": "string"}))
    async def pbs_list_backups(ctx: CallContext, args: BackupsIn) -> ToolResult:
        """Backup snapshots (newest first) with size and verification state, or groups."""
        pool = ctx.gateway.pool
        if args.groups_only:
            groups = await pool.pbs_request(
                args.cluster, args.server, "GET", f"/admin/datastore/{args.store}/groups"
            )
            items = [
                {
                    "group": f"{g.get('backup-type')}/{g.get('backup-id')}",
                    "last_backup": g.get("last-backup"),
                    "count": g.get("backup-count"),
                    "owner": g.get("owner"),
                }
                for g in groups or []
            ]
            return listing(items[: args.limit], ["group", "count", "last_backup"], "backup groups")
        params: dict[str, Any] = {}
        if args.group:
            btype, bid = args.group.split("/", 1)
            params = {"backup-type": btype, "backup-id": bid}
        snaps = await pool.pbs_request(
            args.cluster, args.server, "GET", f"/admin/datastore/{args.store}/snapshots", params
        )
        items = []
        for s in sorted(snaps or [], key=lambda s: -int(s.get("backup-time") or 0)):
            verification = s.get("verification") or {}
            items.append(
                {
                    "backup-type": s.get("backup-type"),
                    "backup-id": s.get("backup-id"),
                    "backup-time": s.get("backup-time"),
                    "size": s.get("size"),
                    "verify": verification.get("state") or "none",
                    "protected": s.get("protected"),
                }
            )
        items = items[: args.limit]
        failed = sum(1 for i in items if i["verify"] == "failed")
        res = listing(
            items,
            ["backup-type", "backup-id", "backup-time", "size", "verify"],
            f"backups in {args.store}",
        )
        res.data["verify_failed"] = failed
        return res

    class PbsTasksIn(ToolInput):
        limit: int = Field(default=20, ge=1, le=500)
        errors_only: bool = False
        cluster: ClusterArg = None
        server: ServerArg = None

    @reg.tool("PBS tasks", output=list_output({"upid": "string", "status": "string"}))
    async def pbs_get_tasks(ctx: CallContext, args: PbsTasksIn) -> ToolResult:
        """Recent PBS tasks (backup, GC, verify, sync, prune)."""
        params: dict[str, Any] = {"limit": args.limit}
        if args.errors_only:
            params["errors"] = 1
        tasks = await ctx.gateway.pool.pbs_request(
            args.cluster, args.server, "GET", "/nodes/localhost/tasks", params
        )
        items = [
            {
                "upid": t.get("upid"),
                "type": t.get("worker_type"),
                "id": t.get("worker_id"),
                "user": t.get("user"),
                "starttime": t.get("starttime"),
                "status": t.get("status") or ("running" if not t.get("endtime") else "?"),
            }
            for t in tasks or []
        ]
        return listing(items, ["starttime", "type", "id", "status", "upid"], "PBS tasks")

    class JobIn(ToolInput):
        store: StoreArg
        cluster: ClusterArg = None
        server: ServerArg = None
        wait: WaitArg = False
        timeout: TimeoutArg = 45

    async def start_job(ctx: CallContext, args: JobIn, job: str) -> ToolResult:
        pool = ctx.gateway.pool
        upid = str(
            await pool.pbs_request(
                args.cluster, args.server, "POST", f"/admin/datastore/{args.store}/{job}"
            )
        )
        status = None
        if args.wait:
            status = await wait_task(
                ctx,
                args.cluster,
                "localhost",
                upid,
                args.timeout,
                product="pbs",
                server=args.server,
            )
        return task_result(
            "garbage collection" if job == "gc" else "verify", args.store, upid, status
        )

    @reg.tool("PBS garbage collection", scope="operate", idempotent=False)
    async def pbs_start_gc(ctx: CallContext, args: JobIn) -> ToolResult:
        """Start garbage collection on a PBS datastore."""
        return await start_job(ctx, args, "gc")

    @reg.tool("PBS verify", scope="operate", idempotent=False)
    async def pbs_start_verify(ctx: CallContext, args: JobIn) -> ToolResult:
        """Start verification of a PBS datastore."""
        return await start_job(ctx, args, "verify")
