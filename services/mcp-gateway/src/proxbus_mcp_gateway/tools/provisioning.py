"""Guest provisioning: next free VMID, clone, create VM / container, delete a guest.

API calls follow qemu-server ``PVE/API2/Qemu.pm`` (``clone_vm``, ``create_vm``,
``destroy_vm``) and pve-container ``src/PVE/API2/LXC.pm``; every path and parameter used
here is in the official schema (the simulator refuses anything else).
"""

from typing import Any

from pydantic import Field

from .. import validate
from ..errors import InvalidArgument, ToolFailure
from ..registry import CallContext, Registry, ToolInput, ToolResult
from ._common import (
    GuestKind,
    VmidArg,
    dns_name,
    guest_path,
    locate_guest,
    plan,
    start_task,
    volume,
    wait_task,
)
from ._compact import (
    ACT_OUT,
    Cluster,
    Confirm,
    NameArg,
    Node,
    OptStorage,
    OptVmid,
    ReqNode,
    Storage,
    Volume,
    task_out,
)

_TIMEOUT = 45


async def next_vmid(ctx: CallContext, cluster: str | None, node: str | None) -> int:
    """``GET /cluster/nextid`` of the group serving ``node``.

    Raises:
        ToolFailure: 409 without ``node`` in a cluster of several standalone hosts (each has
            its own ids: the first host's free id may be taken on the other).
    """
    if node is not None:
        validate.node_name(node)
    else:
        groups = ctx.gateway.pool.cluster(cluster).groups
        if len(groups) > 1:
            raise ToolFailure(
                f"cluster {ctx.gateway.pool.cluster(cluster).config.name} has several "
                f"independent hosts ({', '.join(g.config.name for g in groups)}), each with "
                "its own guest ids: pass node to choose one",
                409,
            )
    answer = await ctx.gateway.pool.request(
        cluster, "GET", "/cluster/nextid", node=node, cache=False
    )
    return int(answer)


def register(reg: Registry) -> None:
    class NextIdIn(ToolInput):
        node: Node = None
        cluster: Cluster = None

    @reg.tool(
        "Next free VMID", output={"type": "object", "properties": {"vmid": {"type": "integer"}}}
    )
    async def get_next_vmid(ctx: CallContext, args: NextIdIn) -> ToolResult:
        """Next free guest id (create/clone default)."""
        vmid = await next_vmid(ctx, args.cluster, args.node)
        return ToolResult({"vmid": vmid}, f"next free vmid: {vmid}")

    class CloneIn(ToolInput):
        vmid: VmidArg
        newid: OptVmid = None
        name: NameArg = None
        target: Node = None
        full: bool | None = None
        storage: OptStorage = None
        node: Node = None
        cluster: Cluster = None
        wait: bool = False

    @reg.tool("Clone guest", scope="admin", idempotent=False, output=task_out("newid"))
    async def clone_guest(ctx: CallContext, args: CloneIn) -> ToolResult:
        """Clone a VM/CT to a new vmid (templates: linked by default)."""
        if args.name:
            dns_name(args.name)
        full = args.full
        if args.storage:
            validate.storage_id(args.storage)
            # qemu-server / pve-container clone_vm: "parameter 'storage' not allowed for
            # linked clones"; a named target storage means a full clone (as the web UI).
            if full is False:
                raise InvalidArgument("storage needs a full clone: drop storage or full=false")
            full = True
        node, kind, entry = await locate_guest(ctx, args.cluster, args.vmid, args.node, acting=True)
        if args.target is not None:
            ctx.caller.require_node(validate.node_name(args.target))
        newid = args.newid or await next_vmid(ctx, args.cluster, node)
        ctx.caller.require_vmid(newid)
        params: dict[str, Any] = {"newid": newid}
        if args.name:
            params["name" if kind == "qemu" else "hostname"] = args.name
        if args.target and args.target != node:
            params["target"] = args.target
        if full is not None:
            params["full"] = int(full)
        if args.storage:
            params["storage"] = args.storage
        result = await start_task(
            ctx, args.cluster, node, "POST", guest_path(node, kind, args.vmid, "clone"), params,
            wait=args.wait, timeout=_TIMEOUT, action="clone",
            target=f"{args.vmid} ({entry.get('name', '?')}) -> {newid}",
        )  # fmt: skip
        result.data["newid"] = newid
        return result

    class VmIn(ToolInput):
        node: ReqNode
        vmid: OptVmid = None
        name: NameArg = None
        memory: int = Field(default=2048, ge=16, le=4_194_304)
        cores: int = Field(default=2, ge=1, le=512)
        disk_gb: int = Field(default=32, ge=1, le=65536)
        storage: Storage = "local-lvm"
        iso: Volume | None = None
        start: bool = False
        cluster: Cluster = None
        wait: bool = False

    class CtIn(ToolInput):
        node: ReqNode
        template: Volume
        vmid: OptVmid = None
        hostname: NameArg = None
        memory: int = Field(default=512, ge=16, le=4_194_304)
        cores: int = Field(default=1, ge=1, le=512)
        disk_gb: int = Field(default=8, ge=1, le=65536)
        storage: Storage = "local-lvm"
        ssh_key: str | None = Field(default=None, max_length=4096)
        start: bool = False
        cluster: Cluster = None
        wait: bool = False

    async def new_vmid(ctx: CallContext, args: VmIn | CtIn, vol: str | None) -> int:
        """Check the names first (no API call for bad input), then the VMID: given or the next."""
        validate.node_name(args.node)
        validate.storage_id(args.storage)
        if vol:
            volume(vol)
        name = args.name if isinstance(args, VmIn) else args.hostname
        if name:
            dns_name(name, "name" if isinstance(args, VmIn) else "hostname")
        vmid = args.vmid or await next_vmid(ctx, args.cluster, args.node)
        ctx.caller.require_vmid(vmid)
        return vmid

    async def create_guest(
        ctx: CallContext, args: VmIn | CtIn, kind: GuestKind, vmid: int, params: dict[str, Any]
    ) -> ToolResult:
        """POST the create task for ``kind`` on the node; its result carries the new VMID."""
        params = {"vmid": vmid, **params} | ({"start": 1} if args.start else {})
        label = f"{'VM' if kind == 'qemu' else 'CT'} {vmid} on {args.node}"
        result = await start_task(
            ctx, args.cluster, args.node, "POST", f"/nodes/{args.node}/{kind}", params,
            wait=args.wait, timeout=_TIMEOUT, action="create", target=label,
        )  # fmt: skip
        result.data["vmid"] = vmid
        return result

    @reg.tool("Create VM", scope="admin", idempotent=False, output=task_out("vmid"))
    async def create_vm(ctx: CallContext, args: VmIn) -> ToolResult:
        """Create a VM (memory MiB, one disk, vmbr0 NIC, optional ISO volid, agent on)."""
        vmid = await new_vmid(ctx, args, args.iso)
        params: dict[str, Any] = {
            "memory": args.memory,
            "cores": args.cores,
            "scsihw": "virtio-scsi-single",
            "scsi0": f"{args.storage}:{args.disk_gb},iothread=1",
            "net0": "virtio,bridge=vmbr0",
            "agent": "1",
            "ostype": "l26",
        }
        if args.name:
            params["name"] = args.name
        if args.iso:
            params["ide2"] = f"{args.iso},media=cdrom"
        return await create_guest(ctx, args, "qemu", vmid, params)

    @reg.tool("Create container", scope="admin", idempotent=False, output=task_out("vmid"))
    async def create_container(ctx: CallContext, args: CtIn) -> ToolResult:
        """Create an unprivileged CT from a vztmpl volid (memory MiB; vmbr0, DHCP)."""
        vmid = await new_vmid(ctx, args, args.template)
        params: dict[str, Any] = {
            "ostemplate": args.template,
            "memory": args.memory,
            "cores": args.cores,
            "rootfs": f"{args.storage}:{args.disk_gb}",
            "net0": "name=eth0,bridge=vmbr0,ip=dhcp",
            "unprivileged": 1,
        }
        if args.hostname:
            params["hostname"] = args.hostname
        if args.ssh_key:
            # key types of sshd(8) AUTHORIZED_KEYS FILE FORMAT, FIDO "sk-" ones included
            if (
                not args.ssh_key.startswith(("ssh-", "ecdsa-", "sk-"))
                or "\n" in args.ssh_key.strip()
            ):
                raise InvalidArgument("ssh_key: one OpenSSH public key line expected")
            params["ssh-public-keys"] = args.ssh_key
        return await create_guest(ctx, args, "lxc", vmid, params)

    class DeleteIn(ToolInput):
        vmid: VmidArg
        purge: bool = True
        stop: bool = False
        node: Node = None
        cluster: Cluster = None
        confirm: Confirm = False
        wait: bool = False

    # idempotent: a second identical delete finds nothing and changes nothing (MCP
    # ToolAnnotations ``idempotentHint``).
    @reg.tool("Delete guest", scope="admin", destructive=True, idempotent=True, output=ACT_OUT)
    async def delete_guest(ctx: CallContext, args: DeleteIn) -> ToolResult:
        """Destroy a VM/CT and its disks (running: needs stop=true); confirm=true, else a plan."""
        node, kind, entry = await locate_guest(ctx, args.cluster, args.vmid, args.node, acting=True)
        target = (
            f"{'VM' if kind == 'qemu' else 'CT'} {args.vmid} ({entry.get('name', '?')}) on {node}"
        )
        running = entry.get("status") == "running"
        if running and not args.stop:
            raise ToolFailure(f"{target} is running: stop it first, or pass stop=true", 409)
        if not args.confirm:
            current = {k: entry.get(k) for k in ("name", "status", "maxdisk", "template", "tags")}
            effect = "the guest, its disks and snapshots are destroyed"
            if running:
                effect = "hard stop now, then " + effect
            return plan("delete", target, current, effect)
        if running:
            # qemu-server / pve-container refuse to destroy a running guest: stop it first.
            path = guest_path(node, kind, args.vmid, "status", "stop")
            upid = str(await ctx.gateway.pool.request(args.cluster, "POST", path, node=node))
            status = await wait_task(ctx, args.cluster, node, upid, _TIMEOUT)
            if status.get("status") != "stopped" or not status.get("ok"):
                reason = status.get("exitstatus") or "still running"
                raise ToolFailure(f"could not stop {target} ({reason}); nothing deleted", 502)
        params = {"purge": 1} if args.purge else None
        return await start_task(
            ctx, args.cluster, node, "DELETE", guest_path(node, kind, args.vmid), params,
            wait=args.wait, timeout=_TIMEOUT, action="delete", target=target,
        )  # fmt: skip
