"""Pure renderings of lab state into the API's JSON shapes."""

from __future__ import annotations

import hashlib
import time
from typing import Any

from .model import GIB, Guest, Lab, Node, Storage

PVE_VERSION = {"version": "9.1.2", "release": "9.1", "repoid": "9d436f37a0ac4172"}
PVE_MANAGER = "pve-manager/9.1.2/9d436f37a0ac4172"


def guest_status(g: Guest, lab: Lab, now: float) -> str:
    """Status as the cluster sees it (``unknown`` when the node is offline)."""
    node = lab.nodes.get(g.node)
    return g.status if node is not None and node.online else "unknown"


def guest_common(g: Guest, lab: Lab, now: float) -> dict[str, Any]:
    """Fields shared by resource entries, guest lists and ``status/current``."""
    running = g.running
    up = g.uptime(now)
    d: dict[str, Any] = {
        "vmid": g.vmid,
        "name": g.name,
        "status": guest_status(g, lab, now),
        "cpu": g.cpu if running else 0,
        "maxmem": g.maxmem,
        "mem": int(g.maxmem * g.mem_fraction) if running else 0,
        "maxdisk": g.maxdisk,
        "disk": int(g.maxdisk * 0.3) if g.kind == "lxc" and running else 0,
        "uptime": up,
        "netin": up * 2048,
        "netout": up * 1024,
        "diskread": up * 4096,
        "diskwrite": up * 2048,
        "template": int(g.template),
    }
    if g.tags:
        d["tags"] = ";".join(g.tags)
    if g.lock:
        d["lock"] = g.lock
    return d


def resource_guest(g: Guest, lab: Lab, now: float) -> dict[str, Any]:
    """One ``/cluster/resources`` entry for a guest."""
    d = guest_common(g, lab, now)
    d.update({"id": f"{g.kind}/{g.vmid}", "type": g.kind, "node": g.node, "maxcpu": g.cores})
    if g.ha:
        d["hastate"] = "started" if g.running else "stopped"
    return d


def resource_node(n: Node, now: float) -> dict[str, Any]:
    """One ``/cluster/resources`` entry for a node."""
    d: dict[str, Any] = {
        "id": f"node/{n.name}",
        "type": "node",
        "node": n.name,
        "status": "online" if n.online else "offline",
        "level": "",
    }
    if n.online:
        d.update(
            {
                "cpu": n.cpu,
                "maxcpu": n.cpus,
                "mem": int(n.maxmem * n.mem_fraction),
                "maxmem": n.maxmem,
                "disk": int(n.rootfs_total * 0.18),
                "maxdisk": n.rootfs_total,
                "uptime": int(now - n.boot_time),
                "cgroup-mode": 2,
            }
        )
    return d


def storage_usage(s: Storage, node: str) -> tuple[int, int, int]:
    """``(total, used, avail)`` bytes of a storage on a node."""
    used = int(s.total * s.fraction(node))
    return s.total, used, s.total - used


def resource_storage(s: Storage, n: Node) -> dict[str, Any]:
    """One ``/cluster/resources`` entry for a storage on a node."""
    total, used, _ = storage_usage(s, n.name)
    return {
        "id": f"storage/{n.name}/{s.storage}",
        "type": "storage",
        "storage": s.storage,
        "node": n.name,
        "status": "available" if n.online else "unknown",
        "plugintype": s.type,
        "content": s.content,
        "disk": used,
        "maxdisk": total,
        "shared": int(s.shared),
    }


def node_status(n: Node, now: float) -> dict[str, Any]:
    """Body of ``/nodes/{node}/status``."""
    used = int(n.maxmem * n.mem_fraction)
    root_used = int(n.rootfs_total * 0.18)
    return {
        "cpu": n.cpu,
        "wait": 0.001,
        "idle": 0,
        "uptime": int(now - n.boot_time),
        "loadavg": [f"{n.cpu * n.cpus:.2f}", f"{n.cpu * n.cpus * 0.9:.2f}", "0.80"],
        "cpuinfo": {
            "cpus": n.cpus,
            "sockets": 1,
            "cores": n.cpus // 2,
            "mhz": "3400.000",
            "model": "AMD EPYC 7302P 16-Core Processor",
            "hvm": "1",
            "user_hz": 100,
            "flags": "fpu vme de pse tsc msr pae mce cx8 apic",
        },
        "memory": {
            "total": n.maxmem,
            "used": used,
            "free": n.maxmem - used,
            "available": n.maxmem - used,
        },
        "swap": {"total": 8 * GIB, "used": 0, "free": 8 * GIB},
        "rootfs": {
            "total": n.rootfs_total,
            "used": root_used,
            "free": n.rootfs_total - root_used,
            "avail": n.rootfs_total - root_used,
        },
        "ksm": {"shared": 0},
        "pveversion": PVE_MANAGER,
        "kversion": "Linux 6.17.2-1-pve",
        "boot-info": {"mode": "efi", "secureboot": 0},
        "current-kernel": {
            "sysname": "Linux",
            "release": "6.17.2-1-pve",
            "version": "#1 SMP PREEMPT_DYNAMIC PMX 6.17.2-1",
            "machine": "x86_64",
        },
    }


def disk_volume(g: Guest, key: str) -> str:
    """Volume id of one of the guest's disks (``base-`` for templates, as PVE names them)."""
    index = 0 if key == g.root_disk else 1 + list(g.disks).index(key)
    prefix = "base" if g.template else "vm"
    name = f"{prefix}-{g.vmid}-disk-{index}"
    if g.linked_base is not None and key == g.root_disk:
        name = f"base-{g.linked_base}-disk-0/{name}"
    return f"{g.storage}:{name}"


def guest_config(g: Guest) -> dict[str, Any]:
    """Body of ``.../{vmid}/config``."""
    digest = hashlib.sha1(
        f"{g.vmid}{g.name}{g.maxmem}{g.maxdisk}{sorted(g.disks.items())}".encode(),
        usedforsecurity=False,
    )
    cfg: dict[str, Any] = {
        "digest": digest.hexdigest(),
        "memory": str(g.maxmem // (1024**2)),
        "cores": g.cores,
        "onboot": 1,
    }
    if g.tags:
        cfg["tags"] = ";".join(g.tags)
    if g.lock:
        cfg["lock"] = g.lock
    if g.description:
        cfg["description"] = g.description
    if g.template:
        cfg["template"] = 1
    if g.kind == "qemu":
        cfg.update(
            {
                "name": g.name,
                "sockets": 1,
                "ostype": g.ostype,
                "boot": "order=scsi0;net0",
                "scsihw": "virtio-scsi-single",
                "net0": f"virtio={g.mac},bridge=vmbr0,firewall=1",
                "smbios1": f"uuid=00000000-0000-4000-8000-{g.vmid:012d}",
                "vmgenid": f"00000000-0000-4000-9000-{g.vmid:012d}",
                "cpu": "x86-64-v2-AES",
            }
        )
        if g.agent:
            cfg["agent"] = "1"
        for key, size in g.disk_sizes().items():
            cfg[key] = f"{disk_volume(g, key)},iothread=1,size={_size(size)}"
        if g.cdrom is not None:
            cfg["ide2"] = f"{g.cdrom},media=cdrom"
    else:
        cfg.update(
            {
                "hostname": g.name,
                "arch": "amd64",
                "ostype": g.ostype,
                "swap": 512,
                "net0": f"name=eth0,bridge=vmbr0,hwaddr={g.mac},ip=dhcp,type=veth",
                "unprivileged": 1,
                "features": "nesting=1",
            }
        )
        for key, size in g.disk_sizes().items():
            mount = "" if key == "rootfs" else ",mp=/mnt/" + key
            cfg[key] = f"{disk_volume(g, key)}{mount},size={_size(size)}"
    if g.snapshots:
        cfg["parent"] = g.snapshots[-1].name
    return cfg


def _size(n: int) -> str:
    """Disk size as PVE writes it in configs (``32G``, ``512M``)."""
    for unit, factor in (("T", 1024**4), ("G", GIB), ("M", 1024**2), ("K", 1024)):
        if n % factor == 0:
            return f"{n // factor}{unit}"
    return str(n)


def iso_time(epoch: int) -> str:
    """PBS snapshot time as used in volume ids (``2024-01-10T10:00:00Z``)."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))
