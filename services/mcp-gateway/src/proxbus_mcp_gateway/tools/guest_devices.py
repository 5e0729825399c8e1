"""Guest devices and node network: addresses through the QEMU guest agent (containers: from
their network namespace), disks from the config and their resize, the node's interfaces.

``.../qemu/{vmid}/agent/network-get-interfaces`` (qemu-server ``PVE/API2/Qemu/Agent.pm``),
``.../lxc/{vmid}/interfaces`` (pve-container ``src/PVE/LXC.pm`` ``get_interfaces``),
``PUT .../{vmid}/resize`` (qemu-server ``resize_vm``, pve-container ``resize_vm``: a task),
``GET /nodes/{node}/network`` (pve-manager ``PVE/API2/Network.pm``).
"""

import re
from typing import Any, Literal

from pydantic import Field

from .. import validate
from ..errors import InvalidArgument, ToolFailure
from ..registry import CallContext, Registry, ToolInput, ToolResult
from ._common import VmidArg, guest_path, listing, locate_guest, start_task
from ._compact import LIST_OUT, Cluster, Node, ReqNode, task_out

_DISK_KEY = re.compile(r"^(rootfs|(scsi|virtio|sata|ide|mp|efidisk|tpmstate|unused)\d+)$")
_CT_DISK = re.compile(r"^(rootfs|mp\d+)$")
_UNITS = {"K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}


def parse_disks(config: dict[str, Any]) -> list[dict[str, Any]]:
    """Disk entries of a guest config (``scsi0: local-lvm:vm-100-disk-0,size=32G``)."""
    out = []
    for key in sorted(config, key=lambda k: (k != "rootfs", k)):
        if not _DISK_KEY.fullmatch(key):
            continue
        volume, *opts = str(config[key]).split(",")
        options = dict(o.split("=", 1) for o in opts if "=" in o)
        size = options.get("size", "")
        m = re.fullmatch(r"(\d+(?:\.\d+)?)([KMGT])?", size)
        entry: dict[str, Any] = {
            "disk": key,
            "volume": volume,
            "storage": volume.split(":", 1)[0] if ":" in volume else None,
            "size": size or None,
            "bytes": int(float(m.group(1)) * _UNITS.get(m.group(2) or "", 1)) if m else None,
        }
        if options.get("media") == "cdrom":
            entry["media"] = "cdrom"
        if "mp" in options:
            entry["mountpoint"] = options["mp"]
        out.append(entry)
    return out


def _interface(iface: dict[str, Any]) -> dict[str, Any]:
    """One interface as the guest agent (``ip-addresses`` of type ipv4/ipv6) or pve-container
    (``ip-addresses`` of family inet/inet6, or older ``inet``/``inet6`` "addr/prefix") report it."""
    addrs = iface.get("ip-addresses") or []
    v4 = [a.get("ip-address") for a in addrs if a.get("ip-address-type") in ("ipv4", "inet")]
    v6 = [a.get("ip-address") for a in addrs if a.get("ip-address-type") in ("ipv6", "inet6")]
    if not addrs:
        v4 = [str(iface["inet"]).split("/", 1)[0]] if iface.get("inet") else []
        v6 = [str(iface["inet6"]).split("/", 1)[0]] if iface.get("inet6") else []
    return {
        "name": iface.get("name"),
        "mac": iface.get("hardware-address") or iface.get("hwaddr"),
        "ipv4": [a for a in v4 if a],
        "ipv6": [a for a in v6 if a],
    }


def register(reg: Registry) -> None:
    class NetIn(ToolInput):
        vmid: VmidArg
        node: Node = None
        cluster: Cluster = None

    @reg.tool("Guest IPs", output=LIST_OUT)
    async def get_guest_network(ctx: CallContext, args: NetIn) -> ToolResult:
        """A running guest's interfaces and IPs (VM: QEMU guest agent; CT: its namespace)."""
        node, kind, _ = await locate_guest(ctx, args.cluster, args.vmid, args.node)
        pool = ctx.gateway.pool
        if kind == "qemu":
            path = guest_path(node, kind, args.vmid, "agent", "network-get-interfaces")
            answer = await pool.request(args.cluster, "GET", path, node=node, cache=False)
            raw = (answer or {}).get("result") or []
        else:
            # pve-container get_interfaces: null while the container is stopped
            path = guest_path(node, kind, args.vmid, "interfaces")
            raw = await pool.request(args.cluster, "GET", path, node=node, cache=False)
            if raw is None:
                raise ToolFailure(f"CT {args.vmid} is not running (no addresses)", 409)
        items = [_interface(i) for i in raw]
        what = "VM" if kind == "qemu" else "CT"
        res = listing(items, ["name", "mac", "ipv4"], f"interfaces of {what} {args.vmid}")
        res.data["ip"] = next(
            (
                ip
                for i in items
                if i["name"] != "lo"
                for ip in i["ipv4"]
                if not ip.startswith("127.")
            ),
            None,
        )
        return res

    @reg.tool("Guest disks", output=LIST_OUT)
    async def get_guest_disks(ctx: CallContext, args: NetIn) -> ToolResult:
        """Disks of a VM/CT from its config: volume, storage, size."""
        node, kind, _ = await locate_guest(ctx, args.cluster, args.vmid, args.node)
        cfg = await ctx.gateway.pool.request(
            args.cluster, "GET", guest_path(node, kind, args.vmid, "config"), node=node, cache=False
        )
        return listing(
            parse_disks(dict(cfg or {})), ["disk", "volume", "size"], f"disks of {args.vmid}"
        )

    class ResizeIn(ToolInput):
        vmid: VmidArg
        disk: str = Field(max_length=12)
        size: str = Field(max_length=16, description="+4G grows by; 40G sets")
        node: Node = None
        cluster: Cluster = None
        wait: bool = False

    @reg.tool("Resize guest disk", scope="admin", idempotent=False, output=task_out())
    async def resize_guest_disk(ctx: CallContext, args: ResizeIn) -> ToolResult:
        """Grow a VM/container disk (disks never shrink)."""
        validate.disk_name(args.disk)
        validate.disk_size(args.size)
        node, kind, _ = await locate_guest(ctx, args.cluster, args.vmid, args.node, acting=True)
        # the resize ``disk`` enums: pve-container rootfs/mpN, qemu-server the drive names
        if (kind == "lxc") != bool(_CT_DISK.fullmatch(args.disk)):
            allowed = "rootfs or mpN" if kind == "lxc" else "scsiN, virtioN, sataN, ideN, efidisk0"
            what = "CT" if kind == "lxc" else "VM"
            raise InvalidArgument(f"{what} {args.vmid} has no disk {args.disk}: use {allowed}")
        return await start_task(
            ctx, args.cluster, node, "PUT", guest_path(node, kind, args.vmid, "resize"),
            {"disk": args.disk, "size": args.size},
            wait=args.wait, timeout=45, action="resize", target=f"{args.vmid} {args.disk} {args.size}",
        )  # fmt: skip

    class NodeNetIn(ToolInput):
        node: ReqNode
        type: Literal["bridge", "bond", "eth", "vlan", "any_bridge"] | None = None
        cluster: Cluster = None

    @reg.tool("Node network", output=LIST_OUT)
    async def get_node_network(ctx: CallContext, args: NodeNetIn) -> ToolResult:
        """A node's interfaces: bridges, bonds, NICs, VLANs, addresses."""
        validate.node_name(args.node)
        params = {"type": args.type} if args.type else None
        raw = await ctx.gateway.pool.request(
            args.cluster, "GET", f"/nodes/{args.node}/network", params, node=args.node
        )
        keys = (
            "iface",
            "type",
            "active",
            "method",
            "cidr",
            "address",
            "gateway",
            "bridge_ports",
            "slaves",
            "comments",
        )
        items = [
            {k: i.get(k) for k in keys if i.get(k) is not None}
            for i in sorted(raw or [], key=lambda i: str(i.get("iface")))
        ]
        return listing(items, ["iface", "type", "cidr", "bridge_ports"], f"network of {args.node}")
