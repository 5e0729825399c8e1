"""PVE guest lifecycle: clone, create (and restore from a backup), destroy.

Behaviour and error texts follow qemu-server ``PVE/API2/Qemu.pm`` (``clone_vm``,
``create_vm``, ``destroy_vm``) and pve-container ``src/PVE/API2/LXC.pm``.
"""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Any

from .errors import ApiError, TaskFailure
from .model import GIB, Guest, Storage
from .pve_guests import guest_of
from .router import Handler, Route
from .server import Call
from .tasks import Task

_PREFIX = {"qemu": "qm", "lxc": "vz"}
_LABEL = {"qemu": "VM", "lxc": "CT"}
_DISK_KEY = re.compile(r"^(scsi|virtio|sata|ide)\d+$")


def _check_unused(call: Call, vmid: int) -> None:
    """PVE::Cluster::check_vmid_unused."""
    g = call.sim.lab.guests.get(vmid)
    if g is not None:
        raise ApiError(500, f"{_LABEL[g.kind]} {vmid} already exists on node '{g.node}'")


def _image_storage(call: Call, sid: str, node: str, content: str) -> Storage:
    s = call.sim.lab.storages.get(sid)
    if s is None or not s.available_on(node):
        raise ApiError(500, f"storage '{sid}' does not exist")
    if content not in s.content.split(","):
        raise ApiError(500, f"storage '{sid}' does not support content-type '{content}'")
    call.require(f"/storage/{sid}", "Datastore.AllocateSpace")
    return s


def _target(call: Call, g: Guest) -> str:
    target = call.params.get("target")
    if target is None or target == g.node:
        return g.node
    n = call.sim.lab.nodes.get(str(target))
    if n is None:
        raise ApiError(500, f"no such cluster node '{target}'")
    if not n.online:
        raise ApiError(500, f"target node '{target}' is not online")
    return str(target)


def _clone(kind: str) -> Handler:
    async def handler(call: Call) -> Any:
        g = guest_of(call, kind)
        p, sim = call.params, call.sim
        newid = int(p["newid"])
        call.require(f"/vms/{g.vmid}", "VM.Clone")
        call.require(f"/vms/{newid}", "VM.Allocate")
        _check_unused(call, newid)
        if g.lock:
            raise ApiError(500, f"{_LABEL[kind]} is locked ({g.lock})")
        full = bool(p["full"]) if "full" in p else not g.template
        storage = p.get("storage")
        if storage is not None and not full:
            raise ApiError(500, "parameter 'storage' not allowed for linked clones")
        target = _target(call, g)
        sid = str(storage or g.storage)
        store = _image_storage(call, sid, g.node, "images" if kind == "qemu" else "rootdir")
        if target != g.node and not store.shared:
            raise ApiError(500, f"can't clone VM to node '{target}' (VM uses local storage)")
        snapname = p.get("snapname")
        if snapname and all(s.name != snapname for s in g.snapshots):
            raise ApiError(500, f"snapshot '{snapname}' does not exist")
        name = p.get("name" if kind == "qemu" else "hostname")
        clone = replace(
            g,
            vmid=newid,
            name=str(name or (f"Copy-of-VM-{g.name}" if kind == "qemu" else g.name)),
            node=target,
            status="stopped",
            qmpstatus="stopped",
            started_at=None,
            ha=False,
            lock="clone",
            template=False,
            snapshots=[],
            storage=sid,
            disks=dict(g.disks),
            description=str(p.get("description", g.description)),
            linked_base=None if full else g.vmid,
            mac=f"BC:24:11:{(newid >> 16) & 0xFF:02X}:{(newid >> 8) & 0xFF:02X}:{newid & 0xFF:02X}",
        )
        sim.lab.guests[newid] = clone
        sim.lab.bump()
        begin = [f"create {'full' if full else 'linked'} clone of drive {g.root_disk} "
                 f"({g.storage}:vm-{g.vmid}-disk-0)"]  # fmt: skip

        def finish(task: Task) -> int:
            if not full and not g.template:
                sim.lab.guests.pop(newid, None)
                sim.lab.bump()
                raise TaskFailure("clone_image only works on base images")
            clone.lock = None
            if full:
                task.log.append("transferred 100% of the disk data")
            sim.lab.bump()
            return 0

        ttype = "qmclone" if kind == "qemu" else "vzclone"
        return sim.pve_tasks.start(
            g.node, ttype, str(g.vmid), call.principal.authid, finish, begin
        ).upid

    return handler


def _disk_size(spec: str) -> tuple[str, int] | None:
    """``local-lvm:32,iothread=1`` → (storage, bytes) for a new disk; None for existing volumes."""
    volume = spec.split(",", 1)[0]
    if ":" not in volume:
        return None
    sid, rest = volume.split(":", 1)
    if not re.fullmatch(r"\d+(\.\d+)?", rest):
        return None
    return sid, int(float(rest) * GIB)


def _archive(call: Call, volid: str, node: str) -> dict[str, Any]:
    """The backup volume ``volid`` as the storage lists it, or the real API's error."""
    sid = volid.split(":", 1)[0]
    s = call.sim.lab.storages.get(sid)
    if s is None or not s.available_on(node):
        raise ApiError(500, f"storage '{sid}' does not exist")
    for item in call.sim.storage_volumes(s, node):
        if item["volid"] == volid:
            return item
    raise ApiError(500, f"volume '{volid}' does not exist")


def backup_is_ct(item: dict[str, Any]) -> bool:
    """A container backup? ``subtype`` (pve-storage Plugin.pm: ``archive_info`` type, ``lxc``
    or legacy ``openvz``), else the format: ``pbs-ct``, ``tar*`` or ``tgz`` (BACKUP_EXT_RE_2)."""
    sub = item.get("subtype")
    if sub in ("qemu", "lxc", "openvz"):
        return bool(sub != "qemu")
    fmt = str(item.get("format", ""))
    return fmt == "pbs-ct" or fmt.startswith("tar") or fmt == "tgz"


def _restore_source(call: Call, volid: str, node: str, kind: str) -> Guest | None:
    item = _archive(call, volid, node)
    if item.get("content") != "backup":
        raise ApiError(500, f"volume '{volid}' is not a backup archive")
    is_ct = backup_is_ct(item)
    if is_ct != (kind == "lxc"):
        raise ApiError(
            500, f"archive '{volid}' is not a {'container' if kind == 'lxc' else 'VM'} backup"
        )
    vmid = item.get("vmid")
    return call.sim.backup_sources.get(volid) or call.sim.lab.guests.get(int(vmid or 0))


def _create(kind: str) -> Handler:
    async def handler(call: Call) -> Any:
        p, sim = call.params, call.sim
        node, vmid = str(p["node"]), int(p["vmid"])
        restore_from = p.get("archive") if kind == "qemu" else (
            p["ostemplate"] if p.get("restore") else None
        )  # fmt: skip
        existing = sim.lab.guests.get(vmid)
        if restore_from is not None and existing is not None and p.get("force"):
            call.require(f"/vms/{vmid}", "VM.Backup")
            if existing.running:
                raise ApiError(500, f"{_LABEL[kind]} {vmid} is running - unable to restore")
            if existing.node != node:
                raise ApiError(
                    500, f"{_LABEL[kind]} {vmid} already exists on node '{existing.node}'"
                )
        else:
            call.require(f"/vms/{vmid}", "VM.Allocate")
            _check_unused(call, vmid)
        source: Guest | None = None
        template_vol = None
        if restore_from is not None:
            source = _restore_source(call, str(restore_from), node, kind)
        elif kind == "lxc":
            template_vol = str(p["ostemplate"])
            item = _archive(call, template_vol, node)
            if item.get("content") != "vztmpl":
                raise ApiError(500, f"volume '{template_vol}' is not a container template")
        disks: dict[str, int] = {}
        root_store = None
        for key, value in p.items():
            if not (_DISK_KEY.fullmatch(key) or key == "rootfs" or re.fullmatch(r"mp\d+", key)):
                continue
            if "media=cdrom" in str(value):
                continue
            parsed = _disk_size(str(value))
            if parsed is None:
                raise ApiError(400, "Parameter verification failed.", {key: "unable to parse"})
            sid, size = parsed
            _image_storage(call, sid, node, "images" if kind == "qemu" else "rootdir")
            disks[key] = size
            root_store = root_store or sid
        if kind == "lxc" and restore_from is None and "rootfs" not in disks:
            # pve-container src/PVE/API2/LXC.pm create_vm: ``$mp_param->{rootfs} =
            # "$storage:4"; # defaults to 4GB`` (storage defaults to "local").
            sid = str(p.get("storage") or "local")
            _image_storage(call, sid, node, "rootdir")
            disks["rootfs"] = 4 * GIB
            root_store = root_store or sid
        if "storage" in p:
            _image_storage(call, str(p["storage"]), node, "images" if kind == "qemu" else "rootdir")
        cdrom = None
        if kind == "qemu" and "ide2" in p and "media=cdrom" in str(p["ide2"]):
            cdrom = str(p["ide2"]).split(",", 1)[0]
            if cdrom not in ("none", "cdrom"):
                _archive(call, cdrom, node)
        root_key = "scsi0" if kind == "qemu" else "rootfs"
        root_size = disks.pop(root_key, None)
        if root_size is None and disks and kind == "qemu":
            first = next(iter(disks))
            root_size = disks.pop(first)
        base = source
        name_key = "name" if kind == "qemu" else "hostname"
        g = Guest(
            vmid=vmid,
            kind=kind,
            name=str(p.get(name_key) or (base.name if base else f"{_LABEL[kind]}{vmid}")),
            node=node,
            cores=int(p.get("cores", base.cores if base else 1)),
            maxmem=int(p.get("memory", (base.maxmem // 1024**2) if base else 512)) * 1024**2,
            maxdisk=root_size or (base.maxdisk if base else 0),
            ostype=str(
                p.get("ostype", base.ostype if base else ("l26" if kind == "qemu" else "debian"))
            ),
            storage=str(p.get("storage") or root_store or (base.storage if base else "local-lvm")),
            disks=disks if not base else {**base.disks, **disks},
            cdrom=cdrom,
            agent="agent" not in p or not str(p["agent"]).startswith(("0", "enabled=0")),
            description=str(p.get("description", "")),
            tags=tuple(t for t in re.split(r"[;, ]+", str(p.get("tags", ""))) if t),
            lock="create",
            mac=f"BC:24:11:{(vmid >> 16) & 0xFF:02X}:{(vmid >> 8) & 0xFF:02X}:{vmid & 0xFF:02X}",
        )
        if kind == "qemu" and "agent" not in p and base is not None:
            g.agent = base.agent
        if base is not None and not p.get("unique"):
            # a restore keeps the backed-up MAC addresses unless ``unique`` (qemu-server
            # restore_vma_archive / pve-container restore: "Assign a unique random ethernet
            # address" only on request)
            g.mac = base.mac
        sim.lab.guests[vmid] = g
        sim.lab.bump()
        begin = (
            [f"restore {'vma' if kind == 'qemu' else 'tar'} archive: {restore_from}"]
            if restore_from
            else []
        )

        def finish(task: Task) -> int:
            g.lock = None
            if restore_from:
                task.log.append(f"restore of {restore_from} to {_LABEL[kind]} {vmid} finished")
            if p.get("start"):
                sim.set_guest_running(g)
            sim.lab.bump()
            return 0

        ttype = f"{_PREFIX[kind]}{'restore' if restore_from else 'create'}"
        return sim.pve_tasks.start(
            node, ttype, str(vmid), call.principal.authid, finish, begin
        ).upid

    return handler


def _destroy(kind: str) -> Handler:
    async def handler(call: Call) -> Any:
        g = guest_of(call, kind)
        p, sim = call.params, call.sim
        if g.lock and not p.get("skiplock"):
            raise ApiError(500, f"{_LABEL[kind]} is locked ({g.lock})")
        if g.running:
            if kind == "qemu":
                raise ApiError(500, f"VM {g.vmid} is running - destroy failed")
            if not p.get("force"):
                raise ApiError(500, f"unable to destroy CT {g.vmid} - container is running")
        if g.ha and not p.get("purge"):
            raise ApiError(
                500,
                f"unable to remove {_LABEL[kind]} {g.vmid} - used in HA resources and purge "
                "parameter not set.",
            )
        g.lock = "destroyed"
        sim.lab.bump()

        def finish(task: Task) -> int:
            clones = [c.vmid for c in sim.lab.guests.values() if c.linked_base == g.vmid]
            if clones:
                g.lock = None
                sim.lab.bump()
                raise TaskFailure(
                    f"base volume '{g.storage}:base-{g.vmid}-disk-0' is still in use by "
                    f"linked cloned VM {clones[0]}"
                )
            if g.running:
                sim.set_guest_stopped(g, task)
            sim.lab.guests.pop(g.vmid, None)
            task.log.append(f'Logical volume "vm-{g.vmid}-disk-0" successfully removed.')
            if p.get("purge"):
                lab = sim.lab
                for job in lab.backup_jobs:
                    job.vmids = tuple(v for v in job.vmids if v != g.vmid)
                lab.replication = [j for j in lab.replication if j.guest != g.vmid]
            sim.lab.bump()
            return 0

        ttype = f"{_PREFIX[kind]}destroy"
        return sim.pve_tasks.start(g.node, ttype, str(g.vmid), call.principal.authid, finish).upid

    return handler


ROUTES: list[Route] = []
for _kind in ("qemu", "lxc"):
    _base = f"/nodes/{{node}}/{_kind}"
    _name = "name" if _kind == "qemu" else "hostname"
    ROUTES += [
        Route(
            "POST",
            f"{_base}/{{vmid}}/clone",
            _clone(_kind),
            ("newid", _name, "target", "full", "storage", "snapname", "description"),
        ),
        Route(
            "DELETE",
            f"{_base}/{{vmid}}",
            _destroy(_kind),
            ("purge", "skiplock") if _kind == "qemu" else ("purge", "force"),
        ),
    ]
ROUTES += [
    Route(
        "POST",
        "/nodes/{node}/qemu",
        _create("qemu"),
        (
            "vmid",
            "name",
            "memory",
            "cores",
            "sockets",
            "ostype",
            "scsi[n]",
            "virtio[n]",
            "sata[n]",
            "ide[n]",
            "net[n]",
            "agent",
            "start",
            "archive",
            "storage",
            "force",
            "unique",
            "description",
            "tags",
            "scsihw",
        ),
    ),
    Route(
        "POST",
        "/nodes/{node}/lxc",
        _create("lxc"),
        (
            "vmid",
            "ostemplate",
            "hostname",
            "memory",
            "cores",
            "rootfs",
            "mp[n]",
            "net[n]",
            "password",
            "ssh-public-keys",
            "unprivileged",
            "start",
            "restore",
            "storage",
            "force",
            "unique",
            "description",
            "tags",
            "ostype",
        ),
    ),
]
