"""PVE reads of jobs and node facts that monitoring clients (prometheus-pve-exporter) scrape.

``/cluster/backup-info/not-backed-up`` (pve-manager PVE/API2/BackupInfo.pm),
``/nodes/{node}/replication[/{id}/status]`` (PVE/API2/Replication.pm),
``/nodes/{node}/subscription`` (PVE/API2/Subscription.pm) and ``/cluster/config/qdevice``.
"""

from __future__ import annotations

import hashlib
import time
from typing import Any

from .errors import ApiError
from .model import ReplicationJob
from .router import Route
from .server import Call


async def not_backed_up(call: Call) -> Any:
    """Guests the caller may see that no backup job covers."""
    lab = call.sim.lab
    out = []
    for g in sorted(lab.guests.values(), key=lambda g: g.vmid):
        if not call.principal.has(f"/vms/{g.vmid}", "VM.Audit"):
            continue
        if any(job.covers(g) for job in lab.backup_jobs):
            continue
        out.append({"vmid": g.vmid, "name": g.name, "type": g.kind})
    return out


def _job_status(call: Call, job: ReplicationJob) -> dict[str, Any]:
    g = call.sim.lab.guests.get(job.guest)
    data: dict[str, Any] = {
        "id": job.id,
        "jobnum": job.jobnum,
        "guest": job.guest,
        "type": "local",
        "target": job.target,
        "schedule": job.schedule,
        "source": g.node if g else call.params["node"],
        "vmtype": g.kind if g else "qemu",
        "last_sync": job.last_sync,
        "last_try": job.last_try,
        "fail_count": job.fail_count,
        "duration": job.duration,
        "next_sync": max(job.last_try, int(time.time())) + 900,
    }
    if job.error:
        data["error"] = job.error
    return data


async def replication_list(call: Call) -> Any:
    """Jobs of guests on this node (``guest`` filter), hidden without VM.Audit."""
    node, want = call.params["node"], call.params.get("guest")
    out = []
    for job in sorted(call.sim.lab.replication, key=lambda j: j.id):
        g = call.sim.lab.guests.get(job.guest)
        if g is None or g.node != node or (want is not None and job.guest != want):
            continue
        if call.principal.has(f"/vms/{job.guest}", "VM.Audit"):
            out.append(_job_status(call, job))
    return out


async def replication_status(call: Call) -> Any:
    """One job's state; ``no such replication job`` for an unknown id."""
    job_id = call.params["id"]
    job = next((j for j in call.sim.lab.replication if j.id == job_id), None)
    if job is None:
        raise ApiError(500, f"no such replication job '{job_id}'")
    if not call.principal.has(f"/vms/{job.guest}", "VM.Audit"):
        raise ApiError(403, "Permission check failed")
    return _job_status(call, job)


async def subscription(call: Call) -> Any:
    """No subscription key on the simulated nodes: the ``notfound`` answer of a fresh install."""
    return {
        "status": "notfound",
        "message": "There is no subscription key",
        "serverid": hashlib.sha256(call.params["node"].encode()).hexdigest()[:32].upper(),
        "url": "https://www.proxmox.com/en/proxmox-virtual-environment/pricing",
    }


async def qdevice(call: Call) -> Any:
    """No QDevice configured: an empty object (corosync-qdevice-tool finds nothing)."""
    return {}


ROUTES = [
    Route("GET", "/cluster/backup-info/not-backed-up", not_backed_up),
    Route("GET", "/cluster/config/qdevice", qdevice),
    Route("GET", "/nodes/{node}/replication", replication_list, ("guest",)),
    Route("GET", "/nodes/{node}/replication/{id}/status", replication_status),
    Route("GET", "/nodes/{node}/subscription", subscription),
]
