"""PVE guest tools: power actions, live status, configuration, migration."""

from typing import Any, Literal

from pydantic import Field

from ..errors import ToolFailure
from ..registry import CallContext, Registry, ToolInput, ToolResult
from ._common import (
    ClusterArg,
    ConfirmArg,
    ConfirmedGuestTaskIn,
    GuestIn,
    GuestKind,
    NodeArg,
    OptNodeArg,
    TimeoutArg,
    VmidArg,
    WaitArg,
    guest_path,
    kv_text,
    locate_guest,
    pct,
    plan,
    start_task,
)
from ._compact import ACT_OUT, shape, typed_out

_SECRET_CONFIG_KEYS = ("cipassword", "sshkeys")
_NEEDS_CONFIRM = {"stop", "reset", "shutdown", "reboot", "suspend"}
_EFFECT = {
    "stop": "hard power-off now (like pulling the plug); unsaved guest data is lost",
    "reset": "hard reset now; unsaved guest data is lost",
    "shutdown": "ACPI/clean shutdown; services in the guest go down",
    "reboot": "clean reboot; services in the guest are briefly unavailable",
    "suspend": "guest is paused; services stop answering until resume",
}


# The state in which a command has nothing to do: PVE would start a task that fails
# ("VM 100 already running", qemu-server QemuServer.pm vm_start; pve-container
# "CT 100 already running").
_ALREADY = {"start": "running", "stop": "stopped", "shutdown": "stopped"}


async def _already(
    ctx: CallContext, args: Any, node: str, kind: GuestKind, target: str
) -> ToolResult | None:
    """The no-op answer when the live state (not the cached listing) confirms it."""
    live = await ctx.gateway.pool.request(
        args.cluster,
        "GET",
        guest_path(node, kind, args.vmid, "status", "current"),
        node=node,
        cache=False,
    )
    state = live.get("status")
    if state != _ALREADY[args.command]:
        return None
    note = "already running" if state == "running" else "already stopped"
    if live.get("qmpstatus") == "paused":
        note += " (paused: use resume)"
    data = {
        "action": args.command,
        "target": target,
        "executed": False,
        "status": note,
        "current": {"status": state, "qmpstatus": live.get("qmpstatus")},
    }
    return ToolResult(data, f"{args.command} {target}: {note}; nothing done")


def register(reg: Registry) -> None:
    async def power(ctx: CallContext, args: Any, kind: GuestKind) -> ToolResult:
        node, kind, entry = await locate_guest(
            ctx, args.cluster, args.vmid, args.node, kind, acting=True
        )
        target = (
            f"{'VM' if kind == 'qemu' else 'CT'} {args.vmid} ({entry.get('name', '?')}) on {node}"
        )
        if args.command in _ALREADY and entry.get("status") == _ALREADY[args.command]:
            done = await _already(ctx, args, node, kind, target)
            if done is not None:
                return done
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

    class VmCommandIn(ConfirmedGuestTaskIn):
        command: Literal["start", "stop", "shutdown", "reboot", "reset", "suspend", "resume"]

    @reg.tool(
        "VM power action", scope="operate", destructive=True, idempotent=False, output=ACT_OUT
    )
    async def execute_vm_command(ctx: CallContext, args: VmCommandIn) -> ToolResult:
        """Power a VM; all but start/resume need confirm=true (else a plan). wait=true: follow with
        progress (over 50 s: a handle).
        """
        return await power(ctx, args, "qemu")

    class LxcCommandIn(ConfirmedGuestTaskIn):
        command: Literal["start", "stop", "shutdown", "reboot", "suspend", "resume"]

    @reg.tool(
        "Container power action",
        scope="operate",
        destructive=True,
        idempotent=False,
        output=ACT_OUT,
    )
    async def execute_lxc_command(ctx: CallContext, args: LxcCommandIn) -> ToolResult:
        """Power a container; confirm/wait as execute_vm_command."""
        return await power(ctx, args, "lxc")

    # qemu-server / pve-container ``vm_status`` (returns in the API schema): ``status``
    # (running/stopped) and ``ha`` in every answer, ``lock`` only while locked.
    @reg.tool(
        "Guest status",
        output=shape(
            "vmid node type cpu_pct mem_pct",
            vmid="integer",
            node="string",
            type="string",
            status="string",
            lock="string",
            cpu_pct="number",
            mem_pct="number?",
        ),
    )
    async def get_guest_status(ctx: CallContext, args: GuestIn) -> ToolResult:
        """Live status of a VM/CT: state, CPU, memory, uptime, HA, lock."""
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

    @reg.tool("Guest config", output=typed_out(config="object"))
    async def get_guest_config(ctx: CallContext, args: GuestIn) -> ToolResult:
        """Configuration of a VM/CT (disks, network, CPU, memory); secrets masked."""
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

    class MigrateIn(ToolInput):
        vmid: VmidArg
        target: NodeArg
        online: bool = Field(default=True, description="Live-migrate / restart-migrate")
        node: OptNodeArg = None
        cluster: ClusterArg = None
        confirm: ConfirmArg = False
        wait: WaitArg = False
        timeout: TimeoutArg = 45

    @reg.tool("Migrate guest", scope="operate", destructive=True, idempotent=False, output=ACT_OUT)
    async def migrate_guest(ctx: CallContext, args: MigrateIn) -> ToolResult:
        """Move a VM/CT to another node of the same cluster (needs confirm=true)."""
        node, kind, entry = await locate_guest(ctx, args.cluster, args.vmid, args.node, acting=True)
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
