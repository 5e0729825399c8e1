"""``POST /nodes/{node}/vzdump``: backup tasks with per-guest results, PBS snapshots and mail."""

from __future__ import annotations

import re
import time
from typing import Any

from .errors import ApiError, TaskFailure
from .model import BackupSnapshot, Guest
from .notify import GuestResult, vzdump_notification
from .router import Route
from .server import Call
from .tasks import Task
from .views import iso_time


def _ids(text: str) -> list[int]:
    return [int(x) for x in re.split(r"[,;\s]+", text.strip()) if x]


def _stamp() -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S")


def _selected(call: Call, node: str) -> list[Guest]:
    p, lab = call.params, call.sim.lab
    exclude = set(_ids(p.get("exclude", "")))
    if p.get("all"):
        return [g for g in lab.guests_on(node) if g.vmid not in exclude]
    if "vmid" not in p:
        raise ApiError(
            400,
            "Parameter verification failed.",
            {"vmid": "property is missing and it is not optional"},
        )
    out = []
    for vmid in _ids(p["vmid"]):
        g = lab.guests.get(vmid)
        if g is None:
            raise ApiError(500, f"unable to find configuration file for VM {vmid} on any node")
        if g.node == node and vmid not in exclude:
            out.append(g)
    return out


async def vzdump(call: Call) -> Any:
    """Start a vzdump task; failures come from ``fail_next_backup`` or a full storage."""
    sim, p = call.sim, call.params
    node = str(p["node"])
    storage_id = str(p.get("storage", "local"))
    storage = sim.lab.storages.get(storage_id)
    if storage is None or "backup" not in storage.content.split(","):
        raise ApiError(500, f"storage '{storage_id}' does not exist or has no backup content")
    guests = _selected(call, node)
    for g in guests:
        call.require(f"/vms/{g.vmid}", "VM.Backup")
    call.require(f"/storage/{storage_id}", "Datastore.AllocateSpace")
    mode = str(p.get("mode", "snapshot"))
    args = " ".join(str(g.vmid) for g in guests) if not p.get("all") else "--all 1"
    begin = [
        f"INFO: starting new backup job: vzdump {args} --storage {storage_id} "
        f"--mode {mode} --node {node}"
    ]
    for g in guests:
        g.lock = "backup"
    sim.lab.bump()
    started = time.time()

    def finish(task: Task) -> int:
        def syslog(severity: str, line: str) -> None:
            """The lines vzdump also sends to syslog (PVE/VZDump.pm debugmsg(..., 1))."""
            sim.emitter.log(node, "pvedaemon", task.pid, severity, line)

        syslog("info", begin[0])
        results: list[GuestResult] = []
        for g in guests:
            g.lock = None
            label = "VM" if g.kind == "qemu" else "CT"
            syslog("info", f"INFO: Starting Backup of VM {g.vmid} ({g.kind})")
            task.log += [
                f"INFO: Starting Backup of VM {g.vmid} ({g.kind})",
                f"INFO: Backup started at {_stamp()}",
                f"INFO: status = {g.status}",
                f"INFO: {label} Name: {g.name}",
            ]
            error = sim.faults_pve_backup.pop(g.vmid, None)
            if error is None and storage.fraction(node) >= 0.995:
                error = "vma_queue_write: write failed - No space left on device"
            secs = max(1, int(time.time() - started))
            if error is not None:
                syslog("err", f"ERROR: Backup of VM {g.vmid} failed - {error}")
                task.log += [
                    f"ERROR: Backup of VM {g.vmid} failed - {error}",
                    f"INFO: Failed at {_stamp()}",
                ]
                results.append(GuestResult(g.vmid, g.name, False, secs, 0, "", error))
                continue
            size = int(g.maxdisk * 0.25)
            fname = sim.record_backup(storage, g, size)
            task.log += [
                f"INFO: creating {'Proxmox Backup Server archive' if storage.type == 'pbs' else 'vzdump archive'} '{fname}'",
                f"INFO: transferred {size // 1024**2} MiB in {secs} seconds",
                f"INFO: Finished Backup of VM {g.vmid} (00:00:{secs % 60:02d})",
                f"INFO: Backup finished at {_stamp()}",
            ]
            syslog("info", f"INFO: Finished Backup of VM {g.vmid} (00:00:{secs % 60:02d})")
            results.append(GuestResult(g.vmid, g.name, True, secs, size, fname))
        failed = any(not r.ok for r in results)
        task.log.append(
            "INFO: Backup job finished with errors"
            if failed
            else "INFO: Backup job finished successfully"
        )
        syslog("info", task.log[-1])
        sim.lab.bump()
        logs = "\n".join(task.log)
        sim.emitter.notify(
            vzdump_notification(
                node, sim.lab.fqdn(node), results, int(time.time() - started), logs, p.get("job-id")
            )
        )
        if failed:
            raise TaskFailure("job errors")
        return 0

    def unlock() -> None:
        """vzdump's cleanup also runs when the task dies (pve-manager PVE/VZDump.pm
        ``exec_backup_task``: ``$cleanup->{unlock}`` → ``unlock_vm``)."""
        for g in guests:
            if g.lock == "backup":
                g.lock = None
        sim.lab.bump()

    vmid_id = str(guests[0].vmid) if len(guests) == 1 else ""
    return sim.pve_tasks.start(
        node, "vzdump", vmid_id, call.principal.authid, finish, begin, on_stop=unlock
    ).upid


def backup_snapshot_for(g: Guest, size: int) -> BackupSnapshot:
    """A fresh PBS snapshot record for guest ``g``."""
    return BackupSnapshot("vm" if g.kind == "qemu" else "ct", str(g.vmid), int(time.time()), size)


def pbs_volid(storage: str, snap: BackupSnapshot) -> str:
    """Volume id of a PBS snapshot as PVE lists it."""
    return f"{storage}:backup/{snap.backup_type}/{snap.backup_id}/{iso_time(snap.backup_time)}"


async def delete_volume(call: Call) -> Any:
    """``DELETE /nodes/{node}/storage/{storage}/content/{volume}`` (pve-manager
    PVE/API2/Storage/Content.pm): backup archives, ISOs and templates; a PBS volume removes
    the backup snapshot from the datastore. Runs as an ``imgdel`` task."""
    sim, p = call.sim, call.params
    node, volume = str(p["node"]), str(p["volume"])
    sid = str(p.get("storage") or volume.split(":", 1)[0])
    volid = volume if ":" in volume else f"{sid}:{volume}"
    storage = sim.lab.storages.get(sid)
    if storage is None or not storage.available_on(node):
        raise ApiError(500, f"storage '{sid}' does not exist")
    item = next((i for i in sim.storage_volumes(storage, node) if i["volid"] == volid), None)
    if item is None:
        raise ApiError(500, f"volume '{volid}' does not exist")
    content = str(item.get("content"))
    owner = item.get("vmid")
    if (
        content == "backup"
        and owner is not None
        and call.principal.has(f"/vms/{owner}", "VM.Backup")
    ):
        call.require(f"/storage/{sid}", "Datastore.AllocateSpace")
    else:
        call.require(f"/storage/{sid}", "Datastore.Allocate")
    if content in ("images", "rootdir") and owner in sim.lab.guests:
        raise ApiError(500, f"unable to delete volume '{volid}' - used by guest {owner}")
    if item.get("protected"):
        raise ApiError(500, "cannot delete protected backup")

    def finish(task: Task) -> int:
        if not sim.remove_volume(storage, node, volid):
            raise TaskFailure(f"volume '{volid}' does not exist")
        task.log.append(f"Removed volume '{volid}'")
        sim.lab.bump()
        return 0

    return sim.pve_tasks.start(node, "imgdel", "", call.principal.authid, finish).upid


ROUTES = [
    Route("DELETE", "/nodes/{node}/storage/{storage}/content/{volume}", delete_volume, ("delay",)),
    Route(
        "POST",
        "/nodes/{node}/vzdump",
        vzdump,
        (
            "vmid",
            "all",
            "exclude",
            "storage",
            "mode",
            "job-id",
            "compress",
            "remove",
            "notes-template",
            "mailnotification",
            "notification-mode",
        ),
    ),
]
