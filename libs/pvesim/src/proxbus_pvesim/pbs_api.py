"""PBS endpoints: version, login, datastores, groups, snapshots, GC, verify, prune, usage."""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import partial
from typing import Any

from .errors import ApiError, TaskFailure
from .model import BackupSnapshot, Datastore
from .router import Route
from .server import Call
from .tasks import Task
from .tasks_api import task_routes

PBS_VERSION = {"version": "4.0.18", "release": "4", "repoid": "8a6c2d5e1f0b"}
_PERIODS = [
    ("keep-hourly", "%Y/%m/%d/%H"),
    ("keep-daily", "%Y/%m/%d"),
    ("keep-weekly", "%G/%V"),
    ("keep-monthly", "%Y/%m"),
    ("keep-yearly", "%Y"),
]


def escape_wid(text: str) -> str:
    """Systemd-style escaping PBS applies to worker ids (``:`` and ``/`` cannot appear)."""
    return text.replace("\\", "\\x5c").replace("-", "\\x2d").replace("/", "-").replace(":", "\\x3a")


MAX_NAMESPACE_DEPTH = 7  # pbs-api-types MAX_NAMESPACE_DEPTH
# What PBS answers for a namespace whose directory does not exist: the error of
# ``read_subdir`` on it (pbs-datastore src/hierarchy.rs ``ListGroups::new``), a 400.
NO_NAMESPACE = "ENOENT: No such file or directory"


def _ns(call: Call, key: str = "ns") -> str:
    """The ``ns`` parameter ("" = root), past the schema's pattern check; deeper than
    MAX_NAMESPACE_DEPTH is refused as BackupNamespace does (pbs-api-types ``push_do``)."""
    ns = str(call.params.get(key) or "")
    depth = len(ns.split("/")) if ns else 0
    if depth > MAX_NAMESPACE_DEPTH:
        raise ApiError(
            400,
            "parameter verification errors",
            {key: f"namespace too deep, {MAX_NAMESPACE_DEPTH} >= max {MAX_NAMESPACE_DEPTH}"},
        )
    return ns


def _existing_ns(call: Call, ds: Datastore) -> str:
    """``ns`` of a call that reads the namespace's directory: 400 when it does not exist."""
    ns = _ns(call)
    if not ds.has_namespace(ns):
        raise ApiError(400, NO_NAMESPACE)
    return ns


def ns_path(ns: str) -> str:
    """``a/b`` → ``ns/a/ns/b`` (pbs-api-types ``BackupNamespacePath``, used in worker ids)."""
    return "/".join(f"ns/{part}" for part in ns.split("/")) if ns else ""


def _below(ns: str, anchor: str, max_depth: int) -> bool:
    """Whether ``ns`` is ``anchor`` or under it, at most ``max_depth`` levels down."""
    if anchor and ns != anchor and not ns.startswith(anchor + "/"):
        return False
    rest = ns[len(anchor) :].strip("/")
    return len(rest.split("/")) <= max_depth if rest else True


def _store(call: Call, *privs: str) -> Datastore:
    pbs = call.sim.lab.pbs
    name = str(call.params["store"])
    if pbs is None or name not in pbs.datastores:
        raise ApiError(404, f"datastore '{name}' does not exist")
    have = call.principal.privs(f"/datastore/{name}")
    if privs and not have.intersection(privs):
        raise ApiError(403, "permission check failed")
    return pbs.datastores[name]


async def version(call: Call) -> Any:
    """``GET /version``."""
    return PBS_VERSION


async def access_ticket(call: Call) -> Any:
    """``POST /access/ticket``."""
    issued = call.sim.pbs_auth.login(
        str(call.params["username"]), str(call.params.get("password", ""))
    )
    if issued is None:
        raise ApiError(401, "authentication failed")
    ticket, tk = issued
    return {"ticket": ticket, "CSRFPreventionToken": tk.csrf, "username": tk.user}


async def datastores(call: Call) -> Any:
    """``GET /admin/datastore``: datastores the caller can see."""
    pbs = call.sim.lab.pbs
    out = []
    for ds in pbs.datastores.values() if pbs else []:
        if call.principal.privs(f"/datastore/{ds.name}"):
            item: dict[str, Any] = {
                "store": ds.name,
                "mount-status": "nonremovable",
                "backend-type": "filesystem",
            }
            if ds.comment:
                item["comment"] = ds.comment
            out.append(item)
    return out


def _gc_status(ds: Datastore) -> dict[str, Any]:
    d: dict[str, Any] = {
        "index-file-count": len(ds.snapshots) * 2,
        "index-data-bytes": ds.used * 3,
        "disk-bytes": ds.used,
        "disk-chunks": ds.used // (4 * 1024**2),
        "removed-bytes": 0,
        "removed-chunks": 0,
        "pending-bytes": 0,
        "pending-chunks": 0,
        "removed-bad": 0,
        "still-bad": 0,
    }
    if ds.gc_last_upid:
        d["upid"] = ds.gc_last_upid
    return d


async def store_status(call: Call) -> Any:
    """``GET /admin/datastore/{store}/status``."""
    ds = _store(call, "Datastore.Audit", "Datastore.Backup")
    out: dict[str, Any] = {
        "total": ds.total,
        "used": ds.used,
        "avail": ds.total - ds.used,
        "backend-type": "filesystem",
    }
    if call.params.get("verbose"):
        counts: dict[str, dict[str, int]] = {}
        for s in ds.snapshots:
            c = counts.setdefault(s.backup_type, {"groups": 0, "snapshots": 0})
            c["snapshots"] += 1
        for btype, _bid in {(s.backup_type, s.backup_id) for s in ds.snapshots}:
            counts[btype]["groups"] += 1
        out["counts"] = counts
        out["gc-status"] = _gc_status(ds)
    return out


async def namespaces(call: Call) -> Any:
    """``GET /admin/datastore/{store}/namespace`` (proxmox-backup src/api2/admin/namespace.rs
    ``list_namespaces``): the anchor ``parent`` first (listed even when it does not exist),
    then every namespace below it down to ``max-depth`` levels (default and cap 7, clamped to
    what the anchor's depth leaves: pbs-datastore hierarchy.rs ``ListNamespacesRecursive``)."""
    ds = _store(call, "Datastore.Audit", "Datastore.Backup")
    parent = _ns(call, "parent")
    depth = len(parent.split("/")) if parent else 0
    max_depth = min(
        int(call.params.get("max-depth", MAX_NAMESPACE_DEPTH)), MAX_NAMESPACE_DEPTH - depth
    )
    below = sorted(n for n in ds.namespaces if n != parent and _below(n, parent, max_depth))
    return [{"ns": parent}] + [{"ns": n} for n in below]


async def groups(call: Call) -> Any:
    """``GET /admin/datastore/{store}/groups`` of one namespace (``ns``, default root)."""
    ds = _store(call, "Datastore.Audit", "Datastore.Backup")
    ns = _existing_ns(call, ds)
    by_group: dict[tuple[str, str], list[BackupSnapshot]] = {}
    for s in (x for x in ds.snapshots if x.ns == ns):
        by_group.setdefault((s.backup_type, s.backup_id), []).append(s)
    return [
        {
            "backup-type": t,
            "backup-id": i,
            "last-backup": max(s.backup_time for s in snaps),
            "backup-count": len(snaps),
            "files": snaps[-1].files,
            "owner": snaps[-1].owner,
        }
        for (t, i), snaps in sorted(by_group.items())
    ]


def snapshot_item(s: BackupSnapshot) -> dict[str, Any]:
    """One entry of ``.../snapshots``, with verification state when verified."""
    d: dict[str, Any] = {
        "backup-type": s.backup_type,
        "backup-id": s.backup_id,
        "backup-time": s.backup_time,
        "files": s.files,
        "size": s.size,
        "owner": s.owner,
        "protected": s.protected,
    }
    if s.verify_state:
        d["verification"] = {"state": s.verify_state, "upid": s.verify_upid or ""}
    return d


async def snapshots(call: Call) -> Any:
    """``GET /admin/datastore/{store}/snapshots`` of one namespace (``ns``, default root; no
    recursion), optionally one group. A missing namespace is PBS's 400, except for a group
    given by type and id, which PBS just finds empty (src/api2/admin/datastore.rs
    ``list_snapshots_blocking``)."""
    ds = _store(call, "Datastore.Audit", "Datastore.Backup")
    p = call.params
    ns = _ns(call)
    if not ds.has_namespace(ns):
        if "backup-type" in p and "backup-id" in p:
            return []
        raise ApiError(400, NO_NAMESPACE)
    return [
        snapshot_item(s)
        for s in ds.snapshots
        if s.ns == ns
        and p.get("backup-type", s.backup_type) == s.backup_type
        and p.get("backup-id", s.backup_id) == s.backup_id
    ]


async def delete_snapshot(call: Call) -> Any:
    """``DELETE /admin/datastore/{store}/snapshots`` (proxmox-backup src/api2/admin/datastore.rs
    ``delete_snapshot``): Datastore.Modify, or Datastore.Prune as the group's owner."""
    ds = _store(call, "Datastore.Modify", "Datastore.Prune")
    p = call.params
    btype, bid, btime = str(p["backup-type"]), str(p["backup-id"]), int(p["backup-time"])
    ns = _ns(call)
    snap = next(
        (
            s
            for s in ds.snapshots
            if (s.ns, s.backup_type, s.backup_id, s.backup_time) == (ns, btype, bid, btime)
        ),
        None,
    )
    if snap is None:
        raise ApiError(404, f"backup dir '{btype}/{bid}/{btime}' does not exist")
    have = call.principal.privs(f"/datastore/{ds.name}")
    if "Datastore.Modify" not in have and snap.owner != call.principal.authid:
        raise ApiError(403, "permission check failed")
    if snap.protected:
        raise ApiError(400, "cannot remove protected snapshot")
    ds.snapshots.remove(snap)
    ds.used = max(0, ds.used - snap.size // 3)
    call.sim.lab.bump()
    return None


async def gc_start(call: Call) -> Any:
    """``POST /admin/datastore/{store}/gc``: start garbage collection."""
    ds = _store(call, "Datastore.Modify")
    sim = call.sim

    def finish(task: Task) -> int:
        task.log += [
            "Start GC phase1 (mark used chunks)",
            "Start GC phase2 (sweep unused chunks)",
            "Removed garbage: 0 B",
            f"Original data usage: {ds.used * 3} B",
            f"On-Disk usage: {ds.used} B",
        ]
        ds.gc_last_upid = task.upid
        return 0

    return sim.pbs_tasks.start(
        sim.pbs_name,
        "garbage_collection",
        ds.name,
        call.principal.authid,
        finish,
        [f"starting garbage collection on store {ds.name}"],
    ).upid


async def gc_status(call: Call) -> Any:
    """``GET /admin/datastore/{store}/gc``."""
    return _gc_status(_store(call, "Datastore.Audit"))


async def verify(call: Call) -> Any:
    """``POST /admin/datastore/{store}/verify``; corrupt snapshots make the task fail. ``ns``
    and ``max-depth`` (default 7) choose the namespaces for a whole-store verify; a group or
    snapshot is looked up in ``ns`` itself (src/api2/admin/datastore.rs ``verify``)."""
    ds = _store(call, "Datastore.Verify", "Datastore.Backup")
    p, sim = call.params, call.sim
    ns = _ns(call)
    depth = int(p.get("max-depth", MAX_NAMESPACE_DEPTH)) if "backup-id" not in p else 0
    chosen = [
        s
        for s in ds.snapshots
        if _below(s.ns, ns, depth)
        and p.get("backup-type", s.backup_type) == s.backup_type
        and p.get("backup-id", s.backup_id) == s.backup_id
        and p.get("backup-time", s.backup_time) == s.backup_time
        and not (p.get("ignore-verified") and s.verify_state == "ok")
    ]
    if "backup-id" not in p:
        wid = escape_wid(f"{ds.name}:{ns_path(ns)}") if ns else ds.name
    elif ns:
        wid = escape_wid(f"{ds.name}:{ns_path(ns)}/{p.get('backup-type', 'vm')}/{p['backup-id']}")
    else:
        wid = escape_wid(f"{ds.name}:{p.get('backup-type', 'vm')}/{p['backup-id']}")
    first = [f"verify datastore {ds.name}"]
    if not ds.has_namespace(ns):
        # verify.rs ``verify_all_backups``: an unreadable namespace is logged, not fatal
        first.append(f"error on iterating groups in ns '{ns}' - {NO_NAMESPACE}")

    def finish(task: Task) -> int:
        bad = 0
        for s in chosen:
            name = f"{s.backup_type}/{s.backup_id}/{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(s.backup_time))}"
            task.log.append(f"verify {ds.name}:{name}")
            corrupt = (s.backup_type, s.backup_id) in sim.pbs_corrupt
            s.verify_state, s.verify_upid = ("failed" if corrupt else "ok"), task.upid
            if corrupt:
                bad += 1
                task.log.append(f"verify {ds.name}:{name} failed: chunk checksum mismatch")
        if bad:
            task.log.append(f"Failed to verify the following snapshots/groups: {bad}")
            raise TaskFailure("verification failed - please check the log for details")
        return 0

    return sim.pbs_tasks.start(
        sim.pbs_name, "verify", wid, call.principal.authid, finish, first
    ).upid


def prune_selection(snaps: list[BackupSnapshot], opts: dict[str, Any]) -> set[int]:
    """Backup times kept by PBS's prune rules (pbs-datastore/src/prune.rs
    ``compute_prune_info``): ``keep-last``, then each period keeps the newest snapshot of each
    of its newest N periods not already covered; a snapshot a pass marked (kept or removed)
    is skipped by the later passes; protected snapshots are kept; no option keeps all."""
    ordered = sorted(snaps, key=lambda s: s.backup_time, reverse=True)
    if not any(opts.get(k) for k in ("keep-last", *(o for o, _ in _PERIODS))):
        return {s.backup_time for s in ordered}
    marks: dict[int, str] = {}

    def mark(limit: int, select: Callable[[int], str]) -> None:
        included = {select(t) for t, m in marks.items() if m == "keep"}
        chosen: set[str] = set()
        for s in ordered:
            t = s.backup_time
            if t in marks:
                continue
            if s.protected:
                marks[t] = "protected"
                continue
            sel = select(t)
            if sel in included:
                continue
            if sel not in chosen:
                if len(chosen) >= limit:
                    break
                chosen.add(sel)
                marks[t] = "keep"
            else:
                marks[t] = "remove"

    if opts.get("keep-last"):
        mark(int(opts["keep-last"]), str)
    for opt, fmt in _PERIODS:
        if opts.get(opt):
            mark(int(opts[opt]), partial(_local_period, fmt))
    return {s.backup_time for s in ordered if s.protected or marks.get(s.backup_time) == "keep"}


def _local_period(fmt: str, t: int) -> str:
    return time.strftime(fmt, time.localtime(t))


async def prune(call: Call) -> Any:
    """``POST /admin/datastore/{store}/prune`` for one group (dry-run or for real)."""
    ds = _store(call, "Datastore.Modify", "Datastore.Prune")
    p = call.params
    ns = _existing_ns(call, ds)
    group = [
        s
        for s in ds.snapshots
        if s.ns == ns and s.backup_type == p["backup-type"] and s.backup_id == p["backup-id"]
    ]
    kept = prune_selection(group, p)
    result = [
        {
            "backup-type": s.backup_type,
            "backup-id": s.backup_id,
            "backup-time": s.backup_time,
            "keep": s.backup_time in kept or s.protected,
            "protected": s.protected,
        }
        for s in group
    ]
    if not p.get("dry-run"):
        drop = {id(s) for s in group if s.backup_time not in kept and not s.protected}
        ds.snapshots = [s for s in ds.snapshots if id(s) not in drop]
        call.sim.lab.bump()
    if p.get("use-task"):
        lines = [
            f"{r['backup-type']}/{r['backup-id']}/{r['backup-time']} "
            f"{'keep' if r['keep'] else 'remove'}"
            for r in result
        ]
        return call.sim.pbs_tasks.start(
            call.sim.pbs_name,
            "prune",
            # src/api2/admin/datastore.rs ``prune``: "{store}:{ns}:{group}" (ns empty at root)
            escape_wid(f"{ds.name}:{ns}:{p['backup-type']}/{p['backup-id']}")
            if ns
            else escape_wid(f"{ds.name}:{p['backup-type']}/{p['backup-id']}"),
            call.principal.authid,
            lambda t: 0,
            lines,
        ).upid
    return result


async def datastore_usage(call: Call) -> Any:
    """``GET /status/datastore-usage``."""
    pbs = call.sim.lab.pbs
    now = int(time.time())
    out = []
    for ds in pbs.datastores.values() if pbs else []:
        if not call.principal.privs(f"/datastore/{ds.name}") & {
            "Datastore.Audit",
            "Datastore.Backup",
        }:
            continue
        out.append(
            {
                "store": ds.name,
                "total": ds.total,
                "used": ds.used,
                "avail": ds.total - ds.used,
                "backend-type": "filesystem",
                "mount-status": "nonremovable",
                "history-start": now - 30 * 86400,
                "history-delta": 86400,
                "estimated-full-date": now + 400 * 86400,
                "gc-status": _gc_status(ds),
            }
        )
    return out


ROUTES = [
    Route("GET", "/version", version),
    Route("POST", "/access/ticket", access_ticket, ("username", "password"), public=True),
    Route("GET", "/admin/datastore", datastores),
    Route("GET", "/admin/datastore/{store}/status", store_status, ("verbose",)),
    Route("GET", "/admin/datastore/{store}/namespace", namespaces, ("parent", "max-depth")),
    Route("GET", "/admin/datastore/{store}/groups", groups, ("ns",)),
    Route(
        "GET", "/admin/datastore/{store}/snapshots", snapshots, ("backup-type", "backup-id", "ns")
    ),
    Route(
        "DELETE",
        "/admin/datastore/{store}/snapshots",
        delete_snapshot,
        ("backup-type", "backup-id", "backup-time", "ns"),
    ),
    Route("POST", "/admin/datastore/{store}/gc", gc_start),
    Route("GET", "/admin/datastore/{store}/gc", gc_status),
    Route(
        "POST",
        "/admin/datastore/{store}/verify",
        verify,
        ("backup-type", "backup-id", "backup-time", "ignore-verified", "ns", "max-depth"),
    ),
    Route(
        "POST",
        "/admin/datastore/{store}/prune",
        prune,
        (
            "backup-type",
            "backup-id",
            "dry-run",
            "keep-last",
            "keep-hourly",
            "keep-daily",
            "keep-weekly",
            "keep-monthly",
            "keep-yearly",
            "use-task",
            "ns",
        ),
    ),
    Route("GET", "/status/datastore-usage", datastore_usage),
    *task_routes("PBS"),
]
