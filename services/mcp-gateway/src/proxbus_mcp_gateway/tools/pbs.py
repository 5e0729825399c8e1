"""PBS tools: datastores, backups with verification state, tasks, GC and verify jobs."""

from typing import Annotated, Any

from pydantic import Field

from .. import validate
from ..errors import NotFound, ToolFailure
from ..registry import CallContext, Registry, ToolInput, ToolResult, list_output
from ._common import (
    NODE_NAME,
    ClusterArg,
    StoreArg,
    TimeoutArg,
    WaitArg,
    listing,
    pct,
    task_result,
    wait_task,
)
from ._compact import ACT_OUT, Ns, shape

# At most this many namespaces are read by one recursive listing (one request each).
MAX_LISTED_NAMESPACES = 100

ServerArg = Annotated[
    str | None,
    Field(default=None, max_length=63, description="PBS server; default: first"),
    NODE_NAME,
]


def ns_params(ns: str) -> dict[str, Any]:
    """``{"ns": ns}``, or nothing for the root (requests at the root stay as before)."""
    return {"ns": ns} if ns else {}


async def ns_read(
    ctx: CallContext,
    cluster: str | None,
    server: str | None,
    store: str,
    path: str,
    ns: str,
    params: dict[str, Any] | None = None,
) -> Any:
    """GET a datastore listing in namespace ``ns``. PBS answers a namespace that does not
    exist with a bare ``400 ENOENT`` (pbs-datastore src/hierarchy.rs ``ListGroups::new``):
    that becomes a 404 naming the namespace.

    Raises:
        NotFound: no such namespace.
        ToolFailure: any other failure.
    """
    try:
        return await ctx.gateway.pool.pbs_request(
            cluster,
            server,
            "GET",
            f"/admin/datastore/{store}/{path}",
            {**(params or {}), **ns_params(ns)},
        )
    except ToolFailure as exc:
        if ns and exc.code == 400 and "ENOENT" in exc.message:
            raise NotFound(f"namespace {ns!r} does not exist in datastore {store}") from None
        raise


def register(reg: Registry) -> None:
    class ServerIn(ToolInput):
        cluster: ClusterArg = None
        server: ServerArg = None

    @reg.tool(
        "PBS datastores", output=list_output({"store": "string", "used_pct": "number"}, False)
    )
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

    # proxmox-backup src/api2/admin/datastore.rs ``status`` (pbs.json: total/used/avail
    # bytes always, ``gc-status`` and ``counts`` only with verbose="Include additional
    # information like snapshot counts and GC status").
    @reg.tool(
        "PBS datastore status",
        output=shape(
            "store total used avail used_pct",
            store="string",
            total="integer",
            used="integer",
            avail="integer",
            used_pct="number?",
            **{"gc-status": "object"},
        ),
    )
    async def pbs_datastore_status(ctx: CallContext, args: StoreIn) -> ToolResult:
        """Size, usage and GC status of one PBS datastore."""
        pool = ctx.gateway.pool
        s = await pool.pbs_request(
            args.cluster,
            args.server,
            "GET",
            f"/admin/datastore/{args.store}/status",
            {"verbose": True},
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
        ns: Ns = None
        max_depth: int = Field(default=0, ge=0, le=7, description="and namespaces below ns")
        cluster: ClusterArg = None
        server: ServerArg = None

    @reg.tool("PBS backups", output=list_output({"backup-id": "string", "verify": "string"}))
    async def pbs_list_backups(ctx: CallContext, args: BackupsIn) -> ToolResult:
        """Backup snapshots (newest first) with size and verify state, or groups, in namespace
        ns and max_depth levels below."""
        pool = ctx.gateway.pool
        ns = validate.pbs_namespace(args.ns)
        store = validate.datastore_name(args.store)
        spaces, errors = [ns], []
        if args.max_depth:
            # src/api2/admin/namespace.rs list_namespaces: the anchor first, then below it
            params: dict[str, Any] = {"max-depth": args.max_depth}
            if ns:
                params["parent"] = ns
            found = await pool.pbs_request(
                args.cluster, args.server, "GET", f"/admin/datastore/{store}/namespace", params
            )
            spaces = [str(n.get("ns") or "") for n in found or []] or [ns]
        raw: list[tuple[str, dict[str, Any]]] = []
        for i, space in enumerate(spaces[:MAX_LISTED_NAMESPACES]):
            params = {}
            if args.group and not args.groups_only:
                btype, bid = args.group.split("/", 1)
                params = {"backup-type": btype, "backup-id": bid}
            what = "groups" if args.groups_only else "snapshots"
            try:
                answer = await ns_read(ctx, args.cluster, args.server, store, what, space, params)
            except ToolFailure as exc:
                if i == 0:
                    raise  # the namespace asked for: its error is the answer
                errors.append(f"ns {space}: {exc.message}")
                continue
            raw += [(space, dict(x)) for x in answer or []]
        if len(spaces) > MAX_LISTED_NAMESPACES:
            errors.append(
                f"{len(spaces) - MAX_LISTED_NAMESPACES} namespaces not read "
                f"(more than {MAX_LISTED_NAMESPACES}): list below one of them with ns"
            )
        shown_ns = ["ns"] if ns or args.max_depth else []
        where = f"{store}" + (f" ns {ns}" if ns else "")
        if args.groups_only:
            items = [
                {
                    "group": f"{g.get('backup-type')}/{g.get('backup-id')}",
                    "ns": space,
                    "last_backup": g.get("last-backup"),
                    "count": g.get("backup-count"),
                    "owner": g.get("owner"),
                }
                for space, g in raw
            ]
            res = listing(
                items[: args.limit],
                [*shown_ns, "group", "count", "last_backup"],
                f"backup groups in {where}",
                errors,
            )
        else:
            items = []
            for space, s in sorted(raw, key=lambda r: -int(r[1].get("backup-time") or 0)):
                verification = s.get("verification") or {}
                items.append(
                    {
                        "backup-type": s.get("backup-type"),
                        "backup-id": s.get("backup-id"),
                        "backup-time": s.get("backup-time"),
                        "ns": space,
                        "size": s.get("size"),
                        "verify": verification.get("state") or "none",
                        "protected": s.get("protected"),
                    }
                )
            items = items[: args.limit]
            res = listing(
                items,
                [*shown_ns, "backup-type", "backup-id", "backup-time", "size", "verify"],
                f"backups in {where}",
                errors,
            )
            res.data["verify_failed"] = sum(1 for i in items if i["verify"] == "failed")
        res.data["ns"] = ns
        if args.max_depth:
            res.data["namespaces"] = spaces
            res.text += "\nnamespaces: " + ", ".join(n or "(root)" for n in spaces)
        return res

    class PbsTasksIn(ToolInput):
        limit: int = Field(default=20, ge=1, le=500)
        errors_only: bool = False
        cluster: ClusterArg = None
        server: ServerArg = None

    @reg.tool("PBS tasks", output=list_output({"upid": "string", "status": "string"}, False))
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

    class VerifyIn(JobIn):
        ns: Ns = None

    async def start_job(ctx: CallContext, args: JobIn, job: str, ns: str = "") -> ToolResult:
        pool = ctx.gateway.pool
        upid = str(
            await pool.pbs_request(
                args.cluster, args.server, "POST", f"/admin/datastore/{args.store}/{job}",
                ns_params(ns) or None,
            )
        )  # fmt: skip
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
        result = task_result(
            "garbage collection" if job == "gc" else "verify",
            f"{args.store} ns {ns}" if ns else args.store,
            upid,
            status,
        )
        if job == "verify":
            result.data["ns"] = ns
        return result

    @reg.tool("PBS garbage collection", scope="operate", idempotent=False, output=ACT_OUT)
    async def pbs_start_gc(ctx: CallContext, args: JobIn) -> ToolResult:
        """Start garbage collection on a PBS datastore."""
        return await start_job(ctx, args, "gc")

    @reg.tool("PBS verify", scope="operate", idempotent=False, output=ACT_OUT)
    async def pbs_start_verify(ctx: CallContext, args: VerifyIn) -> ToolResult:
        """Verify a PBS datastore, or namespace ns and all below it."""
        return await start_job(ctx, args, "verify", validate.pbs_namespace(args.ns))
