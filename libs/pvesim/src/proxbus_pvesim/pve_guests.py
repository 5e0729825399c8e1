"""PVE guest endpoints: lists, status, config, power actions, snapshots, migration."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from .errors import ApiError, TaskFailure
from .model import Guest, Snapshot
from .router import Handler, Route
from .server import Call
from .tasks import Task
from .views import guest_common, guest_config

_PREFIX = {"qemu": "qm", "lxc": "vz"}
_LABEL = {"qemu": "VM", "lxc": "CT"}


def guest_of(call: Call, kind: str) -> Guest:
    """The guest addressed by ``{node}``/``{vmid}`` or the real API's 500."""
    node, vmid = call.params["node"], call.params["vmid"]
    g = call.sim.lab.guests.get(vmid)
    if g is None or g.node != node or g.kind != kind:
        conf = (
            f"nodes/{node}/qemu-server/{vmid}.conf"
            if kind == "qemu"
            else f"nodes/{node}/lxc/{vmid}.conf"
        )
        raise ApiError(500, f"Configuration file '{conf}' does not exist")
    return g


def _list(kind: str) -> Handler:
    async def handler(call: Call) -> Any:
        now, lab = time.time(), call.sim.lab
        out = []
        for g in lab.guests_on(call.params["node"], kind):
            if not call.principal.has(f"/vms/{g.vmid}", "VM.Audit"):
                continue
            d = guest_common(g, lab, now)
            d["cpus"] = g.cores
            if kind == "qemu":
                d["qmpstatus"] = g.qmpstatus
                if g.running:
                    d["pid"] = 10000 + g.vmid
            else:
                d.update({"type": "lxc", "maxswap": 512 * 1024**2})
            out.append(d)
        return out

    return handler


def _current(kind: str) -> Handler:
    async def handler(call: Call) -> Any:
        g = guest_of(call, kind)
        d = guest_common(g, call.sim.lab, time.time())
        d["cpus"] = g.cores
        d["ha"] = (
            {"managed": 1, "state": "started" if g.running else "stopped", "group": None}
            if g.ha
            else {"managed": 0}
        )
        if kind == "qemu":
            d.update({"qmpstatus": g.qmpstatus, "agent": 1, "clipboard": None})
            if g.running:
                d.update(
                    {
                        "pid": 10000 + g.vmid,
                        "running-qemu": "10.1.2",
                        "running-machine": "pc-i440fx-10.1+pve0",
                    }
                )
        else:
            d["type"] = "lxc"
        return d

    return handler


def _config(kind: str) -> Handler:
    async def handler(call: Call) -> Any:
        return guest_config(guest_of(call, kind))

    return handler


def _need_running(g: Guest) -> None:
    if not g.running:
        raise ApiError(500, f"{_LABEL[g.kind]} {g.vmid} not running")


def _check_lock(g: Guest, call: Call) -> None:
    if g.lock and not call.params.get("skiplock"):
        raise ApiError(500, f"{_LABEL[g.kind]} is locked ({g.lock})")


def _power(kind: str, action: str) -> Handler:
    async def handler(call: Call) -> Any:
        g = guest_of(call, kind)
        sim = call.sim
        _check_lock(g, call)
        if action in ("reboot", "suspend", "resume", "reset") or (
            kind == "lxc" and action in ("stop", "shutdown")
        ):
            _need_running(g)
        if kind == "lxc" and action == "start" and g.running:
            raise ApiError(500, f"CT {g.vmid} already running")

        def finish(task: Task) -> int:
            if action == "start":
                if g.running:
                    raise TaskFailure(f"VM {g.vmid} already running")
                sim.set_guest_running(g)
            elif action in ("stop", "shutdown"):
                if g.running:
                    sim.set_guest_stopped(g, task)
            elif action in ("reboot", "reset"):
                g.started_at = time.time()
            elif action == "suspend":
                g.qmpstatus = "paused"
            elif action == "resume":
                g.qmpstatus = "running"
            sim.lab.bump()
            return 0

        ttype = f"{_PREFIX[kind]}{action}"
        return sim.pve_tasks.start(g.node, ttype, str(g.vmid), call.principal.authid, finish).upid

    return handler


def _snapshots(kind: str) -> Handler:
    async def handler(call: Call) -> Any:
        g = guest_of(call, kind)
        out: list[dict[str, Any]] = [
            {
                k: v
                for k, v in {
                    "name": s.name,
                    "description": s.description,
                    "snaptime": s.snaptime,
                    "parent": s.parent,
                    "vmstate": int(s.vmstate) if kind == "qemu" else None,
                }.items()
                if v is not None
            }
            for s in g.snapshots
        ]
        current: dict[str, Any] = {
            "name": "current",
            "description": "You are here!",
            "running": int(g.running),
            "digest": guest_config(g)["digest"],
        }
        if g.snapshots:
            current["parent"] = g.snapshots[-1].name
        out.append(current)
        return out

    return handler


def _snap_action(kind: str, op: str) -> Handler:
    async def handler(call: Call) -> Any:
        g = guest_of(call, kind)
        _check_lock(g, call)
        p, sim = call.params, call.sim
        name = str(p["snapname"])

        def find() -> Snapshot:
            for s in g.snapshots:
                if s.name == name:
                    return s
            raise TaskFailure(f"snapshot '{name}' does not exist")

        def finish(task: Task) -> int:
            if op == "snapshot":
                if any(s.name == name for s in g.snapshots):
                    raise TaskFailure(f"snapshot name '{name}' already used")
                parent = g.snapshots[-1].name if g.snapshots else None
                g.snapshots.append(
                    Snapshot(
                        name,
                        str(p.get("description", "")),
                        int(time.time()),
                        parent,
                        bool(p.get("vmstate")) and g.running,
                    )
                )
            elif op == "rollback":
                snap = find()
                if g.running and not snap.vmstate:
                    sim.set_guest_stopped(g, task)
                if snap.vmstate or p.get("start"):
                    sim.set_guest_running(g)
            else:
                snap = find()
                for s in g.snapshots:
                    if s.parent == snap.name:
                        s.parent = snap.parent
                g.snapshots.remove(snap)
            sim.lab.bump()
            return 0

        ttype = {
            "snapshot": f"{_PREFIX[kind]}snapshot",
            "rollback": f"{_PREFIX[kind]}rollback",
            "delete": f"{_PREFIX[kind]}delsnapshot",
        }[op]
        return sim.pve_tasks.start(g.node, ttype, str(g.vmid), call.principal.authid, finish).upid

    return handler


def _migrate(kind: str) -> Handler:
    async def handler(call: Call) -> Any:
        g = guest_of(call, kind)
        _check_lock(g, call)
        sim, p = call.sim, call.params
        target = str(p["target"])
        node = sim.lab.nodes.get(target)
        if node is None:
            raise ApiError(500, f"no such cluster node '{target}'")
        if target == g.node:
            raise ApiError(500, "target is local node.")
        if not node.online:
            raise ApiError(500, f"target node '{target}' is not online")
        if g.running and kind == "qemu" and not p.get("online"):
            raise ApiError(500, "can't migrate running VM without --online")
        if g.running and kind == "lxc" and not p.get("restart"):
            raise ApiError(500, "lxc live migration is currently not implemented")
        source = g.node
        g.lock = "migrate"
        sim.lab.bump()
        begin = [
            f"{time.strftime('%Y-%m-%d %H:%M:%S')} starting migration of "
            f"{_LABEL[kind]} {g.vmid} to node '{target}' ({node.ip})"
        ]

        def finish(task: Task) -> int:
            g.lock = None
            if not sim.lab.nodes[target].online:
                sim.lab.bump()
                raise TaskFailure(f"migration aborted: target node '{target}' went offline")
            g.node = target
            task.log.append(
                f"{time.strftime('%Y-%m-%d %H:%M:%S')} migration finished "
                f"successfully (duration 00:00:0{int(sim.pve_tasks.duration(task.type)) % 10})"
            )
            sim.lab.bump()
            return 0

        def unlock() -> None:
            """An interrupted migration removes its lock (pve-guest-common
            src/PVE/AbstractMigrate.pm ``migrate``: ``remove_lock`` on error)."""
            if g.lock == "migrate":
                g.lock = None
            sim.lab.bump()

        ttype = "qmigrate" if kind == "qemu" else "vzmigrate"
        return sim.pve_tasks.start(
            source, ttype, str(g.vmid), call.principal.authid, finish, begin, on_stop=unlock
        ).upid

    return handler


def guest_routes() -> list[Route]:
    """All guest routes for qemu and lxc."""
    routes: list[Route] = []
    actions: dict[str, list[str]] = {
        "qemu": ["start", "stop", "shutdown", "reboot", "suspend", "resume", "reset"],
        "lxc": ["start", "stop", "shutdown", "reboot", "suspend", "resume"],
    }
    reads: dict[str, tuple[str, ...]] = {
        "start": ("skiplock",),
        "stop": ("skiplock",),
        "shutdown": ("forceStop", "timeout"),
        "reboot": ("timeout",),
    }
    factories: list[tuple[str, str, Callable[[str], Handler], tuple[str, ...]]] = [
        ("GET", "", _list, ()),
        ("GET", "/{vmid}/status/current", _current, ()),
        ("GET", "/{vmid}/config", _config, ()),
        ("GET", "/{vmid}/snapshot", _snapshots, ()),
    ]
    for kind in ("qemu", "lxc"):
        base = f"/nodes/{{node}}/{kind}"
        for method, suffix, factory, rd in factories:
            routes.append(Route(method, base + suffix, factory(kind), rd))
        for action in actions[kind]:
            rd = tuple(
                r
                for r in reads.get(action, ())
                if kind == "qemu" or r != "skiplock" or action in ("start", "stop")
            )
            routes.append(
                Route("POST", f"{base}/{{vmid}}/status/{action}", _power(kind, action), rd)
            )
        snap_reads = ("description", "vmstate") if kind == "qemu" else ("description",)
        routes += [
            Route("POST", f"{base}/{{vmid}}/snapshot", _snap_action(kind, "snapshot"), snap_reads),
            Route(
                "POST",
                f"{base}/{{vmid}}/snapshot/{{snapname}}/rollback",
                _snap_action(kind, "rollback"),
                ("start",),
            ),
            Route(
                "DELETE",
                f"{base}/{{vmid}}/snapshot/{{snapname}}",
                _snap_action(kind, "delete"),
                ("force",),
            ),
            Route(
                "POST",
                f"{base}/{{vmid}}/migrate",
                _migrate(kind),
                ("target", "online") if kind == "qemu" else ("target", "restart"),
            ),
        ]
    return routes
