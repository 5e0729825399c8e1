"""State records of the simulated lab: nodes, guests, storages, PBS datastores."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

GIB = 1024**3
MIB = 1024**2


@dataclass(slots=True)
class Node:
    """One PVE cluster member."""

    name: str
    nodeid: int
    ip: str
    cpus: int = 16
    maxmem: int = 64 * GIB
    cpu: float = 0.05
    mem_fraction: float = 0.35
    boot_time: float = field(default_factory=lambda: time.time() - 86400 * 12)
    online: bool = True
    rootfs_total: int = 100 * GIB


@dataclass(slots=True)
class Snapshot:
    """A guest snapshot as listed by ``.../snapshot``."""

    name: str
    description: str = ""
    snaptime: int = 0
    parent: str | None = None
    vmstate: bool = False


@dataclass(slots=True)
class Guest:
    """A QEMU VM (``kind='qemu'``) or LXC container (``kind='lxc'``)."""

    vmid: int
    kind: str
    name: str
    node: str
    status: str = "stopped"
    qmpstatus: str = "stopped"
    tags: tuple[str, ...] = ()
    cores: int = 2
    maxmem: int = 2 * GIB
    maxdisk: int = 32 * GIB
    mem_fraction: float = 0.5
    cpu: float = 0.02
    started_at: float | None = None
    ha: bool = False
    lock: str | None = None
    template: bool = False
    ostype: str = "l26"
    snapshots: list[Snapshot] = field(default_factory=list)
    mac: str = "BC:24:11:00:00:00"
    agent: bool = True
    storage: str = "local-lvm"
    disks: dict[str, int] = field(default_factory=dict)
    cdrom: str | None = None
    description: str = ""
    linked_base: int | None = None

    @property
    def root_disk(self) -> str:
        """Config key of the root disk (``scsi0`` for VMs, ``rootfs`` for containers)."""
        return "scsi0" if self.kind == "qemu" else "rootfs"

    def disk_sizes(self) -> dict[str, int]:
        """Every disk of the guest by config key, root disk first (bytes)."""
        return {self.root_disk: self.maxdisk, **self.disks}

    def guest_ip(self) -> str:
        """The IPv4 address the guest's agent reports (deterministic per vmid)."""
        return f"10.10.{(self.vmid // 250) % 250}.{self.vmid % 250 + 2}"

    @property
    def running(self) -> bool:
        """Whether the guest process is up (paused counts as running, like Proxmox)."""
        return self.status == "running"

    def uptime(self, now: float) -> int:
        """Seconds since the guest started, 0 when stopped."""
        return int(now - self.started_at) if self.running and self.started_at else 0


@dataclass(slots=True)
class Storage:
    """A storage from the cluster configuration (``/storage``) with per-node usage."""

    storage: str
    type: str
    content: str
    shared: bool = False
    total: int = 500 * GIB
    used_fraction: float = 0.3
    nodes: tuple[str, ...] | None = None
    enabled: bool = True
    server: str | None = None
    datastore: str | None = None
    namespace: str | None = None  # PBS storage option ``namespace`` (pve-storage PBSPlugin)
    path: str | None = None
    per_node_fraction: dict[str, float] = field(default_factory=dict)

    def fraction(self, node: str) -> float:
        """Used fraction on ``node`` (shared storages have one value)."""
        return self.per_node_fraction.get(node, self.used_fraction)

    def available_on(self, node: str) -> bool:
        """Whether the storage is configured for ``node``."""
        return self.nodes is None or node in self.nodes


@dataclass(slots=True)
class BackupSnapshot:
    """One PBS backup snapshot of a group."""

    backup_type: str
    backup_id: str
    backup_time: int
    size: int
    verify_state: str | None = None
    verify_upid: str | None = None
    protected: bool = False
    owner: str = "root@pam"
    ns: str = ""  # PBS backup namespace path ("" = root), e.g. "cluster-a/prod"

    @property
    def files(self) -> list[str]:
        """Archive names PBS lists for this snapshot type."""
        if self.backup_type == "vm":
            return ["qemu-server.conf.blob", "drive-scsi0.img.fidx", "index.json.blob"]
        return ["pct.conf.blob", "root.pxar.didx", "catalog.pcat1.didx", "index.json.blob"]


@dataclass(slots=True)
class Datastore:
    """A PBS datastore with its backup snapshots."""

    name: str
    path: str
    total: int = 4000 * GIB
    used: int = 0
    snapshots: list[BackupSnapshot] = field(default_factory=list)
    gc_last_upid: str | None = None
    comment: str = ""
    # Namespaces below the root (each as its full path, e.g. "a" and "a/b"); the root always
    # exists (proxmox-backup pbs-datastore: ``ns/<name>`` directories under the store).
    namespaces: set[str] = field(default_factory=set)

    def add_namespace(self, ns: str) -> None:
        """Create ``ns`` and its parents (``a/b`` also makes ``a``)."""
        parts = ns.split("/") if ns else []
        for i in range(1, len(parts) + 1):
            self.namespaces.add("/".join(parts[:i]))

    def has_namespace(self, ns: str) -> bool:
        """Whether ``ns`` exists ("" is the root and always does)."""
        return ns == "" or ns in self.namespaces


@dataclass(slots=True)
class PbsServer:
    """A Proxmox Backup Server instance."""

    name: str
    datastores: dict[str, Datastore] = field(default_factory=dict)


@dataclass(slots=True)
class BackupJob:
    """A scheduled vzdump job (``/cluster/backup``): which guests it covers."""

    id: str
    vmids: tuple[int, ...] = ()
    all: bool = False
    exclude: tuple[int, ...] = ()
    node: str | None = None

    def covers(self, g: Guest) -> bool:
        """Whether the job backs up ``g`` (PVE::VZDump::get_included_guests)."""
        if self.node is not None and g.node != self.node:
            return False
        if self.all:
            return g.vmid not in self.exclude
        return g.vmid in self.vmids


@dataclass(slots=True)
class ReplicationJob:
    """A storage replication job ``<guest>-<jobnum>`` with its last run state."""

    guest: int
    jobnum: int
    target: str
    schedule: str = "*/15"
    last_sync: int = 0
    last_try: int = 0
    duration: float = 0.0
    fail_count: int = 0
    error: str | None = None

    @property
    def id(self) -> str:
        """Job id as the API shows it (``100-0``)."""
        return f"{self.guest}-{self.jobnum}"


@dataclass(slots=True)
class Lab:
    """Everything one simulator serves: one PVE cluster (or standalone node) and one PBS."""

    site: str
    domain: str
    cluster_name: str | None
    nodes: dict[str, Node]
    guests: dict[int, Guest]
    storages: dict[str, Storage]
    pbs: PbsServer | None
    quorate: bool = True
    version: int = 0
    backup_jobs: list[BackupJob] = field(default_factory=list)
    replication: list[ReplicationJob] = field(default_factory=list)

    def bump(self) -> None:
        """Mark state as changed so cached views are rebuilt."""
        self.version += 1

    def fqdn(self, node: str) -> str:
        """Fully qualified host name of ``node``."""
        return f"{node}.{self.domain}" if self.domain else node

    @property
    def local_node(self) -> str:
        """The node whose API endpoint the simulator plays (the first one)."""
        return next(iter(self.nodes))

    def guests_on(self, node: str, kind: str | None = None) -> list[Guest]:
        """Guests currently placed on ``node``, optionally of one kind."""
        return [
            g for g in self.guests.values() if g.node == node and (kind is None or g.kind == kind)
        ]
