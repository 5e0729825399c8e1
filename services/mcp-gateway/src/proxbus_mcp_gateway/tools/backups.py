"""Storage content and backup lifecycle: list volumes, restore, delete (PVE volume or PBS
snapshot) and prune a PBS backup group.

Paths: pve-manager ``PVE/API2/Storage/Content.pm``, qemu-server / pve-container create with
``archive`` / ``restore``, proxmox-backup ``src/api2/admin/datastore.rs``; the prune plan
follows proxmox-backup ``pbs-datastore/src/prune.rs`` so that no request is sent before
``confirm``.
"""

import calendar
import re
import time
from typing import Annotated, Any, Literal
from urllib.parse import quote

from pydantic import Field

from .. import validate
from ..errors import InvalidArgument, NotFound, ToolFailure
from ..registry import CallContext, Registry, ToolInput, ToolResult
from ._common import StoreArg, answered, backup_kind, listing, plan, start_task, volume
from ._compact import (
    ACT_OUT,
    LIST_OUT,
    Cluster,
    Confirm,
    Node,
    Ns,
    OptStorage,
    OptVmid,
    Server,
    Storage,
    Volume,
)
from .pbs import ns_params, ns_read
from .provisioning import next_vmid

GroupArg = Annotated[str, Field(pattern=r"^(vm|ct|host)/[A-Za-z0-9_.-]{1,64}$")]
SNAPSHOT_RE = re.compile(r"^(vm|ct|host)/([A-Za-z0-9_.-]{1,64})/(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ)$")
KEEP_RE = re.compile(r"^(last|hourly|daily|weekly|monthly|yearly)=([1-9]\d{0,3})$")
# PBS prune options (pbs-api-types KeepOptions), as the tool's keep=... names them.
_KEEP_OPTIONS = (
    "keep_last",
    "keep_hourly",
    "keep_daily",
    "keep_weekly",
    "keep_monthly",
    "keep_yearly",
)


def parse_keep(text: str) -> dict[str, int | None]:
    """``last=3,daily=7`` → ``{"keep_last": 3, "keep_daily": 7, ...}`` (PBS keep-* options).

    Raises:
        InvalidArgument: an unknown option, a bad count, or no option at all.
    """
    keep: dict[str, int | None] = dict.fromkeys(_KEEP_OPTIONS)
    for part in (p.strip() for p in text.split(",") if p.strip()):
        m = KEEP_RE.fullmatch(part)
        if m is None:
            raise InvalidArgument(f"invalid keep option {part[:40]!r}: e.g. last=3,daily=7")
        if keep[f"keep_{m.group(1)}"] is not None:
            raise InvalidArgument(f"keep option {m.group(1)} given twice")
        keep[f"keep_{m.group(1)}"] = int(m.group(2))
    if not any(keep.values()):
        raise InvalidArgument("give at least one keep option (nothing would be pruned)")
    return keep


async def storage_nodes(
    ctx: CallContext, cluster: str | None, storage: str, node: str | None
) -> list[str]:
    """Where to look for ``storage``'s volumes: ``node`` itself; else the first allowed node
    of a shared storage, or every allowed node of a local one (each has its own content)."""
    validate.storage_id(storage)
    if node is not None:
        return [validate.node_name(node)]
    pool = ctx.gateway.pool
    answers = await pool.request_all(cluster, "/cluster/resources", {"type": "storage"})
    ok, _ = answered(answers, f"looking up storage {storage}")
    found: list[str] = []
    for _, result in ok:
        for item in result or []:
            n = item.get("node")
            if (
                item.get("storage") == storage
                and item.get("status") == "available"
                and ctx.caller.node_allowed(n)
                and str(n) not in found
            ):
                if item.get("shared"):
                    return [str(n)]
                found.append(str(n))
    if not found:
        raise NotFound(f"storage {storage} is not available on any node of the cluster")
    return sorted(found)


async def find_volume(
    ctx: CallContext, cluster: str | None, node: str | None, volid: str
) -> tuple[str, dict[str, Any]]:
    """(node, content entry) of ``volid``; with no ``node``, every node of its storage is asked.

    Raises:
        NotFound: no such volume.
    """
    storage = volume(volid).split(":", 1)[0]
    nodes = await storage_nodes(ctx, cluster, storage, node)
    for n in nodes:
        items = await ctx.gateway.pool.request(
            cluster, "GET", f"/nodes/{n}/storage/{storage}/content", node=n, cache=False
        )
        for item in items or []:
            if item.get("volid") == volid:
                ctx.caller.require_node(n)
                return n, dict(item)
    raise NotFound(f"volume {volid} not found on {', '.join(nodes)}")


async def check_restore_target(
    ctx: CallContext, cluster: str | None, node: str, vmid: int, kind: str, force: bool
) -> None:
    """What qemu-server / pve-container create_vm refuse for a restore onto ``vmid``: an
    existing guest without ``force``, a running one, or one of the other type (Qemu.pm:
    "unable to restore VM ... - VM is running"; "VM ... already exists").

    Raises:
        ToolFailure: 409 with what to do instead.
    """
    answers = await ctx.gateway.pool.request_all(cluster, "/cluster/resources", {"type": "vm"})
    ok, _ = answered(answers, f"looking up guest {vmid}")
    for _, result in ok:
        items = list(result or [])
        if not any(i.get("node") == node for i in items):
            continue  # another standalone host: its ids are its own
        for g in items:
            if g.get("vmid") != vmid:
                continue
            where = f"guest {vmid} ({g.get('name', '?')}) exists on {g.get('node')}"
            if g.get("type") != kind:
                raise ToolFailure(f"{where} and is not a {'VM' if kind == 'qemu' else 'CT'}", 409)
            if not force:
                raise ToolFailure(f"{where}: pass force=true to overwrite it, or another vmid", 409)
            if g.get("status") == "running":
                raise ToolFailure(f"{where} and is running: stop it before restoring over it", 409)


def forget_backup_listings(ctx: CallContext, cluster: str | None) -> None:
    """Drop the cluster's cached PVE reads: a PBS snapshot is also a volume of every PVE
    storage pointing at that datastore, and a shared storage is listed per node."""
    pool = ctx.gateway.pool
    pool.cache.invalidate(pool.cluster(cluster).config.name)


def _iso(epoch: Any) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(int(epoch or 0)))


def register(reg: Registry) -> None:
    class ContentIn(ToolInput):
        storage: Storage
        content: Literal["iso", "vztmpl", "backup", "images", "rootdir", "snippets"] | None = None
        vmid: OptVmid = None
        limit: int = Field(default=200, ge=1, le=5000)
        node: Node = None
        cluster: Cluster = None

    @reg.tool("Storage content", output=LIST_OUT)
    async def list_storage_content(ctx: CallContext, args: ContentIn) -> ToolResult:
        """Volumes on a storage, newest first: ISOs, CT templates, backups, disks."""
        nodes = await storage_nodes(ctx, args.cluster, args.storage, args.node)
        params: dict[str, Any] = {}
        if args.content:
            params["content"] = args.content
        if args.vmid:
            params["vmid"] = args.vmid
        raw: list[dict[str, Any]] = []
        for node in nodes:
            answer = await ctx.gateway.pool.request(
                args.cluster, "GET", f"/nodes/{node}/storage/{args.storage}/content", params,
                node=node,
            )  # fmt: skip
            raw += [{**v, "node": node} for v in answer or []]
        items = []
        for v in sorted(raw, key=lambda v: (-int(v.get("ctime") or 0), str(v.get("volid")))):
            if v.get("vmid") is not None and not ctx.caller.vmid_allowed(int(v["vmid"])):
                continue
            item = {
                k: v.get(k)
                for k in ("volid", "content", "format", "size", "vmid", "ctime", "node")
                if v.get(k) is not None
            }
            if v.get("protected"):
                item["protected"] = True
            if isinstance(v.get("verification"), dict):
                item["verify"] = v["verification"].get("state")
            items.append(item)
        cols = ["volid", "content", "size", "vmid"] + (["node"] if len(nodes) > 1 else [])
        res = listing(items[: args.limit], cols, f"{args.storage} on {', '.join(nodes)}")
        res.data["total"] = len(items)
        if len(items) > args.limit:
            res.text += f"\n... {len(items) - args.limit} older volumes not shown (raise limit)"
        return res

    class RestoreIn(ToolInput):
        archive: Volume
        vmid: OptVmid = None
        node: Node = None
        storage: OptStorage = None
        force: bool = False
        unique: bool | None = Field(default=None, description="new MACs; default: unless force")
        start: bool = False
        cluster: Cluster = None
        confirm: Confirm = False
        wait: bool = False

    @reg.tool("Restore backup", scope="admin", destructive=True, idempotent=False, output=ACT_OUT)
    async def restore_backup(ctx: CallContext, args: RestoreIn) -> ToolResult:
        """Restore a backup volid to a new guest (force: over a stopped one); confirm, else a plan."""
        if args.storage:
            validate.storage_id(args.storage)
        node, item = await find_volume(ctx, args.cluster, args.node, args.archive)
        if item.get("content") != "backup":
            raise InvalidArgument(f"{args.archive} is not a backup archive")
        kind = backup_kind(item)
        if item.get("vmid") is not None:
            ctx.caller.require_vmid(int(item["vmid"]))
        vmid = args.vmid or await next_vmid(ctx, args.cluster, node)
        ctx.caller.require_vmid(vmid)
        label = f"{'VM' if kind == 'qemu' else 'CT'} {vmid} on {node}"
        if args.vmid is not None:
            await check_restore_target(ctx, args.cluster, node, vmid, kind, args.force)
        # A restore keeps the backed-up MAC addresses unless ``unique`` (qemu-server /
        # pve-container create_vm): a copy next to the original would share its MACs.
        unique = (not args.force) if args.unique is None else args.unique
        if not args.confirm:
            current = {
                "archive": args.archive,
                "size": item.get("size"),
                "from_vmid": item.get("vmid"),
                "ctime": item.get("ctime"),
            }
            effect = (
                f"{label} is OVERWRITTEN by the backup (must be stopped)"
                if args.force
                else f"new {label} restored from the backup"
            ) + (", with new MAC addresses" if unique else ", with the backup's MAC addresses")
            return plan("restore", label, current, effect)
        params: dict[str, Any] = {"vmid": vmid}
        if kind == "qemu":
            params["archive"] = args.archive
        else:
            params.update({"ostemplate": args.archive, "restore": 1})
        options = (
            ("storage", args.storage), ("force", args.force), ("start", args.start),
            ("unique", unique),
        )  # fmt: skip
        for key, value in options:
            if value:
                params[key] = int(value) if isinstance(value, bool) else value
        result = await start_task(
            ctx, args.cluster, node, "POST", f"/nodes/{node}/{kind}", params,
            wait=args.wait, timeout=45, action="restore", target=label,
        )  # fmt: skip
        result.data["vmid"] = vmid
        return result

    class DeleteBackupIn(ToolInput):
        volid: Volume | None = None
        store: StoreArg | None = None
        snapshot: str | None = Field(default=None, max_length=120)
        ns: Ns = None
        node: Node = None
        server: Server = None
        cluster: Cluster = None
        confirm: Confirm = False

    # idempotent (MCP idempotentHint): a repeated delete / prune has no further effect.
    @reg.tool("Delete backup", scope="admin", destructive=True, idempotent=True, output=ACT_OUT)
    async def delete_backup(ctx: CallContext, args: DeleteBackupIn) -> ToolResult:
        """Delete a PVE backup volid, or a PBS store+snapshot (vm/100/2025-01-31T02:00:00Z)
        in namespace ns; confirm.
        """
        if (args.volid is None) == (args.store is None or args.snapshot is None):
            raise InvalidArgument("give either volid, or store and snapshot")
        ns = validate.pbs_namespace(args.ns)
        if ns and args.volid is not None:
            raise InvalidArgument(
                "ns is for a PBS store+snapshot; a PVE volid is in its storage's namespace"
            )
        pool = ctx.gateway.pool
        effect = "the backup is deleted permanently"
        if args.volid is not None:
            storage = volume(args.volid).split(":", 1)[0]
            node, item = await find_volume(ctx, args.cluster, args.node, args.volid)
            if item.get("content") != "backup":
                raise InvalidArgument(
                    f"{args.volid} is not a backup (content {item.get('content')})"
                )
            if item.get("vmid") is not None:
                ctx.caller.require_vmid(int(item["vmid"]))
            if item.get("protected"):
                raise ToolFailure(f"{args.volid} is protected: remove its protection first", 409)
            if not args.confirm:
                current = {k: item.get(k) for k in ("size", "vmid", "ctime", "format")}
                return plan("delete backup", args.volid, current, effect)
            path = f"/nodes/{node}/storage/{storage}/content/{quote(args.volid, safe='')}"
            result = await start_task(
                ctx, args.cluster, node, "DELETE", path,
                wait=True, timeout=45, action="delete backup", target=args.volid,
            )  # fmt: skip
            forget_backup_listings(ctx, args.cluster)
            return result
        assert args.store is not None
        assert args.snapshot is not None
        m = SNAPSHOT_RE.fullmatch(args.snapshot)
        if m is None:
            raise InvalidArgument(
                "snapshot: expected type/id/time, e.g. vm/100/2025-01-31T02:00:00Z"
            )
        btype, bid, stamp = m.groups()
        if bid.isdigit():
            ctx.caller.require_vmid(int(bid))
        try:
            btime = calendar.timegm(time.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ"))
        except ValueError:
            raise InvalidArgument(f"snapshot: {stamp} is not a valid UTC time") from None
        store = validate.datastore_name(args.store)
        base = f"/admin/datastore/{store}/snapshots"
        snaps = await ns_read(
            ctx, args.cluster, args.server, store, "snapshots", ns,
            {"backup-type": btype, "backup-id": bid},
        )  # fmt: skip
        snap = next((s for s in snaps or [] if int(s.get("backup-time") or 0) == btime), None)
        where = f" namespace {ns}" if ns else ""
        if snap is None:
            raise NotFound(f"no snapshot {args.snapshot} in {args.store}{where}")
        target = f"{args.store}:{args.snapshot}{where}"
        if snap.get("protected"):
            # proxmox-backup refuses it too ("cannot remove protected snapshot")
            raise ToolFailure(f"{target} is protected: remove its protection first", 409)
        if not args.confirm:
            state = (snap.get("verification") or {}).get("state")
            current = {"size": snap.get("size"), "verify": state}
            planned = plan("delete backup", target, current, effect)
            planned.data["ns"] = ns
            return planned
        params = {"backup-type": btype, "backup-id": bid, "backup-time": btime, **ns_params(ns)}
        await pool.pbs_request(args.cluster, args.server, "DELETE", base, params)
        forget_backup_listings(ctx, args.cluster)
        data = {
            "action": "delete backup", "target": target, "ns": ns, "executed": True, "status": "ok",
        }  # fmt: skip
        return ToolResult(data, f"deleted backup {target}")

    class PruneIn(ToolInput):
        store: StoreArg
        group: GroupArg
        keep: str = Field(max_length=120)
        ns: Ns = None
        server: Server = None
        cluster: Cluster = None
        confirm: Confirm = False

    @reg.tool(
        "Prune PBS backups", scope="admin", destructive=True, idempotent=True, output=LIST_OUT
    )
    async def prune_backups(ctx: CallContext, args: PruneIn) -> ToolResult:
        """Prune a PBS group in namespace ns (keep e.g. last=3,daily=7); without confirm, a plan."""
        ns = validate.pbs_namespace(args.ns)
        btype, bid = args.group.split("/", 1)
        if bid.isdigit():
            ctx.caller.require_vmid(int(bid))
        keep = parse_keep(args.keep)
        pool = ctx.gateway.pool
        store = validate.datastore_name(args.store)
        base = f"/admin/datastore/{store}"
        group = {"backup-type": btype, "backup-id": bid, **ns_params(ns)}
        params = {**group, **{k.replace("_", "-"): v for k, v in keep.items() if v}}
        label = f"{args.store}:{args.group}" + (f" namespace {ns}" if ns else "")

        async def prune(extra: dict[str, Any]) -> Any:
            try:
                return await pool.pbs_request(
                    args.cluster, args.server, "POST", f"{base}/prune", {**params, **extra}
                )
            except ToolFailure as exc:  # PBS's bare ENOENT for a missing namespace
                if ns and exc.code == 400 and "ENOENT" in exc.message:
                    raise NotFound(
                        f"namespace {ns!r} does not exist in datastore {store}"
                    ) from None
                raise

        if not args.confirm:
            # The plan is PBS's own marking: prune with dry-run (proxmox-backup
            # src/api2/admin/datastore.rs ``prune``: ``dry-run`` lists keep/remove, deletes nothing).
            marks = await prune({"dry-run": 1})
            ordered = sorted(marks or [], key=lambda r: -int(r.get("backup-time") or 0))
            items = [
                {"backup-time": r.get("backup-time"), "time": _iso(r.get("backup-time")),
                 "ns": ns, "keep": bool(r.get("keep"))}
                for r in ordered
            ]  # fmt: skip
            gone = [i["time"] for i in items if not i["keep"]]
            res = plan(
                "prune", label,
                {"snapshots": len(items), "remove": len(gone), "keep": len(items) - len(gone)},
                f"removes {len(gone)} snapshot(s): {', '.join(gone) or 'none'}",
            )  # fmt: skip
            res.data.update({"items": items, "count": len(items), "ns": ns})
            return res
        result = await prune({})
        forget_backup_listings(ctx, args.cluster)
        items = [
            {
                "backup-time": r.get("backup-time"),
                "time": _iso(r.get("backup-time")),
                "ns": ns,
                "keep": bool(r.get("keep")),
            }
            for r in result or []
        ]
        removed = sum(1 for i in items if not i["keep"])
        res = listing(items, ["time", "keep"], f"pruned {label}, removed {removed}")
        res.data.update({"executed": True, "removed": removed, "ns": ns})
        return res
