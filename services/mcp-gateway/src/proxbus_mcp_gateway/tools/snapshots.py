"""PVE snapshot and backup tools: list, create, roll back and delete snapshots; vzdump."""

from typing import Any, Literal

from pydantic import Field

from ..errors import ToolFailure
from ..registry import CallContext, Registry, ToolResult, list_output
from ._common import (
    ConfirmedGuestTaskIn,
    GuestIn,
    GuestTaskIn,
    SnapArg,
    guest_path,
    listing,
    locate_guest,
    plan,
    start_task,
)
from ._compact import ACT_OUT


def register(reg: Registry) -> None:
    @reg.tool("List snapshots", output=list_output({"name": "string"}, False))
    async def list_snapshots(ctx: CallContext, args: GuestIn) -> ToolResult:
        """Snapshots of a VM/CT."""
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

    class SnapCreateIn(GuestTaskIn):
        name: SnapArg
        description: str = Field(default="", max_length=512)
        vmstate: bool = Field(default=False, description="VMs: include RAM")

    @reg.tool("Create snapshot", scope="operate", idempotent=False, output=ACT_OUT)
    async def create_snapshot(ctx: CallContext, args: SnapCreateIn) -> ToolResult:
        """Take a snapshot of a VM/CT."""
        node, kind, _ = await locate_guest(ctx, args.cluster, args.vmid, args.node, acting=True)
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

    class SnapIn(ConfirmedGuestTaskIn):
        name: SnapArg

    async def snapshot_action(ctx: CallContext, args: SnapIn, action: str) -> ToolResult:
        node, kind, entry = await locate_guest(ctx, args.cluster, args.vmid, args.node, acting=True)
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
        "Roll back snapshot", scope="operate", destructive=True, idempotent=False, output=ACT_OUT
    )
    async def rollback_snapshot(ctx: CallContext, args: SnapIn) -> ToolResult:
        """Roll a guest back to a snapshot (needs confirm=true, else a plan)."""
        return await snapshot_action(ctx, args, "rollback")

    @reg.tool(
        "Delete snapshot", scope="operate", destructive=True, idempotent=False, output=ACT_OUT
    )
    async def delete_snapshot(ctx: CallContext, args: SnapIn) -> ToolResult:
        """Delete a snapshot (needs confirm=true, else a plan)."""
        return await snapshot_action(ctx, args, "delete")

    class BackupIn(GuestTaskIn):
        storage: str | None = Field(
            default=None, pattern=r"^[a-zA-Z][a-zA-Z0-9_.-]{0,62}[a-zA-Z0-9]$"
        )
        mode: Literal["snapshot", "suspend", "stop"] = "snapshot"
        compress: Literal["zstd", "lzo", "gzip", "0"] = "zstd"
        notes: str = Field(default="", max_length=256)

    @reg.tool("Back up guest", scope="operate", idempotent=False, output=ACT_OUT)
    async def create_backup(ctx: CallContext, args: BackupIn) -> ToolResult:
        """Start a vzdump backup of one guest (mode stop briefly stops it)."""
        node, _, _ = await locate_guest(ctx, args.cluster, args.vmid, args.node, acting=True)
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
