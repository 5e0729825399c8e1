"""PVE guest devices and node network: disk resize, QEMU guest agent interfaces, node interfaces.

Behaviour and error texts follow qemu-server ``resize_vm`` (``PVE/API2/Qemu.pm``: a ``resize``
task since PVE 8), ``PVE/API2/Qemu/Agent.pm``, pve-container ``resize_vm`` and pve-manager
``PVE/API2/Network.pm``.
"""

from __future__ import annotations

import re
import time
from typing import Any

from .errors import ApiError, TaskFailure
from .model import GIB
from .pve_guests import guest_of
from .router import Handler, Route
from .server import Call
from .tasks import Task

_LABEL = {"qemu": "VM", "lxc": "CT"}
_SIZE = re.compile(r"^(\+)?(\d+(?:\.\d+)?)([KMGT])?$")
_UNITS = {None: 1, "K": 1024, "M": 1024**2, "G": GIB, "T": 1024**4}


def _resize(kind: str) -> Handler:
    async def handler(call: Call) -> Any:
        g = guest_of(call, kind)
        p, sim = call.params, call.sim
        if g.lock and not p.get("skiplock"):
            raise ApiError(500, f"{_LABEL[kind]} is locked ({g.lock})")
        disk, spec = str(p["disk"]), str(p["size"])
        m = _SIZE.fullmatch(spec)
        if m is None:
            raise ApiError(400, "Parameter verification failed.", {"size": "invalid size"})

        def finish(task: Task) -> int:
            sizes = g.disk_sizes()
            if disk not in sizes:
                raise TaskFailure(f"disk '{disk}' does not exist")
            old = sizes[disk]
            amount = int(float(m.group(2)) * _UNITS[m.group(3)])
            new = old + amount if m.group(1) else amount
            if new < old:
                raise TaskFailure("shrinking disks is not supported")
            if disk == g.root_disk:
                g.maxdisk = new
            else:
                g.disks[disk] = new
            task.log.append(f"resized '{disk}' from {old} to {new} bytes")
            sim.lab.bump()
            return 0

        return sim.pve_tasks.start(
            g.node, "resize", str(g.vmid), call.principal.authid, finish
        ).upid

    return handler


async def agent_interfaces(call: Call) -> Any:
    """``network-get-interfaces`` of the QEMU guest agent (running VM with the agent enabled)."""
    g = guest_of(call, "qemu")
    if not g.agent:
        raise ApiError(500, "No QEMU guest agent configured")
    if not g.running:
        raise ApiError(500, f"VM {g.vmid} is not running")
    if g.qmpstatus == "paused":
        raise ApiError(500, "QEMU guest agent is not running")
    up = g.uptime(time.time())
    return {
        "result": [
            {
                "name": "lo",
                "hardware-address": "00:00:00:00:00:00",
                "ip-addresses": [
                    {"ip-address": "127.0.0.1", "ip-address-type": "ipv4", "prefix": 8},
                    {"ip-address": "::1", "ip-address-type": "ipv6", "prefix": 128},
                ],
                "statistics": _stats(0),
            },
            {
                "name": "eth0",
                "hardware-address": g.mac.lower(),
                "ip-addresses": [
                    {"ip-address": g.guest_ip(), "ip-address-type": "ipv4", "prefix": 24},
                    {
                        "ip-address": f"fe80::be24:11ff:fe{g.mac[-5:-3].lower()}:"
                        f"{g.mac[-2:].lower()}00",
                        "ip-address-type": "ipv6",
                        "prefix": 64,
                    },
                ],
                "statistics": _stats(up),
            },
        ]
    }


async def ct_interfaces(call: Call) -> Any:
    """``GET /nodes/{node}/lxc/{vmid}/interfaces``: the container's addresses read from its
    network namespace (pve-container src/PVE/LXC.pm ``get_interfaces``: ``ip --json a``;
    a stopped container has no pid, so the answer is null)."""
    g = guest_of(call, "lxc")
    if not g.running:
        return None

    def iface(name: str, mac: str, v4: str, v6: str, p4: int, p6: int) -> dict[str, Any]:
        return {
            "name": name,
            "hwaddr": mac,
            "hardware-address": mac,
            "inet": f"{v4}/{p4}",
            "inet6": f"{v6}/{p6}",
            "ip-addresses": [
                {"ip-address": v4, "ip-address-type": "inet", "prefix": p4},
                {"ip-address": v6, "ip-address-type": "inet6", "prefix": p6},
            ],
        }

    mac = g.mac.lower()
    link_local = f"fe80::be24:11ff:fe{mac[-5:-3]}:{mac[-2:]}00"
    return [
        iface("lo", "00:00:00:00:00:00", "127.0.0.1", "::1", 8, 128),
        iface("eth0", mac, g.guest_ip(), link_local, 24, 64),
    ]


def _stats(up: int) -> dict[str, int]:
    return {
        "rx-bytes": up * 2048,
        "rx-packets": up * 4,
        "rx-errs": 0,
        "rx-dropped": 0,
        "tx-bytes": up * 1024,
        "tx-packets": up * 3,
        "tx-errs": 0,
        "tx-dropped": 0,
    }


async def node_network(call: Call) -> Any:
    """``GET /nodes/{node}/network``: the uplink and the default bridge (``type`` filter)."""
    n = call.sim.lab.nodes[call.params["node"]]
    prefix = n.ip.rsplit(".", 1)[0]
    items: list[dict[str, Any]] = [
        {
            "iface": "eno1",
            "type": "eth",
            "method": "manual",
            "method6": "manual",
            "active": 1,
            "exists": 1,
            "families": ["inet"],
            "priority": 3,
        },
        {
            "iface": "vmbr0",
            "type": "bridge",
            "method": "static",
            "method6": "manual",
            "active": 1,
            "autostart": 1,
            "families": ["inet"],
            "address": n.ip,
            "netmask": "24",
            "cidr": f"{n.ip}/24",
            "gateway": f"{prefix}.1",
            "bridge_ports": "eno1",
            "bridge_stp": "off",
            "bridge_fd": "0",
            "priority": 4,
        },
    ]
    want = call.params.get("type")
    if want in ("any_bridge", "any_local_bridge"):
        want = "bridge"
    return [i for i in items if want is None or i["type"] == want]


ROUTES: list[Route] = [
    Route(
        "GET",
        "/nodes/{node}/qemu/{vmid}/agent/network-get-interfaces",
        agent_interfaces,
    ),
    Route("GET", "/nodes/{node}/lxc/{vmid}/interfaces", ct_interfaces),
    Route("GET", "/nodes/{node}/network", node_network, ("type",)),
]
ROUTES.extend(
    Route(
        "PUT",
        f"/nodes/{{node}}/{kind}/{{vmid}}/resize",
        _resize(kind),
        ("disk", "size", "skiplock") if kind == "qemu" else ("disk", "size"),
    )
    for kind in ("qemu", "lxc")
)
